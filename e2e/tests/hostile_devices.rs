//! Hostile images and devices: the device cgroup, the second layer behind `nodev`.
//!
//! An app that keeps `CAP_MKNOD` and runs with `--seccomp=unconfined` finds a mount
//! where device nodes work: a host volume from the host's `/dev` (the operator handed
//! it devices, so it is not `nodev`), here a tmpfs the test mounts under `/dev/shm`.
//! Nodes for host devices appear there after the pod started (as a node made by
//! anyone with access to the host directory would): a block device (`loop0`, 7:0) and
//! a character device (the hardware RNG, 10:183). The app must neither open them nor
//! make nodes of its own (the host's disk, `/dev/port`), while its own `/dev/null`
//! etc. still work. The control lifts the app's device cgroup by hand (`a` to its v1
//! `devices.allow`) while the pod waits: then the same app reaches the drivers and
//! makes the nodes, so only the device cgroup stood in the way. The host side is the
//! test's own tmpfs.
//!
//! Prints `hostile <test>: escapes attempted: N, blocked: N` on stderr. Needs root;
//! pods use `--net=none`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::aci::AciBuilder;
use e2e::rkt::{is_root, Background, Rkt};
use serde_json::json;

const APPLETS: &[&str] = &["sh", "cat", "mknod", "head", "wc", "touch", "grep", "sleep"];

fn tally(test: &str, attempted: usize, blocked: usize) {
    let _ = writeln!(
        std::io::stderr(),
        "hostile {test}: escapes attempted: {attempted}, blocked: {blocked}"
    );
}

fn poll(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The host's first disk in `/proc/partitions`: major, minor.
fn host_disk() -> Option<(u32, u32)> {
    let partitions = std::fs::read_to_string("/proc/partitions").ok()?;
    partitions.lines().skip(2).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        Some((f.first()?.parse().ok()?, f.get(1)?.parse().ok()?))
    })
}

/// A tmpfs (device nodes work on it) mounted on a fresh directory under the host's
/// `/dev/shm`; unmounted and removed on drop, on failure too.
struct DevShmTmpfs {
    dir: Option<tempfile::TempDir>,
}

impl DevShmTmpfs {
    fn new() -> Option<Self> {
        let dir = tempfile::Builder::new()
            .prefix("rkt-e2e-dev-")
            .tempdir_in("/dev/shm")
            .ok()?;
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=0755", "rkt-e2e-dev"])
            .arg(dir.path())
            .status()
            .ok()?;
        st.success().then_some(DevShmTmpfs { dir: Some(dir) })
    }
    fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }
}

impl Drop for DevShmTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.path()).status();
        drop(self.dir.take());
    }
}

/// A pod running in the background; killed (by PID) if the test fails.
/// The app: says it is ready, waits for the test's go (bounded), then tries each
/// step and prints `OK:`, `EPERM:` (the device cgroup's answer), `EACCES:` (nodev's)
/// or `OTHER:` with the step's name.
fn script(major: u32, minor: u32) -> String {
    format!(
        r#"try() {{ label=$1; shift
  if "$@" >/dev/null 2>/tmp/err; then echo "OK:$label"
  elif grep -q 'Operation not permitted' /tmp/err; then echo "EPERM:$label"
  elif grep -q 'Permission denied' /tmp/err; then echo "EACCES:$label"
  else echo "OTHER:$label:$(cat /tmp/err)"; fi; }}
touch /dv/ready
i=0; while [ ! -e /dv/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
try open-loop head -c 512 /dv/loop
try open-rng head -c 16 /dv/rng
echo "BYTES:$(head -c 16 /dv/rng 2>/dev/null | wc -c)"
try mknod-disk mknod /dv/disk2 b {major} {minor}
try mknod-port mknod /dv/port c 1 4
try open-null head -c 1 /dev/null
try open-zero head -c 8 /dev/zero
try open-urandom head -c 8 /dev/urandom
try open-full head -c 1 /dev/full
try mknod-null mknod /tmp/null2 c 1 3
"#
    )
}

/// A busybox image whose app runs `script` as root.
fn image(rkt: &Rkt, script: &str) -> PathBuf {
    let app = json!({
        "exec": ["/bin/sh", "-c", script],
        "user": "0", "group": "0", "workingDirectory": "/",
    });
    let manifest = json!({
        "acKind": "ImageManifest", "acVersion": "0.8.11",
        "name": "example.com/hostile-devices",
        "labels": [{"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}],
        "app": app,
    });
    let busybox = std::fs::read("/bin/busybox").expect("read /bin/busybox (busybox-static)");
    let mut b = AciBuilder::new("example.com/hostile-devices")
        .file("/bin/busybox", &busybox, 0o755)
        .dir("/tmp")
        .dir("/dv")
        .file("/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        .file("/etc/group", b"root:x:0:\ntty:x:5:\n", 0o644);
    for applet in APPLETS {
        b = b.symlink(&format!("/bin/{applet}"), "busybox");
    }
    let image = rkt.scratch().join("hostile-devices.aci");
    b.manifest_bytes(&serde_json::to_vec(&manifest).unwrap())
        .write(&image)
        .unwrap();
    image
}

/// Runs the hostile pod with a volume from `shm`; once the app waits, makes the
/// disk's node in the volume, lifts the device cgroup if `lift`, and lets it go.
/// Returns the app's output.
fn attempt(shm: &Path, (major, minor): (u32, u32), lift: bool) -> String {
    let rkt = Rkt::new();
    for f in ["ready", "go", "loop", "rng", "disk2", "port"] {
        let _ = std::fs::remove_file(shm.join(f));
    }
    let image = image(&rkt, &script(major, minor));
    let volume = format!("--volume=dv,kind=host,source={}", shm.display());
    let mut child = rkt.command([
        "--insecure-options=image",
        "run",
        "--net=none",
        "--seccomp=unconfined",
        &volume,
        "--mount=volume=dv,target=/dv",
        image.to_str().unwrap(),
    ]);
    child.stdout(Stdio::piped()).stderr(Stdio::piped());
    let pod = Background::spawn(&mut child);
    poll("the app to be ready", Duration::from_secs(60), || {
        shm.join("ready").exists()
    });
    // The app's device cgroup is in place: everything denied but its own devices.
    let cgroups = rkt.app_device_cgroups();
    assert_eq!(cgroups.len(), 1, "one app, one device cgroup: {cgroups:?}");
    let list = std::fs::read_to_string(cgroups[0].join("devices.list")).unwrap();
    assert!(!list.contains("a *:* rwm"), "{list}");
    assert!(list.lines().any(|l| l == "c 1:3 rwm"), "{list}");
    // The nodes appear after the pod started: not ones the operator handed over.
    for (name, kind, dev) in [
        ("loop", rustix::fs::FileType::BlockDevice, (7, 0)),
        ("rng", rustix::fs::FileType::CharacterDevice, (10, 183)),
    ] {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            shm.join(name),
            kind,
            rustix::fs::Mode::from_raw_mode(0o600),
            rustix::fs::makedev(dev.0, dev.1),
        )
        .unwrap();
    }
    if lift {
        assert_eq!(rkt.lift_device_cgroups(), 1);
    }
    std::fs::write(shm.join("go"), "").unwrap();
    let out = pod.output();
    let (code, stdout, stderr) = (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    stdout
}

#[test]
fn device_cgroup_blocks_host_devices_where_nodev_does_not() {
    if !is_root() {
        eprintln!("SKIPPED device_cgroup_blocks_host_devices_where_nodev_does_not: needs root");
        return;
    }
    if !Path::new("/sys/fs/cgroup/devices/devices.allow").exists() {
        eprintln!("SKIPPED device_cgroup_blocks_host_devices: no v1 devices hierarchy");
        return;
    }
    let Some(disk) = host_disk() else {
        eprintln!("SKIPPED device_cgroup_blocks_host_devices: no disk in /proc/partitions");
        return;
    };
    let Some(shm) = DevShmTmpfs::new() else {
        eprintln!("SKIPPED device_cgroup_blocks_host_devices: cannot mount under /dev/shm");
        return;
    };
    let opens = ["open-loop", "open-rng"];
    let mknods = ["mknod-disk", "mknod-port"];
    let own = [
        "open-null",
        "open-zero",
        "open-urandom",
        "open-full",
        "mknod-null",
    ];

    // Control: without the device cgroup the same app reaches the drivers (they
    // answer: data, or ENXIO and the like where there is no such device here) and
    // makes nodes: the volume is not nodev, nothing else stands in the way.
    let out = attempt(shm.path(), disk, true);
    for step in opens {
        assert!(
            !out.contains(&format!("EPERM:{step}")) && !out.contains(&format!("EACCES:{step}")),
            "control {step}: {out}"
        );
    }
    for step in mknods.iter().chain(&own) {
        assert!(out.contains(&format!("OK:{step}")), "control {step}: {out}");
    }
    eprintln!(
        "hostile device_cgroup: control (device cgroup lifted): {}",
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    let made: Vec<PathBuf> = ["disk2", "port"]
        .iter()
        .map(|f| shm.path().join(f))
        .collect();
    assert!(made.iter().all(|p| p.exists()), "control made the nodes");

    // Defaults: the device cgroup answers EPERM to each; the pod's own devices work.
    let out = attempt(shm.path(), disk, false);
    let mut blocked = 0;
    for step in opens.iter().chain(&mknods) {
        assert!(
            out.contains(&format!("EPERM:{step}")),
            "{step} not refused by the device cgroup: {out}"
        );
        blocked += 1;
    }
    for step in own {
        assert!(out.contains(&format!("OK:{step}")), "{step}: {out}");
    }
    assert!(out.contains("BYTES:0"), "{out}");
    let attempted = opens.len() + mknods.len();
    assert!(
        made.iter().all(|p| !p.exists()),
        "no node reached the host's directory"
    );
    tally("device_cgroup", attempted, blocked);
}

/// An interactive pod (under `script`, which gives `rkt run` a terminal): its own
/// terminal devices work inside the device cgroup — `/dev/console` (the pty's app
/// side), a new pty from `/dev/ptmx`, `/dev/tty` — and a host device still does not.
#[test]
fn interactive_pods_keep_their_terminal_devices() {
    if !is_root() {
        eprintln!("SKIPPED interactive_pods_keep_their_terminal_devices: needs root");
        return;
    }
    if !Path::new("/sys/fs/cgroup/devices/devices.allow").exists() {
        eprintln!("SKIPPED interactive_pods_keep_their_terminal_devices: no v1 devices hierarchy");
        return;
    }
    let rkt = Rkt::new();
    let probe = "echo CONSOLE-OK > /dev/console; \
        if (exec 3<>/dev/ptmx) 2>/dev/null; then echo PTMX-OK; fi; \
        if (exec 3<>/dev/tty) 2>/dev/null; then echo TTY-OK; fi; \
        if mknod /tmp/rng c 10 183 2>/tmp/err; then echo RNG-MADE; \
        elif grep -q 'Operation not permitted' /tmp/err; then echo RNG-EPERM; fi";
    let image = image(&rkt, probe);
    let cmd = rkt.command([
        "--insecure-options=image",
        "run",
        "--net=none",
        "--seccomp=unconfined",
        "--interactive",
        image.to_str().unwrap(),
    ]);
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("run script (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for want in ["CONSOLE-OK", "PTMX-OK", "TTY-OK", "RNG-EPERM"] {
        assert!(stdout.contains(want), "{want}: {stdout}");
    }
}
