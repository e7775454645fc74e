//! End-to-end: pods with a user namespace (`rkt run --private-users`). Checked from
//! inside (the app's /proc, ownership of the image's files, writes) and from the host
//! (the app's host uid, ownership of what it wrote, the tree store untouched). Needs
//! root. Pods use `--net=none`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use e2e::rkt::{busybox_aci, files_under, is_root, Fetched as Setup, Rkt};
use serde_json::Value;

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
    let aci = busybox_aci(&rkt.scratch(), "example.com/busybox");
    Setup::new(rkt, aci)
}

/// A pod started in the background; killed (by PID) if the test fails.
struct Background {
    child: Option<Child>,
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn poll(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A host directory any uid may write to (like `/tmp`), for a hostPath volume, with a
/// file only host root may read.
fn shared_dir(s: &Setup) -> PathBuf {
    let dir = s.rkt.scratch().join("shared");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
    let secret = dir.join("secret");
    fs::write(&secret, "host root only\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    // Not a module: loading it must fail before the kernel looks at it.
    fs::write(dir.join("garbage.ko"), "not an ELF file\n").unwrap();
    dir
}

fn running_uuid(rkt: &Rkt) -> String {
    let mut uuid = String::new();
    poll("the pod to run", Duration::from_secs(30), || {
        let out = rkt.run(["list", "--format=json"]);
        let pods: Vec<Value> = serde_json::from_str(&out.stdout()).unwrap_or_default();
        match pods.iter().find(|p| p["state"] == "running") {
            Some(p) => {
                uuid = p["uuid"].as_str().unwrap().to_string();
                true
            }
            None => false,
        }
    });
    uuid
}

fn status_field(status: &str, key: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
}

/// Every file of the tree store, with its owner.
fn tree_owners(rkt: &Rkt) -> Vec<(PathBuf, u32, u32)> {
    let tree = rkt.data_dir().join("cas/tree");
    let mut out = Vec::new();
    let mut todo = vec![tree];
    while let Some(dir) = todo.pop() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            let m = fs::symlink_metadata(e.path()).unwrap();
            out.push((e.path(), m.uid(), m.gid()));
            if m.is_dir() {
                todo.push(e.path());
            }
        }
    }
    out
}

const SCRIPT: &str = "\
cat /proc/self/uid_map > /h/uid_map
cat /proc/self/gid_map > /h/gid_map
id -u > /h/uid
stat -c %u:%g /bin/busybox / > /h/image_owners
echo written > /etc/written && cat /etc/written > /h/rootfs_write
cat /h/secret > /h/secret_read 2>&1; echo $? > /h/secret_rc
hostname other 2> /h/hostname_err; echo $? > /h/hostname_rc
mkdir -p /mnt/t && mount -t tmpfs none /mnt/t 2> /h/mount_err; echo $? > /h/mount_rc
echo 1 > /proc/sys/kernel/hostname 2> /h/sysctl_err; echo $? > /h/sysctl_rc
insmod /h/garbage.ko 2> /h/insmod_err; echo $? > /h/insmod_rc
touch /h/done
exec sleep 600
";

#[test]
fn private_users_map_pod_root_to_an_unprivileged_host_range() {
    need_root!("private_users_map_pod_root_to_an_unprivileged_host_range");
    let s = setup();
    let shared = shared_dir(&s);
    let volume = format!("h,kind=host,source={}", shared.display());
    let child = s
        .rkt
        .command([
            "--insecure-options=image",
            "run",
            "--net=none",
            "--private-users",
            "--volume",
            &volume,
            "--mount",
            "volume=h,target=/h",
            s.aci.to_str().unwrap(),
            "--exec=/bin/sh",
            // Even with these kept, root in the pod has no power over the host.
            "--caps-retain=CAP_SYS_ADMIN,CAP_SYS_MODULE,CAP_DAC_OVERRIDE,CAP_CHOWN,CAP_SETUID,CAP_SETGID",
            "--",
            "-c",
            SCRIPT,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut bg = Background { child: Some(child) };
    let uuid = running_uuid(&s.rkt);
    poll("the app's checks", Duration::from_secs(30), || {
        shared.join("done").exists()
    });
    let read = |name: &str| fs::read_to_string(shared.join(name)).unwrap();
    // Rendered for this pod (the overlay's lower layer): root's, as in the image.
    let before = tree_owners(&s.rkt);
    assert!(before.len() > 100, "{before:?}");
    assert!(
        before.iter().all(|(_, u, g)| (*u, *g) == (0, 0)),
        "{before:?}"
    );

    // The range: rkt status (text and JSON), runtime.json, the app's own view.
    let status = s.rkt.ok(["status", &uuid]);
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("user-namespace="))
        .unwrap_or_else(|| panic!("no user-namespace line in:\n{status}"));
    let json: Value = serde_json::from_str(&s.rkt.ok(["status", "--format=json", &uuid])).unwrap();
    let base = json["userNamespace"]["hostUid"].as_u64().unwrap() as u32;
    assert_eq!(
        json["userNamespace"]["hostGid"].as_u64(),
        Some(u64::from(base))
    );
    assert_eq!(json["userNamespace"]["size"], 65536);
    assert_eq!(line, format!("uid:{base}:gid:{base}:size:65536"));
    assert_eq!(base % 65536, 0, "aligned");
    assert!(
        base >= 1 << 28 && u64::from(base) + 65536 <= 1 << 31,
        "{base}"
    );
    for map in ["uid_map", "gid_map"] {
        let fields: Vec<String> = read(map).split_whitespace().map(String::from).collect();
        assert_eq!(
            fields,
            ["0".to_string(), base.to_string(), "65536".into()],
            "{map}"
        );
    }

    // Root inside, the range's base outside.
    assert_eq!(read("uid").trim(), "0");
    let pod_dir = s.rkt.data_dir().join("pods/run").join(&uuid);
    let pid1: u32 = fs::read_to_string(pod_dir.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let children = fs::read_to_string(format!("/proc/{pid1}/task/{pid1}/children")).unwrap();
    // init's children: the apps' reaper (named stage1) and the app.
    let app_pid: u32 = children
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .find(|p| fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() != "stage1"))
        .expect("the app among init's children");
    let app_status = fs::read_to_string(format!("/proc/{app_pid}/status")).unwrap();
    assert_eq!(
        status_field(&app_status, "Uid:"),
        vec![base; 4],
        "{app_status}"
    );
    assert_eq!(
        status_field(&app_status, "Gid:"),
        vec![base; 4],
        "{app_status}"
    );
    // stage1 itself stays host root.
    let pid1_status = fs::read_to_string(format!("/proc/{pid1}/status")).unwrap();
    assert_eq!(status_field(&pid1_status, "Uid:"), vec![0; 4]);

    // The image's files are root's inside; writes land in the overlay's upper dir,
    // owned by the range.
    assert_eq!(read("image_owners"), "0:0\n0:0\n");
    assert_eq!(read("rootfs_write"), "written\n");
    let upper = pod_dir.join("apps/busybox/upper/etc/written");
    let m = fs::metadata(&upper).unwrap();
    assert_eq!((m.uid(), m.gid()), (base, base), "{}", upper.display());

    // A file the app made in a hostPath volume is the range's on the host, not root's.
    for name in ["uid", "done"] {
        let m = fs::metadata(shared.join(name)).unwrap();
        assert_eq!((m.uid(), m.gid()), (base, base), "{name}");
    }

    // Namespaced capabilities: nothing of the host's.
    assert_ne!(
        read("secret_rc").trim(),
        "0",
        "read a host root file: {}",
        read("secret_read")
    );
    assert!(
        read("secret_read").contains("Permission denied"),
        "{}",
        read("secret_read")
    );
    assert_ne!(read("hostname_rc").trim(), "0", "{}", read("hostname_err"));
    assert_ne!(read("mount_rc").trim(), "0", "{}", read("mount_err"));
    assert_ne!(read("sysctl_rc").trim(), "0", "{}", read("sysctl_err"));
    assert_ne!(read("insmod_rc").trim(), "0", "{}", read("insmod_err"));
    // Without module support in the kernel (no /proc/modules) the call fails with
    // ENOSYS whoever makes it; otherwise the capability check refuses it.
    if Path::new("/proc/modules").exists() {
        assert!(
            read("insmod_err").contains("not permitted"),
            "insmod failed for another reason than the missing privilege: {}",
            read("insmod_err")
        );
    } else {
        eprintln!("note: this kernel has no module support; insmod cannot tell");
    }

    // rkt enter joins the user namespace too.
    let out = s.rkt.ok([
        "enter",
        &uuid,
        "/bin/sh",
        "-c",
        "id -u; cat /proc/self/uid_map; touch /h/from-enter",
    ]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    let map: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(map, ["0", base.to_string().as_str(), "65536"], "{out}");
    let m = fs::metadata(shared.join("from-enter")).unwrap();
    assert_eq!((m.uid(), m.gid()), (base, base));

    // Stop and collect: nothing is left, and the tree store is still root's.
    s.rkt.ok(["stop", &uuid]);
    let out = bg.child.take().unwrap().wait_with_output().unwrap();
    assert!(
        out.status.code().is_some(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.rkt.ok(["gc", "--grace-period=0s"]);
    let left: Vec<PathBuf> = fs::read_dir(s.rkt.data_dir().join("pods"))
        .unwrap()
        .flatten()
        .filter(|b| b.path().is_dir())
        .flat_map(|b| files_under(&b.path()))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!pod_dir.exists());
    assert_eq!(tree_owners(&s.rkt), before, "the tree store changed");
}

#[test]
fn pods_get_different_ranges_and_plain_pods_none() {
    need_root!("pods_get_different_ranges_and_plain_pods_none");
    let s = setup();
    let prepare = |extra: &[&str]| {
        let mut args = vec!["--insecure-options=image", "prepare", "--quiet"];
        args.extend_from_slice(extra);
        args.push(s.aci.to_str().unwrap());
        args.extend([
            "--exec=/bin/sh",
            "--",
            "-c",
            "id -u; cat /proc/self/uid_map",
        ]);
        s.rkt.ok(args).trim().to_string()
    };
    let a = prepare(&["--private-users"]);
    let b = prepare(&["--private-users"]);
    let plain = prepare(&[]);
    let range = |uuid: &str| -> Value {
        let json: Value =
            serde_json::from_str(&s.rkt.ok(["status", "--format=json", uuid])).unwrap();
        json["userNamespace"].clone()
    };
    let (ra, rb) = (range(&a), range(&b));
    assert!(ra.is_object() && rb.is_object(), "{ra} {rb}");
    let base = |r: &Value| r["hostUid"].as_u64().unwrap();
    assert!(base(&ra).abs_diff(base(&rb)) >= 65536, "{ra} {rb}");
    assert_eq!(range(&plain), Value::Null);
    let status = s.rkt.ok(["status", &plain]);
    assert!(!status.contains("user-namespace"), "{status}");

    // A prepared pod runs in its range; the fly stage1 refuses the flag.
    let out = s
        .rkt
        .run(["--insecure-options=image", "run-prepared", "--net=none", &a]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let stdout = out.stdout();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("0"), "{stdout}");
    let map: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(
        map,
        ["0".to_string(), base(&ra).to_string(), "65536".into()]
    );
    s.rkt
        .run([
            "--insecure-options=image",
            "run",
            "--private-users",
            "--stage1-name=fly",
            "--net=host",
            s.aci.to_str().unwrap(),
        ])
        .fails_with(254, &["--private-users needs the default stage1"]);
}
