//! Deliveries of build statuses and outgoing webhooks with their last
//! outcome (what the dashboard shows), and each template's outgoing
//! webhooks. A row never holds a credential: its `target` names a webhook
//! by its origin only.

use rusqlite::{OptionalExtension, Row, params};

pub use sdp_api::{BuildState, Delivery, DeliveryKind, DeliveryOutcome, NotifyEvent, NotifyTarget};

use super::guard::{Editor, Guarded, guard, write_transaction};
use super::keyset::{PageOf, Select};
use super::{Store, StoreError, columns, now_rfc3339};

/// Rows kept per sandbox: the oldest go as new ones come.
const KEPT_PER_SANDBOX: i64 = 200;

/// A delivery about to be made.
pub struct NewDelivery<'a> {
    pub sandbox: &'a str,
    pub repo: &'a str,
    pub deployment_id: Option<&'a str>,
    pub kind: DeliveryKind,
    pub target: &'a str,
    pub event: NotifyEvent,
    pub state: BuildState,
    pub commit: Option<&'a str>,
    pub key: &'a str,
}

/// The outcome of one attempt.
pub struct Attempt<'a> {
    pub outcome: DeliveryOutcome,
    pub attempts: u32,
    pub status: Option<u16>,
    pub error: Option<&'a str>,
}

const COLUMNS: &str = "id, sandbox, repo, deployment_id, kind, target, event, state, commit_sha, \
     key, outcome, attempts, last_status, last_error, created_at, updated_at";

fn kind_text(kind: DeliveryKind) -> &'static str {
    match kind {
        DeliveryKind::BuildStatus => "build_status",
        DeliveryKind::Webhook => "webhook",
    }
}

fn malformed(what: &str, text: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("bad {what} '{text}'").into(),
    )
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    let kind: String = row.get(4)?;
    let event: String = row.get(6)?;
    let state: String = row.get(7)?;
    let outcome: String = row.get(10)?;
    Ok(Delivery {
        id: row.get(0)?,
        sandbox: row.get(1)?,
        repo: row.get(2)?,
        deployment_id: row.get(3)?,
        kind: match kind.as_str() {
            "build_status" => DeliveryKind::BuildStatus,
            "webhook" => DeliveryKind::Webhook,
            _ => return Err(malformed("kind", &kind)),
        },
        target: row.get(5)?,
        event: NotifyEvent::parse(&event).ok_or_else(|| malformed("event", &event))?,
        state: match state.as_str() {
            "INPROGRESS" => BuildState::Inprogress,
            "SUCCESSFUL" => BuildState::Successful,
            "FAILED" => BuildState::Failed,
            _ => return Err(malformed("state", &state)),
        },
        commit: row.get(8)?,
        key: row.get(9)?,
        outcome: DeliveryOutcome::parse(&outcome).ok_or_else(|| malformed("outcome", &outcome))?,
        attempts: row.get(11)?,
        last_status: row.get(12)?,
        last_error: row.get(13)?,
        created_at: columns::timestamp(row, 14)?,
        updated_at: columns::timestamp(row, 15)?,
    })
}

impl Store {
    /// Records a pending delivery; returns its id. The sandbox's oldest
    /// rows beyond [`KEPT_PER_SANDBOX`] go.
    pub fn insert_delivery(&self, new: &NewDelivery<'_>) -> Result<i64, StoreError> {
        let conn = self.conn();
        let now = now_rfc3339();
        conn.execute(
            "INSERT INTO deliveries (sandbox, repo, deployment_id, kind, target, event, state, \
               commit_sha, key, outcome, attempts, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11, ?11)",
            params![
                new.sandbox,
                new.repo,
                new.deployment_id,
                kind_text(new.kind),
                new.target,
                new.event.as_str(),
                new.state.as_str(),
                new.commit,
                new.key,
                DeliveryOutcome::Pending.as_str(),
                now
            ],
        )?;
        let id = conn.last_insert_rowid();
        conn.execute(
            "DELETE FROM deliveries WHERE sandbox = ?1 AND id <= \
               (SELECT id FROM deliveries WHERE sandbox = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            params![new.sandbox, KEPT_PER_SANDBOX],
        )?;
        Ok(id)
    }

    /// Records how an attempt of delivery `id` went.
    pub fn record_attempt(&self, id: i64, attempt: &Attempt<'_>) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE deliveries SET outcome = ?2, attempts = ?3, last_status = ?4, \
               last_error = ?5, updated_at = ?6 WHERE id = ?1",
            params![
                id,
                attempt.outcome.as_str(),
                attempt.attempts,
                attempt.status,
                attempt.error,
                now_rfc3339()
            ],
        )?;
        Ok(())
    }

    /// Deliveries, newest first, of one sandbox or all: at most
    /// `page.limit` after the id `page.after`.
    pub fn deliveries(
        &self,
        sandbox: Option<&str>,
        page: &PageOf<i64>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut select = Select::from(COLUMNS, "deliveries");
        select.equals("sandbox", sandbox);
        select.by_id_desc(page.after, page.limit);
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(select.sql())?;
        let rows = stmt.query_map(select.args(), from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A template's outgoing webhooks (none set: empty).
    pub fn template_notify(&self, template: &str) -> Result<Vec<NotifyTarget>, StoreError> {
        self.notify_targets(Owner::Template, template)
    }

    /// An environment's outgoing webhooks (none set: empty).
    pub fn environment_notify(&self, environment: &str) -> Result<Vec<NotifyTarget>, StoreError> {
        self.notify_targets(Owner::Environment, environment)
    }

    /// Replaces a template's outgoing webhooks, if `editor` may change
    /// the template: checked and written in one transaction.
    pub fn set_template_notify(
        &self,
        template: &str,
        targets: &[NotifyTarget],
        editor: Editor<'_>,
    ) -> Result<Guarded, StoreError> {
        self.set_notify_targets(Owner::Template, template, targets, editor)
    }

    /// Replaces an environment's outgoing webhooks, if `editor` may change
    /// the environment.
    pub fn set_environment_notify(
        &self,
        environment: &str,
        targets: &[NotifyTarget],
        editor: Editor<'_>,
    ) -> Result<Guarded, StoreError> {
        self.set_notify_targets(Owner::Environment, environment, targets, editor)
    }

    fn notify_targets(&self, owner: Owner, name: &str) -> Result<Vec<NotifyTarget>, StoreError> {
        let (table, column) = owner.notify_table();
        let text: Option<String> = self
            .conn()
            .query_row(
                &format!("SELECT targets FROM {table} WHERE {column} = ?1"),
                [name],
                |row| row.get(0),
            )
            .optional()?;
        match text {
            Some(text) => {
                serde_json::from_str(&text).map_err(|e| StoreError::Malformed(e.to_string()))
            }
            None => Ok(Vec::new()),
        }
    }

    fn set_notify_targets(
        &self,
        owner: Owner,
        name: &str,
        targets: &[NotifyTarget],
        editor: Editor<'_>,
    ) -> Result<Guarded, StoreError> {
        let text =
            serde_json::to_string(targets).map_err(|e| StoreError::Malformed(e.to_string()))?;
        let (table, column) = owner.notify_table();
        let mut conn = self.conn();
        let tx = write_transaction(&mut conn)?;
        if let Some(verdict) = guard(&tx, owner.table(), name, editor)? {
            return Ok(verdict);
        }
        if targets.is_empty() {
            tx.execute(&format!("DELETE FROM {table} WHERE {column} = ?1"), [name])?;
        } else {
            tx.execute(
                &format!(
                    "INSERT INTO {table} ({column}, targets, updated_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT ({column}) DO UPDATE SET targets = ?2, updated_at = ?3"
                ),
                params![name, text, now_rfc3339()],
            )?;
        }
        tx.commit()?;
        Ok(Guarded::Done)
    }
}

/// Whose webhooks: a template's or an environment's (each kept in a
/// table of its own whose rows go with their owner).
#[derive(Clone, Copy)]
enum Owner {
    Template,
    Environment,
}

impl Owner {
    fn table(self) -> &'static str {
        match self {
            Owner::Template => "templates",
            Owner::Environment => "environments",
        }
    }

    /// The table of its webhooks and the column naming it.
    fn notify_table(self) -> (&'static str, &'static str) {
        match self {
            Owner::Template => ("template_notify", "template"),
            Owner::Environment => ("environment_notify", "environment"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new<'a>(sandbox: &'a str, key: &'a str) -> NewDelivery<'a> {
        NewDelivery {
            sandbox,
            repo: "users",
            deployment_id: Some("d1"),
            kind: DeliveryKind::BuildStatus,
            target: "bitbucket cloud",
            event: NotifyEvent::DeploymentRunning,
            state: BuildState::Successful,
            commit: Some("abc"),
            key,
        }
    }

    #[test]
    fn a_delivery_keeps_its_last_outcome_and_old_rows_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("sdp.db")).expect("open");
        let id = store.insert_delivery(&new("a", "k")).expect("insert");
        store
            .record_attempt(
                id,
                &Attempt {
                    outcome: DeliveryOutcome::Pending,
                    attempts: 1,
                    status: Some(503),
                    error: Some("503 Service Unavailable"),
                },
            )
            .expect("record");
        let rows = store
            .deliveries(Some("a"), &PageOf::first(10))
            .expect("list");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].attempts, 1);
        assert_eq!(rows[0].last_status, Some(503));
        assert_eq!(rows[0].outcome, DeliveryOutcome::Pending);
        for _ in 0..KEPT_PER_SANDBOX + 5 {
            store.insert_delivery(&new("a", "k")).expect("insert");
        }
        store.insert_delivery(&new("b", "k")).expect("insert");
        let kept = store
            .deliveries(Some("a"), &PageOf::first(500))
            .expect("list");
        assert_eq!(kept.len() as i64, KEPT_PER_SANDBOX);
        assert!(kept.iter().all(|d| d.id != id), "the oldest went");
        assert_eq!(
            store
                .deliveries(None, &PageOf::first(500))
                .expect("all")
                .len() as i64,
            KEPT_PER_SANDBOX + 1
        );
    }

    fn target(url: &str) -> NotifyTarget {
        NotifyTarget {
            url: url.to_owned(),
            events: vec![],
        }
    }

    /// An environment's webhooks are its creator's to set, and go with it
    /// (as a template's go with the template).
    #[test]
    fn webhooks_are_guarded_and_go_with_their_owner() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("sdp.db")).expect("open");
        let alice = Editor {
            user: "alice",
            admin: false,
        };
        let bob = Editor {
            user: "bob",
            admin: false,
        };
        let (vars, secrets) = (Default::default(), Default::default());
        let write = crate::store::EnvironmentWrite {
            vars: &vars,
            secrets: &secrets,
        };
        store
            .create_environment("base", &write, "alice")
            .expect("create");
        let targets = [target("https://hooks.example/a")];
        assert_eq!(
            store
                .set_environment_notify("nope", &targets, alice)
                .expect("set"),
            Guarded::NotFound
        );
        assert!(matches!(
            store
                .set_environment_notify("base", &targets, bob)
                .expect("set"),
            Guarded::NotYours(_)
        ));
        assert_eq!(
            store
                .set_environment_notify("base", &targets, alice)
                .expect("set"),
            Guarded::Done
        );
        assert_eq!(store.environment_notify("base").expect("read"), targets);
        assert!(store.template_notify("base").expect("read").is_empty());
        assert_eq!(
            store.delete_environment("base", alice).expect("delete"),
            Guarded::Done
        );
        store
            .create_environment("base", &write, "alice")
            .expect("again");
        assert!(
            store.environment_notify("base").expect("read").is_empty(),
            "gone with the environment"
        );
    }
}
