//! How a service runs: its settings (`sdp.toml` at a repo's root, template
//! overrides, a sandbox's own env) and the checks both ends run on them.
//! The control plane checks overrides before it stores them (a 400 names the
//! key); the agent checks `sdp.toml` and the request again before Docker sees
//! anything.
//!
//! What a container's environment holds, lowest first: the sandbox's
//! environment (and, for a gateway, its routes), the service's `env` from
//! `sdp.toml`, the template's `env` for the service, the sandbox's `env` for
//! the service, then what SDP sets ([`RESERVED_ENV`], `SDP_*`), which no
//! setting may name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Keys SDP sets in every container; `SDP_*` is reserved as a whole.
pub const RESERVED_ENV: &[&str] = &["PORT"];

/// The placeholder in `command` arguments that becomes the service's port.
pub const PORT_PLACEHOLDER: &str = "${PORT}";

const MAX_COMMAND_ARGS: usize = 64;
const MAX_ARG_BYTES: usize = 4096;
const MAX_ENV_ENTRIES: usize = 128;
const MAX_ENV_VALUE_BYTES: usize = 32 * 1024;

/// A service repo's settings: `sdp.toml` at the repo root, else defaults.
/// ```toml
/// port = 8080
/// health_path = "/healthz"
/// main_package = "./cmd/users"
/// route_env = "USERS_URL"
/// command = ["/artifact/app", "-listen=:${PORT}"]
/// working_dir = "web"
///
/// [env]
/// GREETING = "hello"
/// ```
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    #[serde(default = "default_port")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 65535))]
    pub port: u16,
    #[serde(default = "default_health_path")]
    pub health_path: String,
    #[serde(default = "default_main_package")]
    pub main_package: String,
    /// The env key whose value routes to this service (e.g. `USERS_URL`);
    /// default: the repo name upper-cased, `-`/`.` → `_`, plus `_URL`.
    #[serde(default)]
    pub route_env: Option<String>,
    /// The container's command as argv (no shell); `${PORT}` in an
    /// argument becomes the port. Default: the flavour's (the built binary
    /// for Go, the PHP server for the gateway), or the agent's `run_cmd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// This service's own variables, over the environment's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The container's working directory relative to the repo root;
    /// default: the repo root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

fn default_port() -> u16 {
    8080
}

fn default_health_path() -> String {
    "/".to_owned()
}

fn default_main_package() -> String {
    ".".to_owned()
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            port: default_port(),
            health_path: default_health_path(),
            main_package: default_main_package(),
            route_env: None,
            command: None,
            env: BTreeMap::new(),
            working_dir: None,
        }
    }
}

impl ServiceSettings {
    /// The env key that routes to `repo`.
    pub fn route_env_for(&self, repo: &str) -> String {
        self.route_env
            .clone()
            .unwrap_or_else(|| default_route_env(repo))
    }

    /// Layers `overrides` on top: set fields replace, `env` merges by key.
    pub fn apply(&mut self, overrides: &ServiceOverrides) {
        if let Some(port) = overrides.port {
            self.port = port;
        }
        if let Some(path) = &overrides.health_path {
            self.health_path = path.clone();
        }
        if let Some(package) = &overrides.main_package {
            self.main_package = package.clone();
        }
        if let Some(key) = &overrides.route_env {
            self.route_env = Some(key.clone());
        }
        if let Some(command) = &overrides.command {
            self.command = Some(command.clone());
        }
        if let Some(dir) = &overrides.working_dir {
            self.working_dir = Some(dir.clone());
        }
        self.env
            .extend(overrides.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    }

    /// `command` with `${PORT}` replaced by the port, if a command is set.
    pub fn expanded_command(&self) -> Option<Vec<String>> {
        let port = self.port.to_string();
        self.command.as_ref().map(|argv| {
            argv.iter()
                .map(|arg| arg.replace(PORT_PLACEHOLDER, &port))
                .collect()
        })
    }
}

/// `users` → `USERS_URL`, `order-api` → `ORDER_API_URL`.
pub fn default_route_env(repo: &str) -> String {
    let mut key: String = repo
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    key.push_str("_URL");
    key
}

/// Overrides of [`ServiceSettings`] (a template's, or a sandbox's own);
/// `None` keeps the repo's, `env` adds to and replaces the repo's by key.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 65535))]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_package: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_env: Option<String>,
    /// The container's command as argv; `${PORT}` becomes the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub command: Option<Vec<String>>,
    /// Variables over the repo's `env` and the environment's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The working directory relative to the repo root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

impl ServiceOverrides {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Checks every set field; the message names the field (and the key)
    /// and says what is allowed.
    pub fn check(&self) -> Result<(), String> {
        if self.port == Some(0) {
            return Err("port must not be 0".into());
        }
        if let Some(path) = &self.health_path
            && (!path.starts_with('/') || path.chars().any(|c| c.is_control() || c == ' '))
        {
            return Err(format!(
                "health_path {path:?} must start with '/' and hold no space or control character"
            ));
        }
        if let Some(package) = &self.main_package {
            relative_path("main_package", package)?;
        }
        if let Some(dir) = &self.working_dir {
            relative_path("working_dir", dir)?;
        }
        if let Some(key) = &self.route_env {
            if !is_env_key(key) {
                return Err(format!(
                    "route_env {key:?} is not an env key: use [A-Za-z_][A-Za-z0-9_]*"
                ));
            }
            // It becomes a variable of the gateway.
            if is_reserved_env_key(key) {
                return Err(format!(
                    "route_env {key:?} is reserved: SDP sets PORT and every SDP_* variable itself"
                ));
            }
        }
        if let Some(argv) = &self.command {
            check_command(argv)?;
        }
        check_env(&self.env)
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `PORT` and every `SDP_*` key: SDP sets them in every container.
pub fn is_reserved_env_key(key: &str) -> bool {
    RESERVED_ENV.contains(&key) || key.starts_with("SDP_")
}

/// A service's variables: valid keys, none reserved, no NUL in a value,
/// bounded in count and size.
pub fn check_env(env: &BTreeMap<String, String>) -> Result<(), String> {
    if env.len() > MAX_ENV_ENTRIES {
        return Err(format!(
            "env has {} entries: at most {MAX_ENV_ENTRIES}",
            env.len()
        ));
    }
    for (key, value) in env {
        if !is_env_key(key) {
            return Err(format!(
                "env key {key:?} is not an env key: use [A-Za-z_][A-Za-z0-9_]*"
            ));
        }
        if is_reserved_env_key(key) {
            return Err(format!(
                "env key {key:?} is reserved: SDP sets PORT and every SDP_* variable itself (set the port with `port`)"
            ));
        }
        if value.contains('\0') {
            return Err(format!("env value of {key} holds a NUL character"));
        }
        if value.len() > MAX_ENV_VALUE_BYTES {
            return Err(format!(
                "env value of {key} is {} bytes: at most {MAX_ENV_VALUE_BYTES}",
                value.len()
            ));
        }
    }
    Ok(())
}

/// A command: 1 to 64 arguments, the first not empty, none with a NUL or
/// longer than 4 KiB.
pub fn check_command(argv: &[String]) -> Result<(), String> {
    match argv.first() {
        None => return Err("command is empty: give at least the program".into()),
        Some(program) if program.trim().is_empty() => {
            return Err("command's program (its first argument) is empty".into());
        }
        Some(_) => {}
    }
    if argv.len() > MAX_COMMAND_ARGS {
        return Err(format!(
            "command has {} arguments: at most {MAX_COMMAND_ARGS}",
            argv.len()
        ));
    }
    if let Some(arg) = argv
        .iter()
        .find(|a| a.contains('\0') || a.len() > MAX_ARG_BYTES)
    {
        return Err(format!(
            "command argument {:?} holds a NUL character or is over {MAX_ARG_BYTES} bytes",
            arg.chars().take(40).collect::<String>()
        ));
    }
    Ok(())
}

/// A path inside the repo: relative, no `..` component, no leading `-`, no
/// backslash or control character.
pub fn relative_path(field: &str, path: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{field} {path:?} {why}"));
    if path.is_empty() {
        return bad("is empty");
    }
    if path.starts_with('/') {
        return bad("must be relative to the repo root");
    }
    if path.starts_with('-') {
        return bad("must not start with '-'");
    }
    if path.split('/').any(|part| part == "..") {
        return bad("must stay inside the repo ('..' is not allowed)");
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return bad("holds a control character or a backslash");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn apply_replaces_set_fields_and_merges_env_by_key() {
        let mut settings = ServiceSettings {
            env: env(&[("A", "repo"), ("B", "repo")]),
            ..Default::default()
        };
        settings.apply(&ServiceOverrides {
            command: Some(vec!["/app".into(), "-listen=:${PORT}".into()]),
            env: env(&[("B", "template"), ("C", "template")]),
            working_dir: Some("web".into()),
            port: Some(5678),
            ..Default::default()
        });
        assert_eq!(
            settings.env,
            env(&[("A", "repo"), ("B", "template"), ("C", "template")])
        );
        assert_eq!(settings.working_dir.as_deref(), Some("web"));
        assert_eq!(
            settings.expanded_command(),
            Some(vec!["/app".to_owned(), "-listen=:5678".to_owned()])
        );
    }

    #[test]
    fn reserved_and_malformed_keys_are_refused_by_name() {
        for key in ["PORT", "SDP_SANDBOX", "SDP_"] {
            let err = check_env(&env(&[(key, "x")])).expect_err(key);
            assert!(err.contains("reserved") && err.contains(key), "{err}");
        }
        for key in ["", "1A", "A-B", "A=B"] {
            let err = check_env(&env(&[(key, "x")])).expect_err(key);
            assert!(err.contains("not an env key"), "{err}");
        }
        assert!(check_env(&env(&[("PORTS", "1"), ("_X", ""), ("sdp_x", "y")])).is_ok());
        assert!(check_env(&env(&[("A", "a\0b")])).is_err());
    }

    #[test]
    fn commands_and_paths_are_checked() {
        assert!(check_command(&[]).is_err());
        assert!(check_command(&["".into()]).is_err());
        assert!(check_command(&["/app".into(), "".into()]).is_ok());
        for bad in ["", "/abs", "-x", "a/../../b", "a\\b"] {
            assert!(relative_path("working_dir", bad).is_err(), "{bad}");
        }
        assert!(relative_path("working_dir", "web/static").is_ok());
        let overrides = ServiceOverrides {
            working_dir: Some("../other".into()),
            ..Default::default()
        };
        assert!(overrides.check().expect_err("..").contains("working_dir"));
    }
}
