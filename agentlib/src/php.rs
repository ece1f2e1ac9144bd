//! [`PhpFlavour`] (kind `gateway`): `composer install --no-dev` on the host
//! when the checkout has a `composer.json` and composer is installed (else a
//! warning), then `php -S` in a PHP base image with the checkout at `/app`
//! and the sandbox's route table at `/etc/sdp/routes.json`.
//!
//! Composer runs offline: packages come from a committed `vendor/`,
//! composer's cache, or `composer.repositories` of the agent config
//! (written to `COMPOSER_HOME/config.json` with packagist.org disabled);
//! without a `composer`-type repository its network is off
//! (`COMPOSER_DISABLE_NETWORK=1`). See docs/OFFLINE_BUILDS.md.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use sdp_bus::ServiceSettings;
use tokio::process::Command;

use crate::config::{ComposerConfig, ComposerRepositoryKind};
use crate::error::DeployError;
use crate::events::EventSink;
use crate::flavour::{BuildContext, ContainerSpec, Flavour, run_capturing};

/// Mount point of the checkout in gateway containers.
pub const PHP_SOURCE_MOUNT: &str = "/app";
/// Mount point of the sandbox's route table in gateway containers.
pub const ROUTES_FILE: &str = "/etc/sdp/routes.json";
const COMPOSER_ARGS: [&str; 4] = ["install", "--no-dev", "--no-interaction", "--no-progress"];
/// Lines of a failed install's stderr kept to explain the failure.
const STDERR_KEPT: usize = 200;

#[derive(Clone, Debug)]
pub struct PhpFlavour {
    /// `PATH` for composer (the agent's own, captured at construction);
    /// composer is looked up on it.
    pub path: OsString,
}

impl Default for PhpFlavour {
    fn default() -> Self {
        Self {
            path: crate::flavour::agent_path(),
        }
    }
}

impl PhpFlavour {
    /// The first executable `composer` on [`Self::path`].
    fn composer(&self) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        std::env::split_paths(&self.path)
            .map(|dir| dir.join("composer"))
            .find(|candidate| {
                std::fs::metadata(candidate)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    }

    fn command(&self, composer: &Path, ctx: &BuildContext) -> Command {
        let cache = ctx.cache_dir.join("composer");
        let mut command = Command::new(composer);
        command
            .args(COMPOSER_ARGS)
            .current_dir(&ctx.worktree)
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", ctx.data_dir.join("home"))
            .env("COMPOSER_HOME", composer_home(&ctx.data_dir))
            .env("COMPOSER_CACHE_DIR", &cache)
            .env("COMPOSER_NO_INTERACTION", "1");
        if !needs_network(&ctx.composer) {
            command.env("COMPOSER_DISABLE_NETWORK", "1");
        }
        command
    }
}

/// Composer's home (its global `config.json`), the agent's own.
fn composer_home(data_dir: &Path) -> PathBuf {
    data_dir.join("composer-home")
}

/// Whether a configured repository is reached over the network.
fn needs_network(config: &ComposerConfig) -> bool {
    config
        .repositories
        .iter()
        .any(|r| r.kind == ComposerRepositoryKind::Composer && !r.url.trim().starts_with("file:"))
}

/// Composer's global `config.json`: the configured repositories, then
/// packagist.org disabled (composer would try it even with its network
/// "disabled"). Path repositories copy (a symlink out of the checkout would
/// dangle in the container).
pub fn global_config(config: &ComposerConfig) -> serde_json::Value {
    let mut repositories: Vec<serde_json::Value> = config
        .repositories
        .iter()
        .map(|r| {
            let mut repo = serde_json::json!({ "type": r.kind.as_str(), "url": r.url.trim() });
            if r.kind == ComposerRepositoryKind::Path {
                repo["options"] = serde_json::json!({ "symlink": false });
            }
            repo
        })
        .collect();
    repositories.push(serde_json::json!({ "packagist.org": false }));
    serde_json::json!({ "repositories": repositories })
}

/// Whether `composer.json` requires packages (not just `php`, `ext-*`,
/// `lib-*` or composer's own APIs, which need no download).
fn requires_packages(composer_json: &str) -> bool {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(composer_json) else {
        return false;
    };
    value
        .get("require")
        .and_then(|r| r.as_object())
        .is_some_and(|require| {
            require.keys().any(|name| {
                name.contains('/')
                    && !name.starts_with("composer/")
                    && !name.starts_with("ext-")
                    && !name.starts_with("lib-")
            })
        })
}

/// Messages of composer meaning "could not get a package".
fn is_package_failure(stderr: &[String]) -> bool {
    const MARKERS: [&str; 8] = [
        "Network disabled",
        "getaddrinfo",
        "could not be downloaded",
        "Failed to download",
        "could not be found",
        "requirements could not be resolved",
        "No composer.lock",
        "does not exist",
    ];
    stderr
        .iter()
        .any(|line| MARKERS.iter().any(|m| line.contains(m)))
}

/// Writes `value` to `path` through a temporary file and a rename, so a
/// composer starting beside never reads half of it.
async fn write_atomically(path: &Path, value: &serde_json::Value) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    let temporary = path.with_extension(format!("json.{}.tmp", std::process::id()));
    tokio::fs::write(&temporary, text).await?;
    tokio::fs::rename(&temporary, path).await
}

impl PhpFlavour {
    /// The warning for a checkout whose packages composer can get from
    /// nowhere but its cache; `None` if it has them or needs none.
    fn offline_warning(ctx: &BuildContext, composer_json: &str) -> Option<&'static str> {
        (requires_packages(composer_json)
            && !ctx.worktree.join("vendor").is_dir()
            && ctx.composer.repositories.is_empty())
        .then_some(
            "warning: composer.json requires packages but the checkout has no vendor/ and no composer.repositories is configured: composer can only use its cache (agents build without internet); commit vendor/ (with composer.lock) or set composer.repositories in the agent config",
        )
    }
}

impl Flavour for PhpFlavour {
    fn kind(&self) -> &'static str {
        sdp_bus::subject::KIND_GATEWAY
    }

    fn default_base_image(&self) -> &'static str {
        "php:8.3-apache"
    }

    fn container(&self, settings: &ServiceSettings) -> ContainerSpec {
        ContainerSpec {
            default_run_cmd: vec![
                "php".to_owned(),
                "-S".to_owned(),
                format!("0.0.0.0:{}", settings.port),
                format!("{PHP_SOURCE_MOUNT}/index.php"),
            ],
            source_mount: PHP_SOURCE_MOUNT,
            artifact_mount: None,
            routes_file: Some(ROUTES_FILE),
        }
    }

    fn build<'a>(
        &'a self,
        ctx: &'a BuildContext,
        events: &'a mut EventSink,
    ) -> BoxFuture<'a, Result<(), DeployError>> {
        Box::pin(async move {
            let composer_json = ctx.worktree.join("composer.json");
            if !composer_json.is_file() {
                events
                    .system("no composer.json: skipping composer install")
                    .await;
                return Ok(());
            }
            let Some(composer) = self.composer() else {
                events
                    .system(
                        "composer.json found but composer is not installed on this agent: apt-get install composer",
                    )
                    .await;
                return Ok(());
            };
            for dir in [
                ctx.data_dir.join("home"),
                ctx.cache_dir.join("composer"),
                composer_home(&ctx.data_dir),
            ] {
                tokio::fs::create_dir_all(&dir)
                    .await
                    .map_err(|source| DeployError::Io {
                        what: "create the build directories".to_owned(),
                        source,
                    })?;
            }
            let config_file = composer_home(&ctx.data_dir).join("config.json");
            write_atomically(&config_file, &global_config(&ctx.composer))
                .await
                .map_err(|source| DeployError::Io {
                    what: format!("write {}", config_file.display()),
                    source,
                })?;
            let text = tokio::fs::read_to_string(&composer_json)
                .await
                .unwrap_or_default();
            if let Some(warning) = Self::offline_warning(ctx, &text) {
                events.system(warning).await;
            }
            events
                .system(format!("$ composer {}", COMPOSER_ARGS.join(" ")))
                .await;
            match run_capturing(self.command(&composer, ctx), events, STDERR_KEPT).await {
                Ok((status, _)) if status.success() => Ok(()),
                Ok((_, stderr)) if requires_packages(&text) && is_package_failure(&stderr) => {
                    Err(DeployError::ComposerPackagesMissing {
                        configured: !ctx.composer.repositories.is_empty(),
                    })
                }
                Ok((status, _)) => Err(DeployError::BuildExited {
                    tool: "composer install",
                    status: status
                        .code()
                        .map_or_else(|| "killed by a signal".to_owned(), |c| c.to_string()),
                }),
                Err(source) => Err(DeployError::Io {
                    what: "run composer install".to_owned(),
                    source,
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_cmd_uses_the_port() {
        let settings = ServiceSettings {
            port: 9090,
            ..Default::default()
        };
        let spec = PhpFlavour::default().container(&settings);
        assert_eq!(
            spec.default_run_cmd,
            ["php", "-S", "0.0.0.0:9090", "/app/index.php"]
        );
        assert_eq!(spec.routes_file, Some(ROUTES_FILE));
        assert_eq!(spec.artifact_mount, None);
    }

    #[test]
    fn requirements_that_need_a_download() {
        assert!(requires_packages(
            r#"{"require": {"php": ">=8", "acme/hello": "1.0.0"}}"#
        ));
        assert!(!requires_packages(
            r#"{"require": {"php": ">=8", "ext-json": "*"}}"#
        ));
        assert!(!requires_packages(r#"{"require": {}}"#));
        assert!(!requires_packages(r#"{"name": "x/y"}"#));
        assert!(!requires_packages("not json"));
    }

    #[test]
    fn global_config_disables_packagist_and_copies_path_repositories() {
        use crate::config::ComposerRepository;
        let none = global_config(&ComposerConfig::default());
        assert_eq!(
            none,
            serde_json::json!({ "repositories": [{ "packagist.org": false }] })
        );
        let config = ComposerConfig {
            repositories: vec![
                ComposerRepository {
                    kind: ComposerRepositoryKind::Path,
                    url: "/srv/php/*".into(),
                },
                ComposerRepository {
                    kind: ComposerRepositoryKind::Composer,
                    url: "https://satis.internal".into(),
                },
            ],
        };
        assert!(needs_network(&config));
        assert!(!needs_network(&ComposerConfig::default()));
        let value = global_config(&config);
        assert_eq!(value["repositories"][0]["options"]["symlink"], false);
        assert_eq!(value["repositories"][1]["url"], "https://satis.internal");
        assert_eq!(value["repositories"][2]["packagist.org"], false);
    }

    #[test]
    fn composer_is_found_on_the_flavours_path_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let flavour = PhpFlavour {
            path: dir.path().as_os_str().to_owned(),
        };
        assert_eq!(flavour.composer(), None);
        let composer = dir.path().join("composer");
        std::fs::write(&composer, "#!/bin/sh\n").expect("write");
        assert_eq!(flavour.composer(), None, "not executable");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&composer, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(flavour.composer(), Some(composer));
    }
}
