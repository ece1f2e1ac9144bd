//! [`ExtraAgent`]: more `sdp-agent-micro`s beside a [`Stack`]'s own, for
//! placement tests and the fleet bench.

use std::time::Duration;

use tempfile::TempDir;

use super::{Stack, spawn_logged};

/// A second (third…) `sdp-agent-micro` beside the stack's own, with its
/// own id and data dir, on the same repos.
pub struct ExtraAgent {
    pub id: String,
    _data: TempDir,
    _process: sdp_testkit::ChildGuard,
    _containers: sdp_testkit::ContainerCleanup,
}

impl ExtraAgent {
    pub async fn start(stack: &Stack, token: &str) -> ExtraAgent {
        Self::start_on(stack, token, None).await
    }

    /// With `advertise`: the agent stands for another host with that
    /// address.
    pub async fn start_on(stack: &Stack, token: &str, advertise: Option<String>) -> ExtraAgent {
        let id = sdp_testkit::unique_id("p");
        let data = TempDir::new().expect("data dir");
        let mut env = stack.agent_env();
        for (key, value) in &mut env {
            match key.as_str() {
                "SDP_AGENT__AGENT__ID" => *value = id.clone(),
                "SDP_AGENT__DATA_DIR" => *value = data.path().display().to_string(),
                "SDP_AGENT__ADVERTISE_HOST" => {
                    if let Some(advertise) = &advertise {
                        value.clone_from(advertise);
                    }
                }
                _ => {}
            }
        }
        let process = spawn_logged(
            stack.logs_dir.path(),
            &format!("agent-{id}"),
            &Stack::agent_binary(),
            &[],
            &env,
        );
        let agent = ExtraAgent {
            _containers: sdp_testkit::ContainerCleanup::agent(&id),
            id,
            _data: data,
            _process: process,
        };
        wait_online(stack, token, &agent.id).await;
        agent
    }

    pub fn pid(&self) -> u32 {
        self._process.pid()
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self._data.path()
    }
}

pub async fn wait_online(stack: &Stack, token: &str, id: &str) {
    sdp_testkit::wait_for(
        &format!("agent {id} online"),
        Duration::from_secs(30),
        || async {
            let (_, agents) = stack.get(token, "/api/agents").await;
            agents
                .as_array()?
                .iter()
                .any(|a| a["id"] == id && a["online"] == true)
                .then_some(())
        },
    )
    .await;
}
