//! The `host-local` binary, alone and sharing a lease directory with the
//! reference plugin. IPAM touches no network state: these tests need no
//! namespace, only a temp lease directory each.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use serde_json::{json, Value};

fn ipam_conf(name: &str, data_dir: &Path, ranges: Value) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": name,
        "type": "bridge",
        "ipam": {
            "type": "host-local",
            "dataDir": data_dir,
            "ranges": ranges,
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.0.2.0/24", "gw": "10.50.0.254"}]
        }
    })
}

fn add(plugin: impl AsRef<Path>, conf: &Value, id: &str) -> Run {
    Call::new("ADD", id, Some("/run/netns/unused")).run(plugin, conf)
}

#[test]
fn add_check_del() {
    let data = tempfile::tempdir().unwrap();
    let conf = ipam_conf(
        "hl",
        data.path(),
        json!([[{"subnet": "10.50.0.0/24"}], [{"subnet": "fd50::/64"}]]),
    );
    let r = add(HOST_LOCAL, &conf, "c1");
    let res = r.ok().clone();
    assert_eq!(
        res["ips"],
        json!([
            {"address": "10.50.0.2/24", "gateway": "10.50.0.1"},
            {"address": "fd50::2/64", "gateway": "fd50::1"}
        ])
    );
    assert!(res.get("interfaces").is_none());
    assert_eq!(
        res["routes"][1],
        json!({"dst": "192.0.2.0/24", "gw": "10.50.0.254"})
    );

    let dir = data.path().join("hl");
    let lease = dir.join("10.50.0.2");
    assert_eq!(std::fs::read(&lease).unwrap(), b"c1\r\neth0");
    assert_eq!(
        std::fs::metadata(&lease).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("last_reserved_ip.0")).unwrap(),
        "10.50.0.2"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("last_reserved_ip.1")).unwrap(),
        "fd50::2"
    );
    assert!(dir.join("lock").exists());

    // A second ADD for the same container and interface is refused.
    assert_eq!(add(HOST_LOCAL, &conf, "c1").err_code(), 103);
    // Another interface of the same container is fine.
    let other_if = Call::new("ADD", "c1", Some("/x"))
        .ifname("eth1")
        .run(HOST_LOCAL, &conf);
    assert_eq!(addresses(other_if.ok())[0], "10.50.0.3/24");

    let check = Call::new("CHECK", "c1", Some("/x")).run(HOST_LOCAL, &with_prev(&conf, &res));
    check.ok();
    let del = Call::new("DEL", "c1", None);
    del.run(HOST_LOCAL, &conf).ok();
    del.run(HOST_LOCAL, &conf).ok();
    assert!(!lease.exists());
    assert!(dir.join("10.50.0.3").exists(), "eth1's lease must stay");
    let check = Call::new("CHECK", "c1", Some("/x")).run(HOST_LOCAL, &with_prev(&conf, &res));
    assert_eq!(check.err_code(), 106);

    // Round-robin: the next ADD continues after the last address handed out.
    assert_eq!(
        addresses(add(HOST_LOCAL, &conf, "c2").ok())[0],
        "10.50.0.4/24"
    );
    // DEL of a network that never had leases is fine too.
    let never = ipam_conf("never", data.path(), json!([[{"subnet": "10.51.0.0/24"}]]));
    Call::new("DEL", "x", None).run(HOST_LOCAL, &never).ok();
    assert!(!data.path().join("never").exists());
}

#[test]
fn requested_addresses_and_errors() {
    let data = tempfile::tempdir().unwrap();
    let conf = ipam_conf("req", data.path(), json!([[{"subnet": "10.52.0.0/24"}]]));
    let r = Call::new("ADD", "c1", Some("/x"))
        .cni_args("IgnoreUnknown=1;IP=10.52.0.77")
        .run(HOST_LOCAL, &conf);
    assert_eq!(addresses(r.ok())[0], "10.52.0.77/24");
    let mut with_rc = conf.clone();
    with_rc["runtimeConfig"] = json!({"ips": ["10.52.0.77/24"]});
    assert_eq!(add(HOST_LOCAL, &with_rc, "c2").err_code(), 103);
    with_rc["runtimeConfig"] = json!({"ips": ["10.99.0.1"]});
    assert_eq!(add(HOST_LOCAL, &with_rc, "c2").err_code(), 7);
    with_rc["runtimeConfig"] = json!({"ips": ["10.52.0.1"]});
    assert_eq!(
        add(HOST_LOCAL, &with_rc, "c2").err_code(),
        103,
        "the gateway"
    );

    let bad = ipam_conf("bad", data.path(), json!([[{"subnet": "10.52.0.0/31"}]]));
    assert_eq!(add(HOST_LOCAL, &bad, "c").err_code(), 7);
    let bad = ipam_conf("bad", data.path(), json!([[{"subnet": "nonsense"}]]));
    assert_eq!(add(HOST_LOCAL, &bad, "c").err_code(), 7);
    let bad = ipam_conf(
        "../escape",
        data.path(),
        json!([[{"subnet": "10.52.0.0/24"}]]),
    );
    assert_eq!(add(HOST_LOCAL, &bad, "c").err_code(), 7);
    let legacy = json!({"cniVersion": "0.4.0", "name": "legacy", "type": "x",
        "ipam": {"type": "host-local", "dataDir": data.path(), "subnet": "10.53.0.0/24",
                 "rangeStart": "10.53.0.100", "resolvConf": "/nonexistent/resolv.conf"}});
    assert_eq!(add(HOST_LOCAL, &legacy, "c").err_code(), 5);
    let mut legacy = legacy;
    legacy["ipam"].as_object_mut().unwrap().remove("resolvConf");
    let r = add(HOST_LOCAL, &legacy, "c");
    assert_eq!(
        r.ok()["ips"][0],
        json!({"address": "10.53.0.100/24", "gateway": "10.53.0.1", "version": "4"})
    );
}

#[test]
fn exhaustion() {
    let data = tempfile::tempdir().unwrap();
    let conf = ipam_conf("small", data.path(), json!([[{"subnet": "10.54.0.0/29"}]]));
    // .1 is the gateway; .2 to .6 are handed out.
    for i in 0..5 {
        add(HOST_LOCAL, &conf, &format!("c{i}")).ok();
    }
    let r = add(HOST_LOCAL, &conf, "c5");
    assert_eq!(r.err_code(), 102);
    assert!(
        r.json["msg"]
            .as_str()
            .unwrap()
            .contains("10.54.0.1-10.54.0.6"),
        "{}",
        r.stdout
    );
    assert_eq!(lease_files(&data.path().join("small")).len(), 5);
}

#[test]
fn two_range_sets_fail_as_a_whole() {
    let data = tempfile::tempdir().unwrap();
    let conf = ipam_conf(
        "sets",
        data.path(),
        json!([[{"subnet": "10.55.0.0/24"}], [{"subnet": "10.56.0.0/24", "rangeStart": "10.56.0.9", "rangeEnd": "10.56.0.9"}]]),
    );
    add(HOST_LOCAL, &conf, "c1").ok();
    // The second set is full: the address taken from the first set is given back.
    assert_eq!(add(HOST_LOCAL, &conf, "c2").err_code(), 102);
    let leases = lease_files(&data.path().join("sets"));
    assert_eq!(leases.len(), 2, "{leases:?}");
}

fn parallel_adds(plugins: &[&Path], conf: &Value) -> Vec<String> {
    std::thread::scope(|s| {
        let handles: Vec<_> = plugins
            .iter()
            .enumerate()
            .map(|(i, plugin)| {
                s.spawn(move || {
                    let r = add(plugin, conf, &format!("c{i}"));
                    addresses(r.ok())[0].clone()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn concurrent_adds_never_share_an_address() {
    let data = tempfile::tempdir().unwrap();
    let conf = ipam_conf("par", data.path(), json!([[{"subnet": "10.57.0.0/24"}]]));
    let ours = Path::new(HOST_LOCAL);
    let mut ips = parallel_adds(&[ours; 10], &conf);
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 10, "{ips:?}");
    assert_eq!(lease_files(&data.path().join("par")).len(), 10);
}

#[test]
fn shares_a_lease_directory_with_the_reference_plugin() {
    let Some(reference) = reference("host-local") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let conf = ipam_conf("shared", data.path(), json!([[{"subnet": "10.58.0.0/27"}]]));
    let ours = Path::new(HOST_LOCAL).to_path_buf();
    // Alternate: each continues round-robin after the other's last address.
    let mut seen = Vec::new();
    for i in 0..6 {
        let plugin = if i % 2 == 0 { &ours } else { &reference };
        let ip = addresses(add(plugin, &conf, &format!("seq{i}")).ok())[0].clone();
        seen.push(ip);
    }
    assert_eq!(
        seen,
        [
            "10.58.0.2/27",
            "10.58.0.3/27",
            "10.58.0.4/27",
            "10.58.0.5/27",
            "10.58.0.6/27",
            "10.58.0.7/27"
        ]
    );
    // In parallel, mixed: still no address twice (both take the same flock).
    let mixed: Vec<&Path> = (0..8)
        .map(|i| {
            if i % 2 == 0 {
                ours.as_path()
            } else {
                reference.as_path()
            }
        })
        .collect();
    let par = parallel_adds(&mixed, &conf);
    let mut all: Vec<String> = seen.iter().chain(&par).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 14, "{all:?}");
    assert_eq!(lease_files(&data.path().join("shared")).len(), 14);
}

#[test]
fn each_plugin_releases_the_others_leases() {
    let Some(reference) = reference("host-local") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let conf = ipam_conf("rel", data.path(), json!([[{"subnet": "10.59.0.0/24"}]]));
    let by_ours = addresses(add(HOST_LOCAL, &conf, "ours").ok())[0].clone();
    let by_ref = addresses(add(&reference, &conf, "theirs").ok())[0].clone();
    let dir = data.path().join("rel");
    assert_eq!(
        std::fs::read(dir.join(bare(&by_ref))).unwrap(),
        b"theirs\r\neth0"
    );

    // CHECK across plugins.
    let prev =
        json!({"cniVersion": "1.0.0", "ips": [{"address": by_ours, "gateway": "10.59.0.1"}]});
    Call::new("CHECK", "ours", Some("/x"))
        .run(&reference, &with_prev(&conf, &prev))
        .ok();
    let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": by_ref, "gateway": "10.59.0.1"}]});
    Call::new("CHECK", "theirs", Some("/x"))
        .run(HOST_LOCAL, &with_prev(&conf, &prev))
        .ok();

    Call::new("DEL", "ours", None).run(&reference, &conf).ok();
    Call::new("DEL", "theirs", None).run(HOST_LOCAL, &conf).ok();
    assert!(lease_files(&dir).is_empty());
}
