//! `deploy.request.<kind>` and `agent.cmd.<agent_id>.deploy`
//! ([`handle_deploy`]): the request is checked before anything touches git
//! or Docker, registered in the table of unsettled jobs (superseding the
//! same sandbox and service's), answered, and its [`crate::job`] spawned.

use std::sync::Arc;

use sdp_bus::{DeployAccepted, DeployRequest, Reply, RpcError, RpcErrorCode, decode, subject};

use crate::job;
use crate::reply::{bad_request, respond};
use crate::state::Agent;

/// Checks a request before anything touches git or Docker; the error is
/// for the requester (no host paths, no credential). Returns the repo's
/// origin URL.
async fn check_request(agent: &Agent, request: &DeployRequest) -> Result<String, RpcError> {
    sdp_bus::validate::repo(&request.repo).map_err(|e| bad_request(e.to_string()))?;
    sdp_bus::validate::branch(&request.branch).map_err(|e| bad_request(e.to_string()))?;
    sdp_bus::validate::resource_name("sandbox", &request.sandbox)
        .map_err(|e| bad_request(e.to_string()))?;
    if let Some(commit) = &request.commit {
        sdp_bus::validate::commit(commit).map_err(|e| bad_request(e.to_string()))?;
    }
    if let Some(key) = request.env.keys().find(|k| !job::is_env_key(k)) {
        return Err(bad_request(format!(
            "invalid env key {key:?}: use [A-Za-z_][A-Za-z0-9_]*"
        )));
    }
    // The control plane refuses these when they are written; a message
    // that still has one is hostile or stale, and nothing must start.
    if let Some(key) = request
        .env
        .keys()
        .find(|k| sdp_bus::service::is_reserved_env_key(k))
    {
        return Err(bad_request(format!(
            "env key {key:?} is reserved: SDP sets PORT and every SDP_* variable itself; remove it from the sandbox's environment"
        )));
    }
    let repos_dir = agent.config.repos_dir.clone();
    let repo = request.repo.clone();
    let schemes = agent.config.git.allowed_schemes.clone();
    tokio::task::spawn_blocking(move || crate::git::origin_url(&repos_dir, &repo, &schemes))
        .await
        .map_err(|e| {
            RpcError::new(
                RpcErrorCode::Internal,
                format!("checking the repo failed: {e}"),
            )
        })?
        .map_err(RpcError::from)
}

pub(crate) async fn handle_deploy(agent: Arc<Agent>, message: async_nats::Message) {
    let reply = message.reply.clone();
    let request: DeployRequest = match decode(&message.payload) {
        Ok(request) => request,
        Err(err) => {
            tracing::warn!(error = %err, "cannot decode a deploy request");
            let body = Reply::<DeployAccepted>::err(bad_request(format!(
                "cannot decode the deploy request: {err}"
            )));
            respond(&agent, reply, &body).await;
            return;
        }
    };
    let id = request.deployment_id.clone();
    let accepted = Reply::ok(DeployAccepted {
        agent_id: agent.agent_id().to_owned(),
    });
    if !subject::is_token(id.as_str()) {
        respond(
            &agent,
            reply,
            &Reply::<DeployAccepted>::err(bad_request("invalid deployment id")),
        )
        .await;
        return;
    }
    let url = match check_request(&agent, &request).await {
        Ok(url) => url,
        Err(err) => {
            tracing::info!(deployment = %id, repo = %request.repo, error = %err, "deploy request refused");
            respond(&agent, reply, &Reply::<DeployAccepted>::err(err)).await;
            return;
        }
    };
    if agent.shutdown.is_cancelled() {
        let err = RpcError::new(RpcErrorCode::Unavailable, "the agent is shutting down");
        respond(&agent, reply, &Reply::<DeployAccepted>::err(err)).await;
        return;
    }
    // Listen for cancels before accepting, so none can be missed.
    let cancels = match agent.client.subscribe(subject::deploy_cancel(&id)).await {
        Ok(subscriber) => subscriber,
        Err(err) => {
            tracing::warn!(error = %err, "cannot subscribe to deploy.cancel");
            let err = RpcError::new(
                RpcErrorCode::Unavailable,
                "the agent cannot reach NATS properly",
            );
            respond(&agent, reply, &Reply::<DeployAccepted>::err(err)).await;
            return;
        }
    };
    let registered = agent.register_job(&request);
    let Some((handle, superseded)) = registered else {
        // A retried request: already ours.
        respond(&agent, reply, &accepted).await;
        return;
    };
    tracing::info!(deployment = %id, sandbox = %request.sandbox, repo = %request.repo, branch = %request.branch, "deployment accepted");
    respond(&agent, reply, &accepted).await;
    let tasks = agent.tasks.clone();
    tasks.spawn(job::run_job(
        agent, handle, request, url, cancels, superseded,
    ));
}
