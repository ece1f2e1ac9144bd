//! The client address of a request, for the login throttle: the TCP peer,
//! unless the peer is a proxy of `http.trusted_proxies`; then the
//! right-most `X-Forwarded-For` entry that is not one (each trusted proxy
//! appends the address it saw, so everything left of that entry could be
//! made up by the client).

use std::net::IpAddr;

use axum::http::HeaderMap;
use serde::Deserialize;

/// An address block, `10.0.0.0/8` or `::1/128` (a bare address is `/32`
/// or `/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = || format!("'{text}' is not an address block (e.g. 127.0.0.1/32, 10.0.0.0/8)");
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { network, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, address: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// Who sent the request: `peer`, or behind trusted proxies the right-most
/// forwarded address none of them holds. Unparsable entries end the walk
/// (the address before them is as far as the chain can be believed).
pub fn client(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |address: IpAddr| trusted.iter().any(|cidr| cidr.contains(address));
    if !is_trusted(peer) {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in forwarded.iter().rev() {
        let Ok(address) = entry.parse::<IpAddr>() else {
            break;
        };
        client = address;
        if !is_trusted(address) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn cidr(text: &str) -> Cidr {
        Cidr::try_from(text.to_owned()).expect("cidr")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                "x-forwarded-for",
                HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    #[test]
    fn blocks_hold_what_their_prefix_says() {
        assert!(cidr("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(!cidr("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(cidr("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!cidr("127.0.0.1/32").contains(ip("127.0.0.2")));
        assert!(cidr("127.0.0.1/32").contains(ip("::ffff:127.0.0.1")));
        assert!(cidr("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(cidr("fd00::/8").contains(ip("fd12::1")));
        assert!(!cidr("::1/128").contains(ip("127.0.0.1")));
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "x", "10.0.0.0/-1", ""] {
            assert!(Cidr::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_peer() {
        let trusted = [cidr("127.0.0.1/32"), cidr("10.0.0.0/8")];
        let headers = forwarded(&["6.6.6.6, 1.2.3.4"]);
        // Straight from the client: what it forwards is ignored.
        assert_eq!(client(ip("5.5.5.5"), &headers, &trusted), ip("5.5.5.5"));
        // Behind nginx: the address nginx appended.
        assert_eq!(client(ip("127.0.0.1"), &headers, &trusted), ip("1.2.3.4"));
        // Two trusted hops: the right-most untrusted entry.
        let headers = forwarded(&["6.6.6.6, 1.2.3.4", "10.1.1.1"]);
        assert_eq!(client(ip("127.0.0.1"), &headers, &trusted), ip("1.2.3.4"));
        // Garbage stops the walk at the last believable address.
        let headers = forwarded(&["1.2.3.4, junk, 10.1.1.1"]);
        assert_eq!(client(ip("127.0.0.1"), &headers, &trusted), ip("10.1.1.1"));
        // No header: the proxy itself.
        assert_eq!(
            client(ip("127.0.0.1"), &HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
        // Nothing trusted: always the peer.
        let headers = forwarded(&["1.2.3.4"]);
        assert_eq!(client(ip("127.0.0.1"), &headers, &[]), ip("127.0.0.1"));
    }
}
