//! What a test run's container can reach, on real Docker: a run's
//! command (`sh -c`, busybox `nc`) tries to connect to its own
//! sandbox's service, to a host service listening on every address (a
//! stand-in for NATS, the control plane and the git server as production
//! runs them), to the real NATS, control plane and git server of the
//! test, to another sandbox's published port and its container's address,
//! and to the metadata address 169.254.169.254, and prints what it
//! reached. Only its own sandbox's service answers. The same probe in a
//! container on Docker's default bridge (where runs were before) reaches
//! the host service and the other sandbox: the boundary is the run's
//! network, not the test's setup.

use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sdp_api::{NewTestRun, TestRunStatus};
use sdp_bus::Status;
use sdp_testkit::{unique_id, wait_for};

use crate::common::*;

/// The probe: the sandbox's own service (from `$SDP_SERVICE_URL_USERS`),
/// then each `NAME HOST PORT` of its arguments; one `reach NAME yes|no`
/// line each.
const PROBE: &str = r#"
u=${SDP_SERVICE_URL_USERS#*://}; u=${u%%/*}
set -- own "${u%:*}" "${u##*:}" "$@"
while [ $# -ge 3 ]; do
  if nc -w 3 "$2" "$3" -e true 2>/dev/null; then echo "reach $1 yes"; else echo "reach $1 no"; fi
  shift 3
done
"#;

/// A fetch, the Go setup and the probe on a 2-core machine.
const RUN_TIMEOUT: Duration = Duration::from_secs(240);

/// `host:port` of a URL (`http://172.17.0.1:32001/` → both parts).
fn host_port(url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = authority.rsplit_once(':').expect("a port in the URL");
    (host.to_owned(), port.to_owned())
}

/// Runs `command` from `users@feature/x` against `sandbox` and waits for
/// its end: its id, the settled run and its log.
async fn run_to_its_end(
    client: &sdp_api::client::Client,
    sandbox: &str,
    command: Vec<String>,
) -> (String, sdp_api::TestRun, String) {
    let started = client
        .start_test_run(
            sandbox,
            &NewTestRun {
                repo: Some(REPO.to_owned()),
                branch: Some(BRANCH.to_owned()),
                command: Some(command),
                junit: None,
            },
        )
        .await
        .expect("start the run");
    let id = started.id.to_string();
    let run = wait_for("the run to end", RUN_TIMEOUT, || async {
        let run = client.test_run(&id).await.ok()?;
        run.status.is_settled().then_some(run)
    })
    .await;
    let log = client.deployment_logs(&id).await.expect("the run's log");
    (id, run, log)
}

/// `reach NAME yes|no` lines of a text, as (name, reached).
fn reached(text: &str) -> Vec<(String, bool)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("reach ")?;
            let (name, answer) = rest.split_once(' ')?;
            Some((name.to_owned(), answer == "yes"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_run_reaches_its_sandbox_and_nothing_else() {
    let bridge = sdp_testkit::docker_bridge_gateway();
    let stack = Stack::start_with(StackOptions {
        advertise: Some((bridge.clone(), bridge.clone())),
        ..StackOptions::default()
    })
    .await;
    let client = stack.login_as(USER).await;
    // A host service on every address: what NATS (agents on other VMs
    // reach it) and nginx in front of the control plane do in production.
    let listener = TcpListener::bind("0.0.0.0:0").expect("bind a host service");
    let host_port_open = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    {
        let accepted = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                accepted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
    }
    let (ours, theirs) = (unique_id("net"), unique_id("net-other"));
    stack
        .deploy_and_wait(&client, &ours, BRANCH, Status::Running)
        .await;
    let other = stack
        .deploy_and_wait(&client, &theirs, BRANCH, Status::Running)
        .await;
    let (_, other_port) = host_port(other.url.as_deref().expect("the other service's URL"));
    let (other_ip, other_container_port) = docker_inspect_ip(&stack.agent_id, &theirs);
    let (_, cp_port) = host_port(&stack.base_url);
    let (_, git_port) = host_port(&stack.git.base_url());
    let targets: Vec<String> = [
        ("host-service", bridge.clone(), host_port_open.to_string()),
        ("nats", bridge.clone(), stack.nats.port().to_string()),
        ("control-plane", bridge.clone(), cp_port),
        ("git", bridge.clone(), git_port),
        ("other-sandbox-port", bridge.clone(), other_port.clone()),
        (
            "other-sandbox-container",
            other_ip.clone(),
            other_container_port,
        ),
        ("metadata", "169.254.169.254".to_owned(), "80".to_owned()),
    ]
    .into_iter()
    .flat_map(|(name, host, port)| [name.to_owned(), host, port])
    .collect();

    let mut command = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        PROBE.to_owned(),
        "sh".to_owned(),
    ];
    command.extend(targets.iter().cloned());
    let (id, run, log) = run_to_its_end(&client, &ours, command).await;
    assert_eq!(run.status, TestRunStatus::Passed, "{run:?}\n{log}");
    let seen = reached(&log);
    let expected: Vec<(String, bool)> = [
        ("own", true),
        ("host-service", false),
        ("nats", false),
        ("control-plane", false),
        ("git", false),
        ("other-sandbox-port", false),
        ("other-sandbox-container", false),
        ("metadata", false),
    ]
    .into_iter()
    .map(|(name, yes)| (name.to_owned(), yes))
    .collect();
    assert_eq!(seen, expected, "{log}");
    assert!(
        log.contains("SDP_SERVICE_URL_USERS=http://users:"),
        "the service by its name: {log}"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "the host service saw no connection from the run"
    );
    // The run's network went with it.
    let networks = docker_lines(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("label=sdp.test_run={id}"),
    ]);
    assert!(networks.is_empty(), "{networks:?}");

    // The same probe on Docker's default bridge reaches the host service
    // and the other sandbox: what the run's own network takes away.
    let mut args = vec![
        "run".to_owned(),
        "--rm".to_owned(),
        "--name".to_owned(),
        unique_id("sdp-test-probe"),
        "--network".to_owned(),
        "bridge".to_owned(),
        "-e".to_owned(),
        format!("SDP_SERVICE_URL_USERS=http://{bridge}:{other_port}"),
        sdp_testkit::ensure_build_image(),
        "sh".to_owned(),
        "-c".to_owned(),
        PROBE.to_owned(),
        "sh".to_owned(),
    ];
    args.extend(targets.iter().cloned());
    let before = accepted.load(Ordering::SeqCst);
    let out = tokio::task::spawn_blocking(move || Command::new("docker").args(&args).output())
        .await
        .expect("join")
        .expect("docker run");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let on_bridge: std::collections::HashMap<String, bool> = reached(&text).into_iter().collect();
    assert_eq!(on_bridge.get("host-service"), Some(&true), "{text}");
    assert_eq!(on_bridge.get("other-sandbox-port"), Some(&true), "{text}");
    assert_eq!(
        on_bridge.get("other-sandbox-container"),
        Some(&true),
        "{text}"
    );
    assert!(accepted.load(Ordering::SeqCst) > before, "{text}");
    stack.shutdown().await;
}

/// The default-bridge address and the published container port of
/// `sandbox`'s container of this agent.
fn docker_inspect_ip(agent_id: &str, sandbox: &str) -> (String, String) {
    let ids = docker_lines(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=sdp.agent={agent_id}"),
        "--filter",
        &format!("label=sdp.sandbox={sandbox}"),
    ]);
    let id = ids.first().expect("the other sandbox's container");
    let ip = docker_lines(&[
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        id,
    ]);
    let ip = ip
        .first()
        .and_then(|line| line.split_whitespace().next())
        .expect("its address")
        .to_owned();
    let ports = docker_lines(&[
        "inspect",
        "--format",
        "{{range $port, $_ := .NetworkSettings.Ports}}{{$port}} {{end}}",
        id,
    ]);
    let port = ports
        .first()
        .and_then(|line| line.split_whitespace().next())
        .and_then(|port| port.split('/').next())
        .expect("its port")
        .to_owned();
    (ip, port)
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker").args(args).output().expect("docker");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A sandbox whose gateway is held by the other agent on the same Docker
/// engine (agent-gateway beside agent-micro, as `scripts/dev.sh` and the
/// compose stack run them): the run on agent-micro reaches the gateway
/// through `$SDP_GATEWAY_URL`, and the gateway sends `/users/1` to the
/// sandbox's own `users`. The gateway joins the run's network because the
/// run's URL names its published port (host ports are unique per engine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_run_reaches_its_gateway_held_by_the_other_agent() {
    let stack = Stack::start_with(StackOptions {
        gateway: true,
        ..StackOptions::default()
    })
    .await;
    let client = stack.login_as(USER).await;
    let token = client.token().expect("token").to_owned();
    let sandbox = unique_id("netgw");
    sandbox_with_gateway(&stack, &client, &sandbox).await;
    crate::routing::deploy_template(
        &stack,
        &token,
        &sandbox,
        serde_json::json!({ "branches": { "users": BRANCH }, "only": ["users"] }),
    )
    .await;
    crate::routing::through_gateway(
        &stack,
        &token,
        &sandbox,
        "/users/1",
        crate::routing::from_sandbox(BRANCH),
    )
    .await;

    let command = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        // busybox `nc` with a plain HTTP/1.0 request (the build image's
        // busybox `wget` is not usable); the JSON body's line is printed.
        r#"u=${SDP_GATEWAY_URL#*://}; u=${u%%/*}
printf 'GET /users/1 HTTP/1.0\r\nHost: %s\r\n\r\n' "$u" | nc -w 10 "${u%:*}" "${u##*:}" | sed -n 's/^{/answer {/p'"#
            .to_owned(),
    ];
    let (_, run, log) = run_to_its_end(&client, &sandbox, command).await;
    assert_eq!(run.status, TestRunStatus::Passed, "{run:?}\n{log}");
    assert!(
        log.contains("SDP_GATEWAY_URL=http://gateway:"),
        "the gateway by its name: {log}"
    );
    let answer = log
        .lines()
        .find_map(|line| line.trim().strip_prefix("answer ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no answer line: {log}"));
    let answer: serde_json::Value = serde_json::from_str(answer.trim())
        .unwrap_or_else(|err| panic!("the gateway's answer is JSON ({err}): {answer}\n{log}"));
    assert!(
        crate::routing::from_sandbox(BRANCH)(&answer),
        "the sandbox's users answered through its gateway: {answer}\n{log}"
    );
    stack.shutdown().await;
}
