//! Network configurations and results, for plugins and for the runtime that runs them.
//!
//! [`CniResult`] is the 1.0 form; [`CniResult::from_value`] reads a result of any
//! supported version (0.3.0 – 1.0.0) and [`CniResult::to_value`] writes one for a
//! given version. Unknown keys of a plugin configuration are kept in
//! [`NetConf::extra`] so a configuration passes through unchanged.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cidr::IpNet;
use crate::error::{code, CniError};

/// The spec version this crate implements.
pub const CURRENT_VERSION: &str = "1.0.0";

/// Every version the plugins answer to, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// Whether `version` is one the plugins answer to.
pub fn is_supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

/// Compare two dotted versions numerically; `None` if either is not `N.N.N`.
pub fn compare_versions(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    fn parse(v: &str) -> Option<Vec<u64>> {
        let parts: Option<Vec<u64>> = v.split('.').map(|p| p.parse().ok()).collect();
        parts.filter(|p| p.len() == 3)
    }
    Some(parse(a)?.cmp(&parse(b)?))
}

/// Whether results of `version` are in the 0.3/0.4 form (with `ips[].version`).
fn is_pre_1_0(version: &str) -> bool {
    compare_versions(version, "1.0.0") == Some(std::cmp::Ordering::Less)
}

/// One plugin's configuration, as the runtime sends it on stdin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// Capabilities the plugin accepts (`{"portMappings": true}`); the runtime
    /// removes this key and sends the matching `runtimeConfig` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<BTreeMap<String, bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<IpamConf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<Map<String, Value>>,
    /// The previous plugin's result, in the configuration's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// Keys this type does not name (plugin-specific ones), passed through unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl NetConf {
    /// The previous result, converted to the 1.0 form.
    pub fn prev_result(&self) -> Result<Option<CniResult>, CniError> {
        self.prev_result
            .as_ref()
            .map(|v| CniResult::from_value(v.clone()))
            .transpose()
    }

    /// `runtimeConfig[key]`, if present.
    pub fn runtime_config(&self, key: &str) -> Option<&Value> {
        self.runtime_config.as_ref()?.get(key)
    }
}

/// The `ipam` section: the IPAM plugin's type plus its own keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IpamConf {
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A network configuration list (a `.conflist` file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConfList {
    pub cni_version: String,
    /// Versions the list supports (1.1); the runtime picks the highest it knows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cni_versions: Vec<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_check: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_gc: bool,
    /// Plugin objects, kept as JSON so unknown keys pass through untouched.
    pub plugins: Vec<Map<String, Value>>,
}

impl NetConfList {
    /// The stdin for plugin `index` of the list, derived as the spec says: the
    /// list's `cniVersion` and `name` are inserted, `capabilities` is replaced by
    /// `runtimeConfig` holding those of `capability_args` the plugin declared,
    /// and `prevResult` is set when given (in the list's version).
    pub fn plugin_request(
        &self,
        index: usize,
        capability_args: &Map<String, Value>,
        prev_result: Option<&CniResult>,
    ) -> Result<Value, CniError> {
        let plugin = self.plugins.get(index).ok_or_else(|| {
            CniError::config(format!("network {} has no plugin #{index}", self.name))
        })?;
        let mut req = plugin.clone();
        let declared = req.remove("capabilities");
        req.insert("cniVersion".into(), Value::from(self.cni_version.clone()));
        req.insert("name".into(), Value::from(self.name.clone()));
        let mut runtime_config = Map::new();
        if let Some(Value::Object(caps)) = declared {
            for (cap, enabled) in caps {
                if enabled == Value::Bool(true) {
                    if let Some(v) = capability_args.get(&cap) {
                        runtime_config.insert(cap, v.clone());
                    }
                }
            }
        }
        if runtime_config.is_empty() {
            req.remove("runtimeConfig");
        } else {
            req.insert("runtimeConfig".into(), Value::Object(runtime_config));
        }
        match prev_result {
            Some(prev) => {
                req.insert("prevResult".into(), prev.to_value(&self.cni_version)?);
            }
            None => {
                req.remove("prevResult");
            }
        }
        Ok(Value::Object(req))
    }
}

/// DNS settings in a configuration or a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// An interface in a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The netns path for interfaces inside the container; empty on the host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
    #[serde(rename = "pciID", default, skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

/// An address in a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// The address with its subnet's prefix (`10.22.0.5/16`).
    #[serde(with = "crate::cidr::text")]
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into the result's `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route in a result or an IPAM configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    #[serde(with = "crate::cidr::text")]
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Self {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// A successful ADD result in the 1.0 form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    pub cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

impl CniResult {
    /// Read a result of any supported version. `ips[].version` (0.3/0.4) is checked
    /// against the address and dropped.
    pub fn from_value(mut value: Value) -> Result<Self, CniError> {
        let version = value
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !is_supported(&version) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!("unsupported result version {version:?}"),
            )
            .with_details(format!("supported: {}", SUPPORTED_VERSIONS.join(", "))));
        }
        if let Some(ips) = value.get_mut("ips").and_then(Value::as_array_mut) {
            for ip in ips {
                if let Some(obj) = ip.as_object_mut() {
                    obj.remove("version");
                }
            }
        }
        let mut result: CniResult = serde_json::from_value(value).map_err(|e| {
            CniError::new(code::DECODE_FAILURE, "cannot decode result").with_details(e.to_string())
        })?;
        result.cni_version = CURRENT_VERSION.to_string();
        Ok(result)
    }

    /// Parse a result from bytes (say, a delegated plugin's stdout).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CniError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            CniError::new(code::DECODE_FAILURE, "cannot decode result").with_details(e.to_string())
        })?;
        CniResult::from_value(value)
    }

    /// The result as JSON of the given version. Fields that version lacks are
    /// dropped; 0.3/0.4 get `ips[].version`.
    pub fn to_value(&self, version: &str) -> Result<Value, CniError> {
        if !is_supported(version) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!("cannot convert result to version {version:?}"),
            ));
        }
        let mut result = self.clone();
        result.cni_version = version.to_string();
        let mut value = serde_json::to_value(&result).map_err(|e| {
            CniError::new(code::DECODE_FAILURE, "cannot encode result").with_details(e.to_string())
        })?;
        if is_pre_1_0(version) {
            if let Some(ifaces) = value.get_mut("interfaces").and_then(Value::as_array_mut) {
                for iface in ifaces.iter_mut().filter_map(Value::as_object_mut) {
                    for key in ["mtu", "socketPath", "pciID"] {
                        iface.remove(key);
                    }
                }
            }
            if let Some(ips) = value.get_mut("ips").and_then(Value::as_array_mut) {
                for (ip, config) in ips.iter_mut().zip(&self.ips) {
                    if let Some(obj) = ip.as_object_mut() {
                        let family = if config.address.addr().is_ipv4() {
                            "4"
                        } else {
                            "6"
                        };
                        obj.insert("version".to_string(), Value::from(family));
                    }
                }
            }
            if let Some(routes) = value.get_mut("routes").and_then(Value::as_array_mut) {
                for route in routes.iter_mut().filter_map(Value::as_object_mut) {
                    for key in ["mtu", "advmss", "priority", "table", "scope"] {
                        route.remove(key);
                    }
                }
            }
        }
        Ok(value)
    }
}

/// The answer to VERSION.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionResult {
    pub cni_version: String,
    pub supported_versions: Vec<String>,
}

/// One entry of the `portMappings` capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    #[serde(default = "default_protocol")]
    pub protocol: String,
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

fn default_protocol() -> String {
    "tcp".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> CniResult {
        CniResult {
            cni_version: "1.0.0".into(),
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: "0a:58:0a:16:00:02".into(),
                mtu: Some(1400),
                sandbox: "/run/netns/x".into(),
                ..Interface::default()
            }],
            ips: vec![
                IpConfig {
                    address: "10.22.0.2/16".parse().unwrap(),
                    gateway: Some("10.22.0.1".parse().unwrap()),
                    interface: Some(0),
                },
                IpConfig {
                    address: "fd00::2/64".parse().unwrap(),
                    gateway: None,
                    interface: Some(0),
                },
            ],
            routes: vec![Route {
                mtu: Some(1300),
                ..Route::new("0.0.0.0/0".parse().unwrap(), None)
            }],
            dns: Dns::default(),
        }
    }

    #[test]
    fn converts_to_0_4_and_back() {
        let v = sample().to_value("0.4.0").unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["ips"][0]["version"], "4");
        assert_eq!(v["ips"][1]["version"], "6");
        assert!(v["interfaces"][0].get("mtu").is_none());
        assert!(v["routes"][0].get("mtu").is_none());
        let back = CniResult::from_value(v).unwrap();
        assert_eq!(back.ips, sample().ips);
        assert_eq!(back.cni_version, "1.0.0");
    }

    #[test]
    fn writes_1_0_without_version_field() {
        let v = sample().to_value("1.0.0").unwrap();
        assert!(v["ips"][0].get("version").is_none());
        assert_eq!(v["interfaces"][0]["mtu"], 1400);
        assert_eq!(v["ips"][0]["address"], "10.22.0.2/16");
        assert!(v.get("dns").is_none());
    }

    #[test]
    fn refuses_unknown_versions() {
        let err = CniResult::from_value(json!({"cniVersion": "0.2.0", "ip4": {}})).unwrap_err();
        assert_eq!(err.code, code::INCOMPATIBLE_VERSION);
        assert!(sample().to_value("9.9.9").is_err());
    }

    #[test]
    fn netconf_keeps_unknown_keys() {
        let raw = json!({
            "cniVersion": "1.0.0", "name": "n", "type": "bridge", "bridge": "br9",
            "ipam": {"type": "host-local", "subnet": "10.1.0.0/16"},
            "runtimeConfig": {"portMappings": []}
        });
        let conf: NetConf = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(conf.extra["bridge"], "br9");
        assert_eq!(conf.ipam.as_ref().unwrap().extra["subnet"], "10.1.0.0/16");
        assert!(conf.runtime_config("portMappings").is_some());
        assert_eq!(serde_json::to_value(&conf).unwrap(), raw);
    }

    #[test]
    fn derives_plugin_requests_from_a_list() {
        let list: NetConfList = serde_json::from_value(json!({
            "cniVersion": "0.4.0", "name": "net",
            "plugins": [
                {"type": "bridge", "bridge": "b0", "ipam": {"type": "host-local"}},
                {"type": "portmap", "capabilities": {"portMappings": true, "bandwidth": false}}
            ]
        }))
        .unwrap();
        let mut caps = Map::new();
        caps.insert(
            "portMappings".into(),
            json!([{"hostPort": 80, "containerPort": 8080}]),
        );
        caps.insert("bandwidth".into(), json!({}));
        let first = list.plugin_request(0, &caps, None).unwrap();
        assert_eq!(
            first,
            json!({"cniVersion": "0.4.0", "name": "net", "type": "bridge", "bridge": "b0",
                   "ipam": {"type": "host-local"}})
        );
        let second = list.plugin_request(1, &caps, Some(&sample())).unwrap();
        assert!(second.get("capabilities").is_none());
        assert_eq!(
            second["runtimeConfig"],
            json!({"portMappings": caps["portMappings"]})
        );
        assert_eq!(second["prevResult"]["cniVersion"], "0.4.0");
        assert_eq!(second["prevResult"]["ips"][0]["version"], "4");
        assert!(list.plugin_request(2, &caps, None).is_err());
    }

    #[test]
    fn version_compare() {
        use std::cmp::Ordering::*;
        assert_eq!(compare_versions("0.4.0", "1.0.0"), Some(Less));
        assert_eq!(compare_versions("0.10.0", "0.4.0"), Some(Greater));
        assert_eq!(compare_versions("x", "1.0.0"), None);
    }
}
