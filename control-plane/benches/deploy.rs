//! Deploy bench: SDP's time for a small Go service against a plain
//! script doing the same on the same host (git clone of the branch, `go
//! build`, `docker run`, wait healthy), both with an empty Go build cache
//! ("cold"); and SDP's redeploy of a new commit (warm) against the script's
//! cold time. SDP's cold deploy runs while the fresh agent warms its build
//! cache beside it; a last row is the first deploy into a new sandbox on a
//! freshly started agent (empty cache) once that warm-up is done.
//! Rounds: `SDP_BENCH_ROUNDS` (default 2); the median is shown.
//! `SDP_BENCH_PHASES=1` prints each deployment's phase times on stderr.
//!
//! Run: `scripts/bench.sh` (builds the release binaries first).

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    support::block_on(bench());
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// The script: what a person would type, timed end to end.
async fn script_deploy(stack: &common::Stack, work: &Path, round: usize) -> Duration {
    let started = Instant::now();
    let src = work.join(format!("src-{round}"));
    let out = work.join(format!("out-{round}"));
    let cache = work.join(format!("cache-{round}"));
    let auth = sdp_testkit::basic_auth_header(common::USER, &stack.password);
    support::run(
        Command::new("git")
            .arg("-c")
            .arg(format!("http.extraHeader=Authorization: {auth}"))
            .args([
                "clone",
                "--quiet",
                "--depth",
                "1",
                "--single-branch",
                "--branch",
                common::BRANCH,
            ])
            .arg(stack.git.url(common::REPO))
            .arg(&src),
    );
    support::run(
        Command::new("go")
            .args(["build", "-trimpath", "-o"])
            .arg(out.join("app"))
            .arg(".")
            .current_dir(&src)
            .env("CGO_ENABLED", "0")
            .env("GOFLAGS", "-mod=mod -buildvcs=false")
            .env("GOPROXY", "off")
            .env("GOTOOLCHAIN", "local")
            .env("GOCACHE", cache.join("build"))
            .env("GOMODCACHE", cache.join("mod"))
            .env("GOPATH", cache.join("path")),
    );
    let name = format!("sdp-bench-script-{}", sdp_testkit::unique_id("c"));
    support::run(
        Command::new("docker")
            .args([
                "run",
                "-d",
                "--name",
                &name,
                "--label",
                "sdp.bench=1",
                "-p",
                "127.0.0.1::8080",
                "-e",
                "PORT=8080",
                "-v",
            ])
            .arg(format!("{}:/src:ro", src.display()))
            .arg("-v")
            .arg(format!("{}:/sdp:ro", out.display()))
            .args([
                "-w",
                "/src",
                &sdp_testkit::ensure_busybox_image(),
                "/sdp/app",
            ]),
    );
    let port = support::run(Command::new("docker").args(["port", &name, "8080/tcp"]));
    let url = format!("http://{}/healthz", port.lines().next().unwrap_or_default());
    let http = reqwest::Client::new();
    sdp_testkit::wait_for(
        "script's container healthy",
        Duration::from_secs(60),
        || async {
            let response = http.get(&url).send().await.ok()?;
            response.status().is_success().then_some(())
        },
    )
    .await;
    let elapsed = started.elapsed();
    support::run(Command::new("docker").args(["rm", "-f", &name]));
    elapsed
}

async fn sdp_deploy(stack: &common::Stack, token: &str, sandbox: &str) -> Duration {
    let started = Instant::now();
    let id = stack.deploy(token, sandbox, common::BRANCH).await;
    let deployment = stack.wait_settled(token, &id).await;
    assert_eq!(
        deployment.status,
        sdp_bus::Status::Running,
        "{deployment:?}"
    );
    // `SDP_BENCH_PHASES=1`: each deployment's phase times on stderr, to
    // see where a deploy's time goes.
    if std::env::var_os("SDP_BENCH_PHASES").is_some() {
        eprintln!("phases of {sandbox}: {:?}", deployment.phases);
    }
    started.elapsed()
}

/// Waits until `GET /api/agents` says the bench agent's cache is warm.
async fn wait_warm(stack: &common::Stack, token: &str) {
    sdp_testkit::wait_for(
        "the agent's build cache warm",
        Duration::from_secs(900),
        || async {
            let (_, agents) = stack.get(token, "/api/agents").await;
            agents
                .as_array()?
                .iter()
                .any(|a| a["id"] == stack.agent_id.as_str() && a["build_cache"] == "warm")
                .then_some(())
        },
    )
    .await;
}

async fn bench() {
    let rounds: usize = std::env::var("SDP_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mut stack = common::Stack::start_with(common::StackOptions::bench()).await;
    let token = stack.login().await;
    let work = tempfile::TempDir::new().expect("temp dir");
    sdp_testkit::ensure_busybox_image();

    let (mut script, mut cold, mut warm) = (Vec::new(), Vec::new(), Vec::new());
    let (mut warmed, mut warm_up) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        script.push(script_deploy(&stack, work.path(), round).await);
        // A fresh agent data dir and Go cache: SDP cold.
        let cache = work.path().join(format!("sdp-cache-{round}"));
        stack.kill_agent();
        stack.agent_extra_env = vec![(
            "SDP_AGENT__FLAVOUR__CACHE_DIR".into(),
            cache.display().to_string(),
        )];
        stack.start_agent().await;
        let sandbox = format!("bench-{round}");
        cold.push(sdp_deploy(&stack, &token, &sandbox).await);
        // A new commit, redeployed into the same sandbox: SDP warm.
        stack
            .fixture
            .push_revision(common::BRANCH, &format!("r{round}"));
        warm.push(sdp_deploy(&stack, &token, &sandbox).await);

        // A freshly started agent, empty cache: deploy once it is warm.
        let cache = work.path().join(format!("sdp-warmed-{round}"));
        stack.kill_agent();
        stack.agent_extra_env = vec![(
            "SDP_AGENT__FLAVOUR__CACHE_DIR".into(),
            cache.display().to_string(),
        )];
        let started = Instant::now();
        stack.start_agent().await;
        wait_warm(&stack, &token).await;
        warm_up.push(started.elapsed());
        warmed.push(sdp_deploy(&stack, &token, &format!("bench-warmed-{round}")).await);
    }
    let (script, cold, warm) = (median(script), median(cold), median(warm));
    let (warmed, warm_up) = (median(warmed), median(warm_up));
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "\n| deploy of a small Go service ({rounds} rounds, median) | time | ratio to script cold | target |"
    );
    println!("|---|---|---|---|");
    println!(
        "| plain script, cold (clone + go build + docker run + healthy) | {:.2} s | 1.00 | |",
        script.as_secs_f64()
    );
    println!(
        "| SDP, cold (empty Go cache) | {:.2} s | {:.2} | <= 1.10 |",
        cold.as_secs_f64(),
        ratio(cold, script)
    );
    println!(
        "| SDP, redeploy of a new commit | {:.2} s | {:.2} | <= 0.10 |",
        warm.as_secs_f64(),
        ratio(warm, script)
    );
    println!(
        "| SDP, first deploy on a fresh agent once its cache is warm (warm-up took {:.0} s) | {:.2} s | {:.2} | <= 0.30 |",
        warm_up.as_secs_f64(),
        warmed.as_secs_f64(),
        ratio(warmed, script)
    );
    stack.shutdown().await;
}
