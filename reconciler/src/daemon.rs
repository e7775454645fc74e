//! The reconcile loop: passes triggered by inotify (debounced), by finished work, by
//! back-off timers and by a periodic full resync; bounded worker threads execute the
//! plan, one job per pod key at a time.
//!
//! All state lives on disk (`status::State`), so the loop can be killed at any moment
//! (`kill -9` included) and a new one re-adopts running pods.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use rustix::fs::FlockOperation;

use super::act::{Executor, Job, Outcome};
use super::k8s::{ManifestError, PodKey};
use super::notify::Notifier;
use super::observe::{self, DesiredView, LastGood, SeenPod};
use super::plan::{plan, Action, BackoffPolicy, History, Observed};
use super::status::{
    self, derive_files, derive_pods, Inputs, Phase, PodStatus, State, StatusError, StatusFile,
    LOCK_FILE, STATUS_VERSION,
};

/// How long in-flight work may finish after SIGTERM before the loop exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often exited stage1 children are looked for.
const REAP_TICK: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct Options {
    /// `--dir`: where pods, the image store and `reconcile/` live.
    pub data_dir: PathBuf,
    /// The directory of Pod manifests (may be a symlink).
    pub pods_dir: PathBuf,
    /// Full pass at least this often.
    pub resync: Duration,
    /// Quiet time after a file event before the pass.
    pub debounce: Duration,
    /// One pass, wait for its work, write the status, exit.
    pub once: bool,
    pub backoff: BackoffPolicy,
    /// Stop the manifest pods when the loop ends (default: leave them running).
    pub stop_pods_on_exit: bool,
    /// Pod operations run in parallel.
    pub workers: usize,
    /// How long to wait for another reconciler on the same data dir to exit.
    pub lock_timeout: Duration,
    /// CNI CHECK of each running pod's networks at most this often (zero: never).
    pub net_check: Duration,
    /// Directories whose write access is root on this host (pods dir, trust and
    /// network configuration dirs), checked each pass (`stage0::perms`).
    pub guarded: Vec<(PathBuf, &'static str)>,
    /// Refuse to act while any of them can be written by others than root.
    pub strict_permissions: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("another rkt reconcile (pid {pid}) is running on {}; one per data directory", dir.display())]
    Locked { dir: PathBuf, pid: String },
    #[error("cannot lock {}", path.display())]
    Lock { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error("cannot watch {}", path.display())]
    Watch { path: PathBuf, source: io::Error },
    #[error("cannot handle signals: {0}")]
    Signals(io::Error),
    #[error("cannot start worker threads: {0}")]
    Threads(io::Error),
}

/// How the loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Manifest pods in the last status.
    pub pods: usize,
    /// Pods with an error or a failed phase, plus files with errors.
    pub problems: usize,
}

enum Event {
    /// Something in the pods dir changed.
    Fs,
    Signal(i32),
    /// A job finished.
    Done {
        key: PodKey,
        hash: Option<String>,
        outcomes: Vec<Outcome>,
    },
}

/// The exclusive lock that makes this the only reconciler of a data dir.
#[derive(Debug)]
pub struct LoopLock {
    _file: File,
}

impl LoopLock {
    pub fn take(data_dir: &std::path::Path, wait: Duration) -> Result<LoopLock, DaemonError> {
        let dir = status::state_dir(data_dir);
        std::fs::create_dir_all(&dir).map_err(|source| DaemonError::Lock {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(LOCK_FILE);
        let lock_err = |source: io::Error| DaemonError::Lock {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(lock_err)?;
        // A reconciler that was just killed may still be exiting, or have a child
        // between fork and exec that holds a copy of the descriptor: wait a little
        // for the lock (as a restart by systemd would want) before giving up.
        let deadline = std::time::Instant::now() + wait;
        let mut said = false;
        loop {
            match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                    if !said {
                        tracing::info!(lock = %path.display(), "waiting for another rkt reconcile to exit");
                        said = true;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    let mut pid = String::new();
                    let _ = file.read_to_string(&mut pid);
                    return Err(DaemonError::Locked {
                        dir: data_dir.to_path_buf(),
                        pid: pid.trim().to_string(),
                    });
                }
                Err(e) => return Err(lock_err(e.into())),
            }
        }
        file.set_len(0).map_err(lock_err)?;
        file.rewind().map_err(lock_err)?;
        writeln!(file, "{}", std::process::id()).map_err(lock_err)?;
        Ok(LoopLock { _file: file })
    }
}

/// The loop's in-memory cache (rebuilt from disk at start).
pub struct Reconciler {
    opts: Options,
    exec: Arc<Executor>,
    history: BTreeMap<PodKey, History>,
    last_good: LastGood,
    busy: BTreeSet<PodKey>,
    previous: Vec<PodStatus>,
    saved_state: State,
    wake_at: Option<SystemTime>,
    /// When each running pod's networks are next due a CNI CHECK, by UUID.
    net_due: BTreeMap<String, Instant>,
    /// What the last permission check found (warned about once per change).
    perm_warnings: Vec<String>,
    notifier: Notifier,
    tx: Sender<Event>,
    rx: Receiver<Event>,
    jobs: Option<Sender<Job>>,
    workers: Vec<thread::JoinHandle<()>>,
    _lock: LoopLock,
}

impl Reconciler {
    /// Take the data dir's reconcile lock and load the state a previous run left.
    pub fn new(opts: Options, exec: Executor) -> Result<Reconciler, DaemonError> {
        let lock = LoopLock::take(&opts.data_dir, opts.lock_timeout)?;
        let state = status::read_state(&opts.data_dir).unwrap_or_else(|e| {
            tracing::warn!(error = %manifests::error::chain(&e), "ignoring an unreadable reconcile state");
            State::default()
        });
        let previous = status::read_status(&opts.data_dir)
            .ok()
            .flatten()
            .map(|s| s.pods)
            .unwrap_or_default();
        let (tx, rx) = mpsc::channel();
        Ok(Reconciler {
            history: state.history(),
            last_good: state.last_good.clone(),
            saved_state: state,
            opts,
            exec: Arc::new(exec),
            busy: BTreeSet::new(),
            previous,
            wake_at: None,
            net_due: BTreeMap::new(),
            perm_warnings: Vec::new(),
            notifier: Notifier::from_env(),
            tx,
            rx,
            jobs: None,
            workers: Vec::new(),
            _lock: lock,
        })
    }

    fn start_workers(&mut self) -> Result<(), DaemonError> {
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        for i in 0..self.opts.workers.max(1) {
            let rx = job_rx.clone();
            let tx = self.tx.clone();
            let exec = self.exec.clone();
            let handle = thread::Builder::new()
                .name(format!("reconcile-{i}"))
                .spawn(move || loop {
                    let job = {
                        let guard = rx.lock().unwrap_or_else(|e| e.into_inner());
                        guard.recv()
                    };
                    let Ok(job) = job else { break };
                    let outcomes = exec.run(&job);
                    let done = Event::Done {
                        key: job.key.clone(),
                        hash: job.pod.as_ref().map(|p| p.spec_hash.clone()),
                        outcomes,
                    };
                    if tx.send(done).is_err() {
                        break;
                    }
                })
                .map_err(DaemonError::Threads)?;
            self.workers.push(handle);
        }
        self.jobs = Some(job_tx);
        Ok(())
    }

    fn start_signals(&self) -> Result<(), DaemonError> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
            .map_err(DaemonError::Signals)?;
        let tx = self.tx.clone();
        thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if tx.send(Event::Signal(sig)).is_err() {
                        break;
                    }
                }
            })
            .map_err(DaemonError::Signals)?;
        Ok(())
    }

    /// Run until SIGTERM/SIGINT (or, with `once`, for one pass).
    pub fn run(mut self) -> Result<Summary, DaemonError> {
        self.start_workers()?;
        self.start_signals()?;
        if self.opts.once {
            self.pass(true);
            let interrupted = self.wait_idle(None);
            self.pass(false);
            // The pods it started are spawned; give their stage1 a moment to start
            // their apps, so the status says Running rather than "starting".
            let deadline = Instant::now() + ONCE_START_WAIT;
            while !interrupted && Instant::now() < deadline && self.starting() {
                thread::sleep(Duration::from_millis(50));
                self.pass(false);
            }
            if interrupted && self.opts.stop_pods_on_exit {
                self.stop_pods();
            }
            return Ok(self.finish());
        }
        let tx = self.tx.clone();
        let _watcher = super::watch::Watcher::spawn(&self.opts.pods_dir, move || {
            let _ = tx.send(Event::Fs);
        })
        .map_err(|source| DaemonError::Watch {
            path: self.opts.pods_dir.clone(),
            source,
        })?;
        self.pass(true);
        self.notifier.send("READY=1");
        let debounce = self.opts.debounce;
        let mut pass_at: Option<Instant> = None;
        let mut first_event: Option<Instant> = None;
        let mut next_resync = Instant::now() + self.opts.resync;
        let watchdog = self.notifier.watchdog_interval();
        let mut next_watchdog = watchdog.map(|w| Instant::now() + w);
        loop {
            let now = Instant::now();
            let mut deadline = next_resync;
            if let Some(p) = pass_at {
                deadline = deadline.min(p);
            }
            if let Some(w) = self.wake_at {
                let left = w.duration_since(SystemTime::now()).unwrap_or_default();
                deadline = deadline.min(now + left);
            }
            if let Some(w) = next_watchdog {
                deadline = deadline.min(w);
            }
            if !self.exec.children.is_empty() {
                deadline = deadline.min(now + REAP_TICK);
            }
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(now))
            {
                Ok(Event::Fs) => {
                    let t = Instant::now();
                    let first = *first_event.get_or_insert(t);
                    pass_at = Some((t + debounce).min(first + debounce * 5));
                }
                Ok(Event::Done {
                    key,
                    hash,
                    outcomes,
                }) => {
                    self.record_outcomes(&key, hash.as_deref(), outcomes);
                    let t = Instant::now() + debounce;
                    pass_at = Some(pass_at.map_or(t, |p| p.min(t)));
                }
                Ok(Event::Signal(sig)) if sig == signal_hook::consts::SIGHUP => {
                    pass_at = Some(Instant::now());
                }
                Ok(Event::Signal(sig)) => {
                    tracing::info!(signal = sig, "stopping the reconcile loop");
                    break;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            for (uuid, code) in self.exec.children.reap() {
                tracing::info!(uuid = %uuid, exit = ?code, "stage1 exited");
                let t = Instant::now() + debounce;
                pass_at = Some(pass_at.map_or(t, |p| p.min(t)));
            }
            let now = Instant::now();
            let woke = self.wake_at.is_some_and(|w| w <= SystemTime::now());
            if pass_at.is_some_and(|p| p <= now) || now >= next_resync || woke {
                pass_at = None;
                first_event = None;
                self.pass(true);
                next_resync = Instant::now() + self.opts.resync;
            }
            if let (Some(w), Some(every)) = (next_watchdog, watchdog) {
                if Instant::now() >= w {
                    self.notifier.send("WATCHDOG=1");
                    next_watchdog = Some(Instant::now() + every);
                }
            }
        }
        self.notifier.send("STOPPING=1");
        self.wait_idle(Some(SHUTDOWN_GRACE));
        if self.opts.stop_pods_on_exit {
            self.stop_pods();
        }
        self.pass(false);
        Ok(self.finish())
    }

    /// Wait for the jobs in flight (recording their outcomes); `true` if a signal
    /// asked to stop meanwhile.
    fn wait_idle(&mut self, limit: Option<Duration>) -> bool {
        let deadline = limit.map(|l| Instant::now() + l);
        let mut interrupted = false;
        while !self.busy.is_empty() {
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(l) => l,
                    None => {
                        tracing::warn!(pods = self.busy.len(), "leaving work unfinished");
                        break;
                    }
                },
                None => Duration::from_secs(3600),
            };
            match self.rx.recv_timeout(left) {
                Ok(Event::Done {
                    key,
                    hash,
                    outcomes,
                }) => self.record_outcomes(&key, hash.as_deref(), outcomes),
                Ok(Event::Signal(sig)) if sig != signal_hook::consts::SIGHUP => {
                    interrupted = true;
                    if deadline.is_none() {
                        break;
                    }
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        interrupted
    }

    /// Whether the last status has a pod that is still starting.
    fn starting(&self) -> bool {
        self.previous
            .iter()
            .any(|p| p.phase == Phase::Pending && p.message.as_deref() == Some(status::STARTING))
    }

    fn finish(mut self) -> Summary {
        self.jobs = None;
        let problems = self
            .previous
            .iter()
            .filter(|p| {
                p.last_error.is_some()
                    || matches!(
                        p.phase,
                        Phase::Failed | Phase::Invalid | Phase::CrashLoopBackOff
                    )
            })
            .count();
        let files = status::read_status(&self.opts.data_dir)
            .ok()
            .flatten()
            .map(|s| s.files.len() + usize::from(s.dir_error.is_some()))
            .unwrap_or(0);
        Summary {
            pods: self.previous.len(),
            problems: problems + files,
        }
    }

    /// Stop every running manifest pod (`--stop-pods-on-exit`).
    fn stop_pods(&self) {
        let seen = match observe::observe_pods(&self.exec.pods) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %manifests::error::chain(&e), "cannot list pods to stop them");
                return;
            }
        };
        let running: Vec<&SeenPod> = seen.iter().filter(|s| s.pod.state.is_running()).collect();
        tracing::info!(pods = running.len(), "stopping manifest pods");
        thread::scope(|scope| {
            for s in running {
                let exec = &self.exec;
                scope.spawn(move || {
                    if let Err(e) = exec.stop_pod(&s.pod.uuid) {
                        tracing::error!(pod = %s.pod.key, uuid = %s.pod.uuid, error = %e, "cannot stop pod");
                    }
                });
            }
        });
    }

    /// The history of `key`, started afresh when the spec changed.
    fn hist_mut(&mut self, key: &PodKey, hash: Option<&str>) -> &mut History {
        let h = self
            .history
            .entry(key.clone())
            .or_insert_with(|| History::new(hash.unwrap_or_default()));
        if let Some(hash) = hash {
            if h.spec_hash != hash {
                *h = History::new(hash);
            }
        }
        h
    }

    fn record_outcomes(&mut self, key: &PodKey, hash: Option<&str>, outcomes: Vec<Outcome>) {
        self.busy.remove(key);
        let backoff = self.opts.backoff;
        for outcome in outcomes {
            match outcome {
                Outcome::Started { uuid, restart } => {
                    tracing::info!(pod = %key, uuid = %uuid, restart, "pod running");
                    self.hist_mut(key, hash).started(&uuid, restart);
                }
                Outcome::Failed { error } => {
                    // The error policy: log once, here, and back off.
                    let now = SystemTime::now();
                    let h = self.hist_mut(key, hash);
                    h.failed(error.clone(), &backoff, now);
                    let retry = h.retry_at;
                    tracing::warn!(pod = %key, error = %error, retry_at = ?retry.map(super::time::format), "pod action failed");
                    self.wake_at = min_time(self.wake_at, retry);
                }
                Outcome::RemoveFailed { uuid, error } => {
                    tracing::warn!(pod = %key, uuid = %uuid, error = %error, "cannot remove pod; will try again");
                    let file = self
                        .previous
                        .iter()
                        .find(|p| p.key == key.to_string())
                        .map(|p| p.file.clone())
                        .unwrap_or_default();
                    self.hist_mut(key, hash).last_error = Some(ManifestError {
                        file,
                        line: None,
                        column: None,
                        field: String::new(),
                        message: format!("cannot remove pod {uuid}: {error}"),
                    });
                }
                Outcome::Removed { .. } | Outcome::Stopped { .. } => {}
            }
        }
    }

    /// One pass: read both sides, plan (with `act`), dispatch work, write the status.
    fn pass(&mut self, act: bool) {
        let now = SystemTime::now();
        let mut scan = observe::scan_dir(&self.opts.pods_dir);
        self.check_permissions();
        if self.opts.strict_permissions && !self.perm_warnings.is_empty() && scan.error.is_none() {
            scan.error = Some(format!(
                "refusing to act (--strict-permissions): {}",
                self.perm_warnings.join("; ")
            ));
        }
        if let Some(error) = &scan.error {
            tracing::error!(dir = %self.opts.pods_dir.display(), error = %error, "cannot read the pods dir; nothing changed");
            self.write_status(
                &scan,
                &DesiredView::default(),
                Vec::new(),
                Some(error.clone()),
                now,
            );
            return;
        }
        let view = observe::build_desired(&scan, &mut self.last_good);
        let mut seen = match observe::observe_pods(&self.exec.pods) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %manifests::error::chain(&e), "cannot list pods");
                let msg = format!("cannot list pods: {}", manifests::error::chain(&e));
                self.write_status(&scan, &view, Vec::new(), Some(msg), now);
                return;
            }
        };
        if act {
            self.check_networks(&mut seen);
        }
        for (file, errors) in &view.file_errors {
            for e in errors {
                tracing::debug!(file = %file, error = %e, "manifest error");
            }
        }
        if act {
            self.wake_at = None;
            let observed = Observed {
                pods: seen.iter().map(|s| s.pod.clone()).collect(),
                history: self.history.clone(),
            };
            let mut jobs: BTreeMap<PodKey, Vec<Action>> = BTreeMap::new();
            for action in plan(&view.desired, &observed, &self.opts.backoff, now) {
                let key = action.key().clone();
                if self.busy.contains(&key) {
                    continue;
                }
                if let Action::Wait { until, .. } | Action::BackOff { until, .. } = &action {
                    self.wake_at = min_time(self.wake_at, Some(*until));
                }
                if action.is_work() {
                    jobs.entry(key).or_default().push(action);
                } else {
                    if !matches!(action, Action::Wait { .. }) {
                        tracing::info!(pod = %key, action = ?action, "recorded");
                    }
                    let hash = view.desired.pods.get(&key).map(|w| w.pod.spec_hash.clone());
                    self.hist_mut(&key, hash.as_deref()).record(&action);
                }
            }
            for (key, actions) in jobs {
                let job = Job {
                    pod: view.desired.pods.get(&key).map(|w| w.pod.clone()),
                    key: key.clone(),
                    actions,
                };
                let Some(jobs) = &self.jobs else { break };
                if jobs.send(job).is_ok() {
                    self.busy.insert(key);
                }
            }
        }
        let busy = &self.busy;
        self.history.retain(|k, _| {
            view.desired.pods.contains_key(k)
                || seen.iter().any(|s| &s.pod.key == k)
                || busy.contains(k)
        });
        let observed = Observed {
            pods: seen.iter().map(|s| s.pod.clone()).collect(),
            history: self.history.clone(),
        };
        let pods = derive_pods(&Inputs {
            view: &view,
            seen: &seen,
            observed: &observed,
            busy: &self.busy,
            previous: &self.previous,
            now,
        });
        self.write_status(&scan, &view, pods, None, now);
    }

    /// Look at who can write the guarded directories; log what changed, loudly.
    fn check_permissions(&mut self) {
        let now: Vec<String> = stage0::perms::check_all(&self.opts.guarded)
            .iter()
            .map(ToString::to_string)
            .collect();
        if now != self.perm_warnings {
            for w in now.iter().filter(|w| !self.perm_warnings.contains(w)) {
                tracing::warn!("SECURITY: {w}");
            }
            self.perm_warnings = now;
        }
    }

    /// CNI CHECK of the running pods' networks: each pod at most once per
    /// `net_check` (its first check spread over that interval by its UUID, so pods
    /// adopted together are not all checked in one pass), and no more than
    /// [`NET_CHECK_BUDGET`] of plugin time per pass. A failed CHECK is the pod's
    /// problem: the plan replaces it, as for a deleted network namespace.
    fn check_networks(&mut self, seen: &mut [SeenPod]) {
        if self.opts.net_check.is_zero() {
            return;
        }
        let running: BTreeSet<&str> = seen
            .iter()
            .filter(|s| s.pod.state.is_running())
            .map(|s| s.pod.uuid.as_str())
            .collect();
        self.net_due
            .retain(|uuid, _| running.contains(uuid.as_str()));
        let started = Instant::now();
        let interval = self.opts.net_check;
        let search = self.exec.pods.teardown_cni_path();
        for s in seen.iter_mut() {
            if !s.pod.state.is_running()
                || s.pod.problem.is_some()
                || self.busy.contains(&s.pod.key)
            {
                continue;
            }
            let due = *self
                .net_due
                .entry(s.pod.uuid.clone())
                .or_insert_with(|| started + spread(&s.pod.uuid, interval));
            if due > started || started.elapsed() > NET_CHECK_BUDGET {
                continue;
            }
            let dir = self.exec.pods.running_dir(&s.pod.uuid);
            match stage0::pod::net::check_pod(&dir, &search) {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(pod = %s.pod.key, uuid = %s.pod.uuid, error = %manifests::error::chain(&e), "network check failed");
                    s.pod.problem = Some(format!(
                        "network check failed: {}",
                        manifests::error::chain(&e)
                    ));
                }
            }
            self.net_due
                .insert(s.pod.uuid.clone(), Instant::now() + interval);
        }
    }

    fn write_status(
        &mut self,
        scan: &observe::DirScan,
        view: &DesiredView,
        pods: Vec<PodStatus>,
        error: Option<String>,
        now: SystemTime,
    ) {
        // On a failed read keep the last known pods (they did not change as far as we know).
        let pods = if error.is_some() {
            self.previous.clone()
        } else {
            pods
        };
        let running = pods.iter().filter(|p| p.phase == Phase::Running).count();
        let problems =
            pods.iter().filter(|p| p.last_error.is_some()).count() + view.file_errors.len();
        let file = StatusFile {
            version: STATUS_VERSION,
            updated_at: now,
            pid: std::process::id(),
            pods_dir: self.opts.pods_dir.clone(),
            resolved_dir: scan.resolved.clone(),
            dir_error: error,
            warnings: self.perm_warnings.clone(),
            files: derive_files(view),
            pods,
        };
        if let Err(e) = status::write_status(&self.opts.data_dir, &file) {
            tracing::error!(error = %manifests::error::chain(&e), "cannot write the status");
        }
        self.previous = file.pods;
        let mut state = State::default();
        state.set_history(&self.history);
        state.last_good = self.last_good.clone();
        state.version = STATUS_VERSION;
        if state != self.saved_state {
            match status::write_state(&self.opts.data_dir, &state) {
                Ok(()) => self.saved_state = state,
                Err(e) => {
                    tracing::error!(error = %manifests::error::chain(&e), "cannot write the reconcile state")
                }
            }
        }
        self.notifier.send(&format!(
            "STATUS={running} of {} pods running, {problems} with errors",
            self.previous.len()
        ));
    }
}

/// How long `--once` waits for the pods it started to start their apps.
const ONCE_START_WAIT: Duration = Duration::from_secs(10);

/// Plugin time one pass may spend on CNI CHECKs; the rest wait for later passes.
const NET_CHECK_BUDGET: Duration = Duration::from_millis(500);

/// A fraction of `interval` chosen by `uuid`: when a pod first seen is first checked.
fn spread(uuid: &str, interval: Duration) -> Duration {
    let h = uuid
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    interval.mul_f64(f64::from(h % 1000) / 1000.0)
}

fn min_time(a: Option<SystemTime>, b: Option<SystemTime>) -> Option<SystemTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
