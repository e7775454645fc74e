//! `stage1 app-exec` and `stage1 enter` against a real busybox tree, in throwaway
//! namespaces (`unshare`) standing in for the pod's: every check is made from inside
//! the app with busybox commands. Needs root, `unshare` and busybox; without them the
//! tests say loudly that they skipped.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use manifests::runtime::{
    Dns, Flavor, HostsEntry, Mount, RuntimeApp, RuntimeConfig, Volume, RUNTIME_VERSION,
};

const STAGE1: &str = env!("CARGO_BIN_EXE_stage1");
const DEADLINE: Duration = Duration::from_secs(60);
/// `unshare` options giving the stand-in pod its PID, mount, UTS and IPC namespaces.
const POD_NAMESPACES: &[&str] = &[
    "--mount",
    "--pid",
    "--fork",
    "--uts",
    "--ipc",
    "--kill-child",
];

fn can_run() -> bool {
    let root = rustix::process::geteuid().is_root();
    let unshare = Command::new("unshare")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let busybox = Path::new("/bin/busybox").exists();
    if !(root && unshare && busybox) {
        eprintln!("SKIPPED: needs root ({root}), unshare ({unshare}) and /bin/busybox ({busybox})");
    }
    root && unshare && busybox
}

/// A pod directory with a rendered busybox image next to it.
struct TestPod {
    tmp: tempfile::TempDir,
    cfg: RuntimeConfig,
}

impl TestPod {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let aci = tmp.path().join("busybox.aci");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/build-busybox-aci.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&aci)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let image = tmp.path().join("image");
        fs::create_dir(&image).unwrap();
        let out = Command::new("tar")
            .arg("-xzf")
            .arg(&aci)
            .arg("-C")
            .arg(&image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::create_dir_all(tmp.path().join("pod/apps/web")).unwrap();
        let app = RuntimeApp {
            name: "web".into(),
            image_id: "sha512-0".into(),
            image: image.join("rootfs"),
            exec: vec!["/bin/true".into()],
            env: vec![("FOO".into(), "bar".into())],
            user: "0".into(),
            group: "0".into(),
            supplementary_gids: vec![],
            working_dir: "/".into(),
            read_only_rootfs: false,
            mounts: vec![],
            memory_limit_bytes: None,
            cpu_millis: None,
            capabilities: vec!["CAP_CHOWN".into(), "CAP_KILL".into()],
            no_new_privileges: true,
            seccomp: Default::default(),
            masked_paths: vec![],
            readonly_paths: vec![],
            init: false,
            restart_policy: Default::default(),
            liveness_probe: None,
            readiness_probe: None,
            allow_all_devices: false,
        };
        let cfg = RuntimeConfig {
            version: RUNTIME_VERSION,
            uuid: "00000000-0000-0000-0000-000000000001".into(),
            flavor: Flavor::Default,
            hostname: "rkt-test".into(),
            interactive: false,
            stop_grace_period_secs: 1,
            log_max_bytes: 0,
            dns: None,
            hosts_entries: vec![],
            netns: None,
            private_network: false,
            cgroup_root: "/sys/fs/cgroup".into(),
            volumes: vec![],
            backoff: Default::default(),
            user_namespace: None,
            apps: vec![app],
        };
        TestPod { tmp, cfg }
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("pod")
    }

    fn image(&self) -> PathBuf {
        self.tmp.path().join("image/rootfs")
    }

    fn app(&mut self) -> &mut RuntimeApp {
        &mut self.cfg.apps[0]
    }

    fn script(&mut self, script: &str) {
        self.app().exec = vec!["/bin/sh".into(), "-c".into(), script.into()];
    }

    fn write_config(&self) {
        fs::write(
            self.dir().join("runtime.json"),
            serde_json::to_vec_pretty(&self.cfg).unwrap(),
        )
        .unwrap();
    }

    /// `stage1 app-exec` in fresh pod namespaces (or, for fly, in ours).
    fn app_exec(&self, extra: &[&str]) -> Output {
        self.write_config();
        let mut cmd = if self.cfg.flavor == Flavor::Fly {
            Command::new(STAGE1)
        } else {
            let mut c = Command::new("unshare");
            c.args(POD_NAMESPACES).arg(STAGE1);
            c
        };
        cmd.arg("app-exec")
            .arg("--pod-dir")
            .arg(self.dir())
            .arg("--app")
            .arg("web")
            .args(extra);
        let out = run(cmd);
        self.assert_no_mounts_left();
        out
    }

    /// Nothing the app mounted is visible in our mount namespace.
    fn assert_no_mounts_left(&self) {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let ours = self.tmp.path().to_string_lossy().into_owned();
        assert!(
            !mountinfo.contains(&ours),
            "mounts leaked into the test's namespace:\n{mountinfo}"
        );
        assert_eq!(
            fs::read_dir(self.dir().join("apps/web/rootfs"))
                .map(|d| d.count())
                .unwrap_or(0),
            0,
            "the overlay is visible outside the app"
        );
    }
}

/// Runs `cmd` to completion (stdin empty), failing the test after [`DEADLINE`].
fn run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let status = wait_deadline(&mut child);
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

fn wait_deadline(child: &mut Child) -> std::process::ExitStatus {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("process {} did not finish within {DEADLINE:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !ready() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value of a `key=value` or `Key:\tvalue` line.
fn field<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .and_then(|r| r.strip_prefix('=').or_else(|| r.strip_prefix(':')))
        })
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in output:\n{stdout}"))
}

const STATUS: &str =
    "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Uid|Gid|Groups):' /proc/self/status";

#[test]
fn default_flavor_isolates_the_app() {
    if !can_run() {
        return;
    }
    let mut pod = TestPod::new();
    let host_vol = pod.tmp.path().join("hostvol");
    fs::create_dir(&host_vol).unwrap();
    fs::write(host_vol.join("in"), "from-host\n").unwrap();
    pod.cfg.volumes = vec![
        Volume::Host {
            name: "data".into(),
            source: host_vol.clone(),
            read_only: false,
        },
        Volume::Host {
            name: "config".into(),
            source: host_vol.clone(),
            read_only: true,
        },
        Volume::Empty {
            name: "scratch".into(),
            mode: "0710".into(),
            uid: 65534,
            gid: 65534,
        },
    ];
    pod.cfg.hosts_entries = vec![HostsEntry {
        ip: "10.0.0.1".into(),
        hostnames: vec!["db".into()],
    }];
    pod.cfg.dns = Some(Dns {
        nameservers: vec!["192.0.2.53".into()],
        search: vec![],
        options: vec![],
    });
    let app = pod.app();
    app.supplementary_gids = vec![10, 20];
    app.working_dir = "/srv/app".into();
    app.mounts = vec![
        Mount {
            volume: "data".into(),
            path: "/data".into(),
            read_only: false,
        },
        // A host volume that is read-only in the pod, and one mounted read-only.
        Mount {
            volume: "config".into(),
            path: "/config".into(),
            read_only: false,
        },
        Mount {
            volume: "data".into(),
            path: "/data-ro".into(),
            read_only: true,
        },
        Mount {
            volume: "scratch".into(),
            path: "/var/scratch".into(),
            read_only: false,
        },
    ];
    app.masked_paths = vec![
        "/proc/keys".into(),
        "/www".into(),
        "/proc/nonexistent".into(),
    ];
    app.readonly_paths = vec!["/proc/sys".into()];
    let script = format!(
        r#"{STATUS}
echo pid=$$
echo cwd=$(pwd)
echo keys=$(wc -c < /proc/keys)
echo www=$(ls -A /www | wc -l)
for m in /sys /proc/sys /www /proc/keys /etc/hosts /etc/resolv.conf; do
  echo "mnt$m=$(awk -v m=$m '$2 == m {{split($4, o, ","); print $3 "," o[1]}}' /proc/mounts)"
done
for d in null zero full random urandom tty; do test -c /dev/$d && echo dev_$d=c; done
echo ptmx=$(readlink /dev/ptmx) fd=$(readlink /dev/fd)
test -d /dev/pts/ && test -d /dev/shm/ && echo devdirs=ok
echo data_in=$(cat /data/in)
echo from-app > /data/out; echo data_write=$?
echo x > /config/x 2>/dev/null; echo config_write=$?
echo x > /data-ro/x 2>/dev/null; echo data_ro_write=$?
echo scratch=$(stat -c %a:%u:%g /var/scratch)
echo hosts_db=$(awk '$2 == "db" {{print $1}}' /etc/hosts)
echo hosts_me=$(awk '$2 == "rkt-test" {{print $1}}' /etc/hosts)
echo x >> /etc/hosts 2>/dev/null; echo hosts_write=$?
echo ns=$(awk '/^nameserver/ {{print $2}}' /etc/resolv.conf)
echo envcount=$(env | grep -v -E '^(PWD|SHLVL|_)=' | wc -l)
echo env_FOO=$FOO; echo env_PATH=$PATH; echo env_HOME=$HOME; echo env_AC_APP_NAME=$AC_APP_NAME; echo env_container=$container
echo fds=$(ls /proc/self/fd | tr '\n' ' ')
echo procs=$(ls -d /proc/[0-9]* | wc -l) pid1=$(cat /proc/1/comm)
echo done=1"#
    );
    pod.script(&script);

    // The wrapper leaves descriptor 7 open without close-on-exec: the app must not get it.
    pod.write_config();
    let mut cmd = Command::new("unshare");
    cmd.args(POD_NAMESPACES)
        .args(["sh", "-c", "exec 7</dev/null; exec \"$0\" \"$@\""])
        .arg(STAGE1)
        .args(["app-exec", "--pod-dir"])
        .arg(pod.dir())
        .args(["--app", "web"]);
    let out = run(cmd);
    pod.assert_no_mounts_left();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(field(&stdout, "done"), "1", "{stdout}");

    // Capabilities: exactly CAP_CHOWN and CAP_KILL, nothing inheritable or ambient.
    assert_eq!(field(&stdout, "CapBnd"), "0000000000000021");
    assert_eq!(field(&stdout, "CapEff"), "0000000000000021");
    assert_eq!(field(&stdout, "CapPrm"), "0000000000000021");
    assert_eq!(field(&stdout, "CapInh"), "0000000000000000");
    assert_eq!(field(&stdout, "CapAmb"), "0000000000000000");
    assert_eq!(field(&stdout, "NoNewPrivs"), "1");
    assert_eq!(field(&stdout, "Uid"), "0\t0\t0\t0");
    assert_eq!(field(&stdout, "Groups"), "10 20");
    // The app is the first process of its PID namespace; the host's are invisible.
    assert_eq!(field(&stdout, "pid"), "1");
    let (procs, pid1) = field(&stdout, "procs").split_once(' ').unwrap();
    assert_eq!(pid1, "pid1=sh");
    assert!(procs.parse::<u32>().unwrap() < 10, "{stdout}");
    // The working directory was created.
    assert_eq!(field(&stdout, "cwd"), "/srv/app");
    // Masked, read-only paths.
    assert_eq!(field(&stdout, "keys"), "0");
    assert_eq!(field(&stdout, "www"), "0");
    assert_eq!(field(&stdout, "mnt/sys"), "sysfs,ro");
    assert_eq!(field(&stdout, "mnt/proc/sys"), "proc,ro");
    assert_eq!(field(&stdout, "mnt/www"), "tmpfs,ro");
    assert_eq!(field(&stdout, "mnt/proc/keys"), "devtmpfs,rw");
    assert!(field(&stdout, "mnt/etc/hosts").ends_with(",ro"), "{stdout}");
    assert!(
        field(&stdout, "mnt/etc/resolv.conf").ends_with(",ro"),
        "{stdout}"
    );
    // /dev.
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        assert_eq!(field(&stdout, &format!("dev_{d}")), "c");
    }
    assert_eq!(field(&stdout, "ptmx"), "pts/ptmx fd=/proc/self/fd");
    assert_eq!(field(&stdout, "devdirs"), "ok");
    // Volumes.
    assert_eq!(field(&stdout, "data_in"), "from-host");
    assert_eq!(field(&stdout, "data_write"), "0");
    assert_eq!(
        fs::read_to_string(host_vol.join("out")).unwrap(),
        "from-app\n"
    );
    assert_ne!(field(&stdout, "config_write"), "0");
    assert_ne!(field(&stdout, "data_ro_write"), "0");
    assert!(!host_vol.join("x").exists());
    assert_eq!(field(&stdout, "scratch"), "710:65534:65534");
    let scratch = fs::metadata(pod.dir().join("volumes/scratch")).unwrap();
    assert_eq!((scratch.mode() & 0o7777, scratch.uid()), (0o710, 65534));
    // /etc files, read-only.
    assert_eq!(field(&stdout, "hosts_db"), "10.0.0.1");
    assert_eq!(field(&stdout, "hosts_me"), "127.0.1.1");
    assert_ne!(field(&stdout, "hosts_write"), "0");
    assert_eq!(field(&stdout, "ns"), "192.0.2.53");
    assert!(pod.dir().join("hosts").is_file() && pod.dir().join("resolv.conf").is_file());
    // Environment: the app's, plus the defaults.
    assert_eq!(field(&stdout, "env_FOO"), "bar");
    assert_eq!(field(&stdout, "env_PATH"), manifests::runtime::DEFAULT_PATH);
    assert_eq!(field(&stdout, "env_HOME"), "/root");
    assert_eq!(field(&stdout, "env_AC_APP_NAME"), "web");
    assert_eq!(field(&stdout, "env_container"), "rkt");
    assert_eq!(field(&stdout, "envcount"), "5");
    // Only stdio (and ls's own directory handle) reach the app.
    assert_eq!(field(&stdout, "fds"), "0 1 2 3");
    // The image itself was not written.
    assert!(!pod.image().join("srv").exists());
    assert!(!pod.image().join("etc/hosts").exists());
}

#[test]
fn non_root_users_get_no_capabilities_and_a_read_only_root() {
    if !can_run() {
        return;
    }
    let mut pod = TestPod::new();
    let app = pod.app();
    app.user = "nobody".into();
    app.group = "nogroup".into();
    app.read_only_rootfs = true;
    app.working_dir = "/srv/work".into();
    pod.script(&format!(
        "{STATUS}
touch /newfile 2>/dev/null; echo root_write=$?
touch /tmp/x 2>/dev/null; echo tmp_write=$?
echo shm_write=$(touch /dev/shm/x && echo ok)
echo cwd=$(pwd) owner=$(stat -c %u:%g .)
echo home=$HOME"
    ));
    let out = pod.app_exec(&[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(field(&stdout, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(field(&stdout, "Gid"), "65534\t65534\t65534\t65534");
    assert_eq!(field(&stdout, "Groups"), "");
    assert_eq!(field(&stdout, "CapEff"), "0000000000000000");
    assert_eq!(field(&stdout, "CapPrm"), "0000000000000000");
    assert_eq!(field(&stdout, "CapAmb"), "0000000000000000");
    assert_eq!(field(&stdout, "CapBnd"), "0000000000000021");
    assert_eq!(field(&stdout, "NoNewPrivs"), "1");
    assert_ne!(field(&stdout, "root_write"), "0");
    assert_ne!(field(&stdout, "tmp_write"), "0");
    assert_eq!(field(&stdout, "shm_write"), "ok");
    assert_eq!(field(&stdout, "cwd"), "/srv/work owner=65534:65534");
    assert_eq!(field(&stdout, "home"), "/");
}

#[test]
fn writes_survive_a_restart_and_never_reach_the_image() {
    if !can_run() {
        return;
    }
    let mut pod = TestPod::new();
    pod.script("cat /tmp/state 2>/dev/null || echo none; echo second > /tmp/state");
    let out = pod.app_exec(&[]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(text(&out).0, "none\n");
    let out = pod.app_exec(&[]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(text(&out).0, "second\n");
    assert!(!pod.image().join("tmp/state").exists());
    assert_eq!(
        fs::read_to_string(pod.dir().join("apps/web/upper/tmp/state")).unwrap(),
        "second\n"
    );
}

#[test]
fn exec_failures_have_shell_exit_codes_and_name_the_app() {
    if !can_run() {
        return;
    }
    let mut pod = TestPod::new();
    pod.app().exec = vec!["no-such-program".into()];
    let out = pod.app_exec(&[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(127), "{stderr}");
    assert!(
        stderr.contains("app web") && stderr.contains("no-such-program"),
        "{stderr}"
    );

    pod.app().exec = vec!["/bin/missing".into()];
    let out = pod.app_exec(&[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(127), "{stderr}");
    assert!(stderr.contains("/bin/missing"), "{stderr}");

    // Not executable: a data file in the image.
    let data = pod.image().join("www/index.html");
    assert_eq!(fs::metadata(&data).unwrap().permissions().mode() & 0o111, 0);
    pod.app().exec = vec!["/www/index.html".into()];
    let out = pod.app_exec(&[]);
    assert_eq!(out.status.code(), Some(126), "{:?}", text(&out));

    // A user name the image does not know.
    pod.app().exec = vec!["/bin/true".into()];
    pod.app().user = "daemon".into();
    let out = pod.app_exec(&[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(254), "{stderr}");
    assert!(
        stderr.contains("app web") && stderr.contains("daemon") && stderr.contains("/etc/passwd"),
        "{stderr}"
    );

    // A volume path climbing out of the root.
    pod.app().user = "0".into();
    pod.cfg.volumes = vec![Volume::Empty {
        name: "v".into(),
        mode: "0755".into(),
        uid: 0,
        gid: 0,
    }];
    pod.app().mounts = vec![Mount {
        volume: "v".into(),
        path: "/../../etc".into(),
        read_only: false,
    }];
    let out = pod.app_exec(&[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(254), "{stderr}");
    assert!(stderr.contains("\"..\""), "{stderr}");
}

#[test]
fn the_app_joins_the_given_cgroups() {
    if !can_run() {
        return;
    }
    // A fake cgroup directory: joining is writing "0" to its cgroup.procs.
    let mut pod = TestPod::new();
    let cg = pod.tmp.path().join("cg");
    fs::create_dir(&cg).unwrap();
    pod.script("echo ok");
    let out = pod.app_exec(&["--cgroup", cg.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(fs::read_to_string(cg.join("cgroup.procs")).unwrap(), "0");
    // A cgroup that cannot be joined stops the app before it runs.
    let out = pod.app_exec(&["--cgroup", "/nonexistent/cgroup"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(254), "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("/nonexistent/cgroup"), "{stderr}");
}

fn status_field(pid: &str, key: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    field(&status, key).to_string()
}

#[test]
fn fly_flavor_keeps_the_host_namespaces() {
    if !can_run() {
        return;
    }
    let mut pod = TestPod::new();
    pod.cfg.flavor = Flavor::Fly;
    pod.script(&format!(
        r#"{STATUS}
echo pid1=$(cat /proc/1/comm)
echo procs=$(ls -d /proc/[0-9]* | wc -l)
echo sys=$(awk '$2 == "/sys" {{print $4}}' /proc/mounts | cut -d, -f1)
echo root=$(ls /www)"#
    ));
    let out = pod.app_exec(&[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Capabilities are the caller's: unchanged.
    assert_eq!(field(&stdout, "CapEff"), status_field("self", "CapEff"));
    assert_eq!(field(&stdout, "CapBnd"), status_field("self", "CapBnd"));
    // The host's processes.
    assert_eq!(
        field(&stdout, "pid1"),
        fs::read_to_string("/proc/1/comm").unwrap().trim()
    );
    assert_ne!(field(&stdout, "procs"), "1");
    assert_eq!(field(&stdout, "sys"), "ro");
    // The app's root is the image.
    assert_eq!(field(&stdout, "root"), "index.html");
}

/// Finds a cgroup hierarchy we can make a test cgroup in: v1 `pids`, else cgroup2.
fn test_cgroup(name: &str) -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut v2 = None;
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = pre.split(' ').nth(4) else {
            continue;
        };
        let mut post = post.split(' ');
        match (post.next(), post.nth(1)) {
            (Some("cgroup"), Some(opts)) if opts.split(',').any(|o| o == "pids") => {
                return Some(Path::new(mount_point).join(name));
            }
            (Some("cgroup2"), _) => v2 = Some(Path::new(mount_point).join(name)),
            _ => {}
        }
    }
    v2
}

#[test]
fn enter_gets_the_apps_namespaces_cgroup_and_privileges() {
    if !can_run() {
        return;
    }
    let mut pod = TestPod::new();
    let app = pod.app();
    app.user = "nobody".into();
    app.group = "nogroup".into();
    app.capabilities = vec!["CAP_CHOWN".into()];
    app.working_dir = "/www".into();
    pod.script("echo ready > /tmp/marker; exec sleep 600");
    pod.write_config();

    let cgroup_name = format!("stage1-enter-test-{}", std::process::id());
    let cgroup = test_cgroup(&cgroup_name).filter(|c| fs::create_dir(c).is_ok());
    if cgroup.is_none() {
        eprintln!("NOTE: no cgroup hierarchy to test with; the cgroup part is skipped");
    }

    // A stand-in for the pod's init: records its host PID and the app's PID inside
    // the pod, as init does.
    let pod_dir = pod.dir();
    let mut init = Command::new("unshare");
    init.args(POD_NAMESPACES)
        .args([
            "sh",
            "-c",
            r#"pod=$1; shift
hostname podhost; read -r pid _ < /proc/self/stat; echo $pid > "$pod/pid.tmp"
mv "$pod/pid.tmp" "$pod/pid"
"$@" & echo $! > "$pod/apps/web/pid"; wait"#,
            "init",
        ])
        .arg(&pod_dir)
        .arg(STAGE1)
        .args(["app-exec", "--pod-dir"])
        .arg(&pod_dir)
        .args(["--app", "web"]);
    if let Some(c) = &cgroup {
        init.arg("--cgroup").arg(c);
    }
    let mut init = init
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let marker = pod_dir.join("apps/web/upper/tmp/marker");
    wait_for("the app to start", || {
        marker.exists() && pod_dir.join("apps/web/pid").exists() && pod_dir.join("pid").exists()
    });

    let enter = |cmd: &[&str]| {
        let mut c = Command::new(STAGE1);
        c.args(["enter", "--pod-dir"])
            .arg(&pod_dir)
            .args(["--app", "web", "--"])
            .args(cmd);
        run(c)
    };
    let out = enter(&[
        "sh",
        "-c",
        &format!(
            "{STATUS}
echo marker=$(cat /tmp/marker)
echo hostname=$(hostname)
echo cwd=$(pwd)
echo foo=$FOO
echo sleeper=$(grep -l '^sleep' /proc/[0-9]*/comm | wc -l)
echo procs=$(ls -d /proc/[0-9]* | wc -l)
echo cgroup=$(grep -c {cgroup_name} /proc/self/cgroup)
exit 7"
        ),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(7), "{stdout}\n{stderr}");
    assert_eq!(field(&stdout, "marker"), "ready");
    assert_eq!(field(&stdout, "hostname"), "podhost");
    assert_eq!(field(&stdout, "cwd"), "/www");
    assert_eq!(field(&stdout, "foo"), "bar");
    assert_eq!(field(&stdout, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(field(&stdout, "CapEff"), "0000000000000000");
    assert_eq!(field(&stdout, "CapBnd"), "0000000000000001");
    assert_eq!(field(&stdout, "NoNewPrivs"), "1");
    // The pod's processes (init, the app, this shell and its children), not the host's.
    assert_eq!(field(&stdout, "sleeper"), "1");
    let procs: u32 = field(&stdout, "procs").parse().unwrap();
    assert!(procs < 10, "{stdout}");
    if cgroup.is_some() {
        assert_eq!(field(&stdout, "cgroup"), "1", "{stdout}");
    }

    let out = enter(&["no-such-tool"]);
    assert_eq!(out.status.code(), Some(127), "{:?}", text(&out));

    // Stop the pod: its pid 1 takes the whole PID namespace with it.
    let pid1: i32 = fs::read_to_string(pod_dir.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid1).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    wait_deadline(&mut init);
    let out = enter(&["true"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(254), "{stderr}");
    assert!(stderr.contains("not running"), "{stderr}");
    pod.assert_no_mounts_left();

    if let Some(c) = cgroup {
        wait_for("the test cgroup to empty", || {
            fs::read_to_string(c.join("cgroup.procs")).is_ok_and(|p| p.trim().is_empty())
        });
        fs::remove_dir(&c).unwrap();
    }
}
