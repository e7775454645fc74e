//! The apps' PID namespace and its pid 1, the reaper.
//!
//! stage1's pid 1 (`init`) runs as host root with every capability and the host's
//! root directory: a process that could ptrace it or open its `/proc/1/root` would
//! reach the host. So the apps do not share its PID namespace: `init` makes a nested
//! one, whose pid 1 is `stage1 reaper` — a process with no capability, uid and gid
//! 65534, `no_new_privs`, not dumpable, in a mount namespace of its own whose root is
//! an empty read-only tmpfs — and starts every app in it. Inside the pod, `/proc/1` is
//! the reaper: its root, cwd and descriptors lead nowhere, and ptracing it gains
//! nothing. The reaper only reaps the orphans re-parented to it (what a pod's pid 1
//! must do); as a namespace's init it ignores every signal sent from inside.
//!
//! `init` stays the supervisor: the apps are its children (the nested namespace only
//! changes what they see), so `apps/<app>/pid` and the signals keep working in
//! `init`'s namespace, and `kill(-1)` from `init` ends the nested namespace too.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};

use rustix::io::Errno;
use rustix::process::Pid;
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use crate::security::{self, Identity, Privileges};

/// The reaper's user and group (the overflow id, "nobody").
const REAPER_ID: u32 = 65534;

#[derive(Debug, thiserror::Error)]
pub enum ReaperError {
    #[error("cannot create the apps' PID namespace: {0}")]
    Unshare(Errno),
    #[error("cannot open {path}")]
    Open { path: &'static str, source: Errno },
    #[error("cannot switch the PID namespace for new processes: {0}")]
    SetNs(Errno),
    #[error("cannot start the apps' reaper: {0}")]
    Spawn(io::Error),
    #[error("reaper: {step}")]
    Setup { step: &'static str, source: Errno },
    #[error("reaper")]
    Privileges(#[source] security::SecurityError),
}

/// The apps' PID namespace and its reaper.
#[derive(Debug)]
pub struct AppsNamespace {
    /// The reaper's PID (in `init`'s namespace).
    pub pid: Pid,
    ns: OwnedFd,
}

/// `init`'s own PID namespace, to come back to after starting a process elsewhere.
#[derive(Debug)]
pub struct OwnNamespace(OwnedFd);

impl OwnNamespace {
    pub fn open() -> Result<Self, ReaperError> {
        open_ns("/proc/self/ns/pid").map(OwnNamespace)
    }
}

fn open_ns(path: &'static str) -> Result<OwnedFd, ReaperError> {
    rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|source| ReaperError::Open { path, source })
}

fn set_children_ns(ns: &OwnedFd) -> Result<(), ReaperError> {
    rustix::thread::move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::ProcessID))
        .map_err(ReaperError::SetNs)
}

impl AppsNamespace {
    /// Creates a nested PID namespace and starts its reaper (`exe reaper`). The
    /// calling thread's new children go to `own` again afterwards.
    pub fn start(own: &OwnNamespace) -> Result<Self, ReaperError> {
        #[allow(unsafe_code)]
        // SAFETY: CLONE_NEWPID only sets the namespace of this thread's future
        // children; no descriptor table or memory is shared or changed.
        unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWPID) }
            .map_err(ReaperError::Unshare)?;
        let started = (|| {
            let child = Command::new("/proc/self/exe")
                .arg("reaper")
                .env_clear()
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(ReaperError::Spawn)?;
            // Only now: until it has its pid 1, the namespace cannot be opened.
            let ns = open_ns("/proc/self/ns/pid_for_children")?;
            // Reaped by the supervisor's waitpid(-1), never through `child`.
            Ok(AppsNamespace {
                pid: Pid::from_child(&child),
                ns,
            })
        })();
        set_children_ns(&own.0)?;
        started
    }

    /// Runs `spawn` with the calling thread's new children created in this namespace.
    pub fn spawn_in<T>(
        &self,
        own: &OwnNamespace,
        spawn: impl FnOnce() -> T,
    ) -> Result<T, ReaperError> {
        set_children_ns(&self.ns)?;
        let out = spawn();
        set_children_ns(&own.0)?;
        Ok(out)
    }
}

/// `stage1 reaper`: pid 1 of the apps' PID namespace. Gives itself nothing to offer
/// (see the module documentation), then reaps children until it is killed.
pub fn run() -> Result<i32, ReaperError> {
    let _ = rustix::thread::set_name(c"stage1");
    let _ = rustix::process::setsid();
    empty_root()?;
    // Nothing inherited stays open.
    #[allow(unsafe_code)]
    // SAFETY: close_range takes plain integers and touches no memory of ours; no
    // descriptor above 2 is in use by this process's code.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
    security::apply(&Privileges {
        identity: Identity {
            uid: REAPER_ID,
            gid: REAPER_ID,
            supplementary_gids: Vec::new(),
            home: None,
        },
        capabilities: Some(rustix::thread::CapabilitySet::empty()),
        no_new_privs: true,
    })
    .map_err(ReaperError::Privileges)?;
    reap_forever()
}

/// A mount namespace of its own whose root is an empty, read-only tmpfs.
fn empty_root() -> Result<(), ReaperError> {
    use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
    let step = |step| move |source| ReaperError::Setup { step, source };
    #[allow(unsafe_code)]
    // SAFETY: CLONE_NEWNS changes only this (single-threaded) process's mount
    // namespace and fs context; the descriptor table is not unshared.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS) }
        .map_err(step("unshare(CLONE_NEWNS)"))?;
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(step("make the mounts private"))?;
    // Any directory does as the mount point: the old root goes entirely.
    rustix::mount::mount(
        "rkt-reaper",
        "/tmp",
        "tmpfs",
        MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        c"size=0,mode=0555",
    )
    .map_err(step("mount an empty tmpfs"))?;
    rustix::process::chdir("/tmp").map_err(step("chdir"))?;
    rustix::process::pivot_root(".", ".").map_err(step("pivot_root"))?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).map_err(step("detach the old root"))?;
    rustix::process::chdir("/").map_err(step("chdir /"))
}

/// Waits for children forever: SIGCHLD is blocked and taken with `sigwaitinfo` when
/// there is no child to wait for, so no exit is missed.
fn reap_forever() -> Result<i32, ReaperError> {
    #[allow(unsafe_code)]
    // SAFETY: `set` is a properly initialised sigset_t living for both calls; the
    // calls only read it (and write no memory of ours but `set` itself).
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::empty()) {
            Ok(_) | Err(Errno::INTR) => continue,
            Err(Errno::CHILD) => {
                #[allow(unsafe_code)]
                // SAFETY: `set` is a valid sigset_t; a null siginfo pointer is allowed.
                unsafe {
                    libc::sigwaitinfo(&set, std::ptr::null_mut());
                }
            }
            Err(source) => {
                return Err(ReaperError::Setup {
                    step: "wait",
                    source,
                })
            }
        }
    }
}
