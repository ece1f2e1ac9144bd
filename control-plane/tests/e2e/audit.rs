//! The audit trail on real parts: every changing action, done, refused or
//! failed, is one entry with its actor, target, outcome and the client's
//! address (through `http.trusted_proxies`); a secret's value never shows;
//! a non-admin sees only their own and their sandboxes' entries; filters
//! and paging; retention removes old entries.

use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, StatusCode};
use sdp_api::client::Client;
use sdp_api::{AuditAction, AuditEntry, AuditOutcome, AuditQuery};
use sdp_testkit::{unique_id, wait_for};
use serde_json::{Value, json};

use crate::common::*;

const OTHER: &str = "qa";
const ADMIN: &str = "ops";
const ADMIN_PASSWORD: &str = "ops-password";
/// What each user's requests say they were forwarded for, by the trusted
/// proxy on 127.0.0.1.
const DEV_ADDRESS: &str = "203.0.113.9";
const OTHER_ADDRESS: &str = "198.51.100.4";

/// Requests as if through a proxy that appends `address` to
/// `X-Forwarded-For`, after a made-up entry the client sent itself.
fn forwarded_http(address: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        format!("6.6.6.6, {address}").parse().expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("http client")
}

/// A raw request (its status only), bearer token or none.
async fn send(
    http: &reqwest::Client,
    stack: &Stack,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> StatusCode {
    let mut request = http.request(method, stack.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request").status()
}

async fn login(http: &reqwest::Client, stack: &Stack, user: &str, password: &str) -> String {
    let client = Client::with_http(http.clone(), &stack.base_url, None);
    client
        .login(user, password)
        .await
        .unwrap_or_else(|err| panic!("login of {user}: {err}"))
        .token
}

/// Every entry `client` may see that matches `query`, newest first.
async fn all_entries(client: &Client, query: &AuditQuery) -> Vec<AuditEntry> {
    client.all_audit(query, None).await.expect("audit")
}

/// The entries since `since`, oldest first, once there are `count`.
async fn wait_entries(client: &Client, since: &str, count: usize) -> Vec<AuditEntry> {
    let query = AuditQuery {
        since: Some(since.to_owned()),
        ..AuditQuery::default()
    };
    let mut entries = wait_for("the audit entries", Duration::from_secs(20), || async {
        let entries = all_entries(client, &query).await;
        (entries.len() >= count).then_some(entries)
    })
    .await;
    entries.reverse();
    entries
}

/// `(action, actor, outcome, target)` of an entry, for comparing.
type Row = (AuditAction, Option<String>, AuditOutcome, Option<String>);

fn row(
    action: AuditAction,
    actor: Option<&str>,
    outcome: AuditOutcome,
    target: Option<&str>,
) -> Row {
    (
        action,
        actor.map(str::to_owned),
        outcome,
        target.map(str::to_owned),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_one_entry_and_secrets_never_show() {
    use AuditAction as A;
    use AuditOutcome::{Denied, Failed, Ok as Done};
    let stack = Stack::start_with(StackOptions {
        control_plane_env: pairs(&[
            ("SDP_CONTROL_PLANE__AUTH__ADMINS", ADMIN.into()),
            (
                "SDP_CONTROL_PLANE__HTTP__TRUSTED_PROXIES",
                "127.0.0.1/32".into(),
            ),
        ]),
        ..StackOptions::default()
    })
    .await;
    stack.git.add_user(OTHER, "qa-password");
    stack.git.add_user(ADMIN, ADMIN_PASSWORD);
    let since = sdp_api::timestamp::text(Utc::now());
    let dev_http = forwarded_http(DEV_ADDRESS);
    let qa_http = forwarded_http(OTHER_ADDRESS);
    let canary = unique_id("canary-secret-value");
    let sandbox = unique_id("aud");
    let theirs = unique_id("aud-qa");
    let env = unique_id("aud-env");
    let template = unique_id("aud-tpl");

    // Logins: a wrong password, then right.
    let wrong = Client::with_http(dev_http.clone(), &stack.base_url, None)
        .login(USER, "not-the-password")
        .await
        .expect_err("a wrong password");
    assert_eq!(wrong.status(), Some(401));
    let dev = login(&dev_http, &stack, USER, &stack.password).await;
    let qa = login(&qa_http, &stack, OTHER, "qa-password").await;
    let admin = login(&reqwest::Client::new(), &stack, ADMIN, ADMIN_PASSWORD).await;
    let dev_token = Some(dev.as_str());
    let qa_token = Some(qa.as_str());

    let mut expected: Vec<Row> = vec![
        row(A::Login, Some(USER), Denied, None),
        row(A::Login, Some(USER), Done, None),
        row(A::Login, Some(OTHER), Done, None),
        row(A::Login, Some(ADMIN), Done, None),
    ];
    // One request, its status checked, and the entry it must leave.
    macro_rules! act {
        ($http:expr, $token:expr, $method:expr, $path:expr, $body:expr, $status:expr, $row:expr) => {{
            let path: String = $path;
            let got = send(&$http, &stack, $token, $method, &path, $body).await;
            assert_eq!(got, $status, "{path}");
            expected.push($row);
        }};
    }

    act!(
        dev_http,
        dev_token,
        Method::POST,
        "/api/sandboxes".into(),
        Some(json!({ "name": sandbox })),
        StatusCode::CREATED,
        row(A::SandboxCreate, Some(USER), Done, Some(&sandbox))
    );
    act!(
        qa_http,
        qa_token,
        Method::POST,
        "/api/sandboxes".into(),
        Some(json!({ "name": theirs })),
        StatusCode::CREATED,
        row(A::SandboxCreate, Some(OTHER), Done, Some(&theirs))
    );
    act!(
        dev_http,
        dev_token,
        Method::PATCH,
        format!("/api/sandboxes/{sandbox}"),
        Some(json!({ "pinned": true })),
        StatusCode::OK,
        row(A::SandboxUpdate, Some(USER), Done, Some(&sandbox))
    );
    // Refused: someone else's sandbox, and no session at all.
    act!(
        qa_http,
        qa_token,
        Method::PATCH,
        format!("/api/sandboxes/{sandbox}"),
        Some(json!({ "renew": true })),
        StatusCode::FORBIDDEN,
        row(A::SandboxUpdate, Some(OTHER), Denied, Some(&sandbox))
    );
    act!(
        qa_http,
        qa_token,
        Method::DELETE,
        format!("/api/sandboxes/{sandbox}"),
        None,
        StatusCode::FORBIDDEN,
        row(A::SandboxDelete, Some(OTHER), Denied, Some(&sandbox))
    );
    act!(
        dev_http,
        None,
        Method::POST,
        "/api/sandboxes".into(),
        Some(json!({ "name": "nobody" })),
        StatusCode::UNAUTHORIZED,
        // Refused before the handler read the body: no target.
        row(A::SandboxCreate, None, Denied, None)
    );
    // Environments with a secret, whose name shows and value never.
    act!(
        dev_http,
        dev_token,
        Method::POST,
        "/api/environments".into(),
        Some(json!({ "name": env, "vars": { "A": "1" }, "secrets": { "TOKEN": canary } })),
        StatusCode::CREATED,
        row(A::EnvironmentCreate, Some(USER), Done, Some(&env))
    );
    act!(
        dev_http,
        dev_token,
        Method::PUT,
        format!("/api/environments/{env}"),
        Some(json!({ "vars": {}, "secrets": { "TOKEN": format!("{canary}-2") } })),
        StatusCode::OK,
        row(A::EnvironmentUpdate, Some(USER), Done, Some(&env))
    );
    act!(
        qa_http,
        qa_token,
        Method::PUT,
        format!("/api/environments/{env}"),
        Some(json!({ "vars": {}, "secrets": { "TOKEN": format!("{canary}-3") } })),
        StatusCode::FORBIDDEN,
        row(A::EnvironmentUpdate, Some(OTHER), Denied, Some(&env))
    );
    act!(
        dev_http,
        dev_token,
        Method::POST,
        "/api/templates".into(),
        Some(json!({ "name": template, "environment": env,
                     "services": [{ "repo": REPO, "branch": "main" }] })),
        StatusCode::CREATED,
        row(A::TemplateCreate, Some(USER), Done, Some(&template))
    );
    act!(
        dev_http,
        dev_token,
        Method::PUT,
        format!("/api/templates/{template}"),
        Some(json!({ "environment": env, "services": [{ "repo": REPO, "branch": BRANCH }] })),
        StatusCode::OK,
        row(A::TemplateUpdate, Some(USER), Done, Some(&template))
    );
    // Routes, follow, service env: the fixture has no such service.
    act!(
        dev_http,
        dev_token,
        Method::PUT,
        format!("/api/sandboxes/{sandbox}/routes/users"),
        Some(json!({ "target": "http://users.example" })),
        StatusCode::OK,
        row(
            A::RouteSet,
            Some(USER),
            Done,
            Some(&format!("{sandbox}/users"))
        )
    );
    act!(
        dev_http,
        dev_token,
        Method::DELETE,
        format!("/api/sandboxes/{sandbox}/routes/users"),
        None,
        StatusCode::NO_CONTENT,
        row(
            A::RouteReset,
            Some(USER),
            Done,
            Some(&format!("{sandbox}/users"))
        )
    );
    act!(
        dev_http,
        dev_token,
        Method::PUT,
        format!("/api/sandboxes/{sandbox}/services/{REPO}"),
        Some(json!({ "autodeploy": true })),
        StatusCode::NOT_FOUND,
        row(
            A::FollowSet,
            Some(USER),
            Failed,
            Some(&format!("{sandbox}/{REPO}"))
        )
    );
    act!(
        dev_http,
        dev_token,
        Method::PUT,
        format!("/api/sandboxes/{sandbox}/services/{REPO}/env"),
        Some(json!({ "env": { "X": "1" } })),
        StatusCode::NOT_FOUND,
        row(
            A::ServiceEnvSet,
            Some(USER),
            Failed,
            Some(&format!("{sandbox}/{REPO}"))
        )
    );
    // A deploy of a repo no agent holds: recorded, refused by the agent.
    let (status, refused) = {
        let response = dev_http
            .post(stack.url(&format!("/api/sandboxes/{sandbox}/deployments")))
            .bearer_auth(&dev)
            .json(&json!({ "repo": "nope", "branch": "main" }))
            .send()
            .await
            .expect("deploy");
        (
            response.status(),
            response.json::<Value>().await.expect("body"),
        )
    };
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{status} {refused}"
    );
    expected.push(row(A::Deploy, Some(USER), Failed, Some("nope@main")));
    let failed_id = refused["error"]["deployment_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no deployment id: {refused}"))
        .to_owned();
    wait_for(
        "the refused deployment settled",
        Duration::from_secs(20),
        || async {
            let (_, d) = stack
                .get(&dev, &format!("/api/deployments/{failed_id}"))
                .await;
            (d["status"] == "failed").then_some(())
        },
    )
    .await;
    act!(
        dev_http,
        dev_token,
        Method::POST,
        format!("/api/deployments/{failed_id}/cancel"),
        None,
        StatusCode::CONFLICT,
        row(A::Cancel, Some(USER), Failed, Some(&failed_id))
    );
    act!(
        qa_http,
        qa_token,
        Method::POST,
        format!("/api/deployments/{failed_id}/redeploy"),
        None,
        StatusCode::FORBIDDEN,
        row(A::Rollback, Some(OTHER), Denied, Some(&failed_id))
    );
    let status = send(
        &dev_http,
        &stack,
        dev_token,
        Method::POST,
        &format!("/api/sandboxes/{sandbox}/deploy"),
        Some(json!({})),
    )
    .await;
    assert!(
        status.is_client_error(),
        "a sandbox with no template: {status}"
    );
    expected.push(row(A::DeployTemplate, Some(USER), Failed, Some(&sandbox)));
    // The webhook: not configured here, still recorded as the push's.
    let hook = dev_http
        .post(stack.url("/api/hooks/bitbucket"))
        .header("x-hub-signature", "sha256=00")
        .header("x-event-key", "repo:refs_changed")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("hook");
    assert_eq!(hook.status(), StatusCode::NOT_FOUND);
    expected.push(row(A::Push, Some("bitbucket-push"), Failed, None));
    act!(
        dev_http,
        dev_token,
        Method::DELETE,
        format!("/api/templates/{template}"),
        None,
        StatusCode::NO_CONTENT,
        row(A::TemplateDelete, Some(USER), Done, Some(&template))
    );
    act!(
        dev_http,
        dev_token,
        Method::DELETE,
        format!("/api/environments/{env}"),
        None,
        StatusCode::NO_CONTENT,
        row(A::EnvironmentDelete, Some(USER), Done, Some(&env))
    );
    act!(
        dev_http,
        dev_token,
        Method::POST,
        "/api/logout".into(),
        None,
        StatusCode::NO_CONTENT,
        row(A::Logout, Some(USER), Done, None)
    );

    // Exactly one entry per request, in order, each as expected.
    let admin_client = stack.client_with(&admin);
    let entries = wait_entries(&admin_client, &since, expected.len()).await;
    let got: Vec<Row> = entries
        .iter()
        .map(|e| (e.action, e.actor.clone(), e.outcome, e.target.clone()))
        .collect();
    assert_eq!(got, expected, "{entries:#?}");
    for entry in &entries {
        let address = match entry.actor.as_deref() {
            Some(OTHER) => OTHER_ADDRESS,
            Some(ADMIN) => "127.0.0.1",
            _ => DEV_ADDRESS,
        };
        assert_eq!(entry.address.as_deref(), Some(address), "{entry:?}");
    }
    let update = &entries[6];
    assert_eq!(update.message.as_deref(), Some("pin"), "{update:?}");
    assert_eq!(entries[7].message.as_deref(), Some("403 forbidden: renew"));
    assert_eq!(entries[11].message.as_deref(), Some("secrets: TOKEN"));
    let refused_deploy = entries
        .iter()
        .find(|e| e.action == A::Deploy)
        .expect("deploy entry");
    assert_eq!(refused_deploy.sandbox.as_deref(), Some(sandbox.as_str()));
    let cancel = entries
        .iter()
        .find(|e| e.action == A::Cancel)
        .expect("cancel");
    assert_eq!(cancel.sandbox.as_deref(), Some(sandbox.as_str()));

    // The canary is nowhere in what the trail answers.
    let raw = stack
        .get(&admin, &format!("/api/audit?limit=500&since={since}"))
        .await;
    assert_eq!(raw.0, StatusCode::OK);
    assert!(!raw.1.to_string().contains(&canary), "{}", raw.1);
    assert!(!format!("{entries:?}").contains(&canary));

    // A non-admin: their own actions and their own sandboxes' entries.
    let qa_client = stack.client_with(&qa);
    let seen = all_entries(&qa_client, &AuditQuery::default()).await;
    assert!(!seen.is_empty());
    for entry in &seen {
        let theirs_sandbox = entry.sandbox.as_deref() == Some(theirs.as_str());
        assert!(
            entry.actor.as_deref() == Some(OTHER) || theirs_sandbox,
            "qa sees {entry:?}"
        );
    }
    // The admin acts on qa's sandbox: qa sees it; dev does not.
    let status = send(
        &reqwest::Client::new(),
        &stack,
        Some(&admin),
        Method::PATCH,
        &format!("/api/sandboxes/{theirs}"),
        Some(json!({ "renew": true })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let by_admin = wait_for(
        "the admin's entry, as qa",
        Duration::from_secs(20),
        || async {
            all_entries(&qa_client, &AuditQuery::default())
                .await
                .into_iter()
                .find(|e| e.actor.as_deref() == Some(ADMIN))
        },
    )
    .await;
    assert_eq!(by_admin.sandbox.as_deref(), Some(theirs.as_str()));
    let dev_again = login(&dev_http, &stack, USER, &stack.password).await;
    let dev_seen = all_entries(&stack.client_with(&dev_again), &AuditQuery::default()).await;
    assert!(
        dev_seen
            .iter()
            .all(|e| e.actor.as_deref() == Some(USER)
                || e.sandbox.as_deref() == Some(sandbox.as_str())),
        "{dev_seen:#?}"
    );
    assert!(!dev_seen.iter().any(|e| e.actor.as_deref() == Some(ADMIN)));

    // Filters.
    let filtered = |query: AuditQuery| {
        let client = admin_client.clone();
        let query = AuditQuery {
            since: Some(since.clone()),
            ..query
        };
        async move { all_entries(&client, &query).await }
    };
    let by_user = filtered(AuditQuery {
        user: Some(OTHER.into()),
        ..Default::default()
    })
    .await;
    assert!(!by_user.is_empty() && by_user.iter().all(|e| e.actor.as_deref() == Some(OTHER)));
    let by_sandbox = filtered(AuditQuery {
        sandbox: Some(sandbox.clone()),
        ..Default::default()
    })
    .await;
    assert!(
        by_sandbox
            .iter()
            .all(|e| e.sandbox.as_deref() == Some(sandbox.as_str()))
    );
    assert!(by_sandbox.len() >= 10, "{by_sandbox:#?}");
    let by_action = filtered(AuditQuery {
        action: Some("sandbox.update".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_action.len(), 3, "{by_action:#?}");
    let until = entries[4].at;
    let before = filtered(AuditQuery {
        until: Some(sdp_api::timestamp::text(until)),
        ..Default::default()
    })
    .await;
    assert!(before.iter().all(|e| e.at < until) && !before.is_empty());
    let unknown = stack.get(&admin, "/api/audit?action=sandbox.explode").await;
    assert_eq!(unknown.0, StatusCode::BAD_REQUEST);
    let bad_time = stack.get(&admin, "/api/audit?since=yesterday").await;
    assert_eq!(bad_time.0, StatusCode::BAD_REQUEST);

    // Paging: newest first, pages that join up with no gap or repeat.
    let first = admin_client
        .audit(&AuditQuery {
            since: Some(since.clone()),
            limit: Some(5),
            ..Default::default()
        })
        .await
        .expect("page 1");
    assert_eq!(first.entries.len(), 5);
    assert_eq!(first.next_page, Some(2));
    let second = admin_client
        .audit(&AuditQuery {
            since: Some(since.clone()),
            limit: Some(5),
            page: Some(2),
            ..Default::default()
        })
        .await
        .expect("page 2");
    let ids: Vec<i64> = first
        .entries
        .iter()
        .chain(&second.entries)
        .map(|e| e.id)
        .collect();
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "{ids:?}");
    assert_eq!(ids[4] - 1, ids[5], "{ids:?}");
    // The cursor of page 1 gives what page 2 (deprecated) gave.
    let by_cursor = admin_client
        .audit(&AuditQuery {
            since: Some(since.clone()),
            limit: Some(5),
            cursor: first.next_cursor.clone(),
            ..Default::default()
        })
        .await
        .expect("page after the cursor");
    let cursor_ids: Vec<i64> = by_cursor.entries.iter().map(|e| e.id).collect();
    assert_eq!(cursor_ids, ids[5..].to_vec());
    assert_eq!(by_cursor.next_page, None, "no page numbers with a cursor");
    let foreign = stack.get(&admin, "/api/audit?cursor=dlv1.5").await;
    assert_eq!(foreign.0, StatusCode::BAD_REQUEST, "{}", foreign.1);

    // Append-only: the trail has no way to change or remove an entry.
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let status = send(
            &reqwest::Client::new(),
            &stack,
            Some(&admin),
            method.clone(),
            "/api/audit",
            Some(json!({})),
        )
        .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_older_than_keep_for_are_removed() {
    let stack = Stack::start_with(StackOptions {
        control_plane_env: pairs(&[
            ("SDP_CONTROL_PLANE__AUTH__ADMINS", USER.into()),
            ("SDP_CONTROL_PLANE__AUDIT__KEEP_FOR", "4s".into()),
            ("SDP_CONTROL_PLANE__AUDIT__PRUNE_INTERVAL", "500ms".into()),
        ]),
        ..StackOptions::default()
    })
    .await;
    let token = stack.login().await;
    let client = stack.client_with(&token);
    let first = wait_for("the login's entry", Duration::from_secs(10), || async {
        client
            .audit(&AuditQuery::default())
            .await
            .expect("audit")
            .entries
            .into_iter()
            .find(|e| e.action == AuditAction::Login)
    })
    .await;
    wait_for("the old entry removed", Duration::from_secs(30), || async {
        let page = client.audit(&AuditQuery::default()).await.expect("audit");
        (!page.entries.iter().any(|e| e.id == first.id)).then_some(())
    })
    .await;
    // New entries are still written and kept until they are old.
    let name = unique_id("ret");
    let status = send(
        &reqwest::Client::new(),
        &stack,
        Some(&token),
        Method::POST,
        "/api/sandboxes",
        Some(json!({ "name": name })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    wait_for("the new entry", Duration::from_secs(3), || async {
        let page = client.audit(&AuditQuery::default()).await.expect("audit");
        page.entries
            .iter()
            .any(|e| e.sandbox.as_deref() == Some(name.as_str()))
            .then_some(())
    })
    .await;
    stack.shutdown().await;
}

/// `sdp audit`: the table, its filters, `-o json` and the next page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdp_audit_lists_and_filters() {
    use crate::cli::{Sdp, code, show};
    let stack = Stack::start().await;
    let sdp = Sdp::new(&stack.base_url);
    sdp.login(&stack.password).await;
    let name = unique_id("cli-aud");
    let out = sdp.run(&["sandbox", "create", &name]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let table = wait_for(
        "the sandbox's entry in `sdp audit`",
        Duration::from_secs(20),
        || async {
            let out = sdp.run(&["audit", "--sandbox", &name]).await;
            assert_eq!(code(&out), 0, "{}", show(&out));
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.contains("sandbox.create").then_some(text)
        },
    )
    .await;
    assert!(table.starts_with("AT"), "{table}");
    assert!(
        table.contains(USER) && table.contains(&name) && table.contains(" ok"),
        "{table}"
    );
    let out = sdp
        .run(&[
            "-o",
            "json",
            "audit",
            "--action",
            "sandbox.create",
            "--limit",
            "1",
        ])
        .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let entries: Vec<AuditEntry> = serde_json::from_slice(&out.stdout).expect("an array as JSON");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].action, AuditAction::SandboxCreate);
    // Two sandboxes: `--limit 1` shows the newest; no limit, both.
    let second = unique_id("cli-aud");
    let out = sdp.run(&["sandbox", "create", &second]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let more = wait_for("a second page", Duration::from_secs(20), || async {
        let out = sdp
            .run(&["audit", "--action", "sandbox.create", "--limit", "1"])
            .await;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains(&second).then_some(text)
    })
    .await;
    assert!(!more.contains(&name), "--limit 1: {more}");
    let out = sdp
        .run(&["audit", "--action", "sandbox.create", "--user", USER])
        .await;
    let every = String::from_utf8_lossy(&out.stdout);
    assert!(every.contains(&name) && every.contains(&second), "{every}");
    let out = sdp.run(&["audit", "--action", "sandbox.explode"]).await;
    assert_ne!(code(&out), 0, "{}", show(&out));
    stack.shutdown().await;
}
