//! [`PhpFlavour`] (kind `gateway`): `composer install --no-dev` on the host
//! when the checkout has a `composer.json` and composer is installed (else a
//! warning), then `php -S` in a PHP base image with the checkout at `/app`
//! and the sandbox's route table at `/etc/sdp/routes.json`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use sdp_bus::ServiceSettings;
use tokio::process::Command;

use crate::error::DeployError;
use crate::events::EventSink;
use crate::flavour::{BuildContext, ContainerSpec, Flavour, run_streaming};

/// Mount point of the checkout in gateway containers.
pub const PHP_SOURCE_MOUNT: &str = "/app";
/// Mount point of the sandbox's route table in gateway containers.
pub const ROUTES_FILE: &str = "/etc/sdp/routes.json";
const COMPOSER_ARGS: [&str; 4] = ["install", "--no-dev", "--no-interaction", "--no-progress"];

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
            .env("COMPOSER_HOME", &cache)
            .env("COMPOSER_CACHE_DIR", &cache)
            .env("COMPOSER_NO_INTERACTION", "1");
        command
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
            if !ctx.worktree.join("composer.json").is_file() {
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
            for dir in [ctx.data_dir.join("home"), ctx.cache_dir.join("composer")] {
                tokio::fs::create_dir_all(&dir)
                    .await
                    .map_err(|source| DeployError::Io {
                        what: "create the build directories".to_owned(),
                        source,
                    })?;
            }
            events
                .system(format!("$ composer {}", COMPOSER_ARGS.join(" ")))
                .await;
            match run_streaming(self.command(&composer, ctx), events).await {
                Ok(status) if status.success() => Ok(()),
                Ok(status) => Err(DeployError::BuildExited {
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
