//! Headless Chromium driven over WebDriver (`chromedriver` + fantoccini).
//!
//! [`Browser::start`] runs Debian's `chromedriver` on a free port in its
//! own process group, with a fresh profile directory; dropping the
//! [`Browser`] kills that group (chromedriver and the Chromium it started),
//! so a failing test leaves no browser behind.
//!
//! Every message the page logs at level SEVERE (console errors, uncaught
//! exceptions, invalid `pattern` attributes, CSP refusals) fails the test:
//! [`Browser::close`] asserts there were none, and
//! [`Browser::expect_console_errors`] takes the ones a test provokes on
//! purpose.

use std::future::Future;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::http;
use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use sdp_testkit::{ChildGuard, free_port, wait_for};
use serde_json::{Value, json};
use tempfile::TempDir;

/// How long a UI condition may take (page loads, API round trips).
pub const UI_TIMEOUT: Duration = Duration::from_secs(20);

/// What a person clicks or types into.
const CONTROLS: &str = "a[href], button, input, select, textarea";

pub struct Browser {
    pub client: Client,
    base_url: String,
    driver: ChildGuard,
    killed: bool,
    _profile: TempDir,
}

impl Browser {
    pub async fn start(base_url: &str) -> Browser {
        let port = free_port();
        let mut command = Command::new("chromedriver");
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group: Drop kills Chromium with it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = ChildGuard::spawn(command);
        wait_for("chromedriver to listen", UI_TIMEOUT, || async {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .await;

        let profile = TempDir::new().expect("profile dir");
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,900".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": "/usr/bin/chromium", "args": args }),
        );
        let client = tokio::time::timeout(
            Duration::from_secs(60),
            ClientBuilder::native()
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}")),
        )
        .await
        .expect("chromium did not start in time")
        .expect("WebDriver session");
        Browser {
            client,
            base_url: base_url.to_owned(),
            driver,
            killed: false,
            _profile: profile,
        }
    }

    /// Opens `#<hash>` of the dashboard (e.g. `/deployments`).
    pub async fn open(&self, hash: &str) {
        self.client
            .goto(&format!("{}/#{hash}", self.base_url))
            .await
            .expect("navigate");
    }

    /// Runs `script` (a function body; `return` its value) in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until `script` returns something other than null/false/"".
    pub async fn wait_js(&self, what: &str, timeout: Duration, script: &str) -> Value {
        wait_for(what, timeout, || async {
            match self.client.execute(script, Vec::new()).await {
                Ok(Value::Null | Value::Bool(false)) => None,
                Ok(Value::String(s)) if s.is_empty() => None,
                Ok(value) => Some(value),
                Err(_) => None,
            }
        })
        .await
    }

    /// Waits for an element matching `css` to exist.
    pub async fn wait_for(&self, css: &str) {
        let script = format!("return document.querySelector({}) !== null;", json!(css));
        self.wait_js(&format!("element {css}"), UI_TIMEOUT, &script)
            .await;
    }

    /// The text of the first element matching `css` ("" if none).
    pub async fn text(&self, css: &str) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent : '';",
            json!(css)
        );
        self.js(&script)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Clicks the element matching `css` now, as a person would: a
    /// WebDriver click (scrolled into view, refused if hidden, disabled
    /// or covered, real mouse events), not a script's `element.click()`,
    /// which would also click what no person can.
    ///
    /// Finding and clicking are two WebDriver commands, and a page may
    /// re-render between them (the dashboard's pages keep their controls
    /// on a refresh, but a route change or a row that comes back replaces
    /// one). An element gone stale in between is not the element matching
    /// `css` any more, so this finds the one that matches now and clicks
    /// that: the meaning of "click `css`", not a retry of a failed check.
    /// Every other error fails the test at once.
    pub async fn click(&self, css: &str) {
        self.on_element(css, "click", |element| async move { element.click().await })
            .await;
    }

    /// Clears the input `css` and types `text` into it (found again if a
    /// re-render replaced it in between, as in [`Browser::click`]).
    pub async fn fill(&self, css: &str, text: &str) {
        self.on_element(css, "type into", |element| async move {
            element.clear().await?;
            element.send_keys(text).await
        })
        .await;
    }

    /// Sets a <select>'s value as a user's choice would (with `change`).
    pub async fn select(&self, css: &str, value: &str) {
        self.wait_for(css).await;
        let option = format!("{css} option[value={}]", json!(value));
        self.on_element(
            &option,
            "select",
            |element| async move { element.click().await },
        )
        .await;
    }

    /// Waits for `css`, then runs `act` on the element it matches. When
    /// the element went stale (replaced between the find and `act`), finds
    /// the one matching now and runs `act` on it, within [`UI_TIMEOUT`];
    /// each such re-find is printed, so a page that keeps replacing a
    /// control shows in the test's output.
    async fn on_element<F, Fut>(&self, css: &str, what: &str, act: F)
    where
        F: Fn(Element) -> Fut,
        Fut: Future<Output = Result<(), CmdError>>,
    {
        let deadline = Instant::now() + UI_TIMEOUT;
        loop {
            self.wait_for(css).await;
            let outcome = match self.client.find(Locator::Css(css)).await {
                Ok(element) => act(element).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => return,
                Err(e)
                    if (e.is_stale_element_reference() || e.is_no_such_element())
                        && Instant::now() < deadline =>
                {
                    eprintln!("{what} {css}: the element was replaced ({e}); finding it again");
                }
                Err(e) => panic!("{what} {css}: {e}"),
            }
        }
    }

    /// Logs in through the login page as `user` and waits for the home
    /// page (`#/sandboxes`).
    pub async fn log_in(&self, user: &str, password: &str) {
        self.open("/login").await;
        self.wait_for("#login-form").await;
        self.fill("#login-username", user).await;
        self.fill("#login-password", &format!("{password}\n")).await;
        self.wait_js(
            "the home page after login",
            UI_TIMEOUT,
            "return location.hash.startsWith('#/sandboxes');",
        )
        .await;
    }

    /// Opens the sandboxes page in a fresh document (a full load, as a
    /// person opening the dashboard: scripts, session, every API call) and
    /// returns the time from the navigation's start until its table first
    /// showed at least `rows` rows, as the page itself marked it
    /// (`sdp:sandboxes-shown`, a User Timing mark: exact, whatever the
    /// WebDriver round trips). Waits up to `bound`; panics if the table
    /// never gets there. The session must be logged in ([`Browser::log_in`]).
    pub async fn sandboxes_page_time(&self, rows: usize, bound: Duration) -> Duration {
        // From another document, so the same URL is a new load, not a
        // hash change within the page.
        self.client.goto("about:blank").await.expect("about:blank");
        self.open("/sandboxes").await;
        let script = format!(
            "const m = performance.getEntriesByName('sdp:sandboxes-shown') \
               .find((e) => e.detail && e.detail.rows >= {rows}); \
             return m ? m.startTime : null;"
        );
        let ms = self
            .wait_js(
                &format!("{rows} rows on the sandboxes page"),
                bound,
                &script,
            )
            .await;
        Duration::from_secs_f64(ms.as_f64().expect("a time in ms") / 1000.0)
    }

    /// The paths (with their query) of every request the current document
    /// made since it loaded, as the browser's Resource Timing lists them
    /// (script, style and API requests alike; the browser keeps the first
    /// 250).
    pub async fn requested_paths(&self) -> Vec<String> {
        let paths = self
            .js("return performance.getEntriesByType('resource') \
                 .map((e) => { const u = new URL(e.name); return u.pathname + u.search; });")
            .await;
        serde_json::from_value(paths).expect("a list of strings")
    }

    /// Starts watching the page for controls (links, buttons, fields)
    /// that leave the document, and counts the API responses it gets.
    /// Both live in the page's window, so they last while the dashboard
    /// moves between its pages by hash ([`Browser::go`]); a full load
    /// ([`Browser::open`]) ends them. The router swaps whole pages as the
    /// children of `#view`: those removals are a page left (or its
    /// placeholder), not a refresh, and are not counted.
    pub async fn watch_controls(&self) {
        self.js(&format!(
            "if (window.__sdpWatch) return; \
             const sel = {CONTROLS}; \
             const view = document.getElementById('view'); \
             const w = {{ removed: [], responses: {{}} }}; \
             const describe = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') \
               + (typeof e.className === 'string' && e.className.trim() ? '.' + e.className.trim().split(/\\s+/).join('.') : '') \
               + ' ' + JSON.stringify((e.textContent || e.value || '').trim().slice(0, 40)); \
             new MutationObserver((records) => {{ \
               for (const r of records) {{ \
                 if (r.target === view) continue; \
                 for (const n of r.removedNodes) {{ \
                   if (!(n instanceof Element)) continue; \
                   const all = [...(n.matches(sel) ? [n] : []), ...n.querySelectorAll(sel)]; \
                   for (const e of all) if (!e.isConnected) w.removed.push(describe(e)); \
                 }} \
               }} \
             }}).observe(document.body, {{ childList: true, subtree: true }}); \
             const fetch0 = window.fetch; \
             window.fetch = (...args) => fetch0(...args).then((r) => {{ \
               const u = new URL(r.url); const k = u.pathname + u.search; \
               w.responses[k] = (w.responses[k] || 0) + 1; return r; }}); \
             window.__sdpWatch = w;",
            CONTROLS = json!(CONTROLS),
        ))
        .await;
    }

    /// Goes to `#<hash>` in the same document, as a link would, and
    /// forgets the controls replaced so far.
    pub async fn go(&self, hash: &str) {
        self.js(&format!(
            "window.__sdpWatch.removed = []; location.hash = {};",
            json!(hash)
        ))
        .await;
    }

    /// The controls the page made since the last [`Browser::go`] and then
    /// removed (a control moved within the page is the same element and
    /// not counted).
    pub async fn replaced_controls(&self) -> Vec<String> {
        let removed = self.js("return window.__sdpWatch.removed;").await;
        serde_json::from_value(removed).expect("a list of strings")
    }

    /// How many responses to `GET <path_and_query>` the page got since
    /// [`Browser::watch_controls`].
    pub async fn responses(&self, path_and_query: &str) -> u64 {
        self.js(&format!(
            "return window.__sdpWatch.responses[{}] || 0;",
            json!(path_and_query)
        ))
        .await
        .as_u64()
        .expect("a count")
    }

    /// The page's location hash.
    pub async fn hash(&self) -> String {
        self.js("return location.hash;")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Saves a PNG of the viewport to `<screenshots_dir>/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        // Let fonts and the last frame settle: wait for two animation frames.
        let _ = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1]; \
                 requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
                Vec::new(),
            )
            .await;
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("screenshots dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// The page's SEVERE console messages since the last call (chromedriver
    /// hands each out once).
    pub async fn console_errors(&self) -> Vec<String> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("chromedriver's browser log");
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Takes the console errors so far; each must contain one of
    /// `expected` (errors a test provokes, e.g. a refused request).
    pub async fn expect_console_errors(&self, expected: &[&str]) {
        let unexpected: Vec<String> = self
            .console_errors()
            .await
            .into_iter()
            .filter(|m| !expected.iter().any(|e| m.contains(e)))
            .collect();
        assert!(
            unexpected.is_empty(),
            "errors in the page's console: {unexpected:#?}"
        );
    }

    /// Asserts the page logged no error, ends the WebDriver session
    /// (Chromium exits), then chromedriver.
    pub async fn close(mut self) {
        self.expect_console_errors(&[]).await;
        let client = self.client.clone();
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        self.kill_group();
    }

    fn kill_group(&mut self) {
        if std::mem::replace(&mut self.killed, true) {
            return;
        }
        let pgid = self.driver.pid();
        // The group holds only chromedriver and the browser it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        self.driver.kill();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// `target/screenshots`, so a test run leaves the source tree alone; set
/// `SDP_SCREENSHOTS_DIR=$PWD/docs/screenshots` to refresh the README's
/// pictures.
pub fn screenshots_dir() -> PathBuf {
    match std::env::var_os("SDP_SCREENSHOTS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots"),
    }
}

/// chromedriver's `POST /session/{id}/se/log {"type": "browser"}`: the
/// console messages logged since the last call.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}
