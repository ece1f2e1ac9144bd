//! What the server checks of names and values, as the schemas state it
//! (the control plane checks the same with `sdp_bus::validate` and
//! `sdp_bus::service`), and a number reader that takes what JSON Schema
//! calls an integer.

use serde::{Deserialize, Deserializer};
use utoipa::openapi::schema::{AdditionalProperties, Object, ObjectBuilder, Type};

/// A sandbox, environment or template name (`validate::resource_name`).
pub const RESOURCE_NAME: &str = "^[a-z0-9][a-z0-9-]{0,62}$";
/// A repo name (`validate::repo`): 1-63 of `a-z 0-9 . _ -`, starting with
/// a letter or digit, no `..`.
pub const REPO_NAME: &str = "^[a-z0-9]([a-z0-9_-]|\\.[a-z0-9_-])*\\.?$";
/// An env variable's name (`service::is_env_key`).
pub const ENV_KEY: &str = "^[A-Za-z_][A-Za-z0-9_]*$";
/// An environment's variable name: an env key of at most 128 characters.
pub const ENVIRONMENT_KEY: &str = "^[A-Za-z_][A-Za-z0-9_]{0,127}$";
/// A manual route's target: an http(s) URL with a host (no `[` or `]` in
/// it: no IPv6 literal), no whitespace or control characters.
pub const ROUTE_TARGET: &str =
    "^https?://[^/?#\\[\\]\\s\\x00-\\x1f\\x7f-\\x9f]+([/?#][^\\s\\x00-\\x1f\\x7f-\\x9f]*)?$";

/// A map of env variables: names by `key_pattern`, string values of at
/// most `max_value` characters without NUL, at most `max_entries`.
fn env_map(
    description: &str,
    key_pattern: &str,
    max_value: usize,
    max_entries: usize,
    nullable_values: bool,
) -> Object {
    let value = ObjectBuilder::new()
        .schema_type(if nullable_values {
            utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null])
        } else {
            Type::String.into()
        })
        .max_length(Some(max_value))
        .pattern(Some("^[^\\x00]*$"));
    let key = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(key_pattern));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
        .additional_properties(Some(AdditionalProperties::RefOr(value.build().into())))
        .property_names(Some(key.build()))
        .max_properties(Some(max_entries))
        .build()
}

/// `NewEnvironment.vars`.
pub(crate) fn new_environment_vars() -> Object {
    env_map(
        "Plain variables: anyone logged in reads their values.",
        ENVIRONMENT_KEY,
        8192,
        500,
        false,
    )
}

/// `NewEnvironment.secrets`.
pub(crate) fn new_environment_secrets() -> Object {
    env_map(
        "Secret variables: given to every service's container like the\n\
         plain ones, never shown again (answers list their names in `secret_keys`).",
        ENVIRONMENT_KEY,
        8192,
        500,
        false,
    )
}

/// `EnvironmentVars.vars`.
pub(crate) fn environment_vars() -> Object {
    env_map(
        "Replaces every plain variable. A key that was a secret becomes\n\
         plain with this value.",
        ENVIRONMENT_KEY,
        8192,
        500,
        false,
    )
}

/// `EnvironmentVars.secrets`.
pub(crate) fn environment_secrets() -> Object {
    env_map(
        "Sets each named secret to a value, or removes it with `null`;\n\
         secrets not named are kept.",
        ENVIRONMENT_KEY,
        8192,
        500,
        true,
    )
}

/// `ServiceEnvWrite.env`.
pub(crate) fn service_env() -> Object {
    let mut map = env_map(
        "Replaces every variable the sandbox sets for the service. Keys\n\
         `[A-Za-z_][A-Za-z0-9_]*`, not `PORT` or `SDP_*`; at most 128 with\n\
         the template's.",
        ENV_KEY,
        32 * 1024,
        128,
        false,
    );
    #[allow(deprecated)] // OpenAPI 3.1 keeps `example`; the snapshot has it.
    {
        map.example = Some(serde_json::json!({ "LOG_LEVEL": "debug" }));
    }
    map
}

/// An optional whole number that JSON may write as `12` or `12.0` (JSON
/// Schema's `integer` is either; serde's `u32` takes only the first).
pub(crate) fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    let Some(number) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(n) = number.as_u64() {
        return u32::try_from(n)
            .map(Some)
            .map_err(|_| D::Error::custom(format!("{n} is out of range")));
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => {
            // A whole number in range: the cast is exact.
            Ok(Some(f as u32))
        }
        _ => Err(D::Error::custom(format!("{number} is not a whole number"))),
    }
}
