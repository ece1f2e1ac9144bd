//! Changes no other page can make, checked in front of every route (so a
//! new one cannot skip them); reads (GET, HEAD, OPTIONS) pass.
//!
//! - A change that carries the session cookie, which the browser adds on
//!   its own, must come from the dashboard's origin: `Origin` is the
//!   request's own (`http(s)://<Host>`), `http.public_url`'s or one of
//!   `http.allowed_origins`, or `Sec-Fetch-Site: same-origin`; else 403
//!   `forbidden_origin`. Scripts and the CLI send `Authorization: Bearer`,
//!   which no page can add without the token; it authenticates ahead of
//!   any cookie, and such a request is not asked. Login
//!   authenticates by its body and is not asked either.
//! - A body, or a `Content-Type`, must be JSON; else 415
//!   `unsupported_media_type`. A page can send `text/plain` anywhere
//!   without a CORS preflight, never `application/json`. A change without
//!   a body (cancel, or a deploy of the template as it is) needs none.
//! - A request with two session cookies is refused (401), not guessed at.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::presented_token;
use super::cookie::cookie_name;
use super::{ApiError, AppState};
use crate::config::HttpConfig;

const LOGIN: &str = "/api/login";

pub async fn refuse_forged(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let headers = request.headers();
    if request.uri().path() != LOGIN {
        match presented_token(headers, cookie_name(&state.config.http)) {
            Err(two) => return ApiError::from(two).into_response(),
            Ok(Some(presented))
                if presented.by_cookie && !from_own_origin(headers, &state.config.http) =>
            {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden_origin",
                    "a change sent with the session cookie must come from the dashboard's own \
                     origin; scripts send Authorization: Bearer <token> instead",
                )
                .into_response();
            }
            Ok(_) => {}
        }
    }
    if (has_body(headers) || headers.contains_key(header::CONTENT_TYPE)) && !is_json(headers) {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        )
        .into_response();
    }
    next.run(request).await
}

/// Whether a browser says the request comes from the dashboard's origin.
fn from_own_origin(headers: &HeaderMap, http: &HttpConfig) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site") == Some("same-origin") {
        return true;
    }
    let Some(origin) = header(header::ORIGIN.as_str()) else {
        return false;
    };
    let own = header(header::HOST.as_str()).is_some_and(|host| {
        ["http://", "https://"].iter().any(|scheme| {
            origin
                .strip_prefix(scheme)
                .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
        })
    });
    own || http
        .public_url
        .as_ref()
        .is_some_and(|url| origin.eq_ignore_ascii_case(&url.origin))
        || http
            .allowed_origins
            .iter()
            .any(|allowed| origin.eq_ignore_ascii_case(allowed.trim_end_matches('/')))
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.to_str().map_or(true, |l| l.trim() != "0"))
}

/// `application/json` or `application/<x>+json`, any parameters (as
/// axum's `Json` takes them).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    fn http(allowed: &[&str], public_url: Option<&str>) -> HttpConfig {
        HttpConfig {
            allowed_origins: allowed.iter().map(|s| (*s).to_owned()).collect(),
            public_url: public_url
                .map(|u| crate::config::PublicUrl::try_from(u.to_owned()).expect("url")),
            ..HttpConfig::default()
        }
    }

    #[test]
    fn the_dashboards_origin_is_its_own_or_a_configured_one() {
        let config = http(
            &["https://ops.example.com"],
            Some("https://sdp.example.com"),
        );
        let own = |pairs: &[(&str, &str)]| from_own_origin(&headers(pairs), &config);
        assert!(own(&[
            ("host", "sdp.internal:8080"),
            ("origin", "http://sdp.internal:8080")
        ]));
        assert!(own(&[
            ("host", "SDP.internal"),
            ("origin", "https://sdp.internal")
        ]));
        assert!(own(&[
            ("host", "127.0.0.1:1"),
            ("origin", "https://sdp.example.com")
        ]));
        assert!(own(&[
            ("host", "127.0.0.1:1"),
            ("origin", "https://ops.example.com")
        ]));
        assert!(own(&[("host", "x"), ("sec-fetch-site", "same-origin")]));
        for refused in [
            &[
                ("host", "sdp.internal"),
                ("origin", "http://alpha.sdp.internal"),
            ][..],
            &[
                ("host", "sdp.internal"),
                ("origin", "http://sdp.internal.evil"),
            ],
            &[("host", "sdp.internal"), ("origin", "null")],
            &[("host", "sdp.internal"), ("sec-fetch-site", "same-site")],
            &[
                ("host", "sdp.internal"),
                ("origin", "http://alpha.sdp.internal"),
                ("sec-fetch-site", "same-site"),
            ],
            &[("host", "sdp.internal")],
        ] {
            assert!(!own(refused), "{refused:?}");
        }
    }

    #[test]
    fn json_is_application_json_with_any_parameters() {
        for json in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(is_json(&headers(&[("content-type", json)])), "{json}");
        }
        for other in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
            "",
        ] {
            assert!(!is_json(&headers(&[("content-type", other)])), "{other}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn a_body_is_a_length_above_zero_or_chunks() {
        assert!(has_body(&headers(&[("content-length", "2")])));
        assert!(has_body(&headers(&[("transfer-encoding", "chunked")])));
        assert!(!has_body(&headers(&[("content-length", "0")])));
        assert!(!has_body(&HeaderMap::new()));
    }
}
