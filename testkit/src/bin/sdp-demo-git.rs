//! The demo side of `scripts/dev.sh`: a git server (smart HTTP, basic auth)
//! on a fixed port holding the demo services `users` and `orders` (Go), the
//! PHP gateway `gateway` and the private `probe` repo logins are checked
//! against; a baseline server standing for OpenShift; and the agents' base
//! images and build image. Prints `baseline <url>` once ready. Runs until SIGINT or
//! SIGTERM, then removes its temp dirs and exits; the repos are made anew
//! each start.
//!
//! The compose stack (`docker-compose.yml`, profile `demo`) runs it in a
//! container: `--listen 0.0.0.0:8090 --baseline-listen 0.0.0.0:8091
//! --baseline-url URL --no-images` (the images come from
//! `packaging/images/`), and `--micro-repos DIR --gateway-repos DIR
//! --origin URL` to write the agents' `repos_dir`s (a git repo per service
//! whose `origin` is `URL/<repo>.git`).

use std::path::Path;
use std::process::Command;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_owned())
}

/// Tags `built` as `name` unless `name` exists: an image someone made
/// under that tag (the compose stack's `packaging/images/`, a developer's
/// own) is theirs, not replaced on every start.
fn tag(built: impl FnOnce() -> String, name: &str) {
    let exists = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if exists.is_ok_and(|s| s.success()) {
        println!("image {name} exists: kept");
        return;
    }
    let built = built();
    let tagged = Command::new("docker").args(["tag", &built, name]).status();
    if !tagged.is_ok_and(|s| s.success()) {
        eprintln!("cannot tag {built} as {name}: is Docker running?");
        std::process::exit(1);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port = arg(&args, "--port", "8090");
    let user = arg(&args, "--user", "demo");
    // By environment, so it shows in no process listing.
    let password =
        std::env::var("SDP_DEMO_GIT_PASSWORD").unwrap_or_else(|_| "demo-password".into());
    let go_image = arg(&args, "--base-image", "sdp-go-base:1");
    let php_image = arg(&args, "--php-image", "sdp-php-base:1");
    let build_image = arg(&args, "--build-image", "sdp-build:1");
    let listen = arg(&args, "--listen", &format!("127.0.0.1:{port}"));

    if args.iter().any(|a| a == "--no-images") {
        println!("base images {go_image} and {php_image} are made elsewhere (--no-images)");
    } else {
        println!(
            "base images {go_image} and {php_image} and build image {build_image}: made where missing (docker import of local rootfs)"
        );
        tag(sdp_testkit::ensure_busybox_image, &go_image);
        tag(sdp_testkit::ensure_php_image, &php_image);
        tag(sdp_testkit::ensure_build_image, &build_image);
    }

    let server = sdp_testkit::GitServer::start_on(&listen, &user, &password);
    let _users = sdp_testkit::GoFixture::create(&server, "users", &["main", "feature/x"]);
    let _orders = sdp_testkit::GoFixture::create(&server, "orders", &["main", "feature/y"]);
    let _gateway = sdp_testkit::PhpGatewayFixture::create(&server, "gateway", &["main"]);
    server.create_bare("probe");
    let origin = arg(&args, "--origin", &server.base_url());
    for (flag, repos) in [
        ("--micro-repos", &["users", "orders"][..]),
        ("--gateway-repos", &["gateway"][..]),
    ] {
        if let Some(dir) = args
            .iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
        {
            for repo in repos {
                write_repo(Path::new(dir), repo, &format!("{origin}/{repo}.git"));
            }
        }
    }
    let baseline = match args.iter().position(|a| a == "--baseline-listen") {
        Some(_) => sdp_testkit::BaselineServer::start_on(&arg(&args, "--baseline-listen", "")),
        None => sdp_testkit::BaselineServer::start(),
    };
    println!(
        "demo git server on {listen} (user {user}): users.git, orders.git, gateway.git, probe.git"
    );
    // `url()` asks Docker for the bridge address; in a container, the
    // caller says how containers reach the baseline.
    let baseline_url = match args.iter().position(|a| a == "--baseline-url") {
        Some(_) => arg(&args, "--baseline-url", ""),
        None => baseline.url(),
    };
    println!("baseline {baseline_url}");
    wait_for_stop_signal();
    println!("stopping");
    // The fixtures, the git server and the baseline drop here, removing
    // their temp dirs.
}

/// Makes `<dir>/<repo>` a git repo whose `origin` is `url` (an agent's
/// `repos_dir` entry), or points an existing one's `origin` there.
fn write_repo(dir: &Path, repo: &str, url: &str) {
    let path = dir.join(repo);
    let git = |args: &[&str]| {
        let status = Command::new("git").arg("-C").arg(&path).args(args).status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("git {args:?} failed in {}", path.display());
            std::process::exit(1);
        }
    };
    if path.join(".git").is_dir() {
        git(&["remote", "set-url", "origin", url]);
    } else {
        if let Err(err) = std::fs::create_dir_all(&path) {
            eprintln!("cannot create {}: {err}", path.display());
            std::process::exit(1);
        }
        git(&["init", "--quiet"]);
        git(&["remote", "add", "origin", url]);
    }
    println!("repo {} → {url}", path.display());
}

/// Blocks until SIGINT or SIGTERM. A handler is installed even when the
/// signal was ignored at exec (`dev.sh` starts this in the background,
/// where bash ignores SIGINT): Ctrl-C must stop it.
fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot wait for signals: {err}");
            std::process::exit(1);
        }
    };
    runtime.block_on(async {
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            eprintln!("cannot install signal handlers");
            std::process::exit(1);
        };
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    });
}
