//! Templates (environment, gateway repo and branch, services with default
//! branches) and the environments (named env vars) they run with.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

// Secret values are read only through `Store::environment_secrets`, whose
// type cannot be serialized: `Environment` never holds them.
use sdp_api::ResourceSpec;
pub use sdp_api::templates::{Environment, RepoBranch, Template, object_only};

use super::guard::{Editor, Guarded, guard, write_transaction};
use super::{Store, StoreError, columns, now_rfc3339};

/// Secret variables' values, for the containers that get them: no
/// `Serialize`, and a `Debug` that names the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretVars {
    values: BTreeMap<String, String>,
    /// When their environment was last written: changes whenever a
    /// secret may have.
    written_at: String,
}

impl SecretVars {
    pub fn new(values: BTreeMap<String, String>, written_at: String) -> Self {
        Self { values, written_at }
    }

    pub fn expose(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    pub fn written_at(&self) -> &str {
        &self.written_at
    }
}

impl std::fmt::Debug for SecretVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

/// What a write of an environment changes: its plain variables (all of
/// them, replaced), and its secrets (each set to a value, or removed with
/// `None`; secrets not named are kept, except those `vars` now names).
pub struct EnvironmentWrite<'a> {
    pub vars: &'a BTreeMap<String, String>,
    pub secrets: &'a BTreeMap<String, Option<String>>,
}

fn json_err(err: serde_json::Error) -> StoreError {
    StoreError::Malformed(err.to_string())
}

const ENVIRONMENT_COLUMNS: &str = "name, vars, secrets, created_by, created_at, updated_at";

/// name, vars JSON, secrets JSON, created_by, created_at, updated_at.
type EnvironmentRow = (
    String,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
);

fn environment_row(row: &Row<'_>) -> rusqlite::Result<EnvironmentRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        columns::timestamp(row, 4)?,
        columns::timestamp(row, 5)?,
    ))
}

fn to_environment(
    (name, vars, secrets, created_by, created_at, updated_at): EnvironmentRow,
) -> Result<Environment, StoreError> {
    let secrets: BTreeMap<String, String> = serde_json::from_str(&secrets).map_err(json_err)?;
    Ok(Environment {
        name,
        vars: serde_json::from_str(&vars).map_err(json_err)?,
        secret_keys: secrets.into_keys().collect(),
        created_by,
        created_at,
        updated_at,
    })
}

const TEMPLATE_COLUMNS: &str =
    "name, environment, gateway, services, created_by, created_at, updated_at, tests, resources";

/// name, environment, gateway JSON, services JSON, created_by, created_at,
/// updated_at, tests JSON, resources JSON.
type TemplateRow = (
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<String>,
    String,
);

fn template_row(row: &Row<'_>) -> rusqlite::Result<TemplateRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        columns::timestamp(row, 5)?,
        columns::timestamp(row, 6)?,
        row.get(7)?,
        row.get(8)?,
    ))
}

fn to_template(
    (name, environment, gateway, services, created_by, created_at, updated_at, tests, resources): TemplateRow,
) -> Result<Template, StoreError> {
    Ok(Template {
        name,
        environment,
        gateway: gateway
            .map(|g| serde_json::from_str(&g))
            .transpose()
            .map_err(json_err)?,
        services: serde_json::from_str(&services).map_err(json_err)?,
        tests: tests
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(json_err)?,
        resources: serde_json::from_str(&resources).map_err(json_err)?,
        created_by,
        created_at,
        updated_at,
    })
}

/// Applies `write` to the secrets `current` holds.
fn merge_secrets(current: &mut BTreeMap<String, String>, write: &EnvironmentWrite<'_>) {
    for (key, value) in write.secrets {
        match value {
            Some(value) => current.insert(key.clone(), value.clone()),
            None => current.remove(key),
        };
    }
    current.retain(|key, _| !write.vars.contains_key(key));
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
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments ORDER BY name"
        ))?;
        let rows: Vec<_> = stmt
            .query_map([], environment_row)?
            .collect::<Result<_, _>>()?;
        rows.into_iter().map(to_environment).collect()
    }

    pub fn environment(&self, name: &str) -> Result<Option<Environment>, StoreError> {
        self.read()
            .query_row(
                &format!("SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE name = ?1"),
                [name],
                environment_row,
            )
            .optional()?
            .map(to_environment)
            .transpose()
    }

    /// The values of an environment's secret variables (none if it does
    /// not exist): only for what containers get.
    pub fn environment_secrets(&self, name: &str) -> Result<SecretVars, StoreError> {
        let row: Option<(String, String)> = self
            .read()
            .query_row(
                "SELECT secrets, updated_at FROM environments WHERE name = ?1",
                [name],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            Some((json, written_at)) => {
                SecretVars::new(serde_json::from_str(&json).map_err(json_err)?, written_at)
            }
            None => SecretVars::default(),
        })
    }

    /// Creates an environment made by `created_by`; a duplicate name is a
    /// constraint error.
    pub fn create_environment(
        &self,
        name: &str,
        write: &EnvironmentWrite<'_>,
        created_by: &str,
    ) -> Result<(), StoreError> {
        let mut secrets = BTreeMap::new();
        merge_secrets(&mut secrets, write);
        let vars = serde_json::to_string(write.vars).map_err(json_err)?;
        let secrets = serde_json::to_string(&secrets).map_err(json_err)?;
        self.conn().execute(
            "INSERT INTO environments (name, vars, secrets, created_by, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![name, vars, secrets, created_by, now_rfc3339()],
        )?;
        Ok(())
    }

    /// Replaces an environment's plain variables and applies the secret
    /// changes of `write`, if `editor` may: checked and written in one
    /// transaction.
    pub fn update_environment(
        &self,
        name: &str,
        write: &EnvironmentWrite<'_>,
        editor: Editor<'_>,
    ) -> Result<Guarded, StoreError> {
        let mut conn = self.conn();
        let tx = write_transaction(&mut conn)?;
        if let Some(verdict) = guard(&tx, "environments", name, editor)? {
            return Ok(verdict);
        }
        let current: String = tx.query_row(
            "SELECT secrets FROM environments WHERE name = ?1",
            [name],
            |row| row.get(0),
        )?;
        let mut secrets: BTreeMap<String, String> =
            serde_json::from_str(&current).map_err(json_err)?;
        merge_secrets(&mut secrets, write);
        let vars = serde_json::to_string(write.vars).map_err(json_err)?;
        let secrets = serde_json::to_string(&secrets).map_err(json_err)?;
        tx.execute(
            "UPDATE environments SET vars = ?2, secrets = ?3, updated_at = ?4 WHERE name = ?1",
            params![name, vars, secrets, now_rfc3339()],
        )?;
        tx.commit()?;
        Ok(Guarded::Done)
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

    /// Deletes an environment if `editor` may (a reference from a template
    /// or sandbox is a constraint error).
    pub fn delete_environment(
        &self,
        name: &str,
        editor: Editor<'_>,
    ) -> Result<Guarded, StoreError> {
        self.delete_guarded("environments", name, editor)
    }

    fn delete_guarded(
        &self,
        table: &str,
        name: &str,
        editor: Editor<'_>,
    ) -> Result<Guarded, StoreError> {
        let mut conn = self.conn();
        let tx = write_transaction(&mut conn)?;
        if let Some(verdict) = guard(&tx, table, name, editor)? {
            return Ok(verdict);
        }
        tx.execute(&format!("DELETE FROM {table} WHERE name = ?1"), [name])?;
        tx.commit()?;
        Ok(Guarded::Done)
    }

    pub fn templates(&self) -> Result<Vec<Template>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {TEMPLATE_COLUMNS} FROM templates ORDER BY name"
        ))?;
        let rows: Vec<_> = stmt
            .query_map([], template_row)?
            .collect::<Result<_, _>>()?;
        rows.into_iter().map(to_template).collect()
    }

    pub fn template(&self, name: &str) -> Result<Option<Template>, StoreError> {
        self.read()
            .query_row(
                &format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE name = ?1"),
                [name],
                template_row,
            )
            .optional()?
            .map(to_template)
            .transpose()
    }

    /// Creates a template made by `created_by`; a duplicate name is a
    /// constraint error.
    pub fn create_template(
        &self,
        name: &str,
        environment: Option<&str>,
        gateway: Option<&RepoBranch>,
        services: &[RepoBranch],
        resources: &[ResourceSpec],
        created_by: &str,
    ) -> Result<(), StoreError> {
        let gateway = gateway
            .map(serde_json::to_string)
            .transpose()
            .map_err(json_err)?;
        let services = serde_json::to_string(services).map_err(json_err)?;
        let resources = serde_json::to_string(resources).map_err(json_err)?;
        self.conn().execute(
            "INSERT INTO templates (name, environment, gateway, services, created_by, created_at, updated_at, resources) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
            params![name, environment, gateway, services, created_by, now_rfc3339(), resources],
        )?;
        Ok(())
    }

    /// Replaces a template's environment, gateway and services, if
    /// `editor` may: checked and written in one transaction.
    pub fn update_template(
        &self,
        name: &str,
        environment: Option<&str>,
        gateway: Option<&RepoBranch>,
        services: &[RepoBranch],
        resources: &[ResourceSpec],
        editor: Editor<'_>,
    ) -> Result<Guarded, StoreError> {
        let gateway = gateway
            .map(serde_json::to_string)
            .transpose()
            .map_err(json_err)?;
        let services = serde_json::to_string(services).map_err(json_err)?;
        let resources = serde_json::to_string(resources).map_err(json_err)?;
        let mut conn = self.conn();
        let tx = write_transaction(&mut conn)?;
        if let Some(verdict) = guard(&tx, "templates", name, editor)? {
            return Ok(verdict);
        }
        tx.execute(
            "UPDATE templates SET environment = ?2, gateway = ?3, services = ?4, updated_at = ?5, \
             resources = ?6 WHERE name = ?1",
            params![
                name,
                environment,
                gateway,
                services,
                now_rfc3339(),
                resources
            ],
        )?;
        tx.commit()?;
        Ok(Guarded::Done)
    }

    /// Sets a template's test settings (`None` clears them); called by
    /// the template's create and replace right after they wrote it.
    pub fn set_template_tests(
        &self,
        name: &str,
        tests: Option<&sdp_api::TestSettings>,
    ) -> Result<(), StoreError> {
        let tests = tests
            .map(serde_json::to_string)
            .transpose()
            .map_err(json_err)?;
        self.conn().execute(
            "UPDATE templates SET tests = ?2 WHERE name = ?1",
            params![name, tests],
        )?;
        Ok(())
    }

    pub fn template_users(&self, name: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT 'sandbox ' || name FROM sandboxes WHERE template = ?1")?;
        let rows = stmt.query_map([name], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a template if `editor` may.
    pub fn delete_template(&self, name: &str, editor: Editor<'_>) -> Result<Guarded, StoreError> {
        self.delete_guarded("templates", name, editor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("sdp.db")).expect("store");
        (dir, store)
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const ALICE: Editor<'static> = Editor {
        user: "alice",
        admin: false,
    };
    const BOB: Editor<'static> = Editor {
        user: "bob",
        admin: false,
    };
    const ADMIN: Editor<'static> = Editor {
        user: "root",
        admin: true,
    };

    #[test]
    fn secrets_are_listed_by_name_and_changed_one_by_one() {
        let (_dir, store) = store();
        let plain = vars(&[("USERS_URL", "https://users.ocp")]);
        let secrets = BTreeMap::from([
            ("API_TOKEN".to_owned(), Some("t0ken".to_owned())),
            ("DB_PASSWORD".to_owned(), Some("pw".to_owned())),
        ]);
        let write = EnvironmentWrite {
            vars: &plain,
            secrets: &secrets,
        };
        store
            .create_environment("base", &write, "alice")
            .expect("create");
        let shown = store.environment("base").expect("read").expect("exists");
        assert_eq!(shown.vars, plain);
        assert_eq!(shown.secret_keys, ["API_TOKEN", "DB_PASSWORD"]);
        assert!(
            !serde_json::to_string(&shown)
                .expect("json")
                .contains("t0ken")
        );
        assert_eq!(
            format!("{:?}", store.environment_secrets("base").expect("secrets")),
            r#"{"API_TOKEN", "DB_PASSWORD"}"#
        );

        // Plain vars replaced; one secret changed, one removed, a plain
        // var taking the name of a secret makes it plain.
        let plain = vars(&[("MODE", "test"), ("DB_PASSWORD", "now-plain")]);
        let secrets = BTreeMap::from([("NEW".to_owned(), Some("n".to_owned()))]);
        let write = EnvironmentWrite {
            vars: &plain,
            secrets: &secrets,
        };
        assert_eq!(
            store
                .update_environment("base", &write, ALICE)
                .expect("update"),
            Guarded::Done
        );
        let secrets = store.environment_secrets("base").expect("secrets");
        assert_eq!(
            secrets.expose(),
            &vars(&[("API_TOKEN", "t0ken"), ("NEW", "n")])
        );
        let removal = BTreeMap::from([("API_TOKEN".to_owned(), None)]);
        let write = EnvironmentWrite {
            vars: &plain,
            secrets: &removal,
        };
        store
            .update_environment("base", &write, ALICE)
            .expect("update");
        let shown = store.environment("base").expect("read").expect("exists");
        assert_eq!(shown.secret_keys, ["NEW"]);
        assert_eq!(shown.vars, plain);
    }

    #[test]
    fn only_the_creator_or_an_admin_changes_and_an_unrecorded_creator_means_admins_only() {
        let (_dir, store) = store();
        let empty = BTreeMap::new();
        let none = BTreeMap::new();
        let write = EnvironmentWrite {
            vars: &empty,
            secrets: &none,
        };
        store
            .create_environment("mine", &write, "alice")
            .expect("create");
        assert_eq!(
            store
                .update_environment("mine", &write, BOB)
                .expect("update"),
            Guarded::NotYours(Some("alice".into()))
        );
        assert_eq!(
            store.delete_environment("mine", BOB).expect("delete"),
            Guarded::NotYours(Some("alice".into()))
        );
        assert_eq!(
            store
                .update_environment("mine", &write, ADMIN)
                .expect("update"),
            Guarded::Done
        );
        assert_eq!(
            store
                .update_environment("gone", &write, ADMIN)
                .expect("update"),
            Guarded::NotFound
        );
        // A row from before creators were recorded.
        store
            .conn()
            .execute(
                "INSERT INTO templates (name, services, created_at, updated_at) VALUES ('old', '[]', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
                [],
            )
            .expect("insert");
        assert_eq!(
            store
                .update_template("old", None, None, &[], &[], ALICE)
                .expect("update"),
            Guarded::NotYours(None)
        );
        assert_eq!(
            store.delete_template("old", ADMIN).expect("delete"),
            Guarded::Done
        );
        assert_eq!(
            store.delete_environment("mine", ALICE).expect("delete"),
            Guarded::Done
        );
        assert!(store.environment("mine").expect("read").is_none());
    }

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
