//! `agent.cmd.<agent_id>.probe`: checks a sandbox's routes from its
//! gateway's own network. The agent finds the running gateway container by
//! its labels and runs, per route and all at once, `busybox wget` inside it
//! (`docker exec`, argv as a list, no shell), bounded by busybox `timeout`
//! and by the agent, and timed by busybox `time` (so the latency leaves
//! out the exec's own start, tens to hundreds of ms). The base images SDP makes (`packaging/images/`, the
//! tests' images) carry busybox with these applets.
//! The answer names the broken hop: the gateway container, the target URL,
//! DNS, the TCP connection, a timeout, or the HTTP exchange. Any HTTP
//! status counts as reachable.

use std::time::{Duration, Instant};

use sdp_bus::{Probe, ProbeHop, ProbeReport, Route, RouteCheck, RpcError};

use crate::docker;
use crate::error::DeployError;
use crate::reply::bad_request;
use crate::state::Agent;

/// The bound of one target's check, inside the container.
pub const TARGET_TIMEOUT_SECS: u64 = 5;
/// The agent's own bound around one check (the exec's start and end).
const EXEC_TIMEOUT: Duration = Duration::from_secs(TARGET_TIMEOUT_SECS + 3);
/// Routes a probe takes at most (a sandbox has a handful).
const MAX_ROUTES: usize = 256;

pub(crate) async fn probe(agent: &Agent, request: Probe) -> Result<ProbeReport, RpcError> {
    sdp_bus::validate::resource_name("sandbox", &request.sandbox)
        .map_err(|e| bad_request(e.to_string()))?;
    sdp_bus::validate::repo(&request.service).map_err(|e| bad_request(e.to_string()))?;
    if request.routes.len() > MAX_ROUTES {
        return Err(bad_request(format!(
            "at most {MAX_ROUTES} routes per probe"
        )));
    }
    let container = match running_gateway(agent, &request).await {
        Ok(Some(container)) => container,
        Ok(None) => {
            let error = format!(
                "the gateway container of {} is not running on agent {}",
                request.sandbox,
                agent.agent_id()
            );
            return Ok(all_broken(&request.routes, ProbeHop::Gateway, &error));
        }
        Err(error) => {
            let error = error.user_message();
            return Ok(all_broken(&request.routes, ProbeHop::Gateway, &error));
        }
    };
    let checks = request
        .routes
        .iter()
        .map(|route| check(&agent.docker, &container, route));
    Ok(ProbeReport {
        routes: futures::future::join_all(checks).await,
    })
}

/// The id of the running container of (this agent, sandbox, service).
async fn running_gateway(agent: &Agent, request: &Probe) -> Result<Option<String>, DeployError> {
    let labels = [
        (docker::LABEL_AGENT, agent.agent_id()),
        (docker::LABEL_SANDBOX, request.sandbox.as_str()),
        (docker::LABEL_SERVICE, request.service.as_str()),
    ];
    let containers = agent.docker.list_labelled(&labels).await?;
    for (id, _) in containers {
        if let Ok((_, None)) = agent.docker.state(&id, 0).await {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

fn all_broken(routes: &[Route], hop: ProbeHop, error: &str) -> ProbeReport {
    ProbeReport {
        routes: routes
            .iter()
            .map(|route| broken(route, hop, error.to_owned(), None))
            .collect(),
    }
}

fn broken(route: &Route, hop: ProbeHop, error: String, latency: Option<Duration>) -> RouteCheck {
    RouteCheck {
        service: route.service.clone(),
        target: route.target.clone(),
        source: route.source,
        ok: false,
        status: None,
        latency_ms: latency.map(millis),
        error: Some(error),
        hop: Some(hop),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Why a route's target is not checked. The text goes back in the route's
/// check; it never repeats the URL (it might carry credentials).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefused {
    #[error("the target is not an http:// or https:// URL")]
    NotHttp,
    #[error("the target URL is too long or holds spaces or control characters")]
    Unsafe,
    #[error("the target URL carries credentials")]
    Credentials,
    #[error("the target URL has no host")]
    NoHost,
}

/// The longest target URL checked.
const MAX_TARGET_LEN: usize = 2048;

/// The target's `host:port` if it is an http(s) URL the check accepts: a
/// host, no whitespace or control characters, no credentials; at most 2048
/// bytes. It then goes to wget as one argv element (it starts with
/// `http`, so it cannot read as an option).
pub fn check_target(target: &str) -> Result<String, TargetRefused> {
    let (rest, default_port) = if let Some(rest) = target.strip_prefix("http://") {
        (rest, 80)
    } else if let Some(rest) = target.strip_prefix("https://") {
        (rest, 443)
    } else {
        return Err(TargetRefused::NotHttp);
    };
    if target.len() > MAX_TARGET_LEN || target.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(TargetRefused::Unsafe);
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(TargetRefused::Credentials);
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err(TargetRefused::NoHost);
    }
    // `[::1]:8080`, `host:8080`, `host`
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    Ok(if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    })
}

/// The argv of one check: busybox's `time` around its `timeout` around its
/// `wget` (`timeout` kills `wget` itself, so none is left running), quiet
/// but for the server's status lines (`-S`), no proxy, body dropped. (The
/// `-T` of busybox 1.35's wget crashes: hence `timeout`.)
fn argv(target: &str) -> Vec<String> {
    let secs = TARGET_TIMEOUT_SECS.to_string();
    [
        "busybox",
        "time",
        "busybox",
        "timeout",
        secs.as_str(),
        "busybox",
        "wget",
        "-q",
        "-S",
        "-Y",
        "off",
        "-O",
        "/dev/null",
        target,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

async fn check(docker: &docker::DockerClient, container: &str, route: &Route) -> RouteCheck {
    let host_port = match check_target(&route.target) {
        Ok(host_port) => host_port,
        Err(why) => return broken(route, ProbeHop::Url, why.to_string(), None),
    };
    let started = Instant::now();
    let ran = tokio::time::timeout(EXEC_TIMEOUT, docker.exec(container, argv(&route.target))).await;
    let latency = started.elapsed();
    let (exit, output) = match ran {
        Err(_) => {
            let error = format!("no answer from {host_port} within {TARGET_TIMEOUT_SECS}s");
            return broken(route, ProbeHop::Timeout, error, Some(latency));
        }
        Ok(Err(err)) => {
            let error = format!(
                "cannot run the check in the gateway container: {}",
                err.user_message()
            );
            return broken(route, ProbeHop::Gateway, error, Some(latency));
        }
        Ok(Ok(ran)) => ran,
    };
    // busybox `time`'s wall clock (10 ms steps), else the agent's.
    let latency = timed(&output).unwrap_or(latency);
    match classify(exit, &output, &host_port) {
        Ok(status) => RouteCheck {
            service: route.service.clone(),
            target: route.target.clone(),
            source: route.source,
            ok: true,
            status: Some(status),
            latency_ms: Some(millis(latency)),
            error: None,
            hop: None,
        },
        Err((hop, error)) => broken(route, hop, error, Some(latency)),
    }
}

/// The `real` time busybox `time` printed (`real\t0m 0.03s`).
pub fn timed(output: &str) -> Option<Duration> {
    let line = output
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("real"))?;
    let (minutes, seconds) = line.trim().split_once('m')?;
    let minutes: u64 = minutes.trim().parse().ok()?;
    let seconds: f64 = seconds.trim().trim_end_matches('s').parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::from_secs(minutes * 60) + Duration::from_secs_f64(seconds))
}

/// Whether a line is busybox `time`'s, not wget's.
fn is_time_line(line: &str) -> bool {
    let line = line.trim();
    [
        "real",
        "user",
        "sys",
        "Command exited",
        "Command terminated",
    ]
    .iter()
    .any(|prefix| line.starts_with(prefix))
}

/// What wget's exit code and output say: the first HTTP status (any status
/// is an answer), else the broken hop and why.
pub fn classify(
    exit: Option<i64>,
    output: &str,
    host_port: &str,
) -> Result<u16, (ProbeHop, String)> {
    let status = output.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let proto = words.next()?;
        if !proto.starts_with("HTTP/") {
            return None;
        }
        words.next()?.parse::<u16>().ok()
    });
    if let Some(status) = status {
        return Ok(status);
    }
    let lower = output.to_ascii_lowercase();
    let broken = if lower.contains("bad address") {
        (
            ProbeHop::Dns,
            format!("the host of {host_port} does not resolve from the gateway"),
        )
    } else if lower.contains("connection refused") {
        (
            ProbeHop::Connect,
            format!("connection refused to {host_port}"),
        )
    } else if lower.contains("unreachable") || lower.contains("no route to host") {
        (
            ProbeHop::Connect,
            format!("{host_port} is unreachable from the gateway"),
        )
    } else if lower.contains("timed out")
        || lower.contains("terminated by signal")
        || matches!(exit, Some(15 | 124 | 143))
    {
        (
            ProbeHop::Timeout,
            format!("no answer from {host_port} within {TARGET_TIMEOUT_SECS}s"),
        )
    } else if lower.contains("executable file not found") || matches!(exit, Some(126 | 127)) {
        (
            ProbeHop::Gateway,
            "the gateway container has no busybox to run the check with".to_owned(),
        )
    } else {
        let last = output
            .lines()
            .filter(|l| !is_time_line(l))
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .map(|l| l.trim_start_matches("wget: ").to_owned())
            .unwrap_or_else(|| format!("the check exited with {}", exit.unwrap_or(-1)));
        (
            ProbeHop::Http,
            format!("no HTTP answer from {host_port}: {last}"),
        )
    };
    Err(broken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            check_target("http://users:8080/x").as_deref(),
            Ok("users:8080")
        );
        assert_eq!(
            check_target("https://api.ocp.example").as_deref(),
            Ok("api.ocp.example:443")
        );
        assert_eq!(
            check_target("http://10.0.0.1?x").as_deref(),
            Ok("10.0.0.1:80")
        );
        assert_eq!(check_target("http://[::1]:81/").as_deref(), Ok("[::1]:81"));
        assert_eq!(check_target("http://[::1]/").as_deref(), Ok("[::1]:80"));
        use TargetRefused::*;
        for (bad, why) in [
            ("ftp://x", NotHttp),
            ("-O/etc/passwd", NotHttp),
            ("http://", NoHost),
            ("http:///x", NoHost),
            ("http://a b", Unsafe),
            ("http://x\n", Unsafe),
            ("http://u:p@host/", Credentials),
            ("http://:80/", NoHost),
        ] {
            assert_eq!(check_target(bad), Err(why), "{bad}");
        }
        let long = format!("http://h/{}", "a".repeat(MAX_TARGET_LEN));
        assert_eq!(check_target(&long), Err(Unsafe));
        assert!(
            !Credentials.to_string().contains("u:p"),
            "the message never repeats the URL"
        );
    }

    #[test]
    fn wget_outputs() {
        let hp = "127.0.0.1:1";
        assert_eq!(
            classify(Some(0), "  HTTP/1.0 200 OK\n  Server: x\n", hp),
            Ok(200)
        );
        assert_eq!(
            classify(
                Some(1),
                "  HTTP/1.1 502 Bad Gateway\nwget: server returned error: HTTP/1.1 502 Bad Gateway\n",
                hp
            ),
            Ok(502)
        );
        let refused = classify(
            Some(1),
            "wget: can't connect to remote host (127.0.0.1): Connection refused\n",
            hp,
        );
        assert_eq!(
            refused,
            Err((
                ProbeHop::Connect,
                "connection refused to 127.0.0.1:1".into()
            ))
        );
        assert!(matches!(
            classify(Some(1), "wget: bad address 'nope.invalid'\n", hp),
            Err((ProbeHop::Dns, _))
        ));
        assert!(matches!(
            classify(Some(143), "", hp),
            Err((ProbeHop::Timeout, _))
        ));
        let killed =
            "Command terminated by signal 15\nreal\t0m 5.00s\nuser\t0m 0.00s\nsys\t0m 0.00s\n";
        assert!(matches!(
            classify(Some(15), killed, hp),
            Err((ProbeHop::Timeout, _))
        ));
        assert!(matches!(
            classify(
                Some(127),
                "OCI runtime exec failed: exec: \"busybox\": executable file not found in $PATH",
                hp
            ),
            Err((ProbeHop::Gateway, _))
        ));
        let other = classify(
            Some(1),
            "wget: error getting response\nCommand exited with non-zero status 1\nreal\t0m 0.01s\nuser\t0m 0.00s\nsys\t0m 0.00s\n",
            hp,
        );
        assert_eq!(
            other,
            Err((
                ProbeHop::Http,
                "no HTTP answer from 127.0.0.1:1: error getting response".into()
            ))
        );
    }

    #[test]
    fn busybox_time() {
        let out = "  HTTP/1.1 200 OK\nreal\t0m 0.03s\nuser\t0m 0.00s\nsys\t0m 0.00s\n";
        assert_eq!(timed(out), Some(Duration::from_millis(30)));
        assert_eq!(
            timed("real\t1m 2.50s\n"),
            Some(Duration::from_millis(62_500))
        );
        assert_eq!(timed("  HTTP/1.1 200 OK\n"), None);
        assert_eq!(timed("real\tsoon\n"), None);
    }

    #[test]
    fn argv_is_a_list_with_the_target_last() {
        let args = argv("http://x:1/");
        assert_eq!(args.last().map(String::as_str), Some("http://x:1/"));
        assert_eq!(args[0], "busybox");
    }
}
