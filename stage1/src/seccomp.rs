//! rkt's default seccomp profile: an allowlist of the system calls a normal Linux
//! userspace makes, in the spirit of Docker's default profile but written as our own
//! table ([`RULES`]; each group is explained in `docs/stage1.md`, "Seccomp").
//!
//! The filter is a classic BPF program built here by hand (no libseccomp):
//!
//! 1. a system call made through another ABI than the binary's own (i386 `int 0x80`
//!    or x32 on x86_64, arm32 on aarch64) kills the process: the table names the
//!    native numbers only, so a foreign ABI would walk around it;
//! 2. a number above the highest the table knows ([`max_known`]) fails with `ENOSYS`,
//!    as on a kernel too old to have it, so that libc falls back to an older call;
//! 3. a number the table allows is allowed, some of them only when their arguments
//!    pass a check ([`Match`]) or when the app keeps a capability;
//! 4. every other number fails with `EPERM`.
//!
//! The decision is a binary search over the sorted ranges of numbers with the same
//! outcome, so the program stays short (a few hundred instructions) and a call costs
//! about ten comparisons.
//!
//! stage1 installs the filter for the default flavor's apps unless the app's
//! `seccomp` is `unconfined`, as the last change before it drops the app's privileges
//! (see `launch` and `enter`): stage1 still holds `CAP_SYS_ADMIN` then, so the filter
//! can be installed with or without `no_new_privs`, and the privilege drop and
//! `execve` that follow make only calls the table allows.

use std::collections::BTreeMap;
use std::io;

use libc::{c_long, sock_filter};
use manifests::runtime::{Flavor, RuntimeApp, Seccomp};
use rustix::thread::CapabilitySet;

use crate::security::{self, SecurityError};

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("the seccomp profile knows the system call numbers of x86_64 and aarch64 only");

/// `AUDIT_ARCH_*` of the architecture stage1 is built for.
#[cfg(target_arch = "x86_64")]
pub const NATIVE_ARCH: u32 = 0xc000_003e; // EM_X86_64 | 64-bit | little-endian
#[cfg(target_arch = "aarch64")]
pub const NATIVE_ARCH: u32 = 0xc000_00b7; // EM_AARCH64 | 64-bit | little-endian

/// x32 system calls are x86_64 calls with this bit set in the number.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// System call numbers the `libc` crate does not name (yet). Since Linux 5.1 (424)
/// new calls have the same number on every architecture.
mod nr {
    use libc::c_long;
    #[cfg(target_arch = "x86_64")]
    pub const IO_PGETEVENTS: c_long = 333;
    #[cfg(target_arch = "aarch64")]
    pub const IO_PGETEVENTS: c_long = 292;
    pub const CACHESTAT: c_long = 451;
    pub const FCHMODAT2: c_long = 452;
    pub const MAP_SHADOW_STACK: c_long = 453;
    pub const FUTEX_WAKE: c_long = 454;
    pub const FUTEX_WAIT: c_long = 455;
    pub const FUTEX_REQUEUE: c_long = 456;
    pub const STATMOUNT: c_long = 457;
    pub const LISTMOUNT: c_long = 458;
    pub const LSM_GET_SELF_ATTR: c_long = 459;
    pub const LSM_SET_SELF_ATTR: c_long = 460;
    pub const LSM_LIST_MODULES: c_long = 461;
    pub const SETXATTRAT: c_long = 463;
    pub const GETXATTRAT: c_long = 464;
    pub const LISTXATTRAT: c_long = 465;
    pub const REMOVEXATTRAT: c_long = 466;
    pub const OPEN_TREE_ATTR: c_long = 467;
    pub const FILE_GETATTR: c_long = 468;
    pub const FILE_SETATTR: c_long = 469;
}

/// Namespace flags of `clone` (all in its first argument's low 32 bits).
pub const NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32;

/// `personality` values allowed: Linux, Linux32, each with or without `UNAME26`, and
/// the query `0xffffffff` (what Docker allows).
const PERSONALITIES: &[u32] = &[0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// Character devices an app may create (`major << 8 | minor`, as the kernel's `mknod`
/// reads its 32-bit `dev` for small numbers): null, zero, full, random, urandom, tty
/// and ptmx, the nodes of the pod's own `/dev`.
pub const HARMLESS_DEVICES: &[u32] = &[
    1 << 8 | 3,
    1 << 8 | 5,
    1 << 8 | 7,
    1 << 8 | 8,
    1 << 8 | 9,
    5 << 8,
    5 << 8 | 2,
];

/// `ioctl` requests that push input into a terminal or reach the virtual console:
/// `TIOCSTI` (type a character into the terminal, which the shell that started the
/// app reads once the app exits) and `TIOCLINUX`. The kernel reads the request as
/// an `unsigned int`, so the filter compares the low 32 bits only: garbage in the
/// upper half does not hide it.
pub const TERMINAL_INJECTION: &[u32] = &[libc::TIOCSTI as u32, libc::TIOCLINUX as u32];

/// Socket families refused: `AF_VSOCK` reaches the hypervisor or the host of a VM,
/// past the pod's network namespace.
pub const REFUSED_FAMILIES: &[u32] = &[libc::AF_VSOCK as u32];

// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// The low 32 bits of argument `i`.
const fn off_arg_low(i: u32) -> u32 {
    if cfg!(target_endian = "big") {
        16 + 8 * i + 4
    } else {
        16 + 8 * i
    }
}
const S_IFMT: u32 = libc::S_IFMT;
const S_IFBLK: u32 = libc::S_IFBLK;
const S_IFCHR: u32 = libc::S_IFCHR;

pub const RET_KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
pub const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
pub const fn ret_errno(errno: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA)
}

/// Which calls of a system call a rule refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// Every call.
    All,
    /// Calls whose first argument has one of [`NAMESPACE_FLAGS`] (`clone`).
    NamespaceFlags,
    /// Calls whose first argument is not one of [`PERSONALITIES`] (`personality`).
    UnsafePersonality,
    /// Calls creating a device node (argument `mode` is a block or character device)
    /// other than one of [`HARMLESS_DEVICES`] (argument `dev`): `mknod`, `mknodat`.
    DeviceNode { mode: u32, dev: u32 },
    /// `ioctl` requests (argument 1) of [`TERMINAL_INJECTION`].
    TerminalInjection,
    /// `socket` families (argument 0) of [`REFUSED_FAMILIES`].
    RefusedFamily,
}

/// What the profile does with one system call number.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// Allowed.
    Allow,
    /// The calls `refused` picks fail with `errno` unless the app keeps one of
    /// `unless`; the number's other calls are allowed.
    Refuse {
        refused: Match,
        errno: i32,
        unless: &'static [CapabilitySet],
    },
}

/// One entry of the profile.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The system call's name, for documentation and test messages.
    #[cfg_attr(not(test), allow(dead_code))]
    pub name: &'static str,
    pub nr: c_long,
    pub action: Action,
}

const fn allow(name: &'static str, nr: c_long) -> Rule {
    Rule {
        name,
        nr,
        action: Action::Allow,
    }
}

/// Allowed only when the app keeps one of `caps`; otherwise `EPERM`.
const fn with_cap(name: &'static str, nr: c_long, caps: &'static [CapabilitySet]) -> Rule {
    Rule {
        name,
        nr,
        action: Action::Refuse {
            refused: Match::All,
            errno: libc::EPERM,
            unless: caps,
        },
    }
}

/// Allowed except the calls `refused` picks, which fail with `EPERM` (unless the app
/// keeps one of `unless`).
const fn checked(
    name: &'static str,
    nr: c_long,
    refused: Match,
    unless: &'static [CapabilitySet],
) -> Rule {
    Rule {
        name,
        nr,
        action: Action::Refuse {
            refused,
            errno: libc::EPERM,
            unless,
        },
    }
}

/// Refused with `ENOSYS`, as on a kernel without the call, so that libraries fall
/// back to what they did before it existed.
const fn missing(name: &'static str, nr: c_long, unless: &'static [CapabilitySet]) -> Rule {
    Rule {
        name,
        nr,
        action: Action::Refuse {
            refused: Match::All,
            errno: libc::ENOSYS,
            unless,
        },
    }
}

const NONE: &[CapabilitySet] = &[];
const SYS_ADMIN: &[CapabilitySet] = &[CapabilitySet::SYS_ADMIN];
const SYS_BOOT: &[CapabilitySet] = &[CapabilitySet::SYS_BOOT];
const SYS_MODULE: &[CapabilitySet] = &[CapabilitySet::SYS_MODULE];
const SYS_NICE: &[CapabilitySet] = &[CapabilitySet::SYS_NICE];
const SYS_PTRACE: &[CapabilitySet] = &[CapabilitySet::SYS_PTRACE];
const SYS_TIME: &[CapabilitySet] = &[CapabilitySet::SYS_TIME];
const DAC_READ_SEARCH: &[CapabilitySet] = &[CapabilitySet::DAC_READ_SEARCH];

/// The default profile: every system call number it knows. Numbers it does not list
/// (up to [`max_known`]) fail with `EPERM`. Documented group by group in
/// `docs/stage1.md`.
pub static RULES: &[Rule] = &[
    // Files, directories and their metadata.
    allow("read", libc::SYS_read),
    allow("write", libc::SYS_write),
    allow("readv", libc::SYS_readv),
    allow("writev", libc::SYS_writev),
    allow("pread64", libc::SYS_pread64),
    allow("pwrite64", libc::SYS_pwrite64),
    allow("preadv", libc::SYS_preadv),
    allow("pwritev", libc::SYS_pwritev),
    allow("preadv2", libc::SYS_preadv2),
    allow("pwritev2", libc::SYS_pwritev2),
    allow("lseek", libc::SYS_lseek),
    allow("openat", libc::SYS_openat),
    allow("openat2", libc::SYS_openat2),
    allow("close", libc::SYS_close),
    allow("close_range", libc::SYS_close_range),
    allow("dup", libc::SYS_dup),
    allow("dup3", libc::SYS_dup3),
    allow("fcntl", libc::SYS_fcntl),
    allow("flock", libc::SYS_flock),
    allow("fsync", libc::SYS_fsync),
    allow("fdatasync", libc::SYS_fdatasync),
    allow("sync", libc::SYS_sync),
    allow("syncfs", libc::SYS_syncfs),
    allow("sync_file_range", libc::SYS_sync_file_range),
    allow("fallocate", libc::SYS_fallocate),
    allow("fadvise64", libc::SYS_fadvise64),
    allow("readahead", libc::SYS_readahead),
    allow("truncate", libc::SYS_truncate),
    allow("ftruncate", libc::SYS_ftruncate),
    allow("getdents64", libc::SYS_getdents64),
    allow("getcwd", libc::SYS_getcwd),
    allow("chdir", libc::SYS_chdir),
    allow("fchdir", libc::SYS_fchdir),
    allow("chroot", libc::SYS_chroot),
    allow("mkdirat", libc::SYS_mkdirat),
    allow("unlinkat", libc::SYS_unlinkat),
    allow("renameat", libc::SYS_renameat),
    allow("renameat2", libc::SYS_renameat2),
    allow("linkat", libc::SYS_linkat),
    allow("symlinkat", libc::SYS_symlinkat),
    allow("readlinkat", libc::SYS_readlinkat),
    allow("fchmod", libc::SYS_fchmod),
    allow("fchmodat", libc::SYS_fchmodat),
    allow("fchmodat2", nr::FCHMODAT2),
    allow("fchown", libc::SYS_fchown),
    allow("fchownat", libc::SYS_fchownat),
    allow("faccessat", libc::SYS_faccessat),
    allow("faccessat2", libc::SYS_faccessat2),
    allow("utimensat", libc::SYS_utimensat),
    allow("newfstatat", libc::SYS_newfstatat),
    allow("fstat", libc::SYS_fstat),
    allow("statx", libc::SYS_statx),
    allow("statfs", libc::SYS_statfs),
    allow("fstatfs", libc::SYS_fstatfs),
    allow("umask", libc::SYS_umask),
    allow("setxattr", libc::SYS_setxattr),
    allow("lsetxattr", libc::SYS_lsetxattr),
    allow("fsetxattr", libc::SYS_fsetxattr),
    allow("getxattr", libc::SYS_getxattr),
    allow("lgetxattr", libc::SYS_lgetxattr),
    allow("fgetxattr", libc::SYS_fgetxattr),
    allow("listxattr", libc::SYS_listxattr),
    allow("llistxattr", libc::SYS_llistxattr),
    allow("flistxattr", libc::SYS_flistxattr),
    allow("removexattr", libc::SYS_removexattr),
    allow("lremovexattr", libc::SYS_lremovexattr),
    allow("fremovexattr", libc::SYS_fremovexattr),
    allow("setxattrat", nr::SETXATTRAT),
    allow("getxattrat", nr::GETXATTRAT),
    allow("listxattrat", nr::LISTXATTRAT),
    allow("removexattrat", nr::REMOVEXATTRAT),
    allow("file_getattr", nr::FILE_GETATTR),
    allow("file_setattr", nr::FILE_SETATTR),
    allow("copy_file_range", libc::SYS_copy_file_range),
    allow("sendfile", libc::SYS_sendfile),
    allow("splice", libc::SYS_splice),
    allow("tee", libc::SYS_tee),
    allow("vmsplice", libc::SYS_vmsplice),
    allow("pipe2", libc::SYS_pipe2),
    allow("memfd_create", libc::SYS_memfd_create),
    allow("memfd_secret", libc::SYS_memfd_secret),
    allow("cachestat", nr::CACHESTAT),
    allow("inotify_init1", libc::SYS_inotify_init1),
    allow("inotify_add_watch", libc::SYS_inotify_add_watch),
    allow("inotify_rm_watch", libc::SYS_inotify_rm_watch),
    allow("fanotify_mark", libc::SYS_fanotify_mark),
    // File handles name files past the app's root (the "shocker" escape).
    with_cap(
        "name_to_handle_at",
        libc::SYS_name_to_handle_at,
        DAC_READ_SEARCH,
    ),
    with_cap(
        "open_by_handle_at",
        libc::SYS_open_by_handle_at,
        DAC_READ_SEARCH,
    ),
    // A block device node opens the host's disks raw.
    checked(
        "mknodat",
        libc::SYS_mknodat,
        Match::DeviceNode { mode: 2, dev: 3 },
        NONE,
    ),
    // Waiting for events; asynchronous I/O.
    allow("ppoll", libc::SYS_ppoll),
    allow("pselect6", libc::SYS_pselect6),
    allow("epoll_create1", libc::SYS_epoll_create1),
    allow("epoll_ctl", libc::SYS_epoll_ctl),
    allow("epoll_pwait", libc::SYS_epoll_pwait),
    allow("epoll_pwait2", libc::SYS_epoll_pwait2),
    allow("eventfd2", libc::SYS_eventfd2),
    allow("signalfd4", libc::SYS_signalfd4),
    allow("timerfd_create", libc::SYS_timerfd_create),
    allow("timerfd_settime", libc::SYS_timerfd_settime),
    allow("timerfd_gettime", libc::SYS_timerfd_gettime),
    allow("io_setup", libc::SYS_io_setup),
    allow("io_destroy", libc::SYS_io_destroy),
    allow("io_submit", libc::SYS_io_submit),
    allow("io_cancel", libc::SYS_io_cancel),
    allow("io_getevents", libc::SYS_io_getevents),
    allow("io_pgetevents", nr::IO_PGETEVENTS),
    checked("ioctl", libc::SYS_ioctl, Match::TerminalInjection, NONE),
    // Memory.
    allow("brk", libc::SYS_brk),
    allow("mmap", libc::SYS_mmap),
    allow("munmap", libc::SYS_munmap),
    allow("mremap", libc::SYS_mremap),
    allow("mprotect", libc::SYS_mprotect),
    allow("madvise", libc::SYS_madvise),
    allow("mincore", libc::SYS_mincore),
    allow("msync", libc::SYS_msync),
    allow("mlock", libc::SYS_mlock),
    allow("mlock2", libc::SYS_mlock2),
    allow("munlock", libc::SYS_munlock),
    allow("mlockall", libc::SYS_mlockall),
    allow("munlockall", libc::SYS_munlockall),
    allow("remap_file_pages", libc::SYS_remap_file_pages),
    allow("membarrier", libc::SYS_membarrier),
    allow("pkey_mprotect", libc::SYS_pkey_mprotect),
    allow("pkey_alloc", libc::SYS_pkey_alloc),
    allow("pkey_free", libc::SYS_pkey_free),
    allow("mseal", libc::SYS_mseal),
    allow("map_shadow_stack", nr::MAP_SHADOW_STACK),
    allow("get_mempolicy", libc::SYS_get_mempolicy),
    // NUMA placement of memory, and moving other processes' pages.
    with_cap("mbind", libc::SYS_mbind, SYS_NICE),
    with_cap("set_mempolicy", libc::SYS_set_mempolicy, SYS_NICE),
    with_cap(
        "set_mempolicy_home_node",
        libc::SYS_set_mempolicy_home_node,
        SYS_NICE,
    ),
    with_cap("migrate_pages", libc::SYS_migrate_pages, SYS_NICE),
    with_cap("move_pages", libc::SYS_move_pages, SYS_NICE),
    // Processes and threads.
    checked("clone", libc::SYS_clone, Match::NamespaceFlags, SYS_ADMIN),
    // Its flags are in memory, out of the filter's sight: libc falls back to clone.
    missing("clone3", libc::SYS_clone3, SYS_ADMIN),
    allow("execve", libc::SYS_execve),
    allow("execveat", libc::SYS_execveat),
    allow("exit", libc::SYS_exit),
    allow("exit_group", libc::SYS_exit_group),
    allow("wait4", libc::SYS_wait4),
    allow("waitid", libc::SYS_waitid),
    allow("set_tid_address", libc::SYS_set_tid_address),
    allow("set_robust_list", libc::SYS_set_robust_list),
    allow("get_robust_list", libc::SYS_get_robust_list),
    allow("futex", libc::SYS_futex),
    allow("futex_waitv", libc::SYS_futex_waitv),
    allow("futex_wake", nr::FUTEX_WAKE),
    allow("futex_wait", nr::FUTEX_WAIT),
    allow("futex_requeue", nr::FUTEX_REQUEUE),
    allow("rseq", libc::SYS_rseq),
    allow("restart_syscall", libc::SYS_restart_syscall),
    allow("gettid", libc::SYS_gettid),
    allow("getpid", libc::SYS_getpid),
    allow("getppid", libc::SYS_getppid),
    allow("getpgid", libc::SYS_getpgid),
    allow("setpgid", libc::SYS_setpgid),
    allow("getsid", libc::SYS_getsid),
    allow("setsid", libc::SYS_setsid),
    allow("kill", libc::SYS_kill),
    allow("tkill", libc::SYS_tkill),
    allow("tgkill", libc::SYS_tgkill),
    allow("pidfd_open", libc::SYS_pidfd_open),
    allow("pidfd_send_signal", libc::SYS_pidfd_send_signal),
    allow("process_mrelease", libc::SYS_process_mrelease),
    allow("prctl", libc::SYS_prctl),
    allow("seccomp", libc::SYS_seccomp),
    allow("landlock_create_ruleset", libc::SYS_landlock_create_ruleset),
    allow("landlock_add_rule", libc::SYS_landlock_add_rule),
    allow("landlock_restrict_self", libc::SYS_landlock_restrict_self),
    checked(
        "personality",
        libc::SYS_personality,
        Match::UnsafePersonality,
        NONE,
    ),
    allow("capget", libc::SYS_capget),
    allow("capset", libc::SYS_capset),
    allow("getuid", libc::SYS_getuid),
    allow("geteuid", libc::SYS_geteuid),
    allow("getgid", libc::SYS_getgid),
    allow("getegid", libc::SYS_getegid),
    allow("getresuid", libc::SYS_getresuid),
    allow("getresgid", libc::SYS_getresgid),
    allow("getgroups", libc::SYS_getgroups),
    allow("setuid", libc::SYS_setuid),
    allow("setgid", libc::SYS_setgid),
    allow("setreuid", libc::SYS_setreuid),
    allow("setregid", libc::SYS_setregid),
    allow("setresuid", libc::SYS_setresuid),
    allow("setresgid", libc::SYS_setresgid),
    allow("setfsuid", libc::SYS_setfsuid),
    allow("setfsgid", libc::SYS_setfsgid),
    allow("setgroups", libc::SYS_setgroups),
    allow("getrlimit", libc::SYS_getrlimit),
    allow("setrlimit", libc::SYS_setrlimit),
    allow("prlimit64", libc::SYS_prlimit64),
    allow("getrusage", libc::SYS_getrusage),
    allow("getpriority", libc::SYS_getpriority),
    allow("setpriority", libc::SYS_setpriority),
    allow("sched_setparam", libc::SYS_sched_setparam),
    allow("sched_getparam", libc::SYS_sched_getparam),
    allow("sched_setscheduler", libc::SYS_sched_setscheduler),
    allow("sched_getscheduler", libc::SYS_sched_getscheduler),
    allow("sched_get_priority_max", libc::SYS_sched_get_priority_max),
    allow("sched_get_priority_min", libc::SYS_sched_get_priority_min),
    allow("sched_rr_get_interval", libc::SYS_sched_rr_get_interval),
    allow("sched_yield", libc::SYS_sched_yield),
    allow("sched_setaffinity", libc::SYS_sched_setaffinity),
    allow("sched_getaffinity", libc::SYS_sched_getaffinity),
    allow("sched_setattr", libc::SYS_sched_setattr),
    allow("sched_getattr", libc::SYS_sched_getattr),
    allow("getcpu", libc::SYS_getcpu),
    allow("ioprio_get", libc::SYS_ioprio_get),
    allow("ioprio_set", libc::SYS_ioprio_set),
    allow("uname", libc::SYS_uname),
    // The UTS namespace is the pod's (the kernel asks for CAP_SYS_ADMIN).
    allow("sethostname", libc::SYS_sethostname),
    allow("setdomainname", libc::SYS_setdomainname),
    allow("sysinfo", libc::SYS_sysinfo),
    allow("times", libc::SYS_times),
    allow("getrandom", libc::SYS_getrandom),
    // Linux 4.8 and later re-check the filter after a tracer changes a call.
    allow("ptrace", libc::SYS_ptrace),
    // Other processes' memory and files.
    with_cap("process_vm_readv", libc::SYS_process_vm_readv, SYS_PTRACE),
    with_cap("process_vm_writev", libc::SYS_process_vm_writev, SYS_PTRACE),
    with_cap("kcmp", libc::SYS_kcmp, SYS_PTRACE),
    with_cap("pidfd_getfd", libc::SYS_pidfd_getfd, SYS_PTRACE),
    with_cap("process_madvise", libc::SYS_process_madvise, SYS_PTRACE),
    // A staple of kernel exploits (stalls kernel copies).
    with_cap("userfaultfd", libc::SYS_userfaultfd, SYS_PTRACE),
    // Signals.
    allow("rt_sigaction", libc::SYS_rt_sigaction),
    allow("rt_sigprocmask", libc::SYS_rt_sigprocmask),
    allow("rt_sigreturn", libc::SYS_rt_sigreturn),
    allow("rt_sigpending", libc::SYS_rt_sigpending),
    allow("rt_sigtimedwait", libc::SYS_rt_sigtimedwait),
    allow("rt_sigqueueinfo", libc::SYS_rt_sigqueueinfo),
    allow("rt_tgsigqueueinfo", libc::SYS_rt_tgsigqueueinfo),
    allow("rt_sigsuspend", libc::SYS_rt_sigsuspend),
    allow("sigaltstack", libc::SYS_sigaltstack),
    // Time. The host's clock is not namespaced: setting it needs CAP_SYS_TIME;
    // adjtimex and clock_adjtime stay allowed for reading (the kernel checks).
    allow("nanosleep", libc::SYS_nanosleep),
    allow("clock_nanosleep", libc::SYS_clock_nanosleep),
    allow("clock_gettime", libc::SYS_clock_gettime),
    allow("clock_getres", libc::SYS_clock_getres),
    allow("gettimeofday", libc::SYS_gettimeofday),
    allow("getitimer", libc::SYS_getitimer),
    allow("setitimer", libc::SYS_setitimer),
    allow("timer_create", libc::SYS_timer_create),
    allow("timer_settime", libc::SYS_timer_settime),
    allow("timer_gettime", libc::SYS_timer_gettime),
    allow("timer_getoverrun", libc::SYS_timer_getoverrun),
    allow("timer_delete", libc::SYS_timer_delete),
    allow("adjtimex", libc::SYS_adjtimex),
    allow("clock_adjtime", libc::SYS_clock_adjtime),
    with_cap("settimeofday", libc::SYS_settimeofday, SYS_TIME),
    with_cap("clock_settime", libc::SYS_clock_settime, SYS_TIME),
    // Sockets.
    checked("socket", libc::SYS_socket, Match::RefusedFamily, NONE),
    allow("socketpair", libc::SYS_socketpair),
    allow("bind", libc::SYS_bind),
    allow("connect", libc::SYS_connect),
    allow("listen", libc::SYS_listen),
    allow("accept", libc::SYS_accept),
    allow("accept4", libc::SYS_accept4),
    allow("getsockname", libc::SYS_getsockname),
    allow("getpeername", libc::SYS_getpeername),
    allow("sendto", libc::SYS_sendto),
    allow("recvfrom", libc::SYS_recvfrom),
    allow("sendmsg", libc::SYS_sendmsg),
    allow("recvmsg", libc::SYS_recvmsg),
    allow("sendmmsg", libc::SYS_sendmmsg),
    allow("recvmmsg", libc::SYS_recvmmsg),
    allow("shutdown", libc::SYS_shutdown),
    allow("setsockopt", libc::SYS_setsockopt),
    allow("getsockopt", libc::SYS_getsockopt),
    // System V and POSIX IPC (the IPC namespace is the pod's).
    allow("msgget", libc::SYS_msgget),
    allow("msgsnd", libc::SYS_msgsnd),
    allow("msgrcv", libc::SYS_msgrcv),
    allow("msgctl", libc::SYS_msgctl),
    allow("semget", libc::SYS_semget),
    allow("semop", libc::SYS_semop),
    allow("semctl", libc::SYS_semctl),
    allow("semtimedop", libc::SYS_semtimedop),
    allow("shmget", libc::SYS_shmget),
    allow("shmat", libc::SYS_shmat),
    allow("shmdt", libc::SYS_shmdt),
    allow("shmctl", libc::SYS_shmctl),
    allow("mq_open", libc::SYS_mq_open),
    allow("mq_unlink", libc::SYS_mq_unlink),
    allow("mq_timedsend", libc::SYS_mq_timedsend),
    allow("mq_timedreceive", libc::SYS_mq_timedreceive),
    allow("mq_notify", libc::SYS_mq_notify),
    allow("mq_getsetattr", libc::SYS_mq_getsetattr),
    // Kernel code and boot.
    with_cap("kexec_load", libc::SYS_kexec_load, SYS_BOOT),
    with_cap("kexec_file_load", libc::SYS_kexec_file_load, SYS_BOOT),
    with_cap("reboot", libc::SYS_reboot, SYS_BOOT),
    with_cap("init_module", libc::SYS_init_module, SYS_MODULE),
    with_cap("finit_module", libc::SYS_finit_module, SYS_MODULE),
    with_cap("delete_module", libc::SYS_delete_module, SYS_MODULE),
    // Mounts and namespaces: a new user namespace grants every capability over new
    // namespaces, the way to mount and to reach kernel code written for root only.
    with_cap("mount", libc::SYS_mount, SYS_ADMIN),
    with_cap("umount2", libc::SYS_umount2, SYS_ADMIN),
    with_cap("pivot_root", libc::SYS_pivot_root, SYS_ADMIN),
    with_cap("open_tree", libc::SYS_open_tree, SYS_ADMIN),
    with_cap("open_tree_attr", nr::OPEN_TREE_ATTR, SYS_ADMIN),
    with_cap("move_mount", libc::SYS_move_mount, SYS_ADMIN),
    with_cap("fsopen", libc::SYS_fsopen, SYS_ADMIN),
    with_cap("fsconfig", libc::SYS_fsconfig, SYS_ADMIN),
    with_cap("fsmount", libc::SYS_fsmount, SYS_ADMIN),
    with_cap("fspick", libc::SYS_fspick, SYS_ADMIN),
    with_cap("mount_setattr", libc::SYS_mount_setattr, SYS_ADMIN),
    with_cap("unshare", libc::SYS_unshare, SYS_ADMIN),
    with_cap("setns", libc::SYS_setns, SYS_ADMIN),
    // Mount information past /proc/self/mountinfo's view; libraries fall back to it.
    missing("statmount", nr::STATMOUNT, NONE),
    missing("listmount", nr::LISTMOUNT, NONE),
    // Security module attributes; libraries fall back to /proc/self/attr.
    missing("lsm_get_self_attr", nr::LSM_GET_SELF_ATTR, NONE),
    missing("lsm_set_self_attr", nr::LSM_SET_SELF_ATTR, NONE),
    missing("lsm_list_modules", nr::LSM_LIST_MODULES, NONE),
    // Host-wide kernel state.
    with_cap("swapon", libc::SYS_swapon, SYS_ADMIN),
    with_cap("swapoff", libc::SYS_swapoff, SYS_ADMIN),
    with_cap("quotactl", libc::SYS_quotactl, SYS_ADMIN),
    with_cap("quotactl_fd", libc::SYS_quotactl_fd, SYS_ADMIN),
    with_cap("fanotify_init", libc::SYS_fanotify_init, SYS_ADMIN),
    with_cap("lookup_dcookie", libc::SYS_lookup_dcookie, SYS_ADMIN),
    with_cap("acct", libc::SYS_acct, &[CapabilitySet::SYS_PACCT]),
    with_cap("syslog", libc::SYS_syslog, &[CapabilitySet::SYSLOG]),
    with_cap(
        "vhangup",
        libc::SYS_vhangup,
        &[CapabilitySet::SYS_TTY_CONFIG],
    ),
    // Kernel attack surface.
    with_cap(
        "bpf",
        libc::SYS_bpf,
        &[CapabilitySet::SYS_ADMIN, CapabilitySet::BPF],
    ),
    with_cap(
        "perf_event_open",
        libc::SYS_perf_event_open,
        &[CapabilitySet::SYS_ADMIN, CapabilitySet::PERFMON],
    ),
    // x86_64's older calls, which libc still makes there.
    #[cfg(target_arch = "x86_64")]
    allow("open", libc::SYS_open),
    #[cfg(target_arch = "x86_64")]
    allow("creat", libc::SYS_creat),
    #[cfg(target_arch = "x86_64")]
    allow("stat", libc::SYS_stat),
    #[cfg(target_arch = "x86_64")]
    allow("lstat", libc::SYS_lstat),
    #[cfg(target_arch = "x86_64")]
    allow("access", libc::SYS_access),
    #[cfg(target_arch = "x86_64")]
    allow("poll", libc::SYS_poll),
    #[cfg(target_arch = "x86_64")]
    allow("select", libc::SYS_select),
    #[cfg(target_arch = "x86_64")]
    allow("pipe", libc::SYS_pipe),
    #[cfg(target_arch = "x86_64")]
    allow("dup2", libc::SYS_dup2),
    #[cfg(target_arch = "x86_64")]
    allow("pause", libc::SYS_pause),
    #[cfg(target_arch = "x86_64")]
    allow("alarm", libc::SYS_alarm),
    #[cfg(target_arch = "x86_64")]
    allow("fork", libc::SYS_fork),
    #[cfg(target_arch = "x86_64")]
    allow("vfork", libc::SYS_vfork),
    #[cfg(target_arch = "x86_64")]
    allow("getdents", libc::SYS_getdents),
    #[cfg(target_arch = "x86_64")]
    allow("rename", libc::SYS_rename),
    #[cfg(target_arch = "x86_64")]
    allow("mkdir", libc::SYS_mkdir),
    #[cfg(target_arch = "x86_64")]
    allow("rmdir", libc::SYS_rmdir),
    #[cfg(target_arch = "x86_64")]
    allow("link", libc::SYS_link),
    #[cfg(target_arch = "x86_64")]
    allow("unlink", libc::SYS_unlink),
    #[cfg(target_arch = "x86_64")]
    allow("symlink", libc::SYS_symlink),
    #[cfg(target_arch = "x86_64")]
    allow("readlink", libc::SYS_readlink),
    #[cfg(target_arch = "x86_64")]
    allow("chmod", libc::SYS_chmod),
    #[cfg(target_arch = "x86_64")]
    allow("chown", libc::SYS_chown),
    #[cfg(target_arch = "x86_64")]
    allow("lchown", libc::SYS_lchown),
    #[cfg(target_arch = "x86_64")]
    allow("utime", libc::SYS_utime),
    #[cfg(target_arch = "x86_64")]
    allow("utimes", libc::SYS_utimes),
    #[cfg(target_arch = "x86_64")]
    allow("futimesat", libc::SYS_futimesat),
    #[cfg(target_arch = "x86_64")]
    allow("time", libc::SYS_time),
    #[cfg(target_arch = "x86_64")]
    allow("getpgrp", libc::SYS_getpgrp),
    #[cfg(target_arch = "x86_64")]
    allow("epoll_create", libc::SYS_epoll_create),
    #[cfg(target_arch = "x86_64")]
    allow("epoll_wait", libc::SYS_epoll_wait),
    #[cfg(target_arch = "x86_64")]
    allow("inotify_init", libc::SYS_inotify_init),
    #[cfg(target_arch = "x86_64")]
    allow("signalfd", libc::SYS_signalfd),
    #[cfg(target_arch = "x86_64")]
    allow("eventfd", libc::SYS_eventfd),
    #[cfg(target_arch = "x86_64")]
    allow("arch_prctl", libc::SYS_arch_prctl),
    #[cfg(target_arch = "x86_64")]
    allow("set_thread_area", libc::SYS_set_thread_area),
    #[cfg(target_arch = "x86_64")]
    allow("get_thread_area", libc::SYS_get_thread_area),
    #[cfg(target_arch = "x86_64")]
    checked(
        "mknod",
        libc::SYS_mknod,
        Match::DeviceNode { mode: 1, dev: 2 },
        NONE,
    ),
    // x86 port I/O.
    #[cfg(target_arch = "x86_64")]
    with_cap("iopl", libc::SYS_iopl, &[CapabilitySet::SYS_RAWIO]),
    #[cfg(target_arch = "x86_64")]
    with_cap("ioperm", libc::SYS_ioperm, &[CapabilitySet::SYS_RAWIO]),
];

/// The highest system call number the profile knows: higher numbers fail with
/// `ENOSYS`.
pub fn max_known() -> u32 {
    RULES.iter().map(|r| r.nr as u32).max().unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp profile")]
    Capabilities(#[from] SecurityError),
    #[error("install the seccomp filter ({len} instructions)")]
    Install { len: usize, source: io::Error },
}

/// A compiled filter, ready to install.
#[derive(Clone)]
pub struct Filter {
    program: Vec<sock_filter>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Filter({} instructions)", self.program.len())
    }
}

const fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

const LD_ABS: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
const JA: u32 = libc::BPF_JMP | libc::BPF_JA;
const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const JGE: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
const JSET: u32 = libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K;
const RET: u32 = libc::BPF_RET | libc::BPF_K;
const AND: u32 = libc::BPF_ALU | libc::BPF_AND | libc::BPF_K;

/// What the filter does with a range of numbers, once the app's capabilities are
/// known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Returns this `SECCOMP_RET_*`.
    Return(u32),
    /// Returns `errno` for the calls `refused` picks, allows the others.
    Check { refused: Match, errno: i32 },
}

impl Rule {
    /// What this rule does for an app that keeps `kept`.
    fn outcome(&self, kept: CapabilitySet) -> Outcome {
        match self.action {
            Action::Allow => Outcome::Return(RET_ALLOW),
            Action::Refuse { unless, .. } if unless.iter().any(|c| kept.contains(*c)) => {
                Outcome::Return(RET_ALLOW)
            }
            Action::Refuse {
                refused: Match::All,
                errno,
                ..
            } => Outcome::Return(ret_errno(errno)),
            Action::Refuse { refused, errno, .. } => Outcome::Check { refused, errno },
        }
    }
}

/// The profile for `kept` as sorted, adjacent ranges `(first number, outcome)`
/// covering every 32-bit number, neighbours merged when their outcome is the same.
fn ranges(kept: CapabilitySet) -> Vec<(u32, Outcome)> {
    let known: BTreeMap<u32, Outcome> = RULES
        .iter()
        .map(|r| (r.nr as u32, r.outcome(kept)))
        .collect();
    let max = max_known();
    let mut out: Vec<(u32, Outcome)> = Vec::new();
    let mut push = |first: u32, o: Outcome| {
        if out.last().map(|(_, last)| *last) != Some(o) {
            out.push((first, o));
        }
    };
    for n in 0..=max {
        push(
            n,
            known
                .get(&n)
                .copied()
                .unwrap_or(Outcome::Return(ret_errno(libc::EPERM))),
        );
    }
    push(max + 1, Outcome::Return(ret_errno(libc::ENOSYS)));
    // -1: what a tracer sets to skip a call; the kernel then runs none.
    push(u32::MAX, Outcome::Return(RET_ALLOW));
    out
}

/// The instructions deciding one range: a return, or an argument check (which
/// loads an argument and ends in returns of its own).
fn leaf(o: Outcome) -> Vec<sock_filter> {
    let (refused, errno) = match o {
        Outcome::Return(ret) => return vec![stmt(RET, ret)],
        Outcome::Check { refused, errno } => (refused, ret_errno(errno)),
    };
    let mut p = Vec::new();
    // `values` in the accumulator: refuse; otherwise allow.
    let refuse_any_of = |p: &mut Vec<sock_filter>, values: &[u32]| {
        let n = values.len();
        for (i, v) in values.iter().enumerate() {
            p.push(jump(JEQ, *v, (n - i) as u8, 0));
        }
        p.push(stmt(RET, RET_ALLOW));
        p.push(stmt(RET, errno));
    };
    match refused {
        Match::All => p.push(stmt(RET, errno)),
        Match::NamespaceFlags => p.extend([
            stmt(LD_ABS, off_arg_low(0)),
            jump(JSET, NAMESPACE_FLAGS, 0, 1),
            stmt(RET, errno),
            stmt(RET, RET_ALLOW),
        ]),
        Match::UnsafePersonality => {
            let n = PERSONALITIES.len();
            p.push(stmt(LD_ABS, off_arg_low(0)));
            for (i, v) in PERSONALITIES.iter().enumerate() {
                p.push(jump(JEQ, *v, (n - i) as u8, 0));
            }
            p.push(stmt(RET, errno));
            p.push(stmt(RET, RET_ALLOW));
        }
        Match::DeviceNode { mode, dev } => {
            // [0] ld mode [1] and [2] blk? [3] chr? [4] ld dev
            // [5..5+n] harmless? [5+n] ret refuse [6+n] ret allow
            let n = HARMLESS_DEVICES.len();
            p.push(stmt(LD_ABS, off_arg_low(mode)));
            p.push(stmt(AND, S_IFMT));
            p.push(jump(JEQ, S_IFBLK, (n + 2) as u8, 0));
            p.push(jump(JEQ, S_IFCHR, 0, (n + 2) as u8));
            p.push(stmt(LD_ABS, off_arg_low(dev)));
            for (i, d) in HARMLESS_DEVICES.iter().enumerate() {
                p.push(jump(JEQ, *d, (n - i) as u8, 0));
            }
            p.push(stmt(RET, errno));
            p.push(stmt(RET, RET_ALLOW));
        }
        Match::TerminalInjection => {
            p.push(stmt(LD_ABS, off_arg_low(1)));
            refuse_any_of(&mut p, TERMINAL_INJECTION);
        }
        Match::RefusedFamily => {
            p.push(stmt(LD_ABS, off_arg_low(0)));
            refuse_any_of(&mut p, REFUSED_FAMILIES);
        }
    }
    p
}

/// A binary search over `ranges` (the accumulator holds the number): each node
/// splits at the first number of its middle range; the lower half follows the test,
/// the upper half follows the lower one. Every jump is forward.
fn search(ranges: &[(u32, Outcome)]) -> Vec<sock_filter> {
    if let [(_, o)] = ranges {
        return leaf(*o);
    }
    let mid = ranges.len() / 2;
    let lower = search(&ranges[..mid]);
    let upper = search(&ranges[mid..]);
    let split = ranges[mid].0;
    let mut p = Vec::with_capacity(lower.len() + upper.len() + 2);
    match u8::try_from(lower.len()) {
        Ok(skip) => p.push(jump(JGE, split, skip, 0)),
        Err(_) => {
            // Too far for a conditional jump: go through an unconditional one.
            p.push(jump(JGE, split, 0, 1));
            p.push(stmt(JA, lower.len() as u32));
        }
    }
    p.extend(lower);
    p.extend(upper);
    p
}

impl Filter {
    /// The default profile for an app whose capability list is `kept`.
    pub fn default_profile(kept: CapabilitySet) -> Filter {
        let mut p = vec![
            stmt(LD_ABS, OFF_ARCH),
            jump(JEQ, NATIVE_ARCH, 1, 0),
            stmt(RET, RET_KILL_PROCESS),
            stmt(LD_ABS, OFF_NR),
        ];
        #[cfg(target_arch = "x86_64")]
        p.extend([
            // x32 numbers; -1 (what a tracer sets to skip a call) stays allowed.
            jump(JGE, X32_SYSCALL_BIT, 0, 2),
            jump(JEQ, u32::MAX, 1, 0),
            stmt(RET, RET_KILL_PROCESS),
        ]);
        p.extend(search(&ranges(kept)));
        Filter { program: p }
    }

    /// The filter `app` gets: none for the fly flavor or an `unconfined` app,
    /// otherwise the default profile with the calls its capabilities allow.
    pub fn for_app(app: &RuntimeApp, flavor: Flavor) -> Result<Option<Filter>, SeccompError> {
        if flavor == Flavor::Fly || app.seccomp == Seccomp::Unconfined {
            return Ok(None);
        }
        let kept = security::parse_capabilities(&app.capabilities)?;
        Ok(Some(Filter::default_profile(kept)))
    }

    #[cfg(test)]
    pub fn instructions(&self) -> &[sock_filter] {
        &self.program
    }

    /// Installs the filter on the calling thread (and so on everything it `execve`s
    /// or starts). Needs `no_new_privs` or `CAP_SYS_ADMIN`. Allocates nothing, so it
    /// may run between `fork` and `exec`.
    pub fn install(&self) -> Result<(), SeccompError> {
        let prog = libc::sock_fprog {
            len: self.program.len() as libc::c_ushort,
            filter: self.program.as_ptr().cast_mut(),
        };
        #[allow(unsafe_code)]
        // SAFETY: `prog` points at `self.program`, which outlives the call; the kernel
        // copies the program and keeps no pointer to it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0 as libc::c_uint,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(SeccompError::Install {
                len: self.program.len(),
                source: io::Error::last_os_error(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// What the kernel would decide: a small interpreter for the instructions the
    /// builder emits, run on one `seccomp_data`.
    fn run(f: &Filter, arch: u32, nr: u32, arg0: u64) -> u32 {
        run_args(f, arch, nr, &[arg0])
    }

    fn run_args(f: &Filter, arch: u32, nr: u32, args: &[u64]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let prog = f.instructions();
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let ins = prog[pc];
            let code = u32::from(ins.code);
            pc += 1;
            let taken = |c: bool| if c { ins.jt } else { ins.jf } as usize;
            match code {
                LD_ABS => {
                    let k = ins.k as usize;
                    acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                }
                JA => pc += ins.k as usize,
                JEQ => pc += taken(acc == ins.k),
                JGE => pc += taken(acc >= ins.k),
                JSET => pc += taken(acc & ins.k != 0),
                AND => acc &= ins.k,
                RET => return ins.k,
                other => panic!("unexpected instruction {other:#x} at {}", pc - 1),
            }
        }
    }

    fn nr(n: c_long) -> u32 {
        n as u32
    }

    fn default_caps() -> CapabilitySet {
        let defaults: Vec<String> = manifests::runtime::DEFAULT_CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .collect();
        security::parse_capabilities(&defaults).unwrap()
    }

    /// Every jump lands inside the program and moves forward, every path ends in a
    /// return, and the program fits the kernel's limit of 4096 instructions.
    #[test]
    fn the_program_is_well_formed_and_short() {
        for (what, kept) in [
            ("no capabilities", CapabilitySet::empty()),
            ("Docker's default capabilities", default_caps()),
            ("every capability", CapabilitySet::all()),
        ] {
            let f = Filter::default_profile(kept);
            let prog = f.instructions();
            for (i, ins) in prog.iter().enumerate() {
                let code = u32::from(ins.code);
                let targets: Vec<usize> = match code {
                    JA => vec![i + 1 + ins.k as usize],
                    JEQ | JGE | JSET => vec![i + 1 + ins.jt as usize, i + 1 + ins.jf as usize],
                    RET => vec![],
                    LD_ABS | AND => vec![i + 1],
                    other => panic!("{what}: unexpected instruction {other:#x} at {i}"),
                };
                for t in targets {
                    assert!(t < prog.len(), "{what}: instruction {i} leaves the program");
                }
            }
            assert_eq!(u32::from(prog[prog.len() - 1].code), RET, "{what}");
            assert!(prog.len() <= 4096, "{what}: {} instructions", prog.len());
            let _ = writeln!(
                io::stderr(),
                "seccomp default profile, {what}: {} instructions, {} ranges, {} rules, highest known number {}",
                prog.len(),
                ranges(kept).len(),
                RULES.len(),
                max_known()
            );
        }
    }

    #[test]
    fn the_table_names_each_number_once() {
        let mut seen = BTreeMap::new();
        for r in RULES {
            if let Some(other) = seen.insert(r.nr, r.name) {
                panic!("{} and {} share number {}", r.name, other, r.nr);
            }
        }
        // file_setattr (Linux 6.17) is the newest call the table knows.
        assert_eq!(max_known(), 469);
    }

    #[test]
    fn decisions_of_the_default_profile() {
        let f = Filter::default_profile(CapabilitySet::empty());
        let eperm = ret_errno(libc::EPERM);
        let enosys = ret_errno(libc::ENOSYS);
        let native = |n: c_long, arg0: u64| run(&f, NATIVE_ARCH, nr(n), arg0);
        assert_eq!(native(libc::SYS_getpid, 0), RET_ALLOW);
        assert_eq!(native(libc::SYS_read, 0), RET_ALLOW);
        assert_eq!(native(libc::SYS_ptrace, 0), RET_ALLOW);
        assert_eq!(native(libc::SYS_keyctl, 0), eperm);
        assert_eq!(native(libc::SYS_add_key, 0), eperm);
        assert_eq!(native(libc::SYS_io_uring_setup, 0), eperm);
        assert_eq!(native(libc::SYS_mount, 0), eperm);
        assert_eq!(native(libc::SYS_kexec_load, 0), eperm);
        assert_eq!(native(libc::SYS_syslog, 0), eperm);
        assert_eq!(native(libc::SYS_bpf, 0), eperm);
        assert_eq!(native(libc::SYS_clone3, 0), enosys);
        assert_eq!(native(nr::STATMOUNT, 0), enosys);
        assert_eq!(native(nr::LISTMOUNT, 0), enosys);
        assert_eq!(native(nr::LSM_LIST_MODULES, 0), enosys);
        // Newer than the table: ENOSYS, so libc falls back.
        assert_eq!(run(&f, NATIVE_ARCH, max_known() + 1, 0), enosys);
        assert_eq!(run(&f, NATIVE_ARCH, 1000, 0), enosys);
        assert_eq!(run(&f, NATIVE_ARCH, 0x3fff_ffff, 0), enosys);
        // Capability-gated calls, without the capability.
        for n in [
            libc::SYS_name_to_handle_at,
            libc::SYS_open_by_handle_at,
            libc::SYS_mbind,
            libc::SYS_set_mempolicy,
            libc::SYS_move_pages,
            libc::SYS_migrate_pages,
            libc::SYS_pidfd_getfd,
            libc::SYS_process_madvise,
        ] {
            assert_eq!(native(n, 0), eperm, "{n}");
        }
        // clone: plain forks and threads pass, new namespaces do not.
        let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
        assert_eq!(native(libc::SYS_clone, libc::SIGCHLD as u64), RET_ALLOW);
        assert_eq!(native(libc::SYS_clone, thread), RET_ALLOW);
        for flag in [libc::CLONE_NEWUSER, libc::CLONE_NEWNS, libc::CLONE_NEWNET] {
            assert_eq!(
                native(libc::SYS_clone, flag as u64 | 17),
                eperm,
                "{flag:#x}"
            );
        }
        // personality: queries and plain Linux pass; ADDR_NO_RANDOMIZE does not.
        assert_eq!(native(libc::SYS_personality, 0xffff_ffff), RET_ALLOW);
        assert_eq!(native(libc::SYS_personality, 0), RET_ALLOW);
        assert_eq!(native(libc::SYS_personality, 0x0004_0000), eperm);
        // ioctl: terminal injection is refused, whatever the upper half says.
        let ioctl = |req: u64| run_args(&f, NATIVE_ARCH, nr(libc::SYS_ioctl), &[0, req]);
        assert_eq!(ioctl(libc::TIOCGWINSZ), RET_ALLOW);
        assert_eq!(ioctl(libc::TCGETS), RET_ALLOW);
        assert_eq!(ioctl(libc::TIOCSTI), eperm);
        assert_eq!(ioctl(libc::TIOCLINUX), eperm);
        assert_eq!(ioctl(0xdead_beef_0000_0000 | libc::TIOCSTI), eperm);
        assert_eq!(ioctl(0xffff_ffff_0000_0000 | libc::TIOCLINUX), eperm);
        // socket: vsock is refused, the rest passes.
        assert_eq!(native(libc::SYS_socket, libc::AF_VSOCK as u64), eperm);
        assert_eq!(
            native(libc::SYS_socket, 0x1_0000_0000 | libc::AF_VSOCK as u64),
            eperm
        );
        for family in [
            libc::AF_UNIX,
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_NETLINK,
        ] {
            assert_eq!(native(libc::SYS_socket, family as u64), RET_ALLOW);
        }
        // Foreign ABIs die.
        assert_eq!(run(&f, 0x4000_0003, 20, 0), RET_KILL_PROCESS);
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(
                run(&f, NATIVE_ARCH, X32_SYSCALL_BIT | 39, 0),
                RET_KILL_PROCESS
            );
            assert_eq!(native(libc::SYS_iopl, 3), eperm);
            assert_eq!(native(libc::SYS_open, 0), RET_ALLOW);
            assert_eq!(native(libc::SYS_modify_ldt, 0), eperm);
            assert_eq!(native(libc::SYS_uselib, 0), eperm);
        }
        assert_eq!(run(&f, NATIVE_ARCH, u32::MAX, 0), RET_ALLOW);
        // mknodat: fifos, files and the harmless devices pass; disks do not.
        let mknodat = |mode: u32, major: u32, minor: u32| {
            let dev = libc::makedev(major, minor);
            let args = [libc::AT_FDCWD as u64, 0, u64::from(mode | 0o600), dev];
            run_args(&f, NATIVE_ARCH, nr(libc::SYS_mknodat), &args)
        };
        assert_eq!(mknodat(S_IFBLK, 254, 0), eperm);
        assert_eq!(mknodat(S_IFBLK, 1, 3), eperm);
        assert_eq!(mknodat(S_IFCHR, 1, 1), eperm, "/dev/mem");
        assert_eq!(mknodat(S_IFCHR, 4, 1), eperm, "a host console");
        assert_eq!(mknodat(S_IFCHR, 1, 3), RET_ALLOW, "/dev/null");
        assert_eq!(mknodat(S_IFCHR, 5, 2), RET_ALLOW, "/dev/ptmx");
        assert_eq!(mknodat(libc::S_IFIFO, 0, 0), RET_ALLOW);
        assert_eq!(mknodat(libc::S_IFREG, 0, 0), RET_ALLOW);
    }

    /// Every number gets what the table says: allowed rules pass (with harmless
    /// arguments), refusing rules refuse (with the arguments they pick), unlisted
    /// numbers up to the highest known get EPERM, higher ones ENOSYS.
    #[test]
    fn every_number_is_decided_by_the_table() {
        let f = Filter::default_profile(CapabilitySet::empty());
        let all = Filter::default_profile(CapabilitySet::all());
        let by_nr: BTreeMap<u32, &Rule> = RULES.iter().map(|r| (r.nr as u32, r)).collect();
        for n in 0..=max_known() + 64 {
            let got = run_args(&f, NATIVE_ARCH, n, &[0, 0, 0, 0]);
            let want = match by_nr.get(&n) {
                None if n > max_known() => ret_errno(libc::ENOSYS),
                None => ret_errno(libc::EPERM),
                Some(Rule {
                    action:
                        Action::Refuse {
                            refused: Match::All,
                            errno,
                            ..
                        },
                    ..
                }) => ret_errno(*errno),
                // Arguments 0: a plain fork, Linux, a regular file, request 0,
                // family 0.
                Some(_) => RET_ALLOW,
            };
            assert_eq!(
                got,
                want,
                "number {n} ({:?})",
                by_nr.get(&n).map(|r| r.name)
            );
        }
        for rule in RULES {
            let Action::Refuse { refused, errno, .. } = rule.action else {
                continue;
            };
            let args = match refused {
                Match::All => vec![0],
                Match::NamespaceFlags => vec![libc::CLONE_NEWPID as u64],
                Match::UnsafePersonality => vec![0x0040_0000],
                Match::DeviceNode { .. } => vec![0, u64::from(S_IFBLK), u64::from(S_IFBLK), 0],
                Match::TerminalInjection => vec![0, libc::TIOCSTI],
                Match::RefusedFamily => vec![libc::AF_VSOCK as u64],
            };
            let got = run_args(&f, NATIVE_ARCH, nr(rule.nr), &args);
            assert_eq!(got, ret_errno(errno), "{}", rule.name);
            // Every capability kept: only the argument checks that no capability
            // lifts remain.
            let got = run_args(&all, NATIVE_ARCH, nr(rule.nr), &args);
            let lifted = match rule.action {
                Action::Refuse { unless, .. } => !unless.is_empty(),
                Action::Allow => true,
            };
            let want = if lifted { RET_ALLOW } else { ret_errno(errno) };
            assert_eq!(got, want, "{} with every capability", rule.name);
        }
    }

    #[test]
    fn kept_capabilities_allow_their_calls() {
        let admin = Filter::default_profile(CapabilitySet::SYS_ADMIN);
        let native = |n: c_long, arg0: u64| run(&admin, NATIVE_ARCH, nr(n), arg0);
        assert_eq!(native(libc::SYS_mount, 0), RET_ALLOW);
        assert_eq!(native(libc::SYS_unshare, 0), RET_ALLOW);
        assert_eq!(
            native(libc::SYS_clone, libc::CLONE_NEWUSER as u64),
            RET_ALLOW
        );
        assert_eq!(native(libc::SYS_clone3, 0), RET_ALLOW);
        assert_eq!(native(libc::SYS_bpf, 0), RET_ALLOW);
        // Not everything: the keyring stays closed, modules stay out.
        assert_eq!(native(libc::SYS_keyctl, 0), ret_errno(libc::EPERM));
        assert_eq!(native(libc::SYS_init_module, 0), ret_errno(libc::EPERM));
        assert_eq!(native(libc::SYS_mbind, 0), ret_errno(libc::EPERM));

        let nice = Filter::default_profile(CapabilitySet::SYS_NICE);
        for n in [
            libc::SYS_mbind,
            libc::SYS_set_mempolicy,
            libc::SYS_move_pages,
            libc::SYS_migrate_pages,
        ] {
            assert_eq!(run(&nice, NATIVE_ARCH, nr(n), 0), RET_ALLOW, "{n}");
        }
        let ptrace = Filter::default_profile(CapabilitySet::SYS_PTRACE);
        for n in [
            libc::SYS_pidfd_getfd,
            libc::SYS_process_madvise,
            libc::SYS_process_vm_readv,
            libc::SYS_kcmp,
        ] {
            assert_eq!(run(&ptrace, NATIVE_ARCH, nr(n), 0), RET_ALLOW, "{n}");
        }
        let dac = Filter::default_profile(CapabilitySet::DAC_READ_SEARCH);
        for n in [libc::SYS_name_to_handle_at, libc::SYS_open_by_handle_at] {
            assert_eq!(run(&dac, NATIVE_ARCH, nr(n), 0), RET_ALLOW, "{n}");
        }

        // Docker's default set allows no gated call.
        assert_eq!(
            ranges(default_caps()),
            ranges(CapabilitySet::empty()),
            "the default capabilities change the profile"
        );
    }

    #[test]
    fn apps_get_a_filter_unless_unconfined_or_fly() {
        let mut app: RuntimeApp = serde_json::from_value(serde_json::json!({
            "name": "web", "imageId": "sha512-x", "image": "/x", "exec": ["/bin/sh"],
            "user": "0", "group": "0", "capabilities": ["CAP_CHOWN"]
        }))
        .unwrap();
        assert!(Filter::for_app(&app, Flavor::Default).unwrap().is_some());
        assert!(Filter::for_app(&app, Flavor::Fly).unwrap().is_none());
        app.seccomp = Seccomp::Unconfined;
        assert!(Filter::for_app(&app, Flavor::Default).unwrap().is_none());
        app.seccomp = Seccomp::Default;
        app.capabilities.push("CAP_NOPE".into());
        let err = manifests::error::chain(&Filter::for_app(&app, Flavor::Default).unwrap_err());
        assert!(err.contains("CAP_NOPE"), "{err}");
    }

    fn errno() -> i32 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// Forks; the child installs `filter` (if any) and runs `body` (raw system calls
    /// only: the test runner has other threads), exiting with its result. Returns the
    /// child's wait status.
    fn in_filtered_child(filter: Option<&Filter>, body: fn() -> i32) -> i32 {
        #[allow(unsafe_code)]
        // SAFETY: the child only makes raw system calls (prctl, seccomp and those of
        // `body`) and leaves with `_exit`; it touches no lock another thread may hold.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
            if pid == 0 {
                let installed = filter.is_none_or(|f| {
                    libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && f.install().is_ok()
                });
                libc::_exit(if installed { body() } else { 100 });
            }
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            status
        }
    }

    /// Asserts the child exited 0; otherwise names the check (its exit code) that
    /// failed.
    fn assert_passed(status: i32, checks: &str) {
        assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
        let code = libc::WEXITSTATUS(status);
        assert_eq!(
            code, 0,
            "check {code} failed (100: install failed): {checks}"
        );
    }

    /// In a child: returns `$n` from the body unless `$ok`.
    macro_rules! check {
        ($n:expr, $ok:expr) => {
            if !$ok {
                return $n;
            }
        };
    }

    fn failed_with(r: c_long, e: i32) -> bool {
        r == -1 && errno() == e
    }

    #[test]
    fn a_filtered_process_gets_eperm_for_refused_calls_only() {
        let filter = Filter::default_profile(CapabilitySet::empty());
        let status = in_filtered_child(Some(&filter), || {
            #[allow(unsafe_code)]
            // SAFETY: raw system calls with scalar, null or stack arguments; the
            // forked child's own exit is the only thing that follows.
            unsafe {
                check!(1, libc::syscall(libc::SYS_getpid) > 0);
                let r = libc::syscall(libc::SYS_keyctl, 0, -3i64, 0);
                check!(2, failed_with(r, libc::EPERM));
                let r = libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER);
                check!(3, failed_with(r, libc::EPERM));
                let r = libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize);
                check!(4, failed_with(r, libc::ENOSYS));
                let r = libc::syscall(libc::SYS_personality, 0x0040_0000u64);
                check!(5, failed_with(r, libc::EPERM));
                check!(6, libc::syscall(libc::SYS_personality, 0xffff_ffffu64) >= 0);
                // A plain fork through raw clone works; with a namespace flag it does not.
                let child = libc::syscall(libc::SYS_clone, libc::SIGCHLD as u64, 0, 0, 0, 0);
                if child == 0 {
                    libc::_exit(0);
                }
                let mut st = 0;
                let reaped = child > 0 && libc::waitpid(child as i32, &mut st, 0) == child as i32;
                check!(7, reaped && libc::WIFEXITED(st));
                let flags = (libc::SIGCHLD | libc::CLONE_NEWUSER) as u64;
                let r = libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0);
                if r == 0 {
                    libc::_exit(0);
                }
                check!(8, failed_with(r, libc::EPERM));
                // Numbers past the table: ENOSYS, like a kernel without them.
                let r = libc::syscall((max_known() + 1) as c_long);
                check!(9, failed_with(r, libc::ENOSYS));
                check!(10, failed_with(libc::syscall(1000), libc::ENOSYS));
                let r = libc::syscall(nr::LISTMOUNT, 0, 0, 0, 0);
                check!(11, failed_with(r, libc::ENOSYS));
                let r = libc::syscall(nr::STATMOUNT, 0, 0, 0, 0);
                check!(12, failed_with(r, libc::ENOSYS));
                // Known, not allowed: EPERM (as root, the kernel would allow these).
                let r = libc::syscall(libc::SYS_syslog, 10, 0, 0); // SIZE_BUFFER
                check!(13, failed_with(r, libc::EPERM));
                let r = libc::syscall(libc::SYS_kexec_load, 0, 0, 0, 0);
                check!(14, failed_with(r, libc::EPERM));
                let r = libc::syscall(libc::SYS_io_uring_setup, 1, std::ptr::null::<u8>());
                check!(15, failed_with(r, libc::EPERM));
                // Everyday calls.
                let fd = libc::syscall(
                    libc::SYS_openat,
                    libc::AT_FDCWD,
                    c"/dev/null".as_ptr(),
                    libc::O_RDONLY | libc::O_CLOEXEC,
                );
                check!(16, fd >= 0);
                let mut byte = [0u8; 1];
                let r = libc::syscall(libc::SYS_read, fd, byte.as_mut_ptr(), 1usize);
                check!(17, r == 0);
                check!(18, libc::syscall(libc::SYS_close, fd) == 0);
                let mut ts = std::mem::zeroed::<libc::timespec>();
                let r = libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut ts);
                check!(19, r == 0);
                // Sockets: vsock is refused, the rest works.
                let r = libc::syscall(libc::SYS_socket, libc::AF_VSOCK, libc::SOCK_STREAM, 0);
                check!(20, failed_with(r, libc::EPERM));
                let s = libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0);
                check!(21, s >= 0 && libc::syscall(libc::SYS_close, s) == 0);
                let s = libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_DGRAM, 0);
                check!(22, s >= 0 && libc::syscall(libc::SYS_close, s) == 0);
                // Gated calls, without their capabilities.
                let r = libc::syscall(libc::SYS_set_mempolicy, 0, 0, 0);
                check!(23, failed_with(r, libc::EPERM));
                let r = libc::syscall(libc::SYS_mbind, 0, 0, 0, 0, 0, 0);
                check!(24, failed_with(r, libc::EPERM));
                let pidfd = libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0);
                check!(25, pidfd >= 0);
                let r = libc::syscall(libc::SYS_pidfd_getfd, pidfd, pidfd, 0);
                check!(26, failed_with(r, libc::EPERM));
                let r = libc::syscall(libc::SYS_process_madvise, pidfd, 0, 0, 0, 0);
                check!(27, failed_with(r, libc::EPERM));
                let mut handle = [0u32; 34];
                handle[0] = 128;
                let mut mount_id = 0i32;
                let r = libc::syscall(
                    libc::SYS_name_to_handle_at,
                    libc::AT_FDCWD,
                    c"/".as_ptr(),
                    handle.as_mut_ptr(),
                    &mut mount_id,
                    0,
                );
                check!(28, failed_with(r, libc::EPERM));
                0
            }
        });
        assert_passed(
            status,
            "1 getpid, 2 keyctl, 3 unshare, 4 clone3, 5/6 personality, 7 fork, \
             8 clone(NEWUSER), 9/10 ENOSYS past the table, 11 listmount, 12 statmount, \
             13 syslog, 14 kexec_load, 15 io_uring, 16-19 open/read/close/clock, \
             20-22 socket, 23 set_mempolicy, 24 mbind, 25 pidfd_open, 26 pidfd_getfd, \
             27 process_madvise, 28 name_to_handle_at",
        );
    }

    /// The gated calls work once the app keeps their capability (the kernel has the
    /// last word: as root these succeed).
    #[test]
    fn a_kept_capability_lets_its_calls_through() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIPPED a_kept_capability_lets_its_calls_through: needs root");
            return;
        }
        let kept =
            CapabilitySet::SYS_NICE | CapabilitySet::SYS_PTRACE | CapabilitySet::DAC_READ_SEARCH;
        let filter = Filter::default_profile(kept);
        let status = in_filtered_child(Some(&filter), || {
            #[allow(unsafe_code)]
            // SAFETY: raw system calls with scalar, null or stack arguments; the page
            // mapped here is the child's own.
            unsafe {
                check!(1, libc::syscall(libc::SYS_set_mempolicy, 0, 0, 0) == 0);
                let page = libc::syscall(
                    libc::SYS_mmap,
                    0,
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                check!(2, page > 0);
                check!(
                    3,
                    libc::syscall(libc::SYS_mbind, page, 4096, 0, 0, 0, 0) == 0
                );
                let pidfd = libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0);
                check!(4, pidfd >= 0);
                check!(
                    5,
                    libc::syscall(libc::SYS_pidfd_getfd, pidfd, pidfd, 0) >= 0
                );
                let r = libc::syscall(libc::SYS_process_madvise, pidfd, 0, 0, 0, 0);
                check!(6, !failed_with(r, libc::EPERM));
                let mut handle = [0u32; 34];
                handle[0] = 128;
                let mut mount_id = 0i32;
                let r = libc::syscall(
                    libc::SYS_name_to_handle_at,
                    libc::AT_FDCWD,
                    c"/".as_ptr(),
                    handle.as_mut_ptr(),
                    &mut mount_id,
                    0,
                );
                check!(7, !failed_with(r, libc::EPERM));
                // Still refused: what no capability lifts.
                let r = libc::syscall(libc::SYS_keyctl, 0, -3i64, 0);
                check!(8, failed_with(r, libc::EPERM));
                0
            }
        });
        assert_passed(
            status,
            "1 set_mempolicy, 2 mmap, 3 mbind, 4 pidfd_open, 5 pidfd_getfd, \
             6 process_madvise, 7 name_to_handle_at, 8 keyctl",
        );
    }

    /// Opens a pty pair (raw calls): returns (master, slave) or a negative check
    /// number.
    #[allow(unsafe_code)]
    unsafe fn pty_pair() -> Result<(c_long, c_long), i32> {
        let master = libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if master < 0 {
            return Err(50);
        }
        let unlock = 0i32;
        if libc::syscall(libc::SYS_ioctl, master, libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(51);
        }
        let slave = libc::syscall(
            libc::SYS_ioctl,
            master,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if slave < 0 {
            return Err(52);
        }
        Ok((master, slave))
    }

    #[test]
    fn terminal_injection_is_refused() {
        let filter = Filter::default_profile(CapabilitySet::empty());
        let status = in_filtered_child(Some(&filter), || {
            #[allow(unsafe_code)]
            // SAFETY: raw ioctls on the child's own pty with stack arguments.
            unsafe {
                let (master, slave) = match pty_pair() {
                    Ok(p) => p,
                    Err(n) => return n,
                };
                let mut ws = std::mem::zeroed::<libc::winsize>();
                check!(
                    1,
                    libc::syscall(libc::SYS_ioctl, slave, libc::TIOCGWINSZ, &mut ws) == 0
                );
                let mut tio = std::mem::zeroed::<libc::termios>();
                check!(
                    2,
                    libc::syscall(libc::SYS_ioctl, slave, libc::TCGETS, &mut tio) == 0
                );
                let c = b'x';
                let r = libc::syscall(libc::SYS_ioctl, slave, libc::TIOCSTI, &c);
                check!(3, failed_with(r, libc::EPERM));
                let r = libc::syscall(libc::SYS_ioctl, master, libc::TIOCSTI, &c);
                check!(4, failed_with(r, libc::EPERM));
                // The kernel truncates the request to 32 bits: so does the filter.
                let garbage = 0xdead_beef_0000_0000u64 | libc::TIOCSTI;
                let r = libc::syscall(libc::SYS_ioctl, slave, garbage, &c);
                check!(5, failed_with(r, libc::EPERM));
                let sub = [6u8, 0]; // TIOCL_GETSHIFTSTATE
                let r = libc::syscall(libc::SYS_ioctl, slave, libc::TIOCLINUX, sub.as_ptr());
                check!(6, failed_with(r, libc::EPERM));
                0
            }
        });
        assert_passed(
            status,
            "1 TIOCGWINSZ, 2 TCGETS, 3/4 TIOCSTI, 5 TIOCSTI with garbage above, \
             6 TIOCLINUX; 50-52 opening a pty",
        );
        // Control: without the filter, root injects a character (the kernel lets
        // CAP_SYS_ADMIN type into any terminal), and TIOCLINUX is not a pty's.
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let status = in_filtered_child(None, || {
            #[allow(unsafe_code)]
            // SAFETY: as above.
            unsafe {
                let (_master, slave) = match pty_pair() {
                    Ok(p) => p,
                    Err(n) => return n,
                };
                let c = b'x';
                check!(
                    1,
                    libc::syscall(libc::SYS_ioctl, slave, libc::TIOCSTI, &c) == 0
                );
                let sub = [6u8, 0];
                let r = libc::syscall(libc::SYS_ioctl, slave, libc::TIOCLINUX, sub.as_ptr());
                check!(2, r == -1 && errno() != libc::EPERM);
                0
            }
        });
        assert_passed(
            status,
            "unfiltered: 1 TIOCSTI works, 2 TIOCLINUX fails otherwise",
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn foreign_abis_are_killed() {
        let filter = Filter::default_profile(CapabilitySet::empty());
        // The i386 ABI through `int 0x80` (getpid is 20 there).
        let status = in_filtered_child(Some(&filter), || {
            let mut eax: u32 = 20;
            #[allow(unsafe_code)]
            // SAFETY: getpid has no arguments and touches no memory.
            unsafe {
                std::arch::asm!("int 0x80", inout("eax") eax, options(nostack));
            }
            eax as i32 & 0x7f
        });
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS,
            "status {status:#x}"
        );
        // x32 getpid.
        let status = in_filtered_child(Some(&filter), || {
            #[allow(unsafe_code)]
            // SAFETY: a system call without arguments.
            let r = unsafe { libc::syscall((X32_SYSCALL_BIT | 39) as libc::c_long) };
            r as i32 & 0x7f
        });
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS,
            "status {status:#x}"
        );
    }
}
