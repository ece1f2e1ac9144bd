//! A service's effective settings (port, health path, main package, route
//! env key). Precedence, highest first: the request's
//! [`ServiceOverrides`] (templates) > the repo's `sdp.toml` > the agent's
//! config (`service.port`, `health.path`) > built-in defaults.

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
pub fn parse_sdp_toml(text: &str) -> Result<ServiceOverrides, String> {
    // The canonical type checks keys and types ...
    let parsed: ServiceSettings = toml::from_str(text).map_err(|e| toml_message(&e))?;
    // ... and the table says which keys were written (the rest default).
    let table: toml::Table = toml::from_str(text).map_err(|e| toml_message(&e))?;
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

fn toml_message(err: &toml::de::Error) -> String {
    err.message().trim().to_owned()
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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid {SDP_TOML}: {0}")]
    File(String),
    #[error("invalid settings override: {0}")]
    Overrides(String),
}

fn check(settings: &ServiceOverrides) -> Result<(), String> {
    settings.check()
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

/// One line for the deployment log.
pub fn describe(settings: &ServiceSettings, repo: &str, from_file: bool) -> String {
    format!(
        "settings ({}): port {}, health path {}, main package {}, route env {}",
        if from_file {
            "sdp.toml, overrides, agent defaults"
        } else {
            "no sdp.toml: overrides, agent defaults"
        },
        settings.port,
        settings.health_path,
        settings.main_package,
        settings.route_env_for(repo)
    )
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
        let err = resolve(&base, Some("port = \"x\"\n"), &none).expect_err("type");
        assert!(err.to_string().contains("sdp.toml"), "{err}");
        for bad in ["../x", "/abs", "-x", "a/../../b", ""] {
            let text = format!("main_package = {bad:?}\n");
            let err = resolve(&base, Some(&text), &none).expect_err(bad);
            assert!(err.to_string().contains("main_package"), "{err}");
        }
        let err = resolve(&base, Some("health_path = \"healthz\"\n"), &none).expect_err("path");
        assert!(err.to_string().contains("health_path"), "{err}");
        let overrides = ServiceOverrides {
            main_package: Some("..".into()),
            ..Default::default()
        };
        let err = resolve(&base, None, &overrides).expect_err("override");
        assert!(matches!(err, SettingsError::Overrides(_)), "{err}");
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
