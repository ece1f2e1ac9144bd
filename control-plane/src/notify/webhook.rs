//! Outgoing webhooks: which URLs a template or an environment may name, the origin a
//! delivery is shown by, and the JSON body (a Slack-compatible `text` and
//! the same facts as fields).

use serde::Serialize;

use crate::store::{BuildState, NotifyEvent};

/// What a notification says, for a build status and a webhook alike.
#[derive(Clone, Debug, Serialize)]
pub struct Facts {
    pub event: NotifyEvent,
    pub state: BuildState,
    pub sandbox: String,
    pub repo: String,
    pub branch: Option<String>,
    pub commit: Option<String>,
    pub deployment_id: Option<String>,
    /// The sandbox's preview, or the deployment's page in the dashboard.
    pub url: String,
    pub description: String,
    /// The build status key.
    pub key: String,
}

/// The webhook body: `text` for Slack (and its look-alikes), then the facts.
#[derive(Serialize)]
struct Body<'a> {
    text: String,
    #[serde(flatten)]
    facts: &'a Facts,
}

pub fn body(facts: &Facts) -> serde_json::Value {
    let icon = match facts.state {
        BuildState::Inprogress => ":hourglass:",
        BuildState::Successful => ":white_check_mark:",
        BuildState::Failed => ":x:",
    };
    let commit = facts
        .commit
        .as_deref()
        .map(|c| format!(" at {}", &c[..c.len().min(12)]))
        .unwrap_or_default();
    let text = format!(
        "{icon} {} {} in sandbox {}{commit}: {} <{}>",
        facts.repo,
        facts.event.as_str(),
        facts.sandbox,
        facts.description,
        facts.url
    );
    serde_json::to_value(Body { text, facts }).unwrap_or_default()
}

/// Why a webhook URL is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error(
        "webhook URL '{0}' is not an https URL (http only to a loopback host, when notify.allow_loopback_http is set)"
    )]
    Scheme(String),
    #[error("webhook URL '{0}' has no host, or holds a user name or password")]
    Authority(String),
}

/// `scheme://host[:port]` of an URL (what a delivery is shown by: the
/// path of a Slack webhook is its secret).
pub fn origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}")
        }
        None => "?".to_owned(),
    }
}

/// Whether a template or an environment may name `url`: `https`, or
/// `http` to a loopback host when `allow_loopback_http`. No user info (a
/// credential in a URL would show in the dashboard's origin and the logs).
/// The host is read as the HTTP client will read it (`http://2130706433/`
/// is 127.0.0.1); where it leads is [`super::guard`]'s to check.
pub fn check_url(url: &str, allow_loopback_http: bool) -> Result<(), UrlError> {
    let scheme_error = || UrlError::Scheme(url.to_owned());
    if url.chars().any(char::is_whitespace) {
        return Err(UrlError::Authority(url.to_owned()));
    }
    let parsed = reqwest::Url::parse(url).map_err(|err| match err {
        url::ParseError::RelativeUrlWithoutBase => scheme_error(),
        _ => UrlError::Authority(url.to_owned()),
    })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlError::Authority(url.to_owned()));
    }
    let Some(host) = parsed.host() else {
        return Err(match parsed.scheme() {
            "http" | "https" => UrlError::Authority(url.to_owned()),
            _ => scheme_error(),
        });
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allow_loopback_http && is_loopback(&host) => Ok(()),
        _ => Err(scheme_error()),
    }
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_allowed_loopback_http() {
        assert!(check_url("https://hooks.slack.com/services/T/B/x", false).is_ok());
        assert!(check_url("http://127.0.0.1:8080/hook", true).is_ok());
        assert!(check_url("http://[::1]:8080/hook", true).is_ok());
        assert!(check_url("http://localhost/hook", true).is_ok());
        for bad in [
            "http://127.0.0.1:8080/hook",
            "http://example.com/hook",
            "ftp://example.com",
            "https://",
            "https://user:pw@example.com/",
            "example.com",
            "https://a b.com/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://10.0.0.1/hook", true).is_err());
        // Read as the client reads it: these are loopback.
        assert!(check_url("http://2130706433:8080/hook", true).is_ok());
        assert!(check_url("http://[::ffff:127.0.0.1]/hook", true).is_ok());
        assert!(check_url("http://0x7f.1/hook", false).is_err());
        assert!(check_url("http://127.0.0.1.evil.com/hook", true).is_err());
    }

    #[test]
    fn origin_hides_the_path() {
        assert_eq!(
            origin("https://hooks.slack.com/services/T/B/secret"),
            "https://hooks.slack.com"
        );
        assert_eq!(origin("http://127.0.0.1:9/x?y"), "http://127.0.0.1:9");
    }

    #[test]
    fn the_body_has_a_slack_text_and_the_facts() {
        let facts = Facts {
            event: NotifyEvent::DeploymentRunning,
            state: BuildState::Successful,
            sandbox: "alpha".into(),
            repo: "users".into(),
            branch: Some("main".into()),
            commit: Some("0123456789abcdef".into()),
            deployment_id: Some("d1".into()),
            url: "http://alpha.sdp.test/".into(),
            description: "running".into(),
            key: "sdp-alpha-users".into(),
        };
        let body = body(&facts);
        let text = body["text"].as_str().expect("text");
        assert!(
            text.contains("users") && text.contains("alpha") && text.contains("0123456789ab"),
            "{text}"
        );
        assert_eq!(body["event"], "deployment.running");
        assert_eq!(body["state"], "SUCCESSFUL");
        assert_eq!(body["commit"], "0123456789abcdef");
    }
}
