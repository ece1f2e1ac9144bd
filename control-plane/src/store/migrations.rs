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
