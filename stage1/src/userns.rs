//! The pod's user namespace (`runtime.json` `userNamespace`; `rkt run
//! --private-users`, Kubernetes `hostUsers: false`).
//!
//! `stage1 run` creates it once, before the pod's other namespaces: a helper child
//! (`stage1 userns-child`) unshares a new user namespace and waits; `run` writes its
//! `uid_map` and `gid_map` (`0 <hostUid|hostGid> <size>`), keeps a handle on the
//! namespace and lets the helper go. The handle passes to the pod's pid 1 and from it to
//! each `app-exec` (`--userns-fd`). Only the apps live in the user namespace: stage1
//! itself (pid 1, the supervisor, probes) stays host root, so it can still write the pod
//! directory and the cgroups. The pod's mount, PID, UTS, IPC and network namespaces
//! are owned by the host's user namespace, so the apps' (namespaced) capabilities give
//! them no power over those either: they cannot mount, set the hostname or configure
//! the network, however many capabilities they keep.
//!
//! `app-exec` builds the app's root as before, as host root, but with the image's tree
//! (the overlay's lower layer) mounted *id-mapped* through the user namespace
//! ([`idmapped_tree`]): files owned by host uid 0 in the shared tree store appear owned
//! by the container's root inside the pod, and the store is never written or chowned.
//! Then it joins the namespace ([`join`]) just before it drops to the app's identity.
//! `enter` joins it last, after the app's other namespaces.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use manifests::poddir::LOCK_FD_ENV;
use manifests::runtime::UserNamespace;
use rustix::io::Errno;

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("cannot start the user namespace helper")]
    Spawn(#[source] io::Error),
    #[error("the user namespace helper failed before the namespace was made")]
    HelperFailed,
    #[error("cannot write {path}", path = path.display())]
    WriteMap { path: PathBuf, source: io::Error },
    #[error("cannot open {path}", path = path.display())]
    Open { path: PathBuf, source: Errno },
    #[error("cannot join the pod's user namespace: {0}")]
    Join(Errno),
    #[error("the pod has a user namespace but stage1 was given no handle on it (--userns-fd)")]
    NoHandle,
    #[error("cannot mount {path} id-mapped for the pod's user namespace ({step})", path = path.display())]
    Idmap {
        path: PathBuf,
        step: &'static str,
        source: Errno,
    },
}

/// A line of `uid_map`/`gid_map`: container ids from 0, on the host from `host`.
pub fn map_line(host: u32, size: u32) -> String {
    format!("0 {host} {size}\n")
}

/// Internal entry point `stage1 userns-child`: unshare a user namespace, say so with
/// one byte on stdout, then wait until stdin is closed.
pub fn child_main() -> io::Result<()> {
    #[allow(unsafe_code)]
    // SAFETY: CLONE_NEWUSER alone does not unshare the descriptor table (the hazard
    // `unshare_unsafe` guards against); this process is single-threaded.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWUSER) }?;
    let mut out = io::stdout().lock();
    out.write_all(b"u")?;
    out.flush()?;
    let mut sink = Vec::new();
    io::stdin().read_to_end(&mut sink)?;
    Ok(())
}

/// Creates a user namespace mapping container ids `0..size` to the host range of `u`
/// and returns a handle on it (close-on-exec). Must run where `/proc` shows the
/// caller's PID namespace (in `stage1 run`, before the pod's namespaces).
pub fn create(u: &UserNamespace) -> Result<OwnedFd, UsernsError> {
    let mut child = Command::new("/proc/self/exe")
        .arg("userns-child")
        .env_remove(LOCK_FD_ENV)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(UsernsError::Spawn)?;
    let proc_dir = PathBuf::from(format!("/proc/{}", child.id()));
    let made = (|| {
        let mut byte = [0u8; 1];
        let ready = child.stdout.as_mut().map(|o| o.read(&mut byte));
        if !matches!(ready, Some(Ok(1))) {
            return Err(UsernsError::HelperFailed);
        }
        // gid_map first or last does not matter for a privileged writer; setgroups
        // stays allowed (the apps' supplementary groups).
        for (file, host) in [("uid_map", u.host_uid), ("gid_map", u.host_gid)] {
            let path = proc_dir.join(file);
            std::fs::write(&path, map_line(host, u.size))
                .map_err(|source| UsernsError::WriteMap { path, source })?;
        }
        open_namespace(&proc_dir.join("ns/user"))
    })();
    // End of file on its stdin lets the helper exit; the namespace lives on through
    // the handle.
    drop(child.stdin.take());
    let _ = child.wait();
    made
}

/// Opens a namespace file (`/proc/<pid>/ns/user`), close-on-exec.
pub fn open_namespace(path: &Path) -> Result<OwnedFd, UsernsError> {
    rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|source| UsernsError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// Moves the calling thread into the user namespace `ns`. It then holds every
/// capability *in that namespace* (none on the host) until it drops them; its ids stay
/// those of the host until it sets new ones (host uid 0 is unmapped there).
pub fn join(ns: BorrowedFd<'_>) -> Result<(), UsernsError> {
    rustix::thread::move_into_link_name_space(ns, Some(rustix::thread::LinkNameSpaceType::User))
        .map_err(UsernsError::Join)
}

/// A detached copy of the mount at `path` (not its submounts) whose files are seen
/// through the id mapping of user namespace `ns`: on-disk id `n` appears as the host id
/// that container id `n` maps to. Used as the overlay's lower layer.
pub fn idmapped_tree(path: &Path, ns: BorrowedFd<'_>) -> Result<OwnedFd, UsernsError> {
    use rustix::mount::OpenTreeFlags as F;
    let fail = |step, source| UsernsError::Idmap {
        path: path.to_path_buf(),
        step,
        source,
    };
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        path,
        F::OPEN_TREE_CLONE | F::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| fail("open_tree", e))?;
    set_idmap(tree.as_fd(), ns).map_err(|e| fail("mount_setattr", e))?;
    Ok(tree)
}

/// `MOUNT_ATTR_IDMAP` on the detached mount `tree`.
fn set_idmap(tree: BorrowedFd<'_>, ns: BorrowedFd<'_>) -> Result<(), Errno> {
    crate::mountapi::mount_setattr(
        tree,
        false,
        rustix::mount::MountAttrFlags::MOUNT_ATTR_IDMAP,
        Some(ns),
    )
}

/// Container id of the overflow user and group ("nobody"), what ids outside the
/// range become.
const OVERFLOW_ID: u32 = 65534;

/// Host uid and gid of container ids `uid`, `gid` under `userns` (unchanged without a
/// user namespace). An id outside the range becomes the range's "nobody" (never a host
/// id outside it); the app itself cannot take such an id anyway, the kernel refuses it.
pub fn host_ids(userns: Option<&UserNamespace>, uid: u32, gid: u32) -> (u32, u32) {
    match userns {
        Some(u) => (
            u.host_uid_of(uid)
                .or_else(|| u.host_uid_of(OVERFLOW_ID))
                .unwrap_or(u.host_uid),
            u.host_gid_of(gid)
                .or_else(|| u.host_gid_of(OVERFLOW_ID))
                .unwrap_or(u.host_gid),
        ),
        None => (uid, gid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_lines_and_host_ids() {
        assert_eq!(map_line(1 << 28, 65536), "0 268435456 65536\n");
        let u = UserNamespace {
            host_uid: 1 << 28,
            host_gid: (1 << 28) + 65536,
            size: 65536,
        };
        assert_eq!(host_ids(None, 5, 6), (5, 6));
        assert_eq!(host_ids(Some(&u), 0, 0), (1 << 28, (1 << 28) + 65536));
        assert_eq!(
            host_ids(Some(&u), 1000, 100),
            ((1 << 28) + 1000, (1 << 28) + 65536 + 100)
        );
        assert_eq!(
            host_ids(Some(&u), 70000, 1 << 20),
            ((1 << 28) + 65534, (1 << 28) + 65536 + 65534)
        );
    }
}
