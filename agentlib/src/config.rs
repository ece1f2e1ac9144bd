//! The agent's typed configuration. Every section refuses
//! unknown keys; defaults make an empty file work for development.

use std::path::PathBuf;

use serde::Deserialize;

mod container;
mod resources;
pub use container::ContainerConfig;
pub use resources::ResourcesConfig;

/// A config value serde accepts but the agent cannot use, naming its key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {reason}")]
pub struct ConfigError {
    pub key: &'static str,
    pub reason: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    #[serde(default)]
    pub nats: sdp_bus::nats::NatsConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub agent: AgentSection,
    /// Worktrees, git dirs, builds and build caches live here.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The git repos this agent may deploy: `repos_dir/<repo>` with an
    /// `origin` remote.
    #[serde(default = "default_repos_dir")]
    pub repos_dir: PathBuf,
    /// How others reach the ports this agent publishes.
    #[serde(default = "default_advertise_host")]
    pub advertise_host: String,
    /// The host address containers publish their ports on. Unset: the
    /// advertised address when it is an IP, else every address — so an
    /// agent host serves its containers on the address others use and
    /// nowhere else.
    #[serde(default)]
    pub publish_addr: Option<std::net::IpAddr>,
    #[serde(default)]
    pub flavour: FlavourConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub git: GitConfig,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub service: ServiceConfig,
    #[serde(default)]
    pub go: GoConfig,
    #[serde(default)]
    pub composer: ComposerConfig,
    /// How deployed containers are confined (`[container]`).
    #[serde(default)]
    pub container: ContainerConfig,
    /// The build containers (`[build]`).
    #[serde(default)]
    pub build: BuildConfig,
    /// Sandbox resources' images and limits (`[resources]`).
    #[serde(default)]
    pub resources: ResourcesConfig,
}

pub use sdp_bus::process::{LogConfig, LogFormat};

impl sdp_bus::settings::Settings for AgentConfig {
    const ENV_PREFIX: &'static str = "SDP_AGENT";
    const LIST_KEYS: &'static [&'static str] = &[
        "flavour.run_cmd",
        "git.allowed_schemes",
        "container.cap_add",
        "go.toolchains",
    ];
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// A subject token; defaults to `<hostname>` made token-safe.
    #[serde(default = "default_agent_id")]
    pub id: String,
    /// Deployments worked on at the same time; more wait in `queued`.
    #[serde(default = "default_max_parallel")]
    pub max_parallel: u32,
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            id: default_agent_id(),
            max_parallel: default_max_parallel(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlavourConfig {
    /// Image the containers run from; the flavour's default if unset.
    #[serde(default)]
    pub base_image: Option<String>,
    /// The container's command; the flavour's default if unset.
    #[serde(default)]
    pub run_cmd: Option<Vec<String>>,
    /// Build caches (GOCACHE, GOMODCACHE, ...); `data_dir/cache` if unset.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// `256m`, `1g`, `512k` or a number of bytes.
    #[serde(default = "default_memory")]
    pub memory: ByteSize,
    #[serde(default = "default_cpus")]
    pub cpus: f64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            memory: default_memory(),
            cpus: default_cpus(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitConfig {
    /// URL schemes a repo's `origin` (and the probe repo) may use.
    #[serde(default = "default_schemes")]
    pub allowed_schemes: Vec<String>,
}

impl Default for GitConfig {
    fn default() -> Self {
        Self {
            allowed_schemes: default_schemes(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    #[serde(default = "default_health_timeout")]
    pub timeout_secs: u64,
    #[serde(default = "default_health_path")]
    pub path: String,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            timeout_secs: default_health_timeout(),
            path: default_health_path(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The port the service listens on inside the container (`PORT`);
    /// the flavour's default (8080) if unset.
    #[serde(default)]
    pub port: Option<u16>,
}

/// Where `go build` gets modules a service's `vendor/` does not hold
/// (docs/OFFLINE_BUILDS.md). Unset, the agent builds offline: `GOPROXY=off`,
/// `GOSUMDB=off`. Only the agent config sets these, never a request.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GoConfig {
    /// `GOPROXY`: a module proxy (`https://goproxy.internal`) or a file
    /// tree in the proxy layout (`file:///srv/goproxy`); `off` if unset.
    #[serde(default)]
    pub proxy: Option<String>,
    /// `GOSUMDB`; `off` if unset (a host without internet cannot reach
    /// sum.golang.org; `go.sum` entries are still checked).
    #[serde(default)]
    pub sumdb: Option<String>,
    /// `GONOSUMDB`: module path patterns not checked against `sumdb`.
    #[serde(default)]
    pub nosumdb: Option<String>,
    /// `GOPRIVATE`: module path patterns that are private.
    #[serde(default)]
    pub private: Option<String>,
    /// More `GOFLAGS`, after the agent's `-buildvcs=false` (e.g.
    /// `-tags=netgo`). A `-mod=` here replaces the agent's choice.
    #[serde(default)]
    pub flags: Option<String>,
    /// The GOROOTs builds choose from (docs/GO_TOOLCHAINS.md): each build
    /// takes the oldest one its `go.mod` allows. Unset: every
    /// `/usr/lib/go-1.*` and the GOROOT of `go` on the agent's `PATH`
    /// (unless `build.goroot` is set: then only that one, as before).
    /// `build.goroot`, if set, is one more.
    #[serde(default)]
    pub toolchains: Option<Vec<PathBuf>>,
}

/// Package sources of `composer install` besides a committed `vendor/`
/// and composer's cache (docs/OFFLINE_BUILDS.md). packagist.org is never
/// used; without a repository of type `composer`, composer runs with its
/// network disabled.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ComposerConfig {
    #[serde(default)]
    pub repositories: Vec<ComposerRepository>,
}

/// One composer repository, as in `composer.json`'s `repositories`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ComposerRepository {
    #[serde(rename = "type")]
    pub kind: ComposerRepositoryKind,
    /// A URL (`composer`: a Satis or private Packagist mirror) or a
    /// directory (`artifact`: package zips; `path`: package sources).
    pub url: String,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ComposerRepositoryKind {
    Composer,
    Artifact,
    Path,
}

impl ComposerRepositoryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ComposerRepositoryKind::Composer => "composer",
            ComposerRepositoryKind::Artifact => "artifact",
            ComposerRepositoryKind::Path => "path",
        }
    }
}

/// The build containers (docs/OFFLINE_BUILDS.md): every build step runs
/// in a short-lived container of `image`, as `user`, with these limits.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// Made by `packaging/images/make-build-image.sh` (busybox, PHP,
    /// composer); Go comes from `goroot`, mounted read-only.
    #[serde(default = "default_build_image")]
    pub image: String,
    #[serde(default = "default_build_memory")]
    pub memory: ByteSize,
    #[serde(default = "default_build_cpus")]
    pub cpus: f64,
    /// The most processes (and threads) a build may have.
    #[serde(default = "default_build_pids")]
    pub pids: i64,
    /// Size of the build's `/tmp` (a tmpfs, counted in its memory).
    #[serde(default = "default_build_tmp")]
    pub tmp_size: ByteSize,
    /// A build still running after this long is killed (so is one whose
    /// agent died: nothing else would stop it).
    #[serde(default = "default_build_timeout")]
    pub timeout_secs: u64,
    /// `uid:gid` builds run as (never 0). Unset: the agent's own user, or
    /// `65534:65534` when the agent runs as root.
    #[serde(default)]
    pub user: Option<BuildUser>,
    /// Let `composer install` run the scripts and plugins of the checkout
    /// (inside the build container); off: `--no-scripts --no-plugins`.
    #[serde(default)]
    pub allow_composer_scripts: bool,
    /// A Go toolchain, mounted read-only at the same path when a build
    /// uses it. The older key: with `go.toolchains` unset it is the only
    /// toolchain; with it set, one more (docs/GO_TOOLCHAINS.md).
    #[serde(default)]
    pub goroot: Option<PathBuf>,
}

impl Default for BuildConfig {
    fn default() -> Self {
        Self {
            image: default_build_image(),
            memory: default_build_memory(),
            cpus: default_build_cpus(),
            pids: default_build_pids(),
            tmp_size: default_build_tmp(),
            timeout_secs: default_build_timeout(),
            user: None,
            allow_composer_scripts: false,
            goroot: None,
        }
    }
}

/// A numeric `uid:gid`, as in `build.user = "1000:1000"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildUser {
    pub uid: u32,
    pub gid: u32,
}

/// A `build.user` that is not a numeric `uid:gid`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a numeric uid:gid like \"1000:1000\"")]
pub struct NotABuildUser(pub String);

impl std::str::FromStr for BuildUser {
    type Err = NotABuildUser;
    fn from_str(s: &str) -> Result<Self, NotABuildUser> {
        let bad = || NotABuildUser(s.to_owned());
        let (uid, gid) = s.trim().split_once(':').ok_or_else(bad)?;
        Ok(BuildUser {
            uid: uid.parse().map_err(|_| bad())?,
            gid: gid.parse().map_err(|_| bad())?,
        })
    }
}

impl<'de> Deserialize<'de> for BuildUser {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An entry of `go.proxy` that is not one the agent accepts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not off, direct, an http(s):// URL or file:///absolute/path")]
pub struct BadGoProxyEntry(pub String);

/// Checks that `proxy` is a `GOPROXY` the agent accepts: a list (`,` or
/// `|`) of `off`, `direct`, `https://…`, `http://…` or
/// `file:///absolute/path`; the error names the first entry that is not.
fn check_go_proxy(proxy: &str) -> Result<(), BadGoProxyEntry> {
    for entry in proxy.split([',', '|']) {
        let ok = match entry {
            "off" | "direct" => true,
            _ if entry.starts_with("file://") => entry["file://".len()..].starts_with('/'),
            _ => {
                (entry.starts_with("https://") || entry.starts_with("http://"))
                    && !entry.contains(char::is_whitespace)
            }
        };
        if !ok {
            return Err(BadGoProxyEntry(entry.to_owned()));
        }
    }
    Ok(())
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data/agent")
}
fn default_repos_dir() -> PathBuf {
    PathBuf::from("./repos")
}
fn default_advertise_host() -> String {
    "127.0.0.1".to_owned()
}
fn default_max_parallel() -> u32 {
    2
}
fn default_memory() -> ByteSize {
    ByteSize(256 << 20)
}
fn default_cpus() -> f64 {
    1.0
}
fn default_build_image() -> String {
    "sdp-build:1".to_owned()
}
fn default_build_memory() -> ByteSize {
    ByteSize(2 << 30)
}
fn default_build_cpus() -> f64 {
    2.0
}
fn default_build_pids() -> i64 {
    1024
}
fn default_build_tmp() -> ByteSize {
    ByteSize(1 << 30)
}
fn default_build_timeout() -> u64 {
    900
}
fn default_schemes() -> Vec<String> {
    vec!["https".to_owned()]
}
fn default_health_timeout() -> u64 {
    60
}
fn default_health_path() -> String {
    "/".to_owned()
}

/// The host name with every character that is not a subject-token
/// character replaced by `-`.
fn default_agent_id() -> String {
    let host = crate::host::hostname();
    let cleaned: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "agent".to_owned()
    } else {
        cleaned
    }
}

impl AgentConfig {
    /// Checks what serde cannot; each error names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, reason: String| ConfigError { key, reason };
        if !sdp_bus::subject::is_token(&self.agent.id) {
            return Err(bad(
                "agent.id",
                format!("{:?} must be 1-64 of A-Z a-z 0-9 _ -", self.agent.id),
            ));
        }
        if self.agent.max_parallel == 0 {
            return Err(bad("agent.max_parallel", "must be at least 1".into()));
        }
        if !(self.limits.cpus > 0.0 && self.limits.cpus <= 1024.0) {
            return Err(bad("limits.cpus", "must be in (0, 1024]".into()));
        }
        if self.git.allowed_schemes.is_empty() {
            return Err(bad("git.allowed_schemes", "must not be empty".into()));
        }
        if !self.health.path.starts_with('/') {
            return Err(bad("health.path", "must start with '/'".into()));
        }
        if self.health.timeout_secs == 0 {
            return Err(bad("health.timeout_secs", "must be at least 1".into()));
        }
        if self.service.port == Some(0) {
            return Err(bad("service.port", "must not be 0".into()));
        }
        if let Some(cmd) = &self.flavour.run_cmd
            && cmd.is_empty()
        {
            return Err(bad("flavour.run_cmd", "must not be empty".into()));
        }
        if let Some(proxy) = &self.go.proxy {
            check_go_proxy(proxy).map_err(|reason| bad("go.proxy", reason.to_string()))?;
        }
        if self.go.sumdb.as_deref() == Some("") {
            return Err(bad("go.sumdb", "must not be empty (use \"off\")".into()));
        }
        for repo in &self.composer.repositories {
            let url = repo.url.trim();
            let ok = match repo.kind {
                ComposerRepositoryKind::Composer => {
                    url.starts_with("https://")
                        || url.starts_with("http://")
                        || url.starts_with("file:///")
                }
                ComposerRepositoryKind::Artifact | ComposerRepositoryKind::Path => {
                    url.starts_with('/')
                }
            };
            if !ok {
                return Err(bad(
                    "composer.repositories",
                    format!(
                        "{:?}: a {} repository needs {}",
                        repo.url,
                        repo.kind.as_str(),
                        match repo.kind {
                            ComposerRepositoryKind::Composer => "an http(s):// or file:/// URL",
                            _ => "an absolute directory",
                        }
                    ),
                ));
            }
        }
        self.container
            .check()
            .map_err(|(key, reason)| bad(key, reason))?;
        if self.build.image.trim().is_empty() {
            return Err(bad("build.image", "must not be empty".into()));
        }
        if !(self.build.cpus > 0.0 && self.build.cpus <= 1024.0) {
            return Err(bad("build.cpus", "must be in (0, 1024]".into()));
        }
        if self.build.timeout_secs < 10 {
            return Err(bad("build.timeout_secs", "must be at least 10".into()));
        }
        if self.build.pids < 16 {
            return Err(bad("build.pids", "must be at least 16".into()));
        }
        if self.build.user.is_some_and(|u| u.uid == 0) {
            return Err(bad(
                "build.user",
                "builds never run as root (uid 0): name another uid:gid".into(),
            ));
        }
        if let Some(goroot) = &self.build.goroot
            && !goroot.is_absolute()
        {
            return Err(bad("build.goroot", "must be an absolute path".into()));
        }
        if let Some(toolchains) = &self.go.toolchains {
            if toolchains.is_empty() {
                return Err(bad(
                    "go.toolchains",
                    "must not be empty (leave it unset to find the toolchains)".into(),
                ));
            }
            if let Some(relative) = toolchains.iter().find(|t| !t.is_absolute()) {
                return Err(bad(
                    "go.toolchains",
                    format!("{} must be an absolute path", relative.display()),
                ));
            }
        }
        if self.advertise_host.is_empty() {
            return Err(bad("advertise_host", "must not be empty".into()));
        }
        Ok(())
    }

    /// Where containers publish: `publish_addr`, else `advertise_host`
    /// when it is an IP address, else all addresses.
    pub fn publish_ip(&self) -> std::net::IpAddr {
        self.publish_addr
            .or_else(|| self.advertise_host.parse().ok())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    /// The address this host reaches a published port on: the publish
    /// address, or loopback when containers publish on every address.
    pub fn local_reach_ip(&self) -> std::net::IpAddr {
        match self.publish_ip() {
            ip if ip.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            ip => ip,
        }
    }

    pub fn memory_bytes(&self) -> i64 {
        self.limits.memory.bytes()
    }

    pub fn nano_cpus(&self) -> i64 {
        (self.limits.cpus * 1e9) as i64
    }

    /// The user builds run as: `build.user`, else the agent's own user,
    /// else (an agent running as root) `65534:65534`.
    pub fn build_user(&self) -> BuildUser {
        if let Some(user) = self.build.user {
            return user;
        }
        match crate::host::agent_user() {
            (0, _) | (u32::MAX, _) => BuildUser {
                uid: 65534,
                gid: 65534,
            },
            (uid, gid) => BuildUser { uid, gid },
        }
    }
}

/// A memory size: `256m`, `1g`, `512k`, `1048576` (bytes), optionally
/// with a trailing `b`; at least Docker's minimum of 6 MiB. A value that is
/// none of these is refused when the config loads, naming the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(i64);

impl ByteSize {
    pub fn bytes(self) -> i64 {
        self.0
    }
}

impl std::str::FromStr for ByteSize {
    type Err = BadSize;
    fn from_str(s: &str) -> Result<Self, BadSize> {
        parse_memory(s).map(ByteSize)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size like 256m, 1g or a number of bytes")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ByteSize, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<ByteSize, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ByteSize, E> {
                self.visit_str(&n.to_string())
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A memory size that is not one (each names the text given).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadSize {
    #[error("{0:?} is not a size like 256m, 1g or a number of bytes")]
    NotASize(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
    #[error("{0:?} is below Docker's minimum of 6m")]
    BelowMinimum(String),
}

/// Docker's smallest memory limit.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// `256m`, `1g`, `512k`, `1048576`, optionally with a trailing `b`.
pub fn parse_memory(s: &str) -> Result<i64, BadSize> {
    let lower = s.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, unit) = match lower.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => lower.split_at(i),
        None => (lower, ""),
    };
    let multiplier: i64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return Err(BadSize::NotASize(s.to_owned())),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| BadSize::NotASize(s.to_owned()))?;
    let bytes = n
        .checked_mul(multiplier)
        .ok_or_else(|| BadSize::TooLarge(s.to_owned()))?;
    if bytes < MIN_MEMORY {
        return Err(BadSize::BelowMinimum(s.to_owned()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str) -> Result<AgentConfig, sdp_bus::settings::SettingsError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, toml).expect("write");
        sdp_bus::settings::load(Some(&path), Vec::<(String, String)>::new())
    }

    #[test]
    fn containers_publish_on_the_advertised_address_unless_told_otherwise() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        let config = load("advertise_host = \"10.0.0.5\"").expect("config");
        assert_eq!(config.publish_ip(), ip("10.0.0.5"));
        assert_eq!(config.local_reach_ip(), ip("10.0.0.5"));
        let config = load("advertise_host = \"agents-1.internal\"").expect("config");
        assert_eq!(config.publish_ip(), ip("0.0.0.0"));
        assert_eq!(config.local_reach_ip(), ip("127.0.0.1"));
        let config = load("advertise_host = \"agents-1.internal\"\npublish_addr = \"10.0.0.6\"")
            .expect("config");
        assert_eq!(config.publish_ip(), ip("10.0.0.6"));
        assert!(load("publish_addr = \"agents-1\"").is_err(), "an IP only");
    }

    #[test]
    fn empty_config_has_defaults() {
        let config: AgentConfig =
            sdp_bus::settings::load(None, Vec::<(String, String)>::new()).expect("loads");
        config.validate().expect("valid");
        assert_eq!(config.agent.max_parallel, 2);
        assert_eq!(config.git.allowed_schemes, ["https"]);
        assert_eq!(config.memory_bytes(), 256 << 20);
        assert_eq!(config.health.path, "/");
        assert!(sdp_bus::subject::is_token(&config.agent.id));
    }

    #[test]
    fn full_config_and_env_overrides() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            r#"
data_dir = "/var/lib/sdp"
repos_dir = "/srv/repos"
advertise_host = "10.0.0.5"
[nats]
url = "nats://nats:4222"
[log]
format = "json"
[agent]
id = "micro-1"
max_parallel = 4
[flavour]
base_image = "sdp-go-base:2"
run_cmd = ["/sdp/app", "--serve"]
[limits]
memory = "1g"
cpus = 0.5
[git]
allowed_schemes = ["https", "http"]
[health]
timeout_secs = 30
path = "/healthz"
[service]
port = 9000
"#,
        )
        .expect("write");
        let env = [("SDP_AGENT__AGENT__MAX_PARALLEL".to_owned(), "3".to_owned())];
        let config: AgentConfig = sdp_bus::settings::load(Some(&path), env).expect("loads");
        config.validate().expect("valid");
        assert_eq!(config.agent.max_parallel, 3);
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.memory_bytes(), 1 << 30);
        assert_eq!(config.nano_cpus(), 500_000_000);
        assert_eq!(config.service.port, Some(9000));
        assert_eq!(
            config.flavour.run_cmd.as_deref(),
            Some(&["/sdp/app".to_owned(), "--serve".to_owned()][..])
        );
    }

    #[test]
    fn container_section_and_env_overrides() {
        let config = load("[container]\npids_limit = 64\nuser = \"1000\"\n").expect("loads");
        assert_eq!(config.container.pids_limit, 64);
        assert_eq!(config.container.user.as_deref(), Some("1000"));
        let env = sdp_bus::settings::load::<AgentConfig>(
            None,
            [
                (
                    "SDP_AGENT__CONTAINER__CAP_ADD".to_owned(),
                    "NET_BIND_SERVICE,CHOWN".to_owned(),
                ),
                (
                    "SDP_AGENT__CONTAINER__READ_ONLY_ROOT".to_owned(),
                    "true".to_owned(),
                ),
                ("SDP_AGENT__CONTAINER__TMP_SIZE".to_owned(), "8m".to_owned()),
            ],
        )
        .expect("loads");
        assert_eq!(env.container.cap_add, ["NET_BIND_SERVICE", "CHOWN"]);
        assert!(env.container.read_only_root);
        assert_eq!(env.container.tmp_size.bytes(), 8 << 20);
        let bad = load("[container]\ncap_add = [\"ALL\"]\n").expect("parses");
        assert_eq!(bad.validate().map_err(|e| e.key), Err("container.cap_add"));
        assert!(
            load("[container]\npids = 1\n").is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn sample_config_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/agent.sample.toml");
        let config: AgentConfig = sdp_bus::settings::load(
            Some(std::path::Path::new(path)),
            Vec::<(String, String)>::new(),
        )
        .expect("sample config parses");
        config.validate().expect("sample config is valid");
        assert_eq!(config.go.proxy.as_deref(), Some("file:///srv/goproxy"));
        assert_eq!(config.composer.repositories.len(), 1);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = load("[agent]\nidd = \"x\"\n").expect_err("refused");
        assert!(err.to_string().contains("idd"), "{err}");
        assert!(load("colour = 1\n").is_err());
    }

    #[test]
    fn invalid_values_name_their_key() {
        let config = load("[agent]\nid = \"a.b\"\n").expect("parses");
        let err = config.validate().expect_err("invalid");
        assert_eq!(err.key, "agent.id");
        let err = load("[limits]\nmemory = \"lots\"\n").expect_err("refused");
        assert!(err.to_string().contains("limits.memory"), "{err}");
    }

    #[test]
    fn go_and_composer_sections() {
        let config = load(
            r#"
[go]
proxy = "file:///srv/goproxy"
sumdb = "off"
nosumdb = "example.com/*"
private = "git.internal/*"
flags = "-tags=netgo"
toolchains = ["/usr/lib/go-1.19", "/usr/lib/go-1.22"]
[[composer.repositories]]
type = "artifact"
url = "/srv/composer/artifacts"
[[composer.repositories]]
type = "composer"
url = "https://satis.internal"
"#,
        )
        .expect("loads");
        config.validate().expect("valid");
        assert_eq!(config.go.proxy.as_deref(), Some("file:///srv/goproxy"));
        assert_eq!(config.go.flags.as_deref(), Some("-tags=netgo"));
        assert_eq!(
            config.go.toolchains,
            Some(vec![
                PathBuf::from("/usr/lib/go-1.19"),
                PathBuf::from("/usr/lib/go-1.22")
            ])
        );
        assert_eq!(config.composer.repositories.len(), 2);
        assert_eq!(
            config.composer.repositories[0].kind,
            ComposerRepositoryKind::Artifact
        );
        let empty = load("").expect("loads");
        assert_eq!(empty.go, GoConfig::default());
        assert!(empty.composer.repositories.is_empty());
        // The env overrides a key like any other.
        let from_env: AgentConfig = sdp_bus::settings::load(
            None,
            [(
                "SDP_AGENT__GO__PROXY".to_owned(),
                "https://goproxy.internal,off".to_owned(),
            )],
        )
        .expect("loads");
        from_env.validate().expect("valid");
        assert_eq!(
            from_env.go.proxy.as_deref(),
            Some("https://goproxy.internal,off")
        );
        let from_env: AgentConfig = sdp_bus::settings::load(
            None,
            [(
                "SDP_AGENT__GO__TOOLCHAINS".to_owned(),
                "/usr/lib/go-1.22,/usr/local/go".to_owned(),
            )],
        )
        .expect("loads");
        from_env.validate().expect("valid");
        assert_eq!(
            from_env.go.toolchains,
            Some(vec![
                PathBuf::from("/usr/lib/go-1.22"),
                PathBuf::from("/usr/local/go")
            ])
        );
    }

    #[test]
    fn bad_go_and_composer_values_name_their_key() {
        for (toml, key) in [
            ("[go]\nproxy = \"/srv/goproxy\"\n", "go.proxy"),
            ("[go]\nproxy = \"file://srv/goproxy\"\n", "go.proxy"),
            ("[go]\nproxy = \"\"\n", "go.proxy"),
            ("[go]\nsumdb = \"\"\n", "go.sumdb"),
            ("[go]\ntoolchains = []\n", "go.toolchains"),
            ("[go]\ntoolchains = [\"go-1.22\"]\n", "go.toolchains"),
            (
                "[[composer.repositories]]\ntype = \"artifact\"\nurl = \"relative\"\n",
                "composer.repositories",
            ),
        ] {
            let err = load(toml).expect("parses").validate().expect_err(toml);
            assert_eq!(err.key, key, "{toml}");
        }
        assert!(load("[go]\ngoproxy = \"off\"\n").is_err());
        assert!(load("[[composer.repositories]]\ntype = \"vcs\"\nurl = \"/x\"\n").is_err());
    }

    #[test]
    fn build_section() {
        let config = load(
            r#"
[build]
image = "sdp-build:2"
memory = "1g"
cpus = 1.5
pids = 256
tmp_size = "128m"
timeout_secs = 300
user = "1000:1001"
allow_composer_scripts = true
goroot = "/usr/lib/go-1.19"
"#,
        )
        .expect("loads");
        config.validate().expect("valid");
        assert_eq!(config.build.image, "sdp-build:2");
        assert_eq!(config.build.memory.bytes(), 1 << 30);
        assert_eq!(
            config.build_user(),
            BuildUser {
                uid: 1000,
                gid: 1001
            }
        );
        assert!(config.build.allow_composer_scripts);
        let empty = load("").expect("loads");
        assert_eq!(empty.build, BuildConfig::default());
        assert!(!empty.build.allow_composer_scripts);
        assert_ne!(empty.build_user().uid, 0, "never root");
        for (toml, key) in [
            ("[build]\nuser = \"0:0\"\n", "build.user"),
            ("[build]\npids = 1\n", "build.pids"),
            ("[build]\ntimeout_secs = 1\n", "build.timeout_secs"),
            ("[build]\ncpus = 0\n", "build.cpus"),
            ("[build]\ngoroot = \"go\"\n", "build.goroot"),
        ] {
            let err = load(toml).expect("parses").validate().expect_err(toml);
            assert_eq!(err.key, key, "{toml}");
        }
        assert!(load("[build]\nuser = \"nobody\"\n").is_err());
        assert!(load("[build]\nimagee = \"x\"\n").is_err());
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("256m"), Ok(256 << 20));
        assert_eq!(parse_memory("1G"), Ok(1 << 30));
        assert_eq!(parse_memory("64mb"), Ok(64 << 20));
        assert_eq!(parse_memory("104857600"), Ok(104_857_600));
        assert_eq!(parse_memory("1x"), Err(BadSize::NotASize("1x".into())));
        assert_eq!(parse_memory(""), Err(BadSize::NotASize("".into())));
        assert_eq!(parse_memory("1k"), Err(BadSize::BelowMinimum("1k".into())));
        assert_eq!(parse_memory("6m"), Ok(MIN_MEMORY));
        let huge = format!("{}g", i64::MAX);
        assert_eq!(parse_memory(&huge), Err(BadSize::TooLarge(huge.clone())));
        assert_eq!(
            BadSize::BelowMinimum("1k".into()).to_string(),
            "\"1k\" is below Docker's minimum of 6m"
        );
    }

    #[test]
    fn go_proxies_and_build_users() {
        assert_eq!(check_go_proxy("https://proxy.example,direct|off"), Ok(()));
        assert_eq!(check_go_proxy("file:///srv/goproxy"), Ok(()));
        assert_eq!(
            check_go_proxy("off,file://relative"),
            Err(BadGoProxyEntry("file://relative".into()))
        );
        assert_eq!(
            "1000:1001".parse::<BuildUser>(),
            Ok(BuildUser {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(
            "nobody".parse::<BuildUser>(),
            Err(NotABuildUser("nobody".into()))
        );
    }

    #[test]
    fn limits_memory_is_a_byte_size() {
        let at = |toml: &str| load(toml).expect("loads").memory_bytes();
        assert_eq!(at("[limits]\nmemory = \"512m\"\n"), 512 << 20);
        assert_eq!(at("[limits]\nmemory = \"1g\"\n"), 1 << 30);
        assert_eq!(at("[limits]\nmemory = \"268435456\"\n"), 268_435_456);
        assert_eq!(at("[limits]\nmemory = 268435456\n"), 268_435_456);
        let env = |value: &str| {
            sdp_bus::settings::load::<AgentConfig>(
                None,
                [("SDP_AGENT__LIMITS__MEMORY".to_owned(), value.to_owned())],
            )
        };
        assert_eq!(env("268435456").expect("loads").memory_bytes(), 268_435_456);
        assert_eq!(env("1g").expect("loads").memory_bytes(), 1 << 30);
    }

    #[test]
    fn a_bad_memory_limit_is_refused_not_defaulted() {
        for bad in ["lots", "1x", "1k", "\"\"", "-5"] {
            let value = if bad.starts_with('"') || bad.starts_with('-') {
                bad.to_owned()
            } else {
                format!("\"{bad}\"")
            };
            let err = load(&format!("[limits]\nmemory = {value}\n")).expect_err(bad);
            let text = err.to_string();
            assert!(text.contains("limits.memory"), "{bad}: {text}");
        }
        let err = sdp_bus::settings::load::<AgentConfig>(
            None,
            [("SDP_AGENT__LIMITS__MEMORY".to_owned(), "256q".to_owned())],
        )
        .expect_err("refused");
        assert!(err.to_string().contains("limits.memory"), "{err}");
    }
}
