//! Who may connect: TLS only, a server certificate from the configured CA,
//! a user of `auth.conf` with its password; nobody anonymous.

use std::time::Duration;

use async_nats::ConnectErrorKind;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::harness::{SecureNats, USERS, gen_certs};

#[tokio::test]
async fn every_component_user_connects_over_tls() {
    let nats = SecureNats::start().await;
    for (user, _) in USERS {
        let probe = nats.connect(user).await;
        probe.client.flush().await.expect("flush");
        assert!(probe.client.server_info().tls_required, "{user}: TLS");
    }
}

#[tokio::test]
async fn anonymous_connection_is_refused() {
    let nats = SecureNats::start().await;
    let err = nats
        .tls_options()
        .connect(nats.url())
        .await
        .expect_err("an anonymous connection must be refused");
    assert_eq!(
        err.kind(),
        ConnectErrorKind::AuthorizationViolation,
        "{err}"
    );
}

#[tokio::test]
async fn wrong_password_or_unknown_user_is_refused() {
    let nats = SecureNats::start().await;
    let attempts = [
        ("control-plane", "p0wrong".to_owned()),
        // another user's valid password
        ("control-plane", nats.password("debug").to_owned()),
        ("agent-micro-1", String::new()),
        ("admin", nats.password("control-plane").to_owned()),
    ];
    for (user, password) in attempts {
        let err = async_nats::ConnectOptions::with_user_and_password(user.into(), password)
            .add_root_certificates(nats.ca())
            .require_tls(true)
            .connection_timeout(Duration::from_secs(5))
            .connect(nats.url())
            .await
            .expect_err("a wrong credential must be refused");
        assert_eq!(
            err.kind(),
            ConnectErrorKind::AuthorizationViolation,
            "{user}: {err}"
        );
    }
}

/// A client that speaks the NATS protocol in plain text gets no session:
/// the server announces `tls_required` and then expects a TLS handshake.
#[tokio::test]
async fn plain_tcp_is_refused() {
    let nats = SecureNats::start().await;
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", nats.port()))
        .await
        .expect("TCP connect");
    let mut reader = BufReader::new(stream);
    let mut info = String::new();
    tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut info))
        .await
        .expect("INFO in time")
        .expect("read INFO");
    assert!(info.starts_with("INFO "), "{info}");
    assert!(info.contains("\"tls_required\":true"), "{info}");
    let connect = serde_json::json!({
        "user": "control-plane",
        "pass": nats.password("control-plane"),
        "verbose": true,
        "pedantic": false,
        "tls_required": false,
    });
    reader
        .get_mut()
        .write_all(format!("CONNECT {connect}\r\nPING\r\nSUB deploy.request.> 1\r\n").as_bytes())
        .await
        .expect("write CONNECT");
    // The server closes the connection (a failed handshake); whatever it
    // sent before that is no protocol answer.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut rest))
        .await
        .expect("the server closes a plain-text connection")
        .ok();
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        !rest.contains("PONG") && !rest.contains("+OK"),
        "plain text got answers: {rest:?}"
    );
}

#[tokio::test]
async fn server_certificate_from_another_ca_is_refused() {
    let nats = SecureNats::start().await;
    let other = tempfile::TempDir::new().expect("temp dir");
    gen_certs(other.path());
    let err = async_nats::ConnectOptions::with_user_and_password(
        "control-plane".into(),
        nats.password("control-plane").into(),
    )
    .add_root_certificates(other.path().join("ca.pem"))
    .require_tls(true)
    .connection_timeout(Duration::from_secs(5))
    .connect(nats.url())
    .await
    .expect_err("a server certificate of an unknown CA must be refused");
    assert!(
        matches!(err.kind(), ConnectErrorKind::Tls | ConnectErrorKind::Io),
        "{err:?}"
    );
}
