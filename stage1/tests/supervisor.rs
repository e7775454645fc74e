//! The pod supervisor end to end: `stage1 run` on a pod directory with a busybox image,
//! real namespaces, overlayfs and cgroups. Needs root; without it every test says that
//! it skipped.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const STAGE1: &str = env!("CARGO_BIN_EXE_stage1");
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const LONG: Duration = Duration::from_secs(60);

fn skip(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return false;
    }
    eprintln!("SKIPPED {test}: needs root (namespaces, mounts, cgroups)");
    true
}

/// The busybox image's rendered tree, built once (kept under the target directory).
fn image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("stage1-busybox");
        let rootfs = dir.join("rootfs");
        let done = dir.join("done");
        if done.exists() {
            return rootfs;
        }
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let aci = dir.join("busybox.aci");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/build-busybox-aci.sh");
        let st = Command::new("bash")
            .arg(&script)
            .arg(&aci)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "building the busybox ACI failed");
        let st = Command::new("tar")
            .arg("-xzf")
            .arg(&aci)
            .arg("-C")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success(), "extracting the busybox ACI failed");
        fs::write(&done, "").unwrap();
        rootfs
    })
}

fn poll_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn app(name: &str, script: &str) -> Value {
    json!({
        "name": name,
        "imageId": "sha512-test",
        "image": image(),
        "exec": ["/bin/sh", "-c", script],
        "env": [["PATH", "/usr/sbin:/usr/bin:/sbin:/bin"], ["AC_APP_NAME", name]],
        "user": "0",
        "group": "0",
        "capabilities": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"],
    })
}

struct Pod {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    uuid: String,
    cfg: Value,
}

struct Running {
    child: Child,
}

impl Pod {
    fn new(apps: Vec<Value>) -> Pod {
        static N: AtomicUsize = AtomicUsize::new(0);
        let uuid = format!(
            "test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let tmp = tempfile::Builder::new()
            .prefix("stage1-pod-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().join("pod");
        fs::create_dir_all(&dir).unwrap();
        for a in &apps {
            fs::create_dir_all(dir.join("apps").join(a["name"].as_str().unwrap())).unwrap();
        }
        let cfg = json!({
            "version": 1,
            "uuid": uuid,
            "flavor": "default",
            "hostname": format!("rkt-{uuid}"),
            "stopGracePeriodSecs": 10,
            "logMaxBytes": 1 << 20,
            "cgroupRoot": CGROUP_ROOT,
            "apps": apps,
        });
        Pod {
            tmp,
            dir,
            uuid,
            cfg,
        }
    }

    fn set(mut self, key: &str, value: Value) -> Pod {
        self.cfg[key] = value;
        self
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    fn status(&self, app: &str) -> Value {
        let text = self.read(&format!("apps/{app}/status"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("status of {app}: {e}: {text:?}"))
    }

    /// Start `stage1 run` the way stage0 does: pod dir locked, lock fd in RKT_LOCK_FD.
    fn start_with(&self, stdin: Stdio) -> Running {
        fs::write(
            self.path("runtime.json"),
            serde_json::to_vec_pretty(&self.cfg).unwrap(),
        )
        .unwrap();
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"exec 9<"$1" && flock -x 9 && RKT_LOCK_FD=9 exec "$2" run --pod-dir "$1""#)
            .arg("sh")
            .arg(&self.dir)
            .arg(STAGE1)
            .stdin(stdin)
            .stdout(File::create(self.tmp.path().join("stdout")).unwrap())
            .stderr(File::create(self.tmp.path().join("stderr")).unwrap())
            .spawn()
            .unwrap();
        Running { child }
    }

    fn start(&self) -> Running {
        self.start_with(Stdio::null())
    }

    fn run(&self) -> ExitStatus {
        self.start().wait(self, LONG)
    }

    fn stdout(&self) -> String {
        fs::read_to_string(self.tmp.path().join("stdout")).unwrap()
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.tmp.path().join("stderr")).unwrap()
    }

    fn wait_ready(&self) {
        poll_until("the pod to be ready", LONG, || self.path("ready").exists());
    }

    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        ["memory", "cpu", "pids", "unified", ""]
            .iter()
            .map(|c| Path::new(CGROUP_ROOT).join(c).join("rkt").join(&self.uuid))
            .collect()
    }

    fn gc(&self) -> ExitStatus {
        Command::new(STAGE1)
            .args(["gc", "--pod-dir"])
            .arg(&self.dir)
            .status()
            .unwrap()
    }

    /// Release everything and check nothing is left on the host.
    fn finish(self) {
        let st = self.gc();
        assert!(st.success(), "gc failed: {st}");
        for d in self.cgroup_dirs() {
            assert!(!d.exists(), "cgroup {} left behind", d.display());
        }
        let tmp = self.tmp.path().to_string_lossy().into_owned();
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let leaked: Vec<&str> = mountinfo.lines().filter(|l| l.contains(&tmp)).collect();
        assert!(leaked.is_empty(), "mounts left on the host: {leaked:#?}");
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        // A failed test may leave the pod running: take it down by its init.
        if let Some(pid) = fs::read_to_string(self.path("pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            if fs::read_to_string(format!("/proc/{}/cmdline", pid.as_raw_nonzero()))
                .is_ok_and(|c| c.contains(&self.dir.to_string_lossy().into_owned()))
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        let _ = self.gc();
    }
}

impl Running {
    fn pid(&self) -> rustix::process::Pid {
        rustix::process::Pid::from_child(&self.child)
    }

    fn signal(&self, sig: rustix::process::Signal) {
        rustix::process::kill_process(self.pid(), sig).unwrap();
    }

    fn wait(mut self, pod: &Pod, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "stage1 run did not exit within {timeout:?}\nstdout: {}\nstderr: {}",
                    pod.stdout(),
                    pod.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn code(st: ExitStatus) -> i32 {
    st.code()
        .unwrap_or_else(|| panic!("stage1 run died of signal {:?}", st.signal()))
}

#[test]
fn failing_app_exit_code_propagates() {
    if skip("failing_app_exit_code_propagates") {
        return;
    }
    let pod = Pod::new(vec![app("fails", "exit 3")]);
    let st = pod.run();
    assert_eq!(code(st), 3, "stderr: {}", pod.stderr());
    let status = pod.status("fails");
    assert_eq!(status["exitCode"], 3);
    assert_eq!(status["signal"], Value::Null);
    assert_eq!(status["oomKilled"], false);
    assert_eq!(status["restarts"], 0);
    assert!(humantime::parse_rfc3339(status["startedAt"].as_str().unwrap()).is_ok());
    assert!(humantime::parse_rfc3339(status["finishedAt"].as_str().unwrap()).is_ok());
    let pid: u32 = pod.read("pid").trim().parse().unwrap();
    assert!(pid > 1);
    assert!(pod.path("ready").exists());
    pod.finish();
}

#[test]
fn first_failed_app_in_order_decides_the_exit_code() {
    if skip("first_failed_app_in_order_decides_the_exit_code") {
        return;
    }
    // The later app fails first in time; the order in the pod decides.
    let pod = Pod::new(vec![
        app("ok", "exit 0"),
        app("slow", "sleep 0.3; exit 5"),
        app("fast", "exit 6"),
    ]);
    assert_eq!(code(pod.run()), 5, "stderr: {}", pod.stderr());
    assert_eq!(pod.status("ok")["exitCode"], 0);
    assert_eq!(pod.status("fast")["exitCode"], 6);
    pod.finish();
}

#[test]
fn two_apps_share_the_pod_pid_namespace() {
    if skip("two_apps_share_the_pod_pid_namespace") {
        return;
    }
    // Each app waits until it sees the other in `ps` ("true app-X" marks it), then
    // runs until the pod is stopped, so neither can miss the other.
    let script = |me: &str, other: &str| {
        format!(
            "trap 'exit 0' TERM; true app-{me}; n=0; until ps | grep -q '[a]pp-{other}'; do \
             n=$((n+1)); [ $n -gt 400 ] && exit 1; sleep 0.05; done; \
             echo {me} pid1=$(cat /proc/1/cmdline | tr '\\0' ' '); \
             echo {me} hostname=$(hostname); echo {me} sees {other}; \
             while true; do sleep 0.05; done"
        )
    };
    let pod = Pod::new(vec![
        app("a", &script("a", "b")),
        app("b", &script("b", "a")),
    ]);
    let running = pod.start();
    poll_until("the apps to see each other", LONG, || {
        pod.read("apps/a/log").contains("a sees b") && pod.read("apps/b/log").contains("b sees a")
    });
    running.signal(rustix::process::Signal::TERM);
    assert_eq!(
        code(running.wait(&pod, LONG)),
        0,
        "stderr: {}",
        pod.stderr()
    );
    for (me, other) in [("a", "b"), ("b", "a")] {
        let log = pod.read(&format!("apps/{me}/log"));
        assert!(log.contains(&format!("{me} sees {other}")), "{me}: {log}");
        // PID 1 is the pod's reaper (stage1's init is not in the apps' namespace),
        // not the host's.
        assert!(
            log.contains(&format!("{me} pid1=/proc/self/exe reaper")),
            "{log}"
        );
        assert!(log.contains(&format!("hostname=rkt-{}", pod.uuid)), "{log}");
        assert_eq!(pod.status(me)["exitCode"], 0);
        let pid: i32 = pod.read(&format!("apps/{me}/pid")).trim().parse().unwrap();
        assert!(pid > 1 && pid < 100, "pid in the pod's namespace: {pid}");
    }
    pod.finish();
}

#[test]
fn output_passes_through_and_is_logged() {
    if skip("output_passes_through_and_is_logged") {
        return;
    }
    let pod = Pod::new(vec![app(
        "talker",
        "echo to-stdout; echo to-stderr >&2; echo more-stdout",
    )]);
    assert_eq!(code(pod.run()), 0, "stderr: {}", pod.stderr());
    assert!(pod.stdout().contains("to-stdout\n"), "{}", pod.stdout());
    assert!(pod.stdout().contains("more-stdout\n"), "{}", pod.stdout());
    assert!(!pod.stdout().contains("to-stderr"), "{}", pod.stdout());
    assert!(pod.stderr().contains("to-stderr\n"), "{}", pod.stderr());
    let log = pod.read("apps/talker/log");
    for line in ["to-stdout\n", "to-stderr\n", "more-stdout\n"] {
        assert!(log.contains(line), "{log}");
    }
    pod.finish();
}

#[test]
fn log_rotates_at_log_max_bytes() {
    if skip("log_rotates_at_log_max_bytes") {
        return;
    }
    // 60 lines of 50 bytes: 3000 bytes through a 1000-byte cap.
    let pod = Pod::new(vec![app(
        "chatty",
        "i=100; while [ $i -lt 160 ]; do echo \"line-$i-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"; i=$((i+1)); done",
    )])
    .set("logMaxBytes", json!(1000));
    assert_eq!(code(pod.run()), 0, "stderr: {}", pod.stderr());
    let log = fs::read(pod.path("apps/chatty/log")).unwrap();
    let rotated = fs::read(pod.path("apps/chatty/log.1")).unwrap();
    assert!(log.len() <= 1000 && rotated.len() <= 1000);
    assert!(!log.is_empty());
    let kept = [rotated, log].concat();
    let kept = String::from_utf8(kept).unwrap();
    assert!(
        kept.ends_with("line-159-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"),
        "{kept}"
    );
    assert!(
        !kept.contains("line-100-"),
        "the oldest output is rotated away"
    );
    // Everything kept is exactly the end of what the app wrote.
    assert!(pod.stdout().ends_with(&kept));
    assert!(!pod.path("apps/chatty/log.2").exists());
    pod.finish();
}

#[test]
fn sigterm_to_run_stops_the_apps_gracefully() {
    if skip("sigterm_to_run_stops_the_apps_gracefully") {
        return;
    }
    let pod = Pod::new(vec![
        app(
            "trapper",
            "trap 'echo got-term; exit 0' TERM; echo started; while true; do sleep 0.1; done",
        ),
        app("sleeper", "exec sleep 600"),
    ]);
    let running = pod.start();
    pod.wait_ready();
    poll_until("the app to start", LONG, || {
        pod.read("apps/trapper/log").contains("started")
    });
    let t0 = Instant::now();
    running.signal(rustix::process::Signal::TERM);
    let st = running.wait(&pod, LONG);
    // Well within the 10 s grace period: the apps ended on SIGTERM itself.
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    assert!(pod.read("apps/trapper/log").contains("got-term"));
    assert_eq!(pod.status("trapper")["exitCode"], 0);
    let sleeper = pod.status("sleeper");
    assert_eq!(sleeper["exitCode"], 143, "{sleeper}");
    assert_eq!(sleeper["signal"], 15);
    // The first app that failed in order: the sleeper, killed by SIGTERM.
    assert_eq!(code(st), 143);
    pod.finish();
}

#[test]
fn app_ignoring_sigterm_is_killed_after_the_grace_period() {
    if skip("app_ignoring_sigterm_is_killed_after_the_grace_period") {
        return;
    }
    let pod = Pod::new(vec![app(
        "stubborn",
        "trap '' TERM; echo started; while true; do sleep 0.1; done",
    )])
    .set("stopGracePeriodSecs", json!(1));
    let running = pod.start();
    pod.wait_ready();
    poll_until("the app to start", LONG, || {
        pod.read("apps/stubborn/log").contains("started")
    });
    let t0 = Instant::now();
    running.signal(rustix::process::Signal::TERM);
    let st = running.wait(&pod, LONG);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "killed before the grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "{took:?}");
    let status = pod.status("stubborn");
    assert_eq!(status["exitCode"], 137, "{status}");
    assert_eq!(status["signal"], 9);
    assert_eq!(code(st), 137);
    pod.finish();
}

#[test]
fn memory_limit_oom_kill_is_reported() {
    if skip("memory_limit_oom_kill_is_reported") {
        return;
    }
    let mut hog = app(
        "hog",
        "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo ${#x}",
    );
    hog["memoryLimitBytes"] = json!(32 << 20);
    let pod = Pod::new(vec![hog]);
    let st = pod.run();
    let status = pod.status("hog");
    assert_eq!(status["oomKilled"], true, "{status}");
    assert_ne!(code(st), 0);
    pod.finish();
}

#[test]
fn cgroup_limits_are_applied_and_joined() {
    if skip("cgroup_limits_are_applied_and_joined") {
        return;
    }
    let mut limited = app(
        "limited",
        "cat /proc/self/cgroup; echo listed; exec sleep 600",
    );
    limited["memoryLimitBytes"] = json!(64 << 20);
    limited["cpuMillis"] = json!(250);
    let pod = Pod::new(vec![limited]);
    let running = pod.start();
    pod.wait_ready();
    poll_until("the app to print its cgroups", LONG, || {
        pod.read("apps/limited/log").contains("listed")
    });
    let rel = format!("/rkt/{}/limited", pod.uuid);
    let log = pod.read("apps/limited/log");
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() {
        assert!(log.contains(&format!("0::{rel}\n")), "{log}");
        let dir = root.join(rel.trim_start_matches('/'));
        assert_eq!(
            fs::read_to_string(dir.join("memory.max")).unwrap().trim(),
            "67108864"
        );
        assert_eq!(
            fs::read_to_string(dir.join("cpu.max")).unwrap().trim(),
            "25000 100000"
        );
    } else {
        for ctrl in ["memory", "cpu", "pids"] {
            assert!(
                log.lines()
                    .any(|l| l.ends_with(&format!(":{rel}")) && l.contains(ctrl)),
                "{ctrl} not joined: {log}"
            );
        }
        let mem = root.join("memory").join(rel.trim_start_matches('/'));
        let cpu = root.join("cpu").join(rel.trim_start_matches('/'));
        assert_eq!(
            fs::read_to_string(mem.join("memory.limit_in_bytes"))
                .unwrap()
                .trim(),
            "67108864"
        );
        assert_eq!(
            fs::read_to_string(cpu.join("cpu.cfs_period_us"))
                .unwrap()
                .trim(),
            "100000"
        );
        assert_eq!(
            fs::read_to_string(cpu.join("cpu.cfs_quota_us"))
                .unwrap()
                .trim(),
            "25000"
        );
    }
    let list: Vec<PathBuf> = serde_json::from_str(&pod.read("cgroups")).unwrap();
    assert!(list
        .iter()
        .any(|d| d.ends_with(format!("{}/limited", pod.uuid))));
    assert!(
        list.last().unwrap().ends_with(&pod.uuid),
        "leaves first: {list:?}"
    );
    running.signal(rustix::process::Signal::TERM);
    running.wait(&pod, LONG);
    pod.finish();
}

/// The inode of the PID namespace `pid` is in.
fn pid_ns(pid: u32) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

fn processes_in_pid_ns(ns: &str) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid_ns(pid).as_deref() == Some(ns))
        .collect()
}

#[test]
fn sigkill_of_run_takes_the_pod_down_and_releases_the_lock() {
    if skip("sigkill_of_run_takes_the_pod_down_and_releases_the_lock") {
        return;
    }
    let pod = Pod::new(vec![
        app("a", "sleep 600 & exec sleep 600"),
        app("b", "exec sleep 600"),
    ]);
    let running = pod.start();
    pod.wait_ready();
    let init: u32 = pod.read("pid").trim().parse().unwrap();
    let ns = pid_ns(init).expect("the pod's init runs");
    // The apps live in a PID namespace nested in init's, whose pid 1 is the reaper.
    let apps_ns = || {
        fs::read_to_string(format!("/proc/{init}/task/{init}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| pid_ns(p.parse().ok()?))
            .find(|n| *n != ns)
    };
    let mut apps = String::new();
    poll_until("all pod processes", LONG, || {
        apps = apps_ns().unwrap_or_default();
        // The reaper, a's two sleeps, b's sleep.
        !apps.is_empty() && processes_in_pid_ns(&apps).len() >= 4
    });

    let lock = File::open(&pod.dir).unwrap();
    let try_lock =
        || rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok();
    assert!(!try_lock(), "the pod's lock is held while it runs");
    running.signal(rustix::process::Signal::KILL);
    let st = running.wait(&pod, LONG);
    assert_eq!(st.signal(), Some(9));
    poll_until("the pod's processes to die", LONG, || {
        processes_in_pid_ns(&ns).is_empty() && processes_in_pid_ns(&apps).is_empty()
    });
    poll_until("the lock to be released", LONG, try_lock);
    pod.finish();
}

#[test]
fn interactive_app_gets_a_terminal() {
    if skip("interactive_app_gets_a_terminal") {
        return;
    }
    let mut sh = app("shell", "");
    sh["exec"] = json!(["/bin/sh"]);
    let pod = Pod::new(vec![sh]).set("interactive", json!(true));
    let mut running = pod.start_with(Stdio::piped());
    let mut stdin = running.child.stdin.take().unwrap();
    stdin
        .write_all(b"tty; [ -t 0 ] && echo stdin-is-a-tty; exit 4\n")
        .unwrap();
    let st = running.wait(&pod, LONG);
    drop(stdin);
    assert_eq!(
        code(st),
        4,
        "stdout: {}\nstderr: {}",
        pod.stdout(),
        pod.stderr()
    );
    assert!(pod.stdout().contains("stdin-is-a-tty"), "{}", pod.stdout());
    assert!(pod.read("apps/shell/log").contains("stdin-is-a-tty"));
    pod.finish();
}

#[test]
fn escape_three_times_kills_an_interactive_pod() {
    if skip("escape_three_times_kills_an_interactive_pod") {
        return;
    }
    let mut sh = app("shell", "");
    sh["exec"] = json!(["/bin/sh", "-c", "echo waiting; exec sleep 600"]);
    let pod = Pod::new(vec![sh]).set("interactive", json!(true));
    let mut running = pod.start_with(Stdio::piped());
    let mut stdin = running.child.stdin.take().unwrap();
    pod.wait_ready();
    poll_until("the app to start", LONG, || {
        pod.stdout().contains("waiting") || pod.path("apps/shell/status").exists()
    });
    assert!(
        pod.stdout().contains("waiting"),
        "the app did not start: {}{}",
        pod.stdout(),
        pod.stderr()
    );
    stdin.write_all(&[0x1d, 0x1d, 0x1d]).unwrap();
    let st = running.wait(&pod, LONG);
    assert_ne!(code(st), 0);
    assert!(
        pod.stderr().contains("^] pressed three times"),
        "{}",
        pod.stderr()
    );
    pod.finish();
}

#[test]
fn fly_flavor_runs_the_app_in_the_host_namespaces() {
    if skip("fly_flavor_runs_the_app_in_the_host_namespaces") {
        return;
    }
    let pod = Pod::new(vec![app(
        "flyer",
        "echo fly-pid=$$; [ $$ -ne 1 ] || exit 9; echo output; exit 7",
    )])
    .set("flavor", json!("fly"));
    let running = pod.start();
    let run_pid = running.pid().as_raw_nonzero().get();
    let st = running.wait(&pod, LONG);
    assert_eq!(code(st), 7, "stderr: {}", pod.stderr());
    assert_eq!(pod.status("flyer")["exitCode"], 7);
    assert!(pod.read("apps/flyer/log").contains("output"));
    assert!(pod.stdout().contains("output"));
    // `run` supervises the app itself; the app's PID is a host PID.
    assert_eq!(pod.read("pid").trim(), run_pid.to_string());
    let app_pid = pod.read("apps/flyer/pid").trim().to_string();
    assert!(pod.stdout().contains(&format!("fly-pid={app_pid}")));
    assert_eq!(pod.read("cgroups").trim(), "[]");
    pod.finish();
}

#[test]
fn fly_flavor_stops_on_sigterm() {
    if skip("fly_flavor_stops_on_sigterm") {
        return;
    }
    let pod = Pod::new(vec![app(
        "flyer",
        "trap '' TERM; echo started; while true; do sleep 0.1; done",
    )])
    .set("flavor", json!("fly"))
    .set("stopGracePeriodSecs", json!(1));
    let running = pod.start();
    pod.wait_ready();
    poll_until("the app to start", LONG, || {
        pod.stdout().contains("started")
    });
    let app_pid: i32 = pod.read("apps/flyer/pid").trim().parse().unwrap();
    running.signal(rustix::process::Signal::TERM);
    let st = running.wait(&pod, LONG);
    assert_eq!(code(st), 137);
    assert_eq!(pod.status("flyer")["signal"], 9);
    // Its process group (the loop's sleeps) is gone too.
    poll_until("the app's process group to die", LONG, || {
        rustix::process::test_kill_process_group(rustix::process::Pid::from_raw(app_pid).unwrap())
            .is_err()
    });
    pod.finish();
}

#[test]
fn bad_runtime_json_is_a_stage1_failure() {
    if skip("bad_runtime_json_is_a_stage1_failure") {
        return;
    }
    let pod = Pod::new(vec![app("a", "true")]).set("version", json!(2));
    let st = pod.run();
    assert_eq!(code(st), 254);
    assert!(pod.stderr().starts_with("stage1: "), "{}", pod.stderr());
    assert!(pod.stderr().contains("version 2"), "{}", pod.stderr());
    pod.finish();
}

// ---- Restarts, init apps and probes ----

/// Back-off that keeps restart tests fast: 1 s, 2 s, 2 s, ...
fn fast_backoff() -> Value {
    json!({"initialSecs": 1, "maxSecs": 2, "resetSecs": 5})
}

/// `app` with the pod's `data` volume at /data and `restartPolicy`.
fn app_with(name: &str, script: &str, policy: &str) -> Value {
    let mut a = app(name, script);
    a["mounts"] = json!([{"volume": "data", "path": "/data"}]);
    a["restartPolicy"] = json!(policy);
    a
}

/// A pod with an empty volume `data` (host side: `volumes/data`) and fast back-off.
fn pod_with_data(apps: Vec<Value>) -> Pod {
    Pod::new(apps)
        .set(
            "volumes",
            json!([{"name": "data", "kind": "empty", "mode": "0777"}]),
        )
        .set("backoff", fast_backoff())
        .set("stopGracePeriodSecs", json!(2))
}

fn time_of(status: &Value, key: &str) -> std::time::SystemTime {
    humantime::parse_rfc3339(status[key].as_str().unwrap()).unwrap()
}

/// The app's status, once it exists and parses.
fn try_status(pod: &Pod, app: &str) -> Option<Value> {
    serde_json::from_str(&pod.read(&format!("apps/{app}/status"))).ok()
}

#[test]
fn on_failure_app_is_restarted_until_it_succeeds() {
    if skip("on_failure_app_is_restarted_until_it_succeeds") {
        return;
    }
    let pod = pod_with_data(vec![app_with(
        "flaky",
        "n=$(cat /data/count 2>/dev/null || echo 0); n=$((n+1)); echo $n >/data/count; \
         echo run-$n >>/tmp/runs; [ $n -ge 3 ] || exit 7",
        "OnFailure",
    )]);
    assert_eq!(code(pod.run()), 0, "stderr: {}", pod.stderr());
    let status = pod.status("flaky");
    assert_eq!(status["exitCode"], 0, "{status}");
    assert_eq!(status["restarts"], 2, "{status}");
    assert_eq!(pod.read("volumes/data/count").trim(), "3");
    // The same upper dir: every run's writes to the image's /tmp are kept.
    assert_eq!(
        pod.read("apps/flaky/upper/tmp/runs"),
        "run-1\nrun-2\nrun-3\n"
    );
    assert!(!pod.path("apps/flaky/waiting").exists());
    pod.finish();
}

#[test]
fn always_app_is_restarted_after_exit_0() {
    if skip("always_app_is_restarted_after_exit_0") {
        return;
    }
    let pod = pod_with_data(vec![app_with(
        "again",
        "echo run >>/data/runs; exit 0",
        "Always",
    )]);
    let running = pod.start();
    poll_until("three runs", LONG, || {
        pod.read("volumes/data/runs").lines().count() >= 3
    });
    poll_until("the status of the second restart", LONG, || {
        try_status(&pod, "again").is_some_and(|s| s["restarts"].as_u64() >= Some(2))
    });
    let status = pod.status("again");
    assert_eq!(status["exitCode"], 0, "{status}");
    running.signal(rustix::process::Signal::TERM);
    let c = code(running.wait(&pod, LONG));
    // Stopped while waiting to restart (0, its last exit) or while running (SIGTERM).
    assert!(c == 0 || c == 143, "exit code {c}: {}", pod.stderr());
    assert!(!pod.path("apps/again/waiting").exists());
    pod.finish();
}

#[test]
fn never_policy_runs_the_app_once() {
    if skip("never_policy_runs_the_app_once") {
        return;
    }
    let pod = pod_with_data(vec![app_with(
        "once",
        "echo run >>/data/runs; exit 3",
        "Never",
    )]);
    assert_eq!(code(pod.run()), 3, "stderr: {}", pod.stderr());
    assert_eq!(pod.read("volumes/data/runs"), "run\n");
    assert_eq!(pod.status("once")["restarts"], 0);
    assert!(!pod.path("apps/once/waiting").exists());
    pod.finish();
}

#[test]
fn back_off_delays_grow() {
    if skip("back_off_delays_grow") {
        return;
    }
    let pod = pod_with_data(vec![app_with("crasher", "exit 1", "OnFailure")]);
    let running = pod.start();
    // Each status stays at least a second (the back-off): polling sees every one.
    let mut seen: Vec<Value> = Vec::new();
    poll_until("three exits", LONG, || {
        if let Some(s) = try_status(&pod, "crasher") {
            let n = s["restarts"].as_u64().unwrap() as usize;
            if n == seen.len() {
                seen.push(s);
            }
        }
        seen.len() >= 3
    });
    running.signal(rustix::process::Signal::TERM);
    assert_eq!(code(running.wait(&pod, LONG)), 1, "{}", pod.stderr());
    let gap = |i: usize| {
        time_of(&seen[i + 1], "startedAt")
            .duration_since(time_of(&seen[i], "finishedAt"))
            .unwrap()
    };
    let (first, second) = (gap(0), gap(1));
    // Millisecond timestamps: allow for the rounding.
    assert!(first >= Duration::from_millis(990), "first gap {first:?}");
    assert!(
        second >= Duration::from_millis(1990),
        "second gap {second:?} (doubled)"
    );
    assert!(second >= first, "{first:?} then {second:?}");
    pod.finish();
}

#[test]
fn sigterm_during_back_off_stops_the_pod_promptly() {
    if skip("sigterm_during_back_off_stops_the_pod_promptly") {
        return;
    }
    let pod = pod_with_data(vec![app_with("crasher", "exit 5", "Always")]).set(
        "backoff",
        json!({"initialSecs": 60, "maxSecs": 120, "resetSecs": 600}),
    );
    let running = pod.start();
    poll_until("the app to wait for its restart", LONG, || {
        pod.path("apps/crasher/waiting").exists()
    });
    let waiting: Value = serde_json::from_str(&pod.read("apps/crasher/waiting")).unwrap();
    assert_eq!(waiting["reason"], "CrashLoopBackOff", "{waiting}");
    let until = time_of(&waiting, "until");
    let ahead = until
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(ahead >= Duration::from_secs(50), "until is {ahead:?} ahead");
    let t0 = Instant::now();
    running.signal(rustix::process::Signal::TERM);
    let st = running.wait(&pod, LONG);
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert_eq!(code(st), 5, "{}", pod.stderr());
    assert!(!pod.path("apps/crasher/waiting").exists());
    assert_eq!(pod.status("crasher")["restarts"], 0);
    pod.finish();
}

fn init_app(name: &str, script: &str, policy: &str) -> Value {
    let mut a = app_with(name, script, policy);
    a["init"] = json!(true);
    a
}

#[test]
fn init_apps_run_in_order_before_the_others() {
    if skip("init_apps_run_in_order_before_the_others") {
        return;
    }
    // The first init app is the slow one: run side by side, the second would write
    // first. The regular apps check that both init apps finished.
    let check = "[ \"$(cat /data/order)\" = \"$(printf 'init-1\\ninit-2')\" ] || exit 9";
    let pod = pod_with_data(vec![
        app_with("main", &format!("{check}; echo main >>/data/main"), "Never"),
        init_app("init-1", "sleep 0.5; echo init-1 >>/data/order", "Never"),
        init_app("init-2", "echo init-2 >>/data/order", "Never"),
        app_with("side", &format!("{check}; echo side >>/data/main"), "Never"),
    ]);
    assert_eq!(code(pod.run()), 0, "stderr: {}", pod.stderr());
    assert_eq!(pod.read("volumes/data/order"), "init-1\ninit-2\n");
    let main = pod.read("volumes/data/main");
    assert!(main.contains("main\n") && main.contains("side\n"), "{main}");
    for a in ["main", "init-1", "init-2", "side"] {
        assert_eq!(pod.status(a)["exitCode"], 0, "{a}");
    }
    // Each init app ran to completion before the next started.
    assert!(
        time_of(&pod.status("init-2"), "startedAt") >= time_of(&pod.status("init-1"), "finishedAt")
    );
    assert!(
        time_of(&pod.status("main"), "startedAt") >= time_of(&pod.status("init-2"), "finishedAt")
    );
    assert!(pod.path("ready").exists());
    pod.finish();
}

#[test]
fn failing_init_app_with_never_fails_the_pod() {
    if skip("failing_init_app_with_never_fails_the_pod") {
        return;
    }
    let pod = pod_with_data(vec![
        init_app("init-1", "echo init-1 >>/data/order; exit 4", "Never"),
        init_app("init-2", "echo init-2 >>/data/order", "Never"),
        app_with("main", "echo main >>/data/order", "Never"),
    ]);
    assert_eq!(code(pod.run()), 4, "stderr: {}", pod.stderr());
    assert_eq!(pod.read("volumes/data/order"), "init-1\n");
    assert_eq!(pod.status("init-1")["exitCode"], 4);
    for a in ["init-2", "main"] {
        assert!(!pod.path(&format!("apps/{a}/pid")).exists(), "{a} started");
        assert!(!pod.path(&format!("apps/{a}/status")).exists(), "{a} ran");
    }
    assert!(!pod.path("ready").exists());
    pod.finish();
}

#[test]
fn failing_init_app_is_retried_with_on_failure() {
    if skip("failing_init_app_is_retried_with_on_failure") {
        return;
    }
    let pod = pod_with_data(vec![
        init_app(
            "setup",
            "n=$(cat /data/count 2>/dev/null || echo 0); n=$((n+1)); echo $n >/data/count; \
             [ $n -ge 2 ] || exit 6; echo done >/data/setup",
            "OnFailure",
        ),
        app_with("main", "test -e /data/setup || exit 9", "OnFailure"),
    ]);
    assert_eq!(code(pod.run()), 0, "stderr: {}", pod.stderr());
    let setup = pod.status("setup");
    assert_eq!(
        (setup["exitCode"].clone(), setup["restarts"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(pod.status("main")["exitCode"], 0);
    assert_eq!(pod.status("main")["restarts"], 0);
    pod.finish();
}

fn probe_json(action: Value, extra: Value) -> Value {
    let mut p = json!({
        "action": action,
        "initialDelaySecs": 0,
        "periodSecs": 1,
        "timeoutSecs": 1,
        "successThreshold": 1,
        "failureThreshold": 1,
    });
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

fn probe_file(pod: &Pod, app: &str) -> Option<Value> {
    serde_json::from_str(&pod.read(&format!("apps/{app}/probe"))).ok()
}

#[test]
fn failing_tcp_liveness_probe_restarts_the_app() {
    if skip("failing_tcp_liveness_probe_restarts_the_app") {
        return;
    }
    let mut a = app_with("deaf", "exec sleep 600", "Always");
    a["livenessProbe"] = probe_json(json!({"type": "tcpSocket", "port": 8081}), json!({}));
    // The pod's own network namespace: nothing listens on 8081 in it.
    let pod = pod_with_data(vec![a]).set("privateNetwork", json!(true));
    let running = pod.start();
    poll_until("the second liveness kill", LONG, || {
        try_status(&pod, "deaf").is_some_and(|s| s["restarts"].as_u64() >= Some(1))
    });
    let status = pod.status("deaf");
    assert_eq!(status["signal"], 15, "{status}");
    assert_eq!(status["exitCode"], 143, "{status}");
    let probe = probe_file(&pod, "deaf").unwrap();
    assert_eq!(probe["liveness"]["ok"], false, "{probe}");
    let message = probe["liveness"]["message"].as_str().unwrap();
    assert!(
        message.contains("cannot connect to 127.0.0.1:8081"),
        "{probe}"
    );
    assert!(
        pod.stderr().contains("liveness probe failed"),
        "{}",
        pod.stderr()
    );
    running.signal(rustix::process::Signal::TERM);
    running.wait(&pod, LONG);
    pod.finish();
}

#[test]
fn exec_liveness_probe_runs_in_the_app() {
    if skip("exec_liveness_probe_runs_in_the_app") {
        return;
    }
    // Healthy for about three seconds, then the file the probe looks for (in the app's
    // own /tmp, not visible from outside its mount namespace) goes away.
    let mut a = app_with(
        "sick",
        "touch /tmp/healthy; echo run >>/data/runs; sleep 3; rm /tmp/healthy; exec sleep 600",
        "OnFailure",
    );
    // Two failures in a row kill it: one early probe on a slow start does not.
    a["livenessProbe"] = probe_json(
        json!({"type": "exec", "command": ["/bin/sh", "-c", "test -e /tmp/healthy"]}),
        json!({"initialDelaySecs": 1, "failureThreshold": 2}),
    );
    let pod = pod_with_data(vec![a]);
    let running = pod.start();
    poll_until("a passing liveness probe", LONG, || {
        probe_file(&pod, "sick").is_some_and(|p| p["liveness"]["ok"] == true)
    });
    assert!(try_status(&pod, "sick").is_none(), "killed while healthy");
    poll_until("the liveness kill", LONG, || {
        try_status(&pod, "sick").is_some()
    });
    let status = pod.status("sick");
    assert_eq!(status["exitCode"], 143, "{status}");
    let probe = probe_file(&pod, "sick").unwrap();
    assert_eq!(probe["liveness"]["ok"], false, "{probe}");
    assert_eq!(probe["liveness"]["message"], "exit status 1", "{probe}");
    // Killed by SIGTERM counts as a failure: OnFailure starts it again.
    poll_until("the restart", LONG, || {
        pod.read("volumes/data/runs").lines().count() >= 2
    });
    running.signal(rustix::process::Signal::TERM);
    running.wait(&pod, LONG);
    pod.finish();
}

#[test]
fn http_readiness_probe_maintains_the_ready_file() {
    if skip("http_readiness_probe_maintains_the_ready_file") {
        return;
    }
    let mut web = app_with("web", "exec httpd -f -p 8080 -h /data", "Always");
    web["readinessProbe"] = probe_json(
        json!({"type": "httpGet", "path": "/ready.html", "port": 8080}),
        json!({}),
    );
    let side = app_with("side", "exec sleep 600", "Always");
    let pod = pod_with_data(vec![web, side]).set("privateNetwork", json!(true));
    let running = pod.start();
    pod.wait_ready();
    // Without a readiness probe: ready once started.
    poll_until("side to be ready", LONG, || {
        pod.path("apps/side/ready").exists()
    });
    // httpd is up (so its volume is mounted) and answers 404 for the missing file.
    poll_until("a readiness probe answered 404", LONG, || {
        probe_file(&pod, "web").is_some_and(|p| {
            p["readiness"]["ok"] == false
                && p["readiness"]["message"]
                    .as_str()
                    .is_some_and(|m| m.ends_with("404 Not Found"))
        })
    });
    assert!(!pod.path("apps/web/ready").exists());

    fs::write(pod.path("volumes/data/ready.html"), "ok\n").unwrap();
    poll_until("web to be ready", LONG, || {
        pod.path("apps/web/ready").exists()
    });
    let probe = probe_file(&pod, "web").unwrap();
    assert_eq!(probe["readiness"]["ok"], true, "{probe}");
    assert!(
        probe["readiness"]["message"]
            .as_str()
            .unwrap()
            .contains(" 200 "),
        "{probe}"
    );

    fs::remove_file(pod.path("volumes/data/ready.html")).unwrap();
    poll_until("web to be unready", LONG, || {
        !pod.path("apps/web/ready").exists()
    });
    assert!(pod.path("apps/side/ready").exists());
    // Readiness never restarts anything.
    assert!(try_status(&pod, "web").is_none());

    running.signal(rustix::process::Signal::TERM);
    running.wait(&pod, LONG);
    assert!(!pod.path("apps/side/ready").exists());
    pod.finish();
}
