//! The sandbox as every handler shows it ([`view`]): its services (the
//! latest deployment of each, or only planned by its template), each
//! service's `follow` and `pushed_head` and env keys, its gateway and
//! preview URLs, and on request its route table.

use std::collections::HashMap;

use sdp_bus::Status;
use serde::Serialize;

use super::{ApiError, AppState};
use crate::orchestrator::follow::BEHIND_NOTE;
use crate::routing::EffectiveRoute;
use crate::store::Sandbox;

/// A sandbox with what runs in it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SandboxView {
    #[serde(flatten)]
    sandbox: Sandbox,
    /// The environment it runs with: its own, else its template's.
    effective_environment: Option<String>,
    pub(super) services: Vec<ServiceView>,
    /// Where its gateway answers; the same for the sandbox's whole life.
    gateway_url: Option<String>,
    /// `http://<name>.<http.preview_domain>/`, if a preview domain is set.
    preview_url: Option<String>,
    /// The route table (on one sandbox, not in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    routes: Option<Vec<EffectiveRoute>>,
}

/// A service of the sandbox: its latest deployment, or only planned by
/// the template (no kind, status or deployment yet).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ServiceView {
    pub(super) repo: String,
    kind: Option<String>,
    branch: Option<String>,
    status: Option<Status>,
    pub(super) deployment_id: Option<String>,
    pub(super) commit: Option<String>,
    url: Option<String>,
    /// Redeployed when its branch (that of its newest deployment) is
    /// pushed to (`PUT /api/sandboxes/{name}/services/{repo}`).
    pub(super) follow: bool,
    /// A push it follows that was not deployed (no service credential).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) pushed_head: Option<PushedHead>,
    /// The keys of the sandbox's own env for it
    /// (`/api/sandboxes/{name}/services/{repo}/env`); values are shown
    /// there, to the owner and admins.
    pub(super) env_keys: Vec<String>,
}

/// A pushed commit of the followed branch that is not deployed: no
/// service credential is configured, so it waits for a deploy by hand.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PushedHead {
    /// The pushed commit.
    pub commit: String,
    /// When the push came.
    pub at: String,
    /// `behind: deploy by hand`.
    pub note: String,
}

/// Sets `follow` and `pushed_head` on a sandbox's services. A recorded
/// push shows until a deployment of the service made after it, or one
/// that runs its commit.
fn mark(state: &AppState, sandbox: &str, services: &mut [ServiceView]) -> Result<(), ApiError> {
    let follows: HashMap<String, crate::store::Follow> = state
        .store
        .follows(sandbox)?
        .into_iter()
        .map(|f| (f.repo.clone(), f))
        .collect();
    for service in services {
        let Some(follow) = follows.get(&service.repo) else {
            continue;
        };
        service.follow = follow.follow;
        let Some((commit, at)) = &follow.pushed else {
            continue;
        };
        if service.commit.as_deref() == Some(commit.as_str()) {
            continue;
        }
        let deployed_since = match &service.deployment_id {
            Some(id) => state
                .store
                .deployment(id)?
                .is_some_and(|d| d.created_at > *at),
            None => false,
        };
        if !deployed_since {
            service.pushed_head = Some(PushedHead {
                commit: commit.clone(),
                at: at.clone(),
                note: BEHIND_NOTE.to_owned(),
            });
        }
    }
    Ok(())
}

pub(super) async fn view(
    state: &AppState,
    sandbox: Sandbox,
    with_routes: bool,
) -> Result<SandboxView, ApiError> {
    let latest = state.store.latest_deployments(&sandbox.name)?;
    let template = match &sandbox.template {
        Some(name) => state.store.template(name)?,
        None => None,
    };
    let gateway_url = state.store.running_gateway_url(&sandbox.name)?;
    let preview_url =
        state.config.http.preview_domain.as_ref().map(|domain| {
            super::preview::url(domain, state.config.http.secure_cookies, &sandbox.name)
        });
    let mut services: Vec<ServiceView> = latest
        .into_iter()
        .map(|d| ServiceView {
            repo: d.repo,
            kind: Some(d.kind),
            branch: Some(d.branch),
            status: Some(d.status),
            deployment_id: Some(d.id),
            commit: d.commit,
            url: d.url,
            follow: false,
            pushed_head: None,
            env_keys: Vec::new(),
        })
        .collect();
    if let Some(template) = &template {
        let planned = template.gateway.iter().chain(template.services.iter());
        for planned in planned {
            if !services.iter().any(|s| s.repo == planned.repo) {
                services.push(ServiceView {
                    repo: planned.repo.clone(),
                    kind: None,
                    branch: Some(planned.branch.clone()),
                    status: None,
                    deployment_id: None,
                    commit: None,
                    url: None,
                    follow: false,
                    pushed_head: None,
                    env_keys: Vec::new(),
                });
            }
        }
    }
    services.sort_by(|a, b| a.repo.cmp(&b.repo));
    mark(state, &sandbox.name, &mut services)?;
    let mut env_keys = state.store.service_env_keys(&sandbox.name)?;
    for service in &mut services {
        service.env_keys = env_keys.remove(&service.repo).unwrap_or_default();
    }
    let routes = if with_routes {
        Some(state.orchestrator.route_table(&sandbox).await?.routes)
    } else {
        None
    };
    Ok(SandboxView {
        effective_environment: crate::routing::environment_name(&sandbox, template.as_ref()),
        sandbox,
        services,
        gateway_url,
        preview_url,
        routes,
    })
}
