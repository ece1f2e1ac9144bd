//! `[bitbucket]` and `[notify]`: where build statuses go and how
//! deliveries (build statuses and outgoing webhooks) are retried (see
//! [`crate::notify`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::client_addr::Cidr;

/// Which Bitbucket the build statuses go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavour {
    /// bitbucket.org: `POST {api_url}/2.0/repositories/{workspace}/{slug}/commit/{sha}/statuses/build`.
    Cloud,
    /// Bitbucket Server / Data Center:
    /// `POST {api_url}/rest/build-status/1.0/commits/{sha}`.
    DataCenter,
}

impl Flavour {
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::Cloud => "cloud",
            Flavour::DataCenter => "data_center",
        }
    }
}

/// `[bitbucket]`: build statuses on the deployed commit. Off unless
/// `flavour` is set; they are sent with `git.service_credential_file`'s
/// credential (HTTP basic auth), which then must be set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitbucketConfig {
    #[serde(default)]
    pub flavour: Option<Flavour>,
    /// The API's base URL: `https://api.bitbucket.org` for Cloud (the
    /// default), the server's base URL (`https://bitbucket.example.com`,
    /// with its context path if any) for Data Center.
    #[serde(default)]
    pub api_url: Option<String>,
    /// Cloud: the workspace the repos are in.
    #[serde(default)]
    pub workspace: Option<String>,
    /// Cloud: a repo's slug where it is not the SDP repo name
    /// (`{ "users" = "users-service" }`).
    #[serde(default)]
    pub repo_slugs: BTreeMap<String, String>,
}

impl BitbucketConfig {
    /// The API's base URL without a trailing `/`.
    pub fn base_url(&self) -> String {
        self.api_url
            .as_deref()
            .unwrap_or("https://api.bitbucket.org")
            .trim_end_matches('/')
            .to_owned()
    }

    pub(super) fn check(&self, has_credential: bool) -> Result<(), String> {
        let Some(flavour) = self.flavour else {
            return Ok(());
        };
        if !has_credential {
            return Err(
                "bitbucket.flavour is set but git.service_credential_file is not: build \
                 statuses are sent with the service credential"
                    .to_owned(),
            );
        }
        if flavour == Flavour::DataCenter && self.api_url.is_none() {
            return Err(
                "bitbucket.flavour = \"data_center\" needs bitbucket.api_url (the server's base URL)"
                    .to_owned(),
            );
        }
        if flavour == Flavour::Cloud && self.workspace.as_deref().is_none_or(str::is_empty) {
            return Err("bitbucket.flavour = \"cloud\" needs bitbucket.workspace".to_owned());
        }
        let base = self.base_url();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(format!("bitbucket.api_url '{base}' is not an http(s) URL"));
        }
        Ok(())
    }
}

/// `[notify]`: the delivery queue.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Attempts per delivery before it is given up.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// The wait before the second attempt; it doubles after each one.
    #[serde(default = "default_backoff", with = "humantime_serde")]
    pub backoff: Duration,
    /// The longest wait between two attempts.
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub backoff_max: Duration,
    /// How long one attempt may take.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Deliveries waiting to start; past it new ones are dropped (and
    /// logged), never waited for.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Allow `http://` webhook URLs to a loopback host (tests and dev
    /// only; every other webhook must be `https://`).
    #[serde(default)]
    pub allow_loopback_http: bool,
    /// Webhook hosts that may be on a private network (an on-premises
    /// Slack proxy): address blocks (`10.20.0.0/16`) or host names
    /// (`slack-proxy.corp`). Every other webhook must be on the Internet
    /// (see [`crate::notify::guard`]).
    #[serde(default)]
    pub allowed_private_hosts: Vec<AllowedHost>,
}

/// An entry of `notify.allowed_private_hosts`: an address block
/// (`10.20.0.0/16`, `10.0.0.5`) or a host name (`slack-proxy.corp`) whose
/// addresses may be private.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum AllowedHost {
    Block(Cidr),
    Name(String),
}

impl TryFrom<String> for AllowedHost {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.starts_with(|c: char| c.is_ascii_digit()) || trimmed.contains(':') {
            return Cidr::try_from(trimmed.to_owned()).map(AllowedHost::Block);
        }
        let name = trimmed.trim_end_matches('.').to_ascii_lowercase();
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        if valid {
            Ok(AllowedHost::Name(name))
        } else {
            Err(format!(
                "'{text}' is neither a host name nor an address block (e.g. slack-proxy.corp, 10.20.0.0/16)"
            ))
        }
    }
}

fn default_attempts() -> u32 {
    5
}

fn default_backoff() -> Duration {
    Duration::from_secs(2)
}

fn default_backoff_max() -> Duration {
    Duration::from_secs(300)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_queue() -> usize {
    1024
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            attempts: default_attempts(),
            backoff: default_backoff(),
            backoff_max: default_backoff_max(),
            timeout: default_timeout(),
            queue: default_queue(),
            allow_loopback_http: false,
            allowed_private_hosts: Vec::new(),
        }
    }
}

impl NotifyConfig {
    pub(super) fn check(&self) -> Result<(), String> {
        if self.attempts == 0 || self.attempts > 20 {
            return Err("notify.attempts must be 1 to 20".to_owned());
        }
        if self.queue == 0 {
            return Err("notify.queue must be at least 1".to_owned());
        }
        Ok(())
    }
}
