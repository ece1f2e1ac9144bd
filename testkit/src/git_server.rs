//! [`GitServer`]: git smart HTTP with basic auth, backed by the real
//! `git http-backend` (run as a CGI per request). An axum app on a
//! [`ServerThread`], so sync and async tests can use it alike.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

use crate::cmd::{git, run};
use crate::server_thread::ServerThread;

/// The realm sent with every 401.
pub const REALM: &str = "sdp-test";
const MAX_BODY: usize = 256 * 1024 * 1024;

/// A git smart-HTTP server on 127.0.0.1 serving the bare repos under its
/// temp root to clients that send the right basic-auth credentials.
/// Drop stops the server thread and removes the temp root.
#[derive(Debug)]
pub struct GitServer {
    // Dropped first (fields drop in order): the server stops before its
    // repos go.
    server: ServerThread,
    state: Arc<ServerState>,
    stats: Arc<Stats>,
    root: TempDir,
}

#[derive(Debug, Default)]
struct Stats {
    requests: AtomicUsize,
    auth_failures: AtomicUsize,
    wrong_credentials: AtomicUsize,
    compressed_bodies: AtomicUsize,
}

#[derive(Debug)]
struct ServerState {
    root: PathBuf,
    /// base64("user:password") → user, for every user allowed in.
    users: std::sync::Mutex<std::collections::HashMap<String, String>>,
    stats: Arc<Stats>,
}

impl GitServer {
    /// Starts serving on a free 127.0.0.1 port. The listener is bound before
    /// this returns, so clients may connect at once.
    pub fn start(username: &str, password: &str) -> GitServer {
        Self::start_on("127.0.0.1:0", username, password)
    }

    /// Like [`GitServer::start`], on a given address (`scripts/dev.sh` runs
    /// its demo git server on a fixed port).
    pub fn start_on(addr: &str, username: &str, password: &str) -> GitServer {
        let root = tempfile::Builder::new()
            .prefix("sdp-git-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create git server temp dir: {e}"));
        let stats = Arc::new(Stats::default());
        let state = Arc::new(ServerState {
            root: root.path().to_path_buf(),
            users: std::sync::Mutex::new(std::collections::HashMap::from([(
                base64(format!("{username}:{password}").as_bytes()),
                username.to_owned(),
            )])),
            stats: Arc::clone(&stats),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        GitServer {
            server: ServerThread::start("git", addr, app),
            state,
            stats,
            root,
        }
    }

    /// Lets another user in (for tests with more than one person).
    pub fn add_user(&self, username: &str, password: &str) {
        self.state
            .users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                base64(format!("{username}:{password}").as_bytes()),
                username.to_owned(),
            );
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }

    /// `http://127.0.0.1:PORT/<repo>.git`.
    pub fn url(&self, repo: &str) -> String {
        format!("{}/{repo}.git", self.base_url())
    }

    /// `<root>/<repo>.git` (whether or not it exists).
    pub fn bare_path(&self, repo: &str) -> PathBuf {
        self.root.path().join(format!("{repo}.git"))
    }

    /// The directory the bare repos live in (`GIT_PROJECT_ROOT`).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Creates an empty bare repo `<repo>.git` (with `http.receivepack`
    /// off) and returns its path.
    pub fn create_bare(&self, repo: &str) -> PathBuf {
        let path = self.bare_path(repo);
        run(git(None).args(["init", "--quiet", "--bare"]).arg(&path));
        run(git(Some(&path)).args(["config", "http.receivepack", "false"]));
        path
    }

    /// Requests refused for missing or wrong credentials so far.
    pub fn auth_failures(&self) -> usize {
        self.stats.auth_failures.load(Ordering::SeqCst)
    }

    /// Requests refused although they carried credentials: the wrong
    /// logins a git host counts towards locking the user out (the first,
    /// credential-less request of each client is not one).
    pub fn wrong_credentials(&self) -> usize {
        self.stats.wrong_credentials.load(Ordering::SeqCst)
    }

    /// Authorized requests whose body came with a `Content-Encoding`
    /// (git gzips large upload-pack requests).
    pub fn compressed_requests(&self) -> usize {
        self.stats.compressed_bodies.load(Ordering::SeqCst)
    }

    /// Requests received so far (including refused ones).
    pub fn requests(&self) -> usize {
        self.stats.requests.load(Ordering::SeqCst)
    }
}

/// `Basic <base64(username:password)>`, the value of an `Authorization`
/// header (e.g. for `git -c http.extraHeader=...`).
pub fn basic_auth_header(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64(format!("{username}:{password}").as_bytes())
    )
}

async fn handle(State(state): State<Arc<ServerState>>, req: Request) -> Response {
    state.stats.requests.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let user = authorized(&parts.headers, &state);
    let Some(user) = user else {
        state.stats.auth_failures.fetch_add(1, Ordering::SeqCst);
        if parts.headers.contains_key(header::AUTHORIZATION) {
            state.stats.wrong_credentials.fetch_add(1, Ordering::SeqCst);
        }
        tracing::debug!(uri = %parts.uri, "git server: 401");
        return (
            StatusCode::UNAUTHORIZED,
            [
                (header::WWW_AUTHENTICATE, format!("Basic realm=\"{REALM}\"")),
                // The body (a POST's pack negotiation) stays unread, so
                // this connection cannot carry another request.
                (header::CONNECTION, "close".to_owned()),
            ],
            "authentication required\n",
        )
            .into_response();
    };
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("cannot read body: {e}")),
    };
    let cgi = CgiRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        user: &user,
        body,
    };
    match run_backend(&state, cgi).await {
        Ok(output) => parse_cgi_output(&output),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("http-backend: {e}"),
        ),
    }
}

/// The user a request's `Authorization: Basic` names, if it is allowed.
fn authorized(headers: &HeaderMap, state: &ServerState) -> Option<String> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    state
        .users
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(token.trim())
        .cloned()
}

struct CgiRequest<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a HeaderMap,
    user: &'a str,
    body: Bytes,
}

async fn run_backend(state: &ServerState, req: CgiRequest<'_>) -> std::io::Result<Vec<u8>> {
    let header_str = |name: HeaderName| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &state.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", req.method)
        .env("PATH_INFO", req.path)
        .env("QUERY_STRING", req.query)
        .env("CONTENT_LENGTH", req.body.len().to_string())
        .env("REMOTE_USER", req.user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env_remove("CONTENT_TYPE")
        .env_remove("HTTP_GIT_PROTOCOL")
        .env_remove("HTTP_CONTENT_ENCODING")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(v) = header_str(header::CONTENT_TYPE) {
        cmd.env("CONTENT_TYPE", v);
    }
    if let Some(v) = header_str(HeaderName::from_static("git-protocol")) {
        cmd.env("HTTP_GIT_PROTOCOL", v);
    }
    if let Some(v) = header_str(header::CONTENT_ENCODING) {
        state.stats.compressed_bodies.fetch_add(1, Ordering::SeqCst);
        cmd.env("HTTP_CONTENT_ENCODING", v);
    }
    let mut child = cmd.spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin pipe"))?;
    let body = req.body;
    // Feed stdin while reading stdout, so neither pipe can fill up and stall.
    let write = async move {
        // http-backend may exit without reading everything (e.g. on error).
        let _ = stdin.write_all(&body).await;
        drop(stdin);
    };
    let ((), output) = tokio::join!(write, child.wait_with_output());
    let output = output?;
    if !output.stderr.is_empty() {
        tracing::debug!(
            stderr = %String::from_utf8_lossy(&output.stderr).trim(),
            "git http-backend"
        );
    }
    if !output.status.success() && output.stdout.is_empty() {
        return Err(std::io::Error::other(format!(
            "exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output.stdout)
}

/// Turns CGI output (headers, blank line, body) into a response; honours a
/// `Status:` header.
fn parse_cgi_output(out: &[u8]) -> Response {
    let (head, body) = split_head(out);
    let mut status = StatusCode::OK;
    let mut headers = HeaderMap::new();
    for line in String::from_utf8_lossy(head).lines() {
        let line = line.trim_end_matches('\r');
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<u16>().ok());
            match code.and_then(|c| StatusCode::from_u16(c).ok()) {
                Some(s) => status = s,
                None => return error(StatusCode::BAD_GATEWAY, format!("bad CGI status {value:?}")),
            }
        } else if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
    let mut resp = Response::new(Body::from(body.to_vec()));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

fn split_head(out: &[u8]) -> (&[u8], &[u8]) {
    let crlf = find(out, b"\r\n\r\n").map(|i| (i, 4));
    let lf = find(out, b"\n\n").map(|i| (i, 2));
    let end = match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    };
    match end {
        Some((i, len)) => (&out[..i], &out[i + len..]),
        None => (out, &[]),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn error(status: StatusCode, msg: String) -> Response {
    tracing::warn!(%status, %msg, "git server error");
    (status, msg).into_response()
}

/// Standard base64 with padding (RFC 4648), enough for basic auth.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
        assert_eq!(basic_auth_header("user", "pass"), "Basic dXNlcjpwYXNz");
    }

    #[test]
    fn cgi_status_and_headers_are_parsed() {
        let resp =
            parse_cgi_output(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/plain");
        let resp = parse_cgi_output(b"Content-Type: x\n\nbody");
        assert_eq!(resp.status(), StatusCode::OK);
    }
}
