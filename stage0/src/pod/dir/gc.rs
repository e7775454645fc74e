//! `rkt gc`: garbage-collect pods in two passes, mark then sweep.
//!
//! **Mark**
//! - `run/<uuid>` whose lock can be taken (stage1 is gone): write `gc-marked` (its
//!   mtime is the mark time, `now`) and move the pod to `exited-garbage/`.
//! - `prepare/<uuid>` whose lock can be taken (the prepare died): move to `garbage/`.
//! - `prepared/<uuid>` prepared at least `expire_prepared` ago (mtime of `pod`), and
//!   `embryo/<uuid>` created that long ago (a crash between mkdir and lock): move to
//!   `garbage/`.
//!
//! **Sweep** (unless `mark_only`)
//! - `exited-garbage/<uuid>` marked at least `grace` ago (`gc-marked` mtime, else the
//!   directory's ctime, which the rename set): take the exclusive lock, run
//!   `stage1 gc --pod-dir <dir>` (releases cgroups), release its CNI networks, detach any mount
//!   left under the directory, delete it.
//! - `garbage/<uuid>`: the same without stage1 gc (those pods never ran).
//!
//! A pod that is due as soon as it is marked (every new `garbage/` pod, and exited
//! pods when `grace` is zero) is deleted under the lock the mark took.
//!
//! One pod's failure does not stop the others; failures are listed in the report and
//! the pod is left for the next run. A failed `stage1 gc` keeps the pod, so its
//! cgroups and networks are not leaked silently.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use super::lock::{DirLock, EXCLUSIVE_PATIENCE};
use super::mountinfo::mounts_under;
use super::{
    ctime, list_uuids, lock_error, mtime, rename_locked, Bucket, PodError, PodNetworks, Pods,
    Removal, GC_MARK_FILE, MANIFEST_FILE, POD_FILE_MODE,
};

/// Where the kernel lists this process's mounts.
const MOUNTINFO: &str = "/proc/self/mountinfo";
/// How much of stage1 gc's stderr an error keeps.
const STDERR_TAIL: usize = 2048;

/// What a [`Pods::gc`] run did.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Exited pods moved to `exited-garbage/`.
    pub marked_exited: Vec<String>,
    /// Aborted, expired or stale pods moved to `garbage/`.
    pub marked_garbage: Vec<String>,
    /// Pods deleted by the sweep.
    pub removed: Vec<Removal>,
    /// Pods that could not be handled; they stay for the next run.
    pub failures: Vec<GcFailure>,
}

/// One pod gc could not handle.
#[derive(Debug)]
pub struct GcFailure {
    pub uuid: String,
    pub error: PodError,
}

pub(super) fn run(
    pods: &Pods,
    grace: Duration,
    expire_prepared: Duration,
    mark_only: bool,
    stage1: &Path,
    now: SystemTime,
) -> Result<GcReport, PodError> {
    let mut report = GcReport::default();
    let age = |then: SystemTime| now.duration_since(then).unwrap_or(Duration::ZERO);
    // A pod due for the sweep as soon as it is marked is deleted under the lock the
    // mark took, rather than unlocked and locked again.
    let delete = |report: &mut GcReport, dir: DirLock, uuid: String, stage1: Option<&Path>| {
        match delete_locked(&dir, &uuid, stage1, &*pods.network) {
            Ok(removal) => report.removed.push(removal),
            Err(error) => report.failures.push(GcFailure { uuid, error }),
        }
    };

    for uuid in list_uuids(&pods.bucket_dir(Bucket::Run))? {
        match mark_exited(pods, &uuid, now) {
            Ok(Some(dir)) => {
                report.marked_exited.push(uuid.clone());
                if !mark_only && grace.is_zero() {
                    delete(&mut report, dir, uuid, Some(stage1));
                }
            }
            Ok(None) => {}
            Err(error) => report.failures.push(GcFailure { uuid, error }),
        }
    }
    for bucket in [Bucket::Embryo, Bucket::Prepare, Bucket::Prepared] {
        for uuid in list_uuids(&pods.bucket_dir(bucket))? {
            let dir = pods.pod_path(bucket, &uuid);
            let since = match bucket {
                Bucket::Prepare => None,
                Bucket::Prepared => mtime(&dir.join(MANIFEST_FILE)).or_else(|| ctime(&dir).ok()),
                _ => ctime(&dir).ok(),
            };
            if since.is_some_and(|t| age(t) < expire_prepared) {
                continue;
            }
            match to_garbage(pods, bucket, &uuid) {
                Ok(Some(dir)) => {
                    report.marked_garbage.push(uuid.clone());
                    if !mark_only {
                        delete(&mut report, dir, uuid, None);
                    }
                }
                Ok(None) => {}
                Err(error) => report.failures.push(GcFailure { uuid, error }),
            }
        }
    }
    if mark_only {
        return Ok(report);
    }
    // Pods that failed above are not tried again in the same run.
    let failed: BTreeSet<String> = report.failures.iter().map(|f| f.uuid.clone()).collect();

    for uuid in list_uuids(&pods.bucket_dir(Bucket::ExitedGarbage))? {
        if failed.contains(&uuid) {
            continue;
        }
        let dir = pods.pod_path(Bucket::ExitedGarbage, &uuid);
        let marked = mtime(&dir.join(GC_MARK_FILE)).or_else(|| ctime(&dir).ok());
        if marked.is_some_and(|t| age(t) < grace) {
            continue;
        }
        match lock_pod(pods, Bucket::ExitedGarbage, &uuid, EXCLUSIVE_PATIENCE) {
            Ok(Some(dir)) => delete(&mut report, dir, uuid, Some(stage1)),
            Ok(None) => {}
            Err(error) => report.failures.push(GcFailure { uuid, error }),
        }
    }
    for uuid in list_uuids(&pods.bucket_dir(Bucket::Garbage))? {
        if failed.contains(&uuid) {
            continue;
        }
        match lock_pod(pods, Bucket::Garbage, &uuid, EXCLUSIVE_PATIENCE) {
            Ok(Some(dir)) => delete(&mut report, dir, uuid, None),
            Ok(None) => {}
            Err(error) => report.failures.push(GcFailure { uuid, error }),
        }
    }
    Ok(report)
}

/// Open and exclusively lock `bucket/<uuid>`; `None` if it is gone, moved or in use.
fn lock_pod(
    pods: &Pods,
    bucket: Bucket,
    uuid: &str,
    exclusive_patience: Duration,
) -> Result<Option<DirLock>, PodError> {
    let path = pods.pod_path(bucket, uuid);
    let dir = match DirLock::open(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(lock_error(uuid, &path, e)),
    };
    let ours = dir
        .try_exclusive_patient(exclusive_patience)
        .and_then(|locked| Ok(locked && dir.still_there()?))
        .map_err(|e| lock_error(uuid, &path, e))?;
    Ok(ours.then_some(dir))
}

/// Mark an exited pod, returning it still locked; `None` if it is running (or gone).
/// A pod whose lock is held is skipped at once: most are running, and one that has
/// just exited is marked by the next run.
fn mark_exited(pods: &Pods, uuid: &str, now: SystemTime) -> Result<Option<DirLock>, PodError> {
    let Some(mut dir) = lock_pod(pods, Bucket::Run, uuid, Duration::ZERO)? else {
        return Ok(None);
    };
    write_mark(uuid, dir.path(), now)?;
    rename_locked(&mut dir, uuid, &pods.pod_path(Bucket::ExitedGarbage, uuid))?;
    Ok(Some(dir))
}

/// Move an unused pod of `bucket` to `garbage/`, returning it still locked; `None`
/// if it is in use (or gone).
fn to_garbage(pods: &Pods, bucket: Bucket, uuid: &str) -> Result<Option<DirLock>, PodError> {
    let Some(mut dir) = lock_pod(pods, bucket, uuid, EXCLUSIVE_PATIENCE)? else {
        return Ok(None);
    };
    rename_locked(&mut dir, uuid, &pods.pod_path(Bucket::Garbage, uuid))?;
    Ok(Some(dir))
}

/// Write `gc-marked` with mtime `now` (temp file + rename).
fn write_mark(uuid: &str, dir: &Path, now: SystemTime) -> Result<(), PodError> {
    let path = dir.join(GC_MARK_FILE);
    let tmp = dir.join(format!(".{GC_MARK_FILE}.tmp"));
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(POD_FILE_MODE)
            .open(&tmp)?;
        writeln!(f, "{}", humantime::format_rfc3339_seconds(now))?;
        f.set_modified(now)?;
        drop(f);
        fs::rename(&tmp, &path)
    };
    write().map_err(|source| {
        let _ = fs::remove_file(&tmp);
        PodError::Write {
            uuid: uuid.to_string(),
            path,
            source,
        }
    })
}

/// Delete a pod whose exclusive lock `dir` holds: stage1 gc (if given), release its
/// networks (CNI DEL with what was saved at ADD, then the namespace mount), detach
/// leftover mounts, remove the tree.
pub(super) fn delete_locked(
    dir: &DirLock,
    uuid: &str,
    stage1: Option<&Path>,
    network: &dyn PodNetworks,
) -> Result<Removal, PodError> {
    let path = dir.path();
    if let Some(stage1) = stage1 {
        stage1_gc(stage1, path, uuid)?;
    }
    network
        .release(path)
        .map_err(|source| PodError::Network { source })?;
    let detached_mounts = detach_mounts(uuid, path)?;
    fs::remove_dir_all(path).map_err(|source| PodError::Remove {
        uuid: uuid.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    tracing::debug!(pod = %uuid, "pod deleted");
    Ok(Removal {
        uuid: uuid.to_string(),
        detached_mounts,
    })
}

/// `stage1 gc --pod-dir <dir>`; a failure keeps its stderr.
fn stage1_gc(stage1: &Path, dir: &Path, uuid: &str) -> Result<(), PodError> {
    let out = Command::new(stage1)
        .arg("gc")
        .arg("--pod-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| PodError::Spawn {
            uuid: uuid.to_string(),
            stage1: stage1.to_path_buf(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = stderr.trim();
    let start = stderr
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| stderr.len() - i <= STDERR_TAIL)
        .unwrap_or(stderr.len());
    Err(PodError::Stage1Gc {
        uuid: uuid.to_string(),
        stage1: stage1.to_path_buf(),
        status: out.status,
        stderr: stderr[start..].to_string(),
    })
}

/// Detach (`MNT_DETACH`) every mount at or below `dir` in this mount namespace, so
/// that deleting the tree cannot reach into a mounted file system. Returns what was
/// detached; errors if anything remains.
fn detach_mounts(uuid: &str, dir: &Path) -> Result<Vec<std::path::PathBuf>, PodError> {
    let dir = fs::canonicalize(dir).map_err(|source| PodError::Read {
        uuid: uuid.to_string(),
        path: dir.to_path_buf(),
        source,
    })?;
    let table = || {
        fs::read_to_string(MOUNTINFO).map_err(|source| PodError::MountTable {
            path: MOUNTINFO.into(),
            source,
        })
    };
    let mounts = mounts_under(&table()?, &dir);
    if mounts.is_empty() {
        return Ok(mounts);
    }
    for mount in &mounts {
        rustix::mount::unmount(mount, rustix::mount::UnmountFlags::DETACH).map_err(|e| {
            PodError::Unmount {
                uuid: uuid.to_string(),
                mount: mount.clone(),
                source: e.into(),
            }
        })?;
    }
    let left = mounts_under(&table()?, &dir);
    if !left.is_empty() {
        return Err(PodError::MountsRemain {
            uuid: uuid.to_string(),
            mounts: left,
        });
    }
    tracing::debug!(pod = %uuid, mounts = mounts.len(), "detached mounts left under the pod directory");
    Ok(mounts)
}
