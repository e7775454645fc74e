//! IP networks in CIDR notation (`10.22.0.5/16`, `fd00::/64`), as CNI writes them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An address with a prefix length. The address may have host bits set
/// (`10.22.0.5/16` is an interface address in the `10.22.0.0/16` subnet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// Why a CIDR string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{input:?} is not in CIDR notation (address/prefix)")]
    MissingPrefix { input: String },
    #[error("{input:?} has an invalid address")]
    BadAddress { input: String },
    #[error("{input:?} has an invalid prefix length")]
    BadPrefix { input: String },
}

impl IpNet {
    /// `addr/prefix`; `None` when the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        (prefix <= max_prefix(addr)).then_some(IpNet { addr, prefix })
    }

    /// A single address (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Self {
        IpNet {
            addr,
            prefix: max_prefix(addr),
        }
    }

    /// The default route destination of `addr`'s family (`0.0.0.0/0` or `::/0`).
    pub fn default_for(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => IpNet {
                addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                prefix: 0,
            },
            IpAddr::V6(_) => IpNet {
                addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                prefix: 0,
            },
        }
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        from_u128(self.addr, to_u128(self.addr) & self.mask())
    }

    /// The subnet this address is in, with host bits cleared.
    pub fn trunc(&self) -> IpNet {
        IpNet {
            addr: self.network(),
            prefix: self.prefix,
        }
    }

    /// The last address of the subnet (the broadcast address for IPv4).
    pub fn last(&self) -> IpAddr {
        from_u128(
            self.addr,
            to_u128(self.addr) | (!self.mask() & family_max(self.addr)),
        )
    }

    /// Whether `ip` lies in this subnet (same family, same network bits).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4()
            && (to_u128(ip) & self.mask()) == (to_u128(self.addr) & self.mask())
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &IpNet) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }

    fn mask(&self) -> u128 {
        let bits = u32::from(max_prefix(self.addr));
        let prefix = u32::from(self.prefix);
        if prefix == 0 {
            0
        } else {
            (family_max(self.addr) >> (bits - prefix)) << (bits - prefix)
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for IpNet {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s.split_once('/').ok_or_else(|| CidrError::MissingPrefix {
            input: s.to_string(),
        })?;
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::BadAddress {
            input: s.to_string(),
        })?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max_prefix(addr))
            .ok_or_else(|| CidrError::BadPrefix {
                input: s.to_string(),
            })?;
        Ok(IpNet { addr, prefix })
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// 32 for IPv4, 128 for IPv6.
pub fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn family_max(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(_) => u128::from(u32::MAX),
        IpAddr::V6(_) => u128::MAX,
    }
}

/// The address as an integer (IPv4 in the low 32 bits).
pub fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// An integer as an address of the same family as `like`.
pub fn from_u128(like: IpAddr, value: u128) -> IpAddr {
    match like {
        // Truncation to the low 32 bits is intended for IPv4.
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(net("10.22.0.5/16").to_string(), "10.22.0.5/16");
        assert_eq!(net("fd00::1/64").to_string(), "fd00::1/64");
        assert!(matches!(
            "10.0.0.1".parse::<IpNet>(),
            Err(CidrError::MissingPrefix { .. })
        ));
        assert!(matches!(
            "10.0.0.1/33".parse::<IpNet>(),
            Err(CidrError::BadPrefix { .. })
        ));
        assert!(matches!(
            "10.0.0/8".parse::<IpNet>(),
            Err(CidrError::BadAddress { .. })
        ));
    }

    #[test]
    fn network_last_contains() {
        let n = net("10.22.3.5/16");
        assert_eq!(n.network().to_string(), "10.22.0.0");
        assert_eq!(n.last().to_string(), "10.22.255.255");
        assert!(n.contains("10.22.200.1".parse().unwrap()));
        assert!(!n.contains("10.23.0.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        let v6 = net("fd00:1::7/64");
        assert_eq!(v6.network().to_string(), "fd00:1::");
        assert_eq!(v6.last().to_string(), "fd00:1::ffff:ffff:ffff:ffff");
        assert_eq!(net("0.0.0.0/0").last().to_string(), "255.255.255.255");
        assert!(net("0.0.0.0/0").contains("1.2.3.4".parse().unwrap()));
        assert!(net("10.0.0.0/8").overlaps(&net("10.1.0.0/16")));
        assert!(!net("10.0.0.0/16").overlaps(&net("10.1.0.0/16")));
    }
}
