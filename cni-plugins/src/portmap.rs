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
        if let Some(v4) = ips.iter().find(|ip| ip.is_ipv4()) {
            if let Err(e) = enable_localnet_routing(v4.addr) {
                return Err(match firewall::teardown_hostports(&chain) {
                    Ok(()) => e,
                    Err(cleanup) => e.also(format!("cleanup also failed: {cleanup}")),
                });
            }
        }
    }
    Ok(prev)
}

/// Let DNATed `127.0.0.1` traffic leave through the interface towards the pod
/// (and the replies come back on it): `route_localnet` on that interface.
fn enable_localnet_routing(pod: IpAddr) -> Result<(), CniError> {
    let mut nl = Netlink::open()?;
    let Some(index) = nl.route_get(pod)? else {
        return Ok(());
    };
    let Some(link) = nl.link_by_index(index)? else {
        return Ok(());
    };
    sysctl::ensure(&["net", "ipv4", "conf", &link.name, "route_localnet"], "1")?;
    Ok(())
}

pub fn cmd_del(args: &CmdArgs, conf: &NetConf) -> Result<(), CniError> {
    PortmapConfig::from_net_conf(conf)?;
    firewall::teardown_hostports(&chain(conf, args))?;
    Ok(())
}

pub fn cmd_check(args: &CmdArgs, conf: &NetConf) -> Result<(), CniError> {
    PortmapConfig::from_net_conf(conf)?;
    let mappings = port_mappings(conf)?;
    if mappings.is_empty() {
        return Ok(());
    }
    let problems = firewall::check_hostports(&chain(conf, args), &mappings)?;
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
}
