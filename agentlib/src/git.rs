//! Git with libgit2 (git2): checking repos in `repos_dir`, fetching exactly
//! one branch into the repo's shared store ([`crate::git_store`]) and
//! checking it out into a per-(sandbox, service) worktree whose git dir
//! lives outside the tree, and verifying a credential against a probe repo.
//!
//! Every function here blocks: call it from `spawn_blocking`. The credential
//! only ever reaches the credential callback, which hands it out once (a
//! second call means the server refused it, and asking again would loop).
//! libgit2 runs no hooks and no filter drivers, and we never look for a git
//! dir inside the checkout, so nothing in a checked-out tree affects the host.

use std::cell::Cell;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use git2::build::CheckoutBuilder;
use git2::{
    AutotagOption, Cred, CredentialType, Direction, ErrorClass, ErrorCode, FetchOptions,
    FetchPrune, Remote, RemoteCallbacks, Repository, RepositoryInitOptions, RepositoryOpenFlags,
};
use sdp_bus::{BranchInfo, GitCredential, RpcError, RpcErrorCode};

use crate::error::DeployError;

/// Why a remote URL is refused. The text is safe to send back: it never
/// repeats the URL, which might carry a credential.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RemoteRefused {
    #[error("its remote is not a URL with a scheme (scp-like and local remotes are not allowed)")]
    NoScheme,
    #[error("its remote uses the scheme '{scheme}'; allowed: {}", allowed.join(", "))]
    Scheme {
        /// Lower-cased.
        scheme: String,
        allowed: Vec<String>,
    },
    #[error("its remote URL carries credentials; remove them from the URL")]
    Credentials,
    #[error("its remote URL has no host")]
    NoHost,
}

/// Why a repo of `repos_dir` cannot be deployed from this agent. The text
/// is for the requester: it names no host path and no URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RepoRefused {
    #[error("repo '{repo}' is not on this agent")]
    NotHere { repo: String },
    #[error("repo '{repo}' has no origin remote on this agent")]
    NoOrigin { repo: String },
    #[error("repo '{repo}' has an origin URL that is not UTF-8")]
    OriginNotUtf8 { repo: String },
    /// The reason is part of the message (it is what the requester must
    /// fix), so it is not also a `source`.
    #[error("repo '{repo}' cannot be deployed: {reason}")]
    Remote { repo: String, reason: RemoteRefused },
}

/// A refused repo is the requester's to fix: `bad_request`.
impl From<RepoRefused> for RpcError {
    fn from(refused: RepoRefused) -> Self {
        RpcError::new(RpcErrorCode::BadRequest, refused.to_string())
    }
}

/// Checks a remote URL against the allowed schemes (case-insensitive): it
/// must have a host and no credentials.
pub fn check_remote_url(url: &str, allowed_schemes: &[String]) -> Result<(), RemoteRefused> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(RemoteRefused::NoScheme);
    };
    let scheme = scheme.to_ascii_lowercase();
    if !allowed_schemes
        .iter()
        .any(|s| s.eq_ignore_ascii_case(&scheme))
    {
        return Err(RemoteRefused::Scheme {
            scheme,
            allowed: allowed_schemes.to_vec(),
        });
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(RemoteRefused::Credentials);
    }
    if authority.is_empty() {
        return Err(RemoteRefused::NoHost);
    }
    Ok(())
}

/// The names of the git repos in `repos_dir` that are valid repo names.
pub fn list_repos(repos_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(repos_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| sdp_bus::validate::repo(name).is_ok())
        .collect();
    names.sort();
    names
}

/// The `origin` URL of `repos_dir/<repo>`, checked against the allowed
/// schemes. `repo` must already have passed `validate::repo`.
pub fn origin_url(
    repos_dir: &Path,
    repo: &str,
    allowed_schemes: &[String],
) -> Result<String, RepoRefused> {
    let path = repos_dir.join(repo);
    let repo = || repo.to_owned();
    let repository = Repository::open_ext(
        &path,
        RepositoryOpenFlags::NO_SEARCH,
        std::iter::empty::<&OsStr>(),
    )
    .map_err(|_| RepoRefused::NotHere { repo: repo() })?;
    let remote = repository
        .find_remote("origin")
        .map_err(|_| RepoRefused::NoOrigin { repo: repo() })?;
    let url = remote
        .url()
        .map_err(|_| RepoRefused::OriginNotUtf8 { repo: repo() })?
        .to_owned();
    check_remote_url(&url, allowed_schemes).map_err(|reason| RepoRefused::Remote {
        repo: repo(),
        reason,
    })?;
    Ok(url)
}

/// Callbacks that give the credential out once; `refused` is set when git
/// asks a second time (the server said no).
fn credential_once<'a>(
    credential: &'a GitCredential,
    refused: &'a Cell<bool>,
) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    let mut used = false;
    callbacks.credentials(move |_url, _username_from_url, allowed| {
        if used {
            refused.set(true);
            return Err(git2::Error::from_str(
                "the git server refused the credential",
            ));
        }
        used = true;
        if !allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            return Err(git2::Error::from_str(
                "the git server asks for a kind of credential other than username and password",
            ));
        }
        Cred::userpass_plaintext(&credential.username, credential.password.expose())
    });
    callbacks
}

fn is_auth_error(err: &git2::Error) -> bool {
    err.code() == ErrorCode::Auth
        || (err.class() == ErrorClass::Http
            && (err.message().contains("401") || err.message().contains("403")))
}

fn is_network_error(err: &git2::Error) -> bool {
    matches!(
        err.class(),
        ErrorClass::Net | ErrorClass::Ssl | ErrorClass::Os | ErrorClass::Http
    )
}

/// `git ls-remote` of `url` with the credential.
pub fn verify_credentials(
    url: &str,
    credential: &GitCredential,
    allowed_schemes: &[String],
) -> Result<(), RpcError> {
    check_remote_url(url, allowed_schemes).map_err(|why| {
        RpcError::new(
            RpcErrorCode::BadRequest,
            format!("probe repo refused: {why}"),
        )
    })?;
    let refused = Cell::new(false);
    let result = (|| {
        let mut remote = Remote::create_detached(url)?;
        let callbacks = credential_once(credential, &refused);
        let connection = remote.connect_auth(Direction::Fetch, Some(callbacks), None)?;
        connection.list().map(|_| ())
    })();
    match result {
        Ok(()) => Ok(()),
        Err(err) if refused.get() || is_auth_error(&err) => Err(RpcError::new(
            RpcErrorCode::Unauthorized,
            "the git server refused the credential",
        )),
        Err(err) if is_network_error(&err) => {
            tracing::warn!(error = %err, "verify_credentials: cannot reach the git server");
            Err(RpcError::new(
                RpcErrorCode::Unavailable,
                "cannot reach the git server",
            ))
        }
        Err(err) => {
            tracing::warn!(error = %err, "verify_credentials failed");
            Err(RpcError::new(
                RpcErrorCode::Internal,
                "cannot list the probe repo",
            ))
        }
    }
}

/// The branches (`refs/heads/*`) of the remote at `url`, read with the
/// credential (like `git ls-remote --heads`), sorted by name.
pub fn list_branches(url: &str, credential: &GitCredential) -> Result<Vec<BranchInfo>, RpcError> {
    let refused = Cell::new(false);
    let result = (|| {
        let mut remote = Remote::create_detached(url)?;
        let callbacks = credential_once(credential, &refused);
        let connection = remote.connect_auth(Direction::Fetch, Some(callbacks), None)?;
        let heads = connection.list()?;
        Ok::<_, git2::Error>(
            heads
                .iter()
                .filter_map(|head| {
                    let name = head.name().strip_prefix("refs/heads/")?;
                    Some(BranchInfo {
                        name: name.to_owned(),
                        commit: head.oid().to_string(),
                    })
                })
                .collect::<Vec<_>>(),
        )
    })();
    match result {
        Ok(mut branches) => {
            branches.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(branches)
        }
        Err(err) if refused.get() || is_auth_error(&err) => Err(RpcError::new(
            RpcErrorCode::Unauthorized,
            "the git server refused the credential",
        )),
        Err(err) if is_network_error(&err) => {
            tracing::warn!(error = %err, "list_branches: cannot reach the git server");
            Err(RpcError::new(
                RpcErrorCode::Unavailable,
                "cannot reach the git server",
            ))
        }
        Err(err) => {
            tracing::warn!(error = %err, "list_branches failed");
            Err(RpcError::new(
                RpcErrorCode::Internal,
                "cannot list the branches of the repo",
            ))
        }
    }
}

/// What `list_repos` reports of a local repo besides its origin: the
/// default branch and the text of `sdp.toml` in HEAD's tree.
pub struct LocalRepo {
    pub default_branch: Option<String>,
    pub sdp_toml: Option<String>,
}

/// Reads `repos_dir/<repo>`: `origin/HEAD`'s branch if the remote-tracking
/// HEAD is there, else the branch local HEAD names (even if unborn); and
/// `sdp.toml` from HEAD's commit, if it has one.
pub fn local_repo(repos_dir: &Path, repo: &str) -> Option<LocalRepo> {
    let repository = Repository::open_ext(
        repos_dir.join(repo),
        RepositoryOpenFlags::NO_SEARCH,
        std::iter::empty::<&OsStr>(),
    )
    .ok()?;
    let symbolic = |name: &str, prefix: &str| {
        repository
            .find_reference(name)
            .ok()
            .and_then(|r| r.symbolic_target().ok().flatten().map(str::to_owned))
            .and_then(|t| t.strip_prefix(prefix).map(str::to_owned))
    };
    let default_branch = symbolic("refs/remotes/origin/HEAD", "refs/remotes/origin/")
        .or_else(|| symbolic("HEAD", "refs/heads/"));
    let sdp_toml = repository
        .head()
        .ok()
        .and_then(|head| head.peel_to_tree().ok())
        .and_then(|tree| {
            let entry = tree.get_name(crate::service::SDP_TOML)?;
            let blob = entry.to_object(&repository).ok()?.peel_to_blob().ok()?;
            String::from_utf8(blob.content().to_vec()).ok()
        });
    Some(LocalRepo {
        default_branch,
        sdp_toml,
    })
}

/// One fetch + checkout of a branch into a worktree.
pub struct FetchSpec<'a> {
    /// The repo's name (for messages).
    pub repo: &'a str,
    pub url: &'a str,
    pub branch: &'a str,
    pub credential: &'a GitCredential,
    pub worktree: PathBuf,
    pub gitdir: PathBuf,
    /// The repo's shared object store ([`crate::git_store::path`]).
    pub store: PathBuf,
    /// Set to abort the transfer.
    pub cancel: Arc<AtomicBool>,
    /// Progress lines for the log.
    pub progress: tokio::sync::mpsc::UnboundedSender<String>,
}

/// What a fetch brought.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The branch's commit, 40 hex.
    pub commit: String,
    /// What the server sent: 0 objects when the store had them all.
    pub received_objects: usize,
    pub received_bytes: usize,
}

/// Opens the worktree's repository, creating it on first use. The git dir
/// is `gitdir`, the work tree `worktree`; no `.git` is written in the tree.
/// Its objects come from `store` (alternates).
fn open_or_init(worktree: &Path, gitdir: &Path, store: &Path) -> Result<Repository, git2::Error> {
    if !gitdir.join("HEAD").is_file() {
        let mut options = RepositoryInitOptions::new();
        options
            .bare(false)
            .no_dotgit_dir(true)
            .mkpath(true)
            .external_template(false)
            .workdir_path(worktree);
        drop(Repository::init_opts(gitdir, &options)?);
        // libgit2 links a separate work tree back with a `.git` file; the
        // tree is mounted into containers, so drop it (we always open the
        // git dir directly).
        let link = worktree.join(".git");
        if link.is_file() {
            std::fs::remove_file(&link).map_err(|e| {
                git2::Error::from_str(&format!("cannot remove {}: {e}", link.display()))
            })?;
        }
    }
    // Before opening: the object database reads alternates when it loads.
    crate::git_store::link(gitdir, store)
        .map_err(|e| git2::Error::from_str(&format!("cannot link the shared store: {e}")))?;
    let repo = Repository::open_ext(
        gitdir,
        RepositoryOpenFlags::NO_SEARCH,
        std::iter::empty::<&OsStr>(),
    )?;
    repo.set_workdir(worktree, false)?;
    Ok(repo)
}

fn git_err(
    spec: &FetchSpec<'_>,
    step: &'static str,
) -> impl FnOnce(git2::Error) -> DeployError + use<> {
    let repo = spec.repo.to_owned();
    move |source: git2::Error| DeployError::Git { step, repo, source }
}

/// [`fetch_to_store`], then [`checkout`].
pub fn fetch_and_checkout(spec: &FetchSpec<'_>) -> Result<Fetched, DeployError> {
    let fetched = fetch_to_store(spec)?;
    checkout(spec, &fetched.commit)?;
    Ok(fetched)
}

/// Fetches `+refs/heads/<branch>:refs/remotes/origin/<branch>` into the
/// repo's shared store under its lock; returns the commit the server
/// advertised for the branch. Every other ref of the store counts as
/// "have", so only new objects travel.
pub fn fetch_to_store(spec: &FetchSpec<'_>) -> Result<Fetched, DeployError> {
    let _lock = crate::git_store::lock(&spec.store).map_err(|source| DeployError::Io {
        what: format!("lock the shared store of {}", spec.repo),
        source,
    })?;
    let store = crate::git_store::open(&spec.store).map_err(git_err(spec, "init"))?;
    let local_ref = format!("refs/remotes/origin/{}", spec.branch);

    let refused = Cell::new(false);
    let mut callbacks = credential_once(spec.credential, &refused);
    let cancel = spec.cancel.clone();
    let progress = spec.progress.clone();
    let mut reported_done = false;
    callbacks.transfer_progress(move |stats| {
        let total = stats.total_objects();
        if total > 0 && stats.received_objects() == total && !reported_done {
            reported_done = true;
            let _ = progress.send(format!(
                "received {total} objects ({} KiB)",
                stats.received_bytes() / 1024
            ));
        }
        !cancel.load(Ordering::Relaxed)
    });
    let mut options = FetchOptions::new();
    options
        .remote_callbacks(callbacks)
        .download_tags(AutotagOption::None)
        .prune(FetchPrune::Off)
        .update_fetchhead(false);
    let refspec = format!("+refs/heads/{}:{local_ref}", spec.branch);
    let mut remote = store
        .remote_anonymous(spec.url)
        .map_err(git_err(spec, "remote"))?;
    if let Err(err) = remote.fetch(&[refspec.as_str()], Some(&mut options), None) {
        if spec.cancel.load(Ordering::Relaxed) {
            return Err(DeployError::Cancelled);
        }
        if refused.get() || is_auth_error(&err) {
            return Err(DeployError::AuthRefused {
                repo: spec.repo.to_owned(),
            });
        }
        if matches!(
            err.class(),
            ErrorClass::Net | ErrorClass::Ssl | ErrorClass::Os
        ) {
            return Err(DeployError::GitUnreachable {
                repo: spec.repo.to_owned(),
                source: err,
            });
        }
        return Err(git_err(spec, "fetch")(err));
    }
    if spec.cancel.load(Ordering::Relaxed) {
        return Err(DeployError::Cancelled);
    }
    // What the server advertised, not the store's ref: a stale ref of a
    // branch that is gone must not stand in for it (the ref stays, as a
    // "have" for later fetches).
    let wanted = format!("refs/heads/{}", spec.branch);
    let tip = remote
        .list()
        .map_err(git_err(spec, "fetch"))?
        .iter()
        .find(|head| head.name() == wanted)
        .map(|head| head.oid());
    let Some(tip) = tip else {
        return Err(DeployError::BranchMissing {
            branch: spec.branch.to_owned(),
            repo: spec.repo.to_owned(),
        });
    };
    let stats = remote.stats();
    Ok(Fetched {
        commit: tip.to_string(),
        received_objects: stats.received_objects(),
        received_bytes: stats.received_bytes(),
    })
}

/// The commit to check out when a request names one: `wanted` itself if it
/// is `head` (the branch's fetched head) or an ancestor of it, looked up in
/// the store after the fetch. Anything else (unknown here, or on another
/// branch only) is refused, so nothing gets built from outside the branch.
pub fn on_branch(spec: &FetchSpec<'_>, head: &str, wanted: &str) -> Result<String, DeployError> {
    let not_on_branch = || DeployError::CommitNotOnBranch {
        commit: wanted.to_owned(),
        branch: spec.branch.to_owned(),
        head: head.to_owned(),
    };
    if wanted == head {
        return Ok(head.to_owned());
    }
    let store = crate::git_store::open(&spec.store).map_err(git_err(spec, "init"))?;
    let head_oid = git2::Oid::from_str(head).map_err(git_err(spec, "fetch"))?;
    // A SHA-256 id (accepted by the control plane) never parses in a
    // SHA-1 store: it cannot be on the branch either.
    let Ok(wanted_oid) = git2::Oid::from_str(wanted) else {
        return Err(not_on_branch());
    };
    if store.find_commit(wanted_oid).is_err() {
        return Err(not_on_branch());
    }
    match store.graph_descendant_of(head_oid, wanted_oid) {
        Ok(true) => Ok(wanted.to_owned()),
        Ok(false) => Err(not_on_branch()),
        Err(err) => Err(git_err(spec, "history walk")(err)),
    }
}

/// Checks `commit` (already in the store) out into the worktree: forced,
/// untracked files removed, HEAD detached.
pub fn checkout(spec: &FetchSpec<'_>, commit: &str) -> Result<(), DeployError> {
    for dir in [&spec.worktree, &spec.gitdir] {
        std::fs::create_dir_all(dir).map_err(|source| DeployError::Io {
            what: format!("create the worktree of {}", spec.repo),
            source,
        })?;
    }
    let repository =
        open_or_init(&spec.worktree, &spec.gitdir, &spec.store).map_err(git_err(spec, "init"))?;
    let oid = git2::Oid::from_str(commit).map_err(git_err(spec, "checkout"))?;
    let commit = repository
        .find_commit(oid)
        .map_err(git_err(spec, "checkout"))?;
    repository
        .reference(
            &format!("refs/remotes/origin/{}", spec.branch),
            oid,
            true,
            "sdp: fetched into the shared store",
        )
        .map_err(git_err(spec, "checkout"))?;
    let mut checkout = CheckoutBuilder::new();
    checkout.force().remove_untracked(true);
    repository
        .checkout_tree(commit.as_object(), Some(&mut checkout))
        .map_err(git_err(spec, "checkout"))?;
    repository
        .set_head_detached(commit.id())
        .map_err(git_err(spec, "checkout"))?;
    // No commit can hold a `.git` entry, and checkout leaves one alone: if
    // anything planted one (hooks, core.fsmonitor), remove it so no tool run
    // in the tree (go, composer) picks it up as a repository.
    remove_planted_git_dir(&spec.worktree).map_err(git_err(spec, "checkout"))?;
    Ok(())
}

fn remove_planted_git_dir(worktree: &Path) -> Result<(), git2::Error> {
    let planted = worktree.join(".git");
    let removed = match std::fs::symlink_metadata(&planted) {
        Err(_) => return Ok(()),
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&planted),
        Ok(_) => std::fs::remove_file(&planted),
    };
    removed.map_err(|e| git2::Error::from_str(&format!("cannot remove a planted .git: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schemes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn remote_urls() {
        let https = schemes(&["https"]);
        assert!(check_remote_url("https://bitbucket.example/scm/x/users.git", &https).is_ok());
        assert!(check_remote_url("HTTPS://host/x.git", &https).is_ok());
        let err = check_remote_url("HTTP://host/x.git", &https).expect_err("http refused");
        assert_eq!(
            err,
            RemoteRefused::Scheme {
                scheme: "http".into(),
                allowed: https.clone()
            }
        );
        assert_eq!(
            err.to_string(),
            "its remote uses the scheme 'http'; allowed: https"
        );
        let err = check_remote_url("https://jo:hunter2@host/x.git", &https).expect_err("userinfo");
        assert_eq!(err, RemoteRefused::Credentials);
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert_eq!(
            check_remote_url("git@host:x.git", &https),
            Err(RemoteRefused::NoScheme)
        );
        assert_eq!(
            check_remote_url("/srv/x.git", &https),
            Err(RemoteRefused::NoScheme)
        );
        assert!(matches!(
            check_remote_url("file:///srv/x.git", &https),
            Err(RemoteRefused::Scheme { .. })
        ));
        assert_eq!(
            check_remote_url("https:///x.git", &https),
            Err(RemoteRefused::NoHost)
        );
        assert!(check_remote_url("http://127.0.0.1:9/x.git", &schemes(&["https", "http"])).is_ok());
    }

    /// A repo that cannot be deployed is a bad request naming the repo
    /// and why, never its path or URL.
    #[test]
    fn refused_repos_are_bad_requests_without_the_url() {
        let dir = tempfile::tempdir().expect("tempdir");
        let https = schemes(&["https"]);
        assert_eq!(
            origin_url(dir.path(), "users", &https),
            Err(RepoRefused::NotHere {
                repo: "users".into()
            })
        );
        let repository = Repository::init(dir.path().join("users")).expect("init");
        assert_eq!(
            origin_url(dir.path(), "users", &https),
            Err(RepoRefused::NoOrigin {
                repo: "users".into()
            })
        );
        repository
            .remote("origin", "http://jo:hunter2@host/users.git")
            .expect("remote");
        let refused = origin_url(dir.path(), "users", &https).expect_err("http refused");
        let reply = RpcError::from(refused.clone());
        assert_eq!(reply.code, RpcErrorCode::BadRequest);
        assert_eq!(
            reply.message,
            "repo 'users' cannot be deployed: its remote uses the scheme 'http'; allowed: https"
        );
        assert_eq!(reply.message, refused.to_string());
        assert!(!reply.message.contains("hunter2"));
        assert!(!reply.message.contains(&dir.path().display().to_string()));
    }

    #[test]
    fn worktree_has_no_dotgit_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let worktree = dir.path().join("wt/sb/users");
        let gitdir = dir.path().join("gitdirs/sb/users.git");
        let store = crate::git_store::path(dir.path(), "users");
        std::fs::create_dir_all(&worktree).expect("mkdir");
        let repo = open_or_init(&worktree, &gitdir, &store).expect("init");
        assert_eq!(
            repo.workdir().map(Path::to_path_buf),
            Some(worktree.clone())
        );
        drop(repo);
        assert!(!worktree.join(".git").exists());
        let repo = open_or_init(&worktree, &gitdir, &store).expect("reopen");
        assert_eq!(
            repo.workdir().map(Path::to_path_buf),
            Some(worktree.clone())
        );
        assert!(!worktree.join(".git").exists());
    }
}
