//! The reconciler's decisions: a pure function from what the manifests ask for, what
//! the pod directories show and the bookkeeping of earlier passes to a [`Plan`]: the
//! work to do ([`Work`]), the bookkeeping to record ([`Record`]) and each key's phase
//! ([`KeyStatus`], which the status only formats). No I/O, no clock: `now` is a
//! parameter, so every transition is table-tested (`plan/tests.rs`).
//!
//! Level-triggered: every call looks at the whole desired set and the whole observed
//! set. A pod is removed because it is not desired, never because "a delete event
//! arrived".

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::k8s::{DesiredPod, ManifestError, Node, PodKey, ReplaceStrategy, RestartPolicy};
use stage0::pod::dir::PodState;

/// CrashLoopBackOff timing: the delay before the n-th consecutive restart is
/// `initial * 2^(n-1)`, at most `max`; a pod that ran `reset` without exiting starts
/// over at `initial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub reset: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset: Duration::from_secs(600),
        }
    }
}

impl BackoffPolicy {
    /// The wait before retrying after `failures` consecutive failures (at least 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(30);
        self.initial
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// What the manifests ask for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    /// One entry per `namespace/name` (duplicates already resolved: first file wins).
    pub pods: BTreeMap<PodKey, Wanted>,
    /// Manifest files that exist but have errors. Pods started from one of them
    /// (annotation `rkt.io/source`) are kept as they are, never removed.
    pub invalid_files: BTreeSet<String>,
    /// This host: pods whose placement (`nodeName`, `nodeSelector`, required node
    /// affinity) does not match it are not run here ([`Phase::NotForThisHost`]).
    pub node: Node,
}

/// One desired pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub pod: DesiredPod,
    /// The file is invalid now and this is the last good version of the pod.
    pub stale: bool,
}

/// A pod directory that belongs to a manifest, with what the status shows about it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenPod {
    pub pod: ObservedPod,
    /// Running, stage1 started every app, and every app with a readiness probe is
    /// ready (`apps/<app>/ready`).
    pub ready: bool,
    /// Running, and stage1 has started every app once (its `ready` file): until then
    /// the pod is still starting (networks attached, init apps running).
    pub started: bool,
    /// Whether any app has a readiness probe.
    pub has_readiness: bool,
    /// In-place restarts of its apps by stage1.
    pub app_restarts: u32,
    /// Exited pods: the apps' exits, e.g. `web=0 side=137`.
    pub exits: String,
    /// Running pods: apps stage1 is about to restart in place after their back-off
    /// (`apps/<app>/waiting`), with the time of the restart when known.
    pub waiting: Vec<(String, Option<String>)>,
}

/// The phase of a manifest pod (Kubernetes' names, plus `Invalid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Wanted, not running yet (being created, or creating it failed: see the error).
    Pending,
    Running,
    /// Finished with success; the restart policy does not restart it.
    Succeeded,
    /// Finished with a failure; the restart policy does not restart it.
    Failed,
    /// Exited or disappeared; restarted after the back-off.
    CrashLoopBackOff,
    /// Its manifest file is invalid and nothing of it runs.
    Invalid,
    /// Its `nodeName`, `nodeSelector` or required node affinity does not match this
    /// host: it runs elsewhere (not an error).
    NotForThisHost,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::CrashLoopBackOff => "CrashLoopBackOff",
            Phase::Invalid => "Invalid",
            Phase::NotForThisHost => "NotForThisHost",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the pod directories and the reconciler's own records show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Pods that carry a `rkt.io/pod-key` annotation (other pods are not ours).
    pub pods: Vec<SeenPod>,
    /// Bookkeeping of earlier passes, per pod key.
    pub history: BTreeMap<PodKey, History>,
    /// Keys with work in flight: nothing is planned for them.
    pub busy: BTreeSet<PodKey>,
}

/// One pod directory that belongs to a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedPod {
    pub uuid: String,
    pub key: PodKey,
    /// The manifest file it was started from (`rkt.io/source`).
    pub source: String,
    /// `rkt.io/spec-hash`.
    pub spec_hash: String,
    pub state: PodState,
    pub created_at: Option<SystemTime>,
    /// When its stage1 started (running pods).
    pub started_at: Option<SystemTime>,
    /// Exited pods: every app reported exit code 0.
    pub succeeded: bool,
    /// Running pods: why the pod cannot work any more (network namespace gone, CNI
    /// CHECK failing); such a pod is stopped and handled like any other exit.
    pub problem: Option<String>,
}

impl ObservedPod {
    fn is_running(&self) -> bool {
        self.state.is_running()
    }
    /// Exited after running: its exit tells whether to restart.
    fn is_dead(&self) -> bool {
        matches!(self.state, PodState::Exited | PodState::ExitedGarbage)
    }
    /// Someone is creating or deleting it right now: leave it alone.
    fn is_busy(&self) -> bool {
        matches!(
            self.state,
            PodState::Embryo | PodState::Preparing | PodState::Deleting
        )
    }
}

/// The reconciler's memory of one pod key, kept on disk between passes (and runs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// The spec this history is about; a new spec starts a new history.
    pub spec_hash: String,
    /// The pod last started or adopted for this spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Pods recreated after an exit or a disappearance.
    #[serde(default)]
    pub restarts: u32,
    /// Consecutive failures (exits or failed creations) since the last reset.
    #[serde(default)]
    pub failures: u32,
    /// No new pod before this time.
    #[serde(
        default,
        with = "super::time::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_at: Option<SystemTime>,
    /// The pod whose exit (or disappearance) the back-off is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_uuid: Option<String>,
    /// The pod finished and its restart policy keeps it so: `Some(succeeded)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<bool>,
    /// The last error of an action for this key (cleared by a success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<ManifestError>,
}

impl History {
    pub fn new(spec_hash: &str) -> History {
        History {
            spec_hash: spec_hash.to_string(),
            ..History::default()
        }
    }

    /// Whether a back-off is running at `now`.
    pub fn backing_off(&self, now: SystemTime) -> Option<SystemTime> {
        self.retry_at.filter(|t| *t > now)
    }

    /// Record a bookkeeping action of [`plan`] (work is recorded by its outcome:
    /// [`Self::started`] and [`Self::failed`]).
    pub fn record(&mut self, record: &Record) {
        match record {
            Record::Adopt { uuid, .. } => {
                self.uuid = Some(uuid.clone());
                self.finished = None;
            }
            Record::BackOff {
                failed,
                failures,
                until,
                ..
            } => {
                self.failed_uuid = Some(failed.clone());
                self.failures = *failures;
                self.retry_at = Some(*until);
            }
            Record::ResetBackOff { .. } => {
                self.failures = 0;
                self.retry_at = None;
            }
            Record::Finish { succeeded, .. } => {
                self.finished = Some(*succeeded);
                self.retry_at = None;
            }
        }
    }

    /// A pod `uuid` was started for this spec; `restart` counts it as a restart.
    pub fn started(&mut self, uuid: &str, restart: bool) {
        self.uuid = Some(uuid.to_string());
        if restart {
            self.restarts = self.restarts.saturating_add(1);
        }
        self.finished = None;
        self.retry_at = None;
        self.last_error = None;
    }

    /// Creating (or replacing) the pod failed at `now`: remember why and back off.
    pub fn failed(&mut self, error: ManifestError, policy: &BackoffPolicy, now: SystemTime) {
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + policy.delay(self.failures));
        self.last_error = Some(error);
    }
}

/// Why a pod is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveReason {
    /// No manifest asks for its key any more.
    NotDesired,
    /// Another pod of the same key is the one kept.
    Duplicate,
    /// A pod of an older spec (or an older run) that no longer runs.
    Leftover,
    /// Its manifest now places it on another host.
    NotForThisHost,
}

/// Work: an action that touches pods, executed by a worker (`act`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Prepare and start a pod for the key. `restart`: it replaces a pod that exited or
    /// disappeared (counts as a restart).
    Create { key: PodKey, restart: bool },
    /// The spec changed: start a pod of the new spec and stop and remove `old`, in the
    /// order the strategy says.
    Replace {
        key: PodKey,
        old: String,
        strategy: ReplaceStrategy,
    },
    /// Stop the pod if it runs, then delete it.
    Remove {
        key: PodKey,
        uuid: String,
        reason: RemoveReason,
    },
    /// Stop a running pod that cannot work any more; its exit is handled next pass.
    Stop {
        key: PodKey,
        uuid: String,
        reason: String,
    },
}

impl Work {
    pub fn key(&self) -> &PodKey {
        match self {
            Work::Create { key, .. }
            | Work::Replace { key, .. }
            | Work::Remove { key, .. }
            | Work::Stop { key, .. } => key,
        }
    }
}

/// Bookkeeping: a change of the key's [`History`] (and so of its status) that touches
/// no pod, recorded by the loop as it plans ([`History::record`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Record `uuid` as the key's pod (a running pod found on disk, e.g. after a restart
    /// of the reconciler).
    Adopt { key: PodKey, uuid: String },
    /// The key's pod exited (or vanished): no new pod before `until`.
    BackOff {
        key: PodKey,
        failed: String,
        failures: u32,
        until: SystemTime,
    },
    /// The pod has run long enough: the back-off starts over.
    ResetBackOff { key: PodKey },
    /// The pod finished and its restart policy does not restart it.
    Finish { key: PodKey, succeeded: bool },
}

impl Record {
    pub fn key(&self) -> &PodKey {
        match self {
            Record::Adopt { key, .. }
            | Record::BackOff { key, .. }
            | Record::ResetBackOff { key }
            | Record::Finish { key, .. } => key,
        }
    }
}

/// One decision of the plan, in the order it was made: work, bookkeeping, or nothing
/// to do for the key before `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Work(Work),
    Record(Record),
    Wait { key: PodKey, until: SystemTime },
}

impl Step {
    pub fn key(&self) -> &PodKey {
        match self {
            Step::Work(w) => w.key(),
            Step::Record(r) => r.key(),
            Step::Wait { key, .. } => key,
        }
    }
}

/// The message of a pod whose directory is in `run/` but whose apps stage1 has not
/// all started yet.
pub const STARTING: &str = "starting the pod";

/// What the status shows of one key: its phase, why, and the pod it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyStatus {
    pub phase: Phase,
    /// More about the phase for people ("back-off 20s", "replacing ...").
    pub message: Option<String>,
    /// The pod: the running one, else the last one started for the key.
    pub uuid: Option<String>,
    /// Pods recreated plus in-place app restarts of the running pod.
    pub restarts: u32,
    /// Running and ready (every app started; readiness probes passing).
    pub ready: bool,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Work for the workers, for each key in the order it is to be executed.
    pub work: Vec<Work>,
    /// Bookkeeping to record now.
    pub records: Vec<Record>,
    /// Keys with nothing to do before a time (a back-off): when to look again.
    pub waits: BTreeMap<PodKey, SystemTime>,
    /// Each key's status once the records are recorded and the work is handed out:
    /// the desired keys, and keys kept from invalid files ([`phases`]).
    pub phases: BTreeMap<PodKey, KeyStatus>,
}

impl Plan {
    /// The earliest time a key waits for.
    pub fn wake_at(&self) -> Option<SystemTime> {
        self.waits.values().min().copied()
    }
}

/// The history of `key` as it applies to `hash`: a history of another spec counts as
/// none.
pub fn history_for(observed: &Observed, key: &PodKey, hash: &str) -> History {
    match observed.history.get(key) {
        Some(h) if h.spec_hash == hash => h.clone(),
        _ => History::new(hash),
    }
}

/// Newest first (creation time, then UUID for a stable order).
fn newest_first(pods: &mut [&ObservedPod]) {
    pods.sort_by(|a, b| (b.created_at, &b.uuid).cmp(&(a.created_at, &a.uuid)));
}

/// Decide what to do. Keys in `observed.busy` (work in flight) are left out: their
/// pods are changing under the worker.
pub fn plan(
    desired: &Desired,
    observed: &Observed,
    backoff: &BackoffPolicy,
    now: SystemTime,
) -> Plan {
    let mut plan = Plan::default();
    for step in decide(desired, observed, backoff, now) {
        if observed.busy.contains(step.key()) {
            continue;
        }
        match step {
            Step::Work(w) => plan.work.push(w),
            Step::Record(r) => plan.records.push(r),
            Step::Wait { key, until } => {
                let t = plan.waits.entry(key).or_insert(until);
                *t = (*t).min(until);
            }
        }
    }
    // The status is the one the loop leaves behind: bookkeeping recorded, work in
    // flight.
    let mut after = Observed {
        pods: observed.pods.clone(),
        history: observed.history.clone(),
        busy: observed.busy.clone(),
    };
    for r in &plan.records {
        let key = r.key();
        let hash = desired.pods.get(key).map(|w| w.pod.spec_hash.as_str());
        let h = after
            .history
            .entry(key.clone())
            .or_insert_with(|| History::new(hash.unwrap_or_default()));
        if let Some(hash) = hash {
            if h.spec_hash != hash {
                *h = History::new(hash);
            }
        }
        h.record(r);
    }
    after.busy.extend(plan.work.iter().map(|w| w.key().clone()));
    plan.phases = phases(desired, &after, now);
    plan
}

fn newest<'a>(pods: impl Iterator<Item = &'a SeenPod>) -> Option<&'a SeenPod> {
    pods.max_by(|a, b| (a.pod.created_at, &a.pod.uuid).cmp(&(b.pod.created_at, &b.pod.uuid)))
}

/// The status of every manifest pod as `observed` stands (a pass that acts takes
/// [`Plan::phases`], which come from here after its own records and work): the
/// desired keys, and the keys whose pods are kept from invalid files.
pub fn phases(
    desired: &Desired,
    observed: &Observed,
    now: SystemTime,
) -> BTreeMap<PodKey, KeyStatus> {
    let mut out = BTreeMap::new();
    for (key, wanted) in &desired.pods {
        let hash = wanted.pod.spec_hash.as_str();
        let h = history_for(observed, key, hash);
        let busy = observed.busy.contains(key);
        let mine: Vec<&SeenPod> = observed.pods.iter().filter(|s| &s.pod.key == key).collect();
        if let Some(why) = wanted.pod.placement.mismatch(&desired.node) {
            let message = if mine.is_empty() && !busy {
                why
            } else {
                format!("{why}; removing its pod from this host")
            };
            out.insert(
                key.clone(),
                KeyStatus {
                    phase: Phase::NotForThisHost,
                    message: Some(message),
                    uuid: None,
                    restarts: 0,
                    ready: false,
                },
            );
            continue;
        }
        let standing = standing(&mine, hash);
        let dead = newest(
            mine.iter()
                .copied()
                .filter(|s| !s.pod.state.is_running() && s.pod.spec_hash == hash),
        );
        let mut st = KeyStatus {
            phase: Phase::Pending,
            message: None,
            uuid: h.uuid.clone(),
            restarts: h.restarts,
            ready: false,
        };
        if let Standing::Runs(run) = standing {
            st.phase = Phase::Running;
            st.uuid = Some(run.pod.uuid.clone());
            st.ready = run.ready;
            st.restarts = h.restarts.saturating_add(run.app_restarts);
            if !run.waiting.is_empty() {
                // stage1 restarts an app in place after its back-off.
                st.phase = Phase::CrashLoopBackOff;
                let apps: Vec<String> = run
                    .waiting
                    .iter()
                    .map(|(app, until)| match until {
                        Some(t) => format!("{app} (restarting at {t})"),
                        None => app.clone(),
                    })
                    .collect();
                st.message = Some(format!("back-off: stage1 restarts {}", apps.join(", ")));
            } else if wanted.stale {
                st.message =
                    Some("the manifest is invalid; the last good version keeps running".into());
            } else if !run.started {
                // Its directory is in run/ from the moment its networks are being
                // attached; it runs once stage1 has started its apps.
                st.phase = Phase::Pending;
                st.message = Some(STARTING.into());
            }
        } else if let Standing::RunsOld(old) = standing {
            st.phase = Phase::Running;
            st.uuid = Some(old.pod.uuid.clone());
            st.ready = old.ready;
            st.message = Some(match h.backing_off(now) {
                Some(t) => format!(
                    "the spec changed; replacing failed, next attempt at {}",
                    super::time::format(t)
                ),
                None => "the spec changed; replacing the pod".to_string(),
            });
        } else if let Some(succeeded) = h.finished {
            st.phase = if succeeded {
                Phase::Succeeded
            } else {
                Phase::Failed
            };
            st.message = dead.map(|d| format!("exits: {}", d.exits));
        } else if wanted.stale && !busy {
            st.phase = Phase::Invalid;
        } else if let (Some(t), Some(_)) = (h.backing_off(now), &h.failed_uuid) {
            st.phase = Phase::CrashLoopBackOff;
            let mut msg = format!(
                "back-off: restarting at {} (failure {})",
                super::time::format(t),
                h.failures
            );
            if let Some(d) = dead {
                msg.push_str(&format!("; exits: {}", d.exits));
            }
            st.message = Some(msg);
        } else if busy {
            st.message = Some("creating the pod".into());
        } else if let Some(t) = h.backing_off(now) {
            st.message = Some(format!("retrying at {}", super::time::format(t)));
        }
        out.insert(key.clone(), st);
    }
    // Pods kept from invalid files without a last good version.
    let mut held: BTreeMap<&PodKey, Vec<&SeenPod>> = BTreeMap::new();
    for s in &observed.pods {
        if !desired.pods.contains_key(&s.pod.key) && desired.invalid_files.contains(&s.pod.source) {
            held.entry(&s.pod.key).or_default().push(s);
        }
    }
    for (key, pods) in held {
        let Some(pod) = newest(pods.iter().copied().filter(|s| s.pod.state.is_running()))
            .or_else(|| newest(pods.iter().copied()))
        else {
            continue;
        };
        let running = pod.pod.state.is_running();
        out.insert(
            key.clone(),
            KeyStatus {
                phase: if running {
                    Phase::Running
                } else {
                    Phase::Invalid
                },
                message: Some("the manifest is invalid; the pod is kept as it is".into()),
                uuid: Some(pod.pod.uuid.clone()),
                restarts: pod.app_restarts,
                ready: pod.ready,
            },
        );
    }
    out
}

/// The decisions for every key, in order. Steps for one key come in the order they
/// are to be executed.
pub fn decide(
    desired: &Desired,
    observed: &Observed,
    backoff: &BackoffPolicy,
    now: SystemTime,
) -> Vec<Step> {
    let mut by_key: BTreeMap<&PodKey, Vec<&SeenPod>> = BTreeMap::new();
    for seen in &observed.pods {
        by_key.entry(&seen.pod.key).or_default().push(seen);
    }
    let mut actions = Vec::new();
    for (key, wanted) in &desired.pods {
        let seen = by_key.remove(key).unwrap_or_default();
        if wanted.pod.placement.mismatch(&desired.node).is_some() {
            // For another host: whatever of it runs here goes.
            let mut pods: Vec<&ObservedPod> = seen.iter().map(|s| &s.pod).collect();
            newest_first(&mut pods);
            for p in pods.iter().filter(|p| !p.is_busy()) {
                actions.push(Step::Work(Work::Remove {
                    key: key.clone(),
                    uuid: p.uuid.clone(),
                    reason: RemoveReason::NotForThisHost,
                }));
            }
            continue;
        }
        plan_wanted(key, wanted, &seen, observed, backoff, now, &mut actions);
    }
    // Keys no manifest asks for.
    for (key, seen) in by_key {
        let pods: Vec<&ObservedPod> = seen.iter().map(|s| &s.pod).collect();
        let held = pods
            .iter()
            .any(|p| desired.invalid_files.contains(&p.source));
        if held {
            // Its file is invalid: keep the last good version running.
            continue;
        }
        let mut pods = pods;
        newest_first(&mut pods);
        for p in pods.iter().filter(|p| !p.is_busy()) {
            actions.push(Step::Work(Work::Remove {
                key: key.clone(),
                uuid: p.uuid.clone(),
                reason: RemoveReason::NotDesired,
            }));
        }
    }
    actions
}

/// Remove every pod of `key` but those in `keep` (and busy ones).
fn remove_all(key: &PodKey, pods: &[&ObservedPod], hash: &str, keep: &[&str], out: &mut Vec<Step>) {
    for p in pods {
        if p.is_busy() || keep.contains(&p.uuid.as_str()) {
            continue;
        }
        let reason = if p.is_running() && p.spec_hash == hash {
            RemoveReason::Duplicate
        } else {
            RemoveReason::Leftover
        };
        out.push(Step::Work(Work::Remove {
            key: key.clone(),
            uuid: p.uuid.clone(),
            reason,
        }));
    }
}

/// Where a desired key stands: the classification both the plan's decisions
/// ([`decide`]) and the status's phases ([`phases`]) start from.
enum Standing<'a> {
    /// A pod of the current spec runs (the newest such).
    Runs(&'a SeenPod),
    /// Only pods of older specs run (the newest of them).
    RunsOld(&'a SeenPod),
    /// No pod of the key runs.
    Down,
}

/// Where the key whose pods are `seen` stands, for spec `hash`.
fn standing<'a>(seen: &[&'a SeenPod], hash: &str) -> Standing<'a> {
    let running = || seen.iter().copied().filter(|s| s.pod.is_running());
    if let Some(run) = newest(running().filter(|s| s.pod.spec_hash == hash)) {
        Standing::Runs(run)
    } else if let Some(old) = newest(running()) {
        Standing::RunsOld(old)
    } else {
        Standing::Down
    }
}

fn plan_wanted(
    key: &PodKey,
    wanted: &Wanted,
    seen: &[&SeenPod],
    observed: &Observed,
    backoff: &BackoffPolicy,
    now: SystemTime,
    out: &mut Vec<Step>,
) {
    let hash = wanted.pod.spec_hash.as_str();
    let h = history_for(observed, key, hash);
    let mut pods: Vec<&ObservedPod> = seen.iter().map(|s| &s.pod).collect();
    newest_first(&mut pods);
    let current = |p: &&&ObservedPod| p.spec_hash == hash;
    let standing = standing(seen, hash);

    // 1. A pod of the current spec runs: keep it, drop the rest.
    if let Standing::Runs(run) = standing {
        let run = &run.pod;
        if h.uuid.as_deref() != Some(run.uuid.as_str()) {
            out.push(Step::Record(Record::Adopt {
                key: key.clone(),
                uuid: run.uuid.clone(),
            }));
        }
        remove_all(key, &pods, hash, &[&run.uuid], out);
        if let Some(problem) = &run.problem {
            out.push(Step::Work(Work::Stop {
                key: key.clone(),
                uuid: run.uuid.clone(),
                reason: problem.clone(),
            }));
        } else if h.failures > 0 {
            let since = run.started_at.or(run.created_at);
            if since.is_some_and(|t| now.duration_since(t).unwrap_or_default() >= backoff.reset) {
                out.push(Step::Record(Record::ResetBackOff { key: key.clone() }));
            }
        }
        return;
    }

    // 2. A pod of an older spec runs: replace it (after any back-off of failed
    //    attempts of the new spec).
    if let Standing::RunsOld(old) = standing {
        let old = &old.pod;
        remove_all(key, &pods, hash, &[&old.uuid], out);
        if let Some(until) = h.backing_off(now) {
            out.push(Step::Wait {
                key: key.clone(),
                until,
            });
            return;
        }
        out.push(Step::Work(Work::Replace {
            key: key.clone(),
            old: old.uuid.clone(),
            strategy: wanted.pod.replace,
        }));
        return;
    }

    // 3. Nothing runs.
    // A dead pod that never started (no pid) and that we never recorded as started is
    // a leftover of an interrupted start, not a crash.
    let dead = pods
        .iter()
        .filter(current)
        .find(|p| {
            p.is_dead() && (p.started_at.is_some() || h.uuid.as_deref() == Some(p.uuid.as_str()))
        })
        .copied();
    if h.finished.is_some() {
        // Finished for good under its policy: keep the last pod (for logs), nothing else.
        let keep: Vec<&str> = dead.iter().map(|d| d.uuid.as_str()).collect();
        remove_all(key, &pods, hash, &keep, out);
        return;
    }
    // An exit (or a disappearance) not yet accounted for?
    let exited: Option<(String, bool, Option<SystemTime>)> = match dead {
        Some(d) if h.failed_uuid.as_deref() != Some(d.uuid.as_str()) => {
            Some((d.uuid.clone(), d.succeeded, d.started_at.or(d.created_at)))
        }
        None => match &h.uuid {
            // We started it, it is gone, and its end was never seen (removed by hand,
            // collected by gc): a failure with an unknown exit.
            Some(u) if h.failed_uuid.as_ref() != Some(u) => Some((u.clone(), false, None)),
            _ => None,
        },
        _ => None,
    };
    if let Some((uuid, succeeded, started)) = exited {
        let restart = match wanted.pod.restart_policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !succeeded,
            RestartPolicy::Never => false,
        };
        if !restart {
            let keep: Vec<&str> = dead.iter().map(|d| d.uuid.as_str()).collect();
            remove_all(key, &pods, hash, &keep, out);
            out.push(Step::Record(Record::Finish {
                key: key.clone(),
                succeeded,
            }));
            return;
        }
        let ran_long =
            started.is_some_and(|t| now.duration_since(t).unwrap_or_default() >= backoff.reset);
        let failures = if ran_long { 1 } else { h.failures + 1 };
        let until = now + backoff.delay(failures);
        let keep: Vec<&str> = dead.iter().map(|d| d.uuid.as_str()).collect();
        remove_all(key, &pods, hash, &keep, out);
        out.push(Step::Record(Record::BackOff {
            key: key.clone(),
            failed: uuid,
            failures,
            until,
        }));
        out.push(Step::Wait {
            key: key.clone(),
            until,
        });
        return;
    }

    if let Some(until) = h.backing_off(now) {
        // Keep the dead pod (logs) while backing off; drop anything else.
        let keep: Vec<&str> = dead.iter().map(|d| d.uuid.as_str()).collect();
        remove_all(key, &pods, hash, &keep, out);
        out.push(Step::Wait {
            key: key.clone(),
            until,
        });
        return;
    }
    // Due: clear every leftover (dead pods, a prepared pod a crash left), then create.
    remove_all(key, &pods, hash, &[], out);
    out.push(Step::Work(Work::Create {
        key: key.clone(),
        restart: h.failed_uuid.is_some(),
    }));
}

#[cfg(test)]
mod tests;
