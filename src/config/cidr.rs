//! Address ranges (`"10.0.0.0/8"`, `"::1/128"`, or a bare address) for
//! `trusted_proxies`, on top of the `ipnet` crate.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

/// An IP network: an address and a prefix length.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Cidr(IpNet);

impl Cidr {
    /// Whether `addr` lies inside this network. IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`) count as their IPv4 address.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        self.0.contains(&addr)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?} is not a network such as \"10.0.0.0/8\" or \"::1\"");
        let trimmed = text.trim();
        let network = if trimmed.contains('/') {
            trimmed.parse::<IpNet>().map_err(|_| bad())?
        } else {
            IpNet::from(trimmed.parse::<IpAddr>().map_err(|_| bad())?)
        };
        Ok(Cidr(network))
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn membership() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")));
        let single: Cidr = "::1".parse().unwrap();
        assert!(single.contains(ip("::1")));
        assert!(!single.contains(ip("::2")));
        let odd: Cidr = "192.168.0.0/23".parse().unwrap();
        assert!(odd.contains(ip("192.168.1.255")));
        assert!(!odd.contains(ip("192.168.2.0")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        assert!(!all.contains(ip("2001:db8::1")));
        // Host bits after the prefix are ignored, as in every CIDR list.
        let host_bits: Cidr = "10.1.2.3/8".parse().unwrap();
        assert!(host_bits.contains(ip("10.200.0.1")));
    }

    #[test]
    fn refuses_nonsense() {
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("example.org".parse::<Cidr>().is_err());
        assert!("::/129".parse::<Cidr>().is_err());
        assert!("10.0.0.0/".parse::<Cidr>().is_err());
    }
}
