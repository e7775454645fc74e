//! An app's process identity and privileges: user and group (resolved in the app's own
//! `/etc/passwd` and `/etc/group`), supplementary groups, capabilities and
//! `no_new_privs`. Shared by the start path (`launch`) and `enter`, so both end with
//! exactly the same privileges.
//!
//! Capability policy (Docker's): the bounding set is reduced to the app's list; an app
//! running as uid 0 holds that list in its permitted and effective sets; an app running
//! as any other uid holds no capabilities at all (the kernel clears them on `setuid`, and
//! nothing is kept or made ambient). The inheritable and ambient sets are always empty
//! (inheritable capabilities would let a non-root `execve` of a file with inheritable
//! file capabilities regain them).
//!
//! Every function here changes the *calling thread* only (Linux credentials are per
//! thread); callers run them in a single-threaded process right before `execve`.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use manifests::runtime::RuntimeApp;
use rustix::process::{Gid, Uid};
use rustix::thread::{self as rthread, CapabilitySet, CapabilitySets};

/// Capability names (as in `capabilities(7)`) and their bits.
const CAPABILITIES: &[(&str, CapabilitySet)] = &[
    ("CAP_CHOWN", CapabilitySet::CHOWN),
    ("CAP_DAC_OVERRIDE", CapabilitySet::DAC_OVERRIDE),
    ("CAP_DAC_READ_SEARCH", CapabilitySet::DAC_READ_SEARCH),
    ("CAP_FOWNER", CapabilitySet::FOWNER),
    ("CAP_FSETID", CapabilitySet::FSETID),
    ("CAP_KILL", CapabilitySet::KILL),
    ("CAP_SETGID", CapabilitySet::SETGID),
    ("CAP_SETUID", CapabilitySet::SETUID),
    ("CAP_SETPCAP", CapabilitySet::SETPCAP),
    ("CAP_LINUX_IMMUTABLE", CapabilitySet::LINUX_IMMUTABLE),
    ("CAP_NET_BIND_SERVICE", CapabilitySet::NET_BIND_SERVICE),
    ("CAP_NET_BROADCAST", CapabilitySet::NET_BROADCAST),
    ("CAP_NET_ADMIN", CapabilitySet::NET_ADMIN),
    ("CAP_NET_RAW", CapabilitySet::NET_RAW),
    ("CAP_IPC_LOCK", CapabilitySet::IPC_LOCK),
    ("CAP_IPC_OWNER", CapabilitySet::IPC_OWNER),
    ("CAP_SYS_MODULE", CapabilitySet::SYS_MODULE),
    ("CAP_SYS_RAWIO", CapabilitySet::SYS_RAWIO),
    ("CAP_SYS_CHROOT", CapabilitySet::SYS_CHROOT),
    ("CAP_SYS_PTRACE", CapabilitySet::SYS_PTRACE),
    ("CAP_SYS_PACCT", CapabilitySet::SYS_PACCT),
    ("CAP_SYS_ADMIN", CapabilitySet::SYS_ADMIN),
    ("CAP_SYS_BOOT", CapabilitySet::SYS_BOOT),
    ("CAP_SYS_NICE", CapabilitySet::SYS_NICE),
    ("CAP_SYS_RESOURCE", CapabilitySet::SYS_RESOURCE),
    ("CAP_SYS_TIME", CapabilitySet::SYS_TIME),
    ("CAP_SYS_TTY_CONFIG", CapabilitySet::SYS_TTY_CONFIG),
    ("CAP_MKNOD", CapabilitySet::MKNOD),
    ("CAP_LEASE", CapabilitySet::LEASE),
    ("CAP_AUDIT_WRITE", CapabilitySet::AUDIT_WRITE),
    ("CAP_AUDIT_CONTROL", CapabilitySet::AUDIT_CONTROL),
    ("CAP_SETFCAP", CapabilitySet::SETFCAP),
    ("CAP_MAC_OVERRIDE", CapabilitySet::MAC_OVERRIDE),
    ("CAP_MAC_ADMIN", CapabilitySet::MAC_ADMIN),
    ("CAP_SYSLOG", CapabilitySet::SYSLOG),
    ("CAP_WAKE_ALARM", CapabilitySet::WAKE_ALARM),
    ("CAP_BLOCK_SUSPEND", CapabilitySet::BLOCK_SUSPEND),
    ("CAP_AUDIT_READ", CapabilitySet::AUDIT_READ),
    ("CAP_PERFMON", CapabilitySet::PERFMON),
    ("CAP_BPF", CapabilitySet::BPF),
    ("CAP_CHECKPOINT_RESTORE", CapabilitySet::CHECKPOINT_RESTORE),
];

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("unknown capability {name}")]
    UnknownCapability { name: String },
    #[error("user {user} is not in {path} and is not a number", path = path.display())]
    UnknownUser { user: String, path: PathBuf },
    #[error("group {group} is not in {path} and is not a number", path = path.display())]
    UnknownGroup { group: String, path: PathBuf },
    #[error("cannot read {path}", path = path.display())]
    ReadAccountFile { path: PathBuf, source: io::Error },
    #[error("cannot read the owner of {path} (the app's user or group)", path = path.display())]
    StatOwnerFile { path: PathBuf, source: io::Error },
    #[error("{what} id {id} is not valid")]
    InvalidId { what: &'static str, id: u32 },
    #[error("drop capability {name} from the bounding set")]
    DropBounding {
        name: String,
        source: rustix::io::Errno,
    },
    #[error("clear the ambient capability set: {0}")]
    ClearAmbient(rustix::io::Errno),
    #[error("set supplementary groups {gids:?}")]
    SetGroups {
        gids: Vec<u32>,
        source: rustix::io::Errno,
    },
    #[error("set gid {gid}")]
    SetGid { gid: u32, source: rustix::io::Errno },
    #[error("set uid {uid}")]
    SetUid { uid: u32, source: rustix::io::Errno },
    #[error("set capabilities: {0}")]
    SetCapabilities(rustix::io::Errno),
    #[error("set no_new_privs: {0}")]
    NoNewPrivs(rustix::io::Errno),
    #[error("list open file descriptors in {}", path.display())]
    ListFds { path: PathBuf, source: io::Error },
    #[error("mark file descriptor {fd} close-on-exec")]
    Cloexec { fd: i32, source: rustix::io::Errno },
}

/// Parses one capability name: `CAP_CHOWN`, case-insensitively, with or without `CAP_`.
pub fn capability_from_name(name: &str) -> Option<CapabilitySet> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    CAPABILITIES
        .iter()
        .find(|(n, _)| *n == full)
        .map(|(_, set)| *set)
}

/// The names of the capabilities in `set`, in kernel bit order.
pub fn capability_names(set: CapabilitySet) -> Vec<&'static str> {
    CAPABILITIES
        .iter()
        .filter(|(_, c)| set.contains(*c))
        .map(|(n, _)| *n)
        .collect()
}

/// The set named by an app's `capabilities` list.
pub fn parse_capabilities(names: &[String]) -> Result<CapabilitySet, SecurityError> {
    names.iter().try_fold(CapabilitySet::empty(), |acc, name| {
        capability_from_name(name)
            .map(|c| acc | c)
            .ok_or_else(|| SecurityError::UnknownCapability { name: name.clone() })
    })
}

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Parses `/etc/passwd` text; comments, NIS (`+`/`-`) and malformed lines are skipped.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(['#', '+', '-']))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 || f[0].is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
                shell: f[6].to_string(),
            })
        })
        .collect()
}

/// Parses `/etc/group` text; comments, NIS and malformed lines are skipped.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(['#', '+', '-']))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// Who an app runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub supplementary_gids: Vec<u32>,
    /// The home directory of the uid's passwd entry, if it has one.
    pub home: Option<String>,
}

fn read_account_file(path: &Path) -> Result<Option<String>, SecurityError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SecurityError::ReadAccountFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn owner_of(root: &Path, path: &str) -> Result<fs::Metadata, SecurityError> {
    let full = root.join(path.trim_start_matches('/'));
    fs::metadata(&full).map_err(|source| SecurityError::StatOwnerFile {
        path: PathBuf::from(path),
        source,
    })
}

/// Resolves an app's `user`, `group` and supplementary groups the way the appc spec
/// says: a value starting with `/` names a file in the app's root whose owner (group)
/// is used; otherwise the name is looked up in the app's `/etc/passwd` (`/etc/group`)
/// and, if absent there, used as a number if it is one.
///
/// `root` is the app's root directory *as seen by the caller*: `/` once the caller has
/// pivoted or chrooted into it (then symlinks in the image cannot point outside it).
pub fn resolve_identity(root: &Path, app: &RuntimeApp) -> Result<Identity, SecurityError> {
    let passwd_path = root.join("etc/passwd");
    let group_path = root.join("etc/group");
    let passwd = read_account_file(&passwd_path)?
        .map(|t| parse_passwd(&t))
        .unwrap_or_default();

    let uid = if app.user.starts_with('/') {
        owner_of(root, &app.user)?.uid()
    } else if let Some(e) = passwd.iter().find(|e| e.name == app.user) {
        e.uid
    } else if let Ok(n) = app.user.parse::<u32>() {
        n
    } else {
        return Err(SecurityError::UnknownUser {
            user: app.user.clone(),
            path: passwd_path,
        });
    };

    let gid = if app.group.starts_with('/') {
        owner_of(root, &app.group)?.gid()
    } else {
        let groups = read_account_file(&group_path)?
            .map(|t| parse_group(&t))
            .unwrap_or_default();
        if let Some(g) = groups.iter().find(|g| g.name == app.group) {
            g.gid
        } else if let Ok(n) = app.group.parse::<u32>() {
            n
        } else {
            return Err(SecurityError::UnknownGroup {
                group: app.group.clone(),
                path: group_path,
            });
        }
    };

    for (what, id) in std::iter::once(("user", uid))
        .chain(std::iter::once(("group", gid)))
        .chain(app.supplementary_gids.iter().map(|g| ("group", *g)))
    {
        if id == u32::MAX {
            return Err(SecurityError::InvalidId { what, id });
        }
    }

    let home = passwd
        .iter()
        .find(|e| e.uid == uid)
        .map(|e| e.home.clone())
        .filter(|h| !h.is_empty());
    Ok(Identity {
        uid,
        gid,
        supplementary_gids: app.supplementary_gids.clone(),
        home,
    })
}

/// Everything [`apply`] changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privileges {
    pub identity: Identity,
    /// `None` leaves capabilities as the kernel's uid rules make them (the fly flavor);
    /// `Some(set)` reduces the bounding set to `set` and, for uid 0, the permitted and
    /// effective sets too.
    pub capabilities: Option<CapabilitySet>,
    pub no_new_privs: bool,
}

impl Privileges {
    /// The privileges of `app` running as `identity`; `restrict_capabilities` is false
    /// for the fly flavor.
    pub fn for_app(
        app: &RuntimeApp,
        identity: Identity,
        restrict_capabilities: bool,
    ) -> Result<Self, SecurityError> {
        let capabilities = if restrict_capabilities {
            Some(parse_capabilities(&app.capabilities)?)
        } else {
            None
        };
        Ok(Privileges {
            identity,
            capabilities,
            no_new_privs: app.no_new_privileges,
        })
    }
}

/// Drops the calling thread to `p`. Must run as root with full capabilities, in a
/// single-threaded process, right before `execve`.
pub fn apply(p: &Privileges) -> Result<(), SecurityError> {
    if let Some(keep) = p.capabilities {
        // Bits past the kernel's last capability make PR_CAPBSET_DROP fail with EINVAL.
        for bit in 0..64u32 {
            let cap = CapabilitySet::from_bits_retain(1u64 << bit);
            if keep.contains(cap) {
                continue;
            }
            match rthread::remove_capability_from_bounding_set(cap) {
                Ok(()) => {}
                Err(rustix::io::Errno::INVAL) => break,
                Err(source) => {
                    return Err(SecurityError::DropBounding {
                        name: capability_names(cap)
                            .first()
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| format!("#{bit}")),
                        source,
                    })
                }
            }
        }
        match rthread::clear_ambient_capability_set() {
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(SecurityError::ClearAmbient(e)),
        }
    }

    let id = &p.identity;
    let groups: Vec<Gid> = id
        .supplementary_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    rthread::set_thread_groups(&groups).map_err(|source| SecurityError::SetGroups {
        gids: id.supplementary_gids.clone(),
        source,
    })?;
    let gid = Gid::from_raw(id.gid);
    rthread::set_thread_res_gid(gid, gid, gid).map_err(|source| SecurityError::SetGid {
        gid: id.gid,
        source,
    })?;
    // Without PR_SET_KEEPCAPS, switching every uid away from 0 clears the permitted,
    // effective and ambient sets: non-root apps hold no capabilities.
    rthread::set_keep_capabilities(false).map_err(SecurityError::SetCapabilities)?;
    let uid = Uid::from_raw(id.uid);
    rthread::set_thread_res_uid(uid, uid, uid).map_err(|source| SecurityError::SetUid {
        uid: id.uid,
        source,
    })?;

    if let Some(keep) = p.capabilities {
        let set = if id.uid == 0 {
            keep
        } else {
            CapabilitySet::empty()
        };
        rthread::set_capabilities(
            None,
            CapabilitySets {
                effective: set,
                permitted: set,
                inheritable: CapabilitySet::empty(),
            },
        )
        .map_err(SecurityError::SetCapabilities)?;
    }

    if p.no_new_privs {
        rthread::set_no_new_privs(true).map_err(SecurityError::NoNewPrivs)?;
    }
    Ok(())
}

/// Marks every open descriptor above 2 close-on-exec, so nothing stage1 holds (the
/// pod lock, directory handles) leaks into an app: `close_range(3, ~0,
/// CLOSE_RANGE_CLOEXEC)` (Linux 5.11+), which looks at no filesystem; on older kernels,
/// by listing `proc_fd` (the calling process's `/proc/self/fd`).
pub fn cloexec_fds_above_stdio(proc_fd: &Path) -> Result<(), SecurityError> {
    #[allow(unsafe_code)]
    // SAFETY: close_range takes plain integers and touches no memory of ours; with
    // CLOSE_RANGE_CLOEXEC it only sets a flag on the descriptors.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    cloexec_by_listing(proc_fd)
}

fn cloexec_by_listing(proc_fd: &Path) -> Result<(), SecurityError> {
    let list = |source| SecurityError::ListFds {
        path: proc_fd.to_path_buf(),
        source,
    };
    let fds: Vec<i32> = fs::read_dir(proc_fd)
        .map_err(list)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|fd| *fd > 2)
        .collect();
    // The directory handle used for listing is closed by now; any of the collected
    // numbers that no longer exist fail with EBADF, which is fine.
    for fd in fds {
        #[allow(unsafe_code)]
        // SAFETY: the descriptor is only used for the duration of two fcntl calls; if
        // the number is not open (the listing's own handle), fcntl reports EBADF.
        let borrowed = unsafe { rustix::fd::BorrowedFd::borrow_raw(fd) };
        let flags = match rustix::io::fcntl_getfd(borrowed) {
            Ok(f) => f,
            Err(rustix::io::Errno::BADF) => continue,
            Err(source) => return Err(SecurityError::Cloexec { fd, source }),
        };
        rustix::io::fcntl_setfd(borrowed, flags | rustix::io::FdFlags::CLOEXEC)
            .map_err(|source| SecurityError::Cloexec { fd, source })?;
    }
    Ok(())
}

/// The environment an app (or a command entered into it) gets: exactly the app's
/// `env`, plus `PATH` (default) and `HOME` (from passwd, else `/`) when absent, and
/// `AC_APP_NAME` and `container=rkt` always.
pub fn app_env(app: &RuntimeApp, identity: &Identity) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::with_capacity(app.env.len() + 4);
    let set = |env: &mut Vec<(String, String)>, k: &str, v: String, replace: bool| {
        if let Some(slot) = env.iter_mut().find(|(name, _)| name == k) {
            if replace {
                slot.1 = v;
            }
        } else {
            env.push((k.to_string(), v));
        }
    };
    for (k, v) in &app.env {
        set(&mut env, k, v.clone(), true);
    }
    set(
        &mut env,
        "PATH",
        manifests::runtime::DEFAULT_PATH.to_string(),
        false,
    );
    set(
        &mut env,
        "HOME",
        identity.home.clone().unwrap_or_else(|| "/".to_string()),
        false,
    );
    set(&mut env, "AC_APP_NAME", app.name.clone(), true);
    set(&mut env, "container", "rkt".to_string(), true);
    env
}

/// Why an executable could not be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupFailure {
    /// Nothing by that name (exit 127).
    NotFound,
    /// Found, but not an executable regular file (exit 126).
    NotExecutable(PathBuf),
}

/// Finds the program an app's `exec[0]` names. A name with a `/` is used as it is;
/// a bare name is searched in `path_var` (the app's `PATH`) under `root`, the app's
/// root as seen by the caller (`/` after pivot). Returns the path inside the app's
/// root. The check uses `access(X_OK)`, so it reflects the caller's current identity.
pub fn lookup_executable(
    root: &Path,
    name: &str,
    path_var: &str,
) -> Result<PathBuf, LookupFailure> {
    if name.is_empty() {
        return Err(LookupFailure::NotFound);
    }
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let mut not_executable = None;
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let inside = Path::new(dir).join(name);
        let on_disk = if inside.is_absolute() {
            root.join(inside.strip_prefix("/").unwrap_or(&inside))
        } else {
            inside.clone()
        };
        match fs::metadata(&on_disk) {
            Ok(m) if m.is_file() => {
                if rustix::fs::access(&on_disk, rustix::fs::Access::EXEC_OK).is_ok() {
                    return Ok(inside);
                }
                not_executable.get_or_insert(inside);
            }
            Ok(_) => {
                not_executable.get_or_insert(inside);
            }
            Err(_) => {}
        }
    }
    Err(match not_executable {
        Some(p) => LookupFailure::NotExecutable(p),
        None => LookupFailure::NotFound,
    })
}

/// The value of `key` in an environment list.
pub fn env_value<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn app(user: &str, group: &str) -> RuntimeApp {
        RuntimeApp {
            name: "web".into(),
            image_id: "sha512-x".into(),
            image: "/nonexistent".into(),
            exec: vec!["/bin/true".into()],
            env: vec![],
            user: user.into(),
            group: group.into(),
            supplementary_gids: vec![],
            working_dir: "/".into(),
            read_only_rootfs: false,
            mounts: vec![],
            memory_limit_bytes: None,
            cpu_millis: None,
            capabilities: vec![],
            no_new_privileges: true,
            seccomp: Default::default(),
            masked_paths: vec![],
            readonly_paths: vec![],
            init: false,
            restart_policy: Default::default(),
            liveness_probe: None,
            readiness_probe: None,
            allow_all_devices: false,
        }
    }

    #[test]
    fn capability_names_round_trip() {
        assert_eq!(
            capability_from_name("CAP_CHOWN"),
            Some(CapabilitySet::CHOWN)
        );
        assert_eq!(
            capability_from_name("net_bind_service"),
            Some(CapabilitySet::NET_BIND_SERVICE)
        );
        assert_eq!(
            capability_from_name("cap_sys_admin"),
            Some(CapabilitySet::SYS_ADMIN)
        );
        assert_eq!(capability_from_name("CAP_NOPE"), None);
        // Every name maps to one distinct bit and back.
        let mut all = CapabilitySet::empty();
        for (name, set) in CAPABILITIES {
            assert_eq!(set.bits().count_ones(), 1, "{name}");
            assert!(!all.intersects(*set), "{name} duplicated");
            all |= *set;
            assert_eq!(capability_names(*set), vec![*name]);
        }
        assert_eq!(all.bits(), (1u64 << CAPABILITIES.len()) - 1);
        let defaults: Vec<String> = manifests::runtime::DEFAULT_CAPABILITIES
            .iter()
            .map(|s| s.to_string())
            .collect();
        let set = parse_capabilities(&defaults).unwrap();
        assert_eq!(set.bits().count_ones() as usize, defaults.len());
        let mut names: Vec<&str> = capability_names(set);
        names.sort();
        let mut expected: Vec<&str> = manifests::runtime::DEFAULT_CAPABILITIES.to_vec();
        expected.sort();
        assert_eq!(names, expected);
    }

    #[test]
    fn unknown_capability_is_an_error() {
        let err = parse_capabilities(&["CAP_CHOWN".into(), "CAP_FLY".into()]).unwrap_err();
        assert_eq!(err.to_string(), "unknown capability CAP_FLY");
    }

    #[test]
    fn passwd_and_group_parsing() {
        let passwd = "# comment\nroot:x:0:0:root:/root:/bin/sh\n\n+nis::::::\nbad:x:notanumber:0::/:/bin/sh\nshort:x:1\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
        let p = parse_passwd(passwd);
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[1],
            PasswdEntry {
                name: "nobody".into(),
                uid: 65534,
                gid: 65534,
                home: "/nonexistent".into(),
                shell: "/bin/false".into()
            }
        );
        let g = parse_group("root:x:0:\ntty:x:5:a,b\nbroken:x:\n");
        assert_eq!(g.len(), 2);
        assert_eq!(g[1].gid, 5);
        assert_eq!(g[1].members, vec!["a".to_string(), "b".to_string()]);
        assert!(g[0].members.is_empty());
    }

    fn root_with_accounts() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\n1000:x:2000:2000::/home/odd:/bin/sh\n",
        )
        .unwrap();
        fs::write(dir.path().join("etc/group"), "root:x:0:\nwww:x:33:\n").unwrap();
        dir
    }

    #[test]
    fn identity_by_name_number_and_file() {
        let root = root_with_accounts();
        let id = resolve_identity(root.path(), &app("www", "www")).unwrap();
        assert_eq!((id.uid, id.gid), (33, 33));
        assert_eq!(id.home.as_deref(), Some("/var/www"));

        // Numbers not in passwd are used as they are; there is no home.
        let mut a = app("4242", "4343");
        a.supplementary_gids = vec![7, 8];
        let id = resolve_identity(root.path(), &a).unwrap();
        assert_eq!((id.uid, id.gid), (4242, 4343));
        assert_eq!(id.supplementary_gids, vec![7, 8]);
        assert_eq!(id.home, None);

        // A numeric-looking *name* in passwd wins over the number (appc order).
        let id = resolve_identity(root.path(), &app("1000", "0")).unwrap();
        assert_eq!(id.uid, 2000);

        // `/path`: the owner of that file in the app's root.
        let f = root.path().join("owned");
        fs::write(&f, "").unwrap();
        rustix::fs::chown(&f, Some(Uid::from_raw(123)), Some(Gid::from_raw(456))).unwrap();
        let id = resolve_identity(root.path(), &app("/owned", "/owned")).unwrap();
        assert_eq!((id.uid, id.gid), (123, 456));
    }

    #[test]
    fn unknown_names_are_errors_naming_the_file() {
        let root = root_with_accounts();
        let err = resolve_identity(root.path(), &app("daemon", "0")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("user daemon is not in "), "{msg}");
        assert!(msg.contains("etc/passwd"), "{msg}");
        let err = resolve_identity(root.path(), &app("0", "staff")).unwrap_err();
        assert!(err.to_string().contains("group staff"), "{err}");
        assert!(err.to_string().contains("etc/group"), "{err}");

        // No passwd at all: numbers still work, names do not.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve_identity(empty.path(), &app("5", "6")).unwrap().uid,
            5
        );
        assert!(matches!(
            resolve_identity(empty.path(), &app("www", "0")),
            Err(SecurityError::UnknownUser { .. })
        ));
        assert!(matches!(
            resolve_identity(empty.path(), &app("4294967295", "0")),
            Err(SecurityError::InvalidId { .. })
        ));
    }

    #[test]
    fn env_is_the_apps_plus_defaults() {
        let mut a = app("0", "0");
        a.env = vec![
            ("FOO".into(), "1".into()),
            ("AC_APP_NAME".into(), "spoofed".into()),
            ("FOO".into(), "2".into()),
        ];
        let id = Identity {
            uid: 0,
            gid: 0,
            supplementary_gids: vec![],
            home: Some("/root".into()),
        };
        let env = app_env(&a, &id);
        assert_eq!(env_value(&env, "FOO"), Some("2"));
        assert_eq!(env_value(&env, "AC_APP_NAME"), Some("web"));
        assert_eq!(
            env_value(&env, "PATH"),
            Some(manifests::runtime::DEFAULT_PATH)
        );
        assert_eq!(env_value(&env, "HOME"), Some("/root"));
        assert_eq!(env_value(&env, "container"), Some("rkt"));
        assert_eq!(env.len(), 5);

        a.env = vec![
            ("PATH".into(), "/opt/bin".into()),
            ("HOME".into(), "/h".into()),
        ];
        let env = app_env(&a, &Identity { home: None, ..id });
        assert_eq!(env_value(&env, "PATH"), Some("/opt/bin"));
        assert_eq!(env_value(&env, "HOME"), Some("/h"));
        a.env.clear();
        let env = app_env(
            &a,
            &Identity {
                uid: 1,
                gid: 1,
                supplementary_gids: vec![],
                home: None,
            },
        );
        assert_eq!(env_value(&env, "HOME"), Some("/"));
    }

    #[test]
    fn executable_lookup_in_the_apps_path() {
        let root = tempfile::tempdir().unwrap();
        for d in ["bin", "usr/bin", "opt"] {
            fs::create_dir_all(root.path().join(d)).unwrap();
        }
        let write = |p: &str, mode: u32| {
            let f = root.path().join(p);
            fs::write(&f, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
        };
        write("usr/bin/tool", 0o755);
        write("bin/data", 0o644);
        write("opt/tool", 0o755);
        fs::create_dir_all(root.path().join("bin/dir")).unwrap();

        let path = "/bin:/usr/bin:/opt";
        assert_eq!(
            lookup_executable(root.path(), "tool", path),
            Ok(PathBuf::from("/usr/bin/tool"))
        );
        assert_eq!(
            lookup_executable(root.path(), "tool", "/opt:/usr/bin"),
            Ok(PathBuf::from("/opt/tool"))
        );
        assert_eq!(
            lookup_executable(root.path(), "data", path),
            Err(LookupFailure::NotExecutable(PathBuf::from("/bin/data")))
        );
        assert_eq!(
            lookup_executable(root.path(), "dir", path),
            Err(LookupFailure::NotExecutable(PathBuf::from("/bin/dir")))
        );
        assert_eq!(
            lookup_executable(root.path(), "missing", path),
            Err(LookupFailure::NotFound)
        );
        // Paths with a slash are not searched.
        assert_eq!(
            lookup_executable(root.path(), "/x/y", path),
            Ok(PathBuf::from("/x/y"))
        );
        assert_eq!(
            lookup_executable(root.path(), "", path),
            Err(LookupFailure::NotFound)
        );
    }
}
