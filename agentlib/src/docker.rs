//! Docker with bollard: the deployed containers of this agent, found by
//! their labels (`sdp.agent`, `sdp.sandbox`, `sdp.service`, ...), never by
//! their names ([`container_name`] changed once; labels did not).

mod container_spec;
mod power;
mod resource;
mod test_network;

use std::collections::HashMap;

use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::error::{AgentError, DeployError};

pub(crate) use container_spec::{Confined, confined_host};
pub use container_spec::{RunSpec, ServiceContainer, create_body, run_spec};
pub use power::{LABEL_TEST_RUN, PowerTarget};
pub use resource::ResourceContainer;
pub use test_network::{TestNetwork, local_ports, test_network_name};

pub const LABEL_DEPLOYMENT: &str = "sdp.deployment";
pub const LABEL_SANDBOX: &str = "sdp.sandbox";
pub const LABEL_SERVICE: &str = "sdp.service";
pub const LABEL_AGENT: &str = "sdp.agent";
pub const LABEL_COMMIT: &str = "sdp.commit";
/// On a sandbox resource's container and volume: the resource's name.
pub const LABEL_RESOURCE: &str = "sdp.resource";

/// The name of the container of (sandbox, repo) on `agent_id`:
/// `sdp.<agent>.<sandbox>.<repo>`. Agent ids (subject tokens) and sandbox
/// names never contain `.`, so the first two dots split a name back into
/// its parts and no two (agent, sandbox, repo) share one. The old form,
/// `sdp-<agent>-<sandbox>-<repo>`, collided (sandbox `a-b` + repo `c` =
/// sandbox `a` + repo `b-c`); containers made under it carry the same
/// labels and are found and replaced by them.
pub fn container_name(agent_id: &str, sandbox: &str, repo: &str) -> String {
    format!("sdp.{agent_id}.{sandbox}.{repo}")
}

#[derive(Clone)]
pub struct DockerClient {
    docker: bollard::Docker,
}

fn docker_err(step: &'static str) -> impl FnOnce(bollard::errors::Error) -> DeployError {
    move |source| DeployError::Docker { step, source }
}

fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn is_conflict(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
}

/// The engine's words for a host port that another process or container
/// holds.
fn is_port_taken(err: &bollard::errors::Error) -> bool {
    match err {
        bollard::errors::Error::DockerResponseServerError { message, .. } => {
            message.contains("port is already allocated")
                || message.contains("address already in use")
        }
        _ => false,
    }
}

impl DockerClient {
    /// Connects with the local defaults (`DOCKER_HOST` or the unix socket)
    /// and negotiates the API version with the engine.
    pub async fn connect() -> Result<Self, AgentError> {
        let docker = bollard::Docker::connect_with_local_defaults()
            .map_err(AgentError::Docker)?
            .negotiate_version()
            .await
            .map_err(AgentError::Docker)?;
        Ok(Self { docker })
    }

    pub async fn image_present(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    /// The containers (running or not) with all these labels, as the
    /// engine lists them (an empty value: any container carrying the
    /// label). The one label query sleep, wake, reconcile and resources
    /// share.
    pub async fn containers_labelled(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<bollard::models::ContainerSummary>, DeployError> {
        let filters: HashMap<String, Vec<String>> = HashMap::from([(
            "label".to_owned(),
            labels
                .iter()
                .map(|(k, v)| {
                    if v.is_empty() {
                        (*k).to_owned()
                    } else {
                        format!("{k}={v}")
                    }
                })
                .collect(),
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(docker_err("list containers"))
    }

    /// The containers (running or not) with all these labels, as
    /// (container id, its `sdp.deployment` label).
    pub async fn list_labelled(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<(String, Option<String>)>, DeployError> {
        Ok(self
            .containers_labelled(labels)
            .await?
            .into_iter()
            .filter_map(|c| {
                let deployment = c
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_DEPLOYMENT).cloned());
                c.id.map(|id| (id, deployment))
            })
            .collect())
    }

    /// Force-removes the containers with all these labels and the container
    /// called `name`, if any. Returns how many labelled containers there were.
    pub async fn remove_matching(
        &self,
        labels: &[(&str, &str)],
        name: Option<&str>,
    ) -> Result<usize, DeployError> {
        let mut ids: Vec<String> = self
            .list_labelled(labels)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let labelled = ids.len();
        if let Some(name) = name {
            ids.push(name.to_owned());
        }
        for id in ids {
            self.remove(&id).await?;
        }
        Ok(labelled)
    }

    /// Force-removes a container; a missing one is fine.
    pub async fn remove(&self, id: &str) -> Result<(), DeployError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            // "removal already in progress"
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(source) => Err(DeployError::Docker {
                step: "remove container",
                source,
            }),
        }
    }

    /// Creates the container like [`Self::create`], first removing one that
    /// still holds its name if it carries all of `owner` labels (left
    /// half-made by a cancelled deployment of the same service, whose
    /// create reached the engine after its clean-up). A container of
    /// anything else under that name is an error, never removed.
    pub async fn create_replacing(
        &self,
        spec: &RunSpec,
        owner: &[(&str, &str)],
    ) -> Result<String, DeployError> {
        const ATTEMPTS: usize = 3;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.create(spec).await {
                Err(DeployError::Docker { source, .. })
                    if is_conflict(&source) && attempt < ATTEMPTS =>
                {
                    let ours = self.labels_of(&spec.name).await?.is_some_and(|labels| {
                        owner
                            .iter()
                            .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
                    });
                    if !ours {
                        return Err(DeployError::NameHeld {
                            name: spec.name.clone(),
                        });
                    }
                    tracing::info!(name = %spec.name, "removing a leftover container of this service");
                    self.remove(&spec.name).await?;
                    // A removal already in progress answers at once.
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(DeployError::Docker { source, .. }) if is_conflict(&source) => {
                    return Err(DeployError::NameHeld {
                        name: spec.name.clone(),
                    });
                }
                other => return other,
            }
        }
    }

    /// The labels of the container called (or with id) `name`; `None` if
    /// there is none.
    async fn labels_of(&self, name: &str) -> Result<Option<HashMap<String, String>>, DeployError> {
        match self.docker.inspect_container(name, None).await {
            Ok(info) => Ok(Some(info.config.and_then(|c| c.labels).unwrap_or_default())),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(source) => Err(DeployError::Docker {
                step: "inspect container",
                source,
            }),
        }
    }

    /// The host port published for `port/tcp` by the first container with
    /// all these labels, if any.
    pub async fn published_port(
        &self,
        labels: &[(&str, &str)],
        port: u16,
    ) -> Result<Option<u16>, DeployError> {
        for (id, _) in self.list_labelled(labels).await? {
            if let (Some(host_port), _) = self.state(&id, port).await? {
                return Ok(Some(host_port));
            }
        }
        Ok(None)
    }

    /// Creates the container ([`create_body`]: no privileges, no
    /// capabilities but those `[container]` gives back, read-only mounts,
    /// memory, CPU and pids limits, optionally another user and a
    /// read-only root) and returns its id. Start it with [`Self::start`].
    pub async fn create(&self, spec: &RunSpec) -> Result<String, DeployError> {
        self.create_named(&spec.name, create_body(spec)).await
    }

    /// Creates container `name` from `body` (a service's, a resource's);
    /// returns its id.
    pub(crate) async fn create_named(
        &self,
        name: &str,
        body: bollard::models::ContainerCreateBody,
    ) -> Result<String, DeployError> {
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(docker_err("create container"))?;
        Ok(created.id)
    }

    /// Starts a created container; a host port held by something else is
    /// [`DeployError::PortTaken`].
    pub async fn start(&self, id: &str, host_port: Option<u16>) -> Result<(), DeployError> {
        match self.docker.start_container(id, None).await {
            Ok(()) => Ok(()),
            Err(source) => match host_port {
                Some(port) if is_port_taken(&source) => Err(DeployError::PortTaken { port }),
                _ => Err(DeployError::Docker {
                    step: "start container",
                    source,
                }),
            },
        }
    }

    /// The host port docker published for `port/tcp`, and the exit code if
    /// the container is no longer running.
    pub async fn state(
        &self,
        id: &str,
        port: u16,
    ) -> Result<(Option<u16>, Option<i64>), DeployError> {
        let info = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(docker_err("inspect container"))?;
        let exited = info.state.as_ref().and_then(|state| {
            if state.running == Some(true) {
                None
            } else {
                Some(state.exit_code.unwrap_or(-1))
            }
        });
        let host_port = info
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|ports| ports.get(&format!("{port}/tcp")).cloned().flatten())
            .and_then(|bindings| {
                bindings
                    .into_iter()
                    .filter_map(|b| b.host_port)
                    .find_map(|p| p.parse::<u16>().ok())
            });
        Ok((host_port, exited))
    }

    /// The container's last `tail` log entries, stdout and stderr apart,
    /// in the order written (a running or an exited container). Dropping
    /// the stream closes the request to the engine.
    pub fn last_output(
        &self,
        id: &str,
        tail: usize,
    ) -> BoxStream<'static, Result<bollard::container::LogOutput, bollard::errors::Error>> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&tail.to_string())
            .build();
        self.docker.logs(id, Some(options)).boxed()
    }

    /// The container of `deployment` that this agent made, and whether it
    /// runs; `None` if there is none.
    pub async fn deployment_container(
        &self,
        agent_id: &str,
        deployment: &str,
    ) -> Result<Option<(String, bool)>, DeployError> {
        let found = self
            .list_labelled(&[(LABEL_AGENT, agent_id), (LABEL_DEPLOYMENT, deployment)])
            .await?;
        let Some((id, _)) = found.into_iter().next() else {
            return Ok(None);
        };
        let (_, exited) = self.state(&id, 0).await?;
        Ok(Some((id, exited.is_none())))
    }

    /// The container's output (stdout and stderr, in the order written) as
    /// raw chunks: the last `tail` lines (`None`: all) written at or after
    /// `since` (unix seconds; 0: any), then, with `follow`, new output
    /// until the container stops. Dropping the stream closes the request
    /// to the engine.
    pub fn output(
        &self,
        id: &str,
        tail: Option<u32>,
        since: i32,
        follow: bool,
    ) -> BoxStream<'static, Result<bytes::Bytes, bollard::errors::Error>> {
        let tail = tail.map_or_else(|| "all".to_owned(), |n| n.to_string());
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .since(since)
            .tail(&tail)
            .build();
        self.docker
            .logs(id, Some(options))
            .map(|item| item.map(bollard::container::LogOutput::into_bytes))
            .boxed()
    }

    /// Runs `argv` in the running container `id` (an exec: no shell, no
    /// tty, the container's own user and limits) and waits for it; returns
    /// its exit code and its output (stdout and stderr as they came, at
    /// most 64 KiB).
    pub async fn exec(
        &self,
        id: &str,
        argv: Vec<String>,
    ) -> Result<(Option<i64>, String), DeployError> {
        const MAX_OUTPUT: usize = 64 * 1024;
        let config = bollard::models::ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            cmd: Some(argv),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(id, config)
            .await
            .map_err(docker_err("create exec"))?;
        let started = self
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(docker_err("start exec"))?;
        let mut text = String::new();
        if let bollard::exec::StartExecResults::Attached { mut output, .. } = started {
            while let Some(item) = output.next().await {
                match item {
                    Ok(chunk) if text.len() < MAX_OUTPUT => {
                        text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
                    }
                    Ok(_) => {}
                    Err(source) => {
                        return Err(DeployError::Docker {
                            step: "read exec output",
                            source,
                        });
                    }
                }
            }
        }
        let inspected = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(docker_err("inspect exec"))?;
        Ok((inspected.exit_code, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_cannot_collide_across_hyphens() {
        assert_eq!(
            container_name("t-1", "alpha", "users"),
            "sdp.t-1.alpha.users"
        );
        // Each pair collided under `sdp-<agent>-<sandbox>-<repo>`.
        let pairs = [
            (("a", "b-c", "d"), ("a", "b", "c-d")),
            (("a-b", "c", "d"), ("a", "b-c", "d")),
            (("a_b", "c", "d.e"), ("a_b", "c", "d-e")),
            (("a", "b", "c.d"), ("a", "b-c", "d")),
        ];
        for ((a1, s1, r1), (a2, s2, r2)) in pairs {
            assert_ne!(
                container_name(a1, s1, r1),
                container_name(a2, s2, r2),
                "({a1}, {s1}, {r1}) vs ({a2}, {s2}, {r2})"
            );
        }
    }

    /// Every valid (agent, sandbox, repo) comes back out of its name, so
    /// no two share one.
    #[test]
    fn a_container_name_splits_back_into_its_parts() {
        let agents = ["a", "a-b", "a_b", "A-1_x"];
        let sandboxes = ["s", "s-t", "0-a"];
        let repos = ["r", "r-s", "r.s", "r_s", "r..s-", "r.s.t"];
        for agent in agents {
            for sandbox in sandboxes {
                for repo in repos {
                    let name = container_name(agent, sandbox, repo);
                    let mut parts = name.splitn(4, '.');
                    assert_eq!(parts.next(), Some("sdp"));
                    assert_eq!(parts.next(), Some(agent), "{name}");
                    assert_eq!(parts.next(), Some(sandbox), "{name}");
                    assert_eq!(parts.next(), Some(repo), "{name}");
                    assert!(
                        name.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)),
                        "{name} is a valid Docker name"
                    );
                }
            }
        }
    }
}
