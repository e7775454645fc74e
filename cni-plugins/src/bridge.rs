//! The `bridge` plugin: a veth pair per container, the host end attached to a
//! Linux bridge, the container end named `CNI_IFNAME` with addresses from the
//! IPAM plugin.
//!
//! ADD undoes what it did when a later step fails (an [`Undo`] guard, which also
//! runs if the handler panics). DEL is idempotent: it releases the addresses
//! through IPAM first, and treats a missing namespace or interface as deleted.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::IpAddr;
use std::os::fd::AsFd;

use serde::Deserialize;
use serde_json::Value;

use crate::cidr::IpNet;
use crate::error::{code, CniError};
use crate::firewall;
use crate::invoke;
use crate::netlink::{Link, Netlink, NewRoute};
use crate::netns::NetNs;
use crate::skel::{CmdArgs, Command, Plugin};
use crate::sysctl;
use crate::types::{CniResult, Interface, IpConfig, NetConf, Route, CURRENT_VERSION};

/// The bridge used when the configuration names none.
pub const DEFAULT_BRIDGE: &str = "cni0";

/// The handlers for the `bridge` binary.
pub const PLUGIN: Plugin<NetConf> = Plugin {
    add: cmd_add,
    check: cmd_check,
    del: cmd_del,
    about: "bridge plugin (veth pairs on a Linux bridge)",
};

/// The bridge plugin's own configuration keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeConfig {
    #[serde(default)]
    pub bridge: Option<String>,
    /// Give the bridge the IPAM gateway address (and enable forwarding).
    #[serde(default)]
    pub is_gateway: bool,
    /// Also route the container's default traffic through the bridge. Implies
    /// `isGateway`.
    #[serde(default)]
    pub is_default_gateway: bool,
    /// Replace another address of the gateway's subnet on the bridge.
    #[serde(default)]
    pub force_address: bool,
    /// Masquerade the container's traffic leaving its subnet.
    #[serde(default)]
    pub ip_masq: bool,
    /// Only `nftables` is implemented (see [`crate::firewall`]).
    #[serde(default)]
    pub ip_masq_backend: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Let traffic leave the bridge port it came in on (a container reaching
    /// itself through a host port).
    #[serde(default)]
    pub hairpin_mode: bool,
    #[serde(default)]
    pub promisc_mode: bool,
}

impl BridgeConfig {
    pub fn from_net_conf(conf: &NetConf) -> Result<Self, CniError> {
        let mut bc: BridgeConfig = serde_json::from_value(Value::Object(conf.extra.clone()))
            .map_err(|e| {
                CniError::config("bridge: invalid configuration").with_details(e.to_string())
            })?;
        if bc.is_default_gateway {
            bc.is_gateway = true;
        }
        if let Some(backend) = &bc.ip_masq_backend {
            if backend != "nftables" {
                return Err(CniError::new(
                    code::UNSUPPORTED_FIELD,
                    format!("bridge: ipMasqBackend {backend:?} is not supported (use nftables)"),
                ));
            }
        }
        for key in ["vlan", "vlanTrunk"] {
            if conf.extra.get(key).is_some_and(|v| !v.is_null() && v != 0) {
                return Err(CniError::new(
                    code::UNSUPPORTED_FIELD,
                    format!("bridge: {key} is not supported"),
                ));
            }
        }
        if conf.ipam.is_none() {
            return Err(CniError::config(
                "bridge: the ipam section is required (use {} for a layer-2-only network)",
            ));
        }
        let name = bc.bridge.get_or_insert_with(|| DEFAULT_BRIDGE.to_string());
        crate::skel::validate_ifname(name)
            .map_err(|_| CniError::config(format!("bridge: invalid bridge name {name:?}")))?;
        Ok(bc)
    }

    pub fn bridge_name(&self) -> &str {
        self.bridge.as_deref().unwrap_or(DEFAULT_BRIDGE)
    }
}

fn ipam_type(conf: &NetConf) -> Option<&str> {
    conf.ipam
        .as_ref()
        .map(|i| i.plugin_type.as_str())
        .filter(|t| !t.is_empty())
}

fn masq_chain(conf: &NetConf, args: &CmdArgs) -> String {
    firewall::chain_name("masq", &conf.name, &args.container_id, &args.ifname)
}

// ------------------------------------------------------------------ undo

type UndoStep = Box<dyn FnOnce() -> Result<(), CniError>>;

/// Steps that reverse a partial ADD, run newest first.
pub struct Undo {
    steps: Vec<(String, UndoStep)>,
}

impl Undo {
    pub fn new() -> Self {
        Undo { steps: Vec::new() }
    }

    pub fn push(
        &mut self,
        what: impl Into<String>,
        step: impl FnOnce() -> Result<(), CniError> + 'static,
    ) {
        self.steps.push((what.into(), Box::new(step)));
    }

    /// Forget the steps: the ADD succeeded.
    pub fn disarm(mut self) {
        self.steps.clear();
    }

    /// Run every step; the failures, described.
    pub fn run(&mut self) -> Vec<String> {
        let mut failures = Vec::new();
        while let Some((what, step)) = self.steps.pop() {
            if let Err(e) = step() {
                failures.push(format!("cleanup ({what}) also failed: {e}"));
            }
        }
        failures
    }
}

impl Default for Undo {
    fn default() -> Self {
        Undo::new()
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        let _ = self.run();
    }
}

// ------------------------------------------------------------------ ADD

pub fn cmd_add(args: &CmdArgs, conf: &NetConf) -> Result<CniResult, CniError> {
    let bc = BridgeConfig::from_net_conf(conf)?;
    let netns = NetNs::open(args.netns()?)?;
    let mut undo = Undo::new();
    match add(args, conf, &bc, &netns, &mut undo) {
        Ok(result) => {
            undo.disarm();
            Ok(result)
        }
        Err(e) => Err(undo.run().into_iter().fold(e, CniError::also)),
    }
}

fn add(
    args: &CmdArgs,
    conf: &NetConf,
    bc: &BridgeConfig,
    netns: &NetNs,
    undo: &mut Undo,
) -> Result<CniResult, CniError> {
    let mut nl = Netlink::open()?;
    // IPAM runs in its own process while the links are made.
    let pending = match ipam_type(conf) {
        Some(ipam) => {
            let pending = invoke::spawn_delegate(ipam, Command::Add, args, &args.stdin_data)?;
            let (ipam, args, stdin) = (ipam.to_string(), args.clone(), args.stdin_data.clone());
            undo.push(format!("release addresses through {ipam}"), move || {
                invoke::delegate(&ipam, Command::Del, &args, &stdin)
            });
            Some(pending)
        }
        None => None,
    };
    let links = setup_links(&mut nl, args, bc, netns, undo);
    // Always wait for IPAM before returning, so a rollback DEL never races it.
    let ipam_result = match pending {
        Some(pending) => pending.wait_result(),
        None => Ok(CniResult::default()),
    };
    let (bridge, host, host_name) = links?;
    let ipam_result = ipam_result?;
    let ips: Vec<IpConfig> = ipam_result.ips.clone();
    let gateways = family_gateways(&ips);
    let mut routes = ipam_result.routes.clone();
    if bc.is_default_gateway {
        add_default_routes(&mut routes, &ips, &gateways)?;
    }

    // The container side.
    let ifname = args.ifname.clone();
    let (ips_in, routes_in) = (ips.clone(), routes.clone());
    let container =
        netns.run(move || configure_container(&ifname, &ips_in, &routes_in, &gateways))??;

    // The host side: gateway address on the bridge, forwarding, masquerading.
    if bc.is_gateway {
        for ip in &ips {
            if let Some(gw) = ip.gateway {
                let gw_net = IpNet::new(gw, ip.address.prefix_len()).map_err(|_| {
                    CniError::config(format!(
                        "bridge: gateway {gw} does not fit the prefix of {}",
                        ip.address
                    ))
                })?;
                ensure_bridge_address(&mut nl, &bridge, gw_net, bc.force_address)?;
                if gw.is_ipv4() {
                    sysctl::ensure(&["net", "ipv4", "ip_forward"], "1")?;
                } else {
                    sysctl::ensure(&["net", "ipv6", "conf", "all", "forwarding"], "1")?;
                }
            }
        }
    }
    if bc.ip_masq && !ips.is_empty() {
        let chain = masq_chain(conf, args);
        let nets: Vec<IpNet> = ips.iter().map(|i| i.address).collect();
        firewall::setup_masquerade(&chain, &nets)?;
        undo.push(format!("remove masquerading {chain}"), move || {
            firewall::teardown_masquerade(&chain).map_err(CniError::from)
        });
    }

    // Read MACs last: a bridge takes the lowest MAC of its ports.
    let bridge_now = nl.link_by_name(&bridge.name)?.unwrap_or(bridge);
    let host_now = nl.link_by_name(&host_name)?.unwrap_or(host);
    let mtu = |l: &Link| bc.mtu.map(|_| l.mtu);
    let interfaces = vec![
        Interface {
            name: bridge_now.name.clone(),
            mac: bridge_now.mac.clone(),
            mtu: mtu(&bridge_now),
            ..Interface::default()
        },
        Interface {
            name: host_now.name.clone(),
            mac: host_now.mac.clone(),
            mtu: mtu(&host_now),
            ..Interface::default()
        },
        Interface {
            name: container.name.clone(),
            mac: container.mac.clone(),
            mtu: mtu(&container),
            sandbox: netns.path().display().to_string(),
            ..Interface::default()
        },
    ];
    let dns = match &conf.dns {
        Some(d) if !d.is_empty() => d.clone(),
        _ => ipam_result.dns.clone(),
    };
    Ok(CniResult {
        cni_version: CURRENT_VERSION.to_string(),
        interfaces,
        ips: ips
            .into_iter()
            .map(|ip| IpConfig {
                interface: Some(2),
                ..ip
            })
            .collect(),
        routes,
        dns,
    })
}

/// The bridge, and the veth pair with its host end attached and up. Returns the
/// bridge, the host end and its name.
fn setup_links(
    nl: &mut Netlink,
    args: &CmdArgs,
    bc: &BridgeConfig,
    netns: &NetNs,
    undo: &mut Undo,
) -> Result<(Link, Link, String), CniError> {
    let bridge = ensure_bridge(nl, bc)?;
    // The veth pair, created with its container end already in the namespace.
    let host_name = create_veth(nl, args, bc, netns)?;
    {
        let host_name = host_name.clone();
        undo.push(format!("delete {host_name}"), move || {
            let mut nl = Netlink::open()?;
            if let Some(link) = nl.link_by_name(&host_name)? {
                nl.delete_link(link.index)?;
            }
            Ok(())
        });
    }
    let host = nl
        .link_by_name(&host_name)?
        .ok_or_else(|| CniError::new(code::KERNEL, format!("bridge: {host_name} vanished")))?;
    nl.set_master(host.index, bridge.index)?;
    if bc.hairpin_mode {
        nl.set_hairpin(host.index, true)?;
    }
    nl.set_up(host.index)?;
    Ok((bridge, host, host_name))
}

/// Find or create the bridge, and bring it up.
fn ensure_bridge(nl: &mut Netlink, bc: &BridgeConfig) -> Result<Link, CniError> {
    let name = bc.bridge_name();
    let link = match nl.link_by_name(name)? {
        Some(link) => link,
        None => {
            match nl.create_bridge(name, bc.mtu) {
                Ok(()) => {}
                // Another ADD created it meanwhile.
                Err(e) if e.is_exists() => {}
                Err(e) => return Err(e.into()),
            }
            nl.link_by_name(name)?.ok_or_else(|| {
                CniError::new(
                    code::KERNEL,
                    format!("bridge: {name} vanished after creation"),
                )
            })?
        }
    };
    if link.kind.as_deref() != Some("bridge") {
        return Err(CniError::config(format!(
            "bridge: {name} already exists but is not a bridge"
        )));
    }
    if !link.up {
        nl.set_up(link.index)?;
    }
    if bc.promisc_mode {
        nl.set_promisc(link.index, true)?;
    }
    Ok(link)
}

fn random_veth_name() -> Result<String, CniError> {
    let mut bytes = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            CniError::new(code::IO_FAILURE, "bridge: cannot read /dev/urandom")
                .with_details(e.to_string())
        })?;
    Ok(format!("veth{}", hex::encode(bytes)))
}

/// Create the pair; the host end's name is returned.
fn create_veth(
    nl: &mut Netlink,
    args: &CmdArgs,
    bc: &BridgeConfig,
    netns: &NetNs,
) -> Result<String, CniError> {
    for _ in 0..5 {
        let host_name = random_veth_name()?;
        match nl.create_veth(&host_name, &args.ifname, netns.file().as_fd(), bc.mtu) {
            Ok(()) => return Ok(host_name),
            Err(e) if e.is_exists() => {
                let ifname = args.ifname.clone();
                let taken = netns.run(move || -> Result<bool, CniError> {
                    Ok(Netlink::open()?.link_by_name(&ifname)?.is_some())
                })??;
                if taken {
                    return Err(CniError::new(
                        code::INTERFACE_EXISTS,
                        format!(
                            "bridge: interface {} already exists in {}",
                            args.ifname,
                            netns.path().display()
                        ),
                    ));
                }
                // The random host name collided; try another.
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(CniError::new(
        code::KERNEL,
        "bridge: could not find a free name for the host end of the veth pair",
    ))
}

/// The first gateway of each family.
fn family_gateways(ips: &[IpConfig]) -> BTreeMap<bool, IpAddr> {
    let mut out = BTreeMap::new();
    for ip in ips {
        if let Some(gw) = ip.gateway {
            out.entry(gw.is_ipv4()).or_insert(gw);
        }
    }
    out
}

fn add_default_routes(
    routes: &mut Vec<Route>,
    ips: &[IpConfig],
    gateways: &BTreeMap<bool, IpAddr>,
) -> Result<(), CniError> {
    let mut families: Vec<bool> = ips.iter().map(|i| i.address.addr().is_ipv4()).collect();
    families.dedup();
    for v4 in families {
        let gw = *gateways.get(&v4).ok_or_else(|| {
            CniError::config("bridge: isDefaultGateway needs a gateway from IPAM")
        })?;
        let default = crate::cidr::default_for(gw);
        match routes.iter_mut().find(|r| r.dst.trunc() == default) {
            Some(r) => match r.gw {
                None => r.gw = Some(gw),
                Some(other) if other == gw => {}
                Some(other) => {
                    return Err(CniError::config(format!(
                        "bridge: isDefaultGateway ineffective because IPAM sets the default route via {other}"
                    )))
                }
            },
            None => routes.push(Route::new(default, Some(gw))),
        }
    }
    Ok(())
}

/// Inside the container: addresses, link up, routes. Returns the link.
fn configure_container(
    ifname: &str,
    ips: &[IpConfig],
    routes: &[Route],
    gateways: &BTreeMap<bool, IpAddr>,
) -> Result<Link, CniError> {
    let mut nl = Netlink::open()?;
    let link = nl.link_by_name(ifname)?.ok_or_else(|| {
        CniError::new(
            code::KERNEL,
            format!("bridge: {ifname} missing in the container"),
        )
    })?;
    for ip in ips {
        match nl.add_address(link.index, ip.address) {
            Err(e) if !e.is_exists() => return Err(e.into()),
            _ => {}
        }
    }
    nl.set_up(link.index)?;
    for r in routes {
        let gw =
            r.gw.or_else(|| gateways.get(&r.dst.addr().is_ipv4()).copied());
        let route = NewRoute {
            dst: r.dst,
            gw,
            oif: link.index,
            mtu: r.mtu,
            advmss: r.advmss,
            priority: r.priority,
            table: r.table,
        };
        match nl.add_route(&route) {
            Err(e) if !e.is_exists() => return Err(e.into()),
            _ => {}
        }
    }
    Ok(link)
}

/// Put `gw` on the bridge. Another address of the same subnet is an error
/// unless `force`, which replaces it.
fn ensure_bridge_address(
    nl: &mut Netlink,
    bridge: &Link,
    gw: IpNet,
    force: bool,
) -> Result<(), CniError> {
    let existing = nl.addresses(Some(bridge.index))?;
    if existing.iter().any(|(_, a)| a.addr() == gw.addr()) {
        return Ok(());
    }
    for (_, a) in &existing {
        if a.addr().is_ipv4() == gw.addr().is_ipv4()
            && crate::cidr::overlaps(&a.trunc(), &gw.trunc())
        {
            if force {
                nl.delete_address(bridge.index, *a)?;
            } else {
                return Err(CniError::config(format!(
                    "bridge: {} already has address {a}, different from the gateway {gw} (set forceAddress to replace it)",
                    bridge.name
                )));
            }
        }
    }
    match nl.add_address(bridge.index, gw) {
        Err(e) if !e.is_exists() => Err(e.into()),
        _ => Ok(()),
    }
}

// ------------------------------------------------------------------ DEL

pub fn cmd_del(args: &CmdArgs, conf: &NetConf) -> Result<(), CniError> {
    let bc = BridgeConfig::from_net_conf(conf)?;
    let mut failure: Option<CniError> = None;
    let mut note = |e: CniError| match failure.take() {
        None => failure = Some(e),
        Some(f) => failure = Some(f.also(e.to_string())),
    };
    // Addresses must be released even when nothing else is left; IPAM runs in
    // its own process while the interface is deleted.
    let pending = ipam_type(conf)
        .map(|ipam| invoke::spawn_delegate(ipam, Command::Del, args, &args.stdin_data));
    if let Some(path) = &args.netns {
        match NetNs::open(path) {
            Ok(ns) => {
                let ifname = args.ifname.clone();
                let deleted = ns.run(move || -> Result<(), CniError> {
                    let mut nl = Netlink::open()?;
                    if let Some(link) = nl.link_by_name(&ifname)? {
                        match nl.delete_link(link.index) {
                            Err(e) if !e.is_not_found() => return Err(e.into()),
                            _ => {}
                        }
                    }
                    Ok(())
                });
                match deleted {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => note(e),
                    Err(e) => note(e.into()),
                }
            }
            Err(e) if e.is_gone() => {}
            Err(e) => note(e.into()),
        }
    }
    if let Some(Err(e)) = pending.map(|p| p.and_then(invoke::Pending::wait)) {
        note(e);
    }
    if bc.ip_masq {
        if let Err(e) = firewall::teardown_masquerade(&masq_chain(conf, args)) {
            note(e.into());
        }
    }
    match failure {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

// ------------------------------------------------------------------ CHECK

pub fn cmd_check(args: &CmdArgs, conf: &NetConf) -> Result<(), CniError> {
    let bc = BridgeConfig::from_net_conf(conf)?;
    let prev = conf
        .prev_result()?
        .ok_or_else(|| CniError::config("bridge: CHECK needs prevResult"))?;
    if let Some(ipam) = ipam_type(conf) {
        invoke::delegate(ipam, Command::Check, args, &args.stdin_data)?;
    }
    let failed = |msg: String| CniError::new(code::CHECK_FAILED, format!("bridge: {msg}"));
    let netns_path = args.netns()?;
    let sandbox = netns_path.display().to_string();
    let container_index = prev
        .interfaces
        .iter()
        .position(|i| i.name == args.ifname && i.sandbox == sandbox)
        .ok_or_else(|| {
            failed(format!(
                "prevResult has no interface {} in {sandbox}",
                args.ifname
            ))
        })?;
    let container = prev.interfaces[container_index].clone();

    // Host side.
    let mut nl = Netlink::open()?;
    let bridge = nl
        .link_by_name(bc.bridge_name())?
        .filter(|l| l.kind.as_deref() == Some("bridge"))
        .ok_or_else(|| failed(format!("bridge {} is missing", bc.bridge_name())))?;
    for host in prev
        .interfaces
        .iter()
        .filter(|i| i.sandbox.is_empty() && i.name != bridge.name)
    {
        let link = nl
            .link_by_name(&host.name)?
            .ok_or_else(|| failed(format!("host interface {} is missing", host.name)))?;
        if link.master != Some(bridge.index) {
            return Err(failed(format!(
                "host interface {} is not attached to {}",
                host.name, bridge.name
            )));
        }
    }

    // Container side.
    let want_addrs: Vec<IpNet> = prev
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(container_index))
        .map(|ip| ip.address)
        .collect();
    let want_routes = prev.routes.clone();
    let ifname = args.ifname.clone();
    let problems = NetNs::open(netns_path)?.run(move || -> Result<Vec<String>, CniError> {
        let mut nl = Netlink::open()?;
        let mut problems = Vec::new();
        let Some(link) = nl.link_by_name(&ifname)? else {
            return Ok(vec![format!(
                "interface {ifname} is missing in the container"
            )]);
        };
        if link.kind.as_deref() != Some("veth") {
            problems.push(format!("interface {ifname} is not a veth"));
        }
        if !container.mac.is_empty() && !link.mac.eq_ignore_ascii_case(&container.mac) {
            problems.push(format!(
                "interface {ifname} has MAC {} instead of {}",
                link.mac, container.mac
            ));
        }
        let have = nl.addresses(Some(link.index))?;
        for want in &want_addrs {
            if !have.iter().any(|(_, a)| a == want) {
                problems.push(format!("address {want} is missing on {ifname}"));
            }
        }
        let mut have_routes = nl.routes(true)?;
        have_routes.extend(nl.routes(false)?);
        for want in &want_routes {
            let found = have_routes.iter().any(|r| {
                r.dst.trunc() == want.dst.trunc()
                    && (want.gw.is_none() || r.gw == want.gw)
                    && r.oif == Some(link.index)
            });
            if !found {
                let via = want.gw.map(|g| format!(" via {g}")).unwrap_or_default();
                problems.push(format!("route {}{via} is missing", want.dst));
            }
        }
        Ok(problems)
    })??;
    let mut problems = problems;
    if bc.ip_masq {
        let nets: Vec<IpNet> = prev.ips.iter().map(|i| i.address).collect();
        problems.extend(firewall::check_masquerade(&masq_chain(conf, args), &nets)?);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(failed(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(v: Value) -> NetConf {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn config_defaults_and_refusals() {
        let c = conf(
            json!({"cniVersion":"1.0.0","name":"n","type":"bridge","ipam":{},
            "isDefaultGateway": true}),
        );
        let bc = BridgeConfig::from_net_conf(&c).unwrap();
        assert_eq!(bc.bridge_name(), "cni0");
        assert!(bc.is_gateway);
        let no_ipam = conf(json!({"cniVersion":"1.0.0","name":"n","type":"bridge"}));
        assert_eq!(BridgeConfig::from_net_conf(&no_ipam).unwrap_err().code, 7);
        let iptables = conf(
            json!({"cniVersion":"1.0.0","name":"n","type":"bridge","ipam":{},
            "ipMasqBackend":"iptables"}),
        );
        assert_eq!(BridgeConfig::from_net_conf(&iptables).unwrap_err().code, 2);
        let bad_type = conf(
            json!({"cniVersion":"1.0.0","name":"n","type":"bridge","ipam":{},
            "mtu":"big"}),
        );
        assert_eq!(BridgeConfig::from_net_conf(&bad_type).unwrap_err().code, 7);
        let bad_name = conf(
            json!({"cniVersion":"1.0.0","name":"n","type":"bridge","ipam":{},
            "bridge":"a/b"}),
        );
        assert_eq!(BridgeConfig::from_net_conf(&bad_name).unwrap_err().code, 7);
    }

    #[test]
    fn default_routes() {
        let ips = vec![IpConfig {
            address: "10.1.0.5/16".parse().unwrap(),
            gateway: Some("10.1.0.1".parse().unwrap()),
            interface: None,
        }];
        let gws = family_gateways(&ips);
        let mut routes = vec![];
        add_default_routes(&mut routes, &ips, &gws).unwrap();
        assert_eq!(
            routes,
            vec![Route::new(
                "0.0.0.0/0".parse().unwrap(),
                Some("10.1.0.1".parse().unwrap())
            )]
        );
        add_default_routes(&mut routes, &ips, &gws).unwrap();
        assert_eq!(routes.len(), 1);
        let mut conflicting = vec![Route::new(
            "0.0.0.0/0".parse().unwrap(),
            Some("10.1.0.9".parse().unwrap()),
        )];
        assert!(add_default_routes(&mut conflicting, &ips, &gws).is_err());
        let no_gw = vec![IpConfig {
            gateway: None,
            ..ips[0].clone()
        }];
        assert!(add_default_routes(&mut vec![], &no_gw, &family_gateways(&no_gw)).is_err());
    }

    #[test]
    fn undo_runs_newest_first_and_reports_failures() {
        use std::sync::{Arc, Mutex};
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut undo = Undo::new();
        for i in 0..3 {
            let log = Arc::clone(&log);
            undo.push(format!("step {i}"), move || {
                log.lock().unwrap().push(i);
                if i == 1 {
                    Err(CniError::new(code::KERNEL, "nope"))
                } else {
                    Ok(())
                }
            });
        }
        let failures = undo.run();
        assert_eq!(*log.lock().unwrap(), vec![2, 1, 0]);
        assert_eq!(
            failures,
            vec!["cleanup (step 1) also failed: nope".to_string()]
        );
        // Dropping an armed guard runs it; a disarmed one does nothing.
        let ran = Arc::new(Mutex::new(false));
        {
            let mut u = Undo::new();
            let r = Arc::clone(&ran);
            u.push("x", move || {
                *r.lock().unwrap() = true;
                Ok(())
            });
        }
        assert!(*ran.lock().unwrap());
        let mut u = Undo::new();
        u.push("y", || panic!("must not run"));
        u.disarm();
    }
}
