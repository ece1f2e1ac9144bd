//! Loading a binary's typed config: an optional TOML file, then
//! `<PREFIX>__<SECTION>__<KEY>` overrides, where each binary names its own
//! prefix (`SDP_CONTROL_PLANE`, `SDP_AGENT`). Every other variable is
//! ignored, so the CLI's `SDP_URL`, `SDP_TOKEN` and `SDP_NATS_URL` in the
//! same shell never reach a server. The environment is passed in, so tests
//! never touch the process environment; unknown keys under the prefix are
//! refused by the config types' `deny_unknown_fields`.

use std::collections::HashMap;
use std::path::Path;

use serde::de::DeserializeOwned;

/// A binary's typed config, loadable with [`load`].
pub trait Settings: DeserializeOwned {
    /// The binary's variables start with this and `__`
    /// (`SDP_CONTROL_PLANE` reads `SDP_CONTROL_PLANE__NATS__URL`).
    const ENV_PREFIX: &'static str;
    /// Keys whose value is a comma-separated list
    /// (`SDP_CONTROL_PLANE__HTTP__ALLOWED_ORIGINS=a,b`), as `section.key`.
    const LIST_KEYS: &'static [&'static str] = &[];
    /// Keys read under an old name too (serde `alias`), as `(old, new)`
    /// pairs of `section.key`. Both at once are refused by [`load`] with a
    /// message naming the two, rather than serde's bare "duplicate field".
    const RENAMED_KEYS: &'static [(&'static str, &'static str)] = &[];
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("config file {path} does not exist")]
    Missing { path: String },
    #[error("invalid configuration: {0}")]
    Invalid(#[source] config::ConfigError),
    #[error(
        "invalid configuration: {old} and {new} are the same setting ({old} is its old name) \
         and both are set (in the file or as {prefix}__ variables): keep only {new}"
    )]
    BothNames {
        old: &'static str,
        new: &'static str,
        prefix: &'static str,
    },
}

/// Reads `file` (if given) and the entries of `env` under
/// [`Settings::ENV_PREFIX`] into `T`; other entries are ignored. Keys of
/// nested sections are separated by `__`: `SDP_AGENT__NATS__URL`,
/// `SDP_AGENT__DATA_DIR`; the keys of [`Settings::LIST_KEYS`] take lists.
pub fn load<T: Settings>(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, SettingsError> {
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        if !path.exists() {
            return Err(SettingsError::Missing {
                path: path.display().to_string(),
            });
        }
        builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
    }
    // Filtered here, case and all: `config` matches its prefix ignoring
    // case, and a lower-case `sdp_agent__x` is nobody's override.
    let prefix = format!("{}__", T::ENV_PREFIX);
    let env: HashMap<String, String> = env
        .into_iter()
        .filter(|(key, _)| key.starts_with(&prefix))
        .collect();
    let environment = T::LIST_KEYS.iter().fold(
        config::Environment::with_prefix(T::ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .list_separator(","),
        |environment, key| environment.with_list_parse_key(key),
    );
    builder = builder.add_source(environment.try_parsing(true).source(Some(env)));
    let merged = builder.build().map_err(SettingsError::Invalid)?;
    if let Some(&(old, new)) = T::RENAMED_KEYS.iter().find(|(old, new)| {
        merged.get::<config::Value>(old).is_ok() && merged.get::<config::Value>(new).is_ok()
    }) {
        return Err(SettingsError::BothNames {
            old,
            new,
            prefix: T::ENV_PREFIX,
        });
    }
    merged.try_deserialize().map_err(SettingsError::Invalid)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Demo {
        #[serde(default)]
        data_dir: Option<String>,
        #[serde(default)]
        nats: Nats,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Nats {
        #[serde(default, alias = "address")]
        url: Option<String>,
        #[serde(default)]
        servers: Vec<String>,
    }

    impl Settings for Demo {
        const ENV_PREFIX: &'static str = "SDP_DEMO";
        const LIST_KEYS: &'static [&'static str] = &["nats.servers"];
        const RENAMED_KEYS: &'static [(&'static str, &'static str)] =
            &[("nats.address", "nats.url")];
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reads_its_own_prefix_and_ignores_every_other_variable() {
        let demo: Demo = load(
            None,
            env(&[
                ("SDP_DEMO__DATA_DIR", "/var/lib/demo"),
                ("SDP_DEMO__NATS__URL", "nats://a:4222"),
                ("SDP_DEMO__NATS__SERVERS", "a,b"),
                // The CLI's own, another binary's, the old unprefixed form,
                // and a lower-case look-alike: none is this binary's.
                ("SDP_URL", "http://x"),
                ("SDP_TOKEN", "t"),
                ("SDP_NATS_URL", "nats://cli:4222"),
                ("SDP_AGENT__COLOUR", "red"),
                ("SDP_NATS__URL", "nats://old:4222"),
                ("SDP_DEMOX__COLOUR", "red"),
                ("sdp_demo__colour", "red"),
            ]),
        )
        .expect("loads");
        assert_eq!(demo.data_dir.as_deref(), Some("/var/lib/demo"));
        assert_eq!(demo.nats.url.as_deref(), Some("nats://a:4222"));
        assert_eq!(demo.nats.servers, ["a", "b"]);
    }

    #[test]
    fn refuses_an_unknown_key_under_its_prefix() {
        let err = load::<Demo>(None, env(&[("SDP_DEMO__NATS__URI", "x")])).expect_err("refused");
        assert!(err.to_string().contains("uri"), "{err}");
        assert!(load::<Demo>(None, env(&[("SDP_DEMO__COLOUR", "red")])).is_err());
    }

    #[test]
    fn a_renamed_key_reads_under_either_name_but_not_both() {
        let old: Demo = load(None, env(&[("SDP_DEMO__NATS__ADDRESS", "nats://old:4222")]))
            .expect("the old name alone loads");
        assert_eq!(old.nats.url.as_deref(), Some("nats://old:4222"));

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("demo.toml");
        std::fs::write(&path, "[nats]\nurl = \"nats://file:4222\"\n").expect("write");
        let err = load::<Demo>(
            Some(&path),
            env(&[("SDP_DEMO__NATS__ADDRESS", "nats://env:4222")]),
        )
        .expect_err("both names refused");
        let message = err.to_string();
        assert!(
            message.contains("nats.address") && message.contains("keep only nats.url"),
            "{message}"
        );
    }
}
