//! A nats-server with TLS and the real `nats/auth.conf`, and probe clients.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sdp_testkit::{ChildGuard, free_port, wait_for};
use tempfile::TempDir;

/// The users of `auth.conf` and the env var each one's password is read
/// from.
pub const USERS: [(&str, &str); 5] = [
    ("control-plane", "NATS_PW_CONTROL_PLANE"),
    ("persister", "NATS_PW_PERSISTER"),
    ("agent-micro-1", "NATS_PW_AGENT_MICRO_1"),
    ("agent-gateway-1", "NATS_PW_AGENT_GATEWAY_1"),
    ("debug", "NATS_PW_DEBUG"),
];

/// The agent id `auth.conf` has a user for (`agent-micro-1`).
pub const MICRO_AGENT_ID: &str = "micro-1";

const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The project's `nats/` folder.
pub fn nats_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../nats")
}

/// Runs `nats/gen-dev-certs.sh DIR localhost 127.0.0.1`: `ca.pem`,
/// `ca-key.pem`, `server.pem`, `server-key.pem` in `dir`.
pub fn gen_certs(dir: &Path) {
    let script = nats_dir().join("gen-dev-certs.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(dir)
        .args(["localhost", "127.0.0.1"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed:\n{}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A password as README.md recommends: a letter, then hex.
pub fn new_password() -> String {
    format!(
        "p{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// The env vars that carry every user's password into nats-server.
fn users_env(
    users: &[(&'static str, &'static str)],
    passwords: &HashMap<&'static str, String>,
) -> Vec<(String, String)> {
    users
        .iter()
        .map(|(user, var)| ((*var).to_owned(), passwords[user].clone()))
        .collect()
}

/// A `nats-server` child: TLS with a fresh CA, the real `auth.conf`,
/// JetStream in its temp dir. Killed on drop.
pub struct SecureNats {
    port: u16,
    dir: TempDir,
    users: Vec<(&'static str, &'static str)>,
    passwords: HashMap<&'static str, String>,
    child: Option<ChildGuard>,
}

impl SecureNats {
    pub async fn start() -> SecureNats {
        Self::start_with_auth(&nats_dir().join("auth.conf"), &[]).await
    }

    /// Like [`Self::start`] with another `auth.conf` (one `gen-auth.sh`
    /// rendered) that has these users besides [`USERS`].
    pub async fn start_with_auth(
        auth_conf: &Path,
        extra_users: &[(&'static str, &'static str)],
    ) -> SecureNats {
        sdp_testkit::init_tracing();
        let dir = tempfile::Builder::new()
            .prefix("sdp-nats-secure-")
            .tempdir()
            .expect("temp dir");
        gen_certs(&dir.path().join("tls"));
        // `include` paths are relative to the including file (nats-server
        // 2.9 joins even an absolute one to that dir): link the real file.
        std::os::unix::fs::symlink(auth_conf, dir.path().join("auth.conf"))
            .expect("link auth.conf");
        let users: Vec<_> = USERS.iter().chain(extra_users).copied().collect();
        let passwords = users
            .iter()
            .map(|(user, _)| (*user, new_password()))
            .collect();
        let mut server = SecureNats {
            port: 0,
            dir,
            users,
            passwords,
            child: None,
        };
        // free_port() can race with other processes: retry on a taken port.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn().await {
                return server;
            }
        }
        panic!("nats-server: no free port after 5 tries:\n{}", server.log());
    }

    /// Starts the server on `self.port`; false if the port was taken.
    async fn spawn(&mut self) -> bool {
        let root = self.dir.path();
        let tls = root.join("tls");
        let config = format!(
            "# written by control-plane/tests/nats_secure\n\
             server_name: \"sdp-test-{port}\"\n\
             listen: \"127.0.0.1:{port}\"\n\
             tls {{\n\
             \x20 cert_file: \"{cert}\"\n\
             \x20 key_file: \"{key}\"\n\
             \x20 ca_file: \"{ca}\"\n\
             \x20 verify: false\n\
             \x20 timeout: 2\n\
             }}\n\
             include \"auth.conf\"\n\
             jetstream {{\n\
             \x20 store_dir: \"{store}\"\n\
             \x20 max_memory_store: 64MB\n\
             \x20 max_file_store: 8GB\n\
             }}\n",
            port = self.port,
            cert = tls.join("server.pem").display(),
            key = tls.join("server-key.pem").display(),
            ca = tls.join("ca.pem").display(),
            store = root.join("store").display(),
        );
        let config_path = root.join("nats-test.conf");
        std::fs::write(&config_path, config).expect("write nats config");
        let log_path = self.log_path();
        let offset = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("nats log");
        let mut command = Command::new("nats-server");
        command
            .arg("-c")
            .arg(&config_path)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(users_env(&self.users, &self.passwords))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log));
        let mut child = ChildGuard::spawn(command);
        let port = self.port;
        let ready = wait_for(
            &format!("nats-server with TLS on port {port}"),
            READY_TIMEOUT,
            || {
                let log = read_since(&log_path, offset);
                let result = if !child.is_running() {
                    if log.contains("address already in use") {
                        Some(false)
                    } else {
                        panic!("nats-server exited:\n{log}");
                    }
                } else {
                    log.contains("Server is ready").then_some(true)
                };
                async move { result }
            },
        )
        .await;
        if ready {
            self.child = Some(child);
        }
        ready
    }

    /// `tls://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA that signed the server's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("tls/ca.pem")
    }

    pub fn password(&self, user: &str) -> &str {
        &self.passwords[user]
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// Everything the server logged.
    pub fn log(&self) -> String {
        read_since(&self.log_path(), 0)
    }

    /// The lines of the log that report a permission violation.
    pub fn violations(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|line| line.contains("Violation"))
            .map(str::to_owned)
            .collect()
    }

    /// Connect options with TLS verified by this server's CA.
    pub fn tls_options(&self) -> async_nats::ConnectOptions {
        async_nats::ConnectOptions::new()
            .add_root_certificates(self.ca())
            .require_tls(true)
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_secs(2)))
    }

    /// Connects as `user` with its password; panics if refused.
    pub async fn connect(&self, user: &str) -> Probe {
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        let options = async_nats::ConnectOptions::with_user_and_password(
            user.to_owned(),
            self.password(user).to_owned(),
        )
        .add_root_certificates(self.ca())
        .require_tls(true)
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(2)))
        .name(format!("nats-secure-probe-{user}"))
        .event_callback(move |event| {
            let sink = sink.clone();
            async move {
                if let async_nats::Event::ServerError(err) = event {
                    sink.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(err.to_string());
                }
            }
        });
        let client = options
            .connect(self.url())
            .await
            .unwrap_or_else(|e| panic!("{user} cannot connect: {e}\n{}", self.log()));
        Probe {
            user: user.to_owned(),
            client,
            errors,
            fences: AtomicU64::new(0),
        }
    }
}

impl Drop for SecureNats {
    fn drop(&mut self) {
        // On a failed test, the server's log names refused subjects.
        if std::thread::panicking() {
            eprintln!("---- nats-server log ----\n{}", self.log());
        }
    }
}

fn read_since(path: &Path, offset: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// A client that records the errors the server sends it (a permission
/// violation is reported as `-ERR 'Permissions Violation for … to "…"'`
/// and leaves the connection open).
pub struct Probe {
    pub user: String,
    pub client: async_nats::Client,
    errors: Arc<Mutex<Vec<String>>>,
    fences: AtomicU64,
}

impl Probe {
    /// Waits until the server has handled everything this client sent so
    /// far and returns the errors it reported for it, in order.
    ///
    /// A publish to `sdp.fence.<n>` (allowed to nobody) goes last; the
    /// server handles a connection's operations in order, so once its
    /// violation arrives every earlier error has too.
    pub async fn settle(&self) -> Vec<String> {
        let fence = format!("sdp.fence.{}", self.fences.fetch_add(1, Ordering::Relaxed));
        self.client
            .publish(fence.clone(), "".into())
            .await
            .expect("publish fence");
        self.client.flush().await.expect("flush");
        let errors = self.errors.clone();
        let mut reported = wait_for(
            &format!("{}: the server's answer to {fence}", self.user),
            Duration::from_secs(5),
            || {
                let mut errors = errors.lock().unwrap_or_else(|e| e.into_inner());
                let at = errors
                    .iter()
                    .position(|e| e.contains(&format!("\"{fence}\"")));
                let drained = at.map(|at| errors.drain(..=at).collect::<Vec<_>>());
                async move { drained }
            },
        )
        .await;
        reported.pop();
        reported
    }

    /// Asserts that what was sent since the last settle raised exactly
    /// one violation per entry of `denied` (`("Publish", subject)` or
    /// `("Subscription", subject)`), in order.
    pub async fn assert_denied(&self, denied: &[(&str, &str)]) {
        let reported = self.settle().await;
        let expected: Vec<String> = denied
            .iter()
            .map(|(op, subject)| format!("Permissions Violation for {op} to \"{subject}\""))
            .collect();
        assert_eq!(
            reported.len(),
            expected.len(),
            "{}: expected violations {expected:#?}, got {reported:#?}",
            self.user
        );
        for (got, want) in reported.iter().zip(&expected) {
            assert!(
                got.contains(want),
                "{}: expected {want:?}, got {got:?} (all: {reported:#?})",
                self.user
            );
        }
    }

    /// Asserts that nothing sent since the last settle was refused.
    pub async fn assert_allowed(&self) {
        self.assert_denied(&[]).await;
    }
}
