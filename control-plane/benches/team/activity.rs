//! A team's day, compressed: all at once, over disjoint sixths of the
//! sandboxes: redeploys of a new `users` commit, each followed by a
//! WebSocket viewer; route flips; runtime-log followers; the reaper taking
//! expired sandboxes; teardowns.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sdp_bus::EventBody;
use serde_json::{Value, json};

use super::common::Stack;
use super::probes::percentile;

pub struct Day {
    pub elapsed: Duration,
    pub redeploys: usize,
    /// Viewers that saw their redeploy's result `running`.
    pub viewers_saw_running: usize,
    pub redeploy_p50: Duration,
    pub redeploy_p99: Duration,
    pub route_flips: usize,
    pub route_flip_failures: usize,
    pub followers: usize,
    /// Followers that got the line their own request wrote.
    pub followers_got_line: usize,
    pub expired: usize,
    pub reaped_in: Duration,
    pub torn_down: usize,
    pub teardown_in: Duration,
}

pub async fn day(stack: &Stack, token: &str, names: &[String], sixth: usize) -> Day {
    let group = |n: usize| &names[n * sixth..(n + 1) * sixth];
    let followers = &group(2)[..sixth.min(20)];
    // Each viewer and follower a team member of their own: one user may
    // hold only `streams.websockets_per_user` sockets (32) and
    // `streams.runtime_logs_per_user` follows (8). Logged in one after the
    // other: logins in flight count against the per-address throttle.
    let viewers = log_in_members(stack, "viewer", group(0).len()).await;
    let follower_tokens = log_in_members(stack, "follower", followers.len()).await;
    stack.fixture.push_revision("main", "day");
    let started = Instant::now();
    let (redeploys, flips, follows, reaped_in, teardown_in) = tokio::join!(
        redeploy_with_viewers(stack, token, group(0), &viewers),
        flip_routes(stack, token, group(1)),
        follow_runtime_logs(stack, token, followers, &follower_tokens),
        expire(stack, token, group(3)),
        tear_down(stack, token, group(5)),
    );
    let mut times: Vec<Duration> = redeploys.iter().map(|(_, d)| *d).collect();
    times.sort();
    Day {
        elapsed: started.elapsed(),
        redeploys: redeploys.len(),
        viewers_saw_running: redeploys.iter().filter(|(ok, _)| *ok).count(),
        redeploy_p50: percentile(&times, 0.5),
        redeploy_p99: percentile(&times, 0.99),
        route_flips: flips.0,
        route_flip_failures: flips.1,
        followers: followers.len(),
        followers_got_line: follows,
        expired: group(3).len(),
        reaped_in,
        torn_down: group(5).len(),
        teardown_in,
    }
}

/// Sessions of `count` team members named `<role>-NN`.
async fn log_in_members(stack: &Stack, role: &str, count: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(count);
    for n in 0..count {
        let member = stack.login_as(&format!("{role}-{n:02}")).await;
        tokens.push(member.token().expect("session").to_owned());
    }
    tokens
}

/// Each sandbox redeploys `users`; viewer `n` (a session of their own)
/// follows sandbox `n`'s redeploy to its result. (saw `running`, request →
/// result) per sandbox.
async fn redeploy_with_viewers(
    stack: &Stack,
    token: &str,
    names: &[String],
    viewers: &[String],
) -> Vec<(bool, Duration)> {
    let one = |(name, viewer): (String, String)| async move {
        let sent = Instant::now();
        let id = stack.deploy(token, &name, "main").await;
        let mut running = false;
        stack
            .ws_follow(&viewer, &id, 0, |event| match event.body {
                EventBody::Result { status, .. } => {
                    running = status == sdp_bus::Status::Running;
                    false
                }
                _ => true,
            })
            .await;
        (running, sent.elapsed())
    };
    let pairs = names.iter().cloned().zip(viewers.iter().cloned());
    futures::future::join_all(pairs.map(one)).await
}

/// A manual route for `orders` to the baseline, then back to the
/// template's. (requests, failed requests).
async fn flip_routes(stack: &Stack, token: &str, names: &[String]) -> (usize, usize) {
    let baseline = stack.routing.as_ref().expect("routing").baseline.url();
    let mut failures = 0;
    for name in names {
        let path = format!("/api/sandboxes/{name}/routes/orders");
        let put = stack
            .http()
            .put(stack.url(&path))
            .bearer_auth(token)
            .json(&json!({ "target": baseline }))
            .send()
            .await;
        failures += usize::from(put.map_or(true, |r| r.status() != StatusCode::OK));
        let reset = stack
            .http()
            .delete(stack.url(&path))
            .bearer_auth(token)
            .send()
            .await;
        failures += usize::from(reset.map_or(true, |r| r.status() != StatusCode::NO_CONTENT));
    }
    (names.len() * 2, failures)
}

/// Follows each sandbox's `users` runtime log, then asks the service for a
/// path of its own; counts the followers that see it. Follower `n` (a
/// session of their own) follows sandbox `n`.
async fn follow_runtime_logs(
    stack: &Stack,
    token: &str,
    names: &[String],
    followers: &[String],
) -> usize {
    let one = |(name, follower): (String, String)| async move {
        let (_, view) = stack.get(token, &format!("/api/sandboxes/{name}")).await;
        let users = view["services"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["repo"] == "users")
            .cloned()
            .unwrap_or(Value::Null);
        let (Some(id), Some(url)) = (users["deployment_id"].as_str(), users["url"].as_str()) else {
            return false;
        };
        let response = stack
            .http()
            .get(stack.url(&format!(
                "/api/deployments/{id}/runtime-logs?follow=true&tail=0"
            )))
            .bearer_auth(&follower)
            .send()
            .await;
        let Ok(mut response) = response.and_then(reqwest::Response::error_for_status) else {
            return false;
        };
        let marker = format!("/followed-{name}");
        let wanted = marker.clone();
        // Asked again every half second until the follower sees it: the
        // follow may reach the agent's log stream after the first request.
        let ask = async {
            for _ in 0..120 {
                let _ = stack
                    .http()
                    .get(format!("{}{marker}", url.trim_end_matches('/')))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        let seen = async {
            let mut text = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                text.push_str(&String::from_utf8_lossy(&chunk));
                if text.contains(&wanted) {
                    return true;
                }
            }
            false
        };
        // Seen within the minute of asking, or not at all.
        tokio::select! {
            seen = seen => seen,
            () = ask => false,
        }
    };
    let pairs = names.iter().cloned().zip(followers.iter().cloned());
    futures::future::join_all(pairs.map(one))
        .await
        .into_iter()
        .filter(|seen| *seen)
        .count()
}

/// Moves the sandboxes' expiry into the past (as time would) and waits for
/// the reaper to remove them all.
async fn expire(stack: &Stack, token: &str, names: &[String]) -> Duration {
    let db = rusqlite::Connection::open(stack.cp_data.path().join("sdp.db")).expect("db");
    db.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    let started = Instant::now();
    for name in names {
        db.execute(
            "UPDATE sandboxes SET expires_at = '2000-01-01T00:00:00.000Z' WHERE name = ?1",
            [name],
        )
        .expect("expire");
    }
    drop(db);
    wait_gone(stack, token, names).await;
    started.elapsed()
}

/// Deletes the sandboxes at once; waits until they are gone.
async fn tear_down(stack: &Stack, token: &str, names: &[String]) -> Duration {
    let started = Instant::now();
    delete_all(stack, token, names).await;
    wait_gone(stack, token, names).await;
    started.elapsed()
}

/// `DELETE /api/sandboxes/{name}` for each, at once; a 404 is fine.
pub async fn delete_all(stack: &Stack, token: &str, names: &[String]) {
    let one = |name: String| async move {
        let response = stack
            .http()
            .delete(stack.url(&format!("/api/sandboxes/{name}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("delete");
        let status = response.status();
        assert!(
            status.is_success() || status == StatusCode::NOT_FOUND,
            "delete {name}: {status} {}",
            response.text().await.unwrap_or_default()
        );
    };
    futures::future::join_all(names.iter().cloned().map(one)).await;
}

/// Until every sandbox answers 404 and has no container left.
pub async fn wait_gone(stack: &Stack, token: &str, names: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(600);
    for name in names {
        loop {
            let (status, _) = stack.get(token, &format!("/api/sandboxes/{name}")).await;
            if status == StatusCode::NOT_FOUND
                && sdp_testkit::containers_with_label("sdp.sandbox", name).is_empty()
            {
                break;
            }
            assert!(Instant::now() < deadline, "{name} not gone in 10 minutes");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
