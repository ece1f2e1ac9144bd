//! Offline builds of Go services with a module dependency
//! (`example.com/greet`, a tiny module the test writes): a service with a
//! committed `vendor/` builds with no proxy; without `vendor/` it builds
//! through `go.proxy = "file://…"` (a module proxy file tree the test
//! writes); with neither the deployment fails naming the module and both
//! fixes, and go never looked beyond the module cache (`GOPROXY=off`).
//! Real nats-server, git server, go and Docker engine.
//!
//! Every run uses a fresh version of `example.com/greet`, so a version an
//! earlier build downloaded can never build it without vendor/ or proxy
//! (module caches are per sandbox now, so this is belt and braces).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{TestAgent, World};
use sdp_agentlib::GoFlavour;
use sdp_bus::{Event, LogStream, Status};
use sdp_testkit::{GoFixture, ReposDir, ensure_busybox_image};

const PASSWORD: &str = "canary-Pw-offline-go";
const REPO: &str = "greeter";
const MODULE: &str = "example.com/greet";

/// A version of [`MODULE`] no earlier run used.
fn fresh_version() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("v1.0.0-t{nanos}")
}

/// The module's one package: `Message()` names the version it came from.
fn greet_go(version: &str) -> String {
    format!(
        "// Package greet: a dependency made by the sdp offline-build tests.\npackage greet\n\n\
         // Message says which version of greet answered.\nfunc Message() string {{ return \"hello from greet {version}\" }}\n"
    )
}

const GREET_GO_MOD: &str = "module example.com/greet\n\ngo 1.19\n";

/// The service: `/healthz` answers `ok`, anything else `greet.Message()`.
const SERVICE_MAIN: &str = r#"// Test service of the sdp offline-build tests: imports example.com/greet.
package main

import (
	"fmt"
	"net/http"
	"os"

	"example.com/greet"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, greet.Message()) })
	fmt.Printf("listening on :%s\n", port)
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
"#;

fn service_go_mod(version: &str) -> String {
    format!("module example.com/{REPO}\n\ngo 1.19\n\nrequire {MODULE} {version}\n")
}

/// Pushes the service requiring `version` to `branch`, with a `vendor/`
/// holding that version (as `go mod vendor` writes it) if `vendored`.
fn push_service(fixture: &GoFixture, branch: &str, version: &str, vendored: bool) {
    fixture.push_file(branch, "go.mod", &service_go_mod(version));
    fixture.push_file(branch, "main.go", SERVICE_MAIN);
    if vendored {
        fixture.push_file(
            branch,
            "vendor/modules.txt",
            &format!("# {MODULE} {version}\n## explicit; go 1.19\n{MODULE}\n"),
        );
        fixture.push_file(
            branch,
            "vendor/example.com/greet/greet.go",
            &greet_go(version),
        );
    }
}

/// Writes `version` of [`MODULE`] into `root` in the module proxy layout
/// (`<module>/@v/list`, `<version>.info`, `.mod`, `.zip`), so that
/// `GOPROXY=file://<root>` serves it.
fn write_file_proxy(root: &Path, version: &str) {
    let files = root.join(MODULE).join("@v");
    std::fs::create_dir_all(&files).expect("proxy dir");
    // The zip holds the module's files under `<module>@<version>/`.
    let staging = tempfile::tempdir().expect("staging dir");
    let module_dir = staging.path().join(format!("{MODULE}@{version}"));
    std::fs::create_dir_all(&module_dir).expect("module dir");
    std::fs::write(module_dir.join("go.mod"), GREET_GO_MOD).expect("go.mod");
    std::fs::write(module_dir.join("greet.go"), greet_go(version)).expect("greet.go");
    let zip = files.join(format!("{version}.zip"));
    let status = Command::new("zip")
        .args(["-q", "-r", "-D", "-X"])
        .arg(&zip)
        .arg(format!("{MODULE}@{version}"))
        .current_dir(staging.path())
        .status()
        .expect("run zip (apt-get install zip)");
    assert!(status.success(), "zip failed: {status}");
    std::fs::write(files.join(format!("{version}.mod")), GREET_GO_MOD).expect(".mod");
    std::fs::write(
        files.join(format!("{version}.info")),
        format!("{{\"Version\":\"{version}\",\"Time\":\"2024-01-01T00:00:00Z\"}}\n"),
    )
    .expect(".info");
    std::fs::write(files.join("list"), format!("{version}\n")).expect("list");
}

async fn agent(world: &World, proxy: Option<String>) -> TestAgent {
    let repos = ReposDir::new();
    repos.add(REPO, &world.git.url(REPO));
    TestAgent::start(
        world,
        "off",
        Arc::new(GoFlavour::default()),
        ensure_busybox_image(),
        repos,
        |config| {
            config.health.path = "/healthz".into();
            config.go.proxy = proxy;
        },
    )
    .await
}

async fn deploy(
    world: &World,
    agent: &TestAgent,
    sandbox: &str,
    branch: &str,
) -> (Vec<Event>, Status, Option<String>, Option<String>) {
    let request = common::deploy_request(sandbox, REPO, branch, PASSWORD);
    agent.deploy_and_wait(world, &request).await
}

fn log_lines(events: &[Event], wanted: LogStream) -> Vec<&str> {
    events
        .iter()
        .flat_map(|e| e.body.log_lines())
        .filter_map(|(stream, line)| (stream == wanted).then_some(line))
        .collect()
}

async fn get(url: &str) -> String {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .expect("body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendored_service_builds_offline_and_one_without_vendor_fails_naming_the_module() {
    let world = World::start(PASSWORD).await;
    let fixture = GoFixture::create(&world.git, REPO, &["vendored", "bare"]);
    let version = fresh_version();
    push_service(&fixture, "vendored", &version, true);
    push_service(&fixture, "bare", &version, false);
    let agent = agent(&world, None).await;

    let (events, status, url, error) = deploy(&world, &agent, "vend", "vendored").await;
    assert_eq!(status, Status::Running, "{error:?}: {events:#?}");
    let system = log_lines(&events, LogStream::System);
    assert!(
        system.contains(&"modules: from the repository's vendor/"),
        "{system:#?}"
    );
    assert!(
        system
            .iter()
            .any(|l| l.contains("go build -trimpath -mod=vendor")),
        "{system:#?}"
    );
    let body = get(&format!("{}/", url.expect("url"))).await;
    assert_eq!(body, format!("hello from greet {version}"));

    // The same service without vendor/ and no go.proxy: no network, a
    // failure that names the module and both fixes.
    let (events, status, _, error) = deploy(&world, &agent, "bare", "bare").await;
    assert_eq!(status, Status::Failed, "{events:#?}");
    let error = error.expect("error");
    assert!(error.contains(&format!("module {MODULE}")), "{error}");
    assert!(error.contains("go mod vendor"), "{error}");
    assert!(error.contains("commit vendor/"), "{error}");
    assert!(
        error.contains("set go.proxy in the agent config"),
        "{error}"
    );
    let stderr = log_lines(&events, LogStream::Stderr);
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("module lookup disabled by GOPROXY=off")),
        "go did not look beyond the module cache: {stderr:#?}"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_vendor_builds_through_a_file_proxy() {
    let world = World::start(PASSWORD).await;
    let fixture = GoFixture::create(&world.git, REPO, &["main", "newer"]);
    let version = fresh_version();
    push_service(&fixture, "main", &version, false);
    let proxy_dir = tempfile::tempdir().expect("proxy dir");
    write_file_proxy(proxy_dir.path(), &version);
    let proxy = format!("file://{}", proxy_dir.path().display());
    let agent = agent(&world, Some(proxy.clone())).await;

    let (events, status, url, error) = deploy(&world, &agent, "prox", "main").await;
    assert_eq!(status, Status::Running, "{error:?}: {events:#?}");
    let system = log_lines(&events, LogStream::System);
    let expected = format!("modules: no vendor/: GOPROXY={proxy}");
    assert!(system.contains(&expected.as_str()), "{system:#?}");
    let body = get(&format!("{}/", url.expect("url"))).await;
    assert_eq!(body, format!("hello from greet {version}"));
    // In the sandbox's own module cache.
    let cached: PathBuf = agent
        .data
        .path()
        .join("build-caches/prox/gomod/cache/download")
        .join(MODULE)
        .join("@v")
        .join(format!("{version}.zip"));
    assert!(cached.is_file(), "{} was not fetched", cached.display());

    // A version the proxy does not have: the error names the module and
    // the proxy.
    let missing = fresh_version();
    push_service(&fixture, "newer", &missing, false);
    let (events, status, _, error) = deploy(&world, &agent, "prox2", "newer").await;
    assert_eq!(status, Status::Failed, "{events:#?}");
    let error = error.expect("error");
    assert!(error.contains(&format!("module {MODULE}")), "{error}");
    assert!(error.contains(&proxy), "{error}");
    assert!(error.contains("go mod vendor"), "{error}");
    agent.stop().await;
}
