//! Timestamps on the wire: RFC 3339 in UTC with milliseconds
//! (`2026-01-01T00:00:00.000Z`), the text the control plane stores, so a
//! field reads the same whether it came from a row or from `Utc::now()`.
//! For `#[serde(with = "sdp_api::timestamp")]` (and `timestamp::option`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// The wire text of `at`.
pub fn text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&text(*at))
}

/// Any RFC 3339 text, taken to UTC.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let raw = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&raw)
        .map(|at| at.with_timezone(&Utc))
        .map_err(serde::de::Error::custom)
}

/// The same for an optional timestamp (`null` when absent).
pub mod option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => super::serialize(at, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super")] DateTime<Utc>);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(at)| at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_text_has_milliseconds_and_reads_back() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T01:09:14.052+01:00")
            .expect("RFC 3339")
            .with_timezone(&Utc);
        assert_eq!(text(at), "2026-12-07T00:09:14.052Z");
        let back: DateTime<Utc> =
            deserialize(serde_json::Value::String(text(at))).expect("reads back");
        assert_eq!(back, at);
    }
}
