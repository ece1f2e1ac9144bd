//! Staleness of a sandbox's running services: has each one's branch moved
//! since the deployed commit, and by how many commits. Computed on request
//! (nothing stored): the newest running deployment of each repo, then one
//! `agent.rpc.<kind>.branch_status` per repo with the viewer's credential
//! (the agent lists the heads and counts), all at once. An agent without
//! `branch_status` (older) is asked `list_branches` instead: the head is
//! known, the count is not (`behind: null`).

use std::collections::HashMap;
use std::time::Duration;

use sdp_bus::{
    BranchCommit, BranchList, BranchMove, BranchStatus, BranchStatusList, GitCredential,
    ListBranches, subject,
};

pub use sdp_api::{ServiceStaleness, StalenessState};

use crate::agent_client::{AgentCallError, AgentClient};
use crate::store::{Deployment, Store, StoreError};

/// The agent lists the heads (up to 15 s) and may fetch to count (20 s).
const BRANCH_STATUS_TIMEOUT: Duration = Duration::from_secs(40);
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// The staleness of every running service of `sandbox`, asking the agents
/// with `credential`.
pub async fn staleness(
    store: &Store,
    agents: &AgentClient,
    sandbox: &str,
    credential: &GitCredential,
) -> Result<Vec<ServiceStaleness>, StoreError> {
    let services = store.running_deployments(sandbox)?;
    let checks = services
        .into_iter()
        .map(|deployment| service_staleness(agents, deployment, credential.clone()));
    Ok(futures::future::join_all(checks).await)
}

async fn service_staleness(
    agents: &AgentClient,
    deployment: Deployment,
    credential: GitCredential,
) -> ServiceStaleness {
    let mut view = ServiceStaleness {
        repo: deployment.repo.clone(),
        branch: deployment.branch.clone(),
        deployment_id: deployment.id.to_string(),
        deployed_commit: deployment.commit.clone(),
        head: None,
        behind: None,
        state: StalenessState::Unknown,
        reason: None,
    };
    let Some(commit) = deployment.commit else {
        view.reason = Some("the deployment recorded no commit".into());
        return view;
    };
    let request = BranchStatus {
        repo: deployment.repo.clone(),
        credential: credential.clone(),
        branches: vec![BranchCommit {
            branch: deployment.branch.clone(),
            commit: commit.clone(),
        }],
    };
    let kind = deployment.kind.as_str();
    let answer: Result<BranchStatusList, AgentCallError> = agents
        .rpc(
            kind,
            subject::BRANCH_STATUS,
            &request,
            BRANCH_STATUS_TIMEOUT,
        )
        .await;
    let moved = match answer {
        Ok(list) => list.branches.into_iter().next(),
        Err(AgentCallError::NoResponders { .. } | AgentCallError::NotSupported { .. }) => {
            // No agent of the kind serves branch_status: heads only.
            match heads_only(agents, kind, &deployment.repo, credential).await {
                Ok(heads) => Some(BranchMove {
                    branch: deployment.branch.clone(),
                    commit: commit.clone(),
                    head: heads.get(&deployment.branch).cloned(),
                    behind: None,
                    reason: Some(
                        "the agents of this kind cannot count commits (an older version)".into(),
                    ),
                }),
                Err(err) => {
                    view.reason = Some(call_reason(&err, kind, &deployment.repo));
                    return view;
                }
            }
        }
        Err(err) => {
            view.reason = Some(call_reason(&err, kind, &deployment.repo));
            return view;
        }
    };
    let Some(moved) = moved else {
        view.reason = Some("the agent did not answer for this branch".into());
        return view;
    };
    judge(view, &commit, moved)
}

/// The state from the agent's answer about the deployed commit.
fn judge(mut view: ServiceStaleness, commit: &str, moved: BranchMove) -> ServiceStaleness {
    view.reason = moved.reason;
    view.head = moved.head;
    view.behind = moved.behind;
    view.state = match view.head.as_deref() {
        None => {
            if view.reason.is_none() {
                view.reason = Some("the branch no longer exists on the remote".into());
            }
            StalenessState::Unknown
        }
        Some(head) if head == commit => {
            view.behind = Some(0);
            StalenessState::UpToDate
        }
        Some(_) => StalenessState::Behind,
    };
    view
}

async fn heads_only(
    agents: &AgentClient,
    kind: &str,
    repo: &str,
    credential: GitCredential,
) -> Result<HashMap<String, String>, AgentCallError> {
    let request = ListBranches {
        repo: repo.to_owned(),
        credential,
    };
    let list: BranchList = agents
        .rpc(kind, subject::LIST_BRANCHES, &request, LIST_TIMEOUT)
        .await?;
    Ok(list
        .branches
        .into_iter()
        .map(|b| (b.name, b.commit))
        .collect())
}

/// Why the agents could not say, for people (never the credential).
fn call_reason(err: &AgentCallError, kind: &str, repo: &str) -> String {
    match err {
        _ if err.is_unauthorized() => {
            format!("the git server refused your credential for {repo}")
        }
        AgentCallError::NoResponders { .. } => format!("no {kind} agent is online"),
        AgentCallError::NotSupported { .. } => {
            format!(
                "staleness is not supported by the {kind} agents (they serve neither branch_status nor list_branches)"
            )
        }
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> ServiceStaleness {
        ServiceStaleness {
            repo: "users".into(),
            branch: "feature/x".into(),
            deployment_id: "d1".into(),
            deployed_commit: Some("a".repeat(40)),
            head: None,
            behind: None,
            state: StalenessState::Unknown,
            reason: None,
        }
    }

    fn moved(head: Option<&str>, behind: Option<u32>) -> BranchMove {
        BranchMove {
            branch: "feature/x".into(),
            commit: "a".repeat(40),
            head: head.map(str::to_owned),
            behind,
            reason: None,
        }
    }

    #[test]
    fn states() {
        let commit = "a".repeat(40);
        let other = "b".repeat(40);
        let same = judge(view(), &commit, moved(Some(&commit), Some(0)));
        assert_eq!(
            (same.state, same.behind),
            (StalenessState::UpToDate, Some(0))
        );
        let one = judge(view(), &commit, moved(Some(&other), Some(1)));
        assert_eq!((one.state, one.behind), (StalenessState::Behind, Some(1)));
        assert_eq!(one.head.as_deref(), Some(other.as_str()));
        let uncounted = judge(view(), &commit, moved(Some(&other), None));
        assert_eq!(
            (uncounted.state, uncounted.behind),
            (StalenessState::Behind, None)
        );
        let gone = judge(view(), &commit, moved(None, None));
        assert_eq!(gone.state, StalenessState::Unknown);
        assert!(gone.reason.is_some());
    }
}
