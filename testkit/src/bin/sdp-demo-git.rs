//! The demo side of `scripts/dev.sh`: a git server (smart HTTP, basic auth)
//! on a fixed port holding the demo services `users` and `orders` (Go), the
//! PHP gateway `gateway` and the private `probe` repo logins are checked
//! against; a baseline server standing for OpenShift; and the agents' base
//! images. Prints `baseline <url>` once ready. Runs until SIGINT or
//! SIGTERM, then removes its temp dirs and exits; the repos are made anew
//! each start.

use std::process::Command;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_owned())
}

fn tag(built: &str, name: &str) {
    let tagged = Command::new("docker").args(["tag", built, name]).status();
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

    println!("making base images {go_image} and {php_image} (docker import of local rootfs)");
    tag(&sdp_testkit::ensure_busybox_image(), &go_image);
    tag(&sdp_testkit::ensure_php_image(), &php_image);

    let server = sdp_testkit::GitServer::start_on(&format!("127.0.0.1:{port}"), &user, &password);
    let _users = sdp_testkit::GoFixture::create(&server, "users", &["main", "feature/x"]);
    let _orders = sdp_testkit::GoFixture::create(&server, "orders", &["main", "feature/y"]);
    let _gateway = sdp_testkit::PhpGatewayFixture::create(&server, "gateway", &["main"]);
    server.create_bare("probe");
    let baseline = sdp_testkit::BaselineServer::start();
    println!(
        "demo git server on {} (user {user}): users.git, orders.git, gateway.git, probe.git",
        server.base_url()
    );
    println!("baseline {}", baseline.url());
    wait_for_stop_signal();
    println!("stopping");
    // The fixtures, the git server and the baseline drop here, removing
    // their temp dirs.
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
