//! Notifications on real parts, against a fake Bitbucket and a fake
//! webhook endpoint in the test (loopback, free port; see
//! `common::fake_receiver`): a deployment that reaches `running` or
//! `failed` posts a build status on its commit (Cloud and Data Center
//! paths, basic auth of the service credential file, the body), a
//! Bitbucket that is down or slow never holds a deployment up, an outgoing
//! webhook that fails its first answers is retried with growing waits,
//! and `GET /api/deliveries` shows each one's last outcome.

use std::time::Duration;

use reqwest::StatusCode;
use sdp_api::client::Client;
use sdp_api::{
    AuditAction, AuditOutcome, AuditQuery, BuildState, DeliveriesQuery, Delivery, DeliveryKind,
    DeliveryOutcome, NewDeployment, NotifyEvent, NotifyTarget, TemplateNotify,
};
use sdp_bus::Status;
use serde_json::json;
use tempfile::TempDir;

use crate::common::fake_receiver::{FakeReceiver, Received};
use crate::common::*;

const SERVICE_USER: &str = "sdp-svc";

/// A stack whose control plane sends build statuses to `bitbucket`.
pub struct NotifyStack {
    pub stack: Stack,
    pub bitbucket: FakeReceiver,
    /// The `Authorization` the service credential file makes.
    pub auth: String,
    _secrets: TempDir,
}

impl NotifyStack {
    pub async fn start(flavour: &str) -> NotifyStack {
        let bitbucket = FakeReceiver::start().await;
        let secrets = TempDir::new().expect("temp dir");
        let password = sdp_testkit::unique_id("svc-pw");
        let credential = secrets.path().join("service-credential");
        std::fs::write(&credential, format!("{SERVICE_USER}:{password}\n")).expect("write");
        let auth = sdp_testkit::basic_auth_header(SERVICE_USER, &password);
        bitbucket.expect_auth(auth.clone());
        let mut env = pairs(&[
            ("SDP_CONTROL_PLANE__BITBUCKET__FLAVOUR", flavour.to_owned()),
            ("SDP_CONTROL_PLANE__BITBUCKET__API_URL", bitbucket.url()),
            ("SDP_CONTROL_PLANE__BITBUCKET__WORKSPACE", "team".to_owned()),
            (
                "SDP_CONTROL_PLANE__GIT__SERVICE_CREDENTIAL_FILE",
                credential.display().to_string(),
            ),
            ("SDP_CONTROL_PLANE__NOTIFY__BACKOFF", "300ms".to_owned()),
            ("SDP_CONTROL_PLANE__NOTIFY__TIMEOUT", "1s".to_owned()),
            ("SDP_CONTROL_PLANE__NOTIFY__ATTEMPTS", "6".to_owned()),
            (
                "SDP_CONTROL_PLANE__NOTIFY__ALLOW_LOOPBACK_HTTP",
                "true".to_owned(),
            ),
        ]);
        if flavour == "data_center" {
            env.retain(|(k, _)| !k.ends_with("__WORKSPACE"));
        }
        let stack = Stack::start_with(StackOptions {
            control_plane_env: env,
            ..StackOptions::default()
        })
        .await;
        NotifyStack {
            stack,
            bitbucket,
            auth,
            _secrets: secrets,
        }
    }
}

/// Waits until `receiver` got a request that `wanted` accepts.
pub async fn wait_received(
    receiver: &FakeReceiver,
    what: &str,
    wanted: impl Fn(&Received) -> bool,
) -> Received {
    sdp_testkit::wait_for(what, Duration::from_secs(60), || {
        let found = receiver.received().into_iter().find(|r| wanted(r));
        async move { found }
    })
    .await
}

/// Waits until the sandbox's delivery that `wanted` accepts exists.
pub async fn wait_delivery(
    client: &Client,
    sandbox: &str,
    what: &str,
    wanted: impl Fn(&Delivery) -> bool,
) -> Delivery {
    sdp_testkit::wait_for(what, Duration::from_secs(60), || async {
        let list = client
            .deliveries(&DeliveriesQuery {
                sandbox: Some(sandbox.to_owned()),
                limit: None,
                cursor: None,
            })
            .await
            .ok()?;
        list.into_iter().find(|d| wanted(d))
    })
    .await
}

async fn deploy(client: &Client, sandbox: &str, branch: &str, commit: Option<String>) -> String {
    let started = client
        .deploy(
            sandbox,
            &NewDeployment {
                repo: REPO.to_owned(),
                branch: branch.to_owned(),
                commit,
            },
        )
        .await
        .expect("deploy");
    started.id.as_str().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_build_statuses_on_running_and_failed() {
    let notify = NotifyStack::start("cloud").await;
    let stack = &notify.stack;
    let client = stack.login_as(USER).await;
    let sandbox = sdp_testkit::unique_id("nbc");
    let running = stack
        .deploy_and_wait(&client, &sandbox, BRANCH, Status::Running)
        .await;
    let commit = running
        .commit
        .clone()
        .expect("a running deployment has its commit");
    let path = format!("/2.0/repositories/team/{REPO}/commit/{commit}/statuses/build");
    let got = wait_received(&notify.bitbucket, "SUCCESSFUL on the commit", |r| {
        r.path == path && r.body["state"] == "SUCCESSFUL"
    })
    .await;
    assert_eq!(got.method, "POST");
    assert_eq!(got.authorization.as_deref(), Some(notify.auth.as_str()));
    assert_eq!(got.answered, 201);
    let key = format!("sdp-{sandbox}-{REPO}");
    assert_eq!(got.body["key"], json!(key), "{}", got.body);
    assert_eq!(got.body["name"], json!(format!("SDP {sandbox} / {REPO}")));
    let url = got.body["url"].as_str().expect("url");
    assert!(url.ends_with(&format!("/#/sandboxes/{sandbox}")), "{url}");
    let delivered = wait_delivery(&client, &sandbox, "the delivery recorded", |d| {
        d.kind == DeliveryKind::BuildStatus && d.outcome == DeliveryOutcome::Delivered
    })
    .await;
    assert_eq!(delivered.event, NotifyEvent::DeploymentRunning);
    assert_eq!(delivered.state, BuildState::Successful);
    assert_eq!(delivered.target, "bitbucket cloud");
    assert_eq!(delivered.commit.as_deref(), Some(commit.as_str()));
    assert_eq!(delivered.attempts, 1);
    assert_eq!(delivered.last_status, Some(201));
    // The CLI lists the same, as a table and as JSON.
    let sdp = crate::cli::Sdp::new(&stack.base_url);
    sdp.login(&stack.password).await;
    let out = sdp.run(&["deliveries", &sandbox, "-o", "json"]).await;
    assert_eq!(
        crate::cli::code(&out),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<Delivery> = serde_json::from_slice(&out.stdout).expect("JSON deliveries");
    assert!(
        listed
            .iter()
            .any(|d| d.id == delivered.id && d.outcome == DeliveryOutcome::Delivered)
    );
    let out = sdp.run(&["deliveries", &sandbox]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("bitbucket cloud") && table.contains("delivered"),
        "{table}"
    );

    // A commit that does not build, asked for by id: INPROGRESS at once,
    // FAILED when it fails, linking to the deployment's page.
    let broken = stack.fixture.push_broken("main");
    let id = deploy(&client, &sandbox, "main", Some(broken.clone())).await;
    let failed = wait_for_status(&client, &id, Status::Failed).await;
    assert_eq!(failed.status, Status::Failed);
    let path = format!("/2.0/repositories/team/{REPO}/commit/{broken}/statuses/build");
    let first = wait_received(&notify.bitbucket, "INPROGRESS", |r| {
        r.path == path && r.body["state"] == "INPROGRESS"
    })
    .await;
    let last = wait_received(&notify.bitbucket, "FAILED", |r| {
        r.path == path && r.body["state"] == "FAILED"
    })
    .await;
    assert!(first.at <= last.at);
    assert_eq!(
        last.body["key"],
        json!(key),
        "one key per sandbox and service"
    );
    let url = last.body["url"].as_str().expect("url");
    assert!(url.ends_with(&format!("/#/deployments/{id}")), "{url}");
    assert!(
        last.body["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("failed")),
        "{}",
        last.body
    );
    // Every request came with the service credential; nothing was refused.
    assert!(
        notify
            .bitbucket
            .received()
            .iter()
            .all(|r| r.authorization.as_deref() == Some(notify.auth.as_str()) && r.answered == 201)
    );
    stack_shutdown(notify).await;
}

async fn stack_shutdown(notify: NotifyStack) {
    let NotifyStack { stack, .. } = notify;
    stack.shutdown().await;
}

/// Data Center, and a Bitbucket that is down and slow while the
/// deployment runs: the deployment reaches `running` all the same, the
/// status is retried and lands once Bitbucket is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_center_down_and_slow_never_holds_a_deployment_up() {
    let notify = NotifyStack::start("data_center").await;
    let stack = &notify.stack;
    // Slower than the 1 s attempt timeout, and failing: down.
    notify.bitbucket.set_delay(Duration::from_secs(3));
    notify.bitbucket.fail_next(1000);
    let client = stack.login_as(USER).await;
    let sandbox = sdp_testkit::unique_id("nbd");
    let running = stack
        .deploy_and_wait(&client, &sandbox, BRANCH, Status::Running)
        .await;
    let commit = running.commit.clone().expect("commit");
    let retrying = wait_delivery(&client, &sandbox, "a retried status", |d| {
        d.kind == DeliveryKind::BuildStatus && d.attempts >= 2
    })
    .await;
    assert_eq!(retrying.outcome, DeliveryOutcome::Pending, "{retrying:?}");
    assert_eq!(retrying.target, "bitbucket data_center");
    assert_eq!(retrying.last_error.as_deref(), Some("timed out"));
    // Back up.
    notify.bitbucket.set_delay(Duration::ZERO);
    notify.bitbucket.fail_next(0);
    let path = format!("/rest/build-status/1.0/commits/{commit}");
    let got = wait_received(&notify.bitbucket, "the status once back", |r| {
        r.path == path && r.answered == 201
    })
    .await;
    assert_eq!(got.body["state"], "SUCCESSFUL");
    assert_eq!(got.body["key"], json!(format!("sdp-{sandbox}-{REPO}")));
    assert_eq!(got.authorization.as_deref(), Some(notify.auth.as_str()));
    let delivered = wait_delivery(&client, &sandbox, "delivered", |d| {
        d.outcome == DeliveryOutcome::Delivered
    })
    .await;
    assert!(delivered.attempts >= 3, "{delivered:?}");
    stack_shutdown(notify).await;
}

/// A template's webhook that answers 503 twice: tried three times with
/// growing waits, the body has Slack's `text`; only the template's
/// creator sets (and sees) the URL. The environment the sandbox runs with
/// has webhooks too (set with `sdp notify`): the same URL as the
/// template's is sent to once, one that refuses (401) fails at once.
/// Internal hosts are refused when set. Each delivery's end is in the
/// audit trail (actor `system`), by origin only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_retry_with_backoff_and_only_the_creator_sets_them() {
    let notify = NotifyStack::start("cloud").await;
    let stack = &notify.stack;
    let hook = FakeReceiver::start().await;
    hook.fail_next(2);
    // Answers 401 to anything without this credential: a refusal.
    let refusing = FakeReceiver::start().await;
    refusing.expect_auth("Basic bm9ib2R5Og==".to_owned());
    let client = stack.login_as(USER).await;
    let template = sdp_testkit::unique_id("nbw");
    let (status, body) = stack
        .post(
            client.token().expect("token"),
            "/api/templates",
            json!({ "name": template, "services": [{ "repo": REPO, "branch": BRANCH }] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let secret = sdp_testkit::unique_id("secret");
    let url = format!("{}/hooks/{secret}", hook.url());
    let targets = TemplateNotify {
        targets: vec![NotifyTarget {
            url: url.clone(),
            events: vec![
                NotifyEvent::DeploymentRunning,
                NotifyEvent::DeploymentFailed,
            ],
        }],
    };
    // Someone else may neither set them nor read the URL's secret path.
    let other = stack.login_as("other").await;
    let refused = other
        .put_template_notify(&template, &targets)
        .await
        .expect_err("not the creator");
    assert_eq!(refused.status(), Some(403));
    let bad = TemplateNotify {
        targets: vec![NotifyTarget {
            url: "http://example.com/hook".into(),
            events: vec![],
        }],
    };
    let refused = client
        .put_template_notify(&template, &bad)
        .await
        .expect_err("plain http elsewhere than loopback");
    assert_eq!(refused.status(), Some(400));
    let set = client
        .put_template_notify(&template, &targets)
        .await
        .expect("set");
    assert_eq!(set, targets);
    assert_eq!(
        client.template_notify(&template).await.expect("read"),
        targets
    );
    let seen = other.template_notify(&template).await.expect("read");
    assert_eq!(seen.targets[0].url, hook.url(), "the origin only");
    let environment = environment_webhooks(stack, &client, &other, &url, &refusing).await;

    let sandbox = sdp_testkit::unique_id("nbw");
    let (status, body) = stack
        .post(
            client.token().expect("token"),
            "/api/sandboxes",
            json!({ "name": sandbox, "template": template, "environment": environment }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    stack
        .deploy_and_wait(&client, &sandbox, BRANCH, Status::Running)
        .await;
    let delivered = wait_delivery(&client, &sandbox, "the webhook delivered", |d| {
        d.kind == DeliveryKind::Webhook && d.outcome == DeliveryOutcome::Delivered
    })
    .await;
    assert_eq!(delivered.attempts, 3, "{delivered:?}");
    assert_eq!(delivered.target, hook.url(), "shown by its origin");
    let got: Vec<Received> = hook.received();
    assert_eq!(
        got.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [503, 503, 201]
    );
    let waits: Vec<Duration> = got.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(waits[0] >= Duration::from_millis(300), "{waits:?}");
    assert!(
        waits[1] >= Duration::from_millis(600),
        "backoff doubles: {waits:?}"
    );
    let body = &got[2].body;
    assert_eq!(body["event"], "deployment.running");
    assert_eq!(body["state"], "SUCCESSFUL");
    assert_eq!(body["sandbox"], json!(sandbox));
    assert!(
        body["text"].as_str().is_some_and(|t| t.contains(&sandbox)),
        "{body}"
    );
    assert!(
        got.iter().all(|r| r.authorization.is_none()),
        "no credential to webhooks"
    );
    let refused = wait_delivery(&client, &sandbox, "the refused webhook given up", |d| {
        d.kind == DeliveryKind::Webhook && d.outcome == DeliveryOutcome::Failed
    })
    .await;
    assert_eq!(refused.target, refusing.url());
    assert_eq!(refused.attempts, 1, "a 401 is not tried again: {refused:?}");
    assert_eq!(refused.last_status, Some(401));
    assert_eq!(
        hook.received().len(),
        3,
        "the URL the template and the environment share is sent to once"
    );
    delivery_audit(&client, &sandbox, &hook, &refusing, &secret).await;
    stack_shutdown(notify).await;
}

/// An environment's webhooks: set with `sdp notify` by its creator (the
/// template's URL again, and one that refuses), not by another user, who
/// reads origins only; internal hosts are refused with a clear message.
/// Returns the environment's name.
async fn environment_webhooks(
    stack: &Stack,
    client: &Client,
    other: &Client,
    shared_url: &str,
    refusing: &FakeReceiver,
) -> String {
    let environment = sdp_testkit::unique_id("nbe");
    let (status, body) = stack
        .post(
            client.token().expect("token"),
            "/api/environments",
            json!({ "name": environment, "vars": {} }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sdp = crate::cli::Sdp::new(&stack.base_url);
    sdp.login(&stack.password).await;
    let refusing_url = format!("{}/refuses/{}", refusing.url(), sdp_testkit::unique_id("s"));
    for (url, event) in [
        (shared_url, "deployment.running"),
        (refusing_url.as_str(), "deployment.running"),
    ] {
        let out = sdp
            .run(&[
                "notify",
                "set",
                "--environment",
                &environment,
                "--webhook",
                url,
                "--event",
                event,
                "-o",
                "json",
            ])
            .await;
        assert_eq!(crate::cli::code(&out), 0, "{}", crate::cli::show(&out));
    }
    let out = sdp
        .run(&[
            "notify",
            "show",
            "--environment",
            &environment,
            "-o",
            "json",
        ])
        .await;
    let shown: TemplateNotify = serde_json::from_slice(&out.stdout).expect("JSON webhooks");
    assert_eq!(
        shown
            .targets
            .iter()
            .map(|t| t.url.as_str())
            .collect::<Vec<_>>(),
        [shared_url, refusing_url.as_str()]
    );
    assert_eq!(shown.targets[0].events, [NotifyEvent::DeploymentRunning]);
    assert_eq!(
        client.environment_notify(&environment).await.expect("read"),
        shown
    );
    let out = sdp
        .run(&["notify", "show", "--environment", &environment])
        .await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with("URL") && table.contains("deployment.running"),
        "{table}"
    );
    let seen = other.environment_notify(&environment).await.expect("read");
    assert_eq!(seen.targets[1].url, refusing.url(), "the origin only");
    let refused = other
        .put_environment_notify(&environment, &shown)
        .await
        .expect_err("not the creator");
    assert_eq!(refused.status(), Some(403));

    // Internal hosts, however spelled, and the control plane itself (even
    // with loopback allowed, as here): refused when set, nothing changed.
    let own = format!("{}/api/sandboxes", stack.base_url);
    for (url, says) in [
        (
            "https://10.0.0.5/hook",
            "webhook host 10.0.0.5 is a private address; allow it with notify.allowed_private_hosts",
        ),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        (
            "https://[::ffff:10.0.0.5]/hook",
            "[::ffff:10.0.0.5] is 10.0.0.5, a private address",
        ),
        ("https://0xa9fea9fe/", "169.254.169.254 is a link-local"),
        (own.as_str(), "the control plane's own listen address"),
    ] {
        let body = TemplateNotify {
            targets: vec![NotifyTarget {
                url: url.to_owned(),
                events: vec![],
            }],
        };
        let refused = client
            .put_environment_notify(&environment, &body)
            .await
            .expect_err(url);
        assert_eq!(refused.status(), Some(400), "{url}");
        assert!(refused.to_string().contains(says), "{url}: {refused}");
    }
    let out = sdp
        .run(&[
            "notify",
            "set",
            "--environment",
            &environment,
            "--webhook",
            "https://192.168.1.1/x",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(crate::cli::code(&out), 2, "{}", crate::cli::show(&out));
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON error");
    assert_eq!(error["error"]["code"], "bad_request");
    let out = sdp
        .run(&[
            "notify",
            "clear",
            "--environment",
            &environment,
            "--webhook",
            "https://nope.example/",
        ])
        .await;
    assert_eq!(crate::cli::code(&out), 7, "{}", crate::cli::show(&out));
    assert_eq!(
        client.environment_notify(&environment).await.expect("read"),
        shown,
        "nothing changed"
    );
    environment
}

/// The audit trail has each webhook delivery's end, by the control plane
/// (`system`): ok for the delivered one, failed for the refused one, by
/// origin only (no path, no secret).
async fn delivery_audit(
    client: &Client,
    sandbox: &str,
    hook: &FakeReceiver,
    refusing: &FakeReceiver,
    secret: &str,
) {
    let entries = sdp_testkit::wait_for(
        "the deliveries' audit entries",
        Duration::from_secs(30),
        || async {
            let page = client
                .audit(&AuditQuery {
                    sandbox: Some(sandbox.to_owned()),
                    action: Some("delivery".to_owned()),
                    limit: Some(100),
                    ..AuditQuery::default()
                })
                .await
                .ok()?;
            let webhooks = |origin: String| {
                page.entries
                    .iter()
                    .find(|e| {
                        e.message.as_deref().is_some_and(|m| {
                            m.starts_with("webhook") && m.contains(&format!("to {origin}: "))
                        })
                    })
                    .cloned()
            };
            Some((
                webhooks(hook.url())?,
                webhooks(refusing.url())?,
                page.entries.clone(),
            ))
        },
    )
    .await;
    let (delivered, refused, all) = entries;
    for entry in &all {
        assert_eq!(entry.actor.as_deref(), Some("system"), "{entry:?}");
        assert_eq!(entry.action, AuditAction::Delivery);
        assert_eq!(entry.sandbox.as_deref(), Some(sandbox));
        assert_eq!(entry.address, None);
        let message = entry.message.as_deref().unwrap_or_default();
        assert!(
            !message.contains(secret)
                && !message.contains("/hooks/")
                && !message.contains("/refuses/"),
            "no URL path in {message}"
        );
    }
    assert_eq!(delivered.outcome, AuditOutcome::Ok, "{delivered:?}");
    let message = delivered.message.as_deref().unwrap_or_default();
    assert!(
        message.contains("deployment.running") && message.contains("delivered after 3 attempt(s)"),
        "{message}"
    );
    assert_eq!(refused.outcome, AuditOutcome::Failed, "{refused:?}");
    assert!(
        refused
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("failed after 1 attempt(s)"),
        "{refused:?}"
    );
}
