//! Hostile neighbours on the pod network: what a pod (an app keeps `CAP_NET_RAW`
//! by default, so it can craft any packet) can reach on the host through the
//! bridge.
//!
//! Every test runs in a test host (`e2e::netns::in_test_host`): a network and
//! mount namespace of its own, where the pods' bridge, veths, firewall rules and
//! sysctls live and die. The "neighbour" is one more network namespace the test
//! makes (held by a `sleep` it starts and kills by PID) with a veth on the pods'
//! bridge: it stands for a pod whose app has `NET_ADMIN`/`NET_RAW`, and sends real
//! packets on the wire. Each test prints `hostile <test>: escapes attempted: N,
//! blocked: N` on stderr, past the test harness's capture. Needs root.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use e2e::leaks::{Expect, LeakCheck};
use e2e::netns::{in_test_host, sh};
use e2e::rkt::{busybox_aci, is_root, Rkt};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
use serde_json::Value;

const NAME: &str = "example.com/busybox";
/// The built-in default network's gateway (the bridge `rkt0` in the test host).
const GATEWAY: &str = "172.16.28.1";
/// The neighbour's address on the bridge (host-local hands out addresses from .2
/// up, one pod here).
const NEIGHBOUR: &str = "172.16.28.250";
/// Ports of the host's loopback-only services, of the bridge-side control
/// listener, and the host port of the pod.
const SECRET_UDP: u16 = 9411;
const SECRET_TCP: u16 = 9412;
const BRIDGE_UDP: u16 = 9413;
const HOST_PORT: u16 = 8080;
/// How long a positive may take.
const DEADLINE: Duration = Duration::from_secs(15);
/// After a negative's marker arrived, how much longer an escaped packet gets.
const GRACE: Duration = Duration::from_millis(300);

macro_rules! need_root {
    ($name:expr) => {
        if !is_root() {
            eprintln!("SKIPPED {}: needs root", $name);
            return;
        }
    };
}

/// Escapes attempted with the defaults, and how many were blocked; printed on
/// stderr (past the harness's capture) when the test ends or an escape gets through.
struct Tally {
    test: &'static str,
    attempted: usize,
    blocked: usize,
}

impl Tally {
    fn print(&self) {
        let _ = writeln!(
            std::io::stderr(),
            "hostile {}: escapes attempted: {}, blocked: {}",
            self.test,
            self.attempted,
            self.blocked
        );
    }

    /// Count one attempt; one that got through fails the test.
    fn record(&mut self, blocked: bool, what: &str) {
        self.attempted += 1;
        if blocked {
            self.blocked += 1;
        } else {
            self.print();
            panic!("{}: {what} got through", self.test);
        }
    }
}

fn poll(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A UDP service of the test host that records every datagram it gets.
struct UdpService {
    got: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpService {
    fn bind(addr: &str) -> UdpService {
        let sock = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (got, stop) = (got.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                        got.lock().unwrap().push(msg);
                    }
                }
            })
        };
        UdpService {
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn has(&self, msg: &str) -> bool {
        self.got.lock().unwrap().iter().any(|m| m == msg)
    }
}

impl Drop for UdpService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP service of the test host that counts the connections it accepts.
struct TcpService {
    accepted: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpService {
    fn bind(addr: &str) -> TcpService {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        listener.set_nonblocking(true).unwrap();
        let accepted = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (accepted, stop) = (accepted.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut c, _)) => {
                            *accepted.lock().unwrap() += 1;
                            let _ = c.write_all(b"host-loopback-secret\n");
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        TcpService {
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> usize {
        *self.accepted.lock().unwrap()
    }
}

impl Drop for TcpService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A network namespace on the pods' bridge, held by a `sleep` (killed by PID on
/// drop), its veth's host end `nb0` deleted on drop.
struct Neighbour {
    holder: Child,
}

impl Neighbour {
    fn attach(bridge: &str) -> Neighbour {
        let holder = Command::new("unshare")
            .args(["--net", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("run unshare --net sleep");
        let n = Neighbour { holder };
        let mine = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        poll("the neighbour's namespace", || {
            std::fs::read_link(format!("/proc/{}/ns/net", n.pid())).is_ok_and(|ns| ns != mine)
        });
        sh(&format!(
            "ip link add nb0 type veth peer name nb1 && ip link set nb1 netns {pid} \
             && ip link set nb0 master {bridge} && ip link set nb0 up",
            pid = n.pid()
        ));
        // The neighbour sends to 127.0.0.0/8 through the gateway: its own `lo` stays
        // down (no local 127 routes), a route sends 127/8 out on the wire, and
        // route_localnet lets its interface carry (and take back) such packets.
        n.sh(&format!(
            "ip link set nb1 up && ip addr add {NEIGHBOUR}/24 dev nb1 \
             && echo 1 > /proc/sys/net/ipv4/conf/nb1/route_localnet \
             && ip route add 127.0.0.0/8 via {GATEWAY} dev nb1 onlink"
        ));
        n
    }

    fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// A shell command inside the neighbour's namespace.
    fn sh(&self, cmd: &str) -> String {
        sh(&format!(
            "nsenter --target {} --net sh -c '{cmd}'",
            self.pid()
        ))
    }

    /// Run `f` on a thread inside the neighbour's namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = File::open(format!("/proc/{}/ns/net", self.pid())).unwrap();
        std::thread::spawn(move || {
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))
                .expect("enter the neighbour's namespace");
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    /// Send `payload` to `to` over UDP from the neighbour.
    fn send_udp(&self, to: &str, payload: &str) {
        let (to, payload): (SocketAddr, String) = (to.parse().unwrap(), payload.to_string());
        self.run(move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.send_to(payload.as_bytes(), to)
                .unwrap_or_else(|e| panic!("the neighbour cannot send to {to}: {e}"));
        });
    }

    /// Try a TCP connection to `to` from the neighbour; what it read, or the error.
    fn tcp(&self, to: &str) -> Result<String, String> {
        let to: SocketAddr = to.parse().unwrap();
        self.run(move || {
            let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(2))
                .map_err(|e| e.to_string())?;
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = String::new();
            let _ = c.read_to_string(&mut got);
            Ok(got)
        })
    }

    /// An HTTP GET from the neighbour.
    fn http_get(&self, addr: &str) -> String {
        let addr = addr.to_string();
        self.run(move || http_get(&addr))
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", "nb0"]).status();
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A `rkt run` in the background; SIGKILLed (by PID) if still there on drop.
struct Background(Option<Child>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Start a busybox httpd pod on the default network with `--port=http:HOST_PORT`.
fn start_web_pod(rkt: &Rkt) -> (Background, String) {
    let uuid_file = rkt.scratch().join("uuid");
    let child = rkt
        .command([
            "run".to_string(),
            format!("--uuid-file-save={}", uuid_file.display()),
            "--net=default".into(),
            format!("--port=http:{HOST_PORT}"),
            NAME.into(),
            "--exec=/bin/busybox".into(),
            "--".into(),
            "httpd".into(),
            "-f".into(),
            "-p".into(),
            "80".into(),
            "-h".into(),
            "/www".into(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut bg = Background(Some(child));
    let mut uuid = String::new();
    poll("the pod to run", || {
        if let Some(status) = bg.0.as_mut().unwrap().try_wait().unwrap() {
            panic!("rkt run exited early: {status}");
        }
        uuid = std::fs::read_to_string(&uuid_file)
            .unwrap_or_default()
            .trim()
            .to_string();
        let pods: Vec<Value> =
            serde_json::from_str(&rkt.ok(["list", "--format=json"])).unwrap_or_default();
        !uuid.is_empty()
            && pods
                .iter()
                .any(|p| p["uuid"] == uuid.as_str() && p["state"] == "running")
    });
    rkt.ok(["status", "--wait-ready=30s", &uuid]);
    (bg, uuid)
}

/// An HTTP GET from the test host.
fn http_get(addr: &str) -> String {
    let to: SocketAddr = addr.parse().unwrap();
    let mut body = String::new();
    poll(&format!("http://{addr}/"), || {
        let Ok(mut c) = TcpStream::connect_timeout(&to, Duration::from_secs(2)) else {
            return false;
        };
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = format!("GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        let mut resp = String::new();
        if c.write_all(req.as_bytes()).is_err() || c.read_to_string(&mut resp).is_err() {
            return false;
        }
        body = resp;
        body.starts_with("HTTP/1")
    });
    body
}

fn route_localnet(iface: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{iface}/route_localnet"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Packets the guard has dropped so far (None: no guard).
fn guard_drops() -> Option<u64> {
    let out = Command::new("nft")
        .args(["list", "chain", "inet", "rkt_cni_localnet", "input"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().find(|l| l.contains(" drop"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "packets")?;
    words.get(at + 1)?.parse().ok()
}

/// Send `token` from the neighbour to the host's `127.0.0.1:SECRET_UDP`, then a
/// marker to the bridge-side listener on the same path. The marker must arrive
/// (the path is live); once it did, and `GRACE` later, the token either reached the
/// loopback-only service or not. Returns whether it did.
fn udp_escape(nb: &Neighbour, secret: &UdpService, bridge: &UdpService, token: &str) -> bool {
    let marker = format!("{token}-marker");
    nb.send_udp(&format!("127.0.0.1:{SECRET_UDP}"), token);
    nb.send_udp(&format!("{GATEWAY}:{BRIDGE_UDP}"), &marker);
    poll(
        &format!("marker {marker} at {GATEWAY}:{BRIDGE_UDP}"),
        || bridge.has(&marker),
    );
    if secret.has(token) {
        return true;
    }
    std::thread::sleep(GRACE);
    secret.has(token)
}

#[test]
fn host_loopback_stays_private_while_route_localnet_is_on() {
    let test = "host_loopback_stays_private_while_route_localnet_is_on";
    need_root!(test);
    in_test_host(move || {
        let rkt = Rkt::new();
        let aci = busybox_aci(&rkt.scratch(), NAME);
        rkt.ok(["--insecure-options=image", "fetch", aci.to_str().unwrap()]);
        let leaks = LeakCheck::new(&rkt.data_dir(), true);
        // The host's services that listen on loopback only.
        let secret_udp = UdpService::bind(&format!("127.0.0.1:{SECRET_UDP}"));
        let secret_tcp = TcpService::bind(&format!("127.0.0.1:{SECRET_TCP}"));
        let mut tally = Tally {
            test,
            attempted: 0,
            blocked: 0,
        };

        let (pod, uuid) = start_web_pod(&rkt);
        assert_eq!(
            route_localnet("rkt0"),
            "1",
            "portmap turned route_localnet on"
        );
        assert_eq!(guard_drops(), Some(0), "the guard came with it");
        let bridge_udp = UdpService::bind(&format!("{GATEWAY}:{BRIDGE_UDP}"));
        let nb = Neighbour::attach("rkt0");

        // Positive controls: the host port answers on the host's 127.0.0.1 (DNATed
        // replies come back through the guard) and to the neighbour on the bridge
        // address; the neighbour's packets reach the host's bridge address.
        for resp in [
            http_get(&format!("127.0.0.1:{HOST_PORT}")),
            nb.http_get(&format!("{GATEWAY}:{HOST_PORT}")),
        ] {
            assert!(
                resp.contains("hello from the busybox example image"),
                "{resp}"
            );
        }
        nb.send_udp(&format!("{GATEWAY}:{BRIDGE_UDP}"), "hello");
        poll("the neighbour's datagram at the bridge address", || {
            bridge_udp.has("hello")
        });

        // With the defaults: the neighbour's packets to 127.0.0.1 reach the host and
        // are dropped by the guard (its counter moves), not delivered.
        let before = guard_drops().unwrap();
        let escaped = udp_escape(&nb, &secret_udp, &bridge_udp, "udp-defaults");
        tally.record(
            !escaped,
            &format!("a datagram to the host's 127.0.0.1:{SECRET_UDP}"),
        );
        poll("the guard to count the datagram", || {
            guard_drops().unwrap() > before
        });
        let before = guard_drops().unwrap();
        let tcp = nb.tcp(&format!("127.0.0.1:{SECRET_TCP}"));
        tally.record(
            tcp.is_err() && secret_tcp.accepted() == 0,
            &format!("a TCP connection to the host's 127.0.0.1:{SECRET_TCP} ({tcp:?})"),
        );
        assert!(guard_drops().unwrap() > before, "the guard dropped the SYN");

        // The control: without the guard's drop rule the same packets get through.
        let listing = sh("nft -a list chain inet rkt_cni_localnet input");
        let handle = listing
            .lines()
            .find(|l| l.contains(" drop "))
            .and_then(|l| l.rsplit("# handle ").next())
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|| panic!("no drop rule in\n{listing}"));
        sh(&format!(
            "nft delete rule inet rkt_cni_localnet input handle {handle}"
        ));
        nb.send_udp(&format!("127.0.0.1:{SECRET_UDP}"), "udp-control");
        poll("the datagram without the guard", || {
            secret_udp.has("udp-control")
        });
        let tcp = nb.tcp(&format!("127.0.0.1:{SECRET_TCP}"));
        assert_eq!(
            tcp.as_deref(),
            Ok("host-loopback-secret\n"),
            "the control connection reaches the loopback-only service"
        );
        assert_eq!(secret_tcp.accepted(), 1);

        // When the last pod with host ports goes, route_localnet goes off again and
        // the guard with it; the kernel drops such packets as martians again.
        rkt.ok(["stop", &uuid]);
        rkt.ok(["status", "--wait=30s", &uuid]);
        drop(pod);
        rkt.ok(["gc", "--grace-period=0s"]);
        assert_eq!(route_localnet("rkt0"), "0", "route_localnet is off again");
        assert_eq!(guard_drops(), None, "the guard is gone");
        // The bridge takes the lowest MAC of its ports: with the pod's veth gone it
        // may have changed, and the neighbour would keep sending to the old one.
        nb.sh("ip neigh flush dev nb1");
        let escaped = udp_escape(&nb, &secret_udp, &bridge_udp, "udp-after");
        tally.record(!escaped, "a datagram to 127.0.0.1 after the pod went");
        tally.print();

        drop(nb);
        let found = leaks.check(&Expect::default());
        assert!(found.is_empty(), "left behind: {found:?}");
    });
}
