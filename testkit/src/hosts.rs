//! [`HostAddresses`]: extra IPv4 addresses on this machine, standing for
//! several agent hosts. Each agent of a test advertises one and its
//! containers publish on it, so a route that names the wrong host fails.
//!
//! The addresses sit on a veth pair made for the test (no `dummy` module
//! here, and an address on `lo` is not reachable from containers); they
//! are local addresses of the host, so Docker can publish on them and
//! containers reach them through the bridge like any host address. The
//! link, and with it the addresses, goes on drop. Needs root, as the
//! Docker tests do.

use std::net::Ipv4Addr;
use std::process::Command;

use crate::cmd::{output, run};

/// `count` addresses `10.251.<r>.2…` on a link of their own.
pub struct HostAddresses {
    link: String,
    addrs: Vec<Ipv4Addr>,
}

impl HostAddresses {
    pub fn add(count: u8) -> HostAddresses {
        assert!((1..=200).contains(&count), "1..=200 addresses");
        let taken = run(Command::new("ip").args(["-4", "-o", "addr", "show"]));
        let link = format!("sdph{:06x}", rand::random::<u32>() & 0xff_ffff);
        // A /24 no address of this host is in yet: tests running at once
        // each get their own.
        let third = loop {
            let third = rand::random::<u8>();
            if !taken.contains(&format!("10.251.{third}.")) {
                break third;
            }
        };
        let made = output(Command::new("ip").args([
            "link",
            "add",
            &link,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{link}p"),
        ]));
        assert!(
            made.status.success(),
            "cannot add a veth link for test host addresses (run the tests as root): {}",
            String::from_utf8_lossy(&made.stderr).trim()
        );
        // From here on, drop removes the link.
        let mut hosts = HostAddresses {
            link,
            addrs: Vec::new(),
        };
        for end in [hosts.link.clone(), format!("{}p", hosts.link)] {
            run(Command::new("ip").args(["link", "set", &end, "up"]));
        }
        for host in 0..count {
            let addr = Ipv4Addr::new(10, 251, third, 2 + host);
            run(Command::new("ip").args([
                "addr",
                "add",
                &format!("{addr}/32"),
                "dev",
                &hosts.link,
            ]));
            hosts.addrs.push(addr);
        }
        hosts
    }

    /// The `i`th address, as agents take it in `advertise_host`.
    pub fn addr(&self, i: usize) -> String {
        self.addrs[i].to_string()
    }
}

impl Drop for HostAddresses {
    fn drop(&mut self) {
        let _ = output(Command::new("ip").args(["link", "del", &self.link]));
    }
}
