//! Pod networking with CNI plugins (see `docs/networking.md`).
//!
//! `--net` chooses the pod's network: `host` (the caller's), `none` (a namespace of
//! its own with only `lo`, made by stage1), or a list of CNI networks
//! (`default`, `default-restricted`, names from `net.d`, or `all`), each optionally
//! with `:K=V;K2=V2` passed to its plugins as `CNI_ARGS`.
//!
//! For CNI networks stage0 does the work, between moving the pod to `run/` and
//! starting stage1 ([`PodNetworking`], a [`StartHook`]):
//! 1. read the configurations (`<local-config>/net.d`, then `<system-config>/net.d`;
//!    `default` and `default-restricted` are written to the local `net.d` on first
//!    use if neither directory defines them);
//! 2. make the pod's network namespace, bind-mounted on `<pod>/netns`;
//! 3. for each network, in order, save `<pod>/net/<n>-<name>.json` (the exact
//!    configuration, interface `eth<n>`, container ID, `CNI_ARGS`, capability
//!    arguments and CNI path) and run the plugins' ADD in list order, chaining
//!    `prevResult`; save the final result in the same file;
//! 4. point `runtime.json`'s `netns` at the namespace and give the pod the result's
//!    DNS settings (unless the user chose some) and an `/etc/hosts` line for its
//!    address.
//!
//! Any failure undoes everything done so far and names the network, the plugin and
//! the file. [`teardown`] releases a pod's networks from the saved files alone: DEL
//! in reverse network and plugin order with the saved configuration and result, then
//! the namespace mount. `rkt gc` and `rkt rm` run it (through the pods module) before
//! deleting a pod directory, so a pod whose stage1 was killed is released too, even
//! if `net.d` changed in between.

pub mod config;
pub mod netns;
pub mod plugin;
pub mod result;
#[cfg(test)]
mod tests;

use std::fmt;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use manifests::pod::{ExposedPort, PodManifest};
use manifests::poddir::fs::{Durability, Perm};
use manifests::runtime::{Dns as RuntimeDns, Flavor, HostsEntry, RuntimeConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::pod::dir::{
    NetworkError, NetworkInfo, PodError, PodNetworks, StartHook, MANIFEST_FILE, POD_DIR_MODE,
    POD_FILE_MODE, RUNTIME_FILE,
};
pub use config::{NetworkConfig, NetworkSet, DEFAULT_NETWORK, DEFAULT_RESTRICTED_NETWORK};
pub use plugin::{CniCommand, CniPath, PluginError};
pub use result::CniResult;

/// The pod's network namespace, bind-mounted (in the pod directory), and the saved
/// attachments, one file per network: defined with the rest of the pod directory's
/// contract, in `manifests::poddir`.
pub use manifests::poddir::{NETNS_FILE, NET_DIR};
/// The capability `--port` is handed to plugins as.
pub const PORT_MAPPINGS: &str = "portMappings";

/// What `--net` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetMode {
    /// The caller's network namespace.
    Host,
    /// A namespace of the pod's own with only `lo` (made by stage1).
    None,
    /// These CNI networks, in order (interfaces `eth0`, `eth1`, ...).
    Cni(Vec<NetArg>),
    /// Every network in the configuration directories, in file-name order.
    All,
}

impl NetMode {
    /// Parse `--net` values (each a comma-separated list; several flags add up). No
    /// value, or only empty ones, means `default`.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<NetMode, NetError> {
        let whole = values
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(",");
        let bad = |reason: String| NetError::Flag {
            value: whole.clone(),
            reason,
        };
        let mut nets: Vec<NetArg> = Vec::new();
        for item in whole.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let arg = NetArg::parse(item).map_err(&bad)?;
            if nets.iter().any(|n| n.name == arg.name) {
                return Err(bad(format!("network {} is listed twice", arg.name)));
            }
            nets.push(arg);
        }
        if nets.is_empty() {
            return Ok(NetMode::Cni(vec![NetArg::named(DEFAULT_NETWORK)]));
        }
        let special = nets
            .iter()
            .find(|n| config::RESERVED_NAMES.contains(&n.name.as_str()));
        if let Some(s) = special {
            if nets.len() > 1 {
                return Err(bad(format!(
                    "{} cannot be combined with other networks",
                    s.name
                )));
            }
            if !s.args.is_empty() {
                return Err(bad(format!("{} takes no arguments", s.name)));
            }
            return Ok(match s.name.as_str() {
                "host" => NetMode::Host,
                "none" => NetMode::None,
                _ => NetMode::All,
            });
        }
        Ok(NetMode::Cni(nets))
    }

    /// Whether stage0 runs CNI plugins for this mode.
    pub fn uses_cni(&self) -> bool {
        matches!(self, NetMode::Cni(_) | NetMode::All)
    }
}

impl fmt::Display for NetMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetMode::Host => f.write_str("host"),
            NetMode::None => f.write_str("none"),
            NetMode::All => f.write_str("all"),
            NetMode::Cni(nets) => {
                let parts: Vec<String> = nets.iter().map(NetArg::to_string).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

/// One network of `--net`, with the `K=V` pairs after its `:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetArg {
    pub name: String,
    pub args: Vec<(String, String)>,
}

impl NetArg {
    pub fn named(name: &str) -> NetArg {
        NetArg {
            name: name.to_string(),
            args: Vec::new(),
        }
    }

    /// `NAME[:K=V;K2=V2]`.
    pub fn parse(item: &str) -> Result<NetArg, String> {
        let (name, rest) = match item.split_once(':') {
            Some((n, r)) => (n.trim(), Some(r)),
            None => (item.trim(), None),
        };
        if !config::valid_network_name(name) {
            return Err(format!(
                "{name:?} is not a network name (letters, digits, '_', '.', '-')"
            ));
        }
        let mut args = Vec::new();
        for pair in rest
            .unwrap_or("")
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} in network {name} is not KEY=VALUE"))?;
            let k = k.trim();
            if k.is_empty()
                || !k
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!(
                    "{k:?} in network {name} is not a valid argument name"
                ));
            }
            if v.contains(',') {
                return Err(format!("the value of {k} in network {name} contains ','"));
            }
            args.push((k.to_string(), v.trim().to_string()));
        }
        Ok(NetArg {
            name: name.to_string(),
            args,
        })
    }

    /// `CNI_ARGS` for this network: the pairs joined with `;`, led by
    /// `IgnoreUnknown=1` (so a plugin that does not know a key skips it, as with
    /// rkt's `IP=`), unless the user set `IgnoreUnknown` already. Empty if no pairs.
    pub fn cni_args(&self) -> String {
        if self.args.is_empty() {
            return String::new();
        }
        let mut parts = Vec::new();
        if !self.args.iter().any(|(k, _)| k == "IgnoreUnknown") {
            parts.push("IgnoreUnknown=1".to_string());
        }
        parts.extend(self.args.iter().map(|(k, v)| format!("{k}={v}")));
        parts.join(";")
    }
}

impl fmt::Display for NetArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.args.is_empty() {
            let pairs: Vec<String> = self.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            write!(f, ":{}", pairs.join(";"))?;
        }
        Ok(())
    }
}

/// Parse `--port` values: `NAME:HOSTPORT` or `NAME:HOSTIP:HOSTPORT`, NAME being a
/// port name of an app's image (`app.ports`). The app port is filled in later
/// ([`crate::pod::spec::resolve_ports`]).
pub fn parse_port(value: &str) -> Result<ExposedPort, NetError> {
    let bad = |reason: &str| NetError::Port {
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let parts: Vec<&str> = value.split(':').collect();
    let (name, host_ip, port) = match parts.as_slice() {
        [name, port] => (*name, None, *port),
        [name, ip, port] => (*name, Some(*ip), *port),
        _ => return Err(bad("expected NAME:HOSTPORT or NAME:HOSTIP:HOSTPORT")),
    };
    manifests::pod::validate_ac_name("port", name).map_err(|_| {
        bad("the name must be a port name of the image (lower-case letters, digits, '-')")
    })?;
    let host_port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| bad("the host port must be a number from 1 to 65535"))?;
    if let Some(ip) = host_ip {
        ip.parse::<std::net::IpAddr>()
            .map_err(|_| bad("the host IP is not an IP address"))?;
    }
    Ok(ExposedPort {
        name: name.to_string(),
        host_port,
        host_ip: host_ip.map(str::to_string),
        pod_port: None,
    })
}

/// The `portMappings` capability argument for a pod manifest's exposed ports.
pub fn port_mappings(manifest: &PodManifest) -> Result<Vec<Value>, NetError> {
    let mut out = Vec::new();
    for exposed in &manifest.ports {
        let port = match &exposed.pod_port {
            Some(p) => Some(p.clone()),
            None => manifest
                .apps
                .iter()
                .filter_map(|a| a.app.as_ref())
                .flat_map(|a| a.ports.iter())
                .find(|p| p.name == exposed.name)
                .cloned(),
        };
        let Some(port) = port else {
            return Err(NetError::UnknownPort {
                name: exposed.name.clone(),
            });
        };
        let mut m = Map::new();
        m.insert("hostPort".into(), exposed.host_port.into());
        m.insert("containerPort".into(), port.port.into());
        m.insert("protocol".into(), port.protocol.to_ascii_lowercase().into());
        if let Some(ip) = &exposed.host_ip {
            m.insert("hostIP".into(), ip.clone().into());
        }
        out.push(Value::Object(m));
    }
    Ok(out)
}

/// What a pod's networking is resolved from at start time.
#[derive(Debug, Clone)]
pub struct NetOptions {
    pub mode: NetMode,
    pub local_config: PathBuf,
    pub system_config: PathBuf,
    /// `--cni-path`; `None` for the default ([`CniPath::default_dirs`]).
    pub cni_path: Option<CniPath>,
}

impl NetOptions {
    /// The directories plugins are looked up in.
    pub fn search_path(&self) -> CniPath {
        self.cni_path.clone().unwrap_or_else(CniPath::default_dirs)
    }
}

/// Check, without changing anything, that every network `opts` names is defined (or
/// built in): for `rkt run`, to fail before fetching and preparing.
pub fn check(opts: &NetOptions) -> Result<(), NetError> {
    if !opts.mode.uses_cni() {
        return Ok(());
    }
    let set = config::load(&opts.local_config, &opts.system_config)?;
    let unknown = |name: &str| NetError::UnknownNetwork {
        name: name.to_string(),
        searched: set.searched.clone(),
        broken: set.broken.iter().map(ToString::to_string).collect(),
    };
    match &opts.mode {
        NetMode::All if set.networks.is_empty() => Err(unknown("all")),
        NetMode::Cni(args) => {
            for arg in args {
                if !set.networks.contains_key(&arg.name) && config::builtin(&arg.name).is_none() {
                    return Err(unknown(&arg.name));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// One network a pod is to be attached to.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub network: NetworkConfig,
    pub ifname: String,
    pub cni_args: String,
    /// Capability arguments (only those some plugin of the network asks for).
    pub capability_args: Map<String, Value>,
}

/// Resolve `--net` networks against the configuration directories: `default` and
/// `default-restricted` fall back to the built-in ones (written to the local
/// `net.d`). Port mappings go to the first network with a plugin that takes them.
pub fn resolve(opts: &NetOptions, port_mappings: &[Value]) -> Result<Vec<Attachment>, NetError> {
    let set = config::load(&opts.local_config, &opts.system_config)?;
    let mut chosen: Vec<(NetworkConfig, &NetArg)> = Vec::new();
    let no_args = NetArg::named("");
    match &opts.mode {
        NetMode::Host | NetMode::None => return Ok(Vec::new()),
        NetMode::All => {
            for net in set.all_in_order() {
                chosen.push((net.clone(), &no_args));
            }
            if chosen.is_empty() {
                return Err(NetError::UnknownNetwork {
                    name: "all".into(),
                    searched: set.searched.clone(),
                    broken: set.broken.iter().map(ToString::to_string).collect(),
                });
            }
        }
        NetMode::Cni(args) => {
            for arg in args {
                let net = match set.networks.get(&arg.name) {
                    Some(n) => n.clone(),
                    None => match config::write_builtin(&opts.local_config, &arg.name)? {
                        Some(n) => n,
                        None => {
                            return Err(NetError::UnknownNetwork {
                                name: arg.name.clone(),
                                searched: set.searched.clone(),
                                broken: set.broken.iter().map(ToString::to_string).collect(),
                            })
                        }
                    },
                };
                chosen.push((net, arg));
            }
        }
    }
    let mut ports_given = port_mappings.is_empty();
    let mut out = Vec::with_capacity(chosen.len());
    for (i, (network, arg)) in chosen.into_iter().enumerate() {
        let mut capability_args = Map::new();
        if !ports_given && network.wants_capability(PORT_MAPPINGS) {
            capability_args.insert(PORT_MAPPINGS.into(), Value::Array(port_mappings.to_vec()));
            ports_given = true;
        }
        out.push(Attachment {
            ifname: format!("eth{i}"),
            cni_args: arg.cni_args(),
            network,
            capability_args,
        });
    }
    if !ports_given {
        return Err(NetError::NoPortMapping {
            networks: out.iter().map(|a| a.network.name.clone()).collect(),
        });
    }
    Ok(out)
}

/// What is saved in `<pod>/net/<n>-<name>.json` for one network: everything DEL
/// needs, so a pod is released the way it was attached even if `net.d` changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetRecord {
    pub network: String,
    /// The configuration file it came from.
    pub file: PathBuf,
    pub ifname: String,
    pub container_id: String,
    #[serde(default)]
    pub cni_args: String,
    /// The plugin search path used at ADD.
    #[serde(default)]
    pub cni_path: Vec<PathBuf>,
    #[serde(default)]
    pub capability_args: Map<String, Value>,
    /// The network configuration list, exactly as used (version resolved).
    pub config: Value,
    /// The final ADD result; `null` while (or if) ADD did not finish.
    #[serde(default)]
    pub result: Option<Value>,
}

impl NetRecord {
    fn network_config(&self, path: &Path) -> Result<NetworkConfig, NetError> {
        let bytes = serde_json::to_vec(&self.config).map_err(|e| NetError::ParsePodFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut net = NetworkConfig::from_bytes(&self.file, &bytes)?;
        net.file.clone_from(&self.file);
        Ok(net)
    }

    /// The parsed final result, if ADD finished.
    pub fn parsed_result(&self) -> Option<CniResult> {
        self.result.as_ref().and_then(|r| result::parse(r).ok())
    }
}

/// A saved attachment and its file.
#[derive(Debug, Clone)]
pub struct SavedAttachment {
    pub path: PathBuf,
    pub index: usize,
    pub record: NetRecord,
}

/// The saved attachments of a pod, in attachment order.
pub fn saved(pod_dir: &Path) -> Result<Vec<SavedAttachment>, NetError> {
    let dir = pod_dir.join(NET_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(NetError::ReadPodFile { path: dir, source }),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| NetError::ReadPodFile {
            path: dir.clone(),
            source,
        })?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(index) = name
            .strip_suffix(".json")
            .and_then(|n| n.split_once('-'))
            .and_then(|(i, _)| i.parse::<usize>().ok())
        else {
            continue;
        };
        let bytes = fs::read(&path).map_err(|source| NetError::ReadPodFile {
            path: path.clone(),
            source,
        })?;
        let record: NetRecord =
            serde_json::from_slice(&bytes).map_err(|e| NetError::ParsePodFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        out.push(SavedAttachment {
            path,
            index,
            record,
        });
    }
    out.sort_by_key(|s| s.index);
    Ok(out)
}

/// The networks of a pod and the first address of each (IPv4 preferred), from the
/// saved results: what `rkt list` and `rkt status` show.
pub fn networks_of(pod_dir: &Path) -> Result<Vec<NetworkInfo>, NetError> {
    Ok(saved(pod_dir)?
        .into_iter()
        .map(|s| {
            let ip = s.record.parsed_result().and_then(|r| {
                r.ips
                    .iter()
                    .find(|ip| ip.is_ipv4())
                    .or(r.ips.first())
                    .map(|ip| ip.ip().to_string())
            });
            NetworkInfo {
                name: s.record.network,
                ip,
            }
        })
        .collect())
}

/// Attach the pod in `pod_dir` to `attachments`: make its network namespace and
/// run every network's ADD, saving each attachment first. On failure everything is
/// undone (DEL of what was attempted, namespace removed) and the error returned.
/// Returns the results, in order, and the namespace path.
pub fn setup(
    pod_dir: &Path,
    container_id: &str,
    attachments: &[Attachment],
    cni_path: &CniPath,
) -> Result<(PathBuf, Vec<CniResult>), NetError> {
    // Every plugin must be there before anything is changed.
    for att in attachments {
        for ty in att.network.plugin_types() {
            find_plugin(&att.network, &ty, cni_path)?;
        }
    }
    let ns_path = pod_dir.join(NETNS_FILE);
    netns::create(&ns_path).map_err(|source| NetError::CreateNetns {
        path: ns_path.clone(),
        source,
    })?;
    let attached = (|| {
        let net_dir = pod_dir.join(NET_DIR);
        DirBuilder::new()
            .mode(POD_DIR_MODE)
            .recursive(true)
            .create(&net_dir)
            .map_err(|source| NetError::WritePodFile {
                path: net_dir.clone(),
                source,
            })?;
        let mut results = Vec::with_capacity(attachments.len());
        for (i, att) in attachments.iter().enumerate() {
            let path = net_dir.join(format!("{i}-{}.json", att.network.name));
            let mut record = NetRecord {
                network: att.network.name.clone(),
                file: att.network.file.clone(),
                ifname: att.ifname.clone(),
                container_id: container_id.to_string(),
                cni_args: att.cni_args.clone(),
                cni_path: cni_path.dirs.clone(),
                capability_args: att.capability_args.clone(),
                config: att.network.to_value(),
                result: None,
            };
            // Saved before ADD: a crash in the middle still leads to a DEL.
            write_record(&path, &record)?;
            let (raw, parsed) = add(&att.network, &record, &ns_path, cni_path)?;
            record.result = Some(raw);
            write_record(&path, &record)?;
            tracing::debug!(network = %att.network.name, ifname = %att.ifname, "attached");
            results.push(parsed);
        }
        Ok(results)
    })();
    match attached {
        Ok(results) => Ok((ns_path, results)),
        Err(error) => match teardown(pod_dir, cni_path) {
            Ok(()) => Err(error),
            Err(cleanup) => Err(NetError::Rollback {
                error: Box::new(error),
                cleanup: Box::new(cleanup),
            }),
        },
    }
}

fn write_record(path: &Path, record: &NetRecord) -> Result<(), NetError> {
    let bytes = serde_json::to_vec_pretty(record).map_err(|e| NetError::ParsePodFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NetError> {
    manifests::poddir::fs::write_atomic(path, bytes, Perm::Umask(POD_FILE_MODE), Durability::Disk)
        .map_err(|source| NetError::WritePodFile {
            path: path.to_path_buf(),
            source,
        })
}

/// The configuration one plugin of `net` gets on stdin: its own object with the
/// list's `cniVersion` and `name`, `runtimeConfig` holding the capability arguments
/// it asked for (`capabilities` removed), and `prevResult` when given.
pub fn plugin_config(
    net: &NetworkConfig,
    plugin: &Value,
    capability_args: &Map<String, Value>,
    prev_result: Option<&Value>,
) -> Value {
    let mut obj = plugin.as_object().cloned().unwrap_or_default();
    obj.insert("cniVersion".into(), Value::String(net.cni_version.clone()));
    obj.insert("name".into(), Value::String(net.name.clone()));
    obj.remove("runtimeConfig");
    if let Some(Value::Object(caps)) = obj.remove("capabilities") {
        let mut runtime = Map::new();
        for (cap, wanted) in caps {
            if wanted == Value::Bool(true) {
                if let Some(arg) = capability_args.get(&cap) {
                    runtime.insert(cap, arg.clone());
                }
            }
        }
        if !runtime.is_empty() {
            obj.insert("runtimeConfig".into(), Value::Object(runtime));
        }
    }
    obj.remove("prevResult");
    if let Some(prev) = prev_result {
        obj.insert("prevResult".into(), prev.clone());
    }
    Value::Object(obj)
}

fn plugin_error(
    net: &NetworkConfig,
    plugin: &str,
    binary: &Path,
    command: CniCommand,
    source: PluginError,
) -> NetError {
    NetError::Plugin {
        network: net.name.clone(),
        file: net.file.clone(),
        plugin: plugin.to_string(),
        binary: binary.to_path_buf(),
        command,
        source: Box::new(source),
    }
}

fn find_plugin(net: &NetworkConfig, plugin: &str, path: &CniPath) -> Result<PathBuf, NetError> {
    path.find(plugin).ok_or_else(|| NetError::PluginNotFound {
        network: net.name.clone(),
        file: net.file.clone(),
        plugin: plugin.to_string(),
        path: path.clone(),
    })
}

/// One plugin of `net` called as `inv` says, with its configuration from the list
/// (plus `prevResult` when given): its type, binary and stdout.
fn call_plugin(
    net: &NetworkConfig,
    plugin: &Value,
    record: &NetRecord,
    prev: Option<&Value>,
    inv: &plugin::Invocation<'_>,
) -> Result<(String, PathBuf, Vec<u8>), NetError> {
    let ty = config::plugin_type(plugin);
    let binary = find_plugin(net, &ty, inv.path)?;
    let conf = plugin_config(net, plugin, &record.capability_args, prev);
    let stdin = serde_json::to_vec(&conf).unwrap_or_default();
    let out = plugin::exec(&binary, inv, &stdin, plugin::PLUGIN_TIMEOUT)
        .map_err(|e| plugin_error(net, &ty, &binary, inv.command, e))?;
    Ok((ty, binary, out))
}

/// ADD through every plugin of the network, in order; returns the final raw result
/// and its parsed form.
fn add(
    net: &NetworkConfig,
    record: &NetRecord,
    ns_path: &Path,
    cni_path: &CniPath,
) -> Result<(Value, CniResult), NetError> {
    let chaining = config::version_at_least(&net.cni_version, "0.3.0");
    let inv = plugin::Invocation {
        command: CniCommand::Add,
        container_id: &record.container_id,
        netns: Some(ns_path),
        ifname: &record.ifname,
        cni_args: &record.cni_args,
        path: cni_path,
    };
    let mut prev: Option<Value> = None;
    for p in net.plugins() {
        let (ty, binary, out) =
            call_plugin(net, p, record, prev.as_ref().filter(|_| chaining), &inv)?;
        let text = String::from_utf8_lossy(&out);
        if text.trim().is_empty() {
            if prev.is_some() {
                continue;
            }
            return Err(plugin_error(
                net,
                &ty,
                &binary,
                CniCommand::Add,
                PluginError::BadOutput {
                    reason: "no output".into(),
                    output: String::new(),
                },
            ));
        }
        let bad = |reason: String| {
            plugin_error(
                net,
                &ty,
                &binary,
                CniCommand::Add,
                PluginError::BadOutput {
                    reason,
                    output: plugin::tail(text.trim()),
                },
            )
        };
        let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        result::parse(&value).map_err(bad)?;
        prev = Some(value);
    }
    let raw = prev.unwrap_or(Value::Null);
    let parsed = result::parse(&raw).unwrap_or_default();
    Ok((raw, parsed))
}

/// DEL through every plugin of a saved attachment, in reverse order. Every plugin is
/// called even if one fails (to release as much as possible); the first failure is
/// returned.
fn del(
    saved: &SavedAttachment,
    ns_path: Option<&Path>,
    fallback: &CniPath,
) -> Result<(), NetError> {
    let record = &saved.record;
    let net = record.network_config(&saved.path)?;
    let cni_path = fallback.then(&CniPath {
        dirs: record.cni_path.clone(),
    });
    // prevResult on DEL came with CNI 0.4.0.
    let prev = record
        .result
        .as_ref()
        .filter(|r| !r.is_null() && config::version_at_least(&net.cni_version, "0.4.0"));
    let inv = plugin::Invocation {
        command: CniCommand::Del,
        container_id: &record.container_id,
        netns: ns_path,
        ifname: &record.ifname,
        cni_args: &record.cni_args,
        path: &cni_path,
    };
    let mut first: Option<NetError> = None;
    for p in net.plugins().iter().rev() {
        if let Err(e) = call_plugin(&net, p, record, prev, &inv) {
            let ty = config::plugin_type(p);
            tracing::warn!(network = %net.name, plugin = %ty, error = %manifests::error::chain(&e), "DEL failed");
            first.get_or_insert(e);
        }
    }
    match first {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// CHECK every saved attachment of the running pod in `pod_dir` (CNI 0.4.0+): each
/// plugin of each network is asked, with the saved configuration and final ADD result
/// as `prevResult`, whether the pod's networking is still as ADD left it. `Ok(())`
/// when every CHECK passed or none applies (no networks; a network older than 0.4.0,
/// with `disableCheck`, or whose ADD did not finish); the first failure otherwise.
/// A missing namespace is a failure without calling any plugin.
pub fn check_pod(pod_dir: &Path, fallback: &CniPath) -> Result<(), NetError> {
    let attachments = saved(pod_dir)?;
    if attachments.is_empty() {
        return Ok(());
    }
    let ns_path = pod_dir.join(NETNS_FILE);
    if !netns::is_mounted(&ns_path) {
        return Err(NetError::NetnsGone { path: ns_path });
    }
    for s in &attachments {
        let record = &s.record;
        let Some(prev) = record.result.as_ref().filter(|r| !r.is_null()) else {
            continue;
        };
        let net = record.network_config(&s.path)?;
        let disabled = record.config["disableCheck"].as_bool().unwrap_or(false);
        if disabled || !config::version_at_least(&net.cni_version, "0.4.0") {
            continue;
        }
        let cni_path = fallback.then(&CniPath {
            dirs: record.cni_path.clone(),
        });
        let inv = plugin::Invocation {
            command: CniCommand::Check,
            container_id: &record.container_id,
            netns: Some(&ns_path),
            ifname: &record.ifname,
            cni_args: &record.cni_args,
            path: &cni_path,
        };
        for p in net.plugins() {
            call_plugin(&net, p, record, Some(prev), &inv)?;
        }
    }
    Ok(())
}

/// Release everything the pod in `pod_dir` holds on the network: DEL of every saved
/// attachment (last network first) with its saved configuration, result and
/// arguments, then the namespace mount and file. `cni_path` is searched before the
/// path saved at ADD. Idempotent; a pod without networks is fine. If a DEL fails its
/// file and the namespace stay, so a later call can try again — except for a network
/// whose ADD never finished (no saved result), where DEL is best effort.
pub fn teardown(pod_dir: &Path, cni_path: &CniPath) -> Result<(), NetError> {
    let ns_path = pod_dir.join(NETNS_FILE);
    let ns = netns::is_mounted(&ns_path).then_some(ns_path.as_path());
    let mut errors = Vec::new();
    let attachments = saved(pod_dir)?;
    for s in attachments.iter().rev() {
        match del(s, ns, cni_path) {
            Ok(()) => {
                if let Err(source) = fs::remove_file(&s.path) {
                    errors.push(NetError::RemovePodFile {
                        path: s.path.clone(),
                        source,
                    });
                }
                tracing::debug!(network = %s.record.network, "released");
            }
            // ADD never finished for this network (it failed, or stage0 died in the
            // middle): DEL is best effort. A plugin whose configuration was the
            // reason ADD failed would refuse DEL for ever, and what ADD made inside
            // the namespace goes with it.
            Err(e) if s.record.result.is_none() => {
                tracing::warn!(network = %s.record.network, error = %manifests::error::chain(&e), "DEL after an unfinished ADD failed; ignoring");
                if let Err(source) = fs::remove_file(&s.path) {
                    errors.push(NetError::RemovePodFile {
                        path: s.path.clone(),
                        source,
                    });
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        if let Err(source) = netns::remove(&ns_path) {
            errors.push(NetError::RemoveNetns {
                path: ns_path.clone(),
                source,
            });
        }
        let net_dir = pod_dir.join(NET_DIR);
        match fs::remove_dir_all(&net_dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => errors.push(NetError::RemovePodFile {
                path: net_dir,
                source: e,
            }),
            _ => {}
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(NetError::Teardown {
            dir: pod_dir.to_path_buf(),
            errors,
        }),
    }
}

/// Whether the pod directory holds network state (saved attachments or a
/// namespace file) that [`teardown`] would release.
pub fn has_state(pod_dir: &Path) -> bool {
    pod_dir.join(NET_DIR).exists() || pod_dir.join(NETNS_FILE).exists()
}

/// The [`StartHook`] that gives a pod its network as it starts: reads the pod's
/// `runtime.json` and manifest, attaches the networks of [`NetOptions::mode`] and
/// amends `runtime.json` (`netns`, `privateNetwork`, `dns`, `hostsEntries`) for
/// stage1. If stage1 then cannot start, the networks are released and
/// `runtime.json` is restored.
#[derive(Debug)]
pub struct PodNetworking {
    pub opts: NetOptions,
    /// `runtime.json` as it was before this hook changed it.
    original_runtime: Option<Vec<u8>>,
}

impl PodNetworking {
    pub fn new(opts: NetOptions) -> PodNetworking {
        PodNetworking {
            opts,
            original_runtime: None,
        }
    }

    fn start(&mut self, uuid: &str, dir: &Path) -> Result<(), NetError> {
        self.original_runtime = None;
        // Absolute, so stage1 (and plugins) find it whatever their working directory.
        let dir = fs::canonicalize(dir).map_err(|source| NetError::ReadPodFile {
            path: dir.to_path_buf(),
            source,
        })?;
        let runtime_path = dir.join(RUNTIME_FILE);
        let original = fs::read(&runtime_path).map_err(|source| NetError::ReadPodFile {
            path: runtime_path.clone(),
            source,
        })?;
        let mut runtime =
            RuntimeConfig::from_slice(&original).map_err(|e| NetError::ParsePodFile {
                path: runtime_path.clone(),
                reason: manifests::error::chain(&e),
            })?;
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest_bytes = fs::read(&manifest_path).map_err(|source| NetError::ReadPodFile {
            path: manifest_path.clone(),
            source,
        })?;
        let manifest =
            PodManifest::from_slice(&manifest_bytes).map_err(|e| NetError::ParsePodFile {
                path: manifest_path.clone(),
                reason: manifests::error::chain(&e),
            })?;
        // A failed start whose cleanup failed too may have left state: release it
        // before attaching again.
        if has_state(&dir) {
            teardown(&dir, &self.opts.search_path())?;
        }
        let ports = port_mappings(&manifest)?;
        let mode = &self.opts.mode;
        if runtime.flavor == Flavor::Fly && *mode != NetMode::Host {
            return Err(NetError::Fly {
                mode: mode.to_string(),
            });
        }
        if !ports.is_empty() && !mode.uses_cni() {
            return Err(NetError::NoPortMapping {
                networks: vec![mode.to_string()],
            });
        }
        runtime.netns = None;
        runtime.private_network = *mode == NetMode::None;
        if mode.uses_cni() {
            let attachments = resolve(&self.opts, &ports)?;
            let cni_path = self.opts.search_path();
            let (ns_path, results) = setup(&dir, uuid, &attachments, &cni_path)?;
            runtime.netns = Some(ns_path);
            apply_results(&mut runtime, &results);
        }
        let bytes = serde_json::to_vec_pretty(&runtime).map_err(|e| NetError::ParsePodFile {
            path: runtime_path.clone(),
            reason: e.to_string(),
        })?;
        if bytes != original {
            if let Err(error) = write_atomic(&runtime_path, &bytes) {
                return Err(match teardown(&dir, &self.opts.search_path()) {
                    Ok(()) => error,
                    Err(cleanup) => NetError::Rollback {
                        error: Box::new(error),
                        cleanup: Box::new(cleanup),
                    },
                });
            }
            self.original_runtime = Some(original);
        }
        Ok(())
    }

    fn undo(&mut self, dir: &Path) -> Result<(), NetError> {
        let released = teardown(dir, &self.opts.search_path());
        if let Some(original) = self.original_runtime.take() {
            write_atomic(&dir.join(RUNTIME_FILE), &original)?;
        }
        released
    }
}

/// Give the pod what the CNI results say: DNS settings (from the first result that
/// has any, unless the user chose some) and an `/etc/hosts` line naming the pod's
/// first address with its hostname (and `hostname.domain`).
pub fn apply_results(runtime: &mut RuntimeConfig, results: &[CniResult]) {
    if runtime.dns.is_none() {
        if let Some(dns) = results.iter().map(|r| &r.dns).find(|d| !d.is_empty()) {
            let mut search = dns.search.clone();
            if let Some(domain) = dns.domain.as_deref().filter(|d| !d.is_empty()) {
                if !search.iter().any(|s| s == domain) {
                    search.insert(0, domain.to_string());
                }
            }
            runtime.dns = Some(RuntimeDns {
                nameservers: dns.nameservers.clone(),
                search,
                options: dns.options.clone(),
            });
        }
    }
    let first_ip = results.iter().find_map(|r| {
        r.ips
            .iter()
            .find(|ip| ip.is_ipv4())
            .or(r.ips.first())
            .map(|ip| ip.ip().to_string())
    });
    let hostname = runtime.hostname.clone();
    let named = runtime
        .hosts_entries
        .iter()
        .any(|e| e.hostnames.contains(&hostname));
    if let (Some(ip), false) = (first_ip, named || hostname.is_empty()) {
        let mut hostnames = Vec::new();
        let domain = results
            .iter()
            .find_map(|r| r.dns.domain.clone())
            .filter(|d| !d.is_empty());
        if let Some(d) = domain {
            hostnames.push(format!("{hostname}.{d}"));
        }
        hostnames.push(hostname);
        // The managed entry comes first, the pod's own (hostAliases, --hosts-entry) after it,
        // as kubelet writes them.
        runtime
            .hosts_entries
            .insert(0, HostsEntry { ip, hostnames });
    }
}

impl StartHook for PodNetworking {
    fn before_stage1(&mut self, uuid: &str, dir: &Path) -> Result<(), PodError> {
        self.start(uuid, dir).map_err(|e| PodError::Network {
            source: Box::new(e),
        })
    }

    fn stage1_failed(&mut self, _uuid: &str, dir: &Path) -> Result<(), PodError> {
        self.undo(dir).map_err(|e| PodError::Network {
            source: Box::new(e),
        })
    }
}

/// Errors of pod networking; each names the network, plugin and file involved.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid --net={value}: {reason}")]
    Flag { value: String, reason: String },
    #[error("invalid --port={value}: {reason}")]
    Port { value: String, reason: String },
    #[error("--port {name}: no app of the pod has a port named {name}")]
    UnknownPort { name: String },
    #[error("read network configuration directory {}", .path.display())]
    ReadConfigDir { path: PathBuf, source: io::Error },
    #[error("read network configuration {}", .path.display())]
    ReadConfig { path: PathBuf, source: io::Error },
    #[error("network configuration {}: invalid JSON", .path.display())]
    ParseConfig {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("network configuration {}: {reason}", .path.display())]
    InvalidConfig { path: PathBuf, reason: String },
    #[error("network {name} is not defined in {}{}", display_paths(.searched), broken_note(.broken))]
    UnknownNetwork {
        name: String,
        searched: Vec<PathBuf>,
        broken: Vec<String>,
    },
    #[error("network {network} ({}): plugin {plugin} not found in the CNI path {path} (set --cni-path)", .file.display())]
    PluginNotFound {
        network: String,
        file: PathBuf,
        plugin: String,
        path: CniPath,
    },
    #[error("network {network} ({}): plugin {plugin} ({}) {command} failed", .file.display(), .binary.display())]
    Plugin {
        network: String,
        file: PathBuf,
        plugin: String,
        binary: PathBuf,
        command: CniCommand,
        source: Box<PluginError>,
    },
    #[error("create the pod's network namespace {}", .path.display())]
    CreateNetns { path: PathBuf, source: io::Error },
    #[error("remove the pod's network namespace {}", .path.display())]
    RemoveNetns { path: PathBuf, source: io::Error },
    #[error("the pod's network namespace {} is gone", .path.display())]
    NetnsGone { path: PathBuf },
    #[error("read {}", .path.display())]
    ReadPodFile { path: PathBuf, source: io::Error },
    #[error("write {}", .path.display())]
    WritePodFile { path: PathBuf, source: io::Error },
    #[error("remove {}", .path.display())]
    RemovePodFile { path: PathBuf, source: io::Error },
    #[error("invalid {}: {reason}", .path.display())]
    ParsePodFile { path: PathBuf, reason: String },
    #[error("--net={mode}: the fly stage1 always uses the host's network; use --net=host or the default stage1")]
    Fly { mode: String },
    #[error("--port needs a network with a plugin that handles port mappings (\"capabilities\": {{\"portMappings\": true}}), such as default; the pod's networks: {}", .networks.join(", "))]
    NoPortMapping { networks: Vec<String> },
    #[error(
        "{}; undoing the network setup failed too: {}",
        manifests::error::chain(error),
        manifests::error::chain(cleanup)
    )]
    Rollback {
        error: Box<NetError>,
        cleanup: Box<NetError>,
    },
    #[error("releasing the networks of {} failed: {}", .dir.display(), .errors.iter().map(|e| manifests::error::chain(e)).collect::<Vec<_>>().join("; "))]
    Teardown { dir: PathBuf, errors: Vec<NetError> },
}

fn display_paths(paths: &[PathBuf]) -> String {
    let v: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    v.join(" or ")
}

fn broken_note(broken: &[String]) -> String {
    if broken.is_empty() {
        String::new()
    } else {
        format!(" (files that could not be read: {})", broken.join("; "))
    }
}

/// [`PodNetworks`] with CNI, for the pod directories: a pod's networks are released
/// with [`teardown`] (when it has [`has_state`]), described with [`networks_of`] and
/// checked with [`check_pod`].
#[derive(Debug, Clone)]
pub struct CniNetworks {
    /// Searched for CNI plugins (before the path saved at ADD) when a pod's networks
    /// are released or checked: the path given, then the default.
    search: CniPath,
}

impl CniNetworks {
    /// Look for CNI plugins in `path` first when releasing pods' networks (`rm`,
    /// `gc`); the path saved when the pod was attached and the default follow.
    pub fn with_cni_path(path: CniPath) -> CniNetworks {
        CniNetworks {
            search: path.then(&CniPath::default_dirs()),
        }
    }
}

impl Default for CniNetworks {
    /// The path saved when the pod was attached, then the default.
    fn default() -> CniNetworks {
        CniNetworks::with_cni_path(CniPath::default())
    }
}

impl PodNetworks for CniNetworks {
    fn release(&self, pod_dir: &Path) -> Result<(), NetworkError> {
        if has_state(pod_dir) {
            teardown(pod_dir, &self.search)?;
        }
        Ok(())
    }

    fn describe(&self, pod_dir: &Path) -> (Vec<NetworkInfo>, Option<String>) {
        networks_or_error(pod_dir)
    }

    fn check(&self, pod_dir: &Path) -> Result<(), NetworkError> {
        Ok(check_pod(pod_dir, &self.search)?)
    }
}

/// [`networks_of`] for `PodInfo`: the networks, or none and the error as text.
fn networks_or_error(pod_dir: &Path) -> (Vec<NetworkInfo>, Option<String>) {
    match networks_of(pod_dir) {
        Ok(n) => (n, None),
        Err(e) => (Vec::new(), Some(manifests::error::chain(&e))),
    }
}
