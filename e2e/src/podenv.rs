//! A throwaway installation driven through Pod YAML and `rkt reconcile`, for the
//! fault and load suites: the busybox image, a pods dir, reconcilers started and
//! killed by PID, convergence polled with deadlines.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::rkt::{busybox_aci, Rkt, RunResult};

/// Flags that make the loop fast enough for tests.
pub const FAST: &[&str] = &[
    "--resync=1s",
    "--debounce=50ms",
    "--backoff-initial=1s",
    "--backoff-max=2s",
    "--backoff-reset=1m",
];

/// Print a line of figures on stderr even when the test harness captures output
/// (it captures `eprintln!`, not writes to the stream), so CI logs show them.
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Poll `f` every 50 ms until it holds; panic naming `what` at the deadline.
pub fn poll(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A reconciler process; SIGKILLed (by PID) when dropped. On a panic the tail of its
/// log is printed.
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// Whether it still runs (reaping it if not).
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL and reap.
    pub fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for the exit (30 s at most, then SIGKILL).
    pub fn terminate(mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("reconciler log (last lines):\n{}", self.log_tail(60));
        }
    }
}

/// An installation with the busybox image (fetched) and a pods dir. On drop every
/// pod is stopped and collected; drop it after the test's reconcilers.
pub struct PodEnv {
    pub rkt: Rkt,
    pub aci: PathBuf,
    pub pods_dir: PathBuf,
    /// Extra global flags for every command (e.g. `--cni-path`).
    pub flags: Vec<String>,
}

impl Default for PodEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl PodEnv {
    pub fn new() -> PodEnv {
        let rkt = Rkt::new();
        let aci = busybox_aci(&rkt.scratch(), "example.com/busybox");
        let pods_dir = rkt.local_config().join("pods.d");
        fs::create_dir_all(&pods_dir).unwrap();
        PodEnv {
            rkt,
            aci,
            pods_dir,
            flags: Vec::new(),
        }
    }

    /// Fetch the image, so that later work is pod creation, not fetching; returns
    /// its ID.
    pub fn fetch(&self) -> String {
        self.rkt
            .ok([
                "--insecure-options=image",
                "fetch",
                self.aci.to_str().unwrap(),
            ])
            .trim()
            .to_string()
    }

    fn args(&self, rest: &[&str]) -> Vec<String> {
        let mut v = vec!["--insecure-options=image".to_string()];
        v.extend(self.flags.iter().cloned());
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    }

    /// `rkt --insecure-options=image FLAGS ARGS`.
    pub fn run(&self, rest: &[&str]) -> RunResult {
        self.rkt.run(self.args(rest))
    }

    /// Start `rkt reconcile` with the fast flags (those named in `extra` replaced).
    pub fn start(&self, extra: &[&str]) -> Daemon {
        let log = self.rkt.scratch().join(format!(
            "reconcile-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let out = fs::File::create(&log).unwrap();
        let flag = |a: &str| a.split('=').next().unwrap_or(a).to_string();
        let mut rest: Vec<&str> = vec!["--debug", "reconcile"];
        rest.extend(
            FAST.iter()
                .filter(|f| !extra.iter().any(|e| flag(e) == flag(f))),
        );
        rest.extend_from_slice(extra);
        let child = self
            .rkt
            .command(self.args(&rest))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn rkt reconcile");
        Daemon {
            child: Some(child),
            log,
        }
    }

    /// Write a pods dir file atomically (temp file + rename).
    pub fn write(&self, name: &str, text: &str) {
        let tmp = self.pods_dir.join(format!(".{name}.tmp"));
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, self.pods_dir.join(name)).unwrap();
    }

    pub fn remove(&self, name: &str) {
        let _ = fs::remove_file(self.pods_dir.join(name));
    }

    /// A busybox pod running `sleep ARG`; on the host's network or rkt's default one.
    pub fn pod(&self, name: &str, arg: &str, host_network: bool) -> String {
        pod_yaml(name, &self.aci, arg, host_network)
    }

    /// The reconciler's status file, parsed (`Null` if absent or half-read).
    pub fn status(&self) -> Value {
        fs::read(self.rkt.data_dir().join("reconcile/status.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }

    /// `rkt list --format=json`.
    pub fn pods(&self) -> Vec<Value> {
        let r = self.rkt.run(["list", "--format=json"]);
        serde_json::from_str(&r.stdout()).unwrap_or_default()
    }

    /// Whether exactly the wanted pods run: each key `default/<name>` has one running
    /// pod whose app runs `sleep <arg>` (read from the pod's `pod` manifest, so a pod of
    /// an older spec does not count), the status shows it `Running` and ready with that
    /// pod, and no other pod directory exists.
    pub fn converged(&self, wanted: &Wanted) -> bool {
        let st = self.status();
        let statuses = st["pods"].as_array().cloned().unwrap_or_default();
        if statuses.len() != wanted.len() {
            return false;
        }
        let pods = self.pods();
        if pods.len() != wanted.len() {
            return false;
        }
        let run = self.rkt.data_dir().join("pods/run");
        wanted.iter().all(|(name, arg)| {
            let key = format!("default/{name}");
            let Some(s) = statuses.iter().find(|s| s["key"] == key.as_str()) else {
                return false;
            };
            let Some(uuid) = s["uuid"].as_str() else {
                return false;
            };
            // `ready` too: a pod whose start hook (CNI ADD) still runs holds its lock
            // in `run/` and already shows as running.
            s["phase"] == "Running"
                && s["ready"] == true
                && pods.iter().any(|p| {
                    p["state"] == "running"
                        && p["uuid"] == uuid
                        && p["manifest"]["key"] == key.as_str()
                        && p["manifest"]["specHash"] == s["specHash"]
                })
                && runs_sleep(&run.join(uuid), arg)
        })
    }

    /// Poll until [`converged`](Self::converged) (every `interval`); returns how long
    /// it took. Panics at `timeout` with the state of things.
    pub fn wait_converged(
        &self,
        wanted: &Wanted,
        interval: Duration,
        timeout: Duration,
    ) -> Duration {
        let start = Instant::now();
        while !self.converged(wanted) {
            assert!(
                start.elapsed() < timeout,
                "{} pods did not converge within {timeout:?}\n{}",
                wanted.len(),
                self.describe()
            );
            std::thread::sleep(interval);
        }
        start.elapsed()
    }

    /// One line about the state of things, for failure messages.
    pub fn describe(&self) -> String {
        let pods: Vec<String> = self
            .pods()
            .iter()
            .map(|p| {
                format!(
                    "{} {} {}",
                    p["uuid"].as_str().unwrap_or("?"),
                    p["state"].as_str().unwrap_or("?"),
                    p["manifest"]["key"].as_str().unwrap_or("-")
                )
            })
            .collect();
        let st: Vec<String> = self.status()["pods"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                format!(
                    "{} {} {} {}",
                    s["key"].as_str().unwrap_or("?"),
                    s["phase"].as_str().unwrap_or("?"),
                    s["uuid"].as_str().unwrap_or("-"),
                    s["lastError"]["message"].as_str().unwrap_or("")
                )
            })
            .collect();
        format!("pods: {pods:#?}\nstatus: {st:#?}")
    }
}

impl Drop for PodEnv {
    fn drop(&mut self) {
        self.cleanup();
    }
}

impl PodEnv {
    /// Stop every pod and collect everything (also done on drop).
    pub fn cleanup(&self) {
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        self.rkt.collect_pods(&flags);
    }
}

/// What a test wants: pod name -> the argument of its `sleep` (its spec).
pub type Wanted = std::collections::BTreeMap<String, String>;

/// Whether the pod in `dir` runs `sleep ARG` (its app's exec ends with `arg`).
fn runs_sleep(dir: &Path, arg: &str) -> bool {
    fs::read(dir.join("pod"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|m| {
            m["apps"][0]["app"]["exec"]
                .as_array()
                .and_then(|e| e.last())
                .is_some_and(|last| last == arg)
        })
}

/// A busybox pod sleeping `arg` seconds, grace period 2 s.
pub fn pod_yaml(name: &str, aci: &Path, arg: &str, host_network: bool) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  hostNetwork: {host_network}
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: {}
    command: [\"sleep\", \"{arg}\"]
",
        aci.display()
    )
}
