//! The bundle's install.sh with `--root` into a fresh directory: a second
//! run changes nothing (the tree is identical, mtimes included) and says
//! so; an edited config survives a reinstall (the new one lands as `.new`);
//! `--dry-run` writes nothing; a newer bundle upgrades with the data kept
//! and `current` moved, naming what it would restart; `--uninstall` keeps
//! configs and data, `--purge` removes them.

use std::path::Path;
use std::process::{Command, Output};

use sdp_packaging::{TempDir, build_bundle, extract, run, text, tree};

fn install(bundle: &Path, args: &[&str]) -> (String, String) {
    let out = run(Command::new(bundle.join("install.sh")).args(args));
    assert_ok("install.sh", &out);
    text(&out)
}

fn assert_ok(what: &str, out: &Output) {
    let (stdout, stderr) = text(out);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

#[test]
fn install_twice_edit_upgrade_uninstall_purge() {
    let dist = TempDir::new().expect("temp dir");
    let old = build_bundle(&dist.path().join("a"), Some("0.1.0"));
    let new = build_bundle(&dist.path().join("b"), Some("0.1.1"));
    let unpacked = TempDir::new().expect("temp dir");
    let old = extract(&old, unpacked.path());
    let new = extract(&new, unpacked.path());
    let root_dir = TempDir::new().expect("temp dir");
    let root = root_dir.path();
    let root_arg = root.display().to_string();
    let roles = ["--role", "control,micro", "--root", &root_arg];

    // Refused: an unknown role; no role at all.
    let out =
        run(Command::new(old.join("install.sh")).args(["--role", "web", "--root", &root_arg]));
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    let out = run(Command::new(old.join("install.sh")).args(["--root", &root_arg]));
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));

    // --dry-run writes nothing.
    let (stdout, _) = install(&old, &[&roles[..], &["--dry-run"]].concat());
    assert!(
        stdout.contains("would: install /etc/sdp/control-plane.toml"),
        "{stdout}"
    );
    assert!(tree(root).is_empty(), "dry run wrote {:?}", tree(root));

    // First install.
    let (stdout, _) = install(&old, &roles);
    assert!(stdout.contains("change(s)"), "{stdout}");
    for path in [
        "opt/sdp/0.1.0/bin/sdp-control-plane",
        "opt/sdp/0.1.0/bin/sdp-agent-micro",
        "etc/sdp/control-plane.toml",
        "etc/sdp/agent-micro.toml",
        "etc/systemd/system/sdp-control-plane.service",
        "etc/systemd/system/sdp-agent-micro.service",
        "etc/systemd/system/sdp-nats.service",
        "etc/nats/production.conf",
        "etc/nats/auth.conf",
        "etc/nginx/sites-available/sdp.conf",
    ] {
        assert!(root.join(path).is_file(), "{path} missing:\n{stdout}");
    }
    assert!(
        !root.join("etc/sdp/agent-gateway.toml").exists(),
        "gateway not asked for"
    );
    assert!(
        !root
            .join("etc/systemd/system/sdp-agent-gateway.service")
            .exists()
    );
    assert!(root.join("var/lib/sdp/control-plane").is_dir());
    assert!(root.join("var/lib/sdp/agent-micro").is_dir());
    assert_eq!(link(root, "opt/sdp/current"), "0.1.0");
    assert_eq!(
        link(root, "etc/nginx/sites-enabled/sdp.conf"),
        "../sites-available/sdp.conf"
    );
    assert_eq!(mode(&root.join("etc/sdp/control-plane.env")), 0o600);
    assert!(
        stdout.contains("--root: user sdp-control-plane not created"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("would restart"),
        "first install restarts nothing"
    );

    // Second run: nothing changes, and it says so.
    let before = tree(root);
    let (stdout, _) = install(&old, &roles);
    assert!(
        stdout.contains("sdp 0.1.0: already installed, nothing changed"),
        "{stdout}"
    );
    assert_eq!(tree(root), before, "the second run touched the tree");

    // An edited config survives; the new sample lands beside it.
    let config = root.join("etc/sdp/control-plane.toml");
    let edited = format!(
        "{}\n# edited by the operator\n",
        std::fs::read_to_string(&config).expect("config")
    );
    std::fs::write(&config, &edited).expect("edit");
    let (stdout, _) = install(&old, &roles);
    assert!(
        stdout.contains("kept your edited /etc/sdp/control-plane.toml"),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&config).expect("config"), edited);
    assert_eq!(
        std::fs::read(root.join("etc/sdp/control-plane.toml.new")).expect(".new"),
        std::fs::read(old.join("etc/control-plane.sample.toml")).expect("sample")
    );
    let before = tree(root);
    let (stdout, _) = install(&old, &roles);
    assert!(stdout.contains("nothing changed"), "{stdout}");
    assert_eq!(tree(root), before);

    // Upgrade: data kept, current moved, the old version kept for rollback.
    let marker = root.join("var/lib/sdp/control-plane/sdp.db");
    std::fs::write(&marker, b"precious").expect("marker");
    let (stdout, _) = install(&new, &roles);
    assert!(stdout.contains("upgraded from 0.1.0"), "{stdout}");
    assert!(
        stdout.contains("would restart: sdp-control-plane.service"),
        "{stdout}"
    );
    assert!(
        stdout.contains("would restart: sdp-agent-micro.service"),
        "{stdout}"
    );
    assert_eq!(link(root, "opt/sdp/current"), "0.1.1");
    assert_eq!(std::fs::read(&marker).expect("marker"), b"precious");
    assert_eq!(std::fs::read_to_string(&config).expect("config"), edited);
    assert!(root.join("opt/sdp/0.1.0/bin/sdp-control-plane").is_file());
    // The installed binary runs with the installed config.
    let out = run(
        Command::new(root.join("opt/sdp/current/bin/sdp-control-plane"))
            .arg("--config")
            .arg(&config)
            .arg("--check-config")
            .env_clear(),
    );
    assert_ok("installed sdp-control-plane --check-config", &out);
    let before = tree(root);
    let (stdout, _) = install(&new, &roles);
    assert!(
        stdout.contains("sdp 0.1.1: already installed, nothing changed"),
        "{stdout}"
    );
    assert!(!stdout.contains("would restart"), "{stdout}");
    assert_eq!(tree(root), before);

    // Uninstall: binaries and units go, configs and data stay.
    let (stdout, _) = install(&new, &["--uninstall", "--root", &root_arg]);
    assert!(stdout.contains("removed"), "{stdout}");
    assert!(!root.join("opt/sdp").exists());
    assert!(
        !root
            .join("etc/systemd/system/sdp-control-plane.service")
            .exists()
    );
    assert!(!root.join("etc/systemd/system/sdp-nats.service").exists());
    assert!(!root.join("etc/nginx/sites-enabled/sdp.conf").exists());
    assert_eq!(std::fs::read(&marker).expect("data kept"), b"precious");
    assert_eq!(
        std::fs::read_to_string(&config).expect("config kept"),
        edited
    );

    // Purge: configs and data go too.
    let (stdout, _) = install(&new, &["--purge", "--root", &root_arg]);
    assert!(stdout.contains("purge /var/lib/sdp"), "{stdout}");
    assert!(!root.join("var/lib/sdp").exists());
    assert!(!root.join("etc/sdp").exists());
    assert!(!root.join("etc/nginx/sites-available/sdp.conf").exists());
}

fn link(root: &Path, path: &str) -> String {
    std::fs::read_link(root.join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .display()
        .to_string()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// An agent role loads each image the bundle saved (`images/*.tar`) and
/// makes the sandbox resources' images it did not save; a control plane
/// alone needs none. With `--root` both are printed, not run.
#[test]
fn agent_roles_load_saved_images_and_make_missing_resource_images() {
    let dist = TempDir::new().expect("temp dir");
    let unpacked = TempDir::new().expect("temp dir");
    let bundle = extract(&build_bundle(dist.path(), None), unpacked.path());
    // Stand-ins for what `build.sh --images` saves: install.sh reads only
    // their names here. The bundle's sums must cover them.
    for file in ["sdp-go-base_1.tar", "sdp-resource-redis_1.tar"] {
        std::fs::write(bundle.join("images").join(file), b"stand-in").expect("write");
    }
    let sums = run(Command::new("bash")
        .args([
            "-c",
            "find . -type f ! -name SHA256SUMS -printf '%P\\n' | LC_ALL=C sort | \
             xargs -d '\\n' sha256sum >SHA256SUMS",
        ])
        .current_dir(&bundle));
    assert_ok("sha256sum", &sums);
    let root_dir = TempDir::new().expect("temp dir");
    let root_arg = root_dir.path().display().to_string();

    let (stdout, _) = install(&bundle, &["--role", "micro", "--root", &root_arg]);
    for image in ["sdp-go-base:1", "sdp-resource-redis:1"] {
        assert!(
            stdout.contains(&format!(
                "would run: docker load -i {}",
                bundle.join("images").display()
            )) && stdout.contains(&format!("({image}, unless present)")),
            "{image} loaded:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("would run: images/make-resource-images.sh")
            && stdout.contains("not saved in this bundle: postgres mariadb"),
        "{stdout}"
    );

    let control_root = TempDir::new().expect("temp dir");
    let control_arg = control_root.path().display().to_string();
    let (stdout, _) = install(&bundle, &["--role", "control", "--root", &control_arg]);
    assert!(!stdout.contains("would run: docker load"), "{stdout}");
    assert!(
        !stdout.contains("would run: images/make-resource-images.sh"),
        "{stdout}"
    );
}
