//! An app's root filesystem: the overlayfs over its rendered image, the kernel
//! filesystems (`/proc`, `/sys`, a minimal `/dev`), volumes, `/etc/hosts` and
//! `/etc/resolv.conf`, masked and read-only paths, and the switch into it.
//!
//! Everything here runs in the app's own mount namespace (see
//! [`private_mount_namespace`]), so every mount disappears with the app's last process.
//!
//! Paths inside the app's root come from the image and the pod manifest, so they are
//! never resolved by the kernel from the host's `/`: [`open_in_root`] walks them one
//! component at a time from a directory handle on the root, resolving symlinks as if
//! that root were `/` (a link can never lead outside it), and mounts target the handle
//! it returns (`/proc/self/fd/N`), so nothing can swap a path for a symlink in between.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use manifests::poddir;
use manifests::runtime::{
    Dns, Flavor, HostsEntry, RuntimeApp, RuntimeConfig, UserNamespace, Volume,
};
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use crate::mountapi::{attach_copy, mount_setattr};

/// `statfs.f_type` of overlayfs.
const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
/// `statfs.f_type` of procfs.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;
/// `statfs.f_type` of sysfs.
const SYSFS_MAGIC: i64 = 0x6265_6572;
/// `statfs.f_type` of tmpfs.
const TMPFS_MAGIC: i64 = 0x0102_1994;
/// `statfs.f_type` of devpts.
const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;
/// Symlinks followed while resolving one path, as the kernel's limit.
const MAX_SYMLINKS: usize = 40;

/// Character devices every app gets in `/dev`: name, major, minor.
const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("cannot create a mount namespace: {0}")]
    Unshare(Errno),
    #[error("cannot make the mount tree private to the app: {0}")]
    Propagation(Errno),
    #[error("cannot create {path}", path = path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot read {path}", path = path.display())]
    Stat { path: PathBuf, source: io::Error },
    #[error(
        "cannot mount the overlay filesystem at {target} (image {lower}, writes to {upper}): \
         {errno}{detail}",
        target = target.display(), lower = lower.display(), upper = upper.display()
    )]
    Overlay {
        target: PathBuf,
        lower: PathBuf,
        upper: PathBuf,
        /// Not a `source`: the detail, about this failure, follows it in the message.
        errno: Errno,
        /// What the kernel logged about the failure and a hint when the cause is
        /// recognised, each prefixed with "; ".
        detail: String,
    },
    #[error("path {path:?} {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("cannot resolve {path} in the app's root")]
    Resolve { path: String, source: io::Error },
    #[error("{path} in the app's root is {found}, but {expected} is needed")]
    WrongKind {
        path: String,
        found: &'static str,
        expected: &'static str,
    },
    #[error("cannot mount {what} at {path}")]
    Mount {
        what: String,
        path: String,
        source: Errno,
    },
    #[error("cannot make {path} read-only")]
    Remount { path: String, source: Errno },
    #[error("cannot create /dev/{name}")]
    Device { name: String, source: Errno },
    #[error("app {app} mounts volume {volume}, which the pod does not define")]
    UnknownVolume { app: String, volume: String },
    #[error("volume {volume}: source {path}", path = path.display())]
    VolumeSource {
        volume: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("volume {volume}: mode {mode:?} is not an octal permission like 0755")]
    VolumeMode { volume: String, mode: String },
    #[error("invalid hosts entry {ip} {hostnames:?}: {reason}")]
    HostsEntry {
        ip: String,
        hostnames: Vec<String>,
        reason: &'static str,
    },
    #[error("invalid dns setting {value:?}: {reason}")]
    Dns { value: String, reason: &'static str },
    #[error("cannot write {path}", path = path.display())]
    WriteFile { path: PathBuf, source: io::Error },
    #[error(transparent)]
    UserNamespace(#[from] crate::userns::UsernsError),
    #[error("cannot switch the root to {path}", path = path.display())]
    SwitchRoot { path: PathBuf, source: Errno },
    #[error("cannot detach the old root: {0}")]
    DetachOldRoot(Errno),
    #[error(
        "{path} in the app's root is a symlink (to {target:?}); kernel filesystems and \
         their masks are never set up through links an image ships"
    )]
    KernelPathSymlink { path: String, target: String },
    #[error("{path} in the app's root is on {found}, where {expected} was mounted")]
    KernelPathMoved {
        path: String,
        found: String,
        expected: &'static str,
    },
    #[error("working directory {path} does not exist and cannot be created")]
    WorkingDir { path: String, source: io::Error },
    #[error("cannot change directory to {path}")]
    Chdir { path: String, source: Errno },
}

/// The directories stage1 uses for one app in the pod directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDirs {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
}

impl AppDirs {
    pub fn new(pod_dir: &Path, app: &str) -> Self {
        let dir = poddir::app_dir(pod_dir, app);
        AppDirs {
            rootfs: dir.join(poddir::APP_ROOTFS_DIR),
            upper: dir.join(poddir::APP_UPPER_DIR),
            work: dir.join(poddir::APP_WORK_DIR),
            dir,
        }
    }
}

/// What [`open_in_root`] creates when the path (or part of it) is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Nothing: a missing component is `ENOENT`.
    No,
    /// Directories for every missing component.
    Dir,
    /// Directories for missing parents, an empty regular file for the last component.
    File,
}

/// Checks a path the pod manifest or runtime config puts inside an app's root: it
/// must be absolute and have no `..` component. Returns its normal components.
pub fn check_path_in_root(path: &str) -> Result<Vec<&str>, RootfsError> {
    if !path.starts_with('/') {
        return Err(RootfsError::InvalidPath {
            path: path.to_string(),
            reason: "is not absolute",
        });
    }
    if path.contains('\0') {
        return Err(RootfsError::InvalidPath {
            path: path.to_string(),
            reason: "contains a NUL byte",
        });
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(RootfsError::InvalidPath {
            path: path.to_string(),
            reason: "contains \"..\"",
        });
    }
    Ok(parts)
}

fn open_path(dir: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

fn dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, 0).map_err(io::Error::from)
}

/// `statfs.f_type` of the filesystem `fd` is on.
fn fs_magic(fd: BorrowedFd<'_>) -> io::Result<i64> {
    let st = rustix::fs::fstatfs(fd)?;
    // `f_type`'s width differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_type as i64)
}

/// Whether a symlink found in the directory `dir` is one of procfs' "magic links"
/// (`/proc/PID/root`, `cwd`, `exe`, `fd/N`, `ns/*`, `map_files/*`): the kernel
/// follows those to the object itself, whatever their text says, which is how a path
/// such as `/proc/1/root` leads out of any root. Their text is an absolute path or
/// `type:[inode]`; procfs' ordinary links (`self`, `thread-self`, `mounts`, `net`)
/// are relative.
fn is_magic_link(dir: BorrowedFd<'_>, target: &str) -> bool {
    let on_proc = fs_magic(dir).map(|m| m == PROC_SUPER_MAGIC).unwrap_or(true);
    on_proc && (target.starts_with('/') || target.contains(':'))
}

/// Opens `path` (absolute, without `..`) under the directory `root` as an `O_PATH`
/// handle, resolving symlinks as if `root` were `/`: an absolute link target starts
/// again at `root`, and `..` in a link target never climbs above it. Mount points
/// are crossed; procfs' magic links (`/proc/1/root`, `/proc/self/cwd`, ...) are
/// refused (`ELOOP`), since the kernel would follow them out of the root. With
/// `create`, missing components are created (directories 0755, files 0644, owned by
/// the caller), following dangling symlinks to where they point.
///
/// The kernel does the lookup where it can (`openat2` with `RESOLVE_IN_ROOT |
/// RESOLVE_NO_MAGICLINKS`, Linux 5.6+); otherwise, and to create what is missing,
/// the path is walked one component at a time with `O_NOFOLLOW` handles, which gives
/// the same result.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &str,
    create: Create,
) -> Result<OwnedFd, RootfsError> {
    let resolve = |source: io::Error| RootfsError::Resolve {
        path: path.to_string(),
        source,
    };
    let parts = check_path_in_root(path)?;
    match openat2_in_root(root, &parts) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) if create != Create::No => {}
        // No openat2 (old kernel, or a sandbox that filters it): walk instead.
        Err(Errno::NOSYS | Errno::PERM | Errno::INVAL | Errno::AGAIN | Errno::XDEV) => {}
        Err(e) => return Err(resolve(e.into())),
    }
    let mut todo: std::collections::VecDeque<String> =
        parts.into_iter().map(str::to_string).collect();
    let mut parents: Vec<OwnedFd> = Vec::new();
    let mut current = dup(root).map_err(resolve)?;
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name.is_empty() || name == "." {
            continue;
        }
        if name == ".." {
            // Only link targets get here; the root is its own parent.
            if let Some(parent) = parents.pop() {
                current = parent;
            }
            continue;
        }
        let last = todo.is_empty();
        let fd = match open_path(current.as_fd(), &name) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create != Create::No => {
                let made = if last && create == Create::File {
                    rustix::fs::openat(
                        current.as_fd(),
                        name.as_str(),
                        OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::WRONLY
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o644),
                    )
                    .map(drop)
                } else {
                    rustix::fs::mkdirat(current.as_fd(), name.as_str(), Mode::from_raw_mode(0o755))
                };
                match made {
                    // Someone else made it first: look again.
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(resolve(e.into())),
                }
                todo.push_front(name);
                continue;
            }
            Err(e) => return Err(resolve(e)),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| resolve(e.into()))?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Symlink => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(resolve(Errno::LOOP.into()));
                }
                let target =
                    rustix::fs::readlinkat(&fd, "", Vec::new()).map_err(|e| resolve(e.into()))?;
                let target = target.to_string_lossy().into_owned();
                if is_magic_link(current.as_fd(), &target) {
                    return Err(resolve(Errno::LOOP.into()));
                }
                if target.starts_with('/') {
                    parents.clear();
                    current = dup(root).map_err(resolve)?;
                }
                for part in target.split('/').rev() {
                    todo.push_front(part.to_string());
                }
            }
            FileType::Directory => {
                parents.push(std::mem::replace(&mut current, fd));
            }
            _ if last => return Ok(fd),
            _ => return Err(resolve(Errno::NOTDIR.into())),
        }
    }
    Ok(current)
}

/// The kernel's own lookup of `parts` under `root`, scoped to it: `openat2(O_PATH,
/// RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`.
fn openat2_in_root(root: BorrowedFd<'_>, parts: &[&str]) -> Result<OwnedFd, Errno> {
    use rustix::fs::ResolveFlags;
    let rel = if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    };
    rustix::fs::openat2(
        root,
        rel.as_str(),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Opens `path` under `root` for a kernel filesystem or one of its masks: every
/// component must be a real directory (or, for the last one, any non-symlink), never
/// a symlink, so an image cannot redirect where `/proc`, `/sys` or `/dev` are mounted
/// or where a mask lands (the runc CVE-2019-16884 / CVE-2019-19921 class). With
/// `create`, missing directories are made (0755). Mount points are crossed.
fn open_no_symlinks(
    root: BorrowedFd<'_>,
    path: &str,
    create: bool,
) -> Result<OwnedFd, RootfsError> {
    let resolve = |source: io::Error| RootfsError::Resolve {
        path: path.to_string(),
        source,
    };
    let parts = check_path_in_root(path)?;
    let mut current = dup(root).map_err(resolve)?;
    let mut walked = String::new();
    for (i, name) in parts.iter().enumerate() {
        walked.push('/');
        walked.push_str(name);
        let fd = match open_path(current.as_fd(), name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                match rustix::fs::mkdirat(current.as_fd(), *name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(resolve(e.into())),
                }
                open_path(current.as_fd(), name).map_err(resolve)?
            }
            other => other.map_err(resolve)?,
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| resolve(e.into()))?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(&fd, "", Vec::new())
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                return Err(RootfsError::KernelPathSymlink {
                    path: walked,
                    target,
                });
            }
            FileType::Directory => current = fd,
            _ if i + 1 == parts.len() => return Ok(fd),
            _ => return Err(resolve(Errno::NOTDIR.into())),
        }
    }
    Ok(current)
}

/// Checks that `fd` is on the filesystem with magic `magic` (`fstatfs`), i.e. that
/// the kernel filesystem mounted at `path` really is what the app sees there.
fn expect_fs(
    fd: BorrowedFd<'_>,
    path: &str,
    magic: i64,
    name: &'static str,
) -> Result<(), RootfsError> {
    let found = fs_magic(fd).map_err(|source| RootfsError::Resolve {
        path: path.to_string(),
        source,
    })?;
    if found == magic {
        Ok(())
    } else {
        Err(RootfsError::KernelPathMoved {
            path: path.to_string(),
            found: format!("a filesystem of type {found:#x}"),
            expected: name,
        })
    }
}

/// `/proc/self/fd/N`: a path naming exactly the object `fd` refers to, usable as a
/// mount source or target.
pub fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn kind_name(ft: FileType) -> &'static str {
    match ft {
        FileType::Directory => "a directory",
        FileType::RegularFile => "a regular file",
        FileType::Symlink => "a symlink",
        _ => "a special file",
    }
}

fn expect_kind(fd: &OwnedFd, path: &str, dir: bool) -> Result<(), RootfsError> {
    let stat = rustix::fs::fstat(fd).map_err(|e| RootfsError::Resolve {
        path: path.to_string(),
        source: e.into(),
    })?;
    let ft = FileType::from_raw_mode(stat.st_mode);
    let ok = if dir {
        ft == FileType::Directory
    } else {
        ft != FileType::Directory
    };
    if ok {
        Ok(())
    } else {
        Err(RootfsError::WrongKind {
            path: path.to_string(),
            found: kind_name(ft),
            expected: if dir { "a directory" } else { "a file" },
        })
    }
}

fn mount_err(what: impl Into<String>, path: &str) -> impl FnOnce(Errno) -> RootfsError + '_ {
    let what = what.into();
    move |source| RootfsError::Mount {
        what,
        path: path.to_string(),
        source,
    }
}

/// Gives the calling process its own mount namespace whose mounts never propagate
/// back to the pod's (or the host's): `unshare(CLONE_NEWNS)`, then `/` recursively
/// slave (mounts made on the host later still appear, e.g. under host volumes).
pub fn private_mount_namespace() -> Result<(), RootfsError> {
    #[allow(unsafe_code)]
    // SAFETY: CLONE_NEWNS only changes this thread's mount namespace and fs context;
    // it does not unshare the file descriptor table, which is what makes
    // `unshare_unsafe` unsafe. The caller is single-threaded.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(RootfsError::Unshare)?;
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(RootfsError::Propagation)
}

fn create_dir(path: &Path) -> Result<bool, RootfsError> {
    match fs::DirBuilder::new().mode(0o755).create(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(RootfsError::CreateDir {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Escapes a path for overlayfs' `lowerdir` (where `:` separates layers).
fn escape_lowerdir(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        if matches!(c, '\\' | ':' | ',') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Reads what the kernel logged on a filesystem context (`fsopen`) handle.
fn fs_context_messages(fs: &OwnedFd) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf[..n]);
        let line = line
            .strip_prefix("e ")
            .or_else(|| line.strip_prefix("w "))
            .or_else(|| line.strip_prefix("i "))
            .unwrap_or(&line);
        out.push(line.trim().to_string());
    }
    out
}

/// Mounts the app's overlayfs at `dirs.rootfs`: the rendered image as the (never
/// written) lower layer, `upper`/`work` in the pod directory for its writes. The upper
/// directory survives the app, so a restarted app keeps what it wrote.
///
/// With a user namespace (`userns`: its description and a handle on it) the lower
/// layer is an id-mapped copy of the image's mount, so the image's files appear owned
/// by the container's ids, and the upper directory is owned by the mapped owner of the
/// image's root.
pub fn mount_overlay(
    image: &Path,
    dirs: &AppDirs,
    userns: Option<(&UserNamespace, BorrowedFd<'_>)>,
) -> Result<(), RootfsError> {
    let image_meta = fs::metadata(image).map_err(|source| RootfsError::Stat {
        path: image.to_path_buf(),
        source,
    })?;
    for d in [&dirs.dir, &dirs.rootfs, &dirs.work] {
        create_dir(d)?;
    }
    if create_dir(&dirs.upper)? {
        // The upper directory's attributes are those of the merged root.
        let fix = || -> io::Result<()> {
            fs::set_permissions(
                &dirs.upper,
                fs::Permissions::from_mode(image_meta.mode() & 0o7777),
            )?;
            let (uid, gid) =
                crate::userns::host_ids(userns.map(|(u, _)| u), image_meta.uid(), image_meta.gid());
            std::os::unix::fs::chown(&dirs.upper, Some(uid), Some(gid))
        };
        fix().map_err(|source| RootfsError::CreateDir {
            path: dirs.upper.clone(),
            source,
        })?;
    }

    let fail = |source: Errno, kernel: Vec<String>| {
        let mut hint = String::new();
        if source == Errno::INVAL {
            let on_overlay = rustix::fs::statfs(&dirs.upper)
                .map(|s| {
                    // `f_type`'s width differs between architectures.
                    #[allow(clippy::unnecessary_cast)]
                    let magic = s.f_type as i64;
                    magic == OVERLAYFS_SUPER_MAGIC
                })
                .unwrap_or(false);
            hint = if on_overlay {
                format!(
                    "; {} is itself on an overlayfs, which cannot hold an overlay's upper \
                     directory: put the rkt data directory on another filesystem",
                    dirs.upper.display()
                )
            } else {
                format!(
                    "; the filesystem of {} may not support overlayfs upper directories \
                     (it needs d_type, xattrs and O_TMPFILE)",
                    dirs.upper.display()
                )
            };
        }
        let kernel = if kernel.is_empty() {
            String::new()
        } else {
            format!("; kernel: {}", kernel.join("; "))
        };
        RootfsError::Overlay {
            target: dirs.rootfs.clone(),
            lower: image.to_path_buf(),
            upper: dirs.upper.clone(),
            errno: source,
            detail: kernel + &hint,
        }
    };

    let lower = userns
        .map(|(_, ns)| crate::userns::idmapped_tree(image, ns))
        .transpose()?;
    let fs_fd = match rustix::mount::fsopen("overlay", rustix::mount::FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        Err(Errno::NOSYS) if lower.is_none() => {
            return mount_overlay_legacy(image, dirs).map_err(|e| fail(e, vec![]))
        }
        Err(e) => return Err(fail(e, vec![])),
    };
    let lower_set = match &lower {
        // The id-mapped layer by its handle (overlayfs "lowerdir+", Linux 6.13+).
        Some(tree) => rustix::mount::fsconfig_set_fd(&fs_fd, "lowerdir+", tree),
        None => rustix::mount::fsconfig_set_string(&fs_fd, "lowerdir", escape_lowerdir(image)),
    };
    let configured = lower_set
        .and_then(|()| rustix::mount::fsconfig_set_string(&fs_fd, "upperdir", &dirs.upper))
        .and_then(|()| rustix::mount::fsconfig_set_string(&fs_fd, "workdir", &dirs.work))
        .and_then(|()| rustix::mount::fsconfig_create(&fs_fd));
    if let Err(e) = configured {
        return Err(fail(e, fs_context_messages(&fs_fd)));
    }
    // nodev: a device node shipped in an image (or written into the upper dir) must
    // not open the host's devices; the pod's /dev is a mount of its own.
    let mnt = rustix::mount::fsmount(
        &fs_fd,
        rustix::mount::FsMountFlags::FSMOUNT_CLOEXEC,
        rustix::mount::MountAttrFlags::MOUNT_ATTR_NODEV,
    )
    .map_err(|e| fail(e, fs_context_messages(&fs_fd)))?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        &dirs.rootfs,
        rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| fail(e, vec![]))
}

fn mount_overlay_legacy(image: &Path, dirs: &AppDirs) -> Result<(), Errno> {
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        escape_lowerdir(image),
        dirs.upper.display(),
        dirs.work.display()
    );
    let data = std::ffi::CString::new(data).map_err(|_| Errno::INVAL)?;
    rustix::mount::mount(
        "overlay",
        &dirs.rootfs,
        "overlay",
        MountFlags::NODEV,
        data.as_c_str(),
    )
}

fn open_dir(path: &Path) -> Result<OwnedFd, RootfsError> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::Stat {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// Mounts a kernel filesystem (`fstype`, whose `statfs` magic is `magic`) at `path`
/// in the root. The mount point is resolved without following any symlink (an image
/// cannot move it), and afterwards `path` is checked to be that filesystem.
fn mount_fs(
    root: BorrowedFd<'_>,
    path: &str,
    (fstype, magic): (&'static str, i64),
    flags: MountFlags,
    data: &str,
) -> Result<(), RootfsError> {
    let target = open_no_symlinks(root, path, true)?;
    expect_kind(&target, path, true)?;
    let data = std::ffi::CString::new(data).map_err(|_| RootfsError::InvalidPath {
        path: data.to_string(),
        reason: "contains a NUL byte",
    })?;
    rustix::mount::mount(fstype, fd_path(&target), fstype, flags, data.as_c_str())
        .map_err(mount_err(fstype, path))?;
    let mounted = open_no_symlinks(root, path, false)?;
    expect_fs(mounted.as_fd(), path, magic, fstype)
}

/// How [`bind_into`] mounts a host path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bind {
    /// Submounts of the source come along.
    recursive: bool,
    /// Read-only, submounts included.
    read_only: bool,
    /// Device nodes under it do not open (`nodev`, submounts included).
    nodev: bool,
}

/// Bind-mounts the host path `source` at `path` in the root, creating the mount
/// point (a directory or an empty file, like the source).
fn bind_into(
    root: BorrowedFd<'_>,
    source: &Path,
    path: &str,
    how: Bind,
) -> Result<(), RootfsError> {
    let meta = fs::metadata(source).map_err(|e| RootfsError::Stat {
        path: source.to_path_buf(),
        source: e,
    })?;
    let is_dir = meta.is_dir();
    let target = open_in_root(root, path, if is_dir { Create::Dir } else { Create::File })?;
    expect_kind(&target, path, is_dir)?;
    let mut attrs = rustix::mount::MountAttrFlags::empty();
    if how.read_only {
        attrs |= rustix::mount::MountAttrFlags::MOUNT_ATTR_RDONLY;
    }
    if how.nodev {
        attrs |= rustix::mount::MountAttrFlags::MOUNT_ATTR_NODEV;
    }
    attach_copy(
        (rustix::fs::CWD, source),
        how.recursive,
        attrs,
        (target.as_fd(), Path::new("")),
    )
    .map_err(mount_err(source.display().to_string(), path))
}

fn mount_proc_default(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    mount_fs(
        root,
        "/proc",
        ("proc", PROC_SUPER_MAGIC),
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        "",
    )
}

fn mount_sys_default(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let flags = MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    match mount_fs(root, "/sys", ("sysfs", SYSFS_MAGIC), flags, "") {
        Ok(()) => Ok(()),
        // Without the privilege to mount a sysfs (e.g. in a user namespace), show the
        // host's, read-only.
        Err(RootfsError::Mount {
            source: Errno::PERM | Errno::ACCESS | Errno::BUSY,
            ..
        }) => {
            let target = open_no_symlinks(root, "/sys", true)?;
            expect_kind(&target, "/sys", true)?;
            attach_copy(
                (rustix::fs::CWD, Path::new("/sys")),
                true,
                rustix::mount::MountAttrFlags::MOUNT_ATTR_RDONLY,
                (target.as_fd(), Path::new("")),
            )
            .map_err(mount_err("/sys", "/sys"))?;
            let mounted = open_no_symlinks(root, "/sys", false)?;
            expect_fs(mounted.as_fd(), "/sys", SYSFS_MAGIC, "sysfs")
        }
        Err(e) => Err(e),
    }
}

/// The gid of the `tty` group in the app's `/etc/group`, for `/dev/pts`.
fn tty_gid(root: BorrowedFd<'_>) -> Option<u32> {
    let fd = open_in_root(root, "/etc/group", Create::No).ok()?;
    let text = fs::read_to_string(fd_path(&fd)).ok()?;
    crate::security::parse_group(&text)
        .into_iter()
        .find(|g| g.name == "tty")
        .map(|g| g.gid)
}

fn mount_dev_default(
    root: BorrowedFd<'_>,
    userns: Option<&UserNamespace>,
) -> Result<(), RootfsError> {
    // nodev: a device node the app makes here (it keeps CAP_MKNOD) opens nothing.
    mount_fs(
        root,
        "/dev",
        ("tmpfs", TMPFS_MAGIC),
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC | MountFlags::STRICTATIME,
        "mode=0755,size=65536k",
    )?;
    let dev = open_no_symlinks(root, "/dev", false)?;
    let device = |name: &str| {
        let name = name.to_string();
        move |source| RootfsError::Device { name, source }
    };
    // The devices every app gets are the host's nodes, each bound in as a mount of
    // its own (a bind keeps the flags of the host's /dev, so they open although the
    // tmpfs under them is nodev).
    for (name, major, minor) in DEVICES {
        let host = Path::new("/dev").join(name);
        let meta = fs::metadata(&host).map_err(|e| RootfsError::Stat {
            path: host.clone(),
            source: e,
        })?;
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_char_device() || meta.rdev() != rustix::fs::makedev(*major, *minor)
        {
            return Err(RootfsError::Device {
                name: name.to_string(),
                source: Errno::NODEV,
            });
        }
        let file = rustix::fs::openat(
            &dev,
            *name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )
        .map_err(device(name))?;
        drop(file);
        let target = open_path(dev.as_fd(), name).map_err(|e| RootfsError::Resolve {
            path: format!("/dev/{name}"),
            source: e,
        })?;
        rustix::mount::mount_bind(&host, fd_path(&target))
            .map_err(mount_err(host.display().to_string(), name))?;
    }

    let mut pts_options = "newinstance,ptmxmode=0666,mode=0620".to_string();
    if let Some(gid) = tty_gid(root) {
        let (_, gid) = crate::userns::host_ids(userns, 0, gid);
        pts_options.push_str(&format!(",gid={gid}"));
    }
    mount_fs(
        root,
        "/dev/pts",
        ("devpts", DEVPTS_SUPER_MAGIC),
        MountFlags::NOSUID | MountFlags::NOEXEC,
        &pts_options,
    )?;
    mount_fs(
        root,
        "/dev/shm",
        ("tmpfs", TMPFS_MAGIC),
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        "mode=1777,size=65536k",
    )?;
    for (name, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        rustix::fs::symlinkat(target, &dev, name).map_err(device(name))?;
    }
    mount_console(root)
}

/// `/dev/console` is the app's terminal when its stdin is one.
fn mount_console(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    if !rustix::termios::isatty(rustix::stdio::stdin()) {
        return Ok(());
    }
    let target = open_in_root(root, "/dev/console", Create::File)?;
    // Bind the terminal by its real path: a bind through the /proc/self/fd magic link
    // names a mount of another mount namespace (the pty was opened before the pod's
    // namespaces existed) and the kernel refuses it.
    let tty = std::fs::read_link("/proc/self/fd/0").map_err(|e| RootfsError::Mount {
        what: "the terminal".to_string(),
        path: "/dev/console".to_string(),
        source: Errno::from_io_error(&e).unwrap_or(Errno::IO),
    })?;
    rustix::mount::mount_bind(&tty, fd_path(&target))
        .map_err(mount_err("the terminal", "/dev/console"))
}

fn parse_mode(volume: &str, mode: &str) -> Result<u32, RootfsError> {
    u32::from_str_radix(mode, 8)
        .ok()
        .filter(|m| *m <= 0o7777 && !mode.is_empty())
        .ok_or_else(|| RootfsError::VolumeMode {
            volume: volume.to_string(),
            mode: mode.to_string(),
        })
}

/// The backing directory of an `empty` volume, `<pod>/volumes/<name>`, created with
/// its mode and owner the first time.
pub fn ensure_empty_volume(
    pod_dir: &Path,
    name: &str,
    mode: &str,
    uid: u32,
    gid: u32,
) -> Result<PathBuf, RootfsError> {
    let mode = parse_mode(name, mode)?;
    let parent = pod_dir.join(poddir::VOLUMES_DIR);
    create_dir(&parent)?;
    let dir = parent.join(name);
    if create_dir(&dir)? {
        let fix = || -> io::Result<()> {
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode))?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
        };
        fix().map_err(|source| RootfsError::CreateDir {
            path: dir.clone(),
            source,
        })?;
    }
    Ok(dir)
}

fn mount_volumes(
    root: BorrowedFd<'_>,
    pod_dir: &Path,
    cfg: &RuntimeConfig,
    app: &RuntimeApp,
) -> Result<(), RootfsError> {
    // Parents before children, so a volume can be mounted inside another one.
    let mut mounts: Vec<_> = app.mounts.iter().collect();
    for m in &mounts {
        check_path_in_root(&m.path)?;
    }
    mounts.sort_by_key(|m| check_path_in_root(&m.path).map(|p| p.len()).unwrap_or(0));
    for m in mounts {
        let volume = cfg
            .volumes
            .iter()
            .find(|v| v.name() == m.volume)
            .ok_or_else(|| RootfsError::UnknownVolume {
                app: app.name.clone(),
                volume: m.volume.clone(),
            })?;
        let (source, read_only) = match volume {
            Volume::Host {
                source, read_only, ..
            } => (source.clone(), *read_only || m.read_only),
            Volume::Empty {
                name,
                mode,
                uid,
                gid,
            } => {
                let (uid, gid) = crate::userns::host_ids(cfg.user_namespace.as_ref(), *uid, *gid);
                (
                    ensure_empty_volume(pod_dir, name, mode, uid, gid)?,
                    m.read_only,
                )
            }
        };
        if let Err(e) = fs::metadata(&source) {
            return Err(RootfsError::VolumeSource {
                volume: m.volume.clone(),
                path: source,
                source: e,
            });
        }
        // Device nodes in a volume do not open, unless the volume is a device or a
        // part of the host's /dev (a hostPath the operator gave for its devices).
        let nodev = !is_device_source(&source);
        bind_into(
            root,
            &source,
            &m.path,
            Bind {
                recursive: true,
                read_only,
                nodev,
            },
        )?;
    }
    Ok(())
}

/// `/etc/hosts` for a pod: the loopback names, the pod's hostname and `hostsEntries`.
pub fn render_hosts(hostname: &str, entries: &[HostsEntry]) -> Result<String, RootfsError> {
    let mut out = String::from(
        "127.0.0.1\tlocalhost localhost.localdomain localhost4 localhost4.localdomain4\n\
         ::1\tlocalhost localhost.localdomain localhost6 localhost6.localdomain6\n",
    );
    let bad_name = |h: &str| h.is_empty() || h.contains(|c: char| c.is_whitespace() || c == '#');
    if !bad_name(hostname) {
        out.push_str(&format!("127.0.1.1\t{hostname}\n"));
    }
    for e in entries {
        let invalid = |reason| RootfsError::HostsEntry {
            ip: e.ip.clone(),
            hostnames: e.hostnames.clone(),
            reason,
        };
        if e.ip.parse::<IpAddr>().is_err() {
            return Err(invalid("not an IP address"));
        }
        if e.hostnames.is_empty() {
            return Err(invalid("no hostnames"));
        }
        if e.hostnames.iter().any(|h| bad_name(h)) {
            return Err(invalid("a hostname is empty or contains blanks or '#'"));
        }
        out.push_str(&format!("{}\t{}\n", e.ip, e.hostnames.join(" ")));
    }
    Ok(out)
}

/// `/etc/resolv.conf` from the pod's DNS settings.
pub fn render_resolv_conf(dns: &Dns) -> Result<String, RootfsError> {
    let check = |v: &String, reason| {
        if v.is_empty() || v.contains(char::is_whitespace) {
            Err(RootfsError::Dns {
                value: v.clone(),
                reason,
            })
        } else {
            Ok(())
        }
    };
    let mut out = String::new();
    for ns in &dns.nameservers {
        if ns.parse::<IpAddr>().is_err() {
            return Err(RootfsError::Dns {
                value: ns.clone(),
                reason: "a nameserver must be an IP address",
            });
        }
        out.push_str(&format!("nameserver {ns}\n"));
    }
    for s in &dns.search {
        check(s, "a search domain must be one word")?;
    }
    if !dns.search.is_empty() {
        out.push_str(&format!("search {}\n", dns.search.join(" ")));
    }
    for o in &dns.options {
        check(o, "an option must be one word")?;
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    Ok(out)
}

/// Writes one of the pod's files bound into the apps: readable by every app's user,
/// whatever stage1's umask.
fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), RootfsError> {
    poddir::fs::write_atomic(
        path,
        contents,
        poddir::fs::Perm::Exact(0o644),
        poddir::fs::Durability::Readers,
    )
    .map_err(|source| RootfsError::WriteFile {
        path: path.to_path_buf(),
        source,
    })
}

/// The pod's `hosts` and `resolv.conf` files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFiles {
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
}

/// Makes sure `<pod>/hosts` and `<pod>/resolv.conf` exist (init normally writes them;
/// an existing file is left alone). `resolv.conf` is rendered from `cfg.dns`, or is a
/// copy of `host_resolv_conf` (empty if the host has none).
pub fn ensure_pod_files(
    pod_dir: &Path,
    cfg: &RuntimeConfig,
    host_resolv_conf: &Path,
) -> Result<PodFiles, RootfsError> {
    let files = PodFiles {
        hosts: pod_dir.join(poddir::HOSTS_FILE),
        resolv_conf: pod_dir.join(poddir::RESOLV_CONF_FILE),
    };
    if !files.hosts.exists() {
        // The fly flavor shares the host's UTS namespace, so its name is the host's.
        let hostname = match cfg.flavor {
            Flavor::Default => cfg.hostname.clone(),
            Flavor::Fly => rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
        };
        write_atomic(
            &files.hosts,
            render_hosts(&hostname, &cfg.hosts_entries)?.as_bytes(),
        )?;
    }
    if !files.resolv_conf.exists() {
        let contents = match &cfg.dns {
            Some(dns) => render_resolv_conf(dns)?.into_bytes(),
            None => match fs::read(host_resolv_conf) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
                Err(source) => {
                    return Err(RootfsError::Stat {
                        path: host_resolv_conf.to_path_buf(),
                        source,
                    })
                }
            },
        };
        write_atomic(&files.resolv_conf, &contents)?;
    }
    Ok(files)
}

fn mount_etc_files(root: BorrowedFd<'_>, files: &PodFiles) -> Result<(), RootfsError> {
    let file = Bind {
        recursive: false,
        read_only: true,
        nodev: true,
    };
    bind_into(root, &files.hosts, "/etc/hosts", file)?;
    bind_into(root, &files.resolv_conf, "/etc/resolv.conf", file)
}

/// The kernel filesystem (its `statfs` magic and name) a mask or read-only path
/// under `/proc` or `/sys` lives on; `None` for other paths.
fn kernel_fs_of(path: &str) -> Option<(i64, &'static str)> {
    match check_path_in_root(path).ok()?.first() {
        Some(&"proc") => Some((PROC_SUPER_MAGIC, "proc")),
        Some(&"sys") => Some((SYSFS_MAGIC, "sysfs")),
        _ => None,
    }
}

/// Opens a mask or read-only path, failing closed. Under `/proc` and `/sys` no
/// component may be a symlink and the path's directory must be on the kernel
/// filesystem mounted there (an image cannot steer a mask away from what it
/// protects); a path the kernel does not have (its directory is the real procfs or
/// sysfs, the entry is absent: a feature this kernel lacks) is `None`. Other paths are
/// resolved in the root as usual, `None` when absent.
fn open_protected(root: BorrowedFd<'_>, path: &str) -> Result<Option<OwnedFd>, RootfsError> {
    let Some((magic, fs_name)) = kernel_fs_of(path) else {
        return match open_in_root(root, path, Create::No) {
            Ok(fd) => Ok(Some(fd)),
            Err(RootfsError::Resolve { source, .. })
                if source.kind() == io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        };
    };
    let parts = check_path_in_root(path)?;
    let (leaf, dirs) = parts.split_last().ok_or(RootfsError::InvalidPath {
        path: path.to_string(),
        reason: "names the root",
    })?;
    let parent_path = format!("/{}", dirs.join("/"));
    let parent = open_no_symlinks(root, &parent_path, false)?;
    expect_kind(&parent, &parent_path, true)?;
    expect_fs(parent.as_fd(), &parent_path, magic, fs_name)?;
    let fd = match open_path(parent.as_fd(), leaf) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RootfsError::Resolve {
                path: path.to_string(),
                source,
            })
        }
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| RootfsError::Resolve {
        path: path.to_string(),
        source: e.into(),
    })?;
    if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink {
        return Err(RootfsError::KernelPathSymlink {
            path: path.to_string(),
            target: String::new(),
        });
    }
    Ok(Some(fd))
}

/// Hides each path: `/dev/null` over files, an empty read-only tmpfs over
/// directories. See [`open_protected`] for what is refused and what skipped.
fn mask_paths(root: BorrowedFd<'_>, paths: &[String]) -> Result<(), RootfsError> {
    for path in paths {
        let Some(fd) = open_protected(root, path)? else {
            continue;
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| RootfsError::Resolve {
            path: path.clone(),
            source: e.into(),
        })?;
        if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
            rustix::mount::mount(
                "tmpfs",
                fd_path(&fd),
                "tmpfs",
                MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                c"size=0,mode=0555",
            )
            .map_err(mount_err("an empty tmpfs", path))?;
        } else {
            rustix::mount::mount_bind("/dev/null", fd_path(&fd))
                .map_err(mount_err("/dev/null", path))?;
        }
    }
    Ok(())
}

/// Makes each path read-only, recursively (bound onto itself, then every mount at
/// and below it made read-only). See [`open_protected`].
fn readonly_paths(root: BorrowedFd<'_>, paths: &[String]) -> Result<(), RootfsError> {
    for path in paths {
        let Some(fd) = open_protected(root, path)? else {
            continue;
        };
        let here = (fd.as_fd(), Path::new(""));
        attach_copy(
            here,
            true,
            rustix::mount::MountAttrFlags::MOUNT_ATTR_RDONLY,
            here,
        )
        .map_err(|source| RootfsError::Remount {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Whether a volume's host source is a device node or lies in the host's `/dev`
/// (the operator handed the pod devices): such volumes keep device nodes working.
pub(crate) fn is_device_source(source: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = fs::metadata(source) else {
        return false;
    };
    if meta.file_type().is_char_device() || meta.file_type().is_block_device() {
        return true;
    }
    fs::canonicalize(source)
        .map(|p| p.starts_with("/dev"))
        .unwrap_or(false)
}

/// Builds the default flavor's root for `app` at `<pod>/apps/<app>/rootfs`: overlay,
/// `/proc` (a new procfs: the pod's PID namespace), read-only `/sys`, a minimal `/dev`,
/// volumes, `/etc/hosts` and `/etc/resolv.conf`, masked and read-only paths.
/// The caller must already be in its own mount namespace. `userns`: the pod's user
/// namespace, when `cfg.user_namespace` asks for one (see `crate::userns`).
pub fn setup_default(
    pod_dir: &Path,
    cfg: &RuntimeConfig,
    app: &RuntimeApp,
    host_resolv_conf: &Path,
    userns: Option<BorrowedFd<'_>>,
) -> Result<PathBuf, RootfsError> {
    let dirs = AppDirs::new(pod_dir, &app.name);
    let files = ensure_pod_files(pod_dir, cfg, host_resolv_conf)?;
    let ids = cfg.user_namespace.as_ref();
    mount_overlay(&app.image, &dirs, ids.zip(userns))?;
    let root = open_dir(&dirs.rootfs)?;
    let root = root.as_fd();
    mount_proc_default(root)?;
    mount_sys_default(root)?;
    mount_dev_default(root, ids)?;
    mount_volumes(root, pod_dir, cfg, app)?;
    mount_etc_files(root, &files)?;
    mask_paths(root, &app.masked_paths)?;
    readonly_paths(root, &app.readonly_paths)?;
    Ok(dirs.rootfs)
}

/// Builds the fly flavor's root: the same overlay, with the host's `/proc` and
/// `/dev` and a read-only view of its `/sys` bound in, volumes, `/etc/hosts` and
/// `/etc/resolv.conf`. Masked and read-only paths are not applied (fly apps are as
/// privileged as the host's processes).
pub fn setup_fly(
    pod_dir: &Path,
    cfg: &RuntimeConfig,
    app: &RuntimeApp,
    host_resolv_conf: &Path,
) -> Result<PathBuf, RootfsError> {
    let dirs = AppDirs::new(pod_dir, &app.name);
    let files = ensure_pod_files(pod_dir, cfg, host_resolv_conf)?;
    mount_overlay(&app.image, &dirs, None)?;
    let root = open_dir(&dirs.rootfs)?;
    let root = root.as_fd();
    let host = |read_only| Bind {
        recursive: true,
        read_only,
        nodev: false,
    };
    bind_into(root, Path::new("/proc"), "/proc", host(false))?;
    bind_into(root, Path::new("/sys"), "/sys", host(true))?;
    bind_into(root, Path::new("/dev"), "/dev", host(false))?;
    mount_volumes(root, pod_dir, cfg, app)?;
    mount_etc_files(root, &files)?;
    Ok(dirs.rootfs)
}

/// Makes `new_root` (a mount point) the root with `pivot_root` and detaches the old
/// root, so nothing of the host stays reachable; the working directory becomes `/`.
pub fn pivot_into(new_root: &Path) -> Result<(), RootfsError> {
    let switch = |source| RootfsError::SwitchRoot {
        path: new_root.to_path_buf(),
        source,
    };
    rustix::process::chdir(new_root).map_err(switch)?;
    // With new_root == put_old the old root ends up stacked on "." and is then
    // detached; no directory for it is needed in the image.
    rustix::process::pivot_root(".", ".").map_err(switch)?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).map_err(RootfsError::DetachOldRoot)?;
    rustix::process::chdir("/").map_err(switch)
}

/// `chroot` into `new_root` (the fly flavor); the working directory becomes `/`.
pub fn chroot_into(new_root: &Path) -> Result<(), RootfsError> {
    let switch = |source| RootfsError::SwitchRoot {
        path: new_root.to_path_buf(),
        source,
    };
    rustix::process::chdir(new_root).map_err(switch)?;
    rustix::process::chroot(".").map_err(switch)?;
    rustix::process::chdir("/").map_err(switch)
}

/// Makes `/` read-only (after [`pivot_into`] or [`chroot_into`]); mounts below it
/// (volumes, `/proc`, `/dev`) keep their own flags.
pub fn remount_root_readonly() -> Result<(), RootfsError> {
    let root = open_dir(Path::new("/"))?;
    // Only the root's own mount: volumes and kernel filesystems keep their flags.
    mount_setattr(
        root.as_fd(),
        false,
        rustix::mount::MountAttrFlags::MOUNT_ATTR_RDONLY,
        None,
    )
    .map_err(|source| RootfsError::Remount {
        path: "/".to_string(),
        source,
    })
}

/// Creates the working directory if missing (like Docker: directories 0755 owned by
/// the app's uid and gid) and makes it the current directory. Runs inside the app's
/// root, before the root is made read-only.
///
/// The path comes from the image or the manifest, so it is resolved as
/// [`open_in_root`] resolves paths: inside the root, never through procfs' magic links
/// (a working directory of `/proc/1/root`, or an image's `/w -> /proc/1/root`, would
/// otherwise be the host's root, entered with stage1's privileges: runc's
/// CVE-2024-21626 class). Missing directories are made and owned through
/// descriptors, and the directory is entered with `fchdir` on the handle resolved.
pub fn enter_working_dir(path: &str, uid: u32, gid: u32) -> Result<(), RootfsError> {
    let dir = if path.is_empty() { "/" } else { path };
    let root = open_dir(Path::new("/"))?;
    let fd = make_working_dir(root.as_fd(), dir, uid, gid)?;
    rustix::process::fchdir(&fd).map_err(|source| RootfsError::Chdir {
        path: dir.to_string(),
        source,
    })
}

/// `dir` under `root`, created (0755, owned by `uid`:`gid`) where missing.
fn make_working_dir(
    root: BorrowedFd<'_>,
    dir: &str,
    uid: u32,
    gid: u32,
) -> Result<OwnedFd, RootfsError> {
    let parts = check_path_in_root(dir)?;
    let wd_err = |source: io::Error| RootfsError::WorkingDir {
        path: dir.to_string(),
        source,
    };
    let mut current = dup(root).map_err(wd_err)?;
    let mut prefix = String::new();
    for name in parts {
        prefix.push('/');
        prefix.push_str(name);
        current = match open_in_root(root, &prefix, Create::No) {
            Ok(fd) => fd,
            Err(RootfsError::Resolve { source, .. })
                if source.kind() == io::ErrorKind::NotFound =>
            {
                match rustix::fs::mkdirat(&current, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) => {
                        let made = rustix::fs::openat(
                            &current,
                            name,
                            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::empty(),
                        )
                        .map_err(|e| wd_err(e.into()))?;
                        rustix::fs::fchown(
                            &made,
                            Some(rustix::fs::Uid::from_raw(uid)),
                            Some(rustix::fs::Gid::from_raw(gid)),
                        )
                        .map_err(|e| wd_err(e.into()))?;
                        made
                    }
                    // A dangling symlink (or a racing creator): follow it in the root,
                    // creating what it points to.
                    Err(Errno::EXIST) => open_in_root(root, &prefix, Create::Dir)?,
                    Err(e) => return Err(wd_err(e.into())),
                }
            }
            Err(e) => return Err(e),
        };
        expect_kind(&current, &prefix, true)?;
    }
    Ok(current)
}

/// Enters `path` inside the current root as [`enter_working_dir`] resolves it,
/// without creating anything (for `enter` and exec probes); `/` when it cannot.
pub fn chdir_in_root(path: &str) -> Result<(), Errno> {
    let root = rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = match open_in_root(
        root.as_fd(),
        if path.is_empty() { "/" } else { path },
        Create::No,
    ) {
        Ok(fd) if expect_kind(&fd, path, true).is_ok() => fd,
        _ => root,
    };
    rustix::process::fchdir(&fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root_fd(dir: &Path) -> OwnedFd {
        open_dir(dir).unwrap()
    }

    /// Where an O_PATH handle points, for assertions.
    fn where_is(fd: &OwnedFd) -> PathBuf {
        fs::read_link(fd_path(fd)).unwrap()
    }

    #[test]
    fn paths_must_be_absolute_without_dotdot() {
        assert_eq!(
            check_path_in_root("/a//b/./c/").unwrap(),
            vec!["a", "b", "c"]
        );
        assert!(check_path_in_root("/").unwrap().is_empty());
        assert!(matches!(
            check_path_in_root("a/b"),
            Err(RootfsError::InvalidPath {
                reason: "is not absolute",
                ..
            })
        ));
        let err = check_path_in_root("/data/../etc").unwrap_err();
        assert_eq!(err.to_string(), "path \"/data/../etc\" contains \"..\"");
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("real/etc")).unwrap();
        fs::write(root.join("real/etc/hosts"), "x").unwrap();
        // An absolute link: taken from the root, not from the host's /.
        symlink("/real/etc", root.join("etc")).unwrap();
        // A relative link that climbs far above the root: clamped at the root.
        symlink("../../../../../real", root.join("up")).unwrap();
        // A link pointing straight at the host's /etc.
        symlink("/", root.join("slash")).unwrap();
        let r = root_fd(&root);
        let canon = root.canonicalize().unwrap();

        let fd = open_in_root(r.as_fd(), "/etc/hosts", Create::No).unwrap();
        assert_eq!(where_is(&fd), canon.join("real/etc/hosts"));
        let fd = open_in_root(r.as_fd(), "/up/etc", Create::No).unwrap();
        assert_eq!(where_is(&fd), canon.join("real/etc"));
        let fd = open_in_root(r.as_fd(), "/slash/etc/hosts", Create::No).unwrap();
        assert_eq!(where_is(&fd), canon.join("real/etc/hosts"));
        let fd = open_in_root(r.as_fd(), "/", Create::No).unwrap();
        assert_eq!(where_is(&fd), canon);

        // /slash/etc/passwd would be the host's file if the kernel resolved it.
        let err = open_in_root(r.as_fd(), "/slash/etc/passwd", Create::No).unwrap_err();
        assert!(
            matches!(&err, RootfsError::Resolve { source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{err}"
        );
        // A file in the middle of a path.
        let err = open_in_root(r.as_fd(), "/etc/hosts/x", Create::No).unwrap_err();
        assert!(
            matches!(&err, RootfsError::Resolve { source, .. } if source.raw_os_error() == Some(20)),
            "{err}"
        );
    }

    #[test]
    fn creation_follows_dangling_links_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        // Like images whose resolv.conf points into an empty /run.
        symlink("../run/resolve/stub.conf", root.join("etc/resolv.conf")).unwrap();
        // A dangling absolute link that would create files on the host if followed.
        let outside = tmp.path().join("outside");
        symlink(&outside, root.join("escape")).unwrap();
        let r = root_fd(&root);
        let canon = root.canonicalize().unwrap();

        let fd = open_in_root(r.as_fd(), "/etc/resolv.conf", Create::File).unwrap();
        assert_eq!(where_is(&fd), canon.join("run/resolve/stub.conf"));
        assert!(root.join("run/resolve/stub.conf").is_file());

        let fd = open_in_root(r.as_fd(), "/escape/sub", Create::Dir).unwrap();
        let inside = canon.join(outside.strip_prefix("/").unwrap()).join("sub");
        assert_eq!(where_is(&fd), inside);
        assert!(inside.is_dir());
        assert!(!outside.exists(), "created outside the root");

        let fd = open_in_root(r.as_fd(), "/a/b/c", Create::Dir).unwrap();
        assert_eq!(where_is(&fd), canon.join("a/b/c"));
        assert_eq!(
            fs::metadata(root.join("a/b")).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }

    #[test]
    fn symlink_loops_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        symlink("/b", tmp.path().join("a")).unwrap();
        symlink("/a", tmp.path().join("b")).unwrap();
        let r = root_fd(tmp.path());
        let err = open_in_root(r.as_fd(), "/a/x", Create::Dir).unwrap_err();
        assert!(
            matches!(&err, RootfsError::Resolve { source, .. } if source.raw_os_error() == Some(40)),
            "{err}"
        );
    }

    #[test]
    fn hosts_file_rendering() {
        let hosts = render_hosts(
            "rkt-1234",
            &[
                HostsEntry {
                    ip: "10.0.0.1".into(),
                    hostnames: vec!["db".into(), "db.local".into()],
                },
                HostsEntry {
                    ip: "fd00::1".into(),
                    hostnames: vec!["six".into()],
                },
            ],
        )
        .unwrap();
        let lines: Vec<&str> = hosts.lines().collect();
        assert!(lines[0].starts_with("127.0.0.1\tlocalhost "), "{hosts}");
        assert!(lines[1].starts_with("::1\tlocalhost "), "{hosts}");
        assert_eq!(lines[2], "127.0.1.1\trkt-1234");
        assert_eq!(lines[3], "10.0.0.1\tdb db.local");
        assert_eq!(lines[4], "fd00::1\tsix");
        assert_eq!(lines.len(), 5);

        let bad = |ip: &str, names: &[&str]| {
            render_hosts(
                "h",
                &[HostsEntry {
                    ip: ip.into(),
                    hostnames: names.iter().map(|s| s.to_string()).collect(),
                }],
            )
            .unwrap_err()
            .to_string()
        };
        assert!(bad("10.0.0.300", &["x"]).contains("not an IP address"));
        assert!(bad("10.0.0.3", &[]).contains("no hostnames"));
        assert!(bad("10.0.0.3", &["a\n10.0.0.4 evil"]).contains("blanks"));
    }

    #[test]
    fn resolv_conf_rendering() {
        let text = render_resolv_conf(&Dns {
            nameservers: vec!["8.8.8.8".into(), "2001:4860:4860::8888".into()],
            search: vec!["example.com".into(), "corp".into()],
            options: vec!["ndots:2".into(), "rotate".into()],
        })
        .unwrap();
        assert_eq!(
            text,
            "nameserver 8.8.8.8\nnameserver 2001:4860:4860::8888\nsearch example.com corp\noptions ndots:2 rotate\n"
        );
        assert_eq!(render_resolv_conf(&Dns::default()).unwrap(), "");
        assert!(render_resolv_conf(&Dns {
            nameservers: vec!["dns.google".into()],
            ..Dns::default()
        })
        .is_err());
        assert!(render_resolv_conf(&Dns {
            options: vec!["a\nnameserver 1.2.3.4".into()],
            ..Dns::default()
        })
        .is_err());
    }

    fn config(dns: Option<Dns>) -> RuntimeConfig {
        RuntimeConfig {
            version: 1,
            uuid: "u".into(),
            flavor: Flavor::Default,
            hostname: "rkt-u".into(),
            interactive: false,
            stop_grace_period_secs: 1,
            log_max_bytes: 0,
            dns,
            hosts_entries: vec![HostsEntry {
                ip: "10.1.1.1".into(),
                hostnames: vec!["db".into()],
            }],
            netns: None,
            private_network: false,
            cgroup_root: "/sys/fs/cgroup".into(),
            volumes: vec![],
            backoff: Default::default(),
            user_namespace: None,
            apps: vec![],
        }
    }

    #[test]
    fn pod_files_are_written_once() {
        let pod = tempfile::tempdir().unwrap();
        let host_resolv = pod.path().join("host-resolv");
        fs::write(&host_resolv, "nameserver 192.0.2.53\n").unwrap();
        let files = ensure_pod_files(pod.path(), &config(None), &host_resolv).unwrap();
        assert_eq!(
            fs::read_to_string(&files.resolv_conf).unwrap(),
            "nameserver 192.0.2.53\n"
        );
        let hosts = fs::read_to_string(&files.hosts).unwrap();
        assert!(
            hosts.contains("127.0.1.1\trkt-u\n") && hosts.contains("10.1.1.1\tdb\n"),
            "{hosts}"
        );
        assert_eq!(
            fs::metadata(&files.hosts).unwrap().permissions().mode() & 0o777,
            0o644
        );

        // Existing files (written by init) are kept.
        fs::write(&files.hosts, "mine\n").unwrap();
        let dns = Dns {
            nameservers: vec!["192.0.2.1".into()],
            ..Dns::default()
        };
        ensure_pod_files(pod.path(), &config(Some(dns.clone())), &host_resolv).unwrap();
        assert_eq!(fs::read_to_string(&files.hosts).unwrap(), "mine\n");
        assert_eq!(
            fs::read_to_string(&files.resolv_conf).unwrap(),
            "nameserver 192.0.2.53\n"
        );

        let other = tempfile::tempdir().unwrap();
        let files =
            ensure_pod_files(other.path(), &config(Some(dns)), Path::new("/nonexistent")).unwrap();
        assert_eq!(
            fs::read_to_string(&files.resolv_conf).unwrap(),
            "nameserver 192.0.2.1\n"
        );
        let none = tempfile::tempdir().unwrap();
        let files =
            ensure_pod_files(none.path(), &config(None), &none.path().join("missing")).unwrap();
        assert_eq!(fs::read_to_string(&files.resolv_conf).unwrap(), "");
        // No temporary files are left behind.
        let names: Vec<String> = fs::read_dir(none.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn empty_volumes_get_mode_and_owner_once() {
        let pod = tempfile::tempdir().unwrap();
        let dir = ensure_empty_volume(pod.path(), "scratch", "0750", 12, 34).unwrap();
        assert_eq!(dir, pod.path().join("volumes/scratch"));
        let m = fs::metadata(&dir).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o750, 12, 34));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        ensure_empty_volume(pod.path(), "scratch", "0750", 12, 34).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o7777, 0o700);
        for bad in ["", "0999", "rwx", "17777"] {
            assert!(
                matches!(
                    ensure_empty_volume(pod.path(), "v", bad, 0, 0),
                    Err(RootfsError::VolumeMode { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn lowerdir_escaping() {
        assert_eq!(escape_lowerdir(Path::new("/a/b")), "/a/b");
        assert_eq!(escape_lowerdir(Path::new("/a:b,c\\d")), "/a\\:b\\,c\\\\d");
    }
}
