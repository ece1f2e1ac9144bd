//! Offline `composer install` of the PHP gateway with a dependency
//! (`acme/hello`, a package the test writes): a committed `vendor/` with
//! `composer.lock` installs with composer's network off; with neither
//! `vendor/` nor a configured repository the deploy warns, then fails
//! naming both fixes, and packagist.org is never tried; a configured
//! `path` repository supplies the package. Real nats-server, git server,
//! composer, php and Docker engine.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{TestAgent, World};
use sdp_agentlib::PhpFlavour;
use sdp_agentlib::config::{ComposerRepository, ComposerRepositoryKind};
use sdp_bus::{Event, LogStream, Status};
use sdp_testkit::{PhpGatewayFixture, ReposDir, ensure_php_image};

const PASSWORD: &str = "canary-Pw-offline-php";
const REPO: &str = "gw";

const COMPOSER_JSON: &str = "{\n    \"name\": \"sdp/offline-gateway\",\n    \"type\": \"project\",\n    \"require\": {\"acme/hello\": \"1.0.0\"}\n}\n";

/// A router for `php -S`: `/healthz` → `ok`, else acme/hello's greeting.
const INDEX_PHP: &str = "<?php\n// Test gateway of the sdp offline-build tests: uses acme/hello.\nrequire __DIR__ . '/vendor/autoload.php';\nif (parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) === '/healthz') { echo 'ok'; return true; }\necho \\Acme\\Hello\\Greeter::hi();\nreturn true;\n";

/// Writes the package `acme/hello` 1.0.0 into `dir`.
fn write_package(dir: &Path) {
    std::fs::create_dir_all(dir.join("src")).expect("package dir");
    std::fs::write(
        dir.join("composer.json"),
        "{\"name\": \"acme/hello\", \"version\": \"1.0.0\", \"autoload\": {\"psr-4\": {\"Acme\\\\Hello\\\\\": \"src/\"}}}\n",
    )
    .expect("composer.json");
    std::fs::write(
        dir.join("src/Greeter.php"),
        "<?php\nnamespace Acme\\Hello;\n\nfinal class Greeter\n{\n    public static function hi(): string\n    {\n        return 'hello from acme/hello';\n    }\n}\n",
    )
    .expect("Greeter.php");
}

/// `composer install` of [`COMPOSER_JSON`] in a scratch dir from a path
/// repository at `package` (no network); returns the scratch dir with
/// `composer.lock` and `vendor/`, as a developer would commit them.
fn install_like_a_developer(package: &Path) -> tempfile::TempDir {
    let app = tempfile::tempdir().expect("app dir");
    let home = tempfile::tempdir().expect("composer home");
    let repositories = serde_json::json!({"repositories": [
        {"type": "path", "url": package, "options": {"symlink": false}},
        {"packagist.org": false},
    ]});
    std::fs::write(home.path().join("config.json"), repositories.to_string()).expect("config");
    std::fs::write(app.path().join("composer.json"), COMPOSER_JSON).expect("composer.json");
    let output = Command::new("composer")
        .args(["install", "--no-dev", "--no-interaction", "--no-progress"])
        .current_dir(app.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("COMPOSER_HOME", home.path())
        .env("COMPOSER_CACHE_DIR", home.path().join("cache"))
        .env("COMPOSER_DISABLE_NETWORK", "1")
        .output()
        .expect("run composer");
    assert!(
        output.status.success(),
        "composer install: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    app
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read_dir") {
                stack.push(entry.expect("entry").path());
            }
        } else {
            let relative = path.strip_prefix(dir).expect("under dir");
            found.push(relative.to_string_lossy().into_owned());
        }
    }
    found.sort();
    found
}

async fn agent(world: &World, repositories: Vec<ComposerRepository>) -> TestAgent {
    let repos = ReposDir::new();
    repos.add(REPO, &world.git.url(REPO));
    TestAgent::start(
        world,
        "offphp",
        Arc::new(PhpFlavour),
        ensure_php_image(),
        repos,
        |config| {
            config.health.path = "/healthz".into();
            config.composer.repositories = repositories;
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

fn lines(events: &[Event]) -> Vec<(LogStream, &str)> {
    events.iter().flat_map(|e| e.body.log_lines()).collect()
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
async fn composer_installs_offline_from_vendor_or_a_configured_repository_and_fails_clearly_without()
 {
    let world = World::start(PASSWORD).await;
    let fixture = PhpGatewayFixture::create(&world.git, REPO, &["vendored", "bare"]);
    let package = tempfile::tempdir().expect("package dir");
    write_package(package.path());
    let app = install_like_a_developer(package.path());
    for file in files_under(app.path()) {
        let text = std::fs::read_to_string(app.path().join(&file)).expect("read");
        fixture.push_file("vendored", &file, &text);
    }
    fixture.push_file("vendored", "index.php", INDEX_PHP);
    fixture.push_file("bare", "composer.json", COMPOSER_JSON);
    fixture.push_file("bare", "index.php", INDEX_PHP);
    // The package moves away: only the committed vendor/ has it now.
    let moved = tempfile::tempdir().expect("moved package");
    write_package(moved.path());
    drop(package);

    // vendor/ and composer.lock committed, nothing configured.
    let agent_offline = agent(&world, Vec::new()).await;
    let (events, status, url, error) = deploy(&world, &agent_offline, "vend", "vendored").await;
    assert_eq!(status, Status::Running, "{error:?}: {events:#?}");
    assert_eq!(
        get(&format!("{}/", url.expect("url"))).await,
        "hello from acme/hello"
    );
    assert!(
        !lines(&events).iter().any(|(_, l)| l.contains("warning:")),
        "{events:#?}"
    );

    // Neither vendor/ nor a repository: a warning, then a clear error, and
    // packagist.org never tried.
    let (events, status, _, error) = deploy(&world, &agent_offline, "bare", "bare").await;
    assert_eq!(status, Status::Failed, "{events:#?}");
    let error = error.expect("error");
    assert!(error.contains("commit vendor/"), "{error}");
    assert!(error.contains("set composer.repositories"), "{error}");
    let logged = lines(&events);
    assert!(
        logged.iter().any(|(stream, l)| *stream == LogStream::System
            && l.starts_with("warning: composer.json requires packages")),
        "{events:#?}"
    );
    assert!(
        !logged.iter().any(|(_, l)| l.contains("packagist.org")),
        "composer tried packagist.org: {events:#?}"
    );
    agent_offline.stop().await;

    // The same checkout with a configured path repository.
    let with_repo = agent(
        &world,
        vec![ComposerRepository {
            kind: ComposerRepositoryKind::Path,
            url: moved.path().display().to_string(),
        }],
    )
    .await;
    let (events, status, url, error) = deploy(&world, &with_repo, "repo", "bare").await;
    assert_eq!(status, Status::Running, "{error:?}: {events:#?}");
    assert_eq!(
        get(&format!("{}/", url.expect("url"))).await,
        "hello from acme/hello"
    );
    with_repo.stop().await;
}
