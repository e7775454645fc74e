//! Pod directories under `<dir>/pods`: their life cycle, state, and removal.
//!
//! ```text
//! pods/
//!   embryo/<uuid>/          being created (a few instants)
//!   prepare/<uuid>/         being written; locked while stage0 writes it, unlocked = aborted
//!   prepared/<uuid>/        ready to run
//!   run/<uuid>/             locked while stage1 runs it; unlocked = exited
//!   exited-garbage/<uuid>/  exited, marked by gc; removed after the grace period
//!   garbage/<uuid>/         aborted or expired prepares; removed by the next sweep
//! ```
//!
//! A pod's state is the directory it sits in plus whether its directory `flock` is
//! held (see [`PodState`]). Pods move between directories by `rename`, made by the
//! holder of the pod's exclusive lock. Files are written by temp file + `rename`. No
//! state is kept in memory: every call looks at the disk again, so any process can
//! pick up where another left off. `docs/pods.md` describes the life cycle and
//! `docs/stage1.md` what stage0 and stage1 write into a pod directory.

mod gc;
mod lock;
mod mountinfo;
#[cfg(test)]
mod tests;
pub mod userns;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use manifests::pod::{PodManifest, PodManifestError};
use manifests::poddir::fs::{Durability, Perm};
use manifests::poddir::AppStatus;
use manifests::runtime::{RuntimeConfig, RuntimeError, UserNamespace, RUNTIME_VERSION};
use serde::{Serialize, Serializer};

pub use gc::{GcFailure, GcReport};
use lock::DirLock;

/// The pod directory's files shared with stage1: one definition, in
/// `manifests::poddir` (the contract of `docs/stage1.md`).
pub use manifests::poddir::{
    APPS_DIR, APP_PID_FILE, APP_STATUS_FILE, LOCK_FD_ENV, MANIFEST_FILE, PID_FILE, READY_FILE,
    RUNTIME_FILE,
};
/// Written by stage0 when gc marks an exited pod: its mtime is the mark time.
pub const GC_MARK_FILE: &str = "gc-marked";

/// Permissions of pod directories and of the files stage0 writes into them (the
/// networks' records too): manifests may carry secrets in environments.
pub(crate) const POD_DIR_MODE: u32 = 0o750;
pub(crate) const POD_FILE_MODE: u32 = 0o640;

/// The state directories, in the order pods move through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bucket {
    Embryo,
    Prepare,
    Prepared,
    Run,
    ExitedGarbage,
    Garbage,
}

impl Bucket {
    const ALL: [Bucket; 6] = [
        Bucket::Embryo,
        Bucket::Prepare,
        Bucket::Prepared,
        Bucket::Run,
        Bucket::ExitedGarbage,
        Bucket::Garbage,
    ];

    fn dir_name(self) -> &'static str {
        match self {
            Bucket::Embryo => "embryo",
            Bucket::Prepare => "prepare",
            Bucket::Prepared => "prepared",
            Bucket::Run => "run",
            Bucket::ExitedGarbage => "exited-garbage",
            Bucket::Garbage => "garbage",
        }
    }

    /// The state of a pod in this directory, given whether its lock is held.
    fn state(self, locked: bool) -> PodState {
        match (self, locked) {
            (Bucket::Embryo, _) => PodState::Embryo,
            (Bucket::Prepare, true) => PodState::Preparing,
            (Bucket::Prepare, false) => PodState::AbortedPrepare,
            (Bucket::Prepared, _) => PodState::Prepared,
            (Bucket::Run, true) => PodState::Running,
            (Bucket::Run, false) => PodState::Exited,
            (Bucket::ExitedGarbage | Bucket::Garbage, true) => PodState::Deleting,
            (Bucket::ExitedGarbage, false) => PodState::ExitedGarbage,
            (Bucket::Garbage, false) => PodState::Garbage,
        }
    }

    /// Whether the lock says anything about pods in this directory.
    fn lock_matters(self) -> bool {
        !matches!(self, Bucket::Embryo | Bucket::Prepared)
    }
}

/// What a pod is doing, as `rkt list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PodState {
    /// `embryo/`: just created.
    Embryo,
    /// `prepare/`, locked: stage0 is writing it.
    Preparing,
    /// `prepare/`, unlocked: the prepare failed; gc moves it to garbage.
    AbortedPrepare,
    /// `prepared/`: waiting for `run-prepared`.
    Prepared,
    /// `run/`, locked: stage1 (or the pod's pid 1) is alive.
    Running,
    /// `run/`, unlocked: the pod ended; gc marks it.
    Exited,
    /// `exited-garbage/`: marked by gc; `status` still works until the sweep.
    ExitedGarbage,
    /// `garbage/`: an aborted or expired prepare; removed by the next sweep.
    Garbage,
    /// `exited-garbage/` or `garbage/`, locked: being removed right now.
    Deleting,
}

impl PodState {
    /// The name `rkt list` prints (rkt's own spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            PodState::Embryo => "embryo",
            PodState::Preparing => "preparing",
            PodState::AbortedPrepare => "aborted prepare",
            PodState::Prepared => "prepared",
            PodState::Running => "running",
            PodState::Exited => "exited",
            PodState::ExitedGarbage => "exited garbage",
            PodState::Garbage => "garbage",
            PodState::Deleting => "deleting",
        }
    }

    /// `run-prepared` accepts only prepared pods.
    pub fn can_run(self) -> bool {
        self == PodState::Prepared
    }

    /// `stop` and `enter` need a running pod.
    pub fn is_running(self) -> bool {
        self == PodState::Running
    }

    /// The pod ran and has ended (its app statuses are final).
    pub fn has_exited(self) -> bool {
        matches!(self, PodState::Exited | PodState::ExitedGarbage)
    }

    /// `rm` accepts pods nobody is using.
    pub fn can_remove(self) -> bool {
        matches!(
            self,
            PodState::AbortedPrepare
                | PodState::Prepared
                | PodState::Exited
                | PodState::ExitedGarbage
                | PodState::Garbage
        )
    }

    /// The pod will never run (again): what `status --wait` waits for.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            PodState::AbortedPrepare
                | PodState::Exited
                | PodState::ExitedGarbage
                | PodState::Garbage
                | PodState::Deleting
        )
    }
}

impl fmt::Display for PodState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PodState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A snapshot of where a pod is. Operations taking a `&Pod` look the pod up again
/// by UUID, so a stale snapshot is harmless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// Lower-case hyphenated UUID (v4).
    pub uuid: String,
    pub state: PodState,
    /// `<dir>/pods/<state dir>/<uuid>` at the time of the snapshot.
    pub dir: PathBuf,
}

/// Where a spawned stage1's stdin, stdout and stderr go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage1Stdio {
    /// All three to `/dev/null`.
    Null,
    /// The caller's.
    Inherit,
    /// stdin from `/dev/null`; stdout and stderr appended to this file (created 0640).
    File(PathBuf),
}

/// What an app of a pod is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppState {
    /// The pod has not run yet.
    Created,
    /// Started and not exited since (stage1 wrote `pid` after the last `status`).
    Running,
    /// Exited; `status` holds the exit.
    Exited,
    /// No information (the pod ended without the app reporting an exit).
    Unknown,
}

/// One app of a pod, for `rkt list` / `rkt status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    pub name: String,
    pub image_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    pub state: AppState,
    /// The last exit (`exitCode`, `signal`, `startedAt`, ...), if it exited once.
    #[serde(flatten)]
    pub status: Option<AppStatus>,
}

impl AppInfo {
    pub fn exit_code(&self) -> Option<i32> {
        self.status.as_ref().map(|s| s.exit_code)
    }
}

/// A network the pod is attached to (filled in by the networking code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInfo {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// Everything `rkt list` and `rkt status` show about a pod. Serializes to rkt's JSON
/// (`uuid`, `state`, `apps`, `networks`, `pid`, `createdAt`, `startedAt`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInfo {
    pub uuid: String,
    pub state: PodState,
    pub apps: Vec<AppInfo>,
    pub networks: Vec<NetworkInfo>,
    /// Host PID of the pod's pid 1 (from `pid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// When the pod was prepared (mtime of `pod`).
    #[serde(serialize_with = "ser_time", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<SystemTime>,
    /// When its pid 1 started (mtime of `pid`).
    #[serde(serialize_with = "ser_time", skip_serializing_if = "Option::is_none")]
    pub started_at: Option<SystemTime>,
    /// The host id range of the pod's user namespace (`--private-users`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_namespace: Option<UserNamespace>,
    /// Files of the pod that could not be read (the rest is still shown).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// stage1 wrote `ready`: every app started once.
    #[serde(skip)]
    pub ready: bool,
    #[serde(skip)]
    pub dir: PathBuf,
    #[serde(skip)]
    pub manifest: Option<PodManifest>,
    #[serde(skip)]
    pub runtime: Option<RuntimeConfig>,
}

fn ser_time<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&humantime::format_rfc3339_seconds(*t).to_string()),
        None => s.serialize_none(),
    }
}

/// A pod that was deleted, and the mounts that had to be detached from it first
/// (normally none: a pod's mounts live in its own mount namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub uuid: String,
    pub detached_mounts: Vec<PathBuf>,
}

/// Errors of pod operations; each names the pod (UUID) and the path involved.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("create pods directory {}", .path.display())]
    CreateStateDir { path: PathBuf, source: io::Error },
    #[error("read pods directory {}", .path.display())]
    ReadStateDir { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Manifest(#[from] PodManifestError),
    #[error("runtime configuration has interface version {found}; this rkt writes version {RUNTIME_VERSION}")]
    RuntimeVersion { found: u32 },
    #[error("a pod needs at least one app")]
    NoApps,
    #[error("the pod manifest's apps ({manifest}) and the runtime configuration's apps ({runtime}) differ; they must be the same, in the same order")]
    AppMismatch { manifest: String, runtime: String },
    #[error("{uuid:?} is not a lower-case RFC 4122 UUID")]
    InvalidUuid { uuid: String },
    #[error("pod {uuid} already exists")]
    UuidInUse { uuid: String },
    #[error("cannot choose a user namespace range for pod {uuid}: {reason}")]
    UserNamespace { uuid: String, reason: String },
    #[error("encode the {what} of pod {uuid}")]
    Encode {
        uuid: String,
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("write {} of pod {uuid}", .path.display())]
    Write {
        uuid: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("read {} of pod {uuid}", .path.display())]
    Read {
        uuid: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("invalid pod manifest {} of pod {uuid}", .path.display())]
    ParseManifest {
        uuid: String,
        path: PathBuf,
        source: PodManifestError,
    },
    #[error("invalid {} of pod {uuid}", .path.display())]
    ParseRuntime {
        uuid: String,
        path: PathBuf,
        source: RuntimeError,
    },
    #[error("invalid pid {value:?} in {} of pod {uuid}", .path.display())]
    ParsePid {
        uuid: String,
        path: PathBuf,
        value: String,
    },
    #[error("lock pod {uuid} at {}", .path.display())]
    Lock {
        uuid: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("pod {uuid} at {} is in use by another process (running, or being prepared, started or removed)", .path.display())]
    Busy { uuid: String, path: PathBuf },
    #[error("move pod {uuid} from {} to {}", .from.display(), .to.display())]
    Rename {
        uuid: String,
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    #[error("pod UUID is empty")]
    EmptyPrefix,
    #[error("no pod matches {prefix:?}")]
    NotFound { prefix: String },
    #[error("{prefix:?} matches several pods: {}; give more of the UUID", .matches.join(", "))]
    Ambiguous {
        prefix: String,
        matches: Vec<String>,
    },
    #[error("cannot {op} pod {uuid}: it is {state}")]
    WrongState {
        uuid: String,
        state: PodState,
        op: &'static str,
    },
    #[error("pod {uuid} has not written its pid yet ({})", .path.display())]
    NoPid { uuid: String, path: PathBuf },
    #[error("send {signal} to pod {uuid} (pid {pid})")]
    Signal {
        uuid: String,
        pid: i32,
        signal: &'static str,
        source: io::Error,
    },
    #[error("open stage1 output file {}", .path.display())]
    OpenOutput { path: PathBuf, source: io::Error },
    #[error("start stage1 {} for pod {uuid}", .stage1.display())]
    Spawn {
        uuid: String,
        stage1: PathBuf,
        source: io::Error,
    },
    #[error("stage1 gc ({}) failed for pod {uuid} ({status}): {stderr}", .stage1.display())]
    Stage1Gc {
        uuid: String,
        stage1: PathBuf,
        status: ExitStatus,
        stderr: String,
    },
    #[error("read the mount table {}", .path.display())]
    MountTable { path: PathBuf, source: io::Error },
    #[error("unmount {} left under pod {uuid}", .mount.display())]
    Unmount {
        uuid: String,
        mount: PathBuf,
        source: io::Error,
    },
    #[error("mounts remain under pod {uuid}, not deleting it: {}", .mounts.iter().map(|m| m.display().to_string()).collect::<Vec<_>>().join(", "))]
    MountsRemain { uuid: String, mounts: Vec<PathBuf> },
    #[error("delete pod {uuid} at {}", .path.display())]
    Remove {
        uuid: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("pod {uuid} is still {state} after {}", humantime::format_duration(*.timeout))]
    WaitTimeout {
        uuid: String,
        state: PodState,
        timeout: Duration,
    },
    /// Setting up or releasing the pod's network failed (the message names the
    /// network, plugin and file).
    #[error(transparent)]
    Network { source: NetworkError },
    #[error(
        "{}; cleaning up failed too: {}",
        manifests::error::chain(error),
        manifests::error::chain(cleanup)
    )]
    CleanupFailed {
        error: Box<PodError>,
        cleanup: Box<PodError>,
    },
}

/// Work stage0 does on a pod after moving it to `run/` (its exclusive lock held) and
/// before starting stage1: network setup ([`crate::pod::net::PodNetworking`]).
pub trait StartHook {
    /// Prepare the pod in `dir`. On error, whatever it did must be undone already.
    fn before_stage1(&mut self, uuid: &str, dir: &Path) -> Result<(), PodError>;
    /// stage1 could not be started after [`Self::before_stage1`] succeeded: undo it.
    fn stage1_failed(&mut self, uuid: &str, dir: &Path) -> Result<(), PodError>;
}

/// What the pod directories need of pods' networking, without knowing how it is done
/// (`crate::pod::net::CniNetworks` does it with CNI): releasing a pod's networks before
/// its directory goes, describing them in [`PodInfo`], checking a running pod's.
/// Attaching them is a [`StartHook`]'s work.
pub trait PodNetworks: fmt::Debug + Send + Sync {
    /// Release the networks of the pod in `pod_dir`, if it has any (none is no error).
    fn release(&self, pod_dir: &Path) -> Result<(), NetworkError>;
    /// The networks the pod in `pod_dir` is attached to; if they cannot be read, none
    /// and why (as text, for [`PodInfo::errors`]).
    fn describe(&self, pod_dir: &Path) -> (Vec<NetworkInfo>, Option<String>);
    /// Whether the running pod in `pod_dir` still has working networks (none is fine).
    fn check(&self, pod_dir: &Path) -> Result<(), NetworkError>;
}

/// A networking failure, as [`PodNetworks`] and [`StartHook`]s report it.
pub type NetworkError = Box<dyn std::error::Error + Send + Sync>;

/// A [`StartHook`] that does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

impl StartHook for NoHook {
    fn before_stage1(&mut self, _uuid: &str, _dir: &Path) -> Result<(), PodError> {
        Ok(())
    }
    fn stage1_failed(&mut self, _uuid: &str, _dir: &Path) -> Result<(), PodError> {
        Ok(())
    }
}

/// Let `hook` undo its work after stage1 failed to start with `error`.
fn undo_hook(hook: &mut dyn StartHook, uuid: &str, dir: &Path, error: PodError) -> PodError {
    match hook.stage1_failed(uuid, dir) {
        Ok(()) => error,
        Err(cleanup) => PodError::CleanupFailed {
            error: Box::new(error),
            cleanup: Box::new(cleanup),
        },
    }
}

/// The pods directory, `<dir>/pods`.
#[derive(Debug, Clone)]
pub struct Pods {
    root: PathBuf,
    /// Releases pods' networks when they are removed and describes them in [`PodInfo`].
    network: Arc<dyn PodNetworks>,
}

impl Pods {
    /// Open (creating if needed) `<data_dir>/pods` and its state directories. `network`
    /// releases a pod's networks when it is removed (`rm`, `gc`) and describes them.
    pub fn open(data_dir: &Path, network: Arc<dyn PodNetworks>) -> Result<Pods, PodError> {
        let root = data_dir.join("pods");
        // Pods' files (their images' setuid binaries among them): root's alone.
        if let Some(t) = crate::perms::private_dir(&root, "pods dir").map_err(|source| {
            PodError::CreateStateDir {
                path: root.clone(),
                source,
            }
        })? {
            tracing::warn!("SECURITY: {t}");
        }
        for bucket in Bucket::ALL {
            let path = root.join(bucket.dir_name());
            DirBuilder::new()
                .recursive(true)
                .mode(POD_DIR_MODE)
                .create(&path)
                .map_err(|source| PodError::CreateStateDir { path, source })?;
        }
        Ok(Pods { root, network })
    }

    /// What releases, describes and checks pods' networks.
    pub fn network(&self) -> &dyn PodNetworks {
        &*self.network
    }

    /// `<dir>/pods`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn bucket_dir(&self, bucket: Bucket) -> PathBuf {
        self.root.join(bucket.dir_name())
    }

    fn pod_path(&self, bucket: Bucket, uuid: &str) -> PathBuf {
        self.bucket_dir(bucket).join(uuid)
    }

    /// Where a running pod's directory is: `<dir>/pods/run/<uuid>`.
    pub fn running_dir(&self, uuid: &str) -> PathBuf {
        self.pod_path(Bucket::Run, uuid)
    }

    /// Create a pod: `embryo/` → `prepare/` (exclusively locked while the files are
    /// written) → `prepared/`. Writes `pod` (the manifest), `runtime.json` and an
    /// empty `apps/<app>/` per app.
    ///
    /// If `runtime.uuid` is empty a fresh v4 UUID is made; otherwise it must be a
    /// lower-case UUID no pod has. An empty `runtime.hostname` becomes `rkt-<uuid>`.
    /// The manifest is validated; its apps and the runtime's must match by name and
    /// order. On failure the half-written pod is deleted.
    pub fn prepare(
        &self,
        manifest: &PodManifest,
        runtime: &RuntimeConfig,
    ) -> Result<Pod, PodError> {
        manifest.validate()?;
        if runtime.version != RUNTIME_VERSION {
            return Err(PodError::RuntimeVersion {
                found: runtime.version,
            });
        }
        if runtime.apps.is_empty() {
            return Err(PodError::NoApps);
        }
        let names_m: Vec<&str> = manifest.apps.iter().map(|a| a.name.as_str()).collect();
        let names_r: Vec<&str> = runtime.apps.iter().map(|a| a.name.as_str()).collect();
        if names_m != names_r {
            return Err(PodError::AppMismatch {
                manifest: names_m.join(", "),
                runtime: names_r.join(", "),
            });
        }
        let uuid = if runtime.uuid.is_empty() {
            new_uuid()
        } else {
            check_uuid(&runtime.uuid)?;
            runtime.uuid.clone()
        };
        if self.locate(&uuid)?.is_some() {
            return Err(PodError::UuidInUse { uuid });
        }
        let mut runtime = runtime.clone();
        runtime.uuid.clone_from(&uuid);
        if runtime.hostname.is_empty() {
            runtime.hostname = format!("rkt-{uuid}");
        }
        // Held until runtime.json is written, so the next pod sees this one's range.
        let _userns_lock = self.assign_user_namespace(&uuid, &mut runtime)?;
        let manifest_json = serde_json::to_vec(manifest).map_err(|source| PodError::Encode {
            uuid: uuid.clone(),
            what: "pod manifest",
            source,
        })?;
        let runtime_json =
            serde_json::to_vec_pretty(&runtime).map_err(|source| PodError::Encode {
                uuid: uuid.clone(),
                what: "runtime configuration",
                source,
            })?;

        let embryo = self.pod_path(Bucket::Embryo, &uuid);
        DirBuilder::new()
            .mode(POD_DIR_MODE)
            .create(&embryo)
            .map_err(|source| match source.kind() {
                io::ErrorKind::AlreadyExists => PodError::UuidInUse { uuid: uuid.clone() },
                _ => PodError::Write {
                    uuid: uuid.clone(),
                    path: embryo.clone(),
                    source,
                },
            })?;
        let mut dir = match DirLock::open(&embryo).and_then(|d| d.try_exclusive().map(|_| d)) {
            Ok(d) => d,
            Err(source) => {
                let error = PodError::Lock {
                    uuid: uuid.clone(),
                    path: embryo.clone(),
                    source,
                };
                return Err(self.discard(&uuid, &embryo, error));
            }
        };
        let prepare = self.pod_path(Bucket::Prepare, &uuid);
        rename_locked(&mut dir, &uuid, &prepare)
            .map_err(|error| self.discard(&uuid, &embryo, error))?;

        let written = (|| {
            write_atomic(&uuid, &prepare, MANIFEST_FILE, &manifest_json)?;
            write_atomic(&uuid, &prepare, RUNTIME_FILE, &runtime_json)?;
            for app in &runtime.apps {
                let path = prepare.join(APPS_DIR).join(&app.name);
                DirBuilder::new()
                    .recursive(true)
                    .mode(POD_DIR_MODE)
                    .create(&path)
                    .map_err(|source| PodError::Write {
                        uuid: uuid.clone(),
                        path,
                        source,
                    })?;
            }
            rename_locked(&mut dir, &uuid, &self.pod_path(Bucket::Prepared, &uuid))
        })();
        if let Err(error) = written {
            return Err(self.discard(&uuid, &prepare, error));
        }
        tracing::debug!(pod = %uuid, "prepared");
        Ok(Pod {
            uuid,
            state: PodState::Prepared,
            dir: dir.path().to_path_buf(),
        })
    }

    /// Delete a pod whose preparation failed with `error`; report both on failure.
    /// A pod with a user namespace gets a host id range no other pod directory has
    /// (see [`userns`]): its preferred one if free. Returns the allocation lock, to be
    /// held until the pod's `runtime.json` is written.
    fn assign_user_namespace(
        &self,
        uuid: &str,
        runtime: &mut RuntimeConfig,
    ) -> Result<Option<userns::AllocationLock>, PodError> {
        let Some(wanted) = runtime.user_namespace else {
            return Ok(None);
        };
        let fail = |reason: String| PodError::UserNamespace {
            uuid: uuid.to_string(),
            reason,
        };
        if wanted.size != userns::RANGE_SIZE {
            return Err(fail(format!(
                "a range has {} ids, not {}",
                userns::RANGE_SIZE,
                wanted.size
            )));
        }
        let lock = userns::lock(&self.root)
            .map_err(|e| fail(format!("lock {}: {e}", self.root.display())))?;
        let taken = userns::ranges_in_use(&self.root);
        let range = userns::choose(uuid, &taken)
            .ok_or_else(|| fail("every range is held by a pod; remove some".to_string()))?;
        runtime.user_namespace = Some(range);
        Ok(Some(lock))
    }

    fn discard(&self, uuid: &str, path: &Path, error: PodError) -> PodError {
        match fs::remove_dir_all(path) {
            Ok(()) => error,
            Err(e) if e.kind() == io::ErrorKind::NotFound => error,
            Err(source) => PodError::CleanupFailed {
                error: Box::new(error),
                cleanup: Box::new(PodError::Remove {
                    uuid: uuid.to_string(),
                    path: path.to_path_buf(),
                    source,
                }),
            },
        }
    }

    /// Run a prepared pod in this process: move it to `run/` and exec
    /// `stage1 run --pod-dir <dir>` with the pod's lock on the descriptor named by
    /// `RKT_LOCK_FD`. stdio, environment and working directory stay the caller's.
    /// Returns only on failure, having moved the pod back to `prepared/`.
    /// `uuid` is a full UUID ([`Self::resolve`] turns a prefix into a [`Pod`]).
    pub fn run_prepared(&self, uuid: &str, stage1: &Path) -> Result<Infallible, PodError> {
        self.run_prepared_with(uuid, stage1, &mut NoHook)
    }

    /// [`Self::run_prepared`], with `hook` run after the pod moved to `run/` and
    /// before stage1 starts (network setup: [`crate::pod::net::PodNetworking`]). If the
    /// hook fails, or stage1 cannot be started after it, the pod goes back to
    /// `prepared/` (the hook undoing its work first).
    pub fn run_prepared_with(
        &self,
        uuid: &str,
        stage1: &Path,
        hook: &mut dyn StartHook,
    ) -> Result<Infallible, PodError> {
        let mut dir = self.start_prepared(uuid)?;
        if let Err(error) = hook.before_stage1(uuid, dir.path()) {
            return Err(self.unstart(&mut dir, uuid, error));
        }
        let mut cmd = stage1_run_command(stage1, &dir);
        hand_over_lock(&mut cmd, dir.raw_fd(), false);
        let source = cmd.exec();
        // exec failed: the pre-exec hook ran in this process, so make the lock
        // descriptor close-on-exec again before anything else can spawn.
        let _ = rustix::io::fcntl_setfd(&dir, rustix::io::FdFlags::CLOEXEC);
        let error = PodError::Spawn {
            uuid: uuid.to_string(),
            stage1: stage1.to_path_buf(),
            source,
        };
        let error = undo_hook(hook, uuid, dir.path(), error);
        Err(self.unstart(&mut dir, uuid, error))
    }

    /// Like [`Self::run_prepared`], but stage1 runs as a child in a new session
    /// (detached from the caller's terminal) with the given stdio. The lock passes to
    /// the child; this process closes its copy. The caller owns the returned
    /// [`Child`] and should reap it (`wait`/`try_wait`). On failure the pod is moved
    /// back to `prepared/`.
    pub fn spawn_prepared(
        &self,
        uuid: &str,
        stage1: &Path,
        stdio: &Stage1Stdio,
    ) -> Result<Child, PodError> {
        self.spawn_prepared_with(uuid, stage1, stdio, &mut NoHook)
    }

    /// [`Self::spawn_prepared`], with `hook` run before stage1 starts (see
    /// [`Self::run_prepared_with`]).
    pub fn spawn_prepared_with(
        &self,
        uuid: &str,
        stage1: &Path,
        stdio: &Stage1Stdio,
        hook: &mut dyn StartHook,
    ) -> Result<Child, PodError> {
        let (stdin, stdout, stderr) = stage1_stdio(stdio)?;
        let mut dir = self.start_prepared(uuid)?;
        if let Err(error) = hook.before_stage1(uuid, dir.path()) {
            return Err(self.unstart(&mut dir, uuid, error));
        }
        let mut cmd = stage1_run_command(stage1, &dir);
        cmd.stdin(stdin).stdout(stdout).stderr(stderr);
        hand_over_lock(&mut cmd, dir.raw_fd(), true);
        match cmd.spawn() {
            Ok(child) => {
                tracing::debug!(pod = %uuid, pid = child.id(), "stage1 started");
                Ok(child)
            }
            Err(source) => {
                let error = PodError::Spawn {
                    uuid: uuid.to_string(),
                    stage1: stage1.to_path_buf(),
                    source,
                };
                let error = undo_hook(hook, uuid, dir.path(), error);
                Err(self.unstart(&mut dir, uuid, error))
            }
        }
    }

    /// Lock a prepared pod and move it to `run/`.
    fn start_prepared(&self, uuid: &str) -> Result<DirLock, PodError> {
        check_uuid(uuid)?;
        let path = self.pod_path(Bucket::Prepared, uuid);
        let not_prepared = |pods: &Pods| match pods.locate(uuid) {
            Ok(Some(pod)) => PodError::WrongState {
                uuid: uuid.to_string(),
                state: pod.state,
                op: "run",
            },
            Ok(None) => PodError::NotFound {
                prefix: uuid.to_string(),
            },
            Err(e) => e,
        };
        let mut dir = match DirLock::open(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_prepared(self)),
            Err(source) => return Err(lock_error(uuid, &path, source)),
        };
        if !dir
            .try_exclusive_patient(lock::EXCLUSIVE_PATIENCE)
            .map_err(|source| lock_error(uuid, &path, source))?
        {
            return Err(PodError::Busy {
                uuid: uuid.to_string(),
                path,
            });
        }
        if !dir
            .still_there()
            .map_err(|source| lock_error(uuid, &path, source))?
        {
            return Err(not_prepared(self));
        }
        rename_locked(&mut dir, uuid, &self.pod_path(Bucket::Run, uuid))?;
        Ok(dir)
    }

    /// Move a pod whose stage1 could not be started back to `prepared/`.
    fn unstart(&self, dir: &mut DirLock, uuid: &str, error: PodError) -> PodError {
        match rename_locked(dir, uuid, &self.pod_path(Bucket::Prepared, uuid)) {
            Ok(()) => error,
            Err(cleanup) => PodError::CleanupFailed {
                error: Box::new(error),
                cleanup: Box::new(cleanup),
            },
        }
    }

    /// Find the pod whose UUID starts with `uuid_prefix` (case-insensitive). Errors
    /// if none or several match.
    pub fn resolve(&self, uuid_prefix: &str) -> Result<Pod, PodError> {
        let prefix = uuid_prefix.trim().to_ascii_lowercase();
        if prefix.is_empty() {
            return Err(PodError::EmptyPrefix);
        }
        if is_uuid(&prefix) {
            return self.locate(&prefix)?.ok_or(PodError::NotFound { prefix });
        }
        let matches: Vec<String> = self
            .scan()?
            .into_keys()
            .filter(|u| u.starts_with(&prefix))
            .collect();
        match matches.as_slice() {
            [] => Err(PodError::NotFound { prefix }),
            [one] => self.locate(one)?.ok_or(PodError::NotFound { prefix }),
            _ => Err(PodError::Ambiguous { prefix, matches }),
        }
    }

    /// Every pod directory: UUID → state directory. Entries that are not UUIDs are
    /// ignored. Directories are read in life-cycle order, so a pod moving forward
    /// during the scan is seen at least once (the later sighting wins).
    fn scan(&self) -> Result<BTreeMap<String, Bucket>, PodError> {
        let mut found = BTreeMap::new();
        for bucket in Bucket::ALL {
            let path = self.bucket_dir(bucket);
            for uuid in list_uuids(&path)? {
                found.insert(uuid, bucket);
            }
        }
        Ok(found)
    }

    /// Where the pod with this exact UUID is now, with its state; `None` if no such
    /// pod exists.
    fn locate(&self, uuid: &str) -> Result<Option<Pod>, PodError> {
        // Two passes: a pod moving backwards (a failed start) can dodge one.
        for _ in 0..2 {
            for bucket in Bucket::ALL {
                let dir = self.pod_path(bucket, uuid);
                if let Some(state) = state_at(bucket, &dir).map_err(|source| PodError::Lock {
                    uuid: uuid.to_string(),
                    path: dir.clone(),
                    source,
                })? {
                    return Ok(Some(Pod {
                        uuid: uuid.to_string(),
                        state,
                        dir,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Like [`Self::locate`], but a missing pod is an error.
    fn relocate(&self, uuid: &str) -> Result<Pod, PodError> {
        self.locate(uuid)?.ok_or_else(|| PodError::NotFound {
            prefix: uuid.to_string(),
        })
    }

    /// All pods, with their state and details, ordered by creation time. A pod whose
    /// files cannot be read is listed with `errors` set; pods deleted during the
    /// listing are left out.
    pub fn list(&self) -> Result<Vec<PodInfo>, PodError> {
        let mut out = Vec::new();
        for (uuid, bucket) in self.scan()? {
            let dir = self.pod_path(bucket, &uuid);
            let pod = match state_at(bucket, &dir) {
                Ok(Some(state)) => Pod { uuid, state, dir },
                // Moved or deleted since the scan: look again.
                Ok(None) => match self.locate(&uuid)? {
                    Some(pod) => pod,
                    None => continue,
                },
                Err(source) => return Err(lock_error(&uuid, &dir, source)),
            };
            out.push(read_info(pod, &*self.network));
        }
        out.sort_by(|a, b| (a.created_at, &a.uuid).cmp(&(b.created_at, &b.uuid)));
        Ok(out)
    }

    /// The pod's current state and details (manifest, runtime configuration, app
    /// statuses, pid, times). Unreadable files are reported in `errors`.
    pub fn info(&self, pod: &Pod) -> Result<PodInfo, PodError> {
        Ok(read_info(self.relocate(&pod.uuid)?, &*self.network))
    }

    /// The pod's manifest (for `cat-manifest`).
    pub fn read_manifest(&self, pod: &Pod) -> Result<PodManifest, PodError> {
        let pod = self.relocate(&pod.uuid)?;
        let path = pod.dir.join(MANIFEST_FILE);
        let bytes = fs::read(&path).map_err(|source| PodError::Read {
            uuid: pod.uuid.clone(),
            path: path.clone(),
            source,
        })?;
        PodManifest::from_slice(&bytes).map_err(|source| PodError::ParseManifest {
            uuid: pod.uuid,
            path,
            source,
        })
    }

    /// Ask a running pod to stop: SIGTERM (or SIGKILL with `force`) to the host PID
    /// in its `pid` file. stage1 then stops the apps within their grace period.
    /// Does not wait; see [`Self::wait`].
    pub fn stop(&self, pod: &Pod, force: bool) -> Result<(), PodError> {
        let pod = self.relocate(&pod.uuid)?;
        if !pod.state.is_running() {
            return Err(PodError::WrongState {
                uuid: pod.uuid,
                state: pod.state,
                op: "stop",
            });
        }
        let path = pod.dir.join(PID_FILE);
        let pid = read_pid(&pod.uuid, &path)?.ok_or_else(|| PodError::NoPid {
            uuid: pod.uuid.clone(),
            path: path.clone(),
        })?;
        let (signal, name) = if force {
            (rustix::process::Signal::KILL, "SIGKILL")
        } else {
            (rustix::process::Signal::TERM, "SIGTERM")
        };
        let bad_pid = || PodError::ParsePid {
            uuid: pod.uuid.clone(),
            path: path.clone(),
            value: pid.to_string(),
        };
        let target = rustix::process::Pid::from_raw(pid).ok_or_else(bad_pid)?;
        match rustix::process::kill_process(target, signal) {
            Ok(()) => {
                tracing::debug!(pod = %pod.uuid, pid, signal = name, "stop");
                Ok(())
            }
            // Gone already: fine if the pod has exited meanwhile.
            Err(rustix::io::Errno::SRCH) if !self.relocate(&pod.uuid)?.state.is_running() => Ok(()),
            Err(e) => Err(PodError::Signal {
                uuid: pod.uuid.clone(),
                pid,
                signal: name,
                source: e.into(),
            }),
        }
    }

    /// Wait until the pod is finished ([`PodState::is_finished`]: exited, or never
    /// to run), polling its lock; `None` waits for ever.
    pub fn wait(&self, pod: &Pod, timeout: Option<Duration>) -> Result<PodInfo, PodError> {
        self.poll(pod, timeout, |p| p.state.is_finished())
    }

    /// Wait until the running pod's stage1 has written `ready`, or the pod is
    /// finished (check [`PodInfo::ready`]).
    pub fn wait_ready(&self, pod: &Pod, timeout: Option<Duration>) -> Result<PodInfo, PodError> {
        self.poll(pod, timeout, |p| {
            p.state.is_finished() || (p.state.is_running() && p.dir.join(READY_FILE).exists())
        })
    }

    fn poll(
        &self,
        pod: &Pod,
        timeout: Option<Duration>,
        done: impl Fn(&Pod) -> bool,
    ) -> Result<PodInfo, PodError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let now = self.relocate(&pod.uuid)?;
            if done(&now) {
                return Ok(read_info(now, &*self.network));
            }
            let left = match timeout {
                None => pause,
                Some(t) => match t.checked_sub(start.elapsed()) {
                    Some(left) if !left.is_zero() => left,
                    _ => {
                        return Err(PodError::WaitTimeout {
                            uuid: now.uuid,
                            state: now.state,
                            timeout: t,
                        })
                    }
                },
            };
            thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// `rkt rm`: delete a pod now. Prepared, aborted, exited and garbage pods are
    /// accepted; running or busy ones are refused. A pod that ran is moved to
    /// `exited-garbage/` and released with `stage1 gc --pod-dir <dir>` first; others
    /// go to `garbage/`. Leftover mounts under the directory are detached
    /// (`MNT_DETACH`, reported) before it is deleted.
    pub fn remove(&self, pod: &Pod, stage1: &Path) -> Result<Removal, PodError> {
        let pod = self.relocate(&pod.uuid)?;
        if !pod.state.can_remove() {
            return Err(PodError::WrongState {
                uuid: pod.uuid,
                state: pod.state,
                op: "remove",
            });
        }
        let mut dir = self.lock_for_removal(&pod)?;
        let bucket = match pod.state {
            PodState::Exited | PodState::ExitedGarbage => Bucket::ExitedGarbage,
            _ => Bucket::Garbage,
        };
        let to = self.pod_path(bucket, &pod.uuid);
        if dir.path() != to {
            rename_locked(&mut dir, &pod.uuid, &to)?;
        }
        let stage1 = (bucket == Bucket::ExitedGarbage).then_some(stage1);
        gc::delete_locked(&dir, &pod.uuid, stage1, &*self.network)
    }

    /// Take the exclusive lock of `pod` at its snapshot location.
    fn lock_for_removal(&self, pod: &Pod) -> Result<DirLock, PodError> {
        let dir = DirLock::open(&pod.dir).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => PodError::NotFound {
                prefix: pod.uuid.clone(),
            },
            _ => lock_error(&pod.uuid, &pod.dir, e),
        })?;
        let locked = dir
            .try_exclusive_patient(lock::EXCLUSIVE_PATIENCE)
            .map_err(|e| lock_error(&pod.uuid, &pod.dir, e))?;
        let there = locked
            && dir
                .still_there()
                .map_err(|e| lock_error(&pod.uuid, &pod.dir, e))?;
        if !there {
            return Err(PodError::Busy {
                uuid: pod.uuid.clone(),
                path: pod.dir.clone(),
            });
        }
        Ok(dir)
    }

    /// `rkt gc`: mark, then (unless `mark_only`) sweep; `now` is the current time.
    ///
    /// Mark: exited pods (`run/`, lock free) get a `gc-marked` file dated `now` and
    /// move to `exited-garbage/`; aborted prepares, and prepared (or embryo) pods
    /// older than `expire_prepared`, move to `garbage/`. Sweep: pods marked at least
    /// `grace` ago are released with `stage1 gc --pod-dir <dir>` and deleted, as is
    /// everything in `garbage/` (without stage1 gc: those never ran). Leftover
    /// mounts are detached first. Per-pod failures are collected in the report and
    /// leave the pod for the next run; only unreadable state directories are errors.
    pub fn gc(
        &self,
        grace: Duration,
        expire_prepared: Duration,
        mark_only: bool,
        stage1: &Path,
        now: SystemTime,
    ) -> Result<GcReport, PodError> {
        gc::run(self, grace, expire_prepared, mark_only, stage1, now)
    }
}

/// A fresh pod UUID: v4, lower-case, hyphenated.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// Whether `s` is a UUID written the way pods are named (lower-case, hyphenated).
pub fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

fn check_uuid(s: &str) -> Result<(), PodError> {
    if is_uuid(s) {
        Ok(())
    } else {
        Err(PodError::InvalidUuid {
            uuid: s.to_string(),
        })
    }
}

fn lock_error(uuid: &str, path: &Path, source: io::Error) -> PodError {
    PodError::Lock {
        uuid: uuid.to_string(),
        path: path.to_path_buf(),
        source,
    }
}

/// The UUID-named entries of a state directory.
fn list_uuids(path: &Path) -> Result<Vec<String>, PodError> {
    let read_err = |source| PodError::ReadStateDir {
        path: path.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(path).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        if let Some(name) = entry.file_name().to_str() {
            if is_uuid(name) {
                out.push(name.to_string());
            }
        }
    }
    Ok(out)
}

/// The state of the pod directory `dir` in `bucket`; `None` if it is not there.
fn state_at(bucket: Bucket, dir: &Path) -> io::Result<Option<PodState>> {
    if bucket.lock_matters() {
        return Ok(lock::probe_locked(dir)?.map(|locked| bucket.state(locked)));
    }
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(Some(bucket.state(false))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn rename_locked(dir: &mut DirLock, uuid: &str, to: &Path) -> Result<(), PodError> {
    let from = dir.path().to_path_buf();
    dir.rename(to).map_err(|source| PodError::Rename {
        uuid: uuid.to_string(),
        from,
        to: to.to_path_buf(),
        source,
    })?;
    tracing::debug!(pod = %uuid, to = %to.display(), "pod moved");
    Ok(())
}

/// Write `dir/name` by temp file + rename (`manifests::poddir::fs::write_atomic`).
fn write_atomic(uuid: &str, dir: &Path, name: &str, bytes: &[u8]) -> Result<(), PodError> {
    let path = dir.join(name);
    manifests::poddir::fs::write_atomic(&path, bytes, Perm::Umask(POD_FILE_MODE), Durability::Disk)
        .map_err(|source| PodError::Write {
            uuid: uuid.to_string(),
            path,
            source,
        })
}

fn mtime(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The directory's ctime (rename sets it).
fn ctime(path: &Path) -> io::Result<SystemTime> {
    let m = fs::symlink_metadata(path)?;
    let secs = u64::try_from(m.ctime()).unwrap_or(0);
    let nanos = u32::try_from(m.ctime_nsec()).unwrap_or(0);
    Ok(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// The pid in `path`; `None` if the file does not exist (yet).
fn read_pid(uuid: &str, path: &Path) -> Result<Option<i32>, PodError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(PodError::Read {
                uuid: uuid.to_string(),
                path: path.to_path_buf(),
                source,
            })
        }
    };
    match text.trim().parse::<i32>() {
        Ok(pid) if pid > 0 => Ok(Some(pid)),
        _ => Err(PodError::ParsePid {
            uuid: uuid.to_string(),
            path: path.to_path_buf(),
            value: text.trim().to_string(),
        }),
    }
}

/// Read an optional file: `Ok(None)` if it does not exist.
fn read_optional(uuid: &str, path: &Path) -> Result<Option<Vec<u8>>, PodError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PodError::Read {
            uuid: uuid.to_string(),
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Gather what the pod directory says; problems go to `errors`, never abort.
fn read_info(pod: Pod, network: &dyn PodNetworks) -> PodInfo {
    let mut errors = Vec::new();
    let uuid = pod.uuid.as_str();
    let dir = pod.dir.as_path();

    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest = match read_optional(uuid, &manifest_path) {
        Ok(Some(bytes)) => match PodManifest::from_slice(&bytes) {
            Ok(m) => Some(m),
            Err(source) => {
                errors.push(manifests::error::chain(&PodError::ParseManifest {
                    uuid: uuid.to_string(),
                    path: manifest_path.clone(),
                    source,
                }));
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            errors.push(manifests::error::chain(&e));
            None
        }
    };
    let runtime_path = dir.join(RUNTIME_FILE);
    let runtime = match read_optional(uuid, &runtime_path) {
        Ok(Some(bytes)) => match RuntimeConfig::from_slice(&bytes) {
            Ok(r) => Some(r),
            Err(source) => {
                errors.push(manifests::error::chain(&PodError::ParseRuntime {
                    uuid: uuid.to_string(),
                    path: runtime_path.clone(),
                    source,
                }));
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            errors.push(manifests::error::chain(&e));
            None
        }
    };
    let pid_path = dir.join(PID_FILE);
    let pid = read_pid(uuid, &pid_path).unwrap_or_else(|e| {
        errors.push(manifests::error::chain(&e));
        None
    });

    // App names and images: from the manifest, else from runtime.json.
    let apps: Vec<(String, String, Option<String>)> = match (&manifest, &runtime) {
        (Some(m), _) => m
            .apps
            .iter()
            .map(|a| {
                let image_name = a.image.name.as_ref().map(|n| n.to_string());
                (a.name.clone(), a.image.id.clone(), image_name)
            })
            .collect(),
        (None, Some(r)) => r
            .apps
            .iter()
            .map(|a| (a.name.clone(), a.image_id.clone(), None))
            .collect(),
        (None, None) => Vec::new(),
    };
    let apps = apps
        .into_iter()
        .map(|(name, image_id, image_name)| {
            let app_dir = dir.join(APPS_DIR).join(&name);
            let status_path = app_dir.join(APP_STATUS_FILE);
            let status = match read_optional(uuid, &status_path) {
                Ok(Some(bytes)) => match serde_json::from_slice::<AppStatus>(&bytes) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        errors.push(format!(
                            "invalid app status {} of pod {uuid}: {e}",
                            status_path.display()
                        ));
                        None
                    }
                },
                Ok(None) => None,
                Err(e) => {
                    errors.push(manifests::error::chain(&e));
                    None
                }
            };
            let state = app_state(
                pod.state,
                mtime(&app_dir.join(APP_PID_FILE)),
                status.as_ref().and(mtime(&status_path)),
            );
            AppInfo {
                name,
                image_id,
                image_name,
                state,
                status,
            }
        })
        .collect();

    let (networks, net_error) = network.describe(dir);
    errors.extend(net_error);
    PodInfo {
        uuid: pod.uuid.clone(),
        state: pod.state,
        apps,
        networks,
        pid,
        created_at: mtime(&manifest_path),
        started_at: mtime(&pid_path),
        user_namespace: runtime.as_ref().and_then(|r| r.user_namespace),
        errors,
        ready: dir.join(READY_FILE).exists(),
        dir: pod.dir.clone(),
        manifest,
        runtime,
    }
}

/// An app's state from the pod's state and the times stage1 last wrote the app's
/// `pid` (at each start) and `status` (at each exit).
fn app_state(pod: PodState, started: Option<SystemTime>, exited: Option<SystemTime>) -> AppState {
    match pod {
        PodState::Embryo | PodState::Preparing | PodState::Prepared => AppState::Created,
        PodState::Running => match (started, exited) {
            (Some(s), Some(e)) if e >= s => AppState::Exited,
            (Some(_), _) => AppState::Running,
            (None, Some(_)) => AppState::Exited,
            (None, None) => AppState::Unknown,
        },
        _ if exited.is_some() => AppState::Exited,
        _ => AppState::Unknown,
    }
}

/// `stage1 run --pod-dir <dir>` with `RKT_LOCK_FD` set. The working directory is
/// left alone: `exec` would change this process's own if it failed, and a relative
/// stage1 path or data dir would no longer resolve.
fn stage1_run_command(stage1: &Path, dir: &DirLock) -> Command {
    let mut cmd = Command::new(stage1);
    cmd.arg("run")
        .arg("--pod-dir")
        .arg(dir.path())
        .env(LOCK_FD_ENV, dir.raw_fd().to_string());
    cmd
}

fn stage1_stdio(stdio: &Stage1Stdio) -> Result<(Stdio, Stdio, Stdio), PodError> {
    Ok(match stdio {
        Stage1Stdio::Null => (Stdio::null(), Stdio::null(), Stdio::null()),
        Stage1Stdio::Inherit => (Stdio::inherit(), Stdio::inherit(), Stdio::inherit()),
        Stage1Stdio::File(path) => {
            let open_err = |source| PodError::OpenOutput {
                path: path.clone(),
                source,
            };
            let out: File = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(POD_FILE_MODE)
                .open(path)
                .map_err(open_err)?;
            let err = out.try_clone().map_err(open_err)?;
            (Stdio::null(), Stdio::from(out), Stdio::from(err))
        }
    })
}

/// Let the command's process inherit the lock descriptor `fd` (which is
/// close-on-exec here, so no other child of this process can inherit it by
/// accident), and with `new_session` put it in a session of its own.
#[allow(unsafe_code)]
fn hand_over_lock(cmd: &mut Command, fd: RawFd, new_session: bool) {
    // SAFETY: the closure runs in the child between fork and exec (or in this process
    // just before exec), where only async-signal-safe work is allowed: it makes two
    // system calls through rustix (fcntl(F_SETFD), setsid), and neither allocates nor
    // takes locks. `fd` is the pod lock's descriptor, which the caller keeps open
    // until spawn/exec has returned, so borrowing it in the child is sound.
    unsafe {
        cmd.pre_exec(move || {
            let fd = BorrowedFd::borrow_raw(fd);
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            if new_session {
                rustix::process::setsid()?;
            }
            Ok(())
        });
    }
}
