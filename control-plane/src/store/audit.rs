//! Audit rows: appended in batches by the audit writer, read a page at a
//! time newest first, removed only when older than `audit.keep_for`.
//! There is no update: the trail is append-only.

use chrono::{DateTime, Utc};
use rusqlite::params_from_iter;
use rusqlite::types::Value;
use sdp_api::{AuditAction, AuditEntry, AuditOutcome};

use super::columns::{timestamp, timestamp_text};
use super::{Store, StoreError};

/// A row to append.
#[derive(Clone, Debug)]
pub struct NewAuditEntry {
    pub at: DateTime<Utc>,
    pub actor: Option<String>,
    pub action: AuditAction,
    pub target: Option<String>,
    pub sandbox: Option<String>,
    pub address: Option<String>,
    pub outcome: AuditOutcome,
    pub message: Option<String>,
}

/// Which rows a reader gets.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Not an admin: only rows this user acted in, or of a sandbox this
    /// user owns (made since the sandbox was, so a reused name does not
    /// show its earlier owner's trail).
    pub visible_to: Option<String>,
    pub actor: Option<String>,
    pub sandbox: Option<String>,
    pub action: Option<AuditAction>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// The page starts after the entry of this id (keyset paging).
    pub after: Option<i64>,
    /// Rows to skip: only for the deprecated `page` parameter of
    /// `GET /api/audit` (a cursor is stable under appends, an offset not).
    pub offset: u64,
    pub limit: u32,
}

impl Store {
    /// Appends `entries` in one transaction.
    pub fn append_audit(&self, entries: &[NewAuditEntry]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO audit (at, actor, action, target, sandbox, address, outcome, message) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for entry in entries {
                insert.execute(rusqlite::params![
                    timestamp_text(entry.at),
                    entry.actor,
                    entry.action.as_str(),
                    entry.target,
                    entry.sandbox,
                    entry.address,
                    entry.outcome.as_str(),
                    entry.message,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Up to `filter.limit` rows after `filter.after` (and
    /// `filter.offset`), newest first.
    pub fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let mut sql = String::from(
            "SELECT id, at, actor, action, target, sandbox, address, outcome, message \
             FROM audit WHERE 1 = 1",
        );
        // Each clause takes the next parameter (`?N`, in order).
        let mut args: Vec<Value> = Vec::new();
        let mut clause = |sql: &mut String, text: &str, value: Value| {
            args.push(value);
            sql.push_str(&text.replace("?#", &format!("?{}", args.len())));
        };
        if let Some(user) = &filter.visible_to {
            clause(
                &mut sql,
                " AND (actor = ?# OR sandbox IN (SELECT name FROM sandboxes s \
                 WHERE s.owner = ?# AND s.created_at <= audit.at))",
                Value::Text(user.clone()),
            );
        }
        if let Some(actor) = &filter.actor {
            clause(&mut sql, " AND actor = ?#", Value::Text(actor.clone()));
        }
        if let Some(sandbox) = &filter.sandbox {
            clause(&mut sql, " AND sandbox = ?#", Value::Text(sandbox.clone()));
        }
        if let Some(action) = filter.action {
            clause(
                &mut sql,
                " AND action = ?#",
                Value::Text(action.as_str().into()),
            );
        }
        if let Some(since) = filter.since {
            clause(
                &mut sql,
                " AND at >= ?#",
                Value::Text(timestamp_text(since)),
            );
        }
        if let Some(until) = filter.until {
            clause(&mut sql, " AND at < ?#", Value::Text(timestamp_text(until)));
        }
        if let Some(after) = filter.after {
            clause(&mut sql, " AND id < ?#", Value::Integer(after));
        }
        clause(
            &mut sql,
            " ORDER BY id DESC LIMIT ?#",
            Value::Integer(filter.limit.into()),
        );
        clause(
            &mut sql,
            " OFFSET ?#",
            Value::Integer(i64::try_from(filter.offset).unwrap_or(i64::MAX)),
        );
        let conn = self.read();
        let mut statement = conn.prepare(&sql)?;
        let rows = statement.query_map(params_from_iter(args), |row| {
            let action: String = row.get(3)?;
            let outcome: String = row.get(7)?;
            Ok((
                AuditEntry {
                    id: row.get(0)?,
                    at: timestamp(row, 1)?,
                    actor: row.get(2)?,
                    action: AuditAction::Login,
                    target: row.get(4)?,
                    sandbox: row.get(5)?,
                    address: row.get(6)?,
                    outcome: AuditOutcome::Ok,
                    message: row.get(8)?,
                },
                action,
                outcome,
            ))
        })?;
        let mut entries = Vec::new();
        for row in rows {
            let (mut entry, action, outcome) = row?;
            entry.action = AuditAction::parse(&action)
                .ok_or_else(|| StoreError::Malformed(format!("audit action {action}")))?;
            entry.outcome = match outcome.as_str() {
                "ok" => AuditOutcome::Ok,
                "denied" => AuditOutcome::Denied,
                "failed" => AuditOutcome::Failed,
                other => return Err(StoreError::Malformed(format!("audit outcome {other}"))),
            };
            entries.push(entry);
        }
        Ok(entries)
    }

    /// Removes the rows from before `cutoff`; answers how many.
    pub fn prune_audit(&self, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM audit WHERE at < ?1", [timestamp_text(cutoff)])?)
    }
}
