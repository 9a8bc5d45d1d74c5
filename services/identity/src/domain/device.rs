//! Devices a user signs in from, to recognise a sign-in from a new one.
//!
//! No device id or cookie exists on this platform, so a device is what the request shows: its
//! User-Agent on its client network. The network, not the address, so that a phone moving
//! between addresses of its carrier's /24 (or a home's IPv6 /48) stays the same device; a new
//! browser or a new network is a new device. Only a hash of the two is stored.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

/// The network an address belongs to, for telling devices apart: IPv4 /24, IPv6 /48 (an
/// IPv4-mapped IPv6 address counts as IPv4). Empty when the address is unknown or unparsable.
pub fn network_of(client_ip: &str) -> String {
    let Ok(ip) = client_ip.parse::<IpAddr>() else {
        return String::new();
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// What is stored for a device: SHA-256 of its User-Agent and network.
pub fn fingerprint(user_agent: &str, client_ip: &str) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(user_agent.as_bytes());
    hasher.update([0u8]);
    hasher.update(network_of(client_ip).as_bytes());
    hasher.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_one_network_are_one_device_and_other_networks_or_agents_are_not() {
        assert_eq!(network_of("203.0.113.7"), "203.0.113.0/24");
        assert_eq!(network_of("::ffff:203.0.113.7"), "203.0.113.0/24");
        assert_eq!(network_of("2001:db8:1:2::5"), "2001:db8:1::/48");
        assert_eq!(network_of(""), "");
        assert_eq!(network_of("not an address"), "");
        let phone = fingerprint("Phone/1.0", "203.0.113.7");
        assert_eq!(phone, fingerprint("Phone/1.0", "203.0.113.200"));
        assert_ne!(phone, fingerprint("Phone/1.0", "198.51.100.7"));
        assert_ne!(phone, fingerprint("Laptop/1.0", "203.0.113.7"));
    }
}
