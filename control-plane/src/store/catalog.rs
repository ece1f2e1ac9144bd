//! Environments (named env vars) and templates (environment, gateway repo
//! and branch, services with default branches).

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Row, params};
use sdp_bus::ServiceOverrides;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, now_rfc3339};

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Environment {
    pub name: String,
    pub vars: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A repo and branch: a template's gateway or one of its services.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepoBranch {
    #[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,62}$", example = "users")]
    pub repo: String,
    #[schema(example = "main")]
    pub branch: String,
    /// Overrides of the repo's `sdp.toml` (services only).
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

    fn from_map<T: DeserializeOwned, E: Error>(map: Map<String, Value>) -> Result<T, E> {
        T::deserialize(Value::Object(map)).map_err(E::custom)
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

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Template {
    pub name: String,
    pub environment: Option<String>,
    pub gateway: Option<RepoBranch>,
    pub services: Vec<RepoBranch>,
    pub created_at: String,
    pub updated_at: String,
}

fn json_err(err: serde_json::Error) -> StoreError {
    StoreError::Malformed(err.to_string())
}

fn environment_row(row: &Row<'_>) -> rusqlite::Result<(String, String, String, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

/// name, environment, gateway JSON, services JSON, created_at, updated_at.
type TemplateRow = (
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
);

fn template_row(row: &Row<'_>) -> rusqlite::Result<TemplateRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn to_environment(
    (name, vars, created_at, updated_at): (String, String, String, String),
) -> Result<Environment, StoreError> {
    Ok(Environment {
        name,
        vars: serde_json::from_str(&vars).map_err(json_err)?,
        created_at,
        updated_at,
    })
}

fn to_template(
    (name, environment, gateway, services, created_at, updated_at): TemplateRow,
) -> Result<Template, StoreError> {
    Ok(Template {
        name,
        environment,
        gateway: gateway
            .map(|g| serde_json::from_str(&g))
            .transpose()
            .map_err(json_err)?,
        services: serde_json::from_str(&services).map_err(json_err)?,
        created_at,
        updated_at,
    })
}

/// Whether an insert or delete ran into a uniqueness or reference rule.
pub fn is_constraint(err: &StoreError) -> bool {
    matches!(
        err,
        StoreError::Sql(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation
    )
}

impl Store {
    pub fn environments(&self) -> Result<Vec<Environment>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT name, vars, created_at, updated_at FROM environments ORDER BY name",
        )?;
        let rows: Vec<_> = stmt
            .query_map([], environment_row)?
            .collect::<Result<_, _>>()?;
        rows.into_iter().map(to_environment).collect()
    }

    pub fn environment(&self, name: &str) -> Result<Option<Environment>, StoreError> {
        self.conn()
            .query_row(
                "SELECT name, vars, created_at, updated_at FROM environments WHERE name = ?1",
                [name],
                environment_row,
            )
            .optional()?
            .map(to_environment)
            .transpose()
    }

    /// Creates (`create`) or replaces the vars of an environment; returns
    /// false if it did not exist (update) — a duplicate create is a
    /// constraint error.
    pub fn put_environment(
        &self,
        name: &str,
        vars: &BTreeMap<String, String>,
        create: bool,
    ) -> Result<bool, StoreError> {
        let vars = serde_json::to_string(vars).map_err(json_err)?;
        let now = now_rfc3339();
        let changed = if create {
            self.conn().execute(
                "INSERT INTO environments (name, vars, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
                params![name, vars, now],
            )?
        } else {
            self.conn().execute(
                "UPDATE environments SET vars = ?2, updated_at = ?3 WHERE name = ?1",
                params![name, vars, now],
            )?
        };
        Ok(changed > 0)
    }

    /// Who uses an environment (templates and sandboxes), for a 409.
    pub fn environment_users(&self, name: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT 'template ' || name FROM templates WHERE environment = ?1 \
             UNION ALL SELECT 'sandbox ' || name FROM sandboxes WHERE environment = ?1",
        )?;
        let rows = stmt.query_map([name], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn delete_environment(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM environments WHERE name = ?1", [name])?
            > 0)
    }

    pub fn templates(&self) -> Result<Vec<Template>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT name, environment, gateway, services, created_at, updated_at \
             FROM templates ORDER BY name",
        )?;
        let rows: Vec<_> = stmt
            .query_map([], template_row)?
            .collect::<Result<_, _>>()?;
        rows.into_iter().map(to_template).collect()
    }

    pub fn template(&self, name: &str) -> Result<Option<Template>, StoreError> {
        self.conn()
            .query_row(
                "SELECT name, environment, gateway, services, created_at, updated_at \
                 FROM templates WHERE name = ?1",
                [name],
                template_row,
            )
            .optional()?
            .map(to_template)
            .transpose()
    }

    pub fn put_template(
        &self,
        name: &str,
        environment: Option<&str>,
        gateway: Option<&RepoBranch>,
        services: &[RepoBranch],
        create: bool,
    ) -> Result<bool, StoreError> {
        let gateway = gateway
            .map(serde_json::to_string)
            .transpose()
            .map_err(json_err)?;
        let services = serde_json::to_string(services).map_err(json_err)?;
        let now = now_rfc3339();
        let changed = if create {
            self.conn().execute(
                "INSERT INTO templates (name, environment, gateway, services, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![name, environment, gateway, services, now],
            )?
        } else {
            self.conn().execute(
                "UPDATE templates SET environment = ?2, gateway = ?3, services = ?4, updated_at = ?5 \
                 WHERE name = ?1",
                params![name, environment, gateway, services, now],
            )?
        };
        Ok(changed > 0)
    }

    pub fn template_users(&self, name: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT 'sandbox ' || name FROM sandboxes WHERE template = ?1")?;
        let rows = stmt.query_map([name], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn delete_template(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM templates WHERE name = ?1", [name])?
            > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_branch_and_overrides_come_only_from_objects() {
        let ok: RepoBranch = serde_json::from_str(
            r#"{"repo": "users", "branch": "main", "overrides": {"port": 9000}}"#,
        )
        .expect("an object");
        assert_eq!(ok.overrides.port, Some(9000));
        let absent: RepoBranch =
            serde_json::from_str(r#"{"repo": "users", "branch": "main"}"#).expect("no overrides");
        assert!(absent.overrides.is_empty());
        let array_overrides = serde_json::from_str::<RepoBranch>(
            r#"{"repo": "users", "branch": "main", "overrides": [null, null]}"#,
        );
        assert!(array_overrides.is_err(), "overrides as an array");
        let many: Vec<RepoBranch> = object_only::many(&mut serde_json::Deserializer::from_str(
            r#"[{"repo": "users", "branch": "main"}]"#,
        ))
        .expect("objects");
        assert_eq!(many.len(), 1);
        let arrays = object_only::many::<_, RepoBranch>(&mut serde_json::Deserializer::from_str(
            r#"[["users", "main"]]"#,
        ));
        assert!(arrays.is_err(), "a service as an array");
    }
}
