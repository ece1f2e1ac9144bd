use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::*;

/// Answers names from a table; a name with several answers gives them one
/// lookup after the other (the last one stays), as a rebinding name does.
#[derive(Default)]
pub(crate) struct Answers(Mutex<HashMap<String, VecDeque<Vec<IpAddr>>>>);

impl Answers {
    pub(crate) fn with(self, name: &str, answers: &[&[&str]]) -> Self {
        let list = answers
            .iter()
            .map(|ips| ips.iter().map(|ip| ip.parse().expect("ip")).collect())
            .collect();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), list);
        self
    }
}

impl Lookup for Answers {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, std::io::Result<Vec<SocketAddr>>> {
        let mut table = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let answer = match table.get_mut(host) {
            Some(list) if list.len() > 1 => list.pop_front(),
            Some(list) => list.front().cloned(),
            None => None,
        };
        Box::pin(async move {
            answer
                .map(|ips| {
                    ips.into_iter()
                        .map(|ip| SocketAddr::new(ip, port))
                        .collect()
                })
                .ok_or_else(|| std::io::Error::other("no such host"))
        })
    }
}

fn guard(configure: impl FnOnce(&mut Config), answers: Answers) -> Guard {
    let mut config = Config::dev();
    config.http.addr = "127.0.0.1:8080".parse().expect("addr");
    configure(&mut config);
    Guard::new(&config, None).with_lookup(Arc::new(answers))
}

fn class_of(text: &str) -> Option<Class> {
    classify(text.parse().expect("ip"))
}

#[test]
fn every_kind_of_internal_address_is_classified() {
    for (ip, class) in [
        ("127.0.0.1", Class::Loopback),
        ("127.255.0.9", Class::Loopback),
        ("::1", Class::Loopback),
        ("10.0.0.5", Class::Private),
        ("172.16.0.1", Class::Private),
        ("172.31.255.255", Class::Private),
        ("192.168.1.1", Class::Private),
        ("fec0::1", Class::Private),
        ("100.64.0.1", Class::Shared),
        ("100.127.255.254", Class::Shared),
        ("169.254.169.254", Class::LinkLocal),
        ("fe80::1", Class::LinkLocal),
        ("febf::1", Class::LinkLocal),
        ("fc00::1", Class::UniqueLocal),
        ("fd12:3456::1", Class::UniqueLocal),
        ("0.0.0.0", Class::Unspecified),
        ("0.1.2.3", Class::Unspecified),
        ("::", Class::Unspecified),
        ("224.0.0.1", Class::Multicast),
        ("239.255.255.250", Class::Multicast),
        ("ff02::1", Class::Multicast),
        ("255.255.255.255", Class::Broadcast),
        ("240.0.0.1", Class::Reserved),
        ("198.18.0.1", Class::Reserved),
        ("192.0.0.8", Class::Reserved),
        ("100::1", Class::Reserved),
        // IPv4 inside IPv6, as stacks route them.
        ("::ffff:127.0.0.1", Class::Loopback),
        ("::ffff:10.0.0.5", Class::Private),
        ("::ffff:169.254.169.254", Class::LinkLocal),
        ("::127.0.0.1", Class::Loopback),
        ("::10.1.2.3", Class::Private),
        ("64:ff9b::a9fe:a9fe", Class::LinkLocal),
        ("64:ff9b::7f00:1", Class::Loopback),
        ("2002:7f00:1::", Class::Loopback),
        ("2002:c0a8:101::1", Class::Private),
    ] {
        assert_eq!(class_of(ip), Some(class), "{ip}");
    }
    for public in [
        "93.184.216.34",
        "8.8.8.8",
        "172.32.0.1",
        "100.128.0.1",
        "169.253.1.1",
        "192.0.2.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::",
    ] {
        assert_eq!(class_of(public), None, "{public}");
    }
}

/// What the URL parser makes of a host is what a delivery connects to:
/// every spelling of an internal address is refused.
#[tokio::test]
async fn every_spelling_of_an_internal_host_is_refused() {
    let guard = guard(|_| {}, Answers::default());
    for url in [
        "https://10.0.0.5/hook",
        "https://127.0.0.1/hook",
        "https://127.1/hook",
        "https://2130706433/hook",
        "https://0x7f000001/hook",
        "https://0x7f.0.0.1/hook",
        "https://0177.0.0.1/hook",
        "https://017700000001/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:7f00:1]/hook",
        "https://[0:0:0:0:0:ffff:a9fe:a9fe]/latest/meta-data",
        "https://169.254.169.254/latest/meta-data",
        "https://0xa9fea9fe/",
        "https://[fe80::1]/",
        "https://[fd00::1]/",
        "https://0.0.0.0/",
        "https://0/",
        "https://100.64.1.1/",
        "https://224.0.0.1/",
        "https://255.255.255.255/",
        "https://10.0.0.5:443/",
    ] {
        let refused = guard.check(url).await.expect_err(url);
        assert!(
            matches!(refused, Refused::Address { .. }),
            "{url}: {refused}"
        );
    }
    assert!(guard.check("https://93.184.216.34/hook").await.is_ok());
}

#[tokio::test]
async fn messages_name_the_host_the_address_and_the_setting() {
    let answers = Answers::default().with("intranet.example", &[&["10.0.0.5"]]);
    let guard = guard(|_| {}, answers);
    let refused = guard
        .check("https://10.0.0.5/x")
        .await
        .expect_err("private");
    assert_eq!(
        refused.to_string(),
        "webhook host 10.0.0.5 is a private address; allow it with notify.allowed_private_hosts"
    );
    let refused = guard
        .check("https://intranet.example/x")
        .await
        .expect_err("private by name");
    assert_eq!(
        refused.to_string(),
        "webhook host intranet.example resolves to 10.0.0.5, a private address; allow it with \
         notify.allowed_private_hosts"
    );
    let refused = guard
        .check("https://[::ffff:7f00:1]/x")
        .await
        .expect_err("mapped");
    assert!(
        refused
            .to_string()
            .starts_with("webhook host [::ffff:127.0.0.1] is 127.0.0.1, a loopback"),
        "{refused}"
    );
    let refused = guard.check("https://[::1]/x").await.expect_err("loopback");
    assert!(
        refused.to_string().contains("notify.allow_loopback_http"),
        "{refused}"
    );
    let refused = guard
        .check("https://nowhere.example/")
        .await
        .expect_err("none");
    assert!(refused.is_transient(), "{refused}");
}

/// A name is refused if any of its addresses is internal.
#[tokio::test]
async fn a_name_with_one_internal_address_is_refused() {
    let answers = Answers::default()
        .with("mixed.example", &[&["93.184.216.34", "169.254.169.254"]])
        .with("public.example", &[&["93.184.216.34", "2606:4700::1111"]]);
    let guard = guard(|_| {}, answers);
    assert!(guard.check("https://mixed.example/").await.is_err());
    let target = guard
        .check("https://public.example:8443/")
        .await
        .expect("public");
    assert_eq!(target.addrs.len(), 2);
    assert!(target.addrs.iter().all(|a| a.port() == 8443));
}

#[tokio::test]
async fn the_allow_lists_allow_what_they_name_only() {
    let answers = Answers::default()
        .with("slack-proxy.corp", &[&["10.20.0.7"]])
        .with("other.corp", &[&["10.20.0.8"]])
        .with("localhost", &[&["127.0.0.1", "::1"]]);
    let guard = guard(
        |config| {
            config.notify.allow_loopback_http = true;
            config.notify.allowed_private_hosts = vec![
                AllowedHost::try_from("slack-proxy.corp".to_owned()).expect("name"),
                AllowedHost::try_from("192.168.5.0/24".to_owned()).expect("block"),
            ];
        },
        answers,
    );
    assert!(guard.check("https://slack-proxy.corp/x").await.is_ok());
    assert!(guard.check("https://192.168.5.9/x").await.is_ok());
    assert!(guard.check("http://localhost:9000/x").await.is_ok());
    assert!(guard.check("http://127.0.0.1:9000/x").await.is_ok());
    assert!(guard.check("https://other.corp/x").await.is_err());
    assert!(guard.check("https://192.168.6.9/x").await.is_err());
    // Nothing allows these, nor the control plane itself.
    assert!(guard.check("https://224.0.0.1/x").await.is_err());
    let own = guard
        .check("http://127.0.0.1:8080/api/sandboxes")
        .await
        .expect_err("its own address");
    assert!(matches!(own, Refused::Own { .. }), "{own}");
    let own = guard
        .check("http://localhost:8080/")
        .await
        .expect_err("its own address by name");
    assert!(
        own.to_string()
            .contains("control plane's own listen address"),
        "{own}"
    );
}

#[tokio::test]
async fn a_control_plane_on_every_interface_is_refused_on_its_port() {
    let guard = guard(
        |config| {
            config.http.addr = "0.0.0.0:8080".parse().expect("addr");
            config.notify.allow_loopback_http = true;
        },
        Answers::default(),
    );
    assert!(guard.check("http://127.0.0.1:8080/").await.is_err());
    assert!(guard.check("http://127.0.0.1:8081/").await.is_ok());
    assert!(guard.check("https://93.184.216.34:8080/").await.is_ok());
}

#[test]
fn allowed_hosts_parse_names_and_blocks() {
    for good in [
        "10.0.0.0/8",
        "10.0.0.5",
        "fd00::/8",
        "slack-proxy.corp",
        "Proxy.Example.",
    ] {
        assert!(AllowedHost::try_from(good.to_owned()).is_ok(), "{good}");
    }
    assert_eq!(
        AllowedHost::try_from("Proxy.Example.".to_owned()),
        Ok(AllowedHost::Name("proxy.example".into()))
    );
    for bad in ["", "10.0.0.0/33", "a b", "http://x", "x..y"] {
        assert!(AllowedHost::try_from(bad.to_owned()).is_err(), "{bad}");
    }
}

/// A name that answers a public address when checked and loopback next
/// (DNS rebinding): the second check refuses it; and a delivery connects
/// to the checked addresses, never resolving the name again.
#[tokio::test]
async fn a_rebinding_name_is_refused_and_checked_addresses_are_pinned() {
    let answers = Answers::default()
        .with("rebind.example", &[&["93.184.216.34"], &["127.0.0.1"]])
        .with("pinned.example", &[&["127.0.0.1"]]);
    let strict = guard(|_| {}, answers);
    assert!(strict.check("https://rebind.example/x").await.is_ok());
    let refused = strict
        .check("https://rebind.example/x")
        .await
        .expect_err("rebound");
    assert!(
        refused
            .to_string()
            .contains("resolves to 127.0.0.1, a loopback address"),
        "{refused}"
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = axum::Router::new().fallback(|| async { "pinned" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let loose = guard(
        |config| config.notify.allow_loopback_http = true,
        Answers::default().with("pinned.example", &[&["127.0.0.1"]]),
    );
    // No resolver on the machine knows `pinned.example`: only the pin does.
    let target = loose
        .check(&format!("http://pinned.example:{port}/x"))
        .await
        .expect("allowed");
    let client = target
        .pin(reqwest::Client::builder())
        .build()
        .expect("client");
    let answer = client.get(target.url.clone()).send().await.expect("sent");
    assert_eq!(answer.text().await.expect("body"), "pinned");
}
