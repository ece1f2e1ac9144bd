//! Keyset paging of the lists that grow (deployments, sandboxes, the audit
//! trail, deliveries, a sandbox's test runs).
//!
//! A list answers a page: at most `limit` items (each list documents its
//! default; at most [`MAX_LIMIT`]) in its order. The body stays what it was
//! (a JSON array; the audit trail's object), so clients written before
//! paging keep working; the way on is in two headers:
//!
//! - `X-Next-Cursor: <cursor>` ([`NEXT_CURSOR_HEADER`]), absent on the last
//!   page;
//! - `Link: </api/deployments?sandbox=a&cursor=<cursor>>; rel="next"`
//!   (RFC 8288), the same request with the cursor, for generic clients.
//!
//! Passing the cursor back as `?cursor=` with the same filters gives the
//! next page. A cursor is opaque: pass it back unchanged. It names the last
//! row's sort key, so rows added meanwhile never shift a page (no OFFSET):
//! every row that existed is listed exactly once. Each list's cursors have
//! their own form (the patterns below, which the OpenAPI document states),
//! so another list's cursor is refused with 400 like a malformed one.

use serde::{Deserialize, Serialize};

/// The most items a page holds (`limit` above it answers 400).
pub const MAX_LIMIT: u32 = 500;
/// Items per page unless `limit` says otherwise (deployments, the audit
/// trail, deliveries, test runs).
pub const DEFAULT_LIMIT: u32 = 100;
/// Sandboxes per page unless `limit` says otherwise: the most, so a client
/// that knows nothing of paging still sees every sandbox of a team of up
/// to 500.
pub const DEFAULT_SANDBOX_LIMIT: u32 = MAX_LIMIT;

/// The response header holding the next page's cursor (absent on the last).
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";

/// A cursor of `GET /api/deployments`.
pub const DEPLOYMENTS_CURSOR: &str = "^dep1\\.[0-9]{1,13}\\.[A-Za-z0-9_-]{1,64}$";
/// A cursor of `GET /api/sandboxes/{name}/test-runs`.
pub const TEST_RUNS_CURSOR: &str = "^run1\\.[0-9]{1,13}\\.[A-Za-z0-9_-]{1,64}$";
/// A cursor of `GET /api/sandboxes`.
pub const SANDBOXES_CURSOR: &str = "^sbx1\\.[a-z0-9][a-z0-9-]{0,62}$";
/// A cursor of `GET /api/audit`.
pub const AUDIT_CURSOR: &str = "^aud1\\.[0-9]{1,18}$";
/// A cursor of `GET /api/deliveries`.
pub const DELIVERIES_CURSOR: &str = "^dlv1\\.[0-9]{1,18}$";

/// `limit` and `cursor` of a list with no other parameters
/// (`GET /api/sandboxes`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SandboxesQuery {
    /// At most this many, by name (1 to 500; default 500).
    #[param(minimum = 1, maximum = 500)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `X-Next-Cursor` of the page before, passed back unchanged
    /// (leave out for the first page).
    #[param(pattern = "^sbx1\\.[a-z0-9][a-z0-9-]{0,62}$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `limit` and `cursor` of a sandbox's test runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TestRunsQuery {
    /// At most this many, newest first (1 to 500; default 100).
    #[param(minimum = 1, maximum = 500)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `X-Next-Cursor` of the page before, passed back unchanged
    /// (leave out for the first page).
    #[param(pattern = "^run1\\.[0-9]{1,13}\\.[A-Za-z0-9_-]{1,64}$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// One page of a list as a client reads it: the items and the next page's
/// cursor (from [`NEXT_CURSOR_HEADER`]; `None` on the last page).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The `limit` of one page when a caller wants at most `wanted` items in
/// all (`None`: every item) and has `got` of them already.
pub fn page_limit(wanted: Option<usize>, got: usize) -> u32 {
    match wanted {
        Some(wanted) => {
            let left = wanted.saturating_sub(got).clamp(1, MAX_LIMIT as usize);
            u32::try_from(left).unwrap_or(MAX_LIMIT)
        }
        None => MAX_LIMIT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_asks_for_what_is_left_within_the_maximum() {
        assert_eq!(page_limit(None, 0), MAX_LIMIT);
        assert_eq!(page_limit(Some(30), 0), 30);
        assert_eq!(page_limit(Some(1200), 1000), 200);
        assert_eq!(page_limit(Some(1200), 0), MAX_LIMIT);
    }
}
