//! What sandbox resources need of the engine beyond a service: named
//! volumes (made, measured by their container, removed by label), the
//! resource's container (its volume at `/data`, restarted with the
//! engine, published on a kept host port), and execs with their own
//! environment and stdin (a password by env, seed SQL by stdin: never an
//! argv, never a file).

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, PortBinding, RestartPolicy,
    RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, ListVolumesOptionsBuilder};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{DockerClient, docker_err, is_not_found};
use crate::error::DeployError;

/// A resource's container, as data.
#[derive(Clone, Debug)]
pub struct ResourceContainer {
    pub name: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    /// `KEY=value` items (the password among them: the server reads it).
    pub env: Vec<String>,
    pub volume: String,
    pub port: u16,
    pub host_ip: std::net::IpAddr,
    pub host_port: Option<u16>,
    pub memory: i64,
    pub pids_limit: i64,
}

impl DockerClient {
    /// Makes the volume unless it exists; `true` if it was made now.
    pub async fn ensure_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<bool, DeployError> {
        match self.docker.inspect_volume(name).await {
            Ok(_) => return Ok(false),
            Err(err) if is_not_found(&err) => {}
            Err(source) => {
                return Err(DeployError::Docker {
                    step: "inspect volume",
                    source,
                });
            }
        }
        let request = VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map_err(docker_err("create volume"))?;
        Ok(true)
    }

    /// Removes the volume; a missing one is fine.
    pub async fn remove_volume(&self, name: &str) -> Result<(), DeployError> {
        match self
            .docker
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            Err(source) => Err(DeployError::Docker {
                step: "remove volume",
                source,
            }),
        }
    }

    /// Removes every volume with all these labels; returns how many.
    pub async fn remove_volumes_labelled(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<usize, DeployError> {
        let filters: HashMap<String, Vec<String>> = HashMap::from([(
            "label".to_owned(),
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        )]);
        let options = ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let listed = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(docker_err("list volumes"))?;
        let names: Vec<String> = listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        for name in &names {
            self.remove_volume(name).await?;
        }
        Ok(names.len())
    }

    /// Creates the resource's container (confined like a service: no
    /// privileges, no capabilities, pids and memory limits; restarted with
    /// the engine unless stopped on purpose, so a host reboot keeps it).
    pub async fn create_resource(&self, spec: &ResourceContainer) -> Result<String, DeployError> {
        let port_key = format!("{}/tcp", spec.port);
        let host_config = HostConfig {
            memory: Some(spec.memory),
            pids_limit: Some(spec.pids_limit),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            cap_drop: Some(vec!["ALL".to_owned()]),
            privileged: Some(false),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            port_bindings: Some(HashMap::from([(
                port_key.clone(),
                Some(vec![PortBinding {
                    host_ip: Some(spec.host_ip.to_string()),
                    host_port: Some(spec.host_port.map(|p| p.to_string()).unwrap_or_default()),
                }]),
            )])),
            mounts: Some(vec![Mount {
                target: Some("/data".to_owned()),
                source: Some(spec.volume.clone()),
                typ: Some(MountType::VOLUME),
                read_only: Some(false),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.clone()),
            exposed_ports: Some(vec![port_key]),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(docker_err("create container"))?;
        Ok(created.id)
    }

    /// Runs `argv` in the running container `id` with `env` added, feeding
    /// it `stdin` (then closing it); returns the exit code and the output
    /// (at most 64 KiB). `env` never reaches a log or an error.
    pub async fn exec_with(
        &self,
        id: &str,
        argv: Vec<String>,
        env: Vec<String>,
        stdin: Option<Vec<u8>>,
    ) -> Result<(Option<i64>, String), DeployError> {
        const MAX_OUTPUT: usize = 64 * 1024;
        let config = bollard::models::ExecConfig {
            attach_stdin: Some(stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            env: Some(env),
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
        if let bollard::exec::StartExecResults::Attached {
            mut output,
            mut input,
        } = started
        {
            // Written while the output is read, so a large seed cannot
            // fill both pipes and stall.
            let feed = async move {
                if let Some(bytes) = stdin {
                    let _ = input.write_all(&bytes).await;
                }
                let _ = input.shutdown().await;
            };
            let read = async {
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
                Ok(())
            };
            let ((), read) = tokio::join!(feed, read);
            read?;
        }
        let inspected = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(docker_err("inspect exec"))?;
        Ok((inspected.exit_code, text))
    }
}
