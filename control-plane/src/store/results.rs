//! What a deployment reaching `running` changes beyond its own row, written
//! by the persister in the transaction that records the result, so that a
//! client that has seen the result reads its effects: the older running
//! deployments of the same (sandbox, service) are `stopped` (its container
//! replaced theirs), and a service (not the gateway) that is the newest
//! deployment of its repo in a sandbox that still exists takes its route
//! there.

use rusqlite::{Connection, params};
use sdp_bus::{Status, subject::KIND_GATEWAY};

/// The effects of deployment `id` running at `url`, as of `now`.
pub(crate) fn apply_running(
    conn: &Connection,
    id: &str,
    url: &str,
    now: &str,
) -> rusqlite::Result<()> {
    stop_superseded(conn, id, now)?;
    // Only the newest deployment of the service may take the route; a
    // torn-down sandbox keeps none.
    conn.execute(
        "INSERT INTO routes (sandbox, service, target, source, updated_at) \
         SELECT d.sandbox, d.repo, ?2, 'sandbox', ?3 FROM deployments d \
         WHERE d.id = ?1 AND d.kind != ?4 \
           AND EXISTS (SELECT 1 FROM sandboxes s WHERE s.name = d.sandbox) \
           AND NOT EXISTS (SELECT 1 FROM deployments n WHERE n.sandbox = d.sandbox \
               AND n.repo = d.repo AND (n.created_at > d.created_at \
               OR (n.created_at = d.created_at AND n.id > d.id))) \
         ON CONFLICT (sandbox, service, source) DO UPDATE SET target = excluded.target, \
         updated_at = excluded.updated_at",
        params![id, url, now, KIND_GATEWAY],
    )?;
    Ok(())
}

/// Marks the older running deployments of `id`'s (sandbox, service)
/// `stopped`; returns how many.
pub(crate) fn stop_superseded(conn: &Connection, id: &str, now: &str) -> rusqlite::Result<usize> {
    let older = format!(
        "SELECT o.id FROM deployments o, deployments d WHERE d.id = ?1 \
         AND o.sandbox = d.sandbox AND o.repo = d.repo AND o.id != d.id \
         AND o.status = '{}' AND o.created_at <= d.created_at",
        Status::Running.as_str()
    );
    conn.execute(
        &format!(
            "INSERT OR IGNORE INTO phases (deployment_id, phase, at) \
             SELECT id, '{}', ?2 FROM ({older})",
            Status::Stopped.as_str()
        ),
        params![id, now],
    )?;
    conn.execute(
        &format!(
            "UPDATE deployments SET status = '{}', updated_at = ?2 WHERE id IN ({older})",
            Status::Stopped.as_str()
        ),
        params![id, now],
    )
}
