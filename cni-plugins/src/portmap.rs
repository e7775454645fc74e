//! The `portmap` plugin (chained only): forwards host ports to the container
//! from the `portMappings` capability, and passes the previous result through.
//!
//! Traffic to any local address of the host on `hostPort` (from outside, and
//! from the host itself, `127.0.0.1` included) is DNATed to `podIP:containerPort`.
//! Traffic from localhost and from the pod's own subnet (hairpin) is marked and
//! masqueraded so replies come back through the host. See [`crate::firewall`]
//! for the rule layout.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::Value;

use crate::cidr::IpNet;
use crate::error::{code, CniError};
use crate::firewall::{self, HostportOptions};
use crate::netlink::Netlink;
use crate::skel::{CmdArgs, Plugin};
use crate::sysctl;
use crate::types::{CniResult, NetConf, PortMapping};

/// The handlers for the `portmap` binary.
pub const PLUGIN: Plugin<NetConf> = Plugin {
    add: cmd_add,
    check: cmd_check,
    del: cmd_del,
    about: "portmap plugin (host ports to container ports, nftables)",
};

/// The portmap plugin's own configuration keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortmapConfig {
    /// Masquerade localhost and hairpin traffic (default true).
    #[serde(default)]
    pub snat: Option<bool>,
    /// The mark bit selecting traffic to masquerade (default 13).
    #[serde(default)]
    pub mark_masq_bit: Option<u8>,
    #[serde(default)]
    pub external_set_mark_chain: Option<String>,
    #[serde(default)]
    pub conditions_v4: Option<Vec<String>>,
    #[serde(default)]
    pub conditions_v6: Option<Vec<String>>,
    #[serde(default)]
    pub backend: Option<String>,
}

impl PortmapConfig {
    pub fn from_net_conf(conf: &NetConf) -> Result<Self, CniError> {
        let pc: PortmapConfig =
            serde_json::from_value(Value::Object(conf.extra.clone())).map_err(|e| {
                CniError::config("portmap: invalid configuration").with_details(e.to_string())
            })?;
        let unsupported = |what: &str| {
            CniError::new(
                code::UNSUPPORTED_FIELD,
                format!("portmap: {what} is not supported"),
            )
        };
        if pc.external_set_mark_chain.is_some() {
            return Err(unsupported("externalSetMarkChain"));
        }
        if pc.conditions_v4.as_ref().is_some_and(|c| !c.is_empty())
            || pc.conditions_v6.as_ref().is_some_and(|c| !c.is_empty())
        {
            return Err(unsupported("conditionsV4/conditionsV6"));
        }
        if pc.backend.as_deref().is_some_and(|b| b != "nftables") {
            return Err(unsupported("a backend other than nftables"));
        }
        if pc.mark_masq_bit.is_some_and(|b| b > 31) {
            return Err(CniError::config(
                "portmap: markMasqBit must be between 0 and 31",
            ));
        }
        Ok(pc)
    }

    pub fn options(&self) -> HostportOptions {
        HostportOptions {
            snat: self.snat.unwrap_or(true),
            mark_bit: self.mark_masq_bit.unwrap_or(13),
        }
    }
}

/// `runtimeConfig.portMappings`, validated.
pub fn port_mappings(conf: &NetConf) -> Result<Vec<PortMapping>, CniError> {
    let Some(raw) = conf.runtime_config("portMappings") else {
        return Ok(Vec::new());
    };
    let mappings: Vec<PortMapping> = serde_json::from_value(raw.clone()).map_err(|e| {
        CniError::config("portmap: invalid runtimeConfig.portMappings").with_details(e.to_string())
    })?;
    for m in &mappings {
        if m.host_port == 0 || m.container_port == 0 {
            return Err(CniError::config(format!(
                "portmap: invalid port mapping {}:{}",
                m.host_port, m.container_port
            )));
        }
    }
    Ok(mappings)
}

fn chain(conf: &NetConf, args: &CmdArgs) -> String {
    firewall::chain_name("dn", &conf.name, &args.container_id, &args.ifname)
}

/// The container's addresses in `prev`: those on interfaces inside a sandbox
/// (or not tied to an interface).
fn pod_ips(prev: &CniResult) -> Vec<IpNet> {
    prev.ips
        .iter()
        .filter(|ip| match ip.interface {
            Some(i) => prev
                .interfaces
                .get(i)
                .is_some_and(|iface| !iface.sandbox.is_empty()),
            None => true,
        })
        .map(|ip| ip.address)
        .collect()
}

pub fn cmd_add(args: &CmdArgs, conf: &NetConf) -> Result<CniResult, CniError> {
    let pc = PortmapConfig::from_net_conf(conf)?;
    let prev = conf.prev_result()?.ok_or_else(|| {
        CniError::config("portmap: must be called as a chained plugin (prevResult is missing)")
    })?;
    let mappings = port_mappings(conf)?;
    let ips = pod_ips(&prev);
    if mappings.is_empty() || ips.is_empty() {
        return Ok(prev);
    }
    let chain = chain(conf, args);
    let opts = pc.options();
    firewall::setup_hostports(&chain, &mappings, &ips, opts)?;
    if opts.snat {
        if let Some(v4) = ips.iter().find(|ip| ip.addr().is_ipv4()) {
            if let Err(e) = enable_localnet_routing(v4.addr()) {
                let cleanup = firewall::teardown_hostports(&chain)
                    .map_err(CniError::from)
                    .and_then(|()| release_localnet_routing());
                return Err(match cleanup {
                    Ok(()) => e,
                    Err(cleanup) => e.also(format!("cleanup also failed: {cleanup}")),
                });
            }
        }
    }
    Ok(prev)
}

/// The host interface towards `pod`, if any.
fn host_interface(pod: IpAddr) -> Result<Option<String>, CniError> {
    let mut nl = Netlink::open()?;
    let Some(index) = nl.route_get(pod)? else {
        return Ok(None);
    };
    Ok(nl.link_by_index(index)?.map(|link| link.name))
}

fn route_localnet(iface: &str) -> [&str; 5] {
    ["net", "ipv4", "conf", iface, "route_localnet"]
}

/// Let DNATed `127.0.0.1` traffic leave through the interface towards the pod
/// (and the replies come back on it): `route_localnet` on that interface, with
/// the host's loopback guarded first (see [`firewall::LOCALNET_TABLE`]).
fn enable_localnet_routing(pod: IpAddr) -> Result<(), CniError> {
    let Some(iface) = host_interface(pod)? else {
        return Ok(());
    };
    let was_on = sysctl::read(&route_localnet(&iface))? == "1";
    // An interface that had it on already is left as it was found on DEL.
    firewall::setup_localnet_guard((!was_on).then_some(iface.as_str()))?;
    sysctl::ensure(&route_localnet(&iface), "1")?;
    Ok(())
}

/// When no container has host ports any more: `route_localnet` off again where
/// portmap turned it on, then the guard removed. If an ADD comes in meanwhile,
/// the guard stays and `route_localnet` is given back.
fn release_localnet_routing() -> Result<(), CniError> {
    for _ in 0..4 {
        let guard = firewall::LocalnetGuard::read()?;
        if !guard.present || firewall::hostport_users()? > 0 {
            return Ok(());
        }
        let mut turned_off = Vec::new();
        let mut result = Ok(());
        for iface in &guard.ifaces {
            match sysctl::read(&route_localnet(iface)) {
                Ok(v) if v == "1" => match sysctl::write(&route_localnet(iface), "0") {
                    Ok(()) => turned_off.push(iface.clone()),
                    Err(e) => {
                        result = Err(CniError::from(e));
                        break;
                    }
                },
                // Off already, or the interface is gone.
                _ => {}
            }
        }
        let removal = result
            .and_then(|()| firewall::remove_localnet_guard(guard.epoch).map_err(CniError::from));
        if !matches!(removal, Ok(firewall::GuardRemoval::Removed)) {
            // Nothing may stay open without the guard: give back what was taken.
            for iface in &turned_off {
                sysctl::write(&route_localnet(iface), "1")?;
            }
        }
        match removal {
            Ok(firewall::GuardRemoval::Removed) => return Ok(()),
            Ok(firewall::GuardRemoval::Raced) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn cmd_del(args: &CmdArgs, conf: &NetConf) -> Result<(), CniError> {
    PortmapConfig::from_net_conf(conf)?;
    firewall::teardown_hostports(&chain(conf, args))?;
    release_localnet_routing()
}

pub fn cmd_check(args: &CmdArgs, conf: &NetConf) -> Result<(), CniError> {
    let pc = PortmapConfig::from_net_conf(conf)?;
    let mappings = port_mappings(conf)?;
    if mappings.is_empty() {
        return Ok(());
    }
    let mut problems = firewall::check_hostports(&chain(conf, args), &mappings)?;
    let v4 = conf
        .prev_result()?
        .map(|prev| pod_ips(&prev))
        .unwrap_or_default()
        .into_iter()
        .any(|ip| ip.addr().is_ipv4());
    if pc.options().snat && v4 {
        problems.extend(firewall::check_localnet_guard()?);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            code::CHECK_FAILED,
            format!("portmap: {}", problems.join("; ")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_and_mappings() {
        let conf: NetConf = serde_json::from_value(json!({
            "cniVersion": "1.0.0", "name": "n", "type": "portmap", "snat": false,
            "runtimeConfig": {"portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}
            ]}
        }))
        .unwrap();
        let pc = PortmapConfig::from_net_conf(&conf).unwrap();
        assert!(!pc.options().snat);
        assert_eq!(pc.options().mark_bit, 13);
        let m = port_mappings(&conf).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].host_ip.as_deref(), Some("127.0.0.1"));

        let bad: NetConf = serde_json::from_value(json!({
            "cniVersion": "1.0.0", "name": "n", "type": "portmap",
            "runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80}]}
        }))
        .unwrap();
        assert_eq!(port_mappings(&bad).unwrap_err().code, 7);
        let ext: NetConf = serde_json::from_value(json!({
            "cniVersion": "1.0.0", "name": "n", "type": "portmap", "externalSetMarkChain": "X"
        }))
        .unwrap();
        assert_eq!(PortmapConfig::from_net_conf(&ext).unwrap_err().code, 2);
    }

    #[test]
    fn pod_addresses_come_from_sandboxed_interfaces() {
        let prev = CniResult::from_value(json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "cni0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/x"}],
            "ips": [{"address": "10.1.0.1/16", "interface": 0}, {"address": "10.1.0.5/16", "interface": 2}]
        }))
        .unwrap();
        assert_eq!(pod_ips(&prev), vec!["10.1.0.5/16".parse().unwrap()]);
    }

    /// Two containers behind `pm0` (route_localnet off) and one behind `pm1`
    /// (on already): the guard comes with the first, stays while any container
    /// has host ports, and goes with the last, leaving each interface as found.
    #[test]
    fn route_localnet_is_guarded_while_on_and_given_back() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIPPED: needs root");
            return;
        }
        e2e::netns::in_new_netns(|| {
            use e2e::netns::sh;
            sh("ip link add pm0 type veth peer name pm0p && ip addr add 10.66.0.1/24 dev pm0 \
                && ip link add pm1 type veth peer name pm1p && ip addr add 10.67.0.1/24 dev pm1 \
                && ip link set pm0 up && ip link set pm0p up && ip link set pm1 up && ip link set pm1p up");
            sysctl::write(&route_localnet("pm1"), "1").unwrap();
            let on = |i: &str| sysctl::read(&route_localnet(i)).unwrap() == "1";
            let base = PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
                host_ip: None,
            };
            let opts = HostportOptions {
                snat: true,
                mark_bit: 13,
            };
            let add = |name: &str, port: u16, ip: &str| {
                let chain = firewall::chain_name("dn", "n", name, "eth0");
                let m = vec![PortMapping {
                    host_port: port,
                    ..base.clone()
                }];
                let ip: IpNet = ip.parse().unwrap();
                firewall::setup_hostports(&chain, &m, &[ip], opts).unwrap();
                enable_localnet_routing(ip.addr()).unwrap();
                chain
            };
            let del = |chain: &str| {
                firewall::teardown_hostports(chain).unwrap();
                release_localnet_routing().unwrap();
            };
            let a = add("a", 8080, "10.66.0.2/24");
            assert!(on("pm0"));
            assert!(firewall::check_localnet_guard().unwrap().is_empty());
            let b = add("b", 8081, "10.66.0.3/24");
            let c = add("c", 8082, "10.67.0.2/24");
            let guard = firewall::LocalnetGuard::read().unwrap();
            assert_eq!(guard.ifaces, vec!["pm0".to_string()], "pm1 was on already");
            del(&a);
            del(&c);
            assert!(on("pm0") && on("pm1"));
            assert!(firewall::check_localnet_guard().unwrap().is_empty());
            del(&b);
            assert!(!on("pm0"), "turned off again where portmap turned it on");
            assert!(on("pm1"), "left on where it was on before");
            assert!(!firewall::LocalnetGuard::read().unwrap().present);
            // DEL again (the runtime retries): nothing to do.
            del(&b);
        });
    }
}
