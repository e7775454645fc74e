//! The hostile-image suite: images built the way an attacker would build them, run
//! with every default on (signature checks skipped as a digest-pinned Docker image or
//! `--insecure-options=image` skips them: the content is the attacker's). Each test
//! names the class of escape it tries (the public history of runc, crun, containerd
//! and rkt), shows the attack's mechanism works where a knob or a harmless variant
//! lets it, and that with the defaults it fails and the host is untouched: the host
//! side of every attack is a marker file under the test's own temporary directory.
//!
//! Each test prints `hostile <test>: escapes attempted: N, blocked: N` on stderr,
//! past the harness's capture. Needs root; pods use `--net=none`.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use e2e::aci::AciBuilder;
use e2e::rkt::{is_root, rkt_bin, Background, Rkt, RunResult};
use serde_json::{json, Value};

macro_rules! need_root {
    ($name:expr) => {
        if !is_root() {
            eprintln!("SKIPPED {}: needs root", $name);
            return;
        }
    };
}

/// Busybox applets the hostile images link (a static busybox runs them all).
const APPLETS: &[&str] = &[
    "sh", "cat", "ls", "mkdir", "mknod", "head", "wc", "dd", "stat", "touch", "id", "grep",
];

/// Prints the test's figures past the harness's capture.
fn tally(test: &str, attempted: usize, blocked: usize) {
    let _ = writeln!(
        std::io::stderr(),
        "hostile {test}: escapes attempted: {attempted}, blocked: {blocked}"
    );
}

/// A standalone image: the host's static busybox and its applets, plus `extra`
/// entries, with the app `app` (appc `app` object) in its manifest.
fn hostile_aci(
    rkt: &Rkt,
    name: &str,
    app: Value,
    extra: impl FnOnce(AciBuilder) -> AciBuilder,
) -> PathBuf {
    let manifest = json!({
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": name,
        "labels": [{"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}],
        "app": app,
    });
    let b = busybox_rootfs(extra).manifest_bytes(&serde_json::to_vec(&manifest).unwrap());
    let path = rkt
        .scratch()
        .join(format!("{}.aci", name.replace('/', "_")));
    b.write(&path).expect("write the hostile ACI");
    path
}

/// A rootfs of the host's static busybox and its applets, `/tmp`, `/etc/passwd` and
/// `/etc/group`, then `extra` entries.
fn busybox_rootfs(extra: impl FnOnce(AciBuilder) -> AciBuilder) -> AciBuilder {
    let busybox = std::fs::read("/bin/busybox").expect("read /bin/busybox (busybox-static)");
    let mut b = AciBuilder::new("example.com/hostile")
        .file("/bin/busybox", &busybox, 0o755)
        .dir("/tmp")
        .file("/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        .file("/etc/group", b"root:x:0:\ntty:x:5:\n", 0o644);
    for applet in APPLETS {
        b = b.symlink(&format!("/bin/{applet}"), "busybox");
    }
    extra(b)
}

fn app(script: &str) -> Value {
    json!({
        "exec": ["/bin/sh", "-c", script],
        "user": "0",
        "group": "0",
        "workingDirectory": "/",
    })
}

/// `rkt --insecure-options=image run --net=none [FLAGS] IMAGE [APP FLAGS]`.
fn run(rkt: &Rkt, flags: &[&str], image: &Path, app_flags: &[&str]) -> RunResult {
    let mut args = vec!["--insecure-options=image", "run", "--net=none"];
    args.extend(flags);
    args.push(image.to_str().unwrap());
    args.extend(app_flags);
    rkt.run(args)
}

/// A marker path the host side of an attack would create, and its path relative to
/// the host's `/` (as a script whose working directory is the host's root names it).
fn marker(rkt: &Rkt, name: &str) -> (PathBuf, String) {
    let path = rkt.scratch().join(name);
    let rel = path
        .strip_prefix("/")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    (path, rel)
}

// ---------------------------------------------------------------------------------
// 1. The working directory is resolved in the app's root, never through /proc's
//    magic links (runc CVE-2024-21626).

/// An image whose manifest says `workingDirectory: /proc/1/root` and writes a
/// file relative to it: before the fix, `/proc/1/root` (stage1's pid 1, whose root is
/// the host's) was entered with stage1's privileges and the file landed on the host.
#[test]
fn working_directory_through_proc_1_root_does_not_reach_the_host() {
    need_root!("working_directory_through_proc_1_root_does_not_reach_the_host");
    let rkt = Rkt::new();
    let (host_marker, rel) = marker(&rkt, "wd-marker");
    let dir = Path::new(&rel).parent().unwrap().display().to_string();
    let script = format!("mkdir -p {dir} && echo escaped > {rel} && echo WROTE");
    let mut attempted = 0;
    let mut blocked = 0;

    // a) the manifest's workingDirectory; b) an image symlink /w -> /proc/1/root used
    //    as the working directory; c) the operator-visible flag (Pod YAML's
    //    `workingDir` maps to it); d) /proc/self/cwd and /proc/1/cwd.
    let mut wd_app = app(&script);
    wd_app["workingDirectory"] = json!("/proc/1/root");
    let direct = hostile_aci(&rkt, "example.com/hostile-wd", wd_app, |b| b);
    let mut link_app = app(&script);
    link_app["workingDirectory"] = json!("/w");
    let linked = hostile_aci(&rkt, "example.com/hostile-wd-link", link_app, |b| {
        b.symlink("/w", "/proc/1/root")
    });
    let mut deep_app = app(&script);
    deep_app["workingDirectory"] = json!("/w/tmp");
    let deep = hostile_aci(&rkt, "example.com/hostile-wd-deep", deep_app, |b| {
        b.symlink("/w", "../proc/1/root")
    });
    let plain = hostile_aci(&rkt, "example.com/hostile-wd-plain", app(&script), |b| b);
    let cases: Vec<(&str, &Path, Vec<&str>)> = vec![
        ("manifest workingDirectory /proc/1/root", &direct, vec![]),
        ("image symlink /w -> /proc/1/root", &linked, vec![]),
        (
            "relative symlink into /proc/1/root, below it",
            &deep,
            vec![],
        ),
        (
            "--working-dir=/proc/1/root",
            &plain,
            vec!["--working-dir=/proc/1/root"],
        ),
        (
            "--working-dir=/proc/1/cwd",
            &plain,
            vec!["--working-dir=/proc/1/cwd"],
        ),
        (
            "--working-dir=/proc/self/root",
            &plain,
            vec!["--working-dir=/proc/self/root"],
        ),
    ];
    for (what, image, flags) in cases {
        attempted += 1;
        let out = run(&rkt, &[], image, &flags);
        let through = host_marker.exists() || out.stdout().contains("WROTE");
        if !through {
            blocked += 1;
        }
        assert!(
            !host_marker.exists(),
            "{what}: the app wrote {} on the host",
            host_marker.display()
        );
        assert!(!through, "{what}: {}\n{}", out.stdout(), out.stderr());
        // The pod is refused with a reason naming the working directory.
        assert_ne!(out.code(), Some(0), "{what}");
        assert!(
            out.stderr().contains("Too many levels of symbolic links")
                || out.stderr().contains("working directory"),
            "{what}: {}",
            out.stderr()
        );
    }
    // Control: the same script with an ordinary working directory runs and writes
    // inside the pod (so the refusals above are the resolution, not the script).
    let out = run(&rkt, &[], &plain, &[]);
    assert!(out.stdout().contains("WROTE"), "{}", out.stderr());
    assert!(!host_marker.exists());
    tally("working_directory_through_proc_1_root", attempted, blocked);
}

// ---------------------------------------------------------------------------------
// 3. Kernel filesystems cannot be redirected by the image (runc CVE-2019-16884,
//    CVE-2019-19921).

/// `/proc -> /dev/l/p` with `/dev/l -> /r`: procfs would be mounted at `/r/p`, then
/// hidden by the pod's `/dev`, so every mask of `/proc/...` missed and an unmasked
/// procfs sat at `/r/p`. Now a symlink at (or above) a kernel mount point refuses the
/// pod, naming it.
#[test]
fn kernel_filesystems_are_not_mounted_through_image_symlinks() {
    need_root!("kernel_filesystems_are_not_mounted_through_image_symlinks");
    let rkt = Rkt::new();
    let script = "for f in /r/p/kcore /proc/kcore /r/s/firmware; do \
                  if head -c 1 $f >/dev/null 2>&1; then echo READ:$f; fi; done; echo RAN";
    let images: Vec<(&str, PathBuf)> = vec![
        (
            "/proc -> /dev/l/p, /dev/l -> /r",
            hostile_aci(&rkt, "example.com/hostile-proc", app(script), |b| {
                b.dir("/r/p")
                    .dir("/dev")
                    .symlink("/dev/l", "/r")
                    .symlink("/proc", "/dev/l/p")
            }),
        ),
        (
            "/proc -> /r/p",
            hostile_aci(&rkt, "example.com/hostile-proc2", app(script), |b| {
                b.dir("/r/p").symlink("/proc", "/r/p")
            }),
        ),
        (
            "/sys -> /r/s",
            hostile_aci(&rkt, "example.com/hostile-sys", app(script), |b| {
                b.dir("/r/s").symlink("/sys", "/r/s")
            }),
        ),
        (
            "/dev -> /r/d",
            hostile_aci(&rkt, "example.com/hostile-dev", app(script), |b| {
                b.dir("/r/d").symlink("/dev", "/r/d")
            }),
        ),
    ];
    let mut blocked = 0;
    for (what, image) in &images {
        let out = run(&rkt, &[], image, &[]);
        assert!(
            !out.stdout().contains("READ:"),
            "{what}: an unmasked kernel file was read: {}",
            out.stdout()
        );
        assert!(!out.stdout().contains("RAN"), "{what}: the pod ran");
        assert!(
            out.stderr().contains("is a symlink"),
            "{what}: {}",
            out.stderr()
        );
        blocked += 1;
    }
    // Control: without the links the same image runs, and /proc/kcore is masked.
    let plain = hostile_aci(&rkt, "example.com/hostile-proc-plain", app(script), |b| b);
    let out = run(&rkt, &[], &plain, &[]);
    assert!(out.stdout().contains("RAN"), "{}", out.stderr());
    assert!(!out.stdout().contains("READ:"), "{}", out.stdout());
    tally("kernel_filesystems_through_symlinks", images.len(), blocked);
}

// ---------------------------------------------------------------------------------
// 2. Stage1's pid 1 is no door to the host (CVE-2019-5736 class).

/// From inside the pod, pid 1 (`/proc/1`) leads nowhere: it is not stage1's init
/// (host root, the host's root directory) but the apps' reaper (no capability, uid
/// 65534, an empty root); its root, cwd, descriptors, environment and binary are
/// closed to the app (not dumpable, and the app lacks `CAP_SYS_PTRACE`); and even an
/// app given `CAP_SYS_PTRACE` finds an empty root there and a binary on a read-only
/// mount.
#[test]
fn stage1_pid_1_is_no_door_to_the_host() {
    need_root!("stage1_pid_1_is_no_door_to_the_host");
    let rkt = Rkt::new();
    let (host_marker, _) = marker(&rkt, "secret");
    std::fs::write(&host_marker, "host secret\n").unwrap();
    let m = host_marker.display();
    let script = format!(
        "t() {{ if sh -c \"$2\" >/dev/null 2>&1; then echo THROUGH:$1; else echo BLOCKED:$1; fi; }}; \
         t root 'cat /proc/1/root{m}'; \
         t cwd 'ls /proc/1/cwd/'; \
         t fd 'head -c 1 /proc/1/fd/0'; \
         t environ 'cat /proc/1/environ'; \
         t exe-read 'head -c 1 /proc/1/exe'; \
         t exe-write 'echo x >> /proc/1/exe'; \
         t init-is-pid-1 'grep -q init /proc/1/cmdline'; \
         echo DONE"
    );
    let image = hostile_aci(&rkt, "example.com/hostile-pid1", app(&script), |b| b);
    let names = [
        "root",
        "cwd",
        "fd",
        "environ",
        "exe-read",
        "exe-write",
        "init-is-pid-1",
    ];
    let out = run(&rkt, &[], &image, &[]).success();
    let stdout = out.stdout();
    assert!(stdout.contains("DONE"), "{stdout}");
    let mut blocked = 0;
    for n in names {
        assert!(
            stdout.contains(&format!("BLOCKED:{n}")),
            "/proc/1 {n} got through: {stdout}"
        );
        blocked += 1;
    }
    // With CAP_SYS_PTRACE kept the app may look into pid 1 (control: it reads its
    // binary), but pid 1 is the apps' reaper, not stage1's init: its root is an empty
    // tmpfs (the host file is not there) and its binary cannot be written.
    let out = run(
        &rkt,
        &[],
        &image,
        &["--caps-retain=CAP_SYS_PTRACE,CAP_CHOWN,CAP_SETUID,CAP_SETGID"],
    )
    .success();
    let stdout = out.stdout();
    assert!(stdout.contains("THROUGH:exe-read"), "control: {stdout}");
    assert!(stdout.contains("THROUGH:cwd"), "control: {stdout}");
    for n in ["root", "exe-write", "init-is-pid-1"] {
        assert!(
            stdout.contains(&format!("BLOCKED:{n}")),
            "with CAP_SYS_PTRACE, /proc/1 {n} got through: {stdout}"
        );
        blocked += 1;
    }
    assert_eq!(
        std::fs::read_to_string(&host_marker).unwrap(),
        "host secret\n"
    );
    tally("stage1_pid_1", names.len() + 3, blocked);
}

/// The stage1 binary the pod's processes run from is mounted read-only in the pod's
/// mount namespace (checked from the host, on a running pod).
#[test]
fn stage1_binary_is_read_only_inside_the_pod() {
    need_root!("stage1_binary_is_read_only_inside_the_pod");
    let rkt = Rkt::new();
    let image = hostile_aci(
        &rkt,
        "example.com/hostile-sleep",
        app("echo STARTED; exec sleep 60"),
        |b| b.symlink("/bin/sleep", "busybox"),
    );
    let mut cmd = rkt.command([
        "--insecure-options=image",
        "run",
        "--net=none",
        image.to_str().unwrap(),
    ]);
    let _pod = Background::spawn(cmd.stdout(Stdio::null()).stderr(Stdio::null()));
    let stage1 = std::fs::canonicalize(rkt_bin().with_file_name("stage1")).unwrap();
    let stage1 = stage1.to_str().unwrap();
    let mut found = String::new();
    // The pod's pid 1 (its host PID in the pod directory's `pid`) is in the pod's
    // mount namespace.
    e2e::podenv::poll("the pod's init", std::time::Duration::from_secs(20), || {
        let Ok(dirs) = std::fs::read_dir(rkt.data_dir().join("pods/run")) else {
            return false;
        };
        for d in dirs.flatten() {
            let Ok(pid) = std::fs::read_to_string(d.path().join("pid")) else {
                continue;
            };
            let mi = std::fs::read_to_string(format!("/proc/{}/mountinfo", pid.trim()))
                .unwrap_or_default();
            if let Some(line) = mi.lines().find(|l| l.split(' ').nth(4) == Some(stage1)) {
                found = line.to_string();
                return true;
            }
        }
        false
    });
    let opts = found.split(' ').nth(5).unwrap_or_default();
    assert!(
        opts.split(',').any(|o| o == "ro"),
        "stage1's binary is not read-only in the pod: {found}"
    );
    // The host's mount table is unchanged.
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host.lines().any(|l| l.split(' ').nth(4) == Some(stage1)),
        "the bind leaked to the host"
    );
    tally("stage1_binary_read_only", 1, 1);
}

// ---------------------------------------------------------------------------------
// 4. No controlling terminal from the caller (TIOCSTI/TIOCSPGRP injection).

/// `rkt run` typed in a terminal (under `script`, which gives it one): the app must
/// not be able to open `/dev/tty`, the operator's terminal.
#[test]
fn apps_cannot_open_the_operators_terminal() {
    need_root!("apps_cannot_open_the_operators_terminal");
    let rkt = Rkt::new();
    let probe =
        "if (exec 3<>/dev/tty) 2>/dev/null; then echo TTY-OPENED; else echo TTY-REFUSED; fi";
    let image = hostile_aci(&rkt, "example.com/hostile-tty", app(probe), |b| b);
    let script_cmd = |inner: String| {
        let out = Command::new("script")
            .args(["-qec", &inner, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .expect("run script (util-linux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Control: under script, a plain shell does have the terminal.
    let control = script_cmd(format!("sh -c '{probe}'"));
    assert!(control.contains("TTY-OPENED"), "control: {control}");
    let cmd = rkt.command([
        "--insecure-options=image",
        "run",
        "--net=none",
        image.to_str().unwrap(),
    ]);
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let out = script_cmd(line);
    assert!(out.contains("TTY-REFUSED"), "{out}");
    assert!(!out.contains("TTY-OPENED"), "{out}");
    tally("operators_terminal", 1, 1);
}

// ---------------------------------------------------------------------------------
// 7. Devices: a node the app makes (it keeps CAP_MKNOD) opens nothing, even with
//    `--seccomp=unconfined`.

/// The host's root disk (from `/proc/partitions`' first entry): major, minor.
fn host_disk() -> Option<(u32, u32)> {
    let partitions = std::fs::read_to_string("/proc/partitions").ok()?;
    partitions.lines().skip(2).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        Some((f.first()?.parse().ok()?, f.get(1)?.parse().ok()?))
    })
}

/// Two layers stand in the way; each is shown on its own. With the defaults the
/// device cgroup refuses the `mknod` itself (EPERM) in every place. With the device
/// cgroup lifted by hand while the pod waits (`a` to the app's `devices.allow`), the
/// nodes are made, and `nodev` alone keeps them from opening (EACCES).
#[test]
fn mknod_of_the_host_disk_opens_nothing_in_any_writable_place() {
    need_root!("mknod_of_the_host_disk_opens_nothing_in_any_writable_place");
    let Some((major, minor)) = host_disk() else {
        eprintln!("SKIPPED mknod_of_the_host_disk: no disk in /proc/partitions");
        return;
    };
    if !Path::new("/sys/fs/cgroup/devices/devices.allow").exists() {
        eprintln!("SKIPPED mknod_of_the_host_disk: no v1 devices hierarchy to lift by hand");
        return;
    }
    let places = ["/dev", "/tmp", "/", "/scratch", "/hostvol", "/dev/shm"];
    // EACCES ("Permission denied") is what a nodev mount answers; a node that reaches
    // the driver gets the driver's answer (data, or ENXIO, EPERM, ...).
    let script = places
        .iter()
        .map(|d| {
            format!(
                "if mknod {d}/disk-{n} b {major} {minor} 2>/tmp/err; then echo MADE:{d}; \
                 elif grep -q 'Operation not permitted' /tmp/err; then echo REFUSED:{d}; fi; \
                 if head -c 512 {d}/disk-{n} >/dev/null 2>/tmp/err; then echo OPENED:{d}; \
                 elif grep -q 'Permission denied' /tmp/err; then echo NODEV:{d}; \
                 else echo OTHER:{d}:$(cat /tmp/err); fi; ",
                n = d.replace('/', "_")
            )
        })
        .collect::<String>()
        // A character device too (/dev/port: its driver answers when reached).
        + "if mknod /dev/port-x c 1 4 2>/tmp/err; then echo MADE:port; \
           elif grep -q 'Operation not permitted' /tmp/err; then echo REFUSED:port; fi; \
           if head -c 1 /dev/port-x >/dev/null 2>/tmp/err; then echo OPENED:port; \
           elif grep -q 'Permission denied' /tmp/err; then echo NODEV:port; \
           else echo OTHER:port:$(cat /tmp/err); fi";
    // The app waits for the test's go (bounded) in the host volume.
    let script = format!(
        "touch /hostvol/ready; i=0; \
         while [ ! -e /hostvol/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; {script}"
    );
    let run_once = |lift: bool| -> (String, tempfile::TempDir) {
        let rkt = Rkt::new();
        let image = hostile_aci(&rkt, "example.com/hostile-mknod", app(&script), |b| {
            b.symlink("/bin/sleep", "busybox")
        });
        let hostvol = rkt.scratch().join("hostvol");
        std::fs::create_dir_all(&hostvol).unwrap();
        let volume = format!("--volume=hostvol,kind=host,source={}", hostvol.display());
        let mut child = rkt.command([
            "--insecure-options=image",
            "run",
            "--net=none",
            "--seccomp=unconfined",
            "--volume=scratch,kind=empty",
            "--mount=volume=scratch,target=/scratch",
            &volume,
            "--mount=volume=hostvol,target=/hostvol",
            image.to_str().unwrap(),
        ]);
        child.stdout(Stdio::piped()).stderr(Stdio::piped());
        let pod = Background::spawn(&mut child);
        e2e::podenv::poll(
            "the app to be ready",
            std::time::Duration::from_secs(60),
            || hostvol.join("ready").exists(),
        );
        if lift {
            assert_eq!(
                rkt.lift_device_cgroups(),
                1,
                "one app's device cgroup lifted"
            );
        }
        std::fs::write(hostvol.join("go"), "").unwrap();
        let out = pod.output();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Keep the host volume's contents past the installation's removal.
        let kept = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(&hostvol).unwrap().flatten() {
            std::fs::rename(e.path(), kept.path().join(e.file_name())).unwrap();
        }
        (stdout, kept)
    };
    let mut blocked = 0;
    let mut attempted = 0;

    // Defaults: the device cgroup refuses to make the node anywhere.
    let (stdout, hostvol) = run_once(false);
    for d in places.iter().copied().chain(["port"]) {
        attempted += 1;
        assert!(
            stdout.contains(&format!("REFUSED:{d}")),
            "{d}: mknod not refused by the device cgroup: {stdout}"
        );
        assert!(!stdout.contains(&format!("OPENED:{d}")), "{d}: {stdout}");
        blocked += 1;
    }
    assert!(
        !hostvol.path().join("disk-_hostvol").exists(),
        "no node on the host"
    );

    // Device cgroup lifted: the node is made (CAP_MKNOD, unconfined), the attack's
    // first half works...
    let (stdout, hostvol) = run_once(true);
    for d in places.iter().copied().chain(["port"]) {
        attempted += 1;
        assert!(stdout.contains(&format!("MADE:{d}")), "{d}: {stdout}");
        // ...but it does not reach the device: the mount is nodev.
        assert!(
            stdout.contains(&format!("NODEV:{d}")),
            "{d}: not refused by nodev: {stdout}"
        );
        blocked += 1;
    }
    // The node made in the host volume exists on the host and is a real block device
    // there (the host is not nodev), which is why the pod's view must be.
    let made = std::fs::metadata(hostvol.path().join("disk-_hostvol"))
        .expect("the node in the host volume");
    use std::os::unix::fs::FileTypeExt;
    assert!(made.file_type().is_block_device());
    assert_eq!(made.rdev(), rustix::fs::makedev(major, minor));
    tally("mknod_host_disk", attempted, blocked);
}

// ---------------------------------------------------------------------------------
// 8. Read-only means read-only, submounts included.

/// A host directory with a tmpfs mounted inside it, unmounted on drop.
struct SubmountedDir {
    dir: PathBuf,
}

impl SubmountedDir {
    fn new(dir: PathBuf) -> Self {
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "rkt-test"])
            .arg(dir.join("sub"))
            .status()
            .unwrap();
        assert!(st.success(), "mount a tmpfs for the test");
        SubmountedDir { dir }
    }
}

impl Drop for SubmountedDir {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.join("sub")).status();
    }
}

#[test]
fn read_only_volumes_are_read_only_below_their_submounts() {
    need_root!("read_only_volumes_are_read_only_below_their_submounts");
    let rkt = Rkt::new();
    let vol = SubmountedDir::new(rkt.scratch().join("vol"));
    let script = "for f in /v/top /v/sub/below; do \
                  if touch $f 2>/dev/null; then echo WROTE:$f; else echo REFUSED:$f; fi; done";
    let image = hostile_aci(&rkt, "example.com/hostile-ro", app(script), |b| b);
    let flags = |ro: bool| {
        vec![
            format!(
                "--volume=v,kind=host,source={},readOnly={ro}",
                vol.dir.display()
            ),
            "--mount=volume=v,target=/v".to_string(),
        ]
    };
    // Control: writable, both places are written (on the host).
    let f = flags(false);
    let f: Vec<&str> = f.iter().map(String::as_str).collect();
    let out = run(&rkt, &f, &image, &[]).success();
    assert!(
        out.stdout().contains("WROTE:/v/sub/below"),
        "{}",
        out.stdout()
    );
    std::fs::remove_file(vol.dir.join("top")).unwrap();
    std::fs::remove_file(vol.dir.join("sub/below")).unwrap();
    // Read-only: neither, the submount included.
    let f = flags(true);
    let f: Vec<&str> = f.iter().map(String::as_str).collect();
    let out = run(&rkt, &f, &image, &[]).success();
    let stdout = out.stdout();
    assert!(stdout.contains("REFUSED:/v/top"), "{stdout}");
    assert!(stdout.contains("REFUSED:/v/sub/below"), "{stdout}");
    assert!(!vol.dir.join("sub/below").exists());
    tally("read_only_submounts", 2, 2);
}

// ---------------------------------------------------------------------------------
// The same classes through Docker/OCI images: an OCI image layout written by hand
// (one layer, a config naming the working directory), run as `oci:DIR:latest`.

/// Writes an OCI image layout at `dir` whose single layer holds the entries of
/// `image` (an ACI builder's rootfs) and whose config has `config` (the image
/// config's `config` object: `Cmd`, `WorkingDir`, ...). Returns `oci:DIR:latest`.
fn oci_layout(dir: &Path, image: AciBuilder, config: Value) -> String {
    use sha2::{Digest, Sha256};
    let aci = image.build_tar();
    let mut layer = tar::Builder::new(Vec::new());
    let mut entries = tar::Archive::new(aci.as_slice());
    for e in entries.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let Some(rel) = path.strip_prefix("rootfs/") else {
            continue;
        };
        if rel.is_empty() {
            continue;
        }
        let mut h = e.header().clone();
        let link = e.link_name().unwrap().map(|l| l.into_owned());
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        match link {
            Some(target) => layer.append_link(&mut h, rel, target).unwrap(),
            None => layer.append_data(&mut h, rel, data.as_slice()).unwrap(),
        }
    }
    let layer = layer.into_inner().unwrap();
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let digest = hex::encode(Sha256::digest(bytes));
        std::fs::write(blobs.join(&digest), bytes).unwrap();
        (format!("sha256:{digest}"), bytes.len())
    };
    let (layer_digest, layer_size) = put(&layer);
    let cfg = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let (cfg_digest, cfg_size) = put(&serde_json::to_vec(&cfg).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": cfg_digest, "size": cfg_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer_size}],
    });
    let (m_digest, m_size) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": m_digest, "size": m_size,
                       "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    format!("oci:{}:latest", dir.display())
}

/// Docker/OCI images: `WorkingDir: /proc/1/root` (and through an image symlink), and
/// a layer whose `/proc` is a symlink chain.
#[test]
fn oci_images_get_the_same_treatment() {
    need_root!("oci_images_get_the_same_treatment");
    let rkt = Rkt::new();
    let (host_marker, rel) = marker(&rkt, "oci-marker");
    let dir = Path::new(&rel).parent().unwrap().display().to_string();
    let script = format!("mkdir -p {dir} && echo escaped > {rel} && echo WROTE");
    let cmd = json!(["/bin/sh", "-c", script]);
    let layouts = [
        (
            "WorkingDir /proc/1/root",
            oci_layout(
                &rkt.scratch().join("oci-wd"),
                busybox_rootfs(|b| b),
                json!({"Cmd": cmd, "WorkingDir": "/proc/1/root"}),
            ),
            "Too many levels of symbolic links",
        ),
        (
            "WorkingDir through a layer symlink /w -> /proc/1/root",
            oci_layout(
                &rkt.scratch().join("oci-wd-link"),
                busybox_rootfs(|b| b.symlink("/w", "/proc/1/root")),
                json!({"Cmd": cmd, "WorkingDir": "/w"}),
            ),
            "Too many levels of symbolic links",
        ),
        (
            "a layer with /proc -> /dev/l/p, /dev/l -> /r",
            oci_layout(
                &rkt.scratch().join("oci-proc"),
                busybox_rootfs(|b| {
                    b.dir("/r/p")
                        .dir("/dev")
                        .symlink("/dev/l", "/r")
                        .symlink("/proc", "/dev/l/p")
                }),
                json!({"Cmd": ["/bin/sh", "-c", "head -c 1 /r/p/kcore && echo READ-KCORE; echo WROTE"]}),
            ),
            "is a symlink",
        ),
    ];
    let mut blocked = 0;
    for (what, image, reason) in &layouts {
        let out = rkt.run(["--insecure-options=image", "run", "--net=none", image]);
        assert!(!host_marker.exists(), "{what}: wrote on the host");
        assert!(!out.stdout().contains("WROTE"), "{what}: {}", out.stdout());
        assert!(out.stderr().contains(reason), "{what}: {}", out.stderr());
        blocked += 1;
    }
    // Control: the first layout with the working directory overridden runs.
    let out = rkt.run([
        "--insecure-options=image",
        "run",
        "--net=none",
        &layouts[0].1,
        "--working-dir=/",
    ]);
    assert!(out.stdout().contains("WROTE"), "{}", out.stderr());
    tally("oci_images", layouts.len(), blocked);
}

/// The text of every app log under the installation's pods.
fn app_logs(rkt: &Rkt) -> String {
    e2e::rkt::files_under(&rkt.data_dir().join("pods"))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "log"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

/// Pod YAML's `workingDir: /proc/1/root`, through `rkt reconcile`.
#[test]
fn pod_yaml_working_dir_through_proc_1_root_does_not_reach_the_host() {
    need_root!("pod_yaml_working_dir_through_proc_1_root_does_not_reach_the_host");
    let rkt = Rkt::new();
    let (host_marker, rel) = marker(&rkt, "yaml-marker");
    let dir = Path::new(&rel).parent().unwrap().display().to_string();
    let image = hostile_aci(&rkt, "example.com/hostile-yaml", app("true"), |b| b);
    let pods = rkt.local_config().join("pods.d");
    std::fs::create_dir_all(&pods).unwrap();
    let yaml = |name: &str, wd: &str| {
        format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  hostNetwork: true
  restartPolicy: Never
  containers:
  - name: main
    image: {image}
    workingDir: {wd}
    command: [\"/bin/sh\", \"-c\", \"mkdir -p {dir} && echo escaped > {rel} && echo WROTE-{name}\"]
",
            image = image.display()
        )
    };
    std::fs::write(pods.join("evil.yaml"), yaml("evil", "/proc/1/root")).unwrap();
    std::fs::write(pods.join("plain.yaml"), yaml("plain", "/")).unwrap();
    let out = rkt.run(["--insecure-options=image", "reconcile", "--once"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    e2e::podenv::poll(
        "both pods to have run",
        std::time::Duration::from_secs(30),
        || {
            let logs = app_logs(&rkt);
            logs.contains("WROTE-plain") && logs.contains("Too many levels of symbolic links")
        },
    );
    assert!(!host_marker.exists(), "the pod wrote on the host");
    assert!(!app_logs(&rkt).contains("WROTE-evil"));
    tally("pod_yaml_working_dir", 1, 1);
}
