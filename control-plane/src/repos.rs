//! What repos the agents hold (`agent.rpc.<kind>.list_repos`), cached
//! briefly, and their branches (`list_branches`, with the user's
//! credential).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sdp_bus::{
    BranchInfo, BranchList, GitCredential, ListBranches, ListRepos, RepoInfo, RepoList,
    ServiceSettings,
};

use crate::agent_client::{AgentCallError, AgentClient};

const CACHE_FOR: Duration = Duration::from_secs(30);
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// When the repos were listed, and what they were.
type CachedRepos = (Instant, Vec<RepoInfo>);

/// The repos the agents hold, listed over the bus and cached briefly.
#[derive(Clone)]
pub struct AgentRepos {
    agents: AgentClient,
    cache: Arc<Mutex<Option<CachedRepos>>>,
}

impl AgentRepos {
    pub fn new(agents: AgentClient) -> Self {
        Self {
            agents,
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
            match self
                .agents
                .rpc::<_, RepoList>(
                    kind,
                    sdp_bus::subject::LIST_REPOS,
                    &ListRepos {},
                    RPC_TIMEOUT,
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
    ) -> Result<Vec<BranchInfo>, AgentCallError> {
        let request = ListBranches {
            repo: repo.to_owned(),
            credential,
        };
        let list: BranchList = self
            .agents
            .rpc(kind, sdp_bus::subject::LIST_BRANCHES, &request, RPC_TIMEOUT)
            .await?;
        Ok(list.branches)
    }
}
