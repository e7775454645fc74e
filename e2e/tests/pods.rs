//! End-to-end: real pods through `rkt run` and stage1, checked from inside with the
//! static probe binary and from outside through the pod directory, /proc, mounts and
//! cgroups. Needs root (namespaces, overlayfs, cgroups).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use e2e::rkt::{is_root, probe_aci, Fetched as Setup, Rkt};
use serde_json::Value;

const NAME: &str = "example.com/probe";

macro_rules! need_root {
    ($name:expr) => {
        if !is_root() {
            eprintln!("SKIPPED {}: needs root", $name);
            return;
        }
    };
}

fn setup() -> Setup {
    let rkt = Rkt::new();
    let aci = probe_aci(&rkt.scratch(), NAME);
    Setup::new(rkt, aci)
}

fn poll(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pods_json(rkt: &Rkt) -> Vec<Value> {
    serde_json::from_str(&rkt.ok(["list", "--format=json"])).unwrap()
}

fn only_pod(rkt: &Rkt) -> Value {
    let pods = pods_json(rkt);
    assert_eq!(pods.len(), 1, "{pods:?}");
    pods[0].clone()
}

/// The probe's JSON report: the last line of output that parses as an object.
fn report(out: &str) -> Value {
    out.lines()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_object)
        })
        .unwrap_or_else(|| panic!("no probe report in:\n{out}"))
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

fn cgroup_dirs_of(uuid: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let p = entry.path().join("rkt").join(uuid);
        if p.exists() {
            found.push(p);
        }
    }
    let unified = Path::new("/sys/fs/cgroup/rkt").join(uuid);
    if unified.exists() {
        found.push(unified);
    }
    found
}

/// A running pod started in the background; killed (by PID) if the test fails.
struct Background {
    child: Option<Child>,
}

impl Background {
    fn start(rkt: &Rkt, args: &[&str]) -> Background {
        let child = rkt
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Background { child: Some(child) }
    }
    fn wait(mut self) -> (Option<i32>, String, String) {
        let out = self.child.take().unwrap().wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_running(rkt: &Rkt) -> String {
    let mut uuid = String::new();
    poll(
        "a pod to run",
        Duration::from_secs(30),
        || match pods_json(rkt).iter().find(|p| p["state"] == "running") {
            Some(p) => {
                uuid = p["uuid"].as_str().unwrap().to_string();
                true
            }
            None => false,
        },
    );
    rkt.ok(["status", "--wait-ready=30s", &uuid]);
    uuid
}

#[test]
fn isolation_seen_from_inside() {
    need_root!("isolation_seen_from_inside");
    let s = setup();
    let rkt = &s.rkt;
    let out = rkt.ok(["run", "--net=host", NAME, "--exec=/probe"]);
    let r = report(&out);
    let pod = only_pod(rkt);
    let uuid = pod["uuid"].as_str().unwrap();

    assert_ne!(r["pid"], 1, "the app is not the pod's pid 1");
    assert_eq!(
        r["netDevs"].as_array().unwrap().len(),
        fs::read_to_string("/proc/net/dev").unwrap().lines().count() - 2,
        "--net=host shares the host's network namespace"
    );
    assert_eq!(r["pid1Comm"], "stage1", "stage1 is pid 1 of the pod");
    assert!(
        r["visiblePids"].as_u64().unwrap() <= 3,
        "own PID namespace: {}",
        r["visiblePids"]
    );
    assert_eq!(r["hostname"], format!("rkt-{uuid}"));
    assert_eq!(r["noNewPrivs"], "1");
    assert_ne!(r["kcore"], "readable", "/proc/kcore is masked");
    assert_eq!(r["sysWritable"], false);
    assert_eq!(r["procSysWritable"], false);
    // Docker's default set: chown dac_override fowner fsetid kill setgid setuid setpcap
    // net_bind_service net_raw sys_chroot mknod audit_write setfcap.
    assert_eq!(r["capEff"], "00000000a80425fb");
    assert_eq!(r["capBnd"], "00000000a80425fb");
    let mounts: Vec<&str> = r["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["target"].as_str().unwrap())
        .collect();
    for m in [
        "/",
        "/proc",
        "/sys",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/etc/hosts",
        "/etc/resolv.conf",
    ] {
        assert!(mounts.contains(&m), "{m} not mounted: {mounts:?}");
    }
    let root = r["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["target"] == "/")
        .unwrap();
    assert_eq!(root["fstype"], "overlay");
    let dev: Vec<&str> = r["dev"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    for d in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm",
    ] {
        assert!(dev.contains(&d), "/dev/{d} missing: {dev:?}");
    }
    assert!(r["hosts"].as_str().unwrap().contains("localhost"));
    assert_eq!(r["env"]["AC_APP_NAME"], "probe");
    assert!(r["env"]["PATH"].as_str().unwrap().contains("/bin"));
    // Nothing of the pod is mounted in the host's mount namespace.
    assert!(
        mounts_under(&rkt.data_dir()).is_empty(),
        "{:?}",
        mounts_under(&rkt.data_dir())
    );
}

#[test]
fn exit_codes_env_user_and_working_dir() {
    need_root!("exit_codes_env_user_and_working_dir");
    let s = setup();
    let rkt = &s.rkt;
    let res = rkt.run([
        "run",
        "--net=host",
        NAME,
        "--exec=/probe",
        "--",
        "exit",
        "42",
    ]);
    assert_eq!(res.code(), Some(42), "{}", res.stderr());
    let pod = only_pod(rkt);
    assert_eq!(pod["apps"][0]["exitCode"], 42);
    let status = rkt.ok(["status", pod["uuid"].as_str().unwrap()]);
    assert!(
        status.contains("app-probe=42") && status.contains("state=exited"),
        "{status}"
    );

    let out = rkt.ok([
        "run",
        "--net=host",
        "--set-env=POD=all",
        NAME,
        "--exec=/probe",
        "--set-env=FOO=bar",
        "--user=65534",
        "--group=65534",
        "--working-dir=/tmp",
    ]);
    let r = report(&out);
    assert_eq!(r["env"]["FOO"], "bar");
    assert_eq!(r["env"]["POD"], "all");
    assert!(
        r["uid"].as_str().unwrap().starts_with("65534"),
        "{}",
        r["uid"]
    );
    assert!(
        r["gid"].as_str().unwrap().starts_with("65534"),
        "{}",
        r["gid"]
    );
    assert_eq!(r["cwd"], "/tmp");
    assert_eq!(
        r["capEff"], "0000000000000000",
        "non-root apps hold no capabilities"
    );

    // First failing app's code wins; 0 when all succeed.
    let res = rkt.run([
        "run",
        "--net=host",
        NAME,
        "--name=a",
        "--exec=/probe",
        "--",
        "exit",
        "0",
        "---",
        NAME,
        "--name=b",
        "--exec=/probe",
        "--",
        "exit",
        "7",
    ]);
    assert_eq!(res.code(), Some(7), "{}", res.stderr());
}

#[test]
fn apps_share_pid_ipc_uts_but_not_roots() {
    need_root!("apps_share_pid_ipc_uts_but_not_roots");
    let s = setup();
    let rkt = &s.rkt;
    // a writes a marker in its own root and waits for b to finish looking; b checks it
    // cannot see a's file but can see a's process, and shares the hostname.
    let a = "touch /only-in-a; hostname > /dev/null; i=0; while [ ! -e /proc/$(pidof probe-b-done 2>/dev/null || echo none) ] && [ $i -lt 300 ]; do i=$((i+1)); usleep 20000; done; exit 0";
    let b = "i=0; until pidof sh >/dev/null && [ $(pidof sh | wc -w) -ge 2 ]; do i=$((i+1)); [ $i -gt 500 ] && exit 9; usleep 20000; done; \
             [ -e /only-in-a ] && exit 3; hostname; ls /proc | grep -c '^[0-9]'; exit 0";
    let res = rkt.run([
        "run",
        "--net=host",
        NAME,
        "--name=a",
        "--exec=/bin/sh",
        "--",
        "-c",
        a,
        "---",
        NAME,
        "--name=b",
        "--exec=/bin/sh",
        "--",
        "-c",
        b,
    ]);
    assert_eq!(res.code(), Some(0), "{}\n{}", res.stdout(), res.stderr());
    let pod = only_pod(rkt);
    let uuid = pod["uuid"].as_str().unwrap();
    let logs_b = rkt.ok(["logs", "--app=b", uuid]);
    assert!(
        logs_b.contains(&format!("rkt-{uuid}")),
        "same UTS namespace: {logs_b}"
    );
    let logs_a = rkt.ok(["logs", "--app=a", uuid]);
    assert!(!logs_a.contains(&format!("rkt-{uuid}")) || logs_a.is_empty());
}

#[test]
fn volumes_host_empty_and_read_only() {
    need_root!("volumes_host_empty_and_read_only");
    let s = setup();
    let rkt = &s.rkt;
    let host = rkt.scratch().join("hostdir");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("from-host"), "hello volume").unwrap();
    let vol_rw = format!("data,kind=host,source={}", host.display());
    let script =
        "cat /data/from-host && echo written > /data/from-pod && echo shared > /scratch/x && \
                  if echo no > /ro/nope 2>/dev/null; then exit 5; fi; cat /scratch/x";
    let res = rkt.run([
        "run",
        "--net=host",
        "--volume",
        &vol_rw,
        "--volume",
        &format!("ro,kind=host,source={},readOnly=true", host.display()),
        "--volume",
        "scratch,kind=empty,mode=0700",
        NAME,
        "--mount=volume=data,target=/data",
        "--mount=volume=ro,target=/ro",
        "--mount=volume=scratch,target=/scratch",
        "--exec=/bin/sh",
        "--",
        "-c",
        script,
    ]);
    assert_eq!(res.code(), Some(0), "{}\n{}", res.stdout(), res.stderr());
    assert!(
        res.stdout().contains("hello volume") && res.stdout().contains("shared"),
        "{}",
        res.stdout()
    );
    assert_eq!(
        fs::read_to_string(host.join("from-pod")).unwrap(),
        "written\n"
    );
    assert!(!host.join("nope").exists(), "read-only volume was written");

    // A volume whose source does not exist: clear error, exit 254, no pod left running.
    rkt.run([
        "run",
        "--net=host",
        "--volume",
        "v,kind=host,source=/nonexistent/src",
        NAME,
        "--mount=volume=v,target=/v",
    ])
    .fails_with(254, &["/nonexistent/src"]);
}

#[test]
fn memory_limit_kills_a_hog_and_records_oom() {
    need_root!("memory_limit_kills_a_hog_and_records_oom");
    let s = setup();
    let rkt = &s.rkt;
    let res = rkt.run([
        "run",
        "--net=host",
        NAME,
        "--memory=32Mi",
        "--exec=/probe",
        "--",
        "alloc",
        "256",
    ]);
    assert_eq!(res.code(), Some(137), "{}\n{}", res.stdout(), res.stderr());
    let pod = only_pod(rkt);
    assert_eq!(pod["apps"][0]["oomKilled"], true, "{pod}");
    // Within the limit it runs fine.
    let res = rkt.run([
        "run",
        "--net=host",
        NAME,
        "--memory=128Mi",
        "--cpu=500m",
        "--exec=/probe",
        "--",
        "alloc",
        "16",
    ]);
    assert_eq!(res.code(), Some(0), "{}", res.stderr());
}

#[test]
fn limits_are_written_to_the_pod_cgroups() {
    need_root!("limits_are_written_to_the_pod_cgroups");
    let s = setup();
    let rkt = &s.rkt;
    let bg = Background::start(
        rkt,
        &[
            "run",
            "--net=host",
            NAME,
            "--memory=64Mi",
            "--cpu=250m",
            "--exec=/probe",
            "--",
            "sleep",
            "600",
        ],
    );
    let uuid = wait_running(rkt);
    let dirs = cgroup_dirs_of(&uuid);
    assert!(!dirs.is_empty(), "no cgroups for pod {uuid}");
    let v1_mem = Path::new("/sys/fs/cgroup/memory/rkt")
        .join(&uuid)
        .join("probe/memory.limit_in_bytes");
    let v2_mem = Path::new("/sys/fs/cgroup/rkt")
        .join(&uuid)
        .join("probe/memory.max");
    let mem = fs::read_to_string(&v1_mem)
        .or_else(|_| fs::read_to_string(&v2_mem))
        .expect("memory limit file");
    assert_eq!(mem.trim(), (64u64 << 20).to_string());
    rkt.ok(["stop", "--force", &uuid]);
    let (code, _, _) = bg.wait();
    assert_eq!(code, Some(137));
    rkt.ok(["gc", "--grace-period=0s"]);
    assert!(
        cgroup_dirs_of(&uuid).is_empty(),
        "cgroups left: {:?}",
        cgroup_dirs_of(&uuid)
    );
}

#[test]
fn stop_with_grace_period_and_force_then_gc_leaves_nothing() {
    need_root!("stop_with_grace_period_and_force_then_gc_leaves_nothing");
    let s = setup();
    let rkt = &s.rkt;

    // A well-behaved app exits on SIGTERM.
    let bg = Background::start(
        rkt,
        &[
            "run",
            "--net=host",
            NAME,
            "--exec=/probe",
            "--",
            "sleep",
            "600",
        ],
    );
    let uuid = wait_running(rkt);
    let pid: i32 = fs::read_to_string(rkt.data_dir().join("pods/run").join(&uuid).join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let started = Instant::now();
    rkt.ok(["stop", &uuid]);
    let (code, _, _) = bg.wait();
    assert_eq!(code, Some(143), "SIGTERM exit recorded");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "no grace wait for a cooperative app"
    );
    let status = rkt.ok(["status", &uuid]);
    assert!(status.contains("state=exited"), "{status}");

    // An app that ignores SIGTERM is killed after the grace period.
    let bg = Background::start(
        rkt,
        &[
            "run",
            "--net=host",
            "--stop-grace-period=1s",
            NAME,
            "--exec=/bin/sh",
            "--",
            "-c",
            "trap '' TERM; echo trapped; while :; do usleep 100000; done",
        ],
    );
    let uuid2 = wait_running(rkt);
    // Started is not enough: SIGTERM must come after the shell ignores it.
    poll("the app to ignore SIGTERM", Duration::from_secs(30), || {
        rkt.ok(["logs", &uuid2]).contains("trapped")
    });
    rkt.ok(["stop", &uuid2]);
    let (code, _, _) = bg.wait();
    assert_eq!(code, Some(137), "killed after the grace period");

    // --force kills at once.
    let bg = Background::start(
        rkt,
        &[
            "run",
            "--net=host",
            NAME,
            "--exec=/bin/sh",
            "--",
            "-c",
            "trap '' TERM; echo trapped; while :; do usleep 100000; done",
        ],
    );
    let uuid3 = wait_running(rkt);
    rkt.ok(["stop", "--force", &uuid3]);
    let (code, _, _) = bg.wait();
    assert_eq!(code, Some(137));

    // gc after the grace period: nothing left.
    rkt.ok(["gc", "--grace-period=0s"]);
    assert!(pods_json(rkt).is_empty(), "{:?}", pods_json(rkt));
    for u in [&uuid, &uuid2, &uuid3] {
        assert!(cgroup_dirs_of(u).is_empty(), "cgroups of {u} left");
    }
    assert!(mounts_under(&rkt.data_dir()).is_empty());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pod pid 1 still alive"
    );
}

#[test]
fn killed_stage1_is_seen_as_exited_and_collected() {
    need_root!("killed_stage1_is_seen_as_exited_and_collected");
    let s = setup();
    let rkt = &s.rkt;
    let mut bg = Background::start(
        rkt,
        &[
            "run",
            "--net=host",
            NAME,
            "--exec=/probe",
            "--",
            "sleep",
            "600",
        ],
    );
    let uuid = wait_running(rkt);
    let pid_file = rkt.data_dir().join("pods/run").join(&uuid).join("pid");
    let pod_pid1: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SIGKILL stage1 (the `rkt run` process, which became stage1).
    let stage1 = bg.child.as_ref().unwrap().id() as i32;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(stage1).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let _ = bg.child.take().unwrap().wait();
    poll(
        "the pod to be seen as exited",
        Duration::from_secs(20),
        || only_pod(rkt)["state"] == "exited",
    );
    poll(
        "the pod's processes to die",
        Duration::from_secs(20),
        || !Path::new(&format!("/proc/{pod_pid1}")).exists(),
    );
    rkt.ok(["gc", "--grace-period=0s"]);
    assert!(pods_json(rkt).is_empty());
    assert!(cgroup_dirs_of(&uuid).is_empty(), "cgroups left");
    assert!(mounts_under(&rkt.data_dir()).is_empty());
}

#[test]
fn enter_runs_with_the_apps_isolation() {
    need_root!("enter_runs_with_the_apps_isolation");
    let s = setup();
    let rkt = &s.rkt;
    let _bg = Background::start(
        rkt,
        &[
            "run",
            "--net=host",
            NAME,
            "--caps-remove=CAP_CHOWN",
            "--exec=/probe",
            "--",
            "sleep",
            "600",
        ],
    );
    let uuid = wait_running(rkt);
    let r = report(&rkt.ok(["enter", &uuid, "/probe"]));
    assert_eq!(r["hostname"], format!("rkt-{uuid}"));
    assert_eq!(r["noNewPrivs"], "1");
    assert_eq!(
        r["capEff"], "00000000a80425fa",
        "the app's capabilities, CAP_CHOWN removed"
    );
    assert_ne!(r["kcore"], "readable", "/proc/kcore stays masked");
    let res = rkt.run(["enter", &uuid, "/bin/sh", "-c", "exit 4"]);
    assert_eq!(res.code(), Some(4));
    rkt.ok(["stop", "--force", &uuid]);
}

#[test]
fn prepare_run_prepared_cat_manifest_rm() {
    need_root!("prepare_run_prepared_cat_manifest_rm");
    let s = setup();
    let rkt = &s.rkt;
    let uuid = rkt
        .ok([
            "prepare",
            "--quiet",
            NAME,
            "--exec=/probe",
            "--",
            "exit",
            "0",
        ])
        .trim()
        .to_string();
    assert_eq!(only_pod(rkt)["state"], "prepared");
    let manifest: Value = serde_json::from_str(&rkt.ok(["cat-manifest", &uuid[..8]])).unwrap();
    assert_eq!(manifest["acKind"], "PodManifest");
    assert_eq!(manifest["apps"][0]["image"]["name"], NAME);
    rkt.ok(["run-prepared", "--net=host", &uuid]);
    assert_eq!(only_pod(rkt)["state"], "exited");
    rkt.ok(["rm", &uuid]);
    assert!(pods_json(rkt).is_empty());
}

#[test]
fn net_none_has_only_loopback_and_net_host_sees_the_host() {
    need_root!("net_none_has_only_loopback_and_net_host_sees_the_host");
    let s = setup();
    let rkt = &s.rkt;
    let r = report(&rkt.ok(["run", "--net=none", NAME, "--exec=/probe"]));
    assert_eq!(r["netDevs"], serde_json::json!(["lo"]), "{}", r["netDevs"]);
    let host_devs = fs::read_to_string("/proc/net/dev").unwrap().lines().count() - 2;
    let r = report(&rkt.ok(["run", "--net=host", NAME, "--exec=/probe"]));
    assert_eq!(
        r["netDevs"].as_array().unwrap().len(),
        host_devs,
        "{}",
        r["netDevs"]
    );
    // lo is up inside --net=none: a listener on 127.0.0.1 is reachable.
    let res = rkt.run([
        "run","--net=none", NAME, "--exec=/bin/sh", "--", "-c",
        "nc -l -p 7000 -e echo pong & i=0; until echo ping | nc 127.0.0.1 7000 | grep -q pong; do i=$((i+1)); [ $i -gt 100 ] && exit 1; usleep 20000; done",
    ]);
    assert_eq!(res.code(), Some(0), "{}", res.stderr());
}

#[test]
fn fly_flavor_uses_the_host_namespaces() {
    need_root!("fly_flavor_uses_the_host_namespaces");
    let s = setup();
    let rkt = &s.rkt;
    let out = rkt.ok([
        "run",
        "--net=host",
        "--stage1-name=fly",
        NAME,
        "--exec=/probe",
    ]);
    let r = report(&out);
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(r["hostname"], host.trim(), "host UTS namespace");
    assert!(r["visiblePids"].as_u64().unwrap() > 5, "host PID namespace");
}

#[test]
fn bad_input_exits_254_and_leaves_no_running_pod() {
    need_root!("bad_input_exits_254_and_leaves_no_running_pod");
    let s = setup();
    let rkt = &s.rkt;
    rkt.run([
        "run",
        "--net=host",
        "--pull-policy=never",
        "example.com/unknown:1.0",
    ])
    .fails_with(254, &["example.com/unknown"]);
    rkt.run(["run", "--net=host", NAME, "--exec=/bin/nothing-here"])
        .fails_with(254, &["/bin/nothing-here"]);
    rkt.run(["run", "--net=host", NAME, "--memory=lots"])
        .fails_with(254, &["lots"]);
    rkt.run(["run", "--net=host", NAME, "--bogus-flag=1"])
        .fails_with(254, &["--bogus-flag"]);
    rkt.run(["run", "--net=weird", NAME])
        .fails_with(254, &["weird"]);
    let run_dir = rkt.data_dir().join("pods/run");
    let left = fs::read_dir(&run_dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "pods left in run/");
    let _ = &s.aci;
}
