//! The workspace's `rust-version` tells the truth: every member inherits
//! it, it is at least what the code's own syntax needs (let-chains: 1.88,
//! found by scanning the sources), and at least every dependency's
//! declared `rust-version` in the resolved graph for this platform (from
//! `cargo metadata`). Only one toolchain is on the test machines, so this
//! reads declarations instead of compiling with the oldest Rust.
//!
//! It cannot catch std APIs or language features newer than the declared
//! version other than let-chains, nor a dependency that needs a newer Rust
//! without declaring it. Std APIs are clippy's `incompatible_msrv` lint's,
//! which `scripts/test.sh` runs (it knows the version because every member
//! inherits `rust-version`: the first check here).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// `1.88` → `[1, 88, 0]`.
fn version(text: &str) -> [u64; 3] {
    let mut parts = text.split('.').map(|p| {
        p.parse::<u64>()
            .unwrap_or_else(|_| panic!("version {text:?}"))
    });
    [(); 3].map(|()| parts.next().unwrap_or(0))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let host = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("host triple");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", &host])
        .current_dir(repo_root())
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("metadata JSON")
}

/// Whether any workspace source uses a let-chain (`&& let` in a
/// condition). Comment lines are skipped.
fn uses_let_chains(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            return name != "target"
                && !name.to_string_lossy().starts_with('.')
                && uses_let_chains(&path);
        }
        path.extension().is_some_and(|e| e == "rs")
            && std::fs::read_to_string(&path).is_ok_and(|text| {
                text.lines().any(|line| {
                    let line = line.trim_start();
                    !line.starts_with("//")
                        && (line.starts_with("&& let ") || line.contains(" && let "))
                })
            })
    })
}

#[test]
fn declared_rust_version_covers_the_code_and_every_dependency() {
    let metadata = metadata();
    let packages = metadata["packages"].as_array().expect("packages");
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // Only what this platform's build resolves (normal, build and dev).
    let resolved: Vec<&str> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();

    let mut declared = None;
    for package in packages {
        let id = package["id"].as_str().unwrap_or_default();
        if !members.contains(&id) {
            continue;
        }
        let name = &package["name"];
        let Some(rust_version) = package["rust_version"].as_str() else {
            panic!("{name} has no rust-version: add `rust-version.workspace = true`");
        };
        match declared {
            None => declared = Some(rust_version),
            Some(d) => assert_eq!(d, rust_version, "{name}: one rust-version for all"),
        }
    }
    let declared = declared.expect("workspace members");

    if uses_let_chains(&repo_root()) {
        assert!(
            version(declared) >= version("1.88"),
            "the code uses let-chains (Rust 1.88), the workspace declares {declared}"
        );
    }

    let mut too_new: Vec<String> = packages
        .iter()
        .filter(|p| {
            let id = p["id"].as_str().unwrap_or_default();
            resolved.contains(&id) && !members.contains(&id)
        })
        .filter_map(|p| {
            let needs = p["rust_version"].as_str()?;
            (version(needs).cmp(&version(declared)) == Ordering::Greater).then(|| {
                let field = |key: &str| p[key].as_str().unwrap_or_default().to_owned();
                format!("{} {} needs {needs}", field("name"), field("version"))
            })
        })
        .collect();
    too_new.sort();
    assert!(
        too_new.is_empty(),
        "the workspace declares rust-version {declared}, but: {too_new:#?}"
    );
}

#[test]
fn versions_compare_by_number() {
    assert!(version("1.89") > version("1.88.0"));
    assert!(version("1.100") > version("1.89"));
    assert_eq!(version("1.88"), version("1.88.0"));
}
