//! End-to-end: pod networking through the real `rkt` binary and CNI plugins.
//!
//! Every test runs inside a "test host" it makes itself: a new network namespace (with
//! `lo` up) and a new mount namespace (mounts private, a tmpfs over `/var/lib/cni` so
//! IP leases stay private too), on a thread of its own; the `rkt` processes it starts
//! inherit both. Bridges, veths, NAT rules and `ip_forward` exist only there: nothing
//! reaches the real host's network. Needs root.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::netns::{in_test_host, sh};
use e2e::rkt::{busybox_aci, is_root, Rkt};
use serde_json::Value;

const NAME: &str = "example.com/busybox";
/// An address for the test host's "outside" interface (TEST-NET-2, never routed).
const HOST_IP: &str = "198.51.100.1";

macro_rules! need_root {
    ($name:expr) => {
        if !is_root() {
            eprintln!("SKIPPED {}: needs root", $name);
            return;
        }
    };
}

/// A command's stdout, or "" if it cannot run (say, nft is not installed).
fn output_of(cmd: &str) -> String {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn poll(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A throwaway installation with the busybox image fetched. On drop (inside the
/// test host) every pod still running is killed and everything collected.
struct Setup {
    rkt: Rkt,
    /// Extra global flags for every command (e.g. --cni-path).
    flags: Vec<String>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for p in self.pods().iter().filter(|p| p["state"] == "running") {
            if let Some(uuid) = p["uuid"].as_str() {
                let _ = self.rkt.run(["stop", "--force", uuid]);
                let _ = self.rkt.run(["status", "--wait=20s", uuid]);
            }
        }
        let _ = self.rkt.run(self.args(&["gc", "--grace-period=0s"]));
    }
}

impl Setup {
    fn new() -> Setup {
        let rkt = Rkt::new();
        let aci = busybox_aci(&rkt.scratch(), NAME);
        rkt.ok(["--insecure-options=image", "fetch", aci.to_str().unwrap()]);
        Setup {
            rkt,
            flags: Vec::new(),
        }
    }

    fn args(&self, rest: &[&str]) -> Vec<String> {
        self.flags
            .iter()
            .cloned()
            .chain(rest.iter().map(|s| s.to_string()))
            .collect()
    }

    fn ok(&self, rest: &[&str]) -> String {
        self.rkt.ok(self.args(rest))
    }

    fn pods(&self) -> Vec<Value> {
        serde_json::from_str(&self.rkt.ok(["list", "--format=json"])).unwrap_or_default()
    }

    fn pod(&self, uuid: &str) -> Value {
        self.pods()
            .into_iter()
            .find(|p| p["uuid"] == uuid)
            .unwrap_or_else(|| panic!("no pod {uuid}"))
    }

    /// `rkt run ARGS` in the background, its UUID once it is running and ready.
    fn start(&self, rest: &[&str]) -> (Background, String) {
        let uuid_file = self
            .rkt
            .scratch()
            .join(format!("uuid-{}", self.pods().len()));
        let mut args = vec![
            "run".to_string(),
            format!("--uuid-file-save={}", uuid_file.display()),
        ];
        args.extend(rest.iter().map(|s| s.to_string()));
        let child = self
            .rkt
            .command(self.args(&args.iter().map(String::as_str).collect::<Vec<_>>()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut bg = Background { child: Some(child) };
        let mut uuid = String::new();
        poll("the pod to run", Duration::from_secs(60), || {
            if let Some(status) = bg.child.as_mut().unwrap().try_wait().unwrap() {
                let out = bg.child.take().unwrap().wait_with_output().unwrap();
                panic!(
                    "rkt run exited early ({status}): {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            uuid = fs::read_to_string(&uuid_file)
                .unwrap_or_default()
                .trim()
                .to_string();
            !uuid.is_empty() && self.pod(&uuid)["state"] == "running"
        });
        self.rkt.ok(["status", "--wait-ready=30s", &uuid]);
        (bg, uuid)
    }

    fn stop(&self, uuid: &str) {
        self.rkt.ok(["stop", uuid]);
        self.rkt.ok(["status", "--wait=30s", uuid]);
    }

    fn gc(&self) -> String {
        self.ok(&["gc", "--grace-period=0s"])
    }
}

/// A `rkt run` in the background; SIGKILLed (by PID) if still there on drop.
struct Background {
    child: Option<Child>,
}

impl Background {
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}

fn ip_of(pod: &Value, network: &str) -> String {
    pod["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == network)
        .and_then(|n| n["ip"].as_str())
        .unwrap_or_else(|| panic!("pod has no address on {network}: {pod}"))
        .to_string()
}

/// Nothing of the given pods is left in the test host: no veth, no lease for their
/// addresses, no namespace mount under the data dir, no NAT rule naming them.
fn assert_released(s: &Setup, ips: &[String]) {
    let links = sh("ip -o link");
    assert!(!links.contains("veth"), "a veth is left:\n{links}");
    let leases: Vec<String> = fs::read_dir("/var/lib/cni/networks/default")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    for ip in ips {
        assert!(!leases.contains(ip), "lease {ip} is left: {leases:?}");
    }
    let data = fs::canonicalize(s.rkt.data_dir()).unwrap();
    let data = data.to_string_lossy();
    let mounts: Vec<String> = fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&*data)))
        .map(str::to_string)
        .collect();
    assert!(
        mounts.is_empty(),
        "mounts left under the data dir: {mounts:?}"
    );
    let rules = output_of("iptables-save") + &output_of("nft list ruleset");
    for ip in ips {
        let hit: Vec<&str> = rules.lines().filter(|l| mentions(l, ip)).collect();
        assert!(hit.is_empty(), "NAT rules for {ip} are left: {hit:?}");
    }
    for chain in ["CNI-DN-", "CNI-HOSTPORT-DNAT -p"] {
        assert!(
            !rules
                .lines()
                .any(|l| l.contains(chain) && !l.starts_with(':') && l.contains("-A")),
            "per-pod rules ({chain}) are left:\n{rules}"
        );
    }
}

/// Whether `line` names the address `ip` (not merely one that starts like it).
fn mentions(line: &str, ip: &str) -> bool {
    line.match_indices(ip).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + ip.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit() || c == '.')
            && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// GET http://addr/ from the test host (plain TCP; polls until it answers).
fn http_get(addr: &str) -> String {
    let mut body = String::new();
    poll(&format!("http://{addr}/"), Duration::from_secs(20), || {
        let Ok(mut c) = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))
        else {
            return false;
        };
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = format!("GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        if c.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut resp = String::new();
        if c.read_to_string(&mut resp).is_err() || !resp.starts_with("HTTP/1") {
            return false;
        }
        body = resp;
        true
    });
    body
}

#[test]
fn pods_on_the_default_network_reach_each_other_and_the_gateway() {
    need_root!("pods_on_the_default_network_reach_each_other_and_the_gateway");
    in_test_host(|| {
        let s = Setup::new();
        let img = NAME.to_string();
        // Pod A: a TCP echo server on 7000.
        let (_a, a_uuid) = s.start(&[
            "--net=default",
            &img,
            "--exec=/bin/busybox",
            "--",
            "nc",
            "-ll",
            "-p",
            "7000",
            "-e",
            "/bin/sh",
            "-c",
            "read l; echo echo:$l",
        ]);
        assert!(
            s.rkt
                .local_config()
                .join("net.d/99-default.conflist")
                .is_file(),
            "the default network is written on first use"
        );
        let a = s.pod(&a_uuid);
        let a_ip = ip_of(&a, "default");
        assert!(a_ip.starts_with("172.16.28."), "{a_ip}");
        let list = s.rkt.ok(["list"]);
        assert!(list.contains(&format!("default:{a_ip}")), "{list}");
        let status = s.rkt.ok(["status", &a_uuid]);
        assert!(
            status.contains(&format!("networks=default:ip4={a_ip}")),
            "{status}"
        );
        // The bridge is the gateway in the test host.
        let links = sh("ip -o addr show rkt0");
        assert!(links.contains("172.16.28.1/24"), "{links}");

        // Pod B pings A and the gateway, talks to A's echo server, and shows its
        // own /etc/hosts.
        let script = format!(
            "ping -c1 -W2 {a_ip} >/dev/null || exit 11; \
             ping -c1 -W2 172.16.28.1 >/dev/null || exit 12; \
             i=0; r=; while [ $i -lt 100 ]; do r=$(echo hello | nc {a_ip} 7000) && [ -n \"$r\" ] && break; i=$((i+1)); usleep 50000; done; \
             echo \"reply=$r\"; ip route; cat /etc/hosts"
        );
        let out = s.ok(&[
            "run",
            "--net=default",
            &img,
            "--exec=/bin/sh",
            "--",
            "-c",
            &script,
        ]);
        assert!(out.contains("reply=echo:hello"), "{out}");
        assert!(out.contains("default via 172.16.28.1"), "{out}");
        let b = s
            .pods()
            .into_iter()
            .find(|p| p["uuid"] != a_uuid.as_str())
            .unwrap();
        let b_ip = ip_of(&b, "default");
        assert_ne!(a_ip, b_ip);
        let b_uuid = b["uuid"].as_str().unwrap();
        assert!(
            out.contains(&format!("{b_ip}\trkt-{b_uuid}")),
            "/etc/hosts names the pod's address: {out}"
        );
        // The bridge plugin turned forwarding on: in the test host only.
        assert_eq!(
            fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .unwrap()
                .trim(),
            "1"
        );

        s.stop(&a_uuid);
        let gc = s.gc();
        assert!(gc.contains(&a_uuid) && gc.contains(b_uuid), "{gc}");
        assert!(s.pods().is_empty());
        assert_released(&s, &[a_ip, b_ip]);
    });
}

#[test]
fn prepared_pod_gets_its_network_at_run_prepared_with_cni_args() {
    need_root!("prepared_pod_gets_its_network_at_run_prepared_with_cni_args");
    in_test_host(|| {
        let s = Setup::new();
        let img = NAME.to_string();
        let uuid = s
            .ok(&[
                "prepare",
                "--quiet",
                &img,
                "--exec=/bin/busybox",
                "--",
                "ip",
                "-o",
                "-4",
                "addr",
            ])
            .trim()
            .to_string();
        let out = s.ok(&["run-prepared", "--net=default:IP=172.16.28.77", &uuid]);
        assert!(
            out.contains("eth0") && out.contains("172.16.28.77/24"),
            "{out}"
        );
        assert_eq!(ip_of(&s.pod(&uuid), "default"), "172.16.28.77");
        let rm = s.ok(&["rm", &uuid]);
        assert!(rm.contains(&uuid));
        assert_released(&s, &["172.16.28.77".to_string()]);
    });
}

#[test]
fn net_none_has_only_lo_and_net_host_sees_the_host() {
    need_root!("net_none_has_only_lo_and_net_host_sees_the_host");
    in_test_host(|| {
        let s = Setup::new();
        let img = NAME.to_string();
        sh("ip link add e2ehost0 type veth peer name e2ehost1");
        let out = s.ok(&[
            "run",
            "--net=none",
            &img,
            "--exec=/bin/busybox",
            "--",
            "ip",
            "-o",
            "link",
        ]);
        let names: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap())
            .collect();
        assert_eq!(names, vec!["lo"], "{out}");
        assert!(out.contains("UP"), "lo is up: {out}");

        let out = s.ok(&[
            "run",
            "--net=host",
            &img,
            "--exec=/bin/busybox",
            "--",
            "ip",
            "-o",
            "link",
        ]);
        assert!(
            out.contains("e2ehost0") && out.contains("e2ehost1"),
            "{out}"
        );
        // Nothing CNI was touched for either.
        assert!(!s.rkt.local_config().join("net.d").exists());
        assert!(!sh("ip -o link").contains("rkt0"));
        // --port needs a CNI network.
        s.rkt
            .run(["run", "--net=none", "--port=http:8080", &img])
            .fails_with(254, &["--port"]);
        assert!(
            s.pods().iter().all(|p| p["state"] != "prepared"),
            "no pod left behind"
        );
        s.gc();
    });
}

#[test]
fn host_port_forwards_to_the_pod() {
    need_root!("host_port_forwards_to_the_pod");
    in_test_host(|| {
        let s = Setup::new();
        let img = NAME.to_string();
        // The test host's "outside" address, on an interface of its own.
        sh(&format!(
            "ip link add e2eext0 type veth peer name e2eext1 && ip addr add {HOST_IP}/24 dev e2eext0 \
             && ip link set e2eext0 up && ip link set e2eext1 up"
        ));
        let (_pod, uuid) = s.start(&[
            "--net=default",
            "--port=http:8080",
            &img,
            "--exec=/bin/busybox",
            "--",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ]);
        let manifest: Value = serde_json::from_str(&s.rkt.ok(["cat-manifest", &uuid])).unwrap();
        assert_eq!(manifest["ports"][0]["name"], "http");
        assert_eq!(manifest["ports"][0]["hostPort"], 8080);
        let pod_ip = ip_of(&s.pod(&uuid), "default");
        for addr in ["127.0.0.1:8080".to_string(), format!("{HOST_IP}:8080")] {
            let resp = http_get(&addr);
            assert!(
                resp.contains("hello from the busybox example image"),
                "{addr}: {resp}"
            );
        }
        let rules = output_of("iptables-save") + &output_of("nft list ruleset");
        assert!(
            rules.contains("8080"),
            "a DNAT rule for the host port:\n{rules}"
        );

        s.stop(&uuid);
        s.gc();
        assert_released(&s, &[pod_ip]);
        let rules = output_of("iptables-save") + &output_of("nft list ruleset");
        assert!(
            !rules
                .lines()
                .any(|l| l.contains("8080") && !l.starts_with('#')),
            "the host port is still forwarded:\n{rules}"
        );
        assert!(TcpStream::connect_timeout(
            &"127.0.0.1:8080".parse().unwrap(),
            Duration::from_secs(1)
        )
        .is_err());

        // A port name the image does not have is refused before anything starts.
        s.rkt
            .run(["run", "--net=default", "--port=nope:81", &img])
            .fails_with(254, &["nope", "http"]);
    });
}

#[test]
fn kill_9_of_stage1_then_gc_releases_everything() {
    need_root!("kill_9_of_stage1_then_gc_releases_everything");
    in_test_host(|| {
        let s = Setup::new();
        let img = NAME.to_string();
        let (mut pod, uuid) = s.start(&[
            "--net=default",
            "--port=http:8081",
            &img,
            "--exec=/bin/busybox",
            "--",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ]);
        let ip = ip_of(&s.pod(&uuid), "default");
        assert!(sh("ip -o link").contains("veth"));
        // `rkt run` became stage1: this is stage1's PID.
        pod.kill();
        poll(
            "the pod to count as exited",
            Duration::from_secs(30),
            || s.pod(&uuid)["state"] == "exited",
        );
        let pod_dir = s.rkt.data_dir().join("pods/run").join(&uuid);
        assert!(
            pod_dir.join("netns").exists(),
            "the namespace outlives stage1"
        );
        let gc = s.gc();
        assert!(gc.contains(&uuid), "{gc}");
        assert_released(&s, &[ip]);
    });
}

#[test]
fn reference_plugins_from_usr_lib_cni_with_conf_and_conflist() {
    need_root!("reference_plugins_from_usr_lib_cni_with_conf_and_conflist");
    if !Path::new("/usr/lib/cni/bridge").exists() {
        eprintln!("SKIPPED reference_plugins_from_usr_lib_cni_with_conf_and_conflist: install containernetworking-plugins");
        return;
    }
    in_test_host(|| {
        let mut s = Setup::new();
        s.flags = vec!["--cni-path".into(), "/usr/lib/cni".into()];
        let img = NAME.to_string();
        let netd = s.rkt.local_config().join("net.d");
        fs::create_dir_all(&netd).unwrap();
        fs::write(
            netd.join("10-ref.conflist"),
            r#"{"cniVersion": "1.0.0", "name": "ref", "plugins": [
                 {"type": "bridge", "bridge": "refbr0", "isDefaultGateway": true, "ipMasq": true,
                  "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.123.0.0/24"}]]}},
                 {"type": "portmap", "capabilities": {"portMappings": true}}]}"#,
        )
        .unwrap();
        // A single-plugin .conf from the rkt 1.x days, in the system directory.
        let sysnetd = s.rkt.system_config().join("net.d");
        fs::create_dir_all(&sysnetd).unwrap();
        fs::write(
            sysnetd.join("20-old.conf"),
            r#"{"cniVersion": "0.3.1", "name": "old", "type": "bridge", "bridge": "refbr1", "isGateway": true,
                "ipam": {"type": "host-local", "subnet": "10.124.0.0/24"}}"#,
        )
        .unwrap();
        let out = s.ok(&[
            "run",
            "--net=ref,old",
            &img,
            "--exec=/bin/busybox",
            "--",
            "ip",
            "-o",
            "-4",
            "addr",
        ]);
        assert!(out.contains("eth0") && out.contains("10.123.0."), "{out}");
        assert!(out.contains("eth1") && out.contains("10.124.0."), "{out}");
        let pod = s.pods().remove(0);
        let uuid = pod["uuid"].as_str().unwrap().to_string();
        let ips = [ip_of(&pod, "ref"), ip_of(&pod, "old")];
        assert!(
            ips[0].starts_with("10.123.0.") && ips[1].starts_with("10.124.0."),
            "{pod}"
        );
        let saved = s
            .rkt
            .data_dir()
            .join("pods/run")
            .join(&uuid)
            .join("net/1-old.json");
        let record: Value = serde_json::from_slice(&fs::read(&saved).unwrap()).unwrap();
        assert_eq!(
            record["config"]["plugins"][0]["type"], "bridge",
            "the .conf became a list"
        );
        assert_eq!(record["ifname"], "eth1");
        assert!(Path::new("/var/lib/cni/networks/ref")
            .join(&ips[0])
            .exists());

        // The configuration changes before the pod is removed: release still uses
        // what was saved.
        fs::remove_file(sysnetd.join("20-old.conf")).unwrap();
        s.ok(&["rm", &uuid]);
        assert_released(&s, &ips);
        assert!(!Path::new("/var/lib/cni/networks/old")
            .join(&ips[1])
            .exists());
        assert!(!Path::new("/var/lib/cni/networks/ref")
            .join(&ips[0])
            .exists());
    });
}

#[test]
fn failures_name_the_network_plugin_and_file_and_leave_nothing() {
    need_root!("failures_name_the_network_plugin_and_file_and_leave_nothing");
    in_test_host(|| {
        let mut s = Setup::new();
        s.flags = vec!["--cni-path".into(), "/usr/lib/cni".into()];
        let img = NAME.to_string();
        let netd = s.rkt.local_config().join("net.d");
        fs::create_dir_all(&netd).unwrap();
        // The bridge is made, then host-local refuses the subnet: ADD fails midway.
        fs::write(
            netd.join("10-badipam.conflist"),
            r#"{"cniVersion": "1.0.0", "name": "badipam", "plugins": [
                 {"type": "bridge", "bridge": "badbr0",
                  "ipam": {"type": "host-local", "ranges": [[{"subnet": "not-a-subnet"}]]}}]}"#,
        )
        .unwrap();
        fs::write(
            netd.join("20-noplugin.conf"),
            r#"{"cniVersion": "1.0.0", "name": "noplugin", "type": "no-such-plugin"}"#,
        )
        .unwrap();
        let file = netd.join("10-badipam.conflist").display().to_string();
        s.rkt
            .run(s.args(&["run", "--net=default,badipam", &img]))
            .fails_with(
                254,
                &["network badipam", &file, "plugin bridge", "ADD failed"],
            );
        let file = netd.join("20-noplugin.conf").display().to_string();
        s.rkt
            .run(s.args(&["run", "--net=noplugin", &img]))
            .fails_with(
                254,
                &[
                    "network noplugin",
                    &file,
                    "plugin no-such-plugin not found",
                    "/usr/lib/cni",
                ],
            );
        s.rkt
            .run(s.args(&["run", "--net=nosuchnet", &img]))
            .fails_with(254, &["network nosuchnet is not defined"]);
        // No pod is left, in run/ or anywhere; the default network's ADD was undone.
        assert!(s.pods().is_empty(), "{:?}", s.pods());
        assert_released(&s, &[]);
        let leases: Vec<_> = fs::read_dir("/var/lib/cni/networks/default")
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            leases
                .iter()
                .all(|n| !n.to_string_lossy().starts_with("172.")),
            "{leases:?}"
        );
    });
}
