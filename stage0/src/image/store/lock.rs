//! File locks for the store: per-image locks and locked temp files.
//!
//! Both use the same protocol so that lock files and temp files can be deleted
//! safely while other processes may be opening them: whoever deletes a path does so
//! while holding an exclusive `flock` on it, and whoever takes a lock checks, once
//! it holds it, that the path still names the inode it locked. If not (the file was
//! deleted, or replaced, in between), it drops the lock and tries again.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};
use tempfile::NamedTempFile;

/// Prefix of the store's own temp files in `cas/tmp`; only these are cleaned up.
pub(super) const TMP_PREFIX: &str = "import-";

fn flock_retry(file: &File, op: FlockOperation) -> io::Result<()> {
    loop {
        match flock(file, op) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether `path` still names the file open as `file`.
fn still_linked(path: &Path, file: &File) -> io::Result<bool> {
    let held = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(m.dev() == held.dev() && m.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// An exclusive lock on a lock file, released on drop.
#[derive(Debug)]
pub(super) struct LockGuard {
    file: File,
    path: PathBuf,
}

impl LockGuard {
    /// Take an exclusive lock on `path` (created if missing), waiting for other holders.
    pub(super) fn exclusive(path: &Path) -> io::Result<LockGuard> {
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            flock_retry(&file, FlockOperation::LockExclusive)?;
            if still_linked(path, &file)? {
                return Ok(LockGuard {
                    file,
                    path: path.to_path_buf(),
                });
            }
        }
    }

    /// Take a shared lock on `path` (created if missing), waiting for an exclusive
    /// holder. Shared holders never delete the file; dropping the guard releases it.
    pub(super) fn shared(path: &Path) -> io::Result<LockGuard> {
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            flock_retry(&file, FlockOperation::LockShared)?;
            if still_linked(path, &file)? {
                return Ok(LockGuard {
                    file,
                    path: path.to_path_buf(),
                });
            }
        }
    }

    /// Take an exclusive lock on `path` if nobody holds any lock on it (`None` if
    /// somebody does).
    pub(super) fn try_exclusive(path: &Path) -> io::Result<Option<LockGuard>> {
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            match flock_retry(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
            if still_linked(path, &file)? {
                return Ok(Some(LockGuard {
                    file,
                    path: path.to_path_buf(),
                }));
            }
        }
    }

    /// Delete the lock file, then release the lock. Waiters notice and retry on a
    /// fresh file.
    pub(super) fn remove(self) -> io::Result<()> {
        let res = match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        drop(self.file);
        res
    }
}

/// A temp file in `cas/tmp`, exclusively locked for as long as it exists, so that
/// [`remove_stale_temp_files`] can tell a live writer's file from a dead one's.
/// Deleted on drop unless persisted.
#[derive(Debug)]
pub(super) struct LockedTemp {
    file: NamedTempFile,
}

impl LockedTemp {
    pub(super) fn create(dir: &Path) -> io::Result<LockedTemp> {
        loop {
            let file = tempfile::Builder::new()
                .prefix(TMP_PREFIX)
                .suffix(".tar")
                .rand_bytes(16)
                .tempfile_in(dir)?;
            flock_retry(file.as_file(), FlockOperation::LockExclusive)?;
            if still_linked(file.path(), file.as_file())? {
                return Ok(LockedTemp { file });
            }
            // A cleaner deleted it between creation and locking. Do not let the
            // drop of `NamedTempFile` unlink the path again: it is not ours any more.
            let (f, path) = file.into_parts();
            let _ = path.keep();
            drop(f);
        }
    }

    pub(super) fn path(&self) -> &Path {
        self.file.path()
    }

    pub(super) fn file(&self) -> &File {
        self.file.as_file()
    }

    pub(super) fn file_mut(&mut self) -> &mut File {
        self.file.as_file_mut()
    }

    /// Rename into `dest` (replacing it). The lock goes with the returned file.
    pub(super) fn persist(self, dest: &Path) -> io::Result<File> {
        self.file.persist(dest).map_err(|e| e.error)
    }
}

/// Delete temp files in `dir` left by processes that died while importing: those
/// named with [`TMP_PREFIX`] on which no one holds a lock. Returns how many were
/// removed. Other files in `dir` (downloads in progress) are left alone.
pub(super) fn remove_stale_temp_files(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(TMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => continue, // a live import
            Err(e) => return Err(e.into()),
        }
        if still_linked(&path, &file)? {
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}
