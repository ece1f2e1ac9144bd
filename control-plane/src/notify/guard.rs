//! The SSRF guard of outgoing webhooks. Whoever creates a template or an
//! environment (any logged-in user) names its webhooks, so a webhook URL
//! is hostile input: the control plane must not be made to `POST` into
//! the network it sits in (cloud metadata, the agents, an admin panel on
//! a private address, itself).
//!
//! A webhook's host is checked when it is set (`PUT …/notify`) and again
//! before every attempt to deliver to it: an address that is (or a name
//! that resolves to) loopback, private, shared (100.64/10), link-local,
//! unique-local, unspecified, multicast, broadcast or reserved, in any of
//! its spellings (IPv4-mapped, IPv4-compatible, NAT64 and 6to4 IPv6 forms
//! too), or the control plane's own listen address or a port an agent
//! published for a sandbox, is refused, unless `notify.allow_loopback_http`
//! (loopback) or `notify.allowed_private_hosts` says otherwise.
//!
//! The delivery then connects to exactly the addresses that were checked
//! ([`Target::pin`]): a name that answers differently the second time
//! (DNS rebinding) cannot swap them. Names are resolved through a
//! [`Lookup`], so tests can answer as a rebinding name would.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

pub use crate::config::AllowedHost;
use crate::config::Config;
use crate::store::Store;
use futures::future::BoxFuture;
use reqwest::Url;

/// Why an address is no webhook's to reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// 127/8, ::1.
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16) and IPv6 site-local fec0::/10.
    Private,
    /// 100.64/10, carrier-grade NAT (RFC 6598).
    Shared,
    /// 169.254/16 (cloud metadata lives at 169.254.169.254), fe80::/10.
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    /// 0/8, ::.
    Unspecified,
    /// 224/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 240/4, 192.0.0/24, 198.18/15, 100::/64: not for hosts on the Internet.
    Reserved,
}

impl Class {
    pub fn describe(self) -> &'static str {
        match self {
            Class::Loopback => "a loopback address",
            Class::Private => "a private address",
            Class::Shared => "a shared (carrier-grade NAT) address",
            Class::LinkLocal => "a link-local address (where cloud metadata lives)",
            Class::UniqueLocal => "a unique-local address",
            Class::Unspecified => "the unspecified address",
            Class::Multicast => "a multicast address",
            Class::Broadcast => "the broadcast address",
            Class::Reserved => "a reserved address",
        }
    }

    /// What allows it: loopback with `allow_loopback_http`, the private
    /// kinds with `allowed_private_hosts`; nothing allows the others.
    fn allowable(self) -> bool {
        !matches!(
            self,
            Class::Unspecified | Class::Multicast | Class::Broadcast | Class::Reserved
        )
    }
}

/// What kind of non-public address `ip` is; `None`: a public one.
pub fn classify(ip: IpAddr) -> Option<Class> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Class> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b) {
        _ if ip.is_broadcast() => Class::Broadcast,
        (0, _) => Class::Unspecified,
        (127, _) => Class::Loopback,
        (10, _) | (172, 16..=31) | (192, 168) => Class::Private,
        (100, 64..=127) => Class::Shared,
        (169, 254) => Class::LinkLocal,
        (224..=239, _) => Class::Multicast,
        (240..=255, _) | (198, 18 | 19) => Class::Reserved,
        (192, 0) if c == 0 => Class::Reserved,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Class> {
    if ip.is_unspecified() {
        return Some(Class::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Class::Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let segments = ip.segments();
    Some(match segments[0] {
        s if s & 0xffc0 == 0xfe80 => Class::LinkLocal,
        s if s & 0xffc0 == 0xfec0 => Class::Private,
        s if s & 0xfe00 == 0xfc00 => Class::UniqueLocal,
        s if s & 0xff00 == 0xff00 => Class::Multicast,
        0x0100 if segments[1..4] == [0, 0, 0] => Class::Reserved,
        _ => return None,
    })
}

/// The IPv4 address an IPv6 one carries, as stacks route it: mapped
/// `::ffff:a.b.c.d`, compatible `::a.b.c.d` (deprecated, still routed by
/// some), NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let o = ip.octets();
    let last = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match ip.segments() {
        [0, 0, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last),
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

/// Resolves host names (the system's resolver; tests bring their own).
pub trait Lookup: Send + Sync {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, std::io::Result<Vec<SocketAddr>>>;
}

/// The system's resolver (`getaddrinfo` on tokio's blocking pool).
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, std::io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// Why a webhook's host is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("webhook host {host} {}{}; {}", resolves(host, *ip), class.describe(), hint(*class))]
    Address {
        host: String,
        ip: IpAddr,
        class: Class,
    },
    #[error("webhook host {host} {}{what}; a webhook may not point there", resolves(host, *ip))]
    Own {
        host: String,
        ip: IpAddr,
        what: &'static str,
    },
    #[error("webhook host {host} does not resolve ({reason}); check the name")]
    Unresolved { host: String, reason: String },
    #[error("webhook URL has no host")]
    NoHost,
}

impl Refused {
    /// Whether another try may go otherwise (a name that did not resolve
    /// now may later); an address refused stays refused.
    pub fn is_transient(&self) -> bool {
        matches!(self, Refused::Unresolved { .. })
    }
}

fn resolves(host: &str, ip: IpAddr) -> String {
    match host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(literal) if literal == ip => "is ".to_owned(),
        // `[::ffff:10.0.0.5]`: the IPv4 address it stands for.
        Ok(literal) if canonical(literal) == ip => format!("is {ip}, "),
        _ => format!("resolves to {ip}, "),
    }
}

fn hint(class: Class) -> &'static str {
    match class {
        Class::Loopback => {
            "loopback is allowed only with notify.allow_loopback_http (tests and development)"
        }
        c if c.allowable() => "allow it with notify.allowed_private_hosts",
        _ => "no setting allows it",
    }
}

/// A webhook's checked destination: its URL, and the addresses a delivery
/// connects to.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: Url,
    pub addrs: Vec<SocketAddr>,
}

impl Target {
    /// Makes `builder`'s client connect to the checked addresses only: a
    /// name is not resolved again (an address in the URL is not resolved
    /// at all).
    pub fn pin(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        match self.url.host() {
            Some(url::Host::Domain(name)) => builder.resolve_to_addrs(name, &self.addrs),
            _ => builder,
        }
    }
}

/// Where webhooks may go (see the module's text). Cheap to clone.
#[derive(Clone)]
pub struct Guard {
    allow_loopback: bool,
    allowed: Arc<[AllowedHost]>,
    /// The control plane's own listen address.
    own: SocketAddr,
    /// Running deployments' URLs: the ports agents published for sandboxes.
    published: Option<Store>,
    lookup: Arc<dyn Lookup>,
    /// How long a name may take to resolve (`notify.timeout`).
    timeout: std::time::Duration,
}

impl Guard {
    pub fn new(config: &Config, published: Option<Store>) -> Self {
        Self {
            allow_loopback: config.notify.allow_loopback_http,
            allowed: config.notify.allowed_private_hosts.clone().into(),
            own: config.http.addr,
            published,
            lookup: Arc::new(SystemLookup),
            timeout: config.notify.timeout,
        }
    }

    /// The same guard resolving names through `lookup`.
    pub fn with_lookup(mut self, lookup: Arc<dyn Lookup>) -> Self {
        self.lookup = lookup;
        self
    }

    /// Checks where `url` (already through [`super::webhook::check_url`])
    /// leads: every address of its host must be allowed.
    pub async fn check(&self, url: &str) -> Result<Target, Refused> {
        let url = Url::parse(url).map_err(|_| Refused::NoHost)?;
        let port = url.port_or_known_default().unwrap_or(443);
        let (shown, name, addrs) = match url.host() {
            None => return Err(Refused::NoHost),
            Some(url::Host::Ipv4(ip)) => {
                (ip.to_string(), None, vec![(IpAddr::V4(ip), port).into()])
            }
            Some(url::Host::Ipv6(ip)) => {
                (format!("[{ip}]"), None, vec![(IpAddr::V6(ip), port).into()])
            }
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                let unresolved = |reason: String| Refused::Unresolved {
                    host: name.clone(),
                    reason,
                };
                let addrs = tokio::time::timeout(self.timeout, self.lookup.lookup(&name, port))
                    .await
                    .map_err(|_| unresolved("timed out".to_owned()))?
                    .map_err(|e| unresolved(e.to_string()))?;
                if addrs.is_empty() {
                    return Err(unresolved("no addresses".to_owned()));
                }
                (name.clone(), Some(name), addrs)
            }
        };
        let published = self.published_endpoints();
        for addr in &addrs {
            self.check_addr(&shown, name.as_deref(), *addr, &published)?;
        }
        Ok(Target { url, addrs })
    }

    fn check_addr(
        &self,
        shown: &str,
        name: Option<&str>,
        addr: SocketAddr,
        published: &[(String, u16)],
    ) -> Result<(), Refused> {
        let ip = canonical(addr.ip());
        let own = |what| Refused::Own {
            host: shown.to_owned(),
            ip,
            what,
        };
        let class = classify(ip);
        // Never: what the control plane serves, or a sandbox's service
        // (whatever the allow-list says).
        let own_ip = canonical(self.own.ip());
        if addr.port() == self.own.port()
            && (own_ip == ip || (own_ip.is_unspecified() && class.is_some()))
        {
            return Err(own("the control plane's own listen address"));
        }
        let port = addr.port();
        if published.iter().any(|(host, p)| {
            *p == port
                && (host.parse::<IpAddr>().ok().map(canonical) == Some(ip)
                    || name.is_some_and(|n| n.eq_ignore_ascii_case(host)))
        }) {
            return Err(own("a port an agent published for a sandbox"));
        }
        let Some(class) = class else {
            return Ok(());
        };
        let allowed = match class {
            Class::Loopback if self.allow_loopback => true,
            c if c.allowable() => self.allowed.iter().any(|entry| match entry {
                AllowedHost::Block(block) => block.contains(ip),
                AllowedHost::Name(allowed) => name.is_some_and(|n| n == allowed),
            }),
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(Refused::Address {
                host: shown.to_owned(),
                ip,
                class,
            })
        }
    }

    /// `(host, port)` of the running deployments' URLs (what agents
    /// published); none if the store cannot say.
    fn published_endpoints(&self) -> Vec<(String, u16)> {
        let Some(store) = &self.published else {
            return Vec::new();
        };
        match store.published_urls() {
            Ok(urls) => urls
                .iter()
                .filter_map(|text| Url::parse(text).ok())
                .filter_map(|url| {
                    let host = url.host_str()?.trim_matches(['[', ']']).to_owned();
                    Some((host, url.port_or_known_default()?))
                })
                .collect(),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the published ports for the webhook guard");
                Vec::new()
            }
        }
    }
}

/// An IPv4-mapped address as the IPv4 one (how a dual-stack socket shows it).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
pub(crate) mod tests;
