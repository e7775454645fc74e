//! stage1: the pod supervisor. See docs/stage1.md.
//!
//! Entry points: `run` (stage0 execs it), `enter`, `gc`; and two internal ones that
//! stage1 runs itself: `init` (the pod's PID 1) and `app-exec` (sets up one app and
//! execs it).

mod cgroups;
mod devices;
mod enter;
mod exitcode;
mod handshake;
mod init;
mod launch;
mod logs;
mod mountapi;
mod podfiles;
mod probe;
mod pty;
mod reaper;
mod rootfs;
mod seccomp;
mod security;
mod userns;

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use manifests::poddir::{self, LOCK_FD_ENV};
use manifests::runtime::{Flavor, RuntimeConfig};
use rustix::io::{Errno, FdFlags};
use rustix::process::{kill_process, Pid, Signal, WaitOptions};

use crate::exitcode::{exit_code_of, EXIT_STAGE1_FAILED};
use crate::init::{Options, SignalWatch, STOP_SIGNALS};
use crate::podfiles::load_config;

/// How long `gc` waits for a cgroup's processes to die.
const GC_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the terminal relay may lag behind the pod's end.
const RELAY_DRAIN: Duration = Duration::from_secs(2);

const USAGE: &str = "usage:
  stage1 run --pod-dir DIR
  stage1 enter --pod-dir DIR --app NAME [--] [CMD [ARG...]]
  stage1 gc --pod-dir DIR";

/// Command-line arguments of every subcommand.
#[derive(Debug, Default)]
struct Args {
    pod_dir: Option<PathBuf>,
    app: Option<String>,
    cgroups: Vec<PathBuf>,
    pty: bool,
    sync_fd: Option<RawFd>,
    pty_fd: Option<RawFd>,
    /// The pod's user namespace (`init`, `app-exec`).
    userns_fd: Option<RawFd>,
    /// `enter`'s command.
    command: Vec<OsString>,
}

impl Args {
    /// The pod directory, made absolute (the apps' mounts and the status files are
    /// found through it from other working directories and roots).
    fn pod_dir(&self) -> anyhow::Result<PathBuf> {
        let dir = self
            .pod_dir
            .as_deref()
            .ok_or_else(|| anyhow!("--pod-dir is required\n{USAGE}"))?;
        std::fs::canonicalize(dir)
            .with_context(|| format!("cannot find the pod directory {}", dir.display()))
    }
    fn app(&self) -> anyhow::Result<&str> {
        self.app
            .as_deref()
            .ok_or_else(|| anyhow!("--app is required\n{USAGE}"))
    }
}

fn parse_args(mut it: impl Iterator<Item = OsString>) -> anyhow::Result<(String, Args)> {
    let sub = it
        .next()
        .and_then(|s| s.into_string().ok())
        .ok_or_else(|| anyhow!("no command given\n{USAGE}"))?;
    let mut args = Args::default();
    while let Some(arg) = it.next() {
        let text = arg.to_string_lossy().into_owned();
        if text == "--" {
            args.command.extend(it.by_ref());
            break;
        }
        if !text.starts_with("--") {
            args.command.push(arg);
            args.command.extend(it.by_ref());
            break;
        }
        let (flag, inline) = match text.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(OsString::from(v))),
            None => (text.clone(), None),
        };
        if flag == "--pty" {
            args.pty = true;
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?,
        };
        let fd = |v: &OsString| -> anyhow::Result<RawFd> {
            v.to_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow!("{flag}: not a file descriptor: {}", v.to_string_lossy()))
        };
        match flag.as_str() {
            "--pod-dir" => args.pod_dir = Some(PathBuf::from(value)),
            "--app" => {
                args.app = Some(
                    value
                        .into_string()
                        .map_err(|v| anyhow!("--app: not UTF-8: {}", v.to_string_lossy()))?,
                )
            }
            "--cgroup" => args.cgroups.push(PathBuf::from(value)),
            "--sync-fd" => args.sync_fd = Some(fd(&value)?),
            "--pty-fd" => args.pty_fd = Some(fd(&value)?),
            "--userns-fd" => args.userns_fd = Some(fd(&value)?),
            _ => bail!("unknown option {flag}\n{USAGE}"),
        }
    }
    Ok((sub, args))
}

fn main() -> ExitCode {
    // Every stage1 process holds host privileges, descriptors and the host's root at
    // some point while apps of the pod (which see it in their PID namespace) run: not
    // dumpable, its /proc/PID/{root,cwd,exe,fd,environ,mem} are closed to anything
    // without CAP_SYS_PTRACE, and it cannot be ptraced by the pod's uid. An app's
    // execve makes the app dumpable again as usual.
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        eprintln!("stage1: cannot make this process non-dumpable: {e}");
        return ExitCode::from(EXIT_STAGE1_FAILED);
    }
    let result =
        parse_args(std::env::args_os().skip(1)).and_then(|(sub, args)| match sub.as_str() {
            "run" => cmd_run(&args.pod_dir()?),
            "init" => cmd_init(&args),
            "app-exec" => cmd_app_exec(&args),
            "enter" => cmd_enter(&args),
            "gc" => cmd_gc(&args.pod_dir()?),
            "reaper" => reaper::run().context("the apps' reaper failed"),
            "userns-child" => userns::child_main()
                .map(|()| 0)
                .context("cannot create a user namespace"),
            other => bail!("unknown command {other:?}\n{USAGE}"),
        });
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("stage1: {e:#}");
            ExitCode::from(EXIT_STAGE1_FAILED)
        }
    }
}

/// Take ownership of descriptor `raw`, which our parent left open for us.
#[allow(unsafe_code)]
fn inherited_fd(raw: RawFd, what: &str) -> anyhow::Result<OwnedFd> {
    if raw <= 2 {
        bail!("{what}: descriptor {raw} is one of stdin, stdout, stderr");
    }
    // SAFETY: the descriptor is only borrowed for this one call; if it is not open the
    // call fails and nothing else happens.
    let check = rustix::io::fcntl_getfd(unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) });
    check.with_context(|| format!("{what}: descriptor {raw} is not open"))?;
    // SAFETY: the descriptor is open (checked above) and was handed to this process by
    // its parent to own; each one is taken exactly once, at start-up, before anything
    // else in this process could have opened or closed it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The pod directory's lock, as stage0 passed it.
fn lock_fd() -> anyhow::Result<OwnedFd> {
    let raw = std::env::var(LOCK_FD_ENV)
        .with_context(|| format!("{LOCK_FD_ENV} is not set (stage0 passes the pod lock)"))?;
    let raw: RawFd = raw
        .parse()
        .with_context(|| format!("{LOCK_FD_ENV}={raw} is not a file descriptor"))?;
    inherited_fd(raw, LOCK_FD_ENV)
}

fn set_cloexec(fd: &OwnedFd, on: bool) -> io::Result<()> {
    let flags = if on {
        FdFlags::CLOEXEC
    } else {
        FdFlags::empty()
    };
    rustix::io::fcntl_setfd(fd, flags).map_err(io::Error::from)
}

fn watch_signals(interactive: bool) -> io::Result<SignalWatch> {
    let mut signals = STOP_SIGNALS.to_vec();
    signals.push(signal_hook::consts::SIGCHLD);
    if interactive {
        signals.push(signal_hook::consts::SIGWINCH);
    }
    SignalWatch::new(&signals)
}

fn cmd_run(pod_dir: &Path) -> anyhow::Result<i32> {
    let cfg = load_config(pod_dir)?;
    if cfg.interactive && cfg.apps.len() != 1 {
        bail!(
            "an interactive pod has exactly one app; this one has {}",
            cfg.apps.len()
        );
    }
    let lock = lock_fd()?;
    // Registered before anything starts, so no stop request is lost.
    let mut watch = watch_signals(cfg.interactive).context("cannot set up signal handling")?;
    match cfg.flavor {
        Flavor::Default => run_default(pod_dir, &cfg, lock, &mut watch),
        Flavor::Fly => run_fly(pod_dir, &cfg, lock, &mut watch),
    }
}

/// The relay for an interactive pod's single app, logging to the app's log.
fn start_relay(pod_dir: &Path, cfg: &RuntimeConfig, master: OwnedFd) -> anyhow::Result<pty::Relay> {
    let app_dir = poddir::app_dir(pod_dir, &cfg.apps[0].name);
    std::fs::create_dir_all(&app_dir)
        .with_context(|| format!("cannot create {}", app_dir.display()))?;
    let log = logs::LogFile::open(&app_dir.join(poddir::APP_LOG_FILE), cfg.log_max_bytes)?;
    let relay = pty::Relay::new(master, Some(log));
    relay.resize();
    Ok(relay)
}

/// Default flavor: new namespaces, `init` as the pod's PID 1, `run` waits for it.
fn run_default(
    pod_dir: &Path,
    cfg: &RuntimeConfig,
    lock: OwnedFd,
    watch: &mut SignalWatch,
) -> anyhow::Result<i32> {
    // The lock stays open here and, without close-on-exec, in init.
    set_cloexec(&lock, false).context("cannot pass the pod lock on")?;
    let (pty, userns) = enter_pod(cfg)?;
    let exe = seal_own_binary().context("cannot bind stage1's binary read-only in the pod")?;
    let (master, slave) = match pty {
        Some(p) => (Some(p.master), Some(p.slave)),
        None => (None, None),
    };
    let (sync, init_pid) = spawn_init(&exe, pod_dir, slave, userns)?;
    write_pid_file(pod_dir, init_pid.as_raw_nonzero())?;

    let mut relay = match master.map(|m| start_relay(pod_dir, cfg, m)).transpose() {
        Ok(r) => r,
        Err(e) => {
            let _ = kill_process(init_pid, Signal::KILL);
            return Err(e);
        }
    };
    // Restored when this function returns, whichever way.
    let _raw = match &relay {
        Some(_) => pty::RawTerminal::enable(rustix::stdio::stdin())?,
        None => None,
    };
    let code = wait_for_init(init_pid, sync, relay.as_mut(), watch)?;
    if let Some(r) = &mut relay {
        r.drain(Instant::now() + RELAY_DRAIN);
    }
    drop(lock);
    Ok(code)
}

/// Moves `run` into the pod, in the order the steps need: an interactive pod's pty
/// from the host's `/dev/ptmx` (before the mount namespace changes), the user
/// namespace (before the PID namespace changes: its helper is found in our `/proc`),
/// the pod's own namespaces, and the network namespace to join. Returns the pty and
/// the user namespace, for init.
fn enter_pod(cfg: &RuntimeConfig) -> anyhow::Result<(Option<pty::Pty>, Option<OwnedFd>)> {
    let pty = if cfg.interactive {
        Some(pty::open()?)
    } else {
        None
    };
    let userns = cfg
        .user_namespace
        .as_ref()
        .map(userns::create)
        .transpose()
        .context("cannot create the pod's user namespace")?;
    enter_pod_namespaces(cfg.private_network && cfg.netns.is_none())?;
    if let Some(netns) = &cfg.netns {
        join_netns(netns)?;
    }
    Ok((pty, userns))
}

/// Starts `exe init`, the pod's PID 1 (the first process in the new PID namespace),
/// handing it the pty's app side and the user namespace; returns our end of the
/// handshake socket ([`handshake`]) and init's PID. Init is reaped by `waitpid`, never
/// through a `Child`.
fn spawn_init(
    exe: &Path,
    pod_dir: &Path,
    pty_slave: Option<OwnedFd>,
    userns: Option<OwnedFd>,
) -> anyhow::Result<(UnixStream, Pid)> {
    let (sync, sync_child) = UnixStream::pair().context("cannot create a socket pair")?;
    let sync_child = OwnedFd::from(sync_child);
    set_cloexec(&sync_child, false).context("cannot pass a socket to init")?;
    let mut cmd = Command::new(exe);
    // As before the binary was sealed; the pod does not learn the host's path of it.
    std::os::unix::process::CommandExt::arg0(&mut cmd, "/proc/self/exe");
    cmd.arg("init")
        .arg("--pod-dir")
        .arg(pod_dir)
        .arg("--sync-fd")
        .arg(sync_child.as_raw_fd().to_string());
    if let Some(slave) = &pty_slave {
        set_cloexec(slave, false).context("cannot pass the pty to init")?;
        cmd.arg("--pty-fd").arg(slave.as_raw_fd().to_string());
    }
    if let Some(ns) = &userns {
        set_cloexec(ns, false).context("cannot pass the user namespace to init")?;
        cmd.arg("--userns-fd").arg(ns.as_raw_fd().to_string());
    }
    let child = cmd.spawn().context("cannot start the pod's init")?;
    // Our copies of what init got (sync_child, pty_slave, userns) close here.
    Ok((sync, Pid::from_child(&child)))
}

/// Writes the pod's `pid` file: the host PID of its pid 1.
fn write_pid_file(pod_dir: &Path, pid: impl std::fmt::Display) -> anyhow::Result<()> {
    let pid_file = pod_dir.join(poddir::PID_FILE);
    podfiles::write(&pid_file, format!("{pid}\n").as_bytes())
        .with_context(|| format!("cannot write {}", pid_file.display()))
}

/// Waits for the pod's init to exit and returns its exit code, meanwhile forwarding
/// the stop signals `run` gets to init (once init said it handles them) and serving an
/// interactive pod's terminal relay (`^]^]^]` kills init).
fn wait_for_init(
    init_pid: Pid,
    mut sync: UnixStream,
    mut relay: Option<&mut pty::Relay>,
    watch: &mut SignalWatch,
) -> anyhow::Result<i32> {
    sync.set_nonblocking(true)
        .context("cannot set up the init socket")?;
    let mut forward = handshake::Forwarder::default();
    loop {
        match rustix::process::waitpid(Some(init_pid), WaitOptions::NOHANG) {
            Ok(Some((_, status))) => return Ok(exit_code_of(status)),
            Ok(None) => {}
            Err(Errno::INTR) => continue,
            Err(e) => return Err(io::Error::from(e)).context("cannot wait for the pod's init"),
        }
        let mut extra = Vec::new();
        if !forward.init_ready() {
            extra.push(sync.as_fd());
        }
        let relay_at = extra.len();
        if let Some(r) = &relay {
            extra.extend(r.fds());
        }
        let (signals, ready) = watch
            .wait(None, &extra)
            .context("cannot wait for signals")?;
        drop(extra);
        if !forward.init_ready() && ready.first() == Some(&true) {
            let mut b = [0u8; 1];
            let received = match sync.read(&mut b) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                Ok(n) if n > 0 => forward.received(Some(&b[..n])),
                // End of file (or a broken socket): init is gone.
                _ => forward.received(None),
            };
            if let Err(e) = received {
                eprintln!("stage1: {e}; forwarding signals to it anyway");
            }
        }
        if let Some(r) = &mut relay {
            if r.service(&ready[relay_at..]) == pty::RelayEvent::Escape {
                pty::escape_notice();
                let _ = kill_process(init_pid, Signal::KILL);
            }
            if signals.contains(&signal_hook::consts::SIGWINCH) {
                r.resize();
            }
        }
        for sig in forward.signals(signals) {
            // A PID namespace's init only gets signals it handles; it handles these
            // once it has said it is ready.
            let _ = kill_process(init_pid, sig);
        }
    }
}

/// New PID, mount, UTS and IPC namespaces for the pod (and a network namespace of its
/// own with only loopback, for `privateNetwork`). The PID namespace applies to our
/// children only: the next process started becomes its PID 1.
fn enter_pod_namespaces(private_network: bool) -> anyhow::Result<()> {
    use rustix::thread::UnshareFlags;
    let mut flags =
        UnshareFlags::NEWPID | UnshareFlags::NEWNS | UnshareFlags::NEWUTS | UnshareFlags::NEWIPC;
    if private_network {
        flags |= UnshareFlags::NEWNET;
    }
    #[allow(unsafe_code)]
    // SAFETY: without UnshareFlags::FILES the descriptor table stays shared, which is
    // the hazard `unshare_unsafe` guards against; this process has a single thread here
    // (required by NEWNS anyway).
    let res = unsafe { rustix::thread::unshare_unsafe(flags) };
    res.context("cannot create the pod's namespaces")?;
    if private_network {
        loopback_up().context("cannot bring up lo in the pod's network namespace")?;
    }
    // Nothing mounted in the pod may propagate back to the host.
    use rustix::mount::MountPropagationFlags as P;
    rustix::mount::mount_change("/", P::DOWNSTREAM | P::REC)
        .context("cannot make the pod's mounts private")?;
    Ok(())
}

/// Binds stage1's own binary read-only (and nosuid) onto itself in the pod's mount
/// namespace and returns its path, to start the pod's processes from: their
/// `/proc/PID/exe` then names a read-only mount, so nothing in the pod can open it
/// for writing and replace the host's stage1 (runc's CVE-2019-5736 class), even
/// after the process has exited. The host's mount table is not touched.
fn seal_own_binary() -> anyhow::Result<PathBuf> {
    use rustix::mount::MountAttrFlags;
    let exe = std::fs::read_link("/proc/self/exe").context("cannot read /proc/self/exe")?;
    if !exe.is_absolute() || exe.to_string_lossy().ends_with(" (deleted)") {
        bail!(
            "stage1's binary {} has been replaced or removed",
            exe.display()
        );
    }
    mountapi::attach_copy(
        (rustix::fs::CWD, &exe),
        false,
        MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NOSUID,
        (rustix::fs::CWD, &exe),
    )
    .with_context(|| format!("cannot bind {} read-only onto itself", exe.display()))?;
    Ok(exe)
}

/// `ip link set lo up` in the current network namespace, with the SIOCSIFFLAGS ioctl.
fn loopback_up() -> std::io::Result<()> {
    use rustix::net::{socket, AddressFamily, SocketType};
    let sock = socket(AddressFamily::INET, SocketType::DGRAM, None)?;
    // SAFETY: `ifreq` is plain old data, zero is a valid value for every field.
    #[allow(unsafe_code)]
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    let fd = sock.as_raw_fd();
    // SAFETY: `fd` is an open socket for the whole call and `req` a valid, initialised
    // ifreq that outlives both calls; the kernel reads/writes only within it.
    #[allow(unsafe_code)]
    unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn join_netns(path: &Path) -> anyhow::Result<()> {
    let f = File::open(path)
        .with_context(|| format!("cannot open network namespace {}", path.display()))?;
    rustix::thread::move_into_link_name_space(
        f.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .with_context(|| format!("cannot join network namespace {}", path.display()))
}

/// Fly flavor: host namespaces; `run` supervises the single app itself.
fn run_fly(
    pod_dir: &Path,
    cfg: &RuntimeConfig,
    lock: OwnedFd,
    watch: &mut SignalWatch,
) -> anyhow::Result<i32> {
    if cfg.apps.len() != 1 {
        bail!(
            "the fly flavor runs exactly one app; this pod has {}",
            cfg.apps.len()
        );
    }
    // We hold the lock for the pod's whole life; the app must not get it.
    set_cloexec(&lock, true).context("cannot keep the pod lock from the app")?;
    write_pid_file(pod_dir, std::process::id())?;
    let (relay, pty_slave) = if cfg.interactive {
        let p = pty::open()?;
        (Some(start_relay(pod_dir, cfg, p.master)?), Some(p.slave))
    } else {
        (None, None)
    };
    let _raw = match &relay {
        Some(_) => pty::RawTerminal::enable(rustix::stdio::stdin())?,
        None => None,
    };
    let code = init::supervise(
        pod_dir,
        cfg,
        Options {
            fly: true,
            pty_slave,
            relay,
            userns: None,
        },
        watch,
    );
    drop(lock);
    Ok(code?)
}

fn cmd_init(args: &Args) -> anyhow::Result<i32> {
    let pod_dir = &args.pod_dir()?;
    let sync = args
        .sync_fd
        .map(|fd| inherited_fd(fd, "--sync-fd"))
        .transpose()?;
    let pty = args
        .pty_fd
        .map(|fd| inherited_fd(fd, "--pty-fd"))
        .transpose()?;
    if let Some(pty) = &pty {
        set_cloexec(pty, true)?;
    }
    // Held until we exit; the apps must not inherit it.
    let lock = match std::env::var_os(LOCK_FD_ENV) {
        Some(_) => Some(lock_fd()?),
        None => None,
    };
    if let Some(lock) = &lock {
        set_cloexec(lock, true).context("cannot keep the pod lock from the apps")?;
    }
    // Kept open (not close-on-exec) for the app-exec children, which join it.
    let userns = args
        .userns_fd
        .map(|fd| inherited_fd(fd, "--userns-fd"))
        .transpose()?;
    let code = init::run_init(pod_dir, sync, pty, userns)?;
    drop(lock);
    Ok(code)
}

fn cmd_app_exec(args: &Args) -> anyhow::Result<i32> {
    let pod_dir = &args.pod_dir()?;
    let cfg = load_config(pod_dir)?;
    let name = args.app()?;
    let app = cfg
        .app(name)
        .ok_or_else(|| anyhow!("no app {name:?} in the pod"))?;
    if cfg.flavor == Flavor::Fly {
        // Fly has no PID namespace to take the app down with `run`.
        rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
            .context("cannot set the parent death signal")?;
    }
    if args.pty {
        pty::become_session_leader(rustix::stdio::stdin())
            .context("cannot make the pty the app's controlling terminal")?;
    }
    let userns = args
        .userns_fd
        .map(|fd| inherited_fd(fd, "--userns-fd"))
        .transpose()?;
    match launch::exec_app(pod_dir, &cfg, app, &args.cgroups, userns) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("stage1: {}", manifests::error::chain(&e));
            Ok(e.exit_code())
        }
    }
}

fn cmd_enter(args: &Args) -> anyhow::Result<i32> {
    let pod_dir = &args.pod_dir()?;
    let name = args.app()?;
    let cfg = load_config(pod_dir)?;
    let mut command = args
        .command
        .iter()
        .map(|a| {
            a.clone()
                .into_string()
                .map_err(|a| anyhow!("command argument is not UTF-8: {}", a.to_string_lossy()))
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    if command.is_empty() {
        command.push(enter::DEFAULT_COMMAND.to_string());
    }
    match enter::enter(pod_dir, &cfg, name, &command) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("stage1: {}", manifests::error::chain(&e));
            Ok(e.exit_code())
        }
    }
}

fn cmd_gc(pod_dir: &Path) -> anyhow::Result<i32> {
    let dirs = cgroups::read_list(&pod_dir.join(poddir::CGROUPS_FILE))?;
    cgroups::remove(&dirs, GC_TIMEOUT).context("cannot release the pod's cgroups")?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> anyhow::Result<(String, Args)> {
        parse_args(v.iter().map(OsString::from))
    }

    #[test]
    fn parses_app_exec() {
        let (sub, a) = parse(&[
            "app-exec",
            "--pod-dir",
            "/p",
            "--app=web",
            "--cgroup",
            "/c/1",
            "--cgroup",
            "/c/2",
            "--pty",
        ])
        .unwrap();
        assert_eq!(sub, "app-exec");
        assert_eq!(a.pod_dir.as_deref(), Some(Path::new("/p")));
        assert_eq!(a.app.as_deref(), Some("web"));
        assert_eq!(
            a.cgroups,
            vec![PathBuf::from("/c/1"), PathBuf::from("/c/2")]
        );
        assert!(a.pty);
    }

    #[test]
    fn parses_enter_command_after_dashes_or_first_word() {
        let (_, a) = parse(&[
            "enter",
            "--pod-dir",
            "/p",
            "--app",
            "a",
            "--",
            "ls",
            "--all",
        ])
        .unwrap();
        assert_eq!(
            a.command,
            vec![OsString::from("ls"), OsString::from("--all")]
        );
        let (_, a) = parse(&["enter", "--pod-dir", "/p", "--app", "a", "ls", "--all"]).unwrap();
        assert_eq!(
            a.command,
            vec![OsString::from("ls"), OsString::from("--all")]
        );
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["run", "--pod-dir"]).is_err());
        assert!(parse(&["run", "--bogus", "x"]).is_err());
        assert!(parse(&["init", "--sync-fd", "nine"]).is_err());
        let (_, a) = parse(&["init", "--sync-fd", "9", "--pty-fd=10"]).unwrap();
        assert_eq!((a.sync_fd, a.pty_fd), (Some(9), Some(10)));
    }
}
