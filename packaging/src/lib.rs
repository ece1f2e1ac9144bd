//! sdp-packaging: test-only crate for the release bundle. The packaging
//! sources live beside it (`systemd/`, `nginx/`, `install.sh`); the tests in
//! `tests/` drive `scripts/build.sh`, the bundle's `install.sh` and
//! `scripts/deploy.sh` as processes, on real parts (sha256sum, ldd,
//! systemd-analyze, sshd, nginx). This library holds what they share:
//!
//! - [`build_bundle`]: `scripts/build.sh --profile dev --no-build` into a
//!   directory (the debug binaries the test run already has), with an
//!   optional `SDP_VERSION`;
//! - [`extract`]: unpack a tarball, return the bundle directory;
//! - [`tree`]: a snapshot of a directory tree (type, mode, mtime, content
//!   hash, link target) to prove a run changed nothing;
//! - [`run`] / [`run_ok`]: a command with its output, never a shell string.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The workspace root (this crate is `packaging/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The cargo target dir the running test binary was built into
/// (`<target>/debug/deps/<test>` → `<target>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("test binary path: {e}"));
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("no target dir above {}", exe.display()))
}

/// A debug binary of the workspace (`cargo build --workspace --bins` first).
pub fn debug_binary(name: &str) -> PathBuf {
    let path = target_dir().join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// The workspace version (`[workspace.package] version`).
pub const WORKSPACE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `uname -m`, as in the bundle name.
pub fn arch() -> String {
    let out = run_ok(Command::new("uname").arg("-m"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `scripts/build.sh --profile dev --no-build --out OUT` (with
/// `SDP_VERSION=version` if given); returns the tarball.
pub fn build_bundle(out: &Path, version: Option<&str>) -> PathBuf {
    // Fails early with the right hint when the binaries are not built.
    for bin in [
        "sdp-control-plane",
        "sdp-agent-micro",
        "sdp-agent-gateway",
        "sdp",
    ] {
        debug_binary(bin);
    }
    let mut cmd = Command::new(repo_root().join("scripts/build.sh"));
    cmd.args(["--profile", "dev", "--no-build", "--out"])
        .arg(out)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("SDP_VERSION");
    if let Some(version) = version {
        cmd.env("SDP_VERSION", version);
    }
    run_ok(&mut cmd);
    let version = version.unwrap_or(WORKSPACE_VERSION);
    let tarball = out.join(format!("sdp-{version}-linux-{}.tar.gz", arch()));
    assert!(tarball.is_file(), "{} was not made", tarball.display());
    tarball
}

/// Unpacks `tarball` into `into`; returns the bundle's top directory.
pub fn extract(tarball: &Path, into: &Path) -> PathBuf {
    run_ok(
        Command::new("tar")
            .arg("-xzf")
            .arg(tarball)
            .arg("-C")
            .arg(into),
    );
    let name = tarball
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.gz"))
        .unwrap_or_else(|| panic!("not a .tar.gz: {}", tarball.display()));
    into.join(name)
}

/// Runs `cmd` with stdin closed; returns its output whatever the status.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs `cmd`; panics with its output unless it exits 0.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// stdout and stderr of an output, as text.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every entry under `root` (relative path → description): files with
/// mode, mtime, ctime and SHA-256 (by `sha256sum`: hashing hundreds of MB
/// of debug binaries in an unoptimised test build takes too long),
/// symlinks with their target, directories with mode and mtime. Two equal
/// snapshots mean nothing was written in between.
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut files = Vec::new();
    walk(root, root, &mut out, &mut files);
    for chunk in files.chunks(200) {
        let listing = run_ok(Command::new("sha256sum").arg("--").args(chunk));
        for line in String::from_utf8_lossy(&listing.stdout).lines() {
            let (hash, path) = line
                .split_once("  ")
                .unwrap_or_else(|| panic!("sha256sum: {line}"));
            let rel = Path::new(path)
                .strip_prefix(root)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            if let Some(entry) = out.get_mut(&rel) {
                entry.push_str(" sha256 ");
                entry.push_str(hash);
            }
        }
    }
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let meta = std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
            out.insert(rel, format!("link {}", target.display()));
        } else if meta.is_dir() {
            out.insert(
                rel,
                format!("dir {mode:o} mtime {}.{}", meta.mtime(), meta.mtime_nsec()),
            );
            walk(root, &path, out, files);
        } else {
            out.insert(
                rel,
                format!(
                    "file {mode:o} mtime {}.{} ctime {}.{}",
                    meta.mtime(),
                    meta.mtime_nsec(),
                    meta.ctime(),
                    meta.ctime_nsec()
                ),
            );
            files.push(path);
        }
    }
}

/// A temporary directory that removes itself (re-exported for tests).
pub use tempfile::TempDir;
