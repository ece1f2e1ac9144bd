//! The images sandbox resources run from (postgres, mariadb, redis), made
//! the way an installation makes them: `packaging/images/resource-rootfs.sh`
//! cuts the rootfs out of the host's Debian packages, `docker import`
//! turns it into an image. Cached by tag like the other base images.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::cmd::{output, run};
use crate::docker::{image_exists, require_docker};
use crate::util::unique_id;

/// The engines a sandbox resource can be.
pub const RESOURCE_ENGINES: [&str; 3] = ["postgres", "mariadb", "redis"];

/// The test image of `engine`: `sdp-test-<engine>:1`.
pub fn resource_image_name(engine: &str) -> String {
    format!("sdp-test-{engine}:1")
}

/// Idempotently makes the image of `engine` (one of [`RESOURCE_ENGINES`])
/// and returns its name. Imports under a unique temporary tag first, so a
/// process importing at the same time never sees a half-made image.
///
/// # Panics
/// If docker, the engine's Debian packages (see `scripts/lib/deps.sh`) or
/// the script fail.
pub fn ensure_resource_image(engine: &str) -> String {
    static LOCK: Mutex<()> = Mutex::new(());
    assert!(
        RESOURCE_ENGINES.contains(&engine),
        "unknown resource engine {engine}"
    );
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    require_docker();
    let image = resource_image_name(engine);
    if image_exists(&image) {
        return image;
    }
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging/images/resource-rootfs.sh");
    let work = tempfile::Builder::new()
        .prefix("sdp-resource-image-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create image work dir: {e}"));
    let tarball = work.path().join("rootfs.tar");
    let file = std::fs::File::create(&tarball)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", tarball.display()));
    let made = Command::new("bash")
        .arg(&script)
        .arg(engine)
        .stdin(Stdio::null())
        .stdout(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        made.status.success(),
        "{} {engine} failed (install the engine's Debian packages: scripts/lib/deps.sh): {}",
        script.display(),
        String::from_utf8_lossy(&made.stderr)
    );
    let temp_tag = format!("sdp-test-{engine}:{}", unique_id("tmp"));
    run(Command::new("docker")
        .args([
            "import",
            "--change",
            "ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "--change",
            "USER 999:999",
            "--change",
            "CMD [\"/usr/local/bin/sdp-resource\"]",
        ])
        .arg(&tarball)
        .arg(&temp_tag));
    run(Command::new("docker").args(["tag", &temp_tag, &image]));
    let _ = output(Command::new("docker").args(["rmi", &temp_tag]));
    tracing::info!(%image, "imported resource test image");
    image
}
