//! Firewall rules for `ipMasq` (bridge) and host ports (portmap), with nftables.
//!
//! # Why nftables (through the `nft` binary)
//! - One `nft -f -` batch is one kernel transaction: a container's rules appear
//!   or fail as a whole, and concurrent plugins never see half a setup.
//! - Per-container state is reached through verdict maps (`ip saddr vmap`,
//!   `meta l4proto . th dport vmap`), so a packet costs one hash lookup however
//!   many containers exist, and unrelated pods add no rules to anyone's path.
//!   The iptables equivalent is a linear list of jumps.
//! - Our tables (`inet rkt_cni_masq`, `inet rkt_cni_hostport`, `inet rkt_cni_localnet`)
//!   are ours alone;
//!   they coexist with iptables-nft rules (other tables, other priorities).
//! - The kernel netlink API for nftables is large; the `nft` binary (Debian
//!   package `nftables`) is the stable interface, like the reference plugins use
//!   the `iptables` binary.
//!
//! # Layout
//! Each container gets one regular chain named from a hash of (network,
//! container ID, interface). Base chains only dispatch into it through a map;
//! DEL removes the map elements that jump to the container's chain and then the
//! chain, so nothing of the container remains.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::cidr::IpNet;
use crate::error::{code, CniError};
use crate::types::PortMapping;

/// The table holding `ipMasq` rules.
pub const MASQ_TABLE: &str = "rkt_cni_masq";
/// The table holding host port rules.
pub const HOSTPORT_TABLE: &str = "rkt_cni_hostport";

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("cannot run {binary}", binary = binary.display())]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("nft refused to {op}: {stderr}")]
    Nft { op: String, stderr: String },
    #[error("cannot decode the nftables listing of table {table}")]
    Decode {
        table: String,
        source: serde_json::Error,
    },
    #[error("unsupported protocol {protocol:?} in port mapping (tcp, udp or sctp)")]
    Protocol { protocol: String },
    #[error("interface name {name:?} cannot be written into an nftables rule")]
    Interface { name: String },
    #[error("host port {port}/{protocol} is already mapped to another container (chain {chain})")]
    PortInUse {
        port: u16,
        protocol: String,
        chain: String,
    },
}

impl From<FirewallError> for CniError {
    fn from(e: FirewallError) -> Self {
        let code = match e {
            FirewallError::Protocol { .. } => code::INVALID_NETWORK_CONFIG,
            FirewallError::PortInUse { .. } => code::PORT_CONFLICT,
            _ => code::FIREWALL,
        };
        CniError::from_error(code, &e)
    }
}

/// The per-container chain name: `<prefix>-` and 16 hex digits of
/// sha256(network, container ID, interface).
pub fn chain_name(prefix: &str, network: &str, container_id: &str, ifname: &str) -> String {
    let mut h = Sha256::new();
    for part in [network, container_id, ifname] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("{prefix}-{}", &hex::encode(h.finalize())[..16])
}

fn nft_binary() -> PathBuf {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nft"))
            .find(|p| p.is_file())
    });
    from_path
        .or_else(|| {
            ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("nft"))
}

/// Run `nft` with `args`, feeding `stdin`; stdout on success.
fn nft(op: &str, args: &[&str], stdin: Option<&str>) -> Result<Vec<u8>, FirewallError> {
    let binary = nft_binary();
    let mut child = Command::new(&binary)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| FirewallError::Spawn {
            binary: binary.clone(),
            source,
        })?;
    if let (Some(script), Some(mut input)) = (stdin, child.stdin.take()) {
        // nft reports a short script as a syntax error; a write error is seen there.
        let _ = input.write_all(script.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| FirewallError::Spawn { binary, source })?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(FirewallError::Nft {
            op: op.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Apply a batch (one transaction).
fn apply(op: &str, script: &str) -> Result<(), FirewallError> {
    nft(op, &["-f", "-"], Some(script)).map(drop)
}

/// What one of our tables holds, as far as we care.
#[derive(Debug, Default)]
struct TableState {
    /// Whether the table exists at all.
    exists: bool,
    chains: BTreeSet<String>,
    /// (map name, element key in nft syntax, jump target chain)
    elements: Vec<(String, String, String)>,
    /// set name -> its elements in nft syntax
    sets: BTreeMap<String, Vec<String>>,
}

impl TableState {
    fn read(table: &str) -> Result<Self, FirewallError> {
        let out = match nft(
            &format!("list table {table}"),
            &["-j", "list", "table", "inet", table],
            None,
        ) {
            Ok(out) => out,
            Err(FirewallError::Nft { stderr, .. })
                if stderr.contains("No such file or directory") =>
            {
                return Ok(TableState::default())
            }
            Err(e) => return Err(e),
        };
        let json: Value = serde_json::from_slice(&out).map_err(|source| FirewallError::Decode {
            table: table.to_string(),
            source,
        })?;
        let mut state = TableState {
            exists: true,
            ..TableState::default()
        };
        let items = json
            .get("nftables")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for item in items {
            if let Some(chain) = item.get("chain") {
                if let Some(name) = chain.get("name").and_then(Value::as_str) {
                    state.chains.insert(name.to_string());
                }
            }
            if let Some(set) = item.get("set") {
                if let Some(name) = set.get("name").and_then(Value::as_str) {
                    let elems = set
                        .get("elem")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(key_syntax)
                        .collect();
                    state.sets.insert(name.to_string(), elems);
                }
            }
            let Some(map) = item.get("map") else { continue };
            let Some(map_name) = map.get("name").and_then(Value::as_str) else {
                continue;
            };
            for elem in map
                .get("elem")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (Some(key), Some(target)) = (
                    elem.get(0).and_then(key_syntax),
                    elem.get(1)
                        .and_then(|v| v.get("jump").or_else(|| v.get("goto")))
                        .and_then(|j| j.get("target"))
                        .and_then(Value::as_str),
                ) else {
                    continue;
                };
                state
                    .elements
                    .push((map_name.to_string(), key, target.to_string()));
            }
        }
        Ok(state)
    }

    fn elements_to(&self, chain: &str) -> impl Iterator<Item = &(String, String, String)> {
        let chain = chain.to_string();
        self.elements.iter().filter(move |(_, _, t)| *t == chain)
    }
}

/// A map key from `nft -j` output in nft's text syntax.
fn key_syntax(key: &Value) -> Option<String> {
    match key {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => {
            let parts = o.get("concat")?.as_array()?;
            let parts: Option<Vec<String>> = parts.iter().map(key_syntax).collect();
            Some(parts?.join(" . "))
        }
        _ => None,
    }
}

/// Run `build` against a fresh listing and apply its script, retrying when a
/// concurrent plugin changed the table between listing and applying.
fn transact(
    table: &str,
    op: &str,
    build: impl Fn(&TableState) -> Result<Option<String>, FirewallError>,
) -> Result<(), FirewallError> {
    let mut attempt = 0;
    loop {
        let state = TableState::read(table)?;
        let Some(script) = build(&state)? else {
            return Ok(());
        };
        match apply(op, &script) {
            Ok(()) => return Ok(()),
            Err(_) if attempt < 3 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------- ipMasq

/// Masquerade traffic from `ips` leaving their own subnets (multicast excepted),
/// through chain `chain`.
pub fn setup_masquerade(chain: &str, ips: &[IpNet]) -> Result<(), FirewallError> {
    let t = MASQ_TABLE;
    transact(t, &format!("set up masquerading ({chain})"), |state| {
        let mut s = String::new();
        s += &format!("add table inet {t}\n");
        s += &format!("add map inet {t} src4 {{ type ipv4_addr : verdict; }}\n");
        s += &format!("add map inet {t} src6 {{ type ipv6_addr : verdict; }}\n");
        s += &format!(
            "add chain inet {t} postrouting {{ type nat hook postrouting priority srcnat; }}\n"
        );
        s += &format!("flush chain inet {t} postrouting\n");
        s += &format!("add rule inet {t} postrouting ip saddr vmap @src4\n");
        s += &format!("add rule inet {t} postrouting ip6 saddr vmap @src6\n");
        // Stale elements: ours from an earlier ADD, or keys of our addresses left
        // by a container that was never deleted (addresses are leased uniquely).
        let keys: Vec<String> = ips.iter().map(|ip| ip.addr().to_string()).collect();
        for (map, key, target) in &state.elements {
            if target == chain || keys.contains(key) {
                s += &format!("delete element inet {t} {map} {{ {key} }}\n");
            }
        }
        s += &format!("add chain inet {t} {chain}\n");
        s += &format!("flush chain inet {t} {chain}\n");
        for ip in ips {
            let (fam, multicast) = if ip.addr().is_ipv4() {
                ("ip", "224.0.0.0/4")
            } else {
                ("ip6", "ff00::/8")
            };
            s += &format!(
                "add rule inet {t} {chain} {fam} daddr {} return\n",
                ip.trunc()
            );
            s += &format!("add rule inet {t} {chain} {fam} daddr {multicast} return\n");
        }
        s += &format!("add rule inet {t} {chain} masquerade\n");
        for ip in ips {
            let map = if ip.addr().is_ipv4() { "src4" } else { "src6" };
            s += &format!(
                "add element inet {t} {map} {{ {} : jump {chain} }}\n",
                ip.addr()
            );
        }
        Ok(Some(s))
    })
}

/// Remove what [`setup_masquerade`] added for `chain`; nothing to do is fine.
pub fn teardown_masquerade(chain: &str) -> Result<(), FirewallError> {
    teardown(MASQ_TABLE, chain, "remove masquerading")
}

/// Whether masquerading for `ips` through `chain` is in place.
pub fn check_masquerade(chain: &str, ips: &[IpNet]) -> Result<Vec<String>, FirewallError> {
    let state = TableState::read(MASQ_TABLE)?;
    let mut problems = Vec::new();
    if !state.chains.contains(chain) {
        problems.push(format!("masquerade chain {chain} is missing"));
    }
    for ip in ips {
        let key = ip.addr().to_string();
        if !state
            .elements
            .iter()
            .any(|(_, k, target)| *k == key && target == chain)
        {
            problems.push(format!("traffic from {key} is not masqueraded"));
        }
    }
    Ok(problems)
}

fn teardown(table: &str, chain: &str, what: &str) -> Result<(), FirewallError> {
    transact(table, &format!("{what} ({chain})"), |state| {
        let mut s = String::new();
        for (map, key, _) in state.elements_to(chain) {
            s += &format!("delete element inet {table} {map} {{ {key} }}\n");
        }
        if state.chains.contains(chain) {
            s += &format!("flush chain inet {table} {chain}\n");
            s += &format!("delete chain inet {table} {chain}\n");
        }
        Ok((!s.is_empty()).then_some(s))
    })
}

// ---------------------------------------------------------------- host ports

/// Options of the portmap plugin that shape its rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostportOptions {
    /// Masquerade hairpin and localhost traffic (so replies come back through us).
    pub snat: bool,
    /// The packet mark bit used to select traffic for masquerading.
    pub mark_bit: u8,
}

fn protocol_of(m: &PortMapping) -> Result<String, FirewallError> {
    let p = m.protocol.to_ascii_lowercase();
    match p.as_str() {
        "tcp" | "udp" | "sctp" => Ok(p),
        _ => Err(FirewallError::Protocol {
            protocol: m.protocol.clone(),
        }),
    }
}

/// DNAT `mappings` (host port -> pod address : container port) for traffic to
/// any local address, from outside (prerouting) and from the host (output).
/// `pod_ips` are the pod's addresses with their subnet prefix; the first of each
/// family is used.
pub fn setup_hostports(
    chain: &str,
    mappings: &[PortMapping],
    pod_ips: &[IpNet],
    opts: HostportOptions,
) -> Result<(), FirewallError> {
    let t = HOSTPORT_TABLE;
    let mark = 1u32 << opts.mark_bit.min(31);
    let v4 = pod_ips.iter().find(|ip| ip.addr().is_ipv4()).copied();
    let v6 = pod_ips.iter().find(|ip| !ip.addr().is_ipv4()).copied();
    let mut rules = Vec::new();
    let mut keys = BTreeSet::new();
    for m in mappings {
        let proto = protocol_of(m)?;
        let host_ip: Option<IpAddr> = m
            .host_ip
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(|s| s.parse().ok())
            .filter(|ip: &IpAddr| !ip.is_unspecified());
        let mut used = false;
        for pod in [v4, v6].into_iter().flatten() {
            if host_ip.is_some_and(|h| h.is_ipv4() != pod.addr().is_ipv4()) {
                continue;
            }
            used = true;
            let (nfproto, fam, localhost) = if pod.addr().is_ipv4() {
                ("ipv4", "ip", "127.0.0.0/8")
            } else {
                ("ipv6", "ip6", "::1")
            };
            let mut matcher = format!("meta nfproto {nfproto} ");
            if let Some(h) = host_ip {
                matcher += &format!("{fam} daddr {h} ");
            }
            matcher += &format!("{proto} dport {}", m.host_port);
            if opts.snat {
                rules.push(format!(
                    "{matcher} {fam} saddr {{ {localhost}, {} }} meta mark set meta mark | {mark:#x}",
                    pod.trunc()
                ));
            }
            let to = if pod.addr().is_ipv4() {
                format!("{}:{}", pod.addr(), m.container_port)
            } else {
                format!("[{}]:{}", pod.addr(), m.container_port)
            };
            rules.push(format!("{matcher} dnat {fam} to {to}"));
        }
        if used {
            keys.insert((proto, m.host_port));
        }
    }
    transact(t, &format!("set up host ports ({chain})"), |state| {
        for (proto, port) in &keys {
            let key = format!("{proto} . {port}");
            if let Some((_, _, other)) = state
                .elements
                .iter()
                .find(|(map, k, target)| map == "ports" && *k == key && target != chain)
            {
                return Err(FirewallError::PortInUse {
                    port: *port,
                    protocol: proto.clone(),
                    chain: other.clone(),
                });
            }
        }
        let mut s = String::new();
        s += &format!("add table inet {t}\n");
        s += &format!("add map inet {t} ports {{ type inet_proto . inet_service : verdict; }}\n");
        s += &format!(
            "add chain inet {t} prerouting {{ type nat hook prerouting priority dstnat; }}\n"
        );
        s += &format!("add chain inet {t} output {{ type nat hook output priority -100; }}\n");
        s += &format!(
            "add chain inet {t} postrouting {{ type nat hook postrouting priority srcnat; }}\n"
        );
        for base in ["prerouting", "output"] {
            s += &format!("flush chain inet {t} {base}\n");
            s += &format!(
                "add rule inet {t} {base} fib daddr type local meta l4proto . th dport vmap @ports\n"
            );
        }
        s += &format!("flush chain inet {t} postrouting\n");
        s += &format!(
            "add rule inet {t} postrouting meta mark & {mark:#x} == {mark:#x} masquerade\n"
        );
        for (map, key, _) in state.elements_to(chain) {
            s += &format!("delete element inet {t} {map} {{ {key} }}\n");
        }
        s += &format!("add chain inet {t} {chain}\n");
        s += &format!("flush chain inet {t} {chain}\n");
        for rule in &rules {
            s += &format!("add rule inet {t} {chain} {rule}\n");
        }
        for (proto, port) in &keys {
            s += &format!("add element inet {t} ports {{ {proto} . {port} : jump {chain} }}\n");
        }
        Ok(Some(s))
    })
}

/// Remove what [`setup_hostports`] added for `chain`; nothing to do is fine.
pub fn teardown_hostports(chain: &str) -> Result<(), FirewallError> {
    teardown(HOSTPORT_TABLE, chain, "remove host ports")
}

/// Whether every mapping is dispatched to `chain`.
pub fn check_hostports(
    chain: &str,
    mappings: &[PortMapping],
) -> Result<Vec<String>, FirewallError> {
    let state = TableState::read(HOSTPORT_TABLE)?;
    let mut problems = Vec::new();
    if !state.chains.contains(chain) {
        problems.push(format!("host port chain {chain} is missing"));
    }
    for m in mappings {
        let key = format!("{} . {}", protocol_of(m)?, m.host_port);
        if !state
            .elements
            .iter()
            .any(|(map, k, target)| map == "ports" && *k == key && target == chain)
        {
            problems.push(format!("host port {key} is not mapped"));
        }
    }
    Ok(problems)
}

// ---------------------------------------------------------------- host loopback

/// The table that keeps the host's loopback private while `route_localnet` is on.
///
/// Host ports answer on `127.0.0.1` too: the host's own connection is DNATed to
/// the pod and masqueraded, and its replies, turned back into packets to
/// `127.0.0.1`, arrive on the pod's bridge. The kernel drops packets to
/// 127.0.0.0/8 arriving on any interface but `lo` (martians) unless
/// `route_localnet` is on for that interface, so portmap turns it on. That also
/// lets anything on the bridge (a pod with `CAP_NET_RAW`, say) send packets to
/// `127.0.0.1` of the host and reach services listening on the host's loopback
/// only (CVE-2020-8558). This table's `input` chain drops such packets unless
/// conntrack says they were DNATed.
///
/// It is created by the first ADD that turns `route_localnet` on (before it is
/// turned on) and removed by the DEL that leaves no container with host ports
/// (after `route_localnet` is turned back off on the interfaces portmap turned
/// it on for, recorded in the set `ifaces`). ADD and DEL do not lock each other
/// out: every ADD writes a fresh `epoch`, and DEL's removal deletes the epoch it
/// read in the same transaction, so it fails (and DEL gives `route_localnet`
/// back) when an ADD came in between.
pub const LOCALNET_TABLE: &str = "rkt_cni_localnet";
/// The guard's base chain (filter, input hook).
pub const LOCALNET_CHAIN: &str = "input";

/// The base chains of [`HOSTPORT_TABLE`]; every other chain there belongs to
/// one container.
const HOSTPORT_BASE_CHAINS: [&str; 3] = ["prerouting", "output", "postrouting"];

/// The guard's rules, written as `nft list` prints them (CHECK compares them).
/// Packets to 127.0.0.0/8 that came in on another interface than `lo` pass only
/// when their connection was DNATed (replies of host port connections made from
/// the host's own 127.0.0.1); the rest, untracked packets included (a `ct`
/// match fails on them), is dropped and counted.
pub fn localnet_guard_rules() -> [&'static str; 2] {
    [
        r#"iif != "lo" ip daddr 127.0.0.0/8 ct status dnat accept"#,
        r#"iif != "lo" ip daddr 127.0.0.0/8 counter drop"#,
    ]
}

/// An interface name as an nft string, or an error if it cannot be one safely.
fn nft_ifname(name: &str) -> Result<String, FirewallError> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-@+:".contains(&b));
    if ok {
        Ok(format!("\"{name}\""))
    } else {
        Err(FirewallError::Interface {
            name: name.to_string(),
        })
    }
}

/// The batch that (re)writes the guard, replaces the epoch with `epoch`, and
/// records `record` (an interface whose `route_localnet` is about to be turned on).
fn localnet_setup_script(epoch: u32, record: Option<&str>) -> Result<String, FirewallError> {
    let t = LOCALNET_TABLE;
    let c = LOCALNET_CHAIN;
    let mut s = String::new();
    s += &format!("add table inet {t}\n");
    s += &format!("add set inet {t} ifaces {{ type ifname; }}\n");
    s += &format!("add set inet {t} epoch {{ type mark; }}\n");
    s += &format!(
        "add chain inet {t} {c} {{ type filter hook input priority filter; policy accept; }}\n"
    );
    s += &format!("flush chain inet {t} {c}\n");
    for rule in localnet_guard_rules() {
        s += &format!("add rule inet {t} {c} {rule}\n");
    }
    s += &format!("flush set inet {t} epoch\n");
    s += &format!("add element inet {t} epoch {{ {epoch:#x} }}\n");
    if let Some(iface) = record {
        s += &format!("add element inet {t} ifaces {{ {} }}\n", nft_ifname(iface)?);
    }
    Ok(s)
}

/// The batch that removes the guard if its epoch is still `epoch` (`None`: a
/// guard without one, which no ADD of this plugin wrote, goes as it is).
fn localnet_removal_script(epoch: Option<u32>) -> String {
    let t = LOCALNET_TABLE;
    let mut s = String::new();
    if let Some(epoch) = epoch {
        s += &format!("delete element inet {t} epoch {{ {epoch:#x} }}\n");
    }
    s += &format!("delete table inet {t}\n");
    s
}

/// An epoch different from every one in `old`.
fn fresh_epoch(old: &[u32]) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    let mut epoch = nanos ^ std::process::id().rotate_left(16);
    while old.contains(&epoch) {
        epoch = epoch.wrapping_add(1);
    }
    epoch
}

/// What the guard table holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LocalnetGuard {
    /// Whether the table exists.
    pub present: bool,
    /// Interfaces whose `route_localnet` portmap turned on.
    pub ifaces: Vec<String>,
    /// The epoch written by the last ADD.
    pub epoch: Option<u32>,
}

impl LocalnetGuard {
    pub fn read() -> Result<Self, FirewallError> {
        let state = TableState::read(LOCALNET_TABLE)?;
        Ok(Self::from_state(&state))
    }

    fn from_state(state: &TableState) -> Self {
        let set = |name: &str| state.sets.get(name).cloned().unwrap_or_default();
        LocalnetGuard {
            present: state.exists,
            ifaces: set("ifaces"),
            epoch: set("epoch").iter().find_map(|e| parse_u32(e)),
        }
    }
}

fn parse_u32(s: &str) -> Option<u32> {
    match s.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Put the guard in place (or repair it) before `route_localnet` goes on;
/// `record` is the interface this call is about to turn it on for, if it was off.
pub fn setup_localnet_guard(record: Option<&str>) -> Result<(), FirewallError> {
    let record = record.map(|i| nft_ifname(i).map(|_| i)).transpose()?;
    transact(LOCALNET_TABLE, "guard the host's loopback", |state| {
        let old: Vec<u32> = LocalnetGuard::from_state(state).epoch.into_iter().collect();
        localnet_setup_script(fresh_epoch(&old), record).map(Some)
    })
}

/// The outcome of [`remove_localnet_guard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardRemoval {
    /// The guard is gone.
    Removed,
    /// An ADD wrote a new epoch since it was read: the guard stays.
    Raced,
}

/// Remove the guard if no ADD came in since `epoch` was read.
pub fn remove_localnet_guard(epoch: Option<u32>) -> Result<GuardRemoval, FirewallError> {
    match apply(
        "remove the host loopback guard",
        &localnet_removal_script(epoch),
    ) {
        Ok(()) => Ok(GuardRemoval::Removed),
        Err(e) => {
            let now = LocalnetGuard::read()?;
            if !now.present {
                Ok(GuardRemoval::Removed)
            } else if now.epoch != epoch {
                Ok(GuardRemoval::Raced)
            } else {
                Err(e)
            }
        }
    }
}

/// Whether the guard is in place, exactly as [`setup_localnet_guard`] writes it.
pub fn check_localnet_guard() -> Result<Vec<String>, FirewallError> {
    let listing = match nft(
        "list the host loopback guard",
        &["list", "chain", "inet", LOCALNET_TABLE, LOCALNET_CHAIN],
        None,
    ) {
        Ok(out) => String::from_utf8_lossy(&out).into_owned(),
        Err(FirewallError::Nft { stderr, .. }) if stderr.contains("No such file or directory") => {
            return Ok(vec![format!(
                "the host loopback guard (chain {LOCALNET_CHAIN} of table inet {LOCALNET_TABLE}) is missing"
            )])
        }
        Err(e) => return Err(e),
    };
    Ok(guard_problems(&listing))
}

/// Differences between a `nft list chain` listing of the guard and what it must be.
fn guard_problems(listing: &str) -> Vec<String> {
    let mut hooked = false;
    let mut rules = Vec::new();
    for line in listing.lines().map(str::trim) {
        if line.is_empty()
            || line == "}"
            || line.starts_with("table ")
            || line.starts_with("chain ")
        {
            continue;
        }
        if line.starts_with("type ") {
            hooked = line == "type filter hook input priority filter; policy accept;";
            continue;
        }
        rules.push(without_counter_values(line));
    }
    let want: Vec<String> = localnet_guard_rules()
        .iter()
        .map(|r| r.to_string())
        .collect();
    let mut problems = Vec::new();
    if !hooked {
        problems.push(format!(
            "chain {LOCALNET_CHAIN} of table inet {LOCALNET_TABLE} is not a filter chain on the input hook accepting by default"
        ));
    }
    if rules != want {
        problems.push(format!(
            "the host loopback guard has rules {rules:?}, not {want:?}"
        ));
    }
    problems
}

/// `counter packets 3 bytes 180 drop` -> `counter drop`.
fn without_counter_values(rule: &str) -> String {
    let words: Vec<&str> = rule.split_whitespace().collect();
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        out.push(words[i]);
        if words[i] == "counter"
            && words.get(i + 1) == Some(&"packets")
            && words.get(i + 3) == Some(&"bytes")
        {
            i += 5;
        } else {
            i += 1;
        }
    }
    out.join(" ")
}

/// How many containers have host ports (a chain of their own in [`HOSTPORT_TABLE`]).
pub fn hostport_users() -> Result<usize, FirewallError> {
    let state = TableState::read(HOSTPORT_TABLE)?;
    Ok(state
        .chains
        .iter()
        .filter(|c| !HOSTPORT_BASE_CHAINS.contains(&c.as_str()))
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_are_stable_and_distinct() {
        let a = chain_name("dn", "net", "c1", "eth0");
        assert_eq!(a, chain_name("dn", "net", "c1", "eth0"));
        assert_ne!(a, chain_name("dn", "net", "c1", "eth1"));
        assert_ne!(a, chain_name("dn", "net", "c", "1eth0"));
        assert!(a.starts_with("dn-") && a.len() == 19);
    }

    #[test]
    fn key_syntax_from_json() {
        let v: Value = serde_json::json!({"concat": ["tcp", 8080]});
        assert_eq!(key_syntax(&v).as_deref(), Some("tcp . 8080"));
        assert_eq!(
            key_syntax(&Value::from("10.0.0.2")).as_deref(),
            Some("10.0.0.2")
        );
    }

    fn private_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIPPED: needs root");
            return None;
        }
        Some(e2e::netns::in_new_netns(f))
    }

    #[test]
    fn masquerade_setup_check_teardown() {
        private_netns(|| {
            let ips: Vec<IpNet> = vec![
                "10.77.0.2/24".parse().unwrap(),
                "fd77::2/64".parse().unwrap(),
            ];
            let chain = chain_name("masq", "n", "c1", "eth0");
            let other = chain_name("masq", "n", "c2", "eth0");
            setup_masquerade(&chain, &ips).unwrap();
            setup_masquerade(&other, &["10.77.0.3/24".parse().unwrap()]).unwrap();
            // A repeated ADD replaces, it does not duplicate.
            setup_masquerade(&chain, &ips).unwrap();
            assert!(check_masquerade(&chain, &ips).unwrap().is_empty());
            let state = TableState::read(MASQ_TABLE).unwrap();
            assert_eq!(state.elements_to(&chain).count(), 2);
            teardown_masquerade(&chain).unwrap();
            teardown_masquerade(&chain).unwrap();
            let state = TableState::read(MASQ_TABLE).unwrap();
            assert!(!state.chains.contains(&chain));
            assert_eq!(state.elements_to(&chain).count(), 0);
            assert_eq!(state.elements_to(&other).count(), 1);
            assert_eq!(check_masquerade(&chain, &ips).unwrap().len(), 3);
        });
    }

    #[test]
    fn hostports_refuse_a_port_taken_by_another_container() {
        private_netns(|| {
            let m = vec![PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
                host_ip: None,
            }];
            let opts = HostportOptions {
                snat: true,
                mark_bit: 13,
            };
            let a = chain_name("dn", "n", "a", "eth0");
            let b = chain_name("dn", "n", "b", "eth0");
            setup_hostports(&a, &m, &["10.5.0.2/24".parse().unwrap()], opts).unwrap();
            let err = setup_hostports(&b, &m, &["10.5.0.3/24".parse().unwrap()], opts).unwrap_err();
            assert!(
                matches!(err, FirewallError::PortInUse { port: 8080, .. }),
                "{err}"
            );
            assert!(check_hostports(&a, &m).unwrap().is_empty());
            teardown_hostports(&a).unwrap();
            setup_hostports(&b, &m, &["10.5.0.3/24".parse().unwrap()], opts).unwrap();
            let bad = vec![PortMapping {
                protocol: "icmp".into(),
                ..m[0].clone()
            }];
            assert!(matches!(
                setup_hostports(&b, &bad, &[], opts),
                Err(FirewallError::Protocol { .. })
            ));
        });
    }

    #[test]
    fn localnet_guard_drops_what_was_not_dnated() {
        let [pass, drop] = localnet_guard_rules();
        for rule in [pass, drop] {
            assert!(
                rule.starts_with(r#"iif != "lo" ip daddr 127.0.0.0/8 "#),
                "{rule}"
            );
        }
        assert!(pass.ends_with("ct status dnat accept"), "{pass}");
        assert!(drop.ends_with("drop") && !drop.contains("ct "), "{drop}");
    }

    #[test]
    fn localnet_setup_guards_before_recording_the_interface() {
        let s = localnet_setup_script(0x1234, Some("rkt0")).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        let at = |needle: &str| {
            lines
                .iter()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no {needle:?} in\n{s}"))
        };
        assert!(s.contains(
            "add chain inet rkt_cni_localnet input { type filter hook input priority filter; policy accept; }"
        ));
        let flush = at("flush chain inet rkt_cni_localnet input");
        let pass = at("ct status dnat accept");
        let drop = at("counter drop");
        let record = at(r#"add element inet rkt_cni_localnet ifaces { "rkt0" }"#);
        assert!(flush < pass && pass < drop && drop < record, "{s}");
        assert!(at("flush set inet rkt_cni_localnet epoch") < at("epoch { 0x1234 }"));
        let plain = localnet_setup_script(7, None).unwrap();
        assert!(
            !plain.contains("ifaces {  }")
                && !plain.contains("add element inet rkt_cni_localnet ifaces")
        );
        for bad in ["", "a b", "x\"y", "0123456789abcdef", "eth0;flush"] {
            assert!(
                matches!(
                    localnet_setup_script(1, Some(bad)),
                    Err(FirewallError::Interface { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn localnet_removal_is_conditional_on_the_epoch() {
        assert_eq!(
            localnet_removal_script(Some(0xab)),
            "delete element inet rkt_cni_localnet epoch { 0xab }\ndelete table inet rkt_cni_localnet\n"
        );
        assert_eq!(
            localnet_removal_script(None),
            "delete table inet rkt_cni_localnet\n"
        );
        let e = fresh_epoch(&[]);
        assert_ne!(fresh_epoch(&[e, e.wrapping_add(1)]), e);
        assert_eq!(parse_u32("4660"), Some(0x1234));
        assert_eq!(parse_u32("0x00001234"), Some(0x1234));
    }

    #[test]
    fn localnet_check_compares_the_listing() {
        let good = "table inet rkt_cni_localnet {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tiif != \"lo\" ip daddr 127.0.0.0/8 ct status dnat accept\n\t\tiif != \"lo\" ip daddr 127.0.0.0/8 counter packets 3 bytes 180 drop\n\t}\n}\n";
        assert_eq!(guard_problems(good), Vec::<String>::new());
        let no_drop = good.replace(
            "\t\tiif != \"lo\" ip daddr 127.0.0.0/8 counter packets 3 bytes 180 drop\n",
            "",
        );
        assert_eq!(guard_problems(&no_drop).len(), 1, "{no_drop}");
        let bypass = good.replace(
            "policy accept;\n",
            "policy accept;\n\t\tip saddr 172.16.28.0/24 accept\n",
        );
        assert_eq!(guard_problems(&bypass).len(), 1);
        let hook = good.replace("hook input", "hook output");
        assert_eq!(guard_problems(&hook).len(), 1);
        assert_eq!(
            without_counter_values("counter packets 0 bytes 0 drop"),
            "counter drop"
        );
    }

    #[test]
    fn localnet_guard_setup_check_race_and_removal() {
        private_netns(|| {
            assert!(!LocalnetGuard::read().unwrap().present);
            assert_eq!(check_localnet_guard().unwrap().len(), 1);
            setup_localnet_guard(Some("rkt0")).unwrap();
            setup_localnet_guard(None).unwrap();
            let g = LocalnetGuard::read().unwrap();
            assert!(g.present);
            assert_eq!(g.ifaces, vec!["rkt0".to_string()]);
            assert!(check_localnet_guard().unwrap().is_empty());

            // Tampering is seen by CHECK and repaired by the next ADD.
            apply("tamper", "flush chain inet rkt_cni_localnet input\n").unwrap();
            assert_eq!(check_localnet_guard().unwrap().len(), 1);
            setup_localnet_guard(None).unwrap();
            assert!(check_localnet_guard().unwrap().is_empty());

            // A DEL that read the epoch before an ADD came in leaves the guard.
            let stale = LocalnetGuard::read().unwrap().epoch;
            setup_localnet_guard(None).unwrap();
            assert_eq!(remove_localnet_guard(stale).unwrap(), GuardRemoval::Raced);
            assert!(check_localnet_guard().unwrap().is_empty());
            let now = LocalnetGuard::read().unwrap().epoch;
            assert_eq!(remove_localnet_guard(now).unwrap(), GuardRemoval::Removed);
            assert!(!LocalnetGuard::read().unwrap().present);
            assert_eq!(remove_localnet_guard(now).unwrap(), GuardRemoval::Removed);
        });
    }
}
