//! What recording an audit entry costs the request that records it: the
//! queue and batched writer SDP uses (`Audit::record`) against a direct
//! SQLite insert per entry, each from `SDP_BENCH_AUDIT_TASKS` (default 60,
//! the fleet bench's burst) concurrent tasks recording
//! `SDP_BENCH_AUDIT_EACH` (default 50) entries, on the 2-worker runtime.
//! Prints p50/p99 of one call and the time until every row is in the table.
//!
//! Run: `cargo bench -p sdp-control-plane --bench audit_cost`.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use chrono::Utc;
use sdp_api::{AuditAction, AuditOutcome};
use sdp_control_plane::audit::Audit;
use sdp_control_plane::store::{AuditFilter, NewAuditEntry, Store};
use support::percentile;

fn main() {
    support::block_on(bench());
}

fn entry(n: usize) -> NewAuditEntry {
    NewAuditEntry {
        at: Utc::now(),
        actor: Some("dev".to_owned()),
        action: AuditAction::Deploy,
        target: Some("users@feature/x".to_owned()),
        sandbox: Some(format!("fleet-{n:02}")),
        address: Some("203.0.113.9".to_owned()),
        outcome: AuditOutcome::Ok,
        message: None,
    }
}

fn rows(store: &Store) -> usize {
    store
        .audit(&AuditFilter {
            limit: u32::MAX,
            ..AuditFilter::default()
        })
        .expect("read")
        .len()
}

async fn run(tasks: usize, each: usize, queued: bool) -> (Vec<Duration>, Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("sdp.db")).expect("store");
    let (audit, writer) = Audit::start(store.clone());
    let writer = tokio::spawn(writer);
    let started = Instant::now();
    let calls = (0..tasks).map(|n| {
        let (audit, store) = (audit.clone(), store.clone());
        tokio::spawn(async move {
            let mut took = Vec::with_capacity(each);
            for _ in 0..each {
                let at = Instant::now();
                if queued {
                    audit.record(entry(n)).await;
                } else {
                    // What a handler would do: one insert on the shared
                    // connection, on the request's task.
                    store.append_audit(&[entry(n)]).expect("insert");
                }
                took.push(at.elapsed());
                tokio::task::yield_now().await;
            }
            took
        })
    });
    let mut took: Vec<Duration> = futures::future::join_all(calls)
        .await
        .into_iter()
        .flat_map(|t| t.expect("task"))
        .collect();
    drop(audit);
    writer.await.expect("writer");
    let all_in = started.elapsed();
    assert_eq!(rows(&store), tasks * each, "every entry written");
    took.sort();
    (took, all_in)
}

async fn bench() {
    let tasks: usize = support::env_or("SDP_BENCH_AUDIT_TASKS", 60);
    let each: usize = support::env_or("SDP_BENCH_AUDIT_EACH", 50);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("\n| {tasks} tasks × {each} entries | one call p50 / p99 | all rows in the table |");
    println!("|---|---|---|");
    for (name, queued) in [
        ("queue + batched writer (SDP)", true),
        ("direct insert per entry", false),
    ] {
        let (took, all_in) = run(tasks, each, queued).await;
        println!(
            "| {name} | {:.0} µs / {:.0} µs | {:.0} ms |",
            us(percentile(&took, 0.5)),
            us(percentile(&took, 0.99)),
            all_in.as_secs_f64() * 1000.0
        );
    }
}
