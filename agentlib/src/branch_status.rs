//! `agent.rpc.<kind>.branch_status`: how many commits a branch has moved
//! past the commit deployed from it. The heads come from the remote (like
//! `list_branches`, with the requester's credential); for a branch whose
//! head differs from the deployed commit, the branch is fetched into the
//! repo's shared store ([`crate::git_store`], under its locks, as a deploy
//! fetches) and counted with `graph_ahead_behind`. What cannot be counted
//! (branch gone, rewritten, fetch failed or too slow) answers `behind:
//! None` with the reason; only bad input fails the whole request.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sdp_bus::{
    BranchCommit, BranchInfo, BranchMove, BranchStatus, BranchStatusList, GitCredential, RpcError,
    RpcErrorCode,
};

use crate::reply::bad_request;
use crate::state::Agent;

/// Listing the remote's heads.
const LIST_TIMEOUT: Duration = Duration::from_secs(15);
/// Fetching and counting one branch. Both together stay under the control
/// plane's 40 s, so it gets the heads even when a count runs out of time.
const COUNT_TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) async fn branch_status(
    agent: &Agent,
    request: BranchStatus,
) -> Result<BranchStatusList, RpcError> {
    sdp_bus::validate::repo(&request.repo).map_err(|e| bad_request(e.to_string()))?;
    if request.branches.len() > 64 {
        return Err(bad_request("at most 64 branches per request"));
    }
    for asked in &request.branches {
        sdp_bus::validate::branch(&asked.branch).map_err(|e| bad_request(e.to_string()))?;
        if git2::Oid::from_str(&asked.commit).is_err() || asked.commit.len() != 40 {
            return Err(bad_request("a commit must be 40 hex digits"));
        }
    }
    let repos_dir = agent.config.repos_dir.clone();
    let schemes = agent.config.git.allowed_schemes.clone();
    let repo = request.repo.clone();
    let url =
        tokio::task::spawn_blocking(move || crate::git::origin_url(&repos_dir, &repo, &schemes))
            .await
            .map_err(|e| internal(format!("checking the repo failed: {e}")))?
            .map_err(RpcError::from)?;
    let heads = {
        let (url, credential) = (url.clone(), request.credential.clone());
        let list =
            tokio::task::spawn_blocking(move || crate::git::list_branches(&url, &credential));
        match tokio::time::timeout(LIST_TIMEOUT, list).await {
            Ok(Ok(result)) => result?,
            Ok(Err(err)) => return Err(internal(format!("listing the branches failed: {err}"))),
            Err(_) => {
                return Err(RpcError::new(
                    RpcErrorCode::Unavailable,
                    "the git server did not answer in time",
                ));
            }
        }
    };
    let store = crate::git_store::path(&agent.config.data_dir, &request.repo);
    let mut branches = Vec::with_capacity(request.branches.len());
    for asked in request.branches {
        let moved = match head_of(&heads, &asked.branch) {
            None => BranchMove {
                branch: asked.branch,
                commit: asked.commit,
                head: None,
                behind: None,
                reason: Some("the branch no longer exists on the remote".into()),
            },
            Some(head) if head == asked.commit => BranchMove {
                branch: asked.branch,
                commit: asked.commit,
                head: Some(head),
                behind: Some(0),
                reason: None,
            },
            Some(head) => {
                let count = Count {
                    repo: request.repo.clone(),
                    url: url.clone(),
                    store: store.clone(),
                    credential: request.credential.clone(),
                    asked: asked.clone(),
                    head,
                };
                count_moved(agent, count).await
            }
        };
        branches.push(moved);
    }
    Ok(BranchStatusList { branches })
}

fn head_of(heads: &[BranchInfo], branch: &str) -> Option<String> {
    heads
        .iter()
        .find(|b| b.name == branch)
        .map(|b| b.commit.clone())
}

fn internal(message: String) -> RpcError {
    RpcError::new(RpcErrorCode::Internal, message)
}

/// One branch to fetch and count.
struct Count {
    repo: String,
    url: String,
    store: PathBuf,
    credential: GitCredential,
    asked: BranchCommit,
    /// The head the remote listed.
    head: String,
}

/// Fetches and counts under the repo's store lock (the same order as a
/// deploy: the async per-repo lock, then the store's flock), bounded by
/// [`COUNT_TIMEOUT`]; a failure becomes the entry's `reason`.
async fn count_moved(agent: &Agent, count: Count) -> BranchMove {
    let cancel = Arc::new(AtomicBool::new(false));
    let (branch, commit, listed) = (
        count.asked.branch.clone(),
        count.asked.commit.clone(),
        count.head.clone(),
    );
    let work = {
        let store_lock = agent.store_lock(&count.repo);
        let cancel = cancel.clone();
        async move {
            let guard = store_lock.lock_owned().await;
            tokio::task::spawn_blocking(move || {
                let _guard = guard;
                fetch_and_count(&count, &cancel)
            })
            .await
            .unwrap_or_else(|e| Err(format!("the count failed: {e}")))
        }
    };
    let result = match tokio::time::timeout(COUNT_TIMEOUT, work).await {
        Ok(result) => result,
        Err(_) => {
            cancel.store(true, Ordering::Relaxed);
            Err("fetching the branch to count its commits took too long".to_owned())
        }
    };
    match result {
        Ok(counted) => BranchMove {
            branch,
            commit,
            head: Some(counted.head),
            behind: counted.behind,
            reason: counted.reason,
        },
        Err(reason) => {
            tracing::info!(%branch, %reason, "cannot count a branch's commits");
            BranchMove {
                branch,
                commit,
                head: Some(listed),
                behind: None,
                reason: Some(reason),
            }
        }
    }
}

struct Counted {
    head: String,
    behind: Option<u32>,
    reason: Option<String>,
}

/// Blocking: makes sure the store has the head (fetching the branch with
/// the credential if not), then counts the commits of the head that the
/// deployed commit lacks.
fn fetch_and_count(count: &Count, cancel: &Arc<AtomicBool>) -> Result<Counted, String> {
    let mut head = count.head.clone();
    if !has_commit(&count.store, &head) {
        // Only the store's fields are read by `fetch_to_store`; the
        // worktree fields belong to checkouts, which this never does.
        let (progress, _) = tokio::sync::mpsc::unbounded_channel();
        let spec = crate::git::FetchSpec {
            repo: &count.repo,
            url: &count.url,
            branch: &count.asked.branch,
            credential: &count.credential,
            worktree: PathBuf::new(),
            gitdir: PathBuf::new(),
            store: count.store.clone(),
            cancel: cancel.clone(),
            progress,
        };
        let fetched = crate::git::fetch_to_store(&spec).map_err(|e| e.user_message())?;
        head = fetched.commit;
    }
    let repo = crate::git_store::open(&count.store).map_err(|e| e.message().to_owned())?;
    let head_oid = git2::Oid::from_str(&head).map_err(|e| e.message().to_owned())?;
    let deployed = git2::Oid::from_str(&count.asked.commit).map_err(|e| e.message().to_owned())?;
    if repo.find_commit(deployed).is_err() {
        return Ok(Counted {
            head,
            behind: None,
            reason: Some(
                "the deployed commit is not on the branch any more (rewritten), and this agent does not have it"
                    .into(),
            ),
        });
    }
    let (ahead, lacking) = repo
        .graph_ahead_behind(head_oid, deployed)
        .map_err(|e| e.message().to_owned())?;
    let behind = u32::try_from(ahead).unwrap_or(u32::MAX);
    let reason = (lacking > 0).then(|| {
        format!("the branch was rewritten: {lacking} deployed commit(s) are no longer on it")
    });
    Ok(Counted {
        head,
        behind: Some(behind),
        reason,
    })
}

fn has_commit(store: &Path, commit: &str) -> bool {
    if !store.join("HEAD").is_file() {
        return false;
    }
    let Ok(oid) = git2::Oid::from_str(commit) else {
        return false;
    };
    git2::Repository::open_bare(store).is_ok_and(|repo| repo.find_commit(oid).is_ok())
}
