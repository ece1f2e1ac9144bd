//! The resources a sandbox declares itself (`sandbox_resource_specs`: one
//! JSON list per sandbox, gone with it), and the periodic size of the
//! resources that run (`sandbox_resources.size_bytes`, `size_at`).

use rusqlite::{OptionalExtension, params};
use sdp_api::ResourceSpec;

use super::{Store, StoreError, now_rfc3339};

fn json_err(err: serde_json::Error) -> StoreError {
    StoreError::Malformed(format!("a sandbox's resources: {err}"))
}

fn read_specs(conn: &rusqlite::Connection, sandbox: &str) -> Result<Vec<ResourceSpec>, StoreError> {
    let text: Option<String> = conn
        .query_row(
            "SELECT resources FROM sandbox_resource_specs WHERE sandbox = ?1",
            [sandbox],
            |row| row.get(0),
        )
        .optional()?;
    match text {
        Some(text) => serde_json::from_str(&text).map_err(json_err),
        None => Ok(Vec::new()),
    }
}

impl Store {
    /// The sandbox's own resources (none if it declares none).
    pub fn sandbox_resource_specs(&self, sandbox: &str) -> Result<Vec<ResourceSpec>, StoreError> {
        read_specs(&self.conn(), sandbox)
    }

    /// Changes the sandbox's own resources with `change` (given the list as
    /// it is), under the store's lock: two changes at once cannot lose one.
    /// `Ok(None)` if the sandbox is gone; `change`'s error changes nothing.
    pub fn change_sandbox_resource_specs<E>(
        &self,
        sandbox: &str,
        change: impl FnOnce(Vec<ResourceSpec>) -> Result<Vec<ResourceSpec>, E>,
    ) -> Result<Result<Option<Vec<ResourceSpec>>, E>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM sandboxes WHERE name = ?1)",
            [sandbox],
            |row| row.get(0),
        )?;
        if !exists {
            return Ok(Ok(None));
        }
        let specs = match change(read_specs(&tx, sandbox)?) {
            Ok(specs) => specs,
            Err(err) => return Ok(Err(err)),
        };
        let text = serde_json::to_string(&specs).map_err(json_err)?;
        tx.execute(
            "INSERT INTO sandbox_resource_specs (sandbox, resources, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (sandbox) DO UPDATE SET resources = excluded.resources, \
               updated_at = excluded.updated_at",
            params![sandbox, text, now_rfc3339()],
        )?;
        tx.commit()?;
        Ok(Ok(Some(specs)))
    }

    /// Forgets the resource's row (its password and placement): a resource
    /// declared again later starts afresh.
    pub fn forget_resource(&self, sandbox: &str, name: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM sandbox_resources WHERE sandbox = ?1 AND name = ?2",
            params![sandbox, name],
        )?;
        Ok(())
    }

    /// The agents that hold a ready resource, by id.
    pub fn resource_agents(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT agent_id FROM sandbox_resources \
             WHERE state = 'ready' AND agent_id IS NOT NULL ORDER BY agent_id",
        )?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a measured size of the resource, if it is still the one on
    /// `agent_id`. Returns whether a row changed.
    pub fn resource_size(
        &self,
        sandbox: &str,
        name: &str,
        agent_id: &str,
        size_bytes: u64,
    ) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "UPDATE sandbox_resources SET size_bytes = ?4, size_at = ?5 \
             WHERE sandbox = ?1 AND name = ?2 AND agent_id = ?3",
            params![
                sandbox,
                name,
                agent_id,
                i64::try_from(size_bytes).unwrap_or(i64::MAX),
                now_rfc3339()
            ],
        )?;
        Ok(changed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::NewSandbox;
    use super::*;
    use sdp_bus::{ResourceEngine, Secret};

    fn spec(name: &str, var: &str) -> ResourceSpec {
        ResourceSpec {
            name: name.into(),
            engine: ResourceEngine::Redis,
            env_var: var.into(),
            seed: None,
        }
    }

    #[test]
    fn own_resources_change_whole_go_with_the_sandbox_and_sizes_follow_the_agent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("sdp.db")).expect("store");
        let add = |s: ResourceSpec| {
            move |mut list: Vec<ResourceSpec>| -> Result<_, String> {
                list.push(s);
                Ok(list)
            }
        };
        assert_eq!(
            store
                .change_sandbox_resource_specs("box", add(spec("a", "A")))
                .expect("store"),
            Ok(None),
            "no sandbox, no list"
        );
        store
            .insert_sandbox(&NewSandbox {
                name: "box",
                owner: "alice",
                template: None,
                environment: None,
                ttl_hours: 1,
                pinned: false,
            })
            .expect("sandbox");
        store
            .change_sandbox_resource_specs("box", add(spec("a", "A")))
            .expect("store")
            .expect("changed");
        let refused = store
            .change_sandbox_resource_specs("box", |_| Err::<Vec<ResourceSpec>, _>("no"))
            .expect("store");
        assert_eq!(refused, Err("no"));
        assert_eq!(
            store.sandbox_resource_specs("box").expect("specs"),
            vec![spec("a", "A")],
            "a refused change changes nothing"
        );

        store
            .declare_resource("box", &spec("a", "A"), &Secret::new("p".repeat(32)))
            .expect("declare");
        assert!(store.resource_agents().expect("agents").is_empty());
        store
            .resource_ready("box", "a", "micro-1", "10.0.0.5", 41000, 4096)
            .expect("ready");
        assert_eq!(store.resource_agents().expect("agents"), ["micro-1"]);
        assert!(!store.resource_size("box", "a", "micro-2", 1).expect("size"));
        assert!(
            store
                .resource_size("box", "a", "micro-1", 9000)
                .expect("size")
        );
        let row = store.resource("box", "a").expect("row").expect("there");
        assert_eq!(row.size_bytes, 9000);
        assert!(row.size_at.is_some());
        store.forget_resource("box", "a").expect("forget");
        assert!(store.resource("box", "a").expect("row").is_none());

        store.remove_sandbox("box").expect("remove");
        assert!(
            store
                .sandbox_resource_specs("box")
                .expect("specs")
                .is_empty()
        );
    }
}
