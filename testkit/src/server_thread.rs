//! [`ServerThread`]: an axum app served on a thread of its own with a
//! current-thread tokio runtime, so sync and async tests can use it alike
//! (a sync test has no runtime; an async one may be on a runtime whose
//! workers it blocks). What [`GitServer`](crate::GitServer) and
//! [`BaselineServer`](crate::BaselineServer) run on.

use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;

use axum::Router;
use tokio::sync::oneshot;

/// A running axum app. Dropping it stops the server and joins its thread;
/// dropping the runtime aborts connections still open.
#[derive(Debug)]
pub struct ServerThread {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Binds `addr` (e.g. `127.0.0.1:0`) before it returns, so clients may
    /// connect at once, and serves `app` on a thread named `name-<port>`.
    ///
    /// # Panics
    /// If `addr` cannot be bound or the thread cannot start.
    pub fn start(name: &str, addr: &str, app: Router) -> ServerThread {
        let listener = TcpListener::bind(addr)
            .unwrap_or_else(|e| panic!("cannot bind the {name} server on {addr}: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("cannot set the {name} listener non-blocking: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no local addr for the {name} server: {e}"));
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let label = name.to_owned();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-{}", addr.port()))
            .spawn(move || serve(&label, listener, app, shutdown_rx))
            .unwrap_or_else(|e| panic!("cannot spawn the {name} server thread: {e}"));
        ServerThread {
            addr,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `app` until `shutdown` fires (or its sender is dropped).
fn serve(name: &str, listener: TcpListener, app: Router, shutdown: oneshot::Receiver<()>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "{name} server: cannot build runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(error = %e, "{name} server: cannot register listener");
                return;
            }
        };
        let server = std::future::IntoFuture::into_future(axum::serve(listener, app));
        tokio::select! {
            res = server => if let Err(e) = res {
                tracing::error!(error = %e, "{name} server stopped");
            },
            _ = shutdown => {}
        }
    });
}
