//! A leak checker for one throwaway rkt installation.
//!
//! After a fault and the reconcile that follows it, everything the installation holds
//! on the host must belong to a live pod, and every pod directory must be one that is
//! wanted. [`LeakCheck::check`] looks for:
//!
//! - **pod dirs**: any directory under `<dir>/pods/*/` that is not the one running pod
//!   of a wanted manifest key (or an allowed UUID). Pods already marked as garbage
//!   (`exited-garbage/`, `garbage/`) count only if `rkt gc --grace-period=0s` cannot
//!   collect them: collecting those is gc's job, not the reconciler's.
//! - **mounts** at or below the data dir (`/proc/thread-self/mountinfo`, so the
//!   caller's mount namespace) other than the `netns` of a live pod;
//! - **cgroups** `/sys/fs/cgroup/<controller>/rkt/<uuid>` and the unified
//!   `/sys/fs/cgroup[/unified]/rkt/<uuid>` of pods of this data dir that are not
//!   running;
//! - **processes** whose command line or environment names the data dir (stage1, the
//!   pod's pid 1, CNI plugins) other than those of live pods and the allowed PIDs (the
//!   test's reconciler), and processes in the cgroups of pods that are not running;
//! - in a test host (`docs/networking.md`: a network namespace of the test's own, with
//!   a tmpfs on `/var/lib/cni`): **veths** other than the host ends of live pods'
//!   attachments, **IP leases** under `/var/lib/cni/networks/*` not held by a live
//!   pod, and **NAT rules** (`nft list ruleset`, `iptables-save`) naming an address
//!   ever leased to a pod of this installation that is not live, or per-pod masquerade
//!   chains beyond the live attachments; the portmap plugin's host loopback guard
//!   (`inet rkt_cni_localnet`) when no container has host ports, and
//!   `route_localnet` on for an interface without that guard. Outside a test host
//!   only leases naming a pod of this installation are looked at.
//!
//! A pod of this installation is any UUID ever seen under `<dir>/pods/`: a watcher
//! thread records them every few milliseconds from [`LeakCheck::new`] on (a pod lives
//! far longer than that before it makes a cgroup), so cgroups of pods whose directory
//! is long gone are still recognised without touching other installations' pods.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::rkt::rkt_bin;

/// How often the watcher thread records the pods and leases it sees.
const WATCH_INTERVAL: Duration = Duration::from_millis(10);

/// How long a finding may take to go away before it counts as a leak.
pub const SETTLE: Duration = Duration::from_secs(5);

/// Where CNI's host-local plugin keeps its leases.
const CNI_LEASES: &str = "/var/lib/cni/networks";

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One thing left behind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Leak {
    /// `pod dir`, `mount`, `cgroup`, `process`, `veth`, `lease`, `nat rule`, `firewall`, `sysctl`.
    pub kind: &'static str,
    pub detail: String,
}

impl fmt::Display for Leak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

/// What should be there: one running pod per key, plus the allowed pods and processes.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// Manifest keys (`namespace/name`) that must each have exactly one running pod;
    /// that pod is not a leak.
    pub keys: BTreeSet<String>,
    /// Pods (UUIDs) allowed to exist in any state, e.g. a finished pod kept for its logs.
    pub pods: BTreeSet<String>,
    /// Processes allowed to name the data dir: the test's reconciler.
    pub pids: BTreeSet<i32>,
}

impl Expect {
    /// Keys `default/<name>` for each name.
    pub fn keys<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> Expect {
        Expect {
            keys: names
                .into_iter()
                .map(|n| format!("default/{}", n.as_ref()))
                .collect(),
            ..Expect::default()
        }
    }

    /// Also allow the process `pid` (the running reconciler).
    pub fn with_pid(mut self, pid: i32) -> Expect {
        self.pids.insert(pid);
        self
    }
}

#[derive(Debug, Default)]
struct Seen {
    uuids: BTreeSet<String>,
    /// Addresses leased to pods of this installation.
    ips: BTreeSet<String>,
}

/// The leak checker of one data dir; see the module documentation.
///
/// Create it before the test creates its first pod, on the thread (namespaces) the
/// test runs in; the watcher thread it starts inherits them.
pub struct LeakCheck {
    data_dir: PathBuf,
    test_host: bool,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    watcher: Option<JoinHandle<()>>,
}

impl LeakCheck {
    /// `test_host`: the caller runs in a test host (its own network namespace and a
    /// private `/var/lib/cni`), so every veth, lease and NAT rule there is the test's.
    pub fn new(data_dir: &Path, test_host: bool) -> LeakCheck {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (dir, seen, stop) = (data_dir.to_path_buf(), seen.clone(), stop.clone());
            std::thread::Builder::new()
                .name("leak-watch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let uuids = pod_dirs(&dir);
                        let leases = if test_host { leases() } else { Vec::new() };
                        {
                            let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                            s.uuids.extend(uuids.into_iter().map(|(_, u, _)| u));
                            s.ips.extend(leases.into_iter().map(|l| l.ip));
                        }
                        std::thread::sleep(WATCH_INTERVAL);
                    }
                })
                .expect("spawn the leak watcher")
        };
        LeakCheck {
            data_dir: data_dir.to_path_buf(),
            test_host,
            seen,
            stop,
            watcher: Some(watcher),
        }
    }

    /// How many distinct pods of this installation were seen so far.
    pub fn pods_seen(&self) -> usize {
        self.lock().uuids.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything left behind, given what should be there. What goes away within
    /// [`SETTLE`] is not a leak but work in flight (a CNI CHECK the reconciler runs on a
    /// live pod, say), so the check is repeated until it finds nothing or that long.
    pub fn check(&self, expect: &Expect) -> Vec<Leak> {
        let deadline = std::time::Instant::now() + SETTLE;
        loop {
            let leaks = self.check_once(expect);
            if leaks.is_empty() || std::time::Instant::now() >= deadline {
                return leaks;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn check_once(&self, expect: &Expect) -> Vec<Leak> {
        let data = fs::canonicalize(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
        let mut leaks = Vec::new();

        // Pod directories, against `rkt list`.
        let mut pods = list_pods(&self.data_dir);
        let garbage = |p: &Value| {
            matches!(
                p["state"].as_str(),
                Some("exited garbage") | Some("garbage")
            )
        };
        if pods.iter().any(|p| garbage(p) && !allowed(p, expect)) {
            let _ = Command::new(rkt_bin())
                .arg("--dir")
                .arg(&self.data_dir)
                .args(["gc", "--grace-period=0s"])
                .output();
            pods = list_pods(&self.data_dir);
        }
        let mut live: BTreeMap<String, Value> = BTreeMap::new();
        let mut per_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in &pods {
            let uuid = p["uuid"].as_str().unwrap_or_default().to_string();
            if p["state"] == "running" {
                live.insert(uuid.clone(), p.clone());
            }
            let key = p["manifest"]["key"].as_str().unwrap_or_default();
            if p["state"] == "running" && expect.keys.contains(key) {
                per_key.entry(key.to_string()).or_default().push(uuid);
            } else if !expect.pods.contains(&uuid) {
                leaks.push(Leak {
                    kind: "pod dir",
                    detail: format!(
                        "{uuid} ({}, manifest {})",
                        p["state"].as_str().unwrap_or("?"),
                        if key.is_empty() { "none" } else { key }
                    ),
                });
            }
        }
        for (key, uuids) in &per_key {
            if uuids.len() > 1 {
                leaks.push(Leak {
                    kind: "pod dir",
                    detail: format!("{} running pods for {key}: {uuids:?}", uuids.len()),
                });
            }
        }
        let listed: BTreeSet<&str> = pods.iter().filter_map(|p| p["uuid"].as_str()).collect();
        let on_disk = pod_dirs(&self.data_dir);
        for (state, uuid, path) in &on_disk {
            if !listed.contains(uuid.as_str()) {
                leaks.push(Leak {
                    kind: "pod dir",
                    detail: format!("{} ({state}) is not listed by rkt list", path.display()),
                });
            }
        }
        {
            let mut seen = self.lock();
            seen.uuids.extend(on_disk.into_iter().map(|(_, u, _)| u));
        }
        let live_uuids: BTreeSet<String> = live.keys().cloned().collect();

        // What live pods hold on the network: host veth names and addresses.
        let mut live_ips: BTreeSet<String> = BTreeSet::new();
        let mut live_veths: BTreeSet<String> = BTreeSet::new();
        let mut attachments = 0usize;
        for (uuid, p) in &live {
            for n in p["networks"].as_array().into_iter().flatten() {
                if let Some(ip) = n["ip"].as_str() {
                    live_ips.insert(ip.to_string());
                }
            }
            let net = data.join("pods/run").join(uuid).join("net");
            for e in fs::read_dir(&net).into_iter().flatten().flatten() {
                let Ok(saved) = fs::read(e.path()) else {
                    continue;
                };
                let Ok(saved) = serde_json::from_slice::<Value>(&saved) else {
                    continue;
                };
                attachments += 1;
                for i in saved["result"]["interfaces"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if i["sandbox"].is_null() {
                        if let Some(name) = i["name"].as_str() {
                            live_veths.insert(name.to_string());
                        }
                    }
                }
                for ip in saved["result"]["ips"].as_array().into_iter().flatten() {
                    if let Some(a) = ip["address"].as_str() {
                        live_ips.insert(a.split('/').next().unwrap_or(a).to_string());
                    }
                }
            }
        }

        // Mounts at or below the data dir (the dir itself may be the test's tmpfs).
        let data_s = data.to_string_lossy().into_owned();
        for mount in mount_points() {
            let below = mount
                .strip_prefix(&data_s)
                .is_some_and(|rest| rest.starts_with('/'));
            if !below {
                continue;
            }
            let ok = live_uuids
                .iter()
                .any(|u| mount == format!("{data_s}/pods/run/{u}/netns"));
            if !ok {
                leaks.push(Leak {
                    kind: "mount",
                    detail: mount,
                });
            }
        }

        let seen_uuids = self.lock().uuids.clone();
        let dead: BTreeSet<&String> = seen_uuids.difference(&live_uuids).collect();

        // cgroups of pods that do not run.
        for dir in cgroup_dirs() {
            let Some(uuid) = dir.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if dead.contains(&uuid.to_string()) {
                let procs = cgroup_procs(&dir);
                leaks.push(Leak {
                    kind: "cgroup",
                    detail: if procs.is_empty() {
                        dir.display().to_string()
                    } else {
                        format!("{} (processes {procs:?})", dir.display())
                    },
                });
            }
        }

        // Processes.
        let me = std::process::id() as i32;
        for pid in all_pids() {
            if pid == me || expect.pids.contains(&pid) {
                continue;
            }
            let cmdline = read_nul(&format!("/proc/{pid}/cmdline"));
            let environ = read_nul(&format!("/proc/{pid}/environ"));
            let named = cmdline.contains(&data_s) || environ.contains(&data_s);
            let in_dead_cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split(':').nth(2))
                .filter_map(|path| path.split("/rkt/").nth(1))
                .filter_map(|rest| rest.split('/').next())
                .any(|u| dead.contains(&u.to_string()));
            if !named && !in_dead_cgroup {
                continue;
            }
            // A live pod's stage1 or pid 1 names its pod dir.
            let of_live = live_uuids
                .iter()
                .any(|u| cmdline.contains(&format!("{data_s}/pods/run/{u}")));
            if in_dead_cgroup || !of_live {
                leaks.push(Leak {
                    kind: "process",
                    detail: format!("{pid}: {}", cmdline.trim()),
                });
            }
        }

        // Leases, veths and NAT rules.
        let mine = |container: &str| seen_uuids.contains(container);
        for lease in leases() {
            if !self.test_host && !mine(&lease.container) {
                continue;
            }
            self.lock().ips.insert(lease.ip.clone());
            if !live_ips.contains(&lease.ip) {
                leaks.push(Leak {
                    kind: "lease",
                    detail: format!(
                        "{} ({}) held by {}",
                        lease.ip, lease.network, lease.container
                    ),
                });
            }
        }
        if self.test_host {
            for veth in veths() {
                if !live_veths.contains(&veth) {
                    leaks.push(Leak {
                        kind: "veth",
                        detail: veth,
                    });
                }
            }
            let ever = self.lock().ips.clone();
            let rules = output_of("nft", &["list", "ruleset"]) + &output_of("iptables-save", &[]);
            for line in rules.lines() {
                for ip in bare_ipv4s(line) {
                    if ever.contains(&ip) && !live_ips.contains(&ip) {
                        leaks.push(Leak {
                            kind: "nat rule",
                            detail: format!("{} (names {ip})", line.trim()),
                        });
                    }
                }
            }
            let masq_chains: BTreeSet<&str> = rules
                .lines()
                .filter_map(|l| l.trim().strip_prefix("chain masq-"))
                .collect();
            leaks.extend(localnet_leaks(&rules, &route_localnet_on()));
            if masq_chains.len() > attachments {
                leaks.push(Leak {
                    kind: "nat rule",
                    detail: format!(
                        "{} per-pod masquerade chains for {attachments} live attachments",
                        masq_chains.len()
                    ),
                });
            }
        }
        leaks.sort();
        leaks.dedup();
        leaks
    }

    /// Check, print `leaks found: N` (and each leak), and return the count.
    pub fn report(&self, expect: &Expect) -> usize {
        let leaks = self.check(expect);
        for l in &leaks {
            eprintln!("  leak: {l}");
        }
        eprintln!("leaks found: {}", leaks.len());
        leaks.len()
    }
}

impl Drop for LeakCheck {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}

fn allowed(p: &Value, expect: &Expect) -> bool {
    p["uuid"].as_str().is_some_and(|u| expect.pods.contains(u))
}

/// `rkt list --format=json` of the data dir (empty if it fails).
fn list_pods(data_dir: &Path) -> Vec<Value> {
    Command::new(rkt_bin())
        .arg("--dir")
        .arg(data_dir)
        .args(["list", "--format=json"])
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .unwrap_or_default()
}

/// Every `(state, uuid, path)` under `<dir>/pods/*/` (names that are not UUIDs too:
/// rkt ignores them, so they are somebody's leftovers).
pub fn pod_dirs(data_dir: &Path) -> Vec<(String, String, PathBuf)> {
    let mut out = Vec::new();
    for state in fs::read_dir(data_dir.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let st = state.file_name().to_string_lossy().into_owned();
        for pod in fs::read_dir(state.path()).into_iter().flatten().flatten() {
            out.push((
                st.clone(),
                pod.file_name().to_string_lossy().into_owned(),
                pod.path(),
            ));
        }
    }
    out.sort();
    out
}

/// Mount points of the calling thread's mount namespace (octal escapes decoded).
fn mount_points() -> Vec<String> {
    fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .collect()
}

fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match octal {
            Some(v) if b[i] == b'\\' => {
                out.push(v);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `rkt/<uuid>` directories of every cgroup hierarchy.
fn cgroup_dirs() -> Vec<PathBuf> {
    let root = Path::new(CGROUP_ROOT);
    let mut parents = vec![root.join("rkt")];
    for c in fs::read_dir(root).into_iter().flatten().flatten() {
        parents.push(c.path().join("rkt"));
    }
    let mut out = Vec::new();
    for parent in parents {
        for e in fs::read_dir(&parent).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(e.path());
            }
        }
    }
    out
}

/// PIDs in a cgroup directory and below.
fn cgroup_procs(dir: &Path) -> Vec<i32> {
    let mut out: Vec<i32> = fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(cgroup_procs(&e.path()));
        }
    }
    out
}

fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect()
}

/// A NUL-separated /proc file as one space-separated string ("" if unreadable).
fn read_nul(path: &str) -> String {
    fs::read(path)
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split('\0')
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

struct Lease {
    network: String,
    ip: String,
    container: String,
}

/// host-local leases: files named after an address, holding the container ID.
fn leases() -> Vec<Lease> {
    let mut out = Vec::new();
    for net in fs::read_dir(CNI_LEASES).into_iter().flatten().flatten() {
        let network = net.file_name().to_string_lossy().into_owned();
        for e in fs::read_dir(net.path()).into_iter().flatten().flatten() {
            let ip = e.file_name().to_string_lossy().into_owned();
            if ip.parse::<std::net::IpAddr>().is_err() {
                continue; // lock, last_reserved_ip.N
            }
            let container = fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            out.push(Lease {
                network: network.clone(),
                ip,
                container,
            });
        }
    }
    out
}

/// Names of the veth links of the calling thread's network namespace.
fn veths() -> Vec<String> {
    output_of("ip", &["-o", "link", "show", "type", "veth"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

fn output_of(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The portmap plugin's host loopback guard (see `cni_plugins::firewall::LOCALNET_TABLE`).
const LOCALNET_TABLE: &str = "table inet rkt_cni_localnet";

/// Given `nft list ruleset` and the interfaces with `route_localnet` on: the guard
/// kept when no container has host ports any more (no `dn-` chain), and
/// `route_localnet` left on without the guard (the host's loopback open to pods).
fn localnet_leaks(ruleset: &str, route_localnet_on: &[String]) -> Vec<Leak> {
    let guard = ruleset
        .lines()
        .any(|l| l.trim() == format!("{LOCALNET_TABLE} {{"));
    let users = ruleset
        .lines()
        .filter(|l| l.trim().starts_with("chain dn-"))
        .count();
    let mut leaks = Vec::new();
    if guard && users == 0 {
        leaks.push(Leak {
            kind: "nat rule",
            detail: format!(
                "{LOCALNET_TABLE} (the host loopback guard) with no container holding host ports"
            ),
        });
    }
    if !guard {
        for iface in route_localnet_on {
            leaks.push(Leak {
                kind: "sysctl",
                detail: format!("route_localnet is on for {iface} without the host loopback guard"),
            });
        }
    }
    leaks
}

/// Interfaces (and `all`) of the calling thread's network namespace with
/// `route_localnet` on.
fn route_localnet_on() -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc/sys/net/ipv4/conf")
        .into_iter()
        .flatten()
        .flatten()
    {
        let on = fs::read_to_string(e.path().join("route_localnet")).is_ok_and(|v| v.trim() == "1");
        let name = e.file_name().to_string_lossy().into_owned();
        if on && name != "default" {
            out.push(name);
        }
    }
    out.sort();
    out
}

/// IPv4 addresses in `line` that are not followed by a prefix length (`/24`).
fn bare_ipv4s(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !is_addr_byte(bytes[i - 1])) {
            let mut j = i;
            while j < bytes.len() && is_addr_byte(bytes[j]) {
                j += 1;
            }
            let word = &line[i..j];
            let word = word.trim_end_matches('.');
            let prefixed = bytes.get(j) == Some(&b'/');
            if !prefixed && word.parse::<std::net::Ipv4Addr>().is_ok() {
                out.push(word.to_string());
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

fn is_addr_byte(b: u8) -> bool {
    b.is_ascii_digit() || b == b'.'
}

/// CPU seconds (user + system) and peak RSS (`VmHWM`, KiB) of a process.
pub fn cpu_and_peak_rss(pid: i32) -> Option<(f64, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, i.e. 12 and 13 after ")".
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ: 100 on every Linux architecture rkt builds for; ask getconf anyway.
    let hz: f64 = output_of("getconf", &["CLK_TCK"])
        .trim()
        .parse()
        .unwrap_or(100.0);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some(((utime + stime) / hz, hwm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_addresses_are_found_and_prefixed_ones_skipped() {
        assert_eq!(
            bare_ipv4s("elements = { 172.16.28.2 : jump masq-4f, 10.0.0.10 }"),
            ["172.16.28.2", "10.0.0.10"]
        );
        assert!(bare_ipv4s("ip daddr 172.16.28.0/24 return").is_empty());
        assert!(bare_ipv4s("version 1.2.3 and 1.2.3.4.5").is_empty());
    }

    #[test]
    fn the_loopback_guard_lives_exactly_while_host_ports_do() {
        let guard = "table inet rkt_cni_localnet {\n\tchain input {\n\t}\n}\n";
        let user = "table inet rkt_cni_hostport {\n\tchain dn-0123456789abcdef {\n\t}\n}\n";
        let on = vec!["rkt0".to_string()];
        assert!(localnet_leaks(&format!("{guard}{user}"), &on).is_empty());
        assert!(localnet_leaks("", &[]).is_empty());
        let kept = localnet_leaks(guard, &[]);
        assert_eq!(kept.len(), 1);
        assert!(kept[0].detail.contains("no container"), "{kept:?}");
        let open = localnet_leaks(user, &on);
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].kind, "sysctl");
        assert!(open[0].detail.contains("rkt0"));
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount("/tmp/a\\040b"), "/tmp/a b");
        assert_eq!(unescape_mount("/tmp/plain"), "/tmp/plain");
    }
}
