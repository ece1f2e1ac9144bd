//! Changes guarded by who made the row: an [`Editor`] (the caller, and
//! whether they are an admin) may change an environment or template they
//! created, or any as an admin; the check and the write share one
//! transaction.

use rusqlite::OptionalExtension;

use super::StoreError;

/// Who asks to change an environment, a template or a sandbox.
#[derive(Clone, Copy, Debug)]
pub struct Editor<'a> {
    pub user: &'a str,
    /// Listed in `auth.admins`.
    pub admin: bool,
}

impl Editor<'_> {
    /// Whether this editor may change what `creator` made (`None`: made
    /// before creators were recorded, so admins only).
    pub fn may_change(&self, creator: Option<&str>) -> bool {
        self.admin || creator == Some(self.user)
    }
}

/// How an update or delete guarded by its creator went.
#[derive(Debug, PartialEq, Eq)]
pub enum Guarded {
    Done,
    NotFound,
    /// Someone else's: it names who made it (`None`: nobody recorded).
    NotYours(Option<String>),
}

/// A transaction that reads, then writes: begun IMMEDIATE, so it holds
/// the write lock from its first read. (A deferred one would fail at once
/// with SQLITE_BUSY when the persister's connection commits between the
/// read and the write: WAL cannot upgrade a stale read snapshot.)
pub(super) fn write_transaction(
    conn: &mut rusqlite::Connection,
) -> Result<rusqlite::Transaction<'_>, StoreError> {
    Ok(conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
}

/// The creator of a row of `table` (`Ok(None)`: no such row).
fn creator(
    conn: &rusqlite::Connection,
    table: &str,
    name: &str,
) -> Result<Option<Option<String>>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT created_by FROM {table} WHERE name = ?1"),
            [name],
            |row| row.get(0),
        )
        .optional()?)
}

/// Whether `editor` may change the row: its verdict, or `None` to go on.
pub(super) fn guard(
    conn: &rusqlite::Connection,
    table: &str,
    name: &str,
    editor: Editor<'_>,
) -> Result<Option<Guarded>, StoreError> {
    Ok(match creator(conn, table, name)? {
        None => Some(Guarded::NotFound),
        Some(made_by) if !editor.may_change(made_by.as_deref()) => Some(Guarded::NotYours(made_by)),
        Some(_) => None,
    })
}
