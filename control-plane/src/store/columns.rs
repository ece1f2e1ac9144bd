//! Typed columns: how the store turns the text it keeps (deployment ids,
//! timestamps) into the wire's types when it reads a row, and the text it
//! writes. The stored text is what it always was, so existing databases
//! read as before.
//!
//! Timestamps are RFC 3339 in UTC with milliseconds
//! (`2026-01-01T00:00:00.000Z`): text that sorts as time does, which the
//! queries rely on (`ORDER BY created_at`, `expires_at <= ?`). The API
//! answers the same text ([`serialize_timestamp`]).

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Row;
use rusqlite::types::Type;
use sdp_bus::DeploymentId;
use serde::Serializer;

/// The text the store keeps for `at`.
pub fn timestamp_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A stored timestamp (any RFC 3339 text, taken to UTC).
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc))
}

fn conversion_failure(
    idx: usize,
    err: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(err))
}

/// The timestamp in column `idx`.
pub fn timestamp(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = row.get(idx)?;
    parse_timestamp(&text).map_err(|err| conversion_failure(idx, err))
}

/// The timestamp in column `idx`, if it is not NULL.
pub fn optional_timestamp(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let text: Option<String> = row.get(idx)?;
    text.map(|text| parse_timestamp(&text).map_err(|err| conversion_failure(idx, err)))
        .transpose()
}

/// The deployment id in column `idx` (only ids the control plane made are
/// stored, so a refusal means a damaged row).
pub fn deployment_id(row: &Row<'_>, idx: usize) -> rusqlite::Result<DeploymentId> {
    let text: String = row.get(idx)?;
    DeploymentId::try_from(text).map_err(|err| conversion_failure(idx, err))
}

/// The deployment id in column `idx`, if it is not NULL.
pub fn optional_deployment_id(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DeploymentId>> {
    let text: Option<String> = row.get(idx)?;
    text.map(|text| DeploymentId::try_from(text).map_err(|err| conversion_failure(idx, err)))
        .transpose()
}

/// `#[serde(serialize_with)]` for a timestamp: the stored text.
pub fn serialize_timestamp<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&timestamp_text(*at))
}

/// `#[serde(serialize_with)]` for an optional timestamp.
pub fn serialize_optional_timestamp<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serialize_timestamp(at, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_their_stored_text() {
        for text in [
            "2026-01-01T00:00:00.000Z",
            "2026-12-07T00:09:30.123Z",
            "1999-12-31T23:59:59.999Z",
        ] {
            let at = parse_timestamp(text).expect("parses");
            assert_eq!(timestamp_text(at), text);
            let json = serde_json::to_value(Stamp(at)).expect("serializes");
            assert_eq!(json, serde_json::json!(text));
        }
        // Text from elsewhere (an offset, no fraction) is taken to UTC.
        let at = parse_timestamp("2026-01-01T02:00:00+02:00").expect("parses");
        assert_eq!(timestamp_text(at), "2026-01-01T00:00:00.000Z");
        assert!(parse_timestamp("yesterday").is_err());
    }

    /// The text sorts as the times do: the SQL compares the text.
    #[test]
    fn stored_text_sorts_as_time() {
        let earlier = parse_timestamp("2026-01-01T09:59:59.999Z").expect("parses");
        let later = parse_timestamp("2026-01-01T10:00:00.000Z").expect("parses");
        assert!(earlier < later);
        assert!(timestamp_text(earlier) < timestamp_text(later));
    }

    #[test]
    fn damaged_rows_are_conversion_errors() {
        let conn = rusqlite::Connection::open_in_memory().expect("db");
        let read = |sql: &str| {
            conn.query_row(sql, [], |row| {
                Ok((timestamp(row, 0).is_err(), deployment_id(row, 1).is_err()))
            })
        };
        assert_eq!(
            read("SELECT 'never', '../x'").expect("row"),
            (true, true),
            "both refused"
        );
        assert_eq!(
            read("SELECT '2026-01-01T00:00:00.000Z', 'd0190'").expect("row"),
            (false, false)
        );
        let none = conn
            .query_row("SELECT NULL, NULL", [], |row| {
                Ok((optional_timestamp(row, 0)?, optional_deployment_id(row, 1)?))
            })
            .expect("row");
        assert_eq!(none, (None, None));
    }

    #[derive(serde::Serialize)]
    struct Stamp(#[serde(serialize_with = "serialize_timestamp")] DateTime<Utc>);
}
