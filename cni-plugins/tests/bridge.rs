//! The `bridge` binary driven through the CNI protocol, each test in its own
//! "host" network namespace with pod namespaces of its own.

mod common;

use common::*;
use serde_json::{json, Value};

fn conf(name: &str, data_dir: &std::path::Path, subnet: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": name,
        "type": "bridge",
        "bridge": "br-test",
        "isDefaultGateway": true,
        "ipMasq": true,
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "dataDir": data_dir,
            "ranges": [[{"subnet": subnet}]]
        }
    })
}

#[test]
fn version_lists_all_supported() {
    for bin in [BRIDGE, HOST_LOCAL, LOOPBACK, PORTMAP] {
        let r = Call::new("VERSION", "", None).run(bin, &json!({"cniVersion": "1.0.0"}));
        assert_eq!(
            r.ok()["supportedVersions"],
            json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0"]),
            "{bin}"
        );
    }
}

#[test]
fn add_check_del_and_pods_reach_each_other() {
    in_host_netns(|| {
        let data = tempfile::tempdir().unwrap();
        let conf = conf("pods", data.path(), "10.40.0.0/24");
        let pod1 = PodNs::new();
        let pod2 = PodNs::new();

        let r1 = Call::new("ADD", "pod1", Some(&pod1.path_str())).run(BRIDGE, &conf);
        let res1 = r1.ok().clone();
        let r2 = Call::new("ADD", "pod2", Some(&pod2.path_str())).run(BRIDGE, &conf);
        let res2 = r2.ok().clone();

        // Result shape: bridge, host veth, container interface in the sandbox.
        let ifaces = res1["interfaces"].as_array().unwrap();
        assert_eq!(ifaces.len(), 3);
        assert_eq!(ifaces[0]["name"], "br-test");
        assert_eq!(ifaces[2]["name"], "eth0");
        assert_eq!(ifaces[2]["sandbox"], pod1.path_str());
        assert_eq!(res1["ips"][0]["interface"], 2);
        assert_eq!(res1["ips"][0]["gateway"], "10.40.0.1");
        assert_eq!(
            res1["routes"],
            json!([{"dst": "0.0.0.0/0", "gw": "10.40.0.1"}])
        );
        let ip1 = bare(&addresses(&res1)[0]);
        let ip2 = bare(&addresses(&res2)[0]);
        assert_ne!(ip1, ip2);

        // The host veth is on the bridge, the gateway address on the bridge.
        let host_veth = ifaces[1]["name"].as_str().unwrap().to_string();
        assert!(links().contains(&host_veth));
        let addr = sh(&["ip", "-br", "addr", "show", "br-test"]);
        assert!(addr.contains("10.40.0.1/24"), "{addr}");
        let hairpin = sh(&["ip", "-d", "link", "show", &host_veth]);
        assert!(hairpin.contains("hairpin on"), "{hairpin}");

        // Traffic: pod to pod, pod to gateway.
        assert!(pod1.ping(&ip2), "pod1 cannot ping pod2 at {ip2}");
        assert!(pod2.ping(&ip1), "pod2 cannot ping pod1 at {ip1}");
        assert!(pod1.ping("10.40.0.1"), "pod1 cannot ping its gateway");

        // CHECK passes with the ADD result.
        let check = Call::new("CHECK", "pod1", Some(&pod1.path_str()))
            .run(BRIDGE, &with_prev(&conf, &res1));
        check.ok();

        // DEL removes the interface, lease and masquerade rules; DEL again is fine.
        let del = with_prev(&conf, &res1);
        Call::new("DEL", "pod1", Some(&pod1.path_str()))
            .run(BRIDGE, &del)
            .ok();
        Call::new("DEL", "pod1", Some(&pod1.path_str()))
            .run(BRIDGE, &del)
            .ok();
        assert!(!links().contains(&host_veth));
        let leases = lease_files(&data.path().join("pods"));
        assert_eq!(leases.len(), 1, "{leases:?}");
        assert_eq!(leases[0].0, ip2);
        let inside = pod1.exec(&["ip", "-br", "link"]);
        assert!(!String::from_utf8_lossy(&inside.stdout).contains("eth0"));
        let ruleset = sh(&["nft", "list", "ruleset"]);
        assert!(!ruleset.contains(&ip1), "{ruleset}");
        assert!(ruleset.contains(&ip2), "{ruleset}");

        Call::new("DEL", "pod2", Some(&pod2.path_str()))
            .run(BRIDGE, &with_prev(&conf, &res2))
            .ok();
        let ruleset = sh(&["nft", "list", "ruleset"]);
        assert!(!ruleset.contains("jump masq-"), "{ruleset}");
    });
}

#[test]
fn del_after_the_netns_is_gone_releases_the_address() {
    in_host_netns(|| {
        let data = tempfile::tempdir().unwrap();
        let conf = conf("gone", data.path(), "10.41.0.0/24");
        let mut pod = PodNs::new();
        let path = pod.path_str();
        let res = Call::new("ADD", "c1", Some(&path))
            .run(BRIDGE, &conf)
            .ok()
            .clone();
        let host_veth = res["interfaces"][1]["name"].as_str().unwrap().to_string();
        assert_eq!(lease_files(&data.path().join("gone")).len(), 1);

        pod.destroy();
        // The namespace is gone, and with it both ends of the veth pair.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while links().contains(&host_veth) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(!links().contains(&host_veth));

        let del = with_prev(&conf, &res);
        Call::new("DEL", "c1", Some(&path)).run(BRIDGE, &del).ok();
        assert!(lease_files(&data.path().join("gone")).is_empty());
        // Without CNI_NETNS at all.
        Call::new("DEL", "c1", None).run(BRIDGE, &del).ok();
        let ruleset = sh(&["nft", "list", "ruleset"]);
        assert!(!ruleset.contains("jump masq-"), "{ruleset}");
    });
}

#[test]
fn check_reports_drift() {
    in_host_netns(|| {
        let data = tempfile::tempdir().unwrap();
        let conf = conf("drift", data.path(), "10.42.0.0/24");
        let pod = PodNs::new();
        let ns = pod.path_str();
        let res = Call::new("ADD", "c1", Some(&ns))
            .run(BRIDGE, &conf)
            .ok()
            .clone();
        let check = || Call::new("CHECK", "c1", Some(&ns)).run(BRIDGE, &with_prev(&conf, &res));
        check().ok();
        let addr = addresses(&res)[0].clone();

        // Missing route.
        assert!(pod
            .exec(&["ip", "route", "del", "default"])
            .status
            .success());
        let r = check();
        assert_eq!(r.err_code(), 106);
        assert!(
            r.json["msg"].as_str().unwrap().contains("route 0.0.0.0/0"),
            "{}",
            r.stdout
        );
        assert!(pod
            .exec(&["ip", "route", "add", "default", "via", "10.42.0.1"])
            .status
            .success());
        check().ok();

        // Wrong address.
        assert!(pod
            .exec(&["ip", "addr", "del", &addr, "dev", "eth0"])
            .status
            .success());
        assert!(pod
            .exec(&["ip", "addr", "add", "10.42.0.99/24", "dev", "eth0"])
            .status
            .success());
        let r = check();
        assert_eq!(r.err_code(), 106);
        assert!(
            r.json["msg"].as_str().unwrap().contains(&addr),
            "{}",
            r.stdout
        );

        // Missing veth.
        assert!(pod.exec(&["ip", "link", "del", "eth0"]).status.success());
        let r = check();
        assert_eq!(r.err_code(), 106);
        assert!(r.stdout.contains("missing"), "{}", r.stdout);

        // The lease is gone too: host-local's CHECK (run by bridge) fails first.
        Call::new("DEL", "c1", Some(&ns))
            .run(BRIDGE, &with_prev(&conf, &res))
            .ok();
        let r = check();
        assert_eq!(r.err_code(), 106, "{}", r.stdout);
    });
}

#[test]
fn bad_config_and_environment_give_error_json() {
    in_host_netns(|| {
        let data = tempfile::tempdir().unwrap();
        let pod = PodNs::new();
        let ns = pod.path_str();
        let add = Call::new("ADD", "c1", Some(&ns));
        let good = conf("bad", data.path(), "10.43.0.0/24");

        let mut c = good.clone();
        c["mtu"] = json!("large");
        assert_eq!(add.run(BRIDGE, &c).err_code(), 7);
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove("ipam");
        assert_eq!(add.run(BRIDGE, &c).err_code(), 7);
        let mut c = good.clone();
        c["ipam"]["ranges"] = json!([[{"subnet": "10.43.0.5/24"}]]);
        let r = add.run(BRIDGE, &c);
        assert_eq!(r.err_code(), 7);
        assert_eq!(r.json["cniVersion"], "1.0.0");
        let mut c = good.clone();
        c["cniVersion"] = json!("0.2.0");
        assert_eq!(add.run(BRIDGE, &c).err_code(), 1);
        assert_eq!(add.run_raw(BRIDGE, b"{not json").err_code(), 6);
        let no_netns = Call::new("ADD", "c1", None);
        assert_eq!(no_netns.run(BRIDGE, &good).err_code(), 4);
        let bad_id = Call::new("ADD", "../x", Some(&ns));
        assert_eq!(bad_id.run(BRIDGE, &good).err_code(), 4);
        let missing = Call::new("ADD", "c1", Some("/nonexistent/netns"));
        assert_eq!(missing.run(BRIDGE, &good).err_code(), 3);
        let no_ipam_plugin = Call::new("ADD", "c1", Some(&ns)).path("/nonexistent");
        assert_eq!(no_ipam_plugin.run(BRIDGE, &good).err_code(), 7);

        // None of the failures left anything behind.
        assert!(lease_files(&data.path().join("bad")).is_empty());
        let host = links();
        assert!(!host.iter().any(|l| l.starts_with("veth")), "{host:?}");
        let inside = pod.exec(&["ip", "-br", "link"]);
        assert!(!String::from_utf8_lossy(&inside.stdout).contains("eth0"));

        // An interface that already exists is refused, and the pod keeps it.
        add.run(BRIDGE, &good).ok();
        let again = Call::new("ADD", "c2", Some(&ns)).run(BRIDGE, &good);
        assert_eq!(again.err_code(), 105, "{}", again.stdout);
        assert_eq!(lease_files(&data.path().join("bad")).len(), 1);
    });
}

#[test]
fn exhaustion_rolls_back_the_failed_add() {
    in_host_netns(|| {
        let data = tempfile::tempdir().unwrap();
        let mut c = conf("tiny", data.path(), "10.44.0.0/24");
        c["ipam"]["ranges"] = json!([[{"subnet": "10.44.0.0/24", "rangeStart": "10.44.0.10", "rangeEnd": "10.44.0.10"}]]);
        let pod1 = PodNs::new();
        let pod2 = PodNs::new();
        Call::new("ADD", "c1", Some(&pod1.path_str()))
            .run(BRIDGE, &c)
            .ok();
        let before = links();
        let r = Call::new("ADD", "c2", Some(&pod2.path_str())).run(BRIDGE, &c);
        assert_eq!(r.err_code(), 102, "{}", r.stdout);
        assert!(r.json["msg"]
            .as_str()
            .unwrap()
            .contains("no IP addresses available"));
        // The veth pair made before IPAM failed is gone again.
        assert_eq!(links(), before);
        let inside = pod2.exec(&["ip", "-br", "link"]);
        assert!(!String::from_utf8_lossy(&inside.stdout).contains("eth0"));
        assert_eq!(lease_files(&data.path().join("tiny")).len(), 1);
    });
}

#[test]
fn concurrent_adds_get_distinct_addresses() {
    in_host_netns(|| {
        let data = tempfile::tempdir().unwrap();
        let c = conf("par", data.path(), "10.45.0.0/24");
        let pods: Vec<PodNs> = (0..10).map(|_| PodNs::new()).collect();
        let results: Vec<Value> = std::thread::scope(|s| {
            let handles: Vec<_> = pods
                .iter()
                .enumerate()
                .map(|(i, pod)| {
                    let c = &c;
                    s.spawn(move || {
                        Call::new("ADD", &format!("c{i}"), Some(&pod.path_str()))
                            .run(BRIDGE, c)
                            .ok()
                            .clone()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut ips: Vec<String> = results.iter().flat_map(addresses).collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 10, "{ips:?}");
        assert_eq!(lease_files(&data.path().join("par")).len(), 10);
        // Everyone shares one bridge and can reach the gateway.
        assert!(pods[9].ping("10.45.0.1"));
        // Pod 3 reaches pod 7 (by pod 7's own address: the sorted list's 8th entry
        // may be pod 3's, and a pod's loopback is down here).
        let pod7 = addresses(&results[7]);
        assert!(pods[3].ping(&bare(&pod7[0])), "pod 3 -> pod 7 at {pod7:?}");
    });
}

#[test]
fn answers_in_older_versions() {
    in_host_netns(|| {
        let data = tempfile::tempdir().unwrap();
        let pod = PodNs::new();
        let mut c = conf("old", data.path(), "10.46.0.0/24");
        c["cniVersion"] = json!("0.3.1");
        let res = Call::new("ADD", "c1", Some(&pod.path_str()))
            .run(BRIDGE, &c)
            .ok()
            .clone();
        assert_eq!(res["cniVersion"], "0.3.1");
        assert_eq!(res["ips"][0]["version"], "4");
        // CHECK does not exist before 0.4.0.
        let r = Call::new("CHECK", "c1", Some(&pod.path_str())).run(BRIDGE, &with_prev(&c, &res));
        assert_eq!(r.err_code(), 1);
        c["cniVersion"] = json!("0.4.0");
        let mut prev = res.clone();
        prev["cniVersion"] = json!("0.4.0");
        Call::new("CHECK", "c1", Some(&pod.path_str()))
            .run(BRIDGE, &with_prev(&c, &prev))
            .ok();
        Call::new("DEL", "c1", Some(&pod.path_str()))
            .run(BRIDGE, &with_prev(&c, &prev))
            .ok();
    });
}
