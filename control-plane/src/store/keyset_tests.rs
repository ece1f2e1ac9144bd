//! Keyset paging against a real SQLite file: more rows than a page, rows
//! added between pages, and the query plans of the hot lists.

use chrono::Utc;
use sdp_api::{AuditAction, AuditOutcome, TestRunTrigger};
use sdp_bus::DeploymentId;

use super::keyset::{PageOf, TimeKey, plan};
use super::{
    AuditFilter, DeploymentFilter, NewAuditEntry, NewDeployment, NewSandbox, NewTestRun, Store,
};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("sdp.db")).expect("store");
    (dir, store)
}

fn deploy(store: &Store, sandbox: &str, repo: &str) -> DeploymentId {
    let id = DeploymentId::generate();
    store
        .insert_deployment(&NewDeployment {
            id: &id,
            sandbox,
            repo,
            branch: "main",
            kind: "micro",
            created_by: "ann",
            new_sandbox_ttl_hours: 72,
            reapply: false,
            commit: None,
            redeploy_of: None,
        })
        .expect("insert");
    id
}

/// Every page of a sandbox's deployments, `limit` at a time, with `between`
/// run after each page.
fn page_through(
    store: &Store,
    sandbox: &str,
    limit: u32,
    mut between: impl FnMut(),
) -> Vec<DeploymentId> {
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let rows = store
            .deployments(&DeploymentFilter {
                sandbox: Some(sandbox.to_owned()),
                limit,
                after: after.clone(),
                ..Default::default()
            })
            .expect("page");
        let Some(last) = rows.last() else { break };
        after = Some(TimeKey {
            at: last.created_at,
            id: last.id.to_string(),
        });
        seen.extend(rows.iter().map(|d| d.id.clone()));
        between();
    }
    seen
}

/// 250 deployments (with other sandboxes' in between) read 40 at a time,
/// ten more deployed into the sandbox and others after every page: each
/// of the 250 comes exactly once, newest first; none of the newer ones
/// (they sort before the cursor).
#[test]
fn pages_of_deployments_hold_every_row_once_in_order_despite_inserts() {
    let (_dir, store) = store();
    let mut made = Vec::new();
    for n in 0..250 {
        made.push(deploy(
            &store,
            "a",
            if n % 2 == 0 { "users" } else { "orders" },
        ));
        if n % 5 == 0 {
            deploy(&store, "b", "users");
        }
    }
    let mut added = Vec::new();
    let seen = page_through(&store, "a", 40, || {
        for _ in 0..5 {
            added.push(deploy(&store, "a", "users"));
            deploy(&store, "b", "users");
        }
    });
    // The order of one query over the whole list (ids break ties within a
    // millisecond), less the rows added meanwhile.
    let whole: Vec<DeploymentId> = store
        .deployments(&DeploymentFilter {
            sandbox: Some("a".into()),
            limit: 10_000,
            ..Default::default()
        })
        .expect("whole")
        .into_iter()
        .map(|d| d.id)
        .filter(|id| made.contains(id))
        .collect();
    assert_eq!(seen.len(), 250);
    assert_eq!(seen, whole, "every row once, newest first");
    assert!(added.iter().all(|id| !seen.contains(id)));
    // The whole list, unfiltered, pages the same way.
    let all = store
        .deployments(&DeploymentFilter {
            limit: 10_000,
            ..Default::default()
        })
        .expect("all");
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let rows = store
            .deployments(&DeploymentFilter {
                limit: 77,
                after: after.clone(),
                ..Default::default()
            })
            .expect("page");
        let Some(last) = rows.last() else { break };
        after = Some(TimeKey {
            at: last.created_at,
            id: last.id.to_string(),
        });
        paged.extend(rows.into_iter().map(|d| d.id));
    }
    assert_eq!(paged, all.into_iter().map(|d| d.id).collect::<Vec<_>>());
}

/// Rows of one millisecond are told apart by id: a page boundary inside a
/// run of equal `created_at` loses and repeats nothing.
#[test]
fn rows_of_the_same_instant_page_by_id() {
    let (_dir, store) = store();
    for _ in 0..30 {
        deploy(&store, "a", "users");
    }
    store
        .conn()
        .execute(
            "UPDATE deployments SET created_at = '2026-01-01T00:00:00.000Z'",
            [],
        )
        .expect("one instant");
    let seen = page_through(&store, "a", 7, || {});
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (30, 30));
    let mut descending = seen.clone();
    descending.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, descending);
}

#[test]
fn sandboxes_page_by_name_and_new_ones_before_the_cursor_do_not_shift_it() {
    let (_dir, store) = store();
    let name = |n: usize| format!("s{n:04}");
    for n in (0..300).map(|n| n * 2) {
        store
            .insert_sandbox(&NewSandbox {
                name: &name(n),
                owner: "ann",
                template: None,
                environment: None,
                ttl_hours: 72,
                pinned: false,
            })
            .expect("sandbox");
    }
    let mut seen = Vec::new();
    let mut page = PageOf::first(64);
    let mut odd = 1;
    loop {
        let rows = store.sandboxes_page(&page).expect("page");
        let Some(last) = rows.last() else { break };
        page.after = Some(last.name.clone());
        seen.extend(rows.into_iter().map(|s| s.name));
        // One before the cursor, one after it.
        for n in [odd, 599 - odd] {
            let _ = store.insert_sandbox(&NewSandbox {
                name: &name(n),
                owner: "bob",
                template: None,
                environment: None,
                ttl_hours: 72,
                pinned: false,
            });
        }
        odd += 2;
    }
    let originals: Vec<String> = (0..300).map(|n| name(n * 2)).collect();
    let kept: Vec<&String> = seen.iter().filter(|n| originals.contains(n)).collect();
    assert_eq!(kept.len(), 300, "every sandbox once");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "by name, no repeats");
}

#[test]
fn audit_pages_by_id_with_entries_appended_between() {
    let (_dir, store) = store();
    let entry = |n: usize| NewAuditEntry {
        at: Utc::now(),
        actor: Some("ann".into()),
        action: AuditAction::Deploy,
        target: Some(format!("t{n}")),
        sandbox: Some("a".into()),
        address: None,
        outcome: AuditOutcome::Ok,
        message: None,
    };
    let batch: Vec<NewAuditEntry> = (0..250).map(entry).collect();
    store.append_audit(&batch).expect("append");
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let rows = store
            .audit(&AuditFilter {
                sandbox: Some("a".into()),
                after,
                limit: 60,
                ..AuditFilter::default()
            })
            .expect("page");
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        seen.extend(rows.into_iter().map(|e| e.target.expect("target")));
        store.append_audit(&[entry(999)]).expect("append");
    }
    let expected: Vec<String> = (0..250).rev().map(|n| format!("t{n}")).collect();
    assert_eq!(seen, expected);
}

/// A step of a query plan that reads `table` whole rather than a range
/// of an index, or sorts apart from the index.
fn full_scan_or_sort(plan: &str, table: &str) -> bool {
    plan.lines().any(|line| {
        let line = line.trim();
        line == format!("SCAN {table}") || line.contains("USE TEMP B-TREE")
    })
}

#[test]
fn the_hot_lists_read_a_range_of_an_index() {
    let (_dir, store) = store();
    deploy(&store, "a", "users");
    let conn = store.conn();
    let after = Some(TimeKey {
        at: Utc::now(),
        id: "d0".into(),
    });
    for after in [None, after] {
        let by_sandbox = super::deployments::deployments_select(&DeploymentFilter {
            sandbox: Some("a".into()),
            limit: 101,
            after: after.clone(),
            ..Default::default()
        });
        let text = plan(&conn, &by_sandbox);
        assert!(
            text.contains("SEARCH deployments USING INDEX deployments_by_sandbox_created"),
            "{text}"
        );
        assert!(!full_scan_or_sort(&text, "deployments"), "{text}");
        let by_repo = super::deployments::deployments_select(&DeploymentFilter {
            repo: Some("users".into()),
            limit: 101,
            after: after.clone(),
            ..Default::default()
        });
        let text = plan(&conn, &by_repo);
        assert!(
            text.contains("USING INDEX deployments_by_repo_created"),
            "{text}"
        );
        assert!(!full_scan_or_sort(&text, "deployments"), "{text}");
        let runs = super::test_runs::test_runs_select(
            "a",
            &PageOf {
                after: after.clone(),
                limit: 101,
            },
        );
        let text = plan(&conn, &runs);
        assert!(
            text.contains("USING INDEX test_runs_by_sandbox_created"),
            "{text}"
        );
        assert!(!full_scan_or_sort(&text, "test_runs"), "{text}");
    }
    for after in [None, Some("m".to_owned())] {
        let sandboxes = super::sandboxes::sandboxes_select(&PageOf { after, limit: 501 });
        let text = plan(&conn, &sandboxes);
        assert!(
            text.contains("USING INDEX sqlite_autoindex_sandboxes_1"),
            "{text}"
        );
        assert!(!full_scan_or_sort(&text, "sandboxes"), "{text}");
    }
}

#[test]
fn test_runs_page_newest_first() {
    let (_dir, store) = store();
    let mut made = Vec::new();
    for _ in 0..120 {
        let id = DeploymentId::generate();
        store
            .insert_test_run(&NewTestRun {
                id: &id,
                sandbox: "a",
                repo: "tests",
                branch: "main",
                command: &["true".to_owned()],
                junit_path: None,
                trigger: TestRunTrigger::Manual,
                created_by: "ann",
            })
            .expect("run");
        made.push(id);
    }
    let mut page = PageOf::first(50);
    let mut seen = Vec::new();
    loop {
        let rows = store.test_runs_page("a", &page).expect("page");
        let Some(last) = rows.last() else { break };
        page.after = Some(TimeKey {
            at: last.created_at,
            id: last.id.to_string(),
        });
        seen.extend(rows.into_iter().map(|r| r.id));
    }
    let whole: Vec<DeploymentId> = store
        .test_runs_page("a", &PageOf::first(500))
        .expect("whole")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(seen.len(), 120);
    assert_eq!(seen, whole);
    made.sort();
    seen.sort();
    assert_eq!(seen, made);
}

/// The query plan of `sql` with `args` bound.
fn plan_of(conn: &rusqlite::Connection, sql: &str, args: &[&str]) -> String {
    let mut statement = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("explain");
    let rows = statement
        .query_map(rusqlite::params_from_iter(args), |row| {
            row.get::<_, String>(3)
        })
        .expect("plan");
    rows.map(|row| row.expect("plan row"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a sandbox's view reads (`store/sandbox_rows.rs`), for one sandbox
/// or a page of them: every step a seek or a range of an index, none a
/// scan of a table; the newest deployment of a service is found in
/// `deployments_by_service` without a sort (its ties are ordered by id
/// in the index), the running gateway in the partial index.
#[test]
fn the_sandbox_views_read_ranges_of_indexes() {
    let (_dir, store) = store();
    deploy(&store, "a", "users");
    let conn = store.conn();
    // A scan of a table (`n` is the live check's alias of deployments);
    // the CTE, a subquery's rows and json_each's are not tables.
    let no_scan = |text: &str| {
        let tables = [
            "deployments",
            "n",
            "sandboxes",
            "phases",
            "service_follows",
            "service_env",
        ];
        assert!(
            !text.lines().any(|line| {
                let mut words = line.split_whitespace();
                words.next() == Some("SCAN") && words.next().is_some_and(|t| tables.contains(&t))
            }),
            "{text}"
        );
    };
    for (sql, args) in [
        (&*super::sandbox_rows::LATEST_IN_RANGE, &["a", "z"][..]),
        (&*super::sandbox_rows::LATEST_OF_ONE, &["a"][..]),
    ] {
        let text = plan_of(&conn, sql, args);
        no_scan(&text);
        assert!(
            text.contains("USING COVERING INDEX deployments_by_service"),
            "{text}"
        );
        assert!(!text.contains("USE TEMP B-TREE"), "{text}");
    }
    let text = plan_of(&conn, &super::sandbox_rows::LATEST_IN_RANGE, &["a", "z"]);
    assert!(
        text.contains("SEARCH sandboxes USING COVERING INDEX sqlite_autoindex_sandboxes_1"),
        "{text}"
    );
    for (sql, args) in [
        (&*super::sandbox_rows::GATEWAYS_IN_RANGE, &["a", "z"][..]),
        (&*super::sandboxes::RUNNING_GATEWAY, &["a"][..]),
    ] {
        let text = plan_of(&conn, sql, args);
        no_scan(&text);
        assert!(
            text.contains("SEARCH deployments USING INDEX deployments_running"),
            "{text}"
        );
        assert!(!text.contains("USE TEMP B-TREE"), "{text}");
    }
    for (table, sql) in [
        ("service_follows", super::sandbox_rows::FOLLOWS_IN_RANGE),
        ("service_env", super::sandbox_rows::ENV_IN_RANGE),
    ] {
        let text = plan_of(&conn, sql, &["a", "z"]);
        assert!(
            text.contains(&format!("SEARCH {table} USING PRIMARY KEY")),
            "{text}"
        );
        assert!(!text.contains("USE TEMP B-TREE"), "{text}");
    }
    let text = plan_of(&conn, super::deployments::PHASES_OF_MANY, &["[\"d1\"]"]);
    assert!(text.contains("SEARCH phases USING PRIMARY KEY"), "{text}");
    no_scan(&text);
}
