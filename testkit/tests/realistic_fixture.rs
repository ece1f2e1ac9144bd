//! RealisticGoFixture: its tree builds offline from `vendor/` with Go 1.22
//! (and not with Go 1.19), and the binary, run from `web/` with its port
//! in a flag, serves its health path, template, static file and
//! `GREETING`; without `GREETING` or `templates/` it exits saying why.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sdp_testkit::realistic_fixture::{REALISTIC_HEALTH_PATH, REALISTIC_STYLE_CSS};
use sdp_testkit::{ChildGuard, GitServer, RealisticGoFixture, free_port, unique_id, wait_for};

const GO_1_22: &str = "/usr/lib/go-1.22/bin/go";
/// Debian's `golang-1.19-go`, the `go` on `PATH` of the test hosts.
const GO_1_19: &str = "/usr/lib/go-1.19/bin/go";

/// `go build -mod=vendor -o OUT ./cmd/<repo>` offline with `go`.
fn go_build(go: &str, src: &Path, repo: &str, out: &Path) -> std::process::Output {
    let mut cmd = Command::new(go);
    if std::env::var_os("HOME").is_none() && std::env::var_os("GOCACHE").is_none() {
        let base = std::env::temp_dir().join("sdp-testkit-go");
        cmd.env("GOCACHE", base.join("cache"))
            .env("GOPATH", base.join("path"));
    }
    cmd.args(["build", "-mod=vendor", "-o"])
        .arg(out)
        .arg(format!("./cmd/{repo}"))
        .current_dir(src)
        .env_remove("GOFLAGS")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {go}: {e}"))
}

/// A plain HTTP/1.0 request; returns (status line, body).
fn http(port: u16, method: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let request = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("http response");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

#[tokio::test]
async fn realistic_fixture_builds_from_vendor_with_go_1_22_and_serves_from_web() {
    let server = GitServer::start("sdp", "pw");
    let repo = unique_id("shop");
    let fixture = RealisticGoFixture::create(&server, &repo, &["main"]);
    let src = fixture.work_path();
    for path in [
        format!("cmd/{repo}/main.go"),
        "internal/config/config.go".into(),
        "internal/server/server.go".into(),
        "vendor/modules.txt".into(),
        "vendor/example.com/greet/greet.go".into(),
        "web/templates/index.html".into(),
        "web/static/style.css".into(),
        "sdp.toml".into(),
    ] {
        assert!(src.join(&path).is_file(), "{path}");
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let bin = tmp.path().join("app");
    let out = go_build(GO_1_22, src, &repo, &bin);
    assert!(
        out.status.success(),
        "go 1.22 build: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Without GREETING, or away from web/, it stops at once saying why.
    let out = Command::new(&bin)
        .current_dir(src.join("web"))
        .env_remove("GREETING")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("GREETING is not set"));
    let out = Command::new(&bin)
        .current_dir(src)
        .env("GREETING", "hi")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("templates/index.html"));

    let port = free_port();
    let mut cmd = Command::new(&bin);
    cmd.arg(format!("-listen=:{port}"))
        .arg("-log-level=debug")
        .current_dir(src.join("web"))
        .env("GREETING", "Grüezi")
        .env("SDP_SANDBOX", "alpha")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let _child = ChildGuard::spawn(cmd);
    let (status, body) = wait_for("fixture /status", Duration::from_secs(10), || async move {
        std::panic::catch_unwind(|| http(port, "GET", REALISTIC_HEALTH_PATH)).ok()
    })
    .await;
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body, "ok");
    let (status, _) = http(port, "POST", REALISTIC_HEALTH_PATH);
    assert!(status.contains(" 405 "), "a method pattern: {status}");
    let (status, body) = http(port, "GET", "/");
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        body.contains("<h1 id=\"greeting\">Grüezi</h1>")
            && body.contains("Grüezi, visitor! (greet v1.4.0)"),
        "{body}"
    );
    let (status, body) = http(port, "GET", "/static/style.css");
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body, REALISTIC_STYLE_CSS);
    let (_, body) = http(port, "GET", "/api/info");
    let info: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(info["greeting"], "Grüezi");
    assert_eq!(info["log_level"], "debug");
    assert_eq!(info["listen"], format!(":{port}"));
    assert_eq!(info["sandbox"], "alpha");
    let (status, _) = http(port, "GET", "/nope");
    assert!(status.contains(" 404 "), "{status}");
}

#[test]
fn realistic_fixture_does_not_build_with_go_1_19() {
    let server = GitServer::start("sdp", "pw");
    let repo = unique_id("shop");
    let fixture = RealisticGoFixture::create(&server, &repo, &["main"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = go_build(GO_1_19, fixture.work_path(), &repo, &tmp.path().join("app"));
    assert!(!out.status.success(), "built with Go 1.19");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("range") || stderr.contains("go 1.22") || stderr.contains("Go 1.22"),
        "{stderr}"
    );
}
