//! A sandbox's effective route table: for every service, a
//! manual route if set, else the sandbox's running deployment, else the
//! environment's (baseline) URL under the service's route env key. The
//! gateway runs with environment ⊕ routes as its env. An environment's
//! secret variables go into that env too, but never make a route: a route
//! target is shown to anyone who reads the sandbox.
//!
//! Every other service runs with the environment (plain and secret
//! variables) but not the route table: the environment's route keys (e.g.
//! `USERS_URL`) hold the baseline URLs, and a service reaches the
//! sandbox's own deployments through its gateway. (Routes change with
//! every deploy; a service given them would have to restart with each.)

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sdp_bus::{Route, RouteSource, ServiceSettings};

pub use sdp_api::EffectiveRoute;

use crate::store::{Sandbox, SecretVars, Store, StoreError, StoredRoute, Template};

/// What a gateway of the sandbox runs with.
pub struct GatewayInputs {
    pub env: BTreeMap<String, String>,
    pub routes: Vec<Route>,
    /// See [`Self::digest`].
    digest: String,
}

pub struct RouteTable {
    pub routes: Vec<EffectiveRoute>,
    /// The environment's plain variables.
    pub environment: BTreeMap<String, String>,
    /// The environment's secret variables.
    pub secrets: SecretVars,
}

impl GatewayInputs {
    /// A digest of what the gateway runs with: a re-apply with the same
    /// digest would change nothing. It is shown to every reader of the
    /// deployment, so a secret enters it only as its key and the time its
    /// environment was last written (a hash of the value could be guessed
    /// offline when the value is weak).
    pub fn digest(&self) -> String {
        self.digest.clone()
    }
}

impl RouteTable {
    /// The gateway's env: plain variables, then secrets (`secret` gives
    /// each one's value), then the routes.
    fn env(&self, secret: impl Fn(&str) -> String) -> BTreeMap<String, String> {
        let mut env = self.environment.clone();
        for (key, value) in self.secrets.expose() {
            env.insert(key.clone(), secret(value));
        }
        for route in &self.routes {
            env.insert(route.env_key.clone(), route.target.clone());
        }
        env
    }

    pub fn gateway_inputs(&self) -> GatewayInputs {
        use sha2::{Digest, Sha256};
        let routes: Vec<Route> = self
            .routes
            .iter()
            .map(|r| Route {
                service: r.service.clone(),
                target: r.target.clone(),
                source: r.source,
            })
            .collect();
        let stamp = format!("secret written at {}", self.secrets.written_at());
        let public = self.env(|_| stamp.clone());
        let text = serde_json::to_vec(&(&public, &routes)).unwrap_or_default();
        GatewayInputs {
            env: self.env(str::to_owned),
            routes,
            digest: hex::encode(Sha256::digest(text)),
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

/// The plain and secret variables of the environment `sandbox` runs with
/// (none without one).
fn environment_vars(
    store: &Store,
    sandbox: &Sandbox,
    template: Option<&Template>,
) -> Result<(BTreeMap<String, String>, SecretVars), StoreError> {
    Ok(match environment_name(sandbox, template) {
        Some(name) => (
            store
                .environment(&name)?
                .map(|e| e.vars)
                .unwrap_or_default(),
            store.environment_secrets(&name)?,
        ),
        None => Default::default(),
    })
}

/// What a service other than the gateway runs with from its sandbox: the
/// environment's plain variables, then its secret ones.
pub fn service_env(
    store: &Store,
    sandbox: &Sandbox,
    template: Option<&Template>,
) -> Result<BTreeMap<String, String>, StoreError> {
    let (mut env, secrets) = environment_vars(store, sandbox, template)?;
    env.extend(secrets.expose().iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(env)
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
    let (environment, secrets) = environment_vars(store, sandbox, template.as_ref())?;
    let stored = store.stored_routes(&sandbox.name)?;
    let deployed: Vec<(String, String)> = store
        .latest_deployments(&sandbox.name)?
        .into_iter()
        .map(|d| (d.repo, d.kind))
        .collect();
    let routes = resolve(
        template.as_ref(),
        &environment,
        &stored,
        &deployed,
        settings,
    );
    Ok(RouteTable {
        routes,
        environment,
        secrets,
    })
}

/// The route resolution rules, with no I/O. The services are the
/// template's, those with a stored route and those deployed (`(repo,
/// kind)`) but the gateway. Each goes to its manual route if set, else its
/// sandbox route, else the environment's value of its route env key (a
/// template override, else the repo's `sdp.toml` as the agents reported it
/// in `settings`, else `<REPO>_URL`); a service with none of these has no
/// route.
pub fn resolve(
    template: Option<&Template>,
    environment: &BTreeMap<String, String>,
    stored: &[StoredRoute],
    deployed: &[(String, String)],
    settings: &HashMap<String, ServiceSettings>,
) -> Vec<EffectiveRoute> {
    let gateway_repo = template
        .and_then(|t| t.gateway.as_ref())
        .map(|g| g.repo.clone());

    let mut services: BTreeSet<String> = BTreeSet::new();
    if let Some(template) = template {
        services.extend(template.services.iter().map(|s| s.repo.clone()));
    }
    services.extend(stored.iter().map(|r| r.service.clone()));
    for (repo, kind) in deployed {
        if kind != sdp_bus::subject::KIND_GATEWAY && Some(repo) != gateway_repo.as_ref() {
            services.insert(repo.clone());
        }
    }

    let mut routes = Vec::new();
    for service in services {
        let override_key = template
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
    routes
}

#[cfg(test)]
mod tests {
    use sdp_bus::ServiceOverrides;

    use super::*;
    use crate::store::RepoBranch;

    fn service(repo: &str, route_env: Option<&str>) -> RepoBranch {
        RepoBranch {
            repo: repo.into(),
            branch: "main".into(),
            overrides: ServiceOverrides {
                route_env: route_env.map(Into::into),
                ..Default::default()
            },
        }
    }

    fn template(services: Vec<RepoBranch>) -> Template {
        Template {
            name: "shop".into(),
            environment: Some("baseline".into()),
            gateway: Some(service("api-gateway", None)),
            services,
            tests: None,
            resources: Vec::new(),
            created_by: None,
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    fn stored(service: &str, target: &str, source: RouteSource) -> StoredRoute {
        StoredRoute {
            service: service.into(),
            target: target.into(),
            source,
        }
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn route(service: &str, target: &str, source: RouteSource, env_key: &str) -> EffectiveRoute {
        EffectiveRoute {
            service: service.into(),
            target: target.into(),
            source,
            env_key: env_key.into(),
        }
    }

    #[test]
    fn manual_beats_sandbox_beats_environment() {
        let template = template(vec![service("users", None), service("orders", None)]);
        let environment = env(&[
            ("USERS_URL", "https://users.ocp"),
            ("ORDERS_URL", "https://orders.ocp"),
            ("CARTS_URL", "https://carts.ocp"),
        ]);
        let stored = [
            stored("users", "http://10.0.0.1:3001", RouteSource::Sandbox),
            stored("orders", "http://10.0.0.1:3002", RouteSource::Sandbox),
            stored("orders", "http://mock:9000", RouteSource::Manual),
        ];
        let routes = resolve(Some(&template), &environment, &stored, &[], &HashMap::new());
        assert_eq!(
            routes,
            [
                route(
                    "orders",
                    "http://mock:9000",
                    RouteSource::Manual,
                    "ORDERS_URL"
                ),
                route(
                    "users",
                    "http://10.0.0.1:3001",
                    RouteSource::Sandbox,
                    "USERS_URL"
                ),
            ],
            "carts is in no template, route or deployment: no route"
        );
    }

    #[test]
    fn environment_routes_use_the_route_env_key() {
        // Template override > sdp.toml (as reported) > <REPO>_URL.
        let template = template(vec![
            service("users", Some("USERS_API")),
            service("orders", None),
            service("carts-v2", None),
        ]);
        let environment = env(&[
            ("USERS_API", "https://users.ocp"),
            ("USERS_URL", "https://wrong.ocp"),
            ("ORDERS_SVC", "https://orders.ocp"),
            ("CARTS_V2_URL", "https://carts.ocp"),
        ]);
        let settings = HashMap::from([(
            "orders".to_owned(),
            ServiceSettings {
                route_env: Some("ORDERS_SVC".into()),
                ..Default::default()
            },
        )]);
        let routes = resolve(Some(&template), &environment, &[], &[], &settings);
        assert_eq!(
            routes,
            [
                route(
                    "carts-v2",
                    "https://carts.ocp",
                    RouteSource::Environment,
                    "CARTS_V2_URL"
                ),
                route(
                    "orders",
                    "https://orders.ocp",
                    RouteSource::Environment,
                    "ORDERS_SVC"
                ),
                route(
                    "users",
                    "https://users.ocp",
                    RouteSource::Environment,
                    "USERS_API"
                ),
            ]
        );
    }

    #[test]
    fn deployed_services_count_but_not_the_gateway() {
        let environment = env(&[
            ("EXTRA_URL", "https://extra.ocp"),
            ("API_GATEWAY_URL", "https://gw.ocp"),
            ("PHP_GW_URL", "https://php.ocp"),
        ]);
        let deployed = [
            ("extra".to_owned(), "micro".to_owned()),
            ("api-gateway".to_owned(), "micro".to_owned()),
            (
                "php-gw".to_owned(),
                sdp_bus::subject::KIND_GATEWAY.to_owned(),
            ),
        ];
        let template = template(Vec::new());
        let routes = resolve(
            Some(&template),
            &environment,
            &[],
            &deployed,
            &HashMap::new(),
        );
        assert_eq!(
            routes,
            [route(
                "extra",
                "https://extra.ocp",
                RouteSource::Environment,
                "EXTRA_URL"
            )]
        );
        // Without a template, only the gateway kind is left out.
        let routes = resolve(None, &environment, &[], &deployed, &HashMap::new());
        let services: Vec<&str> = routes.iter().map(|r| r.service.as_str()).collect();
        assert_eq!(services, ["api-gateway", "extra"]);
    }

    #[test]
    fn gateway_inputs_are_environment_plus_routes() {
        let table = RouteTable {
            routes: vec![route(
                "users",
                "http://10.0.0.1:3001",
                RouteSource::Sandbox,
                "USERS_URL",
            )],
            environment: env(&[("USERS_URL", "https://users.ocp"), ("MODE", "test")]),
            secrets: SecretVars::new(env(&[("API_TOKEN", "s3cret")]), "t1".into()),
        };
        let inputs = table.gateway_inputs();
        // The digest holds no secret value: the same for another value
        // written at the same time, another for a later write.
        let other_value = RouteTable {
            secrets: SecretVars::new(env(&[("API_TOKEN", "other")]), "t1".into()),
            routes: table.routes.clone(),
            environment: table.environment.clone(),
        };
        assert_eq!(other_value.gateway_inputs().digest(), inputs.digest());
        let rewritten = RouteTable {
            secrets: SecretVars::new(env(&[("API_TOKEN", "s3cret")]), "t2".into()),
            routes: table.routes.clone(),
            environment: table.environment.clone(),
        };
        assert_ne!(rewritten.gateway_inputs().digest(), inputs.digest());
        assert_eq!(
            inputs.env,
            env(&[
                ("USERS_URL", "http://10.0.0.1:3001"),
                ("MODE", "test"),
                ("API_TOKEN", "s3cret")
            ])
        );
        assert_eq!(
            inputs.routes,
            [Route {
                service: "users".into(),
                target: "http://10.0.0.1:3001".into(),
                source: RouteSource::Sandbox,
            }]
        );
    }
}
