//! rkt-probe: a tiny program e2e tests put into images to report, from inside a pod,
//! what isolation it sees. Prints one JSON object on stdout.
//!
//!   rkt-probe [report]      -> the JSON report
//!   rkt-probe exit CODE     -> exit with CODE
//!   rkt-probe sleep SECS    -> sleep (for stop/kill tests)
//!   rkt-probe alloc MIB     -> touch MIB MiB of memory (for OOM tests)
//!   rkt-probe write PATH    -> try to create PATH; exit 0 if it worked, 1 if not
//!   rkt-probe read PATH     -> try to read one byte of PATH; exit 0 if it worked, 1 if not
//!   rkt-probe escape [NAME...] -> try to break out (every attempt, or those named);
//!                              prints `{"attempts": [{"name", "blocked", "errno",
//!                              "detail"}], "seccomp": MODE}`; see [`ATTEMPTS`]
//!
//! Built statically (`-C target-feature=+crt-static`) so it runs in any rootfs.
//! The escape attempts make raw system calls, hence the unsafe blocks; the probe is
//! single-threaded, so forking to try something that changes the process is safe.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;

use serde_json::{json, Value};

fn status_field(status: &str, key: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
}

fn report() -> Value {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let pid1_comm = fs::read_to_string("/proc/1/comm")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let mounts: Vec<Value> = fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4)
                .then(|| json!({"source": f[0], "target": f[1], "fstype": f[2], "options": f[3]}))
        })
        .collect();
    let kcore = match fs::File::open("/proc/kcore") {
        Ok(mut f) => {
            let mut buf = [0u8; 16];
            match f.read(&mut buf) {
                Ok(0) => "empty",
                Ok(_) => "readable",
                Err(_) => "unreadable",
            }
        }
        Err(_) => "absent",
    };
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let hostname = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let pids: Vec<u32> = fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    // Interfaces of this network namespace (/proc/net/dev is per namespace).
    let net_devs: Vec<String> = fs::read_to_string("/proc/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|n| n.trim().to_string()))
        .collect();
    json!({
        "pid": std::process::id(),
        "netDevs": net_devs,
        "pid1Comm": pid1_comm,
        "visiblePids": pids.len(),
        "hostname": hostname,
        "uid": status_field(&status, "Uid:"),
        "gid": status_field(&status, "Gid:"),
        "groups": status_field(&status, "Groups:"),
        "capEff": status_field(&status, "CapEff:"),
        "capPrm": status_field(&status, "CapPrm:"),
        "capBnd": status_field(&status, "CapBnd:"),
        "noNewPrivs": status_field(&status, "NoNewPrivs:"),
        "cgroup": fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
        "kcore": kcore,
        "sysWritable": fs::write("/sys/kernel/rkt-probe", b"x").is_ok(),
        "procSysWritable": fs::OpenOptions::new().write(true).open("/proc/sys/kernel/hostname").is_ok(),
        "cwd": cwd,
        "env": env,
        "mounts": mounts,
        "hosts": fs::read_to_string("/etc/hosts").unwrap_or_default(),
        "resolvConf": fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        "dev": fs::read_dir("/dev").map(|d| {
            let mut v: Vec<String> = d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            v.sort();
            v
        }).unwrap_or_default(),
    })
}

/// One escape attempt's outcome.
struct Attempt {
    name: &'static str,
    blocked: bool,
    errno: Option<i32>,
    detail: String,
}

impl Attempt {
    fn json(&self) -> Value {
        json!({"name": self.name, "blocked": self.blocked, "errno": self.errno,
               "detail": self.detail})
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn describe(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno).to_string()
}

/// The outcome of a raw call that returned `rc`: blocked when it failed.
fn call(name: &'static str, what: &str, rc: libc::c_long) -> Attempt {
    if rc < 0 {
        let e = errno();
        Attempt {
            name,
            blocked: true,
            errno: Some(e),
            detail: format!("{what}: {}", describe(e)),
        }
    } else {
        Attempt {
            name,
            blocked: false,
            errno: None,
            detail: format!("{what} succeeded ({rc})"),
        }
    }
}

/// Several tries at one thing: blocked only if every try was.
fn all_of(name: &'static str, tries: Vec<Attempt>) -> Attempt {
    let blocked = tries.iter().all(|t| t.blocked);
    Attempt {
        name,
        blocked,
        errno: tries.iter().find_map(|t| t.errno),
        detail: tries
            .iter()
            .map(|t| t.detail.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Runs `f` in a forked child (for attempts that change the process) and returns
/// what it reported through a pipe.
fn in_child(name: &'static str, f: fn() -> Attempt) -> Attempt {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return call(name, "pipe2", -1);
    }
    // SAFETY: the probe is single-threaded, so the child may do anything.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let a = f();
        let text = a.json().to_string();
        // SAFETY: writing a buffer we own to our pipe, then leaving without unwinding.
        unsafe {
            libc::write(fds[1], text.as_ptr().cast(), text.len());
            libc::_exit(0);
        }
    }
    // SAFETY: closing the write end we own; the child has its copy.
    unsafe { libc::close(fds[1]) };
    let mut text = String::new();
    // SAFETY: the read end is ours; File takes it over and closes it.
    let mut reader = unsafe { <fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[0]) };
    let _ = reader.read_to_string(&mut text);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    match serde_json::from_str::<Value>(&text) {
        Ok(v) => Attempt {
            name,
            blocked: v["blocked"].as_bool().unwrap_or(false),
            errno: v["errno"].as_i64().map(|e| e as i32),
            detail: v["detail"].as_str().unwrap_or_default().to_string(),
        },
        // A child killed by the seccomp filter (SIGSYS) was stopped: blocked.
        Err(_) => Attempt {
            name,
            blocked: libc::WIFSIGNALED(status),
            errno: None,
            detail: format!("child ended with wait status {status:#x}"),
        },
    }
}

fn cstr(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).unwrap_or_default()
}

fn try_open(name: &'static str, path: &str, flags: libc::c_int) -> Attempt {
    let p = cstr(path);
    // SAFETY: a valid C string; the descriptor is closed right away.
    let fd = unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd >= 0 {
        // SAFETY: closing the descriptor just opened.
        unsafe { libc::close(fd) };
    }
    call(name, &format!("open {path}"), fd.into())
}

fn try_mount(src: &str, target: &str, fstype: Option<&str>, flags: libc::c_ulong) -> Attempt {
    let (s, t) = (cstr(src), cstr(target));
    let ty = fstype.map(cstr);
    let ty_ptr = ty.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: valid C strings or null; no data argument.
    let rc = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), ty_ptr, flags, std::ptr::null()) };
    if rc == 0 {
        // Do not leave it behind.
        // SAFETY: a valid C string.
        unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) };
    }
    call(
        "mount",
        &format!("mount {src} on {target} ({})", fstype.unwrap_or("bind")),
        rc.into(),
    )
}

const MOUNT_DIR: &str = "/tmp/rkt-probe-mnt";

/// /proc/kcore is the host's physical memory.
fn kcore() -> Attempt {
    match fs::File::open("/proc/kcore") {
        Err(e) => Attempt {
            name: "kcore",
            blocked: true,
            errno: e.raw_os_error(),
            detail: format!("open /proc/kcore: {e}"),
        },
        Ok(mut f) => {
            let mut buf = [0u8; 64];
            match f.read(&mut buf) {
                Ok(0) => Attempt {
                    name: "kcore",
                    blocked: true,
                    errno: None,
                    detail: "/proc/kcore reads as empty (masked)".into(),
                },
                Ok(n) => Attempt {
                    name: "kcore",
                    blocked: false,
                    errno: None,
                    detail: format!("read {n} bytes of /proc/kcore"),
                },
                Err(e) => Attempt {
                    name: "kcore",
                    blocked: true,
                    errno: e.raw_os_error(),
                    detail: format!("read /proc/kcore: {e}"),
                },
            }
        }
    }
}

/// /sys must be read-only: no writing a kernel knob, no new files, no remount.
fn sys_write() -> Attempt {
    let ro = fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(4) == Some(&"/sys"))
                .then(|| f.get(5).is_some_and(|o| o.split(',').any(|x| x == "ro")))
        })
        .next_back();
    let mut tries = vec![
        // Opened for writing only; nothing is written.
        try_open(
            "sys",
            "/sys/kernel/mm/transparent_hugepage/enabled",
            libc::O_WRONLY,
        ),
        try_open(
            "sys",
            "/sys/kernel/rkt-probe",
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        ),
        try_mount("none", "/sys", None, libc::MS_REMOUNT | libc::MS_BIND),
    ];
    tries.push(Attempt {
        name: "sys",
        blocked: ro == Some(true),
        errno: None,
        detail: format!("/sys mounted read-only: {ro:?}"),
    });
    all_of("sys", tries)
}

/// Mounting anything, the host's root in particular (`/` of stage1 is the host's).
fn mount_host_root() -> Attempt {
    let _ = fs::create_dir_all(MOUNT_DIR);
    let mut tries = vec![
        try_mount("proc", MOUNT_DIR, Some("proc"), 0),
        try_mount("tmpfs", MOUNT_DIR, Some("tmpfs"), 0),
        try_mount("/", MOUNT_DIR, None, libc::MS_BIND | libc::MS_REC),
        try_mount(
            "/proc/1/root",
            MOUNT_DIR,
            None,
            libc::MS_BIND | libc::MS_REC,
        ),
    ];
    let dot = cstr("/");
    // SAFETY: open_tree(AT_FDCWD, "/", OPEN_TREE_CLONE) with a valid C string.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            dot.as_ptr(),
            1 as libc::c_uint,
        )
    };
    if fd >= 0 {
        // SAFETY: closing the descriptor just returned.
        unsafe { libc::close(fd as i32) };
    }
    tries.push(call("mount", "open_tree / (clone)", fd));
    let ext4 = cstr("ext4");
    // SAFETY: fsopen("ext4", 0) with a valid C string.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, ext4.as_ptr(), 0 as libc::c_uint) };
    if fd >= 0 {
        // SAFETY: as above.
        unsafe { libc::close(fd as i32) };
    }
    tries.push(call("mount", "fsopen ext4", fd));
    // The classic: a user namespace grants every capability over a new mount namespace.
    tries.push(in_child("mount", || {
        // SAFETY: unshare with flags only.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) };
        if rc != 0 {
            return call("mount", "unshare(CLONE_NEWUSER|CLONE_NEWNS)", rc.into());
        }
        let _ = fs::create_dir_all(MOUNT_DIR);
        let mut t = try_mount("/", MOUNT_DIR, None, libc::MS_BIND | libc::MS_REC);
        t.detail = format!("in a new user namespace: {}", t.detail);
        t
    }));
    all_of("mount", tries)
}

/// stage1's pid 1 lives in the host's root: its /proc/1/root is the host's `/`.
fn proc1_root() -> Attempt {
    match fs::read_dir("/proc/1/root/") {
        Ok(d) => Attempt {
            name: "proc1-root",
            blocked: false,
            errno: None,
            detail: format!("listed /proc/1/root: {} entries", d.count()),
        },
        Err(e) => Attempt {
            name: "proc1-root",
            blocked: true,
            errno: e.raw_os_error(),
            detail: format!("list /proc/1/root: {e}"),
        },
    }
}

/// A block device node made for the host's disks (numbers from the read-only /sys).
fn block_device() -> Attempt {
    let devs: Vec<(String, String)> = fs::read_dir("/sys/class/block")
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let dev = fs::read_to_string(e.path().join("dev")).ok()?;
                    Some((
                        e.file_name().to_string_lossy().into_owned(),
                        dev.trim().to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let _ = fs::create_dir_all("/tmp");
    let mut tries = Vec::new();
    for (name, dev) in devs.iter().filter(|(n, _)| !n.starts_with("loop")).take(4) {
        let Some((major, minor)) = dev.split_once(':') else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u32>(), minor.parse::<u32>()) else {
            continue;
        };
        let path = format!("/tmp/rkt-probe-{name}");
        let p = cstr(&path);
        // SAFETY: a valid C string; a block device node of the given numbers.
        let rc = unsafe {
            libc::mknod(
                p.as_ptr(),
                libc::S_IFBLK | 0o600,
                libc::makedev(major, minor),
            )
        };
        if rc != 0 {
            tries.push(call(
                "block-device",
                &format!("mknod {path} b {dev}"),
                rc.into(),
            ));
            continue;
        }
        let mut t = try_open("block-device", &path, libc::O_RDONLY);
        t.detail = format!("mknod {path} b {dev} worked; {}", t.detail);
        tries.push(t);
        let _ = fs::remove_file(&path);
    }
    if tries.is_empty() {
        return Attempt {
            name: "block-device",
            blocked: true,
            errno: None,
            detail: "no block device listed in /sys/class/block".into(),
        };
    }
    all_of("block-device", tries)
}

fn raw_socket() -> Attempt {
    let mut tries = Vec::new();
    for (what, domain, ty, proto) in [
        (
            "socket(AF_INET, SOCK_RAW, ICMP)",
            libc::AF_INET,
            libc::SOCK_RAW,
            libc::IPPROTO_ICMP,
        ),
        (
            "socket(AF_PACKET, SOCK_RAW)",
            libc::AF_PACKET,
            libc::SOCK_RAW,
            0x0300,
        ), // htons(ETH_P_ALL)
    ] {
        // SAFETY: socket with scalar arguments; closed right away.
        let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
        if fd >= 0 {
            // SAFETY: closing the socket just made.
            unsafe { libc::close(fd) };
        }
        tries.push(call("raw-socket", what, fd.into()));
    }
    all_of("raw-socket", tries)
}

/// Attach (PTRACE_SEIZE: the target is not stopped) to the pod's pid 1, stage1, and
/// every other process in sight; read pid 1's memory.
fn ptrace_others() -> Attempt {
    let me = std::process::id() as i32;
    let mut pids: Vec<i32> = fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .filter(|p| *p != me)
                .collect()
        })
        .unwrap_or_default();
    pids.sort();
    let mut tries = Vec::new();
    for pid in pids {
        // SAFETY: ptrace with scalar arguments.
        let rc = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) };
        if rc == 0 {
            // SAFETY: as above; undo the attach.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
        }
        tries.push(call("ptrace", &format!("PTRACE_SEIZE {pid}"), rc));
    }
    let mut buf = [0u8; 16];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: 0x400000 as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: reads at most 16 bytes into `buf`; the remote address is the target's.
    let rc = unsafe { libc::process_vm_readv(1, &local, 1, &remote, 1, 0) };
    tries.push(call("ptrace", "process_vm_readv 1", rc as libc::c_long));
    all_of("ptrace", tries)
}

/// Writes through /proc/sys reach the host's kernel settings (opened only).
fn proc_sys() -> Attempt {
    all_of(
        "proc-sys",
        vec![
            try_open("proc-sys", "/proc/sys/kernel/hostname", libc::O_WRONLY),
            try_open("proc-sys", "/proc/sys/vm/drop_caches", libc::O_WRONLY),
            try_open("proc-sys", "/proc/sysrq-trigger", libc::O_WRONLY),
        ],
    )
}

fn keyctl() -> Attempt {
    // KEYCTL_GET_KEYRING_ID of the session keyring (-3), without creating it.
    // SAFETY: scalar arguments.
    let rc = unsafe { libc::syscall(libc::SYS_keyctl, 0, -3i64, 0) };
    call("keyctl", "keyctl(GET_KEYRING_ID, session)", rc)
}

fn unshare_userns() -> Attempt {
    in_child("unshare-userns", || {
        // SAFETY: flags only.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
        call("unshare-userns", "unshare(CLONE_NEWUSER)", rc.into())
    })
}

fn clone_newuser() -> Attempt {
    in_child("clone-newuser", || {
        let flags = (libc::SIGCHLD | libc::CLONE_NEWUSER) as libc::c_ulong;
        // SAFETY: a fork-like raw clone; the child leaves at once.
        let rc = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
        if rc == 0 {
            // SAFETY: leaving the child.
            unsafe { libc::_exit(0) };
        }
        if rc > 0 {
            // SAFETY: reaping our child.
            unsafe { libc::waitpid(rc as i32, std::ptr::null_mut(), 0) };
        }
        call("clone-newuser", "clone(CLONE_NEWUSER)", rc)
    })
}

fn kexec_load() -> Attempt {
    // SAFETY: no segments.
    let rc = unsafe { libc::syscall(libc::SYS_kexec_load, 0, 0, std::ptr::null::<u8>(), 0) };
    call("kexec_load", "kexec_load(0 segments)", rc)
}

fn init_module() -> Attempt {
    let args = cstr("");
    // SAFETY: an empty image; the kernel rejects it before reading much.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_init_module,
            std::ptr::null::<u8>(),
            0,
            args.as_ptr(),
        )
    };
    call("init_module", "init_module(empty)", rc)
}

fn bpf() -> Attempt {
    // BPF_PROG_LOAD (5) with an all-zero attribute: refused before any program exists.
    let attr = [0u8; 128];
    // SAFETY: `attr` is a readable buffer of the size given.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), attr.len()) };
    call("bpf", "bpf(PROG_LOAD)", rc)
}

fn clone3() -> Attempt {
    // SAFETY: a null argument of size 0: never a new process.
    let rc = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) };
    let mut a = call("clone3", "clone3(NULL, 0)", rc);
    // Unfiltered, the kernel says EINVAL; the filter says ENOSYS.
    a.blocked = a.errno == Some(libc::ENOSYS);
    a
}

fn io_uring() -> Attempt {
    let params = [0u8; 120];
    // SAFETY: `params` is a buffer of struct io_uring_params' size.
    let rc = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, params.as_ptr()) };
    if rc >= 0 {
        // SAFETY: closing the ring just made.
        unsafe { libc::close(rc as i32) };
    }
    call("io_uring", "io_uring_setup(1)", rc)
}

// --- The allowlist profile: calls newer than its table, capability-gated calls,
// --- terminal injection and vsock. Blocked by the default profile; see
// --- `docs/stage1.md`, "Seccomp".

/// Linux 6.8's `statmount` and `listmount` (the same numbers on x86_64 and aarch64).
const SYS_STATMOUNT: libc::c_long = 457;
const SYS_LISTMOUNT: libc::c_long = 458;
/// A number past every call the profile knows (its highest is 469).
const SYS_BEYOND_TABLE: libc::c_long = 470;

/// `struct mnt_id_req`, version 0.
#[repr(C)]
struct MntIdReq {
    size: u32,
    spare: u32,
    mnt_id: u64,
    param: u64,
}

fn listmount() -> Attempt {
    let req = MntIdReq {
        size: 24,
        spare: 0,
        mnt_id: u64::MAX, // LSMT_ROOT: the mounts below the caller's root
        param: 0,
    };
    let mut ids = [0u64; 64];
    // SAFETY: `req` and `ids` are ours; the kernel writes at most 64 ids.
    let rc = unsafe { libc::syscall(SYS_LISTMOUNT, &req, ids.as_mut_ptr(), ids.len(), 0) };
    call("listmount", "listmount(LSMT_ROOT)", rc)
}

fn statmount() -> Attempt {
    // SAFETY: an all-zero statx is a valid value for the kernel to fill.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let root = cstr("/");
    // SAFETY: a valid path and a statx buffer of ours.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            root.as_ptr(),
            0,
            libc::STATX_MNT_ID_UNIQUE,
            &mut stx,
        )
    };
    if rc != 0 {
        return call("statmount", "statx(/, STATX_MNT_ID_UNIQUE)", rc.into());
    }
    let req = MntIdReq {
        size: 24,
        spare: 0,
        mnt_id: stx.stx_mnt_id,
        param: 1, // STATMOUNT_SB_BASIC
    };
    let mut buf = [0u64; 64];
    // SAFETY: `req` and `buf` are ours; the kernel writes at most 512 bytes.
    let rc = unsafe { libc::syscall(SYS_STATMOUNT, &req, buf.as_mut_ptr(), 512usize, 0) };
    call(
        "statmount",
        &format!("statmount(root mount {})", stx.stx_mnt_id),
        rc,
    )
}

fn beyond_table() -> Attempt {
    // SAFETY: no arguments the kernel reads (a kernel that has the call refuses them).
    let rc = unsafe { libc::syscall(SYS_BEYOND_TABLE, 0, 0, 0, 0) };
    let mut a = call(
        "beyond-table",
        &format!("syscall {SYS_BEYOND_TABLE} (newer than the profile)"),
        rc,
    );
    // ENOSYS is what libc falls back on; anything else got to the kernel.
    a.blocked = a.errno == Some(libc::ENOSYS);
    a
}

/// File handles: the first half of the "shocker" escape (`open_by_handle_at` then
/// opens any file of the file system by handle, past the app's root).
fn name_to_handle_at() -> Attempt {
    let mut tries = Vec::new();
    for path in ["/", "/dev"] {
        let mut handle = [0u32; 34]; // struct file_handle with 128 bytes of handle
        handle[0] = 128;
        let mut mount_id = 0;
        let p = cstr(path);
        // SAFETY: a valid path, a file_handle buffer and an int of ours.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_name_to_handle_at,
                libc::AT_FDCWD,
                p.as_ptr(),
                handle.as_mut_ptr(),
                &mut mount_id,
                0,
            )
        };
        tries.push(call(
            "name_to_handle_at",
            &format!("name_to_handle_at {path}"),
            rc,
        ));
    }
    all_of("name_to_handle_at", tries)
}

/// NUMA memory policy (without CAP_SYS_NICE the profile refuses it).
fn mempolicy() -> Attempt {
    // SAFETY: MPOL_DEFAULT with no node mask.
    let rc = unsafe { libc::syscall(libc::SYS_set_mempolicy, 0, 0, 0) };
    let mut tries = vec![call("mempolicy", "set_mempolicy(MPOL_DEFAULT)", rc)];
    // SAFETY: a fresh anonymous page of ours.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if page != libc::MAP_FAILED {
        // SAFETY: MPOL_DEFAULT on our own page, no node mask.
        let rc = unsafe { libc::syscall(libc::SYS_mbind, page, 4096, 0, 0, 0, 0) };
        tries.push(call("mempolicy", "mbind(MPOL_DEFAULT)", rc));
        // SAFETY: unmapping the page just mapped.
        unsafe { libc::munmap(page, 4096) };
    }
    all_of("mempolicy", tries)
}

/// Take a descriptor out of a process (here our own: CAP_SYS_PTRACE-gated).
fn pidfd_getfd() -> Attempt {
    // SAFETY: our own pid, no flags.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, std::process::id(), 0) };
    if pidfd < 0 {
        return call("pidfd_getfd", "pidfd_open(self)", pidfd);
    }
    // SAFETY: duplicates our own pidfd into a new descriptor, closed below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, pidfd, 0) };
    // SAFETY: closing descriptors we own.
    unsafe {
        if fd >= 0 {
            libc::close(fd as i32);
        }
        libc::close(pidfd as i32);
    }
    call("pidfd_getfd", "pidfd_getfd(self, pidfd)", fd)
}

fn vsock() -> Attempt {
    // SAFETY: socket with scalar arguments; closed right away.
    let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd >= 0 {
        // SAFETY: closing the socket just made.
        unsafe { libc::close(fd) };
    }
    call("vsock", "socket(AF_VSOCK)", fd.into())
}

/// Type a character into a terminal (TIOCSTI): a new pty made our controlling
/// terminal, as the terminal a pod is started from is the app's.
fn tiocsti() -> Attempt {
    in_child("tiocsti", || {
        let ptmx = cstr("/dev/ptmx");
        // SAFETY: a valid path; the descriptors opened here die with the child.
        let master = unsafe { libc::open(ptmx.as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
        if master < 0 {
            return call("tiocsti", "open /dev/ptmx", -1);
        }
        let unlock: libc::c_int = 0;
        // SAFETY: ioctls on our own pty with arguments of ours.
        let slave = unsafe {
            libc::ioctl(master, libc::TIOCSPTLCK, &unlock);
            libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR)
        };
        if slave < 0 {
            return call("tiocsti", "TIOCGPTPEER", -1);
        }
        // SAFETY: a new session in this child, then the pty as its terminal.
        let rc = unsafe {
            libc::setsid();
            libc::ioctl(slave, libc::TIOCSCTTY, 0)
        };
        if rc != 0 {
            return call("tiocsti", "TIOCSCTTY", -1);
        }
        let c = b'x';
        // SAFETY: TIOCSTI reads one byte of ours.
        let rc = unsafe { libc::ioctl(slave, libc::TIOCSTI, &c) };
        call("tiocsti", "ioctl(TIOCSTI) on our terminal", rc.into())
    })
}

type AttemptFn = fn() -> Attempt;

/// Every escape attempt, by name. The first group needs no seccomp filter to be
/// blocked (masked paths, read-only mounts, capabilities, namespaces); the second is
/// what the filter adds.
const ATTEMPTS: &[(&str, AttemptFn)] = &[
    ("kcore", kcore),
    ("sys", sys_write),
    ("mount", mount_host_root),
    ("proc1-root", proc1_root),
    ("block-device", block_device),
    ("raw-socket", raw_socket),
    ("ptrace", ptrace_others),
    ("proc-sys", proc_sys),
    ("keyctl", keyctl),
    ("unshare-userns", unshare_userns),
    ("clone-newuser", clone_newuser),
    ("clone3", clone3),
    ("kexec_load", kexec_load),
    ("init_module", init_module),
    ("bpf", bpf),
    ("io_uring", io_uring),
    // The allowlist profile (see the block above).
    ("listmount", listmount),
    ("statmount", statmount),
    ("beyond-table", beyond_table),
    ("name_to_handle_at", name_to_handle_at),
    ("mempolicy", mempolicy),
    ("pidfd_getfd", pidfd_getfd),
    ("vsock", vsock),
    ("tiocsti", tiocsti),
];

fn escape(names: &[String]) -> Value {
    let mut out = Vec::new();
    for (name, f) in ATTEMPTS {
        if names.is_empty() || names.iter().any(|n| n == name) {
            out.push(f().json());
        }
    }
    for n in names {
        if !ATTEMPTS.iter().any(|(name, _)| name == n) {
            out.push(json!({"name": n, "blocked": false, "errno": null,
                            "detail": "unknown attempt"}));
        }
    }
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    json!({"attempts": out, "seccomp": status_field(&status, "Seccomp:")})
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("report") => println!("{}", report()),
        Some("exit") => {
            let code = args.get(1).and_then(|c| c.parse().ok()).unwrap_or(1);
            std::process::exit(code);
        }
        Some("sleep") => {
            let secs = args.get(1).and_then(|c| c.parse().ok()).unwrap_or(3600);
            std::thread::sleep(std::time::Duration::from_secs(secs));
        }
        Some("alloc") => {
            let mib: usize = args.get(1).and_then(|c| c.parse().ok()).unwrap_or(64);
            let mut blocks = Vec::new();
            for _ in 0..mib {
                let mut v = vec![0u8; 1 << 20];
                for i in (0..v.len()).step_by(4096) {
                    v[i] = 1;
                }
                blocks.push(v);
            }
            println!("allocated {} MiB", blocks.len());
        }
        Some("escape") => println!("{}", escape(&args[1..])),
        Some("write") => {
            let ok = args.get(1).is_some_and(|p| fs::write(p, b"probe").is_ok());
            std::process::exit(if ok { 0 } else { 1 });
        }
        Some("read") => {
            // Read one byte of PATH (never write: it may be a device node).
            let mut byte = [0u8; 1];
            let read = args
                .get(1)
                .ok_or_else(|| std::io::Error::other("no path"))
                .and_then(fs::File::open)
                .and_then(|mut f| f.read(&mut byte));
            match read {
                Ok(n) => println!("read {n} byte(s)"),
                Err(e) => {
                    println!("cannot read: {e}");
                    std::process::exit(1);
                }
            }
        }
        Some(other) => {
            eprintln!("rkt-probe: unknown command {other}");
            std::process::exit(2);
        }
    }
}
