//! Templates and the environments they run with:
//! `/api/environments[/{name}]`, `/api/templates[/{name}]`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sdp_bus::ServiceOverrides;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An environment: plain variables with their values, secret ones by
/// name only (their values are never returned).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Environment {
    pub name: String,
    /// The plain variables.
    pub vars: BTreeMap<String, String>,
    /// The names of the secret variables: set, their values never shown.
    pub secret_keys: Vec<String>,
    /// Who created it: they or an admin may change or delete it. Null for
    /// one made before creators were recorded (admins only).
    pub created_by: Option<String>,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::timestamp")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEnvironment {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$", example = "baseline")]
    pub name: String,
    /// Plain variables: anyone logged in reads their values.
    #[serde(default)]
    #[schema(schema_with = crate::rules::new_environment_vars)]
    pub vars: BTreeMap<String, String>,
    /// Secret variables: given to every service's container like the
    /// plain ones, never shown again (answers list their names in `secret_keys`).
    #[serde(default)]
    #[schema(schema_with = crate::rules::new_environment_secrets)]
    pub secrets: BTreeMap<String, String>,
}

/// The new plain variables (all of them), and changes to the secret ones.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentVars {
    /// Replaces every plain variable. A key that was a secret becomes
    /// plain with this value.
    #[schema(schema_with = crate::rules::environment_vars)]
    pub vars: BTreeMap<String, String>,
    /// Sets each named secret to a value, or removes it with `null`;
    /// secrets not named are kept.
    #[serde(default)]
    #[schema(schema_with = crate::rules::environment_secrets)]
    pub secrets: BTreeMap<String, Option<String>>,
}

/// A repo and branch: a template's gateway or one of its services.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepoBranch {
    #[schema(
        pattern = "^[a-z0-9]([a-z0-9_-]|\\.[a-z0-9_-])*\\.?$",
        max_length = 63,
        example = "users"
    )]
    pub repo: String,
    #[schema(min_length = 1, max_length = 200, example = "main")]
    pub branch: String,
    /// Overrides of the repo's `sdp.toml`: a sandbox's own env for the
    /// service (`/api/sandboxes/{name}/services/{repo}/env`) goes over
    /// their `env`.
    #[serde(
        default,
        skip_serializing_if = "ServiceOverrides::is_empty",
        deserialize_with = "object_only::one"
    )]
    pub overrides: ServiceOverrides,
}

/// serde takes a struct from a JSON array too (`[repo, branch]`); these
/// take one only from an object, as the API documents it.
pub mod object_only {
    use serde::de::{DeserializeOwned, Error};
    use serde::{Deserialize, Deserializer};
    use serde_json::{Map, Value};

    fn from_map<T: DeserializeOwned, E: Error>(mut map: Map<String, Value>) -> Result<T, E> {
        map.values_mut().for_each(whole_numbers);
        T::deserialize(Value::Object(map)).map_err(E::custom)
    }

    /// `1.0` as `1`: JSON Schema's `integer` is either, serde's integers
    /// take only the second.
    fn whole_numbers(value: &mut Value) {
        match value {
            Value::Number(n) if n.is_f64() => {
                if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                    // Exact: a whole number below 2^53.
                    *value = Value::from(f as i64);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(whole_numbers),
            Value::Object(map) => map.values_mut().for_each(whole_numbers),
            _ => {}
        }
    }

    pub fn one<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
        from_map(Map::deserialize(d)?)
    }

    pub fn optional<'de, D: Deserializer<'de>, T: DeserializeOwned>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        Option::<Map<String, Value>>::deserialize(d)?
            .map(from_map)
            .transpose()
    }

    pub fn many<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
        Vec::<Map<String, Value>>::deserialize(d)?
            .into_iter()
            .map(from_map)
            .collect()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Template {
    pub name: String,
    pub environment: Option<String>,
    pub gateway: Option<RepoBranch>,
    pub services: Vec<RepoBranch>,
    /// Its sandboxes' test runs (see [`crate::test_runs`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<crate::TestSettings>,
    /// The databases each of its sandboxes gets.
    #[serde(default)]
    pub resources: Vec<crate::resources::ResourceSpec>,
    /// Who created it: they or an admin may change or delete it. Null for
    /// one made before creators were recorded (admins only).
    pub created_by: Option<String>,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::timestamp")]
    pub updated_at: DateTime<Utc>,
}

/// A template to create (`name` required) or to replace (`name`, if
/// given, must be the path's).
#[derive(Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$", example = "web")]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$", example = "baseline")]
    pub environment: Option<String>,
    #[serde(default, deserialize_with = "object_only::optional")]
    pub gateway: Option<RepoBranch>,
    #[serde(default, deserialize_with = "object_only::many")]
    #[schema(max_items = 100)]
    pub services: Vec<RepoBranch>,
    /// Its sandboxes' test runs.
    #[serde(default, deserialize_with = "object_only::optional")]
    pub tests: Option<crate::TestSettings>,
    /// The databases each sandbox of the template gets.
    #[serde(default, deserialize_with = "object_only::many")]
    #[schema(max_items = 10)]
    pub resources: Vec<crate::resources::ResourceSpec>,
}
