//! The sandbox as every handler shows it ([`view`]): its services (the
//! latest deployment of each, or only planned by its template), each
//! service's `autodeploy` (and its old name `follow`) and `pushed_head` and env keys, its gateway and
//! preview URLs, and on request its route table.

use std::collections::HashMap;

use sdp_api::{PushedHead, SandboxView, ServiceView};

use super::{ApiError, AppState};
use crate::orchestrator::autodeploy::BEHIND_NOTE;
use crate::store::Sandbox;

/// Sets `autodeploy` and `pushed_head` on a sandbox's services. A recorded
/// push shows until a deployment of the service made after it, or one
/// that runs its commit.
fn mark(state: &AppState, sandbox: &str, services: &mut [ServiceView]) -> Result<(), ApiError> {
    let rows: HashMap<String, crate::store::Autodeploy> = state
        .store
        .autodeploys(sandbox)?
        .into_iter()
        .map(|row| (row.repo.clone(), row))
        .collect();
    for service in services {
        let Some(row) = rows.get(&service.repo) else {
            continue;
        };
        service.set_autodeploy(row.on);
        let Some((commit, at)) = &row.pushed else {
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
                at: crate::store::columns::timestamp_text(*at),
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
            deployment_id: Some(d.id.into()),
            commit: d.commit,
            url: d.url,
            autodeploy: false,
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
                    autodeploy: false,
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
