//! The shared object store of a repo on this agent:
//! `<data_dir>/stores/<repo>.git`, a bare repo every fetch of that repo goes
//! into. Each (sandbox, service) git dir borrows its objects through
//! `objects/info/alternates`, so the first deploy of a known repo into a new
//! sandbox fetches only what the store lacks.
//!
//! - Fetches into a store are serialised by an exclusive `flock` on
//!   `stores/<repo>.lock`, which also holds between agent processes that
//!   share a data dir; inside one agent a per-repo async lock comes first
//!   (so a waiting job can be cancelled).
//! - Nothing deletes from a store (libgit2 never runs gc, and `gc.auto` is
//!   0 for the git CLI): the git dirs rely on its objects. Teardown removes
//!   a sandbox's git dirs and worktrees, never a store.
//! - A store is outside `worktrees/`, the only tree mounted into containers,
//!   and the alternates path lives in the git dir, also outside it.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};

use git2::{Repository, RepositoryInitOptions, RepositoryOpenFlags};

/// `<data_dir>/stores/<repo>.git`. `repo` must have passed `validate::repo`.
pub fn path(data_dir: &Path, repo: &str) -> PathBuf {
    data_dir.join("stores").join(format!("{repo}.git"))
}

/// Holds the store's file lock until dropped (closing the file unlocks).
pub(crate) struct StoreLock(#[allow(dead_code)] File);

/// Takes the store's exclusive lock, waiting for other holders (threads or
/// processes).
pub(crate) fn lock(store: &Path) -> std::io::Result<StoreLock> {
    // `<repo>.git` → `<repo>.lock`
    let lock_path = store.with_extension("lock");
    if let Some(parent) = lock_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    file.lock()?;
    Ok(StoreLock(file))
}

/// Opens the store, creating it on first use. Call with its lock held.
pub(crate) fn open(store: &Path) -> Result<Repository, git2::Error> {
    if store.join("HEAD").is_file() {
        return Repository::open_ext(
            store,
            RepositoryOpenFlags::NO_SEARCH | RepositoryOpenFlags::BARE,
            std::iter::empty::<&OsStr>(),
        );
    }
    let mut options = RepositoryInitOptions::new();
    options.bare(true).mkpath(true).external_template(false);
    let repo = Repository::init_opts(store, &options)?;
    // The git dirs depend on these objects: a git CLI run by hand in the
    // store must not gc them away.
    repo.config()?.set_i32("gc.auto", 0)?;
    Ok(repo)
}

/// Points `gitdir`'s object database at the store's (writes
/// `objects/info/alternates` unless it already says so).
pub(crate) fn link(gitdir: &Path, store: &Path) -> std::io::Result<()> {
    let info = gitdir.join("objects").join("info");
    std::fs::create_dir_all(&info)?;
    let alternates = info.join("alternates");
    let line = format!("{}\n", store.join("objects").display());
    if std::fs::read_to_string(&alternates).is_ok_and(|text| text == line) {
        return Ok(());
    }
    let temp = info.join("alternates.tmp");
    std::fs::write(&temp, line)?;
    std::fs::rename(&temp, &alternates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_file_sits_beside_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = path(dir.path(), "users");
        let guard = lock(&store).expect("lock");
        assert!(dir.path().join("stores/users.lock").is_file());
        drop(guard);
        let repo = open(&store).expect("init");
        assert!(repo.is_bare());
        assert_eq!(
            repo.config().expect("config").get_i32("gc.auto").ok(),
            Some(0)
        );
        drop(repo);
        open(&store).expect("reopen");
    }
}
