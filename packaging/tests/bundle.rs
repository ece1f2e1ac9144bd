//! The release bundle as `scripts/build.sh --profile dev` makes it: its
//! layout, both SHA256SUMS, the shared libraries each binary links (only
//! what a plain Debian 12 host has), and every sample config parsed by its
//! binary's `--check-config`. Also the systemd units: `systemd-analyze
//! verify` and the hardening directives, read from the unit files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sdp_packaging::{
    TempDir, WORKSPACE_VERSION, arch, build_bundle, debug_binary, extract, repo_root, run, run_ok,
    text,
};

const BINARIES: [&str; 4] = [
    "sdp-control-plane",
    "sdp-agent-micro",
    "sdp-agent-gateway",
    "sdp",
];

/// Libraries every Debian 12 host has: libc6, libgcc-s1 and zlib1g are
/// `Priority: required`; libssl3 is on every host with openssh or
/// ca-certificates tooling, and Debian's security updates patch it (the
/// reason git2 links the system OpenSSL instead of vendoring one).
const ALLOWED_LIBS: [&str; 11] = [
    "linux-vdso.so.1",
    "libc.so.6",
    "libm.so.6",
    "libgcc_s.so.1",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libz.so.1",
    "libssl.so.3",
    "libcrypto.so.3",
    "ld-linux-x86-64.so.2",
];

#[test]
fn bundle_layout_checksums_libraries_and_samples() {
    let out = TempDir::new().expect("temp dir");
    let started = std::time::Instant::now();
    let tarball = build_bundle(out.path(), None);
    let size = std::fs::metadata(&tarball).expect("tarball").len();
    eprintln!(
        "bundle {} : {} bytes, built in {:?}",
        tarball.display(),
        size,
        started.elapsed()
    );
    assert_eq!(
        tarball.file_name().and_then(|n| n.to_str()),
        Some(format!("sdp-{WORKSPACE_VERSION}-linux-{}.tar.gz", arch()).as_str())
    );

    // dist/SHA256SUMS names the tarball and verifies.
    let sums = std::fs::read_to_string(out.path().join("SHA256SUMS")).expect("SHA256SUMS");
    assert_eq!(sums.lines().count(), 1, "{sums}");
    assert!(sums.contains(&format!("sdp-{WORKSPACE_VERSION}-linux-")));
    run_ok(
        Command::new("sha256sum")
            .args(["--strict", "-c", "SHA256SUMS"])
            .current_dir(out.path()),
    );

    let unpacked = TempDir::new().expect("temp dir");
    let bundle = extract(&tarball, unpacked.path());
    let mut files = list_files(&bundle);
    files.retain(|f| !f.starts_with("images/"));
    let expected = [
        "INSTALL.md",
        "README.md",
        "SHA256SUMS",
        "VERSION",
        "bin/sdp",
        "bin/sdp-agent-gateway",
        "bin/sdp-agent-micro",
        "bin/sdp-control-plane",
        "etc/agent-gateway.sample.toml",
        "etc/agent-micro.sample.toml",
        "etc/control-plane.sample.toml",
        "install.sh",
        "nats/README.md",
        "nats/auth.conf",
        "nats/gen-auth.sh",
        "nats/gen-dev-certs.sh",
        "nats/production.conf",
        "nginx/sdp.conf",
        "systemd/sdp-agent-gateway.service",
        "systemd/sdp-agent-micro.service",
        "systemd/sdp-control-plane.service",
        "systemd/sdp-nats.service",
    ];
    assert_eq!(files, expected, "bundle layout");
    assert!(bundle.join("images").is_dir(), "images/ is missing");
    // What makes and saves the images offline travels with it, the
    // sandbox resources' images among the ones saved by default
    // (`build.sh --images`; install.sh loads them, or makes them).
    for script in [
        "make-base-image.sh",
        "make-runtime-images.sh",
        "make-build-image.sh",
        "make-resource-images.sh",
        "resource-rootfs.sh",
        "save-images.sh",
    ] {
        let path = bundle.join("images").join(script);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("images/{script}: {e}"))
                .permissions(),
        );
        assert_eq!(mode & 0o111, 0o111, "images/{script} is executable");
    }
    let save = std::fs::read_to_string(bundle.join("images/save-images.sh")).expect("save");
    for image in [
        "sdp-go-base:1",
        "sdp-build:1",
        "sdp-resource-postgres:1",
        "sdp-resource-mariadb:1",
        "sdp-resource-redis:1",
    ] {
        assert!(save.contains(image), "save-images.sh saves {image}");
    }
    assert!(save.contains("make-resource-images.sh"));
    assert_eq!(
        std::fs::read_to_string(bundle.join("VERSION")).expect("VERSION"),
        format!("{WORKSPACE_VERSION}\n")
    );
    // The bundle's own SHA256SUMS covers every other file and verifies.
    let inner = std::fs::read_to_string(bundle.join("SHA256SUMS")).expect("inner sums");
    let all = list_files(&bundle);
    assert_eq!(inner.lines().count(), all.len() - 1, "{inner}");
    run_ok(
        Command::new("sha256sum")
            .args(["--strict", "--quiet", "-c", "SHA256SUMS"])
            .current_dir(&bundle),
    );
    // The packaging sources are what was packed.
    for (packed, source) in [
        ("install.sh", "packaging/install.sh"),
        ("nginx/sdp.conf", "packaging/nginx/sdp.conf"),
        ("nats/auth.conf", "nats/auth.conf"),
        ("nats/gen-auth.sh", "nats/gen-auth.sh"),
        (
            "etc/agent-micro.sample.toml",
            "agent-micro/agent-micro.sample.toml",
        ),
    ] {
        assert_eq!(
            std::fs::read(bundle.join(packed)).expect("packed"),
            std::fs::read(repo_root().join(source)).expect("source"),
            "{packed}"
        );
    }

    // The installed agent configs show where offline builds get what a
    // checkout lacks, and the build container's settings.
    for (sample, sections) in [
        ("agent-micro", &["[go]", "[build]"][..]),
        (
            "agent-gateway",
            &["[[composer.repositories]]", "[build]"][..],
        ),
    ] {
        let text = std::fs::read_to_string(bundle.join(format!("etc/{sample}.sample.toml")))
            .expect("sample");
        for section in sections {
            assert!(
                text.lines()
                    .any(|l| l.trim_start_matches("# ").starts_with(section)),
                "etc/{sample}.sample.toml has no {section}"
            );
        }
    }

    for bin in BINARIES {
        let path = bundle.join("bin").join(bin);
        assert_only_debian_libraries(&path);
        let out = run_ok(Command::new(&path).arg("--version"));
        assert!(text(&out).0.contains(WORKSPACE_VERSION), "{bin} --version");
    }

    // Every sample parses with its own binary; a broken one is refused.
    let checks = [
        ("control-plane", "sdp-control-plane"),
        ("agent-micro", "sdp-agent-micro"),
        ("agent-gateway", "sdp-agent-gateway"),
    ];
    for (sample, bin) in checks {
        let sample = bundle.join("etc").join(format!("{sample}.sample.toml"));
        let binary = bundle.join("bin").join(bin);
        let out = check_config(&binary, &sample);
        let (stdout, stderr) = text(&out);
        assert!(
            out.status.success(),
            "{bin} refused {}: {stderr}",
            sample.display()
        );
        assert_eq!(stdout.trim(), format!("{bin}: config ok"));

        let broken = unpacked.path().join(format!("{bin}.broken.toml"));
        let mut body = std::fs::read_to_string(&sample).expect("sample");
        body.insert_str(0, "no_such_key = 1\n");
        std::fs::write(&broken, body).expect("write");
        let out = check_config(&binary, &broken);
        assert_eq!(out.status.code(), Some(64), "{bin} accepted an unknown key");
        assert!(text(&out).1.contains("no_such_key"), "{:?}", text(&out));
    }
}

fn check_config(binary: &Path, config: &Path) -> std::process::Output {
    run(Command::new(binary)
        .arg("--config")
        .arg(config)
        .arg("--check-config")
        .env_clear()
        .env("PATH", "/usr/bin:/bin"))
}

/// `ldd` resolves every library, from the system's directories, and each is
/// on the allow-list.
fn assert_only_debian_libraries(binary: &Path) {
    let out = run_ok(Command::new("ldd").arg(binary));
    let listing = text(&out).0;
    for line in listing.lines() {
        let line = line.trim();
        assert!(!line.contains("not found"), "{}: {line}", binary.display());
        let name = line.split_whitespace().next().unwrap_or_default();
        let name = Path::new(name)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert!(
            ALLOWED_LIBS.contains(&name),
            "{} links {name}, which a plain Debian 12 host may lack:\n{listing}",
            binary.display()
        );
        if let Some((_, resolved)) = line.split_once("=> ") {
            assert!(
                resolved.starts_with("/lib") || resolved.starts_with("/usr/lib"),
                "{}: {line} is not a system library",
                binary.display()
            );
        }
    }
}

/// Files under `dir`, relative, sorted.
fn list_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A unit file: section → key → values in order (a key may repeat).
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn parse_unit(path: &Path) -> Unit {
    let text = std::fs::read_to_string(path).expect("unit file");
    let mut unit = Unit::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{}: bad line {line}", path.display()));
        unit.entry(section.clone())
            .or_default()
            .entry(key.trim().to_owned())
            .or_default()
            .push(value.trim().to_owned());
    }
    unit
}

fn service<'a>(unit: &'a Unit, key: &str) -> Vec<&'a str> {
    unit.get("Service")
        .and_then(|s| s.get(key))
        .map(|v| v.iter().map(String::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn systemd_units_verify_and_are_hardened() {
    let units_dir = repo_root().join("packaging/systemd");
    let components = [
        ("control-plane", false),
        ("agent-micro", true),
        ("agent-gateway", true),
    ];
    for (component, docker) in components {
        let path = units_dir.join(format!("sdp-{component}.service"));
        let unit = parse_unit(&path);
        let user = format!("sdp-{component}");
        let data = format!("/var/lib/sdp/{component}");
        let one = |key: &str| -> String {
            let values = service(&unit, key);
            assert_eq!(values.len(), 1, "{component}: {key} = {values:?}");
            values[0].to_owned()
        };
        assert_eq!(one("User"), user);
        assert_eq!(one("Group"), user);
        assert_eq!(one("Restart"), "on-failure");
        assert_eq!(one("NoNewPrivileges"), "yes");
        assert_eq!(one("ProtectSystem"), "strict");
        assert_eq!(one("ProtectHome"), "yes");
        assert_eq!(one("PrivateTmp"), "yes");
        assert_eq!(one("CapabilityBoundingSet"), "");
        // Only its own data dir is writable.
        assert_eq!(one("ReadWritePaths"), data);
        assert_eq!(one("StateDirectory"), format!("sdp/{component}"));
        let prefix = if component == "control-plane" {
            "SDP_CONTROL_PLANE"
        } else {
            "SDP_AGENT"
        };
        assert!(
            service(&unit, "Environment").contains(&format!("{prefix}__DATA_DIR={data}").as_str())
        );
        assert_eq!(one("EnvironmentFile"), format!("-/etc/sdp/{component}.env"));
        let bin = format!("sdp-{component}");
        assert!(
            one("ExecStart").starts_with(&format!(
                "/opt/sdp/current/bin/{bin} --config /etc/sdp/{component}.toml"
            )),
            "{component}: ExecStart"
        );
        let groups = service(&unit, "SupplementaryGroups");
        if docker {
            assert_eq!(groups, ["docker"], "{component} must be in group docker");
            assert!(unit["Unit"]["Requires"].contains(&"docker.service".to_owned()));
        } else {
            assert!(groups.is_empty(), "{component} needs no docker group");
        }
        // No secret in the unit: those go to the 0600 env file.
        for value in service(&unit, "Environment") {
            assert!(!value.to_lowercase().contains("password"), "{value}");
        }
        assert_eq!(
            unit["Install"]["WantedBy"],
            ["multi-user.target".to_owned()]
        );
    }
    let nats = parse_unit(&units_dir.join("sdp-nats.service"));
    assert_eq!(service(&nats, "User"), ["nats"]);
    assert_eq!(service(&nats, "ProtectSystem"), ["strict"]);
    assert_eq!(service(&nats, "NoNewPrivileges"), ["yes"]);
    assert_eq!(service(&nats, "Restart"), ["on-failure"]);
    assert_eq!(service(&nats, "ReadWritePaths"), ["/var/lib/nats"]);
    assert_eq!(service(&nats, "ExecReload"), ["/bin/kill -HUP $MAINPID"]);

    // systemd-analyze verify, on copies whose binary paths point at this
    // build (verify insists every ExecStart binary exists).
    let dir = TempDir::new().expect("temp dir");
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir(&bin_dir).expect("mkdir");
    for bin in BINARIES {
        std::os::unix::fs::symlink(debug_binary(bin), bin_dir.join(bin)).expect("symlink");
    }
    let nats_server = which("nats-server");
    let mut copies = Vec::new();
    for entry in std::fs::read_dir(&units_dir).expect("units").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let body = std::fs::read_to_string(entry.path())
            .expect("unit")
            .replace("/opt/sdp/current/bin", &bin_dir.display().to_string())
            .replace(
                "/usr/local/bin/nats-server",
                &nats_server.display().to_string(),
            );
        let copy = dir.path().join(&name);
        std::fs::write(&copy, body).expect("write");
        copies.push(copy);
    }
    assert_eq!(copies.len(), 4, "four units");
    let out = run(Command::new("systemd-analyze").arg("verify").args(&copies));
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stdout}\n{stderr}",
        out.status
    );
    // The check itself can fail: a misspelt directive is reported.
    let bad = dir.path().join("bad.service");
    let body = std::fs::read_to_string(&copies[0])
        .expect("unit")
        .replace("NoNewPrivileges=yes", "NoNewPrivilege=yes");
    std::fs::write(&bad, body).expect("write");
    let out = run(Command::new("systemd-analyze").arg("verify").arg(&bad));
    assert!(text(&out).1.contains("NoNewPrivilege"), "{:?}", text(&out));
}

fn which(program: &str) -> PathBuf {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{program} is not on PATH"))
}
