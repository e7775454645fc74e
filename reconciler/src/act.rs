//! Executing the plan's work actions through the code paths of the CLI:
//! [`launch::prepare`] (fetch with `rkt fetch`'s trust rules, render, prepare, as
//! `rkt prepare`), [`Pods::spawn_prepared_with`] with the networking hook (as
//! `rkt run-prepared`, detached), [`Pods::stop`] / [`Pods::wait`] (`rkt stop`) and
//! [`Pods::remove`] (`rkt rm`).
//!
//! A job holds the actions of one pod key and runs on a worker thread; jobs of
//! different keys run side by side and never wait for each other.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::k8s::{DesiredPod, ManifestError, PodKey, ReplaceStrategy};
use super::mapping::{self, error_at, MapContext, MapError};
use super::observe::{self, SeenPod};
use super::plan::Work;
use manifests::error::chain;
use stage0::image::fetch::Progress;
use stage0::image::store::Store;
use stage0::image::trust::Keystore;
use stage0::pod::dir::{Pod, PodError, Pods, Stage1Stdio};
use stage0::pod::launch::{self, PrepareError};
use stage0::pod::net::{CniPath, NetArg, NetMode, NetOptions, PodNetworking};

/// How long a new pod of a start-first replacement may take to become ready before
/// the replacement counts as failed (and the old pod stays).
const START_FIRST_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Extra time after a pod's grace period before it is killed.
const STOP_SLACK: Duration = Duration::from_secs(5);
/// How long to wait for a freshly started stage1 to write its pid before `stop` gives up.
const PID_WAIT: Duration = Duration::from_secs(10);

/// The work for one key: its actions, in order, and the desired pod (if any).
#[derive(Debug, Clone)]
pub struct Job {
    pub key: PodKey,
    pub pod: Option<DesiredPod>,
    pub actions: Vec<Work>,
}

/// Why an action failed. The error policy (`daemon`) asks [`ActError::is_permanent`]:
/// a permanent error cannot go away before the manifest (or its image) changes, a
/// retryable one may (a network failure, a key added to the trust store, a host path
/// created, a pod that stops after all). Both back off today: a failed creation of
/// either kind is retried after the key's back-off, and a new spec hash starts a new
/// history (so fixing the file retries at once).
///
/// The wrappers of another error (`Spec`, `HostPath`, `Prepare`, `Pod`) are transparent:
/// they read as the error they carry and pass on its causes, so [`chain`] prints each
/// cause once. `Start` carries two errors (the start and its cleanup) and is a leaf
/// whose message holds both chains.
#[derive(Debug)]
pub enum ActError {
    /// The manifest cannot be turned into a pod request (unknown capability, an
    /// unsupported volume or option): permanent until the file changes.
    Spec { field: String, source: MapError },
    /// A host path volume could not be checked or created: the host may change.
    HostPath { field: String, source: MapError },
    /// Preparing the pod (fetch, verification, render, prepare) failed.
    Prepare { field: String, source: PrepareError },
    /// The prepared pod could not be started (and was removed, or removing it failed too).
    Start {
        uuid: String,
        source: Box<PodError>,
        cleanup: Option<Box<PodError>>,
    },
    /// A stop-first replacement could not stop the old pod.
    StopOld { old: String, source: Box<ActError> },
    /// A start-first replacement's new pod did not become ready; the old one stays.
    NotReady {
        uuid: String,
        old: String,
        reason: String,
    },
    /// Stopping or removing a pod failed.
    Pod(Box<PodError>),
}

impl std::fmt::Display for ActError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ActError::Spec { source, .. } | ActError::HostPath { source, .. } => source.fmt(f),
            ActError::Prepare { source, .. } => source.fmt(f),
            ActError::Pod(source) => source.fmt(f),
            ActError::Start {
                uuid,
                source,
                cleanup,
            } => {
                write!(f, "cannot start pod {uuid}: {}", chain(source.as_ref()))?;
                if let Some(c) = cleanup {
                    write!(f, " (and removing it failed: {})", chain(c.as_ref()))?;
                }
                Ok(())
            }
            ActError::StopOld { old, .. } => write!(f, "cannot stop the old pod {old}"),
            ActError::NotReady { uuid, old, reason } => write!(
                f,
                "the new pod {uuid} did not become ready: {reason}; the old pod {old} keeps running"
            ),
        }
    }
}

impl std::error::Error for ActError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ActError::Spec { source, .. } | ActError::HostPath { source, .. } => source.source(),
            ActError::Prepare { source, .. } => source.source(),
            ActError::Pod(source) => source.source(),
            ActError::StopOld { source, .. } => Some(source.as_ref()),
            ActError::Start { .. } | ActError::NotReady { .. } => None,
        }
    }
}

impl From<PodError> for ActError {
    fn from(e: PodError) -> ActError {
        ActError::Pod(Box::new(e))
    }
}

impl ActError {
    /// Whether only a change of the manifest (or of its image) can make the action
    /// succeed: the pod spec cannot be mapped, an image reference is malformed, or an
    /// image has nothing to run for it.
    pub fn is_permanent(&self) -> bool {
        match self {
            ActError::Spec { .. } => true,
            ActError::Prepare { source, .. } => {
                matches!(source, PrepareError::Reference(_) | PrepareError::Spec(_))
            }
            ActError::StopOld { source, .. } => source.is_permanent(),
            ActError::HostPath { .. }
            | ActError::Start { .. }
            | ActError::NotReady { .. }
            | ActError::Pod(_) => false,
        }
    }

    /// The manifest field the error is about (`""`: the pod as a whole).
    pub fn field(&self) -> &str {
        match self {
            ActError::Spec { field, .. }
            | ActError::HostPath { field, .. }
            | ActError::Prepare { field, .. } => field,
            ActError::StopOld { .. }
            | ActError::Start { .. }
            | ActError::NotReady { .. }
            | ActError::Pod(_) => "",
        }
    }

    /// The error as reported at the pod's document (status `lastError`).
    pub fn at(&self, pod: &DesiredPod) -> ManifestError {
        error_at(pod, self.field(), chain(self))
    }
}

/// What came of one action.
#[derive(Debug)]
pub enum Outcome {
    /// A pod was started for the desired spec.
    Started {
        uuid: String,
        restart: bool,
    },
    /// Creating or replacing failed; the key backs off.
    Failed {
        error: ActError,
    },
    Removed {
        uuid: String,
    },
    Stopped {
        uuid: String,
    },
    /// Removing or stopping failed; tried again next pass.
    RemoveFailed {
        uuid: String,
        error: ActError,
    },
}

/// What the reconcile loop needs from the host: run a job's work, list the manifest
/// pods, check a pod's networks, stop a pod, reap the stage1 processes it started.
/// [`Executor`] is the real one; the loop's unit tests use a fake.
pub trait Execute: Send + Sync + 'static {
    /// Run one job's actions in order (on a worker thread).
    fn run(&self, job: &Job) -> Vec<Outcome>;
    /// Every pod directory with a manifest identity.
    fn observe(&self) -> Result<Vec<SeenPod>, PodError>;
    /// A CNI CHECK of a running pod's networks.
    fn check_network(&self, uuid: &str) -> Result<(), String>;
    /// Stop a running pod without removing it (`--stop-pods-on-exit`).
    fn stop_pod(&self, uuid: &str) -> Result<(), ActError>;
    /// The stage1 processes this process started that exited: `(uuid, exit code)`.
    fn reap(&self) -> Vec<(String, Option<i32>)>;
    /// Whether stage1 processes this process started are still running.
    fn has_children(&self) -> bool;
}

/// Stage1 children this process started, reaped as they exit.
#[derive(Debug, Default, Clone)]
pub struct Children(Arc<Mutex<Vec<(String, Child)>>>);

impl Children {
    fn add(&self, uuid: String, child: Child) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((uuid, child));
    }

    /// Reap the children that exited; returns `(uuid, exit code)` of each.
    pub fn reap(&self) -> Vec<(String, Option<i32>)> {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut done = Vec::new();
        list.retain_mut(|(uuid, child)| match child.try_wait() {
            Ok(Some(status)) => {
                done.push((uuid.clone(), status.code()));
                false
            }
            Ok(None) => true,
            Err(_) => false,
        });
        done
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Fetch progress goes to the log, not to a terminal.
#[derive(Debug, Default)]
pub struct LogProgress;

impl Progress for LogProgress {
    fn start(&self, what: &str, total: Option<u64>) {
        tracing::debug!(what, total, "fetching");
    }
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
    fn message(&self, msg: &str) {
        tracing::info!("{msg}");
    }
}

/// Everything needed to act on pods.
pub struct Executor {
    pub store: Store,
    pub keystore: Keystore,
    pub pods: Pods,
    pub stage1: PathBuf,
    pub map: MapContext,
    pub local_config: PathBuf,
    pub system_config: PathBuf,
    pub cni_path: Option<CniPath>,
    pub children: Children,
}

/// The networks a desired pod asks for.
pub fn net_mode(pod: &DesiredPod) -> NetMode {
    if pod.host_network {
        NetMode::Host
    } else if pod.networks.is_empty() {
        NetMode::None
    } else {
        NetMode::Cni(pod.networks.iter().map(|n| NetArg::named(n)).collect())
    }
}

impl Execute for Executor {
    fn run(&self, job: &Job) -> Vec<Outcome> {
        Executor::run(self, job)
    }
    fn observe(&self) -> Result<Vec<SeenPod>, PodError> {
        observe::observe_pods(&self.pods)
    }
    fn check_network(&self, uuid: &str) -> Result<(), String> {
        let dir = self.pods.running_dir(uuid);
        self.pods
            .network()
            .check(&dir)
            .map_err(|e| chain(e.as_ref()))
    }
    fn stop_pod(&self, uuid: &str) -> Result<(), ActError> {
        Executor::stop_pod(self, uuid)
    }
    fn reap(&self) -> Vec<(String, Option<i32>)> {
        self.children.reap()
    }
    fn has_children(&self) -> bool {
        !self.children.is_empty()
    }
}

impl Executor {
    /// Run one job's actions in order. A failed creation stops the job (the key backs
    /// off); a failed removal is reported and the job goes on.
    pub fn run(&self, job: &Job) -> Vec<Outcome> {
        let span = tracing::info_span!(
            "reconcile",
            pod = %job.key,
            file = job.pod.as_ref().map(|p| p.file.as_str()).unwrap_or("")
        );
        let _enter = span.enter();
        let mut out = Vec::new();
        for action in &job.actions {
            match action {
                Work::Remove { uuid, reason, .. } => {
                    tracing::info!(uuid = %uuid, ?reason, "removing pod");
                    out.push(match self.remove(uuid) {
                        Ok(()) => Outcome::Removed { uuid: uuid.clone() },
                        Err(e) => Outcome::RemoveFailed {
                            uuid: uuid.clone(),
                            error: e,
                        },
                    });
                }
                Work::Stop { uuid, reason, .. } => {
                    tracing::warn!(uuid = %uuid, reason = %reason, "stopping a broken pod");
                    out.push(match self.stop_pod(uuid) {
                        Ok(()) => Outcome::Stopped { uuid: uuid.clone() },
                        Err(e) => Outcome::RemoveFailed {
                            uuid: uuid.clone(),
                            error: e,
                        },
                    });
                }
                Work::Create { restart, .. } => {
                    let Some(pod) = &job.pod else { continue };
                    match self.create(pod) {
                        Ok(uuid) => out.push(Outcome::Started {
                            uuid,
                            restart: *restart,
                        }),
                        Err(error) => {
                            out.push(Outcome::Failed { error });
                            break;
                        }
                    }
                }
                Work::Replace { old, strategy, .. } => {
                    let Some(pod) = &job.pod else { continue };
                    out.extend(self.replace(pod, old, *strategy));
                }
            }
        }
        out
    }

    fn replace(&self, pod: &DesiredPod, old: &str, strategy: ReplaceStrategy) -> Vec<Outcome> {
        let mut out = Vec::new();
        match strategy {
            ReplaceStrategy::StopFirst => {
                tracing::info!(old = %old, "spec changed: stopping the old pod first");
                if let Err(e) = self.remove(old) {
                    out.push(Outcome::Failed {
                        error: ActError::StopOld {
                            old: old.to_string(),
                            source: Box::new(e),
                        },
                    });
                    return out;
                }
                out.push(Outcome::Removed {
                    uuid: old.to_string(),
                });
                out.push(match self.create(pod) {
                    Ok(uuid) => Outcome::Started {
                        uuid,
                        restart: false,
                    },
                    Err(error) => Outcome::Failed { error },
                });
            }
            ReplaceStrategy::StartFirst => {
                tracing::info!(old = %old, "spec changed: starting the new pod first");
                let uuid = match self.create(pod) {
                    Ok(u) => u,
                    Err(error) => {
                        out.push(Outcome::Failed { error });
                        return out;
                    }
                };
                if let Err(reason) = self.wait_ready(&uuid) {
                    out.push(Outcome::Failed {
                        error: ActError::NotReady {
                            uuid,
                            old: old.to_string(),
                            reason,
                        },
                    });
                    return out;
                }
                tracing::info!(new = %uuid, old = %old, "the new pod is ready: stopping the old pod");
                out.push(Outcome::Started {
                    uuid,
                    restart: false,
                });
                out.push(match self.remove(old) {
                    Ok(()) => Outcome::Removed {
                        uuid: old.to_string(),
                    },
                    Err(error) => Outcome::RemoveFailed {
                        uuid: old.to_string(),
                        error,
                    },
                });
            }
        }
        out
    }

    /// Wait until every app of the pod started and the apps with readiness probes are
    /// ready (`apps/<app>/ready`).
    fn wait_ready(&self, uuid: &str) -> Result<(), String> {
        let deadline = std::time::Instant::now() + START_FIRST_READY_TIMEOUT;
        let pod = self.pods.resolve(uuid).map_err(|e| chain(&e))?;
        self.pods
            .wait_ready(&pod, Some(START_FIRST_READY_TIMEOUT))
            .map_err(|e| chain(&e))?;
        loop {
            let info = self.pods.info(&pod).map_err(|e| chain(&e))?;
            let seen = super::observe::seen(&info);
            if !info.state.is_running() {
                return Err(format!("it is {}", info.state));
            }
            if seen.as_ref().is_none_or(|s| s.ready) {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err("its readiness probes did not pass in time".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Prepare and start a pod for `pod`; returns its UUID.
    pub fn create(&self, pod: &DesiredPod) -> Result<String, ActError> {
        mapping::prepare_host_paths(pod).map_err(|source| ActError::HostPath {
            field: source.field(pod),
            source,
        })?;
        let mapped = mapping::to_request(pod, &self.map).map_err(|source| ActError::Spec {
            field: source.field(pod),
            source,
        })?;
        let (prepared, _) = launch::prepare(
            &self.store,
            &self.keystore,
            &self.pods,
            &LogProgress,
            &mapped.request,
        )
        .map_err(|source| ActError::Prepare {
            field: prepare_error_field(pod, &source),
            source,
        })?;
        let mut hook = PodNetworking::new(NetOptions {
            mode: net_mode(pod),
            local_config: self.local_config.clone(),
            system_config: self.system_config.clone(),
            cni_path: self.cni_path.clone(),
        });
        match self.pods.spawn_prepared_with(
            &prepared.uuid,
            &self.stage1,
            &Stage1Stdio::Null,
            &mut hook,
        ) {
            Ok(child) => {
                tracing::info!(uuid = %prepared.uuid, pid = child.id(), "pod started");
                self.children.add(prepared.uuid.clone(), child);
                Ok(prepared.uuid)
            }
            Err(source) => Err(ActError::Start {
                uuid: prepared.uuid.clone(),
                source: Box::new(source),
                cleanup: self
                    .pods
                    .remove(&prepared, &self.stage1)
                    .err()
                    .map(Box::new),
            }),
        }
    }

    /// Stop a running pod (SIGTERM, SIGKILL after its grace period) without removing it.
    pub fn stop_pod(&self, uuid: &str) -> Result<(), ActError> {
        let pod = match self.pods.resolve(uuid) {
            Ok(p) => p,
            Err(PodError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        self.stop_and_wait(&pod)
    }

    fn stop_and_wait(&self, pod: &Pod) -> Result<(), ActError> {
        if !pod.state.is_running() {
            return Ok(());
        }
        let grace = self
            .pods
            .info(pod)
            .ok()
            .and_then(|i| i.runtime.map(|r| r.stop_grace_period_secs))
            .unwrap_or(10);
        // A pod started a moment ago may not have written its pid yet.
        let deadline = std::time::Instant::now() + PID_WAIT;
        loop {
            match self.pods.stop(pod, false) {
                Ok(()) => break,
                Err(PodError::NoPid { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(PodError::WrongState { .. }) | Err(PodError::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        let timeout = Duration::from_secs(grace) + STOP_SLACK;
        match self.pods.wait(pod, Some(timeout)) {
            Ok(_) | Err(PodError::NotFound { .. }) => Ok(()),
            Err(PodError::WaitTimeout { .. }) => {
                tracing::warn!(uuid = %pod.uuid, "pod did not stop in its grace period: killing it");
                match self.pods.stop(pod, true) {
                    Ok(()) | Err(PodError::WrongState { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                self.pods
                    .wait(pod, Some(STOP_SLACK))
                    .map(|_| ())
                    .map_err(ActError::from)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Stop the pod if it runs, then delete it (`rkt stop` + `rkt rm`). A pod that is
    /// gone already is fine.
    pub fn remove(&self, uuid: &str) -> Result<(), ActError> {
        let pod = match self.pods.resolve(uuid) {
            Ok(p) => p,
            Err(PodError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        self.stop_and_wait(&pod)?;
        match self.pods.remove(&pod, &self.stage1) {
            Ok(removal) => {
                if !removal.detached_mounts.is_empty() {
                    tracing::warn!(uuid = %uuid, mounts = ?removal.detached_mounts, "detached leftover mounts");
                }
                Ok(())
            }
            Err(PodError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The manifest field a prepare error is about (the container's image for fetch errors).
fn prepare_error_field(pod: &DesiredPod, e: &PrepareError) -> String {
    let image = match e {
        PrepareError::Fetch { image, .. } | PrepareError::Render { image, .. } => image,
        _ => return String::new(),
    };
    let find = |list: &[super::k8s::DesiredContainer], what: &str| {
        list.iter()
            .position(|c| &c.image == image)
            .map(|i| format!("spec.{what}[{i}].image"))
    };
    find(&pod.init_containers, "initContainers")
        .or_else(|| find(&pod.containers, "containers"))
        .unwrap_or_default()
}

/// Where the stage1 binary is (as `rkt run` finds it).
pub fn stage1_path(explicit: Option<&Path>) -> PathBuf {
    launch::find_stage1(explicit)
}

#[cfg(test)]
mod tests;
