//! The security baseline, tried from inside real pods: the static probe's `escape`
//! attempts (see `e2e/src/bin/rkt-probe.rs`) must all be blocked, and where a knob
//! lifts a barrier (a kept capability, `--seccomp=unconfined`) the same attempt must
//! get through, so each test can fail. Every test prints its figures
//! ("escapes attempted: N, blocked: N") on stderr, past the test harness's capture,
//! and `escape_suite` prints the whole table. Needs root. Pods use `--net=none`.

use std::io::Write;
use std::path::Path;
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

/// One attempt as the probe reported it.
#[derive(Debug, Clone)]
struct Attempt {
    name: String,
    blocked: bool,
    errno: Option<i64>,
    detail: String,
}

/// The probe's report: the attempts and the `Seccomp:` mode of its process.
struct Report {
    attempts: Vec<Attempt>,
    seccomp: String,
}

impl Report {
    fn get(&self, name: &str) -> &Attempt {
        self.attempts
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("no attempt {name} in {:?}", self.attempts))
    }
}

fn parse(out: &str) -> Report {
    let v: Value = out
        .lines()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_object)
        })
        .unwrap_or_else(|| panic!("no probe report in:\n{out}"));
    let attempts = v["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("no attempts in {v}"))
        .iter()
        .map(|a| Attempt {
            name: a["name"].as_str().unwrap_or_default().to_string(),
            blocked: a["blocked"].as_bool().unwrap_or(false),
            errno: a["errno"].as_i64(),
            detail: a["detail"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    Report {
        attempts,
        seccomp: v["seccomp"].as_str().unwrap_or_default().to_string(),
    }
}

/// `rkt run --net=none [POD FLAGS] probe --exec=/probe [APP FLAGS] -- escape NAMES`.
fn escape(rkt: &Rkt, pod_flags: &[&str], app_flags: &[&str], names: &[&str]) -> Report {
    let mut args = vec!["run", "--net=none"];
    args.extend(pod_flags);
    args.extend([NAME, "--exec=/probe"]);
    args.extend(app_flags);
    args.extend(["--", "escape"]);
    args.extend(names);
    parse(&rkt.ok(args))
}

/// Prints figures past the harness's output capture, so CI logs show them.
fn tally(test: &str, attempts: &[&Attempt]) {
    let blocked = attempts.iter().filter(|a| a.blocked).count();
    let _ = writeln!(
        std::io::stderr(),
        "security {test}: escapes attempted: {}, blocked: {blocked}",
        attempts.len()
    );
}

fn assert_blocked(test: &str, report: &Report, names: &[&str]) {
    let attempts: Vec<&Attempt> = names.iter().map(|n| report.get(n)).collect();
    tally(test, &attempts);
    for a in attempts {
        assert!(a.blocked, "{test}: {} got through: {}", a.name, a.detail);
    }
}

#[test]
fn kcore_is_not_readable() {
    need_root!("kcore_is_not_readable");
    let s = setup();
    for user in ["0", "65534"] {
        let r = escape(&s.rkt, &[], &[&format!("--user={user}")], &["kcore"]);
        assert_blocked("kcore_is_not_readable", &r, &["kcore"]);
    }
}

#[test]
fn sys_is_read_only() {
    need_root!("sys_is_read_only");
    let s = setup();
    let r = escape(&s.rkt, &[], &[], &["sys"]);
    assert_blocked("sys_is_read_only", &r, &["sys"]);
    assert!(r.get("sys").detail.contains("read-only: Some(true)"));
}

#[test]
fn proc_sys_is_read_only() {
    need_root!("proc_sys_is_read_only");
    let s = setup();
    let r = escape(&s.rkt, &[], &[], &["proc-sys"]);
    assert_blocked("proc_sys_is_read_only", &r, &["proc-sys"]);
}

/// No mount of the host's root: not directly, not through stage1's `/proc/1/root`,
/// not through a user namespace, not by a device node for the host's disks. Without
/// the seccomp filter the user-namespace mount gets through (so the filter is what
/// blocks it), and the disk node is refused by the device cgroup (or, without one,
/// made but kept shut by `nodev` on the app's root).
#[test]
fn host_root_cannot_be_mounted() {
    need_root!("host_root_cannot_be_mounted");
    let s = setup();
    let names = ["mount", "proc1-root", "block-device"];
    let r = escape(&s.rkt, &[], &[], &names);
    assert_blocked("host_root_cannot_be_mounted", &r, &names);

    let open = escape(&s.rkt, &["--seccomp=unconfined"], &[], &names);
    assert_eq!(open.seccomp, "0");
    let mount = open.get("mount");
    assert!(
        !mount.blocked && mount.detail.contains("in a new user namespace"),
        "unconfined, a user namespace lets the app mount: {}",
        mount.detail
    );
    // Unconfined, CAP_MKNOD would make the disk node: the device cgroup refuses the
    // mknod (EPERM) where a v1 devices hierarchy is mounted; without one the node is
    // made, but the app's root is mounted nodev, so opening it is refused all the
    // same (each layer alone: `hostile.rs`, `hostile_devices.rs`).
    let disk = open.get("block-device");
    let device_cgroup = Path::new("/sys/fs/cgroup/devices/devices.allow").exists();
    if !disk.detail.contains("no block device") {
        let refused = if device_cgroup {
            !disk.detail.contains("worked") && disk.detail.contains("os error 1)")
        } else {
            disk.detail.contains("worked") && disk.detail.contains("os error 13")
        };
        assert!(
            disk.blocked && refused,
            "unconfined, the node is refused (device cgroup: {device_cgroup}): {}",
            disk.detail
        );
    }
    // stage1's root stays out of reach even unconfined (capabilities, not the filter).
    assert!(open.get("proc1-root").blocked);
}

/// An image may ship a device node (extraction reproduces them): one for the host's
/// first disk must not open it, as root with every default capability. The app's
/// root is mounted `nodev`; the pod's `/dev` is a mount of its own.
#[test]
fn a_device_node_shipped_in_an_image_does_not_open_the_host_disk() {
    need_root!("a_device_node_shipped_in_an_image_does_not_open_the_host_disk");
    let partitions = std::fs::read_to_string("/proc/partitions").unwrap_or_default();
    let Some((major, minor)) = partitions.lines().skip(2).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        Some((
            f.first()?.parse::<u32>().ok()?,
            f.get(1)?.parse::<u32>().ok()?,
        ))
    }) else {
        eprintln!("SKIPPED a_device_node_shipped_in_an_image_does_not_open_the_host_disk: no block device");
        return;
    };
    let rkt = Rkt::new();
    let name = "example.com/devnode";
    let aci = rkt.scratch().join("devnode.aci");
    e2e::aci::AciBuilder::new(name)
        .exec(&["/probe", "read", "/disk"])
        .file(
            "probe",
            &std::fs::read(e2e::rkt::probe_bin()).unwrap(),
            0o755,
        )
        .device("disk", true, major, minor)
        .write(&aci)
        .unwrap();
    let r = rkt.run([
        "--insecure-options=image",
        "run",
        "--net=none",
        aci.to_str().unwrap(),
    ]);
    let out = r.stdout();
    let blocked = r.code() == Some(1) && out.contains("cannot read") && out.contains("os error 13");
    let attempt = Attempt {
        name: "image-devnode".into(),
        blocked,
        errno: None,
        detail: out.trim().to_string(),
    };
    tally(
        "a_device_node_shipped_in_an_image_does_not_open_the_host_disk",
        &[&attempt],
    );
    assert!(
        blocked,
        "the node {major}:{minor} must exist and be refused (EACCES): {:?} {out} {}",
        r.code(),
        r.stderr()
    );
    let _ = rkt.run(["gc", "--grace-period=0s"]);
}

#[test]
fn raw_sockets_need_net_raw() {
    need_root!("raw_sockets_need_net_raw");
    let s = setup();
    let r = escape(&s.rkt, &[], &["--caps-remove=CAP_NET_RAW"], &["raw-socket"]);
    assert_blocked("raw_sockets_need_net_raw", &r, &["raw-socket"]);
    let r = escape(&s.rkt, &[], &["--user=65534"], &["raw-socket"]);
    assert_blocked("raw_sockets_need_net_raw", &r, &["raw-socket"]);
    // Docker's default set keeps NET_RAW: then raw sockets work.
    let r = escape(&s.rkt, &[], &[], &["raw-socket"]);
    let a = r.get("raw-socket");
    assert!(!a.blocked, "NET_RAW kept, yet: {}", a.detail);
}

#[test]
fn stage1_cannot_be_ptraced() {
    need_root!("stage1_cannot_be_ptraced");
    let s = setup();
    for user in ["0", "65534"] {
        let r = escape(&s.rkt, &[], &[&format!("--user={user}")], &["ptrace"]);
        assert_blocked("stage1_cannot_be_ptraced", &r, &["ptrace"]);
        assert!(
            r.get("ptrace").detail.contains("PTRACE_SEIZE 1:"),
            "pid 1 (stage1) was tried: {}",
            r.get("ptrace").detail
        );
    }
}

const FILTERED: &[&str] = &[
    "keyctl",
    "unshare-userns",
    "clone-newuser",
    "clone3",
    "kexec_load",
    "init_module",
    "bpf",
    "io_uring",
    // The allowlist profile.
    "listmount",
    "statmount",
    "beyond-table",
    "name_to_handle_at",
    "mempolicy",
    "pidfd_getfd",
    "vsock",
    "tiocsti",
];

/// `dev.tty.legacy_tiocsti`: when 0, the kernel itself refuses TIOCSTI without
/// CAP_SYS_ADMIN, so the unconfined control cannot show it working.
fn legacy_tiocsti() -> bool {
    std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti")
        .map(|v| v.trim() != "0")
        .unwrap_or(true)
}

#[test]
fn seccomp_blocks_dangerous_calls_unless_unconfined() {
    need_root!("seccomp_blocks_dangerous_calls_unless_unconfined");
    let s = setup();
    let r = escape(&s.rkt, &[], &[], FILTERED);
    assert_eq!(r.seccomp, "2", "the app runs under a seccomp filter");
    assert_blocked("seccomp_blocks_dangerous_calls", &r, FILTERED);
    let eperm = Some(i64::from(libc::EPERM));
    for name in [
        "keyctl",
        "unshare-userns",
        "clone-newuser",
        "bpf",
        "io_uring",
        "name_to_handle_at",
        "mempolicy",
        "pidfd_getfd",
        "vsock",
        "tiocsti",
    ] {
        assert_eq!(r.get(name).errno, eperm, "{:?}", r.get(name));
    }
    // Calls the table refuses as missing, and numbers past it: ENOSYS, which libc
    // falls back on.
    let enosys = Some(i64::from(libc::ENOSYS));
    for name in ["listmount", "statmount", "beyond-table", "clone3"] {
        assert_eq!(r.get(name).errno, enosys, "{:?}", r.get(name));
    }

    // A kept capability lets its calls through the filter (the kernel decides).
    let kept = escape(
        &s.rkt,
        &[],
        &["--caps-retain=CAP_SYS_NICE,CAP_SYS_PTRACE,CAP_DAC_READ_SEARCH"],
        &["mempolicy", "pidfd_getfd", "name_to_handle_at", "keyctl"],
    );
    assert_eq!(kept.seccomp, "2");
    for name in ["mempolicy", "pidfd_getfd"] {
        let a = kept.get(name);
        assert!(!a.blocked, "capability kept: {name}: {}", a.detail);
    }
    let handle = kept.get("name_to_handle_at");
    assert!(
        !handle.detail.contains("Operation not permitted"),
        "CAP_DAC_READ_SEARCH kept: {}",
        handle.detail
    );
    assert!(kept.get("keyctl").blocked, "no capability lifts keyctl");

    // The opt-out: these calls reach the kernel, which allows them without privileges.
    for flags in [
        &["--seccomp=unconfined"][..],
        &["--insecure-options=seccomp"][..],
    ] {
        let open = if flags[0].starts_with("--insecure") {
            let mut args = vec![flags[0], "run", "--net=none", NAME, "--exec=/probe"];
            args.extend(["--", "escape"]);
            args.extend(FILTERED);
            parse(&s.rkt.ok(args))
        } else {
            escape(&s.rkt, flags, &[], FILTERED)
        };
        assert_eq!(open.seccomp, "0", "{flags:?}");
        let mut through = vec![
            "keyctl",
            "unshare-userns",
            "clone-newuser",
            "listmount",
            "statmount",
            "mempolicy",
            "pidfd_getfd",
        ];
        if legacy_tiocsti() {
            through.push("tiocsti");
        }
        for name in through {
            let a = open.get(name);
            assert!(!a.blocked, "{flags:?}: {name}: {}", a.detail);
        }
        // The kernel may lack vsock or file handles here: it must not be the
        // filter's EPERM that stops them.
        for name in ["vsock", "name_to_handle_at"] {
            let a = open.get(name);
            assert!(
                !a.detail.contains("Operation not permitted"),
                "{flags:?}: {name}: {}",
                a.detail
            );
        }
        assert_ne!(
            open.get("clone3").errno,
            Some(i64::from(libc::ENOSYS)),
            "ENOSYS only comes from the filter"
        );
    }
}

/// The allowlist must not break everyday programs: a busybox shell session (pipes,
/// forks, files, /proc readers, timers) under the default profile, each step checked.
#[test]
fn everyday_commands_run_under_the_default_profile() {
    need_root!("everyday_commands_run_under_the_default_profile");
    let s = setup();
    let script = "set -e; grep -q '^Seccomp:.2' /proc/self/status; \
        ls -l / >/dev/null; ps >/dev/null; wget --help 2>&1 | grep -q Usage; date >/dev/null; \
        sleep 0.1; id >/dev/null; df / >/dev/null; top -b -n 1 >/dev/null; uname -a >/dev/null; \
        cd /tmp; mkdir d; echo hi >d/f; ln -s f d/l; cat d/l >/dev/null; chmod 600 d/f; \
        test \"$(stat -c %a d/f)\" = 600; tar cf t.tar d; rm -r d; tar xf t.tar; \
        sha256sum d/f >/dev/null; gzip -k d/f; zcat d/f.gz | grep -q hi; mkfifo p; rm p; \
        find / -maxdepth 1 >/dev/null; (sleep 0.1 &) ; sleep 0.1 & wait; \
        seq 1000 | sort -rn | head -n 1 | grep -q 1000; echo everyday-ok";
    let out = s.rkt.ok([
        "run",
        "--net=none",
        NAME,
        "--exec=/bin/sh",
        "--",
        "-c",
        script,
    ]);
    assert!(out.contains("everyday-ok"), "{out}");
}

/// A pod running in the background; killed (by PID) if the test fails.
struct Background(Option<Child>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_running(rkt: &Rkt) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pods: Vec<Value> =
            serde_json::from_str(&rkt.ok(["list", "--format=json"])).unwrap_or_default();
        if let Some(p) = pods.iter().find(|p| p["state"] == "running") {
            let uuid = p["uuid"].as_str().unwrap().to_string();
            rkt.ok(["status", "--wait-ready=30s", &uuid]);
            return uuid;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for a pod to run"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `rkt enter` (and so exec probes, which run the same way) gets the app's filter;
/// an unconfined app's entered commands are unconfined too.
#[test]
fn entered_commands_get_the_apps_filter() {
    need_root!("entered_commands_get_the_apps_filter");
    let s = setup();
    let rkt = &s.rkt;
    for (flag, mode) in [("--seccomp=default", "2"), ("--seccomp=unconfined", "0")] {
        let child = rkt
            .command([
                "run",
                "--net=none",
                flag,
                NAME,
                "--exec=/probe",
                "--",
                "sleep",
                "60",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let bg = Background(Some(child));
        let uuid = wait_running(rkt);
        let r = parse(&rkt.ok(["enter", &uuid, "/probe", "escape", "keyctl", "clone3"]));
        assert_eq!(r.seccomp, mode, "{flag}");
        if mode == "2" {
            assert_blocked(
                "entered_commands_get_the_apps_filter",
                &r,
                &["keyctl", "clone3"],
            );
            // A shell entered under the filter still starts programs (clone3 falls
            // back to clone).
            let out = rkt.ok([
                "enter",
                &uuid,
                "/bin/sh",
                "-c",
                "/probe exit 0 && echo forked",
            ]);
            assert!(out.contains("forked"), "{out}");
        } else {
            assert!(!r.get("keyctl").blocked, "{}", r.get("keyctl").detail);
        }
        rkt.ok(["stop", "--force", &uuid]);
        rkt.ok(["status", "--wait=20s", &uuid]);
        drop(bg);
        rkt.ok(["rm", &uuid]);
    }
}

/// Every attempt in one pod with the defaults (NET_RAW removed, as the baseline
/// asks), the table and the figures printed.
#[test]
fn escape_suite() {
    need_root!("escape_suite");
    let s = setup();
    let r = escape(&s.rkt, &[], &["--caps-remove=CAP_NET_RAW"], &[]);
    let mut err = std::io::stderr();
    let _ = writeln!(
        err,
        "security escape suite (default profile, seccomp mode {}):",
        r.seccomp
    );
    for a in &r.attempts {
        let verdict = if a.blocked { "blocked" } else { "ESCAPED" };
        let _ = writeln!(err, "  {:<15} {verdict:<8} {}", a.name, a.detail);
    }
    let all: Vec<&Attempt> = r.attempts.iter().collect();
    tally("escape_suite", &all);
    assert!(r.attempts.len() >= 24, "{} attempts", r.attempts.len());
    let escaped: Vec<&Attempt> = r.attempts.iter().filter(|a| !a.blocked).collect();
    assert!(escaped.is_empty(), "escapes: {escaped:?}");
}
