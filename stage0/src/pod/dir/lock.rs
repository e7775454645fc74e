//! `flock` on pod directories.
//!
//! A pod's lock is an `flock` on its directory, opened `O_RDONLY|O_DIRECTORY`. The
//! lock belongs to the open file description, so it moves with the directory when the
//! directory is renamed and it passes to stage1 (and the pod's pid 1) with the
//! inherited descriptor. Whoever changes a pod (renames or deletes it) holds the
//! exclusive lock and, once it has it, checks that the path still names the directory
//! it locked: another process may have moved the pod in between.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

/// How long [`DirLock::try_exclusive_patient`] keeps retrying while only shared
/// holders (state probes by `list`/`status`) are in the way.
const PROBE_PATIENCE: Duration = Duration::from_millis(500);

/// The usual patience with an exclusive holder before calling a pod busy.
pub(super) const EXCLUSIVE_PATIENCE: Duration = Duration::from_millis(100);

/// An open pod directory, possibly locked. The lock (if any) is released on drop.
#[derive(Debug)]
pub(super) struct DirLock {
    file: File,
    path: PathBuf,
}

impl DirLock {
    /// Open the directory at `path` (without locking it). The descriptor is
    /// close-on-exec and numbered 3 or higher, so it can be handed to a child
    /// without colliding with stdio.
    pub(super) fn open(path: &Path) -> io::Result<DirLock> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
        let fd = if fd.as_raw_fd() < 3 {
            rustix::io::fcntl_dupfd_cloexec(&fd, 3)?
        } else {
            fd
        };
        Ok(DirLock {
            file: File::from(fd),
            path: path.to_path_buf(),
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    fn try_op(&self, op: FlockOperation) -> io::Result<bool> {
        loop {
            match flock(&self.file, op) {
                Ok(()) => return Ok(true),
                Err(Errno::WOULDBLOCK) => return Ok(false),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Take a shared lock without waiting; `false` if someone holds it exclusively.
    pub(super) fn try_shared(&self) -> io::Result<bool> {
        self.try_op(FlockOperation::NonBlockingLockShared)
    }

    /// Take the exclusive lock without waiting; `false` if anyone holds any lock.
    pub(super) fn try_exclusive(&self) -> io::Result<bool> {
        self.try_op(FlockOperation::NonBlockingLockExclusive)
    }

    /// Take the exclusive lock, waiting out short-lived holders.
    ///
    /// State probes take the shared lock for an instant; they must not make a `gc` or
    /// `rm` think the pod is in use, so shared holders are waited for up to half a
    /// second. An exclusive holder (stage1, a prepare, another `rm`) is waited for only
    /// `exclusive_patience`: enough to outlast a copy of a lock we held ourselves a
    /// moment ago, which a child forked by another thread keeps until it execs.
    pub(super) fn try_exclusive_patient(&self, exclusive_patience: Duration) -> io::Result<bool> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            if self.try_exclusive()? {
                return Ok(true);
            }
            // Can we share it? Then only shared holders are in the way.
            let patience = if self.try_shared()? {
                PROBE_PATIENCE
            } else {
                exclusive_patience
            };
            if start.elapsed() >= patience {
                return Ok(false);
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Whether the directory is still at [`Self::path`] (not moved or deleted).
    pub(super) fn still_there(&self) -> io::Result<bool> {
        let held = self.file.metadata()?;
        match fs::symlink_metadata(&self.path) {
            Ok(m) => Ok(m.dev() == held.dev() && m.ino() == held.ino()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Rename the directory to `to`; the lock goes with it.
    pub(super) fn rename(&mut self, to: &Path) -> io::Result<()> {
        fs::rename(&self.path, to)?;
        self.path = to.to_path_buf();
        Ok(())
    }
}

impl AsFd for DirLock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Whether someone holds the directory's lock exclusively (a shared lock cannot be
/// taken). `None` if the directory is gone.
pub(super) fn probe_locked(path: &Path) -> io::Result<Option<bool>> {
    let dir = match DirLock::open(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(!dir.try_shared()?))
}
