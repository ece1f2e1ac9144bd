//! What a deployed service's container is, as data: the [`RunSpec`] made
//! of the service's settings and the agent's config ([`run_spec`]), and the
//! engine's create body made of that ([`create_body`]). No Docker in here;
//! [`super::DockerClient::create`] sends the body.
//!
//! Every container gets the same confinement whatever the service asks
//! for: no privileges, `no-new-privileges`, every capability dropped (but
//! those `[container]` gives back), a pids limit, memory and CPU limits,
//! no restart, and only the agent's own paths mounted, read-only.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use sdp_bus::ServiceSettings;

use super::{LABEL_AGENT, LABEL_COMMIT, LABEL_DEPLOYMENT, LABEL_SANDBOX, LABEL_SERVICE};
use crate::config::{AgentConfig, ContainerConfig};
use crate::flavour::ContainerSpec;
use crate::service;

/// What to run for one deployment.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub name: String,
    pub image: String,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    /// The container port to publish.
    pub port: u16,
    /// The host port to publish it on; `None`: one Docker picks.
    pub host_port: Option<u16>,
    /// The host address to publish it on.
    pub host_ip: std::net::IpAddr,
    /// (host path, container path), mounted read-only (a directory or a
    /// file).
    pub mounts: Vec<(PathBuf, String)>,
    pub memory: i64,
    pub nano_cpus: i64,
    /// Pids limit, capabilities given back, user, read-only root.
    pub container: ContainerConfig,
}

/// One deployment of a service, as its container needs it.
#[derive(Clone, Copy, Debug)]
pub struct ServiceContainer<'a> {
    pub agent_id: &'a str,
    pub deployment_id: &'a str,
    pub sandbox: &'a str,
    pub repo: &'a str,
    pub branch: &'a str,
    pub commit: &'a str,
    /// The request's environment (the sandbox's vars, a gateway's routes).
    pub environment: &'a BTreeMap<String, String>,
    /// The service's effective settings.
    pub settings: &'a ServiceSettings,
    /// How the flavour's containers look.
    pub flavour: &'a ContainerSpec,
    pub config: &'a AgentConfig,
    pub image: &'a str,
    /// The checkout, the build output and the route table file on the host.
    pub worktree: &'a Path,
    pub artifact_dir: &'a Path,
    pub routes_file: &'a Path,
    /// The host port the service keeps for the sandbox's life, if any yet.
    pub host_port: Option<u16>,
}

/// The container of one deployment: the flavour's command and mounts, the
/// settings' command, working dir and env under what SDP sets, the
/// agent's limits and confinement.
pub fn run_spec(service: &ServiceContainer<'_>) -> RunSpec {
    let ServiceContainer {
        settings,
        flavour,
        config,
        ..
    } = *service;
    let mut sdp_env = vec![
        ("PORT", settings.port.to_string()),
        ("SDP_SANDBOX", service.sandbox.to_owned()),
        ("SDP_SERVICE", service.repo.to_owned()),
        ("SDP_BRANCH", service.branch.to_owned()),
        ("SDP_COMMIT", service.commit.to_owned()),
        ("SDP_DEPLOYMENT", service.deployment_id.to_owned()),
    ];
    let labels = HashMap::from([
        (
            LABEL_DEPLOYMENT.to_owned(),
            service.deployment_id.to_owned(),
        ),
        (LABEL_SANDBOX.to_owned(), service.sandbox.to_owned()),
        (LABEL_SERVICE.to_owned(), service.repo.to_owned()),
        (LABEL_AGENT.to_owned(), service.agent_id.to_owned()),
        (LABEL_COMMIT.to_owned(), service.commit.to_owned()),
    ]);
    let mut mounts = vec![(service.worktree.to_owned(), flavour.source_mount.to_owned())];
    if let Some(target) = flavour.artifact_mount {
        mounts.push((service.artifact_dir.to_owned(), target.to_owned()));
    }
    if let Some(target) = flavour.routes_file {
        mounts.push((service.routes_file.to_owned(), target.to_owned()));
        sdp_env.push(("SDP_ROUTES_FILE", target.to_owned()));
    }
    RunSpec {
        name: super::container_name(service.agent_id, service.sandbox, service.repo),
        image: service.image.to_owned(),
        cmd: service::container_command(
            settings,
            config.flavour.run_cmd.as_deref(),
            flavour.default_run_cmd.clone(),
        ),
        working_dir: service::container_working_dir(
            flavour.source_mount,
            settings.working_dir.as_deref(),
        ),
        env: service::container_env(service.environment, settings, &sdp_env),
        labels,
        port: settings.port,
        host_port: service.host_port,
        host_ip: config.publish_ip(),
        mounts,
        memory: config.memory_bytes(),
        nano_cpus: config.nano_cpus(),
        container: config.container.clone(),
    }
}

/// What every container SDP makes (a service's, a resource's) shares:
/// its limits, its restart policy and its one published port.
pub(crate) struct Confined<'a> {
    pub memory: i64,
    pub pids_limit: i64,
    pub restart: RestartPolicyNameEnum,
    /// `<port>/tcp`.
    pub port_key: &'a str,
    pub host_ip: std::net::IpAddr,
    /// `None`: the engine picks one.
    pub host_port: Option<u16>,
}

/// The confinement every container gets whatever it runs: not
/// privileged, `no-new-privileges`, every capability dropped, memory and
/// pids limits, its port published on one host address. Callers add what
/// is theirs (mounts, CPU, capabilities given back) over it.
pub(crate) fn confined_host(c: &Confined<'_>) -> HostConfig {
    HostConfig {
        memory: Some(c.memory),
        pids_limit: Some(c.pids_limit),
        security_opt: Some(vec!["no-new-privileges".to_owned()]),
        cap_drop: Some(vec!["ALL".to_owned()]),
        privileged: Some(false),
        restart_policy: Some(RestartPolicy {
            name: Some(c.restart),
            maximum_retry_count: None,
        }),
        port_bindings: Some(HashMap::from([(
            c.port_key.to_owned(),
            Some(vec![PortBinding {
                host_ip: Some(c.host_ip.to_string()),
                host_port: Some(c.host_port.map(|p| p.to_string()).unwrap_or_default()),
            }]),
        )])),
        ..Default::default()
    }
}

/// The engine's create body for `spec`: no privileges, no capabilities
/// but those `[container]` gives back, read-only mounts, memory, CPU and
/// pids limits, optionally another user and a read-only root.
pub fn create_body(spec: &RunSpec) -> ContainerCreateBody {
    let port_key = format!("{}/tcp", spec.port);
    let confine = &spec.container;
    let host_config = HostConfig {
        nano_cpus: Some(spec.nano_cpus),
        cap_add: (!confine.cap_add.is_empty()).then(|| confine.cap_add.clone()),
        readonly_rootfs: Some(confine.read_only_root),
        tmpfs: confine
            .read_only_root
            .then(|| HashMap::from([("/tmp".to_owned(), confine.tmpfs_options())])),
        mounts: Some(
            spec.mounts
                .iter()
                .map(|(source, target)| Mount {
                    target: Some(target.clone()),
                    source: Some(source.display().to_string()),
                    typ: Some(MountType::BIND),
                    read_only: Some(true),
                    ..Default::default()
                })
                .collect(),
        ),
        ..confined_host(&Confined {
            memory: spec.memory,
            pids_limit: confine.pids_limit,
            restart: RestartPolicyNameEnum::NO,
            port_key: &port_key,
            host_ip: spec.host_ip,
            host_port: spec.host_port,
        })
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: Some(spec.cmd.clone()),
        working_dir: Some(spec.working_dir.clone()),
        env: Some(spec.env.clone()),
        labels: Some(spec.labels.clone()),
        exposed_ports: Some(vec![port_key]),
        user: confine.user.clone(),
        host_config: Some(host_config),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn go_like() -> ContainerSpec {
        ContainerSpec {
            default_run_cmd: vec!["/sdp/app".to_owned()],
            source_mount: "/src",
            artifact_mount: Some("/sdp"),
            routes_file: None,
        }
    }

    fn gateway_like() -> ContainerSpec {
        ContainerSpec {
            default_run_cmd: vec!["php".to_owned()],
            source_mount: "/app",
            artifact_mount: None,
            routes_file: Some("/etc/sdp/routes.json"),
        }
    }

    /// The container of `settings` on an agent with `config`.
    fn body_for(
        settings: &ServiceSettings,
        environment: &BTreeMap<String, String>,
        flavour: &ContainerSpec,
        config: &AgentConfig,
    ) -> (RunSpec, ContainerCreateBody) {
        let spec = run_spec(&ServiceContainer {
            agent_id: "t-1",
            deployment_id: "d-1",
            sandbox: "alpha",
            repo: "users",
            branch: "main",
            commit: "c0ffee",
            environment,
            settings,
            flavour,
            config,
            image: "sdp-go-base:1",
            worktree: Path::new("/data/worktrees/alpha/users"),
            artifact_dir: Path::new("/data/builds/alpha/users"),
            routes_file: Path::new("/data/routes/alpha/users.json"),
            host_port: Some(41000),
        });
        let body = create_body(&spec);
        (spec, body)
    }

    #[test]
    fn a_service_runs_confined_with_its_settings_under_what_sdp_sets() {
        let settings = ServiceSettings {
            port: 5678,
            command: Some(vec!["/sdp/app".into(), "-listen=:${PORT}".into()]),
            working_dir: Some("web".into()),
            ..Default::default()
        };
        let environment = BTreeMap::from([("PORT".to_owned(), "1".to_owned())]);
        let (spec, body) = body_for(&settings, &environment, &go_like(), &AgentConfig::default());
        assert_eq!(spec.name, "sdp.t-1.alpha.users");
        assert_eq!(
            body.cmd.as_deref(),
            Some(&["/sdp/app".to_owned(), "-listen=:5678".to_owned()][..])
        );
        assert_eq!(body.working_dir.as_deref(), Some("/src/web"));
        let env = body.env.unwrap_or_default();
        assert!(env.contains(&"PORT=5678".to_owned()), "{env:?}");
        assert!(env.contains(&"SDP_COMMIT=c0ffee".to_owned()), "{env:?}");
        assert_eq!(body.exposed_ports, Some(vec!["5678/tcp".to_owned()]));
        let host = body.host_config.unwrap_or_default();
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(host.pids_limit, Some(256));
        let mounts: Vec<_> = host
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|m| (m.source.unwrap_or_default(), m.target.unwrap_or_default()))
            .collect();
        assert_eq!(
            mounts,
            [
                ("/data/worktrees/alpha/users".to_owned(), "/src".to_owned()),
                ("/data/builds/alpha/users".to_owned(), "/sdp".to_owned()),
            ]
        );
        assert_eq!(
            spec.labels.get(LABEL_DEPLOYMENT).map(String::as_str),
            Some("d-1")
        );
    }

    #[test]
    fn a_gateway_gets_its_route_table_mounted_and_named() {
        let settings = ServiceSettings::default();
        let (spec, _) = body_for(
            &settings,
            &BTreeMap::new(),
            &gateway_like(),
            &AgentConfig::default(),
        );
        assert!(spec.mounts.contains(&(
            PathBuf::from("/data/routes/alpha/users.json"),
            "/etc/sdp/routes.json".to_owned()
        )));
        assert!(
            spec.env
                .contains(&"SDP_ROUTES_FILE=/etc/sdp/routes.json".to_owned())
        );
    }

    fn text() -> impl Strategy<Value = String> {
        "[ -~]{0,24}"
    }

    /// Service settings as a repo's `sdp.toml` or a template could make
    /// them, and worse: any command, working dir, env and port.
    fn settings() -> impl Strategy<Value = ServiceSettings> {
        (
            any::<u16>(),
            proptest::option::of(proptest::collection::vec(text(), 1..4)),
            proptest::option::of(text()),
            proptest::collection::btree_map("[A-Z_]{1,12}", text(), 0..6),
        )
            .prop_map(|(port, command, working_dir, env)| ServiceSettings {
                port,
                command,
                working_dir,
                env,
                ..Default::default()
            })
    }

    /// A `[container]` section that passes its check.
    fn confinement() -> impl Strategy<Value = ContainerConfig> {
        (
            16i64..100_000,
            proptest::collection::vec(
                proptest::sample::select(vec!["NET_BIND_SERVICE", "CAP_CHOWN", "SETUID"]),
                0..3,
            ),
            proptest::option::of("[0-9]{1,5}(:[0-9]{1,5})?"),
            any::<bool>(),
        )
            .prop_map(
                |(pids_limit, cap_add, user, read_only_root)| ContainerConfig {
                    pids_limit,
                    cap_add: cap_add.into_iter().map(str::to_owned).collect(),
                    user,
                    read_only_root,
                    ..Default::default()
                },
            )
    }

    proptest! {
        /// Whatever the service's settings and environment: capabilities
        /// dropped, no new privileges, not privileged, the pids, memory
        /// and CPU limits, no restart, only the agent's own paths mounted
        /// (read-only, never the Docker socket), nothing shared with the
        /// host, and what SDP sets in the env wins.
        #[test]
        fn every_container_is_confined_whatever_the_service_asks(
            settings in settings(),
            environment in proptest::collection::btree_map("[A-Z_]{1,12}", text(), 0..6),
            gateway: bool,
            container in confinement(),
        ) {
            let flavour = if gateway { gateway_like() } else { go_like() };
            let config = AgentConfig { container: container.clone(), ..Default::default() };
            prop_assert!(container.check().is_ok(), "{:?}", container);
            let (spec, body) = body_for(&settings, &environment, &flavour, &config);
            let host = body.host_config.clone().unwrap_or_default();
            prop_assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
            prop_assert_eq!(host.security_opt, Some(vec!["no-new-privileges".to_owned()]));
            prop_assert_eq!(host.privileged, Some(false));
            prop_assert_eq!(host.pids_limit, Some(container.pids_limit));
            prop_assert!(host.pids_limit.is_some_and(|limit| limit >= 16));
            prop_assert_eq!(host.memory, Some(config.memory_bytes()));
            prop_assert_eq!(host.nano_cpus, Some(config.nano_cpus()));
            prop_assert!(host.cap_add.iter().flatten().all(|cap| !cap.ends_with("ALL")));
            prop_assert_eq!(
                host.restart_policy.and_then(|p| p.name),
                Some(RestartPolicyNameEnum::NO)
            );
            // Nothing of the host's beyond the mounts and the one port.
            prop_assert!(host.binds.is_none() && host.devices.is_none());
            prop_assert!(host.network_mode.is_none() && host.pid_mode.is_none());
            prop_assert!(host.ipc_mode.is_none() && host.userns_mode.is_none());
            prop_assert!(host.volumes_from.is_none() && host.device_requests.is_none());
            let agent_paths = [
                "/data/worktrees/alpha/users",
                "/data/builds/alpha/users",
                "/data/routes/alpha/users.json",
            ];
            for mount in host.mounts.iter().flatten() {
                prop_assert_eq!(mount.read_only, Some(true));
                prop_assert_eq!(mount.typ, Some(MountType::BIND));
                let source = mount.source.as_deref().unwrap_or_default();
                prop_assert!(agent_paths.contains(&source), "mounts {}", source);
                prop_assert!(!source.contains("docker.sock"));
            }
            prop_assert_eq!(host.readonly_rootfs, Some(container.read_only_root));
            prop_assert_eq!(host.tmpfs.is_some(), container.read_only_root);
            prop_assert_eq!(body.user, container.user);
            let bindings: Vec<_> = host.port_bindings.iter().flatten().collect();
            prop_assert_eq!(bindings.len(), 1);
            prop_assert_eq!(bindings[0].0, &format!("{}/tcp", settings.port));
            let env = body.env.unwrap_or_default();
            let port = format!("PORT={}", settings.port);
            prop_assert!(env.contains(&port));
            prop_assert!(env.contains(&"SDP_SANDBOX=alpha".to_owned()));
            prop_assert!(env.contains(&"SDP_DEPLOYMENT=d-1".to_owned()));
            prop_assert!(env.iter().filter(|e| e.starts_with("PORT=")).count() == 1);
            prop_assert_eq!(spec.labels.get(LABEL_AGENT).map(String::as_str), Some("t-1"));
        }
    }
}
