//! The delivery queue: one task takes jobs from a bounded channel and
//! runs each as its own task (at most [`CONCURRENT`] at once), which tries
//! it with exponential backoff, recording every attempt's outcome. Nothing
//! here is awaited by a deployment: enqueueing never waits (a full queue
//! drops the job, recorded as failed).
//!
//! A build status newer for the same target, key and commit supersedes
//! one still retrying (an `INPROGRESS` that lands after `SUCCESSFUL` would
//! be wrong). Shutdown stops the tasks between attempts; a delivery cut
//! short stays `pending`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sdp_bus::GitCredential;
use sdp_bus::Secret;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use sdp_api::{AuditAction, AuditOutcome};

use crate::audit::Audit;
use crate::config::NotifyConfig;
use crate::store::{Attempt, DeliveryKind, DeliveryOutcome, Store};

use super::guard::Guard;

/// Deliveries in flight at once.
pub const CONCURRENT: usize = 16;

/// One HTTP POST to make, and the row it reports to.
pub struct Job {
    pub delivery: i64,
    /// What its audit entry says once it is delivered or given up.
    pub audit: Audited,
    pub url: String,
    pub basic_auth: Option<GitCredential>,
    pub body: serde_json::Value,
    /// Set for build statuses: the target, key and commit a newer job
    /// supersedes this one for, with this job's generation.
    pub supersede: Option<(String, u64)>,
    /// A webhook's (a user's URL): checked by the SSRF guard before each
    /// attempt and sent to the checked addresses only. Build statuses go
    /// to the configured Bitbucket, which may well be on a private network.
    pub guarded: bool,
}

/// The newest generation per supersede key.
#[derive(Clone, Default)]
pub struct Generations(Arc<Mutex<HashMap<String, u64>>>);

impl Generations {
    /// A new generation of `key`, superseding the ones before.
    pub fn next(&self, key: &str) -> u64 {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let generation = map.entry(key.to_owned()).or_insert(0);
        *generation += 1;
        *generation
    }

    fn is_current(&self, key: &str, generation: u64) -> bool {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).is_none_or(|g| *g == generation)
    }
}

/// What an attempt's result means for the delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Worth another attempt: no answer, 5xx, 408 or 429.
    Retry,
    /// A refusal another attempt would get again.
    GiveUp,
}

/// The verdict on an answer's status (`None`: no answer came).
pub fn verdict(status: Option<u16>) -> Verdict {
    match status {
        Some(s) if (200..300).contains(&s) => Verdict::Delivered,
        None | Some(408 | 429) => Verdict::Retry,
        Some(s) if s >= 500 => Verdict::Retry,
        Some(_) => Verdict::GiveUp,
    }
}

/// A delivery as the audit trail names it: its sandbox, and `<kind>
/// <event> to <target>` (a webhook by its origin only).
pub struct Audited {
    sandbox: String,
    what: String,
}

impl Audited {
    pub fn of(kind: DeliveryKind, target: &str, facts: &super::Facts) -> Self {
        Self {
            sandbox: facts.sandbox.clone(),
            what: format!("{} {} to {target}", kind.as_str(), facts.event.as_str()),
        }
    }

    /// Appends the `delivery` entry (actor `system`): ok once delivered,
    /// failed once given up.
    pub async fn record(
        &self,
        audit: &Audit,
        delivery: i64,
        outcome: DeliveryOutcome,
        attempts: u32,
    ) {
        let outcome_of = match outcome {
            DeliveryOutcome::Delivered => AuditOutcome::Ok,
            _ => AuditOutcome::Failed,
        };
        audit
            .record_system(
                AuditAction::Delivery,
                &self.sandbox,
                format!("delivery {delivery}"),
                outcome_of,
                Some(format!(
                    "{}: {} after {attempts} attempt(s)",
                    self.what,
                    outcome.as_str()
                )),
            )
            .await;
    }
}

/// The wait after attempt `attempt` (1-based) failed: `base`, doubling,
/// at most `max`.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
    base.saturating_mul(factor).min(max)
}

/// The HTTP client's settings, for build statuses and webhooks alike.
fn client_builder(config: &NotifyConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(config.timeout)
        .user_agent(concat!("sdp/", env!("CARGO_PKG_VERSION")))
        // A webhook that redirects must not take the credential elsewhere
        // (nor a webhook past the guard).
        .redirect(reqwest::redirect::Policy::none())
}

/// What the queue task works with besides its jobs.
pub struct Queue {
    pub store: Store,
    pub config: NotifyConfig,
    pub generations: Generations,
    pub audit: Audit,
    /// Where webhooks may go.
    pub guard: Guard,
}

/// Takes jobs until shutdown.
pub async fn run(mut jobs: mpsc::Receiver<Job>, queue: Queue, shutdown: CancellationToken) {
    let Queue {
        store,
        config,
        generations,
        audit,
        guard,
    } = queue;
    let http = match client_builder(&config).build() {
        Ok(http) => http,
        Err(err) => {
            tracing::error!(error = %err, "notifications are off: cannot build the HTTP client");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(CONCURRENT));
    let tasks = tokio_util::task::TaskTracker::new();
    loop {
        let job = tokio::select! {
            () = shutdown.cancelled() => break,
            job = jobs.recv() => job,
        };
        let Some(job) = job else { break };
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
        let delivery = Delivering {
            http: http.clone(),
            store: store.clone(),
            config: config.clone(),
            generations: generations.clone(),
            audit: audit.clone(),
            guard: guard.clone(),
            shutdown: shutdown.clone(),
        };
        tasks.spawn(async move {
            delivery.deliver(job).await;
            drop(slot);
        });
    }
    tasks.close();
    tasks.wait().await;
}

struct Delivering {
    http: reqwest::Client,
    store: Store,
    config: NotifyConfig,
    generations: Generations,
    audit: Audit,
    guard: Guard,
    shutdown: CancellationToken,
}

/// How one attempt went.
struct Tried {
    /// The answer's status (`None`: no answer).
    status: Option<u16>,
    error: Option<String>,
    /// The guard refused the target: no attempt will ever be made.
    refused: bool,
}

impl Delivering {
    async fn deliver(&self, job: Job) {
        let mut attempt = 0;
        loop {
            if let Some((key, generation)) = &job.supersede
                && !self.generations.is_current(key, *generation)
            {
                self.record(&job, DeliveryOutcome::Superseded, attempt, None, None);
                return;
            }
            attempt += 1;
            let Tried {
                status,
                error,
                refused,
            } = self.attempt(&job).await;
            let outcome = match verdict(status) {
                _ if refused => DeliveryOutcome::Failed,
                Verdict::Delivered => DeliveryOutcome::Delivered,
                Verdict::Retry if attempt < self.config.attempts => DeliveryOutcome::Pending,
                Verdict::Retry | Verdict::GiveUp => DeliveryOutcome::Failed,
            };
            self.record(&job, outcome, attempt, status, error.as_deref());
            if outcome != DeliveryOutcome::Pending {
                job.audit
                    .record(&self.audit, job.delivery, outcome, attempt)
                    .await;
                tracing::info!(
                    delivery = job.delivery,
                    outcome = outcome.as_str(),
                    attempts = attempt,
                    "delivery finished"
                );
                return;
            }
            let wait = backoff(attempt, self.config.backoff, self.config.backoff_max);
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One POST: the answer's status, and why it failed if it did (never
    /// the body sent, which a credential is not in anyway). A webhook's
    /// host is checked first, and the POST goes to the addresses checked.
    async fn attempt(&self, job: &Job) -> Tried {
        let tried = |status, error: &str, refused| Tried {
            status,
            error: Some(error.to_owned()),
            refused,
        };
        let mut request = if job.guarded {
            let target = tokio::select! {
                () = self.shutdown.cancelled() => return tried(None, "shutting down", false),
                checked = self.guard.check(&job.url) => checked,
            };
            let target = match target {
                Ok(target) => target,
                Err(refused) => {
                    tracing::warn!(delivery = job.delivery, reason = %refused, "webhook refused by the guard");
                    return tried(None, &refused.to_string(), !refused.is_transient());
                }
            };
            match target.pin(client_builder(&self.config)).build() {
                Ok(client) => client.post(target.url),
                Err(_) => return tried(None, "cannot make the HTTP client", false),
            }
        } else {
            self.http.post(&job.url)
        };
        request = request.json(&job.body);
        if let Some(credential) = &job.basic_auth {
            request = request.basic_auth(&credential.username, Some(expose(&credential.password)));
        }
        let sent = tokio::select! {
            () = self.shutdown.cancelled() => return tried(None, "shutting down", false),
            sent = request.send() => sent,
        };
        match sent {
            Ok(response) => {
                let status = response.status();
                let error = (!status.is_success()).then(|| status.to_string());
                Tried {
                    status: Some(status.as_u16()),
                    error,
                    refused: false,
                }
            }
            Err(err) => {
                let why = if err.is_timeout() {
                    "timed out"
                } else if err.is_connect() {
                    "cannot connect"
                } else {
                    "request failed"
                };
                tried(None, why, false)
            }
        }
    }

    fn record(
        &self,
        job: &Job,
        outcome: DeliveryOutcome,
        attempts: u32,
        status: Option<u16>,
        error: Option<&str>,
    ) {
        let attempt = Attempt {
            outcome,
            attempts,
            status,
            error,
        };
        if let Err(err) = self.store.record_attempt(job.delivery, &attempt) {
            tracing::warn!(delivery = job.delivery, error = %err, "cannot record a delivery's outcome");
        }
    }
}

fn expose(secret: &Secret) -> &str {
    secret.expose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(verdict(Some(201)), Verdict::Delivered);
        assert_eq!(verdict(Some(204)), Verdict::Delivered);
        assert_eq!(verdict(None), Verdict::Retry);
        assert_eq!(verdict(Some(503)), Verdict::Retry);
        assert_eq!(verdict(Some(429)), Verdict::Retry);
        assert_eq!(verdict(Some(401)), Verdict::GiveUp);
        assert_eq!(verdict(Some(404)), Verdict::GiveUp);
        assert_eq!(verdict(Some(302)), Verdict::GiveUp);
    }

    #[test]
    fn backoff_doubles_up_to_the_max() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(1));
        let waits: Vec<_> = (1..=6).map(|n| backoff(n, base, max)).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1000, 1000].map(Duration::from_millis)
        );
        assert_eq!(backoff(u32::MAX, base, max), max);
    }

    #[test]
    fn a_newer_generation_supersedes() {
        let generations = Generations::default();
        let first = generations.next("k");
        assert!(generations.is_current("k", first));
        let second = generations.next("k");
        assert!(!generations.is_current("k", first));
        assert!(generations.is_current("k", second));
    }

    /// A webhook whose name resolved to a public address when it was set
    /// and to loopback now (DNS rebinding): refused at delivery, at once
    /// and for good, and nothing is sent.
    #[tokio::test]
    async fn a_rebinding_webhook_is_refused_at_delivery() {
        use crate::notify::guard::tests::Answers;
        use crate::store::{BuildState, NewDelivery, NotifyEvent};

        let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let counter = received.clone();
        let app = axum::Router::new().fallback(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { "taken" }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });

        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("sdp.db")).expect("store");
        let config = crate::config::Config::dev();
        let answers =
            Answers::default().with("hooks.rebind.test", &[&["93.184.216.34"], &["127.0.0.1"]]);
        let guard = Guard::new(&config, None).with_lookup(Arc::new(answers));
        let url = format!("http://hooks.rebind.test:{port}/secret-path");
        assert!(guard.check(&url).await.is_ok(), "public when it was set");

        let delivery = store
            .insert_delivery(&NewDelivery {
                sandbox: "alpha",
                repo: "users",
                deployment_id: None,
                kind: DeliveryKind::Webhook,
                target: "http://hooks.rebind.test",
                event: NotifyEvent::DeploymentRunning,
                state: BuildState::Successful,
                commit: None,
                key: "sdp-alpha-users",
            })
            .expect("insert");
        let (jobs, receiver) = mpsc::channel(4);
        let shutdown = CancellationToken::new();
        let queue = Queue {
            store: store.clone(),
            config: config.notify.clone(),
            generations: Generations::default(),
            audit: Audit::off(),
            guard,
        };
        let task = tokio::spawn(run(receiver, queue, shutdown.clone()));
        let facts = crate::notify::Facts {
            event: NotifyEvent::DeploymentRunning,
            state: BuildState::Successful,
            sandbox: "alpha".into(),
            repo: "users".into(),
            branch: None,
            commit: None,
            deployment_id: None,
            url: "http://alpha.sdp.test/".into(),
            description: "running".into(),
            key: "sdp-alpha-users".into(),
        };
        let job = Job {
            delivery,
            audit: Audited::of(DeliveryKind::Webhook, "http://hooks.rebind.test", &facts),
            url,
            basic_auth: None,
            body: serde_json::json!({ "text": "hi" }),
            supersede: None,
            guarded: true,
        };
        assert!(jobs.send(job).await.is_ok());
        let failed = sdp_testkit::wait_for("refused", Duration::from_secs(10), || async {
            let rows = store
                .deliveries(Some("alpha"), &crate::store::PageOf::first(10))
                .ok()?;
            rows.into_iter()
                .find(|d| d.outcome == DeliveryOutcome::Failed)
        })
        .await;
        assert_eq!(failed.attempts, 1, "{failed:?}");
        let error = failed.last_error.unwrap_or_default();
        assert!(
            error.contains("hooks.rebind.test resolves to 127.0.0.1, a loopback address"),
            "{error}"
        );
        assert!(!error.contains("secret-path"), "{error}");
        assert_eq!(received.load(std::sync::atomic::Ordering::SeqCst), 0);
        shutdown.cancel();
        let _ = task.await;
    }
}
