//! IP networks in CIDR notation (`10.22.0.5/16`, `fd00::/64`), as CNI writes them.
//!
//! The network type and its arithmetic (network, broadcast, containment) are
//! the `ipnet` crate's [`IpNet`]; an `IpNet` keeps host bits (`10.22.0.5/16`
//! is an interface address in the `10.22.0.0/16` subnet). This module adds
//! parse errors that say what is wrong, the serde glue that uses them, and
//! the integer view of an address that host-local allocates with.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Deserializer, Serializer};

pub use ipnet::IpNet;

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

/// Parses `address/prefix`, saying which half is wrong when it fails.
pub fn parse(s: &str) -> Result<IpNet, CidrError> {
    s.parse().map_err(|_| {
        let input = s.to_string();
        match s.split_once('/') {
            None => CidrError::MissingPrefix { input },
            Some((addr, _)) if addr.parse::<IpAddr>().is_err() => CidrError::BadAddress { input },
            Some(_) => CidrError::BadPrefix { input },
        }
    })
}

/// The default route destination of `addr`'s family (`0.0.0.0/0` or `::/0`).
pub fn default_for(addr: IpAddr) -> IpNet {
    let any = match addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    IpNet::new_assert(any, 0)
}

/// Whether the two subnets share any address (CIDR blocks overlap exactly
/// when one contains the other).
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

/// 32 for IPv4, 128 for IPv6.
pub fn max_prefix(addr: IpAddr) -> u8 {
    IpNet::from(addr).max_prefix_len()
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

/// `#[serde(with = "crate::cidr::text")]`: an `IpNet` as its CIDR string,
/// refused with a [`CidrError`] message.
pub mod text {
    use super::*;

    pub fn serialize<S: Serializer>(net: &IpNet, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(net)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<IpNet, D::Error> {
        let s = String::deserialize(deserializer)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(default, deserialize_with = "crate::cidr::text_opt")]` for an
/// optional CIDR string.
pub fn text_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<IpNet>, D::Error> {
    Option::<String>::deserialize(deserializer)?
        .map(|s| parse(&s).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(net("10.22.0.5/16").to_string(), "10.22.0.5/16");
        assert_eq!(net("fd00::1/64").to_string(), "fd00::1/64");
        assert!(matches!(
            parse("10.0.0.1"),
            Err(CidrError::MissingPrefix { .. })
        ));
        assert!(matches!(
            parse("10.0.0.1/33"),
            Err(CidrError::BadPrefix { .. })
        ));
        assert!(matches!(
            parse("10.0.0/8"),
            Err(CidrError::BadAddress { .. })
        ));
    }

    #[test]
    fn serde_keeps_the_reason() {
        #[derive(Debug, Deserialize)]
        struct T {
            #[serde(with = "text")]
            a: IpNet,
            #[serde(default, deserialize_with = "text_opt")]
            b: Option<IpNet>,
        }
        let t: T = serde_json::from_str(r#"{"a":"10.0.0.5/8"}"#).unwrap();
        assert_eq!((t.a, t.b), (net("10.0.0.5/8"), None));
        let v = text::serialize(&t.a, serde_json::value::Serializer).unwrap();
        assert_eq!(v, serde_json::json!("10.0.0.5/8"));
        let e = serde_json::from_str::<T>(r#"{"a":"10.0.0.5/8","b":"fd00::/129"}"#).unwrap_err();
        assert!(e.to_string().contains("invalid prefix length"), "{e}");
    }

    #[test]
    fn network_last_contains() {
        let n = net("10.22.3.5/16");
        assert_eq!(n.network().to_string(), "10.22.0.0");
        assert_eq!(n.broadcast().to_string(), "10.22.255.255");
        assert!(n.contains(&"10.22.200.1".parse::<IpAddr>().unwrap()));
        assert!(!n.contains(&"10.23.0.1".parse::<IpAddr>().unwrap()));
        assert!(!n.contains(&"::1".parse::<IpAddr>().unwrap()));
        let v6 = net("fd00:1::7/64");
        assert_eq!(v6.network().to_string(), "fd00:1::");
        assert_eq!(v6.broadcast().to_string(), "fd00:1::ffff:ffff:ffff:ffff");
        assert_eq!(net("0.0.0.0/0").broadcast().to_string(), "255.255.255.255");
        assert!(net("0.0.0.0/0").contains(&"1.2.3.4".parse::<IpAddr>().unwrap()));
        assert!(overlaps(&net("10.0.0.0/8"), &net("10.1.0.0/16")));
        assert!(overlaps(&net("10.1.0.0/16"), &net("10.0.0.0/8")));
        assert!(!overlaps(&net("10.0.0.0/16"), &net("10.1.0.0/16")));
        assert!(!overlaps(&net("0.0.0.0/0"), &net("::/0")));
        assert_eq!(default_for("fd00::1".parse().unwrap()), net("::/0"));
        assert_eq!(max_prefix("10.0.0.1".parse().unwrap()), 32);
    }
}
