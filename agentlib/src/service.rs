//! A service's effective settings (port, health path, main package, route
//! env key, command, env, working dir). Precedence, highest first: the
//! request's [`ServiceOverrides`] (templates, the sandbox's own), the
//! repo's `sdp.toml`, the agent's config (`service.port`, `health.path`),
//! the built-in defaults. Also what the settings make of a container: its
//! command ([`container_command`]), working directory
//! ([`container_working_dir`]) and environment ([`container_env`]).

use std::collections::BTreeMap;

use sdp_bus::{ServiceOverrides, ServiceSettings};

use crate::config::AgentConfig;

/// The settings file at a service repo's root.
pub const SDP_TOML: &str = "sdp.toml";

/// The agent-level settings: built-in defaults with the agent config on top.
pub fn agent_defaults(config: &AgentConfig) -> ServiceSettings {
    let mut settings = ServiceSettings::default();
    if let Some(port) = config.service.port {
        settings.port = port;
    }
    settings.health_path = config.health.path.clone();
    settings
}

/// Parses `sdp.toml` text into the keys it sets. Unknown keys and wrong
/// types are refused; the message names the key.
pub fn parse_sdp_toml(text: &str) -> Result<ServiceOverrides, SettingsProblem> {
    // The canonical type checks keys and types ...
    let parsed: ServiceSettings = toml::from_str(text).map_err(|e| toml_problem(&e))?;
    // ... and the table says which keys were written (the rest default).
    let table: toml::Table = toml::from_str(text).map_err(|e| toml_problem(&e))?;
    let set = |key: &str| table.contains_key(key);
    Ok(ServiceOverrides {
        port: set("port").then_some(parsed.port),
        health_path: set("health_path").then_some(parsed.health_path),
        main_package: set("main_package").then_some(parsed.main_package),
        route_env: if set("route_env") {
            parsed.route_env
        } else {
            None
        },
        command: parsed.command,
        env: parsed.env,
        working_dir: parsed.working_dir,
    })
}

fn toml_problem(err: &toml::de::Error) -> SettingsProblem {
    SettingsProblem::Toml(err.message().trim().to_owned())
}

/// Layers `sdp_toml` (if the repo has one) and `overrides` over `base`,
/// then checks the result. Errors are for the user and name the culprit.
pub fn resolve(
    base: &ServiceSettings,
    sdp_toml: Option<&str>,
    overrides: &ServiceOverrides,
) -> Result<ServiceSettings, SettingsError> {
    let mut settings = base.clone();
    if let Some(text) = sdp_toml {
        let from_file = parse_sdp_toml(text).map_err(SettingsError::File)?;
        check(&from_file).map_err(SettingsError::File)?;
        settings.apply(&from_file);
    }
    check(overrides).map_err(SettingsError::Overrides)?;
    settings.apply(overrides);
    Ok(settings)
}

/// Settings that cannot be used, and where they came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid {SDP_TOML}: {0}")]
    File(SettingsProblem),
    #[error("invalid settings override: {0}")]
    Overrides(SettingsProblem),
}

/// What is wrong with one layer of settings. The text names the key; it
/// is part of [`SettingsError`]'s message, so not also its source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsProblem {
    /// Not TOML, an unknown key or a value of the wrong type (toml's
    /// message).
    #[error("{0}")]
    Toml(String),
    /// A value the settings refuse ([`ServiceOverrides::check`]).
    #[error("{0}")]
    Value(String),
    /// The repo's file is not a regular file (a symlink, a directory).
    #[error("it is not a regular file")]
    NotAFile,
    #[error("it is not UTF-8")]
    NotUtf8,
}

fn check(settings: &ServiceOverrides) -> Result<(), SettingsProblem> {
    settings.check().map_err(SettingsProblem::Value)
}

/// The argument for `go build`: `./<main_package>` with redundant `./`
/// and trailing `/` removed (`.` → `.`, `./cmd/users` → `./cmd/users`).
pub fn go_package_arg(package: &str) -> String {
    let parts: Vec<&str> = package
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() {
        ".".to_owned()
    } else {
        format!("./{}", parts.join("/"))
    }
}

/// One line for the deployment log. It names the service's env keys,
/// never their values (they may be secrets).
pub fn describe(settings: &ServiceSettings, repo: &str, from_file: bool) -> String {
    let command = match settings.expanded_command() {
        Some(argv) => argv.join(" "),
        None => "the agent's default".to_owned(),
    };
    let env_keys = if settings.env.is_empty() {
        "none".to_owned()
    } else {
        settings.env.keys().cloned().collect::<Vec<_>>().join(", ")
    };
    format!(
        "settings ({}): port {}, health path {}, main package {}, route env {}, command {command}, working dir {}, env keys {env_keys}",
        if from_file {
            "sdp.toml, overrides, agent defaults"
        } else {
            "no sdp.toml: overrides, agent defaults"
        },
        settings.port,
        settings.health_path,
        settings.main_package,
        settings.route_env_for(repo),
        settings.working_dir.as_deref().unwrap_or("the repo root"),
    )
}

/// The container's command: the settings' `command` (`${PORT}` expanded),
/// else the agent's `flavour.run_cmd`, else the flavour's default.
pub fn container_command(
    settings: &ServiceSettings,
    agent_run_cmd: Option<&[String]>,
    flavour_default: Vec<String>,
) -> Vec<String> {
    settings
        .expanded_command()
        .or_else(|| agent_run_cmd.map(<[String]>::to_vec))
        .unwrap_or(flavour_default)
}

/// The container's working directory: `working_dir` (checked relative,
/// without `..`) under the checkout's mount point, `.` and empty parts
/// dropped; the mount point itself when unset.
pub fn container_working_dir(source_mount: &str, working_dir: Option<&str>) -> String {
    let mut dir = source_mount.trim_end_matches('/').to_owned();
    for part in working_dir
        .unwrap_or_default()
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
    {
        dir.push('/');
        dir.push_str(part);
    }
    if dir.is_empty() { "/".to_owned() } else { dir }
}

/// The container's environment, lowest first: `environment` (the
/// request's: the sandbox's environment vars, a gateway's routes), the
/// service's `env` (`sdp.toml`'s with the overrides' merged over it), then
/// what SDP sets (`sdp`). A later layer replaces an earlier one's key.
pub fn container_env(
    environment: &BTreeMap<String, String>,
    settings: &ServiceSettings,
    sdp: &[(&str, String)],
) -> Vec<String> {
    let mut env: BTreeMap<&str, &str> = environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.extend(settings.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    env.extend(sdp.iter().map(|(k, v)| (*k, v.as_str())));
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_overrides_file_agent_defaults() {
        let base = ServiceSettings {
            port: 7000,
            health_path: "/ready".into(),
            ..Default::default()
        };
        let settings = resolve(&base, None, &ServiceOverrides::default()).expect("ok");
        assert_eq!(
            (settings.port, settings.health_path.as_str()),
            (7000, "/ready")
        );

        let file = "port = 9090\nmain_package = \"./cmd/users\"\n";
        let settings = resolve(&base, Some(file), &ServiceOverrides::default()).expect("ok");
        assert_eq!(settings.port, 9090);
        assert_eq!(settings.health_path, "/ready", "not in the file: agent's");
        assert_eq!(settings.main_package, "./cmd/users");

        let overrides = ServiceOverrides {
            port: Some(9191),
            route_env: Some("PEOPLE_URL".into()),
            ..Default::default()
        };
        let settings = resolve(&base, Some(file), &overrides).expect("ok");
        assert_eq!(settings.port, 9191);
        assert_eq!(settings.route_env_for("users"), "PEOPLE_URL");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let base = ServiceSettings::default();
        let none = ServiceOverrides::default();
        let err = resolve(&base, Some("colour = \"red\"\n"), &none).expect_err("unknown");
        assert!(err.to_string().contains("colour"), "{err}");
        assert!(err.to_string().contains("sdp.toml"), "{err}");
        assert!(
            matches!(err, SettingsError::File(SettingsProblem::Toml(_))),
            "{err:?}"
        );
        let err = resolve(&base, Some("port = \"x\"\n"), &none).expect_err("type");
        assert!(err.to_string().contains("sdp.toml"), "{err}");
        for bad in ["../x", "/abs", "-x", "a/../../b", ""] {
            let text = format!("main_package = {bad:?}\n");
            let err = resolve(&base, Some(&text), &none).expect_err(bad);
            assert!(err.to_string().contains("main_package"), "{err}");
        }
        let err = resolve(&base, Some("health_path = \"healthz\"\n"), &none).expect_err("path");
        assert!(err.to_string().contains("health_path"), "{err}");
        assert!(
            matches!(err, SettingsError::File(SettingsProblem::Value(_))),
            "{err:?}"
        );
        let overrides = ServiceOverrides {
            main_package: Some("..".into()),
            ..Default::default()
        };
        let err = resolve(&base, None, &overrides).expect_err("override");
        assert!(
            matches!(err, SettingsError::Overrides(SettingsProblem::Value(_))),
            "{err:?}"
        );
        assert_eq!(
            SettingsError::File(SettingsProblem::NotUtf8).to_string(),
            "invalid sdp.toml: it is not UTF-8"
        );
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn env_layers_environment_then_sdp_toml_then_overrides_then_sdp() {
        let environment = map(&[
            ("DB_URL", "environment"),
            ("GREETING", "environment"),
            ("LEVEL", "environment"),
            ("USERS_URL", "http://users"),
        ]);
        let file = "[env]\nGREETING = \"sdp.toml\"\nLEVEL = \"sdp.toml\"\nONLY_FILE = \"1\"\n";
        let overrides = ServiceOverrides {
            env: map(&[("LEVEL", "overrides"), ("ONLY_OVERRIDES", "2")]),
            ..Default::default()
        };
        let settings =
            resolve(&ServiceSettings::default(), Some(file), &overrides).expect("resolves");
        let sdp = [
            ("PORT", "8080".to_owned()),
            ("SDP_SANDBOX", "alpha".to_owned()),
        ];
        assert_eq!(
            container_env(&environment, &settings, &sdp),
            [
                "DB_URL=environment",
                "GREETING=sdp.toml",
                "LEVEL=overrides",
                "ONLY_FILE=1",
                "ONLY_OVERRIDES=2",
                "PORT=8080",
                "SDP_SANDBOX=alpha",
                "USERS_URL=http://users",
            ]
        );
        // What SDP sets wins even over a key that slipped through.
        let sneaky = map(&[("PORT", "1"), ("SDP_SANDBOX", "other")]);
        let env = container_env(&sneaky, &settings, &sdp);
        assert!(env.contains(&"PORT=8080".to_owned()), "{env:?}");
        assert!(env.contains(&"SDP_SANDBOX=alpha".to_owned()), "{env:?}");
        assert!(!env.contains(&"PORT=1".to_owned()), "{env:?}");
    }

    #[test]
    fn sdp_toml_with_a_reserved_key_bad_command_or_working_dir_is_refused() {
        let base = ServiceSettings::default();
        let none = ServiceOverrides::default();
        for (text, wanted) in [
            ("[env]\nPORT = \"1\"\n", "env key \"PORT\" is reserved"),
            (
                "[env]\nSDP_BRANCH = \"x\"\n",
                "env key \"SDP_BRANCH\" is reserved",
            ),
            ("command = []\n", "command is empty"),
            ("command = [\"\", \"x\"]\n", "command's program"),
            ("working_dir = \"../up\"\n", "working_dir"),
            ("working_dir = \"/etc\"\n", "working_dir"),
        ] {
            let err = resolve(&base, Some(text), &none).expect_err(text);
            let message = err.to_string();
            assert!(
                message.starts_with("invalid sdp.toml: ") && message.contains(wanted),
                "{text}: {message}"
            );
        }
    }

    #[test]
    fn command_choice_and_working_dir() {
        let flavour = || vec!["/sdp/app".to_owned()];
        let agent = ["/sdp/app".to_owned(), "--serve".to_owned()];
        let mut settings = ServiceSettings {
            port: 5678,
            ..Default::default()
        };
        assert_eq!(container_command(&settings, None, flavour()), ["/sdp/app"]);
        assert_eq!(container_command(&settings, Some(&agent), flavour()), agent);
        settings.command = Some(vec!["/sdp/app".into(), "-listen=:${PORT}".into()]);
        assert_eq!(
            container_command(&settings, Some(&agent), flavour()),
            ["/sdp/app", "-listen=:5678"]
        );

        assert_eq!(container_working_dir("/src", None), "/src");
        assert_eq!(container_working_dir("/src", Some("web")), "/src/web");
        assert_eq!(
            container_working_dir("/src", Some("./web//static/")),
            "/src/web/static"
        );
        assert_eq!(container_working_dir("/app", Some(".")), "/app");
    }

    #[test]
    fn describe_names_command_working_dir_and_env_keys_but_no_values() {
        let settings = ServiceSettings {
            port: 5678,
            command: Some(vec!["/sdp/app".into(), "-listen=:${PORT}".into()]),
            working_dir: Some("web".into()),
            env: map(&[("API_TOKEN", "s3cret-value"), ("GREETING", "hello")]),
            ..Default::default()
        };
        let line = describe(&settings, "shop", true);
        assert!(line.contains("command /sdp/app -listen=:5678"), "{line}");
        assert!(line.contains("working dir web"), "{line}");
        assert!(line.contains("env keys API_TOKEN, GREETING"), "{line}");
        assert!(
            !line.contains("s3cret-value") && !line.contains("hello"),
            "{line}"
        );
        let line = describe(&ServiceSettings::default(), "shop", false);
        assert!(line.contains("command the agent's default"), "{line}");
        assert!(line.contains("working dir the repo root"), "{line}");
        assert!(line.contains("env keys none"), "{line}");
    }

    #[test]
    fn go_package_args() {
        assert_eq!(go_package_arg("."), ".");
        assert_eq!(go_package_arg("./"), ".");
        assert_eq!(go_package_arg("cmd/users"), "./cmd/users");
        assert_eq!(go_package_arg("./cmd/users/"), "./cmd/users");
        assert_eq!(go_package_arg("cmd//users"), "./cmd/users");
    }
}
