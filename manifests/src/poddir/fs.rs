//! Writing the pod directory's files.
//!
//! This is the single deliberate I/O in `manifests`, which is otherwise pure: stage0
//! and stage1 must write the files they share the same way (readers on either side
//! rely on never seeing a partial file), and stage1 must not depend on stage0, so the
//! one implementation lives with the rest of the pod directory's contract.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The permissions of a file written by [`write_atomic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    /// This mode as the process's umask leaves it (what `open(2)` with `O_CREAT` makes).
    Umask(u32),
    /// Exactly this mode, whatever the umask (for files others must be able to read).
    Exact(u32),
}

/// How far [`write_atomic`] takes a file before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk: the file and its directory are `fsync`ed, so after a power loss the
    /// file is the old content or the new one. For what outlives the processes it
    /// describes: stage0's pod manifest, `runtime.json`, network records.
    Disk,
    /// Atomic for readers only (the page cache): a reader sees the old content or the
    /// new one, never a part. For what describes a running process (stage1's `pid`,
    /// `ready`, `cgroups`, app pids and exit statuses, probe reports, the pod's
    /// `hosts`): after a power loss the processes are gone and so is what the files
    /// said, and the two `fsync`s per file would sit on every pod's start path
    /// (measured: about 3.5 ms, 13% of a pod start, for stage1's four files).
    Readers,
}

/// The temporary file [`write_atomic`] writes `path` through: a hidden name in the same
/// directory (so the rename stays on one filesystem), per process and per call (two
/// threads writing the same file never share a temporary file).
fn temp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}.{n}", std::process::id()))
}

/// Replace `path` with `bytes` atomically: a temporary file in the same directory is
/// written, renamed over `path`, and, with [`Durability::Disk`], flushed to disk
/// (`fsync`) before the rename, with the directory flushed after it. Readers see the
/// old content or the new one, never a part of either; with `Disk`, after a crash the
/// file is one or the other too. The temporary file is removed when a step fails.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    perm: Perm,
    durability: Durability,
) -> io::Result<()> {
    let tmp = temp_path(path);
    let write = || -> io::Result<()> {
        let mode = match perm {
            Perm::Umask(m) | Perm::Exact(m) => m,
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        if let Perm::Exact(m) = perm {
            f.set_permissions(fs::Permissions::from_mode(m))?;
        }
        f.write_all(bytes)?;
        if durability == Durability::Disk {
            f.sync_all()?;
        }
        drop(f);
        fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })?;
    match durability {
        Durability::Disk => sync_parent(path),
        Durability::Readers => Ok(()),
    }
}

/// `fsync` of the directory holding `path`, so a rename into it is on disk.
fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("manifests-poddir-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn replaces_the_file_and_leaves_nothing_else() {
        for durability in [Durability::Disk, Durability::Readers] {
            let dir = scratch(&format!("replace-{durability:?}"));
            let p = dir.join("status");
            write_atomic(&p, b"one", Perm::Umask(0o666), durability).unwrap();
            write_atomic(&p, b"two", Perm::Umask(0o666), durability).unwrap();
            assert_eq!(fs::read(&p).unwrap(), b"two");
            assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
            fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn sets_the_mode() {
        let dir = scratch("mode");
        let exact = dir.join("hosts");
        write_atomic(&exact, b"x", Perm::Exact(0o604), Durability::Disk).unwrap();
        assert_eq!(fs::metadata(&exact).unwrap().mode() & 0o777, 0o604);
        // Umask: never more than asked for.
        let masked = dir.join("pod");
        write_atomic(&masked, b"x", Perm::Umask(0o640), Durability::Disk).unwrap();
        assert_eq!(fs::metadata(&masked).unwrap().mode() & !0o640 & 0o777, 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = scratch("fail");
        // The target is a non-empty directory: the rename fails.
        let p = dir.join("busy");
        fs::create_dir_all(p.join("inside")).unwrap();
        assert!(write_atomic(&p, b"x", Perm::Umask(0o666), Durability::Disk).is_err());
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["busy"]);
        // No directory to write in.
        assert!(write_atomic(
            &dir.join("missing/f"),
            b"x",
            Perm::Umask(0o666),
            Durability::Disk
        )
        .is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temp_files_are_hidden_siblings() {
        let t = temp_path(Path::new("/p/apps/web/status"));
        assert_ne!(
            t,
            temp_path(Path::new("/p/apps/web/status")),
            "one per call"
        );
        assert_eq!(t.parent(), Some(Path::new("/p/apps/web")));
        let name = t.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".status.tmp."), "{name}");
    }
}
