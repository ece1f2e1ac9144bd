//! The PHP test image runs the gateway fixture with `php -S`, which reaches
//! the baseline server through the Docker bridge.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use sdp_testkit::{
    BaselineServer, ContainerCleanup, ensure_php_image, php_gateway_source, try_wait_for_blocking,
    unique_id,
};

/// A plain HTTP/1.0 GET on 127.0.0.1: (status, body).
///
/// The request goes out in one write. Written piecemeal (`write!` makes a
/// syscall per formatted piece), PHP 8.2's `php -S` behind docker-proxy
/// closed about one connection in ten without a reply when the machine was
/// busy (5 of 48 runs, 6 at once; 0 of 96 with one write).
fn get(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .ok_or_else(|| format!("no body in {text:?}"))?;
    Ok((status, body))
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn php_image_runs_the_gateway_fixture() {
    let image = ensure_php_image();
    assert_eq!(ensure_php_image(), image, "idempotent");
    let baseline = BaselineServer::start();
    let app = tempfile::tempdir().expect("tempdir");
    std::fs::write(app.path().join("index.php"), php_gateway_source("7")).expect("write");
    std::fs::write(app.path().join("routes.json"), "[{\"service\":\"orders\"}]").expect("write");
    let label = unique_id("php");
    let _cleanup = ContainerCleanup::new("sdp.test", &label);
    let id = docker(&[
        "run",
        "-d",
        "--label",
        &format!("sdp.test={label}"),
        "-p",
        "127.0.0.1::8080",
        "-v",
        &format!("{}:/app:ro", app.path().display()),
        "-w",
        "/app",
        "-e",
        &format!("ORDERS_URL={}", baseline.url()),
        "-e",
        "SDP_SANDBOX=s1",
        "-e",
        "SDP_ROUTES_FILE=/app/routes.json",
        &image,
        "php",
        "-S",
        "0.0.0.0:8080",
        "/app/index.php",
    ]);
    let port: u16 = docker(&["port", &id, "8080/tcp"])
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .expect("published port");
    let health = try_wait_for_blocking(Duration::from_secs(20), || match get(port, "/healthz") {
        Ok((200, body)) => Some(body),
        _ => None,
    })
    .unwrap_or_else(|| panic!("php -S did not answer; logs: {}", docker(&["logs", &id])));
    assert_eq!(health, "ok");

    let (status, body) = get(port, "/orders/42").unwrap_or_else(|e| {
        panic!(
            "orders: {e}; state: {}; logs: {}; port {port}: {}",
            docker(&["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.State.StartedAt}} {{.NetworkSettings.IPAddress}}", &id]),
            docker(&["logs", &id]),
            String::from_utf8_lossy(&Command::new("ss").args(["-ltnp"]).output().expect("ss").stdout)
                .lines().filter(|l| l.contains(&format!(":{port} "))).collect::<Vec<_>>().join(" | ")
        )
    });
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["gateway"]["sandbox"], "s1");
    assert_eq!(json["gateway"]["revision"], "7");
    assert_eq!(json["upstream_env"], "ORDERS_URL");
    assert_eq!(json["target"], format!("{}/orders/42", baseline.url()));
    assert_eq!(json["status"], 200);
    assert_eq!(json["body"]["source"], "baseline");
    assert_eq!(json["body"]["service"], "orders");
    assert_eq!(json["body"]["path"], "/orders/42");
    assert!(baseline.requests() >= 1);

    let (status, body) = get(port, "/users/1").unwrap_or_else(|e| {
        panic!(
            "users: {e}; state: {}; logs: {}",
            docker(&[
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                &id
            ]),
            docker(&["logs", &id])
        )
    });
    assert_eq!(status, 502, "USERS_URL is unset: {body}");
    let (status, body) = get(port, "/routes").expect("routes");
    assert_eq!((status, body.as_str()), (200, "[{\"service\":\"orders\"}]"));
    let (status, _) = get(port, "/nope").expect("404");
    assert_eq!(status, 404);
}
