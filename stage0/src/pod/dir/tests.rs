//! Pod life-cycle tests on real directories, locks and processes. A shell script
//! stands in for stage1: it records each invocation in `calls` next to itself.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use manifests::pod::{PodApp, PodManifest, RuntimeImage};
use manifests::runtime::{Flavor, RuntimeApp, RuntimeConfig, RUNTIME_VERSION};
use tempfile::TempDir;

use super::*;

const IMAGE_ID: &str = "sha512-0123456789abcdef";

/// Kills (SIGKILL) and reaps a child we started when dropped, so a failing assertion
/// leaves no process behind.
struct Reaped(Child);

impl Reaped {
    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap()
    }

    fn kill(&mut self) -> std::process::ExitStatus {
        let _ = self.0.kill();
        self.0.wait().unwrap()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Env {
    tmp: TempDir,
    pods: Pods,
}

fn env() -> Env {
    env_with(Arc::new(FakeNetworks::default()))
}

fn env_with(network: Arc<dyn PodNetworks>) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let pods = Pods::open(&tmp.path().join("data"), network).unwrap();
    Env { tmp, pods }
}

/// Pods' networks as the pod directories see them: releases are recorded (and fail
/// with `fail`), every pod is described as attached to `described`.
#[derive(Debug, Default)]
struct FakeNetworks {
    released: std::sync::Mutex<Vec<PathBuf>>,
    fail: Option<&'static str>,
    described: Vec<NetworkInfo>,
}

impl PodNetworks for FakeNetworks {
    fn release(&self, pod_dir: &Path) -> Result<(), NetworkError> {
        self.released.lock().unwrap().push(pod_dir.to_path_buf());
        match self.fail {
            Some(msg) => Err(msg.into()),
            None => Ok(()),
        }
    }

    fn describe(&self, _pod_dir: &Path) -> (Vec<NetworkInfo>, Option<String>) {
        (self.described.clone(), None)
    }

    fn check(&self, _pod_dir: &Path) -> Result<(), NetworkError> {
        Ok(())
    }
}

impl Env {
    /// A fake stage1: `run` does `run_body`, `gc` does `gc_body`; every call is
    /// appended to `calls` as "ARGS lockfd=FD".
    fn stage1(&self, run_body: &str, gc_body: &str) -> PathBuf {
        let path = self.tmp.path().join("stage1");
        let calls = self.calls_path();
        let script = format!(
            "#!/bin/sh\n\
             echo \"$* lockfd=$RKT_LOCK_FD\" >> '{}'\n\
             case \"$1\" in\n  run) {run_body} ;;\n  gc) {gc_body} ;;\nesac\n",
            calls.display()
        );
        // Written by a child process: had this (multi-threaded) test process opened
        // the file for writing, a fork in another test thread could still hold that
        // descriptor when we exec the script, and exec would fail with ETXTBSY.
        let source = self.tmp.path().join("stage1.src");
        fs::write(&source, script).unwrap();
        let status = std::process::Command::new("cp")
            .arg(&source)
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "cp of the fake stage1 failed");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn calls_path(&self) -> PathBuf {
        self.tmp.path().join("calls")
    }

    fn calls(&self) -> Vec<String> {
        match fs::read_to_string(self.calls_path()) {
            Ok(t) => t.lines().map(str::to_string).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn prepare(&self, uuid: &str, apps: &[&str]) -> Pod {
        let (m, r) = pod_config(uuid, apps);
        self.pods.prepare(&m, &r).unwrap()
    }

    fn state(&self, uuid: &str) -> Option<PodState> {
        self.pods.locate(uuid).unwrap().map(|p| p.state)
    }

    /// Wait until the pod is in `state`. Needed after this process held a pod's
    /// lock: a child forked meanwhile by another test thread keeps a copy of the
    /// lock until it execs, so "unlocked" can show a moment late.
    fn await_state(&self, uuid: &str, state: PodState) {
        eventually(&format!("pod {uuid} to be {state}"), || {
            self.state(uuid) == Some(state)
        });
    }

    /// Prepare and start a pod whose stage1 runs `run_body`.
    fn spawn(&self, stage1: &Path) -> (Pod, Reaped) {
        let pod = self.prepare("", &["a"]);
        let child = self
            .pods
            .spawn_prepared(&pod.uuid, stage1, &Stage1Stdio::Null)
            .unwrap();
        (pod, Reaped(child))
    }
}

fn pod_config(uuid: &str, apps: &[&str]) -> (PodManifest, RuntimeConfig) {
    let manifest = PodManifest::new(
        apps.iter()
            .map(|name| PodApp {
                name: name.to_string(),
                image: RuntimeImage {
                    name: Some(manifests::appc::AcIdentifier::new("example.com/app").unwrap()),
                    id: IMAGE_ID.to_string(),
                    labels: vec![],
                },
                app: None,
                read_only_root_fs: false,
                mounts: vec![],
                annotations: vec![],
            })
            .collect(),
    );
    let runtime = RuntimeConfig {
        version: RUNTIME_VERSION,
        uuid: uuid.to_string(),
        flavor: Flavor::Default,
        hostname: String::new(),
        interactive: false,
        stop_grace_period_secs: 10,
        log_max_bytes: 1024,
        dns: None,
        hosts_entries: vec![],
        netns: None,
        private_network: false,
        cgroup_root: "/sys/fs/cgroup".into(),
        volumes: vec![],
        backoff: Default::default(),
        user_namespace: None,
        apps: apps
            .iter()
            .map(|name| RuntimeApp {
                name: name.to_string(),
                image_id: IMAGE_ID.to_string(),
                image: "/nonexistent/rootfs".into(),
                exec: vec!["/bin/true".into()],
                env: vec![],
                user: "0".into(),
                group: "0".into(),
                supplementary_gids: vec![],
                working_dir: "/".into(),
                read_only_rootfs: false,
                mounts: vec![],
                memory_limit_bytes: None,
                cpu_millis: None,
                capabilities: vec![],
                no_new_privileges: true,
                seccomp: Default::default(),
                masked_paths: vec![],
                readonly_paths: vec![],
                init: false,
                restart_policy: Default::default(),
                liveness_probe: None,
                readiness_probe: None,
                allow_all_devices: false,
            })
            .collect(),
    };
    (manifest, runtime)
}

/// Poll `cond` until it holds, failing after 10 s.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A child that holds `dir`'s flock exclusively until killed.
fn hold_lock(dir: &Path) -> Reaped {
    let child = Command::new("sh")
        .arg("-c")
        .arg("exec 9<\"$0\" && flock -x -n 9 && exec sleep 1000")
        .arg(dir)
        .spawn()
        .unwrap();
    let held = Reaped(child);
    eventually("the child to take the lock", || {
        lock::probe_locked(dir).unwrap() == Some(true)
    });
    held
}

fn list_states(pods: &Pods) -> Vec<(String, PodState)> {
    pods.list()
        .unwrap()
        .into_iter()
        .map(|i| (i.uuid, i.state))
        .collect()
}

#[test]
fn prepare_writes_the_pod_directory() {
    let e = env();
    let pod = e.prepare("", &["web", "db"]);
    assert!(is_uuid(&pod.uuid), "{}", pod.uuid);
    assert_eq!(pod.state, PodState::Prepared);
    assert_eq!(pod.dir, e.pods.root().join("prepared").join(&pod.uuid));
    assert!(pod.dir.join("apps/web").is_dir());
    assert!(pod.dir.join("apps/db").is_dir());
    assert!(!pod.dir.join(".pod.tmp").exists());

    let manifest = PodManifest::from_slice(&fs::read(pod.dir.join("pod")).unwrap()).unwrap();
    assert_eq!(manifest.apps.len(), 2);
    let runtime =
        RuntimeConfig::from_slice(&fs::read(pod.dir.join("runtime.json")).unwrap()).unwrap();
    assert_eq!(runtime.uuid, pod.uuid);
    assert_eq!(runtime.hostname, format!("rkt-{}", pod.uuid));

    for bucket in ["embryo", "prepare", "run", "exited-garbage", "garbage"] {
        let dir = e.pods.root().join(bucket);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "{bucket}");
    }
    assert_eq!(
        list_states(&e.pods),
        vec![(pod.uuid.clone(), PodState::Prepared)]
    );
    let info = e.pods.info(&pod).unwrap();
    assert!(info.created_at.is_some());
    assert_eq!(info.started_at, None);
    assert!(info.errors.is_empty(), "{:?}", info.errors);
    assert_eq!(info.apps[0].state, AppState::Created);
    assert_eq!(e.pods.read_manifest(&pod).unwrap(), manifest);
}

#[test]
fn prepare_refuses_bad_input_and_leaves_nothing() {
    let e = env();
    let (m, mut r) = pod_config("", &["a", "b"]);
    r.apps.reverse();
    assert!(matches!(
        e.pods.prepare(&m, &r),
        Err(PodError::AppMismatch { .. })
    ));
    let (m, mut r) = pod_config("", &["a"]);
    r.version = 2;
    assert!(matches!(
        e.pods.prepare(&m, &r),
        Err(PodError::RuntimeVersion { found: 2 })
    ));
    let (m, r) = pod_config("NOT-A-UUID", &["a"]);
    assert!(matches!(
        e.pods.prepare(&m, &r),
        Err(PodError::InvalidUuid { .. })
    ));
    assert!(e.pods.list().unwrap().is_empty());

    let uuid = "aaaaaaaa-0000-4000-8000-000000000001";
    e.prepare(uuid, &["a"]);
    let (m, r) = pod_config(uuid, &["a"]);
    assert!(matches!(
        e.pods.prepare(&m, &r),
        Err(PodError::UuidInUse { .. })
    ));
    assert_eq!(e.pods.list().unwrap().len(), 1);
}

#[test]
fn resolve_by_unique_prefix() {
    let e = env();
    let a1 = e.prepare("aaaaaaaa-0000-4000-8000-000000000001", &["a"]);
    let a2 = e.prepare("aaaaaaaa-0000-4000-8000-000000000002", &["a"]);
    let b = e.prepare("bbbbbbbb-0000-4000-8000-000000000003", &["a"]);
    assert_eq!(e.pods.resolve("b").unwrap().uuid, b.uuid);
    assert_eq!(
        e.pods
            .resolve("AAAAAAAA-0000-4000-8000-000000000002")
            .unwrap(),
        a2
    );
    assert_eq!(e.pods.resolve("aaaaaaaa-0000-4000-8000-0000000000").err().map(|e| e.to_string()),
        Some(format!("\"aaaaaaaa-0000-4000-8000-0000000000\" matches several pods: {}, {}; give more of the UUID", a1.uuid, a2.uuid)));
    assert!(matches!(
        e.pods.resolve("c"),
        Err(PodError::NotFound { .. })
    ));
    assert!(matches!(e.pods.resolve("  "), Err(PodError::EmptyPrefix)));
    // Non-UUID entries in the state directories are ignored.
    fs::create_dir(e.pods.root().join("run/bbbbbbbb-not-a-uuid")).unwrap();
    assert_eq!(e.pods.resolve("bbbb").unwrap().uuid, b.uuid);
}

#[test]
fn spawned_stage1_holds_the_lock_until_it_dies() {
    let e = env();
    let stage1 = e.stage1("exec sleep 1000", "exit 0");
    let (pod, mut child) = e.spawn(&stage1);
    let run_dir = e.pods.root().join("run").join(&pod.uuid);
    eventually("stage1 to be called", || !e.calls().is_empty());
    let call = &e.calls()[0];
    let expected = format!("run --pod-dir {} lockfd=", run_dir.display());
    assert!(call.starts_with(&expected), "{call}");
    let fd: i32 = call[expected.len()..].parse().unwrap();
    assert!(fd >= 3, "{call}");

    assert_eq!(e.state(&pod.uuid), Some(PodState::Running));
    assert_eq!(
        list_states(&e.pods),
        vec![(pod.uuid.clone(), PodState::Running)]
    );
    // A running pod cannot be started again, removed or collected.
    assert!(matches!(
        e.pods
            .spawn_prepared(&pod.uuid, &stage1, &Stage1Stdio::Null),
        Err(PodError::WrongState {
            state: PodState::Running,
            ..
        })
    ));
    assert!(matches!(
        e.pods.remove(&pod, &stage1),
        Err(PodError::WrongState {
            state: PodState::Running,
            ..
        })
    ));
    let report = e
        .pods
        .gc(
            Duration::ZERO,
            Duration::ZERO,
            false,
            &stage1,
            SystemTime::now(),
        )
        .unwrap();
    assert!(report.marked_exited.is_empty() && report.failures.is_empty());
    assert!(matches!(
        e.pods.wait(&pod, Some(Duration::from_millis(30))),
        Err(PodError::WaitTimeout {
            state: PodState::Running,
            ..
        })
    ));

    let status = child.kill();
    assert_eq!(status.signal(), Some(9));
    let info = e.pods.wait(&pod, Some(Duration::from_secs(10))).unwrap();
    assert_eq!(info.state, PodState::Exited);
    assert_eq!(info.apps[0].state, AppState::Unknown);
    assert_eq!(
        list_states(&e.pods),
        vec![(pod.uuid.clone(), PodState::Exited)]
    );
}

#[test]
fn stage1_output_goes_to_the_given_file() {
    let e = env();
    let stage1 = e.stage1("echo hello from stage1; echo oops >&2", "exit 0");
    let pod = e.prepare("", &["a"]);
    let log = e.tmp.path().join("stage1.log");
    let mut child = Reaped(
        e.pods
            .spawn_prepared(&pod.uuid, &stage1, &Stage1Stdio::File(log.clone()))
            .unwrap(),
    );
    assert!(child.0.wait().unwrap().success());
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "hello from stage1\noops\n"
    );
    e.await_state(&pod.uuid, PodState::Exited);
}

#[test]
fn failed_spawn_puts_the_pod_back() {
    let e = env();
    let pod = e.prepare("", &["a"]);
    let missing = e.tmp.path().join("no-such-stage1");
    assert!(matches!(
        e.pods
            .spawn_prepared(&pod.uuid, &missing, &Stage1Stdio::Null),
        Err(PodError::Spawn { .. })
    ));
    assert_eq!(e.state(&pod.uuid), Some(PodState::Prepared));
    assert!(matches!(
        e.pods.spawn_prepared(
            "aaaaaaaa-0000-4000-8000-000000000009",
            &missing,
            &Stage1Stdio::Null
        ),
        Err(PodError::NotFound { .. })
    ));
}

/// The environment variable that turns [`exec_child`] into a `run_prepared` call.
const EXEC_CHILD_ENV: &str = "RKT_PODS_TEST_EXEC_CHILD";

/// Not a test on its own: run by [`run_prepared_execs_stage1_or_puts_the_pod_back`]
/// in a process of its own, because `exec` replaces the process and a failed one
/// has already run the pre-exec hooks in it.
#[test]
fn exec_child() {
    let Ok(arg) = std::env::var(EXEC_CHILD_ENV) else {
        return;
    };
    let [data, uuid, stage1] = arg.splitn(3, '\n').collect::<Vec<_>>()[..] else {
        panic!("bad {EXEC_CHILD_ENV}");
    };
    let pods = Pods::open(Path::new(data), Arc::new(FakeNetworks::default())).unwrap();
    let cwd = std::env::current_dir().unwrap();
    let err = pods.run_prepared(uuid, Path::new(stage1)).unwrap_err();
    assert!(matches!(err, PodError::Spawn { .. }), "{err}");
    assert_eq!(std::env::current_dir().unwrap(), cwd);
    std::process::exit(42);
}

#[test]
fn run_prepared_execs_stage1_or_puts_the_pod_back() {
    let e = env();
    let run_in_child = |pod: &Pod, stage1: &Path| {
        let arg = format!(
            "{}\n{}\n{}",
            e.tmp.path().join("data").display(),
            pod.uuid,
            stage1.display()
        );
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "pod::dir::tests::exec_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(EXEC_CHILD_ENV, arg)
            .output()
            .unwrap()
    };

    let pod = e.prepare("", &["a"]);
    let out = run_in_child(&pod, &e.tmp.path().join("no-such-stage1"));
    assert_eq!(out.status.code(), Some(42), "{out:?}");
    assert_eq!(e.state(&pod.uuid), Some(PodState::Prepared));

    let stage1 = e.stage1("echo stage1 ran; exit 7", "exit 0");
    let out = run_in_child(&pod, &stage1);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("stage1 ran\n"),
        "{out:?}"
    );
    let calls = e.calls();
    let run_dir = e.pods.root().join("run").join(&pod.uuid);
    assert!(
        calls[0].starts_with(&format!("run --pod-dir {} lockfd=", run_dir.display())),
        "{calls:?}"
    );
    e.await_state(&pod.uuid, PodState::Exited);
}

#[test]
fn preparing_and_aborted_prepares() {
    let e = env();
    let stage1 = e.stage1("exit 0", "exit 0");
    let uuid = "cccccccc-0000-4000-8000-000000000001";
    let dir = e.pods.root().join("prepare").join(uuid);
    fs::create_dir(&dir).unwrap();
    let mut holder = hold_lock(&dir);
    assert_eq!(e.state(uuid), Some(PodState::Preparing));
    let report = e
        .pods
        .gc(
            Duration::ZERO,
            Duration::ZERO,
            false,
            &stage1,
            SystemTime::now(),
        )
        .unwrap();
    assert!(report.marked_garbage.is_empty(), "{report:?}");
    assert!(dir.exists());

    holder.kill();
    e.await_state(uuid, PodState::AbortedPrepare);
    let info = e.pods.info(&e.pods.resolve("cccc").unwrap()).unwrap();
    assert_eq!(info.state, PodState::AbortedPrepare);
    assert!(info.apps.is_empty() && info.errors.is_empty(), "{info:?}");

    let report = e
        .pods
        .gc(
            Duration::ZERO,
            Duration::ZERO,
            true,
            &stage1,
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(report.marked_garbage, vec![uuid.to_string()]);
    e.await_state(uuid, PodState::Garbage);
    let report = e
        .pods
        .gc(
            Duration::ZERO,
            Duration::ZERO,
            false,
            &stage1,
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(report.removed.len(), 1);
    assert_eq!(e.state(uuid), None);
    assert!(
        e.calls().is_empty(),
        "stage1 gc must not run for never-run pods"
    );
}

#[test]
fn gc_marks_exited_pods_and_sweeps_them_after_the_grace_period() {
    let e = env();
    let stage1 = e.stage1("exit 0", "exit 0");
    let (pod, mut child) = e.spawn(&stage1);
    assert!(child.0.wait().unwrap().success());
    e.await_state(&pod.uuid, PodState::Exited);

    let grace = Duration::from_secs(30 * 60);
    let expire = Duration::from_secs(24 * 3600);
    let t0 = SystemTime::now();
    let report = e.pods.gc(grace, expire, false, &stage1, t0).unwrap();
    assert_eq!(report.marked_exited, vec![pod.uuid.clone()]);
    assert!(report.removed.is_empty());
    e.await_state(&pod.uuid, PodState::ExitedGarbage);
    let marked = e.pods.root().join("exited-garbage").join(&pod.uuid);
    assert_eq!(
        fs::metadata(marked.join(GC_MARK_FILE))
            .unwrap()
            .modified()
            .unwrap(),
        t0
    );
    // Status still works during the grace period.
    assert_eq!(e.pods.info(&pod).unwrap().state, PodState::ExitedGarbage);

    let report = e
        .pods
        .gc(
            grace,
            expire,
            false,
            &stage1,
            t0 + grace - Duration::from_secs(1),
        )
        .unwrap();
    assert!(report.removed.is_empty() && report.marked_exited.is_empty());
    assert!(marked.exists());
    assert_eq!(e.calls().len(), 1); // only `run`

    let report = e
        .pods
        .gc(grace, expire, false, &stage1, t0 + grace)
        .unwrap();
    assert_eq!(
        report.removed,
        vec![Removal {
            uuid: pod.uuid.clone(),
            detached_mounts: vec![]
        }]
    );
    assert!(!marked.exists());
    assert_eq!(e.state(&pod.uuid), None);
    let calls = e.calls();
    assert!(
        calls[1].starts_with(&format!("gc --pod-dir {} ", marked.display())),
        "{calls:?}"
    );
}

#[test]
fn gc_with_zero_grace_marks_and_sweeps_at_once_unless_mark_only() {
    let e = env();
    let stage1 = e.stage1("exit 0", "exit 0");
    let (p1, mut c1) = e.spawn(&stage1);
    assert!(c1.0.wait().unwrap().success());
    e.await_state(&p1.uuid, PodState::Exited);
    let report = e
        .pods
        .gc(
            Duration::ZERO,
            Duration::from_secs(3600),
            true,
            &stage1,
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(report.marked_exited, vec![p1.uuid.clone()]);
    e.await_state(&p1.uuid, PodState::ExitedGarbage);

    let (p2, mut c2) = e.spawn(&stage1);
    assert!(c2.0.wait().unwrap().success());
    e.await_state(&p2.uuid, PodState::Exited);
    let report = e
        .pods
        .gc(
            Duration::ZERO,
            Duration::from_secs(3600),
            false,
            &stage1,
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(report.marked_exited, vec![p2.uuid.clone()]);
    let mut removed: Vec<_> = report.removed.into_iter().map(|r| r.uuid).collect();
    removed.sort();
    let mut expected = vec![p1.uuid, p2.uuid];
    expected.sort();
    assert_eq!(removed, expected);
    assert!(e.pods.list().unwrap().is_empty());
}

#[test]
fn gc_expires_old_prepared_pods_only() {
    let e = env();
    let stage1 = e.stage1("exit 0", "exit 0");
    let fresh = e.prepare("", &["a"]);
    let old = e.prepare("", &["a"]);
    let now = SystemTime::now();
    let day = Duration::from_secs(24 * 3600);
    fs::File::options()
        .write(true)
        .open(old.dir.join("pod"))
        .unwrap()
        .set_modified(now - day - Duration::from_secs(1))
        .unwrap();
    let report = e
        .pods
        .gc(Duration::from_secs(1800), day, false, &stage1, now)
        .unwrap();
    assert_eq!(report.marked_garbage, vec![old.uuid.clone()]);
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.removed[0].uuid, old.uuid);
    assert_eq!(e.state(&old.uuid), None);
    assert_eq!(e.state(&fresh.uuid), Some(PodState::Prepared));
    assert!(e.calls().is_empty());
}

#[test]
fn failed_stage1_gc_keeps_the_pod() {
    let e = env();
    let stage1 = e.stage1("exit 0", "echo cgroup busy >&2; exit 3");
    let (pod, mut child) = e.spawn(&stage1);
    assert!(child.0.wait().unwrap().success());
    e.await_state(&pod.uuid, PodState::Exited);
    let report = e
        .pods
        .gc(
            Duration::ZERO,
            Duration::ZERO,
            false,
            &stage1,
            SystemTime::now(),
        )
        .unwrap();
    assert!(report.removed.is_empty());
    assert_eq!(report.failures.len(), 1);
    let failure = &report.failures[0];
    assert_eq!(failure.uuid, pod.uuid);
    match &failure.error {
        PodError::Stage1Gc { stderr, status, .. } => {
            assert_eq!(stderr, "cgroup busy");
            assert_eq!(status.code(), Some(3));
        }
        other => panic!("unexpected error {other}"),
    }
    e.await_state(&pod.uuid, PodState::ExitedGarbage);
}

#[test]
fn remove_prepared_exited_and_refuse_running() {
    let e = env();
    let stage1 = e.stage1("exit 0", "exit 0");
    let prepared = e.prepare("", &["a"]);
    let removal = e.pods.remove(&prepared, &stage1).unwrap();
    assert_eq!(removal.uuid, prepared.uuid);
    assert_eq!(e.state(&prepared.uuid), None);
    assert!(e.calls().is_empty());

    let (exited, mut child) = e.spawn(&stage1);
    assert!(child.0.wait().unwrap().success());
    e.await_state(&exited.uuid, PodState::Exited);
    e.pods.remove(&exited, &stage1).unwrap();
    assert_eq!(e.state(&exited.uuid), None);
    let calls = e.calls();
    let gc_dir = e.pods.root().join("exited-garbage").join(&exited.uuid);
    assert!(
        calls[1].starts_with(&format!("gc --pod-dir {} ", gc_dir.display())),
        "{calls:?}"
    );
    assert!(matches!(
        e.pods.remove(&exited, &stage1),
        Err(PodError::NotFound { .. })
    ));
}

#[test]
fn stop_signals_the_pid_in_the_pid_file() {
    let e = env();
    let stage1 = e.stage1("exec sleep 1000", "exit 0");
    let prepared = e.prepare("", &["a"]);
    assert!(matches!(
        e.pods.stop(&prepared, false),
        Err(PodError::WrongState {
            state: PodState::Prepared,
            ..
        })
    ));

    let (pod, _stage1_child) = e.spawn(&stage1);
    eventually("the pod to run", || {
        e.state(&pod.uuid) == Some(PodState::Running)
    });
    let run_dir = e.pods.root().join("run").join(&pod.uuid);
    assert!(matches!(
        e.pods.stop(&pod, false),
        Err(PodError::NoPid { .. })
    ));

    // A stand-in for the pod's pid 1.
    let mut pid1 = Reaped(Command::new("sleep").arg("1000").spawn().unwrap());
    fs::write(run_dir.join("pid"), format!("{}\n", pid1.pid())).unwrap();
    e.pods.stop(&pod, false).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = pid1.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "pid 1 did not die");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(status.signal(), Some(15));

    let mut pid1 = Reaped(Command::new("sleep").arg("1000").spawn().unwrap());
    fs::write(run_dir.join("pid"), format!("{}\n", pid1.pid())).unwrap();
    e.pods.stop(&pod, true).unwrap();
    assert_eq!(pid1.0.wait().unwrap().signal(), Some(9));
}

#[test]
fn info_reports_apps_pid_and_times_as_rkt_json() {
    let e = env();
    let stage1 = e.stage1("exec sleep 1000", "exit 0");
    let (m, r) = pod_config("", &["web", "job", "new"]);
    let pod = e.pods.prepare(&m, &r).unwrap();
    let _child = Reaped(
        e.pods
            .spawn_prepared(&pod.uuid, &stage1, &Stage1Stdio::Null)
            .unwrap(),
    );
    let dir = e.pods.root().join("run").join(&pod.uuid);
    eventually("the pod to run", || {
        e.state(&pod.uuid) == Some(PodState::Running)
    });
    fs::write(dir.join("pid"), "4242\n").unwrap();
    // web: running; job: exited with 3; new: not started yet.
    fs::write(dir.join("apps/web/pid"), "2\n").unwrap();
    let status = r#"{"exitCode":3,"signal":null,"oomKilled":false,"startedAt":"2024-01-01T00:00:00Z","finishedAt":"2024-01-01T00:00:01Z","restarts":0}"#;
    fs::write(dir.join("apps/job/pid"), "3\n").unwrap();
    fs::write(dir.join("apps/job/status"), status).unwrap();

    let info = e.pods.info(&pod).unwrap();
    assert_eq!(info.pid, Some(4242));
    assert!(info.started_at.is_some());
    assert!(!info.ready);
    let states: Vec<_> = info.apps.iter().map(|a| a.state).collect();
    assert_eq!(
        states,
        vec![AppState::Running, AppState::Exited, AppState::Unknown]
    );
    assert_eq!(info.apps[1].exit_code(), Some(3));

    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["uuid"], pod.uuid.as_str());
    assert_eq!(json["state"], "running");
    assert_eq!(json["pid"], 4242);
    assert_eq!(json["networks"], serde_json::json!([]));
    assert_eq!(json["apps"][1]["name"], "job");
    assert_eq!(json["apps"][1]["imageId"], IMAGE_ID);
    assert_eq!(json["apps"][1]["imageName"], "example.com/app");
    assert_eq!(json["apps"][1]["state"], "exited");
    assert_eq!(json["apps"][1]["exitCode"], 3);
    assert!(json["apps"][0].get("exitCode").is_none());
    let started = json["startedAt"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(started).is_ok(), "{started}");
    assert!(json["createdAt"].is_string());
    assert!(json.get("errors").is_none());

    fs::write(dir.join("ready"), "").unwrap();
    let ready = e
        .pods
        .wait_ready(&pod, Some(Duration::from_secs(10)))
        .unwrap();
    assert!(ready.ready);
}

#[test]
fn app_state_from_pid_and_status_times() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
    let later = t + Duration::from_secs(1);
    assert_eq!(app_state(PodState::Prepared, None, None), AppState::Created);
    assert_eq!(
        app_state(PodState::Running, Some(t), None),
        AppState::Running
    );
    assert_eq!(
        app_state(PodState::Running, Some(t), Some(later)),
        AppState::Exited
    );
    // Restarted after its last exit.
    assert_eq!(
        app_state(PodState::Running, Some(later), Some(t)),
        AppState::Running
    );
    assert_eq!(app_state(PodState::Running, None, None), AppState::Unknown);
    assert_eq!(
        app_state(PodState::Exited, Some(t), Some(t)),
        AppState::Exited
    );
    assert_eq!(
        app_state(PodState::ExitedGarbage, Some(t), None),
        AppState::Unknown
    );
}

#[test]
fn a_corrupt_pod_does_not_spoil_the_listing() {
    let e = env();
    let good = e.prepare("", &["a"]);
    let bad = e.prepare("", &["a"]);
    fs::write(bad.dir.join("pod"), "{not json").unwrap();
    let list = e.pods.list().unwrap();
    assert_eq!(list.len(), 2);
    let bad_info = list.iter().find(|i| i.uuid == bad.uuid).unwrap();
    assert_eq!(bad_info.errors.len(), 1, "{:?}", bad_info.errors);
    assert!(bad_info.errors[0].contains(&bad.uuid));
    // Apps still come from runtime.json.
    assert_eq!(bad_info.apps.len(), 1);
    let good_info = list.iter().find(|i| i.uuid == good.uuid).unwrap();
    assert!(good_info.errors.is_empty());
    assert!(matches!(
        e.pods.read_manifest(&bad),
        Err(PodError::ParseManifest { .. })
    ));
}

/// Unmounts a test mount (lazily) if the test did not get to remove it.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

#[test]
fn sweep_detaches_mounts_left_in_a_pod_directory() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED sweep_detaches_mounts_left_in_a_pod_directory: needs root");
        return;
    }
    let e = env();
    let stage1 = e.stage1("exit 0", "exit 0");
    let uuid = "dddddddd-0000-4000-8000-000000000001";
    let dir = e.pods.root().join("garbage").join(uuid);
    let rootfs = dir.join("apps/a/rootfs");
    fs::create_dir_all(&rootfs).unwrap();
    rustix::mount::mount(
        "tmpfs",
        &rootfs,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .unwrap();
    let rootfs = fs::canonicalize(&rootfs).unwrap();
    let _guard = MountGuard(rootfs.clone());
    fs::write(rootfs.join("file-on-tmpfs"), "x").unwrap();

    let report = e
        .pods
        .gc(
            Duration::ZERO,
            Duration::ZERO,
            false,
            &stage1,
            SystemTime::now(),
        )
        .unwrap();
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(
        report.removed,
        vec![Removal {
            uuid: uuid.to_string(),
            detached_mounts: vec![rootfs.clone()]
        }]
    );
    assert!(!dir.exists());
    let table = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(mountinfo::mounts_under(&table, &rootfs).is_empty());
}

#[test]
fn gc_collects_stale_embryos() {
    let e = env();
    let stage1 = e.stage1("exit 0", "exit 0");
    let uuid = "eeeeeeee-0000-4000-8000-000000000001";
    let dir = e.pods.root().join("embryo").join(uuid);
    fs::create_dir(&dir).unwrap();
    assert_eq!(e.state(uuid), Some(PodState::Embryo));
    let day = Duration::from_secs(24 * 3600);
    let now = SystemTime::now();
    let report = e.pods.gc(day, day, false, &stage1, now).unwrap();
    assert!(report.marked_garbage.is_empty());
    assert!(dir.exists());
    let report = e.pods.gc(day, day, false, &stage1, now + day).unwrap();
    assert_eq!(report.marked_garbage, vec![uuid.to_string()]);
    assert_eq!(report.removed.len(), 1);
    assert_eq!(e.state(uuid), None);
}

#[test]
fn pods_with_user_namespaces_get_ranges_no_other_pod_has() {
    let e = env();
    let a = "6f1c3e2a-9b7d-4c1e-8a2b-3c4d5e6f7a8b";
    // Another UUID preferring the same range: it must get the next one.
    let slot = userns::preferred_slot(a);
    let b = (0..100 * userns::SLOTS)
        .map(|i| format!("00000000-0000-4000-8000-{i:012x}"))
        .find(|u| userns::preferred_slot(u) == slot)
        .unwrap();
    let with_userns = |uuid: &str| {
        let (m, mut r) = pod_config(uuid, &["web"]);
        r.user_namespace = userns::choose(uuid, &[]);
        e.pods.prepare(&m, &r).unwrap()
    };
    let pa = with_userns(a);
    let pb = with_userns(&b);
    let plain = e.prepare("", &["web"]);
    let range = |p: &Pod| {
        RuntimeConfig::from_slice(&fs::read(p.dir.join("runtime.json")).unwrap())
            .unwrap()
            .user_namespace
    };
    assert_eq!(range(&pa), Some(userns::range_of_slot(slot)));
    assert_eq!(
        range(&pb),
        Some(userns::range_of_slot((slot + 1) % userns::SLOTS))
    );
    assert_eq!(range(&plain), None);

    // rkt status / list show it.
    let info = serde_json::to_value(e.pods.info(&pa).unwrap()).unwrap();
    assert_eq!(
        info["userNamespace"],
        serde_json::json!({"hostUid": (1u32 << 28) + slot * 65536,
                           "hostGid": (1u32 << 28) + slot * 65536, "size": 65536})
    );
    let info = serde_json::to_value(e.pods.info(&plain).unwrap()).unwrap();
    assert!(info.get("userNamespace").is_none(), "{info}");

    // A range of another size is refused.
    let (m, mut r) = pod_config("", &["web"]);
    r.user_namespace = Some(manifests::runtime::UserNamespace {
        host_uid: 1 << 28,
        host_gid: 1 << 28,
        size: 10,
    });
    assert!(matches!(
        e.pods.prepare(&m, &r),
        Err(PodError::UserNamespace { .. })
    ));
}

#[test]
fn removal_releases_networks_first_and_keeps_the_pod_if_that_fails() {
    let ok = Arc::new(FakeNetworks::default());
    let e = env_with(ok.clone());
    let stage1 = e.stage1("exit 0", "exit 0");
    let pod = e.prepare("", &["a"]);
    e.pods.remove(&pod, &stage1).unwrap();
    assert_eq!(e.state(&pod.uuid), None);
    let released = ok.released.lock().unwrap().clone();
    assert_eq!(released.len(), 1, "{released:?}");
    assert!(released[0].ends_with(&pod.uuid), "{released:?}");

    let failing = Arc::new(FakeNetworks {
        fail: Some("plugin bridge: DEL failed"),
        ..FakeNetworks::default()
    });
    let e = env_with(failing.clone());
    let stage1 = e.stage1("exit 0", "exit 0");
    let pod = e.prepare("", &["a"]);
    match e.pods.remove(&pod, &stage1) {
        Err(PodError::Network { source }) => {
            assert_eq!(source.to_string(), "plugin bridge: DEL failed");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(e.state(&pod.uuid).is_some(), "the pod is kept");
    assert_eq!(failing.released.lock().unwrap().len(), 1);
}

#[test]
fn info_lists_the_networks_the_pod_networks_describe() {
    let net = NetworkInfo {
        name: "default".into(),
        ip: Some("172.16.28.2".into()),
    };
    let e = env_with(Arc::new(FakeNetworks {
        described: vec![net.clone()],
        ..FakeNetworks::default()
    }));
    let pod = e.prepare("", &["a"]);
    let info = e.pods.info(&pod).unwrap();
    assert_eq!(info.networks, vec![net]);
    assert!(info.errors.is_empty(), "{:?}", info.errors);
}
