//! The preview entry: a request whose Host is `<sandbox>.<preview_domain>`
//! goes to that sandbox's gateway, HTTP and WebSocket upgrades alike, so a
//! sandbox keeps one link for its whole life whatever its gateway's
//! container. Runs in front of every other route; other hosts pass through.
//!
//! No session is asked for: the link gives what the gateway's published
//! port gives (docs/SECURITY.md). One upstream connection per request, so
//! nothing is pooled or shared between clients. A gateway's `Set-Cookie`
//! for the session cookie never reaches the browser (a sandbox must not
//! plant a session for the dashboard); that its scripts cannot do it
//! either is why previews belong on a site of their own (the start check
//! of `http.preview_domain`).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

use super::{ApiError, AppState};
use crate::config::PreviewDomain;
use crate::store::SandboxState;
use target::Target;

mod hold;
mod target;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// The preview link of a sandbox.
pub fn url(domain: &PreviewDomain, secure: bool, sandbox: &str) -> String {
    let scheme = if secure { "https" } else { "http" };
    format!("{scheme}://{sandbox}.{}/", domain.authority)
}

/// Middleware: proxies preview requests (see [`target`]), passes the
/// rest on. A sleeping sandbox is woken first ([`hold`]).
pub async fn entry(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let picked = match state.config.http.preview_domain.as_ref() {
        Some(domain) => target::target(request.headers(), domain),
        None => Target::Pass,
    };
    let sandbox = match picked {
        Target::Pass => return next.run(request).await,
        Target::Sandbox(sandbox) => sandbox,
        Target::BadName { header } => {
            return ApiError::bad_request(format!(
                "the {header} header names no valid sandbox (lowercase letters, digits and -)"
            ))
            .into_response();
        }
    };
    let row = match state.store.sandbox(&sandbox) {
        Ok(Some(row)) => row,
        Ok(None) => {
            return ApiError::new(
                StatusCode::NOT_FOUND,
                "no_gateway",
                format!("there is no sandbox {sandbox}"),
            )
            .into_response();
        }
        Err(err) => return ApiError::from(err).into_response(),
    };
    state.orchestrator.touch(&sandbox);
    if row.state != SandboxState::Awake
        && let Err(answer) = hold::until_awake(&state, &sandbox, request.headers()).await
    {
        return answer;
    }
    let address = match state.store.running_gateway_url(&sandbox) {
        Ok(Some(url)) => url,
        Ok(None) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_gateway",
                format!("sandbox {sandbox} has no running gateway: deploy its gateway"),
            )
            .into_response();
        }
        Err(err) => return ApiError::from(err).into_response(),
    };
    let Some(authority) = address
        .strip_prefix("http://")
        .map(|a| a.trim_end_matches('/'))
    else {
        return bad_gateway(&sandbox, "its gateway URL is not http");
    };
    match forward(request, authority).await {
        Ok(response) => response,
        Err(reason) => bad_gateway(&sandbox, &reason.to_string()),
    }
}

fn bad_gateway(sandbox: &str, reason: &str) -> Response {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "gateway_unreachable",
        format!("the gateway of sandbox {sandbox} did not answer: {reason}"),
    )
    .into_response()
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes the hop-by-hop headers, and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Why a request did not reach the gateway, or its answer could not be
/// passed on. The text follows "the gateway of sandbox … did not answer: "
/// in the 502 the client gets, so each cause is in it (not also a
/// `source`).
#[derive(Debug, thiserror::Error)]
enum ForwardError {
    #[error("bad path: {0}")]
    Path(axum::http::uri::InvalidUri),
    #[error("no connection to {authority} within {CONNECT_TIMEOUT:?}")]
    ConnectTimeout { authority: String },
    #[error("cannot connect to {authority}: {error}")]
    Connect {
        authority: String,
        error: std::io::Error,
    },
    #[error("HTTP handshake with {authority} failed: {error}")]
    Handshake {
        authority: String,
        error: hyper::Error,
    },
    #[error("{authority}: {error}")]
    Exchange {
        authority: String,
        error: hyper::Error,
    },
    #[error("it switched protocols unasked")]
    UnaskedSwitch,
}

/// Sends `request` to `authority` on a connection of its own; an upgrade
/// the gateway accepts (101) joins the two upgraded connections.
async fn forward(mut request: Request, authority: &str) -> Result<Response, ForwardError> {
    let upgrade = is_upgrade(request.headers());
    let client_upgraded = upgrade.then(|| hyper::upgrade::on(&mut request));
    let upgrade_to = request.headers().get(header::UPGRADE).cloned();
    let forwarded_host = request.headers().get(header::HOST).cloned();

    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let (true, Some(protocol)) = (upgrade, upgrade_to) {
        parts.headers.insert(header::UPGRADE, protocol);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if let Some(host) = forwarded_host {
        parts
            .headers
            .insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    parts.uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .parse()
        .map_err(ForwardError::Path)?;
    parts.version = axum::http::Version::HTTP_11;

    let authority_owned = || authority.to_owned();
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(authority))
        .await
        .map_err(|_| ForwardError::ConnectTimeout {
            authority: authority_owned(),
        })?
        .map_err(|error| ForwardError::Connect {
            authority: authority_owned(),
            error,
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| ForwardError::Handshake {
            authority: authority_owned(),
            error,
        })?;
    tokio::spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            tracing::debug!(error = %err, "preview upstream connection ended");
        }
    });
    let mut response = sender
        .send_request(axum::http::Request::from_parts(parts, body))
        .await
        .map_err(|error| ForwardError::Exchange {
            authority: authority_owned(),
            error,
        })?;

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgraded) = client_upgraded else {
            return Err(ForwardError::UnaskedSwitch);
        };
        let upstream_upgraded = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            match tokio::try_join!(client_upgraded, upstream_upgraded) {
                Ok((client, upstream)) => {
                    let _ = tokio::io::copy_bidirectional(
                        &mut TokioIo::new(client),
                        &mut TokioIo::new(upstream),
                    )
                    .await;
                }
                Err(err) => tracing::debug!(error = %err, "preview upgrade failed"),
            }
        });
        let (mut parts, _) = response.into_parts();
        strip_session_cookies(&mut parts.headers);
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    strip_session_cookies(&mut parts.headers);
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// Removes each `Set-Cookie` that could set the dashboard's session
/// cookie, under either name, in any case, whatever its attributes
/// (`Domain=`, `Path=`), and as a nameless cookie whose value reads
/// `sdp_session=…` (browsers send that back as `sdp_session=…`).
fn strip_session_cookies(headers: &mut HeaderMap) {
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|value| !sets_session_cookie(value.as_bytes()))
        .cloned()
        .collect();
    if kept.len() == headers.get_all(header::SET_COOKIE).iter().count() {
        return;
    }
    headers.remove(header::SET_COOKIE);
    for value in kept {
        headers.append(header::SET_COOKIE, value);
    }
}

fn sets_session_cookie(set_cookie: &[u8]) -> bool {
    let text = String::from_utf8_lossy(set_cookie);
    let pair = text.split(';').next().unwrap_or_default();
    let pair = pair.trim_start_matches(|c: char| c == '=' || c.is_whitespace());
    let name = pair
        .split('=')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let name = ["__host-", "__secure-"]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))
        .unwrap_or(&name);
    name == super::SESSION_COOKIE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_scoped_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::ACCEPT));
    }

    #[test]
    fn session_cookies_from_a_gateway_are_dropped() {
        let mut headers = HeaderMap::new();
        for value in [
            "sdp_session=planted; Domain=sdp.internal; Path=/",
            "SDP_Session=planted; domain=.sdp.internal",
            "__Host-sdp_session=planted; Secure; Path=/",
            "__secure-sdp_session=planted; Secure",
            " sdp_session =planted",
            "=sdp_session=planted; Domain=sdp.internal",
            "theme=dark; Path=/",
            "sdp_session_theme=1",
        ] {
            headers.append(header::SET_COOKIE, HeaderValue::from_static(value));
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        strip_session_cookies(&mut headers);
        let left: Vec<&str> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(left, ["theme=dark; Path=/", "sdp_session_theme=1"]);
        assert!(headers.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn upgrades_need_both_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!is_upgrade(&headers));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(is_upgrade(&headers));
    }
}
