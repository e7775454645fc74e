//! Our plugins mixed with Debian's reference plugins (`/usr/lib/cni`) on one
//! network, in a private "host" namespace.

mod common;

use common::*;
use serde_json::json;

#[test]
fn our_bridge_and_the_reference_bridge_share_a_network_and_both_ipams() {
    let (Some(ref_bridge), Some(_)) = (reference("bridge"), reference("host-local")) else {
        return;
    };
    in_host_netns(move || {
        let data = tempfile::tempdir().unwrap();
        let conf = json!({
            "cniVersion": "1.0.0",
            "name": "mixed",
            "type": "bridge",
            "bridge": "br-mix",
            "isDefaultGateway": true,
            "ipMasq": true,
            "ipam": {"type": "host-local", "dataDir": data.path(),
                     "ranges": [[{"subnet": "10.70.0.0/24"}]]}
        });
        let ours_dir = our_dir().display().to_string();

        // Our bridge delegating to the reference host-local.
        let pod_a = PodNs::new();
        let a = Call::new("ADD", "a", Some(&pod_a.path_str())).path(REFERENCE_DIR);
        let res_a = a.run(BRIDGE, &conf).ok().clone();
        // The reference bridge delegating to our host-local.
        let pod_b = PodNs::new();
        let b = Call::new("ADD", "b", Some(&pod_b.path_str())).path(&ours_dir);
        let res_b = b.run(&ref_bridge, &conf).ok().clone();

        let ip_a = bare(&addresses(&res_a)[0]);
        let ip_b = bare(&addresses(&res_b)[0]);
        assert_ne!(ip_a, ip_b);
        let leases = lease_files(&data.path().join("mixed"));
        assert_eq!(
            leases,
            vec![
                (ip_a.clone(), "a\r\neth0".to_string()),
                (ip_b.clone(), "b\r\neth0".to_string())
            ]
        );
        assert!(pod_a.ping(&ip_b), "our pod cannot reach the reference pod");
        assert!(pod_b.ping(&ip_a), "the reference pod cannot reach ours");
        assert!(pod_b.ping("10.70.0.1"));

        // CHECK across the mix (the reference bridge runs our host-local's CHECK).
        Call::new("CHECK", "a", Some(&pod_a.path_str()))
            .path(REFERENCE_DIR)
            .run(BRIDGE, &with_prev(&conf, &res_a))
            .ok();
        Call::new("CHECK", "b", Some(&pod_b.path_str()))
            .path(&ours_dir)
            .run(&ref_bridge, &with_prev(&conf, &res_b))
            .ok();

        // DEL: each releases through the other's IPAM.
        Call::new("DEL", "a", Some(&pod_a.path_str()))
            .path(REFERENCE_DIR)
            .run(BRIDGE, &with_prev(&conf, &res_a))
            .ok();
        Call::new("DEL", "b", Some(&pod_b.path_str()))
            .path(&ours_dir)
            .run(&ref_bridge, &with_prev(&conf, &res_b))
            .ok();
        assert!(lease_files(&data.path().join("mixed")).is_empty());
        let ruleset = sh(&["nft", "list", "ruleset"]);
        assert!(!ruleset.contains("jump masq-"), "{ruleset}");
        let iptables = sh(&["iptables-save"]);
        assert!(!iptables.contains("MASQUERADE"), "{iptables}");
    });
}

#[test]
fn our_portmap_after_the_reference_bridge() {
    let Some(ref_bridge) = reference("bridge") else {
        return;
    };
    in_host_netns(move || {
        let data = tempfile::tempdir().unwrap();
        let pod = PodNs::new();
        let ns = pod.path_str();
        let conf = json!({
            "cniVersion": "1.0.0", "name": "refpm", "type": "bridge", "bridge": "br-ref",
            "isDefaultGateway": true,
            "ipam": {"type": "host-local", "dataDir": data.path(), "ranges": [[{"subnet": "10.71.0.0/24"}]]}
        });
        let prev = Call::new("ADD", "web", Some(&ns))
            .path(REFERENCE_DIR)
            .run(&ref_bridge, &conf)
            .ok()
            .clone();
        let pm = json!({"cniVersion": "1.0.0", "name": "refpm", "type": "portmap",
            "runtimeConfig": {"portMappings": [{"hostPort": 9090, "containerPort": 90}]},
            "prevResult": prev});
        Call::new("ADD", "web", Some(&ns)).run(PORTMAP, &pm).ok();
        let _server = PodServer::start(&pod, 90, "ref pod\n");
        assert_eq!(fetch("127.0.0.1:9090"), "ref pod\n");
        assert_eq!(fetch("10.71.0.1:9090"), "ref pod\n");
        Call::new("DEL", "web", Some(&ns)).run(PORTMAP, &pm).ok();
        assert_eq!(fetch("127.0.0.1:9090"), "");
    });
}
