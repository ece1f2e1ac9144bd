//! What sandbox resources need of the engine beyond a service: named
//! volumes (made, measured by their container, removed by label), the
//! resource's container (its volume at `/data`, restarted with the
//! engine, published on a kept host port), and execs with their own
//! environment and stdin (a password by env, seed SQL by stdin: never an
//! argv, never a file).

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::ListVolumesOptionsBuilder;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{Confined, DockerClient, confined_host, docker_err, is_not_found};
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

/// The engine's create body of a resource: the confinement of every
/// container ([`confined_host`]), restarted with the engine unless
/// stopped on purpose, its volume at `/data`.
pub(crate) fn resource_body(spec: &ResourceContainer) -> ContainerCreateBody {
    let port_key = format!("{}/tcp", spec.port);
    let host_config = HostConfig {
        mounts: Some(vec![Mount {
            target: Some("/data".to_owned()),
            source: Some(spec.volume.clone()),
            typ: Some(MountType::VOLUME),
            read_only: Some(false),
            ..Default::default()
        }]),
        ..confined_host(&Confined {
            memory: spec.memory,
            pids_limit: spec.pids_limit,
            restart: RestartPolicyNameEnum::UNLESS_STOPPED,
            port_key: &port_key,
            host_ip: spec.host_ip,
            host_port: spec.host_port,
        })
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        env: Some(spec.env.clone()),
        labels: Some(spec.labels.clone()),
        exposed_ports: Some(vec![port_key]),
        host_config: Some(host_config),
        ..Default::default()
    }
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
        self.create_named(&spec.name, resource_body(spec)).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_is_confined_like_a_service_and_kept_with_the_engine() {
        let spec = ResourceContainer {
            name: "sdp-resource.a.b.c".into(),
            image: "sdp-resource-redis:1".into(),
            labels: HashMap::new(),
            env: vec!["SDP_RESOURCE_PASSWORD=x".into()],
            volume: "sdp-resource.a.b.c".into(),
            port: 6379,
            host_ip: "10.0.0.5".parse().expect("ip"),
            host_port: Some(41000),
            memory: 512 << 20,
            pids_limit: 256,
        };
        let body = resource_body(&spec);
        let host = body.host_config.expect("host config");
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_owned()])
        );
        assert_eq!(host.privileged, Some(false));
        assert_eq!(host.pids_limit, Some(256));
        assert_eq!(host.memory, Some(512 << 20));
        assert_eq!(
            host.restart_policy.and_then(|p| p.name),
            Some(RestartPolicyNameEnum::UNLESS_STOPPED)
        );
        let binding = &host.port_bindings.expect("ports")["6379/tcp"]
            .clone()
            .expect("binding")[0];
        assert_eq!(binding.host_ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(binding.host_port.as_deref(), Some("41000"));
        let mounts = host.mounts.expect("mounts");
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].target.as_deref(), Some("/data"));
        assert_eq!(mounts[0].typ, Some(MountType::VOLUME));
        assert_eq!(body.exposed_ports, Some(vec!["6379/tcp".to_owned()]));
    }
}
