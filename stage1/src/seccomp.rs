//! rkt's default seccomp profile: a denylist of system calls an app has no business
//! making, modelled on Docker's default profile but written as our own table
//! ([`RULES`]; each entry is explained in `docs/stage1.md`, "Seccomp").
//!
//! The filter is a classic BPF program built here by hand (no libseccomp):
//!
//! 1. a system call made through another ABI than the binary's own (i386 `int 0x80`
//!    or x32 on x86_64, arm32 on aarch64) kills the process: the table names the
//!    native numbers only, so a foreign ABI would walk around it;
//! 2. each rule: its system call returns an error (`EPERM`; `ENOSYS` for `clone3`,
//!    so that libc falls back to `clone`, whose flags the filter can see);
//! 3. everything else is allowed.
//!
//! Some rules only guard what a capability grants: they are left out when the app
//! keeps that capability (its `capabilities` list), as Docker does.
//!
//! stage1 installs the filter for the default flavor's apps unless the app's
//! `seccomp` is `unconfined`, as the last change before it drops the app's privileges
//! (see `launch` and `enter`): stage1 still holds `CAP_SYS_ADMIN` then, so the filter
//! can be installed with or without `no_new_privs`, and the privilege drop and
//! `execve` that follow make no call the table blocks.

use std::io;

use libc::sock_filter;
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
const OFF_ARG0_LOW: u32 = off_arg_low(0);
const S_IFMT: u32 = libc::S_IFMT;
const S_IFBLK: u32 = libc::S_IFBLK;
const S_IFCHR: u32 = libc::S_IFCHR;

pub const RET_KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
pub const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
pub const fn ret_errno(errno: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA)
}

/// Which calls of a system call a rule blocks.
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
}

/// One entry of the profile.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The system call's name, for documentation and test messages.
    #[cfg_attr(not(test), allow(dead_code))]
    pub name: &'static str,
    pub nr: libc::c_long,
    pub matches: Match,
    pub errno: i32,
    /// The rule is left out when the app keeps any of these capabilities.
    pub unless: &'static [CapabilitySet],
}

const fn deny(name: &'static str, nr: libc::c_long, unless: &'static [CapabilitySet]) -> Rule {
    Rule {
        name,
        nr,
        matches: Match::All,
        errno: libc::EPERM,
        unless,
    }
}

const NONE: &[CapabilitySet] = &[];
const SYS_ADMIN: &[CapabilitySet] = &[CapabilitySet::SYS_ADMIN];
const SYS_BOOT: &[CapabilitySet] = &[CapabilitySet::SYS_BOOT];
const SYS_MODULE: &[CapabilitySet] = &[CapabilitySet::SYS_MODULE];
const SYS_PTRACE: &[CapabilitySet] = &[CapabilitySet::SYS_PTRACE];
const SYS_TIME: &[CapabilitySet] = &[CapabilitySet::SYS_TIME];

/// The default profile. Documented entry by entry in `docs/stage1.md`.
pub static RULES: &[Rule] = &[
    // Kernel code and boot.
    deny("kexec_load", libc::SYS_kexec_load, SYS_BOOT),
    deny("kexec_file_load", libc::SYS_kexec_file_load, SYS_BOOT),
    deny("reboot", libc::SYS_reboot, SYS_BOOT),
    deny("init_module", libc::SYS_init_module, SYS_MODULE),
    deny("finit_module", libc::SYS_finit_module, SYS_MODULE),
    deny("delete_module", libc::SYS_delete_module, SYS_MODULE),
    // Mounts and namespaces.
    deny("mount", libc::SYS_mount, SYS_ADMIN),
    deny("umount2", libc::SYS_umount2, SYS_ADMIN),
    deny("pivot_root", libc::SYS_pivot_root, SYS_ADMIN),
    deny("open_tree", libc::SYS_open_tree, SYS_ADMIN),
    // Linux 6.15; the same number on every architecture.
    deny("open_tree_attr", 467, SYS_ADMIN),
    deny("move_mount", libc::SYS_move_mount, SYS_ADMIN),
    deny("fsopen", libc::SYS_fsopen, SYS_ADMIN),
    deny("fsconfig", libc::SYS_fsconfig, SYS_ADMIN),
    deny("fsmount", libc::SYS_fsmount, SYS_ADMIN),
    deny("fspick", libc::SYS_fspick, SYS_ADMIN),
    deny("mount_setattr", libc::SYS_mount_setattr, SYS_ADMIN),
    deny("unshare", libc::SYS_unshare, SYS_ADMIN),
    deny("setns", libc::SYS_setns, SYS_ADMIN),
    Rule {
        name: "clone",
        nr: libc::SYS_clone,
        matches: Match::NamespaceFlags,
        errno: libc::EPERM,
        unless: SYS_ADMIN,
    },
    Rule {
        name: "clone3",
        nr: libc::SYS_clone3,
        matches: Match::All,
        errno: libc::ENOSYS,
        unless: SYS_ADMIN,
    },
    // Host-wide kernel state.
    deny("swapon", libc::SYS_swapon, SYS_ADMIN),
    deny("swapoff", libc::SYS_swapoff, SYS_ADMIN),
    deny("quotactl", libc::SYS_quotactl, SYS_ADMIN),
    deny("quotactl_fd", libc::SYS_quotactl_fd, SYS_ADMIN),
    deny("fanotify_init", libc::SYS_fanotify_init, SYS_ADMIN),
    deny("lookup_dcookie", libc::SYS_lookup_dcookie, SYS_ADMIN),
    deny("acct", libc::SYS_acct, &[CapabilitySet::SYS_PACCT]),
    deny("settimeofday", libc::SYS_settimeofday, SYS_TIME),
    deny("clock_settime", libc::SYS_clock_settime, SYS_TIME),
    deny("syslog", libc::SYS_syslog, &[CapabilitySet::SYSLOG]),
    deny(
        "vhangup",
        libc::SYS_vhangup,
        &[CapabilitySet::SYS_TTY_CONFIG],
    ),
    // Kernel attack surface.
    deny(
        "bpf",
        libc::SYS_bpf,
        &[CapabilitySet::SYS_ADMIN, CapabilitySet::BPF],
    ),
    deny(
        "perf_event_open",
        libc::SYS_perf_event_open,
        &[CapabilitySet::SYS_ADMIN, CapabilitySet::PERFMON],
    ),
    deny("userfaultfd", libc::SYS_userfaultfd, SYS_PTRACE),
    deny("io_uring_setup", libc::SYS_io_uring_setup, NONE),
    deny("io_uring_enter", libc::SYS_io_uring_enter, NONE),
    deny("io_uring_register", libc::SYS_io_uring_register, NONE),
    // The kernel keyring is not namespaced.
    deny("keyctl", libc::SYS_keyctl, NONE),
    deny("add_key", libc::SYS_add_key, NONE),
    deny("request_key", libc::SYS_request_key, NONE),
    // Reaching past the app's own files and processes.
    deny(
        "open_by_handle_at",
        libc::SYS_open_by_handle_at,
        &[CapabilitySet::DAC_READ_SEARCH],
    ),
    deny("process_vm_readv", libc::SYS_process_vm_readv, SYS_PTRACE),
    deny("process_vm_writev", libc::SYS_process_vm_writev, SYS_PTRACE),
    deny("kcmp", libc::SYS_kcmp, SYS_PTRACE),
    Rule {
        name: "personality",
        nr: libc::SYS_personality,
        matches: Match::UnsafePersonality,
        errno: libc::EPERM,
        unless: NONE,
    },
    // Device nodes: a block device node opens the host's disks.
    #[cfg(target_arch = "x86_64")]
    Rule {
        name: "mknod",
        nr: libc::SYS_mknod,
        matches: Match::DeviceNode { mode: 1, dev: 2 },
        errno: libc::EPERM,
        unless: NONE,
    },
    Rule {
        name: "mknodat",
        nr: libc::SYS_mknodat,
        matches: Match::DeviceNode { mode: 2, dev: 3 },
        errno: libc::EPERM,
        unless: NONE,
    },
    // x86 port I/O and obsolete calls.
    #[cfg(target_arch = "x86_64")]
    deny("iopl", libc::SYS_iopl, &[CapabilitySet::SYS_RAWIO]),
    #[cfg(target_arch = "x86_64")]
    deny("ioperm", libc::SYS_ioperm, &[CapabilitySet::SYS_RAWIO]),
    #[cfg(target_arch = "x86_64")]
    deny("uselib", libc::SYS_uselib, NONE),
    #[cfg(target_arch = "x86_64")]
    deny("_sysctl", libc::SYS__sysctl, NONE),
    #[cfg(target_arch = "x86_64")]
    deny("ustat", libc::SYS_ustat, NONE),
    #[cfg(target_arch = "x86_64")]
    deny("sysfs", libc::SYS_sysfs, NONE),
    #[cfg(target_arch = "x86_64")]
    deny("nfsservctl", libc::SYS_nfsservctl, NONE),
];

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp profile: {0}")]
    Capabilities(#[from] SecurityError),
    #[error("install the seccomp filter ({len} instructions): {source}")]
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
const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const JGE: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
const JSET: u32 = libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K;
const RET: u32 = libc::BPF_RET | libc::BPF_K;
const AND: u32 = libc::BPF_ALU | libc::BPF_AND | libc::BPF_K;

/// The rules in force for an app that keeps `kept`.
pub fn active_rules(kept: CapabilitySet) -> impl Iterator<Item = &'static Rule> {
    RULES
        .iter()
        .filter(move |r| !r.unless.iter().any(|c| kept.contains(*c)))
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
        // Every block leaves the accumulator holding the number, or returns: blocks
        // that load an argument end in returns of their own.
        for rule in active_rules(kept) {
            let nr = rule.nr as u32;
            let block = ret_errno(rule.errno);
            match rule.matches {
                Match::All => p.extend([jump(JEQ, nr, 0, 1), stmt(RET, block)]),
                Match::NamespaceFlags => p.extend([
                    jump(JEQ, nr, 0, 4),
                    stmt(LD_ABS, OFF_ARG0_LOW),
                    jump(JSET, NAMESPACE_FLAGS, 0, 1),
                    stmt(RET, block),
                    stmt(RET, RET_ALLOW),
                ]),
                Match::UnsafePersonality => {
                    let n = PERSONALITIES.len();
                    p.push(jump(JEQ, nr, 0, (n + 3) as u8));
                    p.push(stmt(LD_ABS, OFF_ARG0_LOW));
                    for (i, v) in PERSONALITIES.iter().enumerate() {
                        p.push(jump(JEQ, *v, (n - i) as u8, 0));
                    }
                    p.push(stmt(RET, block));
                    p.push(stmt(RET, RET_ALLOW));
                }
                Match::DeviceNode { mode, dev } => {
                    // [0] nr? [1] ld mode [2] and [3] blk? [4] chr? [5] ld dev
                    // [6..6+n] harmless? [6+n] ret block [7+n] ret allow
                    let n = HARMLESS_DEVICES.len();
                    p.push(jump(JEQ, nr, 0, (n + 7) as u8));
                    p.push(stmt(LD_ABS, off_arg_low(mode)));
                    p.push(stmt(AND, S_IFMT));
                    p.push(jump(JEQ, S_IFBLK, (n + 2) as u8, 0));
                    p.push(jump(JEQ, S_IFCHR, 0, (n + 2) as u8));
                    p.push(stmt(LD_ABS, off_arg_low(dev)));
                    for (i, d) in HARMLESS_DEVICES.iter().enumerate() {
                        p.push(jump(JEQ, *d, (n - i) as u8, 0));
                    }
                    p.push(stmt(RET, block));
                    p.push(stmt(RET, RET_ALLOW));
                }
            }
        }
        p.push(stmt(RET, RET_ALLOW));
        Filter { program: p }
    }

    /// The filter `app` gets: none for the fly flavor or an `unconfined` app,
    /// otherwise the default profile less the rules its capabilities lift.
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
                JEQ => pc += taken(acc == ins.k),
                JGE => pc += taken(acc >= ins.k),
                JSET => pc += taken(acc & ins.k != 0),
                AND => acc &= ins.k,
                RET => return ins.k,
                other => panic!("unexpected instruction {other:#x} at {}", pc - 1),
            }
        }
    }

    fn nr(n: libc::c_long) -> u32 {
        n as u32
    }

    #[test]
    fn decisions_of_the_default_profile() {
        let f = Filter::default_profile(CapabilitySet::empty());
        assert!(f.instructions().len() < 4096);
        let eperm = ret_errno(libc::EPERM);
        let native = |n: libc::c_long, arg0: u64| run(&f, NATIVE_ARCH, nr(n), arg0);
        assert_eq!(native(libc::SYS_getpid, 0), RET_ALLOW);
        assert_eq!(native(libc::SYS_ptrace, 0), RET_ALLOW);
        assert_eq!(native(libc::SYS_keyctl, 0), eperm);
        assert_eq!(native(libc::SYS_mount, 0), eperm);
        assert_eq!(native(libc::SYS_kexec_load, 0), eperm);
        assert_eq!(native(libc::SYS_bpf, 0), eperm);
        assert_eq!(native(libc::SYS_clone3, 0), ret_errno(libc::ENOSYS));
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
        // Foreign ABIs die.
        assert_eq!(run(&f, 0x4000_0003, 20, 0), RET_KILL_PROCESS);
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(
                run(&f, NATIVE_ARCH, X32_SYSCALL_BIT | 39, 0),
                RET_KILL_PROCESS
            );
            assert_eq!(run(&f, NATIVE_ARCH, u32::MAX, 0), RET_ALLOW);
            assert_eq!(native(libc::SYS_iopl, 3), eperm);
        }
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
        // Every rule blocks its call.
        for rule in RULES {
            let args = match rule.matches {
                Match::All => vec![0],
                Match::NamespaceFlags => vec![libc::CLONE_NEWPID as u64],
                Match::UnsafePersonality => vec![0x0040_0000],
                Match::DeviceNode { .. } => vec![0, u64::from(S_IFBLK), u64::from(S_IFBLK), 0],
            };
            let got = run_args(&f, NATIVE_ARCH, nr(rule.nr), &args);
            assert_eq!(got, ret_errno(rule.errno), "{}", rule.name);
        }
    }

    #[test]
    fn kept_capabilities_lift_their_rules() {
        let admin = Filter::default_profile(CapabilitySet::SYS_ADMIN);
        let native = |n: libc::c_long, arg0: u64| run(&admin, NATIVE_ARCH, nr(n), arg0);
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

        let defaults: Vec<String> = manifests::runtime::DEFAULT_CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .collect();
        let kept = security::parse_capabilities(&defaults).unwrap();
        // Docker's default set lifts nothing.
        assert_eq!(active_rules(kept).count(), RULES.len());
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
        let err = Filter::for_app(&app, Flavor::Default).unwrap_err();
        assert!(err.to_string().contains("CAP_NOPE"), "{err}");
    }

    fn errno() -> i32 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// Forks; the child installs `filter` and runs `body` (raw system calls only: the
    /// test runner has other threads), exiting with its result. Returns the child's
    /// wait status.
    fn in_filtered_child(filter: &Filter, body: fn() -> i32) -> i32 {
        #[allow(unsafe_code)]
        // SAFETY: the child only makes raw system calls (prctl, seccomp and those of
        // `body`) and leaves with `_exit`; it touches no lock another thread may hold.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
            if pid == 0 {
                let code = if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || filter.install().is_err()
                {
                    100
                } else {
                    body()
                };
                libc::_exit(code);
            }
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            status
        }
    }

    #[test]
    fn a_filtered_process_gets_eperm_for_blocked_calls_only() {
        let filter = Filter::default_profile(CapabilitySet::empty());
        let status = in_filtered_child(&filter, || {
            #[allow(unsafe_code)]
            // SAFETY: raw system calls with scalar or null arguments; the forked
            // child's own exit is the only thing that follows.
            unsafe {
                let check = |ok: bool, bit: i32| if ok { 0 } else { bit };
                let mut failed = 0;
                failed |= check(libc::syscall(libc::SYS_getpid) > 0, 1);
                let r = libc::syscall(libc::SYS_keyctl, 0, -3i64, 0);
                failed |= check(r == -1 && errno() == libc::EPERM, 2);
                let r = libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER);
                failed |= check(r == -1 && errno() == libc::EPERM, 4);
                let r = libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize);
                failed |= check(r == -1 && errno() == libc::ENOSYS, 8);
                let r = libc::syscall(libc::SYS_personality, 0x0040_0000u64);
                failed |= check(r == -1 && errno() == libc::EPERM, 16);
                failed |= check(
                    libc::syscall(libc::SYS_personality, 0xffff_ffffu64) >= 0,
                    32,
                );
                // A plain fork through raw clone works; with a namespace flag it does not.
                let child = libc::syscall(libc::SYS_clone, libc::SIGCHLD as u64, 0, 0, 0, 0);
                if child == 0 {
                    libc::_exit(0);
                }
                let mut st = 0;
                let reaped = child > 0 && libc::waitpid(child as i32, &mut st, 0) == child as i32;
                failed |= check(reaped && libc::WIFEXITED(st), 64);
                let flags = (libc::SIGCHLD | libc::CLONE_NEWUSER) as u64;
                let r = libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0);
                if r == 0 {
                    libc::_exit(0);
                }
                failed |= check(r == -1 && errno() == libc::EPERM, 128);
                failed
            }
        });
        assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "failed checks (bits): 1 getpid, 2 keyctl, 4 unshare, 8 clone3, \
             16/32 personality, 64 fork, 128 clone(NEWUSER); 100: install failed"
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn foreign_abis_are_killed() {
        let filter = Filter::default_profile(CapabilitySet::empty());
        // The i386 ABI through `int 0x80` (getpid is 20 there).
        let status = in_filtered_child(&filter, || {
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
        let status = in_filtered_child(&filter, || {
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
