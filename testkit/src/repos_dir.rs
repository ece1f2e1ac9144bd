//! [`ReposDir`]: an agent's `repos_dir` with one git repo per service.

use std::path::Path;

use tempfile::TempDir;

use crate::cmd::{git, run};

/// A temp directory of non-bare git repos whose `origin` is the git server.
/// Removed on drop.
#[derive(Debug)]
pub struct ReposDir {
    dir: TempDir,
}

impl ReposDir {
    /// An empty temp directory.
    pub fn new() -> ReposDir {
        let dir = tempfile::Builder::new()
            .prefix("sdp-repos-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create repos dir: {e}"));
        ReposDir { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `git init` a repo at `<dir>/<name>` and add `origin_url` as `origin`.
    /// Does not fetch.
    pub fn add(&self, name: &str, origin_url: &str) {
        let repo = self.dir.path().join(name);
        run(git(None).args(["init", "--quiet"]).arg(&repo));
        run(git(Some(&repo)).args(["remote", "add", "origin", origin_url]));
    }
}

impl Default for ReposDir {
    fn default() -> Self {
        Self::new()
    }
}
