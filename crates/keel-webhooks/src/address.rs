//! Which addresses a tenant's webhook may reach.
//!
//! A webhook URL is chosen by a tenant and fetched by our servers, so without a check it is a way
//! into our own network (server-side request forgery): the metadata service at 169.254.169.254,
//! Postgres on loopback, neighbours on 10/8. Every address that is not ordinary public unicast is
//! refused unless the operator allowed its network in config (tests and local development allow
//! loopback). IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64) are judged by the
//! IPv4 address inside.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why an address is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressRefusal {
    Loopback,
    Private,
    LinkLocal,
    SharedAddressSpace,
    Multicast,
    Unspecified,
    Broadcast,
    Reserved,
    Documentation,
    UniqueLocal,
}

impl fmt::Display for AddressRefusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            AddressRefusal::Loopback => "a loopback address",
            AddressRefusal::Private => "a private-network address",
            AddressRefusal::LinkLocal => "a link-local address",
            AddressRefusal::SharedAddressSpace => "a carrier-grade NAT address (100.64.0.0/10)",
            AddressRefusal::Multicast => "a multicast address",
            AddressRefusal::Unspecified => "the unspecified address",
            AddressRefusal::Broadcast => "the broadcast address",
            AddressRefusal::Reserved => "a reserved address",
            AddressRefusal::Documentation => "a documentation address",
            AddressRefusal::UniqueLocal => "an IPv6 unique-local address",
        })
    }
}

/// Why `ip` may not be reached, or `None` for ordinary public unicast.
pub fn refusal(ip: IpAddr) -> Option<AddressRefusal> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, network: [u8; 4], prefix: u8) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(network)) & mask
}

fn refusal_v4(ip: Ipv4Addr) -> Option<AddressRefusal> {
    use AddressRefusal::*;
    let table: &[([u8; 4], u8, AddressRefusal)] = &[
        ([0, 0, 0, 0], 32, Unspecified),
        ([0, 0, 0, 0], 8, Reserved), // "this network"
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, SharedAddressSpace),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, Reserved), // IETF protocol assignments
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 88, 99, 0], 24, Reserved), // 6to4 relay anycast
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Reserved), // benchmarking
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        ([255, 255, 255, 255], 32, Broadcast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    table
        .iter()
        .find(|(network, prefix, _)| in_v4(ip, *network, *prefix))
        .map(|(_, _, refusal)| *refusal)
}

fn refusal_v6(ip: Ipv6Addr) -> Option<AddressRefusal> {
    use AddressRefusal::*;
    let segments = ip.segments();
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    if ip.is_loopback() {
        return Some(Loopback);
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (deprecated compatible) reach the IPv4 address.
    if let Some(v4) = ip.to_ipv4() {
        return refusal_v4(v4);
    }
    // 64:ff9b::/96 is NAT64: a translator connects to the embedded IPv4 address.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = segments[6].to_be_bytes();
        let [c, d] = segments[7].to_be_bytes();
        return refusal_v4(Ipv4Addr::new(a, b, c, d));
    }
    match segments[0] {
        0xfe80..=0xfebf => Some(LinkLocal),
        0xfc00..=0xfdff => Some(UniqueLocal),
        0xfec0..=0xfeff => Some(Reserved), // deprecated site-local
        0xff00..=0xffff => Some(Multicast),
        0x2001 if segments[1] == 0x0db8 => Some(Documentation),
        0x0100 if segments[1..4] == [0, 0, 0] => Some(Reserved), // discard-only
        _ => None,
    }
}

/// A network in CIDR notation, such as `127.0.0.0/8` or `::1/128`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            IpAddr::V4(_) => ip,
        };
        match (self.address, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => in_v4(ip, network.octets(), self.prefix),
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                u128::from(ip) & mask == u128::from(network) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Network, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a network like 127.0.0.0/8"))?;
        let max_prefix = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max_prefix,
            Some(prefix) => prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= max_prefix)
                .ok_or_else(|| format!("{text:?} has a prefix length outside 0..={max_prefix}"))?,
        };
        Ok(Network { address, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.address, self.prefix)
    }
}

/// The operator's exceptions to the refusals: networks a webhook may reach even though they are
/// not public (e.g. `127.0.0.0/8` for tests, a partner's VPN range in production).
#[derive(Clone, Debug, Default)]
pub struct AddressPolicy {
    pub allowed_networks: Vec<Network>,
}

impl AddressPolicy {
    /// Only public unicast addresses: the production default.
    pub fn public_only() -> AddressPolicy {
        AddressPolicy::default()
    }

    /// Public addresses plus loopback (tests and local development).
    pub fn allowing_loopback() -> AddressPolicy {
        AddressPolicy {
            allowed_networks: vec![
                Network {
                    address: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                    prefix: 8,
                },
                Network {
                    address: IpAddr::V6(Ipv6Addr::LOCALHOST),
                    prefix: 128,
                },
            ],
        }
    }

    /// Reads networks in CIDR notation, e.g. from a config list.
    pub fn from_networks<S: AsRef<str>>(networks: &[S]) -> Result<AddressPolicy, String> {
        Ok(AddressPolicy {
            allowed_networks: networks
                .iter()
                .map(|network| network.as_ref().parse())
                .collect::<Result<_, _>>()?,
        })
    }

    /// `Err` with the reason when `ip` may not be reached.
    pub fn check(&self, ip: IpAddr) -> Result<(), AddressRefusal> {
        match refusal(ip) {
            Some(refusal) if !self.allowed_networks.iter().any(|net| net.contains(ip)) => {
                Err(refusal)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_refused_with_their_reason() {
        use AddressRefusal::*;
        let cases = [
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("169.254.169.254", LinkLocal),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Reserved),
            ("255.255.255.255", Broadcast),
            ("240.0.0.1", Reserved),
            ("198.18.0.1", Reserved),
            ("192.0.2.10", Documentation),
            ("::1", Loopback),
            ("::", Unspecified),
            ("fe80::1", LinkLocal),
            ("fd00::1", UniqueLocal),
            ("ff02::1", Multicast),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:100.64.1.1", SharedAddressSpace),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("2001:db8::1", Documentation),
        ];
        for (text, expected) in cases {
            assert_eq!(refusal(ip(text)), Some(expected), "{text}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for text in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "::ffff:93.184.216.34",
        ] {
            assert_eq!(refusal(ip(text)), None, "{text}");
        }
    }

    #[test]
    fn the_allow_list_opens_exactly_its_networks() {
        let policy = AddressPolicy::from_networks(&["127.0.0.0/8", "10.20.0.0/16"]).unwrap();
        assert!(policy.check(ip("127.0.0.1")).is_ok());
        assert!(policy.check(ip("::ffff:127.0.0.1")).is_ok());
        assert!(policy.check(ip("10.20.3.4")).is_ok());
        assert_eq!(policy.check(ip("10.21.0.1")), Err(AddressRefusal::Private));
        assert_eq!(policy.check(ip("::1")), Err(AddressRefusal::Loopback));
        assert!(AddressPolicy::public_only().check(ip("127.0.0.1")).is_err());
        assert!(AddressPolicy::allowing_loopback().check(ip("::1")).is_ok());
        assert!(AddressPolicy::from_networks(&["10.0.0.0/33"]).is_err());
        assert!(AddressPolicy::from_networks(&["ten"]).is_err());
    }
}
