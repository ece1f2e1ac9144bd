//! Notifications: a deployment reaching `running` or `failed` (and
//! starting), or a test run ending, is told to Bitbucket as a build status
//! on the commit ([`bitbucket`]: Cloud or Data Center, with the service
//! credential) and to the outgoing webhooks of the sandbox's template
//! ([`webhook`]: JSON with a Slack-compatible `text`).
//!
//! [`Notifier`] is the handle the orchestrator (and the lead's test-run
//! code) calls: it reads what it needs from the store, records each
//! delivery as `pending` and hands it to the [`queue`] task without ever
//! waiting; the queue retries with backoff and records every outcome
//! (`GET /api/deliveries`). A deployment never waits for, nor fails by,
//! a notification.

pub mod bitbucket;
pub mod guard;
pub mod queue;
pub mod webhook;

use std::sync::Arc;

use sdp_bus::{GitCredential, Status};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::audit::Audit;
use crate::config::{BitbucketConfig, Config, Flavour};
use crate::routing::environment_name;
use crate::store::{
    BuildState, DeliveryKind, DeliveryOutcome, Deployment, NewDelivery, NotifyEvent, NotifyTarget,
    Store, StoreError,
};
pub use webhook::Facts;

/// A test run that ended, as plain data: what the test-run code hands
/// to [`Notifier::test_run_ended`].
#[derive(Clone, Debug)]
pub struct TestRunEnded {
    pub sandbox: String,
    pub repo: String,
    pub commit: Option<String>,
    /// The test run's id (shown with its deliveries).
    pub id: Option<String>,
    /// Its build status key; `None`: `<service key>-tests`.
    pub key: Option<String>,
    pub passed: bool,
    /// Its report's page; `None`: the sandbox's preview or its page.
    pub url: Option<String>,
    pub description: String,
}

/// Where links in notifications point.
#[derive(Clone, Debug)]
struct Links {
    /// The dashboard's origin (`http.public_url`, else `http://<http.addr>`).
    dashboard: String,
    /// `(authority, https)` of `http.preview_domain`, if set.
    preview: Option<(String, bool)>,
}

impl Links {
    fn deployment(&self, id: &str) -> String {
        format!("{}/#/deployments/{id}", self.dashboard)
    }

    /// The sandbox's preview (as `api::preview::url` makes it), else
    /// its page in the dashboard.
    fn sandbox(&self, sandbox: &str) -> String {
        match &self.preview {
            Some((authority, secure)) => {
                let scheme = if *secure { "https" } else { "http" };
                format!("{scheme}://{sandbox}.{authority}/")
            }
            None => format!("{}/#/sandboxes/{sandbox}", self.dashboard),
        }
    }
}

struct Inner {
    jobs: mpsc::Sender<queue::Job>,
    store: Store,
    bitbucket: BitbucketConfig,
    credential: Option<GitCredential>,
    links: Links,
    generations: queue::Generations,
    audit: Audit,
}

/// The handle deployments and test runs are told through. Cheap to clone;
/// [`Notifier::off`] drops everything.
#[derive(Clone, Default)]
pub struct Notifier(Option<Arc<Inner>>);

impl Notifier {
    /// A notifier that sends nothing (the orchestrator's default).
    pub fn off() -> Self {
        Self(None)
    }

    /// Starts the queue task (on `tasks`, until `shutdown`) and returns
    /// the handle.
    pub fn start(
        config: &Config,
        store: Store,
        credential: Option<GitCredential>,
        audit: Audit,
        tasks: &tokio_util::task::TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let guard = guard::Guard::new(config, Some(store.clone()));
        Self::start_guarded(config, store, credential, audit, tasks, shutdown, guard)
    }

    /// [`Notifier::start`] with webhooks checked by `guard` (tests bring
    /// one whose names resolve as they say).
    pub fn start_guarded(
        config: &Config,
        store: Store,
        credential: Option<GitCredential>,
        audit: Audit,
        tasks: &tokio_util::task::TaskTracker,
        shutdown: CancellationToken,
        guard: guard::Guard,
    ) -> Self {
        let (jobs, receiver) = mpsc::channel(config.notify.queue);
        let generations = queue::Generations::default();
        let queue = queue::Queue {
            store: store.clone(),
            config: config.notify.clone(),
            generations: generations.clone(),
            audit: audit.clone(),
            guard,
        };
        tasks.spawn(queue::run(receiver, queue, shutdown));
        let dashboard = config.http.public_url.as_ref().map_or_else(
            || format!("http://{}", config.http.addr),
            |url| url.origin.clone(),
        );
        let preview = config
            .http
            .preview_domain
            .as_ref()
            .map(|d| (d.authority.clone(), config.http.secure_cookies));
        Self(Some(Arc::new(Inner {
            jobs,
            store,
            bitbucket: config.bitbucket.clone(),
            credential,
            links: Links { dashboard, preview },
            generations,
            audit,
        })))
    }

    /// A deployment started (`queued`): `INPROGRESS`, if its commit is
    /// known (asked for); else nothing until it settles.
    pub fn deployment_started(&self, deployment: &Deployment) {
        if deployment.commit.is_some() || deployment.requested_commit.is_some() {
            self.deployment(deployment, NotifyEvent::DeploymentStarted);
        }
    }

    /// A deployment reached `running` or `failed` (other statuses: nothing).
    pub fn deployment_settled(&self, deployment: &Deployment) {
        let event = match deployment.status {
            Status::Running => NotifyEvent::DeploymentRunning,
            Status::Failed => NotifyEvent::DeploymentFailed,
            _ => return,
        };
        // A gateway re-apply runs the same build with new routes: only its
        // failure is news.
        if deployment.reapply && event == NotifyEvent::DeploymentRunning {
            return;
        }
        self.deployment(deployment, event);
    }

    fn deployment(&self, deployment: &Deployment, event: NotifyEvent) {
        let Some(inner) = &self.0 else { return };
        let (state, description) = match event {
            NotifyEvent::DeploymentStarted => (BuildState::Inprogress, "deploying".to_owned()),
            NotifyEvent::DeploymentRunning => (BuildState::Successful, "running".to_owned()),
            _ => (
                BuildState::Failed,
                format!(
                    "failed: {}",
                    deployment.error.as_deref().unwrap_or("no reason given")
                ),
            ),
        };
        let url = if event == NotifyEvent::DeploymentRunning {
            inner.links.sandbox(&deployment.sandbox)
        } else {
            inner.links.deployment(deployment.id.as_str())
        };
        let facts = Facts {
            event,
            state,
            sandbox: deployment.sandbox.clone(),
            repo: deployment.repo.clone(),
            branch: Some(deployment.branch.clone()),
            commit: deployment
                .commit
                .clone()
                .or_else(|| deployment.requested_commit.clone()),
            deployment_id: Some(deployment.id.as_str().to_owned()),
            url,
            description,
            key: bitbucket::key(&deployment.sandbox, &deployment.repo),
        };
        inner.send(&facts);
    }

    /// A test run ended (see [`TestRunEnded`]).
    pub fn test_run_ended(&self, run: &TestRunEnded) {
        let Some(inner) = &self.0 else { return };
        let facts = Facts {
            event: NotifyEvent::TestRunEnded,
            state: if run.passed {
                BuildState::Successful
            } else {
                BuildState::Failed
            },
            sandbox: run.sandbox.clone(),
            repo: run.repo.clone(),
            branch: None,
            commit: run.commit.clone(),
            deployment_id: run.id.clone(),
            url: run
                .url
                .clone()
                .unwrap_or_else(|| inner.links.sandbox(&run.sandbox)),
            description: run.description.clone(),
            key: run.key.clone().unwrap_or_else(|| {
                // Leaves room for the suffix within Bitbucket's 40.
                let service = bitbucket::key(&run.sandbox, &run.repo);
                format!(
                    "{}-tests",
                    &service[..service.len().min(bitbucket::KEY_MAX - 6)]
                )
            }),
        };
        inner.send(&facts);
    }
}

impl Inner {
    /// Records and queues the build status and the template's webhooks.
    fn send(&self, facts: &Facts) {
        if let (Some(flavour), Some(commit)) = (self.bitbucket.flavour, &facts.commit) {
            self.build_status(flavour, commit, facts);
        }
        for url in self.webhooks(&facts.sandbox, facts.event) {
            let target = webhook::origin(&url);
            let job = |delivery, audit| queue::Job {
                delivery,
                audit,
                url,
                basic_auth: None,
                body: webhook::body(facts),
                supersede: None,
                guarded: true,
            };
            self.enqueue(DeliveryKind::Webhook, &target, facts, job);
        }
    }

    fn build_status(&self, flavour: Flavour, commit: &str, facts: &Facts) {
        let Some(url) = bitbucket::status_url(&self.bitbucket, flavour, &facts.repo, commit) else {
            return;
        };
        let target = format!("bitbucket {}", flavour.as_str());
        let name = format!("SDP {} / {}", facts.sandbox, facts.repo);
        let body = bitbucket::status_body(
            facts.state,
            &facts.key,
            &name,
            &facts.url,
            &facts.description,
        );
        let supersede_key = format!("{target}|{}|{commit}", facts.key);
        let generation = self.generations.next(&supersede_key);
        let job = |delivery, audit| queue::Job {
            delivery,
            audit,
            url,
            basic_auth: self.credential.clone(),
            body,
            supersede: Some((supersede_key, generation)),
            guarded: false,
        };
        self.enqueue(DeliveryKind::BuildStatus, &target, facts, job);
    }

    /// The webhook URLs of the sandbox's template and of the environment
    /// it runs with that take `event`; a URL in both is sent to once.
    fn webhooks(&self, sandbox: &str, event: NotifyEvent) -> Vec<String> {
        let (template, environment) = match self.owners(sandbox) {
            Ok(owners) => owners,
            Err(err) => {
                tracing::warn!(sandbox, error = %err, "cannot read the sandbox: no webhooks sent");
                return Vec::new();
            }
        };
        let mut targets = Vec::new();
        if let Some(template) = &template {
            match self.store.template_notify(template) {
                Ok(list) => targets.extend(list),
                Err(err) => {
                    tracing::warn!(template, error = %err, "cannot read the template's webhooks")
                }
            }
        }
        if let Some(environment) = &environment {
            match self.store.environment_notify(environment) {
                Ok(list) => targets.extend(list),
                Err(err) => {
                    tracing::warn!(environment, error = %err, "cannot read the environment's webhooks");
                }
            }
        }
        webhook_urls(targets, event)
    }

    /// The sandbox's template and the environment it runs with.
    fn owners(&self, sandbox: &str) -> Result<(Option<String>, Option<String>), StoreError> {
        let Some(sandbox) = self.store.sandbox(sandbox)? else {
            return Ok((None, None));
        };
        let template = match &sandbox.template {
            Some(name) => self.store.template(name)?,
            None => None,
        };
        let environment = environment_name(&sandbox, template.as_ref());
        Ok((sandbox.template.clone(), environment))
    }

    /// Records the delivery as pending and queues it; a full queue drops
    /// it (recorded as failed), never waits.
    fn enqueue(
        &self,
        kind: DeliveryKind,
        target: &str,
        facts: &Facts,
        job: impl FnOnce(i64, queue::Audited) -> queue::Job,
    ) {
        let new = NewDelivery {
            sandbox: &facts.sandbox,
            repo: &facts.repo,
            deployment_id: facts.deployment_id.as_deref(),
            kind,
            target,
            event: facts.event,
            state: facts.state,
            commit: facts.commit.as_deref(),
            key: &facts.key,
        };
        let delivery = match self.store.insert_delivery(&new) {
            Ok(id) => id,
            Err(err) => {
                tracing::warn!(to = target, error = %err, "cannot record a delivery: not sent");
                return;
            }
        };
        let audited = queue::Audited::of(kind, target, facts);
        if let Err(full) = self.jobs.try_send(job(delivery, audited)) {
            tracing::warn!(
                to = target,
                delivery,
                "the notification queue is full: delivery dropped"
            );
            let attempt = crate::store::Attempt {
                outcome: DeliveryOutcome::Failed,
                attempts: 0,
                status: None,
                error: Some("the notification queue was full"),
            };
            if let Err(err) = self.store.record_attempt(delivery, &attempt) {
                tracing::warn!(delivery, error = %err, "cannot record a dropped delivery");
            }
            let (audit, audited) = (self.audit.clone(), full.into_inner().audit);
            tokio::spawn(async move {
                audited
                    .record(&audit, delivery, DeliveryOutcome::Failed, 0)
                    .await;
            });
        }
    }
}

/// The URLs of `targets` that take `event`, each once (in first-seen
/// order: the template's before the environment's).
fn webhook_urls(targets: Vec<NotifyTarget>, event: NotifyEvent) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for target in targets {
        if (target.events.is_empty() || target.events.contains(&event))
            && !urls.contains(&target.url)
        {
            urls.push(target.url);
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{StatusCode, Uri};

    use super::*;

    type Seen = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

    async fn record(State(seen): State<Seen>, uri: Uri, body: Bytes) -> StatusCode {
        let body = serde_json::from_slice(&body).unwrap_or_default();
        seen.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((uri.path().to_owned(), body));
        StatusCode::CREATED
    }

    /// The test-run entry point: plain data in, a build status with the
    /// service's key and `-tests` out, recorded as delivered.
    #[tokio::test]
    async fn a_test_run_that_ended_is_a_build_status() {
        let seen = Seen::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().fallback(record).with_state(seen.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("sdp.db")).expect("store");
        let mut config = Config::dev();
        config.bitbucket.flavour = Some(Flavour::DataCenter);
        config.bitbucket.api_url = Some(format!("http://{addr}"));
        let credential = GitCredential {
            username: "svc".into(),
            password: sdp_bus::Secret::new("pw"),
        };
        let (tasks, shutdown) = (
            tokio_util::task::TaskTracker::new(),
            CancellationToken::new(),
        );
        let notifier = Notifier::start(
            &config,
            store.clone(),
            Some(credential),
            Audit::off(),
            &tasks,
            shutdown.clone(),
        );
        notifier.test_run_ended(&TestRunEnded {
            sandbox: "alpha".into(),
            repo: "users".into(),
            commit: Some("abc123".into()),
            id: Some("run-1".into()),
            key: None,
            passed: false,
            url: Some("http://reports.example/run-1".into()),
            description: "3 of 40 failed".into(),
        });
        let delivered = sdp_testkit::wait_for("delivered", Duration::from_secs(10), || async {
            let rows = store
                .deliveries(Some("alpha"), &crate::store::PageOf::first(10))
                .ok()?;
            rows.into_iter()
                .find(|d| d.outcome == DeliveryOutcome::Delivered)
        })
        .await;
        assert_eq!(delivered.event, NotifyEvent::TestRunEnded);
        assert_eq!(delivered.key, "sdp-alpha-users-tests");
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(seen[0].0, "/rest/build-status/1.0/commits/abc123");
        assert_eq!(seen[0].1["state"], "FAILED");
        assert_eq!(seen[0].1["url"], "http://reports.example/run-1");
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
    }
}
