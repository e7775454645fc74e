//! The `host-local` IPAM plugin: addresses from configured ranges, leased as
//! files on the local disk.
//!
//! The lease directory `<dataDir>/<network>/` has the reference plugin's format,
//! so both plugins can serve the same network:
//! - one file per leased address, named by the address (`10.22.0.5`, `fd00::5`),
//!   created with `O_EXCL`, mode 0600, holding `<containerID>\r\n<ifname>`;
//! - `last_reserved_ip.<set index>` with the last address handed out from a range
//!   set (allocation continues round-robin after it);
//! - `lock`, `flock`ed exclusively around every allocation and release.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};
use serde::Deserialize;
use serde_json::Value;

use crate::cidr::{from_u128, max_prefix, to_u128, IpNet};
use crate::error::{code, CniError};
use crate::skel::{CmdArgs, Plugin};
use crate::types::{CniResult, Dns, IpConfig, NetConf, Route, CURRENT_VERSION};

/// Where leases live unless `ipam.dataDir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
const LOCK_FILE: &str = "lock";

// ------------------------------------------------------------------ config

/// One range as configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeConf {
    #[serde(with = "crate::cidr::text")]
    pub subnet: IpNet,
    #[serde(default)]
    pub range_start: Option<IpAddr>,
    #[serde(default)]
    pub range_end: Option<IpAddr>,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

/// The `ipam` section of a host-local configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamConfig {
    /// Range sets; one address is allocated from each set.
    #[serde(default)]
    pub ranges: Vec<Vec<RangeConf>>,
    /// The legacy single-range form (`subnet` plus the optional keys below).
    #[serde(default, deserialize_with = "crate::cidr::text_opt")]
    pub subnet: Option<IpNet>,
    #[serde(default)]
    pub range_start: Option<IpAddr>,
    #[serde(default)]
    pub range_end: Option<IpAddr>,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub resolv_conf: Option<PathBuf>,
}

impl IpamConfig {
    /// Read the `ipam` section of `conf`.
    pub fn from_net_conf(conf: &NetConf) -> Result<Self, CniError> {
        let ipam = conf
            .ipam
            .as_ref()
            .ok_or_else(|| CniError::config("host-local: the ipam section is missing"))?;
        serde_json::from_value(Value::Object(ipam.extra.clone())).map_err(|e| {
            CniError::config("host-local: invalid ipam configuration").with_details(e.to_string())
        })
    }

    /// The range sets, validated, legacy form first.
    pub fn range_sets(&self) -> Result<Vec<RangeSet>, AllocError> {
        let mut confs = self.ranges.clone();
        if let Some(subnet) = self.subnet {
            confs.insert(
                0,
                vec![RangeConf {
                    subnet,
                    range_start: self.range_start,
                    range_end: self.range_end,
                    gateway: self.gateway,
                }],
            );
        }
        if confs.is_empty() || confs.iter().any(Vec::is_empty) {
            return Err(AllocError::Config {
                reason: "no IP ranges specified".to_string(),
            });
        }
        let sets: Vec<RangeSet> = confs
            .iter()
            .map(|set| {
                set.iter()
                    .map(Range::from_conf)
                    .collect::<Result<_, _>>()
                    .map(RangeSet)
            })
            .collect::<Result<_, _>>()?;
        let all: Vec<&Range> = sets.iter().flat_map(|s| s.0.iter()).collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                if a.overlaps(b) {
                    return Err(AllocError::Config {
                        reason: format!("range {a} overlaps with range {b}"),
                    });
                }
            }
        }
        Ok(sets)
    }
}

/// A validated range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The subnet, host bits clear.
    pub subnet: IpNet,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: Option<IpAddr>,
}

impl Range {
    pub fn from_conf(rc: &RangeConf) -> Result<Self, AllocError> {
        let subnet = rc.subnet;
        let bad = |reason: String| AllocError::Config { reason };
        if subnet.addr() != subnet.network() {
            return Err(bad(format!(
                "subnet {subnet} has host bits set (the network is {})",
                subnet.trunc()
            )));
        }
        if subnet.prefix_len() + 2 > max_prefix(subnet.addr()) {
            return Err(bad(format!(
                "subnet {subnet} is too small to allocate from"
            )));
        }
        let net = to_u128(subnet.network());
        let start = rc.range_start.unwrap_or(from_u128(subnet.addr(), net + 1));
        let end = rc
            .range_end
            .unwrap_or(from_u128(subnet.addr(), to_u128(subnet.broadcast()) - 1));
        let gateway = Some(rc.gateway.unwrap_or(from_u128(subnet.addr(), net + 1)));
        for (what, ip) in [("rangeStart", start), ("rangeEnd", end)] {
            if !subnet.contains(&ip) {
                return Err(bad(format!("{what} {ip} is not in subnet {subnet}")));
            }
        }
        if to_u128(start) > to_u128(end) {
            return Err(bad(format!(
                "rangeStart {start} is after rangeEnd {end} in subnet {subnet}"
            )));
        }
        Ok(Range {
            subnet,
            start,
            end,
            gateway,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.start.is_ipv4()
            && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(ip))
    }

    fn overlaps(&self, other: &Range) -> bool {
        self.contains(other.start)
            || self.contains(other.end)
            || other.contains(self.start)
            || other.contains(self.end)
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// Ranges from which one address is allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(pub Vec<Range>);

impl RangeSet {
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.0.iter().find(|r| r.contains(ip))
    }
}

impl std::fmt::Display for RangeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(Range::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

// ------------------------------------------------------------------ errors

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid network name {name:?} for a lease directory")]
    NetworkName { name: String },
    #[error("cannot create lease directory {path}", path = path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot lock {path}", path = path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write lease {path}", path = path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read lease directory {path}", path = path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove lease {path}", path = path.display())]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    #[error("host-local: {reason}")]
    Config { reason: String },
    #[error("no IP addresses available in range set {set}")]
    Exhausted { set: String },
    #[error("requested IP address {ip} is not available in range set {set}")]
    Unavailable { ip: IpAddr, set: String },
    #[error("requested IP address {ip} is the gateway of its range")]
    IsGateway { ip: IpAddr },
    #[error("requested IP address {ip} is in no configured range set")]
    NotInRange { ip: IpAddr },
    #[error("{ip} is already allocated to container {id} interface {ifname}; duplicate allocation is not allowed")]
    Duplicate {
        ip: IpAddr,
        id: String,
        ifname: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AllocError> for CniError {
    fn from(e: AllocError) -> Self {
        let code = match &e {
            AllocError::Config { .. } | AllocError::NotInRange { .. } => {
                code::INVALID_NETWORK_CONFIG
            }
            AllocError::Exhausted { .. } => code::NO_ADDRESS_AVAILABLE,
            AllocError::Unavailable { .. }
            | AllocError::IsGateway { .. }
            | AllocError::Duplicate { .. } => code::ADDRESS_UNAVAILABLE,
            AllocError::Store(StoreError::NetworkName { .. }) => code::INVALID_NETWORK_CONFIG,
            AllocError::Store(_) => code::IO_FAILURE,
        };
        CniError::from_error(code, &e)
    }
}

impl From<StoreError> for CniError {
    fn from(e: StoreError) -> Self {
        AllocError::from(e).into()
    }
}

// ------------------------------------------------------------------ store

/// The lease directory of one network.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
}

/// Holds the store's `flock` until dropped.
#[derive(Debug)]
pub struct StoreLock {
    file: File,
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // Closing the file releases the lock as well; unlock explicitly anyway.
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

fn valid_network_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

impl Store {
    /// The directory `<data_dir>/<network>`, created if `create`.
    pub fn open(data_dir: &Path, network: &str, create: bool) -> Result<Option<Self>, StoreError> {
        if !valid_network_name(network) {
            return Err(StoreError::NetworkName {
                name: network.to_string(),
            });
        }
        let dir = data_dir.join(network);
        if create {
            std::fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        } else if !dir.is_dir() {
            return Ok(None);
        }
        Ok(Some(Store { dir }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Take the exclusive lock shared with the reference plugin.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        let path = self.dir.join(LOCK_FILE);
        let lock_err = |source| StoreError::Lock {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(lock_err)?;
        flock(&file, FlockOperation::LockExclusive).map_err(|e| lock_err(e.into()))?;
        Ok(StoreLock { file })
    }

    /// Lease `ip` to (`id`, `ifname`); `false` if it is taken.
    pub fn reserve(
        &self,
        ip: IpAddr,
        id: &str,
        ifname: &str,
        set_index: usize,
    ) -> Result<bool, StoreError> {
        let path = self.dir.join(ip.to_string());
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(source) => return Err(StoreError::Write { path, source }),
        };
        let contents = format!("{}\r\n{ifname}", id.trim());
        // Like the reference plugin, no fsync: leases are usually on tmpfs or
        // die with the containers they describe.
        if let Err(source) = file.write_all(contents.as_bytes()) {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(StoreError::Write { path, source });
        }
        let last = self.dir.join(format!("{LAST_RESERVED_PREFIX}{set_index}"));
        write_replace(&last, ip.to_string().as_bytes())
            .map_err(|source| StoreError::Write { path: last, source })?;
        Ok(true)
    }

    /// The address last handed out from set `set_index`.
    pub fn last_reserved(&self, set_index: usize) -> Option<IpAddr> {
        std::fs::read_to_string(self.dir.join(format!("{LAST_RESERVED_PREFIX}{set_index}")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Every lease: (address, trimmed file contents).
    pub fn leases(&self) -> Result<Vec<(IpAddr, String)>, StoreError> {
        let read_err = |source| StoreError::Read {
            path: self.dir.clone(),
            source,
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<IpAddr>().ok())
            else {
                continue;
            };
            // A lease released concurrently is simply not there any more.
            if let Ok(contents) = std::fs::read_to_string(entry.path()) {
                out.push((ip, contents.trim().to_string()));
            }
        }
        Ok(out)
    }

    /// Addresses leased to (`id`, `ifname`); leases written by old versions
    /// (the container ID alone) count too.
    pub fn leased_to(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, StoreError> {
        let (key, legacy) = lease_keys(id, ifname);
        Ok(self
            .leases()?
            .into_iter()
            .filter(|(_, owner)| *owner == key || *owner == legacy)
            .map(|(ip, _)| ip)
            .collect())
    }

    /// Release every lease of (`id`, `ifname`); if there is none, the legacy
    /// leases of `id`. Returns the released addresses.
    pub fn release(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, StoreError> {
        let (key, legacy) = lease_keys(id, ifname);
        let leases = self.leases()?;
        let mut chosen: Vec<IpAddr> = leases
            .iter()
            .filter(|(_, owner)| *owner == key)
            .map(|(ip, _)| *ip)
            .collect();
        if chosen.is_empty() {
            chosen = leases
                .iter()
                .filter(|(_, owner)| *owner == legacy)
                .map(|(ip, _)| *ip)
                .collect();
        }
        for ip in &chosen {
            let path = self.dir.join(ip.to_string());
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Remove { path, source }),
            }
        }
        Ok(chosen)
    }
}

fn lease_keys(id: &str, ifname: &str) -> (String, String) {
    (format!("{}\r\n{ifname}", id.trim()), id.trim().to_string())
}

/// Write by temp file and rename, so readers never see a partial file.
fn write_replace(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

// ------------------------------------------------------------------ allocator

/// Allocate one address from `set` (index `set_index`) for (`id`, `ifname`),
/// or lease `requested`. The caller holds the store lock.
pub fn allocate(
    store: &Store,
    set: &RangeSet,
    set_index: usize,
    id: &str,
    ifname: &str,
    requested: Option<IpAddr>,
) -> Result<IpConfig, AllocError> {
    let config = |ip: IpAddr, range: &Range| IpConfig {
        // `ip` is in the range, so of the subnet's family: the prefix fits.
        address: IpNet::new_assert(ip, range.subnet.prefix_len()),
        gateway: range.gateway,
        interface: None,
    };
    if let Some(ip) = requested {
        let range = set.range_for(ip).ok_or(AllocError::NotInRange { ip })?;
        if range.gateway == Some(ip) {
            return Err(AllocError::IsGateway { ip });
        }
        if !store.reserve(ip, id, ifname, set_index)? {
            return Err(AllocError::Unavailable {
                ip,
                set: set.to_string(),
            });
        }
        return Ok(config(ip, range));
    }
    if let Some(ip) = store
        .leased_to(id, ifname)?
        .into_iter()
        .find(|ip| set.range_for(*ip).is_some())
    {
        return Err(AllocError::Duplicate {
            ip,
            id: id.to_string(),
            ifname: ifname.to_string(),
        });
    }
    // Round-robin: continue after the last address handed out from this set.
    let ranges = &set.0;
    let mut position: Option<(usize, u128)> = store.last_reserved(set_index).and_then(|ip| {
        ranges
            .iter()
            .position(|r| r.contains(ip))
            .map(|i| (i, to_u128(ip)))
    });
    let mut first: Option<(usize, u128)> = None;
    loop {
        let next = match position {
            None => (0, to_u128(ranges[0].start)),
            Some((i, cur)) if cur >= to_u128(ranges[i].end) => {
                let i = (i + 1) % ranges.len();
                (i, to_u128(ranges[i].start))
            }
            Some((i, cur)) => (i, cur + 1),
        };
        match first {
            None => first = Some(next),
            Some(f) if f == next => {
                return Err(AllocError::Exhausted {
                    set: set.to_string(),
                })
            }
            Some(_) => {}
        }
        position = Some(next);
        let range = &ranges[next.0];
        let ip = from_u128(range.start, next.1);
        if range.gateway == Some(ip) {
            continue;
        }
        if store.reserve(ip, id, ifname, set_index)? {
            return Ok(config(ip, range));
        }
    }
}

// ------------------------------------------------------------------ plugin

/// The handlers for the `host-local` binary.
pub const PLUGIN: Plugin<NetConf> = Plugin {
    add: cmd_add,
    check: cmd_check,
    del: cmd_del,
    about: "host-local IPAM plugin (addresses from local ranges, leases on disk)",
};

fn data_dir(ipam: &IpamConfig) -> PathBuf {
    ipam.data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// Addresses asked for through `runtimeConfig.ips`, `args.cni.ips` or `CNI_ARGS IP=`.
fn requested_ips(args: &CmdArgs, conf: &NetConf) -> Result<Vec<IpAddr>, CniError> {
    let mut raw: Vec<String> = Vec::new();
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    raw.extend(strings(conf.runtime_config("ips")));
    raw.extend(strings(
        conf.args
            .as_ref()
            .and_then(|a| a.get("cni"))
            .and_then(|c| c.get("ips")),
    ));
    if let Some(ip) = args.cni_arg("IP") {
        raw.extend(ip.split(',').map(|s| s.trim().to_string()));
    }
    let mut out: Vec<IpAddr> = Vec::new();
    for s in raw.iter().filter(|s| !s.is_empty()) {
        let addr = s.split('/').next().unwrap_or(s);
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| CniError::config(format!("host-local: invalid requested IP {s:?}")))?;
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

/// Parse a resolv.conf into the result's DNS section.
pub fn parse_resolv_conf(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => dns.nameservers.extend(words.next().map(str::to_string)),
            Some("domain") => dns.domain = words.next().map(str::to_string),
            Some("search") => dns.search = words.map(str::to_string).collect(),
            Some("options") => dns.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    dns
}

pub fn cmd_add(args: &CmdArgs, conf: &NetConf) -> Result<CniResult, CniError> {
    let ipam = IpamConfig::from_net_conf(conf)?;
    let sets = ipam.range_sets()?;
    let mut requested = requested_ips(args, conf)?;
    let dns = match &ipam.resolv_conf {
        Some(path) => parse_resolv_conf(&std::fs::read_to_string(path).map_err(|e| {
            CniError::new(
                code::IO_FAILURE,
                format!("host-local: cannot read resolvConf {}", path.display()),
            )
            .with_details(e.to_string())
        })?),
        None => Dns::default(),
    };
    let store = Store::open(&data_dir(&ipam), &conf.name, true)?
        .ok_or_else(|| CniError::new(code::IO_FAILURE, "host-local: lease directory missing"))?;
    let _lock = store.lock()?;
    let mut ips = Vec::new();
    let mut failure = None;
    for (index, set) in sets.iter().enumerate() {
        let want = requested
            .iter()
            .position(|ip| set.range_for(*ip).is_some())
            .map(|i| requested.remove(i));
        match allocate(&store, set, index, &args.container_id, &args.ifname, want) {
            Ok(ip) => ips.push(ip),
            Err(e) => {
                failure = Some(CniError::from(e));
                break;
            }
        }
    }
    if failure.is_none() {
        if let Some(ip) = requested.first() {
            failure = Some(AllocError::NotInRange { ip: *ip }.into());
        }
    }
    if let Some(err) = failure {
        // Give back what this call leased before failing.
        for ip in &ips {
            let _ = std::fs::remove_file(store.dir().join(ip.address.addr().to_string()));
        }
        return Err(err);
    }
    Ok(CniResult {
        cni_version: CURRENT_VERSION.to_string(),
        interfaces: Vec::new(),
        ips,
        routes: ipam.routes.clone(),
        dns,
    })
}

pub fn cmd_del(args: &CmdArgs, conf: &NetConf) -> Result<(), CniError> {
    let ipam = IpamConfig::from_net_conf(conf)?;
    let Some(store) = Store::open(&data_dir(&ipam), &conf.name, false)? else {
        return Ok(());
    };
    let _lock = store.lock()?;
    store.release(&args.container_id, &args.ifname)?;
    Ok(())
}

pub fn cmd_check(args: &CmdArgs, conf: &NetConf) -> Result<(), CniError> {
    let ipam = IpamConfig::from_net_conf(conf)?;
    let sets = ipam.range_sets()?;
    let prev = conf
        .prev_result()?
        .ok_or_else(|| CniError::config("host-local: CHECK needs prevResult"))?;
    let failed = |msg: String| CniError::new(code::CHECK_FAILED, msg);
    let store = Store::open(&data_dir(&ipam), &conf.name, false)?
        .ok_or_else(|| failed(format!("host-local: no leases for network {}", conf.name)))?;
    let _lock = store.lock()?;
    let mine = store.leased_to(&args.container_id, &args.ifname)?;
    for ip in &prev.ips {
        let addr = ip.address.addr();
        if sets.iter().any(|s| s.range_for(addr).is_some()) && !mine.contains(&addr) {
            return Err(failed(format!(
                "host-local: {addr} is not leased to container {} interface {}",
                args.container_id, args.ifname
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(subnet: &str, start: Option<&str>, end: Option<&str>) -> RangeSet {
        RangeSet(vec![Range::from_conf(&RangeConf {
            subnet: subnet.parse().unwrap(),
            range_start: start.map(|s| s.parse().unwrap()),
            range_end: end.map(|s| s.parse().unwrap()),
            gateway: None,
        })
        .unwrap()])
    }

    fn store(dir: &Path) -> Store {
        Store::open(dir, "net", true).unwrap().unwrap()
    }

    #[test]
    fn range_defaults_and_validation() {
        let r = &set("10.1.2.0/24", None, None).0[0];
        assert_eq!(r.start.to_string(), "10.1.2.1");
        assert_eq!(r.end.to_string(), "10.1.2.254");
        assert_eq!(r.gateway.unwrap().to_string(), "10.1.2.1");
        let bad = |subnet: &str, start: Option<&str>| {
            Range::from_conf(&RangeConf {
                subnet: subnet.parse().unwrap(),
                range_start: start.map(|s| s.parse().unwrap()),
                range_end: None,
                gateway: None,
            })
            .is_err()
        };
        assert!(bad("10.1.2.5/24", None));
        assert!(bad("10.1.2.0/31", None));
        assert!(bad("10.1.2.0/24", Some("10.1.3.1")));
        let conf = IpamConfig {
            ranges: vec![
                vec![RangeConf {
                    subnet: "10.0.0.0/16".parse().unwrap(),
                    range_start: None,
                    range_end: None,
                    gateway: None,
                }],
                vec![RangeConf {
                    subnet: "10.0.1.0/24".parse().unwrap(),
                    range_start: None,
                    range_end: None,
                    gateway: None,
                }],
            ],
            ..IpamConfig::default()
        };
        assert!(matches!(conf.range_sets(), Err(AllocError::Config { .. })));
    }

    #[test]
    fn allocates_round_robin_and_skips_gateway() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path());
        let s = set("10.9.0.0/29", None, None); // .1 gateway, .2-.6 usable
        let got: Vec<String> = (0..5)
            .map(|i| {
                allocate(&st, &s, 0, &format!("c{i}"), "eth0", None)
                    .unwrap()
                    .address
                    .to_string()
            })
            .collect();
        assert_eq!(
            got,
            [
                "10.9.0.2/29",
                "10.9.0.3/29",
                "10.9.0.4/29",
                "10.9.0.5/29",
                "10.9.0.6/29"
            ]
        );
        assert!(matches!(
            allocate(&st, &s, 0, "c9", "eth0", None),
            Err(AllocError::Exhausted { .. })
        ));
        // Releasing .3 makes it the only free one; round-robin wraps to it.
        assert_eq!(
            st.release("c1", "eth0").unwrap(),
            vec!["10.9.0.3".parse::<IpAddr>().unwrap()]
        );
        let ip = allocate(&st, &s, 0, "c9", "eth0", None).unwrap();
        assert_eq!(ip.address.to_string(), "10.9.0.3/29");
        assert_eq!(ip.gateway.unwrap().to_string(), "10.9.0.1");
        assert!(matches!(
            allocate(&st, &s, 0, "c9", "eth0", None),
            Err(AllocError::Duplicate { .. })
        ));
    }

    #[test]
    fn lease_files_have_the_reference_format() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path());
        let s = set("fd00::/120", None, None);
        let ip = allocate(&st, &s, 3, "abc ", "eth1", None).unwrap();
        assert_eq!(ip.address.to_string(), "fd00::2/120");
        let lease = dir.path().join("net/fd00::2");
        assert_eq!(std::fs::read(&lease).unwrap(), b"abc\r\neth1");
        assert_eq!(
            std::fs::metadata(&lease).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("net/last_reserved_ip.3")).unwrap(),
            "fd00::2"
        );
    }

    #[test]
    fn requested_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path());
        let s = set("10.9.0.0/24", Some("10.9.0.10"), Some("10.9.0.20"));
        let ip = "10.9.0.15".parse().unwrap();
        allocate(&st, &s, 0, "a", "eth0", Some(ip)).unwrap();
        assert!(matches!(
            allocate(&st, &s, 0, "b", "eth0", Some(ip)),
            Err(AllocError::Unavailable { .. })
        ));
        assert!(matches!(
            allocate(&st, &s, 0, "b", "eth0", Some("10.9.0.50".parse().unwrap())),
            Err(AllocError::NotInRange { .. })
        ));
    }

    #[test]
    fn release_falls_back_to_legacy_leases() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path());
        std::fs::write(dir.path().join("net/10.0.0.7"), "old-id\n").unwrap();
        std::fs::write(dir.path().join("net/10.0.0.8"), "other\r\neth0").unwrap();
        assert_eq!(st.leased_to("old-id", "eth0").unwrap().len(), 1);
        assert_eq!(st.release("old-id", "eth0").unwrap().len(), 1);
        assert!(!dir.path().join("net/10.0.0.7").exists());
        assert!(dir.path().join("net/10.0.0.8").exists());
        assert!(st.release("old-id", "eth0").unwrap().is_empty());
    }

    #[test]
    fn resolv_conf_parsing() {
        let dns =
            parse_resolv_conf("nameserver 1.1.1.1\n# c\nsearch a b\noptions ndots:2\ndomain x\n");
        assert_eq!(dns.nameservers, ["1.1.1.1"]);
        assert_eq!(dns.search, ["a", "b"]);
        assert_eq!(dns.options, ["ndots:2"]);
        assert_eq!(dns.domain.as_deref(), Some("x"));
    }

    #[test]
    fn network_names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Store::open(dir.path(), "../etc", true).is_err());
        assert!(Store::open(dir.path(), "", true).is_err());
        assert!(Store::open(dir.path(), "missing", false).unwrap().is_none());
    }
}
