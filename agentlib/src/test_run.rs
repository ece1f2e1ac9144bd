//! `agent.rpc.<kind>.test_run` ([`handle`]): runs a test command from a
//! repo's branch against a sandbox. The request is checked, registered in
//! the table of unsettled jobs (so `deploy.cancel.<id>`, a teardown of the
//! sandbox and shutdown cancel it), answered, then run:
//! queued → fetching (its own checkout, `data_dir/test-runs/<sandbox>/<repo>`,
//! beside the service's) → building (the Go setup a service build gets:
//! toolchain, the sandbox's caches, module source) → the command, argv
//! without a shell, in a build container ([`crate::build_container`]:
//! non-root, no capabilities, read-only root, limits) on a network of the
//! run's own with only the sandbox's containers ([`crate::docker::TestNetwork`])
//! and the sandbox's URLs, pointed at them, in its environment, labelled
//! `sdp.sandbox` and `sdp.test_run` → the JUnit
//! report, if the request names one ([`crate::junit`]) → one `result`
//! event carrying the [`TestOutcome`]. Every output line is a log event
//! on `deploy.progress.<id>`, like a deployment's.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sdp_bus::{
    DeployAccepted, EventBody, Reply, RpcError, RpcErrorCode, Status, TestOutcome, TestRunRequest,
    decode, subject,
};

use crate::build_container::{BuildMount, BuildRun};
use crate::docker::{LABEL_SANDBOX, TestNetwork};
use crate::error::DeployError;
use crate::events::EventSink;
use crate::flavour::{BuildContext, GoFlavour};
use crate::git::FetchSpec;
use crate::reply::{bad_request, respond};
use crate::state::{Agent, JobHandle};

/// The label naming a test run's container (its id).
pub const LABEL_TEST_RUN: &str = "sdp.test_run";
/// The directory of test-run checkouts under `data_dir` (per sandbox,
/// removed by a teardown).
pub const TEST_RUNS_DIR: &str = "test-runs";
/// Where the run's exec-able temp directory is mounted (`GOTMPDIR`).
const EXEC_TMP: &str = "/sdp-tmp";
/// The lines of stderr kept for the result's `log_tail`.
const TAIL: usize = 20;

/// Checks the request before anything touches git or Docker; returns the
/// repo's origin URL.
async fn check(agent: &Agent, request: &TestRunRequest) -> Result<String, RpcError> {
    sdp_bus::validate::repo(&request.repo).map_err(|e| bad_request(e.to_string()))?;
    sdp_bus::validate::branch(&request.branch).map_err(|e| bad_request(e.to_string()))?;
    sdp_bus::validate::resource_name("sandbox", &request.sandbox)
        .map_err(|e| bad_request(e.to_string()))?;
    sdp_bus::test_run::check_command(&request.command).map_err(bad_request)?;
    if let Some(path) = &request.junit {
        sdp_bus::test_run::check_junit_path(path).map_err(bad_request)?;
    }
    if let Some(key) = request.env.keys().find(|k| !crate::job::is_env_key(k)) {
        return Err(bad_request(format!("invalid env key {key:?}")));
    }
    let repos_dir = agent.config.repos_dir.clone();
    let repo = request.repo.clone();
    let schemes = agent.config.git.allowed_schemes.clone();
    tokio::task::spawn_blocking(move || crate::git::origin_url(&repos_dir, &repo, &schemes))
        .await
        .map_err(|e| {
            RpcError::new(
                RpcErrorCode::Internal,
                format!("checking the repo failed: {e}"),
            )
        })?
        .map_err(RpcError::from)
}

pub(crate) async fn handle(agent: Arc<Agent>, message: async_nats::Message) {
    let reply = message.reply.clone();
    let request: TestRunRequest = match decode(&message.payload) {
        Ok(request) => request,
        Err(err) => {
            let body = Reply::<DeployAccepted>::err(bad_request(format!(
                "cannot decode the test run request: {err}"
            )));
            respond(&agent, reply, &body).await;
            return;
        }
    };
    let url = match check(&agent, &request).await {
        Ok(url) => url,
        Err(err) => {
            tracing::info!(run = %request.run_id, error = %err, "test run refused");
            respond(&agent, reply, &Reply::<DeployAccepted>::err(err)).await;
            return;
        }
    };
    if agent.shutdown.is_cancelled() {
        let err = RpcError::new(RpcErrorCode::Unavailable, "the agent is shutting down");
        respond(&agent, reply, &Reply::<DeployAccepted>::err(err)).await;
        return;
    }
    let cancels = match agent
        .client
        .subscribe(subject::deploy_cancel(&request.run_id))
        .await
    {
        Ok(subscriber) => subscriber,
        Err(err) => {
            tracing::warn!(error = %err, "cannot subscribe to deploy.cancel");
            let err = RpcError::new(RpcErrorCode::Unavailable, "the agent cannot reach NATS");
            respond(&agent, reply, &Reply::<DeployAccepted>::err(err)).await;
            return;
        }
    };
    let accepted = Reply::ok(DeployAccepted {
        agent_id: agent.agent_id().to_owned(),
    });
    let Some(handle) = agent.register_test_run(&request.run_id, &request.sandbox) else {
        respond(&agent, reply, &accepted).await; // a retried request
        return;
    };
    tracing::info!(run = %request.run_id, sandbox = %request.sandbox, repo = %request.repo, "test run accepted");
    respond(&agent, reply, &accepted).await;
    let tasks = agent.tasks.clone();
    tasks.spawn(run(agent, handle, request, url, cancels));
}

async fn run(
    agent: Arc<Agent>,
    handle: Arc<JobHandle>,
    request: TestRunRequest,
    origin_url: String,
    cancels: async_nats::Subscriber,
) {
    let id = handle.id.clone();
    let mut sink = EventSink::new(
        agent.js.clone(),
        id.clone(),
        agent.agent_id().to_owned(),
        agent.give_up.clone(),
    );
    let listener = crate::job::listen_for_cancel(&agent, handle.clone(), cancels);
    sink.phase(Status::Queued, None).await;
    let git_cancel = Arc::new(AtomicBool::new(false));
    let mut commit = None;
    let mut network = None;
    let outcome = tokio::select! {
        outcome = steps(&agent, &request, &origin_url, &mut sink, &git_cancel, &mut commit, &mut network) => outcome,
        _ = handle.cancel.cancelled() => Err(handle.cancel_error()),
    };
    git_cancel.store(true, Ordering::Relaxed);
    if let Some(network) = network {
        // The run's container first: a network with it still attached
        // cannot go.
        agent.builder.remove_deployment(id.as_str()).await;
        agent.docker.remove_test_network(&network).await;
    }
    let body = match outcome {
        Ok((outcome, log_tail)) => {
            let error = (!outcome.passed).then(|| describe_failure(&outcome));
            EventBody::Result {
                status: Status::Stopped,
                url: None,
                error,
                commit,
                log_tail,
                test: Some(outcome),
            }
        }
        Err(err) => {
            let status = err.status();
            if status == Status::Cancelled || matches!(err, DeployError::Shutdown) {
                // The run's container went with the dropped steps; this
                // waits until the engine has removed it.
                agent.builder.remove_deployment(id.as_str()).await;
            }
            if status == Status::Cancelled {
                // Who stopped it, in the log itself.
                sink.system(format!("the test run was {}", err.user_message()))
                    .await;
            }
            EventBody::Result {
                status,
                url: None,
                error: Some(err.user_message()),
                commit,
                log_tail: Vec::new(),
                test: Some(TestOutcome::default()),
            }
        }
    };
    tracing::info!(run = %id, ?body, "test run ended");
    sink.result(body).await;
    listener.abort();
    agent.unregister(&id);
    handle.done.cancel();
}

/// The result's error line for a run whose command ran and failed.
fn describe_failure(outcome: &TestOutcome) -> String {
    let code = outcome
        .exit_code
        .map_or_else(|| "?".to_owned(), |c| c.to_string());
    match &outcome.junit {
        Some(junit) => format!(
            "tests failed (exit code {code}): {} of {} failed",
            junit.failures + junit.errors,
            junit.tests
        ),
        None => format!("the test command exited with code {code}"),
    }
}

/// Fetch, set up, run, read the report. Returns the outcome and the
/// last lines of stderr.
async fn steps(
    agent: &Agent,
    request: &TestRunRequest,
    origin_url: &str,
    sink: &mut EventSink,
    git_cancel: &Arc<AtomicBool>,
    commit_out: &mut Option<String>,
    network_out: &mut Option<TestNetwork>,
) -> Result<(TestOutcome, Vec<String>), DeployError> {
    let data_dir = &agent.config.data_dir;
    let base = data_dir
        .join(TEST_RUNS_DIR)
        .join(&request.sandbox)
        .join(&request.repo);
    let worktree = base.join("src");
    // One run of (sandbox, repo) at a time: they share the checkout.
    let key = format!("{TEST_RUNS_DIR}/{}", request.repo);
    let _lock = agent
        .worktree_lock(&request.sandbox, &key)
        .lock_owned()
        .await;

    sink.phase(Status::Fetching, None).await;
    sink.system(format!(
        "fetching branch {} of {} for the test run",
        request.branch, request.repo
    ))
    .await;
    agent.builder.reclaim(worktree.clone()).await?;
    let commit = fetch(agent, request, origin_url, &base, sink, git_cancel).await?;
    sink.system(format!("checked out {commit}")).await;
    *commit_out = Some(commit.clone());

    sink.phase(Status::Building, Some(commit.clone())).await;
    let ctx = BuildContext {
        worktree: worktree.clone(),
        artifact_dir: base.join("out"),
        data_dir: data_dir.clone(),
        cache_dir: agent.cache_dir.clone(),
        sandbox_cache: crate::flavour::sandbox_cache(data_dir, &request.sandbox),
        sandbox: request.sandbox.clone(),
        deployment: request.run_id.to_string(),
        settings: crate::service::agent_defaults(&agent.config),
        go: agent.config.go.clone(),
        composer: agent.config.composer.clone(),
        build: agent.config.build.clone(),
        builder: agent.builder.clone(),
    };
    agent.builder.check_image().await?;
    let setup = GoFlavour::default().test_setup(&ctx).await?;
    for note in setup.notes {
        sink.system(note).await;
    }
    // `go run`/`go test` execute what they build from GOTMPDIR, and the
    // container's /tmp is a noexec tmpfs: a fresh directory of the run's
    // own, bind-mounted.
    let exec_tmp = base.join("tmp");
    match tokio::fs::remove_dir_all(&exec_tmp).await {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(crate::flavour::io_err("clear the run's temp directory")(
                err,
            ));
        }
        _ => {}
    }
    tokio::fs::create_dir_all(&exec_tmp)
        .await
        .map_err(crate::flavour::io_err("create the run's temp directory"))?;
    agent.builder.hand_over(vec![exec_tmp.clone()]).await?;
    let mut mounts = setup.mounts;
    mounts.push(BuildMount::writable(&exec_tmp, EXEC_TMP));
    // Its own network: the sandbox's containers on this host, by name,
    // and nothing else (see `crate::docker::TestNetwork`).
    let wanted = crate::docker::local_ports(&agent.config.advertise_host, &request.env);
    let network = agent
        .docker
        .create_test_network(
            agent.agent_id(),
            &request.sandbox,
            request.run_id.as_str(),
            &wanted,
        )
        .await?;
    let network_name = network.name.clone();
    let mut urls = request.env.clone();
    let unreachable = network.rewrite_env(&agent.config.advertise_host, &mut urls);
    *network_out = Some(network);
    let mut env = setup.env;
    env.push(format!("GOTMPDIR={EXEC_TMP}"));
    env.extend(urls.iter().map(|(k, v)| format!("{k}={v}")));
    env.push(format!("SDP_TEST_RUN={}", request.run_id));
    for (key, value) in &urls {
        sink.system(format!("{key}={value}")).await;
    }
    for key in unreachable {
        sink.system(format!(
            "{key} is not reachable from the test run's network: only the sandbox's containers on this agent are"
        ))
        .await;
    }
    sink.phase(Status::Starting, Some(commit.clone())).await;
    sink.system(format!("$ {}", request.command.join(" ")))
        .await;
    let run = BuildRun {
        argv: request.command.clone(),
        env,
        working_dir: setup.working_dir.to_owned(),
        mounts,
        // The sandbox's containers, on a network of the run's own.
        network_name: Some(network_name),
        deployment: Some(request.run_id.to_string()),
        sandbox: Some(request.sandbox.clone()),
        labels: vec![
            (LABEL_SANDBOX.to_owned(), request.sandbox.clone()),
            (LABEL_TEST_RUN.to_owned(), request.run_id.to_string()),
        ],
        ..Default::default()
    };
    let exit = {
        let _building = agent.building();
        agent.builder.run(run, Some(sink), TAIL).await?
    };
    sink.system(format!("the test command exited with code {}", exit.code))
        .await;
    // The container wrote as the build user: take the checkout back to read it.
    agent.builder.reclaim(worktree.clone()).await?;
    let junit = match &request.junit {
        None => None,
        Some(path) => {
            let (checkout, relative) = (worktree.clone(), path.clone());
            let read = tokio::task::spawn_blocking(move || {
                crate::junit::read_report(&checkout, &relative)
            })
            .await
            .map_err(DeployError::task("junit"))?;
            match read {
                Ok(summary) => {
                    sink.system(format!(
                        "junit {path}: {} tests, {} failures, {} errors, {} skipped",
                        summary.tests, summary.failures, summary.errors, summary.skipped
                    ))
                    .await;
                    for name in &summary.failed {
                        sink.system(format!("failed: {name}")).await;
                    }
                    Some(summary)
                }
                Err(err) => {
                    sink.system(format!("junit report not read: {err}")).await;
                    None
                }
            }
        }
    };
    let passed = exit.success()
        && junit
            .as_ref()
            .is_none_or(|j| j.failures == 0 && j.errors == 0);
    Ok((
        TestOutcome {
            passed,
            exit_code: Some(exit.code),
            junit,
        },
        if passed { Vec::new() } else { exit.stderr_tail },
    ))
}

/// Fetches the branch into the repo's shared store and checks its head
/// out at `base/src` (git dir `base/git`); returns the commit.
async fn fetch(
    agent: &Agent,
    request: &TestRunRequest,
    origin_url: &str,
    base: &std::path::Path,
    sink: &mut EventSink,
    git_cancel: &Arc<AtomicBool>,
) -> Result<String, DeployError> {
    let store_lock = agent.store_lock(&request.repo).lock_owned().await;
    let (progress, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let (repo, url, branch, credential) = (
        request.repo.clone(),
        origin_url.to_owned(),
        request.branch.clone(),
        request.credential.clone(),
    );
    let worktree: PathBuf = base.join("src");
    let gitdir = base.join("git");
    let store = crate::git_store::path(&agent.config.data_dir, &request.repo);
    let cancel = git_cancel.clone();
    let mut task = tokio::task::spawn_blocking(move || {
        let spec = FetchSpec {
            repo: &repo,
            url: &url,
            branch: &branch,
            credential: &credential,
            worktree,
            gitdir,
            store,
            cancel,
            progress,
        };
        let fetched = crate::git::fetch_to_store(&spec);
        drop(store_lock);
        let fetched = fetched?;
        crate::git::checkout(&spec, &fetched.commit)?;
        Ok::<_, DeployError>(fetched.commit)
    });
    loop {
        tokio::select! {
            line = lines.recv() => {
                if let Some(line) = line {
                    sink.system(line).await;
                }
            }
            joined = &mut task => {
                return joined.map_err(DeployError::task("git"))?;
            }
        }
    }
}
