//! `portmap` chained after `bridge`, and `loopback`; each test in its own "host"
//! network namespace.

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};

fn bridge_conf(data_dir: &Path, subnet: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "pm",
        "type": "bridge",
        "bridge": "br-pm",
        "isDefaultGateway": true,
        "hairpinMode": true,
        "ipam": {"type": "host-local", "dataDir": data_dir, "ranges": [[{"subnet": subnet}]]}
    })
}

fn portmap_conf(prev: &Value, mappings: Value) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "pm",
        "type": "portmap",
        "runtimeConfig": {"portMappings": mappings},
        "prevResult": prev
    })
}

/// Give the "host" an address on an uplink-like interface (a veth pair; the
/// kernel here has no dummy driver).
fn host_address(addr: &str) {
    sh(&[
        "ip", "link", "add", "ext0", "type", "veth", "peer", "name", "ext0p",
    ]);
    sh(&["ip", "addr", "add", addr, "dev", "ext0"]);
    sh(&["ip", "link", "set", "ext0p", "up"]);
    sh(&["ip", "link", "set", "ext0", "up"]);
}

/// A client namespace linked to the host by a veth pair: host 203.0.113.1,
/// client 203.0.113.2.
fn outside_client() -> PodNs {
    let client = PodNs::new();
    sh(&[
        "ip",
        "link",
        "add",
        "up0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &client.path_str(),
    ]);
    sh(&["ip", "addr", "add", "203.0.113.1/24", "dev", "up0"]);
    sh(&["ip", "link", "set", "up0", "up"]);
    for args in [
        &["ip", "addr", "add", "203.0.113.2/24", "dev", "eth0"][..],
        &["ip", "link", "set", "eth0", "up"],
        &["ip", "link", "set", "lo", "up"],
    ] {
        assert!(client.exec(args).status.success(), "{args:?}");
    }
    client
}

#[test]
fn host_ports_reach_the_pod_from_everywhere_until_del() {
    in_host_netns(|| {
        let data = tempfile::tempdir().unwrap();
        host_address("198.51.100.1/24");
        let client = outside_client();
        let pod = PodNs::new();
        let ns = pod.path_str();
        let bconf = bridge_conf(data.path(), "10.60.0.0/24");
        let prev = Call::new("ADD", "web", Some(&ns))
            .run(BRIDGE, &bconf)
            .ok()
            .clone();
        let pconf = portmap_conf(
            &prev,
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
        );
        let out = Call::new("ADD", "web", Some(&ns)).run(PORTMAP, &pconf);
        // prevResult is passed through unchanged.
        assert_eq!(out.ok(), &prev);

        let _server = PodServer::start(&pod, 80, "hello from the pod\n");
        let pod_ip = bare(&addresses(&prev)[0]);
        assert_eq!(
            fetch(&format!("{pod_ip}:80")),
            "hello from the pod\n",
            "direct"
        );
        assert_eq!(
            fetch("198.51.100.1:8080"),
            "hello from the pod\n",
            "host address"
        );
        assert_eq!(fetch("127.0.0.1:8080"), "hello from the pod\n", "localhost");
        let from_outside =
            cni_plugins::netns::run_in_netns(client.path(), || fetch("203.0.113.1:8080")).unwrap();
        assert_eq!(
            from_outside, "hello from the pod\n",
            "from another namespace (prerouting)"
        );
        let hairpin =
            cni_plugins::netns::run_in_netns(pod.path(), || fetch("198.51.100.1:8080")).unwrap();
        assert_eq!(
            hairpin, "hello from the pod\n",
            "the pod through its own host port"
        );

        Call::new("CHECK", "web", Some(&ns))
            .run(PORTMAP, &pconf)
            .ok();
        let ruleset = sh(&["nft", "list", "ruleset"]);
        assert!(
            ruleset.contains(&format!("dnat ip to {pod_ip}:80")),
            "{ruleset}"
        );

        // A second container cannot take the same host port.
        let pod2 = PodNs::new();
        let prev2 = Call::new("ADD", "other", Some(&pod2.path_str()))
            .run(BRIDGE, &bconf)
            .ok()
            .clone();
        let clash = portmap_conf(&prev2, json!([{"hostPort": 8080, "containerPort": 81}]));
        assert_eq!(
            Call::new("ADD", "other", Some(&pod2.path_str()))
                .run(PORTMAP, &clash)
                .err_code(),
            104
        );

        // DEL removes every rule of the container, twice is fine.
        for _ in 0..2 {
            Call::new("DEL", "web", Some(&ns)).run(PORTMAP, &pconf).ok();
        }
        let ruleset = sh(&["nft", "list", "ruleset"]);
        assert!(!ruleset.contains("dnat"), "{ruleset}");
        assert!(!ruleset.contains("jump dn-"), "{ruleset}");
        let iptables = sh(&["iptables-save"]);
        assert!(!iptables.contains("DNAT"), "{iptables}");
        assert_eq!(fetch("127.0.0.1:8080"), "", "no forwarding after DEL");
        assert_eq!(fetch("198.51.100.1:8080"), "", "no forwarding after DEL");
        let r = Call::new("CHECK", "web", Some(&ns)).run(PORTMAP, &pconf);
        assert_eq!(r.err_code(), 106);

        // Now the port is free for the other container.
        Call::new("ADD", "other", Some(&pod2.path_str()))
            .run(PORTMAP, &clash)
            .ok();
        Call::new("DEL", "other", Some(&pod2.path_str()))
            .run(PORTMAP, &clash)
            .ok();
    });
}

#[test]
fn portmap_needs_prev_result_and_passes_it_through() {
    in_host_netns(|| {
        let prev = json!({"cniVersion": "0.4.0",
            "interfaces": [{"name": "eth0", "sandbox": "/x"}],
            "ips": [{"version": "4", "address": "10.61.0.2/24", "interface": 0}]});
        let mut conf = portmap_conf(&prev, json!([]));
        conf["cniVersion"] = json!("0.4.0");
        let r = Call::new("ADD", "c", Some("/x")).run(PORTMAP, &conf);
        assert_eq!(r.ok(), &prev);
        // No mappings: no table is created.
        assert!(!sh(&["nft", "list", "ruleset"]).contains("rkt_cni_hostport"));

        conf.as_object_mut().unwrap().remove("prevResult");
        assert_eq!(
            Call::new("ADD", "c", Some("/x"))
                .run(PORTMAP, &conf)
                .err_code(),
            7
        );
        let bad = portmap_conf(
            &prev,
            json!([{"hostPort": 80, "containerPort": 80, "protocol": "icmp"}]),
        );
        let mut bad = bad;
        bad["cniVersion"] = json!("0.4.0");
        assert_eq!(
            Call::new("ADD", "c", Some("/x"))
                .run(PORTMAP, &bad)
                .err_code(),
            7
        );
        // DEL with nothing installed is fine.
        Call::new("DEL", "c", None).run(PORTMAP, &conf).ok();
    });
}

#[test]
fn loopback_add_check_del() {
    in_host_netns(|| {
        let mut pod = PodNs::new();
        let ns = pod.path_str();
        let conf = json!({"cniVersion": "1.0.0", "name": "lo", "type": "loopback"});
        let res = Call::new("ADD", "c", Some(&ns))
            .run(LOOPBACK, &conf)
            .ok()
            .clone();
        assert_eq!(
            res["interfaces"],
            json!([{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": ns}])
        );
        let ips = addresses(&res);
        assert!(ips.contains(&"127.0.0.1/8".to_string()), "{ips:?}");
        let link = String::from_utf8_lossy(&pod.exec(&["ip", "-br", "link", "show", "lo"]).stdout)
            .into_owned();
        assert!(link.contains("UNKNOWN") || link.contains("UP"), "{link}");
        assert!(pod.ping("127.0.0.1"));

        let check = Call::new("CHECK", "c", Some(&ns));
        check.run(LOOPBACK, &with_prev(&conf, &res)).ok();
        Call::new("DEL", "c", Some(&ns)).run(LOOPBACK, &conf).ok();
        assert_eq!(check.run(LOOPBACK, &with_prev(&conf, &res)).err_code(), 106);

        // With a prevResult, ADD passes it through.
        let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.62.0.2/24"}]});
        let r = Call::new("ADD", "c", Some(&ns)).run(LOOPBACK, &with_prev(&conf, &prev));
        assert_eq!(r.ok(), &prev);

        pod.destroy();
        Call::new("DEL", "c", Some(&ns)).run(LOOPBACK, &conf).ok();
        Call::new("DEL", "c", None).run(LOOPBACK, &conf).ok();
        assert_eq!(
            Call::new("ADD", "c", Some(&ns))
                .run(LOOPBACK, &conf)
                .err_code(),
            3
        );
    });
}
