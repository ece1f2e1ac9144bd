//! GitServer with the git CLI and libgit2 as clients.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use git2::{Cred, Direction, FetchOptions, RemoteCallbacks, Repository};
use sdp_testkit::{GitServer, GoFixture, ReposDir, basic_auth_header, unique_id};

const USER: &str = "sdp";
const PASS: &str = "s3cret";

/// `git ls-remote URL` with the credential in an extra header and no helper
/// or prompt.
fn ls_remote(url: &str, password: &str) -> Output {
    Command::new("git")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args(["-c", "credential.helper="])
        .arg("-c")
        .arg(format!(
            "http.extraHeader=Authorization: {}",
            basic_auth_header(USER, password)
        ))
        .args(["ls-remote", url])
        .output()
        .expect("git runs")
}

fn fixture(git: &GitServer) -> (String, GoFixture) {
    let repo = unique_id("svc");
    let fixture = GoFixture::create(git, &repo, &["main", "feature/x"]);
    (repo, fixture)
}

#[test]
fn git_cli_ls_remote_with_right_credential() {
    let git = GitServer::start(USER, PASS);
    let (repo, fx) = fixture(&git);
    let out = ls_remote(&git.url(&repo), PASS);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{}\trefs/heads/main", fx.commit("main"))),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{}\trefs/heads/feature/x", fx.commit("feature/x"))));
    assert!(stdout.contains("HEAD"), "{stdout}");
    assert!(git.requests() >= 1);
    assert_eq!(git.auth_failures(), 0);
}

#[test]
fn git_cli_with_wrong_credential_is_refused() {
    let git = GitServer::start(USER, PASS);
    let (repo, _fx) = fixture(&git);
    let out = ls_remote(&git.url(&repo), "wrong");
    assert!(!out.status.success());
    assert!(git.auth_failures() >= 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Authentication failed") || stderr.contains("could not read"),
        "{stderr}"
    );
}

#[test]
fn git_cli_clone_fetches_the_fixture() {
    let git = GitServer::start(USER, PASS);
    let (repo, fx) = fixture(&git);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new("git")
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(["-c", "credential.helper="])
        .arg("-c")
        .arg(format!(
            "http.extraHeader=Authorization: {}",
            basic_auth_header(USER, PASS)
        ))
        .args(["clone", "--quiet", "--branch", "feature/x"])
        .arg(git.url(&repo))
        .arg(dir.path().join("clone"))
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let main_go = std::fs::read_to_string(dir.path().join("clone/main.go")).expect("main.go");
    assert!(main_go.contains("\"feature/x\""));
    let head = Command::new("git")
        .arg("-C")
        .arg(dir.path().join("clone"))
        .args(["rev-parse", "HEAD"])
        .output()
        .expect("git runs");
    assert_eq!(
        String::from_utf8_lossy(&head.stdout).trim(),
        fx.commit("feature/x")
    );
}

/// Callbacks that answer with `password` once and then give up, so a wrong
/// password ends in an error instead of a retry loop.
fn callbacks<'a>(password: &'a str, calls: &'a AtomicUsize) -> RemoteCallbacks<'a> {
    let mut cb = RemoteCallbacks::new();
    cb.credentials(move |_url, _user, _allowed| {
        if calls.fetch_add(1, Ordering::SeqCst) > 0 {
            return Err(git2::Error::from_str("credentials rejected"));
        }
        Cred::userpass_plaintext(USER, password)
    });
    cb
}

#[test]
fn git2_connect_and_list_with_right_password() {
    let git = GitServer::start(USER, PASS);
    let (repo, fx) = fixture(&git);
    let scratch = tempfile::tempdir().expect("tempdir");
    let local = Repository::init_bare(scratch.path()).expect("init");
    let mut remote = local.remote_anonymous(&git.url(&repo)).expect("remote");
    let calls = AtomicUsize::new(0);
    let conn = remote
        .connect_auth(Direction::Fetch, Some(callbacks(PASS, &calls)), None)
        .expect("connect");
    let heads: Vec<(String, String)> = conn
        .list()
        .expect("list")
        .iter()
        .map(|h| (h.name().to_owned(), h.oid().to_string()))
        .collect();
    assert!(
        heads.contains(&("refs/heads/main".to_owned(), fx.commit("main"))),
        "{heads:?}"
    );
    assert!(heads.contains(&("refs/heads/feature/x".to_owned(), fx.commit("feature/x"))));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn git2_wrong_password_fails_without_looping() {
    let git = GitServer::start(USER, PASS);
    let (repo, _fx) = fixture(&git);
    let scratch = tempfile::tempdir().expect("tempdir");
    let local = Repository::init_bare(scratch.path()).expect("init");
    let mut remote = local.remote_anonymous(&git.url(&repo)).expect("remote");
    let calls = AtomicUsize::new(0);
    let err = remote
        .connect_auth(Direction::Fetch, Some(callbacks("wrong", &calls)), None)
        .err()
        .expect("connect must fail");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "{err}");
    assert!(git.auth_failures() >= 2);
}

#[test]
fn git2_fetches_a_branch_with_a_slash_into_a_repos_dir() {
    let git = GitServer::start(USER, PASS);
    let (repo, fx) = fixture(&git);
    let repos = ReposDir::new();
    repos.add(&repo, &git.url(&repo));
    let local = Repository::open(repos.path().join(&repo)).expect("open");
    let mut origin = local.find_remote("origin").expect("origin");
    let calls = AtomicUsize::new(0);
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks(PASS, &calls));
    origin
        .fetch(
            &["+refs/heads/feature/x:refs/remotes/origin/feature/x"],
            Some(&mut opts),
            None,
        )
        .expect("fetch");
    let fetched = local
        .refname_to_id("refs/remotes/origin/feature/x")
        .expect("ref fetched");
    assert_eq!(fetched.to_string(), fx.commit("feature/x"));
    let commit = local.find_commit(fetched).expect("commit object present");
    let tree = commit.tree().expect("tree");
    assert!(tree.get_name("main.go").is_some() && tree.get_name("go.mod").is_some());

    // A new revision is fetched on the next fetch.
    let new_sha = fx.push_revision("feature/x", "2");
    let calls = AtomicUsize::new(0);
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks(PASS, &calls));
    origin
        .fetch(
            &["+refs/heads/feature/x:refs/remotes/origin/feature/x"],
            Some(&mut opts),
            None,
        )
        .expect("second fetch");
    let fetched = local
        .refname_to_id("refs/remotes/origin/feature/x")
        .expect("ref");
    assert_eq!(fetched.to_string(), new_sha);
}

#[test]
fn unknown_repo_is_404_and_anonymous_is_401() {
    let git = GitServer::start(USER, PASS);
    let missing = ls_remote(&git.url("does-not-exist"), PASS);
    assert!(!missing.status.success());
    let before = git.auth_failures();
    let out = Command::new("git")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "")
        .args(["-c", "credential.helper=", "ls-remote"])
        .arg(git.url("does-not-exist"))
        .output()
        .expect("git runs");
    assert!(!out.status.success());
    assert!(git.auth_failures() > before);
}

#[test]
fn git_cli_gzipped_upload_pack_request_is_served() {
    let git = GitServer::start(USER, PASS);
    let repo = unique_id("svc");
    // Enough refs that the clone's want list exceeds 1 KiB, which git gzips.
    let names: Vec<String> = (0..30).map(|i| format!("branch-{i:02}")).collect();
    let branches: Vec<&str> = names.iter().map(String::as_str).collect();
    let fx = GoFixture::create(&git, &repo, &branches);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new("git")
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(["-c", "credential.helper=", "-c", "protocol.version=0"])
        .arg("-c")
        .arg(format!(
            "http.extraHeader=Authorization: {}",
            basic_auth_header(USER, PASS)
        ))
        .args(["clone", "--quiet", "--mirror"])
        .arg(git.url(&repo))
        .arg(dir.path().join("mirror"))
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        git.compressed_requests() >= 1,
        "git sent no gzipped request"
    );
    let sha = Command::new("git")
        .arg("-C")
        .arg(dir.path().join("mirror"))
        .args(["rev-parse", "refs/heads/branch-29"])
        .output()
        .expect("git runs");
    assert_eq!(
        String::from_utf8_lossy(&sha.stdout).trim(),
        fx.commit("branch-29")
    );
}
