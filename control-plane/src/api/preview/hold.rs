//! A request for a sandbox that sleeps is held while it wakes. A browser
//! (`Accept: text/html`) gets a "waking" page after [`BROWSER_PATIENCE`]
//! that reloads itself; any other client waits (up to [`HOLD`]) and gets
//! its own answer once the services are healthy, or a 503 (the wake
//! failed) or 504 (it took too long).

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::super::{ApiError, AppState};

/// How long a browser waits before it is shown the waking page.
pub const BROWSER_PATIENCE: Duration = Duration::from_secs(1);
/// How long any other request is held at most.
pub const HOLD: Duration = Duration::from_secs(150);
/// Seconds after which the waking page reloads itself.
const RELOAD_SECS: u32 = 2;

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

/// Waits for `sandbox` to wake; `Err` is the answer to give instead of
/// forwarding the request.
pub async fn until_awake(
    state: &AppState,
    sandbox: &str,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let wake = state.orchestrator.start_wake(sandbox);
    let patience = if wants_html(headers) {
        BROWSER_PATIENCE
    } else {
        HOLD
    };
    match tokio::time::timeout(patience, wake).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "wake_failed",
            err.to_string(),
        )
        .into_response()),
        Err(_) if patience == BROWSER_PATIENCE => Err(waking_page(sandbox)),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "wake_timeout",
            format!(
                "sandbox {sandbox} did not wake within {}s; it goes on waking",
                HOLD.as_secs()
            ),
        )
        .into_response()),
    }
}

/// The page a browser sees while the sandbox wakes: it reloads itself
/// until the sandbox answers. `sandbox` is a checked name (no markup).
fn waking_page(sandbox: &str) -> Response {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{RELOAD_SECS}\">\
         <title>Waking {sandbox}…</title></head>\
         <body style=\"font-family:sans-serif;margin:4em;text-align:center\">\
         <h1 id=\"sdp-waking\">Waking sandbox {sandbox}…</h1>\
         <p>It slept after a while without requests. This page reloads by itself once its services are up.</p>\
         </body></html>\n"
    );
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from(RELOAD_SECS));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_are_told_by_their_accept_header() {
        let mut headers = HeaderMap::new();
        assert!(!wants_html(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wants_html(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
        );
        assert!(wants_html(&headers));
    }

    #[test]
    fn the_waking_page_reloads_itself() {
        let response = waking_page("alpha");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(RELOAD_SECS))
        );
    }
}
