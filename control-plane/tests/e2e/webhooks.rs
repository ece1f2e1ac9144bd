//! Push webhooks: a signed Bitbucket push redeploys exactly the
//! sandboxes that follow the pushed branch, with the service credential;
//! unsigned, wrongly signed, replayed and oversized deliveries deploy
//! nothing; without a service credential the follower is left "behind";
//! the service credential is written nowhere.

use reqwest::StatusCode;
use sdp_api::{Deployment, ErrorBody, HookAnswer, HookOutcome, ListQuery, ServiceView};
use sdp_bus::Secret;
use sdp_bus::Status;
use sdp_control_plane::webhooks::signature::sign;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::cli::{Sdp, code, show};
use crate::common::*;

const HOOK: &str = "/api/hooks/bitbucket";
const SERVICE_USER: &str = "sdp-service";

/// The secret files a control plane is started with.
struct SecretFiles {
    dir: TempDir,
    hook_secret: String,
    service_password: String,
}

impl SecretFiles {
    fn new(with_credential: bool) -> SecretFiles {
        let dir = TempDir::new().expect("temp dir");
        let files = SecretFiles {
            hook_secret: sdp_testkit::unique_id("hook-canary"),
            service_password: sdp_testkit::unique_id("svc-canary"),
            dir,
        };
        std::fs::write(files.secret_path(), format!("{}\n", files.hook_secret)).expect("write");
        if with_credential {
            std::fs::write(
                files.credential_path(),
                format!("{SERVICE_USER}:{}\n", files.service_password),
            )
            .expect("write");
        }
        files
    }

    fn secret_path(&self) -> std::path::PathBuf {
        self.dir.path().join("bitbucket-secret")
    }

    fn credential_path(&self) -> std::path::PathBuf {
        self.dir.path().join("service-credential")
    }

    fn env(&self, with_credential: bool) -> Vec<(String, String)> {
        let mut env = pairs(&[(
            "SDP_CONTROL_PLANE__WEBHOOKS__BITBUCKET_SECRET_FILE",
            self.secret_path().display().to_string(),
        )]);
        if with_credential {
            env.push((
                "SDP_CONTROL_PLANE__GIT__SERVICE_CREDENTIAL_FILE".into(),
                self.credential_path().display().to_string(),
            ));
        }
        env
    }

    fn sign(&self, body: &[u8]) -> String {
        sign(&Secret::new(self.hook_secret.clone()), body)
    }
}

/// A Cloud `repo:push` body, shaped as Bitbucket Cloud sends it.
fn cloud_push(repo: &str, branch: &str, old: &str, new: &str) -> Vec<u8> {
    let target = |hash: &str| {
        json!({ "type": "commit", "hash": hash, "date": "2026-11-27T10:00:00+00:00",
        "message": "change\n", "author": { "type": "author", "raw": "Dev <dev@example.com>" } })
    };
    json!({
        "actor": { "type": "user", "display_name": "Dev", "nickname": "dev" },
        "repository": { "type": "repository", "full_name": format!("team/{repo}"), "name": repo,
            "uuid": "{6b8d3c8a-0000-0000-0000-000000000000}", "is_private": true, "scm": "git",
            "links": { "html": { "href": format!("https://bitbucket.org/team/{repo}") } } },
        "push": { "changes": [{
            "new": { "type": "branch", "name": branch, "target": target(new) },
            "old": { "type": "branch", "name": branch, "target": target(old) },
            "created": false, "forced": false, "closed": false, "truncated": false,
            "commits": [target(new)],
        }]},
    })
    .to_string()
    .into_bytes()
}

/// A Data Center `repo:refs_changed` body.
fn data_center_push(repo: &str, branch: &str, from: &str, to: &str, date: &str) -> Vec<u8> {
    json!({
        "eventKey": "repo:refs_changed",
        "date": date,
        "actor": { "name": "dev", "displayName": "Dev", "slug": "dev", "type": "NORMAL" },
        "repository": { "slug": repo, "id": 1, "name": repo, "scmId": "git", "state": "AVAILABLE",
            "project": { "key": "TEAM", "id": 1, "name": "Team" } },
        "changes": [{
            "ref": { "id": format!("refs/heads/{branch}"), "displayId": branch, "type": "BRANCH" },
            "refId": format!("refs/heads/{branch}"), "fromHash": from, "toHash": to, "type": "UPDATE",
        }],
    })
    .to_string()
    .into_bytes()
}

/// Delivers a webhook: `headers` are (name, value) pairs. The body is
/// sent as signed (bytes), so this stays below the typed client.
async fn deliver(stack: &Stack, body: Vec<u8>, headers: &[(&str, String)]) -> (StatusCode, Value) {
    let mut request = stack
        .http()
        .post(stack.url(HOOK))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("hook request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A hook's answer to a delivery it took.
fn hook_answer(answer: &Value) -> HookAnswer {
    serde_json::from_value(answer.clone())
        .unwrap_or_else(|err| panic!("not a hook answer ({err}): {answer}"))
}

/// The error code of a refused delivery.
fn error_code(answer: &Value) -> String {
    let body: ErrorBody = serde_json::from_value(answer.clone())
        .unwrap_or_else(|err| panic!("not an error answer ({err}): {answer}"));
    body.error.code
}

/// Every deployment, newest first.
async fn all_deployments(stack: &Stack, token: &str) -> Vec<Deployment> {
    let query = ListQuery {
        limit: Some(500),
        ..ListQuery::default()
    };
    stack
        .client_with(token)
        .deployments(&query)
        .await
        .expect("the deployments")
}

/// `PUT …/services/{repo}` with `{"follow": on}` (the request's first
/// name, still accepted).
async fn follow(stack: &Stack, token: &str, sandbox: &str, on: bool) -> (StatusCode, Value) {
    let response = stack
        .http()
        .put(stack.url(&format!("/api/sandboxes/{sandbox}/services/{REPO}")))
        .bearer_auth(token)
        .json(&json!({ "follow": on }))
        .send()
        .await
        .expect("follow request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The service `repo` of sandbox `name`.
async fn service(stack: &Stack, token: &str, name: &str, repo: &str) -> ServiceView {
    let sandbox = stack
        .client_with(token)
        .sandbox(name)
        .await
        .unwrap_or_else(|err| panic!("sandbox {name}: {err}"));
    sandbox
        .services
        .into_iter()
        .find(|s| s.repo == repo)
        .unwrap_or_else(|| panic!("no {repo} in {name}"))
}

use sdp_testkit::util::files_containing;

/// Nothing under the stack's dirs, in its processes' output or in
/// `docker inspect` of its containers holds `needle`.
fn assert_written_nowhere(stack: &Stack, needle: &str, what: &str) {
    for dir in [
        stack.cp_data.path(),
        stack.agent_data.path(),
        stack.repos.path(),
        stack.nats.store_dir(),
        stack.logs_dir.path(),
    ] {
        let hits = files_containing(dir, needle.as_bytes());
        assert!(hits.is_empty(), "{what} found in {hits:?}");
    }
    for (name, text) in stack.process_output() {
        assert!(!text.contains(needle), "{what} in the output of {name}");
    }
    for container in sdp_testkit::containers_with_label("sdp.agent", &stack.agent_id) {
        let inspect = std::process::Command::new("docker")
            .args(["inspect", &container])
            .output()
            .expect("docker inspect");
        assert!(
            !String::from_utf8_lossy(&inspect.stdout).contains(needle),
            "{what} in docker inspect of {container}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_push_redeploys_exactly_the_followers_and_refusals_deploy_nothing() {
    let secrets = SecretFiles::new(true);
    let stack = Stack::start_with(StackOptions {
        control_plane_env: secrets.env(true),
        ..StackOptions::default()
    })
    .await;
    stack.git.add_user(SERVICE_USER, &secrets.service_password);
    let token = stack.login().await;

    deploy_followers_and_others(&stack, &token).await;
    only_the_owner_changes_what_a_sandbox_follows(&stack, &token).await;
    let old = stack.fixture.commit(BRANCH);
    let new = stack.fixture.push_revision(BRANCH, "2");
    let push = cloud_push(REPO, BRANCH, &old, &new);
    let before = all_deployments(&stack, &token).await.len();
    refused_deliveries_deploy_nothing(&stack, &token, &secrets, &push).await;
    let signed = push_and_expect_followers_redeploy(&stack, &token, &secrets, &push, &new).await;
    assert_eq!(all_deployments(&stack, &token).await.len(), before + 2);
    replays_deploy_nothing(&stack, &secrets, &push, &signed).await;
    assert_eq!(all_deployments(&stack, &token).await.len(), before + 2);
    another_event_kind_is_ignored(&stack, &secrets).await;
    let triggered = data_center_push_moves_followers_once(&stack, &token, &secrets, &new).await;
    assert_eq!(all_deployments(&stack, &token).await.len(), before + 4);

    // Let the persister and the logs catch up, then look for the service
    // credential (and the webhook secret) everywhere.
    for id in &triggered {
        let _ = stack.ws_events(&token, id, 0).await;
    }
    assert_written_nowhere(&stack, &secrets.service_password, "the service credential");
    assert_written_nowhere(&stack, &secrets.hook_secret, "the webhook secret");
    // Control: the search could have found it (the file holds it).
    assert!(!files_containing(secrets.dir.path(), secrets.service_password.as_bytes()).is_empty());
    stack.shutdown().await;
}

/// Two followers of feature/x (wh-a, wh-b), one on feature/x that does not
/// follow (wh-c), one following main (wh-d), each running.
async fn deploy_followers_and_others(stack: &Stack, token: &str) {
    let mut first = Vec::new();
    for (sandbox, branch) in [
        ("wh-a", BRANCH),
        ("wh-b", BRANCH),
        ("wh-c", BRANCH),
        ("wh-d", "main"),
    ] {
        first.push(stack.deploy(token, sandbox, branch).await);
    }
    for id in &first {
        assert_eq!(stack.wait_settled(token, id).await.status, Status::Running);
    }
    for sandbox in ["wh-a", "wh-b", "wh-d"] {
        let (status, answer) = follow(stack, token, sandbox, true).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let view: ServiceView = serde_json::from_value(answer).expect("a service view");
        assert!(view.follow, "{view:?}");
        assert_eq!(view.repo, REPO);
    }
    assert!(!service(stack, token, "wh-c", REPO).await.follow);
}

/// Someone else may not change what a sandbox follows; an unknown sandbox
/// is 404.
async fn only_the_owner_changes_what_a_sandbox_follows(stack: &Stack, token: &str) {
    let other = stack.login_as("qa").await;
    let other = other.token().expect("token");
    let (status, body) = follow(stack, other, "wh-c", true).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = follow(stack, token, "no-such", true).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The `X-Event-Key` of a Cloud push.
fn push_event() -> (&'static str, String) {
    ("X-Event-Key", "repo:push".to_owned())
}

/// Unsigned, wrongly signed and oversized deliveries of `push` are refused,
/// and deploy nothing.
async fn refused_deliveries_deploy_nothing(
    stack: &Stack,
    token: &str,
    secrets: &SecretFiles,
    push: &[u8],
) {
    let before = all_deployments(stack, token).await.len();
    let event = push_event();
    let refusals = [
        vec![event.clone()],
        vec![
            event.clone(),
            ("X-Hub-Signature", sign(&Secret::new("wrong"), push)),
        ],
        vec![event.clone(), ("X-Hub-Signature", "sha256=zz".to_owned())],
    ];
    for headers in refusals {
        let (status, answer) = deliver(stack, push.to_vec(), &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
        assert_eq!(error_code(&answer), "unauthorized");
    }
    let mut oversized = push.to_vec();
    oversized.extend(std::iter::repeat_n(b' ', 1024 * 1024));
    let signature = secrets.sign(&oversized);
    let (status, answer) =
        deliver(stack, oversized, &[event, ("X-Hub-Signature", signature)]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(error_code(&answer), "payload_too_large");
    assert_eq!(
        all_deployments(stack, token).await.len(),
        before,
        "a refused hook deployed something"
    );
}

/// The signed `push` of commit `new`: exactly wh-a and wh-b get a new
/// deployment of it, by `bitbucket-push`, serving revision 2; wh-c and
/// wh-d keep their one deployment. Returns the delivery's headers.
async fn push_and_expect_followers_redeploy(
    stack: &Stack,
    token: &str,
    secrets: &SecretFiles,
    push: &[u8],
    new: &str,
) -> [(&'static str, String); 3] {
    let signed = [
        push_event(),
        ("X-Hub-Signature", secrets.sign(push)),
        (
            "X-Request-UUID",
            "0d7b2a1e-1111-4c55-9d7e-9b5f0e1a2b3c".to_owned(),
        ),
    ];
    let sent = std::time::Instant::now();
    let (status, answer) = deliver(stack, push.to_vec(), &signed).await;
    let answered = sent.elapsed();
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let answer = hook_answer(&answer);
    assert_eq!(answer.outcome, HookOutcome::Handled);
    assert_eq!(answer.repo.as_deref(), Some(REPO));
    let mut sandboxes: Vec<&str> = answer
        .triggered
        .iter()
        .map(|t| t.sandbox.as_str())
        .collect();
    sandboxes.sort_unstable();
    assert_eq!(sandboxes, ["wh-a", "wh-b"], "{answer:?}");
    for t in &answer.triggered {
        let id = t.deployment_id.as_str();
        let deployment = stack.wait_settled(token, id).await;
        assert_eq!(deployment.status, Status::Running, "{deployment:?}");
        assert_eq!(deployment.commit.as_deref(), Some(new));
        assert_eq!(deployment.branch, BRANCH);
        assert_eq!(deployment.created_by, "bitbucket-push");
        let served = stack
            .get_service(deployment.url.as_deref().expect("url"))
            .await;
        assert_eq!(served["revision"], "2");
    }
    // Figures for the report (not asserted): the answer waits for the
    // agents to accept; both followers then build and start.
    eprintln!(
        "webhook: answered in {answered:?}; both followers running {:?} after the push",
        sent.elapsed()
    );
    let after = all_deployments(stack, token).await;
    for sandbox in ["wh-c", "wh-d"] {
        assert_eq!(
            after.iter().filter(|d| d.sandbox == sandbox).count(),
            1,
            "{sandbox} was redeployed"
        );
    }
    signed
}

/// Replays of the `signed` delivery of `push`: the same delivery, the same
/// body under a new id, the same id with another body. Each answers
/// `duplicate`.
async fn replays_deploy_nothing(
    stack: &Stack,
    secrets: &SecretFiles,
    push: &[u8],
    signed: &[(&'static str, String); 3],
) {
    let (status, answer) = deliver(stack, push.to_vec(), signed).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(hook_answer(&answer).outcome, HookOutcome::Duplicate);
    let (status, answer) = deliver(
        stack,
        push.to_vec(),
        &[
            push_event(),
            ("X-Hub-Signature", secrets.sign(push)),
            ("X-Request-UUID", "a-fresh-id".to_owned()),
        ],
    )
    .await;
    assert_eq!(
        (status, hook_answer(&answer).outcome),
        (StatusCode::OK, HookOutcome::Duplicate)
    );
    let mut other_body = push.to_vec();
    other_body.push(b'\n');
    let (status, answer) = deliver(
        stack,
        other_body.clone(),
        &[
            push_event(),
            ("X-Hub-Signature", secrets.sign(&other_body)),
            signed[2].clone(),
        ],
    )
    .await;
    assert_eq!(
        (status, hook_answer(&answer).outcome),
        (StatusCode::OK, HookOutcome::Duplicate)
    );
}

/// A signed delivery of another event kind is accepted and ignored.
async fn another_event_kind_is_ignored(stack: &Stack, secrets: &SecretFiles) {
    let ping = br#"{"test": true}"#.to_vec();
    let (status, answer) = deliver(
        stack,
        ping.clone(),
        &[
            ("X-Event-Key", "diagnostics:ping".to_owned()),
            ("X-Hub-Signature", secrets.sign(&ping)),
            ("X-Request-Id", "dc-ping-1".to_owned()),
        ],
    )
    .await;
    assert_eq!(
        (status, hook_answer(&answer).outcome),
        (StatusCode::ACCEPTED, HookOutcome::Ignored)
    );
}

/// The Data Center shape: the same two followers move from `new` to
/// revision 3; a later delivery of the same commit finds them up to date.
/// Returns the ids of the two deployments.
async fn data_center_push_moves_followers_once(
    stack: &Stack,
    token: &str,
    secrets: &SecretFiles,
    new: &str,
) -> Vec<String> {
    let third = stack.fixture.push_revision(BRANCH, "3");
    let deliver_dc = |date: &'static str, request_id: &'static str| {
        let body = data_center_push(REPO, BRANCH, new, &third, date);
        let headers = [
            ("X-Event-Key", "repo:refs_changed".to_owned()),
            ("X-Hub-Signature", secrets.sign(&body)),
            ("X-Request-Id", request_id.to_owned()),
        ];
        async move { deliver(stack, body, &headers).await }
    };
    let (status, answer) = deliver_dc("2026-11-27T10:05:00+0000", "dc-1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let answer = hook_answer(&answer);
    assert_eq!(answer.triggered.len(), 2, "{answer:?}");
    let mut ids = Vec::new();
    for t in &answer.triggered {
        let id = t.deployment_id.as_str();
        let deployment = stack.wait_settled(token, id).await;
        assert_eq!(deployment.status, Status::Running, "{deployment:?}");
        assert_eq!(deployment.commit.as_deref(), Some(third.as_str()));
        ids.push(id.to_owned());
    }
    let (status, answer) = deliver_dc("2026-11-27T10:06:00+0000", "dc-2").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let answer = hook_answer(&answer);
    assert!(answer.triggered.is_empty(), "{answer:?}");
    assert_eq!(answer.skipped.len(), 2, "{answer:?}");
    assert_eq!(answer.skipped[0].note, "up to date");
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_service_credential_a_push_leaves_the_follower_behind() {
    let secrets = SecretFiles::new(false);
    let stack = Stack::start_with(StackOptions {
        control_plane_env: secrets.env(false),
        ..StackOptions::default()
    })
    .await;
    let token = stack.login().await;
    let first = stack.deploy(&token, "wh-behind", BRANCH).await;
    assert_eq!(
        stack.wait_settled(&token, &first).await.status,
        Status::Running
    );
    // Following turned on from the command line.
    let sdp = Sdp::new(&stack.base_url);
    sdp.login(&stack.password).await;
    let out = sdp.run(&["follow", "wh-behind", REPO, "-o", "json"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let followed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (&followed["repo"], &followed["follow"]),
        (&json!(REPO), &json!(true))
    );

    let old = stack.fixture.commit(BRANCH);
    let new = stack.fixture.push_revision(BRANCH, "2");
    let body = cloud_push(REPO, BRANCH, &old, &new);
    let (status, answer) = deliver(
        &stack,
        body.clone(),
        &[
            ("X-Event-Key", "repo:push".to_owned()),
            ("X-Hub-Signature", secrets.sign(&body)),
            ("X-Request-UUID", "behind-1".to_owned()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let answer = hook_answer(&answer);
    assert!(answer.triggered.is_empty(), "{answer:?}");
    assert_eq!(answer.skipped[0].sandbox, "wh-behind");
    assert_eq!(answer.skipped[0].note, "behind: deploy by hand");
    assert!(answer.message.contains("deploy by hand"), "{answer:?}");
    assert_eq!(
        all_deployments(&stack, &token).await.len(),
        1,
        "deployed anyway"
    );
    let users = service(&stack, &token, "wh-behind", REPO).await;
    let pushed = users.pushed_head.as_ref().expect("a pushed head");
    assert_eq!(pushed.commit, new, "{users:?}");
    assert_eq!(pushed.note, "behind: deploy by hand");

    // Deploying by hand catches up, and the note goes.
    let by_hand = stack.deploy(&token, "wh-behind", BRANCH).await;
    let deployment = stack.wait_settled(&token, &by_hand).await;
    assert_eq!(deployment.commit.as_deref(), Some(new.as_str()));
    let users = service(&stack, &token, "wh-behind", REPO).await;
    assert!(users.pushed_head.is_none(), "{users:?}");
    assert!(users.follow);
    let out = sdp.run(&["follow", "wh-behind", REPO, "--off"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("false"),
        "{}",
        show(&out)
    );
    let out = sdp.run(&["follow", "wh-behind", "ghost"]).await;
    assert_eq!(code(&out), 7, "an unknown service: {}", show(&out));
    assert!(!service(&stack, &token, "wh-behind", REPO).await.follow);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_are_off_without_a_secret_and_a_named_secret_file_must_be_readable() {
    let stack = Stack::start_with(StackOptions {
        agent: false,
        ..StackOptions::default()
    })
    .await;
    let body = cloud_push(REPO, BRANCH, &"1".repeat(40), &"2".repeat(40));
    // With both required headers (without them a delivery is malformed,
    // hooks on or off), so the answer is about the missing secret.
    let headers = [
        ("X-Event-Key", "repo:push".to_owned()),
        ("X-Hub-Signature", sign(&Secret::new("any"), &body)),
    ];
    let (status, answer) = deliver(&stack, body, &headers).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(error_code(&answer), "not_configured");
    stack.shutdown().await;

    // A secret file named but missing, or empty, stops the start (64).
    let dir = TempDir::new().expect("temp dir");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").expect("write");
    for (key, path) in [
        (
            "SDP_CONTROL_PLANE__WEBHOOKS__BITBUCKET_SECRET_FILE",
            dir.path().join("missing"),
        ),
        ("SDP_CONTROL_PLANE__GIT__SERVICE_CREDENTIAL_FILE", empty),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_sdp-control-plane"))
            .arg("--check-config")
            .env_clear()
            .env(key, &path)
            .output()
            .expect("run --check-config");
        assert_eq!(output.status.code(), Some(64), "{key}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    }
}
