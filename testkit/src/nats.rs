//! [`NatsServer`]: a real `nats-server` with JetStream, one per test;
//! [`NatsCluster`]: three of them clustered (routes, JetStream meta group),
//! each killable and restartable on its ports and store.

use std::fs::{File, OpenOptions};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::util::{free_port, wait_for_blocking};

const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A `nats-server` child process on 127.0.0.1 with JetStream enabled.
/// Drop SIGKILLs it and removes its temp dir (store and log).
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    root: TempDir,
    store: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// Cluster flags (server name, cluster listen, routes, monitoring).
    extra_args: Vec<String>,
}

impl NatsServer {
    /// Starts `nats-server -js -sd DIR -a 127.0.0.1 -p PORT` on a free port
    /// and waits (10 s at most) until it accepts TCP connections.
    ///
    /// # Panics
    /// If `nats-server` is missing, exits early (message includes its
    /// stderr), or is not ready in time.
    pub fn start() -> NatsServer {
        Self::start_with(free_port(), Vec::new())
    }

    fn start_with(port: u16, extra_args: Vec<String>) -> NatsServer {
        let root = tempfile::Builder::new()
            .prefix("sdp-nats-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create nats temp dir: {e}"));
        let store = root.path().join("store");
        let log = root.path().join("nats-server.log");
        let mut server = NatsServer {
            port,
            store,
            log,
            root,
            child: None,
            extra_args,
        };
        // free_port() can race with other processes; pick another port if
        // the chosen one was taken before nats-server bound it.
        for _ in 0..5 {
            match server.spawn() {
                Ok(()) => return server,
                Err(SpawnError::PortTaken) => server.port = free_port(),
            }
        }
        panic!("nats-server: no free port after 5 tries:\n{}", server.log());
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store dir (kept across [`kill`](Self::kill) and
    /// [`restart`](Self::restart)).
    pub fn store_dir(&self) -> &Path {
        &self.store
    }

    /// SIGKILLs the server and reaps it; the store dir is kept. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store dir
    /// (killing it first if it runs) and waits until it is ready.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(SpawnError::PortTaken) = self.spawn() {
            panic!(
                "nats-server: port {} was taken while it was down:\n{}",
                self.port,
                self.log()
            );
        }
    }

    /// Spawns the server and waits until its log says it is ready and its
    /// port accepts TCP.
    fn spawn(&mut self) -> Result<(), SpawnError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        let log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone log handle: {e}"));
        let mut cmd = Command::new("nats-server");
        cmd.arg("-js")
            .arg("-sd")
            .arg(&self.store)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run nats-server ({e}); install it (apt-get install nats-server)")
        });
        self.child = Some(child);
        let port = self.port;
        let ready = wait_for_blocking(
            &format!("nats-server on port {port}"),
            READY_TIMEOUT,
            || {
                let exited = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                if let Some(status) = exited {
                    let log = self.log_since(log_offset);
                    if log.contains("address already in use") {
                        self.child = None;
                        return Some(Err(SpawnError::PortTaken));
                    }
                    panic!("nats-server on port {port} exited with {status}:\n{log}");
                }
                let log = self.log_since(log_offset);
                (log.contains("Server is ready") && TcpStream::connect(("127.0.0.1", port)).is_ok())
                    .then_some(Ok(()))
            },
        );
        if ready.is_ok() {
            tracing::debug!(port, store = %self.store.display(), "nats-server ready");
        }
        ready
    }

    fn log_since(&self, offset: u64) -> String {
        use std::io::{Read, Seek, SeekFrom};
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.seek(SeekFrom::Start(offset));
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// The server's log (stdout and stderr of every run so far).
    pub fn log(&self) -> String {
        self.log_since(0)
    }

    /// The temp root holding the store dir and the log.
    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

#[derive(Debug)]
enum SpawnError {
    PortTaken,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three `nats-server`s clustered on loopback (`sdp-n1`…`sdp-n3`, cluster
/// `sdp`), JetStream on each. [`NatsCluster::start`] returns once the
/// JetStream meta group has a leader, so streams can be made.
#[derive(Debug)]
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
    monitor_ports: Vec<u16>,
}

impl NatsCluster {
    pub fn start() -> NatsCluster {
        const NODES: usize = 3;
        let client: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
        let cluster: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
        let monitor: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
        let nodes = (0..NODES)
            .map(|i| {
                let routes: Vec<String> = (0..NODES)
                    .filter(|j| *j != i)
                    .map(|j| format!("nats://127.0.0.1:{}", cluster[j]))
                    .collect();
                let args = vec![
                    "--server_name".to_owned(),
                    format!("sdp-n{}", i + 1),
                    "--cluster_name".to_owned(),
                    "sdp".to_owned(),
                    "--cluster".to_owned(),
                    format!("nats://127.0.0.1:{}", cluster[i]),
                    "--routes".to_owned(),
                    routes.join(","),
                    "-m".to_owned(),
                    monitor[i].to_string(),
                ];
                NatsServer::start_with(client[i], args)
            })
            .collect();
        let cluster = NatsCluster {
            nodes,
            monitor_ports: monitor,
        };
        cluster.wait_meta_leader();
        cluster
    }

    /// Every node's URL, comma-separated (what `nats.url` takes).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `i`'s `/<path>` monitoring endpoint as JSON; `None` if it does
    /// not answer.
    pub fn monitor(&self, i: usize, path: &str) -> Option<serde_json::Value> {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", self.monitor_ports[i])).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "GET /{path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        let body = text.split_once("\r\n\r\n")?.1;
        serde_json::from_str(body).ok()
    }

    /// The node whose client connections include one named `name`.
    pub fn node_serving(&self, name: &str) -> Option<usize> {
        (0..self.nodes.len()).find(|i| {
            self.monitor(*i, "connz?limit=1024").is_some_and(|connz| {
                connz["connections"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["name"] == name))
            })
        })
    }

    /// The index of the node called `server_name` (`sdp-n2` → 1).
    pub fn index_of(server_name: &str) -> Option<usize> {
        server_name
            .strip_prefix("sdp-n")?
            .parse::<usize>()
            .ok()?
            .checked_sub(1)
    }

    /// Waits (30 s at most) until every running node sees a JetStream
    /// meta leader.
    pub fn wait_meta_leader(&self) {
        wait_for_blocking("a JetStream meta leader", Duration::from_secs(30), || {
            (0..self.nodes.len())
                .filter(|i| self.nodes[*i].child.is_some())
                .all(|i| {
                    self.monitor(i, "jsz").is_some_and(|jsz| {
                        jsz["meta_cluster"]["leader"]
                            .as_str()
                            .is_some_and(|l| !l.is_empty())
                    })
                })
                .then_some(())
        })
    }
}
