//! Which sandbox a preview request is for. The host `<sandbox>.<domain>`
//! names it, and that always wins: a header cannot send a request for one
//! sandbox's host to another sandbox. On the domain's bare host, the
//! header `X-SDP-Sandbox: <sandbox>` names it, else the W3C `baggage`
//! entry `sdp-sandbox=<sandbox>`, so an app pointed at one URL can reach
//! any sandbox. Any other host is not a preview.

use axum::http::{HeaderMap, HeaderName, header};
use sdp_bus::validate;

use crate::config::PreviewDomain;

/// The header that names a sandbox on the bare preview host.
pub const SANDBOX_HEADER: HeaderName = HeaderName::from_static("x-sdp-sandbox");
/// The W3C trace-context baggage header, and the key in it.
const BAGGAGE: HeaderName = HeaderName::from_static("baggage");
const BAGGAGE_KEY: &str = "sdp-sandbox";

/// What a request asks of the preview entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// Not a preview request: on to the other routes.
    Pass,
    Sandbox(String),
    /// A header on the bare host names no valid sandbox.
    BadName {
        header: &'static str,
    },
}

/// The request's host without its port, lowercase.
fn host_of(headers: &HeaderMap) -> Option<String> {
    let host = headers
        .get(header::HOST)?
        .to_str()
        .ok()?
        .to_ascii_lowercase();
    Some(match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_owned(),
        _ => host,
    })
}

/// The sandbox the request is for under `domain`, see the module doc.
pub fn target(headers: &HeaderMap, domain: &PreviewDomain) -> Target {
    let Some(host) = host_of(headers) else {
        return Target::Pass;
    };
    if host == domain.host {
        return from_headers(headers);
    }
    let Some(sandbox) = host
        .strip_suffix(&domain.host)
        .and_then(|rest| rest.strip_suffix('.'))
    else {
        return Target::Pass;
    };
    match validate::resource_name("sandbox", sandbox) {
        Ok(()) => Target::Sandbox(sandbox.to_owned()),
        Err(_) => Target::Pass,
    }
}

/// The sandbox `X-SDP-Sandbox` names, else the `baggage` entry.
fn from_headers(headers: &HeaderMap) -> Target {
    let (name, header) = if let Some(value) = headers.get(&SANDBOX_HEADER) {
        (value.to_str().ok().map(str::trim), "X-SDP-Sandbox")
    } else if let Some(name) = baggage_sandbox(headers) {
        (Some(name), "baggage")
    } else {
        return Target::Pass;
    };
    match name {
        Some(name) if validate::resource_name("sandbox", name).is_ok() => {
            Target::Sandbox(name.to_owned())
        }
        _ => Target::BadName { header },
    }
}

/// The value of `sdp-sandbox` among the `baggage` headers' members
/// (`key=value;property, key2=value2`), the first one.
fn baggage_sandbox(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(&BAGGAGE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|member| {
            let pair = member.split(';').next()?;
            let (key, value) = pair.split_once('=')?;
            (key.trim() == BAGGAGE_KEY).then(|| value.trim())
        })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn domain(text: &str) -> PreviewDomain {
        PreviewDomain::try_from(text.to_owned()).expect("domain")
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    fn sandbox(name: &str) -> Target {
        Target::Sandbox(name.to_owned())
    }

    #[test]
    fn the_sandbox_is_the_first_label_under_the_domain() {
        let d = domain("sdp.internal");
        assert_eq!(
            target(&headers(&[("host", "alpha.sdp.internal")]), &d),
            sandbox("alpha")
        );
        assert_eq!(
            target(&headers(&[("host", "Alpha.SDP.internal:8080")]), &d),
            sandbox("alpha")
        );
        for other in [
            "sdp.internal",
            "alpha.sdp.internal.evil",
            "a.b.sdp.internal",
            "alphasdp.internal",
            "127.0.0.1:8080",
            "..sdp.internal",
        ] {
            assert_eq!(
                target(&headers(&[("host", other)]), &d),
                Target::Pass,
                "{other}"
            );
        }
    }

    #[test]
    fn headers_name_the_sandbox_on_the_bare_host_only() {
        let d = domain("sdp.internal");
        let bare = |extra: &[(&str, &str)]| {
            let mut pairs = vec![("host", "sdp.internal:8080")];
            pairs.extend_from_slice(extra);
            target(&headers(&pairs), &d)
        };
        assert_eq!(bare(&[("x-sdp-sandbox", "alpha")]), sandbox("alpha"));
        assert_eq!(
            bare(&[("baggage", "userId=7;p=1, sdp-sandbox = beta ;ttl=5,x=y")]),
            sandbox("beta")
        );
        assert_eq!(
            bare(&[("baggage", "a=b"), ("baggage", "sdp-sandbox=gamma")]),
            sandbox("gamma")
        );
        // The dedicated header wins over baggage.
        assert_eq!(
            bare(&[("x-sdp-sandbox", "alpha"), ("baggage", "sdp-sandbox=beta")]),
            sandbox("alpha")
        );
        assert_eq!(bare(&[("baggage", "other=1")]), Target::Pass);
        assert_eq!(
            bare(&[("x-sdp-sandbox", "../etc")]),
            Target::BadName {
                header: "X-SDP-Sandbox"
            }
        );
        assert_eq!(
            bare(&[("baggage", "sdp-sandbox=Not%20One")]),
            Target::BadName { header: "baggage" }
        );
        // The host's sandbox wins over any header.
        assert_eq!(
            target(
                &headers(&[
                    ("host", "alpha.sdp.internal"),
                    ("x-sdp-sandbox", "beta"),
                    ("baggage", "sdp-sandbox=gamma")
                ]),
                &d
            ),
            sandbox("alpha")
        );
        // Another host: the header does nothing.
        assert_eq!(
            target(
                &headers(&[("host", "127.0.0.1:8080"), ("x-sdp-sandbox", "beta")]),
                &d
            ),
            Target::Pass
        );
    }
}
