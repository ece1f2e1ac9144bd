//! Loading a binary's typed config: an optional TOML file, then
//! `SDP_<SECTION>__<KEY>` overrides. The environment is passed in, so tests
//! never touch the process environment; unknown keys are refused by the
//! config types' `deny_unknown_fields`.

use std::collections::HashMap;
use std::path::Path;

use serde::de::DeserializeOwned;

/// A binary's typed config, loadable with [`load`].
pub trait Settings: DeserializeOwned {
    /// Keys whose `SDP_…` value is a comma-separated list
    /// (`SDP_HTTP__ALLOWED_ORIGINS=a,b`), as `section.key`.
    const LIST_KEYS: &'static [&'static str] = &[];
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("config file {path} does not exist")]
    Missing { path: String },
    #[error("invalid configuration: {0}")]
    Invalid(#[source] config::ConfigError),
}

/// Reads `file` (if given) and the `SDP_…` entries of `env` into `T`.
/// Keys of nested sections are separated by `__`: `SDP_NATS__URL`,
/// `SDP_DATA_DIR`; the keys of [`Settings::LIST_KEYS`] take lists.
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
    let env: HashMap<String, String> = env
        .into_iter()
        .filter(|(key, _)| key.starts_with("SDP_"))
        .collect();
    let environment = T::LIST_KEYS.iter().fold(
        config::Environment::with_prefix("SDP")
            .prefix_separator("_")
            .separator("__")
            .list_separator(","),
        |environment, key| environment.with_list_parse_key(key),
    );
    builder = builder.add_source(environment.try_parsing(true).source(Some(env)));
    builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(SettingsError::Invalid)
}
