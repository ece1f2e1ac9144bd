//! Hostile branches build in a build container and own nothing: a gateway
//! whose `composer.json` runs scripts, loads a plugin and puts its
//! `vendor-dir` outside the tree (with scripts off, and with scripts
//! allowed: then they run inside the container), a committed `vendor`
//! symlink and a `path` repository to host paths; a Go service whose
//! `go.mod` replaces a module with another sandbox's worktree, one with a
//! symlinked package directory into it, and one that needs the network
//! with no proxy. Each builds harmlessly or fails with a clear error;
//! afterwards no marker exists outside the worktree, no container was
//! started by the build, and neither the agent's NATS password nor the
//! git password is anywhere the build could write (its log, its output,
//! its caches). Real nats-server, git server, Docker engine, go, composer.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{TestAgent, World, deploy_request};
use sdp_agentlib::{AgentConfig, GoFlavour, PhpFlavour};
use sdp_bus::{Event, Status};
use sdp_testkit::{
    GoFixture, PhpGatewayFixture, ReposDir, docker_exists, ensure_busybox_image, ensure_php_image,
    unique_id,
};

const PASSWORD: &str = "canary-Pw-hostile-git-3f9a";
const NATS_PASSWORD: &str = "canary-Pw-hostile-nats-7c21";

/// The agent's NATS login carries a canary password (the test server
/// requires none, so any is accepted).
fn with_nats_canary(config: &mut AgentConfig) {
    config.nats.user = Some("agent".into());
    config.nats.password = Some(sdp_bus::Secret::new(NATS_PASSWORD));
    config.health.path = "/healthz".into();
}

/// Every line of the deployment's log.
fn log_text(events: &[Event]) -> String {
    events
        .iter()
        .flat_map(|e| e.body.log_lines())
        .map(|(_, line)| format!("{line}\n"))
        .collect()
}

/// Fails if a canary is in `text` or in any file under `dirs`.
fn assert_no_canary(text: &str, dirs: &[PathBuf]) {
    for canary in [PASSWORD, NATS_PASSWORD] {
        assert!(!text.contains(canary), "{canary} in the build log");
        for dir in dirs {
            if let Some(file) = file_containing(dir, canary.as_bytes()) {
                panic!("{canary} found in {}", file.display());
            }
        }
    }
}

fn file_containing(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        let kind = entry.file_type().ok()?;
        if kind.is_dir() {
            if let Some(found) = file_containing(&path, needle) {
                return Some(found);
            }
        } else if kind.is_file()
            && std::fs::read(&path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        {
            return Some(path);
        }
    }
    None
}

/// A `composer.json` that runs scripts and a plugin which try to write
/// `marker` on the host, start a container named `container`, print the
/// environment of every process it can see, and reach the network; its
/// `vendor-dir` is `vendor_dir`, outside the tree.
fn hostile_composer_json(marker: &Path, vendor_dir: &Path, container: &str) -> String {
    let marker = marker.display();
    let script = |cmd: String| serde_json::Value::String(format!("{cmd} || true"));
    let scripts = vec![
        script(format!("touch {marker}")),
        script(format!("php -r \"file_put_contents('{marker}', 'x');\"")),
        script(format!("docker run --name {container} busybox true")),
        script("cat /proc/*/environ".to_owned()),
        script("env".to_owned()),
        script("wget -T 3 -q -O- http://1.1.1.1/".to_owned()),
    ];
    serde_json::to_string_pretty(&serde_json::json!({
        "name": "sdp/hostile-gateway",
        "type": "project",
        "require": {"evil/plugin": "*"},
        "repositories": [{"type": "path", "url": "plugin"}],
        "minimum-stability": "dev",
        "config": {
            "vendor-dir": vendor_dir.display().to_string(),
            "allow-plugins": {"evil/plugin": true}
        },
        "scripts": {
            "post-install-cmd": scripts.clone(),
            "post-autoload-dump": scripts,
        }
    }))
    .expect("json")
}

/// A composer plugin whose activation writes `marker`.
fn plugin_files(marker: &Path) -> [(&'static str, String); 2] {
    [
        (
            "plugin/composer.json",
            serde_json::to_string_pretty(&serde_json::json!({
                "name": "evil/plugin",
                "type": "composer-plugin",
                "version": "1.0.0",
                "require": {"composer-plugin-api": "^2.0"},
                "autoload": {"psr-4": {"Evil\\": "src/"}},
                "extra": {"class": "Evil\\Plugin"}
            }))
            .expect("json"),
        ),
        (
            "plugin/src/Plugin.php",
            format!(
                "<?php\nnamespace Evil;\nuse Composer\\Composer;\nuse Composer\\IO\\IOInterface;\nuse Composer\\Plugin\\PluginInterface;\nclass Plugin implements PluginInterface {{\n  public function activate(Composer $c, IOInterface $io) {{ @file_put_contents('{}', 'plugin'); echo \"evil plugin active\\n\"; }}\n  public function deactivate(Composer $c, IOInterface $io) {{}}\n  public function uninstall(Composer $c, IOInterface $io) {{}}\n}}\n",
                marker.display()
            ),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_gateway_branch_writes_nothing_outside_its_worktree() {
    let world = World::start(PASSWORD).await;
    let outside = tempfile::tempdir().expect("a host dir outside every worktree");
    let marker = outside.path().join("marker");
    let vendor_out = outside.path().join("vendor-out");
    let victim = outside.path().join("victim");
    std::fs::create_dir_all(&victim).expect("victim dir");
    let host_package = outside.path().join("host-package");
    std::fs::create_dir_all(&host_package).expect("host package dir");
    std::fs::write(
        host_package.join("composer.json"),
        r#"{"name": "acme/host-secret", "version": "1.0.0"}"#,
    )
    .expect("host package");
    let container = unique_id("sdp-hostile-started");

    let fixture = PhpGatewayFixture::create(&world.git, "gw", &["main", "symlinks"]);
    for (path, text) in plugin_files(&marker) {
        fixture.push_file("main", path, &text);
    }
    fixture.push_file(
        "main",
        "composer.json",
        &hostile_composer_json(&marker, &vendor_out, &container),
    );
    // A committed vendor symlink to a host dir, and a path repository on
    // the host.
    fixture.push_symlink("symlinks", "vendor", &victim.display().to_string());
    fixture.push_file(
        "symlinks",
        "composer.json",
        &serde_json::json!({
            "name": "sdp/hostile-gateway",
            "require": {"acme/host-secret": "1.0.0"},
            "repositories": [{"type": "path", "url": host_package.display().to_string()}]
        })
        .to_string(),
    );

    for allow_scripts in [false, true] {
        let repos = ReposDir::new();
        repos.add("gw", &world.git.url("gw"));
        let agent = TestAgent::start(
            &world,
            "hg",
            Arc::new(PhpFlavour),
            ensure_php_image(),
            repos,
            |config| {
                with_nats_canary(config);
                config.build.allow_composer_scripts = allow_scripts;
            },
        )
        .await;
        let sandbox = format!("hostile-{allow_scripts}");
        let request = deploy_request(&sandbox, "gw", "main", PASSWORD);
        let (events, status, _, error) = agent.deploy_and_wait(&world, &request).await;
        let log = log_text(&events);
        assert!(
            matches!(status, Status::Running | Status::Failed),
            "{status}: {error:?}"
        );
        if status == Status::Failed {
            let error = error.unwrap_or_default();
            assert!(error.contains("composer install"), "a clear error: {error}");
        }
        if allow_scripts {
            assert!(
                log.contains("scripts and plugins allowed"),
                "the log says scripts run: {log}"
            );
            // They ran, inside the build container.
            assert!(log.contains("evil plugin active"), "{log}");
            assert!(log.contains("docker: not found"), "{log}");
        } else {
            assert!(log.contains("--no-scripts --no-plugins"), "{log}");
            assert!(!log.contains("evil plugin active"), "{log}");
        }
        assert!(
            !marker.exists(),
            "a script or plugin wrote on the host: {log}"
        );
        assert!(!vendor_out.exists(), "vendor-dir landed on the host: {log}");
        assert!(!docker_exists(&container), "the build started a container");

        let symlinked = deploy_request(&sandbox, "gw", "symlinks", PASSWORD);
        let (events, status, _, error) = agent.deploy_and_wait(&world, &symlinked).await;
        let symlink_log = log_text(&events);
        assert_eq!(status, Status::Failed, "{symlink_log}");
        assert!(
            error.unwrap_or_default().contains("composer install"),
            "{symlink_log}"
        );
        assert_eq!(
            std::fs::read_dir(&victim).expect("victim").count(),
            0,
            "the vendor symlink wrote on the host: {symlink_log}"
        );
        assert!(
            !symlink_log.contains("Installing acme/host-secret"),
            "a host path repository was read: {symlink_log}"
        );
        let data = agent.data.path();
        assert_no_canary(
            &format!("{log}{symlink_log}"),
            &[
                data.join("worktrees"),
                data.join("build-caches"),
                data.join("builds"),
            ],
        );
        agent.stop().await;
    }
    assert!(!marker.exists());
}

/// Sandbox alpha's private package: `leak` (a package of its module) and
/// `secret` (a module of its own), each holding `PRIVATE`.
const PRIVATE: &str = "private-constant-of-alpha-51e0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_go_branch_cannot_read_another_sandbox_or_the_network() {
    let world = World::start(PASSWORD).await;
    let fixture = GoFixture::create(
        &world.git,
        "users",
        &["main", "replace", "symlink", "network"],
    );
    fixture.push_file(
        "main",
        "leak/leak.go",
        &format!("package leak\n\nconst Value = \"{PRIVATE}\"\n"),
    );
    fixture.push_file(
        "main",
        "secret/go.mod",
        "module example.com/secret\n\ngo 1.19\n",
    );
    fixture.push_file(
        "main",
        "secret/secret.go",
        &format!("package secret\n\nconst Value = \"{PRIVATE}\"\n"),
    );
    let repos = ReposDir::new();
    repos.add("users", &world.git.url("users"));
    let agent = TestAgent::start(
        &world,
        "hgo",
        Arc::new(GoFlavour::default()),
        ensure_busybox_image(),
        repos,
        with_nats_canary,
    )
    .await;
    let data = agent.data.path().canonicalize().expect("data dir");
    let (_, status, _, error) = agent
        .deploy_and_wait(&world, &deploy_request("alpha", "users", "main", PASSWORD))
        .await;
    assert_eq!(status, Status::Running, "{error:?}");
    let alpha = data.join("worktrees/alpha/users");
    assert!(alpha.join("leak/leak.go").is_file(), "alpha is deployed");

    let uses = |import: &str| {
        format!(
            "package main\n\nimport (\n\t\"fmt\"\n\t\"net/http\"\n\t\"os\"\n\n\tstolen \"{import}\"\n)\n\nfunc main() {{\n\thttp.HandleFunc(\"/\", func(w http.ResponseWriter, r *http.Request) {{ fmt.Fprint(w, stolen.Value) }})\n\thttp.ListenAndServe(\":\"+os.Getenv(\"PORT\"), nil)\n}}\n"
        )
    };
    // go.mod replaces a module with alpha's worktree.
    fixture.push_file(
        "replace",
        "go.mod",
        &format!(
            "module example.com/users\n\ngo 1.19\n\nrequire example.com/secret v0.0.0\n\nreplace example.com/secret => {}\n",
            alpha.join("secret").display()
        ),
    );
    fixture.push_file("replace", "main.go", &uses("example.com/secret"));
    // A package directory that is a symlink into alpha's worktree.
    fixture.push_symlink(
        "symlink",
        "stolen",
        &alpha.join("leak").display().to_string(),
    );
    fixture.push_file("symlink", "main.go", &uses("example.com/users/stolen"));
    // A module that only the network has.
    fixture.push_file(
        "network",
        "go.mod",
        "module example.com/users\n\ngo 1.19\n\nrequire example.com/remote v1.0.0\n",
    );
    fixture.push_file("network", "main.go", &uses("example.com/remote"));

    for branch in ["replace", "symlink", "network"] {
        let request = deploy_request("bravo", "users", branch, PASSWORD);
        let (events, status, _, error) = agent.deploy_and_wait(&world, &request).await;
        let log = log_text(&events);
        let error = error.unwrap_or_default();
        assert_eq!(status, Status::Failed, "{branch}: {log}");
        assert!(
            error.contains("go build"),
            "{branch}: a clear error: {error}"
        );
        if branch == "network" {
            assert!(error.contains("module example.com/remote"), "{error}");
            assert!(log.contains("GOPROXY=off"), "{log}");
        }
        assert!(!log.contains(PRIVATE), "{branch}: {log}");
        for dir in [data.join("builds/bravo"), data.join("build-caches/bravo")] {
            assert_eq!(
                file_containing(&dir, PRIVATE.as_bytes()),
                None,
                "{branch}: alpha's constant in bravo's output or caches"
            );
        }
        assert_no_canary(
            &log,
            &[
                data.join("builds/bravo"),
                data.join("build-caches/bravo"),
                data.join("worktrees/bravo"),
            ],
        );
    }
    agent.stop().await;
}
