//! Network configurations: reading `net.d`, turning single-plugin `.conf` files into
//! lists, choosing the CNI version, and the built-in `default` and
//! `default-restricted` networks.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::NetError;

/// The directory under each configuration root that holds network configurations.
pub const NET_D: &str = "net.d";
/// The network `--net` means when it is absent or `default`.
pub const DEFAULT_NETWORK: &str = "default";
/// A network with no default route and no masquerade.
pub const DEFAULT_RESTRICTED_NETWORK: &str = "default-restricted";
/// The subnet of the built-in `default` network.
pub const DEFAULT_SUBNET: &str = "172.16.28.0/24";
/// The subnet of the built-in `default-restricted` network.
pub const DEFAULT_RESTRICTED_SUBNET: &str = "172.31.0.0/16";
/// The CNI version the built-in networks are written in.
pub const DEFAULT_CNI_VERSION: &str = "1.0.0";
/// CNI versions this runtime can execute (results of all of them are understood).
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];
/// Names `--net` gives a meaning of its own; no configuration may use them.
pub const RESERVED_NAMES: &[&str] = &["host", "none", "all"];

/// One network, as a list of plugins (a `.conf` file is wrapped into a list of one).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    pub name: String,
    /// The file it was read from (or written to, for a generated built-in network).
    pub file: PathBuf,
    /// The CNI version the plugins are called with (`cniVersion`, or the highest of
    /// `cniVersions` this runtime supports).
    pub cni_version: String,
    /// The network configuration list as plugins get it: `cniVersion`, `name`,
    /// `plugins` and any other keys of the file, passed on unchanged.
    pub list: Map<String, Value>,
}

impl NetworkConfig {
    /// Parse a configuration file's bytes: a list (`*.conflist`, with `plugins`) or a
    /// single plugin (`*.conf`, `*.json`, with `type`), which becomes a list of one.
    pub fn from_bytes(file: &Path, bytes: &[u8]) -> Result<NetworkConfig, NetError> {
        let invalid = |reason: String| NetError::InvalidConfig {
            path: file.to_path_buf(),
            reason,
        };
        let value: Value =
            serde_json::from_slice(bytes).map_err(|source| NetError::ParseConfig {
                path: file.to_path_buf(),
                source,
            })?;
        let Value::Object(mut top) = value else {
            return Err(invalid("the configuration is not a JSON object".into()));
        };
        let name = match top.get("name") {
            Some(Value::String(n)) => n.clone(),
            Some(_) => return Err(invalid("\"name\" is not a string".into())),
            None => return Err(invalid("\"name\" is missing".into())),
        };
        if !valid_network_name(&name) {
            return Err(invalid(format!(
                "network name {name:?} is invalid: use letters, digits, '_', '.' and '-', starting with a letter or digit"
            )));
        }
        if RESERVED_NAMES.contains(&name.as_str()) {
            return Err(invalid(format!(
                "network name {name:?} is reserved (--net={name} has a meaning of its own)"
            )));
        }
        let declared = match top.get("cniVersion") {
            Some(Value::String(v)) => v.clone(),
            Some(_) => return Err(invalid("\"cniVersion\" is not a string".into())),
            // rkt-era files often had none; plugins then assume 0.1.0.
            None => "0.1.0".to_string(),
        };
        let list = if top.contains_key("plugins") {
            let Some(Value::Array(plugins)) = top.get("plugins") else {
                return Err(invalid("\"plugins\" is not a list".into()));
            };
            if plugins.is_empty() {
                return Err(invalid("\"plugins\" is empty".into()));
            }
            for (i, p) in plugins.iter().enumerate() {
                check_plugin(p).map_err(|r| invalid(format!("plugin {}: {r}", i + 1)))?;
            }
            top
        } else {
            // A single plugin: wrap it, as a list with the same name and version.
            check_plugin(&Value::Object(top.clone())).map_err(invalid)?;
            top.remove("name");
            top.remove("cniVersion");
            let mut list = Map::new();
            list.insert("cniVersion".into(), Value::String(declared.clone()));
            list.insert("name".into(), Value::String(name.clone()));
            list.insert("plugins".into(), Value::Array(vec![Value::Object(top)]));
            list
        };
        let cni_version = choose_version(&declared, list.get("cniVersions")).map_err(invalid)?;
        let mut list = list;
        list.insert("cniVersion".into(), Value::String(cni_version.clone()));
        Ok(NetworkConfig {
            name,
            file: file.to_path_buf(),
            cni_version,
            list,
        })
    }

    /// The plugin objects, in order.
    pub fn plugins(&self) -> &[Value] {
        match self.list.get("plugins") {
            Some(Value::Array(p)) => p,
            _ => &[],
        }
    }

    /// The plugin types (binary names), in order.
    pub fn plugin_types(&self) -> Vec<String> {
        self.plugins().iter().map(plugin_type).collect()
    }

    /// Whether some plugin declares `capabilities: {<cap>: true}`.
    pub fn wants_capability(&self, cap: &str) -> bool {
        self.plugins()
            .iter()
            .any(|p| p["capabilities"][cap] == Value::Bool(true))
    }

    /// The list as JSON bytes (what is saved in the pod directory).
    pub fn to_value(&self) -> Value {
        Value::Object(self.list.clone())
    }
}

/// The `type` of a plugin object (empty if it has none; checked at load time).
pub fn plugin_type(plugin: &Value) -> String {
    plugin["type"].as_str().unwrap_or_default().to_string()
}

fn check_plugin(plugin: &Value) -> Result<(), String> {
    let Value::Object(obj) = plugin else {
        return Err("not a JSON object".into());
    };
    match obj.get("type") {
        Some(Value::String(t)) if valid_plugin_type(t) => Ok(()),
        Some(Value::String(t)) => Err(format!(
            "plugin type {t:?} is not a file name (no '/', not empty)"
        )),
        Some(_) => Err("\"type\" is not a string".into()),
        None => Err("\"type\" is missing".into()),
    }
}

fn valid_plugin_type(t: &str) -> bool {
    !t.is_empty() && t != "." && t != ".." && !t.contains('/') && !t.contains('\0')
}

/// `[A-Za-z0-9][A-Za-z0-9_.-]*`, as the CNI specification asks.
pub fn valid_network_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `a.b.c` as numbers, for ordering versions.
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    let out = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(out)
}

/// Whether version `v` is at least `min` (unparsable versions are not).
pub fn version_at_least(v: &str, min: &str) -> bool {
    match (parse_version(v), parse_version(min)) {
        (Some(a), Some(b)) => a.cmp(&b) != Ordering::Less,
        _ => false,
    }
}

/// The version to run a list with: the highest entry of `cniVersions` this runtime
/// supports, else `cniVersion`, which must be supported.
pub fn choose_version(declared: &str, versions: Option<&Value>) -> Result<String, String> {
    if let Some(v) = versions {
        let Value::Array(all) = v else {
            return Err("\"cniVersions\" is not a list".into());
        };
        let best = all
            .iter()
            .filter_map(Value::as_str)
            .filter(|v| SUPPORTED_VERSIONS.contains(v))
            .max_by_key(|v| parse_version(v));
        return match best {
            Some(b) => Ok(b.to_string()),
            None => Err(format!(
                "none of the CNI versions {v} is supported (supported: {})",
                SUPPORTED_VERSIONS.join(", ")
            )),
        };
    }
    if SUPPORTED_VERSIONS.contains(&declared) {
        Ok(declared.to_string())
    } else {
        Err(format!(
            "CNI version {declared:?} is not supported (supported: {})",
            SUPPORTED_VERSIONS.join(", ")
        ))
    }
}

/// The networks found in the configuration directories.
#[derive(Debug, Default)]
pub struct NetworkSet {
    /// By network name; a local file wins over a system file of the same name.
    pub networks: BTreeMap<String, NetworkConfig>,
    /// Files that could not be read or parsed (their network is unknown).
    pub broken: Vec<NetError>,
    /// The directories searched, local first.
    pub searched: Vec<PathBuf>,
}

impl NetworkSet {
    /// Every network, in the order of their file names (what `--net=all` attaches).
    pub fn all_in_order(&self) -> Vec<&NetworkConfig> {
        let mut all: Vec<&NetworkConfig> = self.networks.values().collect();
        all.sort_by(|a, b| (a.file.file_name(), &a.name).cmp(&(b.file.file_name(), &b.name)));
        all
    }
}

/// Read `<local_config>/net.d` and `<system_config>/net.d`: every `*.conflist`,
/// `*.conf` and `*.json` file, in lexicographic order. A network defined in the
/// local directory hides one of the same name in the system directory; within one
/// directory the first file wins (a warning names the other). Unreadable files are
/// collected in [`NetworkSet::broken`], not fatal: they only matter if the network
/// asked for is not found.
pub fn load(local_config: &Path, system_config: &Path) -> Result<NetworkSet, NetError> {
    let mut set = NetworkSet::default();
    for root in [local_config, system_config] {
        let dir = root.join(NET_D);
        set.searched.push(dir.clone());
        let mut found: BTreeMap<String, NetworkConfig> = BTreeMap::new();
        for file in config_files(&dir)? {
            let parsed = fs::read(&file)
                .map_err(|source| NetError::ReadConfig {
                    path: file.clone(),
                    source,
                })
                .and_then(|bytes| NetworkConfig::from_bytes(&file, &bytes));
            match parsed {
                Ok(net) => {
                    if let Some(first) = found.get(&net.name) {
                        tracing::warn!(
                            network = %net.name,
                            used = %first.file.display(),
                            ignored = %file.display(),
                            "two files define the same network; the first is used"
                        );
                        continue;
                    }
                    found.insert(net.name.clone(), net);
                }
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %manifests::error::chain(&e), "ignoring a network configuration");
                    set.broken.push(e);
                }
            }
        }
        for (name, net) in found {
            set.networks.entry(name).or_insert(net);
        }
    }
    Ok(set)
}

/// The configuration files of `dir`, sorted by name; none if it does not exist.
fn config_files(dir: &Path) -> Result<Vec<PathBuf>, NetError> {
    let read_err = |source| NetError::ReadConfigDir {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_err(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(read_err)?;
        let path = entry.path();
        let wanted = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "conf" | "conflist" | "json"));
        if wanted && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The built-in network called `name` (`default` or `default-restricted`), if any.
///
/// `default`: a bridge `rkt0` that is the pod's default gateway, with masquerade,
/// host-local addresses from 172.16.28.0/24, and portmap for `--port`.
/// `default-restricted`: a bridge `rkt1` with an address on the host side but no
/// default route in the pod and no masquerade, from 172.31.0.0/16.
pub fn builtin(name: &str) -> Option<Value> {
    match name {
        DEFAULT_NETWORK => Some(json!({
            "cniVersion": DEFAULT_CNI_VERSION,
            "name": DEFAULT_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "rkt0",
                    "isDefaultGateway": true,
                    "ipMasq": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": DEFAULT_SUBNET}]]
                    }
                },
                {
                    "type": "portmap",
                    "capabilities": {"portMappings": true}
                }
            ]
        })),
        DEFAULT_RESTRICTED_NETWORK => Some(json!({
            "cniVersion": DEFAULT_CNI_VERSION,
            "name": DEFAULT_RESTRICTED_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "rkt1",
                    "isGateway": true,
                    "ipMasq": false,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": DEFAULT_RESTRICTED_SUBNET}]]
                    }
                }
            ]
        })),
        _ => None,
    }
}

/// The file a built-in network is written to: `<local_config>/net.d/99-<name>.conflist`.
pub fn builtin_path(local_config: &Path, name: &str) -> PathBuf {
    local_config.join(NET_D).join(format!("99-{name}.conflist"))
}

/// Write the built-in network `name` to `<local_config>/net.d/` (temp file + rename)
/// and return it. If the directory is not writable the network is still returned,
/// with a warning, so a read-only configuration does not stop pods.
pub fn write_builtin(local_config: &Path, name: &str) -> Result<Option<NetworkConfig>, NetError> {
    let Some(value) = builtin(name) else {
        return Ok(None);
    };
    let path = builtin_path(local_config, name);
    let mut bytes = serde_json::to_vec_pretty(&value).map_err(|source| NetError::ParseConfig {
        path: path.clone(),
        source,
    })?;
    bytes.push(b'\n');
    let net = NetworkConfig::from_bytes(&path, &bytes)?;
    if let Err(e) = write_atomic(&path, &bytes) {
        tracing::warn!(
            network = name,
            file = %path.display(),
            error = %e,
            "cannot save the built-in network configuration; using it without saving"
        );
    } else {
        tracing::debug!(network = name, file = %path.display(), "wrote the built-in network");
    }
    Ok(Some(net))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path)
        .map(|_| ())
        .or_else(|e| match e.error.kind() {
            // Someone else wrote it meanwhile: theirs is as good.
            io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(e.error),
        })
}
