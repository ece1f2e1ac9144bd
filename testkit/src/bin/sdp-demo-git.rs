//! The demo git server of `scripts/dev.sh`: smart HTTP with basic auth on a
//! fixed port, holding the demo Go service `users` (branches `main` and
//! `feature/x`) and the private `probe` repo that logins are checked
//! against. It also makes sure the agent's base image is loaded. Runs until
//! killed; the repos live in a temp dir and are made anew each start.

use std::process::Command;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_owned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port = arg(&args, "--port", "8090");
    let user = arg(&args, "--user", "demo");
    // By environment, so it shows in no process listing.
    let password =
        std::env::var("SDP_DEMO_GIT_PASSWORD").unwrap_or_else(|_| "demo-password".into());
    let base_image = arg(&args, "--base-image", "sdp-go-base:1");

    println!("making base image {base_image} (docker import of a busybox rootfs)");
    let built = sdp_testkit::ensure_busybox_image();
    let tagged = Command::new("docker")
        .args(["tag", &built, &base_image])
        .status();
    if !tagged.is_ok_and(|s| s.success()) {
        eprintln!("cannot tag {built} as {base_image}: is Docker running?");
        std::process::exit(1);
    }

    let server = sdp_testkit::GitServer::start_on(&format!("127.0.0.1:{port}"), &user, &password);
    let _users = sdp_testkit::GoFixture::create(&server, "users", &["main", "feature/x"]);
    server.create_bare("probe");
    println!(
        "demo git server on {} (user {user}): users.git, probe.git",
        server.base_url()
    );
    loop {
        std::thread::park();
    }
}
