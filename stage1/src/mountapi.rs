//! The new mount API calls stage1 needs beyond rustix: `mount_setattr(2)` and
//! attaching a detached copy of a mount with its attributes already set.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use rustix::io::Errno;

/// `struct mount_attr` of `mount_setattr(2)` (rustix has no `mount_setattr`).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], ...)`: sets `set` (and, with
/// `userns`, the id mapping) on the mount `fd` is on, and with `recursive` on every
/// mount below it too.
pub fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: rustix::mount::MountAttrFlags,
    userns: Option<BorrowedFd<'_>>,
) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: u64::from(set.bits()),
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.map_or(0, |ns| ns.as_raw_fd() as u64),
    };
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    #[allow(unsafe_code)]
    // SAFETY: mount_setattr reads `size_of::<MountAttr>()` bytes from `attr`, a
    // properly laid out (`repr(C)`, the kernel's MOUNT_ATTR_SIZE_VER0) value that
    // outlives the call, and a NUL-terminated empty path; the descriptors are open for
    // the whole call (borrowed). Nothing is written to our memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(Errno::from_io_error(&io::Error::last_os_error()).unwrap_or(Errno::IO));
    }
    Ok(())
}

/// Attaches a detached copy of the mount at `source` (resolved from `source_dir`; an
/// empty path is the handle itself) at `target` (likewise), with `attrs` set on the
/// copy — and, with `recursive`, on every submount it brings along — before anything
/// can see it: no window in which it is writable or can be swapped.
pub fn attach_copy(
    (source_dir, source): (BorrowedFd<'_>, &Path),
    recursive: bool,
    attrs: rustix::mount::MountAttrFlags,
    (target_dir, target): (BorrowedFd<'_>, &Path),
) -> Result<(), Errno> {
    use rustix::mount::{MoveMountFlags as M, OpenTreeFlags as F};
    let mut flags = F::OPEN_TREE_CLONE | F::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= F::AT_RECURSIVE;
    }
    if source.as_os_str().is_empty() {
        flags |= F::AT_EMPTY_PATH;
    }
    let tree = rustix::mount::open_tree(source_dir, source, flags)?;
    if !attrs.is_empty() {
        mount_setattr(tree.as_fd(), recursive, attrs, None)?;
    }
    let mut to = M::MOVE_MOUNT_F_EMPTY_PATH;
    if target.as_os_str().is_empty() {
        to |= M::MOVE_MOUNT_T_EMPTY_PATH;
    }
    rustix::mount::move_mount(&tree, "", target_dir, target, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_attr_is_the_kernels_first_version() {
        assert_eq!(std::mem::size_of::<MountAttr>(), 32, "MOUNT_ATTR_SIZE_VER0");
    }
}
