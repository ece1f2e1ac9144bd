//! A sandbox's own env for its services (`service_env`): one JSON object
//! per (sandbox, repo), merged over the template's env for the service at
//! deploy. The rows go with their sandbox.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, now_rfc3339};

impl Store {
    /// The sandbox's env for `repo` (empty if none is set).
    pub fn service_env(
        &self,
        sandbox: &str,
        repo: &str,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let json: Option<String> = self
            .conn()
            .query_row(
                "SELECT env FROM service_env WHERE sandbox = ?1 AND repo = ?2",
                params![sandbox, repo],
                |row| row.get(0),
            )
            .optional()?;
        match json {
            Some(json) => {
                serde_json::from_str(&json).map_err(|e| StoreError::Malformed(e.to_string()))
            }
            None => Ok(BTreeMap::new()),
        }
    }

    /// The keys of the sandbox's env for each of its repos that has one.
    pub fn service_env_keys(
        &self,
        sandbox: &str,
    ) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let rows: Vec<(String, String)> = {
            let conn = self.conn();
            let mut stmt =
                conn.prepare_cached("SELECT repo, env FROM service_env WHERE sandbox = ?1")?;
            let rows = stmt.query_map([sandbox], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        rows.into_iter()
            .map(|(repo, json)| {
                let env: BTreeMap<String, String> = serde_json::from_str(&json)
                    .map_err(|e| StoreError::Malformed(e.to_string()))?;
                Ok((repo, env.into_keys().collect()))
            })
            .collect()
    }

    /// Replaces the sandbox's env for `repo` (an empty one removes the
    /// row). `false` if the sandbox is gone: no row outlives it.
    pub fn set_service_env(
        &self,
        sandbox: &str,
        repo: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<bool, StoreError> {
        let conn = self.conn();
        if env.is_empty() {
            conn.execute(
                "DELETE FROM service_env WHERE sandbox = ?1 AND repo = ?2",
                params![sandbox, repo],
            )?;
            let exists = conn
                .query_row("SELECT 1 FROM sandboxes WHERE name = ?1", [sandbox], |_| {
                    Ok(())
                })
                .optional()?;
            return Ok(exists.is_some());
        }
        let json = serde_json::to_string(env).map_err(|e| StoreError::Malformed(e.to_string()))?;
        // One statement: a sandbox deleted meanwhile gets no row.
        let written = conn.execute(
            "INSERT INTO service_env (sandbox, repo, env, updated_at) \
             SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM sandboxes WHERE name = ?1) \
             ON CONFLICT (sandbox, repo) DO UPDATE SET env = excluded.env, \
             updated_at = excluded.updated_at",
            params![sandbox, repo, json, now_rfc3339()],
        )?;
        Ok(written > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sandboxes::NewSandbox;

    #[test]
    fn env_is_replaced_removed_and_goes_with_the_sandbox() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("sdp.db")).expect("open");
        let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(
            !store
                .set_service_env("ghost", "users", &env(&[("A", "1")]))
                .expect("write"),
            "no row for a sandbox that does not exist"
        );
        store
            .insert_sandbox(&NewSandbox {
                name: "alpha",
                owner: "alice",
                template: None,
                environment: None,
                ttl_hours: 1,
                pinned: false,
            })
            .expect("sandbox");
        assert!(
            store
                .service_env("alpha", "users")
                .expect("read")
                .is_empty()
        );
        assert!(
            store
                .set_service_env("alpha", "users", &env(&[("A", "1"), ("B", "2")]))
                .expect("write")
        );
        store
            .set_service_env("alpha", "users", &env(&[("B", "3")]))
            .expect("replace");
        assert_eq!(
            store.service_env("alpha", "users").expect("read"),
            env(&[("B", "3")])
        );
        store
            .set_service_env("alpha", "orders", &env(&[("C", "1")]))
            .expect("write");
        store
            .set_service_env("alpha", "orders", &BTreeMap::new())
            .expect("remove");
        assert_eq!(
            store.service_env_keys("alpha").expect("keys"),
            BTreeMap::from([("users".to_owned(), vec!["B".to_owned()])])
        );
        store.remove_sandbox("alpha").expect("remove");
        assert!(store.service_env_keys("alpha").expect("keys").is_empty());
    }
}
