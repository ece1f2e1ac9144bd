//! What repos the agents hold (`agent.rpc.<kind>.list_repos`), cached
//! briefly, and their branches (`list_branches`, with the user's
//! credential).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sdp_bus::{
    BranchInfo, BranchList, GitCredential, ListBranches, ListRepos, Reply, RepoInfo, RepoList,
    RpcError, RpcErrorCode, ServiceSettings, decode, encode,
};

const CACHE_FOR: Duration = Duration::from_secs(30);
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// When the repos were listed, and what they were.
type CachedRepos = (Instant, Vec<RepoInfo>);

#[derive(Clone)]
pub struct RepoCatalog {
    nats: async_nats::Client,
    cache: Arc<Mutex<Option<CachedRepos>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("no {kind} agent is online to answer")]
    NoAgent { kind: String },
    #[error("the agent answered: {0}")]
    Agent(RpcError),
    #[error("the request to the agent failed: {0}")]
    Request(String),
}

async fn rpc<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
    nats: &async_nats::Client,
    kind: &str,
    method: &str,
    request: &Req,
) -> Result<Resp, RepoError> {
    let subject = sdp_bus::subject::agent_rpc(kind, method);
    let pending = nats.request(subject, encode(request).into());
    let reply = match tokio::time::timeout(RPC_TIMEOUT, pending).await {
        Err(_) => {
            return Err(RepoError::NoAgent {
                kind: kind.to_owned(),
            });
        }
        Ok(Err(err)) => {
            return Err(match err.kind() {
                async_nats::RequestErrorKind::NoResponders
                | async_nats::RequestErrorKind::TimedOut => RepoError::NoAgent {
                    kind: kind.to_owned(),
                },
                _ => RepoError::Request(err.to_string()),
            });
        }
        Ok(Ok(reply)) => reply,
    };
    decode::<Reply<Resp>>(&reply.payload)
        .map_err(|e| RepoError::Request(format!("malformed reply: {e}")))?
        .into_result()
        .map_err(RepoError::Agent)
}

impl RepoCatalog {
    pub fn new(nats: async_nats::Client) -> Self {
        Self {
            nats,
            cache: Arc::default(),
        }
    }

    /// Every repo of every kind in `kinds`; kinds without an agent are
    /// skipped. Cached for a few seconds unless `fresh`.
    pub async fn list(&self, kinds: &[String], fresh: bool) -> Vec<RepoInfo> {
        if !fresh
            && let Some((at, repos)) = &*self.cache.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < CACHE_FOR
        {
            return repos.clone();
        }
        let mut repos = Vec::new();
        for kind in kinds {
            match rpc::<_, RepoList>(
                &self.nats,
                kind,
                sdp_bus::subject::LIST_REPOS,
                &ListRepos {},
            )
            .await
            {
                Ok(list) => repos.extend(list.repos),
                Err(err) => tracing::debug!(kind, error = %err, "list_repos"),
            }
        }
        repos.sort_by(|a, b| a.name.cmp(&b.name));
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), repos.clone()));
        repos
    }

    /// Each repo's settings, by name, from the cache (filled if empty).
    pub async fn settings(&self, kinds: &[String]) -> HashMap<String, ServiceSettings> {
        self.list(kinds, false)
            .await
            .into_iter()
            .map(|r| (r.name, r.settings))
            .collect()
    }

    pub async fn branches(
        &self,
        kind: &str,
        repo: &str,
        credential: GitCredential,
    ) -> Result<Vec<BranchInfo>, RepoError> {
        let request = ListBranches {
            repo: repo.to_owned(),
            credential,
        };
        let list: BranchList =
            rpc(&self.nats, kind, sdp_bus::subject::LIST_BRANCHES, &request).await?;
        Ok(list.branches)
    }
}

impl RepoError {
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, RepoError::Agent(e) if e.code == RpcErrorCode::Unauthorized)
    }
}
