//! A typed async client of the REST API (feature `client`): one
//! `reqwest::Client`, the control plane's base URL and the bearer token.
//! One method per operation, taking and returning this crate's types; an
//! error answer (`{"error": {"code", "message"}}`) is
//! [`ClientError::Api`] with its HTTP status.
//!
//! The deployment WebSocket is not here (the CLI and the tests each hold
//! their own WebSocket client): [`Client::ws_url`] gives its address.

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use sdp_bus::{BranchInfo, RepoInfo};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::paging::{NEXT_CURSOR_HEADER, page_limit};
use crate::{
    AgentView, AuditEntry, AuditPage, AuditQuery, CancelRequested, DeliveriesQuery, Delivery,
    Deployment, DeploymentStarted, EffectiveRoute, Environment, EnvironmentVars, ErrorBody,
    ListQuery, LoginBody, LoginResponse, Me, NewDeployment, NewEnvironment, NewSandbox, NewTestRun,
    Page, ProbeResult, ResourceBody, RouteBody, RuntimeLogsQuery, SandboxPatch, SandboxResource,
    SandboxStaleness, SandboxView, SandboxesQuery, ServiceAutodeploy, ServiceEnv, ServiceEnvWrite,
    ServiceView, TeardownReport, Template, TemplateBody, TemplateDeploy, TemplateDeployStarted,
    TemplateNotify, TestRun, TestRunsQuery,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The control plane's error answer: its status, code and message as
    /// sent (`code` is `http_error` when the body was not the API's error
    /// shape).
    #[error("{message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// Set when a deployment was recorded before its dispatch failed.
        deployment_id: Option<String>,
    },
    #[error("cannot reach the control plane at {url}")]
    Network {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the control plane sent an unexpected answer to {what}")]
    Malformed {
        what: String,
        #[source]
        source: reqwest::Error,
    },
}

impl ClientError {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The API's error code of an error answer.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A request's outcome.
pub type Result<T> = std::result::Result<T, ClientError>;

#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of the control plane at `base` (`http://host:port`), with
    /// a session token or none (only login and the open endpoints).
    pub fn new(base: &str, token: Option<String>) -> Client {
        let http = reqwest::Client::builder()
            .user_agent(concat!("sdp/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Client::with_http(http, base, token)
    }

    /// The same over a `reqwest::Client` of the caller's (timeouts,
    /// cookies, TLS roots).
    pub fn with_http(http: reqwest::Client, base: &str, token: Option<String>) -> Client {
        Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// This client with another session token.
    pub fn with_token(&self, token: String) -> Client {
        Client {
            token: Some(token),
            ..self.clone()
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The WebSocket URL of `path` (`http` → `ws`, `https` → `wss`).
    pub fn ws_url(&self, path: &str) -> String {
        let base = if let Some(rest) = self.base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.base.clone()
        };
        format!("{base}{path}")
    }

    // --- session ---

    /// `POST /api/login`: the answer holds the token; [`Self::with_token`]
    /// makes the logged-in client.
    pub async fn login(&self, username: &str, password: &str) -> Result<LoginResponse> {
        let body = LoginBody {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        self.json(Method::POST, "/api/login", Some(&body)).await
    }

    /// `POST /api/logout`.
    pub async fn logout(&self) -> Result<()> {
        self.empty(Method::POST, "/api/logout").await
    }

    /// `GET /api/me`.
    pub async fn me(&self) -> Result<Me> {
        self.get("/api/me").await
    }

    // --- agents and repos ---

    /// `GET /api/agents`.
    pub async fn agents(&self) -> Result<Vec<AgentView>> {
        self.get("/api/agents").await
    }

    /// `GET /api/repos`.
    pub async fn repos(&self) -> Result<Vec<RepoInfo>> {
        self.get("/api/repos").await
    }

    /// `GET /api/repos/{repo}/branches`.
    pub async fn branches(&self, repo: &str) -> Result<Vec<BranchInfo>> {
        self.get(&format!("/api/repos/{}/branches", segment(repo)))
            .await
    }

    // --- environments and templates ---

    /// `GET /api/environments`.
    pub async fn environments(&self) -> Result<Vec<Environment>> {
        self.get("/api/environments").await
    }

    /// `POST /api/environments`.
    pub async fn create_environment(&self, body: &NewEnvironment) -> Result<Environment> {
        self.json(Method::POST, "/api/environments", Some(body))
            .await
    }

    /// `PUT /api/environments/{name}`.
    pub async fn update_environment(
        &self,
        name: &str,
        body: &EnvironmentVars,
    ) -> Result<Environment> {
        self.json(Method::PUT, &environment_path(name), Some(body))
            .await
    }

    /// `DELETE /api/environments/{name}`.
    pub async fn delete_environment(&self, name: &str) -> Result<()> {
        self.empty(Method::DELETE, &environment_path(name)).await
    }

    /// `GET /api/templates`.
    pub async fn templates(&self) -> Result<Vec<Template>> {
        self.get("/api/templates").await
    }

    /// `POST /api/templates`.
    pub async fn create_template(&self, body: &TemplateBody) -> Result<Template> {
        self.json(Method::POST, "/api/templates", Some(body)).await
    }

    /// `PUT /api/templates/{name}`.
    pub async fn update_template(&self, name: &str, body: &TemplateBody) -> Result<Template> {
        self.json(Method::PUT, &template_path(name), Some(body))
            .await
    }

    /// `DELETE /api/templates/{name}`.
    pub async fn delete_template(&self, name: &str) -> Result<()> {
        self.empty(Method::DELETE, &template_path(name)).await
    }

    // --- sandboxes ---

    /// `GET /api/sandboxes`: every sandbox, by name, following the
    /// cursors.
    pub async fn sandboxes(&self) -> Result<Vec<SandboxView>> {
        self.all_sandboxes(None).await
    }

    /// `GET /api/sandboxes?limit=&cursor=`: one page, by name.
    pub async fn sandboxes_page(&self, query: &SandboxesQuery) -> Result<Page<SandboxView>> {
        let builder = self.request(Method::GET, "/api/sandboxes").query(query);
        self.read_page("/api/sandboxes", builder).await
    }

    /// The sandboxes by name, at most `wanted` (`None`: all), following
    /// the cursors.
    pub async fn all_sandboxes(&self, wanted: Option<usize>) -> Result<Vec<SandboxView>> {
        follow(wanted, |limit, cursor| async move {
            self.sandboxes_page(&SandboxesQuery {
                limit: Some(limit),
                cursor,
            })
            .await
        })
        .await
    }

    /// `GET /api/sandboxes/{name}` (with its route table).
    pub async fn sandbox(&self, name: &str) -> Result<SandboxView> {
        self.get(&sandbox_path(name)).await
    }

    /// `POST /api/sandboxes`.
    pub async fn create_sandbox(&self, body: &NewSandbox) -> Result<SandboxView> {
        self.json(Method::POST, "/api/sandboxes", Some(body)).await
    }

    /// `PATCH /api/sandboxes/{name}`.
    pub async fn update_sandbox(&self, name: &str, body: &SandboxPatch) -> Result<SandboxView> {
        self.json(Method::PATCH, &sandbox_path(name), Some(body))
            .await
    }

    /// `DELETE /api/sandboxes/{name}`: what each agent removed.
    pub async fn delete_sandbox(&self, name: &str) -> Result<TeardownReport> {
        self.json(Method::DELETE, &sandbox_path(name), None::<&()>)
            .await
    }

    /// `POST /api/sandboxes/{name}/wake`: the sandbox once awake (its
    /// services healthy).
    pub async fn wake_sandbox(&self, name: &str) -> Result<SandboxView> {
        let path = format!("{}/wake", sandbox_path(name));
        self.json(Method::POST, &path, None::<&()>).await
    }

    /// `POST /api/sandboxes/{name}/deploy`: the template's deployments.
    pub async fn deploy_template(
        &self,
        name: &str,
        body: &TemplateDeploy,
    ) -> Result<TemplateDeployStarted> {
        let path = format!("{}/deploy", sandbox_path(name));
        self.json(Method::POST, &path, Some(body)).await
    }

    /// `GET /api/sandboxes/{name}/routes`.
    pub async fn routes(&self, sandbox: &str) -> Result<Vec<EffectiveRoute>> {
        self.get(&format!("{}/routes", sandbox_path(sandbox))).await
    }

    /// `PUT /api/sandboxes/{name}/routes/{service}`: a manual route.
    pub async fn put_route(
        &self,
        sandbox: &str,
        service: &str,
        target: &str,
    ) -> Result<EffectiveRoute> {
        let body = RouteBody {
            target: target.to_owned(),
        };
        self.json(Method::PUT, &route_path(sandbox, service), Some(&body))
            .await
    }

    /// `DELETE /api/sandboxes/{name}/routes/{service}`.
    pub async fn delete_route(&self, sandbox: &str, service: &str) -> Result<()> {
        self.empty(Method::DELETE, &route_path(sandbox, service))
            .await
    }

    /// `GET /api/sandboxes/{name}/staleness`.
    pub async fn staleness(&self, sandbox: &str) -> Result<SandboxStaleness> {
        self.get(&format!("{}/staleness", sandbox_path(sandbox)))
            .await
    }

    /// `POST /api/sandboxes/{name}/probe`.
    pub async fn probe(&self, sandbox: &str) -> Result<ProbeResult> {
        let path = format!("{}/probe", sandbox_path(sandbox));
        self.json(Method::POST, &path, Some(&serde_json::json!({})))
            .await
    }

    /// `PUT /api/sandboxes/{name}/services/{repo}`: autodeploy on a push
    /// to the service's branch, or not.
    pub async fn set_autodeploy(
        &self,
        sandbox: &str,
        repo: &str,
        autodeploy: bool,
    ) -> Result<ServiceView> {
        let body = ServiceAutodeploy { autodeploy };
        self.json(Method::PUT, &service_path(sandbox, repo), Some(&body))
            .await
    }

    /// `GET /api/sandboxes/{name}/services/{repo}/env`.
    pub async fn service_env(&self, sandbox: &str, repo: &str) -> Result<ServiceEnv> {
        self.get(&format!("{}/env", service_path(sandbox, repo)))
            .await
    }

    /// `PUT /api/sandboxes/{name}/services/{repo}/env`.
    pub async fn put_service_env(
        &self,
        sandbox: &str,
        repo: &str,
        body: &ServiceEnvWrite,
    ) -> Result<ServiceEnv> {
        let path = format!("{}/env", service_path(sandbox, repo));
        self.json(Method::PUT, &path, Some(body)).await
    }

    // --- resources ---

    /// `GET /api/sandboxes/{name}/resources`.
    pub async fn resources(&self, sandbox: &str) -> Result<Vec<SandboxResource>> {
        self.get(&format!("{}/resources", sandbox_path(sandbox)))
            .await
    }

    /// `POST /api/sandboxes/{name}/resources/{resource}/reset`: answers
    /// when the resource is ready again.
    pub async fn reset_resource(&self, sandbox: &str, resource: &str) -> Result<SandboxResource> {
        let path = format!(
            "{}/resources/{}/reset",
            sandbox_path(sandbox),
            segment(resource)
        );
        self.json(Method::POST, &path, None::<&()>).await
    }

    /// `PUT /api/sandboxes/{name}/resources/{resource}`: adds (or
    /// changes) a resource of the sandbox's own; answers its resources.
    pub async fn put_resource(
        &self,
        sandbox: &str,
        resource: &str,
        body: &ResourceBody,
    ) -> Result<Vec<SandboxResource>> {
        let path = format!("{}/resources/{}", sandbox_path(sandbox), segment(resource));
        self.json(Method::PUT, &path, Some(body)).await
    }

    /// `DELETE /api/sandboxes/{name}/resources/{resource}`: removes a
    /// resource of the sandbox's own (its container and data too).
    pub async fn delete_resource(
        &self,
        sandbox: &str,
        resource: &str,
    ) -> Result<Vec<SandboxResource>> {
        let path = format!("{}/resources/{}", sandbox_path(sandbox), segment(resource));
        self.json(Method::DELETE, &path, None::<&()>).await
    }

    // --- deployments ---

    /// `POST /api/sandboxes/{name}/deployments`.
    pub async fn deploy(&self, sandbox: &str, body: &NewDeployment) -> Result<DeploymentStarted> {
        let path = format!("{}/deployments", sandbox_path(sandbox));
        self.json(Method::POST, &path, Some(body)).await
    }

    /// `GET /api/audit?…`: one page of the audit trail, newest first.
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage> {
        let builder = self.request(Method::GET, "/api/audit").query(query);
        self.read("/api/audit", builder).await
    }

    /// The audit trail's entries matching `query`, newest first, at most
    /// `wanted` (`None`: all), following the cursors.
    pub async fn all_audit(
        &self,
        query: &AuditQuery,
        wanted: Option<usize>,
    ) -> Result<Vec<AuditEntry>> {
        follow(wanted, |limit, cursor| async move {
            let page = self
                .audit(&AuditQuery {
                    limit: Some(limit),
                    cursor,
                    page: None,
                    ..query.clone()
                })
                .await?;
            Ok(Page {
                items: page.entries,
                next_cursor: page.next_cursor,
            })
        })
        .await
    }

    /// `GET /api/deployments?…`: one page, newest first (the first, or
    /// that of `query.cursor`).
    pub async fn deployments(&self, query: &ListQuery) -> Result<Vec<Deployment>> {
        Ok(self.deployments_page(query).await?.items)
    }

    /// `GET /api/deployments?…`: one page with the next one's cursor.
    pub async fn deployments_page(&self, query: &ListQuery) -> Result<Page<Deployment>> {
        let builder = self.request(Method::GET, "/api/deployments").query(query);
        self.read_page("/api/deployments", builder).await
    }

    /// The deployments matching `query`, newest first, at most `wanted`
    /// (`None`: all), following the cursors.
    pub async fn all_deployments(
        &self,
        query: &ListQuery,
        wanted: Option<usize>,
    ) -> Result<Vec<Deployment>> {
        follow(wanted, |limit, cursor| async move {
            self.deployments_page(&ListQuery {
                limit: Some(limit),
                cursor,
                ..query.clone()
            })
            .await
        })
        .await
    }

    /// `GET /api/deployments/{id}`.
    pub async fn deployment(&self, id: &str) -> Result<Deployment> {
        self.get(&deployment_path(id)).await
    }

    /// `POST /api/deployments/{id}/cancel`.
    pub async fn cancel(&self, id: &str) -> Result<CancelRequested> {
        let path = format!("{}/cancel", deployment_path(id));
        self.json(Method::POST, &path, Some(&serde_json::json!({})))
            .await
    }

    /// `POST /api/deployments/{id}/redeploy`: its commit again (rollback).
    pub async fn redeploy(&self, id: &str) -> Result<DeploymentStarted> {
        let path = format!("{}/redeploy", deployment_path(id));
        self.json(Method::POST, &path, Some(&serde_json::json!({})))
            .await
    }

    /// `POST /api/sandboxes/{name}/test-runs`.
    pub async fn start_test_run(&self, sandbox: &str, body: &NewTestRun) -> Result<TestRun> {
        let path = format!("{}/test-runs", sandbox_path(sandbox));
        self.json(Method::POST, &path, Some(body)).await
    }

    /// `GET /api/sandboxes/{name}/test-runs`: the first page, newest
    /// first.
    pub async fn test_runs(&self, sandbox: &str) -> Result<Vec<TestRun>> {
        Ok(self
            .test_runs_page(sandbox, &TestRunsQuery::default())
            .await?
            .items)
    }

    /// `GET /api/sandboxes/{name}/test-runs?limit=&cursor=`: one page.
    pub async fn test_runs_page(
        &self,
        sandbox: &str,
        query: &TestRunsQuery,
    ) -> Result<Page<TestRun>> {
        let path = format!("{}/test-runs", sandbox_path(sandbox));
        let builder = self.request(Method::GET, &path).query(query);
        self.read_page(&path, builder).await
    }

    /// The sandbox's test runs, newest first, at most `wanted` (`None`:
    /// all), following the cursors.
    pub async fn all_test_runs(
        &self,
        sandbox: &str,
        wanted: Option<usize>,
    ) -> Result<Vec<TestRun>> {
        follow(wanted, |limit, cursor| async move {
            let query = TestRunsQuery {
                limit: Some(limit),
                cursor,
            };
            self.test_runs_page(sandbox, &query).await
        })
        .await
    }

    /// `GET /api/test-runs/{id}`.
    pub async fn test_run(&self, id: &str) -> Result<TestRun> {
        self.get(&format!("/api/test-runs/{}", segment(id))).await
    }

    /// `POST /api/test-runs/{id}/cancel`: the run as it was when the
    /// cancel was sent.
    pub async fn cancel_test_run(&self, id: &str) -> Result<TestRun> {
        let path = format!("/api/test-runs/{}/cancel", segment(id));
        self.json(Method::POST, &path, Some(&serde_json::json!({})))
            .await
    }

    /// `GET /api/deployments/{id}/logs`: the whole log as text.
    pub async fn deployment_logs(&self, id: &str) -> Result<String> {
        let path = format!("{}/logs", deployment_path(id));
        let response = self.send(self.request(Method::GET, &path)).await?;
        response
            .text()
            .await
            .map_err(|source| ClientError::Malformed { what: path, source })
    }

    /// `GET /api/deployments/{id}/runtime-logs`: the response, for the
    /// caller to read as it comes (`Response::chunk`).
    pub async fn runtime_logs(&self, id: &str, query: &RuntimeLogsQuery) -> Result<Response> {
        let path = format!("{}/runtime-logs", deployment_path(id));
        self.send(self.request(Method::GET, &path).query(query))
            .await
    }

    // --- notifications ---

    /// `GET /api/deliveries?…`: build statuses and webhooks sent, newest
    /// first, with their last outcome.
    pub async fn deliveries(&self, query: &DeliveriesQuery) -> Result<Vec<Delivery>> {
        Ok(self.deliveries_page(query).await?.items)
    }

    /// `GET /api/deliveries?…`: one page with the next one's cursor.
    pub async fn deliveries_page(&self, query: &DeliveriesQuery) -> Result<Page<Delivery>> {
        let builder = self.request(Method::GET, "/api/deliveries").query(query);
        self.read_page("/api/deliveries", builder).await
    }

    /// The deliveries matching `query`, newest first, at most `wanted`
    /// (`None`: all), following the cursors.
    pub async fn all_deliveries(
        &self,
        query: &DeliveriesQuery,
        wanted: Option<usize>,
    ) -> Result<Vec<Delivery>> {
        follow(wanted, |limit, cursor| async move {
            self.deliveries_page(&DeliveriesQuery {
                limit: Some(limit),
                cursor,
                ..query.clone()
            })
            .await
        })
        .await
    }

    /// `GET /api/templates/{name}/notify`.
    pub async fn template_notify(&self, name: &str) -> Result<TemplateNotify> {
        self.get(&format!("{}/notify", template_path(name))).await
    }

    /// `PUT /api/templates/{name}/notify`: replaces its outgoing webhooks.
    pub async fn put_template_notify(
        &self,
        name: &str,
        body: &TemplateNotify,
    ) -> Result<TemplateNotify> {
        let path = format!("{}/notify", template_path(name));
        self.json(Method::PUT, &path, Some(body)).await
    }

    /// `GET /api/environments/{name}/notify`.
    pub async fn environment_notify(&self, name: &str) -> Result<TemplateNotify> {
        self.get(&format!("{}/notify", environment_path(name)))
            .await
    }

    /// `PUT /api/environments/{name}/notify`: replaces its outgoing webhooks.
    pub async fn put_environment_notify(
        &self,
        name: &str,
        body: &TemplateNotify,
    ) -> Result<TemplateNotify> {
        let path = format!("{}/notify", environment_path(name));
        self.json(Method::PUT, &path, Some(body)).await
    }

    // --- plumbing ---

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Sends the request; an answer other than 2xx is [`ClientError::Api`].
    async fn send(&self, builder: RequestBuilder) -> Result<Response> {
        let response = builder
            .send()
            .await
            .map_err(|source| ClientError::Network {
                url: self.base.clone(),
                source,
            })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        Err(error_answer(status, &body))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.read(path, self.request(Method::GET, path)).await
    }

    async fn json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let mut builder = self.request(method, path);
        if let Some(body) = body {
            builder = builder.json(body);
        }
        self.read(path, builder).await
    }

    async fn read<T: DeserializeOwned>(&self, path: &str, builder: RequestBuilder) -> Result<T> {
        let response = self.send(builder).await?;
        response
            .json()
            .await
            .map_err(|source| ClientError::Malformed {
                what: path.to_owned(),
                source,
            })
    }

    /// A page of a list: the JSON array, and the next page's cursor from
    /// its header.
    async fn read_page<T: DeserializeOwned>(
        &self,
        path: &str,
        builder: RequestBuilder,
    ) -> Result<Page<T>> {
        let response = self.send(builder).await?;
        let next_cursor = response
            .headers()
            .get(NEXT_CURSOR_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let items = response
            .json()
            .await
            .map_err(|source| ClientError::Malformed {
                what: path.to_owned(),
                source,
            })?;
        Ok(Page { items, next_cursor })
    }

    /// A request whose answer has no body (204).
    async fn empty(&self, method: Method, path: &str) -> Result<()> {
        let response = self.send(self.request(method, path)).await?;
        if response.status() != StatusCode::NO_CONTENT {
            // The body does not matter; read it so the connection is reused.
            let _ = response.bytes().await;
        }
        Ok(())
    }
}

/// Every item of a list, at most `wanted` (`None`: all): `fetch` gets each
/// page's limit and the cursor of the page before (`None` first).
pub async fn follow<T, F, Fut>(wanted: Option<usize>, mut fetch: F) -> Result<Vec<T>>
where
    F: FnMut(u32, Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>>>,
{
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let page = fetch(page_limit(wanted, items.len()), cursor.take()).await?;
        let empty = page.items.is_empty();
        items.extend(page.items);
        if let Some(wanted) = wanted
            && items.len() >= wanted
        {
            items.truncate(wanted);
            break;
        }
        // An empty page ends it too, whatever it says: no loop forever.
        match page.next_cursor {
            Some(next) if !empty => cursor = Some(next),
            _ => break,
        }
    }
    Ok(items)
}

/// An error answer's [`ClientError::Api`]: the API's error shape, else the
/// status alone.
pub fn error_answer(status: u16, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => ClientError::Api {
            status,
            code: error.code,
            message: error.message,
            deployment_id: error.deployment_id,
        },
        Err(_) => ClientError::Api {
            status,
            code: "http_error".to_owned(),
            message: format!("the control plane answered HTTP {status}"),
            deployment_id: None,
        },
    }
}

fn environment_path(name: &str) -> String {
    format!("/api/environments/{}", segment(name))
}

fn template_path(name: &str) -> String {
    format!("/api/templates/{}", segment(name))
}

fn sandbox_path(name: &str) -> String {
    format!("/api/sandboxes/{}", segment(name))
}

fn route_path(sandbox: &str, service: &str) -> String {
    format!("{}/routes/{}", sandbox_path(sandbox), segment(service))
}

fn service_path(sandbox: &str, repo: &str) -> String {
    format!("{}/services/{}", sandbox_path(sandbox), segment(repo))
}

fn deployment_path(id: &str) -> String {
    format!("/api/deployments/{}", segment(id))
}

/// A path segment as it goes into a URL (names are validated by the
/// server, but a user may type anything).
pub fn segment(text: &str) -> String {
    if text.bytes().all(|b| b == b'.') {
        // `.` and `..` would be resolved away by the URL parser.
        return text.replace('.', "%2E");
    }
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped() {
        assert_eq!(segment("alpha"), "alpha");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("../x"), "..%2Fx");
        assert_eq!(segment(".."), "%2E%2E");
    }

    #[test]
    fn websocket_urls_follow_the_scheme() {
        let client = Client::new("https://sdp.example/", None);
        assert_eq!(client.ws_url("/ws/x"), "wss://sdp.example/ws/x");
        let client = Client::new("http://127.0.0.1:8080", None);
        assert_eq!(client.ws_url("/ws/x"), "ws://127.0.0.1:8080/ws/x");
    }

    #[test]
    fn error_answers_keep_the_servers_code_and_message() {
        let body = br#"{"error":{"code":"not_found","message":"no such sandbox"}}"#;
        let err = error_answer(404, body);
        assert_eq!(err.status(), Some(404));
        assert_eq!(err.code(), Some("not_found"));
        assert_eq!(err.to_string(), "no such sandbox");
        let other = error_answer(502, b"<html>bad gateway</html>");
        assert_eq!(other.code(), Some("http_error"));
        assert_eq!(other.to_string(), "the control plane answered HTTP 502");
    }
}
