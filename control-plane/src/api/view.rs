//! The sandbox as every handler shows it ([`view`]): its services (the
//! latest deployment of each, or only planned by its template), each
//! service's `autodeploy` (and its old name `follow`) and `pushed_head` and env keys, its gateway and
//! preview URLs, and on request its route table. A page of the list is
//! built from reads of the whole page ([`views`]), not per sandbox.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use sdp_api::{PushedHead, SandboxView, ServiceView};

use super::{ApiError, AppState};
use crate::orchestrator::autodeploy::BEHIND_NOTE;
use crate::routing::EffectiveRoute;
use crate::store::{Autodeploy, Deployment, Sandbox, SandboxRows, Template};

/// Sets `autodeploy` and `pushed_head` on a sandbox's services. A recorded
/// push shows until a deployment of the service made after it, or one
/// that runs its commit. `latest` is the newest deployment of each
/// service: the one a service's `deployment_id` names.
fn mark(autodeploys: &[Autodeploy], latest: &[Deployment], services: &mut [ServiceView]) {
    let created: HashMap<&str, DateTime<Utc>> = latest
        .iter()
        .map(|d| (d.id.as_str(), d.created_at))
        .collect();
    for service in services {
        let Some(row) = autodeploys.iter().find(|row| row.repo == service.repo) else {
            continue;
        };
        service.set_autodeploy(row.on);
        let Some((commit, at)) = &row.pushed else {
            continue;
        };
        if service.commit.as_deref() == Some(commit.as_str()) {
            continue;
        }
        let deployed_since = service
            .deployment_id
            .as_ref()
            .and_then(|id| created.get(id.as_str()))
            .is_some_and(|created_at| created_at > at);
        if !deployed_since {
            service.pushed_head = Some(PushedHead {
                commit: commit.clone(),
                at: crate::store::columns::timestamp_text(*at),
                note: BEHIND_NOTE.to_owned(),
            });
        }
    }
}

/// One sandbox's view, with its route table when `with_routes`.
pub(super) async fn view(
    state: &AppState,
    sandbox: Sandbox,
    with_routes: bool,
) -> Result<SandboxView, ApiError> {
    let rows = state
        .store
        .sandbox_rows(&sandbox.name, &sandbox.name)?
        .remove(&sandbox.name)
        .unwrap_or_default();
    let template = match &sandbox.template {
        Some(name) => state.store.template(name)?,
        None => None,
    };
    let routes = if with_routes {
        Some(state.orchestrator.route_table(&sandbox).await?.routes)
    } else {
        None
    };
    Ok(build(state, sandbox, template.as_ref(), rows, routes))
}

/// The views of a page of sandboxes (in name order, as the list reads
/// them), without route tables: what they show is read for the whole
/// page at once ([`crate::store::Store::sandbox_rows`]) and each template
/// once, not per sandbox.
pub(super) fn views(
    state: &AppState,
    sandboxes: Vec<Sandbox>,
) -> Result<Vec<SandboxView>, ApiError> {
    let (Some(first), Some(last)) = (sandboxes.first(), sandboxes.last()) else {
        return Ok(Vec::new());
    };
    let mut rows = state.store.sandbox_rows(&first.name, &last.name)?;
    let mut templates: HashMap<String, Option<Template>> = HashMap::new();
    let mut views = Vec::with_capacity(sandboxes.len());
    for sandbox in sandboxes {
        if let Some(name) = &sandbox.template
            && !templates.contains_key(name)
        {
            templates.insert(name.clone(), state.store.template(name)?);
        }
        let template = sandbox
            .template
            .as_ref()
            .and_then(|name| templates.get(name))
            .and_then(Option::as_ref);
        let own = rows.remove(&sandbox.name).unwrap_or_default();
        views.push(build(state, sandbox, template, own, None));
    }
    Ok(views)
}

/// A sandbox's view from what was read of it.
fn build(
    state: &AppState,
    sandbox: Sandbox,
    template: Option<&Template>,
    rows: SandboxRows,
    routes: Option<Vec<EffectiveRoute>>,
) -> SandboxView {
    let SandboxRows {
        latest,
        gateway_url,
        autodeploys,
        mut env_keys,
    } = rows;
    let preview_url =
        state.config.http.preview_domain.as_ref().map(|domain| {
            super::preview::url(domain, state.config.http.secure_cookies, &sandbox.name)
        });
    let mut services: Vec<ServiceView> = latest
        .iter()
        .map(|d| ServiceView {
            repo: d.repo.clone(),
            kind: Some(d.kind.clone()),
            branch: Some(d.branch.clone()),
            status: Some(d.status),
            deployment_id: Some(d.id.clone().into()),
            commit: d.commit.clone(),
            url: d.url.clone(),
            autodeploy: false,
            follow: false,
            pushed_head: None,
            env_keys: Vec::new(),
        })
        .collect();
    if let Some(template) = template {
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
    mark(&autodeploys, &latest, &mut services);
    for service in &mut services {
        service.env_keys = env_keys.remove(&service.repo).unwrap_or_default();
    }
    SandboxView {
        effective_environment: crate::routing::environment_name(&sandbox, template),
        sandbox,
        services,
        gateway_url,
        preview_url,
        routes,
    }
}
