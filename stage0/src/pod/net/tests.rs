//! Networking tests: configuration loading, `--net` and `--port` parsing, results of
//! every CNI version, plugin calls (shell scripts standing in for plugins record
//! what they get), and — as root, inside network and mount namespaces made for the
//! test — the whole attach/release cycle with fake and with reference plugins.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use manifests::appc::{App, Port};
use manifests::pod::{PodApp, RuntimeImage};
use serde_json::json;
use tempfile::TempDir;

use super::*;

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

// ---------------------------------------------------------------- configuration

#[test]
fn conf_is_wrapped_into_a_list_keeping_unknown_keys() {
    let net = NetworkConfig::from_bytes(
        Path::new("/x/10-mynet.conf"),
        br#"{"cniVersion":"0.4.0","name":"mynet","type":"bridge","bridge":"br9",
             "ipam":{"type":"host-local","subnet":"10.9.0.0/24"},"x-custom":[1,2]}"#,
    )
    .unwrap();
    assert_eq!(net.name, "mynet");
    assert_eq!(net.cni_version, "0.4.0");
    assert_eq!(net.file, PathBuf::from("/x/10-mynet.conf"));
    assert_eq!(net.list["name"], "mynet");
    assert_eq!(net.list["cniVersion"], "0.4.0");
    assert_eq!(net.plugins().len(), 1);
    let p = &net.plugins()[0];
    assert_eq!(p["type"], "bridge");
    assert_eq!(p["bridge"], "br9");
    assert_eq!(p["x-custom"], json!([1, 2]));
    assert!(p.get("name").is_none(), "name moves to the list: {p}");
    assert_eq!(net.plugin_types(), vec!["bridge"]);
    assert!(!net.wants_capability(PORT_MAPPINGS));
}

#[test]
fn conflist_versions_are_chosen_and_checked() {
    let parse = |s: &str| NetworkConfig::from_bytes(Path::new("/x/n.conflist"), s.as_bytes());
    let net = parse(
        r#"{"cniVersion":"1.1.0","cniVersions":["0.3.1","1.0.0","9.9.9"],"name":"n",
            "plugins":[{"type":"a"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
    )
    .unwrap();
    assert_eq!(
        net.cni_version, "1.0.0",
        "highest of cniVersions we support"
    );
    assert_eq!(net.list["cniVersion"], "1.0.0");
    assert!(net.wants_capability(PORT_MAPPINGS));
    // No cniVersion at all: plugins assume 0.1.0 (rkt-era files).
    let old = parse(r#"{"name":"n","type":"ptp"}"#).unwrap();
    assert_eq!(old.cni_version, "0.1.0");

    let err = |s: &str| parse(s).unwrap_err().to_string();
    assert!(err(r#"{"cniVersion":"7.0.0","name":"n","plugins":[{"type":"a"}]}"#).contains("7.0.0"));
    assert!(err(r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#).contains("empty"));
    assert!(
        err(r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"bridge":"x"}]}"#)
            .contains("plugin 1: \"type\" is missing")
    );
    assert!(
        err(r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../sh"}]}"#).contains("../sh")
    );
    assert!(err(r#"{"cniVersion":"1.0.0","name":"-bad","type":"a"}"#).contains("-bad"));
    assert!(err(r#"{"cniVersion":"1.0.0","name":"host","type":"a"}"#).contains("reserved"));
    assert!(err(r#"{"cniVersion":"1.0.0","type":"a"}"#).contains("\"name\" is missing"));
    let e = err("{not json");
    assert!(
        e.contains("/x/n.conflist") && e.contains("invalid JSON"),
        "{e}"
    );
}

#[test]
fn net_d_local_wins_by_name_and_broken_files_are_collected() {
    let tmp = TempDir::new().unwrap();
    let local = tmp.path().join("etc");
    let system = tmp.path().join("usr");
    write(
        &local.join("net.d/20-shared.conflist"),
        r#"{"cniVersion":"1.0.0","name":"shared","plugins":[{"type":"local-one"}]}"#,
    );
    write(
        &system.join("net.d/10-shared.conf"),
        r#"{"cniVersion":"1.0.0","name":"shared","type":"system-one"}"#,
    );
    write(
        &system.join("net.d/30-sysonly.conf"),
        r#"{"cniVersion":"0.3.1","name":"sysonly","type":"bridge"}"#,
    );
    // Within one directory the first file (by name) wins.
    write(
        &local.join("net.d/05-dup.json"),
        r#"{"cniVersion":"1.0.0","name":"dup","type":"first"}"#,
    );
    write(
        &local.join("net.d/06-dup.conf"),
        r#"{"cniVersion":"1.0.0","name":"dup","type":"second"}"#,
    );
    write(&local.join("net.d/40-broken.conf"), "{");
    write(&local.join("net.d/README"), "not a config");
    let set = config::load(&local, &system).unwrap();
    let names: Vec<&str> = set.networks.keys().map(String::as_str).collect();
    assert_eq!(names, vec!["dup", "shared", "sysonly"]);
    assert_eq!(set.networks["shared"].plugin_types(), vec!["local-one"]);
    assert_eq!(
        set.networks["shared"].file,
        local.join("net.d/20-shared.conflist")
    );
    assert_eq!(set.networks["sysonly"].plugin_types(), vec!["bridge"]);
    assert_eq!(set.networks["dup"].plugin_types(), vec!["first"]);
    assert_eq!(set.broken.len(), 1);
    assert!(set.broken[0].to_string().contains("40-broken.conf"));
    let order: Vec<&str> = set.all_in_order().iter().map(|n| n.name.as_str()).collect();
    assert_eq!(order, vec!["dup", "shared", "sysonly"]);

    // An unknown network's error names where it looked and what it could not read.
    let opts = NetOptions {
        mode: NetMode::Cni(vec![NetArg::named("nope")]),
        local_config: local.clone(),
        system_config: system.clone(),
        cni_path: None,
    };
    let e = check(&opts).unwrap_err().to_string();
    assert!(e.contains("network nope is not defined"), "{e}");
    assert!(
        e.contains(&local.join("net.d").display().to_string()),
        "{e}"
    );
    assert!(e.contains("40-broken.conf"), "{e}");
    // A missing directory is simply empty.
    let empty = config::load(&tmp.path().join("none"), &tmp.path().join("none2")).unwrap();
    assert!(empty.networks.is_empty() && empty.broken.is_empty());
}

#[test]
fn default_networks_are_generated_on_first_use_only() {
    let tmp = TempDir::new().unwrap();
    let local = tmp.path().join("etc");
    let opts = |mode| NetOptions {
        mode,
        local_config: local.clone(),
        system_config: tmp.path().join("usr"),
        cni_path: None,
    };
    check(&opts(NetMode::Cni(vec![NetArg::named(DEFAULT_NETWORK)]))).unwrap();
    assert!(!local.join("net.d").exists(), "check changes nothing");

    let atts = resolve(&opts(NetMode::parse(&["default"]).unwrap()), &[]).unwrap();
    let path = config::builtin_path(&local, DEFAULT_NETWORK);
    assert_eq!(path, local.join("net.d/99-default.conflist"));
    assert!(path.is_file());
    let def = &atts[0].network;
    assert_eq!(def.file, path);
    assert_eq!(def.cni_version, "1.0.0");
    assert_eq!(def.plugin_types(), vec!["bridge", "portmap"]);
    let bridge = &def.plugins()[0];
    assert_eq!(bridge["ipMasq"], true);
    assert_eq!(bridge["isDefaultGateway"], true);
    assert_eq!(bridge["ipam"]["type"], "host-local");
    assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "172.16.28.0/24");
    assert!(def.wants_capability(PORT_MAPPINGS));
    assert_eq!(atts[0].ifname, "eth0");

    // A user's own `default` is never overwritten.
    write(
        &path,
        r#"{"cniVersion":"1.0.0","name":"default","plugins":[{"type":"mine"}]}"#,
    );
    let atts = resolve(&opts(NetMode::parse(&["default"]).unwrap()), &[]).unwrap();
    assert_eq!(atts[0].network.plugin_types(), vec!["mine"]);

    let atts = resolve(
        &opts(NetMode::parse(&["default-restricted:IP=172.31.0.9"]).unwrap()),
        &[],
    )
    .unwrap();
    let r = &atts[0].network;
    assert!(local.join("net.d/99-default-restricted.conflist").is_file());
    let bridge = &r.plugins()[0];
    assert_eq!(bridge["ipMasq"], false);
    assert!(bridge.get("isDefaultGateway").is_none());
    assert!(bridge["ipam"].get("routes").is_none(), "no default route");
    assert!(!r.wants_capability(PORT_MAPPINGS));
    assert_eq!(atts[0].cni_args, "IgnoreUnknown=1;IP=172.31.0.9");
}

#[test]
fn port_mappings_go_to_the_first_network_that_takes_them() {
    let tmp = TempDir::new().unwrap();
    let local = tmp.path().join("etc");
    write(
        &local.join("net.d/a.conflist"),
        r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"}]}"#,
    );
    write(
        &local.join("net.d/b.conflist"),
        r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
    );
    write(
        &local.join("net.d/c.conflist"),
        r#"{"cniVersion":"1.0.0","name":"c","plugins":[{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
    );
    let opts = |nets: &str| NetOptions {
        mode: NetMode::parse(&[nets]).unwrap(),
        local_config: local.clone(),
        system_config: tmp.path().join("usr"),
        cni_path: None,
    };
    let ports = vec![json!({"hostPort": 8080, "containerPort": 80, "protocol": "tcp"})];
    let atts = resolve(&opts("a,b,c"), &ports).unwrap();
    let ifnames: Vec<&str> = atts.iter().map(|a| a.ifname.as_str()).collect();
    assert_eq!(ifnames, vec!["eth0", "eth1", "eth2"]);
    assert!(atts[0].capability_args.is_empty());
    assert_eq!(atts[1].capability_args[PORT_MAPPINGS], json!(ports));
    assert!(
        atts[2].capability_args.is_empty(),
        "only one network maps a port"
    );
    let e = resolve(&opts("a"), &ports).unwrap_err().to_string();
    assert!(e.contains("portMappings") && e.contains("a"), "{e}");
    // `all`: every network, in file-name order.
    let all = resolve(&opts("all"), &[]).unwrap();
    let names: Vec<&str> = all.iter().map(|a| a.network.name.as_str()).collect();
    assert_eq!(names, vec!["a", "b", "c"]);
}

// ---------------------------------------------------------------- flags

#[test]
fn net_flag_parsing() {
    let cni = |names: &[(&str, &[(&str, &str)])]| {
        NetMode::Cni(
            names
                .iter()
                .map(|(n, args)| NetArg {
                    name: n.to_string(),
                    args: args
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                })
                .collect(),
        )
    };
    let none: [&str; 0] = [];
    assert_eq!(NetMode::parse(&none).unwrap(), cni(&[("default", &[])]));
    assert_eq!(NetMode::parse(&[""]).unwrap(), cni(&[("default", &[])]));
    assert_eq!(NetMode::parse(&["host"]).unwrap(), NetMode::Host);
    assert_eq!(NetMode::parse(&["none"]).unwrap(), NetMode::None);
    assert_eq!(NetMode::parse(&["all"]).unwrap(), NetMode::All);
    assert_eq!(
        NetMode::parse(&["default:IP=172.16.28.9;FOO=bar , my.net_2"]).unwrap(),
        cni(&[
            ("default", &[("IP", "172.16.28.9"), ("FOO", "bar")]),
            ("my.net_2", &[])
        ])
    );
    // Several --net flags add up.
    assert_eq!(
        NetMode::parse(&["a", "b:K=V"]).unwrap(),
        cni(&[("a", &[]), ("b", &[("K", "V")])])
    );
    assert_eq!(
        NetMode::parse(&["a:K=V;K2=V2"]).unwrap().to_string(),
        "a:K=V;K2=V2"
    );
    for (bad, needle) in [
        ("host,default", "cannot be combined"),
        ("none:IP=1.2.3.4", "takes no arguments"),
        ("a,a", "listed twice"),
        ("a:novalue", "not KEY=VALUE"),
        ("a:=v", "not a valid argument name"),
        ("-x", "not a network name"),
        ("a/b", "not a network name"),
    ] {
        let e = NetMode::parse(&[bad]).unwrap_err().to_string();
        assert!(e.contains(needle) && e.contains(bad), "{bad}: {e}");
    }
}

#[test]
fn cni_args_carry_ignore_unknown_unless_given() {
    let a = NetArg::parse("n:IP=10.0.0.5").unwrap();
    assert_eq!(a.cni_args(), "IgnoreUnknown=1;IP=10.0.0.5");
    let b = NetArg::parse("n:IgnoreUnknown=0;MAC=aa:bb:cc:dd:ee:ff").unwrap();
    assert_eq!(b.cni_args(), "IgnoreUnknown=0;MAC=aa:bb:cc:dd:ee:ff");
    assert_eq!(NetArg::parse("n").unwrap().cni_args(), "");
}

#[test]
fn port_flag_parsing_and_mappings() {
    let p = parse_port("http:8080").unwrap();
    assert_eq!(
        (p.name.as_str(), p.host_port, p.host_ip),
        ("http", 8080, None)
    );
    let p = parse_port("dns:127.0.0.1:5353").unwrap();
    assert_eq!(p.host_ip.as_deref(), Some("127.0.0.1"));
    for bad in [
        "http",
        "http:0",
        "http:70000",
        "Http:80",
        "http:notip:80",
        "a:b:c:d",
    ] {
        let e = parse_port(bad).unwrap_err().to_string();
        assert!(e.contains(bad), "{bad}: {e}");
    }

    let mut app = App::default();
    app.ports.push(Port {
        name: "http".into(),
        protocol: "TCP".into(),
        port: 80,
        count: 1,
        socket_activated: false,
    });
    let mut manifest = PodManifest::new(vec![PodApp {
        name: "web".into(),
        image: RuntimeImage {
            name: None,
            id: "sha512-00".into(),
            labels: vec![],
        },
        app: Some(app),
        read_only_root_fs: false,
        mounts: vec![],
        annotations: vec![],
    }]);
    manifest
        .ports
        .push(parse_port("http:127.0.0.1:8080").unwrap());
    assert_eq!(
        port_mappings(&manifest).unwrap(),
        vec![
            json!({"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"})
        ]
    );
    manifest.ports.push(parse_port("nope:9").unwrap());
    assert!(port_mappings(&manifest)
        .unwrap_err()
        .to_string()
        .contains("nope"));
}

// ---------------------------------------------------------------- results

#[test]
fn results_of_every_version_are_read() {
    let v1 = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "rkt0", "mac": "aa"}, {"name": "eth0", "mac": "bb", "sandbox": "/run/netns/x"}],
        "ips": [{"address": "fd00::5/64", "interface": 1}, {"address": "172.16.28.5/24", "gateway": "172.16.28.1", "interface": 1}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "172.16.28.1"}],
        "dns": {"nameservers": ["172.16.28.1"], "domain": "pods.local", "search": ["a"], "options": ["ndots:2"]}
    });
    let r = result::parse(&v1).unwrap();
    assert_eq!(r.cni_version, "1.0.0");
    assert_eq!(r.interfaces[1].sandbox, "/run/netns/x");
    assert_eq!(r.ips[1].ip(), "172.16.28.5");
    assert!(r.ips[1].is_ipv4() && !r.ips[0].is_ipv4());
    assert_eq!(r.ips[1].interface, Some(1));
    assert_eq!(r.routes[0].gw.as_deref(), Some("172.16.28.1"));
    assert_eq!(r.dns.domain.as_deref(), Some("pods.local"));

    // 0.3.x and 0.4.0 carry "version" in ips; 0.4.0 the same shape.
    for v in ["0.3.0", "0.3.1", "0.4.0"] {
        let r = result::parse(&json!({
            "cniVersion": v,
            "interfaces": [{"name": "eth0"}],
            "ips": [{"version": "4", "address": "10.1.0.2/16", "gateway": "10.1.0.1", "interface": 0}],
            "dns": {}
        }))
        .unwrap();
        assert_eq!(r.cni_version, v);
        assert_eq!(r.ips[0].ip(), "10.1.0.2");
        assert!(r.dns.is_empty());
    }
    // 0.1.0 / 0.2.0: ip4 and ip6.
    let r = result::parse(&json!({
        "cniVersion": "0.2.0",
        "ip4": {"ip": "172.16.28.7/24", "gateway": "172.16.28.1", "routes": [{"dst": "0.0.0.0/0"}]},
        "ip6": {"ip": "fd00::7/64"},
        "dns": {"nameservers": ["8.8.8.8"]}
    }))
    .unwrap();
    assert_eq!(r.ips.len(), 2);
    assert_eq!(r.ips[0].ip(), "172.16.28.7");
    assert_eq!(r.ips[0].gateway.as_deref(), Some("172.16.28.1"));
    assert_eq!(r.routes.len(), 1);
    assert_eq!(r.dns.nameservers, vec!["8.8.8.8"]);
    // An empty result (a plugin that only does L2) is fine; wrong types are not.
    assert_eq!(
        result::parse(&json!({"cniVersion": "1.0.0"})).unwrap().ips,
        vec![]
    );
    assert!(result::parse(&json!({"ips": "x"}))
        .unwrap_err()
        .contains("ips"));
    assert!(result::parse(&json!([1])).is_err());

    let e = result::parse_error(r#"{"cniVersion":"1.0.0","code":7,"msg":"bad","details":"d"}"#)
        .unwrap();
    assert_eq!(
        (e.code, e.msg.as_str(), e.details.as_str()),
        (7, "bad", "d")
    );
    assert!(result::parse_error("plain text").is_none());
    assert!(result::parse_error(r#"{"cniVersion":"1.0.0"}"#).is_none());
}

#[test]
fn results_give_the_pod_dns_and_a_hosts_line() {
    let mut rt = runtime_config();
    let r = result::parse(&json!({
        "cniVersion": "1.0.0",
        "ips": [{"address": "fd00::9/64"}, {"address": "10.2.0.9/24"}],
        "dns": {"nameservers": ["10.2.0.53"], "domain": "pods.test", "search": ["x.test"], "options": ["ndots:1"]}
    }))
    .unwrap();
    apply_results(&mut rt, &[CniResult::default(), r.clone()]);
    let dns = rt.dns.clone().unwrap();
    assert_eq!(dns.nameservers, vec!["10.2.0.53"]);
    assert_eq!(dns.search, vec!["pods.test", "x.test"]);
    assert_eq!(dns.options, vec!["ndots:1"]);
    assert_eq!(
        rt.hosts_entries,
        vec![HostsEntry {
            ip: "10.2.0.9".into(),
            hostnames: vec!["rkt-u.pods.test".into(), "rkt-u".into()],
        }]
    );
    // The user's DNS and hosts entries win.
    let mut rt = runtime_config();
    rt.dns = Some(RuntimeDns {
        nameservers: vec!["1.1.1.1".into()],
        ..Default::default()
    });
    rt.hosts_entries.push(HostsEntry {
        ip: "10.9.9.9".into(),
        hostnames: vec!["rkt-u".into()],
    });
    apply_results(&mut rt, std::slice::from_ref(&r));
    assert_eq!(rt.dns.unwrap().nameservers, vec!["1.1.1.1"]);
    assert_eq!(rt.hosts_entries.len(), 1);
    // Aliases naming other hosts (hostAliases) come after the pod's own address line.
    let mut rt = runtime_config();
    let alias = HostsEntry {
        ip: "10.9.9.9".into(),
        hostnames: vec!["db".into()],
    };
    rt.hosts_entries.push(alias.clone());
    apply_results(&mut rt, &[r]);
    assert_eq!(rt.hosts_entries.len(), 2);
    assert_eq!(rt.hosts_entries[0].ip, "10.2.0.9");
    assert_eq!(rt.hosts_entries[1], alias);
}

#[test]
fn plugin_config_injects_name_version_runtime_config_and_prev_result() {
    let net = NetworkConfig::from_bytes(
        Path::new("/x/n.conflist"),
        br#"{"cniVersion":"1.0.0","name":"n","plugins":[
              {"type":"bridge","runtimeConfig":{"stale":1}},
              {"type":"portmap","capabilities":{"portMappings":true,"bandwidth":true,"mac":false}}]}"#,
    )
    .unwrap();
    let mut caps = Map::new();
    caps.insert(
        PORT_MAPPINGS.into(),
        json!([{"hostPort": 1, "containerPort": 2, "protocol": "tcp"}]),
    );
    caps.insert("mac".into(), json!("aa:bb"));
    let first = plugin_config(&net, &net.plugins()[0], &caps, None);
    assert_eq!(
        first,
        json!({"type": "bridge", "name": "n", "cniVersion": "1.0.0"})
    );
    let prev = json!({"cniVersion": "1.0.0", "ips": []});
    let second = plugin_config(&net, &net.plugins()[1], &caps, Some(&prev));
    assert_eq!(
        second,
        json!({
            "type": "portmap", "name": "n", "cniVersion": "1.0.0",
            "runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 2, "protocol": "tcp"}]},
            "prevResult": prev
        })
    );
}

// ---------------------------------------------------------------- plugins

/// A directory of fake plugins (shell scripts) that log every call to `calls`
/// ("NAME COMMAND IFNAME NETNS-SET CNI_ARGS") and their stdin to `NAME-COMMAND-N.json`.
struct FakePlugins {
    dir: TempDir,
}

impl FakePlugins {
    fn new() -> FakePlugins {
        FakePlugins {
            dir: TempDir::new().unwrap(),
        }
    }

    fn path(&self) -> CniPath {
        CniPath {
            dirs: vec![self.dir.path().join("bin")],
        }
    }

    /// A plugin whose ADD prints `add_output` (a shell word list for printf), or
    /// fails with `fail` (an error object, exit 1) on the given command.
    fn plugin(&self, name: &str, add_output: &str, fail_on: Option<&str>) {
        let bin = self.dir.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        let log = self.dir.path().display().to_string();
        let fail = match fail_on {
            Some(cmd) => format!(
                "if [ \"$CNI_COMMAND\" = {cmd} ]; then echo '{{\"cniVersion\":\"1.0.0\",\"code\":7,\"msg\":\"{name} refuses\",\"details\":\"on purpose\"}}'; echo 'some log' >&2; exit 1; fi\n"
            ),
            None => String::new(),
        };
        let script = format!(
            "#!/bin/sh\n\
             n=$(ls '{log}' | grep -c \"^{name}-$CNI_COMMAND-\")\n\
             cat > '{log}'/{name}-$CNI_COMMAND-$n.json\n\
             ns=no; [ -n \"$CNI_NETNS\" ] && [ -e \"$CNI_NETNS\" ] && ns=yes\n\
             echo \"{name} $CNI_COMMAND $CNI_IFNAME $ns $CNI_ARGS $CNI_CONTAINERID\" >> '{log}'/calls\n\
             {fail}\
             if [ \"$CNI_COMMAND\" = ADD ]; then printf '%s' '{add_output}'; fi\n"
        );
        let path = bin.join(name);
        let tmp = bin.join(format!(".{name}.tmp"));
        fs::write(&tmp, script).unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).unwrap();
        fs::rename(&tmp, &path).unwrap();
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn stdin(&self, name: &str, command: &str, n: usize) -> Value {
        let path = self.dir.path().join(format!("{name}-{command}-{n}.json"));
        serde_json::from_slice(&fs::read(&path).unwrap()).unwrap()
    }
}

#[test]
fn plugin_exec_passes_the_cni_environment_and_reads_errors() {
    let fakes = FakePlugins::new();
    fakes.plugin("ok", r#"{"cniVersion":"1.0.0","ips":[]}"#, None);
    fakes.plugin("bad", "", Some("ADD"));
    let path = fakes.path();
    let inv = plugin::Invocation {
        command: CniCommand::Add,
        container_id: "c-1",
        netns: Some(Path::new("/proc/self/ns/net")),
        ifname: "eth3",
        cni_args: "IgnoreUnknown=1;IP=1.2.3.4",
        path: &path,
    };
    let out = plugin::exec(
        &path.find("ok").unwrap(),
        &inv,
        br#"{"hello":1}"#,
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(out, br#"{"cniVersion":"1.0.0","ips":[]}"#);
    assert_eq!(
        fakes.calls(),
        vec!["ok ADD eth3 yes IgnoreUnknown=1;IP=1.2.3.4 c-1"]
    );
    assert_eq!(fakes.stdin("ok", "ADD", 0), json!({"hello": 1}));

    let e = plugin::exec(
        &path.find("bad").unwrap(),
        &inv,
        b"{}",
        Duration::from_secs(30),
    )
    .unwrap_err();
    match &e {
        PluginError::Failed {
            code, msg, output, ..
        } => {
            assert_eq!(*code, Some(7));
            assert_eq!(msg, "bad refuses");
            assert_eq!(output, "some log");
        }
        other => panic!("unexpected {other:?}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("error 7 (invalid network config): bad refuses (on purpose)"),
        "{text}"
    );
    assert!(path.find("missing").is_none());
}

#[test]
fn plugin_exec_kills_a_plugin_that_hangs() {
    let dir = TempDir::new().unwrap();
    let bin = dir.path().join("sleepy");
    fs::write(&bin, "#!/bin/sh\nexec sleep 30\n").unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let path = CniPath::default();
    let inv = plugin::Invocation {
        command: CniCommand::Del,
        container_id: "c",
        netns: None,
        ifname: "eth0",
        cni_args: "",
        path: &path,
    };
    let started = std::time::Instant::now();
    let e = plugin::exec(&bin, &inv, b"{}", Duration::from_millis(300)).unwrap_err();
    assert!(matches!(e, PluginError::Timeout(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn cni_path_parsing_and_search_order() {
    let p = CniPath::parse("/a::/b:");
    assert_eq!(p.dirs, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
    assert_eq!(p.to_string(), "/a:/b");
    let d = CniPath::default_dirs();
    let exe_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    assert_eq!(
        d.dirs,
        vec![
            exe_dir,
            PathBuf::from("/usr/lib/cni"),
            PathBuf::from("/opt/cni/bin")
        ]
    );
    let both = p.then(&CniPath::parse("/b:/c"));
    assert_eq!(both.to_string(), "/a:/b:/c");
}

// ---------------------------------------------------------------- attach / release (root)

/// Run `f` on a thread of its own in new network and mount namespaces (mounts
/// private, `lo` up): the test's "host". Nothing it does reaches the real host.
fn in_test_host<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        #[allow(unsafe_code)]
        // SAFETY: CLONE_FILES is not among the flags; NEWNET and NEWNS only change
        // which namespaces this (throw-away) thread uses.
        unsafe {
            rustix::thread::unshare_unsafe(
                rustix::thread::UnshareFlags::NEWNET | rustix::thread::UnshareFlags::NEWNS,
            )
        }
        .expect("unshare");
        use rustix::mount::MountPropagationFlags as P;
        rustix::mount::mount_change("/", P::PRIVATE | P::REC).expect("make mounts private");
        netns::loopback_up().expect("lo up");
        f()
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn runtime_config() -> RuntimeConfig {
    serde_json::from_value(json!({
        "version": 1, "uuid": "u", "hostname": "rkt-u",
        "apps": [{"name": "a", "imageId": "sha512-00", "image": "/x", "exec": ["/bin/true"],
                  "user": "0", "group": "0", "capabilities": []}]
    }))
    .unwrap()
}

fn fake_network(local: &Path, name: &str, plugins: &[&str]) {
    let plugins: Vec<Value> = plugins.iter().map(|p| json!({"type": p, "k": p})).collect();
    write(
        &local.join(format!("net.d/{name}.conflist")),
        &json!({"cniVersion": "1.0.0", "name": name, "plugins": plugins}).to_string(),
    );
}

fn mounted_at(path: &Path) -> bool {
    let me = path.display().to_string();
    fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(me.as_str()))
}

#[test]
fn attach_chains_results_and_release_uses_what_was_saved() {
    if !is_root() {
        eprintln!("SKIPPED attach_chains_results_and_release_uses_what_was_saved: needs root");
        return;
    }
    in_test_host(|| {
        let fakes = FakePlugins::new();
        fakes.plugin(
            "first",
            r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.7.0.2/24","interface":0}],"dns":{"nameservers":["10.7.0.53"]}}"#,
            None,
        );
        fakes.plugin(
            "second",
            r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.7.0.2/24","interface":0}],"dns":{"nameservers":["10.7.0.53"]},"routes":[{"dst":"0.0.0.0/0"}]}"#,
            None,
        );
        fakes.plugin(
            "other",
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.8.0.3/16"}]}"#,
            None,
        );
        let tmp = TempDir::new().unwrap();
        let local = tmp.path().join("etc");
        fake_network(&local, "one", &["first", "second"]);
        fake_network(&local, "two", &["other"]);
        let pod = tmp.path().join("pod");
        fs::create_dir(&pod).unwrap();
        let opts = NetOptions {
            mode: NetMode::parse(&["one:IP=10.7.0.2,two"]).unwrap(),
            local_config: local.clone(),
            system_config: tmp.path().join("usr"),
            cni_path: Some(fakes.path()),
        };
        let atts = resolve(&opts, &[]).unwrap();
        let (ns, results) = setup(&pod, "pod-uuid", &atts, &fakes.path()).unwrap();
        assert_eq!(ns, pod.join(NETNS_FILE));
        assert!(netns::is_mounted(&ns) && mounted_at(&ns));
        assert_eq!(results.len(), 2);
        assert_eq!(
            results[0].routes.len(),
            1,
            "the last plugin's result is final"
        );
        assert_eq!(
            fakes.calls(),
            vec![
                "first ADD eth0 yes IgnoreUnknown=1;IP=10.7.0.2 pod-uuid",
                "second ADD eth0 yes IgnoreUnknown=1;IP=10.7.0.2 pod-uuid",
                "other ADD eth1 yes  pod-uuid",
            ]
        );
        // Chaining: the second plugin got the first one's result.
        let second_in = fakes.stdin("second", "ADD", 0);
        assert_eq!(
            second_in["prevResult"]["dns"]["nameservers"][0],
            "10.7.0.53"
        );
        assert_eq!(second_in["name"], "one");
        assert!(fakes.stdin("first", "ADD", 0).get("prevResult").is_none());

        let saved_now = saved(&pod).unwrap();
        assert_eq!(saved_now.len(), 2);
        assert_eq!(saved_now[0].path, pod.join("net/0-one.json"));
        assert_eq!(saved_now[0].record.ifname, "eth0");
        assert_eq!(saved_now[0].record.container_id, "pod-uuid");
        assert!(saved_now[0].record.result.is_some());
        let infos = networks_of(&pod).unwrap();
        assert_eq!(
            infos,
            vec![
                NetworkInfo {
                    name: "one".into(),
                    ip: Some("10.7.0.2".into())
                },
                NetworkInfo {
                    name: "two".into(),
                    ip: Some("10.8.0.3".into())
                },
            ]
        );

        // CHECK: every plugin of every network, in order, with the final result.
        check_pod(&pod, &CniPath::default()).unwrap();
        assert_eq!(
            &fakes.calls()[3..],
            [
                "first CHECK eth0 yes IgnoreUnknown=1;IP=10.7.0.2 pod-uuid",
                "second CHECK eth0 yes IgnoreUnknown=1;IP=10.7.0.2 pod-uuid",
                "other CHECK eth1 yes  pod-uuid",
            ]
        );
        let check_in = fakes.stdin("first", "CHECK", 0);
        assert_eq!(check_in["prevResult"]["routes"][0]["dst"], "0.0.0.0/0");
        for f in fs::read_dir(fakes.dir.path()).unwrap().flatten() {
            if f.file_name().to_string_lossy().contains("-CHECK-") {
                fs::remove_file(f.path()).unwrap();
            }
        }
        // A plugin that finds the networking changed fails the check, named.
        fakes.plugin(
            "second",
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.7.0.2/24"}]}"#,
            Some("CHECK"),
        );
        let e = check_pod(&pod, &CniPath::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("network one") && e.contains("plugin second") && e.contains("CHECK failed"),
            "{e}"
        );
        let mut calls = fakes.calls();
        calls.drain(..3);
        calls.retain(|c| !c.contains(" CHECK "));
        assert!(calls.is_empty(), "CHECK changed nothing else: {calls:?}");
        let calls_before_del = fakes.calls().len();

        // net.d changes (the network is even deleted): release still works, with
        // the configuration and result saved at ADD.
        fs::remove_dir_all(local.join("net.d")).unwrap();
        teardown(&pod, &CniPath::default()).unwrap();
        let calls = fakes.calls();
        assert_eq!(
            &calls[calls_before_del..],
            [
                "other DEL eth1 yes  pod-uuid",
                "second DEL eth0 yes IgnoreUnknown=1;IP=10.7.0.2 pod-uuid",
                "first DEL eth0 yes IgnoreUnknown=1;IP=10.7.0.2 pod-uuid",
            ]
        );
        let del_in = fakes.stdin("first", "DEL", 0);
        assert_eq!(del_in["k"], "first");
        assert_eq!(
            del_in["prevResult"]["routes"][0]["dst"], "0.0.0.0/0",
            "DEL gets the final ADD result"
        );
        assert!(!ns.exists() && !mounted_at(&ns));
        assert!(!pod.join(NET_DIR).exists());
        assert!(!has_state(&pod));
        // Idempotent.
        teardown(&pod, &CniPath::default()).unwrap();
        assert_eq!(fakes.calls().len(), calls_before_del + 3);
        // Without networks there is nothing to check.
        check_pod(&pod, &CniPath::default()).unwrap();
        assert_eq!(fakes.calls().len(), calls_before_del + 3);
    });
}

#[test]
fn a_failing_add_is_rolled_back_and_named() {
    if !is_root() {
        eprintln!("SKIPPED a_failing_add_is_rolled_back_and_named: needs root");
        return;
    }
    in_test_host(|| {
        let fakes = FakePlugins::new();
        fakes.plugin(
            "good",
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.7.0.2/24"}]}"#,
            None,
        );
        fakes.plugin("broken", "", Some("ADD"));
        let tmp = TempDir::new().unwrap();
        let local = tmp.path().join("etc");
        fake_network(&local, "fine", &["good"]);
        fake_network(&local, "flaky", &["good", "broken", "good"]);
        let pod = tmp.path().join("pod");
        fs::create_dir(&pod).unwrap();
        let opts = NetOptions {
            mode: NetMode::parse(&["fine,flaky"]).unwrap(),
            local_config: local.clone(),
            system_config: tmp.path().join("usr"),
            cni_path: Some(fakes.path()),
        };
        let atts = resolve(&opts, &[]).unwrap();
        let e = manifests::error::chain(&setup(&pod, "pod-2", &atts, &fakes.path()).unwrap_err());
        assert!(e.contains("network flaky"), "{e}");
        assert!(
            e.contains(&local.join("net.d/flaky.conflist").display().to_string()),
            "{e}"
        );
        assert!(e.contains("plugin broken"), "{e}");
        assert!(e.contains("ADD failed"), "{e}");
        assert!(e.contains("broken refuses"), "{e}");
        // Everything attempted was released, in reverse order; nothing is left.
        assert_eq!(
            fakes.calls(),
            vec![
                "good ADD eth0 yes  pod-2",
                "good ADD eth1 yes  pod-2",
                "broken ADD eth1 yes  pod-2",
                "good DEL eth1 yes  pod-2",
                "broken DEL eth1 yes  pod-2",
                "good DEL eth1 yes  pod-2",
                "good DEL eth0 yes  pod-2",
            ]
        );
        assert!(!has_state(&pod));
        assert!(!mounted_at(&pod.join(NETNS_FILE)));

        // A plugin that is not there is named with the path searched.
        let missing = NetOptions {
            mode: NetMode::parse(&["gone"]).unwrap(),
            ..opts
        };
        fake_network(&local, "gone", &["nowhere"]);
        let atts = resolve(&missing, &[]).unwrap();
        let e = setup(&pod, "pod-2", &atts, &fakes.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("network gone") && e.contains("plugin nowhere not found"),
            "{e}"
        );
        assert!(e.contains(&fakes.path().to_string()), "{e}");
        assert!(!has_state(&pod));
    });
}

#[test]
fn a_failing_del_keeps_state_for_the_next_try() {
    if !is_root() {
        eprintln!("SKIPPED a_failing_del_keeps_state_for_the_next_try: needs root");
        return;
    }
    in_test_host(|| {
        let fakes = FakePlugins::new();
        fakes.plugin(
            "p",
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.7.0.4/24"}]}"#,
            None,
        );
        let tmp = TempDir::new().unwrap();
        let local = tmp.path().join("etc");
        fake_network(&local, "n", &["p"]);
        let pod = tmp.path().join("pod");
        fs::create_dir(&pod).unwrap();
        let opts = NetOptions {
            mode: NetMode::parse(&["n"]).unwrap(),
            local_config: local,
            system_config: tmp.path().join("usr"),
            cni_path: Some(fakes.path()),
        };
        setup(&pod, "pod-3", &resolve(&opts, &[]).unwrap(), &fakes.path()).unwrap();
        fakes.plugin("p", "", Some("DEL"));
        let e = teardown(&pod, &CniPath::default()).unwrap_err().to_string();
        assert!(
            e.contains("network n") && e.contains("plugin p") && e.contains("DEL failed"),
            "{e}"
        );
        assert!(pod.join("net/0-n.json").exists());
        assert!(
            netns::is_mounted(&pod.join(NETNS_FILE)),
            "kept for the retry"
        );
        fakes.plugin("p", "", None);
        teardown(&pod, &CniPath::default()).unwrap();
        assert!(!has_state(&pod));
    });
}

/// The reference plugins (Debian's `containernetworking-plugins`), for real: a
/// bridge in the test's namespace, a veth into the pod's, a lease file; all gone
/// after release.
#[test]
fn reference_plugins_attach_and_release() {
    if !is_root() {
        eprintln!("SKIPPED reference_plugins_attach_and_release: needs root");
        return;
    }
    if !Path::new("/usr/lib/cni/bridge").exists() {
        eprintln!("SKIPPED reference_plugins_attach_and_release: /usr/lib/cni has no plugins (install containernetworking-plugins)");
        return;
    }
    in_test_host(|| {
        let tmp = TempDir::new().unwrap();
        let leases = tmp.path().join("leases");
        let local = tmp.path().join("etc");
        write(
            &local.join("net.d/10-ref.conflist"),
            &json!({
                "cniVersion": "1.0.0", "name": "ref",
                "plugins": [{
                    "type": "bridge", "bridge": "reftest0", "isGateway": true,
                    "ipam": {"type": "host-local", "dataDir": leases,
                             "ranges": [[{"subnet": "10.123.0.0/24"}]]}
                }]
            })
            .to_string(),
        );
        let pod = tmp.path().join("pod");
        fs::create_dir(&pod).unwrap();
        let path = CniPath::parse("/usr/lib/cni");
        let opts = NetOptions {
            mode: NetMode::parse(&["ref:IP=10.123.0.77"]).unwrap(),
            local_config: local,
            system_config: tmp.path().join("usr"),
            cni_path: Some(path.clone()),
        };
        let (_, results) = setup(&pod, "refpod", &resolve(&opts, &[]).unwrap(), &path).unwrap();
        assert_eq!(
            results[0].ips[0].address, "10.123.0.77/24",
            "CNI_ARGS IP= reached host-local"
        );
        assert!(leases.join("ref/10.123.0.77").exists());
        let links = |ns: Option<&Path>| {
            let mut cmd = std::process::Command::new("ip");
            if let Some(ns) = ns {
                cmd.arg("-n").arg(ns);
            }
            let out = cmd.args(["-o", "link"]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let host_links = links(None);
        assert!(
            host_links.contains("reftest0") && host_links.contains("veth"),
            "{host_links}"
        );
        // `ip -n` wants a name under /run/netns; look from inside instead.
        let inside = std::process::Command::new("nsenter")
            .arg(format!("--net={}", pod.join(NETNS_FILE).display()))
            .args(["ip", "-o", "addr"])
            .output()
            .unwrap();
        let inside = String::from_utf8_lossy(&inside.stdout);
        assert!(
            inside.contains("eth0") && inside.contains("10.123.0.77/24"),
            "{inside}"
        );
        assert!(
            inside.contains("lo") && inside.contains("127.0.0.1"),
            "lo is up: {inside}"
        );

        // CHECK passes as attached; with the pod's eth0 gone the bridge plugin
        // reports it.
        check_pod(&pod, &CniPath::default()).unwrap();
        let nsenter = |args: &[&str]| {
            std::process::Command::new("nsenter")
                .arg(format!("--net={}", pod.join(NETNS_FILE).display()))
                .args(args)
                .status()
                .unwrap()
        };
        assert!(nsenter(&["ip", "link", "del", "eth0"]).success());
        let e = check_pod(&pod, &CniPath::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("network ref") && e.contains("CHECK failed"),
            "{e}"
        );

        teardown(&pod, &CniPath::default()).unwrap();
        let host_links = links(None);
        assert!(!host_links.contains("veth"), "{host_links}");
        assert!(!leases.join("ref/10.123.0.77").exists());
        assert!(!has_state(&pod));
    });
}

#[test]
fn port_requests_are_checked_against_the_images() {
    use crate::pod::spec::{resolve_ports, ResolvedApp, SpecError};
    let manifest: manifests::appc::ImageManifest = serde_json::from_value(json!({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/web",
        "app": {"exec": ["/bin/web"], "user": "0", "group": "0",
                "ports": [{"name": "http", "protocol": "tcp", "port": 80},
                          {"name": "dns", "protocol": "udp", "port": 53}]}
    }))
    .unwrap();
    let apps = vec![ResolvedApp {
        request: Default::default(),
        image_id: "sha512-00".into(),
        manifest,
        rootfs: PathBuf::from("/x"),
    }];
    let got = resolve_ports(
        &[
            parse_port("http:8080").unwrap(),
            parse_port("dns:8080").unwrap(),
        ],
        &apps,
    )
    .unwrap();
    assert_eq!(got[0].pod_port.as_ref().unwrap().port, 80);
    assert_eq!(got[1].pod_port.as_ref().unwrap().protocol, "udp");
    let e = resolve_ports(&[parse_port("ssh:22").unwrap()], &apps).unwrap_err();
    assert!(matches!(e, SpecError::UnknownPort { .. }));
    assert!(
        e.to_string().contains("ssh") && e.to_string().contains("http, dns"),
        "{e}"
    );
    let twice = [
        parse_port("http:8080").unwrap(),
        parse_port("http:8081").unwrap(),
    ];
    assert!(matches!(
        resolve_ports(&twice, &apps),
        Err(SpecError::DuplicatePortName { .. })
    ));
    let clash = [
        parse_port("http:8080").unwrap(),
        ExposedPort {
            name: "dns".into(),
            host_port: 8080,
            host_ip: None,
            pod_port: None,
        },
    ];
    // Same host port, different protocols: fine.
    assert!(resolve_ports(&clash, &apps).is_ok());
}

/// The start hook through the pods module: `runtime.json` is amended for stage1; a
/// stage1 that cannot start has the networks released and `runtime.json` restored;
/// gc releases the networks of a pod that ran.
#[test]
fn start_hook_amends_runtime_json_undoes_on_failure_and_gc_releases() {
    if !is_root() {
        eprintln!(
            "SKIPPED start_hook_amends_runtime_json_undoes_on_failure_and_gc_releases: needs root"
        );
        return;
    }
    in_test_host(|| {
        use crate::pod::dir::{Pods, Stage1Stdio};
        let fakes = FakePlugins::new();
        fakes.plugin(
            "p",
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.7.0.9/24"}],"dns":{"nameservers":["10.7.0.53"],"domain":"pods.test"}}"#,
            None,
        );
        let tmp = TempDir::new().unwrap();
        let local = tmp.path().join("etc");
        fake_network(&local, "n", &["p"]);
        let pods = Pods::open(
            &tmp.path().join("data"),
            std::sync::Arc::new(CniNetworks::default()),
        )
        .unwrap();
        let mut rt = runtime_config();
        rt.uuid = String::new();
        let manifest = PodManifest::new(vec![PodApp {
            name: "a".into(),
            image: RuntimeImage {
                name: None,
                id: "sha512-0123456789abcdef".into(),
                labels: vec![],
            },
            app: None,
            read_only_root_fs: false,
            mounts: vec![],
            annotations: vec![],
        }]);
        let pod = pods.prepare(&manifest, &rt).unwrap();
        let original = fs::read(pod.dir.join(RUNTIME_FILE)).unwrap();
        let opts = NetOptions {
            mode: NetMode::parse(&["n"]).unwrap(),
            local_config: local,
            system_config: tmp.path().join("usr"),
            cni_path: Some(fakes.path()),
        };

        let e = pods
            .spawn_prepared_with(
                &pod.uuid,
                &tmp.path().join("no-stage1"),
                &Stage1Stdio::Null,
                &mut PodNetworking::new(opts.clone()),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("no-stage1"), "{e}");
        let uuid = pod.uuid.as_str();
        assert_eq!(
            fakes.calls(),
            vec![
                format!("p ADD eth0 yes  {uuid}"),
                format!("p DEL eth0 yes  {uuid}")
            ]
        );
        let back = pods.resolve(uuid).unwrap();
        assert!(back.state.can_run(), "back in prepared: {}", back.state);
        assert_eq!(fs::read(back.dir.join(RUNTIME_FILE)).unwrap(), original);
        assert!(!has_state(&back.dir));

        // A stage1 that starts: it keeps a copy of the runtime.json it was given.
        let seen = tmp.path().join("seen.json");
        let stage1 = tmp.path().join("stage1");
        fs::write(
            tmp.path().join(".stage1.tmp"),
            format!(
                "#!/bin/sh\n[ \"$1\" = run ] && cp \"$3/runtime.json\" '{}'\nexit 0\n",
                seen.display()
            ),
        )
        .unwrap();
        fs::set_permissions(
            tmp.path().join(".stage1.tmp"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        fs::rename(tmp.path().join(".stage1.tmp"), &stage1).unwrap();
        let mut child = pods
            .spawn_prepared_with(
                uuid,
                &stage1,
                &Stage1Stdio::Null,
                &mut PodNetworking::new(opts),
            )
            .unwrap();
        assert!(child.wait().unwrap().success());
        let given = RuntimeConfig::from_slice(&fs::read(&seen).unwrap()).unwrap();
        let run_dir = fs::canonicalize(pods.resolve(uuid).unwrap().dir).unwrap();
        assert_eq!(given.netns, Some(run_dir.join(NETNS_FILE)));
        assert!(!given.private_network);
        let dns = given.dns.unwrap();
        assert_eq!(dns.nameservers, vec!["10.7.0.53"]);
        assert_eq!(dns.search, vec!["pods.test"]);
        assert_eq!(
            given.hosts_entries,
            vec![HostsEntry {
                ip: "10.7.0.9".into(),
                hostnames: vec!["rkt-u.pods.test".to_string(), "rkt-u".to_string()],
            }]
        );
        let listed = pods.list().unwrap();
        assert_eq!(
            listed[0].networks,
            vec![NetworkInfo {
                name: "n".into(),
                ip: Some("10.7.0.9".into())
            }]
        );

        let report = pods
            .gc(
                Duration::ZERO,
                Duration::from_secs(3600),
                false,
                &stage1,
                std::time::SystemTime::now(),
            )
            .unwrap();
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        assert_eq!(report.removed.len(), 1);
        assert!(
            report.removed[0].detached_mounts.is_empty(),
            "netns was unmounted by the release"
        );
        assert_eq!(fakes.calls().len(), 4);
        assert_eq!(fakes.calls()[3], format!("p DEL eth0 yes  {uuid}"));
        assert!(!mounted_at(&run_dir.join(NETNS_FILE)));
    });
}

#[test]
fn check_skips_old_versions_disabled_checks_and_unfinished_adds() {
    if !is_root() {
        eprintln!(
            "SKIPPED check_skips_old_versions_disabled_checks_and_unfinished_adds: needs root"
        );
        return;
    }
    in_test_host(|| {
        let fakes = FakePlugins::new();
        fakes.plugin(
            "p",
            r#"{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.7.0.2/24"}]}"#,
            Some("CHECK"),
        );
        let tmp = TempDir::new().unwrap();
        let local = tmp.path().join("etc");
        write(
            &local.join("net.d/old.conflist"),
            &json!({"cniVersion": "0.3.1", "name": "old", "plugins": [{"type": "p"}]}).to_string(),
        );
        write(
            &local.join("net.d/off.conflist"),
            &json!({"cniVersion": "1.0.0", "name": "off", "disableCheck": true,
                    "plugins": [{"type": "p"}]})
            .to_string(),
        );
        let pod = tmp.path().join("pod");
        fs::create_dir(&pod).unwrap();
        let opts = NetOptions {
            mode: NetMode::parse(&["old,off"]).unwrap(),
            local_config: local,
            system_config: tmp.path().join("usr"),
            cni_path: Some(fakes.path()),
        };
        setup(
            &pod,
            "pod-uuid",
            &resolve(&opts, &[]).unwrap(),
            &fakes.path(),
        )
        .unwrap();
        // The plugin would fail CHECK, but neither network may be checked.
        check_pod(&pod, &CniPath::default()).unwrap();
        assert!(!fakes.calls().iter().any(|c| c.contains("CHECK")));
        // A deleted namespace fails without asking any plugin.
        let ns = pod.join(NETNS_FILE);
        netns::remove(&ns).unwrap();
        let e = check_pod(&pod, &CniPath::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("is gone"), "{e}");
        assert!(!fakes.calls().iter().any(|c| c.contains("CHECK")));
        teardown(&pod, &CniPath::default()).unwrap();
    });
}
