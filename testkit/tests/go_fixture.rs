//! GoFixture: the repo layout on the git server, and an offline `go build`
//! of what the server serves.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sdp_testkit::{
    ChildGuard, GitServer, GoFixture, basic_auth_header, free_port, go_main_source, unique_id,
    wait_for,
};

const USER: &str = "sdp";
const PASS: &str = "pw";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Clones `branch` of `repo` over HTTP into `dest`.
fn clone(server: &GitServer, repo: &str, branch: &str, dest: &Path) {
    let out = Command::new("git")
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(["-c", "credential.helper="])
        .arg("-c")
        .arg(format!(
            "http.extraHeader=Authorization: {}",
            basic_auth_header(USER, PASS)
        ))
        .args(["clone", "--quiet", "--branch", branch])
        .arg(server.url(repo))
        .arg(dest)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "clone: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `go build -o OUT .` offline, as the agent does.
fn go_build(src: &Path, out: &Path) -> std::process::Output {
    let mut cmd = Command::new("go");
    if std::env::var_os("HOME").is_none() && std::env::var_os("GOCACHE").is_none() {
        // go needs a cache dir; CI environments may have no HOME.
        let base = std::env::temp_dir().join("sdp-testkit-go");
        cmd.env("GOCACHE", base.join("cache"))
            .env("GOPATH", base.join("path"));
    }
    cmd.args(["build", "-o"])
        .arg(out)
        .arg(".")
        .current_dir(src)
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .output()
        .expect("go runs (apt-get install golang-go)")
}

/// A plain HTTP/1.0 GET; returns (status line, body).
fn http_get(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // One write: a request in pieces is what php -S drops (see php.rs).
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    let mut resp = String::new();
    stream.read_to_string(&mut resp).expect("read");
    let (head, body) = resp.split_once("\r\n\r\n").expect("http response");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

#[test]
fn fixture_branches_have_one_commit_each_and_head_is_the_first() {
    let server = GitServer::start(USER, PASS);
    let repo = unique_id("svc");
    let fx = GoFixture::create(&server, &repo, &["main", "feature/x"]);
    let bare = server.bare_path(&repo);
    assert_eq!(git(&bare, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_eq!(git(&bare, &["config", "http.receivepack"]), "false");
    for branch in ["main", "feature/x"] {
        let sha = fx.commit(branch);
        assert_eq!(sha.len(), 40);
        assert!(sha.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(git(&bare, &["rev-list", "--count", &sha]), "1");
        let files = git(&bare, &["ls-tree", "--name-only", &sha]);
        assert_eq!(
            files.lines().collect::<Vec<_>>(),
            ["README.md", "go.mod", "main.go"]
        );
        let main_go = git(&bare, &["show", &format!("{sha}:main.go")]);
        assert_eq!(main_go.trim(), go_main_source(&repo, branch, "1").trim());
        let go_mod = git(&bare, &["show", &format!("{sha}:go.mod")]);
        assert_eq!(go_mod, format!("module example.com/{repo}\n\ngo 1.19"));
    }
    assert_ne!(fx.commit("main"), fx.commit("feature/x"));

    let before = fx.commit("feature/x");
    let sha = fx.push_revision("feature/x", "2");
    assert_eq!(fx.commit("feature/x"), sha);
    assert_eq!(git(&bare, &["rev-parse", &format!("{sha}^")]), before);
    assert!(git(&bare, &["show", &format!("{sha}:main.go")]).contains("revision = \"2\""));
    let broken = fx.push_broken("main");
    assert_eq!(fx.commit("main"), broken);
    assert_ne!(broken, sha);
}

#[tokio::test]
async fn fixture_builds_offline_and_serves_json() {
    let server = GitServer::start(USER, PASS);
    let repo = unique_id("svc");
    let fx = GoFixture::create(&server, &repo, &["main", "feature/x"]);
    let sha = fx.push_revision("feature/x", "7");
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    clone(&server, &repo, "feature/x", &src);
    let bin = tmp.path().join("bin/service");
    let out = go_build(&src, &bin);
    assert!(
        out.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let port = free_port();
    let mut cmd = Command::new(&bin);
    cmd.env("PORT", port.to_string())
        .env("SDP_COMMIT", &sha)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut child = ChildGuard::spawn(cmd);
    let stdout = child.child_mut().stdout.take().expect("stdout");
    // Kept open: the service prints a line per request, and Go exits on a
    // write to a closed stdout pipe.
    let mut output = BufReader::new(stdout);
    let mut first_line = String::new();
    output.read_line(&mut first_line).expect("read stdout");
    assert_eq!(first_line.trim(), format!("listening on :{port}"));

    let (status, body) = wait_for("fixture /healthz", Duration::from_secs(10), || async move {
        std::panic::catch_unwind(|| http_get(port, "/healthz")).ok()
    })
    .await;
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body, "ok");

    let (status, body) = http_get(port, "/some/path");
    assert!(status.contains(" 200 "), "{status}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        json,
        serde_json::json!({
            "service": repo,
            "branch": "feature/x",
            "revision": "7",
            "commit": sha,
            "path": "/some/path",
        })
    );
    // One line per request, health checks aside.
    let mut request_line = String::new();
    output.read_line(&mut request_line).expect("read stdout");
    assert_eq!(request_line.trim(), "request GET /some/path");
    child.kill();
    assert!(!child.is_running());
}

#[test]
fn broken_fixture_fails_to_build() {
    let server = GitServer::start(USER, PASS);
    let repo = unique_id("svc");
    let fx = GoFixture::create(&server, &repo, &["main"]);
    fx.push_broken("main");
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    clone(&server, &repo, "main", &src);
    let out = go_build(&src, &tmp.path().join("service"));
    assert!(!out.status.success(), "broken fixture built");
}
