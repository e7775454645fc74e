//! CNI results: the rich format of versions 0.3.0 to 1.1.0 and the older 0.1/0.2
//! format (`ip4`, `ip6`), read into one shape. Only what rkt uses is kept; the raw
//! result is what is chained and saved.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A CNI ADD result, whatever its version.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    pub cni_version: String,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Dns,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    pub name: String,
    #[serde(default)]
    pub mac: String,
    /// The netns path for interfaces inside a container; empty on the host.
    #[serde(default)]
    pub sandbox: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpConfig {
    /// CIDR notation, e.g. `172.16.28.2/24`.
    pub address: String,
    #[serde(default)]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    #[serde(default)]
    pub interface: Option<usize>,
}

impl IpConfig {
    /// The address without its prefix length.
    pub fn ip(&self) -> &str {
        self.address.split('/').next().unwrap_or(&self.address)
    }

    pub fn is_ipv4(&self) -> bool {
        self.ip().parse::<std::net::Ipv4Addr>().is_ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub dst: String,
    #[serde(default)]
    pub gw: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dns {
    #[serde(default)]
    pub nameservers: Vec<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub search: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.as_deref().unwrap_or("").is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// Read a result of any CNI version. Unknown fields are ignored; fields of the
/// wrong type are errors (the message names the field).
pub fn parse(value: &Value) -> Result<CniResult, String> {
    let Value::Object(obj) = value else {
        return Err("the result is not a JSON object".into());
    };
    let version = obj
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or("0.1.0")
        .to_string();
    if obj.contains_key("ip4") || obj.contains_key("ip6") {
        return parse_legacy(value, version);
    }
    let mut result = CniResult {
        cni_version: version,
        ..CniResult::default()
    };
    if let Some(v) = obj.get("interfaces") {
        result.interfaces = field(v, "interfaces")?;
    }
    if let Some(v) = obj.get("ips") {
        result.ips = field(v, "ips")?;
    }
    if let Some(v) = obj.get("routes") {
        result.routes = field(v, "routes")?;
    }
    if let Some(v) = obj.get("dns") {
        result.dns = field(v, "dns")?;
    }
    Ok(result)
}

fn field<T: serde::de::DeserializeOwned + Default>(v: &Value, name: &str) -> Result<T, String> {
    if v.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(v.clone()).map_err(|e| format!("{name}: {e}"))
}

/// CNI 0.1.0 / 0.2.0: `{"ip4": {"ip", "gateway", "routes"}, "ip6": {...}, "dns"}`.
fn parse_legacy(value: &Value, version: String) -> Result<CniResult, String> {
    #[derive(Deserialize, Default)]
    struct Legacy {
        ip: String,
        #[serde(default)]
        gateway: Option<String>,
        #[serde(default)]
        routes: Vec<Route>,
    }
    let mut result = CniResult {
        cni_version: version,
        ..CniResult::default()
    };
    for key in ["ip4", "ip6"] {
        match value.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => {
                let l: Legacy = field(v, key)?;
                result.ips.push(IpConfig {
                    address: l.ip,
                    gateway: l.gateway,
                    interface: None,
                });
                result.routes.extend(l.routes);
            }
        }
    }
    if let Some(v) = value.get("dns") {
        result.dns = field(v, "dns")?;
    }
    Ok(result)
}

/// The error a plugin prints (on stdout, or stderr) when it fails.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct PluginErrorBody {
    #[serde(default)]
    pub code: u32,
    #[serde(default)]
    pub msg: String,
    #[serde(default)]
    pub details: String,
}

/// A plugin's error JSON, if `text` is one.
pub fn parse_error(text: &str) -> Option<PluginErrorBody> {
    let body: PluginErrorBody = serde_json::from_str(text.trim()).ok()?;
    (body.code != 0 || !body.msg.is_empty()).then_some(body)
}

/// The meaning of the well-known CNI error codes.
pub fn error_code_meaning(code: u32) -> Option<&'static str> {
    Some(match code {
        1 => "incompatible CNI version",
        2 => "unsupported field in network configuration",
        3 => "container unknown or does not exist",
        4 => "invalid necessary environment variables",
        5 => "I/O failure",
        6 => "failed to decode content",
        7 => "invalid network config",
        11 => "try again later",
        50 => "plugin not available",
        51 => "plugin not available, existing containers may have limited connectivity",
        _ => return None,
    })
}
