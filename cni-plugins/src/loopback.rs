//! The `loopback` plugin: brings `lo` up in the container's namespace.
//! `CNI_IFNAME` is ignored; the interface is always `lo`.

use crate::error::{code, CniError};
use crate::netlink::Netlink;
use crate::netns::{run_in_netns, NetNs};
use crate::skel::{CmdArgs, Plugin};
use crate::types::{CniResult, Interface, IpConfig, NetConf, CURRENT_VERSION};

/// The handlers for the `loopback` binary.
pub const PLUGIN: Plugin<NetConf> = Plugin {
    add: cmd_add,
    check: cmd_check,
    del: cmd_del,
    about: "loopback plugin (brings up lo in the container)",
};

pub fn cmd_add(args: &CmdArgs, conf: &NetConf) -> Result<CniResult, CniError> {
    let netns = args.netns()?;
    let addrs = run_in_netns(netns, || -> Result<_, CniError> {
        let mut nl = Netlink::open()?;
        let lo = nl
            .link_by_name("lo")?
            .ok_or_else(|| CniError::new(code::KERNEL, "loopback: no lo interface"))?;
        nl.set_up(lo.index)?;
        let addrs = nl.addresses(Some(lo.index))?;
        if let Some((_, a)) = addrs.iter().find(|(_, a)| !a.addr().is_loopback()) {
            return Err(CniError::new(
                code::INVALID_NETWORK_CONFIG,
                format!("loopback: lo has a non-loopback address {a}"),
            ));
        }
        Ok(addrs)
    })??;
    if let Some(prev) = conf.prev_result()? {
        return Ok(prev);
    }
    Ok(CniResult {
        cni_version: CURRENT_VERSION.to_string(),
        interfaces: vec![Interface {
            name: "lo".to_string(),
            mac: "00:00:00:00:00:00".to_string(),
            sandbox: netns.display().to_string(),
            ..Interface::default()
        }],
        ips: addrs
            .into_iter()
            .map(|(_, address)| IpConfig {
                address,
                gateway: None,
                interface: Some(0),
            })
            .collect(),
        ..CniResult::default()
    })
}

pub fn cmd_del(args: &CmdArgs, _conf: &NetConf) -> Result<(), CniError> {
    let Some(path) = &args.netns else {
        return Ok(());
    };
    let ns = match NetNs::open(path) {
        Ok(ns) => ns,
        Err(e) if e.is_gone() => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    ns.run(|| -> Result<(), CniError> {
        let mut nl = Netlink::open()?;
        if let Some(lo) = nl.link_by_name("lo")? {
            nl.set_down(lo.index)?;
        }
        Ok(())
    })?
}

pub fn cmd_check(args: &CmdArgs, _conf: &NetConf) -> Result<(), CniError> {
    run_in_netns(args.netns()?, || -> Result<(), CniError> {
        let mut nl = Netlink::open()?;
        match nl.link_by_name("lo")? {
            Some(lo) if lo.up => Ok(()),
            _ => Err(CniError::new(code::CHECK_FAILED, "loopback: lo is down")),
        }
    })?
}
