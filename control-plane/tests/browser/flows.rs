//! What a developer does all day, through the UI.

use sdp_bus::Status;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::driver::{Browser, UI_TIMEOUT};

/// Logs in through the login page (after one wrong password when
/// `wrong_first`), and waits for the home page.
pub(crate) async fn login(browser: &Browser, stack: &Stack, wrong_first: bool) {
    browser.open("/sandboxes").await;
    browser.wait_for("#login-form").await;
    assert!(
        browser.hash().await.starts_with("#/login"),
        "a visitor without a session lands on the login page"
    );
    if wrong_first {
        browser.fill("#login-username", USER).await;
        browser.fill("#login-password", "not-the-password").await;
        browser.click("#login-submit").await;
        browser.wait_for("#login-error").await;
        let code = browser
            .js("return document.querySelector('#login-error').dataset.code;")
            .await;
        assert_eq!(code, "unauthorized");
        assert!(
            browser
                .text("#login-error")
                .await
                .contains("Wrong username or password"),
            "the wrong credential is explained"
        );
        browser
            .expect_console_errors(&[
                "/api/login - Failed to load resource: the server responded with a status of 401",
            ])
            .await;
    }
    browser.fill("#login-username", USER).await;
    browser.fill("#login-password", &stack.password).await;
    // Enter submits the form.
    browser
        .fill("#login-password", &format!("{}\n", stack.password))
        .await;
    browser
        .wait_js(
            "the home page after login",
            UI_TIMEOUT,
            &format!(
                "return location.hash.startsWith('#/sandboxes') && \
                 document.getElementById('username').textContent === {};",
                json!(USER)
            ),
        )
        .await;
}

/// The log lines the deployment page holds (most are not in the DOM: only
/// rows in view are drawn): (line number, seq, text).
async fn log_rows(browser: &Browser) -> Vec<(u64, u64, String)> {
    let rows = browser
        .js("return document.getElementById('log').logRows();")
        .await;
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r[0].as_u64().expect("n"),
                r[1].as_u64().expect("seq"),
                r[2].as_str().expect("text").to_owned(),
            )
        })
        .collect()
}

async fn wait_result(browser: &Browser, status: &str) {
    browser
        .wait_js(
            &format!("the deployment page to show {status}"),
            DEPLOY_TIMEOUT,
            &format!(
                "const r = document.querySelector('#result-box'); return r && r.dataset.status === {};",
                json!(status)
            ),
        )
        .await;
}

/// Creates the sandbox over REST if this control plane has sandboxes.
async fn ensure_sandbox(stack: &Stack, token: &str, name: &str) {
    let (status, body) = stack
        .post(token, "/api/sandboxes", json!({ "name": name }))
        .await;
    assert!(
        status == StatusCode::CREATED || status == StatusCode::NOT_FOUND,
        "create sandbox: {status} {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_login_watch_a_deployment_resume_after_restart_and_history() {
    let mut stack = Stack::start().await;
    let token = stack.login().await;
    let browser = Browser::start(&stack.base_url).await;

    browser.open("/login").await;
    browser.wait_for("#login-form").await;
    browser.screenshot("login").await;
    login(&browser, &stack, true).await;

    let (id, before) = watch_a_deployment_across_a_restart(&browser, &mut stack, &token).await;
    let rows = the_page_holds_the_whole_log_once(&browser, &stack, &token, &id, &before).await;
    search_highlights_and_filters(&browser, rows.len()).await;
    the_history_lists_it(&browser, &id).await;
    the_agents_page_shows_the_agent(&browser, &stack).await;
    browser.close().await;
}

/// Deploys a build slow enough to restart the control plane in the
/// middle of it and watches it on its page across the restart. Returns
/// the deployment's id and the rows the page held before the restart.
async fn watch_a_deployment_across_a_restart(
    browser: &Browser,
    stack: &mut Stack,
    token: &str,
) -> (String, Vec<(u64, u64, String)>) {
    stack.fixture.push_slow_build(BRANCH);
    ensure_sandbox(stack, token, "alpha").await;
    let id = stack.deploy(token, "alpha", BRANCH).await;
    browser.open(&format!("/deployments/{id}")).await;
    browser
        .wait_for("#stepper li[data-step=building].current")
        .await;
    browser
        .wait_js(
            "log lines before the restart",
            DEPLOY_TIMEOUT,
            "return document.querySelectorAll('#log .log-line[data-n]').length > 0 \
             && document.querySelector('#stream-state').dataset.state === 'live';",
        )
        .await;
    assert_eq!(browser.text("#deployment-branch").await, BRANCH);

    // The control plane dies mid-stream: the page says so, and resumes
    // once it is back.
    stack.kill_control_plane();
    browser
        .wait_js(
            "the stream to report the drop",
            UI_TIMEOUT,
            "return document.querySelector('#stream-state').dataset.state === 'reconnecting';",
        )
        .await;
    let before = log_rows(browser).await;
    stack.start_control_plane().await;
    wait_result(browser, "running").await;
    browser
        .wait_js(
            "the stream to end",
            UI_TIMEOUT,
            "return document.querySelector('#stream-state').dataset.state === 'ended';",
        )
        .await;
    // A reconnect tried while the control plane was down is refused, and
    // Chromium logs every failed WebSocket connection (a page cannot
    // silence it): expected here, and only this.
    browser
        .expect_console_errors(&["net::ERR_CONNECTION_REFUSED"])
        .await;
    (id, before)
}

/// The page holds every line once, numbered without a gap, in seq order,
/// the same as the whole log the REST API serves; the stepper and URL say
/// it runs. Returns the rows.
async fn the_page_holds_the_whole_log_once(
    browser: &Browser,
    stack: &Stack,
    token: &str,
    id: &str,
    before: &[(u64, u64, String)],
) -> Vec<(u64, u64, String)> {
    let rows = log_rows(browser).await;
    assert!(rows.len() > before.len(), "lines arrived after the restart");
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=rows.len() as u64).collect::<Vec<_>>(),
        "line numbers have a gap or a repeat"
    );
    assert!(
        rows.windows(2).all(|w| w[0].1 < w[1].1),
        "seqs are not strictly increasing: {rows:?}"
    );
    assert_eq!(&rows[..before.len()], before, "lines changed");
    let log = stack
        .http()
        .get(stack.url(&format!("/api/deployments/{id}/logs")))
        .bearer_auth(token)
        .send()
        .await
        .expect("logs")
        .text()
        .await
        .expect("log text");
    let texts: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(texts, log.lines().collect::<Vec<_>>(), "page ≠ log file");
    let steps = browser
        .js("return [...document.querySelectorAll('#stepper li')].map(l => l.dataset.step + ':' + l.className);")
        .await;
    assert_eq!(
        steps,
        json!([
            "queued:done",
            "fetching:done",
            "building:done",
            "starting:done",
            "result:ok"
        ])
    );
    assert!(
        browser
            .text("#deployment-url")
            .await
            .starts_with("http://127.0.0.1:")
    );
    rows
}

/// Search highlights, and "only matching" filters (the log has `lines`).
async fn search_highlights_and_filters(browser: &Browser, lines: usize) {
    browser.fill("#log-search", "go build").await;
    browser
        .wait_js(
            "search highlights",
            UI_TIMEOUT,
            "return document.querySelectorAll('#log mark').length > 0;",
        )
        .await;
    browser.click("#log-only-matches").await;
    let visible = browser
        .js("return document.querySelectorAll('#log .log-line[data-n]').length;")
        .await;
    assert!(visible.as_u64().expect("count") < lines as u64);
    browser.click("#log-only-matches").await;
    browser.fill("#log-search", "").await;
    browser.screenshot("deployment").await;
}

/// The history lists it; a filter that excludes it does not.
async fn the_history_lists_it(browser: &Browser, id: &str) {
    browser.open("/deployments").await;
    let row = format!("#deployments-table tr[data-deployment={}]", json!(id));
    browser.wait_for(&row).await;
    assert_eq!(
        browser
            .js(&format!(
                "return document.querySelector({}).querySelector('.badge').dataset.status;",
                json!(row)
            ))
            .await,
        "running"
    );
    browser.screenshot("history").await;
    browser.open("/deployments?status=failed").await;
    browser
        .wait_js(
            "the filtered history",
            UI_TIMEOUT,
            "return location.hash.includes('status=failed') && \
             (document.querySelector('#deployments-empty') || document.querySelector('#deployments-table'));",
        )
        .await;
    assert_eq!(
        browser
            .js(&format!(
                "return document.querySelector({}) === null;",
                json!(row)
            ))
            .await,
        true
    );
}

/// The agents page: the stack's agent is online, with its build cache
/// and toolchains.
async fn the_agents_page_shows_the_agent(browser: &Browser, stack: &Stack) {
    browser.open("/agents").await;
    let agent_row = format!("#agents-table tr[data-agent={}]", json!(stack.agent_id));
    browser.wait_for(&agent_row).await;
    let agent_text = browser.text(&agent_row).await;
    assert!(agent_text.contains("online"));
    // Its build cache (Go agents warm it at start; a build pauses it).
    let cache = browser.text(&format!("{agent_row} .build-cache")).await;
    assert!(
        ["warming", "paused", "warm"].contains(&cache.as_str()),
        "{cache} in {agent_text}"
    );
    // Its Go toolchains, at least the host's Go 1.19.
    let toolchains = browser.text(&format!("{agent_row} .toolchains")).await;
    assert!(
        toolchains.contains("go 1.19."),
        "{toolchains} in {agent_text}"
    );
    browser.screenshot("agents").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_renders_user_strings_as_text_and_masks_secrets() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let hostile = "<img src=x onerror=alert(1)>";
    let env = sdp_testkit::unique_id("xss")
        .to_lowercase()
        .replace('_', "-");
    let (status, body) = stack
        .post(
            &token,
            "/api/environments",
            json!({ "name": env, "vars": { "NOTE": hostile, "DB_PASSWORD": "hunter2-secret" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let browser = Browser::start(&stack.base_url).await;
    login(&browser, &stack, false).await;
    browser.open("/environments").await;
    let row = format!("#environments-table tr[data-environment={}]", json!(env));
    browser.wait_for(&row).await;
    let text = browser.text(&row).await;
    assert!(text.contains(hostile), "shown literally: {text}");
    assert!(
        !text.contains("hunter2-secret"),
        "a secret is masked: {text}"
    );
    assert_eq!(
        browser
            .js("return document.querySelectorAll('img').length;")
            .await,
        0
    );
    browser
        .click(&format!("{row} .var-chip[data-key=DB_PASSWORD] .reveal"))
        .await;
    assert!(browser.text(&row).await.contains("hunter2-secret"));

    // In the editor too: the value sits in an input, masked until revealed.
    browser.open(&format!("/environments/{env}")).await;
    browser.wait_for("#env-form").await;
    let kinds = browser
        .js("return [...document.querySelectorAll('#vars-table tbody tr')]\
             .map(r => r.querySelector('input.key').value + '=' + r.querySelector('input.value').type);")
        .await;
    assert_eq!(kinds, json!(["DB_PASSWORD=password", "NOTE=text"]));
    assert_eq!(
        browser
            .js("return document.querySelectorAll('img').length;")
            .await,
        0
    );

    // A sandbox's deployment of a branch shows the names literally.
    let (status, _) = stack
        .post(&token, "/api/sandboxes", json!({ "name": "xss-check" }))
        .await;
    assert!(status == StatusCode::CREATED || status == StatusCode::NOT_FOUND);
    browser.open("/deployments?sandbox=xss-check").await;
    browser.wait_for("#deployments-empty").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sandbox_from_template_deploy_route_flip_and_teardown() {
    let stack = Stack::start_with(StackOptions {
        control_plane_env: pairs(&[
            ("SDP_CONTROL_PLANE__HTTP__PREVIEW_DOMAIN", "sdp.test".into()),
            (
                "SDP_CONTROL_PLANE__HTTP__PUBLIC_URL",
                "http://127.0.0.1".into(),
            ),
        ]),
        ..StackOptions::default()
    })
    .await;
    let token = stack.login().await;
    let (status, _) = stack.get(&token, "/api/sandboxes").await;
    if status == StatusCode::NOT_FOUND {
        eprintln!("this control plane has no sandbox API: skipped");
        return;
    }
    let browser = Browser::start(&stack.base_url).await;
    login(&browser, &stack, false).await;
    browser.wait_for("#sandboxes-empty").await;
    browser.screenshot("sandboxes-empty").await;

    create_an_environment_in_the_ui(&browser).await;
    create_a_template_in_the_ui(&browser, &stack, &token).await;
    create_a_sandbox_from_the_template(&browser).await;
    deploy_from_the_sandbox_page(&browser).await;
    the_route_flips_to_the_sandbox(&browser).await;
    staleness_and_check_routes_without_a_gateway(&browser).await;
    the_preview_link_copies(&browser).await;
    reapplies_fold_in_the_history(&browser, &stack).await;
    tear_down_from_the_sandbox_page(&browser, &stack, &token).await;
    browser.close().await;
}

/// Makes an environment with the baseline URL of `users` in the UI.
async fn create_an_environment_in_the_ui(browser: &Browser) {
    browser.open("/environments").await;
    browser.click("#new-environment").await;
    browser.fill("#env-name", "baseline").await;
    browser
        .fill("#vars-table tbody tr input.key", "USERS_URL")
        .await;
    browser
        .fill(
            "#vars-table tbody tr input.value",
            "http://users.baseline.invalid",
        )
        .await;
    browser.click("#add-var").await;
    browser
        .fill("#vars-table tbody tr:nth-child(2) input.key", "API_TOKEN")
        .await;
    browser
        .fill("#vars-table tbody tr:nth-child(2) input.value", "s3cr3t")
        .await;
    browser.click("#env-save").await;
    browser
        .wait_for("#environments-table tr[data-environment=baseline]")
        .await;
    browser.screenshot("environments").await;
}

/// Makes a template using it, with the `users` service, in the UI; REST
/// agrees.
async fn create_a_template_in_the_ui(browser: &Browser, stack: &Stack, token: &str) {
    browser.open("/templates").await;
    browser.click("#new-template").await;
    browser.fill("#template-name", "team").await;
    browser.select("#template-environment", "baseline").await;
    browser
        .fill("#template-services tbody tr input.svc-repo", REPO)
        .await;
    browser
        .fill("#template-services tbody tr input.svc-branch", "main")
        .await;
    browser.screenshot("template-editor").await;
    browser.click("#template-save").await;
    browser
        .wait_for("#templates-table tr[data-template=team]")
        .await;
    let (_, template) = stack.get(token, "/api/templates/team").await;
    assert_eq!(template["environment"], "baseline");
    assert_eq!(
        template["services"],
        json!([{ "repo": REPO, "branch": "main" }])
    );
}

/// Makes sandbox beta from the template: its route to users comes from
/// the environment.
async fn create_a_sandbox_from_the_template(browser: &Browser) {
    browser.open("/sandboxes").await;
    browser.fill("#new-sandbox-name", "beta").await;
    browser.select("#new-sandbox-template", "team").await;
    browser.click("#new-sandbox-submit").await;
    let route = "#routes-table tr[data-service=users]";
    browser.wait_for(route).await;
    assert_eq!(browser.hash().await, "#/sandboxes/beta");
    assert_eq!(
        browser
            .js(&format!(
                "return document.querySelector({}).dataset.source;",
                json!(route)
            ))
            .await,
        "environment"
    );
    assert!(browser.text(route).await.contains("→ baseline"));
    assert!(
        browser
            .text(route)
            .await
            .contains("http://users.baseline.invalid")
    );
}

/// Deploys feature/x of users from the sandbox page, to `running`.
async fn deploy_from_the_sandbox_page(browser: &Browser) {
    browser.select("#deploy-repo", REPO).await;
    browser
        .wait_js(
            "branches of users",
            UI_TIMEOUT,
            "return document.querySelectorAll('#deploy-branch-list option').length >= 2;",
        )
        .await;
    browser.fill("#deploy-branch", BRANCH).await;
    browser.screenshot("sandbox").await;
    browser.click("#deploy-submit").await;
    browser
        .wait_js(
            "the deployment page",
            UI_TIMEOUT,
            "return location.hash.startsWith('#/deployments/d');",
        )
        .await;
    wait_result(browser, "running").await;
}

/// The route flips to the sandbox's deployment.
async fn the_route_flips_to_the_sandbox(browser: &Browser) {
    let route = "#routes-table tr[data-service=users]";
    browser.open("/sandboxes/beta").await;
    browser
        .wait_js(
            "the route to flip to the sandbox",
            UI_TIMEOUT,
            "const r = document.querySelector('#routes-table tr[data-service=users]'); \
             return r && r.dataset.source === 'sandbox';",
        )
        .await;
    assert!(browser.text(route).await.contains("→ sandbox"));
    browser
        .wait_for("#services-table tr[data-service=users] .status-running")
        .await;
    browser.screenshot("sandbox-running").await;
}

/// Loaded after the page: the running service's branch is up to date;
/// "Check routes" without a running gateway says so (409, no console
/// error).
async fn staleness_and_check_routes_without_a_gateway(browser: &Browser) {
    browser
        .wait_for("#services-table tr[data-service=users] [data-staleness=up_to_date]")
        .await;
    browser.click("#check-routes").await;
    browser
        .wait_js(
            "the probe's answer",
            UI_TIMEOUT,
            "const m = document.querySelector('#sandbox-message'); \
             return m && m.textContent.includes('no running gateway');",
        )
        .await;
    // The 409 is the one console error this provokes.
    browser
        .expect_console_errors(&["/api/sandboxes/beta/probe"])
        .await;
}

/// The sandbox's stable link, with a copy button that copies.
async fn the_preview_link_copies(browser: &Browser) {
    assert_eq!(
        browser.text("#preview-url a").await,
        "http://beta.sdp.test/"
    );
    browser.click("#preview-url button").await;
    browser
        .wait_js(
            "the link copied",
            UI_TIMEOUT,
            "return document.querySelector('#preview-url button').textContent === 'Copied';",
        )
        .await;
}

/// Gateway re-applies in the history: marked, and a run of them folded
/// under its newest.
async fn reapplies_fold_in_the_history(browser: &Browser, stack: &Stack) {
    insert_reapplies(stack, "beta", 3);
    browser.open("/deployments?sandbox=beta").await;
    browser.wait_for("#deployments-table .reapply-toggle").await;
    let shown = "return [...document.querySelectorAll('#deployments-table tbody tr')] \
                 .filter((r) => r.offsetParent !== null).length;";
    assert_eq!(
        browser.js(shown).await,
        2,
        "the deployment and one re-apply"
    );
    assert_eq!(browser.text(".reapply-toggle").await, "+2 more");
    browser.click(".reapply-toggle").await;
    assert_eq!(browser.js(shown).await, 4, "unfolded");
    browser
        .open("/deployments?sandbox=beta&reapply=false")
        .await;
    browser.wait_for("#deployments-table").await;
    assert_eq!(browser.js(shown).await, 1, "re-applies hidden");

    browser.open("/sandboxes").await;
    browser
        .wait_for("#sandboxes-table tr[data-sandbox=beta] .status-running")
        .await;
    browser.screenshot("sandboxes").await;
}

/// Tears beta down (with the inline confirmation): it is gone, and its
/// deployment stops.
async fn tear_down_from_the_sandbox_page(browser: &Browser, stack: &Stack, token: &str) {
    browser.open("/sandboxes/beta").await;
    browser.click(".confirm-wrap > .btn-danger").await;
    browser.click(".confirm .solid").await;
    browser
        .wait_js(
            "back on the sandbox list",
            UI_TIMEOUT,
            "return location.hash === '#/sandboxes' && document.querySelector('#sandboxes-empty, #sandboxes-table') \
             && !document.querySelector('tr[data-sandbox=beta]');",
        )
        .await;
    // The sandbox page offered the re-apply rows' repo, which no agent of
    // this stack serves: its branch list answered 404.
    browser
        .expect_console_errors(&["/api/repos/gateway/branches - Failed to load resource"])
        .await;
    let (status, _) = stack.get(token, "/api/sandboxes/beta").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the sandbox is gone");
    let deployments: Value = stack.get(token, "/api/deployments?sandbox=beta").await.1;
    sdp_testkit::wait_for(
        "the sandbox's deployment to stop",
        Duration::from_secs(30),
        || async {
            let (_, list) = stack.get(token, "/api/deployments?sandbox=beta").await;
            list.as_array()?
                .iter()
                .all(|d| d["status"] != "running")
                .then_some(())
        },
    )
    .await;
    assert!(deployments.as_array().is_some_and(|d| !d.is_empty()));
}

/// A 100k-line log: the page holds every line, numbered exactly, but draws
/// only the rows in view; it follows to the last line, and scrolling to
/// the top shows line 1. (How fast is `benches/dashboard_log.rs`'s job.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_long_log_draws_only_rows_in_view() {
    const LINES: u64 = 100_000;
    let stack = Stack::start().await;
    let browser = Browser::start(&stack.base_url).await;
    browser.open("/login").await;
    login(&browser, &stack, false).await;
    let id = sdp_bus::DeploymentId::generate();
    log_feed::insert_deployment(stack.cp_data.path(), &id, "alpha");
    browser.open(&format!("/deployments/{id}")).await;
    browser.wait_for("#log").await;
    log_feed::feed_log(&stack.nats.url(), &id, LINES).await;
    wait_result(&browser, "running").await;
    browser
        .wait_js(
            "all lines on the page",
            UI_TIMEOUT,
            &format!("return document.querySelector('#log').dataset.lines === '{LINES}';"),
        )
        .await;
    let numbered = browser
        .js("const rows = document.getElementById('log').logRows(); \
             return [rows.length, rows.every((r, i) => r[0] === i + 1)];")
        .await;
    assert_eq!(
        numbered,
        json!([LINES, true]),
        "every line once, numbered 1..n"
    );
    let in_view = "const box = document.getElementById('log').getBoundingClientRect(); \
                   const row = document.querySelector('#log .log-line[data-n=\"N\"]'); \
                   if (!row) return false; const r = row.getBoundingClientRect(); \
                   return r.top >= box.top - 1 && r.bottom <= box.bottom + 1;";
    browser
        .wait_js(
            "the last line in view",
            UI_TIMEOUT,
            &in_view.replace('N', &LINES.to_string()),
        )
        .await;
    let drawn = browser
        .js("return document.querySelectorAll('#log .log-line').length;")
        .await;
    assert!(
        drawn.as_u64().expect("count") < 300,
        "{drawn} rows in the DOM for a {LINES}-line log"
    );
    let last = browser
        .text(&format!("#log .log-line[data-n=\"{LINES}\"] .txt"))
        .await;
    let expected = log_feed::fed_line(LINES)
        .replace("\x1b[32m", "")
        .replace("\x1b[0m", "");
    assert_eq!(
        last, expected,
        "the ANSI codes are drawn as colour, not text"
    );
    browser
        .js("document.getElementById('log').scrollTop = 0;")
        .await;
    browser
        .wait_js("line 1 in view", UI_TIMEOUT, &in_view.replace('N', "1"))
        .await;
    assert_eq!(
        browser.text("#follow-state").await,
        "Paused (scrolled up)",
        "scrolling up stops following"
    );
    browser.screenshot("long-log").await;
    browser.close().await;
}

/// Adds `n` settled gateway re-apply rows to `sandbox`, newer than what is
/// there (no gateway agent runs in this stack).
fn insert_reapplies(stack: &Stack, sandbox: &str, n: usize) {
    let db = rusqlite::Connection::open(stack.cp_data.path().join("sdp.db")).expect("open sdp.db");
    db.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    for i in 0..n {
        let at = (chrono::Utc::now() + chrono::Duration::seconds(i as i64 + 1))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let id = sdp_bus::DeploymentId::generate();
        db.execute(
            "INSERT INTO deployments (id, sandbox, repo, branch, kind, status, created_by, \
             created_at, updated_at, reapply) VALUES (?1, ?2, 'gateway', 'main', 'gateway', \
             'stopped', 'dev', ?3, ?3, 1)",
            rusqlite::params![id.as_str(), sandbox, at],
        )
        .expect("insert a re-apply");
    }
}

/// The sandbox page's "Autodeploy on push" toggle and "Deploy latest"
/// button: ticking it turns autodeploy on (the API says so under both its
/// names and the button becomes "Redeploy"); a service without autodeploy
/// deploys its branch's newest commit with "Deploy latest".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_autodeploy_toggle_and_deploy_latest() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let first = stack.deploy(&token, "flw", BRANCH).await;
    assert_eq!(
        stack.wait_settled(&token, &first).await.status,
        Status::Running
    );
    let browser = Browser::start(&stack.base_url).await;
    login(&browser, &stack, false).await;

    browser.open("/sandboxes/flw").await;
    let row = "#services-table tr[data-service=users]";
    let toggle = format!("{row} input[data-follow=users]");
    let button = format!("{row} button[data-redeploy=users]");
    browser.wait_for(&toggle).await;
    assert_eq!(
        browser
            .text(&format!("{row} label.autodeploy"))
            .await
            .trim(),
        "Autodeploy on push"
    );
    assert_eq!(browser.text(&button).await, "Deploy latest");
    browser.click(&toggle).await;
    browser
        .wait_js(
            "the button of a service with autodeploy on",
            UI_TIMEOUT,
            &format!(
                "const b = document.querySelector({}); return b && b.textContent === 'Redeploy';",
                json!(button)
            ),
        )
        .await;
    let (_, sandbox) = stack.get(&token, "/api/sandboxes/flw").await;
    assert_eq!(sandbox["services"][0]["autodeploy"], true, "{sandbox}");
    assert_eq!(sandbox["services"][0]["follow"], true, "{sandbox}");
    browser.screenshot("sandbox-autodeploy").await;

    // Off again, then bring it to the branch head by hand.
    browser.click(&toggle).await;
    browser
        .wait_js(
            "the button of a service with autodeploy off",
            UI_TIMEOUT,
            &format!(
                "const b = document.querySelector({}); return b && b.textContent === 'Deploy latest';",
                json!(button)
            ),
        )
        .await;
    let (_, sandbox) = stack.get(&token, "/api/sandboxes/flw").await;
    assert_eq!(sandbox["services"][0]["autodeploy"], false, "{sandbox}");
    let head = stack.fixture.push_revision(BRANCH, "2");
    browser.click(&button).await;
    browser
        .wait_js(
            "the deployment page",
            UI_TIMEOUT,
            "return location.hash.startsWith('#/deployments/d');",
        )
        .await;
    wait_result(&browser, "running").await;
    let (_, latest) = stack
        .get(&token, "/api/deployments?sandbox=flw&limit=1")
        .await;
    assert_eq!(latest[0]["commit"], head.as_str(), "{latest}");
    browser.close().await;
}

/// Rolling back: from the history, the "Roll back" button on
/// an older deployment (confirmed inline) deploys its commit again, the
/// page shows the new one live; from that deployment page, the button
/// deploys a commit again too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_rolls_back_from_the_history_and_the_deployment_page() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let browser = Browser::start(&stack.base_url).await;
    login(&browser, &stack, false).await;

    let a = stack.fixture.commit("main");
    let first = stack.deploy(&token, "alpha", "main").await;
    assert_eq!(
        stack.wait_settled(&token, &first).await.status,
        Status::Running
    );
    let b = stack.fixture.push_revision("main", "2");
    let second = stack.deploy(&token, "alpha", "main").await;
    let deployment = stack.wait_settled(&token, &second).await;
    assert_eq!(
        deployment.commit.as_deref(),
        Some(b.as_str()),
        "{deployment:?}"
    );
    let url = deployment.url.as_deref().expect("url").to_owned();

    // The history marks B live, and offers A a rollback.
    browser.open("/deployments?sandbox=alpha").await;
    let row = |id: &str| format!("#deployments-table tr[data-deployment={}]", json!(id));
    browser
        .wait_for(&format!("{} .badge.live", row(&second)))
        .await;
    assert_eq!(
        browser
            .js(&format!(
                "return document.querySelector({}).querySelector('.badge.live') === null;",
                json!(row(&first))
            ))
            .await,
        true,
        "only the running one is live"
    );
    browser.screenshot("history-rollback").await;
    browser
        .click(&format!("{} .confirm-wrap > .rollback", row(&first)))
        .await;
    browser
        .click(&format!("{} .confirm .solid", row(&first)))
        .await;
    let third = browser
        .wait_js(
            "the new deployment's page",
            UI_TIMEOUT,
            &format!(
                "const m = location.hash.match(/^#\\/deployments\\/(d[0-9a-f]+)$/); \
                 return m && m[1] !== {} && m[1] !== {} ? m[1] : null;",
                json!(first),
                json!(second)
            ),
        )
        .await
        .as_str()
        .expect("id")
        .to_owned();
    wait_page_result(&browser, &third, "running").await;
    browser.wait_for("#deployment-live .badge.live").await;
    assert!(
        browser
            .text("#deployment-redeploy-of")
            .await
            .contains(&first[..8]),
        "the page names the deployment it rolled back to"
    );
    let rolled = stack.wait_settled(&token, &third).await;
    assert_eq!(rolled.commit.as_deref(), Some(a.as_str()), "{rolled:?}");
    assert_eq!(
        rolled.redeploy_of.as_ref().map(|of| of.as_str()),
        Some(first.as_str())
    );
    assert_eq!(stack.get_service(&url).await["commit"], a.as_str());
    browser.screenshot("deployment-rollback").await;

    // From B's page: its commit again.
    browser.open(&format!("/deployments/{second}")).await;
    browser.click("#rollback > .rollback").await;
    browser.click("#rollback .confirm .solid").await;
    let fourth = browser
        .wait_js(
            "another new deployment's page",
            UI_TIMEOUT,
            &format!(
                "const m = location.hash.match(/^#\\/deployments\\/(d[0-9a-f]+)$/); \
                 return m && ![{}, {}, {}].includes(m[1]) ? m[1] : null;",
                json!(first),
                json!(second),
                json!(third)
            ),
        )
        .await
        .as_str()
        .expect("id")
        .to_owned();
    wait_page_result(&browser, &fourth, "running").await;
    assert_eq!(stack.get_service(&url).await["commit"], b.as_str());
    let history = stack.get(&token, "/api/deployments?sandbox=alpha").await.1;
    let live: Vec<bool> = history
        .as_array()
        .expect("array")
        .iter()
        .map(|d| d["live"] == true)
        .collect();
    assert_eq!(live, [true, false, false, false], "{history}");

    // The sandbox page: the live badge in its recent deployments, and the
    // deploy form's optional commit.
    browser.open("/sandboxes/alpha").await;
    browser
        .wait_for(&format!(
            "#sandbox-deployments tr[data-deployment={}] .badge.live",
            json!(fourth)
        ))
        .await;
    browser.wait_for("#deploy-commit").await;
    browser.select("#deploy-repo", REPO).await;
    browser.fill("#deploy-branch", "main").await;
    browser.fill("#deploy-commit", &a).await;
    browser.click("#deploy-submit").await;
    let fifth = browser
        .wait_js(
            "the form's deployment page",
            UI_TIMEOUT,
            &format!(
                "const m = location.hash.match(/^#\\/deployments\\/(d[0-9a-f]+)$/); \
                 return m && ![{}, {}, {}, {}].includes(m[1]) ? m[1] : null;",
                json!(first),
                json!(second),
                json!(third),
                json!(fourth)
            ),
        )
        .await
        .as_str()
        .expect("id")
        .to_owned();
    wait_page_result(&browser, &fifth, "running").await;
    let deployed = stack.wait_settled(&token, &fifth).await;
    assert_eq!(
        deployed.requested_commit.as_deref(),
        Some(a.as_str()),
        "{deployed:?}"
    );
    assert_eq!(stack.get_service(&url).await["commit"], a.as_str());
    browser.close().await;
}

/// Waits until the page is deployment `id`'s and shows `status` as its
/// result (a page left behind may still show its own for a moment).
async fn wait_page_result(browser: &Browser, id: &str, status: &str) {
    browser
        .wait_js(
            &format!("deployment {id}'s page to show {status}"),
            DEPLOY_TIMEOUT,
            &format!(
                "const r = document.querySelector('#result-box'); \
                 const shown = document.querySelector('#deployment-id'); \
                 return Boolean(r && shown && shown.textContent === {} && r.dataset.status === {});",
                json!(id),
                json!(status)
            ),
        )
        .await;
}
