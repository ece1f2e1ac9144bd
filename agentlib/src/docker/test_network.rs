//! A test run's own Docker network: the run's container reaches its
//! sandbox's containers on this host, by name, and nothing else.
//!
//! The network is a bridge that is `internal` (Docker adds no route out)
//! with `inhibit_ipv4` (the host gets no address on it). Docker's default
//! bridge, which the run had before, lets a container reach every port
//! the host listens on (NATS, the control plane, the git server, the
//! agent's published ports, other sandboxes' services) through the
//! bridge's gateway address; an `internal` network alone still does (the
//! host answers on its gateway address). With no host address on the
//! bridge there is no next hop: only the containers joined to it answer.
//!
//! The sandbox's running containers on this Docker host (services,
//! gateway, resources; not builds, not other test runs) are connected to
//! it with their service name as alias: those of this agent, and those of
//! another agent on the same engine (the gateway's, when both agents share
//! a host) whose published port one of the run's URLs names. Host ports
//! are unique per engine, so a same-named sandbox of another installation
//! never joins. The run's URLs that point at joined ports are rewritten to
//! `http://<service>:<container port>` ([`rewrite_url`]). What is left (a
//! URL on another host, the preview entry on the control plane) is not
//! reachable from the run.

use std::collections::{BTreeMap, HashMap, HashSet};

use bollard::models::{
    ContainerSummaryStateEnum, EndpointSettings, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest,
};
use bollard::query_parameters::ListContainersOptionsBuilder;

use super::{DockerClient, LABEL_AGENT, LABEL_SANDBOX, LABEL_SERVICE, docker_err, is_not_found};
use crate::build_container::LABEL_BUILD_AGENT;
use crate::error::DeployError;

/// How long a network's removal is retried, and how often.
const NETWORK_REMOVAL_WAIT: std::time::Duration = std::time::Duration::from_secs(15);
const NETWORK_REMOVAL_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// The label of a test run's container and network (its id).
const LABEL_TEST_RUN: &str = "sdp.test_run";

/// A test run's network, made by [`DockerClient::create_test_network`];
/// [`DockerClient::remove_test_network`] takes it away.
#[derive(Clone, Debug)]
pub struct TestNetwork {
    /// `sdp-test-<run id>`: what the run's container joins.
    pub name: String,
    /// The sandbox's containers connected to it (ids).
    joined: Vec<String>,
    /// `host port → (alias, container port)` of the joined containers.
    ports: HashMap<u16, (String, u16)>,
}

impl TestNetwork {
    /// The run's environment with URLs of the joined containers' published
    /// ports pointing at the containers themselves; returns the keys whose
    /// URL still points elsewhere (not reachable from the run).
    pub fn rewrite_env(
        &self,
        advertise_host: &str,
        env: &mut BTreeMap<String, String>,
    ) -> Vec<String> {
        let mut unreachable = Vec::new();
        for (key, value) in env.iter_mut() {
            if !value.contains("://") {
                continue;
            }
            match rewrite_url(value, advertise_host, &self.ports) {
                Some(url) => *value = url,
                None => unreachable.push(key.clone()),
            }
        }
        unreachable
    }
}

/// `scheme://<advertise_host>:<host port>/rest` with a host port of a
/// joined container as `scheme://<alias>:<container port>/rest`; `None`
/// for any other URL.
pub fn rewrite_url(
    url: &str,
    advertise_host: &str,
    ports: &HashMap<u16, (String, u16)>,
) -> Option<String> {
    let (scheme, port, path) = split_local_url(url, advertise_host)?;
    let (alias, container_port) = ports.get(&port)?;
    Some(format!("{scheme}://{alias}:{container_port}{path}"))
}

/// The host ports of this host that the environment's URLs name: the
/// containers publishing them are the ones the run is meant to reach.
pub fn local_ports(advertise_host: &str, env: &BTreeMap<String, String>) -> HashSet<u16> {
    env.values()
        .filter_map(|url| split_local_url(url, advertise_host).map(|(_, port, _)| port))
        .collect()
}

/// `scheme://<advertise_host>:<port><path>` as its scheme, port and path.
fn split_local_url<'a>(url: &'a str, advertise_host: &str) -> Option<(&'a str, u16, &'a str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
    let (host, port) = authority.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host != advertise_host.trim_start_matches('[').trim_end_matches(']') {
        return None;
    }
    Some((scheme, port.parse().ok()?, path))
}

/// The network's name for run `id` (a subject token: a valid name).
pub fn test_network_name(run_id: &str) -> String {
    format!("sdp-test-{run_id}")
}

impl DockerClient {
    /// Makes run `run_id`'s network and connects `sandbox`'s running
    /// containers to it: those of `agent_id`, and any other on this engine
    /// that publishes one of `wanted_ports` (see [`local_ports`]).
    pub async fn create_test_network(
        &self,
        agent_id: &str,
        sandbox: &str,
        run_id: &str,
        wanted_ports: &HashSet<u16>,
    ) -> Result<TestNetwork, DeployError> {
        let name = test_network_name(run_id);
        // A leftover of the same run (an agent that died mid-run).
        self.remove_network_by_name(&name).await;
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".to_owned()),
            internal: Some(true),
            options: Some(HashMap::from([(
                "com.docker.network.bridge.inhibit_ipv4".to_owned(),
                "true".to_owned(),
            )])),
            labels: Some(HashMap::from([
                (LABEL_SANDBOX.to_owned(), sandbox.to_owned()),
                (LABEL_TEST_RUN.to_owned(), run_id.to_owned()),
                (LABEL_AGENT.to_owned(), agent_id.to_owned()),
            ])),
            ..Default::default()
        };
        self.docker
            .create_network(request)
            .await
            .map_err(docker_err("create the test run's network"))?;
        let mut network = TestNetwork {
            name,
            joined: Vec::new(),
            ports: HashMap::new(),
        };
        let joined = self
            .join_sandbox(agent_id, sandbox, wanted_ports, &mut network)
            .await;
        if let Err(err) = joined {
            self.remove_test_network(&network).await;
            return Err(err);
        }
        Ok(network)
    }

    async fn join_sandbox(
        &self,
        agent_id: &str,
        sandbox: &str,
        wanted_ports: &HashSet<u16>,
        network: &mut TestNetwork,
    ) -> Result<(), DeployError> {
        let filters: HashMap<String, Vec<String>> = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_SANDBOX}={sandbox}")],
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(docker_err("list the sandbox's containers"))?;
        for container in containers {
            let labels = container.labels.unwrap_or_default();
            let running = container.state == Some(ContainerSummaryStateEnum::RUNNING);
            let other_run =
                labels.contains_key(LABEL_TEST_RUN) || labels.contains_key(LABEL_BUILD_AGENT);
            let ports = container.ports.unwrap_or_default();
            let ours = labels.get(LABEL_AGENT).map(String::as_str) == Some(agent_id);
            let wanted = ports
                .iter()
                .any(|port| port.public_port.is_some_and(|p| wanted_ports.contains(&p)));
            let (Some(id), true, false, true) = (container.id, running, other_run, ours || wanted)
            else {
                continue;
            };
            let alias = labels.get(LABEL_SERVICE).cloned();
            let endpoint = EndpointSettings {
                aliases: alias.clone().map(|alias| vec![alias]),
                ..Default::default()
            };
            self.docker
                .connect_network(
                    &network.name,
                    NetworkConnectRequest {
                        container: id.clone(),
                        endpoint_config: Some(endpoint),
                    },
                )
                .await
                .map_err(docker_err("connect the sandbox to the test run's network"))?;
            network.joined.push(id);
            let Some(alias) = alias else { continue };
            for port in ports {
                if let Some(public) = port.public_port {
                    network
                        .ports
                        .insert(public, (alias.clone(), port.private_port));
                }
            }
        }
        Ok(())
    }

    /// Disconnects the sandbox's containers from the run's network and
    /// removes it (the run's container must be gone). Best effort: a
    /// failure is logged, and a network left behind joins nothing new.
    pub async fn remove_test_network(&self, network: &TestNetwork) {
        for id in &network.joined {
            let request = NetworkDisconnectRequest {
                container: id.clone(),
                force: Some(true),
            };
            if let Err(err) = self.docker.disconnect_network(&network.name, request).await
                && !is_not_found(&err)
            {
                tracing::warn!(network = %network.name, container = %id, error = %err, "cannot disconnect from the test run's network");
            }
        }
        self.remove_network_by_name(&network.name).await;
    }

    /// Removes the network, again for a while if the engine still counts
    /// an endpoint of a container it has just removed (it answers 403
    /// "active endpoints" for a moment after a killed run).
    async fn remove_network_by_name(&self, name: &str) {
        let deadline = tokio::time::Instant::now() + NETWORK_REMOVAL_WAIT;
        loop {
            match self.docker.remove_network(name).await {
                Ok(()) => return,
                Err(err) if is_not_found(&err) => return,
                Err(err) if tokio::time::Instant::now() >= deadline => {
                    tracing::warn!(network = %name, error = %err, "cannot remove the test run's network");
                    return;
                }
                Err(_) => tokio::time::sleep(NETWORK_REMOVAL_POLL).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ports_a_run_is_meant_to_reach_are_those_its_urls_name_on_this_host() {
        let env = BTreeMap::from([
            (
                "SDP_GATEWAY_URL".to_owned(),
                "http://172.17.0.1:32001".to_owned(),
            ),
            (
                "SDP_SERVICE_URL_USERS".to_owned(),
                "http://172.17.0.1:32002/x".to_owned(),
            ),
            (
                "SDP_PREVIEW_URL".to_owned(),
                "http://alpha.preview.test:8080".to_owned(),
            ),
            ("SDP_SANDBOX".to_owned(), "alpha".to_owned()),
        ]);
        assert_eq!(
            local_ports("172.17.0.1", &env),
            HashSet::from([32001, 32002])
        );
        assert!(local_ports("10.0.0.9", &env).is_empty());
    }

    #[test]
    fn urls_of_joined_ports_point_at_the_containers() {
        let ports = HashMap::from([
            (32001, ("gateway".to_owned(), 8080)),
            (32002, ("users".to_owned(), 8081)),
        ]);
        let at = |url: &str| rewrite_url(url, "172.17.0.1", &ports);
        assert_eq!(
            at("http://172.17.0.1:32002").as_deref(),
            Some("http://users:8081")
        );
        assert_eq!(
            at("http://172.17.0.1:32001/api/v1?x=1").as_deref(),
            Some("http://gateway:8080/api/v1?x=1")
        );
        // Another host, another port, no port, not a URL: left alone.
        assert_eq!(at("http://10.0.0.9:32001"), None);
        assert_eq!(at("http://172.17.0.1:40000"), None);
        assert_eq!(at("http://172.17.0.1/"), None);
        assert_eq!(at("alpha"), None);
    }

    #[test]
    fn the_environment_says_what_stays_out_of_reach() {
        let network = TestNetwork {
            name: test_network_name("r1"),
            joined: Vec::new(),
            ports: HashMap::from([(32002, ("users".to_owned(), 8081))]),
        };
        let mut env = BTreeMap::from([
            ("SDP_SANDBOX".to_owned(), "alpha".to_owned()),
            (
                "SDP_SERVICE_URL_USERS".to_owned(),
                "http://172.17.0.1:32002".to_owned(),
            ),
            (
                "SDP_PREVIEW_URL".to_owned(),
                "http://alpha.preview.test/".to_owned(),
            ),
        ]);
        let out = network.rewrite_env("172.17.0.1", &mut env);
        assert_eq!(out, ["SDP_PREVIEW_URL"]);
        assert_eq!(env["SDP_SERVICE_URL_USERS"], "http://users:8081");
        assert_eq!(env["SDP_SANDBOX"], "alpha");
    }
}
