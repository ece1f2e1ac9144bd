//! The shared object store per repo (`agentlib::git_store`) against a real
//! git smart-HTTP server with basic auth: a new sandbox of a known repo
//! fetches nothing it already has, and sandboxes fetch one repo at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use sdp_agentlib::git::{self, FetchSpec, Fetched};
use sdp_bus::{GitCredential, Secret};
use sdp_testkit::{GitServer, GoFixture};

const USER: &str = "dev";
const PASSWORD: &str = "canary-Pw-5be21c";
const REPO: &str = "users";

struct Setup {
    git: GitServer,
    fixture: GoFixture,
    credential: GitCredential,
    data: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        sdp_testkit::init_tracing();
        let git = GitServer::start(USER, PASSWORD);
        let fixture = GoFixture::create(&git, REPO, &["main", "feature/x"]);
        Setup {
            git,
            fixture,
            credential: GitCredential {
                username: USER.into(),
                password: Secret::new(PASSWORD),
            },
            data: tempfile::tempdir().expect("data dir"),
        }
    }

    fn worktree(&self, sandbox: &str) -> PathBuf {
        self.data.path().join("worktrees").join(sandbox).join(REPO)
    }

    /// Fetch + checkout of `branch` into `sandbox`, as the agent does it.
    fn fetch(&self, sandbox: &str, branch: &str) -> Fetched {
        let url = self.git.url(REPO);
        let (progress, _lines) = tokio::sync::mpsc::unbounded_channel();
        let spec = FetchSpec {
            repo: REPO,
            url: &url,
            branch,
            credential: &self.credential,
            worktree: self.worktree(sandbox),
            gitdir: self
                .data
                .path()
                .join("gitdirs")
                .join(sandbox)
                .join(format!("{REPO}.git")),
            store: sdp_agentlib::git_store::path(self.data.path(), REPO),
            cancel: Arc::new(AtomicBool::new(false)),
            progress,
        };
        git::fetch_and_checkout(&spec).unwrap_or_else(|e| panic!("fetch into {sandbox}: {e}"))
    }
}

fn assert_checked_out(worktree: &Path, revision: &str) {
    let main = std::fs::read_to_string(worktree.join("main.go")).expect("main.go checked out");
    assert!(
        main.contains(&format!("\"{revision}\"")),
        "revision {revision} in {main}"
    );
    assert!(
        !worktree.join(".git").exists(),
        "no .git in the mounted tree"
    );
}

#[test]
fn a_new_sandbox_of_a_known_repo_fetches_only_what_is_new() {
    let s = Setup::new();
    let cold = s.fetch("alpha", "feature/x");
    assert_eq!(cold.commit, s.fixture.commit("feature/x"));
    assert!(cold.received_objects > 0, "cold fetch: {cold:?}");

    // Same branch into a new sandbox: everything is in the store already.
    let warm = s.fetch("beta", "feature/x");
    assert_eq!(warm.commit, cold.commit);
    assert_eq!(warm.received_objects, 0, "second sandbox: {warm:?}");
    assert_checked_out(&s.worktree("beta"), "1");

    // A new commit: only its own objects travel (commit, tree, main.go).
    let new_commit = s.fixture.push_revision("feature/x", "2");
    let next = s.fetch("gamma", "feature/x");
    assert_eq!(next.commit, new_commit);
    assert!(
        (1..=3).contains(&next.received_objects),
        "incremental: {next:?} (cold {cold:?})"
    );
    assert_checked_out(&s.worktree("gamma"), "2");
    // The earlier sandboxes keep their own checkout.
    assert_checked_out(&s.worktree("alpha"), "1");

    // The sandbox's git dir has no objects of its own: it borrows the store's.
    let gitdir_objects = s.data.path().join("gitdirs/beta/users.git/objects");
    let alternates =
        std::fs::read_to_string(gitdir_objects.join("info/alternates")).expect("alternates");
    assert!(alternates.trim_end().ends_with("stores/users.git/objects"));
    assert_eq!(own_objects(&gitdir_objects), 0, "objects stay in the store");
}

#[test]
fn a_branch_gone_from_the_server_is_missing_even_when_the_store_had_it() {
    let s = Setup::new();
    s.fetch("alpha", "feature/x");
    let status = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(s.fixture.bare_path())
        .args(["update-ref", "-d", "refs/heads/feature/x"])
        .status()
        .expect("git update-ref");
    assert!(status.success());
    let url = s.git.url(REPO);
    let (progress, _lines) = tokio::sync::mpsc::unbounded_channel();
    let spec = FetchSpec {
        repo: REPO,
        url: &url,
        branch: "feature/x",
        credential: &s.credential,
        worktree: s.worktree("beta"),
        gitdir: s.data.path().join("gitdirs/beta/users.git"),
        store: sdp_agentlib::git_store::path(s.data.path(), REPO),
        cancel: Arc::new(AtomicBool::new(false)),
        progress,
    };
    let err = git::fetch_and_checkout(&spec).expect_err("branch is gone");
    assert!(
        matches!(err, sdp_agentlib::DeployError::BranchMissing { .. }),
        "{err}"
    );
}

#[test]
fn concurrent_fetches_of_one_repo_into_two_sandboxes_both_succeed() {
    let s = Setup::new();
    let results: Vec<Fetched> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["alpha", "beta", "gamma"]
            .into_iter()
            .map(|sandbox| {
                let s = &s;
                scope.spawn(move || s.fetch(sandbox, "main"))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("fetch thread"))
            .collect()
    });
    let expected = s.fixture.commit("main");
    assert!(results.iter().all(|f| f.commit == expected), "{results:?}");
    // The store's lock let one of them fetch; the others found the objects.
    assert_eq!(
        results.iter().filter(|f| f.received_objects > 0).count(),
        1,
        "{results:?}"
    );
    for sandbox in ["alpha", "beta", "gamma"] {
        assert_checked_out(&s.worktree(sandbox), "1");
    }
}

/// Files under `objects/` other than `info/` (loose objects and packs).
fn own_objects(objects: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(objects) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != "info")
        .map(|e| {
            std::fs::read_dir(e.path())
                .map(|files| files.count())
                .unwrap_or(1)
        })
        .sum()
}
