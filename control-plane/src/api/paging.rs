//! Keyset paging over HTTP (`sdp_api::paging` states the contract): a
//! list's `limit` checked against its default and [`MAX_LIMIT`], its
//! `cursor` read into the store's key ([`Cursor`]), and a page answered
//! with `X-Next-Cursor` and `Link: <…>; rel="next"` while more follow.
//!
//! A cursor is `<list tag><version>.<key>`: readable, but documented as
//! opaque. Its form per list is a pattern the OpenAPI document states, so
//! every cursor the schema allows is one the server takes (the contract
//! test's positive-data check), and another list's cursor fails the
//! pattern like a malformed one.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use sdp_api::paging::{MAX_LIMIT, NEXT_CURSOR_HEADER};
use serde::Serialize;

use super::ApiError;
use crate::store::TimeKey;

/// The lists that page, each with its cursor's tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum List {
    Deployments,
    TestRuns,
    Sandboxes,
    Audit,
    Deliveries,
}

impl List {
    fn tag(self) -> &'static str {
        match self {
            List::Deployments => "dep1",
            List::TestRuns => "run1",
            List::Sandboxes => "sbx1",
            List::Audit => "aud1",
            List::Deliveries => "dlv1",
        }
    }

    fn path(self) -> &'static str {
        match self {
            List::Deployments => "GET /api/deployments",
            List::TestRuns => "GET /api/sandboxes/{name}/test-runs",
            List::Sandboxes => "GET /api/sandboxes",
            List::Audit => "GET /api/audit",
            List::Deliveries => "GET /api/deliveries",
        }
    }
}

/// The page size: `given`, else `default`; 400 outside 1 to [`MAX_LIMIT`].
pub fn limit(given: Option<u32>, default: u32) -> Result<u32, ApiError> {
    let limit = given.unwrap_or(default);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT} (got {limit}); follow the cursor for more"
        )));
    }
    Ok(limit)
}

/// A list's cursor, read or made.
pub struct Cursor;

impl Cursor {
    fn bad(list: List, text: &str) -> ApiError {
        let shown: String = text.chars().take(80).collect();
        ApiError::bad_request(format!(
            "cursor {shown:?} is not one of {}: pass back the X-Next-Cursor of its \
             previous page unchanged, or leave cursor out for the first page",
            list.path()
        ))
    }

    /// The key after the list's tag, if `text` carries that tag.
    fn body(list: List, text: &str) -> Result<&str, ApiError> {
        text.strip_prefix(list.tag())
            .and_then(|rest| rest.strip_prefix('.'))
            .ok_or_else(|| Cursor::bad(list, text))
    }

    /// A `(created_at, id)` cursor (deployments, test runs).
    pub fn time(list: List, text: Option<&str>) -> Result<Option<TimeKey>, ApiError> {
        let Some(text) = text else { return Ok(None) };
        let body = Cursor::body(list, text)?;
        let (millis, id) = body
            .split_once('.')
            .ok_or_else(|| Cursor::bad(list, text))?;
        let digits = |s: &str, most: usize| {
            !s.is_empty() && s.len() <= most && s.bytes().all(|b| b.is_ascii_digit())
        };
        let at = digits(millis, 13)
            .then(|| millis.parse::<i64>().ok())
            .flatten()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .ok_or_else(|| Cursor::bad(list, text))?;
        if !sdp_bus::subject::is_token(id) {
            return Err(Cursor::bad(list, text));
        }
        Ok(Some(TimeKey {
            at,
            id: id.to_owned(),
        }))
    }

    /// An integer id cursor (the audit trail, deliveries).
    pub fn id(list: List, text: Option<&str>) -> Result<Option<i64>, ApiError> {
        let Some(text) = text else { return Ok(None) };
        let body = Cursor::body(list, text)?;
        if body.is_empty() || body.len() > 18 || !body.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Cursor::bad(list, text));
        }
        body.parse().map(Some).map_err(|_| Cursor::bad(list, text))
    }

    /// A name cursor (sandboxes).
    pub fn name(list: List, text: Option<&str>) -> Result<Option<String>, ApiError> {
        let Some(text) = text else { return Ok(None) };
        let body = Cursor::body(list, text)?;
        sdp_bus::validate::resource_name("cursor", body).map_err(|_| Cursor::bad(list, text))?;
        Ok(Some(body.to_owned()))
    }

    pub fn of_time(list: List, at: DateTime<Utc>, id: &str) -> String {
        format!("{}.{}.{id}", list.tag(), at.timestamp_millis())
    }

    pub fn of_id(list: List, id: i64) -> String {
        format!("{}.{id}", list.tag())
    }

    pub fn of_name(list: List, name: &str) -> String {
        format!("{}.{name}", list.tag())
    }
}

/// A page cut from rows read one past `limit`: the first `limit`, and the
/// cursor of the last of them when a row was left over.
pub fn cut<T>(
    mut rows: Vec<T>,
    limit: u32,
    cursor_of: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let limit = limit as usize;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more {
        rows.last().map(cursor_of)
    } else {
        None
    };
    (rows, next)
}

/// One more than `limit`: the row that tells whether a next page exists.
pub fn probe(limit: u32) -> u32 {
    limit + 1
}

/// The request again with `cursor=<next>` (any earlier cursor or page
/// dropped): the `Link` header's target.
fn next_link(uri: &Uri, next: &str) -> String {
    let mut pairs: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| {
            !pair.is_empty() && !pair.starts_with("cursor=") && !pair.starts_with("page=")
        })
        .collect();
    // The cursor's characters are URL-safe as they are.
    let cursor = format!("cursor={next}");
    pairs.push(&cursor);
    format!("{}?{}", uri.path(), pairs.join("&"))
}

/// `response` with the paging headers set when a next page exists.
pub fn with_next(mut response: Response, uri: &Uri, next: Option<&str>) -> Response {
    if let Some(next) = next {
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(next) {
            headers.insert(HeaderName::from_static(NEXT_CURSOR_HEADER), value);
        }
        if let Ok(value) =
            HeaderValue::from_str(&format!("<{}>; rel=\"next\"", next_link(uri, next)))
        {
            headers.insert(header::LINK, value);
        }
    }
    response
}

/// A page of a list answered as the JSON array it always was, the next
/// page's cursor in the headers.
pub fn respond<T: Serialize>(uri: &Uri, (items, next): (Vec<T>, Option<String>)) -> Response {
    with_next(Json(items).into_response(), uri, next.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sdp_api::paging::{
        AUDIT_CURSOR, DELIVERIES_CURSOR, DEPLOYMENTS_CURSOR, SANDBOXES_CURSOR, TEST_RUNS_CURSOR,
    };

    #[test]
    fn cursors_read_back_what_they_were_made_of() {
        let at = DateTime::from_timestamp_millis(1_767_225_600_123).expect("time");
        let text = Cursor::of_time(List::Deployments, at, "d0190abc");
        assert_eq!(
            Cursor::time(List::Deployments, Some(&text)).expect("read"),
            Some(TimeKey {
                at,
                id: "d0190abc".into()
            })
        );
        let text = Cursor::of_id(List::Audit, 42);
        assert_eq!(
            Cursor::id(List::Audit, Some(&text)).expect("read"),
            Some(42)
        );
        let text = Cursor::of_name(List::Sandboxes, "alpha-1");
        assert_eq!(
            Cursor::name(List::Sandboxes, Some(&text)).expect("read"),
            Some("alpha-1".into())
        );
        assert_eq!(Cursor::id(List::Deliveries, None).expect("none"), None);
    }

    #[test]
    fn another_lists_or_a_malformed_cursor_is_refused_by_name() {
        let audit = Cursor::of_id(List::Audit, 7);
        let err = Cursor::id(List::Deliveries, Some(&audit)).expect_err("foreign");
        assert!(
            err.message.contains("GET /api/deliveries"),
            "{}",
            err.message
        );
        for bad in [
            "",
            "dep1",
            "dep1.",
            "dep1.x.d1",
            "dep1.1.",
            "dep1.1.a/b",
            "dep1.99999999999999.d",
        ] {
            assert!(
                Cursor::time(List::Deployments, Some(bad)).is_err(),
                "{bad:?} was taken"
            );
        }
        for bad in ["sbx1.", "sbx1.Alpha", "sbx1.-a", "aud1.1"] {
            assert!(Cursor::name(List::Sandboxes, Some(bad)).is_err(), "{bad:?}");
        }
        assert!(Cursor::id(List::Audit, Some("aud1.1234567890123456789")).is_err());
    }

    #[test]
    fn limits_outside_the_range_are_refused() {
        assert_eq!(limit(None, 100).expect("default"), 100);
        assert_eq!(limit(Some(500), 100).expect("max"), 500);
        assert!(limit(Some(0), 100).is_err());
        assert!(limit(Some(501), 100).is_err());
    }

    #[test]
    fn a_page_keeps_the_limit_and_names_its_last_row() {
        let (items, next) = cut(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!((items, next), (vec![1, 2], Some("2".to_owned())));
        let (items, next) = cut(vec![1, 2], 2, |n| n.to_string());
        assert_eq!((items, next), (vec![1, 2], None));
    }

    #[test]
    fn the_link_is_the_request_with_the_cursor() {
        let uri: Uri = "/api/deployments?sandbox=a&cursor=dep1.1.x&limit=5"
            .parse()
            .expect("uri");
        assert_eq!(
            next_link(&uri, "dep1.2.y"),
            "/api/deployments?sandbox=a&limit=5&cursor=dep1.2.y"
        );
        let uri: Uri = "/api/sandboxes".parse().expect("uri");
        assert_eq!(next_link(&uri, "sbx1.b"), "/api/sandboxes?cursor=sbx1.b");
    }

    /// The document states each list's cursor pattern as
    /// `sdp_api::paging` has it (the attributes cannot name a constant).
    #[test]
    fn the_document_states_each_cursor_pattern() {
        let document = serde_json::to_value(super::super::document()).expect("json");
        for (path, pattern) in [
            ("/api/deployments", DEPLOYMENTS_CURSOR),
            ("/api/sandboxes/{name}/test-runs", TEST_RUNS_CURSOR),
            ("/api/sandboxes", SANDBOXES_CURSOR),
            ("/api/audit", AUDIT_CURSOR),
            ("/api/deliveries", DELIVERIES_CURSOR),
        ] {
            let parameters = document["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap_or_else(|| panic!("{path} has parameters"));
            let cursor = parameters
                .iter()
                .find(|p| p["name"] == "cursor")
                .unwrap_or_else(|| panic!("{path} has a cursor"));
            assert_eq!(cursor["schema"]["pattern"], pattern, "{path}");
            let limit = parameters
                .iter()
                .find(|p| p["name"] == "limit")
                .unwrap_or_else(|| panic!("{path} has a limit"));
            assert_eq!(limit["schema"]["maximum"], MAX_LIMIT, "{path}");
        }
    }

    proptest! {
        /// Every cursor the schema's pattern allows is taken: the
        /// document states exactly what the server accepts.
        #[test]
        fn every_cursor_the_schema_allows_is_taken(
            deployment in proptest::string::string_regex(DEPLOYMENTS_CURSOR.trim_matches(['^', '$'])).expect("re"),
            run in proptest::string::string_regex(TEST_RUNS_CURSOR.trim_matches(['^', '$'])).expect("re"),
            sandbox in proptest::string::string_regex(SANDBOXES_CURSOR.trim_matches(['^', '$'])).expect("re"),
            audit in proptest::string::string_regex(AUDIT_CURSOR.trim_matches(['^', '$'])).expect("re"),
            delivery in proptest::string::string_regex(DELIVERIES_CURSOR.trim_matches(['^', '$'])).expect("re"),
        ) {
            prop_assert!(Cursor::time(List::Deployments, Some(&deployment)).is_ok());
            prop_assert!(Cursor::time(List::TestRuns, Some(&run)).is_ok());
            prop_assert!(Cursor::name(List::Sandboxes, Some(&sandbox)).is_ok());
            prop_assert!(Cursor::id(List::Audit, Some(&audit)).is_ok());
            prop_assert!(Cursor::id(List::Deliveries, Some(&delivery)).is_ok());
        }
    }
}
