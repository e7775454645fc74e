//! The shared dispatcher: a plugin's `main` is `run_plugin(Plugin { .. })`.
//!
//! The environment and stdin are read once here, the command's handler runs with
//! them as plain values ([`CmdArgs`], the parsed configuration), and the result or
//! error JSON is written once to stdout. Handlers never read the environment or
//! write to stdout, so they can be called directly from tests.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{code, CniError};
use crate::types::{
    compare_versions, is_supported, CniResult, NetConf, VersionResult, CURRENT_VERSION,
    SUPPORTED_VERSIONS,
};

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
        }
    }
}

/// What the runtime passed in the environment, plus the raw stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdArgs {
    pub command: Command,
    pub container_id: String,
    /// `CNI_NETNS`; optional for DEL.
    pub netns: Option<PathBuf>,
    pub ifname: String,
    /// `CNI_ARGS`, raw (`K=V;K2=V2`).
    pub args: String,
    /// `CNI_PATH`, split on `:`.
    pub path: Vec<PathBuf>,
    /// The configuration bytes exactly as read from stdin.
    pub stdin_data: Vec<u8>,
}

impl CmdArgs {
    /// Read the `CNI_*` variables through `var` (so tests need not touch the real
    /// environment) and validate them for the command.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        stdin_data: Vec<u8>,
    ) -> Result<Self, CniError> {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        let missing = |name: &str| {
            CniError::new(
                code::INVALID_ENVIRONMENT,
                format!("required environment variable {name} is missing"),
            )
        };
        let command = match get("CNI_COMMAND").as_deref() {
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("VERSION") => Command::Version,
            Some(other) => {
                return Err(CniError::new(
                    code::INVALID_ENVIRONMENT,
                    format!("unknown CNI_COMMAND {other:?}"),
                ))
            }
            None => return Err(missing("CNI_COMMAND")),
        };
        let path = get("CNI_PATH")
            .map(|p| {
                p.split(':')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        let args = CmdArgs {
            command,
            container_id: get("CNI_CONTAINERID").unwrap_or_default(),
            netns: get("CNI_NETNS").map(PathBuf::from),
            ifname: get("CNI_IFNAME").unwrap_or_default(),
            args: get("CNI_ARGS").unwrap_or_default(),
            path,
            stdin_data,
        };
        if command == Command::Version {
            return Ok(args);
        }
        if args.container_id.is_empty() {
            return Err(missing("CNI_CONTAINERID"));
        }
        validate_container_id(&args.container_id)?;
        if args.ifname.is_empty() {
            return Err(missing("CNI_IFNAME"));
        }
        validate_ifname(&args.ifname)?;
        if command != Command::Del && args.netns.is_none() {
            return Err(missing("CNI_NETNS"));
        }
        Ok(args)
    }

    /// The netns path, required for ADD and CHECK.
    pub fn netns(&self) -> Result<&Path, CniError> {
        self.netns.as_deref().ok_or_else(|| {
            CniError::new(
                code::INVALID_ENVIRONMENT,
                "required environment variable CNI_NETNS is missing",
            )
        })
    }

    /// `CNI_ARGS` as key/value pairs; entries without `=` are skipped.
    pub fn cni_args(&self) -> Vec<(String, String)> {
        self.args
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    /// The value of one `CNI_ARGS` key.
    pub fn cni_arg(&self, key: &str) -> Option<String> {
        self.cni_args()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// Container IDs: an alphanumeric first character, then `[A-Za-z0-9_.-]`.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    let mut chars = id.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            code::INVALID_ENVIRONMENT,
            format!("invalid characters in CNI_CONTAINERID {id:?}"),
        ))
    }
}

/// Interface names: at most 15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0');
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            code::INVALID_ENVIRONMENT,
            format!("invalid interface name CNI_IFNAME {name:?}"),
        ))
    }
}

/// A plugin's configuration type: it deserializes from stdin and exposes the
/// common part.
pub trait PluginConf: DeserializeOwned {
    fn net_conf(&self) -> &NetConf;
}

impl PluginConf for NetConf {
    fn net_conf(&self) -> &NetConf {
        self
    }
}

/// A plugin's command handlers.
pub struct Plugin<C> {
    pub add: fn(&CmdArgs, &C) -> Result<CniResult, CniError>,
    pub check: fn(&CmdArgs, &C) -> Result<(), CniError>,
    pub del: fn(&CmdArgs, &C) -> Result<(), CniError>,
    /// One line for humans, printed when the binary is run without `CNI_COMMAND`.
    pub about: &'static str,
}

/// What a plugin run writes and how it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub exit_code: u8,
}

/// Read the environment and stdin, dispatch, write stdout; the return value is
/// the process exit code.
pub fn run_plugin<C: PluginConf>(plugin: Plugin<C>) -> ExitCode {
    if std::env::var_os("CNI_COMMAND").is_none() && std::env::args_os().len() <= 1 {
        eprintln!(
            "{}\nCNI protocol versions supported: {}",
            plugin.about,
            SUPPORTED_VERSIONS.join(", ")
        );
        return ExitCode::from(1);
    }
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    let outcome = match read {
        Ok(_) => dispatch(&plugin, |k| std::env::var(k).ok(), stdin),
        Err(e) => error_outcome(
            CURRENT_VERSION,
            &CniError::new(code::IO_FAILURE, "cannot read stdin").with_details(e.to_string()),
        ),
    };
    let mut out = std::io::stdout().lock();
    if out
        .write_all(&outcome.stdout)
        .and_then(|_| out.flush())
        .is_err()
    {
        return ExitCode::from(1);
    }
    ExitCode::from(outcome.exit_code)
}

/// The whole protocol without process I/O: parse, check versions, call the
/// handler, encode the answer.
pub fn dispatch<C: PluginConf>(
    plugin: &Plugin<C>,
    var: impl Fn(&str) -> Option<String>,
    stdin: Vec<u8>,
) -> Outcome {
    // The version the answer is written in: the config's when it is readable.
    let raw: Option<Value> = serde_json::from_slice(&stdin).ok();
    let conf_version = raw
        .as_ref()
        .and_then(|v| v.get("cniVersion"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let answer_version = conf_version
        .clone()
        .filter(|v| is_supported(v))
        .unwrap_or_else(|| CURRENT_VERSION.to_string());
    match run(plugin, var, stdin, raw, conf_version.as_deref()) {
        Ok(Some(value)) => Outcome {
            stdout: encode(&value),
            exit_code: 0,
        },
        Ok(None) => Outcome {
            stdout: Vec::new(),
            exit_code: 0,
        },
        Err(e) => error_outcome(&answer_version, &e),
    }
}

fn run<C: PluginConf>(
    plugin: &Plugin<C>,
    var: impl Fn(&str) -> Option<String>,
    stdin: Vec<u8>,
    raw: Option<Value>,
    conf_version: Option<&str>,
) -> Result<Option<Value>, CniError> {
    let args = CmdArgs::from_vars(var, stdin)?;
    if args.command == Command::Version {
        let answer = VersionResult {
            cni_version: CURRENT_VERSION.to_string(),
            supported_versions: SUPPORTED_VERSIONS.iter().map(|s| s.to_string()).collect(),
        };
        return Ok(Some(serde_json::to_value(answer).unwrap_or(Value::Null)));
    }
    let raw = raw.ok_or_else(|| {
        let detail = serde_json::from_slice::<Value>(&args.stdin_data)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        CniError::new(
            code::DECODE_FAILURE,
            "cannot decode the network configuration on stdin",
        )
        .with_details(detail)
    })?;
    let version = conf_version.unwrap_or_default();
    if !is_supported(version) {
        return Err(
            CniError::new(code::INCOMPATIBLE_VERSION, "incompatible CNI versions").with_details(
                format!(
                    "config is {version:?}, plugin supports {}",
                    SUPPORTED_VERSIONS.join(", ")
                ),
            ),
        );
    }
    if args.command == Command::Check
        && compare_versions(version, "0.4.0") == Some(std::cmp::Ordering::Less)
    {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("config version {version} does not allow CHECK"),
        ));
    }
    let conf: C = serde_json::from_value(raw).map_err(|e| {
        CniError::config("invalid network configuration").with_details(e.to_string())
    })?;
    match args.command {
        Command::Add => {
            let result = (plugin.add)(&args, &conf)?;
            Ok(Some(result.to_value(version)?))
        }
        Command::Check => (plugin.check)(&args, &conf).map(|()| None),
        Command::Del => (plugin.del)(&args, &conf).map(|()| None),
        Command::Version => Ok(None),
    }
}

fn error_outcome(version: &str, e: &CniError) -> Outcome {
    let mut value = serde_json::json!({"cniVersion": version, "code": e.code, "msg": e.msg});
    if !e.details.is_empty() {
        value["details"] = Value::from(e.details.clone());
    }
    Outcome {
        stdout: encode(&value),
        exit_code: 1,
    }
}

fn encode(value: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn add_ok(args: &CmdArgs, conf: &NetConf) -> Result<CniResult, CniError> {
        assert_eq!(args.ifname, "eth0");
        let mut r = CniResult {
            cni_version: "1.0.0".into(),
            ..CniResult::default()
        };
        r.ips.push(crate::types::IpConfig {
            address: "10.0.0.2/24".parse().unwrap(),
            gateway: None,
            interface: None,
        });
        if conf.name == "fail" {
            return Err(CniError::new(code::KERNEL, "boom"));
        }
        Ok(r)
    }
    fn nothing(_: &CmdArgs, _: &NetConf) -> Result<(), CniError> {
        Ok(())
    }
    const PLUGIN: Plugin<NetConf> = Plugin {
        add: add_ok,
        check: nothing,
        del: nothing,
        about: "test",
    };

    fn env(cmd: &str) -> HashMap<&'static str, String> {
        let mut m = HashMap::new();
        m.insert("CNI_COMMAND", cmd.to_string());
        m.insert("CNI_CONTAINERID", "abc".to_string());
        m.insert("CNI_NETNS", "/run/netns/x".to_string());
        m.insert("CNI_IFNAME", "eth0".to_string());
        m
    }

    fn run_with(env: &HashMap<&'static str, String>, stdin: &str) -> (Value, u8) {
        let out = dispatch(&PLUGIN, |k| env.get(k).cloned(), stdin.as_bytes().to_vec());
        (
            serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
            out.exit_code,
        )
    }

    #[test]
    fn add_writes_result_in_config_version() {
        let (v, rc) = run_with(
            &env("ADD"),
            r#"{"cniVersion":"0.3.1","name":"n","type":"x"}"#,
        );
        assert_eq!(rc, 0);
        assert_eq!(v["cniVersion"], "0.3.1");
        assert_eq!(v["ips"][0]["version"], "4");
    }

    #[test]
    fn errors_carry_codes() {
        let (v, rc) = run_with(&env("ADD"), "not json");
        assert_eq!((rc, v["code"].clone()), (1, json!(6)));
        let (v, _) = run_with(&env("ADD"), r#"{"cniVersion":"0.1.0","name":"n"}"#);
        assert_eq!(v["code"], 1);
        let (v, _) = run_with(&env("CHECK"), r#"{"cniVersion":"0.3.1","name":"n"}"#);
        assert_eq!(v["code"], 1);
        let (v, _) = run_with(&env("ADD"), r#"{"cniVersion":"1.0.0","name":5}"#);
        assert_eq!(v["code"], 7);
        let (v, _) = run_with(&env("ADD"), r#"{"cniVersion":"1.0.0","name":"fail"}"#);
        assert_eq!(
            (v["code"].clone(), v["cniVersion"].clone()),
            (json!(100), json!("1.0.0"))
        );
        let mut e = env("ADD");
        e.remove("CNI_NETNS");
        let (v, _) = run_with(&e, r#"{"cniVersion":"1.0.0","name":"n"}"#);
        assert_eq!(v["code"], 4);
        let mut e = env("ADD");
        e.insert("CNI_CONTAINERID", "-bad/id".into());
        let (v, _) = run_with(&e, r#"{"cniVersion":"1.0.0","name":"n"}"#);
        assert_eq!(v["code"], 4);
        let mut e = env("ADD");
        e.insert("CNI_COMMAND", "FROB".into());
        assert_eq!(run_with(&e, "{}").0["code"], 4);
    }

    #[test]
    fn del_needs_no_netns_and_prints_nothing() {
        let mut e = env("DEL");
        e.remove("CNI_NETNS");
        let out = dispatch(
            &PLUGIN,
            |k| e.get(k).cloned(),
            br#"{"cniVersion":"1.0.0","name":"n"}"#.to_vec(),
        );
        assert_eq!((out.stdout.len(), out.exit_code), (0, 0));
    }

    #[test]
    fn version_lists_supported() {
        let mut e = HashMap::new();
        e.insert("CNI_COMMAND", "VERSION".to_string());
        let (v, rc) = run_with(&e, r#"{"cniVersion":"1.0.0"}"#);
        assert_eq!(rc, 0);
        assert_eq!(
            v["supportedVersions"],
            json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0"])
        );
    }

    #[test]
    fn cni_args_and_names() {
        let mut a = CmdArgs::from_vars(|k| env("ADD").get(k).cloned(), vec![]).unwrap();
        a.args = "IgnoreUnknown=1;IP=10.0.0.9; K8S_POD_NAME=x".into();
        assert_eq!(a.cni_arg("IP").as_deref(), Some("10.0.0.9"));
        assert_eq!(a.cni_arg("K8S_POD_NAME").as_deref(), Some("x"));
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("a-very-long-interface").is_err());
        assert!(validate_ifname("a/b").is_err());
        assert!(validate_container_id("a.b_c-1").is_ok());
        assert!(validate_container_id(".a").is_err());
    }
}
