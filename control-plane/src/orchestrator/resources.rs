//! Sandbox resources: before a service of a sandbox is deployed, each
//! resource its template or the sandbox itself declares is recorded (with a password made once
//! per sandbox), made ready on an agent (`agent.cmd.<id>.resource_ensure`:
//! the agent it already runs on, where its volume is, else an online agent
//! that serves the method) and its URL put in the service's env under the
//! declared variable. A reset asks the same agent to drop the volume and
//! seed anew; the host port, so the URL, stays.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::RngCore;
use sdp_api::{ResourceSpec, ResourceState};
use sdp_bus::{GitCredential, ResourceEnsure, ResourceReady, Secret};

use super::Orchestrator;
use crate::agent_client::AgentCallError;
use crate::store::{StoreError, StoredResource, Template};

/// From the request to a ready (and seeded) server: the agent's own
/// `resources.ready_timeout_secs` (120 s by default) and a seed's fetch.
const ENSURE_TIMEOUT: Duration = Duration::from_secs(180);

/// Why a resource is not ready.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no online agent runs sandbox resources")]
    NoAgent,
    /// Two resources set one variable (a template changed under a
    /// sandbox's own).
    #[error("{0}")]
    Clash(String),
    #[error("resource {name}: {source}")]
    Agent {
        name: String,
        #[source]
        source: AgentCallError,
    },
}

/// 32 letters and digits: fits a URL and a quoted SQL string as it is.
fn new_password() -> Secret {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    // 256 % 62 skews a little toward the first 8 symbols: 32 of them keep
    // well over 180 bits.
    Secret::new(
        bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect::<String>(),
    )
}

/// The resource's URL with its password, if it was placed.
pub fn resource_url(resource: &StoredResource, password: &Secret) -> Option<String> {
    let host = resource.host.as_deref()?;
    let port = resource.port?;
    Some(resource.engine.url(password.expose(), host, port))
}

impl Orchestrator {
    /// Makes each resource of the sandbox (its template's and its own, see
    /// [`super::sandbox_resources::effective_specs`]) ready and returns the
    /// env of their URLs. A resource that cannot be made ready is recorded
    /// as failed and the error returned.
    pub async fn resource_env(
        &self,
        sandbox: &str,
        template: Option<&Template>,
        credential: &GitCredential,
    ) -> Result<BTreeMap<String, String>, ResourceError> {
        let mut env = BTreeMap::new();
        for (spec, _) in self.sandbox_resources(sandbox, template)? {
            let spec = &spec;
            if !self
                .store
                .declare_resource(sandbox, spec, &new_password())?
            {
                continue;
            }
            let (resource, password) = self
                .ensure_resource(sandbox, spec, credential, false)
                .await?;
            if let Some(url) = resource_url(&resource, &password) {
                env.insert(spec.env_var.clone(), url);
            }
        }
        Ok(env)
    }

    /// Resets the sandbox's resource `spec` (its effective one): drops its
    /// data and seeds it anew.
    pub async fn reset_resource(
        &self,
        sandbox: &str,
        spec: &ResourceSpec,
        credential: &GitCredential,
    ) -> Result<StoredResource, ResourceError> {
        self.store
            .declare_resource(sandbox, spec, &new_password())?;
        let (resource, _) = self
            .ensure_resource(sandbox, spec, credential, true)
            .await?;
        Ok(resource)
    }

    async fn ensure_resource(
        &self,
        sandbox: &str,
        spec: &ResourceSpec,
        credential: &GitCredential,
        reset: bool,
    ) -> Result<(StoredResource, Secret), ResourceError> {
        let stored = self.store.resource(sandbox, &spec.name)?;
        let password = self
            .store
            .resource_password(sandbox, &spec.name)?
            .ok_or_else(|| StoreError::Malformed(format!("resource {} has no row", spec.name)))?;
        let agent = match stored.as_ref().and_then(|r| r.agent_id.clone()) {
            Some(agent) => agent,
            None => self.resource_agent().ok_or(ResourceError::NoAgent)?,
        };
        if reset
            || stored
                .as_ref()
                .is_none_or(|r| r.state != ResourceState::Ready)
        {
            self.store.resource_starting(sandbox, &spec.name)?;
        }
        let request = ResourceEnsure {
            sandbox: sandbox.to_owned(),
            name: spec.name.clone(),
            engine: spec.engine,
            password: password.clone(),
            seed: spec.seed.clone(),
            credential: spec.seed.as_ref().map(|_| credential.clone()),
            reset,
        };
        let answer: Result<ResourceReady, AgentCallError> = self
            .agents
            .command(
                &agent,
                sdp_bus::subject::RESOURCE_ENSURE,
                &request,
                ENSURE_TIMEOUT,
            )
            .await;
        match answer {
            Ok(ready) => {
                self.store.resource_ready(
                    sandbox,
                    &spec.name,
                    &agent,
                    &ready.host,
                    ready.port,
                    ready.size_bytes,
                )?;
            }
            Err(source) => {
                self.store.resource_failed(
                    sandbox,
                    &spec.name,
                    Some(&agent),
                    &source.to_string(),
                )?;
                return Err(ResourceError::Agent {
                    name: spec.name.clone(),
                    source,
                });
            }
        }
        let resource = self
            .store
            .resource(sandbox, &spec.name)?
            .ok_or_else(|| StoreError::Malformed(format!("resource {} vanished", spec.name)))?;
        Ok((resource, password))
    }

    /// An online agent that runs resources: one of kind `micro` (where the
    /// services run) first, then any, by id.
    fn resource_agent(&self) -> Option<String> {
        let mut agents: Vec<_> = self
            .registry
            .views(self.heartbeat_timeout)
            .into_iter()
            .filter(|a| a.online && a.serves(sdp_bus::subject::RESOURCE_ENSURE))
            .collect();
        agents.sort_by(|a, b| {
            (a.kind != sdp_bus::subject::KIND_MICRO, &a.id)
                .cmp(&(b.kind != sdp_bus::subject::KIND_MICRO, &b.id))
        });
        agents.into_iter().next().map(|a| a.id)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_long_plain_and_new_each_time() {
        let (a, b) = (super::new_password(), super::new_password());
        assert_eq!(a.expose().len(), 32);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
