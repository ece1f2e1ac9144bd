//! Keyset paging of the growing lists: a page starts after the last row of
//! the one before, by the list's sort key, never at an OFFSET. A row
//! inserted between two pages lands before the cursor (the lists are newest
//! first, or by name for sandboxes) or after it, so every row that existed
//! is read exactly once, in order, however many are added meanwhile.
//!
//! [`Select`] builds the query with only the filters given: a constraint
//! written `(?1 IS NULL OR sandbox = ?1)` keeps SQLite from using an index
//! on `sandbox`, so absent filters are left out of the text instead.

use chrono::{DateTime, Utc};
use rusqlite::types::Value;

use super::columns::timestamp_text;

/// Where a page of a list by `(created_at DESC, id DESC)` starts: after
/// this row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeKey {
    pub at: DateTime<Utc>,
    pub id: String,
}

/// A page: at most `limit` rows after `after` (the first page: none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageOf<K> {
    pub after: Option<K>,
    pub limit: u32,
}

impl<K> PageOf<K> {
    pub fn first(limit: u32) -> Self {
        PageOf { after: None, limit }
    }
}

/// A SELECT with its parameters, built a clause at a time; each `?#` in a
/// clause takes the next parameter number.
pub(super) struct Select {
    sql: String,
    args: Vec<Value>,
}

impl Select {
    /// `SELECT {columns} FROM {table} WHERE 1 = 1`.
    pub(super) fn from(columns: &str, table: &str) -> Self {
        Select {
            sql: format!("SELECT {columns} FROM {table} WHERE 1 = 1"),
            args: Vec::new(),
        }
    }

    /// Appends `text`, binding `values` to its `?#`s in order.
    pub(super) fn push(&mut self, text: &str, values: impl IntoIterator<Item = Value>) {
        let mut parts = text.split("?#");
        if let Some(first) = parts.next() {
            self.sql.push_str(first);
        }
        let mut values = values.into_iter();
        for part in parts {
            self.args.push(values.next().unwrap_or(Value::Null));
            self.sql.push_str(&format!("?{}", self.args.len()));
            self.sql.push_str(part);
        }
    }

    /// ` AND {column} = ?` when `value` is given.
    pub(super) fn equals(&mut self, column: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.push(&format!(" AND {column} = ?#"), [text(value)]);
        }
    }

    /// The keyset and order of a `(created_at DESC, id DESC)` list: rows
    /// after `after`, at most `limit`.
    pub(super) fn newest_first(&mut self, after: Option<&TimeKey>, limit: u32) {
        if let Some(after) = after {
            // A row value, so SQLite ranges over the (…, created_at, id)
            // index instead of filtering row by row.
            self.push(
                " AND (created_at, id) < (?#, ?#)",
                [text(&timestamp_text(after.at)), text(&after.id)],
            );
        }
        self.push(
            " ORDER BY created_at DESC, id DESC LIMIT ?#",
            [Value::Integer(limit.into())],
        );
    }

    /// The keyset and order of a list by `id DESC` (an integer key).
    pub(super) fn by_id_desc(&mut self, after: Option<i64>, limit: u32) {
        if let Some(after) = after {
            self.push(" AND id < ?#", [Value::Integer(after)]);
        }
        self.push(" ORDER BY id DESC LIMIT ?#", [Value::Integer(limit.into())]);
    }

    pub(super) fn sql(&self) -> &str {
        &self.sql
    }

    pub(super) fn args(&self) -> rusqlite::ParamsFromIter<&Vec<Value>> {
        rusqlite::params_from_iter(&self.args)
    }
}

pub(super) fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

/// The query plan of `select` as SQLite states it, one line per step
/// (for the tests that check a list uses an index).
#[cfg(test)]
pub(super) fn plan(conn: &rusqlite::Connection, select: &Select) -> String {
    let mut statement = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", select.sql()))
        .expect("explain");
    let rows = statement
        .query_map(select.args(), |row| row.get::<_, String>(3))
        .expect("plan");
    rows.map(|row| row.expect("plan row"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_number_their_parameters_in_order() {
        let mut select = Select::from("id", "t");
        select.equals("a", Some("x"));
        select.equals("b", None);
        select.newest_first(
            Some(&TimeKey {
                at: DateTime::UNIX_EPOCH,
                id: "d1".into(),
            }),
            5,
        );
        assert_eq!(
            select.sql(),
            "SELECT id FROM t WHERE 1 = 1 AND a = ?1 AND (created_at, id) < (?2, ?3) \
             ORDER BY created_at DESC, id DESC LIMIT ?4"
        );
        assert_eq!(select.args.len(), 4);
    }
}
