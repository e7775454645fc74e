//! A small synchronous rtnetlink client: links, addresses and routes.
//!
//! A socket belongs to the network namespace of the thread that opened it, so
//! open one per namespace (see [`crate::netns`]). Messages are the types of
//! `netlink-packet-route`; this module only sends a request and collects the
//! answer (objects, ACK or error).

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE,
    NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol,
    RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily as SockFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::cidr::IpNet;
use crate::error::{code, CniError};

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a netlink socket")]
    Socket(#[source] io::Error),
    #[error("netlink: cannot {op}")]
    Request {
        op: String,
        #[source]
        source: io::Error,
    },
    #[error("netlink: cannot decode the reply to {op}: {detail}")]
    Decode { op: String, detail: String },
}

impl NetlinkError {
    /// The kernel's errno for a refused request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Request { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc_errno::EEXIST)
    }

    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(libc_errno::ENODEV) | Some(libc_errno::ENOENT) | Some(libc_errno::ESRCH)
        )
    }
}

impl From<NetlinkError> for CniError {
    fn from(e: NetlinkError) -> Self {
        CniError::from_error(code::KERNEL, &e)
    }
}

/// The errno values we look at (stable Linux numbers).
mod libc_errno {
    pub const ENOENT: i32 = 2;
    pub const ESRCH: i32 = 3;
    pub const EEXIST: i32 = 17;
    pub const ENODEV: i32 = 19;
    pub const EADDRNOTAVAIL: i32 = 99;
}

/// What we need to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `aa:bb:cc:dd:ee:ff`, empty when the link has no hardware address.
    pub mac: String,
    pub mtu: u32,
    /// `IFLA_INFO_KIND` (`bridge`, `veth`, ...).
    pub kind: Option<String>,
    /// The bridge (or other controller) this link is attached to.
    pub master: Option<u32>,
    pub up: bool,
}

/// A route as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub oif: Option<u32>,
    pub table: u32,
}

/// A route to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoute {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub oif: u32,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub priority: Option<u32>,
    pub table: Option<u32>,
}

/// An rtnetlink socket in the namespace of the thread that opened it.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

const RT_TABLE_MAIN: u32 = 254;

impl Netlink {
    pub fn open() -> Result<Self, NetlinkError> {
        let fd = rustix::net::socket_with(
            SockFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| NetlinkError::Socket(e.into()))?;
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 0))
            .map_err(|e| NetlinkError::Socket(e.into()))?;
        Ok(Netlink {
            fd,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Send one request and collect the messages answering it. Non-dump requests
    /// ask for an ACK; a dump ends with `NLMSG_DONE`.
    fn request(
        &mut self,
        op: &dyn Fn() -> String,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags | if dump { 0 } else { NLM_F_ACK };
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        rustix::net::sendto(
            &self.fd,
            &out,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )
        .map_err(|e| NetlinkError::Request {
            op: op(),
            source: e.into(),
        })?;

        let mut answers = Vec::new();
        loop {
            let (_, len) = rustix::net::recv(&self.fd, &mut self.buf[..], RecvFlags::empty())
                .map_err(|e| NetlinkError::Request {
                    op: op(),
                    source: e.into(),
                })?;
            let len = len.min(self.buf.len());
            let mut offset = 0;
            while offset < len {
                let chunk = &self.buf[offset..len];
                let msg_len = NetlinkBuffer::new_checked(chunk)
                    .map(|b| b.length() as usize)
                    .map_err(|e| NetlinkError::Decode {
                        op: op(),
                        detail: e.to_string(),
                    })?;
                if msg_len == 0 || msg_len > chunk.len() {
                    return Err(NetlinkError::Decode {
                        op: op(),
                        detail: format!("bad message length {msg_len}"),
                    });
                }
                let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&chunk[..msg_len])
                    .map_err(|e| NetlinkError::Decode {
                        op: op(),
                        detail: e.to_string(),
                    })?;
                offset += (msg_len + 3) & !3;
                if parsed.header.sequence_number != seq {
                    continue;
                }
                match parsed.payload {
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Err(NetlinkError::Request {
                            op: op(),
                            source: e.to_io(),
                        })
                    }
                    NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    _ => {}
                }
            }
        }
    }

    // ---- links ----

    /// The link called `name`, or `None`.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_link(msg, &|| format!("look up link {name}"))
    }

    /// The link with index `index`, or `None`.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.get_link(msg, &|| format!("look up link #{index}"))
    }

    fn get_link(
        &mut self,
        msg: LinkMessage,
        op: &dyn Fn() -> String,
    ) -> Result<Option<Link>, NetlinkError> {
        match self.request(op, RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(answers) => Ok(answers.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from(&l)),
                _ => None,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link in the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>, NetlinkError> {
        let answers = self.request(
            &|| "list links".to_string(),
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from(&l)),
                _ => None,
            })
            .collect())
    }

    /// Create a bridge; fails with EEXIST if a link of that name exists.
    pub fn create_bridge(&mut self, name: &str, mtu: Option<u32>) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.request(
            &|| format!("create bridge {name}"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Create a veth pair: `name` here, `peer` inside the namespace `peer_netns`.
    pub fn create_veth(
        &mut self,
        name: &str,
        peer: &str,
        peer_netns: BorrowedFd<'_>,
        mtu: Option<u32>,
    ) -> Result<(), NetlinkError> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        peer_msg
            .attributes
            .push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
            peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.request(
            &|| format!("create veth pair {name}/{peer}"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    fn set_flag(&mut self, index: u32, flag: LinkFlags, on: bool) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.change_mask = flag;
        if on {
            msg.header.flags = flag;
        }
        self.request(
            &|| format!("set flag {flag} of link #{index} to {on}"),
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
        .map(drop)
    }

    pub fn set_up(&mut self, index: u32) -> Result<(), NetlinkError> {
        self.set_flag(index, LinkFlags::Up, true)
    }

    pub fn set_down(&mut self, index: u32) -> Result<(), NetlinkError> {
        self.set_flag(index, LinkFlags::Up, false)
    }

    pub fn set_promisc(&mut self, index: u32, on: bool) -> Result<(), NetlinkError> {
        self.set_flag(index, LinkFlags::Promisc, on)
    }

    /// Attach link `index` to the bridge `master`.
    pub fn set_master(&mut self, index: u32, master: u32) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::Controller(master));
        self.request(
            &|| format!("attach link #{index} to bridge #{master}"),
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
        .map(drop)
    }

    /// Set hairpin mode on a bridge port (traffic may leave the port it came in).
    pub fn set_hairpin(&mut self, index: u32, on: bool) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                on,
            )])),
        ]));
        self.request(
            &|| format!("set hairpin mode of bridge port #{index}"),
            RouteNetlinkMessage::NewLink(msg),
            0,
        )
        .map(drop)
    }

    pub fn delete_link(&mut self, index: u32) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.request(
            &|| format!("delete link #{index}"),
            RouteNetlinkMessage::DelLink(msg),
            0,
        )
        .map(drop)
    }

    // ---- addresses ----

    /// The addresses of link `index` (all links when `None`), with their link.
    pub fn addresses(&mut self, index: Option<u32>) -> Result<Vec<(u32, IpNet)>, NetlinkError> {
        let answers = self.request(
            &|| "list addresses".to_string(),
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        let mut out = Vec::new();
        for m in answers {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            if index.is_some_and(|i| i != a.header.index) {
                continue;
            }
            let mut address = None;
            let mut local = None;
            for attr in &a.attributes {
                match attr {
                    AddressAttribute::Address(ip) => address = Some(*ip),
                    AddressAttribute::Local(ip) => local = Some(*ip),
                    _ => {}
                }
            }
            // For IPv4, IFA_LOCAL is the interface's own address (IFA_ADDRESS is
            // the peer on point-to-point links).
            if let Some(ip) = local.or(address) {
                if let Ok(net) = IpNet::new(ip, a.header.prefix_len) {
                    out.push((a.header.index, net));
                }
            }
        }
        Ok(out)
    }

    /// Add `net` (address with its subnet prefix) to link `index`. IPv6 addresses
    /// skip duplicate address detection, so they are usable at once.
    pub fn add_address(&mut self, index: u32, net: IpNet) -> Result<(), NetlinkError> {
        let msg = address_message(index, net);
        self.request(
            &|| format!("add address {net} to link #{index}"),
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    pub fn delete_address(&mut self, index: u32, net: IpNet) -> Result<(), NetlinkError> {
        let msg = address_message(index, net);
        match self.request(
            &|| format!("delete address {net} from link #{index}"),
            RouteNetlinkMessage::DelAddress(msg),
            0,
        ) {
            Err(e) if e.errno() == Some(libc_errno::EADDRNOTAVAIL) => Ok(()),
            other => other.map(drop),
        }
    }

    // ---- routes ----

    /// Routes of one family in every table.
    pub fn routes(&mut self, ipv4: bool) -> Result<Vec<RouteEntry>, NetlinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = if ipv4 {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let answers = self.request(
            &|| "list routes".to_string(),
            RouteNetlinkMessage::GetRoute(msg),
            NLM_F_DUMP,
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => route_entry(&r),
                _ => None,
            })
            .collect())
    }

    /// The interface the kernel would send a packet to `dst` through.
    pub fn route_get(&mut self, dst: IpAddr) -> Result<Option<u32>, NetlinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family_of(dst);
        msg.header.destination_prefix_length = crate::cidr::max_prefix(dst);
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
        let answers = self.request(
            &|| format!("look up the route to {dst}"),
            RouteNetlinkMessage::GetRoute(msg),
            0,
        )?;
        Ok(answers.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r) => r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            }),
            _ => None,
        }))
    }

    /// Add a route; EEXIST is returned as an error for the caller to judge.
    pub fn add_route(&mut self, route: &NewRoute) -> Result<(), NetlinkError> {
        let mut msg = RouteMessage::default();
        let dst = route.dst.trunc();
        msg.header.address_family = family_of(dst.addr());
        msg.header.destination_prefix_length = dst.prefix_len();
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.kind = RouteType::Unicast;
        msg.header.scope = if route.gw.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        let table = route.table.unwrap_or(RT_TABLE_MAIN);
        msg.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
        if table > 255 {
            msg.attributes.push(RouteAttribute::Table(table));
        }
        if dst.prefix_len() > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(dst.addr())));
        }
        if let Some(gw) = route.gw {
            msg.attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        }
        msg.attributes.push(RouteAttribute::Oif(route.oif));
        if let Some(p) = route.priority {
            msg.attributes.push(RouteAttribute::Priority(p));
        }
        let mut metrics = Vec::new();
        if let Some(mtu) = route.mtu {
            metrics.push(RouteMetric::Mtu(mtu));
        }
        if let Some(advmss) = route.advmss {
            metrics.push(RouteMetric::Advmss(advmss));
        }
        if !metrics.is_empty() {
            msg.attributes.push(RouteAttribute::Metrics(metrics));
        }
        let gw = route.gw;
        self.request(
            &|| match gw {
                Some(gw) => format!("add route {dst} via {gw}"),
                None => format!("add route {dst}"),
            },
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }
}

fn family_of(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn address_message(index: u32, net: IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family_of(net.addr());
    msg.header.prefix_len = net.prefix_len();
    msg.header.index = index;
    msg.header.scope = if net.addr().is_loopback() {
        AddressScope::Host
    } else {
        AddressScope::Universe
    };
    match net.addr() {
        IpAddr::V4(_) => {
            msg.attributes.push(AddressAttribute::Local(net.addr()));
            msg.attributes.push(AddressAttribute::Address(net.addr()));
        }
        IpAddr::V6(_) => {
            msg.header.flags = AddressHeaderFlags::Nodad;
            msg.attributes.push(AddressAttribute::Address(net.addr()));
        }
    }
    msg
}

fn link_from(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        mac: String::new(),
        mtu: 0,
        kind: None,
        master: None,
        up: msg.header.flags.contains(LinkFlags::Up),
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(a) => link.mac = format_mac(a),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Controller(m) => link.master = Some(*m),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn route_entry(msg: &RouteMessage) -> Option<RouteEntry> {
    let mut dst = None;
    let mut gw = None;
    let mut oif = None;
    let mut table = u32::from(msg.header.table);
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dst = route_ip(a),
            RouteAttribute::Gateway(a) => gw = route_ip(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    let family_zero = match msg.header.address_family {
        AddressFamily::Inet => IpAddr::from([0u8; 4]),
        AddressFamily::Inet6 => IpAddr::from([0u8; 16]),
        _ => return None,
    };
    let dst = IpNet::new(
        dst.unwrap_or(family_zero),
        msg.header.destination_prefix_length,
    )
    .ok()?;
    Some(RouteEntry {
        dst,
        gw,
        oif,
        table,
    })
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_format() {
        assert_eq!(format_mac(&[0x0a, 0, 0xff, 1, 2, 3]), "0a:00:ff:01:02:03");
    }

    /// Runs in a private network namespace (needs root).
    #[test]
    fn bridge_veth_addresses_routes_in_private_netns() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIPPED: needs root");
            return;
        }
        e2e::netns::in_new_netns(|| {
            let mut nl = Netlink::open().unwrap();
            nl.create_bridge("tbr0", Some(1400)).unwrap();
            assert!(nl.create_bridge("tbr0", None).unwrap_err().is_exists());
            let br = nl.link_by_name("tbr0").unwrap().unwrap();
            assert_eq!(br.kind.as_deref(), Some("bridge"));
            assert_eq!(br.mtu, 1400);
            nl.set_up(br.index).unwrap();
            assert!(nl.link_by_name("tbr0").unwrap().unwrap().up);
            assert!(nl.link_by_name("nope0").unwrap().is_none());

            let net: IpNet = "10.99.0.1/24".parse().unwrap();
            nl.add_address(br.index, net).unwrap();
            assert!(nl.add_address(br.index, net).unwrap_err().is_exists());
            let v6: IpNet = "fd99::1/64".parse().unwrap();
            nl.add_address(br.index, v6).unwrap();
            let addrs = nl.addresses(Some(br.index)).unwrap();
            assert!(addrs.contains(&(br.index, net)), "{addrs:?}");
            assert!(addrs.contains(&(br.index, v6)), "{addrs:?}");

            nl.add_route(&NewRoute {
                dst: "10.98.0.0/16".parse().unwrap(),
                gw: Some("10.99.0.7".parse().unwrap()),
                oif: br.index,
                mtu: Some(1300),
                advmss: None,
                priority: None,
                table: None,
            })
            .unwrap();
            let routes = nl.routes(true).unwrap();
            assert!(routes.iter().any(|r| r.dst.to_string() == "10.98.0.0/16"
                && r.gw == Some("10.99.0.7".parse().unwrap())));
            assert_eq!(
                nl.route_get("10.98.3.4".parse().unwrap()).unwrap(),
                Some(br.index)
            );
            nl.delete_address(br.index, net).unwrap();
            nl.delete_address(br.index, net).unwrap();
            nl.delete_link(br.index).unwrap();
            assert!(nl.link_by_name("tbr0").unwrap().is_none());
        });
    }
}
