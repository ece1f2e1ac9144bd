//! The Go toolchains of an agent (docs/GO_TOOLCHAINS.md) and the one a
//! build uses. Found on the host: `go.toolchains` of the agent config if
//! set, else every `/usr/lib/go-1.*` (Debian's `golang-1.N-go`) and the
//! GOROOT of the `go` on the agent's `PATH`; `build.goroot` (the older
//! key) is one more. Each build takes the oldest toolchain its `go.mod`
//! allows ([`select`]); none that does fails the deployment before it
//! builds, naming the package to install.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::config::{BuildConfig, GoConfig};
use crate::error::DeployError;
use crate::go_version::{GoModAsks, GoVersion};

/// Why a directory is not a usable Go toolchain, or why the toolchains a
/// config names cannot be used. The messages are for people (config
/// checks, build logs, heartbeats).
#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    #[error("{}/bin/go does not exist", goroot.display())]
    NoGoBinary { goroot: PathBuf },
    /// The GOROOT cannot be resolved (gone, unreadable).
    #[error("{}: {error}", goroot.display())]
    Resolve {
        goroot: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot run {} env GOVERSION: {error}", go.display())]
    RunGo { go: PathBuf, error: std::io::Error },
    #[error("{} env GOVERSION failed ({status}) and there is no VERSION file", go.display())]
    GoVersionFailed {
        go: PathBuf,
        status: std::process::ExitStatus,
    },
    #[error("{}: {name:?} is not a Go release version", goroot.display())]
    NotARelease { goroot: PathBuf, name: String },
    /// A toolchain the config names (`go.toolchains`, `build.goroot`).
    #[error("{key}: {} is not a Go toolchain: {reason}", goroot.display())]
    Configured {
        key: &'static str,
        goroot: PathBuf,
        reason: Box<ToolchainError>,
    },
}

/// One Go installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoToolchain {
    /// Its GOROOT (`<goroot>/bin/go`), symlinks resolved.
    pub goroot: PathBuf,
    pub version: GoVersion,
    /// As Go names it: `go1.22.12`.
    pub name: String,
}

impl GoToolchain {
    /// How heartbeats and build logs name it: `go 1.22.12`.
    pub fn label(&self) -> String {
        format!("go {}", self.version)
    }

    /// Reads the toolchain at `goroot`: its `VERSION` file's first line, or
    /// else what `<goroot>/bin/go env GOVERSION` prints. The error says why
    /// it is not a Go toolchain.
    pub fn at(goroot: &Path) -> Result<GoToolchain, ToolchainError> {
        let go = goroot.join("bin").join("go");
        if !go.is_file() {
            return Err(ToolchainError::NoGoBinary {
                goroot: goroot.to_path_buf(),
            });
        }
        let goroot = std::fs::canonicalize(goroot).map_err(|error| ToolchainError::Resolve {
            goroot: goroot.to_path_buf(),
            error,
        })?;
        let from_file = std::fs::read_to_string(goroot.join("VERSION"))
            .ok()
            .and_then(|text| text.lines().next().map(str::trim).map(str::to_owned))
            .filter(|line| GoVersion::parse(line).is_some());
        let name = match from_file {
            Some(name) => name,
            None => go_env_goversion(&go)?,
        };
        let Some(version) = GoVersion::parse(&name) else {
            return Err(ToolchainError::NotARelease { goroot, name });
        };
        Ok(GoToolchain {
            goroot,
            version,
            name,
        })
    }
}

/// `<go> env GOVERSION`, run directly (no shell), never downloading
/// another toolchain.
fn go_env_goversion(go: &Path) -> Result<String, ToolchainError> {
    let output = std::process::Command::new(go)
        .args(["env", "GOVERSION"])
        .env("GOTOOLCHAIN", "local")
        .env("GOENV", "off")
        .env("GOFLAGS", "")
        .env("GOTELEMETRY", "off")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|error| ToolchainError::RunGo {
            go: go.to_path_buf(),
            error,
        })?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || text.is_empty() {
        return Err(ToolchainError::GoVersionFailed {
            go: go.to_path_buf(),
            status: output.status,
        });
    }
    Ok(text)
}

/// Where the default search looks: the `go` on `path` (the agent's
/// `PATH`) and `<lib_dir>/go-1.*` (`/usr/lib`).
#[derive(Clone, Debug)]
pub struct Search<'a> {
    pub path: &'a OsStr,
    pub lib_dir: &'a Path,
}

/// The agent's toolchains, oldest first, one per version (the first found
/// of a version is kept). A directory the config names that is not a Go
/// toolchain is an error naming its key and path; the default search
/// skips what is not one. An empty list is no error here (a build then
/// fails naming the package to install).
pub fn find(
    go: &GoConfig,
    build: &BuildConfig,
    search: &Search<'_>,
) -> Result<Vec<GoToolchain>, ToolchainError> {
    let mut found: Vec<GoToolchain> = Vec::new();
    let mut add = |toolchain: GoToolchain| {
        if !found.iter().any(|t| t.version == toolchain.version) {
            found.push(toolchain);
        }
    };
    let configured: Vec<(&str, &PathBuf)> = go
        .toolchains
        .iter()
        .flatten()
        .map(|goroot| ("go.toolchains", goroot))
        .chain(build.goroot.iter().map(|goroot| ("build.goroot", goroot)))
        .collect();
    if configured.is_empty() {
        for goroot in default_goroots(search) {
            if let Ok(toolchain) = GoToolchain::at(&goroot) {
                add(toolchain);
            }
        }
    } else {
        for (key, goroot) in configured {
            let toolchain =
                GoToolchain::at(goroot).map_err(|reason| ToolchainError::Configured {
                    key,
                    goroot: goroot.clone(),
                    reason: Box::new(reason),
                })?;
            add(toolchain);
        }
    }
    found.sort_by_key(|t| t.version);
    Ok(found)
}

/// `<lib_dir>/go-1.*` (sorted), then the GOROOT of the first `go` on the
/// search path (`<goroot>/bin/go`, symlinks resolved).
fn default_goroots(search: &Search<'_>) -> Vec<PathBuf> {
    let mut goroots: Vec<PathBuf> = std::fs::read_dir(search.lib_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("go-1."))
        .map(|entry| entry.path())
        .collect();
    goroots.sort();
    let on_path = std::env::split_paths(search.path)
        .map(|dir| dir.join("go"))
        .find(|go| go.is_file())
        .and_then(|go| std::fs::canonicalize(go).ok())
        .and_then(|go| go.parent()?.parent().map(Path::to_path_buf));
    goroots.extend(on_path);
    goroots
}

/// Heartbeats' list: `go 1.19.8`, `go 1.22.12`.
pub fn labels(toolchains: &[GoToolchain]) -> Vec<String> {
    toolchains.iter().map(GoToolchain::label).collect()
}

/// The toolchain a build of a module with `go_mod` (its text; `None`: no
/// `go.mod`) uses: the oldest of `toolchains` (oldest first) that is at
/// least what both its `go` and `toolchain` lines ask. Also returns the
/// build log's line naming it: `go 1.22.12 (go.mod asks >= 1.22)`.
pub fn select<'a>(
    toolchains: &'a [GoToolchain],
    go_mod: Option<&str>,
) -> Result<(&'a GoToolchain, String), DeployError> {
    let Some(text) = go_mod else {
        return match toolchains.first() {
            Some(oldest) => Ok((
                oldest,
                format!("{} (no go.mod: the oldest toolchain)", oldest.label()),
            )),
            None => Err(DeployError::GoToolchainMissing {
                asked: "any Go (the repository has no go.mod)".to_owned(),
                present: present(toolchains),
                package: "golang-go".to_owned(),
            }),
        };
    };
    let asks = GoModAsks::parse(text);
    let minimum = asks.minimum();
    match toolchains.iter().find(|t| t.version >= minimum) {
        Some(toolchain) => {
            let line = format!("{} (go.mod asks {})", toolchain.label(), asks.describe());
            Ok((toolchain, line))
        }
        None => Err(DeployError::GoToolchainMissing {
            asked: match &asks.toolchain {
                Some((name, version)) if *version == minimum => {
                    format!("Go >= {minimum} (toolchain {name})")
                }
                _ => format!("Go >= {minimum}"),
            },
            present: present(toolchains),
            package: minimum.debian_package(),
        }),
    }
}

/// `go 1.19.8, go 1.22.12`, or that there is none.
fn present(toolchains: &[GoToolchain]) -> String {
    if toolchains.is_empty() {
        "no Go toolchain".to_owned()
    } else {
        labels(toolchains).join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toolchain(version: &str) -> GoToolchain {
        GoToolchain {
            goroot: PathBuf::from(format!("/usr/lib/go-{version}")),
            version: GoVersion::parse(version).expect("version"),
            name: format!("go{version}"),
        }
    }

    fn agent() -> Vec<GoToolchain> {
        vec![
            toolchain("1.19.8"),
            toolchain("1.22.12"),
            toolchain("1.23.4"),
        ]
    }

    fn picked(go_mod: Option<&str>) -> (String, String) {
        let toolchains = agent();
        let (toolchain, line) = select(&toolchains, go_mod).expect("a toolchain fits");
        (toolchain.name.clone(), line)
    }

    #[test]
    fn the_oldest_toolchain_that_satisfies_go_mod_is_picked() {
        assert_eq!(
            picked(Some("module m\n\ngo 1.19\n")),
            ("go1.19.8".into(), "go 1.19.8 (go.mod asks >= 1.19)".into())
        );
        assert_eq!(
            picked(Some("module m\n\ngo 1.22\n")),
            (
                "go1.22.12".into(),
                "go 1.22.12 (go.mod asks >= 1.22)".into()
            )
        );
        assert_eq!(
            picked(Some("module m\ngo 1.21\n")).0,
            "go1.22.12",
            "1.21 is not present: the next one up"
        );
        assert_eq!(picked(Some("module m\ngo 1.9\n")).0, "go1.19.8");
        assert_eq!(
            picked(Some("module m\ngo 1.22\ntoolchain go1.22.6\n")),
            (
                "go1.22.12".into(),
                "go 1.22.12 (go.mod asks >= 1.22.6: toolchain go1.22.6)".into()
            )
        );
        assert_eq!(
            picked(Some("module m\ngo 1.22.3\ntoolchain go1.22.20\n")).0,
            "go1.23.4",
            "1.22.12 < 1.22.20"
        );
    }

    #[test]
    fn no_go_mod_or_no_go_line_takes_the_oldest() {
        assert_eq!(
            picked(None),
            (
                "go1.19.8".into(),
                "go 1.19.8 (no go.mod: the oldest toolchain)".into()
            )
        );
        assert_eq!(
            picked(Some("module m\n")),
            (
                "go1.19.8".into(),
                "go 1.19.8 (go.mod asks no go line, so >= 1.16)".into()
            )
        );
    }

    #[test]
    fn none_that_satisfies_names_the_ask_what_is_present_and_the_package() {
        let toolchains = agent();
        let err = select(&toolchains, Some("module m\n\ngo 1.24\n")).expect_err("too new");
        assert_eq!(
            err.to_string(),
            "go.mod asks for Go >= 1.24 but this agent has go 1.19.8, go 1.22.12, go 1.23.4: \
             install golang-1.24-go (Debian backports) or add its GOROOT to go.toolchains"
        );
        let err = select(&toolchains, Some("module m\ngo 1.23\ntoolchain go1.23.9\n"))
            .expect_err("too new");
        let text = err.to_string();
        assert!(
            text.starts_with("go.mod asks for Go >= 1.23.9 (toolchain go1.23.9) but")
                && text.contains("golang-1.23-go"),
            "{text}"
        );
        let err = select(&[], Some("module m\ngo 1.19\n")).expect_err("none");
        assert!(
            err.to_string()
                .contains("but this agent has no Go toolchain"),
            "{err}"
        );
        assert!(select(&[], None).is_err());
    }

    #[test]
    fn configured_directories_that_are_not_toolchains_are_named() {
        let dir = tempfile::tempdir().expect("dir");
        let go = GoConfig {
            toolchains: Some(vec![dir.path().to_path_buf()]),
            ..GoConfig::default()
        };
        let search = Search {
            path: OsStr::new(""),
            lib_dir: dir.path(),
        };
        let err = find(&go, &BuildConfig::default(), &search)
            .expect_err("not a toolchain")
            .to_string();
        assert!(
            err.starts_with(&format!(
                "go.toolchains: {} is not a Go toolchain",
                dir.path().display()
            )),
            "{err}"
        );
        let build = BuildConfig {
            goroot: Some(dir.path().join("nothing")),
            ..BuildConfig::default()
        };
        let err = find(&GoConfig::default(), &build, &search)
            .expect_err("not a toolchain")
            .to_string();
        assert!(err.starts_with("build.goroot: "), "{err}");
    }

    /// A fake GOROOT: `bin/go` (a script printing `version` for `go env
    /// GOVERSION`) and, if given, a `VERSION` file.
    fn fake_goroot(root: &Path, name: &str, version_file: Option<&str>, env_says: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let goroot = root.join(name);
        std::fs::create_dir_all(goroot.join("bin")).expect("bin");
        let go = goroot.join("bin").join("go");
        std::fs::write(&go, format!("#!/bin/sh\necho {env_says}\n")).expect("go");
        std::fs::set_permissions(&go, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        if let Some(text) = version_file {
            std::fs::write(goroot.join("VERSION"), text).expect("VERSION");
        }
        goroot
    }

    #[test]
    fn the_default_search_finds_lib_dir_toolchains_and_the_go_on_path() {
        let root = tempfile::tempdir().expect("dir");
        let lib = root.path().join("lib");
        fake_goroot(
            &lib,
            "go-1.22",
            Some("go1.22.12\ntime 2025-01-31\n"),
            "ignored",
        );
        // No VERSION file: `go env GOVERSION` says.
        fake_goroot(&lib, "go-1.19", None, "go1.19.8");
        // Same version again: kept once.
        fake_goroot(&lib, "go-1.19-copy", Some("go1.19.8\n"), "");
        std::fs::create_dir_all(lib.join("go-1.20")).expect("not a toolchain: skipped");
        let usr_local = fake_goroot(root.path(), "usr-local-go", Some("go1.23.1"), "");
        let path = std::env::join_paths([root.path().join("nowhere"), usr_local.join("bin")])
            .expect("path");
        let search = Search {
            path: &path,
            lib_dir: &lib,
        };
        let found = find(&GoConfig::default(), &BuildConfig::default(), &search).expect("found");
        assert_eq!(
            labels(&found),
            ["go 1.19.8", "go 1.22.12", "go 1.23.1"],
            "{found:#?}"
        );
        assert!(found[0].goroot.ends_with("go-1.19"), "{found:#?}");
        // Configured: only those (and build.goroot), not the default search.
        let go = GoConfig {
            toolchains: Some(vec![lib.join("go-1.22")]),
            ..GoConfig::default()
        };
        let build = BuildConfig {
            goroot: Some(usr_local.clone()),
            ..BuildConfig::default()
        };
        let found = find(&go, &build, &search).expect("found");
        assert_eq!(labels(&found), ["go 1.22.12", "go 1.23.1"]);
        let found = find(&GoConfig::default(), &build, &search).expect("found");
        assert_eq!(
            labels(&found),
            ["go 1.23.1"],
            "build.goroot alone, as before"
        );
    }
}
