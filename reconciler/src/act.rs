//! Executing the plan's work actions through the code paths of the CLI:
//! [`launch::prepare_with`] (fetch with `rkt fetch`'s trust rules, render, prepare, as
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
use super::mapping::{self, error_at, MapContext};
use super::plan::Action;
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
    pub actions: Vec<Action>,
}

/// What came of one action.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A pod was started for the desired spec.
    Started {
        uuid: String,
        restart: bool,
    },
    /// Creating or replacing failed; the key backs off.
    Failed {
        error: ManifestError,
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
        error: String,
    },
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
                Action::Remove { uuid, reason, .. } => {
                    tracing::info!(uuid = %uuid, ?reason, "removing pod");
                    out.push(match self.remove(uuid) {
                        Ok(()) => Outcome::Removed { uuid: uuid.clone() },
                        Err(e) => Outcome::RemoveFailed {
                            uuid: uuid.clone(),
                            error: e,
                        },
                    });
                }
                Action::Stop { uuid, reason, .. } => {
                    tracing::warn!(uuid = %uuid, reason = %reason, "stopping a broken pod");
                    out.push(match self.stop_pod(uuid) {
                        Ok(()) => Outcome::Stopped { uuid: uuid.clone() },
                        Err(e) => Outcome::RemoveFailed {
                            uuid: uuid.clone(),
                            error: e,
                        },
                    });
                }
                Action::Create { restart, .. } => {
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
                Action::Replace { old, strategy, .. } => {
                    let Some(pod) = &job.pod else { continue };
                    out.extend(self.replace(pod, old, *strategy));
                }
                Action::Adopt { .. }
                | Action::BackOff { .. }
                | Action::ResetBackOff { .. }
                | Action::Finish { .. }
                | Action::Wait { .. } => {}
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
                        error: error_at(pod, "", format!("cannot stop the old pod {old}: {e}")),
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
                if let Err(e) = self.wait_ready(&uuid) {
                    out.push(Outcome::Failed {
                        error: error_at(
                            pod,
                            "",
                            format!("the new pod {uuid} did not become ready: {e}; the old pod {old} keeps running"),
                        ),
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
    pub fn create(&self, pod: &DesiredPod) -> Result<String, ManifestError> {
        mapping::prepare_host_paths(pod).map_err(|e| error_at(pod, &e.field(pod), chain(&e)))?;
        let mapped = mapping::to_request(pod, &self.map)
            .map_err(|e| error_at(pod, &e.field(pod), chain(&e)))?;
        let (prepared, _) = launch::prepare_with(
            &self.store,
            &self.keystore,
            &self.pods,
            &LogProgress,
            &mapped.request,
            &|rt| mapped.adjust.apply(rt),
        )
        .map_err(|e| error_at(pod, &prepare_error_field(pod, &e), chain(&e)))?;
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
            Err(e) => {
                let mut msg = format!("cannot start pod {}: {}", prepared.uuid, chain(&e));
                if let Err(cleanup) = self.pods.remove(&prepared, &self.stage1) {
                    msg.push_str(&format!(" (and removing it failed: {})", chain(&cleanup)));
                }
                Err(error_at(pod, "", msg))
            }
        }
    }

    /// Stop a running pod (SIGTERM, SIGKILL after its grace period) without removing it.
    pub fn stop_pod(&self, uuid: &str) -> Result<(), String> {
        let pod = match self.pods.resolve(uuid) {
            Ok(p) => p,
            Err(PodError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(chain(&e)),
        };
        self.stop_and_wait(&pod)
    }

    fn stop_and_wait(&self, pod: &Pod) -> Result<(), String> {
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
                Err(e) => return Err(chain(&e)),
            }
        }
        let timeout = Duration::from_secs(grace) + STOP_SLACK;
        match self.pods.wait(pod, Some(timeout)) {
            Ok(_) | Err(PodError::NotFound { .. }) => Ok(()),
            Err(PodError::WaitTimeout { .. }) => {
                tracing::warn!(uuid = %pod.uuid, "pod did not stop in its grace period: killing it");
                match self.pods.stop(pod, true) {
                    Ok(()) | Err(PodError::WrongState { .. }) => {}
                    Err(e) => return Err(chain(&e)),
                }
                self.pods
                    .wait(pod, Some(STOP_SLACK))
                    .map(|_| ())
                    .map_err(|e| chain(&e))
            }
            Err(e) => Err(chain(&e)),
        }
    }

    /// Stop the pod if it runs, then delete it (`rkt stop` + `rkt rm`). A pod that is
    /// gone already is fine.
    pub fn remove(&self, uuid: &str) -> Result<(), String> {
        let pod = match self.pods.resolve(uuid) {
            Ok(p) => p,
            Err(PodError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(chain(&e)),
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
            Err(e) => Err(chain(&e)),
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
