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

use manifests::runtime::{
    Dns, Flavor, HostsEntry, RuntimeApp, RuntimeConfig, UserNamespace, Volume,
};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

/// `statfs.f_type` of overlayfs.
const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
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
    #[error("cannot create {path}: {source}", path = path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}", path = path.display())]
    Stat { path: PathBuf, source: io::Error },
    #[error(
        "cannot mount the overlay filesystem at {target} (image {lower}, writes to {upper}): \
         {source}{detail}",
        target = target.display(), lower = lower.display(), upper = upper.display()
    )]
    Overlay {
        target: PathBuf,
        lower: PathBuf,
        upper: PathBuf,
        source: Errno,
        /// What the kernel logged about the failure and a hint when the cause is
        /// recognised, each prefixed with "; ".
        detail: String,
    },
    #[error("path {path:?} {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("cannot resolve {path} in the app's root: {source}")]
    Resolve { path: String, source: io::Error },
    #[error("{path} in the app's root is {found}, but {expected} is needed")]
    WrongKind {
        path: String,
        found: &'static str,
        expected: &'static str,
    },
    #[error("cannot mount {what} at {path}: {source}")]
    Mount {
        what: String,
        path: String,
        source: Errno,
    },
    #[error("cannot make {path} read-only: {source}")]
    Remount { path: String, source: Errno },
    #[error("cannot create /dev/{name}: {source}")]
    Device { name: String, source: Errno },
    #[error("app {app} mounts volume {volume}, which the pod does not define")]
    UnknownVolume { app: String, volume: String },
    #[error("volume {volume}: source {path}: {source}", path = path.display())]
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
    #[error("cannot write {path}: {source}", path = path.display())]
    WriteFile { path: PathBuf, source: io::Error },
    #[error(transparent)]
    UserNamespace(#[from] crate::userns::UsernsError),
    #[error("cannot switch the root to {path}: {source}", path = path.display())]
    SwitchRoot { path: PathBuf, source: Errno },
    #[error("cannot detach the old root: {0}")]
    DetachOldRoot(Errno),
    #[error("working directory {path} does not exist and cannot be created: {source}")]
    WorkingDir { path: String, source: io::Error },
    #[error("cannot change directory to {path}: {source}")]
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
        let dir = pod_dir.join("apps").join(app);
        AppDirs {
            rootfs: dir.join("rootfs"),
            upper: dir.join("upper"),
            work: dir.join("work"),
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

/// Opens `path` (absolute, without `..`) under the directory `root` as an `O_PATH`
/// handle, resolving symlinks as if `root` were `/`: an absolute link target starts
/// again at `root`, and `..` in a link target never climbs above it. Mount points
/// are crossed. With `create`, missing components are created (directories 0755,
/// files 0644, owned by the caller), following dangling symlinks to where they point.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &str,
    create: Create,
) -> Result<OwnedFd, RootfsError> {
    let resolve = |source: io::Error| RootfsError::Resolve {
        path: path.to_string(),
        source,
    };
    let mut todo: std::collections::VecDeque<String> = check_path_in_root(path)?
        .into_iter()
        .map(str::to_string)
        .collect();
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

/// The per-mount flags of the mount `fd` is on, as `MS_*` flags for a bind remount
/// (a remount replaces them all, so the ones already set must be passed again).
fn mount_flags_of(fd: BorrowedFd<'_>) -> Result<MountFlags, Errno> {
    use rustix::fs::StatVfsMountFlags as V;
    let have = rustix::fs::fstatvfs(fd)?.f_flag;
    let mut flags = MountFlags::empty();
    for (v, m) in [
        (V::NOSUID, MountFlags::NOSUID),
        (V::NODEV, MountFlags::NODEV),
        (V::NOEXEC, MountFlags::NOEXEC),
        (V::NOATIME, MountFlags::NOATIME),
        (V::NODIRATIME, MountFlags::NODIRATIME),
        (V::RELATIME, MountFlags::RELATIME),
    ] {
        if have.contains(v) {
            flags |= m;
        }
    }
    Ok(flags)
}

/// Makes the mount at `path` in the root read-only, keeping its other flags.
fn remount_readonly_in_root(root: BorrowedFd<'_>, path: &str) -> Result<(), RootfsError> {
    let fd = open_in_root(root, path, Create::No)?;
    remount_readonly_fd(&fd, path)
}

fn remount_readonly_fd(fd: &OwnedFd, path: &str) -> Result<(), RootfsError> {
    let remount = |source| RootfsError::Remount {
        path: path.to_string(),
        source,
    };
    let flags = mount_flags_of(fd.as_fd()).map_err(remount)?;
    rustix::mount::mount_remount(
        fd_path(fd),
        flags | MountFlags::BIND | MountFlags::RDONLY,
        "",
    )
    .map_err(remount)
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
            source,
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

fn mount_fs(
    root: BorrowedFd<'_>,
    path: &str,
    fstype: &str,
    flags: MountFlags,
    data: &str,
) -> Result<(), RootfsError> {
    let target = open_in_root(root, path, Create::Dir)?;
    expect_kind(&target, path, true)?;
    let data = std::ffi::CString::new(data).map_err(|_| RootfsError::InvalidPath {
        path: data.to_string(),
        reason: "contains a NUL byte",
    })?;
    rustix::mount::mount(fstype, fd_path(&target), fstype, flags, data.as_c_str())
        .map_err(mount_err(fstype, path))
}

/// Bind-mounts the host path `source` at `path` in the root, creating the mount
/// point (a directory or an empty file, like the source).
fn bind_into(
    root: BorrowedFd<'_>,
    source: &Path,
    path: &str,
    recursive: bool,
    read_only: bool,
) -> Result<(), RootfsError> {
    let meta = fs::metadata(source).map_err(|e| RootfsError::Stat {
        path: source.to_path_buf(),
        source: e,
    })?;
    let is_dir = meta.is_dir();
    let target = open_in_root(root, path, if is_dir { Create::Dir } else { Create::File })?;
    expect_kind(&target, path, is_dir)?;
    let what = source.display().to_string();
    if recursive {
        rustix::mount::mount_bind_recursive(source, fd_path(&target))
    } else {
        rustix::mount::mount_bind(source, fd_path(&target))
    }
    .map_err(mount_err(what, path))?;
    if read_only {
        remount_readonly_in_root(root, path)?;
    }
    Ok(())
}

fn mount_proc_default(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    mount_fs(
        root,
        "/proc",
        "proc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        "",
    )
}

fn mount_sys_default(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let flags = MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    match mount_fs(root, "/sys", "sysfs", flags, "") {
        Ok(()) => Ok(()),
        // Without the privilege to mount a sysfs (e.g. in a user namespace), show the
        // host's, read-only.
        Err(RootfsError::Mount {
            source: Errno::PERM | Errno::ACCESS | Errno::BUSY,
            ..
        }) => bind_into(root, Path::new("/sys"), "/sys", true, true),
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
    mount_fs(
        root,
        "/dev",
        "tmpfs",
        MountFlags::NOSUID | MountFlags::STRICTATIME,
        "mode=0755,size=65536k",
    )?;
    let dev = open_in_root(root, "/dev", Create::No)?;
    let device = |name: &str| {
        let name = name.to_string();
        move |source| RootfsError::Device { name, source }
    };
    for (name, major, minor) in DEVICES {
        let mode = Mode::from_raw_mode(0o666);
        match rustix::fs::mknodat(
            &dev,
            *name,
            FileType::CharacterDevice,
            mode,
            rustix::fs::makedev(*major, *minor),
        ) {
            Ok(()) => {
                rustix::fs::chmodat(&dev, *name, mode, AtFlags::empty()).map_err(device(name))?
            }
            // No CAP_MKNOD (user namespace): show the host's node instead.
            Err(Errno::PERM) => bind_into(
                root,
                &Path::new("/dev").join(name),
                &format!("/dev/{name}"),
                false,
                false,
            )?,
            Err(e) => return Err(device(name)(e)),
        }
    }

    let mut pts_options = "newinstance,ptmxmode=0666,mode=0620".to_string();
    if let Some(gid) = tty_gid(root) {
        let (_, gid) = crate::userns::host_ids(userns, 0, gid);
        pts_options.push_str(&format!(",gid={gid}"));
    }
    mount_fs(
        root,
        "/dev/pts",
        "devpts",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        &pts_options,
    )?;
    mount_fs(
        root,
        "/dev/shm",
        "tmpfs",
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
    let parent = pod_dir.join("volumes");
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
        bind_into(root, &source, &m.path, true, read_only)?;
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

fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), RootfsError> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp.{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let write = || -> io::Result<()> {
        fs::write(&tmp, contents)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))?;
        fs::rename(&tmp, path)
    };
    write().map_err(|source| {
        let _ = fs::remove_file(&tmp);
        RootfsError::WriteFile {
            path: path.to_path_buf(),
            source,
        }
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
        hosts: pod_dir.join("hosts"),
        resolv_conf: pod_dir.join("resolv.conf"),
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
    bind_into(root, &files.hosts, "/etc/hosts", false, true)?;
    bind_into(root, &files.resolv_conf, "/etc/resolv.conf", false, true)
}

/// Hides each existing path: `/dev/null` over files, an empty read-only tmpfs over
/// directories. Absent paths are skipped.
fn mask_paths(root: BorrowedFd<'_>, paths: &[String]) -> Result<(), RootfsError> {
    for path in paths {
        let fd = match open_in_root(root, path, Create::No) {
            Ok(fd) => fd,
            Err(RootfsError::Resolve { source, .. })
                if source.kind() == io::ErrorKind::NotFound =>
            {
                continue
            }
            Err(e) => return Err(e),
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

/// Makes each existing path read-only (bound onto itself, then remounted).
fn readonly_paths(root: BorrowedFd<'_>, paths: &[String]) -> Result<(), RootfsError> {
    for path in paths {
        let fd = match open_in_root(root, path, Create::No) {
            Ok(fd) => fd,
            Err(RootfsError::Resolve { source, .. })
                if source.kind() == io::ErrorKind::NotFound =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        let p = fd_path(&fd);
        rustix::mount::mount_bind_recursive(&p, &p).map_err(mount_err("itself", path))?;
        remount_readonly_in_root(root, path)?;
    }
    Ok(())
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
    bind_into(root, Path::new("/proc"), "/proc", true, false)?;
    bind_into(root, Path::new("/sys"), "/sys", true, true)?;
    bind_into(root, Path::new("/dev"), "/dev", true, false)?;
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
    remount_readonly_fd(&root, "/")
}

/// Creates the working directory if missing (like Docker: directories 0755 owned by
/// the app's uid and gid) and makes it the current directory. Runs inside the app's
/// root, before the root is made read-only.
pub fn enter_working_dir(path: &str, uid: u32, gid: u32) -> Result<(), RootfsError> {
    let dir = if path.is_empty() { "/" } else { path };
    check_path_in_root(dir)?;
    let mut current = PathBuf::from("/");
    for part in check_path_in_root(dir)? {
        current.push(part);
        match fs::DirBuilder::new().mode(0o755).create(&current) {
            Ok(()) => std::os::unix::fs::chown(&current, Some(uid), Some(gid)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
        .map_err(|source| RootfsError::WorkingDir {
            path: dir.to_string(),
            source,
        })?;
    }
    rustix::process::chdir(dir).map_err(|source| RootfsError::Chdir {
        path: dir.to_string(),
        source,
    })
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
