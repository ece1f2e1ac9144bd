//! The REST client: one `reqwest::Client`, the control plane's base URL and
//! the bearer token. Error answers (`{"error": {"code", "message"}}`)
//! become [`CliError::Api`] with their status, so the exit code follows
//! the HTTP status.

use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::CliError;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        let http = reqwest::Client::builder()
            .user_agent(concat!("sdp/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A client that must be logged in: no token is [`CliError::NotLoggedIn`].
    pub fn require_token(&self) -> Result<&str, CliError> {
        self.token.as_deref().ok_or(CliError::NotLoggedIn)
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    async fn send(&self, builder: RequestBuilder) -> Result<Response, CliError> {
        let response = builder.send().await.map_err(|source| CliError::Network {
            url: self.base.clone(),
            source,
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let code = body["error"]["code"].as_str().unwrap_or("http_error");
        let message = body["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the control plane answered HTTP {status}"));
        Err(CliError::Api {
            status,
            code: code.to_owned(),
            message,
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        what: &str,
        builder: RequestBuilder,
    ) -> Result<T, CliError> {
        let response = self.send(builder).await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return serde_json::from_value(Value::Null).map_err(|_| CliError::Api {
                status: 204,
                code: "no_content".into(),
                message: format!("{what}: no content"),
            });
        }
        response.json().await.map_err(|source| CliError::Malformed {
            what: what.to_owned(),
            source,
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.json(path, self.request(Method::GET, path)).await
    }

    pub async fn get_text(&self, path: &str) -> Result<String, CliError> {
        let response = self.send(self.request(Method::GET, path)).await?;
        response.text().await.map_err(|source| CliError::Malformed {
            what: path.to_owned(),
            source,
        })
    }

    /// A successful response whose body the caller reads as it comes
    /// (`Response::chunk`), e.g. a followed runtime log.
    pub async fn get_streaming(&self, path: &str) -> Result<Response, CliError> {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, CliError> {
        self.json(path, self.request(Method::POST, path).json(body))
            .await
    }

    pub async fn put<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, CliError> {
        self.json(path, self.request(Method::PUT, path).json(body))
            .await
    }

    pub async fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, CliError> {
        self.json(path, self.request(Method::PATCH, path).json(body))
            .await
    }

    /// A request whose answer body does not matter (204s, logout).
    pub async fn send_empty(&self, method: Method, path: &str) -> Result<Value, CliError> {
        let response = self.send(self.request(method, path)).await?;
        Ok(response.json().await.unwrap_or(Value::Null))
    }

    /// The WebSocket URL of `path` (`http` → `ws`, `https` → `wss`).
    pub fn ws_url(&self, path: &str) -> String {
        let base = if let Some(rest) = self.base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.base.clone()
        };
        format!("{base}{path}")
    }
}

/// A path segment as it goes into a URL (names are validated by the server,
/// but a user may type anything).
pub fn segment(text: &str) -> String {
    if text.bytes().all(|b| b == b'.') {
        // `.` and `..` would be resolved away by the URL parser.
        return text.replace('.', "%2E");
    }
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A query string of the pairs that have a value.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(key, value)| value.map(|v| format!("{key}={}", segment(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped() {
        assert_eq!(segment("alpha"), "alpha");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("../x"), "..%2Fx");
        assert_eq!(segment(".."), "%2E%2E");
    }

    #[test]
    fn queries_skip_missing_values() {
        assert_eq!(query(&[("a", None)]), "");
        assert_eq!(
            query(&[
                ("sandbox", Some("alpha")),
                ("repo", None),
                ("status", Some("running"))
            ]),
            "?sandbox=alpha&status=running"
        );
    }

    #[test]
    fn websocket_urls_follow_the_scheme() {
        let client = Client::new("https://sdp.example/", None);
        assert_eq!(client.ws_url("/ws/x"), "wss://sdp.example/ws/x");
        let client = Client::new("http://127.0.0.1:8080", None);
        assert_eq!(client.ws_url("/ws/x"), "ws://127.0.0.1:8080/ws/x");
    }
}
