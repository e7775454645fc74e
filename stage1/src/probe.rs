//! Liveness and readiness probes (Kubernetes semantics), run by the pod's supervisor.
//!
//! - `tcpSocket`: connect to 127.0.0.1:port. The supervisor is in the pod's network
//!   namespace, so this is the pod's loopback.
//! - `httpGet`: an HTTP/1.0 `GET` of the path from 127.0.0.1:port; a status of 200 to
//!   399 is a success.
//! - `exec`: `stage1 enter --pod-dir D --app A -- CMD...` as a child of the supervisor,
//!   so the command gets exactly the app's isolation (the path `rkt enter` takes);
//!   exit status 0 is a success. The supervisor reaps it like any other child
//!   ([`Prober::reaped`]) and kills its process group when it outlives its timeout.
//!
//! The two network probes run on a short-lived thread each (bounded by the timeout),
//! which reports back through a socket the supervisor's poll loop watches
//! ([`Prober::wake_fd`]); everything else happens on the loop's thread.
//!
//! Schedule: the first run `initialDelaySecs` after the app (re)started, then one every
//! `periodSecs`, counted from the start of the previous run (a run that takes longer
//! delays the next). A probe's state flips after `successThreshold` consecutive
//! successes or `failureThreshold` consecutive failures; liveness starts passing,
//! readiness failing. Init apps are never probed.
//!
//! Files, in `apps/<app>/`: `ready` exists while the app is ready (apps without a
//! readiness probe: while they run); `probe` is JSON with the last result of each
//! probe, `{"liveness": {"ok", "message", "at"}, "readiness": {...}}`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use manifests::poddir::{self, ProbeReport, ProbeResult};
use manifests::runtime::{Probe, ProbeAction, RuntimeApp};
use rustix::process::{kill_process_group, Pid, Signal, WaitStatus};

use crate::podfiles;

/// How long a network probe's thread may run past the probe's timeout before the run
/// counts as timed out without it.
const THREAD_SLACK: Duration = Duration::from_secs(2);
/// How soon an exec probe due before the pod's `pid` file exists is tried again.
const PID_FILE_RETRY: Duration = Duration::from_millis(50);
/// How much of an exec probe's output is kept as its message.
const MAX_OUTPUT: usize = 1024;
/// The most of an HTTP response read while looking for its status line.
const MAX_STATUS_LINE: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Liveness,
    Readiness,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot write {path}", path = path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot remove {path}", path = path.display())]
    Remove { path: PathBuf, source: io::Error },
    #[error("cannot set up probe notifications")]
    Notify(#[source] io::Error),
}

/// A probe's state under its thresholds (the Kubernetes prober's rule): the state
/// flips once the same result came `threshold` times in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    state: bool,
    last: Option<bool>,
    run: u32,
    success_threshold: u32,
    failure_threshold: u32,
}

impl Tracker {
    pub fn new(initial: bool, success_threshold: u32, failure_threshold: u32) -> Self {
        Tracker {
            state: initial,
            last: None,
            run: 0,
            success_threshold: success_threshold.max(1),
            failure_threshold: failure_threshold.max(1),
        }
    }

    /// Record one result; returns the new state if it changed.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let needed = if ok {
            self.success_threshold
        } else {
            self.failure_threshold
        };
        if self.run >= needed && self.state != ok {
            self.state = ok;
            Some(ok)
        } else {
            None
        }
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// A `tcpSocket` probe: can 127.0.0.1:`port` be connected to within `timeout`?
pub fn tcp_check(port: u16, timeout: Duration) -> Result<String, String> {
    let addr = loopback(port);
    TcpStream::connect_timeout(&addr, timeout)
        .map(|_| format!("connected to {addr}"))
        .map_err(|e| format!("cannot connect to {addr}: {e}"))
}

/// The request target for `path`: rooted, with spaces, control and non-ASCII bytes
/// percent-encoded.
pub fn request_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        out.push('/');
    }
    for b in path.bytes() {
        if b.is_ascii_graphic() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The status code of an HTTP status line (`HTTP/1.1 200 OK`).
pub fn parse_status_line(line: &str) -> Option<u16> {
    let mut words = line.split_whitespace();
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = words.next()?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok()
}

/// An `httpGet` probe: `GET http://127.0.0.1:port/path` with HTTP/1.0, all within
/// `timeout`; a status of 200 to 399 is a success. Returns the status line.
pub fn http_check(port: u16, path: &str, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let addr = loopback(port);
    let target = request_path(path);
    let url = format!("http://{addr}{target}");
    let timed_out = || format!("GET {url}: no response within {}s", timeout.as_secs());
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(timed_out)
    };
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("GET {url}: cannot connect: {e}"))?;
    stream
        .set_write_timeout(Some(left()?))
        .map_err(|e| format!("GET {url}: {e}"))?;
    let request = format!(
        "GET {target} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: stage1-probe\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("GET {url}: cannot send the request: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let line = loop {
        if let Some(end) = head.iter().position(|&b| b == b'\n') {
            break String::from_utf8_lossy(&head[..end]).trim().to_string();
        }
        if head.len() >= MAX_STATUS_LINE {
            return Err(format!("GET {url}: no status line in the response"));
        }
        stream
            .set_read_timeout(Some(left()?))
            .map_err(|e| format!("GET {url}: {e}"))?;
        match stream.read(&mut buf) {
            Ok(0) if head.is_empty() => {
                return Err(format!("GET {url}: connection closed without a response"))
            }
            Ok(0) => break String::from_utf8_lossy(&head).trim().to_string(),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out())
            }
            Err(e) => return Err(format!("GET {url}: cannot read the response: {e}")),
        }
    };
    match parse_status_line(&line) {
        Some(code) if (200..400).contains(&code) => Ok(line),
        Some(_) => Err(format!("GET {url}: {line}")),
        None => Err(format!("GET {url}: not an HTTP response: {line:?}")),
    }
}

/// A network probe's check (`tcpSocket`, `httpGet`).
fn network_check(action: &ProbeAction, timeout: Duration) -> Result<String, String> {
    match action {
        ProbeAction::TcpSocket { port } => tcp_check(*port, timeout),
        ProbeAction::HttpGet { path, port } => http_check(*port, path, timeout),
        ProbeAction::Exec { .. } => Err("an exec probe is not a network probe".to_string()),
    }
}

/// A probe run in progress.
#[derive(Debug)]
enum InFlight {
    /// `stage1 enter`, leader of its own process group; `output` has its stdout and
    /// stderr.
    Exec {
        pid: Pid,
        deadline: Instant,
        output: File,
        timed_out: bool,
    },
    Thread {
        seq: u64,
        deadline: Instant,
    },
}

/// One configured probe of one app.
#[derive(Debug)]
struct Slot {
    app: usize,
    kind: ProbeKind,
    probe: Probe,
    /// Probed only while the app runs.
    active: bool,
    next_at: Instant,
    in_flight: Option<InFlight>,
    tracker: Tracker,
}

impl Slot {
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.probe.timeout_secs.max(1))
    }
    fn period(&self) -> Duration {
        Duration::from_secs(self.probe.period_secs.max(1))
    }
}

/// What the prober keeps per app.
#[derive(Debug)]
struct AppProbes {
    name: String,
    dir: PathBuf,
    /// Init apps have neither probes nor a `ready` file.
    init: bool,
    has_readiness: bool,
    /// The last results, as `apps/<app>/probe` shows them.
    report: ProbeReport,
}

#[derive(Debug)]
struct ThreadDone {
    slot: usize,
    seq: u64,
    result: Result<String, String>,
}

/// Runs every app's probes; see the module documentation.
#[derive(Debug)]
pub struct Prober {
    pod_dir: PathBuf,
    apps: Vec<AppProbes>,
    slots: Vec<Slot>,
    tx: mpsc::Sender<ThreadDone>,
    rx: mpsc::Receiver<ThreadDone>,
    wake: UnixStream,
    notify: UnixStream,
    seq: u64,
    liveness_failures: Vec<(usize, String)>,
}

impl Prober {
    /// The probes of `apps` (the pod's apps, in order; indexes name them from now on).
    pub fn new(pod_dir: &Path, apps: &[RuntimeApp]) -> Result<Self, ProbeError> {
        let (wake, notify) = UnixStream::pair().map_err(ProbeError::Notify)?;
        wake.set_nonblocking(true).map_err(ProbeError::Notify)?;
        notify.set_nonblocking(true).map_err(ProbeError::Notify)?;
        let (tx, rx) = mpsc::channel();
        let now = Instant::now();
        let mut slots = Vec::new();
        for (idx, app) in apps.iter().enumerate().filter(|(_, a)| !a.init) {
            let probes = [
                (ProbeKind::Liveness, &app.liveness_probe),
                (ProbeKind::Readiness, &app.readiness_probe),
            ];
            for (kind, probe) in probes {
                if let Some(probe) = probe {
                    slots.push(Slot {
                        app: idx,
                        kind,
                        probe: probe.clone(),
                        active: false,
                        next_at: now,
                        in_flight: None,
                        tracker: Tracker::new(true, 1, 1),
                    });
                }
            }
        }
        Ok(Prober {
            pod_dir: pod_dir.to_path_buf(),
            apps: apps
                .iter()
                .map(|a| AppProbes {
                    name: a.name.clone(),
                    dir: poddir::app_dir(pod_dir, &a.name),
                    init: a.init,
                    has_readiness: !a.init && a.readiness_probe.is_some(),
                    report: ProbeReport::default(),
                })
                .collect(),
            slots,
            tx,
            rx,
            wake,
            notify,
            seq: 0,
            liveness_failures: Vec::new(),
        })
    }

    /// Readable when a network probe finished: include it in the poll loop, then call
    /// [`Prober::poll`].
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// App `app` (re)started at `now`: probe it afresh. An app without a readiness
    /// probe is ready from now on.
    pub fn app_started(&mut self, app: usize, now: Instant) -> Result<(), ProbeError> {
        for slot in self.slots.iter_mut().filter(|s| s.app == app) {
            kill_in_flight(slot);
            slot.active = true;
            slot.next_at = now + Duration::from_secs(slot.probe.initial_delay_secs);
            // Liveness passes until it fails; readiness fails until it passes.
            slot.tracker = Tracker::new(
                slot.kind == ProbeKind::Liveness,
                slot.probe.success_threshold,
                slot.probe.failure_threshold,
            );
        }
        let a = &self.apps[app];
        match (a.init, a.has_readiness) {
            (true, _) => Ok(()),
            (false, false) => write_ready(&a.dir),
            (false, true) => remove_ready(&a.dir),
        }
    }

    /// App `app` exited or is being stopped: no more probes, not ready.
    pub fn app_stopped(&mut self, app: usize) -> Result<(), ProbeError> {
        for slot in self.slots.iter_mut().filter(|s| s.app == app) {
            kill_in_flight(slot);
            slot.active = false;
        }
        self.liveness_failures.retain(|(a, _)| *a != app);
        if self.apps[app].init {
            return Ok(());
        }
        remove_ready(&self.apps[app].dir)
    }

    /// The pod stops: no more probes; running exec probes are killed.
    pub fn stop_all(&mut self) {
        for slot in &mut self.slots {
            kill_in_flight(slot);
            slot.active = false;
        }
        self.liveness_failures.clear();
    }

    /// Apps whose liveness probe failed (reached its failure threshold) since the last
    /// call, with the probe's last message.
    pub fn take_liveness_failures(&mut self) -> Vec<(usize, String)> {
        std::mem::take(&mut self.liveness_failures)
    }

    /// When the next probe is due or a run times out.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter(|s| s.active)
            .filter_map(|s| match &s.in_flight {
                None => Some(s.next_at),
                Some(InFlight::Exec {
                    deadline,
                    timed_out: false,
                    ..
                }) => Some(*deadline),
                Some(InFlight::Exec { .. }) => None,
                Some(InFlight::Thread { deadline, .. }) => Some(*deadline + THREAD_SLACK),
            })
            .min()
    }

    /// Start every probe that is due at `now`.
    pub fn run_due(&mut self, now: Instant) -> Result<(), ProbeError> {
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            if !slot.active || slot.in_flight.is_some() || now < slot.next_at {
                continue;
            }
            let exec = matches!(slot.probe.action, ProbeAction::Exec { .. });
            if exec && !self.pod_dir.join(poddir::PID_FILE).exists() {
                // `enter` finds the pod through it; `stage1 run` writes it right after
                // starting the pod's pid 1, so it may lag behind the first apps.
                self.slots[i].next_at = now + PID_FILE_RETRY;
                continue;
            }
            let next_at = now + slot.period();
            let started = match &slot.probe.action {
                ProbeAction::Exec { command } => self.start_exec(i, command, now),
                _ => self.start_thread(i, now),
            };
            self.slots[i].next_at = next_at;
            match started {
                Ok(run) => self.slots[i].in_flight = Some(run),
                Err(message) => self.record(i, false, message)?,
            }
        }
        Ok(())
    }

    fn start_exec(&self, i: usize, command: &[String], now: Instant) -> Result<InFlight, String> {
        let slot = &self.slots[i];
        if command.is_empty() {
            return Err("the exec probe has no command".to_string());
        }
        let start_err = |e: io::Error| format!("cannot start the exec probe: {e}");
        let output = rustix::fs::memfd_create("probe-output", rustix::fs::MemfdFlags::CLOEXEC)
            .map(File::from)
            .map_err(|e| start_err(e.into()))?;
        let stdout = output.try_clone().map_err(start_err)?;
        let stderr = output.try_clone().map_err(start_err)?;
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg("enter")
            .arg("--pod-dir")
            .arg(&self.pod_dir)
            .arg("--app")
            .arg(&self.apps[slot.app].name)
            .arg("--")
            .args(command)
            .env_remove(poddir::LOCK_FD_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .process_group(0);
        let child = cmd.spawn().map_err(start_err)?;
        let pid = Pid::from_child(&child);
        // Reaped by the supervisor's wait(-1), which hands it to `reaped`.
        drop(child);
        Ok(InFlight::Exec {
            pid,
            deadline: now + slot.timeout(),
            output,
            timed_out: false,
        })
    }

    fn start_thread(&mut self, i: usize, now: Instant) -> Result<InFlight, String> {
        self.seq += 1;
        let seq = self.seq;
        let slot = &self.slots[i];
        let timeout = slot.timeout();
        let action = slot.probe.action.clone();
        let tx = self.tx.clone();
        let notify = self
            .notify
            .try_clone()
            .map_err(|e| format!("cannot start the probe: {e}"))?;
        std::thread::Builder::new()
            .name(format!("probe-{}", self.apps[slot.app].name))
            .spawn(move || {
                let result = network_check(&action, timeout);
                let _ = tx.send(ThreadDone {
                    slot: i,
                    seq,
                    result,
                });
                // Full: the loop has a wake-up pending anyway.
                let _ = (&notify).write(b"p");
            })
            .map_err(|e| format!("cannot start the probe: {e}"))?;
        Ok(InFlight::Thread {
            seq,
            deadline: now + timeout,
        })
    }

    /// A child exited: if it was an exec probe, record its result and return true.
    pub fn reaped(&mut self, pid: Pid, status: WaitStatus) -> Result<bool, ProbeError> {
        let Some(i) = self
            .slots
            .iter()
            .position(|s| matches!(&s.in_flight, Some(InFlight::Exec { pid: p, .. }) if *p == pid))
        else {
            return Ok(false);
        };
        let Some(InFlight::Exec {
            mut output,
            timed_out,
            ..
        }) = self.slots[i].in_flight.take()
        else {
            return Ok(false);
        };
        let code = crate::exitcode::exit_code_of(status);
        let text = read_output(&mut output);
        let (ok, message) = if timed_out {
            let secs = self.slots[i].timeout().as_secs();
            (false, format!("timed out after {secs}s"))
        } else if code == 0 {
            (true, text)
        } else if text.is_empty() {
            (false, format!("exit status {code}"))
        } else {
            (false, format!("exit status {code}: {text}"))
        };
        self.record(i, ok, message)?;
        Ok(true)
    }

    /// Collect finished network probes and time out runs that took too long.
    pub fn poll(&mut self, now: Instant) -> Result<(), ProbeError> {
        let mut buf = [0u8; 64];
        while matches!((&self.wake).read(&mut buf), Ok(n) if n > 0) {}
        while let Ok(done) = self.rx.try_recv() {
            let current = matches!(
                self.slots.get(done.slot).and_then(|s| s.in_flight.as_ref()),
                Some(InFlight::Thread { seq, .. }) if *seq == done.seq
            );
            if current {
                self.slots[done.slot].in_flight = None;
                let (ok, message) = match done.result {
                    Ok(m) => (true, m),
                    Err(m) => (false, m),
                };
                self.record(done.slot, ok, message)?;
            }
        }
        for i in 0..self.slots.len() {
            let timeout = self.slots[i].timeout();
            match &mut self.slots[i].in_flight {
                Some(InFlight::Exec {
                    pid,
                    deadline,
                    timed_out,
                    ..
                }) if !*timed_out && now >= *deadline => {
                    // Reaped (and recorded as a failure) like any other exit.
                    let _ = kill_process_group(*pid, Signal::KILL);
                    *timed_out = true;
                }
                Some(InFlight::Thread { deadline, .. }) if now >= *deadline + THREAD_SLACK => {
                    self.slots[i].in_flight = None;
                    let message = format!("timed out after {}s", timeout.as_secs());
                    self.record(i, false, message)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// One run of slot `i` ended: update its state, the app's files and, for a
    /// failed liveness probe, the list of apps to stop.
    fn record(&mut self, i: usize, ok: bool, message: String) -> Result<(), ProbeError> {
        let slot = &mut self.slots[i];
        if !slot.active {
            return Ok(());
        }
        let change = slot.tracker.observe(ok);
        let (app, kind) = (slot.app, slot.kind);
        let a = &mut self.apps[app];
        let result = ProbeResult {
            ok,
            message: message.clone(),
            at: poddir::format_time(SystemTime::now()),
        };
        match kind {
            ProbeKind::Liveness => a.report.liveness = Some(result),
            ProbeKind::Readiness => a.report.readiness = Some(result),
        }
        let path = a.dir.join(poddir::APP_PROBE_FILE);
        podfiles::write_json(&path, &a.report)
            .map_err(|source| ProbeError::Write { path, source })?;
        match (kind, change) {
            (ProbeKind::Readiness, Some(true)) => write_ready(&a.dir)?,
            (ProbeKind::Readiness, Some(false)) => remove_ready(&a.dir)?,
            (ProbeKind::Liveness, Some(false)) => {
                self.liveness_failures.push((app, message));
                // Nothing more to learn from this run of the app.
                self.slots[i].active = false;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Forget a slot's run; an exec probe's process group is killed (it is reaped later
/// as an unknown child).
fn kill_in_flight(slot: &mut Slot) {
    if let Some(InFlight::Exec { pid, .. }) = slot.in_flight.take() {
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

/// The start of what an exec probe wrote, trimmed.
fn read_output(output: &mut File) -> String {
    let mut buf = Vec::new();
    if output.seek(SeekFrom::Start(0)).is_ok() {
        let _ = output.take(MAX_OUTPUT as u64).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).trim().to_string()
}

fn write_ready(dir: &Path) -> Result<(), ProbeError> {
    let path = dir.join(poddir::APP_READY_FILE);
    podfiles::write(&path, b"").map_err(|source| ProbeError::Write { path, source })
}

fn remove_ready(dir: &Path) -> Result<(), ProbeError> {
    let path = dir.join(poddir::APP_READY_FILE);
    podfiles::remove(&path).map_err(|source| ProbeError::Remove { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn thresholds_follow_kubernetes() {
        // Readiness: starts failing, needs 2 successes in a row.
        let mut t = Tracker::new(false, 2, 3);
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(true), Some(true));
        assert_eq!(t.observe(true), None);
        assert!(t.state);
        // ...and 3 failures in a row to fail again.
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), Some(false));
        assert!(!t.state);
        // Liveness: starts passing; thresholds of 0 mean 1.
        let mut t = Tracker::new(true, 0, 0);
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(false), Some(false));
        assert_eq!(t.observe(true), Some(true));
    }

    #[test]
    fn request_paths_are_rooted_and_encoded() {
        assert_eq!(request_path(""), "/");
        assert_eq!(request_path("healthz"), "/healthz");
        assert_eq!(request_path("/a b?x=1"), "/a%20b?x=1");
        assert_eq!(request_path("/\r\nX: y"), "/%0D%0AX:%20y");
        assert_eq!(request_path("/é"), "/%C3%A9");
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(parse_status_line("HTTP/1.0 404 Not Found"), Some(404));
        assert_eq!(parse_status_line("HTTP/1.0 302"), Some(302));
        assert_eq!(parse_status_line("SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line("HTTP/1.0 2000 OK"), None);
        assert_eq!(parse_status_line(""), None);
    }

    /// A one-shot HTTP server on loopback answering `response`; returns its port and
    /// the request it got.
    fn serve_once(response: &'static [u8]) -> (u16, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 512];
            while !req.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            conn.write_all(response).unwrap();
            String::from_utf8(req).unwrap()
        });
        (port, handle)
    }

    #[test]
    fn http_probe_judges_the_status() {
        let (port, server) = serve_once(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let t = Duration::from_secs(5);
        assert_eq!(http_check(port, "healthz", t).unwrap(), "HTTP/1.0 200 OK");
        let req = server.join().unwrap();
        assert!(req.starts_with("GET /healthz HTTP/1.0\r\n"), "{req}");
        assert!(
            req.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
            "{req}"
        );

        let (port, server) = serve_once(b"HTTP/1.1 301 Moved\r\nLocation: /x\r\n\r\n");
        assert!(http_check(port, "/", t).is_ok());
        server.join().unwrap();

        let (port, server) = serve_once(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let err = http_check(port, "/ready", t).unwrap_err();
        assert_eq!(
            err,
            format!("GET http://127.0.0.1:{port}/ready: HTTP/1.1 503 Service Unavailable")
        );
        server.join().unwrap();

        let (port, server) = serve_once(b"garbage\n");
        let err = http_check(port, "/", t).unwrap_err();
        assert!(err.contains("not an HTTP response"), "{err}");
        server.join().unwrap();
    }

    #[test]
    fn http_probe_times_out_on_a_silent_server() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepted by the kernel's backlog, never answered.
        let t0 = Instant::now();
        let err = http_check(port, "/", Duration::from_secs(1)).unwrap_err();
        assert!(err.contains("no response within 1s"), "{err}");
        assert!(
            t0.elapsed() >= Duration::from_millis(900),
            "{:?}",
            t0.elapsed()
        );
        drop(listener);
    }

    #[test]
    fn tcp_probe_connects_or_fails() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let t = Duration::from_secs(5);
        assert_eq!(
            tcp_check(port, t).unwrap(),
            format!("connected to 127.0.0.1:{port}")
        );
        drop(listener);
        let err = tcp_check(port, t).unwrap_err();
        assert!(
            err.starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")),
            "{err}"
        );
    }
}
