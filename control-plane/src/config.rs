//! The control plane's typed configuration. Every section
//! refuses unknown keys; defaults make `scripts/dev.sh` work with no file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sdp_bus::nats::NatsConfig;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub nats: NatsConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub http: HttpConfig,
    /// Holds `sdp.db` and `logs/<id>.log`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub agents: AgentsConfig,
    #[serde(default)]
    pub persister: PersisterConfig,
    #[serde(default)]
    pub sandboxes: SandboxesConfig,
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    #[serde(default)]
    pub git: GitConfig,
    #[serde(default)]
    pub streams: StreamsConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub bitbucket: BitbucketConfig,
    #[serde(default)]
    pub notify: NotifyConfig,
}

mod notify;
pub use notify::{AllowedHost, BitbucketConfig, Flavour, NotifyConfig};

impl Config {
    /// The defaults, as `scripts/dev.sh` runs them.
    pub fn dev() -> Self {
        sdp_bus::settings::load(None, std::iter::empty()).unwrap_or_else(|_| unreachable!())
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data/control-plane")
}

pub use sdp_bus::process::{LogConfig, LogFormat};

impl sdp_bus::settings::Settings for Config {
    const ENV_PREFIX: &'static str = "SDP_CONTROL_PLANE";
    const RENAMED_KEYS: &'static [(&'static str, &'static str)] =
        &[("auth.probe_repo", "auth.credential_check_repo")];
    const LIST_KEYS: &'static [&'static str] = &[
        "http.allowed_origins",
        "http.trusted_proxies",
        "auth.admins",
        "auth.verify_kinds",
        "notify.allowed_private_hosts",
    ];
}

impl Config {
    /// What the types alone cannot say; a failure names the keys (the
    /// binary then exits 64 before binding anything).
    pub fn check(&self) -> Result<(), String> {
        self.http.check()?;
        self.bitbucket
            .check(self.git.service_credential_file.is_some())?;
        self.notify.check()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_addr")]
    pub addr: SocketAddr,
    /// Origins allowed to open the WebSocket, besides the control plane's
    /// own (`http://<Host header>`), e.g. `https://sdp.example.com`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Mark the session cookie `Secure` (set when served over HTTPS).
    #[serde(default)]
    pub secure_cookies: bool,
    /// With it, a request whose Host is `<sandbox>.<preview_domain>` is
    /// proxied to that sandbox's gateway (see [`crate::preview`]), and
    /// sandboxes show `preview_url`. A host name, with `:port` if the
    /// links must name one.
    #[serde(default)]
    pub preview_domain: Option<PreviewDomain>,
    /// The dashboard's URL as browsers reach it (`https://sdp.example.com`):
    /// its origin may send cookie-authenticated changes, and its host is
    /// checked against `preview_domain` at start.
    #[serde(default)]
    pub public_url: Option<PublicUrl>,
    /// Say that `preview_domain` is a registrable domain of its own even
    /// though the start check (which knows no public suffix list) takes it
    /// for the dashboard's site, e.g. previews on `*.sdp-preview.co.uk`
    /// beside a dashboard on `sdp.co.uk`.
    #[serde(default)]
    pub preview_domain_is_separate_site: bool,
    /// Proxies (CIDRs, e.g. `127.0.0.1/32` for a local nginx) whose
    /// `X-Forwarded-For` names the client, for the login throttle. A peer
    /// outside them is the client, whatever it forwards.
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
}

pub use crate::client_addr::Cidr;

impl HttpConfig {
    /// Previews must not share the dashboard's site: a page of a sandbox
    /// would send the dashboard's `SameSite` cookie along (and may set
    /// cookies for the whole registrable domain).
    fn check(&self) -> Result<(), String> {
        let Some(preview) = &self.preview_domain else {
            return Ok(());
        };
        if self.preview_domain_is_separate_site {
            return Ok(());
        }
        let Some(public_url) = &self.public_url else {
            return Err(format!(
                "http.preview_domain ({}) is set but http.public_url is not: set \
                 http.public_url to the dashboard's URL (e.g. https://sdp.example.com), so \
                 the control plane can check that previews are on a registrable domain \
                 of their own, or set http.preview_domain_is_separate_site = true",
                preview.host
            ));
        };
        if same_site(&public_url.host, &preview.host) {
            return Err(format!(
                "http.preview_domain ({}) is on the dashboard's own site (http.public_url \
                 {}): a sandbox's page could act as whoever views it. Put previews on a \
                 registrable domain of their own (dashboard sdp.example.com, previews \
                 *.sdp-preview.example.net), or, if these are separate registrable \
                 domains under a public suffix this check does not know, set \
                 http.preview_domain_is_separate_site = true",
                preview.host, public_url.origin
            ));
        }
        Ok(())
    }
}

/// Whether a preview host `<sandbox>.<preview>` may share a site with
/// `dashboard`. Without the public suffix list every host is taken to sit
/// under a one-label suffix, so a "site" here is the last two labels: a
/// real registrable domain (a suffix of one label or more, plus one) is
/// as long or longer, so two hosts this calls different really are; the
/// reverse errs on the safe side (`sdp.co.uk` and `p.co.uk` count as one
/// site: `preview_domain_is_separate_site` says otherwise).
pub fn same_site(dashboard: &str, preview: &str) -> bool {
    fn site(host: &str) -> &str {
        let host = host.trim_end_matches('.');
        if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
            return host;
        }
        match host.rmatch_indices('.').nth(1) {
            Some((dot, _)) => &host[dot + 1..],
            None => host,
        }
    }
    let dashboard = dashboard.trim_end_matches('.').to_ascii_lowercase();
    let preview = preview.trim_end_matches('.').to_ascii_lowercase();
    dashboard == preview
        || dashboard.ends_with(&format!(".{preview}"))
        || site(&dashboard) == site(&preview)
}

/// `http.public_url`: an `http` or `https` URL with a host and no path
/// beyond `/`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PublicUrl {
    /// `scheme://host[:port]`, lowercase: what a browser sends as `Origin`.
    pub origin: String,
    /// The host alone (IPv6 in brackets).
    pub host: String,
}

impl TryFrom<String> for PublicUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = |why: &str| format!("public_url '{text}' {why} (e.g. https://sdp.example.com)");
        let lower = text.trim().to_ascii_lowercase();
        let (scheme, rest) = lower
            .split_once("://")
            .filter(|(scheme, _)| *scheme == "http" || *scheme == "https")
            .ok_or_else(|| bad("is not an http or https URL"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '@', '?', '#', ' ']) {
            return Err(bad("must be scheme://host[:port] with no path"));
        }
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if !authority.ends_with(']') => {
                if port.parse::<u16>().map_or(true, |p| p == 0) {
                    return Err(bad("has a bad port"));
                }
                host
            }
            _ => authority,
        };
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        Ok(Self {
            origin: format!("{scheme}://{authority}"),
            host: host.to_owned(),
        })
    }
}

/// A DNS name (letters, digits, `-`, dots) with an optional `:port`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PreviewDomain {
    /// Lowercase, without the port: what a Host header is matched against.
    pub host: String,
    /// As configured: what links are made with.
    pub authority: String,
}

impl TryFrom<String> for PreviewDomain {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let authority = text.trim().to_ascii_lowercase();
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority.as_str(), None),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if host.is_empty() || !host.split('.').all(label_ok) {
            return Err(format!(
                "preview_domain '{text}' is not a DNS name (letters, digits, '-' and dots, e.g. sdp.internal)"
            ));
        }
        if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
            return Err(format!("preview_domain '{text}' has a bad port"));
        }
        Ok(Self {
            host: host.to_owned(),
            authority,
        })
    }
}

fn default_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: default_addr(),
            allowed_origins: Vec::new(),
            secure_cookies: false,
            preview_domain: None,
            public_url: None,
            preview_domain_is_separate_site: false,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Git URL of a private repo: a login is good if `git ls-remote` of it
    /// succeeds with the user's credential. Its first name, `probe_repo`,
    /// is still read (config files and `SDP_CONTROL_PLANE__AUTH__PROBE_REPO`);
    /// not both at once.
    #[serde(default, alias = "probe_repo")]
    pub credential_check_repo: String,
    /// A session unused for this long ends.
    #[serde(default = "default_idle", with = "humantime_serde")]
    pub session_idle: Duration,
    /// A session ends this long after login, used or not.
    #[serde(default = "default_max", with = "humantime_serde")]
    pub session_max: Duration,
    /// Kinds of agent asked to verify a credential, in order.
    #[serde(default = "default_verify_kinds")]
    pub verify_kinds: Vec<String>,
    /// Users who may change any sandbox, not only their own.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Failed logins per user within `throttle_window` before 429. Keep it
    /// below the git server's CAPTCHA threshold (Bitbucket: 5).
    #[serde(default = "default_throttle_user")]
    pub throttle_user_failures: usize,
    /// Failed logins per client address within `throttle_window`.
    #[serde(default = "default_throttle_address")]
    pub throttle_address_failures: usize,
    #[serde(default = "default_throttle_window", with = "humantime_serde")]
    pub throttle_window: Duration,
}

fn default_throttle_user() -> usize {
    3
}

fn default_throttle_address() -> usize {
    20
}

fn default_throttle_window() -> Duration {
    Duration::from_secs(15 * 60)
}

fn default_idle() -> Duration {
    Duration::from_secs(8 * 3600)
}

fn default_max() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_verify_kinds() -> Vec<String> {
    vec![
        sdp_bus::subject::KIND_MICRO.to_owned(),
        sdp_bus::subject::KIND_GATEWAY.to_owned(),
    ]
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            credential_check_repo: String::new(),
            session_idle: default_idle(),
            session_max: default_max(),
            verify_kinds: default_verify_kinds(),
            admins: Vec::new(),
            throttle_user_failures: default_throttle_user(),
            throttle_address_failures: default_throttle_address(),
            throttle_window: default_throttle_window(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsConfig {
    /// An agent silent for this long is offline, and its unfinished
    /// deployments fail.
    #[serde(default = "default_heartbeat_timeout", with = "humantime_serde")]
    pub heartbeat_timeout: Duration,
    /// How long an agent has to accept a deploy request.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
}

fn default_heartbeat_timeout() -> Duration {
    Duration::from_secs(15)
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Default for AgentsConfig {
    fn default() -> Self {
        Self {
            heartbeat_timeout: default_heartbeat_timeout(),
            request_timeout: default_request_timeout(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersisterConfig {
    /// Run the log persister inside `serve`. Turn off to run it as its own
    /// process (`sdp-control-plane persist`).
    #[serde(default = "default_true")]
    pub embedded: bool,
}

fn default_true() -> bool {
    true
}

impl Default for PersisterConfig {
    fn default() -> Self {
        Self { embedded: true }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxesConfig {
    /// Lifetime of a new sandbox without `ttl_hours`; every deploy renews it.
    #[serde(default = "default_ttl_hours")]
    pub default_ttl_hours: u32,
    /// How often the reaper looks for expired, unpinned sandboxes.
    #[serde(default = "default_reap_interval", with = "humantime_serde")]
    pub reap_interval: Duration,
    /// A sandbox with no deploy and no request through its preview link
    /// for this long sleeps (its containers stop until the next request,
    /// wake or deploy). Off when unset. Any humantime text: `2h`, `90m`,
    /// `20s`.
    #[serde(default, with = "humantime_serde")]
    pub sleep_after: Option<Duration>,
    /// How often the running resources' data sizes are asked of the
    /// agents that hold them (one `du` per resource).
    #[serde(default = "default_resource_size_interval", with = "humantime_serde")]
    pub resource_size_interval: Duration,
}

fn default_resource_size_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_ttl_hours() -> u32 {
    72
}

fn default_reap_interval() -> Duration {
    Duration::from_secs(60)
}

impl Default for SandboxesConfig {
    fn default() -> Self {
        Self {
            default_ttl_hours: default_ttl_hours(),
            reap_interval: default_reap_interval(),
            sleep_after: None,
            resource_size_interval: default_resource_size_interval(),
        }
    }
}

/// `[webhooks]`: push webhooks from Bitbucket (see [`crate::webhooks`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// A file holding the webhook secret (its whole text, trimmed), read at
    /// start. Without it `POST /api/hooks/bitbucket` answers 404
    /// `not_configured`.
    #[serde(default)]
    pub bitbucket_secret_file: Option<PathBuf>,
}

/// `[git]`: git access of the control plane's own.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitConfig {
    /// A file holding a read-only service credential (`username:password`
    /// on one line, or the user name and the password on two lines), read
    /// at start. Push-triggered deployments fetch with it; without it they
    /// are not made and the service shows "behind: deploy by hand".
    #[serde(default)]
    pub service_credential_file: Option<PathBuf>,
}

/// `[audit]`: how long the audit trail keeps an entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Entries older than this are deleted (`90d`, `2w`, `12h`).
    #[serde(default = "default_audit_keep_for", with = "humantime_serde")]
    pub keep_for: Duration,
    /// How often old entries are looked for.
    #[serde(default = "default_audit_prune_interval", with = "humantime_serde")]
    pub prune_interval: Duration,
}

fn default_audit_keep_for() -> Duration {
    Duration::from_secs(90 * 24 * 3600)
}

fn default_audit_prune_interval() -> Duration {
    Duration::from_secs(3600)
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            keep_for: default_audit_keep_for(),
            prune_interval: default_audit_prune_interval(),
        }
    }
}

/// `[streams]`: how many long-lived streams one user may hold open at once
/// (see [`crate::user_streams`]); past it, 429 `too_many_streams`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamsConfig {
    /// Deployment WebSockets (`/ws/deployments/{id}`) per user.
    #[serde(default = "default_websockets_per_user")]
    pub websockets_per_user: usize,
    /// Runtime-log streams (`/api/deployments/{id}/runtime-logs`) per
    /// user; keep it well below an agent's 64.
    #[serde(default = "default_runtime_logs_per_user")]
    pub runtime_logs_per_user: usize,
}

fn default_websockets_per_user() -> usize {
    32
}

fn default_runtime_logs_per_user() -> usize {
    8
}

impl Default for StreamsConfig {
    fn default() -> Self {
        Self {
            websockets_per_user: default_websockets_per_user(),
            runtime_logs_per_user: default_runtime_logs_per_user(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let config = Config::dev();
        assert_eq!(config.http.addr.port(), 8080);
        assert!(config.persister.embedded);
    }

    #[test]
    fn env_overrides_nested_keys() {
        let config: Config = sdp_bus::settings::load(
            None,
            env(&[
                ("SDP_CONTROL_PLANE__NATS__URL", "nats://10.0.0.1:4222"),
                ("SDP_CONTROL_PLANE__HTTP__ADDR", "0.0.0.0:9000"),
                ("SDP_CONTROL_PLANE__AUTH__SESSION_IDLE", "30m"),
                ("SDP_CONTROL_PLANE__DATA_DIR", "/var/lib/sdp"),
                (
                    "SDP_CONTROL_PLANE__HTTP__ALLOWED_ORIGINS",
                    "https://a.example,https://b.example",
                ),
            ]),
        )
        .expect("valid env");
        assert_eq!(config.nats.url, "nats://10.0.0.1:4222");
        assert_eq!(config.http.addr.port(), 9000);
        assert_eq!(config.auth.session_idle, Duration::from_secs(1800));
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/sdp"));
        assert_eq!(config.http.allowed_origins.len(), 2);
    }

    #[test]
    fn sleep_after_is_off_by_default_and_takes_seconds() {
        let config: Config = sdp_bus::settings::load(None, env(&[])).expect("defaults");
        assert_eq!(config.sandboxes.sleep_after, None);
        let config: Config = sdp_bus::settings::load(
            None,
            env(&[("SDP_CONTROL_PLANE__SANDBOXES__SLEEP_AFTER", "20s")]),
        )
        .expect("valid env");
        assert_eq!(config.sandboxes.sleep_after, Some(Duration::from_secs(20)));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sleep.toml");
        std::fs::write(&path, "[sandboxes]\nsleep_after = \"2h\"\n").expect("write");
        let config: Config = sdp_bus::settings::load(Some(&path), []).expect("a file");
        assert_eq!(
            config.sandboxes.sleep_after,
            Some(Duration::from_secs(7200))
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err =
            sdp_bus::settings::load::<Config>(None, env(&[("SDP_CONTROL_PLANE__HTTP__ADRR", "x")]))
                .expect_err("typo refused");
        assert!(err.to_string().contains("adrr"), "{err}");
    }

    #[test]
    fn preview_domain_is_a_dns_name_with_an_optional_port() {
        let config: Config = sdp_bus::settings::load(
            None,
            env(&[(
                "SDP_CONTROL_PLANE__HTTP__PREVIEW_DOMAIN",
                "SDP.internal:8080",
            )]),
        )
        .expect("valid");
        let domain = config.http.preview_domain.expect("set");
        assert_eq!(domain.host, "sdp.internal");
        assert_eq!(domain.authority, "sdp.internal:8080");
        for bad in [
            "", "a..b", "-a.b", "a_b.c", "a.b:0", "a.b:x", "*.a.b", "a/b",
        ] {
            let err = sdp_bus::settings::load::<Config>(
                None,
                env(&[("SDP_CONTROL_PLANE__HTTP__PREVIEW_DOMAIN", bad)]),
            );
            assert!(err.is_err(), "{bad} refused");
        }
    }

    fn check(pairs: &[(&str, &str)]) -> Result<(), String> {
        sdp_bus::settings::load::<Config>(None, env(pairs))
            .map_err(|e| e.to_string())?
            .check()
    }

    #[test]
    fn previews_on_the_dashboards_site_refuse_to_start() {
        let refused = check(&[
            ("SDP_CONTROL_PLANE__HTTP__PREVIEW_DOMAIN", "sdp.internal"),
            (
                "SDP_CONTROL_PLANE__HTTP__PUBLIC_URL",
                "https://sdp.internal",
            ),
        ])
        .expect_err("same site");
        assert!(
            refused.contains("http.preview_domain")
                && refused.contains("http.public_url")
                && refused.contains("http.preview_domain_is_separate_site"),
            "{refused}"
        );
        let unknown = check(&[(
            "SDP_CONTROL_PLANE__HTTP__PREVIEW_DOMAIN",
            "sdp-preview.example.net",
        )])
        .expect_err("no public_url");
        assert!(unknown.contains("http.public_url"), "{unknown}");
        for (dashboard, preview) in [
            ("https://sdp.example.com", "sdp-preview.example.net"),
            ("http://127.0.0.1:8080", "sdp.test"),
            ("https://sdp.example.com", "example.net"),
        ] {
            check(&[
                ("SDP_CONTROL_PLANE__HTTP__PREVIEW_DOMAIN", preview),
                ("SDP_CONTROL_PLANE__HTTP__PUBLIC_URL", dashboard),
            ])
            .unwrap_or_else(|e| panic!("{dashboard} / {preview}: {e}"));
        }
        check(&[
            ("SDP_CONTROL_PLANE__HTTP__PREVIEW_DOMAIN", "sdp.internal"),
            (
                "SDP_CONTROL_PLANE__HTTP__PUBLIC_URL",
                "https://sdp.internal",
            ),
            (
                "SDP_CONTROL_PLANE__HTTP__PREVIEW_DOMAIN_IS_SEPARATE_SITE",
                "true",
            ),
        ])
        .expect("the operator says so");
        check(&[]).expect("no previews, nothing to check");
    }

    #[test]
    fn same_site_errs_on_the_safe_side() {
        for (dashboard, preview) in [
            ("sdp.internal", "sdp.internal"),
            ("sdp.internal", "preview.sdp.internal"),
            ("a.sdp.internal", "b.sdp.internal"),
            ("sdp.test", "test"),
            ("SDP.Example.com.", "p.example.com"),
            ("sdp.co.uk", "p.co.uk"),
        ] {
            assert!(same_site(dashboard, preview), "{dashboard} / {preview}");
        }
        for (dashboard, preview) in [
            ("sdp.example.com", "sdp-preview.example.net"),
            ("127.0.0.1", "sdp.test"),
            ("example.com", "example.net"),
        ] {
            assert!(!same_site(dashboard, preview), "{dashboard} / {preview}");
        }
    }

    #[test]
    fn public_url_is_an_origin() {
        let url = PublicUrl::try_from("HTTPS://Sdp.Example.com:8443/".to_owned()).expect("valid");
        assert_eq!(url.origin, "https://sdp.example.com:8443");
        assert_eq!(url.host, "sdp.example.com");
        let url = PublicUrl::try_from("http://[::1]:8080".to_owned()).expect("valid");
        assert_eq!(url.host, "[::1]");
        for bad in [
            "sdp.example.com",
            "ftp://sdp.example.com",
            "https://",
            "https://sdp.example.com/dashboard",
            "https://u@sdp.example.com",
            "https://sdp.example.com:0",
            "https://sdp.example.com:x",
        ] {
            assert!(PublicUrl::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    /// `auth.credential_check_repo` is also read under its first name,
    /// `probe_repo`, from a file and from the environment.
    #[test]
    fn the_credential_check_repo_loads_under_both_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        for key in ["credential_check_repo", "probe_repo"] {
            let path = dir.path().join(format!("{key}.toml"));
            std::fs::write(
                &path,
                format!("[auth]\n{key} = \"https://git.example/{key}.git\"\n"),
            )
            .expect("write");
            let config: Config =
                sdp_bus::settings::load(Some(&path), []).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(
                config.auth.credential_check_repo,
                format!("https://git.example/{key}.git")
            );
            let var = format!("SDP_CONTROL_PLANE__AUTH__{}", key.to_uppercase());
            let config: Config =
                sdp_bus::settings::load(None, env(&[(var.as_str(), "https://git.example/e.git")]))
                    .unwrap_or_else(|e| panic!("{var}: {e}"));
            assert_eq!(
                config.auth.credential_check_repo,
                "https://git.example/e.git"
            );
        }
        // The upgrade trap: the old name left in the environment, the new
        // one in the file; the refusal names both and says which to keep.
        let path = dir.path().join("credential_check_repo.toml");
        let err = sdp_bus::settings::load::<Config>(
            Some(&path),
            env(&[(
                "SDP_CONTROL_PLANE__AUTH__PROBE_REPO",
                "https://git.example/e.git",
            )]),
        )
        .expect_err("both names refused");
        assert!(
            err.to_string()
                .contains("auth.probe_repo and auth.credential_check_repo are the same setting"),
            "{err}"
        );
        let path = dir.path().join("unknown.toml");
        std::fs::write(&path, "[auth]\ncheck_repo = \"x\"\n").expect("write");
        assert!(sdp_bus::settings::load::<Config>(Some(&path), []).is_err());
    }

    #[test]
    fn trusted_proxies_are_cidrs() {
        let config: Config = sdp_bus::settings::load(
            None,
            env(&[(
                "SDP_CONTROL_PLANE__HTTP__TRUSTED_PROXIES",
                "127.0.0.1/32,10.0.0.0/8,::1/128",
            )]),
        )
        .expect("valid");
        assert_eq!(config.http.trusted_proxies.len(), 3);
        let err = sdp_bus::settings::load::<Config>(
            None,
            env(&[("SDP_CONTROL_PLANE__HTTP__TRUSTED_PROXIES", "10.0.0.0/33")]),
        )
        .expect_err("bad prefix");
        assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
    }

    #[test]
    fn secret_files_are_paths_under_their_sections() {
        let config: Config = sdp_bus::settings::load(
            None,
            env(&[
                (
                    "SDP_CONTROL_PLANE__WEBHOOKS__BITBUCKET_SECRET_FILE",
                    "/etc/sdp/hook-secret",
                ),
                (
                    "SDP_CONTROL_PLANE__GIT__SERVICE_CREDENTIAL_FILE",
                    "/etc/sdp/git-service",
                ),
            ]),
        )
        .expect("valid");
        assert_eq!(
            config.webhooks.bitbucket_secret_file,
            Some(PathBuf::from("/etc/sdp/hook-secret"))
        );
        assert_eq!(
            config.git.service_credential_file,
            Some(PathBuf::from("/etc/sdp/git-service"))
        );
        let err = sdp_bus::settings::load::<Config>(
            None,
            env(&[("SDP_CONTROL_PLANE__WEBHOOKS__SECRET", "x")]),
        )
        .expect_err("unknown key refused");
        assert!(err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn build_statuses_need_the_service_credential_and_their_flavours_keys() {
        const FLAVOUR: &str = "SDP_CONTROL_PLANE__BITBUCKET__FLAVOUR";
        const CREDENTIAL: &str = "SDP_CONTROL_PLANE__GIT__SERVICE_CREDENTIAL_FILE";
        const WORKSPACE: &str = "SDP_CONTROL_PLANE__BITBUCKET__WORKSPACE";
        const API_URL: &str = "SDP_CONTROL_PLANE__BITBUCKET__API_URL";
        check(&[]).expect("off by default");
        let err = check(&[(FLAVOUR, "cloud"), (WORKSPACE, "team")]).expect_err("no credential");
        assert!(err.contains("git.service_credential_file"), "{err}");
        let err = check(&[(FLAVOUR, "cloud"), (CREDENTIAL, "/c")]).expect_err("no workspace");
        assert!(err.contains("bitbucket.workspace"), "{err}");
        check(&[(FLAVOUR, "cloud"), (CREDENTIAL, "/c"), (WORKSPACE, "team")]).expect("cloud");
        let err = check(&[(FLAVOUR, "data_center"), (CREDENTIAL, "/c")]).expect_err("no url");
        assert!(err.contains("bitbucket.api_url"), "{err}");
        check(&[
            (FLAVOUR, "data_center"),
            (CREDENTIAL, "/c"),
            (API_URL, "https://bitbucket.example.com"),
        ])
        .expect("data center");
        assert!(check(&[(FLAVOUR, "server")]).is_err(), "an unknown flavour");
        let err = check(&[("SDP_CONTROL_PLANE__NOTIFY__ATTEMPTS", "0")]).expect_err("0");
        assert!(err.contains("notify.attempts"), "{err}");
    }

    #[test]
    fn sample_config_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/control-plane.sample.toml");
        let config: Config = sdp_bus::settings::load(Some(std::path::Path::new(path)), [])
            .expect("sample config parses");
        assert!(!config.auth.credential_check_repo.is_empty());
        assert_eq!(config.audit.keep_for, Duration::from_secs(90 * 24 * 3600));
    }

    #[test]
    fn audit_retention_reads_human_durations() {
        assert_eq!(
            Config::dev().audit.keep_for,
            Duration::from_secs(90 * 86400)
        );
        assert_eq!(
            Config::dev().audit.prune_interval,
            Duration::from_secs(3600)
        );
        let config: Config =
            sdp_bus::settings::load(None, env(&[("SDP_CONTROL_PLANE__AUDIT__KEEP_FOR", "2w")]))
                .expect("2w");
        assert_eq!(config.audit.keep_for, Duration::from_secs(14 * 86400));
        sdp_bus::settings::load::<Config>(None, env(&[("SDP_CONTROL_PLANE__AUDIT__KEEP", "1d")]))
            .expect_err("unknown key refused");
    }
}
