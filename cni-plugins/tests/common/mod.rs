//! Helpers for driving the plugin binaries inside throwaway namespaces.
//!
//! Every test runs in its own "host" network namespace (a thread made by
//! `e2e::netns::in_new_netns`); plugins started from that thread inherit it, so
//! bridges, veths, routes, sysctls and nftables rules never reach the real host.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BRIDGE: &str = env!("CARGO_BIN_EXE_bridge");
pub const HOST_LOCAL: &str = env!("CARGO_BIN_EXE_host-local");
pub const LOOPBACK: &str = env!("CARGO_BIN_EXE_loopback");
pub const PORTMAP: &str = env!("CARGO_BIN_EXE_portmap");

/// Where Debian's `containernetworking-plugins` installs the reference plugins.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// The directory holding our plugin binaries (for `CNI_PATH`).
pub fn our_dir() -> PathBuf {
    Path::new(HOST_LOCAL)
        .parent()
        .expect("binary has a directory")
        .to_path_buf()
}

pub fn reference(plugin: &str) -> Option<PathBuf> {
    let p = Path::new(REFERENCE_DIR).join(plugin);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: reference plugin {} not installed (package containernetworking-plugins)",
            p.display()
        );
        None
    }
}

pub fn is_root() -> bool {
    if rustix::process::geteuid().is_root() {
        true
    } else {
        eprintln!("SKIPPED: this test needs root (network namespaces)");
        false
    }
}

/// Run `f` in a fresh "host" network namespace, or skip when not root.
pub fn in_host_netns(f: impl FnOnce() + Send + 'static) {
    if is_root() {
        e2e::netns::in_new_netns(f);
    }
}

/// A persistent network namespace for a "pod": a fresh namespace bind-mounted on
/// a file in a temp dir. Dropping it unmounts and removes the file.
pub struct PodNs {
    path: PathBuf,
    mounted: bool,
    _dir: tempfile::TempDir,
}

impl PodNs {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("netns");
        std::fs::File::create(&path).expect("create netns file");
        let target = path.clone();
        std::thread::spawn(move || -> std::io::Result<()> {
            unshare_net()?;
            rustix::mount::mount_bind("/proc/thread-self/ns/net", &target)?;
            Ok(())
        })
        .join()
        .expect("netns thread")
        .expect("create a pod network namespace");
        PodNs {
            path,
            mounted: true,
            _dir: dir,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn path_str(&self) -> String {
        self.path.display().to_string()
    }

    /// Unmount now (the namespace goes away once nothing uses it); the path
    /// stays valid as a string for DEL-after-gone tests.
    pub fn destroy(&mut self) {
        if self.mounted {
            let _ = rustix::mount::unmount(&self.path, rustix::mount::UnmountFlags::DETACH);
            let _ = std::fs::remove_file(&self.path);
            self.mounted = false;
        }
    }

    /// Run a command inside the namespace (`nsenter --net=...`).
    pub fn exec(&self, args: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path.display()))
            .args(args)
            .output()
            .expect("run nsenter")
    }

    /// Whether `ip` answers a ping within 10 s (one echo at a time, so the first
    /// packets of a bridge port that just came up, on a loaded machine, may be lost
    /// without failing the test).
    pub fn ping(&self, ip: &str) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if self
                .exec(&["busybox", "ping", "-c1", "-W1", ip])
                .status
                .success()
            {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
        }
    }
}

impl Drop for PodNs {
    fn drop(&mut self) {
        self.destroy();
    }
}

#[allow(unsafe_code)]
fn unshare_net() -> std::io::Result<()> {
    // SAFETY: only CLONE_NEWNET, on a thread of its own that ends right after;
    // the unsafety of unshare(2) concerns CLONE_FILES, which is not used.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
        .map_err(std::io::Error::from)
}

/// What a plugin run produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> &Value {
        assert_eq!(
            self.code, 0,
            "plugin failed: {}{}",
            self.stdout, self.stderr
        );
        &self.json
    }

    /// The CNI error code (asserting the run failed).
    pub fn err_code(&self) -> u64 {
        assert_ne!(
            self.code, 0,
            "plugin unexpectedly succeeded: {}",
            self.stdout
        );
        self.json["code"].as_u64().unwrap_or_else(|| {
            panic!(
                "no error JSON on stdout: {:?} {:?}",
                self.stdout, self.stderr
            )
        })
    }
}

/// The environment of one plugin call.
#[derive(Debug, Clone)]
pub struct Call {
    pub command: String,
    pub container_id: String,
    pub netns: Option<String>,
    pub ifname: String,
    pub path: String,
    pub args: Option<String>,
}

impl Call {
    pub fn new(command: &str, container_id: &str, netns: Option<&str>) -> Self {
        Call {
            command: command.to_string(),
            container_id: container_id.to_string(),
            netns: netns.map(str::to_string),
            ifname: "eth0".to_string(),
            path: our_dir().display().to_string(),
            args: None,
        }
    }

    pub fn path(mut self, path: &str) -> Self {
        self.path = path.to_string();
        self
    }

    pub fn ifname(mut self, ifname: &str) -> Self {
        self.ifname = ifname.to_string();
        self
    }

    pub fn cni_args(mut self, args: &str) -> Self {
        self.args = Some(args.to_string());
        self
    }

    /// Run `plugin` with this environment and `stdin`.
    pub fn run(&self, plugin: impl AsRef<Path>, stdin: &Value) -> Run {
        self.run_raw(plugin, stdin.to_string().as_bytes())
    }

    pub fn run_raw(&self, plugin: impl AsRef<Path>, stdin: &[u8]) -> Run {
        let mut cmd = Command::new(plugin.as_ref());
        cmd.env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("CNI_COMMAND", &self.command)
            .env("CNI_CONTAINERID", &self.container_id)
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_PATH", &self.path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ns) = &self.netns {
            cmd.env("CNI_NETNS", ns);
        }
        if let Some(a) = &self.args {
            cmd.env("CNI_ARGS", a);
        }
        let mut child = cmd.spawn().expect("spawn plugin");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("write stdin");
        let out = child.wait_with_output().expect("wait for plugin");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        Run {
            code: out.status.code().unwrap_or(-1),
            json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// `conf` with `prevResult` set (for CHECK, DEL and chained plugins).
pub fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

/// The container addresses of a result (`ips[].address`).
pub fn addresses(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|ip| ip["address"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The address without its prefix.
pub fn bare(cidr: &str) -> String {
    cidr.split('/').next().unwrap_or(cidr).to_string()
}

/// Files in a lease directory that are leases (named by an address).
pub fn lease_files(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.parse::<std::net::IpAddr>().ok()?;
                    let contents = std::fs::read_to_string(e.path()).ok()?;
                    Some((name, contents))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Run a command in the current thread's namespace; stdout.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Names of links in the current thread's namespace.
pub fn links() -> Vec<String> {
    let mut nl = cni_plugins::netlink::Netlink::open().expect("netlink");
    nl.links()
        .expect("list links")
        .into_iter()
        .map(|l| l.name)
        .collect()
}

/// A TCP server inside a pod namespace answering every connection with
/// `greeting`, until the returned guard is dropped.
pub struct PodServer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PodServer {
    pub fn start(pod: &PodNs, port: u16, greeting: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = pod.path().to_path_buf();
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            cni_plugins::netns::run_in_netns(&path, move || {
                let listener = std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind in pod");
                listener.set_nonblocking(true).expect("nonblocking");
                ready_tx.send(()).expect("signal ready");
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop_flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((mut conn, _)) => {
                            let _ = conn.set_nonblocking(false);
                            let _ = conn.write_all(greeting.as_bytes());
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => panic!("accept in pod: {e}"),
                    }
                }
            })
            .expect("enter pod netns");
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("pod server ready");
        PodServer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for PodServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connect to `addr` and read what the server says (empty on failure).
pub fn fetch(addr: &str) -> String {
    use std::io::Read;
    let Ok(sock) = addr.parse::<std::net::SocketAddr>() else {
        return String::new();
    };
    let Ok(mut conn) = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(3)) else {
        return String::new();
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(3)));
    let mut out = String::new();
    let _ = conn.read_to_string(&mut out);
    out
}
