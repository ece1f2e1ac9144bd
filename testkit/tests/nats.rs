//! NatsServer against the real nats-server binary.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::Duration;

use sdp_testkit::NatsServer;

/// Connects and reads the server's `INFO` greeting.
fn greeting(port: u16) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .expect("read INFO");
    line
}

#[test]
fn starts_with_jetstream_and_accepts_connections() {
    let server = NatsServer::start();
    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
    let info = greeting(server.port());
    assert!(info.starts_with("INFO "), "{info}");
    assert!(info.contains("\"jetstream\":true"), "{info}");
    assert!(server.store_dir().join("jetstream").is_dir());
}

#[test]
fn kill_and_restart_keep_port_and_store() {
    let mut server = NatsServer::start();
    let port = server.port();
    let store = server.store_dir().to_path_buf();
    server.kill();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still accepting after kill"
    );
    assert!(store.is_dir(), "store dir removed by kill");
    server.restart();
    assert_eq!(server.port(), port);
    assert!(greeting(port).starts_with("INFO "));
    // restart while running kills first
    server.restart();
    assert!(greeting(port).starts_with("INFO "));
    let root = server.root().to_path_buf();
    drop(server);
    assert!(!root.exists(), "temp dir left behind");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still accepting after drop"
    );
}
