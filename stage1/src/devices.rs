//! The device cgroup: which device nodes an app may open (or create), whatever nodes
//! it finds or makes. The second layer behind `nodev` (see `rootfs`): an app that
//! keeps `CAP_MKNOD` and finds a mount without `nodev` still opens only these.
//!
//! [`allow_list`] works out the rules from the runtime configuration; on cgroup v1
//! they become `devices.deny` / `devices.allow` lines ([`v1_lines`]), on v2 a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program ([`program`]) attached to the app's cgroup
//! ([`attach`]).

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use manifests::runtime::{RuntimeApp, RuntimeConfig, Volume};

/// Nodes every app may open and create: null, zero, full, random, urandom, tty (the
/// `/dev` stage1 makes) and `/dev/ptmx` (its devpts instance's multiplexer).
pub const DEFAULT_CHAR: &[(u32, u32)] = &[(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)];
/// The kernel's Unix98 pty slave majors (`UNIX98_PTY_SLAVE_MAJOR` and the seven after
/// it). A slave opens only through its own devpts instance, so allowing them all
/// reaches no other pod's or the host's terminals.
pub const PTY_SLAVE_MAJORS: std::ops::RangeInclusive<u32> = 136..=143;
/// At most this many device nodes are read from a volume under the host's `/dev`.
const MAX_DEV_VOLUME_NODES: usize = 4096;
/// ...and at most this deep.
const MAX_DEV_VOLUME_DEPTH: usize = 8;

/// The node types a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Char,
    Block,
}

/// What a rule allows, as bits of the kernel's `BPF_DEVCG_ACC_*`.
pub const MKNOD: u8 = 1;
pub const READ: u8 = 2;
pub const WRITE: u8 = 4;

/// One allowed device (or range): `None` for major or minor matches any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// [`MKNOD`], [`READ`], [`WRITE`] or'ed.
    pub access: u8,
}

impl Rule {
    fn char(major: u32, minor: Option<u32>, access: u8) -> Rule {
        Rule {
            kind: Kind::Char,
            major: Some(major),
            minor,
            access,
        }
    }
}

/// What an app may open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    /// Every device: a privileged app.
    All,
    /// Only these (deduplicated, sorted).
    Only(Vec<Rule>),
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("volume {volume}: cannot read {path}", path = path.display())]
    Volume {
        volume: String,
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error(
        "volume {volume}: {path} holds more than {MAX_DEV_VOLUME_NODES} device nodes",
        path = path.display()
    )]
    TooManyNodes {
        volume: String,
        path: std::path::PathBuf,
    },
    #[error("cannot load the device cgroup program ({insns} instructions): {error}{log}")]
    Load {
        insns: usize,
        /// Not a `source`: the verifier's log, about this failure, follows it in the message.
        error: io::Error,
        log: String,
    },
    #[error("cannot attach the device cgroup program to {path}", path = path.display())]
    Attach {
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error("cannot open cgroup {path}", path = path.display())]
    Open {
        path: std::path::PathBuf,
        source: io::Error,
    },
}

fn node_rule(meta: &fs::Metadata, access: u8) -> Option<Rule> {
    let kind = if meta.file_type().is_char_device() {
        Kind::Char
    } else if meta.file_type().is_block_device() {
        Kind::Block
    } else {
        return None;
    };
    let rdev = meta.rdev();
    Some(Rule {
        kind,
        major: Some(rustix::fs::major(rdev)),
        minor: Some(rustix::fs::minor(rdev)),
        access,
    })
}

/// The device nodes under `dir` (not following symlinks), bounded in number and depth.
fn nodes_under(dir: &Path, access: u8, depth: usize, out: &mut Vec<Rule>) -> io::Result<bool> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if let Some(rule) = node_rule(&meta, access) {
            if !out.contains(&rule) {
                if out.len() >= MAX_DEV_VOLUME_NODES {
                    return Ok(false);
                }
                out.push(rule);
            }
        } else if meta.is_dir() && depth < MAX_DEV_VOLUME_DEPTH {
            // A directory that vanished or cannot be read is skipped, not fatal:
            // /dev changes under us.
            match nodes_under(&entry.path(), access, depth + 1, out) {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(_) => {}
            }
        }
    }
    Ok(true)
}

/// The devices `app` may open: [`Allow::All`] when stage0 marked it
/// `allowAllDevices` (a privileged container); else the defaults ([`DEFAULT_CHAR`],
/// the pty slaves), `console` (the terminal bound at `/dev/console` of an interactive
/// pod), and what the operator gave through the app's `host` volumes: a device node
/// (read-only mounts allow reading only: a read-only mount does not stop writes to a
/// device), or the device nodes found, when the pod starts, in a directory of the
/// host's `/dev`. Nodes that appear there later stay closed.
pub fn allow_list(
    cfg: &RuntimeConfig,
    app: &RuntimeApp,
    console: Option<(u32, u32)>,
) -> Result<Allow, DeviceError> {
    if app.allow_all_devices {
        return Ok(Allow::All);
    }
    let mut rules: Vec<Rule> = DEFAULT_CHAR
        .iter()
        .map(|&(major, minor)| Rule::char(major, Some(minor), READ | WRITE | MKNOD))
        .collect();
    rules.extend(PTY_SLAVE_MAJORS.map(|major| Rule::char(major, None, READ | WRITE | MKNOD)));
    if let Some((major, minor)) = console {
        rules.push(Rule::char(major, Some(minor), READ | WRITE));
    }
    for m in &app.mounts {
        let Some(Volume::Host {
            name,
            source,
            read_only,
        }) = cfg.volumes.iter().find(|v| v.name() == m.volume)
        else {
            continue;
        };
        let access = if *read_only || m.read_only {
            READ
        } else {
            READ | WRITE
        };
        // A missing source fails the app's start with its own error (see `rootfs`).
        let Ok(meta) = fs::metadata(source) else {
            continue;
        };
        if let Some(rule) = node_rule(&meta, access) {
            rules.push(rule);
        } else if crate::rootfs::is_device_source(source) && meta.is_dir() {
            let mut found = Vec::new();
            let complete =
                nodes_under(source, access, 0, &mut found).map_err(|e| DeviceError::Volume {
                    volume: name.clone(),
                    path: source.clone(),
                    source: e,
                })?;
            if !complete {
                return Err(DeviceError::TooManyNodes {
                    volume: name.clone(),
                    path: source.clone(),
                });
            }
            rules.extend(found);
        }
    }
    // Same device twice (say read-only and read-write): one rule with both accesses.
    rules.sort();
    let mut merged: Vec<Rule> = Vec::with_capacity(rules.len());
    for r in rules {
        match merged.last_mut() {
            Some(last) if (last.kind, last.major, last.minor) == (r.kind, r.major, r.minor) => {
                last.access |= r.access
            }
            _ => merged.push(r),
        }
    }
    Ok(Allow::Only(merged))
}

fn access_text(access: u8) -> String {
    [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')]
        .iter()
        .filter(|(bit, _)| access & bit != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// The lines written to a v1 device cgroup, in order: `(file, line)`. `a` to
/// `devices.deny` first (drops everything inherited), then one `devices.allow` line
/// per rule; or `a` to `devices.allow` for [`Allow::All`].
pub fn v1_lines(allow: &Allow) -> Vec<(&'static str, String)> {
    match allow {
        Allow::All => vec![("devices.allow", "a".to_string())],
        Allow::Only(rules) => {
            let mut out = vec![("devices.deny", "a".to_string())];
            let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
            for r in rules {
                let kind = match r.kind {
                    Kind::Char => 'c',
                    Kind::Block => 'b',
                };
                out.push((
                    "devices.allow",
                    format!(
                        "{kind} {}:{} {}",
                        num(r.major),
                        num(r.minor),
                        access_text(r.access)
                    ),
                ));
            }
            out
        }
    }
}

// ---- cgroup v2: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE ----

/// One eBPF instruction (`struct bpf_insn`): opcode, registers (dst low nibble, src
/// high nibble), offset, immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes used (class | op | source).
const LDX_MEM_W: u8 = 0x01 | 0x60; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_AND_K: u8 = 0x07 | 0x50; // BPF_ALU64 | BPF_AND | BPF_K
const ALU64_RSH_K: u8 = 0x07 | 0x70; // BPF_ALU64 | BPF_RSH | BPF_K
const ALU64_MOV_K: u8 = 0x07 | 0xb0; // BPF_ALU64 | BPF_MOV | BPF_K
const ALU64_MOV_X: u8 = 0x07 | 0xb0 | 0x08; // BPF_ALU64 | BPF_MOV | BPF_X
const JMP_JNE_K: u8 = 0x05 | 0x50; // BPF_JMP | BPF_JNE | BPF_K
const JMP_EXIT: u8 = 0x05 | 0x90; // BPF_JMP | BPF_EXIT

// Registers: r1 is the context (`struct bpf_cgroup_dev_ctx`: u32 access_type, major,
// minor); the program keeps the request's type in r2, access in r3, major in r4,
// minor in r5, scratch in r6; r0 is the answer (1 allow, 0 deny).
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
const R6: u8 = 6;

/// `BPF_DEVCG_DEV_BLOCK`, `BPF_DEVCG_DEV_CHAR`: the low 16 bits of `access_type`.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// The program allowing exactly `allow`: each rule is a block that jumps to the next
/// block on the first mismatch and returns 1 when it gets to its end; after the last
/// block the answer is 0.
pub fn program(allow: &Allow) -> Vec<Insn> {
    let mut p = Vec::new();
    let rules = match allow {
        Allow::All => {
            p.push(insn(ALU64_MOV_K, R0, 0, 0, 1));
            p.push(insn(JMP_EXIT, 0, 0, 0, 0));
            return p;
        }
        Allow::Only(rules) => rules,
    };
    p.extend([
        insn(LDX_MEM_W, R2, R1, 0, 0), // r2 = access_type
        insn(LDX_MEM_W, R4, R1, 4, 0), // r4 = major
        insn(LDX_MEM_W, R5, R1, 8, 0), // r5 = minor
        insn(ALU64_MOV_X, R3, R2, 0, 0),
        insn(ALU64_RSH_K, R3, 0, 0, 16), // r3 = access (mknod 1, read 2, write 4)
        insn(ALU64_AND_K, R2, 0, 0, 0xffff), // r2 = type (block 1, char 2)
    ]);
    for r in rules {
        let mut block = Vec::new();
        // Each check is `if reg != value goto next`; the offset is patched below.
        let kind = match r.kind {
            Kind::Block => DEV_BLOCK,
            Kind::Char => DEV_CHAR,
        };
        block.push(insn(JMP_JNE_K, R2, 0, 0, kind));
        if let Some(major) = r.major {
            block.push(insn(JMP_JNE_K, R4, 0, 0, major as i32));
        }
        if let Some(minor) = r.minor {
            block.push(insn(JMP_JNE_K, R5, 0, 0, minor as i32));
        }
        let all = i32::from(MKNOD | READ | WRITE);
        if i32::from(r.access) & all != all {
            // Every access asked for must be allowed: (access & !allowed) == 0.
            block.push(insn(ALU64_MOV_X, R6, R3, 0, 0));
            block.push(insn(ALU64_AND_K, R6, 0, 0, !i32::from(r.access) & all));
            block.push(insn(JMP_JNE_K, R6, 0, 0, 0));
        }
        block.push(insn(ALU64_MOV_K, R0, 0, 0, 1));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JMP_JNE_K {
                // Relative to the next instruction: land on the next block's first.
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(ALU64_MOV_K, R0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

/// What [`program`] answers for a request, run by a tiny interpreter of the
/// instructions it emits: lets tests check the encoding without a kernel.
#[cfg(test)]
pub fn interpret(prog: &[Insn], kind: Kind, major: u32, minor: u32, access: u8) -> u64 {
    let kind = match kind {
        Kind::Block => DEV_BLOCK as u64,
        Kind::Char => DEV_CHAR as u64,
    };
    let ctx = [(u64::from(access) << 16) | kind, major.into(), minor.into()];
    let mut reg = [0u64; 11];
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
        let imm = i.imm as i64 as u64;
        pc += 1;
        match i.code {
            LDX_MEM_W => {
                assert_eq!(src, 1, "loads only from the context");
                reg[dst] = ctx[(i.off / 4) as usize];
            }
            ALU64_AND_K => reg[dst] &= imm,
            ALU64_RSH_K => reg[dst] >>= imm,
            ALU64_MOV_K => reg[dst] = imm,
            ALU64_MOV_X => reg[dst] = reg[src],
            JMP_JNE_K => {
                if reg[dst] != imm {
                    pc = (pc as i64 + i64::from(i.off)) as usize;
                }
            }
            JMP_EXIT => return reg[0],
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
}

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Programs of parent cgroups keep running too: all must allow.
const BPF_F_ALLOW_MULTI: u32 = 2;
/// Bytes of `union bpf_attr` passed (zero past the fields set).
const ATTR_SIZE: usize = 128;

fn bpf(cmd: libc::c_int, attr: &mut [u8; ATTR_SIZE]) -> io::Result<i64> {
    #[allow(unsafe_code)]
    // SAFETY: `attr` is a zeroed `union bpf_attr` prefix of ATTR_SIZE bytes whose
    // pointer fields point at buffers the caller keeps alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            ATTR_SIZE as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn put_u32(attr: &mut [u8], at: usize, v: u32) {
    attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}
fn put_u64(attr: &mut [u8], at: usize, v: u64) {
    attr[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// Load `prog` as a `BPF_PROG_TYPE_CGROUP_DEVICE` program; the verifier's log is in
/// the error if it refuses it.
pub fn load(prog: &[Insn]) -> Result<OwnedFd, DeviceError> {
    let license = b"GPL\0";
    let mut log = vec![0u8; 64 * 1024];
    let name = b"rkt_devices";
    let mut attr = [0u8; ATTR_SIZE];
    // union bpf_attr, BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, log_level,
    // log_size, log_buf, kern_version, prog_flags, prog_name[16], prog_ifindex,
    // expected_attach_type.
    put_u32(&mut attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE);
    put_u32(&mut attr, 4, prog.len() as u32);
    put_u64(&mut attr, 8, prog.as_ptr() as u64);
    put_u64(&mut attr, 16, license.as_ptr() as u64);
    put_u32(&mut attr, 24, 1);
    put_u32(&mut attr, 28, log.len() as u32);
    put_u64(&mut attr, 32, log.as_mut_ptr() as u64);
    attr[48..48 + name.len()].copy_from_slice(name);
    put_u32(&mut attr, 68, BPF_CGROUP_DEVICE);
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => {
            #[allow(unsafe_code)]
            // SAFETY: BPF_PROG_LOAD returned a new file descriptor that we now own.
            Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
        }
        Err(source) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
            Err(DeviceError::Load {
                insns: prog.len(),
                error: source,
                log: if text.is_empty() {
                    String::new()
                } else {
                    format!(": {text}")
                },
            })
        }
    }
}

/// Load the program for `allow` and attach it to the v2 cgroup `dir`. The cgroup
/// keeps the program; it goes when the cgroup is removed.
pub fn attach(dir: &Path, allow: &Allow) -> Result<(), DeviceError> {
    let prog = load(&program(allow))?;
    let cgroup = fs::File::open(dir).map_err(|source| DeviceError::Open {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut attr = [0u8; ATTR_SIZE];
    // BPF_PROG_ATTACH: target_fd, attach_bpf_fd, attach_type, attach_flags.
    put_u32(&mut attr, 0, cgroup.as_raw_fd() as u32);
    put_u32(&mut attr, 4, prog.as_raw_fd() as u32);
    put_u32(&mut attr, 8, BPF_CGROUP_DEVICE);
    put_u32(&mut attr, 12, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|source| DeviceError::Attach {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(rules: &[Rule]) -> Allow {
        Allow::Only(rules.to_vec())
    }

    #[test]
    fn instruction_layout_is_the_kernels() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        // r3 = r2 (mov64 reg): 0xbf, dst 3 in the low nibble, src 2 in the high one.
        let i = insn(ALU64_MOV_X, R3, R2, 0, 0);
        #[allow(unsafe_code)]
        // SAFETY: Insn is repr(C), 8 bytes, no padding.
        let bytes: [u8; 8] = unsafe { std::mem::transmute(i) };
        assert_eq!(bytes, [0xbf, 0x23, 0, 0, 0, 0, 0, 0]);
        // if r4 != 136 goto +3
        let i = insn(JMP_JNE_K, R4, 0, 3, 136);
        #[allow(unsafe_code)]
        // SAFETY: as above.
        let bytes: [u8; 8] = unsafe { std::mem::transmute(i) };
        let mut want = [0x55, 0x04, 3, 0, 0, 0, 0, 0];
        want[4..].copy_from_slice(&136i32.to_ne_bytes());
        assert_eq!(bytes, want);
        assert_eq!(
            [LDX_MEM_W, ALU64_AND_K, ALU64_RSH_K, ALU64_MOV_K, JMP_EXIT],
            [0x61, 0x57, 0x77, 0xb7, 0x95]
        );
    }

    #[test]
    fn program_blocks_and_jumps() {
        let p = program(&only(&[Rule::char(1, Some(3), READ | WRITE | MKNOD)]));
        // 6 loads/shifts, then: type, major, minor checks, r0 = 1, exit; r0 = 0, exit.
        assert_eq!(p.len(), 6 + 5 + 2);
        assert_eq!(p[6], insn(JMP_JNE_K, R2, 0, 4, DEV_CHAR));
        assert_eq!(p[7], insn(JMP_JNE_K, R4, 0, 3, 1));
        assert_eq!(p[8], insn(JMP_JNE_K, R5, 0, 2, 3));
        assert_eq!(p[11], insn(ALU64_MOV_K, R0, 0, 0, 0));
        // A wildcard minor and a partial access: no minor check, an access check.
        let p = program(&only(&[Rule::char(136, None, READ)]));
        assert_eq!(p.len(), 6 + 7 + 2);
        assert_eq!(p[8], insn(ALU64_MOV_X, R6, R3, 0, 0));
        assert_eq!(p[9], insn(ALU64_AND_K, R6, 0, 0, 5));
        assert_eq!(program(&Allow::All).len(), 2);
        assert_eq!(program(&only(&[])).len(), 8);
    }

    #[test]
    fn program_answers_like_the_rules() {
        let rules = only(&[
            Rule::char(1, Some(3), READ | WRITE | MKNOD),
            Rule::char(136, None, READ | WRITE),
            Rule {
                kind: Kind::Block,
                major: Some(254),
                minor: Some(0),
                access: READ,
            },
        ]);
        let p = program(&rules);
        let run = |k, maj, min, acc| interpret(&p, k, maj, min, acc);
        assert_eq!(run(Kind::Char, 1, 3, READ | WRITE), 1);
        assert_eq!(run(Kind::Char, 1, 3, MKNOD), 1);
        assert_eq!(run(Kind::Char, 1, 4, READ), 0, "/dev/port");
        assert_eq!(run(Kind::Block, 1, 3, READ), 0, "type matters");
        assert_eq!(run(Kind::Char, 136, 7, READ | WRITE), 1, "any minor");
        assert_eq!(run(Kind::Char, 136, 7, MKNOD), 0, "no mknod");
        assert_eq!(run(Kind::Block, 254, 0, READ), 1);
        assert_eq!(run(Kind::Block, 254, 0, READ | WRITE), 0, "read-only");
        assert_eq!(run(Kind::Block, 254, 1, READ), 0, "another partition");
        assert_eq!(run(Kind::Char, 254, 0, READ), 0);
        let all = program(&Allow::All);
        assert_eq!(interpret(&all, Kind::Block, 8, 0, WRITE), 1);
        assert_eq!(interpret(&program(&only(&[])), Kind::Char, 1, 3, READ), 0);
    }

    #[test]
    fn v1_lines_deny_all_first() {
        let lines = v1_lines(&only(&[
            Rule::char(1, Some(3), READ | WRITE | MKNOD),
            Rule::char(136, None, READ | WRITE),
            Rule {
                kind: Kind::Block,
                major: Some(8),
                minor: Some(0),
                access: READ,
            },
        ]));
        let lines: Vec<(&str, &str)> = lines.iter().map(|(f, l)| (*f, l.as_str())).collect();
        assert_eq!(
            lines,
            vec![
                ("devices.deny", "a"),
                ("devices.allow", "c 1:3 rwm"),
                ("devices.allow", "c 136:* rw"),
                ("devices.allow", "b 8:0 r"),
            ]
        );
        assert_eq!(v1_lines(&Allow::All), vec![("devices.allow", "a".into())]);
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// What `cat <node>` says from a shell that first moves into `cgroup` (if any).
    fn cat_in(cgroup: Option<&Path>, node: &Path) -> (bool, String) {
        let script = match cgroup {
            Some(_) => r#"echo $$ > "$1/cgroup.procs" && exec cat "$2""#,
            None => r#"exec cat "$2""#,
        };
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", script, "sh"])
            .arg(cgroup.unwrap_or(Path::new("/")))
            .arg(node)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Loads and attaches the program on the host's cgroup2 mount, if there is one we
    /// may write to; a process in the cgroup opens only the allowed nodes.
    #[test]
    fn real_v2_program_loads_attaches_and_denies() {
        let root = [
            Path::new("/sys/fs/cgroup"),
            Path::new("/sys/fs/cgroup/unified"),
        ]
        .into_iter()
        .find(|r| r.join("cgroup.controllers").is_file());
        let Some(root) = root.filter(|_| is_root()) else {
            eprintln!("SKIPPED real_v2_program_loads_attaches_and_denies: needs root, cgroup2");
            return;
        };
        let nodes = tempfile::tempdir().unwrap();
        let node = |name: &str, major, minor| {
            let path = nodes.path().join(name);
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &path,
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::from_raw_mode(0o600),
                rustix::fs::makedev(major, minor),
            )
            .unwrap();
            path
        };
        let null = node("null", 1, 3);
        // Major 60 is reserved for local use: no driver answers it here.
        let unassigned = node("unassigned", 60, 1);
        let (ok, err) = cat_in(None, &unassigned);
        if ok || !err.contains("No such device") {
            eprintln!("SKIPPED real_v2_program_loads_attaches_and_denies: {err:?}: /tmp is nodev?");
            return;
        }
        let dir = root
            .join("rkt")
            .join(format!("unit-devices-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        struct Rm(std::path::PathBuf);
        impl Drop for Rm {
            fn drop(&mut self) {
                let _ = fs::remove_dir(&self.0);
            }
        }
        let _rm = Rm(dir.clone());
        // A rule with an access check too, so the verifier sees every kind of block.
        let allow = only(&[
            Rule::char(1, Some(3), READ | WRITE | MKNOD),
            Rule::char(60, Some(2), READ),
        ]);
        attach(&dir, &allow).unwrap();
        assert_eq!(cat_in(Some(&dir), &null), (true, String::new()));
        let (ok, err) = cat_in(Some(&dir), &unassigned);
        assert!(!ok && err.contains("Operation not permitted"), "{err}");
        // A second program (a pod's app cgroup under a parent that has one) adds to it.
        attach(&dir, &Allow::All).unwrap();
        let (ok, err) = cat_in(Some(&dir), &unassigned);
        assert!(
            !ok && err.contains("Operation not permitted"),
            "all must allow: {err}"
        );
    }
}
