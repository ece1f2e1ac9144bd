//! A sandbox's own resources over its template's ([`effective_specs`]),
//! taking one off an agent ([`Orchestrator::remove_resource`]:
//! `agent.cmd.<id>.resource_remove`), and the periodic size of the ones
//! that run ([`Orchestrator::resource_sizer`]: `resource_sizes` asked of
//! each agent holding one, every `sandboxes.resource_size_interval`,
//! never with the heartbeat).

use std::time::Duration;

use sdp_api::{ResourceOrigin, ResourceSpec};
use sdp_bus::{ResourceRemove, ResourceRemoved, ResourceSizeList, ResourceSizes};
use tokio_util::sync::CancellationToken;

use super::Orchestrator;
use super::resources::ResourceError;
use crate::agent_client::AgentCallError;
use crate::store::Template;

/// A remove or a size poll: a few container and volume operations, or one
/// `du` per resource.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The resources a sandbox gets: its template's, each replaced by the
/// sandbox's own of the same name, then the sandbox's others, in that
/// order. Two different resources setting the same variable is an error
/// naming both.
pub fn effective_specs(
    template: &[ResourceSpec],
    own: &[ResourceSpec],
) -> Result<Vec<(ResourceSpec, ResourceOrigin)>, String> {
    let mut specs: Vec<(ResourceSpec, ResourceOrigin)> = template
        .iter()
        .filter(|t| !own.iter().any(|o| o.name == t.name))
        .map(|t| (t.clone(), ResourceOrigin::Template))
        .collect();
    specs.extend(own.iter().map(|o| (o.clone(), ResourceOrigin::Sandbox)));
    for (i, (a, _)) in specs.iter().enumerate() {
        if let Some((b, _)) = specs[i + 1..].iter().find(|(b, _)| b.env_var == a.env_var) {
            return Err(format!(
                "resources {} and {} both set {}: give one another env_var",
                a.name, b.name, a.env_var
            ));
        }
    }
    Ok(specs)
}

impl Orchestrator {
    /// The sandbox's effective resources (see [`effective_specs`]).
    pub fn sandbox_resources(
        &self,
        sandbox: &str,
        template: Option<&Template>,
    ) -> Result<Vec<(ResourceSpec, ResourceOrigin)>, ResourceError> {
        let own = self.store.sandbox_resource_specs(sandbox)?;
        let declared = template.map(|t| t.resources.as_slice()).unwrap_or_default();
        effective_specs(declared, &own).map_err(ResourceError::Clash)
    }

    /// Takes the resource off its agent (container and volume) and forgets
    /// its row. Idempotent. An agent that is offline keeps them until the
    /// sandbox is torn down (its labels name the sandbox); `false` then.
    pub async fn remove_resource(&self, sandbox: &str, name: &str) -> Result<bool, ResourceError> {
        let Some(row) = self.store.resource(sandbox, name)? else {
            return Ok(true);
        };
        let mut removed = true;
        if let Some(agent) = row.agent_id.as_deref() {
            let online = self
                .registry
                .views(self.heartbeat_timeout)
                .iter()
                .any(|a| a.id == agent && a.online);
            if online {
                let request = ResourceRemove {
                    sandbox: sandbox.to_owned(),
                    name: name.to_owned(),
                };
                let _: ResourceRemoved = self
                    .agents
                    .command(
                        agent,
                        sdp_bus::subject::RESOURCE_REMOVE,
                        &request,
                        CALL_TIMEOUT,
                    )
                    .await
                    .map_err(|source| ResourceError::Agent {
                        name: name.to_owned(),
                        source,
                    })?;
            } else {
                tracing::warn!(%sandbox, resource = %name, %agent, "the resource's agent is offline: its container and volume stay until the sandbox is deleted");
                removed = false;
            }
        }
        self.store.forget_resource(sandbox, name)?;
        Ok(removed)
    }

    /// Asks each online agent holding a ready resource for the sizes of
    /// its resources, and records them. Returns how many were recorded.
    pub async fn poll_resource_sizes(&self) -> Result<usize, crate::store::StoreError> {
        let online: Vec<String> = self
            .registry
            .views(self.heartbeat_timeout)
            .into_iter()
            .filter(|a| a.online && a.serves(sdp_bus::subject::RESOURCE_SIZES))
            .map(|a| a.id)
            .collect();
        let mut recorded = 0;
        for agent in self.store.resource_agents()? {
            if !online.contains(&agent) {
                continue;
            }
            let answer: Result<ResourceSizeList, AgentCallError> = self
                .agents
                .command(
                    &agent,
                    sdp_bus::subject::RESOURCE_SIZES,
                    &ResourceSizes {},
                    CALL_TIMEOUT,
                )
                .await;
            match answer {
                Ok(list) => {
                    for size in list.sizes {
                        if self.store.resource_size(
                            &size.sandbox,
                            &size.name,
                            &agent,
                            size.size_bytes,
                        )? {
                            recorded += 1;
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(%agent, error = %err, "cannot measure the agent's resources")
                }
            }
        }
        Ok(recorded)
    }

    /// Keeps the resources' sizes current: one poll every `every`.
    pub async fn resource_sizer(self, every: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let polled = tokio::select! {
                () = shutdown.cancelled() => return,
                polled = self.poll_resource_sizes() => polled,
            };
            if let Err(err) = polled {
                tracing::error!(error = %err, "resource size poll failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdp_bus::ResourceEngine;

    fn spec(name: &str, engine: ResourceEngine, var: &str) -> ResourceSpec {
        ResourceSpec {
            name: name.into(),
            engine,
            env_var: var.into(),
            seed: None,
        }
    }

    #[test]
    fn the_sandboxs_own_win_by_name_and_a_shared_variable_names_both() {
        let template = [
            spec("db", ResourceEngine::Postgres, "DATABASE_URL"),
            spec("cache", ResourceEngine::Redis, "REDIS_URL"),
        ];
        let own = [
            spec("db", ResourceEngine::Mariadb, "DATABASE_URL"),
            spec("queue", ResourceEngine::Redis, "QUEUE_URL"),
        ];
        let merged = effective_specs(&template, &own).expect("merged");
        let seen: Vec<_> = merged
            .iter()
            .map(|(s, o)| (s.name.as_str(), s.engine, *o))
            .collect();
        assert_eq!(
            seen,
            [
                ("cache", ResourceEngine::Redis, ResourceOrigin::Template),
                ("db", ResourceEngine::Mariadb, ResourceOrigin::Sandbox),
                ("queue", ResourceEngine::Redis, ResourceOrigin::Sandbox),
            ]
        );
        let clash = effective_specs(
            &template,
            &[spec("sessions", ResourceEngine::Redis, "REDIS_URL")],
        )
        .expect_err("clash");
        assert!(
            clash.contains("cache") && clash.contains("sessions"),
            "{clash}"
        );
        assert!(clash.contains("REDIS_URL"), "{clash}");
        assert_eq!(effective_specs(&[], &[]).expect("none"), []);
    }
}
