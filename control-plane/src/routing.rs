//! A sandbox's effective route table (DESIGN §5): for every service, a
//! manual route if set, else the sandbox's running deployment, else the
//! environment's (baseline) URL under the service's route env key. The
//! gateway runs with environment ⊕ routes as its env.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sdp_bus::{Route, RouteSource, ServiceSettings};
use serde::Serialize;

use crate::store::{Sandbox, Store, StoreError, Template};

/// One line of the route table, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EffectiveRoute {
    pub service: String,
    pub target: String,
    pub source: RouteSource,
    /// The gateway env var that carries `target`.
    pub env_key: String,
}

/// What a gateway of the sandbox runs with.
pub struct GatewayInputs {
    pub env: BTreeMap<String, String>,
    pub routes: Vec<Route>,
}

pub struct RouteTable {
    pub routes: Vec<EffectiveRoute>,
    pub environment: BTreeMap<String, String>,
}

impl RouteTable {
    pub fn gateway_inputs(&self) -> GatewayInputs {
        let mut env = self.environment.clone();
        for route in &self.routes {
            env.insert(route.env_key.clone(), route.target.clone());
        }
        GatewayInputs {
            env,
            routes: self
                .routes
                .iter()
                .map(|r| Route {
                    service: r.service.clone(),
                    target: r.target.clone(),
                    source: r.source,
                })
                .collect(),
        }
    }
}

/// The environment a sandbox runs with: its own, else its template's.
pub fn environment_name(sandbox: &Sandbox, template: Option<&Template>) -> Option<String> {
    sandbox
        .environment
        .clone()
        .or_else(|| template.and_then(|t| t.environment.clone()))
}

/// Computes the route table of `sandbox`. `settings` holds what agents
/// reported of each repo's `sdp.toml` (route env keys).
pub fn route_table(
    store: &Store,
    sandbox: &Sandbox,
    settings: &HashMap<String, ServiceSettings>,
) -> Result<RouteTable, StoreError> {
    let template = match &sandbox.template {
        Some(name) => store.template(name)?,
        None => None,
    };
    let environment = match environment_name(sandbox, template.as_ref()) {
        Some(name) => store
            .environment(&name)?
            .map(|e| e.vars)
            .unwrap_or_default(),
        None => BTreeMap::new(),
    };
    let stored = store.stored_routes(&sandbox.name)?;
    let gateway_repo = template
        .as_ref()
        .and_then(|t| t.gateway.as_ref())
        .map(|g| g.repo.clone());

    let mut services: BTreeSet<String> = BTreeSet::new();
    if let Some(template) = &template {
        services.extend(template.services.iter().map(|s| s.repo.clone()));
    }
    services.extend(stored.iter().map(|r| r.service.clone()));
    for deployment in store.latest_deployments(&sandbox.name)? {
        if deployment.kind != sdp_bus::subject::KIND_GATEWAY
            && Some(&deployment.repo) != gateway_repo.as_ref()
        {
            services.insert(deployment.repo);
        }
    }

    let mut routes = Vec::new();
    for service in services {
        let override_key = template
            .as_ref()
            .and_then(|t| t.services.iter().find(|s| s.repo == service))
            .and_then(|s| s.overrides.route_env.clone());
        let env_key = override_key.unwrap_or_else(|| {
            settings
                .get(&service)
                .map(|s| s.route_env_for(&service))
                .unwrap_or_else(|| sdp_bus::default_route_env(&service))
        });
        let pick = |source: RouteSource| {
            stored
                .iter()
                .find(|r| r.service == service && r.source == source)
                .map(|r| r.target.clone())
        };
        let (target, source) = if let Some(target) = pick(RouteSource::Manual) {
            (target, RouteSource::Manual)
        } else if let Some(target) = pick(RouteSource::Sandbox) {
            (target, RouteSource::Sandbox)
        } else if let Some(target) = environment.get(&env_key) {
            (target.clone(), RouteSource::Environment)
        } else {
            continue; // nowhere to send it
        };
        routes.push(EffectiveRoute {
            service,
            target,
            source,
            env_key,
        });
    }
    Ok(RouteTable {
        routes,
        environment,
    })
}
