//! [`PhpFlavour`] (kind `gateway`): `composer install --no-dev` in a build
//! container ([`crate::build_container`]) when the checkout has a
//! `composer.json` (else nothing to build), then `php -S` in a PHP base
//! image with the checkout at `/app` and the sandbox's route table at
//! `/etc/sdp/routes.json`. The default command serves `index.php` of the
//! working directory (`working_dir`, else `/app`); `command`, `env` and
//! `working_dir` apply as to any service (see [`crate::service`]).
//!
//! Composer runs offline, as the build user, with `--no-scripts
//! --no-plugins` unless `build.allow_composer_scripts` (then they run, but
//! still inside the container): packages come from a committed `vendor/`,
//! the sandbox's own composer cache, or `composer.repositories` of the
//! agent config (written to the sandbox's `COMPOSER_HOME/config.json` with
//! packagist.org disabled; path and artifact directories mounted
//! read-only); without a `composer`-type repository it has no network.
//! Only the worktree and the sandbox's composer directories are writable:
//! a `vendor-dir` or a `vendor` symlink pointing elsewhere lands in the
//! container's read-only root or its `/tmp`, never on the host. See
//! docs/OFFLINE_BUILDS.md.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use sdp_bus::ServiceSettings;

use crate::build_container::BuildMount;
use crate::config::{ComposerConfig, ComposerRepositoryKind};
use crate::error::DeployError;
use crate::events::EventSink;
use crate::flavour::{BuildContext, ContainerSpec, Flavour, io_err};

/// Mount point of the checkout in gateway containers (and in the build
/// container).
pub const PHP_SOURCE_MOUNT: &str = "/app";
/// Mount point of the sandbox's route table in gateway containers.
pub const ROUTES_FILE: &str = "/etc/sdp/routes.json";
const COMPOSER_ARGS: [&str; 4] = ["install", "--no-dev", "--no-interaction", "--no-progress"];
const NO_SCRIPTS: [&str; 2] = ["--no-scripts", "--no-plugins"];
/// Lines of a failed install's stderr kept to explain the failure.
const STDERR_KEPT: usize = 200;
/// Where the build container sees the sandbox's composer directories.
const COMPOSER_HOME: &str = "/composer/home";
const COMPOSER_CACHE: &str = "/composer/cache";

#[derive(Clone, Debug, Default)]
pub struct PhpFlavour;

impl PhpFlavour {
    /// `composer install`'s argv in the build image.
    fn argv(allow_scripts: bool) -> Vec<String> {
        let mut argv: Vec<String> = ["php", "/usr/bin/composer"]
            .into_iter()
            .chain(COMPOSER_ARGS)
            .map(str::to_owned)
            .collect();
        if !allow_scripts {
            argv.extend(NO_SCRIPTS.map(str::to_owned));
        }
        argv
    }

    fn env(config: &ComposerConfig) -> Vec<String> {
        let mut env = vec![
            "PATH=/usr/local/bin:/usr/bin:/bin".to_owned(),
            "HOME=/tmp".to_owned(),
            format!("COMPOSER_HOME={COMPOSER_HOME}"),
            format!("COMPOSER_CACHE_DIR={COMPOSER_CACHE}"),
            "COMPOSER_NO_INTERACTION=1".to_owned(),
        ];
        if !needs_network(config) {
            env.push("COMPOSER_DISABLE_NETWORK=1".to_owned());
        }
        env
    }

    /// The configured path and artifact repositories (and `file:///`
    /// composer repositories), read-only at the same paths.
    fn repository_mounts(config: &ComposerConfig) -> Vec<BuildMount> {
        let mut mounts = Vec::new();
        for repo in &config.repositories {
            let url = repo.url.trim();
            let dir = match repo.kind {
                ComposerRepositoryKind::Path => {
                    // A glob (`/srv/packages/*`): its fixed part.
                    let fixed: PathBuf = Path::new(url)
                        .components()
                        .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
                        .collect();
                    fixed
                }
                ComposerRepositoryKind::Artifact => PathBuf::from(url),
                ComposerRepositoryKind::Composer => match url.strip_prefix("file://") {
                    Some(path) => Path::new(path)
                        .parent()
                        .map(Path::to_path_buf)
                        .unwrap_or_default(),
                    None => continue,
                },
            };
            if dir.is_absolute() && dir.is_dir() && dir != Path::new("/") {
                let target = dir.display().to_string();
                mounts.push(BuildMount::read_only(dir, target));
            }
        }
        mounts
    }
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
                // The router of the working directory (the document root
                // of `php -S`): `public/index.php` with working_dir = "public".
                format!(
                    "{}/index.php",
                    crate::service::container_working_dir(
                        PHP_SOURCE_MOUNT,
                        settings.working_dir.as_deref()
                    )
                ),
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
            ctx.builder.check_image().await?;
            let home = ctx.sandbox_cache.join("composer-home");
            let cache = ctx.sandbox_cache.join("composer");
            for dir in [&home, &cache] {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(io_err("create the build directories"))?;
            }
            let config_file = home.join("config.json");
            write_atomically(&config_file, &global_config(&ctx.composer))
                .await
                .map_err(io_err("write composer's config.json"))?;
            ctx.builder
                .hand_over(vec![ctx.worktree.clone(), ctx.sandbox_cache.clone()])
                .await?;
            let text = tokio::fs::read_to_string(&composer_json)
                .await
                .unwrap_or_default();
            if let Some(warning) = Self::offline_warning(ctx, &text) {
                events.system(warning).await;
            }
            let allow_scripts = ctx.build.allow_composer_scripts;
            let argv = Self::argv(allow_scripts);
            events
                .system(format!(
                    "build container: {}, user {}:{}, network {}{}",
                    ctx.builder.image(),
                    ctx.builder.user().uid,
                    ctx.builder.user().gid,
                    if needs_network(&ctx.composer) {
                        "for composer.repositories"
                    } else {
                        "none"
                    },
                    if allow_scripts {
                        ", scripts and plugins allowed by build.allow_composer_scripts"
                    } else {
                        ""
                    },
                ))
                .await;
            events
                .system(format!("$ composer {}", argv[2..].join(" ")))
                .await;
            let mut run = ctx.run(argv, Self::env(&ctx.composer), PHP_SOURCE_MOUNT);
            run.network = needs_network(&ctx.composer);
            run.mounts = Self::repository_mounts(&ctx.composer);
            run.mounts.extend([
                BuildMount::writable(&ctx.worktree, PHP_SOURCE_MOUNT),
                BuildMount::writable(&home, COMPOSER_HOME),
                BuildMount::writable(&cache, COMPOSER_CACHE),
            ]);
            let exit = ctx.builder.run(run, Some(events), STDERR_KEPT).await?;
            if exit.success() {
                Ok(())
            } else if requires_packages(&text) && is_package_failure(&exit.stderr_tail) {
                Err(DeployError::ComposerPackagesMissing {
                    configured: !ctx.composer.repositories.is_empty(),
                })
            } else {
                Err(DeployError::BuildExited {
                    tool: "composer install",
                    status: exit.status_text(),
                })
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
        let spec = PhpFlavour.container(&settings);
        assert_eq!(
            spec.default_run_cmd,
            ["php", "-S", "0.0.0.0:9090", "/app/index.php"]
        );
        assert_eq!(spec.routes_file, Some(ROUTES_FILE));
        let settings = ServiceSettings {
            working_dir: Some("public".into()),
            ..settings
        };
        assert_eq!(
            PhpFlavour.container(&settings).default_run_cmd[3],
            "/app/public/index.php"
        );
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
    fn composer_runs_no_scripts_or_plugins_unless_allowed() {
        let argv = PhpFlavour::argv(false);
        assert!(argv.contains(&"--no-scripts".to_owned()), "{argv:?}");
        assert!(argv.contains(&"--no-plugins".to_owned()), "{argv:?}");
        let argv = PhpFlavour::argv(true);
        assert!(
            !argv
                .iter()
                .any(|a| a == "--no-scripts" || a == "--no-plugins")
        );
        let env = PhpFlavour::env(&ComposerConfig::default());
        assert!(env.contains(&"COMPOSER_DISABLE_NETWORK=1".to_owned()));
    }
}
