//! End-to-end: `rkt reconcile`, `rkt apply`, `rkt delete` driving real pods from a
//! directory of Pod YAML. Needs root (pods run under stage1).
//!
//! Every test polls with deadlines; each kills the reconciler it started (by PID) and
//! stops and removes every pod of its throwaway installation when it ends.

use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use e2e::rkt::{busybox_aci, is_root, Rkt};
use serde_json::Value;

macro_rules! need_root {
    ($name:expr) => {
        if !is_root() {
            eprintln!("SKIPPED {}: needs root", $name);
            return;
        }
    };
}

/// Flags that make the loop fast enough for tests.
const FAST: &[&str] = &[
    "--resync=1s",
    "--debounce=50ms",
    "--backoff-initial=1s",
    "--backoff-max=2s",
    "--backoff-reset=1m",
];

const LONG: Duration = Duration::from_secs(60);

fn poll(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A reconciler process; killed (SIGKILL, by PID) when dropped.
struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    fn signal(&self, sig: rustix::process::Signal) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid()) {
            rustix::process::kill_process(pid, sig).unwrap();
        }
    }

    /// SIGTERM, then wait for the exit status.
    fn terminate(mut self) -> Option<i32> {
        self.signal(rustix::process::Signal::TERM);
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the reconciler ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("reconciler log (last lines):\n{}", tail.join("\n"));
        }
    }
}

/// A throwaway installation with the busybox image and a pods dir; on drop its
/// [`Rkt`] stops and collects every pod (after the test's reconcilers are gone).
struct Env {
    rkt: Rkt,
    aci: PathBuf,
    pods_dir: PathBuf,
}

impl Env {
    fn new() -> Env {
        let rkt = Rkt::new();
        let aci = busybox_aci(&rkt.scratch(), "example.com/busybox");
        let pods_dir = rkt.local_config().join("pods.d");
        fs::create_dir_all(&pods_dir).unwrap();
        Env { rkt, aci, pods_dir }
    }

    /// `rkt --insecure-options=image ARGS`.
    fn rkt_insecure(&self, args: &[&str]) -> e2e::rkt::RunResult {
        let mut all = vec!["--insecure-options=image"];
        all.extend_from_slice(args);
        self.rkt.run(all)
    }

    fn start(&self, extra: &[&str], insecure: bool) -> Daemon {
        let log = self
            .rkt
            .scratch()
            .join(format!("reconcile-{}.log", rand_suffix()));
        let out = fs::File::create(&log).unwrap();
        let mut args: Vec<&str> = Vec::new();
        if insecure {
            args.push("--insecure-options=image");
        }
        args.extend(["--debug", "reconcile"]);
        // Flags given in `extra` replace the fast defaults.
        let flag = |a: &str| a.split('=').next().unwrap_or(a).to_string();
        args.extend(
            FAST.iter()
                .filter(|f| !extra.iter().any(|e| flag(e) == flag(f))),
        );
        args.extend_from_slice(extra);
        let child = self
            .rkt
            .command(&args)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Daemon {
            child: Some(child),
            log,
        }
    }

    fn daemon(&self) -> Daemon {
        self.start(&[], true)
    }

    fn write(&self, name: &str, text: &str) {
        write_atomic(&self.pods_dir.join(name), text);
    }

    fn pod(&self, name: &str, arg: &str) -> String {
        pod_yaml(name, &self.aci, arg)
    }

    fn status(&self) -> Value {
        let path = self.rkt.data_dir().join("reconcile/status.json");
        fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }

    fn pod_status(&self, name: &str) -> Value {
        let key = format!("default/{name}");
        self.status()["pods"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["key"] == key.as_str()).cloned())
            .unwrap_or(Value::Null)
    }

    fn pods(&self) -> Vec<Value> {
        serde_json::from_str(&self.rkt.ok(["list", "--format=json"])).unwrap()
    }

    /// Running pods by manifest key: (key, uuid).
    fn running(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .pods()
            .iter()
            .filter(|p| p["state"] == "running")
            .map(|p| {
                (
                    p["manifest"]["key"].as_str().unwrap_or("-").to_string(),
                    p["uuid"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn running_uuid(&self, name: &str) -> Option<String> {
        let key = format!("default/{name}");
        self.running()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, u)| u)
    }

    /// Wait until the status shows the pod Running with a running pod directory;
    /// returns its UUID.
    /// What app `main` of pod `uuid` printed up to its `END` line (waited for).
    fn output_until_end(&self, uuid: &str, what: &str) -> String {
        let mut out = String::new();
        poll(what, LONG, || {
            out = self.rkt.run(["logs", "--app", "main", uuid]).stdout();
            out.contains("END")
        });
        out
    }

    fn wait_running(&self, name: &str) -> String {
        let mut uuid = String::new();
        poll(&format!("{name} to run"), LONG, || {
            let st = self.pod_status(name);
            match (
                st["phase"].as_str(),
                st["uuid"].as_str(),
                self.running_uuid(name),
            ) {
                (Some("Running"), Some(u), Some(r)) if u == r => {
                    uuid = r;
                    true
                }
                _ => false,
            }
        });
        uuid
    }

    /// Every pod directory under `<dir>/pods/*/`.
    fn pod_dirs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let Ok(states) = fs::read_dir(self.rkt.data_dir().join("pods")) else {
            return out;
        };
        for state in states.flatten() {
            let Ok(pods) = fs::read_dir(state.path()) else {
                continue;
            };
            for pod in pods.flatten() {
                out.push(pod.path());
            }
        }
        out.sort();
        out
    }
}

fn rand_suffix() -> String {
    format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// A host-network busybox pod sleeping `arg` seconds.
fn pod_yaml(name: &str, aci: &Path, arg: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: {}
    command: [\"sleep\", \"{arg}\"]
",
        aci.display()
    )
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(4)
                .is_some_and(|m| m.starts_with(&d))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn a_manifest_is_created_replaced_and_removed() {
    need_root!("a_manifest_is_created_replaced_and_removed");
    let env = Env::new();
    let d = env.daemon();
    env.write("web.yaml", &env.pod("web", "3600"));
    let first = env.wait_running("web");

    // rkt list names the manifest pod; rkt reconcile status shows it.
    let list = env.rkt.ok(["list"]);
    assert!(
        list.contains("MANIFEST") && list.contains("default/web"),
        "{list}"
    );
    let status = env.rkt.ok(["reconcile", "status"]);
    assert!(
        status.contains("default/web") && status.contains("Running"),
        "{status}"
    );
    let json: Value =
        serde_json::from_str(&env.rkt.ok(["reconcile", "status", "--format=json"])).unwrap();
    assert_eq!(json["pods"][0]["uuid"], first.as_str());
    let manifest: Value = serde_json::from_str(&env.rkt.ok(["cat-manifest", &first])).unwrap();
    let ann = manifest["annotations"].as_array().unwrap();
    for name in ["rkt.io/pod-key", "rkt.io/source", "rkt.io/spec-hash"] {
        assert!(
            ann.iter().any(|a| a["name"] == name),
            "{name} missing: {ann:?}"
        );
    }

    // Editing the spec replaces the pod.
    env.write("web.yaml", &env.pod("web", "3601"));
    poll("the replacement", LONG, || {
        env.running_uuid("web").is_some_and(|u| u != first)
            && env.pod_status("web")["phase"] == "Running"
    });
    let second = env.wait_running("web");
    assert_eq!(env.running().len(), 1, "{:?}", env.running());
    poll("the old pod to be removed", LONG, || {
        env.pods().iter().all(|p| p["uuid"] != first.as_str())
    });

    // Reformatting without a semantic change leaves it alone.
    let same = env
        .pod("web", "3601")
        .replace("hostNetwork: true", "hostNetwork:   true  # host");
    env.write("web.yaml", &same);
    for _ in 0..2 {
        let updated = env.status()["updatedAt"].clone();
        poll("a pass after the edit", LONG, || {
            env.status()["updatedAt"] != updated
        });
    }
    assert_eq!(env.running_uuid("web").as_deref(), Some(second.as_str()));

    // Deleting the file stops the pod and removes its directory.
    fs::remove_file(env.pods_dir.join("web.yaml")).unwrap();
    poll("the pod to be gone", LONG, || env.pod_dirs().is_empty());
    poll("the status to forget it", LONG, || {
        env.pod_status("web").is_null()
    });
    drop(d);
}

#[test]
fn pods_stopped_or_removed_by_hand_are_recreated_after_a_back_off() {
    need_root!("pods_stopped_or_removed_by_hand_are_recreated_after_a_back_off");
    let env = Env::new();
    let _d = env.daemon();
    env.write("web.yaml", &env.pod("web", "3600"));
    let first = env.wait_running("web");

    env.rkt.ok(["stop", &first]);
    poll("a new pod after the stop", LONG, || {
        env.running_uuid("web").is_some_and(|u| u != first)
    });
    let second = env.wait_running("web");
    assert_eq!(env.pod_status("web")["restarts"], 1);
    assert!(
        env.pods().iter().all(|p| p["uuid"] != first.as_str()),
        "the dead pod is collected"
    );

    // Stopped and removed before the reconciler looked: still recreated.
    env.rkt.ok(["stop", "--force", &second]);
    poll("the pod to exit", LONG, || {
        env.running_uuid("web").is_none() || env.running_uuid("web") != Some(second.clone())
    });
    let _ = env.rkt.run(["rm", &second]);
    poll("a third pod", LONG, || {
        env.running_uuid("web")
            .is_some_and(|u| u != first && u != second)
    });
    env.wait_running("web");
    assert_eq!(env.pod_status("web")["restarts"], 2);
}

#[test]
fn a_pod_that_keeps_failing_backs_off_and_restart_never_leaves_it() {
    need_root!("a_pod_that_keeps_failing_backs_off_and_restart_never_leaves_it");
    let env = Env::new();
    let _d = env.daemon();
    env.write("crash.yaml", &env.pod("crash", "0.2"));
    let never = env
        .pod("once", "0.2")
        .replace("  containers:", "  restartPolicy: Never\n  containers:");
    env.write("once.yaml", &never);
    poll("CrashLoopBackOff", LONG, || {
        env.pod_status("crash")["phase"] == "CrashLoopBackOff"
    });
    poll("restarts", LONG, || {
        env.pod_status("crash")["restarts"].as_u64() >= Some(2)
    });
    // stage1 restarts the app in place: still the same pod.
    let crash_uuid = env.pod_status("crash")["uuid"].clone();
    assert_eq!(env.running_uuid("crash").as_deref(), crash_uuid.as_str());
    poll("Succeeded", LONG, || {
        env.pod_status("once")["phase"] == "Succeeded"
    });
    let once_uuid = env.pod_status("once")["uuid"].clone();
    // A finished pod is kept (for its logs) and not started again.
    let updated = env.status()["updatedAt"].clone();
    poll("two more passes", LONG, || {
        env.status()["updatedAt"] != updated
    });
    assert_eq!(env.pod_status("once")["phase"], "Succeeded");
    assert_eq!(env.pod_status("once")["uuid"], once_uuid);
    let once_pods = env
        .pods()
        .iter()
        .filter(|p| p["manifest"]["key"] == "default/once")
        .count();
    assert_eq!(once_pods, 1);
}

#[test]
fn an_invalid_file_keeps_the_old_pod_and_reports_the_line() {
    need_root!("an_invalid_file_keeps_the_old_pod_and_reports_the_line");
    let env = Env::new();
    let _d = env.daemon();
    env.write("web.yaml", &env.pod("web", "3600"));
    let first = env.wait_running("web");

    // A mistyped field on line 11.
    let broken = env
        .pod("web", "3700")
        .replace("    command:", "    comand:");
    env.write("web.yaml", &broken);
    poll("the error in the status", LONG, || {
        !env.pod_status("web")["lastError"].is_null()
    });
    let st = env.pod_status("web");
    assert_eq!(st["phase"], "Running", "{st}");
    assert_eq!(st["uuid"], first.as_str());
    assert_eq!(st["lastError"]["line"], 11, "{st}");
    assert!(st["lastError"]["file"]
        .as_str()
        .unwrap()
        .ends_with("web.yaml"));
    let text = env.rkt.ok(["reconcile", "status"]);
    assert!(text.contains("web.yaml:11"), "{text}");
    assert_eq!(env.running_uuid("web").as_deref(), Some(first.as_str()));

    // An empty file (truncated by an editor) is half-written too.
    env.write("web.yaml", "");
    poll("the empty-file error", LONG, || {
        env.pod_status("web")["lastError"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("empty"))
    });
    assert_eq!(env.running_uuid("web").as_deref(), Some(first.as_str()));

    // Another file defining the same pod loses (path order) and is reported.
    env.write("zz-dup.yaml", &env.pod("web", "1"));
    poll("the duplicate reported", LONG, || {
        env.status()["files"].as_array().is_some_and(|f| {
            f.iter()
                .any(|f| f["file"].as_str().unwrap().ends_with("zz-dup.yaml"))
        })
    });
    assert_eq!(env.running_uuid("web").as_deref(), Some(first.as_str()));
    fs::remove_file(env.pods_dir.join("zz-dup.yaml")).unwrap();

    // Fixed (with a new spec): converges to it.
    env.write("web.yaml", &env.pod("web", "3700"));
    poll("the fixed spec to run", LONG, || {
        let st = env.pod_status("web");
        st["lastError"].is_null() && st["phase"] == "Running" && st["uuid"] != first.as_str()
    });
    env.wait_running("web");
    assert!(env.status()["files"].as_array().unwrap().is_empty());
}

#[test]
fn a_symlinked_pods_dir_swapped_atomically_is_one_change() {
    need_root!("a_symlinked_pods_dir_swapped_atomically_is_one_change");
    let env = Env::new();
    let etc = env.rkt.local_config();
    let rev1 = etc.join(".worktrees/rev1");
    let rev2 = etc.join(".worktrees/rev2");
    fs::create_dir_all(&rev1).unwrap();
    fs::create_dir_all(&rev2).unwrap();
    fs::write(rev1.join("a.yaml"), env.pod("a", "3600")).unwrap();
    fs::write(rev1.join("b.yaml"), env.pod("b", "3600")).unwrap();
    fs::write(rev2.join("b.yaml"), env.pod("b", "3601")).unwrap();
    fs::write(rev2.join("c.yaml"), env.pod("c", "3600")).unwrap();
    let link = etc.join("pods.d-link");
    symlink(".worktrees/rev1", &link).unwrap();
    let _d = env.start(&["--pods-dir", link.to_str().unwrap(), "--resync=1h"], true);
    env.wait_running("a");
    let b1 = env.wait_running("b");

    symlink(".worktrees/rev2", etc.join(".pods.d-link.new")).unwrap();
    fs::rename(etc.join(".pods.d-link.new"), &link).unwrap();
    // Noticed through inotify (the resync is an hour away).
    poll("rev2 to be reconciled", LONG, || {
        let running = env.running();
        let keys: Vec<&str> = running.iter().map(|(k, _)| k.as_str()).collect();
        keys == ["default/b", "default/c"] && env.running_uuid("b").is_some_and(|u| u != b1)
    });
    env.wait_running("c");
    assert!(env.status()["resolvedDir"]
        .as_str()
        .unwrap()
        .ends_with("rev2"));
}

#[test]
fn fifty_manifests_and_a_multi_document_file() {
    need_root!("fifty_manifests_and_a_multi_document_file");
    let env = Env::new();
    for i in 0..50 {
        env.write(
            &format!("p{i:02}.yaml"),
            &env.pod(&format!("p{i:02}"), "3600"),
        );
    }
    let start = Instant::now();
    let out = env.rkt_insecure(&["reconcile", "--once", "--parallel=8"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let took = start.elapsed();
    let running = env.running();
    assert_eq!(running.len(), 50, "{running:?}");
    eprintln!("50 pods created in {took:?}");
    let st = env.status();
    assert_eq!(st["pods"].as_array().unwrap().len(), 50);
    assert!(
        st["pods"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["phase"] == "Running"),
        "{st}"
    );

    // A second pass changes nothing.
    env.rkt_insecure(&["reconcile", "--once"]);
    assert_eq!(env.running(), running);

    // One file, three documents; then one document removed.
    for i in 0..50 {
        fs::remove_file(env.pods_dir.join(format!("p{i:02}.yaml"))).unwrap();
    }
    let three = [
        env.pod("x", "3600"),
        env.pod("y", "3600"),
        env.pod("z", "3600"),
    ]
    .join("---\n");
    env.write("multi.yaml", &three);
    let out = env.rkt_insecure(&["reconcile", "--once", "--parallel=8"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let keys: Vec<String> = env.running().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["default/x", "default/y", "default/z"]);
    let y = env.running_uuid("y").unwrap();
    env.write(
        "multi.yaml",
        &[env.pod("x", "3600"), env.pod("y", "3600")].join("---\n"),
    );
    env.rkt_insecure(&["reconcile", "--once"]);
    let keys: Vec<String> = env.running().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["default/x", "default/y"]);
    assert_eq!(
        env.running_uuid("y"),
        Some(y),
        "untouched pods keep running"
    );
    assert_eq!(env.pod_dirs().len(), 2);
}

#[test]
fn kill_9_while_creating_then_restart_converges_without_leaks() {
    need_root!("kill_9_while_creating_then_restart_converges_without_leaks");
    let env = Env::new();
    // Fetch once, so the kill lands among pod creations.
    env.rkt_insecure(&["fetch", env.aci.to_str().unwrap()]);
    for i in 0..20 {
        env.write(
            &format!("k{i:02}.yaml"),
            &env.pod(&format!("k{i:02}"), "3600"),
        );
    }
    let d = env.start(&["--parallel=4"], true);
    poll("a few pods", LONG, || env.pod_dirs().len() >= 4);
    d.kill9();
    let before = env.pod_dirs().len();
    eprintln!("{before} pod dirs when the reconciler was killed");

    let d = env.daemon();
    poll(
        "20 running pods, one per manifest",
        Duration::from_secs(120),
        || {
            let st = env.status();
            let running = env.running();
            running.len() == 20
                && st["pods"]
                    .as_array()
                    .is_some_and(|p| p.len() == 20 && p.iter().all(|p| p["phase"] == "Running"))
        },
    );
    let keys: Vec<String> = env.running().into_iter().map(|(k, _)| k).collect();
    let expected: Vec<String> = (0..20).map(|i| format!("default/k{i:02}")).collect();
    assert_eq!(keys, expected);
    poll("leftover pod dirs to be removed", LONG, || {
        env.pod_dirs().len() == 20
    });
    assert!(mounts_under(&env.rkt.data_dir()).is_empty());
    drop(d);
}

#[test]
fn restarts_readopt_pods_and_sigterm_leaves_them_running() {
    need_root!("restarts_readopt_pods_and_sigterm_leaves_them_running");
    let env = Env::new();
    let sock_path = env.rkt.scratch().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(LONG)).unwrap();
    env.write("web.yaml", &env.pod("web", "3600"));
    let mut cmd = env.rkt.command([
        "--insecure-options=image",
        "reconcile",
        "--resync=1s",
        "--debounce=50ms",
    ]);
    let child = cmd
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let d = Daemon {
        child: Some(child),
        log: PathBuf::new(),
    };
    // STATUS=... may come first: read until READY=1.
    let mut buf = [0u8; 256];
    let ready = (0..20).any(|_| {
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).contains("READY=1")
    });
    assert!(ready, "no READY=1 on NOTIFY_SOCKET");
    let uuid = env.wait_running("web");

    // A second reconciler on the same data dir is refused.
    let second = env.rkt_insecure(&["reconcile", "--once", "--lock-timeout=0s"]);
    assert_eq!(second.code(), Some(254), "{}", second.stderr());
    assert!(
        second.stderr().contains("another rkt reconcile"),
        "{}",
        second.stderr()
    );

    // SIGTERM: the loop ends, the pod keeps running.
    assert_eq!(d.terminate(), Some(0));
    assert_eq!(env.running_uuid("web").as_deref(), Some(uuid.as_str()));

    // A new reconciler adopts it instead of restarting it.
    let d = env.daemon();
    let updated = env.status()["updatedAt"].clone();
    poll("a pass of the new loop", LONG, || {
        env.status()["updatedAt"] != updated
    });
    assert_eq!(env.wait_running("web"), uuid);
    assert_eq!(env.pod_status("web")["restarts"], 0);

    // kill -9 and again: still the same pod.
    d.kill9();
    let d = env.start(&["--stop-pods-on-exit"], true);
    let updated = env.status()["updatedAt"].clone();
    poll("a pass of the third loop", LONG, || {
        env.status()["updatedAt"] != updated
    });
    assert_eq!(env.wait_running("web"), uuid);

    // --stop-pods-on-exit: SIGTERM stops the pods too.
    let log = d.log.clone();
    assert_eq!(
        d.terminate(),
        Some(0),
        "{}",
        fs::read_to_string(log).unwrap_or_default()
    );
    assert!(env.running().is_empty(), "{:?}", env.running());
}

#[test]
fn apply_dry_run_wait_and_delete() {
    need_root!("apply_dry_run_wait_and_delete");
    let env = Env::new();
    let input = env.rkt.scratch().join("web.yaml");
    fs::write(&input, env.pod("web", "3600")).unwrap();
    let two = env.rkt.scratch().join("two.yaml");
    fs::write(
        &two,
        [env.pod("a", "3600"), env.pod("b", "3600")].join("---\n"),
    )
    .unwrap();

    let out = env
        .rkt
        .ok(["apply", "-f", input.to_str().unwrap(), "--dry-run"]);
    assert!(out.contains("pod/default/web created (dry run)"), "{out}");
    assert_eq!(
        fs::read_dir(&env.pods_dir).unwrap().count(),
        0,
        "dry run wrote nothing"
    );

    let _d = env.daemon();
    let out = env.rkt.run([
        "apply",
        "-f",
        input.to_str().unwrap(),
        "-f",
        two.to_str().unwrap(),
        "--wait=60s",
    ]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout(), out.stderr());
    let text = out.stdout();
    assert!(text.contains("pod/default/web created"), "{text}");
    assert!(text.contains("pod/default/web running"), "{text}");
    assert!(env.pods_dir.join("default_web.yaml").is_file());
    assert!(env.pods_dir.join("two.yaml").is_file());
    assert_eq!(env.running().len(), 3);

    // Again: unchanged; a change: configured.
    let out = env.rkt.ok(["apply", "-f", input.to_str().unwrap()]);
    assert!(out.contains("pod/default/web unchanged"), "{out}");
    fs::write(&input, env.pod("web", "3601")).unwrap();
    let out = env
        .rkt
        .ok(["apply", "-f", input.to_str().unwrap(), "--wait=60s"]);
    assert!(out.contains("pod/default/web configured"), "{out}");
    let st = env.pod_status("web");
    assert_eq!(st["phase"], "Running");

    // From standard input.
    let mut child = env
        .rkt
        .command(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(env.pod("stdin", "3600").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(env.pods_dir.join("default_stdin.yaml").is_file());

    // delete -f: the files go, the pods go.
    let out = env.rkt.run([
        "delete",
        "-f",
        two.to_str().unwrap(),
        "-f",
        input.to_str().unwrap(),
        "--wait=60s",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    assert!(
        out.stdout().contains("pod/default/a deleted"),
        "{}",
        out.stdout()
    );
    assert!(!env.pods_dir.join("two.yaml").exists());
    poll("only the stdin pod left", LONG, || {
        env.running()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            == ["default/stdin"]
    });
    let out = env.rkt.run(["delete", "-f", input.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stdout().contains("pod/default/web not found"),
        "{}",
        out.stdout()
    );
}

#[test]
fn apply_of_invalid_yaml_writes_nothing_and_names_the_line() {
    need_root!("apply_of_invalid_yaml_writes_nothing_and_names_the_line");
    let env = Env::new();
    let good = env.rkt.scratch().join("good.yaml");
    fs::write(&good, env.pod("good", "3600")).unwrap();
    let bad = env.rkt.scratch().join("bad.yaml");
    fs::write(
        &bad,
        env.pod("bad", "3600")
            .replace("  containers:", "  containers: ["),
    )
    .unwrap();
    let out = env.rkt.run([
        "apply",
        "-f",
        good.to_str().unwrap(),
        "-f",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr());
    let err = out.stderr();
    assert!(err.contains(&format!("{}:", bad.display())), "{err}");
    assert!(err.contains("nothing was applied"), "{err}");
    assert_eq!(fs::read_dir(&env.pods_dir).unwrap().count(), 0);
}

#[test]
fn an_unverified_image_is_reported_and_never_started_and_wait_times_out() {
    need_root!("an_unverified_image_is_reported_and_never_started_and_wait_times_out");
    let env = Env::new();
    // No --insecure-options: the unsigned image must fail verification.
    let _d = env.start(&[], false);
    let input = env.rkt.scratch().join("web.yaml");
    fs::write(&input, env.pod("web", "3600")).unwrap();
    let out = env
        .rkt
        .run(["apply", "-f", input.to_str().unwrap(), "--wait=3s"]);
    assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout(), out.stderr());
    let err = out.stderr();
    assert!(err.contains("pod/default/web still Pending"), "{err}");
    assert!(
        err.contains("signature") || err.contains("insecure"),
        "{err}"
    );
    assert!(err.contains("timed out"), "{err}");
    let st = env.pod_status("web");
    assert_eq!(st["phase"], "Pending");
    assert_eq!(st["lastError"]["field"], "spec.containers[0].image", "{st}");
    assert!(env.pod_dirs().is_empty(), "{:?}", env.pod_dirs());
}

#[test]
fn start_first_replacement_starts_the_new_pod_before_stopping_the_old() {
    need_root!("start_first_replacement_starts_the_new_pod_before_stopping_the_old");
    let env = Env::new();
    let d = env.daemon();
    let annotated = |arg: &str| {
        env.pod("sf", arg).replace(
            "  name: sf\n",
            "  name: sf\n  annotations:\n    rkt.io/replace: start-first\n",
        )
    };
    env.write("sf.yaml", &annotated("3600"));
    let first = env.wait_running("sf");
    env.write("sf.yaml", &annotated("3601"));
    poll("the replacement", LONG, || {
        env.running_uuid("sf").is_some_and(|u| u != first)
            && env.pods().iter().all(|p| p["uuid"] != first.as_str())
    });
    env.wait_running("sf");
    let log = fs::read_to_string(&d.log).unwrap();
    assert!(log.contains("starting the new pod first"), "{log}");
    // The new pod was created while the old one still ran.
    let started = log.find("starting the new pod first").unwrap();
    let created = log[started..].find("pod started").map(|i| i + started);
    let stopping = log[started..]
        .find("stopping the old pod")
        .map(|i| i + started);
    assert!(
        matches!((created, stopping), (Some(c), Some(s)) if c < s),
        "{log}"
    );
}

/// Drift in a pod's networking: its eth0 deleted inside the pod (CNI CHECK fails),
/// then its network namespace unmounted and deleted. Each time the reconciler
/// replaces the pod, which gets working networking again. Runs in a test host.
#[test]
fn broken_pod_networking_is_detected_and_the_pod_replaced() {
    need_root!("broken_pod_networking_is_detected_and_the_pod_replaced");
    e2e::netns::in_test_host(|| {
        let env = Env::new();
        let _d = env.start(&["--net-check-interval=1s"], true);
        let yaml = env.pod("web", "3600").replace("  hostNetwork: true\n", "");
        env.write("web.yaml", &yaml);
        let first = env.wait_running("web");
        let netns = |uuid: &str| env.rkt.data_dir().join("pods/run").join(uuid).join("netns");
        let in_pod = |uuid: &str, args: &[&str]| {
            std::process::Command::new("nsenter")
                .arg(format!("--net={}", netns(uuid).display()))
                .args(args)
                .output()
                .unwrap()
        };
        let addrs =
            String::from_utf8_lossy(&in_pod(&first, &["ip", "-o", "addr"]).stdout).into_owned();
        assert!(addrs.contains("eth0") && addrs.contains("inet "), "{addrs}");

        // eth0 deleted by hand: the bridge plugin's CHECK fails; a new pod.
        assert!(in_pod(&first, &["ip", "link", "del", "eth0"])
            .status
            .success());
        poll("a new pod after eth0 was deleted", LONG, || {
            env.running_uuid("web").is_some_and(|u| u != first)
        });
        let second = env.wait_running("web");
        let addrs =
            String::from_utf8_lossy(&in_pod(&second, &["ip", "-o", "addr"]).stdout).into_owned();
        assert!(addrs.contains("eth0"), "the new pod has its eth0: {addrs}");
        assert_eq!(env.pod_status("web")["restarts"], 1);
        poll("the broken pod to be collected", LONG, || {
            env.pods().iter().all(|p| p["uuid"] != first.as_str())
        });

        // The namespace itself unmounted and deleted: replaced too.
        let ns = netns(&second);
        rustix::mount::unmount(&ns, rustix::mount::UnmountFlags::DETACH).unwrap();
        fs::remove_file(&ns).unwrap();
        poll("a new pod after the netns was deleted", LONG, || {
            env.running_uuid("web").is_some_and(|u| u != second)
        });
        env.wait_running("web");
        assert_eq!(env.pod_status("web")["restarts"], 2);
        let links = String::from_utf8_lossy(
            &std::process::Command::new("ip")
                .args(["-o", "link"])
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned();
        assert_eq!(
            links.matches("veth").count(),
            1,
            "only the running pod's veth is left: {links}"
        );
    });
}

/// A pods dir others can write is root for them: warned about (stderr, the log and
/// the status), and refused with --strict-permissions; fixed, the refusal ends.
#[test]
fn a_pods_dir_others_can_write_is_warned_about_and_refused_when_strict() {
    need_root!("a_pods_dir_others_can_write_is_warned_about_and_refused_when_strict");
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.write("web.yaml", &env.pod("web", "3600"));
    fs::set_permissions(&env.pods_dir, fs::Permissions::from_mode(0o777)).unwrap();
    let shown = env.pods_dir.display().to_string();

    let strict = env.rkt_insecure(&["reconcile", "--once", "--strict-permissions"]);
    assert_ne!(strict.code(), Some(0), "{}", strict.stderr());
    assert!(
        strict.stderr().contains(&shown)
            && strict.stderr().contains("writable by others")
            && strict.stderr().contains("--strict-permissions"),
        "{}",
        strict.stderr()
    );
    assert!(env.pods().is_empty(), "nothing was started");

    // Not strict: a warning, and the pod runs.
    let r = env.rkt_insecure(&["reconcile", "--once"]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert!(
        r.stderr().contains("WARNING") && r.stderr().contains(&shown),
        "{}",
        r.stderr()
    );
    let warnings = env.status()["warnings"].clone();
    assert!(
        warnings.to_string().contains("writable by others"),
        "{warnings}"
    );
    assert!(env.rkt.ok(["reconcile", "status"]).contains("WARNING"));
    assert!(env.running_uuid("web").is_some());

    // A manifest owned by another user is found too; fixed, strict runs clean.
    fs::set_permissions(&env.pods_dir, fs::Permissions::from_mode(0o755)).unwrap();
    let file = env.pods_dir.join("web.yaml");
    rustix::fs::chown(&file, Some(rustix::fs::Uid::from_raw(1000)), None).unwrap();
    let strict = env.rkt_insecure(&["reconcile", "--once", "--strict-permissions"]);
    assert_ne!(strict.code(), Some(0));
    assert!(
        strict.stderr().contains("web.yaml") && strict.stderr().contains("owned by uid 1000"),
        "{}",
        strict.stderr()
    );
    rustix::fs::chown(&file, Some(rustix::fs::Uid::from_raw(0)), None).unwrap();
    let strict = env.rkt_insecure(&["reconcile", "--once", "--strict-permissions"]);
    assert_eq!(strict.code(), Some(0), "{}", strict.stderr());
    assert!(!strict.stderr().contains("WARNING"), "{}", strict.stderr());
    assert!(env.status().get("warnings").is_none());
}

/// Pod YAML's security knobs reach the pod through the reconciler: `hostUsers: false`
/// gives it a user namespace (pod root is an unprivileged host range), and a
/// container's `seccompProfile: Unconfined` lifts the default filter for that
/// container only.
#[test]
fn host_users_false_and_seccomp_profiles_reach_the_pod() {
    need_root!("host_users_false_and_seccomp_profiles_reach_the_pod");
    let env = Env::new();
    let _d = env.daemon();
    let yaml = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: knobs
spec:
  hostNetwork: true
  hostUsers: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: confined
    image: {aci}
    command: [sh, -c, 'grep Seccomp: /proc/self/status; cat /proc/self/uid_map; exec sleep 3600']
  - name: open
    image: {aci}
    securityContext:
      seccompProfile:
        type: Unconfined
    command: [sh, -c, 'grep Seccomp: /proc/self/status; exec sleep 3600']
",
        aci = env.aci.display()
    );
    env.write("knobs.yaml", &yaml);
    let uuid = env.wait_running("knobs");
    let status: Value =
        serde_json::from_str(&env.rkt.ok(["status", "--format=json", &uuid])).unwrap();
    let base = status["userNamespace"]["hostUid"]
        .as_u64()
        .unwrap_or_else(|| {
            panic!("a user namespace: {status}");
        });
    assert!(base >= 65536, "an unprivileged range: {base}");
    let logs = |app: &str| {
        let mut out = String::new();
        poll(&format!("{app}'s output"), LONG, || {
            out = env.rkt.run(["logs", "--app", app, &uuid]).stdout();
            out.contains("Seccomp:")
        });
        out
    };
    let confined = logs("confined");
    assert!(confined.contains("Seccomp:\t2"), "{confined}");
    let map: Vec<String> = confined
        .lines()
        .find(|l| !l.starts_with("Seccomp"))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    assert_eq!(
        map,
        ["0".to_string(), base.to_string(), "65536".to_string()],
        "{confined}"
    );
    let open = logs("open");
    assert!(open.contains("Seccomp:\t0"), "{open}");
}

/// Fields a single host has nothing to do with (scheduling, service accounts) are
/// ignored with a warning naming file:line and field: `rkt apply` (also `--dry-run`)
/// prints them, the pod runs, `rkt reconcile status` shows them; `--strict` refuses
/// the pod, on apply (nothing written) and in the reconciler (the file is handled as
/// an invalid one: the running pod is kept and the status names the field).
#[test]
fn ignored_fields_warn_run_and_are_refused_when_strict() {
    need_root!("ignored_fields_warn_run_and_are_refused_when_strict");
    let env = Env::new();
    let input = env.rkt.scratch().join("web.yaml");
    // Lines 7, 8 and 10 of the manifest.
    let text = env.pod("web", "3600").replace(
        "  hostNetwork: true\n",
        "  hostNetwork: true\n  priorityClassName: high\n  tolerations:\n  - operator: Exists\n  serviceAccountName: builder\n",
    );
    fs::write(&input, &text).unwrap();
    let shown = input.display().to_string();
    let expected = [
        (7, "spec.priorityClassName"),
        (8, "spec.tolerations"),
        (10, "spec.serviceAccountName"),
    ];

    let out = env.rkt.run(["apply", "-f", &shown, "--dry-run"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    assert!(
        out.stdout().contains("pod/default/web created (dry run)"),
        "{}",
        out.stdout()
    );
    for (line, field) in expected {
        let want = format!("warning: {shown}:{line}:3: {field}: ");
        assert!(out.stderr().contains(&want), "{want}\n{}", out.stderr());
    }
    assert!(out.stderr().contains("is ignored"), "{}", out.stderr());

    for extra in [&["--dry-run", "--strict"][..], &["--strict"][..]] {
        let mut args = vec!["apply", "-f", &shown];
        args.extend_from_slice(extra);
        let out = env.rkt.run(args);
        assert_eq!(out.code(), Some(1), "{extra:?}: {}", out.stderr());
        for (line, field) in expected {
            let want = format!("{shown}:{line}:3: {field}: ");
            assert!(out.stderr().contains(&want), "{want}\n{}", out.stderr());
        }
        assert!(
            out.stderr().contains("nothing was applied"),
            "{}",
            out.stderr()
        );
        assert_eq!(fs::read_dir(&env.pods_dir).unwrap().count(), 0);
    }

    // Not strict: the pod runs, with its warnings in the status.
    let daemon = env.daemon();
    let out = env.rkt.run(["apply", "-f", &shown, "--wait=60s"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout(), out.stderr());
    let uuid = env.wait_running("web");
    let st = env.pod_status("web");
    let fields: Vec<&str> = st["warnings"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .map(|w| w["field"].as_str().unwrap_or("-"))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(fields, expected.map(|(_, f)| f), "{st}");
    assert_eq!(st["warnings"][1]["line"], 8, "{st}");
    assert!(st["lastError"].is_null(), "{st}");
    let json: Value =
        serde_json::from_str(&env.rkt.ok(["reconcile", "status", "--format=json"])).unwrap();
    assert!(
        json["pods"][0]["warnings"]
            .to_string()
            .contains("spec.tolerations"),
        "{json}"
    );
    let text = env.rkt.ok(["reconcile", "status"]);
    assert!(
        text.contains("default/web: warning: ")
            && text.contains("default_web.yaml:8:3: spec.tolerations"),
        "{text}"
    );
    assert_eq!(daemon.terminate(), Some(0));

    // A strict reconciler refuses the file like an invalid one: the pod keeps running.
    let r = env.rkt_insecure(&["reconcile", "--once", "--strict"]);
    assert_eq!(r.code(), Some(1), "{}", r.stderr());
    let st = env.pod_status("web");
    assert_eq!(st["phase"], "Running", "{st}");
    assert_eq!(st["uuid"], uuid.as_str(), "{st}");
    assert_eq!(st["lastError"]["field"], "spec.priorityClassName", "{st}");
    assert_eq!(st["lastError"]["line"], 7, "{st}");
    assert_eq!(env.running_uuid("web").as_deref(), Some(uuid.as_str()));
    let text = env.rkt.ok(["reconcile", "status"]);
    assert!(
        text.contains("invalid: ") && text.contains("serviceAccountName"),
        "{text}"
    );
}

/// Two hosts (two data and configuration roots with their own node names and labels)
/// reconcile one pods dir: each runs only the pods placed on it (by nodeName, by
/// nodeSelector, by required node affinity) and shows the others as NotForThisHost;
/// a pod moved to the other host leaves this one.
#[test]
fn two_hosts_share_a_pods_dir_and_run_only_their_own_pods() {
    need_root!("two_hosts_share_a_pods_dir_and_run_only_their_own_pods");
    let alpha = Env::new();
    let beta = Env::new();
    // alpha's name and labels come from its node.yaml; beta's from flags.
    fs::write(
        alpha.rkt.local_config().join("node.yaml"),
        "name: alpha\nlabels:\n  disk: ssd\n",
    )
    .unwrap();
    let beta_flags = ["--node-name=beta", "--node-label=disk=hdd"];
    let pods_dir = alpha.pods_dir.to_str().unwrap().to_string();
    let placed = |name: &str, extra: &str| format!("{}{extra}", alpha.pod(name, "3600"));
    alpha.write(
        "by-name-a.yaml",
        &placed("by-name-a", "  nodeName: alpha\n"),
    );
    alpha.write("by-name-b.yaml", &placed("by-name-b", "  nodeName: beta\n"));
    alpha.write(
        "by-selector-a.yaml",
        &placed("by-selector-a", "  nodeSelector:\n    disk: ssd\n"),
    );
    alpha.write(
        "by-affinity-b.yaml",
        &placed(
            "by-affinity-b",
            "  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: disk, operator: In, values: [nvme]}
        - matchExpressions:
          - {key: kubernetes.io/hostname, operator: In, values: [beta]}
          - {key: disk, operator: NotIn, values: [ssd]}
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 50
        preference:
          matchExpressions:
          - {key: disk, operator: In, values: [ssd]}
",
        ),
    );
    alpha.write("everywhere.yaml", &alpha.pod("everywhere", "3600"));

    let once = |env: &Env, flags: &[&str]| {
        let mut args = vec!["reconcile", "--once", "--pods-dir", pods_dir.as_str()];
        args.extend_from_slice(flags);
        let out = env.rkt_insecure(&args);
        assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout(), out.stderr());
    };
    let keys = |env: &Env| -> Vec<String> { env.running().into_iter().map(|(k, _)| k).collect() };
    let phase = |env: &Env, name: &str| -> (String, String) {
        let st = env.pod_status(name);
        (
            st["phase"].as_str().unwrap_or("-").to_string(),
            st["message"].as_str().unwrap_or("").to_string(),
        )
    };

    once(&alpha, &[]);
    once(&beta, &beta_flags);
    assert_eq!(
        keys(&alpha),
        [
            "default/by-name-a",
            "default/by-selector-a",
            "default/everywhere"
        ]
    );
    assert_eq!(
        keys(&beta),
        [
            "default/by-affinity-b",
            "default/by-name-b",
            "default/everywhere"
        ]
    );
    let (p, m) = phase(&alpha, "by-name-b");
    assert_eq!(p, "NotForThisHost");
    assert_eq!(m, "spec.nodeName is beta, this host is alpha");
    let (p, m) = phase(&alpha, "by-affinity-b");
    assert_eq!(p, "NotForThisHost");
    assert!(
        m.contains("nodeSelectorTerms matches this host (alpha)"),
        "{m}"
    );
    let (p, m) = phase(&beta, "by-selector-a");
    assert_eq!(p, "NotForThisHost");
    assert_eq!(
        m,
        "spec.nodeSelector wants disk=ssd, this host has disk=hdd"
    );
    assert_eq!(phase(&beta, "by-name-a").0, "NotForThisHost");
    assert_eq!(phase(&alpha, "everywhere").0, "Running");
    let table = alpha.rkt.ok(["reconcile", "status"]);
    assert!(table.contains("NotForThisHost"), "{table}");

    // apply says, without error, which pods are not for this host.
    let input = alpha.rkt.scratch().join("moved.yaml");
    fs::write(
        &input,
        placed("by-selector-a", "  nodeSelector:\n    disk: hdd\n"),
    )
    .unwrap();
    let out = alpha.rkt.run([
        "apply",
        "-f",
        input.to_str().unwrap(),
        "--pods-dir",
        &pods_dir,
        "--dry-run",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    assert!(
        out.stdout().contains(
            "not for this host (alpha): spec.nodeSelector wants disk=hdd, this host has disk=ssd"
        ),
        "{}",
        out.stdout()
    );

    // Moved to beta: it leaves alpha and starts on beta.
    alpha.write(
        "by-selector-a.yaml",
        &placed("by-selector-a", "  nodeSelector:\n    disk: hdd\n"),
    );
    once(&alpha, &[]);
    once(&beta, &beta_flags);
    assert_eq!(keys(&alpha), ["default/by-name-a", "default/everywhere"]);
    assert_eq!(
        keys(&beta),
        [
            "default/by-affinity-b",
            "default/by-name-b",
            "default/by-selector-a",
            "default/everywhere"
        ]
    );
    assert_eq!(phase(&alpha, "by-selector-a").0, "NotForThisHost");
    assert_eq!(
        alpha.pod_dirs().len(),
        2,
        "the moved pod's directory is gone"
    );

    // A pod for another host is still validated: an error there is an error here.
    alpha.write(
        "broken-b.yaml",
        &placed(
            "broken-b",
            "  nodeName: beta\n  nodeSelector: {disk: \"a b\"}\n",
        ),
    );
    let out = alpha.rkt_insecure(&["reconcile", "--once", "--pods-dir", &pods_dir]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr());
    let status = alpha.rkt.ok(["reconcile", "status"]);
    assert!(status.contains("broken-b.yaml:"), "{status}");
    assert!(status.contains("is not a valid label value"), "{status}");
}

#[test]
fn host_aliases_are_in_the_pods_etc_hosts() {
    need_root!("host_aliases_are_in_the_pods_etc_hosts");
    let env = Env::new();
    let _d = env.daemon();
    let yaml = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: aliases
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  hostAliases:
  - ip: 10.9.8.7
    hostnames: [db.internal, db]
  - ip: \"fd00::7\"
    hostnames: [six.internal]
  containers:
  - name: main
    image: {aci}
    command: [sh, -c, 'cat /etc/hosts; echo END; exec sleep 3600']
",
        aci = env.aci.display()
    );
    env.write("aliases.yaml", &yaml);
    let uuid = env.wait_running("aliases");
    let out = env.output_until_end(&uuid, "the pod's /etc/hosts");
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let at = |entry: &[&str]| lines.iter().position(|l| l == entry);
    let first = at(&["10.9.8.7", "db.internal", "db"]);
    let second = at(&["fd00::7", "six.internal"]);
    let localhost = lines.iter().position(|l| l.first() == Some(&"127.0.0.1"));
    assert!(first.is_some() && second.is_some(), "{out}");
    assert!(
        localhost < first && first < second,
        "after the managed entries, in order: {out}"
    );
}

#[test]
fn dns_policy_none_gives_exactly_the_dns_config() {
    need_root!("dns_policy_none_gives_exactly_the_dns_config");
    let env = Env::new();
    let _d = env.daemon();
    let yaml = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: dns
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  dnsPolicy: None
  dnsConfig:
    nameservers: [192.0.2.53, \"2001:db8::53\"]
    searches: [ns1.svc.example, example]
    options:
    - name: ndots
      value: \"2\"
    - name: edns0
  containers:
  - name: main
    image: {aci}
    command: [sh, -c, 'cat /etc/resolv.conf; echo END; exec sleep 3600']
",
        aci = env.aci.display()
    );
    env.write("dns.yaml", &yaml);
    let uuid = env.wait_running("dns");
    let out = env.output_until_end(&uuid, "the pod's /etc/resolv.conf");
    let conf: Vec<&str> = out.lines().take_while(|l| *l != "END").collect();
    assert_eq!(
        conf,
        [
            "nameserver 192.0.2.53",
            "nameserver 2001:db8::53",
            "search ns1.svc.example example",
            "options ndots:2 edns0",
        ],
        "{out}"
    );
}
