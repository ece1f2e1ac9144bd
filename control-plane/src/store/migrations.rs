//! Schema migrations, applied in order; `PRAGMA user_version` records how
//! many ran. Append new ones; never edit one that has shipped.

use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: deployments, their phases, every event, sandboxes, sessions.
    r#"
    CREATE TABLE sandboxes (
        name        TEXT PRIMARY KEY,
        owner       TEXT NOT NULL,
        created_at  TEXT NOT NULL
    );
    CREATE TABLE deployments (
        id          TEXT PRIMARY KEY,
        sandbox     TEXT NOT NULL,
        repo        TEXT NOT NULL,
        branch      TEXT NOT NULL,
        kind        TEXT NOT NULL,
        agent_id    TEXT,
        status      TEXT NOT NULL,
        commit_sha  TEXT,
        url         TEXT,
        error       TEXT,
        created_by  TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        finished_at TEXT,
        last_seq    INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX deployments_by_created ON deployments (created_at DESC, id DESC);
    CREATE INDEX deployments_by_status ON deployments (status);
    CREATE TABLE phases (
        deployment_id TEXT NOT NULL,
        phase         TEXT NOT NULL,
        at            TEXT NOT NULL,
        PRIMARY KEY (deployment_id, phase)
    ) WITHOUT ROWID;
    CREATE TABLE events (
        deployment_id TEXT NOT NULL,
        seq           INTEGER NOT NULL,
        body          TEXT NOT NULL,
        PRIMARY KEY (deployment_id, seq)
    ) WITHOUT ROWID;
    -- Bytes of logs/<id>.log known to be written by a committed batch; the
    -- persister truncates to it before appending, so a crash between the
    -- file write and the commit cannot leave a line twice.
    CREATE TABLE log_files (
        deployment_id TEXT PRIMARY KEY,
        bytes         INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE sessions (
        token_hash  TEXT PRIMARY KEY,
        username    TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        last_seen   INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 2: the sandbox model: environments, templates, routes.
    r#"
    CREATE TABLE environments (
        name        TEXT PRIMARY KEY,
        vars        TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    );
    CREATE TABLE templates (
        name        TEXT PRIMARY KEY,
        environment TEXT REFERENCES environments (name),
        gateway     TEXT,
        services    TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    );
    ALTER TABLE sandboxes ADD COLUMN template TEXT REFERENCES templates (name);
    ALTER TABLE sandboxes ADD COLUMN environment TEXT REFERENCES environments (name);
    ALTER TABLE sandboxes ADD COLUMN ttl_hours INTEGER NOT NULL DEFAULT 72;
    ALTER TABLE sandboxes ADD COLUMN expires_at TEXT NOT NULL DEFAULT '9999-12-31T00:00:00.000Z';
    ALTER TABLE sandboxes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
    -- Routes set by a deployment of the sandbox or by hand; environment
    -- routes are derived from the sandbox's environment, not stored.
    CREATE TABLE routes (
        sandbox     TEXT NOT NULL,
        service     TEXT NOT NULL,
        target      TEXT NOT NULL,
        source      TEXT NOT NULL CHECK (source IN ('sandbox', 'manual')),
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (sandbox, service, source)
    ) WITHOUT ROWID;
    CREATE INDEX deployments_by_sandbox ON deployments (sandbox, repo, created_at DESC);
    "#,
    // 3: a gateway re-apply (same build, new routes) is marked as one; a
    // gateway deployment records a digest of the env and routes it got.
    r#"
    ALTER TABLE deployments ADD COLUMN reapply INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deployments ADD COLUMN inputs_digest TEXT;
    "#,
    // 4: services that follow their branch (push webhooks redeploy them:
    // "autodeploy" today, `store/autodeploys.rs`, which says why the table
    // keeps this name), and the newest push one could not be deployed for
    // (no service credential: "behind: deploy by hand").
    r#"
    CREATE TABLE service_follows (
        sandbox        TEXT NOT NULL,
        repo           TEXT NOT NULL,
        follow         INTEGER NOT NULL DEFAULT 0,
        pushed_commit  TEXT,
        pushed_at      TEXT,
        PRIMARY KEY (sandbox, repo)
    ) WITHOUT ROWID;
    CREATE INDEX service_follows_by_repo ON service_follows (repo) WHERE follow = 1;
    "#,
    // 5: a deployment may ask for a commit of its branch (the agent checks
    // it is on the branch); a redeploy (rollback) names the deployment
    // whose commit it deploys again.
    r#"
    ALTER TABLE deployments ADD COLUMN requested_commit TEXT;
    ALTER TABLE deployments ADD COLUMN redeploy_of TEXT;
    "#,
    // 6: environments and templates record who created them (only they or
    // an admin change them; a row from before has none: admins only), and
    // an environment's secret variables are kept apart from its plain ones
    // (written, never read back over the API).
    r#"
    ALTER TABLE environments ADD COLUMN created_by TEXT;
    ALTER TABLE environments ADD COLUMN secrets TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE templates ADD COLUMN created_by TEXT;
    "#,
    // 7: a sandbox's own env for one of its services (a JSON object), over
    // the template's env for it; gone with the sandbox.
    r#"
    CREATE TABLE service_env (
        sandbox     TEXT NOT NULL,
        repo        TEXT NOT NULL,
        env         TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (sandbox, repo)
    ) WITHOUT ROWID;
    "#,
    // 8: the audit trail, append-only (rows leave only by retention).
    r#"
    CREATE TABLE audit (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        at       TEXT NOT NULL,
        actor    TEXT,
        action   TEXT NOT NULL,
        target   TEXT,
        sandbox  TEXT,
        address  TEXT,
        outcome  TEXT NOT NULL,
        message  TEXT
    );
    CREATE INDEX audit_by_at ON audit (at);
    CREATE INDEX audit_by_sandbox ON audit (sandbox, id);
    CREATE INDEX audit_by_actor ON audit (actor, id);
    "#,
    // 9: a sandbox sleeps (its containers stopped) after a while with no
    // deploy and no preview request: its state (`awake`, `asleep`,
    // `waking`) and when it last saw one.
    r#"
    ALTER TABLE sandboxes ADD COLUMN power TEXT NOT NULL DEFAULT 'awake';
    ALTER TABLE sandboxes ADD COLUMN last_activity_at TEXT;
    "#,
    // 10: test runs (a command against a sandbox; its log is the
    // deployment log of the same id) and a template's test settings (JSON).
    r#"
    CREATE TABLE test_runs (
        id          TEXT PRIMARY KEY,
        sandbox     TEXT NOT NULL,
        repo        TEXT NOT NULL,
        branch      TEXT NOT NULL,
        commit_sha  TEXT,
        command     TEXT NOT NULL,
        junit_path  TEXT,
        status      TEXT NOT NULL,
        exit_code   INTEGER,
        junit       TEXT,
        error       TEXT,
        trigger     TEXT NOT NULL,
        agent_id    TEXT,
        created_by  TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX test_runs_by_sandbox ON test_runs (sandbox, created_at);
    ALTER TABLE templates ADD COLUMN tests TEXT;
    "#,
    // 11: sandbox resources: what a template declares, and each sandbox's
    // (its password kept like a secret value: read only where it is used)
    r#"
    ALTER TABLE templates ADD COLUMN resources TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE sandbox_resources (
        sandbox     TEXT NOT NULL,
        name        TEXT NOT NULL,
        engine      TEXT NOT NULL,
        env_var     TEXT NOT NULL,
        password    TEXT NOT NULL,
        agent_id    TEXT,
        host        TEXT,
        port        INTEGER,
        state       TEXT NOT NULL,
        error       TEXT,
        size_bytes  INTEGER NOT NULL DEFAULT 0,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (sandbox, name)
    ) WITHOUT ROWID;
    "#,
    // 12: notifications: each delivery of a build status or an outgoing
    // webhook with its last outcome (never a credential, a webhook by its
    // origin only), and a template's outgoing webhooks (gone with it).
    r#"
    CREATE TABLE deliveries (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        sandbox       TEXT NOT NULL,
        repo          TEXT NOT NULL,
        deployment_id TEXT,
        kind          TEXT NOT NULL,
        target        TEXT NOT NULL,
        event         TEXT NOT NULL,
        state         TEXT NOT NULL,
        commit_sha    TEXT,
        key           TEXT NOT NULL,
        outcome       TEXT NOT NULL,
        attempts      INTEGER NOT NULL DEFAULT 0,
        last_status   INTEGER,
        last_error    TEXT,
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
    );
    CREATE INDEX deliveries_by_sandbox ON deliveries (sandbox, id DESC);
    CREATE TABLE template_notify (
        template    TEXT PRIMARY KEY REFERENCES templates (name) ON DELETE CASCADE,
        targets     TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 13: an environment's outgoing webhooks (gone
    // with it), as a template's.
    r#"
    CREATE TABLE environment_notify (
        environment TEXT PRIMARY KEY REFERENCES environments (name) ON DELETE CASCADE,
        targets     TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 14: indexes for the keyset-paged lists, newest
    // first by (created_at, id) within a sandbox or a repo, so a page is a
    // range of an index, not a scan and a sort. A test run's list had an
    // index on (sandbox, created_at) only; this one ends in id too.
    r#"
    CREATE INDEX deployments_by_sandbox_created ON deployments (sandbox, created_at, id);
    CREATE INDEX deployments_by_repo_created ON deployments (repo, created_at, id);
    CREATE INDEX test_runs_by_sandbox_created ON test_runs (sandbox, created_at, id);
    DROP INDEX test_runs_by_sandbox;
    "#,
    // 15: the resources a sandbox declares
    // itself, over its template's (a JSON list of `ResourceSpec`, gone
    // with the sandbox), and when each resource's size was last measured.
    r#"
    CREATE TABLE sandbox_resource_specs (
        sandbox     TEXT PRIMARY KEY,
        resources   TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    ) WITHOUT ROWID;
    ALTER TABLE sandbox_resources ADD COLUMN size_at TEXT;
    "#,
    // 16: the sandbox views at team scale (`store/sandbox_rows.rs`). The
    // newest deployment of a service is the last entry of its range of
    // (sandbox, repo, created_at, id), ties by id included, so finding it
    // reads one entry, not the service's whole history (the index it
    // replaces had no id: ties were sorted apart). Running rows by
    // (sandbox, kind): a sandbox's running gateway, for its view and every
    // preview request, among a few rows.
    r#"
    CREATE INDEX deployments_by_service ON deployments (sandbox, repo, created_at, id);
    DROP INDEX deployments_by_sandbox;
    CREATE INDEX deployments_running ON deployments (sandbox, kind, created_at, id)
        WHERE status = 'running';
    "#,
];

pub fn apply(conn: &mut Connection) -> Result<(), StoreError> {
    let done: usize = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database from before creators and secrets (migration 5) keeps its
    /// environments and templates: no creator (admins only), no secrets.
    #[test]
    fn rows_from_before_creators_have_none_and_no_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sdp.db");
        {
            let mut conn = Connection::open(&path).expect("open");
            for (index, sql) in MIGRATIONS.iter().enumerate().take(5) {
                let tx = conn.transaction().expect("tx");
                tx.execute_batch(sql).expect("migration");
                tx.pragma_update(None, "user_version", index + 1)
                    .expect("version");
                tx.commit().expect("commit");
            }
            conn.execute_batch(
                "INSERT INTO environments (name, vars, created_at, updated_at) \
                 VALUES ('old', '{\"A\":\"1\"}', '2026-01-01T00:00:00.000Z', \
                   '2026-01-01T00:00:00.000Z'); \
                 INSERT INTO templates (name, environment, services, created_at, updated_at) \
                 VALUES ('old', 'old', '[]', '2026-01-01T00:00:00.000Z', \
                   '2026-01-01T00:00:00.000Z');",
            )
            .expect("rows of version 5");
        }
        let store = crate::store::Store::open(&path).expect("migrated");
        let environment = store.environment("old").expect("read").expect("kept");
        assert_eq!(environment.created_by, None);
        assert!(environment.secret_keys.is_empty());
        assert_eq!(environment.vars.get("A").map(String::as_str), Some("1"));
        assert!(
            store
                .environment_secrets("old")
                .expect("secrets")
                .expose()
                .is_empty()
        );
        let template = store.template("old").expect("read").expect("kept");
        assert_eq!(template.created_by, None);
    }
}
