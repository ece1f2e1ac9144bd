//! The session cookie's name: `__Host-` prefixed with
//! `http.secure_cookies`. Below every module that reads or sets it (login,
//! the session extractor, the forgery check, the WebSocket, the OpenAPI
//! security scheme, the preview entry).

use crate::config::HttpConfig;

/// The session cookie without `http.secure_cookies`.
pub const COOKIE: &str = "sdp_session";
/// The session cookie with `http.secure_cookies`: browsers take a
/// `__Host-` cookie only from the host itself, over HTTPS, with `Path=/`
/// and no `Domain`, so no other host of the site can plant one.
pub const SECURE_COOKIE: &str = "__Host-sdp_session";

/// The name of the session cookie under this config.
pub fn cookie_name(http: &HttpConfig) -> &'static str {
    if http.secure_cookies {
        SECURE_COOKIE
    } else {
        COOKIE
    }
}
