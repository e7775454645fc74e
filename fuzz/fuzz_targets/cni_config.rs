//! CNI: network configuration files (`net.d/*.conf`, `*.conflist`) as rkt reads them
//! (`net::config::NetworkConfig::from_bytes`), the per-plugin request derived from a
//! list, each plugin's own configuration (bridge, host-local IPAM ranges, portmap),
//! the plugin protocol's stdin handling (`skel::dispatch`), and plugin results and
//! errors as both rkt (`net::result`) and the plugins (`types::CniResult`) read them.
#![no_main]

use std::path::Path;

use cni_plugins::bridge::BridgeConfig;
use cni_plugins::host_local::{self, IpamConfig};
use cni_plugins::portmap::PortmapConfig;
use cni_plugins::skel::{self, Plugin, PluginConf};
use cni_plugins::types::{CniResult, NetConf, NetConfList};
use cni_plugins::CniError;
use libfuzzer_sys::fuzz_target;
use stage0::pod::net::config::NetworkConfig;
use stage0::pod::net::result;
use serde_json::{json, Map, Value};

/// Read every plugin-specific configuration of `conf`; answer with its previous result.
fn add(_: &skel::CmdArgs, conf: &NetConf) -> Result<CniResult, CniError> {
    plugin_configs(conf);
    Ok(conf.prev_result()?.unwrap_or_default())
}

fn plugin_configs(conf: &NetConf) {
    let _ = BridgeConfig::from_net_conf(conf);
    let _ = PortmapConfig::from_net_conf(conf);
    if let Ok(ipam) = IpamConfig::from_net_conf(conf) {
        let _ = ipam.range_sets();
    }
    let _ = conf.runtime_config("portMappings");
}

const PLUGIN: Plugin<NetConf> = Plugin {
    add,
    check: |_, conf| conf.net_conf().prev_result().map(|_| ()),
    del: |_, _| Ok(()),
    about: "fuzz",
};

fn env(command: &'static str) -> impl Fn(&str) -> Option<String> {
    move |k| {
        Some(
            match k {
                "CNI_COMMAND" => command,
                "CNI_CONTAINERID" => "fuzz-container",
                "CNI_NETNS" => "/var/run/netns/fuzz",
                "CNI_IFNAME" => "eth0",
                "CNI_ARGS" => "IgnoreUnknown=1;K8S_POD_NAME=fuzz",
                "CNI_PATH" => "/opt/cni/bin",
                _ => return None,
            }
            .to_string(),
        )
    }
}

fn prev_result() -> CniResult {
    CniResult::from_value(json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:01", "sandbox": "/var/run/netns/fuzz"}],
        "ips": [{"address": "172.16.28.2/24", "gateway": "172.16.28.1", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "172.16.28.1"}],
        "dns": {"nameservers": ["172.16.28.1"]}
    }))
    .expect("a valid result")
}

fuzz_target!(|data: &[u8]| {
    for name in ["fuzz.conflist", "fuzz.conf"] {
        let Ok(net) = NetworkConfig::from_bytes(Path::new(name), data) else {
            continue;
        };
        let _ = net.plugin_types();
        let _ = net.wants_capability("portMappings");
        let value = net.to_value();
        let bytes = serde_json::to_vec(&value).expect("a configuration serialises");
        let again = NetworkConfig::from_bytes(Path::new("again.conflist"), &bytes)
            .expect("a loaded configuration reads back");
        assert_eq!(again.name, net.name);
        assert_eq!(again.cni_version, net.cni_version);
        assert!(
            rkt_fuzz::json_eq(&again.to_value(), &value),
            "configuration round trip:\n{value}\n{}",
            again.to_value()
        );
        if let Ok(list) = serde_json::from_value::<NetConfList>(value) {
            let mut caps = Map::new();
            caps.insert(
                "portMappings".into(),
                json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
            );
            let prev = prev_result();
            for i in 0..list.plugins.len() {
                for prev in [None, Some(&prev)] {
                    let Ok(req) = list.plugin_request(i, &caps, prev) else {
                        continue;
                    };
                    if let Ok(conf) = serde_json::from_value::<NetConf>(req.clone()) {
                        plugin_configs(&conf);
                        let _ = conf.prev_result();
                    }
                    let stdin = serde_json::to_vec(&req).expect("a request serialises");
                    let _ = skel::dispatch(&PLUGIN, env("ADD"), stdin);
                }
            }
        }
    }

    for command in ["ADD", "CHECK", "DEL", "VERSION"] {
        let out = skel::dispatch(&PLUGIN, env(command), data.to_vec());
        if out.exit_code == 0 && !out.stdout.is_empty() {
            serde_json::from_slice::<Value>(&out.stdout).expect("a plugin answers JSON");
        }
    }

    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        let _ = result::parse(&value);
        if let Ok(r) = CniResult::from_value(value) {
            for version in cni_plugins::types::SUPPORTED_VERSIONS {
                if let Ok(v) = r.to_value(version) {
                    let _ = result::parse(&v);
                    let back = CniResult::from_value(v).expect("a converted result reads back");
                    if !version.starts_with("0.") {
                        rkt_fuzz::assert_same_json(&back, &r, version);
                    }
                }
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(body) = result::parse_error(text) {
            let _ = result::error_code_meaning(body.code);
        }
        let _ = host_local::parse_resolv_conf(text);
    }
});
