//! `stage1 enter`: run a command inside a running app, with exactly the isolation the
//! app itself got: its cgroups, its IPC, UTS, network, PID and mount namespaces, its
//! root, its user namespace (pods with one), and — through the same code as the start path — its seccomp filter, user
//! and groups, capabilities, `no_new_privs` and environment.
//!
//! The app's process is found from `<pod>/pid` (the host PID of the pod's pid 1) and
//! `<pod>/apps/<app>/pid` (the app's PID inside the pod's PID namespace): it is the
//! process whose `NSpid` ends with that PID and whose PID namespace is pid 1's.
//!
//! [`enter`] joins the namespaces in the calling process, so it must run in a
//! single-threaded process that has nothing else to do (a freshly started
//! `stage1 enter`): a mount namespace can only be joined by a single-threaded caller,
//! and the process drops its privileges before it starts the command. The command is
//! a child (joining a PID namespace only affects children); `enter` waits for it,
//! passes SIGTERM and SIGHUP on to it, and returns its exit status (128+signal if it
//! was killed).

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use manifests::poddir;
use manifests::runtime::{Flavor, RuntimeConfig};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::thread::LinkNameSpaceType;

use crate::cgroups::{self, CgroupError};
use crate::launch::{self, LaunchError};
use crate::seccomp::{Filter, SeccompError};
use crate::security::{self, Privileges, SecurityError};

/// The program run when no command is given.
pub const DEFAULT_COMMAND: &str = "/bin/sh";

#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    #[error("the pod has no app named {app}")]
    UnknownApp { app: String },
    #[error("the pod in {pod_dir} is not running: {reason}", pod_dir = pod_dir.display())]
    PodNotRunning { pod_dir: PathBuf, reason: String },
    #[error("app {app} is not running: {reason}")]
    AppNotRunning { app: String, reason: String },
    #[error("cannot read {path}", path = path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(transparent)]
    JoinCgroup(#[from] CgroupError),
    #[error("cannot open {path}", path = path.display())]
    OpenNamespace { path: PathBuf, source: Errno },
    #[error("cannot join the app's {ns} namespace")]
    SetNamespace { ns: &'static str, source: Errno },
    #[error("cannot switch to the app's root: {0}")]
    SwitchRoot(Errno),
    #[error("app {app}")]
    Security { app: String, source: SecurityError },
    #[error("app {app}")]
    UserNamespace {
        app: String,
        source: crate::userns::UsernsError,
    },
    #[error("app {app}")]
    Seccomp { app: String, source: SeccompError },
    #[error(transparent)]
    Command(Box<LaunchError>),
    #[error("cannot start {program}", program = program.display())]
    Spawn { program: PathBuf, source: io::Error },
    #[error("cannot wait for {program}", program = program.display())]
    Wait { program: PathBuf, source: io::Error },
}

impl EnterError {
    /// The exit status `stage1 enter` ends with: 127/126 when the command cannot be
    /// found/executed, 254 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            EnterError::Command(e) => e.exit_code(),
            EnterError::Spawn { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                launch::EXIT_NOT_FOUND
            }
            EnterError::Spawn { .. } => launch::EXIT_NOT_EXECUTABLE,
            _ => launch::EXIT_SETUP_FAILED,
        }
    }
}

/// The namespaces joined, in order (mount last: after it the host's paths are gone).
const NAMESPACES: &[(&str, LinkNameSpaceType)] = &[
    ("ipc", LinkNameSpaceType::InterProcessCommunication),
    ("uts", LinkNameSpaceType::HostNameAndNISDomainName),
    ("net", LinkNameSpaceType::Network),
    ("pid", LinkNameSpaceType::ProcessID),
    ("mnt", LinkNameSpaceType::Mount),
];

/// The `NSpid:` line of a `/proc/<pid>/status`: the PID in each PID namespace, from
/// the reader's namespace down to the process's own.
pub fn parse_nspid(status: &str) -> Option<Vec<u32>> {
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().map(|p| p.parse().ok()).collect()
}

fn read(path: &Path) -> Result<String, EnterError> {
    fs::read_to_string(path).map_err(|source| EnterError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Identity of a namespace (or any file): device and inode.
fn file_id(path: &Path) -> io::Result<(u64, u64)> {
    let m = fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

/// The `PPid:` of a `/proc/<pid>/status` (in the reader's PID namespace).
fn parse_ppid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))?
        .trim()
        .parse()
        .ok()
}

/// The host PID of the process that has PID `ns_pid` in the PID namespace of host
/// process `pid1`, scanning the procfs at `proc`. `None` if there is none. The
/// process is in that namespace or, like the apps of a default-flavor pod, in the
/// namespace nested in it whose processes are `pid1`'s children (see `reaper`).
pub fn find_in_pid_namespace(
    proc: &Path,
    pid1: u32,
    ns_pid: u32,
) -> Result<Option<u32>, EnterError> {
    let ns_path = proc.join(pid1.to_string()).join("ns/pid");
    let target = file_id(&ns_path).map_err(|source| EnterError::Read {
        path: ns_path,
        source,
    })?;
    // pid1's namespace, counted from ours: its index in every NSpid list below it.
    let level = parse_nspid(&read(&proc.join(pid1.to_string()).join("status"))?)
        .map_or(0, |p| p.len().saturating_sub(1));
    let entries = fs::read_dir(proc).map_err(|source| EnterError::Read {
        path: proc.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes come and go while we look: unreadable ones are skipped.
        let Ok(status) = fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        if parse_nspid(&status).and_then(|p| p.get(level).copied()) != Some(ns_pid) {
            continue;
        }
        if parse_ppid(&status) == Some(pid1)
            || file_id(&entry.path().join("ns/pid")).ok() == Some(target)
        {
            return Ok(Some(pid));
        }
    }
    Ok(None)
}

fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let v = d.iter().try_fold(0u32, |acc, b| {
                (b'0'..=b'7')
                    .contains(b)
                    .then(|| acc * 8 + u32::from(b - b'0'))
            })?;
            u8::try_from(v).ok()
        });
        if let (b'\\', Some(v)) = (bytes[i], octal) {
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct CgroupMount {
    root: String,
    mount_point: PathBuf,
    v2: bool,
    options: Vec<String>,
}

fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let pre: Vec<&str> = before.split(' ').collect();
            let post: Vec<&str> = after.split(' ').collect();
            if pre.len() < 5 || post.len() < 3 {
                return None;
            }
            let v2 = match post[0] {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            Some(CgroupMount {
                root: unescape_mountinfo(pre[3]),
                mount_point: PathBuf::from(unescape_mountinfo(pre[4])),
                v2,
                options: post[2].split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// The cgroup directories a process is in: its `/proc/<pid>/cgroup` lines mapped onto
/// the cgroup filesystems mounted in the caller's `mountinfo`. Hierarchies that are
/// not mounted (or whose mount does not show the process's cgroup) are left out.
pub fn cgroup_dirs(proc_cgroup: &str, mountinfo: &str) -> Vec<PathBuf> {
    let mounts = cgroup_mounts(mountinfo);
    let mut dirs: Vec<PathBuf> = Vec::new();
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let wanted: Vec<&str> = controllers.split(',').filter(|c| !c.is_empty()).collect();
        let mount = mounts.iter().find(|m| {
            if wanted.is_empty() {
                m.v2
            } else {
                !m.v2 && wanted.iter().all(|c| m.options.iter().any(|o| o == c))
            }
        });
        let Some(m) = mount else { continue };
        let rel = if m.root == "/" {
            Some(path)
        } else {
            path.strip_prefix(m.root.as_str())
                .filter(|r| r.is_empty() || r.starts_with('/'))
        };
        let Some(rel) = rel else { continue };
        let dir = m.mount_point.join(rel.trim_start_matches('/'));
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

fn read_pid(path: &Path) -> Result<Option<u32>, EnterError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s.trim().parse().ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(EnterError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Finds the host PID of `app`'s running process, using the procfs at `proc`.
pub fn find_app_pid(
    pod_dir: &Path,
    cfg: &RuntimeConfig,
    app: &str,
    proc: &Path,
) -> Result<u32, EnterError> {
    let not_running = |reason: String| EnterError::PodNotRunning {
        pod_dir: pod_dir.to_path_buf(),
        reason,
    };
    let app_not_running = |reason: String| EnterError::AppNotRunning {
        app: app.to_string(),
        reason,
    };
    let pid_file = pod_dir.join(poddir::PID_FILE);
    let pid1 = read_pid(&pid_file)?
        .ok_or_else(|| not_running(format!("{} is missing or invalid", pid_file.display())))?;
    let status = fs::read_to_string(proc.join(pid1.to_string()).join("status"))
        .map_err(|_| not_running(format!("its pid 1 (host PID {pid1}) is gone")))?;
    if cfg.flavor == Flavor::Default
        && parse_nspid(&status).and_then(|p| p.last().copied()) != Some(1)
    {
        return Err(not_running(format!(
            "host PID {pid1} is not the pid 1 of a PID namespace"
        )));
    }
    let app_pid_file = poddir::app_dir(pod_dir, app).join(poddir::APP_PID_FILE);
    let ns_pid = read_pid(&app_pid_file)?
        .ok_or_else(|| app_not_running(format!("{} is missing", app_pid_file.display())))?;
    find_in_pid_namespace(proc, pid1, ns_pid)?
        .ok_or_else(|| app_not_running(format!("no process has PID {ns_pid} in the pod")))
}

/// Runs `cmd` (default [`DEFAULT_COMMAND`]) in the running `app` of the pod in
/// `pod_dir` and returns its exit status. See the module documentation.
/// An app's process starts as stage1's launcher, which builds the app's mount
/// namespace and root and then execs the app. Entering before that exec would join
/// a namespace without the app's root, so wait (a bounded time) until the process
/// no longer runs the stage1 binary.
fn wait_until_exec(pid_dir: &Path) {
    let Ok(ours) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        match std::fs::read_link(pid_dir.join("exe")) {
            Ok(exe) if exe == ours => std::thread::sleep(std::time::Duration::from_millis(10)),
            _ => return,
        }
    }
}

pub fn enter(
    pod_dir: &Path,
    cfg: &RuntimeConfig,
    app_name: &str,
    cmd: &[String],
) -> Result<i32, EnterError> {
    let app = cfg.app(app_name).ok_or_else(|| EnterError::UnknownApp {
        app: app_name.to_string(),
    })?;
    let on_security = |source| EnterError::Security {
        app: app_name.to_string(),
        source,
    };
    let restrict = cfg.flavor == Flavor::Default;
    if restrict {
        security::parse_capabilities(&app.capabilities).map_err(on_security)?;
    }
    let proc = Path::new("/proc");
    let pid = find_app_pid(pod_dir, cfg, app_name, proc)?;
    let pid_dir = proc.join(pid.to_string());
    wait_until_exec(&pid_dir);

    // Everything from the host side first: cgroups, namespace handles, the app's root.
    let cgroup_file = pid_dir.join("cgroup");
    let dirs = cgroup_dirs(&read(&cgroup_file)?, &read(&proc.join("self/mountinfo"))?);
    cgroups::join(&dirs)?;
    let open = |path: PathBuf, flags: OFlags| {
        rustix::fs::open(&path, flags | OFlags::CLOEXEC, Mode::empty())
            .map_err(|source| EnterError::OpenNamespace { path, source })
    };
    let mut namespaces: Vec<(&'static str, LinkNameSpaceType, OwnedFd)> = Vec::new();
    for (name, kind) in NAMESPACES {
        namespaces.push((
            name,
            *kind,
            open(pid_dir.join("ns").join(name), OFlags::RDONLY)?,
        ));
    }
    let root = open(pid_dir.join("root"), OFlags::RDONLY | OFlags::DIRECTORY)?;
    // The app's user namespace is joined last: joining the others needs host
    // privileges, which it takes away.
    let userns = match cfg.user_namespace {
        Some(_) => Some(open(pid_dir.join("ns/user"), OFlags::RDONLY)?),
        None => None,
    };
    // Still in the host's /proc: afterwards /proc/self may not exist for us.
    security::cloexec_fds_above_stdio(&proc.join("self/fd")).map_err(on_security)?;

    for (name, kind, fd) in &namespaces {
        rustix::thread::move_into_link_name_space(fd.as_fd(), Some(*kind))
            .map_err(|source| EnterError::SetNamespace { ns: name, source })?;
    }
    rustix::process::fchdir(&root).map_err(EnterError::SwitchRoot)?;
    rustix::process::chroot(".").map_err(EnterError::SwitchRoot)?;
    drop(root);
    drop(namespaces);
    // Resolved in the app's root, never through /proc's magic links.
    crate::rootfs::chdir_in_root(&app.working_dir).map_err(EnterError::SwitchRoot)?;
    if let Some(ns) = userns {
        crate::userns::join(ns.as_fd()).map_err(|source| EnterError::UserNamespace {
            app: app_name.to_string(),
            source,
        })?;
    }

    let identity = security::resolve_identity(Path::new("/"), app).map_err(on_security)?;
    let env = security::app_env(app, &identity);
    let privileges = Privileges::for_app(app, identity, restrict).map_err(on_security)?;
    // The app's seccomp filter, as on the start path; the command inherits it.
    let on_seccomp = |source| EnterError::Seccomp {
        app: app_name.to_string(),
        source,
    };
    if let Some(filter) = Filter::for_app(app, cfg.flavor).map_err(on_seccomp)? {
        filter.install().map_err(on_seccomp)?;
    }
    security::apply(&privileges).map_err(on_security)?;

    let argv: Vec<String> = if cmd.is_empty() {
        vec![DEFAULT_COMMAND.to_string()]
    } else {
        cmd.to_vec()
    };
    let mut command = launch::command_for(app_name, &argv, &env, Path::new("/"))
        .map_err(|e| EnterError::Command(Box::new(e)))?;
    let program = PathBuf::from(command.get_program());
    run_forwarding_signals(&mut command, &program)
}

/// Spawns `command` and waits for it. SIGTERM and SIGHUP sent to us are passed on;
/// SIGINT and SIGQUIT are not acted on (a terminal sends them to the command too).
/// The command starts with default signal handling (handlers do not survive exec).
///
/// No thread is started: after joining a PID namespace a process cannot create
/// threads (they would be in a different PID namespace from their process), so the
/// wait is driven by SIGCHLD.
fn run_forwarding_signals(
    command: &mut std::process::Command,
    program: &Path,
) -> Result<i32, EnterError> {
    use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let wait_err = |source| EnterError::Wait {
        program: program.to_path_buf(),
        source,
    };
    // Installed before the command starts, so neither its exit nor a stop request is
    // missed; without handlers these signals would kill us and leave the command.
    let mut signals =
        signal_hook::iterator::Signals::new([SIGCHLD, SIGTERM, SIGHUP, SIGINT, SIGQUIT])
            .map_err(wait_err)?;
    let mut child = command.spawn().map_err(|source| EnterError::Spawn {
        program: program.to_path_buf(),
        source,
    })?;
    let child_pid = rustix::process::Pid::from_raw(child.id() as i32);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(wait_err)? {
            break status;
        }
        for sig in signals.wait() {
            if sig != SIGTERM && sig != SIGHUP {
                continue;
            }
            if let (Some(pid), Some(sig)) =
                (child_pid, rustix::process::Signal::from_named_raw(sig))
            {
                let _ = rustix::process::kill_process(pid, sig);
            }
        }
    };
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(launch::EXIT_SETUP_FAILED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nspid_parsing() {
        let status = "Name:\tsh\nPid:\t4242\nNSpid:\t4242\t7\nPPid:\t1\n";
        assert_eq!(parse_nspid(status), Some(vec![4242, 7]));
        assert_eq!(parse_nspid("NSpid:\t12\n"), Some(vec![12]));
        assert_eq!(parse_nspid("Name:\tsh\n"), None);
        assert_eq!(parse_nspid("NSpid:\tx\n"), None);
    }

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:5 - cgroup2 cgroup2 rw
50 31 0:39 /sub /mnt/pids\\040dir rw - cgroup cgroup rw,pids
";

    #[test]
    fn cgroup_lines_map_to_mounted_hierarchies() {
        let proc_cgroup = "\
12:pids:/sub/rkt/u/web
5:memory:/rkt/u/web
4:cpu:/rkt/u/web
3:blkio:/rkt/u/web
1:name=systemd:/user.slice
0::/rkt/u/web
";
        let dirs = cgroup_dirs(proc_cgroup, MOUNTINFO);
        assert_eq!(
            dirs,
            vec![
                PathBuf::from("/mnt/pids dir/rkt/u/web"),
                PathBuf::from("/sys/fs/cgroup/memory/rkt/u/web"),
                PathBuf::from("/sys/fs/cgroup/cpu/rkt/u/web"),
                PathBuf::from("/sys/fs/cgroup/systemd/user.slice"),
                PathBuf::from("/sys/fs/cgroup/unified/rkt/u/web"),
            ]
        );
        // A cgroup outside a bind-mounted subtree cannot be reached through it.
        assert!(cgroup_dirs("12:pids:/other\n", MOUNTINFO).is_empty());
        // A pure v2 host.
        let v2 = "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup_dirs("0::/system.slice/x.service\n", v2),
            vec![PathBuf::from("/sys/fs/cgroup/system.slice/x.service")]
        );
    }

    /// A fake procfs: pid -> (NSpid line, namespace file to hard-link as ns/pid,
    /// parent).
    fn fake_proc(entries: &[(u32, &str, &str, u32)]) -> tempfile::TempDir {
        let proc = tempfile::tempdir().unwrap();
        for ns in ["host", "pod", "other", "apps", "other-apps"] {
            fs::write(proc.path().join(ns), ns).unwrap();
        }
        for (pid, nspid, ns, ppid) in entries {
            let dir = proc.path().join(pid.to_string());
            fs::create_dir_all(dir.join("ns")).unwrap();
            fs::write(
                dir.join("status"),
                format!("Name:\tx\nPPid:\t{ppid}\nNSpid:\t{nspid}\n"),
            )
            .unwrap();
            fs::hard_link(proc.path().join(ns), dir.join("ns/pid")).unwrap();
        }
        proc
    }

    fn config(flavor: Flavor) -> RuntimeConfig {
        serde_json::from_value(serde_json::json!({
            "version": 1, "uuid": "u", "flavor": flavor, "hostname": "h",
            "apps": [{"name": "web", "imageId": "sha512-x", "image": "/x", "exec": ["/bin/sh"],
                      "user": "0", "group": "0", "capabilities": []}]
        }))
        .unwrap()
    }

    #[test]
    fn the_app_process_is_found_by_its_pid_in_the_pod() {
        let proc = fake_proc(&[
            (100, "100\t1", "pod", 50),
            (101, "101\t2", "pod", 100),
            (200, "200\t1", "other", 50),
            (201, "201\t2", "other", 200),
            (2, "2", "host", 1),
            // Apps in the namespaces nested in each pod's (their reapers are 1 there).
            (102, "102\t4\t2", "apps", 100),
            (202, "202\t4\t2", "other-apps", 200),
            // A grandchild in the nested namespace: not an app's own process.
            (103, "103\t5\t3", "apps", 102),
        ]);
        assert_eq!(
            find_in_pid_namespace(proc.path(), 100, 2).unwrap(),
            Some(101)
        );
        assert_eq!(
            find_in_pid_namespace(proc.path(), 100, 4).unwrap(),
            Some(102)
        );
        assert_eq!(
            find_in_pid_namespace(proc.path(), 200, 4).unwrap(),
            Some(202)
        );
        assert_eq!(find_in_pid_namespace(proc.path(), 100, 5).unwrap(), None);
        assert_eq!(
            find_in_pid_namespace(proc.path(), 200, 2).unwrap(),
            Some(201)
        );
        assert_eq!(find_in_pid_namespace(proc.path(), 100, 3).unwrap(), None);

        let pod = tempfile::tempdir().unwrap();
        let cfg = config(Flavor::Default);
        let err = find_app_pid(pod.path(), &cfg, "web", proc.path()).unwrap_err();
        assert!(matches!(err, EnterError::PodNotRunning { .. }), "{err}");
        fs::write(pod.path().join("pid"), "100\n").unwrap();
        let err = find_app_pid(pod.path(), &cfg, "web", proc.path()).unwrap_err();
        assert!(
            matches!(&err, EnterError::AppNotRunning { app, .. } if app == "web"),
            "{err}"
        );
        fs::create_dir_all(pod.path().join("apps/web")).unwrap();
        fs::write(pod.path().join("apps/web/pid"), "2\n").unwrap();
        assert_eq!(
            find_app_pid(pod.path(), &cfg, "web", proc.path()).unwrap(),
            101
        );
        fs::write(pod.path().join("apps/web/pid"), "9\n").unwrap();
        let err = find_app_pid(pod.path(), &cfg, "web", proc.path()).unwrap_err();
        assert!(err.to_string().contains("no process has PID 9"), "{err}");

        // A recycled PID that is not a namespace's pid 1 is not the pod.
        fs::write(pod.path().join("pid"), "2\n").unwrap();
        let err = find_app_pid(pod.path(), &cfg, "web", proc.path()).unwrap_err();
        assert!(matches!(err, EnterError::PodNotRunning { .. }), "{err}");
        // A gone pid 1.
        fs::write(pod.path().join("pid"), "999\n").unwrap();
        let err = find_app_pid(pod.path(), &cfg, "web", proc.path()).unwrap_err();
        assert!(err.to_string().contains("is gone"), "{err}");
        // The fly flavor shares the host's PID namespace.
        fs::write(pod.path().join("pid"), "2\n").unwrap();
        fs::write(pod.path().join("apps/web/pid"), "2\n").unwrap();
        assert_eq!(
            find_app_pid(pod.path(), &config(Flavor::Fly), "web", proc.path()).unwrap(),
            2
        );
    }

    #[test]
    fn unknown_app_is_an_error() {
        let pod = tempfile::tempdir().unwrap();
        let err = enter(pod.path(), &config(Flavor::Default), "db", &[]).unwrap_err();
        assert_eq!(err.to_string(), "the pod has no app named db");
        assert_eq!(err.exit_code(), 254);
    }
}
