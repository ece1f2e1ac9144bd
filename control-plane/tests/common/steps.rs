//! Setup and checks that the browser tests (`tests/browser/`) and the
//! end-to-end tests (`tests/e2e/`) both take, kept here once so the two
//! stay the same stack: a stack whose agent uses a postgres resource
//! image, a stack with a QA repo for test runs, requests to a deployed
//! service, the agent's count of runtime-log streams and the wait for a
//! followed runtime log to be attached.

use std::time::Duration;

use sdp_testkit::{QaFixture, unique_id, wait_for};
use tokio::sync::mpsc::UnboundedReceiver;

use super::{Stack, StackOptions};

/// How long the agent may take to report a runtime-log stream opened or
/// closed (its next heartbeats).
pub const LOG_STREAMS_TIMEOUT: Duration = Duration::from_secs(20);

/// A stack whose agent makes postgres resources from the image
/// [`sdp_testkit::ensure_resource_image`] makes (no image can be pulled).
pub async fn start_with_postgres() -> Stack {
    let image = sdp_testkit::ensure_resource_image("postgres");
    let mut stack = Stack::start_with(StackOptions {
        agent: false,
        ..StackOptions::default()
    })
    .await;
    stack.agent_extra_env = vec![("SDP_AGENT__RESOURCES__POSTGRES_IMAGE".to_owned(), image)];
    stack.start_agent().await;
    stack
}

/// A stack for test runs: a QA repo (`QaFixture`, named `qa-…`) beside
/// `users` in the agent's repos, and both agents advertising Docker's
/// bridge address, where a test-run container reaches the sandbox's
/// services. Returns the stack, the fixture and the QA repo's name.
pub async fn start_with_qa_repo() -> (Stack, QaFixture, String) {
    let bridge = sdp_testkit::docker_bridge_gateway();
    let mut stack = Stack::start_with(StackOptions {
        agent: false,
        advertise: Some((bridge.clone(), bridge)),
        ..StackOptions::default()
    })
    .await;
    let qa_repo = unique_id("qa");
    let qa = QaFixture::create(&stack.git, &qa_repo);
    stack.repos.add(&qa_repo, &stack.git.url(&qa_repo));
    stack.start_agent().await;
    (stack, qa, qa_repo)
}

impl Stack {
    /// A request to the deployed `users` service at `url` (which prints
    /// `request GET <path>` to its runtime log); it must answer 200.
    pub async fn hit_service(&self, url: &str, path: &str) {
        let response = self
            .http()
            .get(format!("{url}{path}"))
            .send()
            .await
            .expect("service request");
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{path}");
    }

    /// The agent's open runtime-log streams, as its heartbeat reports
    /// them (`GET /api/agents`).
    pub async fn agent_log_streams(&self, token: &str) -> Option<u64> {
        let agents = self.client_with(token).agents().await.ok()?;
        let agent = agents.into_iter().find(|a| a.id == self.agent_id)?;
        Some(u64::from(agent.log_streams))
    }

    /// Waits (within [`LOG_STREAMS_TIMEOUT`]) until the agent reports
    /// `want` open runtime-log streams.
    pub async fn wait_agent_log_streams(&self, token: &str, want: u64) {
        wait_for(
            &format!("the agent to report {want} runtime-log streams"),
            LOG_STREAMS_TIMEOUT,
            || async { (self.agent_log_streams(token).await == Some(want)).then_some(()) },
        )
        .await;
    }

    /// Waits until no online agent is warming its build cache: the warm-up
    /// (`go build std` for each toolchain, even from a warm cache) takes
    /// the cores for seconds after an agent starts, which a bench must not
    /// measure.
    pub async fn wait_agents_warm(&self, token: &str) {
        let client = self.client_with(token);
        wait_for(
            "the agents' build-cache warm-up",
            Duration::from_secs(600),
            || async {
                let agents = client.agents().await.ok()?;
                agents
                    .iter()
                    .all(|a| !a.online || a.build_cache.as_deref() != Some("warming"))
                    .then_some(())
            },
        )
        .await;
    }

    /// Once a followed runtime log (`tail=0`) of the deployment at `url`
    /// is open, hits `<prefix><n>` until one of those requests comes
    /// through `lines`, then reads on to the last one hit, and returns its
    /// line. Docker attaches to the container's output a moment after the
    /// agent answered the follow, and a line written before that is,
    /// rightly, not in a log that starts at its end: the requests made
    /// after this call are.
    pub async fn wait_follow_attached(
        &self,
        url: &str,
        prefix: &str,
        lines: &mut UnboundedReceiver<String>,
    ) -> String {
        let wanted = format!("request GET {prefix}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut hits = 0;
        let first = loop {
            hits += 1;
            self.hit_service(url, &format!("{prefix}{hits}")).await;
            let next = async {
                loop {
                    let line = lines.recv().await.expect("the followed log ended");
                    if line.starts_with(&wanted) {
                        return line;
                    }
                }
            };
            // `recv` is cancel-safe: a line not read yet stays queued.
            if let Ok(line) = tokio::time::timeout(Duration::from_millis(500), next).await {
                break line;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the followed log showed none of {hits} requests within 30 s"
            );
        };
        // Attached before the request of `first`: every later one follows.
        let last = format!("{wanted}{hits}");
        if first != last {
            read_to(lines, &last).await;
        }
        last
    }
}

/// Reads `lines` up to and including `line`, within a bound.
pub async fn read_to(lines: &mut UnboundedReceiver<String>, line: &str) {
    let read = async { while lines.recv().await.expect("the followed log ended") != line {} };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .unwrap_or_else(|_| panic!("no {line:?} within 20 s"));
}
