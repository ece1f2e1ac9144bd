//! [`FixtureRepo`]: the git side every fixture shares — a bare repo on a
//! [`GitServer`] and the temp work clone it is edited in and pushed from
//! (pushes go to the bare repo's file path). [`GoFixture`](crate::GoFixture),
//! [`PhpGatewayFixture`](crate::PhpGatewayFixture) and
//! [`RealisticGoFixture`](crate::RealisticGoFixture) say only what their
//! branches hold.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use tempfile::TempDir;

use crate::cmd::{git, output, run};
use crate::git_server::GitServer;

/// A fixture's repo: one commit per branch at the start, then a commit per
/// change, each pushed at once.
#[derive(Debug)]
pub struct FixtureRepo {
    repo: String,
    bare: PathBuf,
    work: TempDir,
    // Serialises git commands in the work clone.
    lock: Mutex<()>,
}

impl FixtureRepo {
    /// Creates bare repo `repo` on `git_server` (its work clone in a temp
    /// dir named `<work_prefix>…`) and pushes one commit per branch, made
    /// of the files `tree(branch)` names as (path, contents), with message
    /// `<repo>: <branch> revision 1`. Each branch starts with no parent
    /// and an empty index. The first branch is the default one (`HEAD`).
    ///
    /// # Panics
    /// If `branches` is empty or a git command fails.
    pub fn create(
        git_server: &GitServer,
        repo: &str,
        work_prefix: &str,
        branches: &[&str],
        mut tree: impl FnMut(&str) -> Vec<(String, String)>,
    ) -> FixtureRepo {
        let Some(default_branch) = branches.first() else {
            panic!("the fixture repo {repo:?} needs at least one branch");
        };
        let bare = git_server.create_bare(repo);
        let work = tempfile::Builder::new()
            .prefix(work_prefix)
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create work dir: {e}"));
        run(git(Some(work.path())).args(["init", "--quiet"]));
        let fixture = FixtureRepo {
            repo: repo.to_owned(),
            bare,
            work,
            lock: Mutex::new(()),
        };
        for branch in branches {
            run(fixture
                .git()
                .args(["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")]));
            // Fails harmlessly on the first branch (nothing in the index).
            let _ = output(fixture.git().args(["rm", "-r", "-q", "--cached", "."]));
            for (path, contents) in tree(branch) {
                write(&fixture.work.path().join(path), &contents);
            }
            fixture.commit_and_push(branch, &format!("{repo}: {branch} revision 1"));
        }
        run(git(Some(&fixture.bare)).args([
            "symbolic-ref",
            "HEAD",
            &format!("refs/heads/{default_branch}"),
        ]));
        fixture
    }

    /// Checks out `branch`, lets `change` edit the work tree (it gets the
    /// work dir), commits everything as `<repo>: <branch> <what>`, pushes;
    /// returns the new commit sha.
    pub fn change(&self, branch: &str, what: &str, change: impl FnOnce(&Path)) -> String {
        let _guard = self.checkout(branch);
        change(self.work.path());
        self.commit_and_push(branch, &format!("{}: {branch} {what}", self.repo))
    }

    /// Writes `path` (relative to the repo root, parents made) on `branch`,
    /// commits, pushes; returns the new commit sha.
    pub fn push_file(&self, branch: &str, path: &str, contents: &str) -> String {
        self.change(branch, &format!("update {path}"), |work| {
            write(&work.join(path), contents);
        })
    }

    /// Deletes `path` on `branch`, commits, pushes; returns the new sha.
    pub fn remove_file(&self, branch: &str, path: &str) -> String {
        self.change(branch, &format!("remove {path}"), |_| {
            run(self.git().args(["rm", "-q", "--", path]));
        })
    }

    /// Commits a symlink `path` → `target` (any text, e.g. a host path
    /// outside the repo) on `branch`, pushes; returns the new sha.
    pub fn push_symlink(&self, branch: &str, path: &str, target: &str) -> String {
        self.change(branch, &format!("link {path}"), |work| {
            let link = work.join(path);
            make_parent(&link);
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(target, &link)
                .unwrap_or_else(|e| panic!("cannot link {}: {e}", link.display()));
        })
    }

    /// The sha at the tip of `branch` in the bare repo.
    pub fn commit(&self, branch: &str) -> String {
        run(git(Some(&self.bare)).args(["rev-parse", &format!("refs/heads/{branch}^{{commit}}")]))
    }

    /// The repo name.
    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// The bare repo on disk.
    pub fn bare_path(&self) -> &Path {
        &self.bare
    }

    /// The work clone (its checkout is whichever branch was pushed last).
    pub fn work_path(&self) -> &Path {
        self.work.path()
    }

    /// A `git` command in the work clone.
    pub fn git(&self) -> Command {
        git(Some(self.work.path()))
    }

    /// Holds the work clone for one change, with `branch` checked out.
    fn checkout(&self, branch: &str) -> MutexGuard<'_, ()> {
        let guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        run(self.git().args(["checkout", "--quiet", branch]));
        guard
    }

    fn commit_and_push(&self, branch: &str, message: &str) -> String {
        run(self.git().args(["add", "-A"]));
        run(self
            .git()
            .args(["commit", "--quiet", "--allow-empty", "-m", message]));
        let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
        run(self
            .git()
            .arg("push")
            .arg("--quiet")
            .arg(&self.bare)
            .arg(refspec));
        run(self.git().args(["rev-parse", "HEAD"]))
    }
}

/// Writes `path`, making its parent directories.
pub(crate) fn write(path: &Path, text: &str) {
    make_parent(path);
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn make_parent(path: &Path) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    }
}
