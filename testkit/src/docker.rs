//! Docker helpers over the `docker` CLI: the imported busybox base image,
//! the build image, the settings a test's agent-micro builds with, the
//! bridge gateway address, and cleanup of labelled containers.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::cmd::{output, run};
use crate::util::unique_id;

/// The busybox base image made by [`ensure_busybox_image`].
pub const BUSYBOX_IMAGE: &str = "sdp-test-busybox:1";
const BUSYBOX_HOST_PATH: &str = "/bin/busybox";
const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";
/// Applets linked even if `busybox --list` is unavailable.
const BASE_APPLETS: &[&str] = &[
    "sh", "ash", "wget", "cat", "ls", "echo", "sleep", "env", "ps", "kill", "mkdir", "rm", "cp",
    "mv", "grep", "sed", "true", "false", "test", "id", "nc", "printf", "head", "tail",
];

/// Idempotently makes the base image [`BUSYBOX_IMAGE`] with `docker import`:
/// a rootfs with `/bin/busybox` (copied from the host's busybox-static), a
/// symlink per applet, `/etc/passwd` (root, nobody) and `/tmp` (1777).
/// Returns the image name. Does nothing if `docker image inspect` finds it.
///
/// Safe to call concurrently: threads of one process serialise on a mutex,
/// and each process imports under a unique temp tag and then `docker tag`s
/// it, so the final tag always names a complete image.
///
/// # Panics
/// If docker or `/bin/busybox` is missing (saying what to install), or a
/// docker command fails.
pub fn ensure_busybox_image() -> String {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    require_docker();
    if image_exists(BUSYBOX_IMAGE) {
        return BUSYBOX_IMAGE.to_owned();
    }
    if !Path::new(BUSYBOX_HOST_PATH).is_file() {
        panic!("{BUSYBOX_HOST_PATH} not found: install it with `apt-get install busybox-static`");
    }
    let work = tempfile::Builder::new()
        .prefix("sdp-busybox-image-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create image work dir: {e}"));
    let rootfs = work.path().join("rootfs");
    build_rootfs(&rootfs);
    import_rootfs(
        &rootfs,
        BUSYBOX_IMAGE,
        "ENV PATH=/bin:/usr/bin:/sbin:/usr/sbin",
        "CMD [\"/bin/sh\"]",
    );
    tracing::info!(image = BUSYBOX_IMAGE, "imported busybox test image");
    BUSYBOX_IMAGE.to_owned()
}

/// `docker import`s `rootfs` as `image`, under a unique temporary tag first
/// and then retagged, so processes importing at the same time never see a
/// half-made image under the final name.
fn import_rootfs(rootfs: &Path, image: &str, env: &str, cmd: &str) {
    let tarball = rootfs.with_extension("tar");
    run(Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg("."));
    let repository = image.split(':').next().unwrap_or(image);
    let temp_tag = format!("{repository}:{}", unique_id("tmp"));
    run(Command::new("docker")
        .args(["import", "--change", env, "--change", cmd])
        .arg(&tarball)
        .arg(&temp_tag));
    run(Command::new("docker").args(["tag", &temp_tag, image]));
    // Only removes the temp tag; the image keeps its final tag.
    let _ = output(Command::new("docker").args(["rmi", &temp_tag]));
}

/// The PHP base image made by [`ensure_php_image`].
pub const PHP_IMAGE: &str = "sdp-test-php:1";
const PHP_HOST_PATH: &str = "/usr/bin/php";

/// Idempotently makes [`PHP_IMAGE`] with `docker import`: the busybox
/// rootfs of [`ensure_busybox_image`] plus the host's PHP CLI binary (the
/// real file behind Debian's alternatives symlinks) at `/usr/bin/php`,
/// every library `ldd` lists at the path it lists, and the dynamic loader.
/// PHP runs without an ini file on its compiled-in defaults, which include
/// `allow_url_fopen` (outbound HTTP through streams) and the core
/// extensions json and pcre; `php -S` works. Safe under concurrency like
/// [`ensure_busybox_image`].
///
/// # Panics
/// If docker, busybox or php is missing (saying what to install), or a
/// command fails.
pub fn ensure_php_image() -> String {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    require_docker();
    if image_exists(PHP_IMAGE) {
        return PHP_IMAGE.to_owned();
    }
    if !Path::new(BUSYBOX_HOST_PATH).is_file() {
        panic!("{BUSYBOX_HOST_PATH} not found: install it with `apt-get install busybox-static`");
    }
    let php = fs::canonicalize(PHP_HOST_PATH).unwrap_or_else(|e| {
        panic!("{PHP_HOST_PATH} not found ({e}): install it with `apt-get install php-cli`")
    });
    let work = tempfile::Builder::new()
        .prefix("sdp-php-image-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create image work dir: {e}"));
    let rootfs = work.path().join("rootfs");
    build_rootfs(&rootfs);
    copy_into(&rootfs, &php, Path::new("/usr/bin/php"));
    copy_libraries(&rootfs, &php);
    import_rootfs(
        &rootfs,
        PHP_IMAGE,
        "ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "CMD [\"/usr/bin/php\", \"-a\"]",
    );
    tracing::info!(image = PHP_IMAGE, "imported php test image");
    PHP_IMAGE.to_owned()
}

/// Copies every library `ldd` lists for host file `binary` into `root`
/// at the path it lists.
fn copy_libraries(root: &Path, binary: &Path) {
    let ldd = run(Command::new("ldd").arg(binary));
    for line in ldd.lines() {
        // `libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x...)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`; `linux-vdso.so.1 (0x...)`
        // has no file.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            copy_into(root, Path::new(path), Path::new(path));
        }
    }
}

/// The build image made by [`ensure_build_image`].
pub const BUILD_IMAGE: &str = "sdp-test-build:2";
/// PHP extensions composer uses (Debian builds them as shared modules;
/// intl's `Normalizer` renders composer's errors).
const BUILD_PHP_EXTENSIONS: &[&str] = &[
    "ctype",
    "iconv",
    "mbstring",
    "phar",
    "tokenizer",
    "posix",
    "fileinfo",
    "intl",
    "zip",
    "curl",
];

/// Idempotently makes [`BUILD_IMAGE`], the image the agents build in
/// (like `packaging/images/make-build-image.sh`, from the host's files):
/// the busybox rootfs, the host's PHP CLI with its libraries, the shared
/// extensions composer uses (and their ini files and libraries), Debian's
/// composer (`/usr/bin/composer` and `/usr/share/php`), the CA
/// certificates and `/etc/passwd`. Go is not in it: the agents mount the
/// host's GOROOT read-only. Safe under concurrency like
/// [`ensure_busybox_image`].
///
/// # Panics
/// If docker, busybox, php or composer is missing (saying what to
/// install), or a command fails.
pub fn ensure_build_image() -> String {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    require_docker();
    if image_exists(BUILD_IMAGE) {
        return BUILD_IMAGE.to_owned();
    }
    for (file, package) in [
        (BUSYBOX_HOST_PATH, "busybox-static"),
        ("/usr/bin/composer", "composer"),
        ("/usr/share/php/Composer", "composer"),
    ] {
        if !Path::new(file).exists() {
            panic!("{file} not found: install it with `apt-get install {package}`");
        }
    }
    let php = fs::canonicalize(PHP_HOST_PATH).unwrap_or_else(|e| {
        panic!("{PHP_HOST_PATH} not found ({e}): install it with `apt-get install php-cli`")
    });
    let work = tempfile::Builder::new()
        .prefix("sdp-build-image-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create image work dir: {e}"));
    let rootfs = work.path().join("rootfs");
    build_rootfs(&rootfs);
    copy_into(&rootfs, &php, Path::new("/usr/bin/php"));
    copy_libraries(&rootfs, &php);
    let extension_dir = run(Command::new(&php).args(["-n", "-r", "echo PHP_EXTENSION_DIR;"]));
    let version =
        run(Command::new(&php).args(["-n", "-r", "echo PHP_MAJOR_VERSION.'.'.PHP_MINOR_VERSION;"]));
    let conf_d = format!("/etc/php/{version}/cli/conf.d");
    for extension in BUILD_PHP_EXTENSIONS {
        let module = Path::new(&extension_dir).join(format!("{extension}.so"));
        if !module.is_file() {
            continue;
        }
        copy_into(&rootfs, &module, &module);
        copy_libraries(&rootfs, &module);
        let ini = rootfs
            .join(conf_d.trim_start_matches('/'))
            .join(format!("20-{extension}.ini"));
        fs::create_dir_all(ini.parent().expect("conf.d")).expect("mkdir conf.d");
        fs::write(&ini, format!("extension={extension}.so\n")).expect("write ini");
    }
    let php_ini = format!("/etc/php/{version}/cli/php.ini");
    if Path::new(&php_ini).is_file() {
        copy_into(&rootfs, Path::new(&php_ini), Path::new(&php_ini));
    }
    copy_tree(&rootfs, Path::new("/usr/share/php"));
    copy_into(
        &rootfs,
        Path::new("/usr/bin/composer"),
        Path::new("/usr/bin/composer"),
    );
    for file in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/usr/share/zoneinfo/UTC",
    ] {
        if Path::new(file).is_file() {
            copy_into(&rootfs, Path::new(file), Path::new(file));
        }
    }
    import_rootfs(
        &rootfs,
        BUILD_IMAGE,
        "ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "CMD [\"/bin/sh\"]",
    );
    tracing::info!(image = BUILD_IMAGE, "imported build test image");
    BUILD_IMAGE.to_owned()
}

/// Copies the host directory `dir` (following symlinks) to the same path
/// under `root`.
fn copy_tree(root: &Path, dir: &Path) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            copy_tree(root, &path);
        } else if path.is_file() {
            copy_into(root, &path, &path);
        }
    }
}

/// Copies host file `from` (following symlinks) to `root` + `to`, keeping
/// its mode.
fn copy_into(root: &Path, from: &Path, to: &Path) {
    let target = root.join(to.strip_prefix("/").unwrap_or(to));
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    if target.exists() {
        return;
    }
    fs::copy(from, &target)
        .unwrap_or_else(|e| panic!("cannot copy {} into the rootfs: {e}", from.display()));
}

fn build_rootfs(root: &Path) {
    let mkdir = |rel: &str, mode: u32| {
        let dir = root.join(rel);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
    };
    for dir in [
        "bin", "etc", "root", "proc", "sys", "dev", "usr/bin", "sbin", "var",
    ] {
        mkdir(dir, 0o755);
    }
    mkdir("tmp", 0o1777);
    let busybox = root.join("bin/busybox");
    fs::copy(BUSYBOX_HOST_PATH, &busybox)
        .unwrap_or_else(|e| panic!("cannot copy {BUSYBOX_HOST_PATH}: {e}"));
    fs::set_permissions(&busybox, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod busybox: {e}"));

    let listed = output(Command::new(BUSYBOX_HOST_PATH).arg("--list"));
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let mut applets: Vec<&str> = listed.lines().map(str::trim).collect();
    applets.extend_from_slice(BASE_APPLETS);
    applets.sort_unstable();
    applets.dedup();
    for applet in applets {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        symlink("busybox", root.join("bin").join(applet))
            .unwrap_or_else(|e| panic!("symlink {applet}: {e}"));
    }
    fs::write(root.join("etc/passwd"), PASSWD).unwrap_or_else(|e| panic!("write passwd: {e}"));
    fs::write(root.join("etc/group"), GROUP).unwrap_or_else(|e| panic!("write group: {e}"));
}

pub(crate) fn require_docker() {
    match Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "docker engine not reachable: {}; start it (e.g. `service docker start`)",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("docker CLI not found ({e}); install docker (apt-get install docker.io)"),
    }
}

pub(crate) fn image_exists(image: &str) -> bool {
    output(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", image]))
        .status
        .success()
}

/// The Go build cache every test's agent shares, so only the first build
/// of a run is cold (Go's cache is safe for concurrent use).
pub fn shared_go_cache() -> std::path::PathBuf {
    std::env::temp_dir().join("sdp-test-go-cache")
}

/// What an agent-micro of a test needs to build and run fixtures offline,
/// as `SDP_AGENT__…` settings: the busybox base image, the build image, the
/// [`shared_go_cache`], http(s) git remotes, and `/healthz` checked for up
/// to 30 s.
pub fn agent_micro_test_env() -> Vec<(&'static str, String)> {
    vec![
        ("SDP_AGENT__FLAVOUR__BASE_IMAGE", ensure_busybox_image()),
        ("SDP_AGENT__BUILD__IMAGE", ensure_build_image()),
        (
            "SDP_AGENT__FLAVOUR__CACHE_DIR",
            shared_go_cache().display().to_string(),
        ),
        ("SDP_AGENT__GIT__ALLOWED_SCHEMES", "https,http".into()),
        ("SDP_AGENT__HEALTH__PATH", "/healthz".into()),
        ("SDP_AGENT__HEALTH__TIMEOUT_SECS", "30".into()),
    ]
}

/// The gateway IP of Docker's default `bridge` network: the host's address
/// as seen from containers.
///
/// Taken from `docker network inspect bridge` (IPAM gateway); when the
/// engine leaves that empty (common for the default bridge), from the
/// bridge interface's address (`ip -4 addr show dev docker0`), and last
/// from the first host address of the bridge subnet.
pub fn docker_bridge_gateway() -> String {
    let inspect = |format: &str| {
        run(Command::new("docker").args(["network", "inspect", "bridge", "--format", format]))
    };
    let ipam = inspect("{{range .IPAM.Config}}{{.Gateway}} {{end}}");
    if let Some(ip) = first_ipv4(ipam.split_whitespace()) {
        return ip.to_string();
    }
    let ifname = inspect(r#"{{index .Options "com.docker.network.bridge.name"}}"#);
    let ifname = if ifname.is_empty() || ifname.contains('<') {
        "docker0".to_owned()
    } else {
        ifname
    };
    let addr = output(Command::new("ip").args(["-4", "-o", "addr", "show", "dev", &ifname]));
    let addr = String::from_utf8_lossy(&addr.stdout).into_owned();
    let inet = addr
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .map(|cidr| cidr.split('/').next().unwrap_or(cidr));
    if let Some(ip) = first_ipv4(inet.into_iter()) {
        return ip.to_string();
    }
    let subnets = inspect("{{range .IPAM.Config}}{{.Subnet}} {{end}}");
    let network = first_ipv4(
        subnets
            .split_whitespace()
            .map(|c| c.split('/').next().unwrap_or(c)),
    );
    match network {
        Some(net) => std::net::Ipv4Addr::from(u32::from(net) + 1).to_string(),
        None => panic!(
            "cannot find the docker bridge gateway (IPAM {ipam:?}, `ip addr` {addr:?}, subnets {subnets:?})"
        ),
    }
}

fn first_ipv4<'a>(mut words: impl Iterator<Item = &'a str>) -> Option<std::net::Ipv4Addr> {
    words.find_map(|w| w.parse().ok())
}

/// Ids of containers (running or not) carrying label `key=value`.
pub fn containers_with_label(key: &str, value: &str) -> Vec<String> {
    let filter = format!("label={key}={value}");
    run(Command::new("docker").args(["ps", "-aq", "--no-trunc", "--filter", &filter]))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Force-removes a container (and its volumes); a missing one is fine.
pub fn docker_rm(id: &str) {
    let _ = output(Command::new("docker").args(["rm", "-f", "-v", id]));
}

/// Creates (does not start) a container called `name` from `image` with
/// the labels given, as something other than SDP would; returns its id.
pub fn docker_create_named(name: &str, image: &str, labels: &[(&str, &str)]) -> String {
    let mut command = Command::new("docker");
    command.args(["create", "--name", name]);
    for (key, value) in labels {
        command.args(["--label", &format!("{key}={value}")]);
    }
    run(command.args([image, "true"])).trim().to_owned()
}

/// Where a container's ports are published on the host, as `ip:port`.
pub fn published_addresses(id: &str) -> Vec<String> {
    let format = "{{range $p, $b := .NetworkSettings.Ports}}{{range $b}}{{.HostIp}}:{{.HostPort}} {{end}}{{end}}";
    run(Command::new("docker").args(["inspect", "--type", "container", "--format", format, id]))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Whether a container with this id or name exists.
pub fn docker_exists(id: &str) -> bool {
    output(Command::new("docker").args(["inspect", "--type", "container", id]))
        .status
        .success()
}

/// Drop guard: force-removes (with volumes) every container labelled
/// `key=value` (for each pair it guards).
#[derive(Debug)]
pub struct ContainerCleanup {
    labels: Vec<(String, String)>,
}

impl ContainerCleanup {
    /// Guards containers labelled `label_key=label_value`.
    pub fn new(label_key: &str, label_value: &str) -> ContainerCleanup {
        ContainerCleanup {
            labels: vec![(label_key.to_owned(), label_value.to_owned())],
        }
    }

    /// Guards what the agent `agent_id` runs: its deployed containers
    /// (`sdp.agent`) and its build containers (`sdp.build.agent`), which
    /// outlive an agent that was killed.
    pub fn agent(agent_id: &str) -> ContainerCleanup {
        ContainerCleanup {
            labels: vec![
                ("sdp.agent".to_owned(), agent_id.to_owned()),
                ("sdp.build.agent".to_owned(), agent_id.to_owned()),
            ],
        }
    }

    /// Ids of the containers currently matching.
    pub fn containers(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .labels
            .iter()
            .flat_map(|(key, value)| containers_with_label(key, value))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Removes the matching containers now (also done on drop).
    pub fn remove_all(&self) {
        let ids = self.containers();
        if ids.is_empty() {
            return;
        }
        let out = output(Command::new("docker").args(["rm", "-f", "-v"]).args(&ids));
        if !out.status.success() {
            tracing::warn!(
                stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                "container cleanup failed"
            );
        }
    }
}

impl Drop for ContainerCleanup {
    fn drop(&mut self) {
        // Never panic in drop (it may run during a test's unwinding).
        let mut ids = Vec::new();
        for (key, value) in &self.labels {
            let filter = format!("label={key}={value}");
            if let Ok(out) = Command::new("docker")
                .args(["ps", "-aq", "--no-trunc", "--filter", &filter])
                .stdin(Stdio::null())
                .output()
                && out.status.success()
            {
                ids.extend(
                    String::from_utf8_lossy(&out.stdout)
                        .split_whitespace()
                        .map(str::to_owned),
                );
            }
        }
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f", "-v"])
                .args(&ids)
                .stdin(Stdio::null())
                .output();
        }
        // Named volumes with the labels (sandbox resources' data).
        for (key, value) in &self.labels {
            let filter = format!("label={key}={value}");
            if let Ok(out) = Command::new("docker")
                .args(["volume", "ls", "-q", "--filter", &filter])
                .stdin(Stdio::null())
                .output()
                && out.status.success()
            {
                let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
                if !names.is_empty() {
                    let _ = Command::new("docker")
                        .args(["volume", "rm", "-f"])
                        .args(&names)
                        .stdin(Stdio::null())
                        .output();
                }
            }
        }
    }
}
