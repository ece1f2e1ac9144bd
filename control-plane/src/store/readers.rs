//! The store's reading connections. The API's hot reads (a session, the
//! sandbox list, a sandbox, a deployment list) go here instead of to the
//! one writing connection, so a request does not wait behind a write, a
//! busy wait for the persister's write lock, or a WAL checkpoint's fsync:
//! in WAL mode readers read the last commit while a writer writes.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;
use super::held::Held;

/// As many as the control plane has request threads on a small host:
/// more would only wait for a core.
const READERS: usize = 2;

pub(crate) struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Readers {
    /// Opens the readers of a database that [`super::open_connection`]
    /// has already created and migrated.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let conns = (0..READERS)
            .map(|_| open_reader(path).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            conns,
            next: AtomicUsize::new(0),
        })
    }

    /// A free reader, or (all busy) the next one in turn once it is free.
    #[track_caller]
    pub(crate) fn take(&self) -> Held<'_> {
        for conn in &self.conns {
            if let Some(held) = Held::try_lock(conn) {
                return held;
            }
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        Held::lock(&self.conns[turn])
    }
}

/// A connection that cannot write (`query_only`), so a read path that
/// grew a write by mistake fails loudly instead of racing the writer.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.display().to_string(),
        source,
    };
    let conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(open_err)?;
    conn.pragma_update(None, "query_only", "ON")
        .map_err(open_err)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::super::Store;
    use super::super::sandbox_rows::tests::sandbox;

    /// A read answers, with the last commit, while the writer is held in
    /// the middle of a write transaction.
    #[test]
    fn a_read_does_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("sdp.db")).expect("store");
        sandbox(&store, "committed");
        let writer = store.conn();
        writer.execute_batch("BEGIN IMMEDIATE").expect("begin");
        writer
            .execute(
                "UPDATE sandboxes SET owner = 'bob' WHERE name = 'committed'",
                [],
            )
            .expect("update");

        let (done, answer) = mpsc::channel();
        let reading = store.clone();
        std::thread::spawn(move || {
            let _ = done.send(reading.sandbox("committed").map(|s| s.map(|s| s.owner)));
        });
        let owner = answer
            .recv_timeout(Duration::from_secs(10))
            .expect("the read waited for the writer")
            .expect("read");
        assert_eq!(owner.as_deref(), Some("ann"), "read the uncommitted write");

        writer.execute_batch("COMMIT").expect("commit");
        drop(writer);
        let owner = store.sandbox("committed").expect("read").map(|s| s.owner);
        assert_eq!(owner.as_deref(), Some("bob"), "missed the commit");
    }

    #[test]
    fn a_reader_cannot_write() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("sdp.db")).expect("store");
        let written = store
            .read()
            .execute("DELETE FROM sandboxes", [])
            .expect_err("a reader wrote");
        assert!(
            written.to_string().contains("readonly"),
            "unexpected error: {written}"
        );
    }
}
