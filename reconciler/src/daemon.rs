//! The reconcile loop: passes triggered by inotify (debounced), by finished work, by
//! back-off timers and by a periodic full resync; bounded worker threads execute the
//! plan, one job per pod key at a time.
//!
//! All state lives on disk (`status::State`), so the loop can be killed at any moment
//! (`kill -9` included) and a new one re-adopts running pods.
//!
//! The loop ([`Loop`]) is generic over what it acts with ([`Execute`]), the time
//! ([`Clock`]) and where its events come from ([`Events`]), so debounce, coalescing,
//! the busy set, back-off timing, `--once` and shutdown are unit-tested with fakes
//! (`daemon/tests.rs`). [`Reconciler`] is the real one: the [`Executor`], the system
//! clock, and a channel fed by inotify, signals and the workers.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use rustix::fs::FlockOperation;

use super::act::{Execute, Executor, Job, Outcome};
use super::k8s::{DesiredPod, ManifestError, PodKey};
use super::notify::Notifier;
use super::observe::{self, DesiredView, LastGood, NetChecks, Permissions, SeenPod};
use super::plan::{plan, BackoffPolicy, History, Observed};
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
    /// `--strict`: a manifest pod with warnings (ignored fields) is an error, and its
    /// file is handled as an invalid file.
    pub strict: bool,
    /// This host's name and labels: pods placed on other hosts are not run here.
    pub node: manifests::k8s::Node,
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

/// What wakes the loop.
#[derive(Debug)]
pub enum Event {
    /// Something in the pods dir changed.
    Fs,
    /// `SIGHUP` asks for a pass now; `SIGTERM` and `SIGINT` stop the loop.
    Signal(i32),
    /// A job finished.
    Done {
        key: PodKey,
        pod: Option<Box<DesiredPod>>,
        outcomes: Vec<Outcome>,
    },
}

/// The loop's time: [`SystemClock`], or a simulated one in tests.
pub trait Clock {
    /// For timers (debounce, resync, the watchdog, network checks).
    fn now(&self) -> Instant;
    /// For bookkeeping (back-off times, the status).
    fn wall(&self) -> SystemTime;
    /// Let `d` pass.
    fn sleep(&self, d: Duration);
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep(&self, d: Duration) {
        thread::sleep(d);
    }
}

/// Where the loop waits: the next [`Event`], or `Err(Timeout)` after `timeout` by the
/// loop's clock, or `Err(Disconnected)` when no event can come any more (the loop
/// ends). `in_flight` jobs were handed to the workers and have not reported yet (a
/// simulated source lets no time pass before their [`Event::Done`]).
pub trait Events {
    fn next(&mut self, timeout: Duration, in_flight: usize) -> Result<Event, RecvTimeoutError>;
}

/// The real event source: a channel fed by the workers, the pods dir watch and the
/// signal thread.
#[derive(Debug)]
pub struct ChannelEvents(pub Receiver<Event>);

impl Events for ChannelEvents {
    fn next(&mut self, timeout: Duration, _in_flight: usize) -> Result<Event, RecvTimeoutError> {
        self.0.recv_timeout(timeout)
    }
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

/// The real reconciler: the [`Executor`], the system clock, and events from inotify,
/// signals and the workers.
pub struct Reconciler {
    inner: Loop<Executor, SystemClock, ChannelEvents>,
    tx: Sender<Event>,
}

impl Reconciler {
    /// Take the data dir's reconcile lock and load the state a previous run left.
    pub fn new(opts: Options, exec: Executor) -> Result<Reconciler, DaemonError> {
        let (tx, rx) = mpsc::channel();
        let inner = Loop::new(
            opts,
            exec,
            SystemClock,
            ChannelEvents(rx),
            tx.clone(),
            Notifier::from_env(),
        )?;
        Ok(Reconciler { inner, tx })
    }

    /// Run until SIGTERM/SIGINT (or, with `once`, for one pass).
    pub fn run(self) -> Result<Summary, DaemonError> {
        start_signals(self.tx.clone())?;
        let _watcher = if self.inner.opts.once {
            None
        } else {
            let tx = self.tx.clone();
            let watcher = super::watch::Watcher::spawn(&self.inner.opts.pods_dir, move || {
                let _ = tx.send(Event::Fs);
            })
            .map_err(|source| DaemonError::Watch {
                path: self.inner.opts.pods_dir.clone(),
                source,
            })?;
            Some(watcher)
        };
        drop(self.tx);
        self.inner.run()
    }
}

fn start_signals(tx: Sender<Event>) -> Result<(), DaemonError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(DaemonError::Signals)?;
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

/// The work queue: jobs for the worker threads, and the keys with a job in flight
/// (one job per key at a time).
struct WorkQueue {
    /// Where workers report (`Event::Done`).
    done: Sender<Event>,
    jobs: Option<Sender<Job>>,
    workers: Vec<thread::JoinHandle<()>>,
    busy: BTreeSet<PodKey>,
}

impl WorkQueue {
    fn new(done: Sender<Event>) -> WorkQueue {
        WorkQueue {
            done,
            jobs: None,
            workers: Vec::new(),
            busy: BTreeSet::new(),
        }
    }

    fn start<X: Execute>(&mut self, exec: &Arc<X>, workers: usize) -> Result<(), DaemonError> {
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        for i in 0..workers.max(1) {
            let rx = job_rx.clone();
            let tx = self.done.clone();
            let exec = exec.clone();
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
                        key: job.key,
                        pod: job.pod.map(Box::new),
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

    /// Hand a job to the workers; its key is busy until [`Self::finished`].
    fn dispatch(&mut self, job: Job) {
        let Some(jobs) = &self.jobs else { return };
        let key = job.key.clone();
        if jobs.send(job).is_ok() {
            self.busy.insert(key);
        }
    }

    fn finished(&mut self, key: &PodKey) {
        self.busy.remove(key);
    }

    /// No more jobs: the workers end once they finish theirs.
    fn close(&mut self) {
        self.jobs = None;
    }
}

/// The loop's memory: what `state.json` keeps (back-off, restarts, last good
/// manifests) and the last status written.
struct Memory {
    history: BTreeMap<PodKey, History>,
    last_good: LastGood,
    /// The last state written, so an unchanged one is not written again.
    saved: State,
    /// The pods of the last status (transition times; kept when a pass cannot read).
    previous: Vec<PodStatus>,
}

impl Memory {
    fn load(data_dir: &std::path::Path) -> Memory {
        let state = status::read_state(data_dir).unwrap_or_else(|e| {
            tracing::warn!(error = %manifests::error::chain(&e), "ignoring an unreadable reconcile state");
            State::default()
        });
        let previous = status::read_status(data_dir)
            .ok()
            .flatten()
            .map(|s| s.pods)
            .unwrap_or_default();
        Memory {
            history: state.history(),
            last_good: state.last_good.clone(),
            saved: state,
            previous,
        }
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

    /// Write `state.json` if it changed.
    fn save(&mut self, data_dir: &std::path::Path) {
        let mut state = State::default();
        state.set_history(&self.history);
        state.last_good = self.last_good.clone();
        state.version = STATUS_VERSION;
        if state != self.saved {
            match status::write_state(data_dir, &state) {
                Ok(()) => self.saved = state,
                Err(e) => {
                    tracing::error!(error = %manifests::error::chain(&e), "cannot write the reconcile state")
                }
            }
        }
    }
}

/// The error policy for a failed creation or replacement: the key backs off
/// (`History::failed`) whatever the error. A retryable error
/// ([`super::act::ActError::is_permanent`]
/// false: a network or registry failure, a key not yet trusted, a host path) may pass
/// next time; a permanent one (an invalid spec) cannot before the manifest changes,
/// and a changed manifest has a new spec hash, which starts a new history and so
/// retries at once. Returns when to try again.
fn back_off(
    h: &mut History,
    error: ManifestError,
    policy: &BackoffPolicy,
    now: SystemTime,
) -> Option<SystemTime> {
    h.failed(error, policy, now);
    h.retry_at
}

/// The reconcile loop over an executor `X`, a clock `C` and an event source `E`.
pub struct Loop<X: Execute, C: Clock, E: Events> {
    opts: Options,
    exec: Arc<X>,
    clock: C,
    events: E,
    queue: WorkQueue,
    memory: Memory,
    /// Rate-limited CNI CHECKs of running pods (observe).
    net: NetChecks,
    /// Who can write what decides what runs as root (observe).
    perms: Permissions,
    notifier: Notifier,
    /// The earliest back-off that runs out.
    wake_at: Option<SystemTime>,
    _lock: LoopLock,
}

impl<X: Execute, C: Clock, E: Events> Loop<X, C, E> {
    /// Take the data dir's reconcile lock and load the state a previous run left.
    /// Workers report to `done`, which must feed `events`.
    pub fn new(
        opts: Options,
        exec: X,
        clock: C,
        events: E,
        done: Sender<Event>,
        notifier: Notifier,
    ) -> Result<Self, DaemonError> {
        let lock = LoopLock::take(&opts.data_dir, opts.lock_timeout)?;
        Ok(Loop {
            memory: Memory::load(&opts.data_dir),
            net: NetChecks::new(opts.net_check),
            perms: Permissions::new(opts.guarded.clone()),
            opts,
            exec: Arc::new(exec),
            clock,
            events,
            queue: WorkQueue::new(done),
            notifier,
            wake_at: None,
            _lock: lock,
        })
    }

    /// Run until SIGTERM/SIGINT, or until no event can come any more (or, with
    /// `once`, for one pass).
    pub fn run(mut self) -> Result<Summary, DaemonError> {
        self.queue.start(&self.exec, self.opts.workers)?;
        if self.opts.once {
            self.pass(true);
            let interrupted = self.wait_idle(None);
            self.pass(false);
            // The pods it started are spawned; give their stage1 a moment to start
            // their apps, so the status says Running rather than "starting".
            let deadline = self.clock.now() + ONCE_START_WAIT;
            while !interrupted && self.clock.now() < deadline && self.starting() {
                self.clock.sleep(Duration::from_millis(50));
                self.pass(false);
            }
            if interrupted && self.opts.stop_pods_on_exit {
                self.stop_pods();
            }
            return Ok(self.finish());
        }
        self.pass(true);
        self.notifier.send("READY=1");
        let debounce = self.opts.debounce;
        let mut pass_at: Option<Instant> = None;
        let mut first_event: Option<Instant> = None;
        let mut next_resync = self.clock.now() + self.opts.resync;
        let watchdog = self.notifier.watchdog_interval();
        let mut next_watchdog = watchdog.map(|w| self.clock.now() + w);
        loop {
            let now = self.clock.now();
            let mut deadline = next_resync;
            if let Some(p) = pass_at {
                deadline = deadline.min(p);
            }
            if let Some(w) = self.wake_at {
                let left = w.duration_since(self.clock.wall()).unwrap_or_default();
                deadline = deadline.min(now + left);
            }
            if let Some(w) = next_watchdog {
                deadline = deadline.min(w);
            }
            if self.exec.has_children() {
                deadline = deadline.min(now + REAP_TICK);
            }
            match self.events.next(
                deadline.saturating_duration_since(now),
                self.queue.busy.len(),
            ) {
                Ok(Event::Fs) => {
                    let t = self.clock.now();
                    let first = *first_event.get_or_insert(t);
                    pass_at = Some((t + debounce).min(first + debounce * 5));
                }
                Ok(Event::Done { key, pod, outcomes }) => {
                    self.record_outcomes(&key, pod.as_deref(), outcomes);
                    let t = self.clock.now() + debounce;
                    pass_at = Some(pass_at.map_or(t, |p| p.min(t)));
                }
                Ok(Event::Signal(sig)) if sig == signal_hook::consts::SIGHUP => {
                    pass_at = Some(self.clock.now());
                }
                Ok(Event::Signal(sig)) => {
                    tracing::info!(signal = sig, "stopping the reconcile loop");
                    break;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            for (uuid, code) in self.exec.reap() {
                tracing::info!(uuid = %uuid, exit = ?code, "stage1 exited");
                let t = self.clock.now() + debounce;
                pass_at = Some(pass_at.map_or(t, |p| p.min(t)));
            }
            let now = self.clock.now();
            let woke = self.wake_at.is_some_and(|w| w <= self.clock.wall());
            if pass_at.is_some_and(|p| p <= now) || now >= next_resync || woke {
                pass_at = None;
                first_event = None;
                self.pass(true);
                next_resync = self.clock.now() + self.opts.resync;
            }
            if let (Some(w), Some(every)) = (next_watchdog, watchdog) {
                if self.clock.now() >= w {
                    self.notifier.send("WATCHDOG=1");
                    next_watchdog = Some(self.clock.now() + every);
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
        let deadline = limit.map(|l| self.clock.now() + l);
        let mut interrupted = false;
        while !self.queue.busy.is_empty() {
            let left = match deadline {
                Some(d) => match d.checked_duration_since(self.clock.now()) {
                    Some(l) if !l.is_zero() => l,
                    _ => {
                        tracing::warn!(pods = self.queue.busy.len(), "leaving work unfinished");
                        break;
                    }
                },
                None => Duration::from_secs(3600),
            };
            match self.events.next(left, self.queue.busy.len()) {
                Ok(Event::Done { key, pod, outcomes }) => {
                    self.record_outcomes(&key, pod.as_deref(), outcomes)
                }
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
        self.memory
            .previous
            .iter()
            .any(|p| p.phase == Phase::Pending && p.message.as_deref() == Some(status::STARTING))
    }

    fn finish(mut self) -> Summary {
        self.queue.close();
        let previous = &self.memory.previous;
        let problems = previous
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
            pods: previous.len(),
            problems: problems + files,
        }
    }

    /// Stop every running manifest pod (`--stop-pods-on-exit`).
    fn stop_pods(&self) {
        let seen = match self.exec.observe() {
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
                        tracing::error!(pod = %s.pod.key, uuid = %s.pod.uuid, error = %manifests::error::chain(&e), "cannot stop pod");
                    }
                });
            }
        });
    }

    fn record_outcomes(&mut self, key: &PodKey, pod: Option<&DesiredPod>, outcomes: Vec<Outcome>) {
        self.queue.finished(key);
        let hash = pod.map(|p| p.spec_hash.as_str());
        let backoff = self.opts.backoff;
        for outcome in outcomes {
            match outcome {
                Outcome::Started { uuid, restart } => {
                    tracing::info!(pod = %key, uuid = %uuid, restart, "pod running");
                    self.memory.hist_mut(key, hash).started(&uuid, restart);
                }
                Outcome::Failed { error } => {
                    // The error policy: log once, here, and back off.
                    let permanent = error.is_permanent();
                    let at = match pod {
                        Some(pod) => error.at(pod),
                        None => ManifestError {
                            file: String::new(),
                            line: None,
                            column: None,
                            field: error.field().to_string(),
                            message: error.to_string(),
                        },
                    };
                    let now = self.clock.wall();
                    let retry = back_off(self.memory.hist_mut(key, hash), at, &backoff, now);
                    tracing::warn!(pod = %key, error = %manifests::error::chain(&error), permanent, retry_at = ?retry.map(super::time::format), "pod action failed");
                    self.wake_at = min_time(self.wake_at, retry);
                }
                Outcome::RemoveFailed { uuid, error } => {
                    tracing::warn!(pod = %key, uuid = %uuid, error = %manifests::error::chain(&error), "cannot remove pod; will try again");
                    let file = self
                        .memory
                        .previous
                        .iter()
                        .find(|p| p.key == key.to_string())
                        .map(|p| p.file.clone())
                        .unwrap_or_default();
                    self.memory.hist_mut(key, hash).last_error = Some(ManifestError {
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
        let now = self.clock.wall();
        let mut scan = observe::scan_dir(&self.opts.pods_dir);
        if self.opts.strict {
            scan.files
                .iter_mut()
                .for_each(observe::ManifestFile::make_strict);
        }
        self.perms.check();
        let warnings = self.perms.warnings();
        if self.opts.strict_permissions && !warnings.is_empty() && scan.error.is_none() {
            scan.error = Some(format!(
                "refusing to act (--strict-permissions): {}",
                warnings.join("; ")
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
        let mut view = observe::build_desired(&scan, &mut self.memory.last_good);
        view.desired.node = self.opts.node.clone();
        let mut seen = match self.exec.observe() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %manifests::error::chain(&e), "cannot list pods");
                let msg = format!("cannot list pods: {}", manifests::error::chain(&e));
                self.write_status(&scan, &view, Vec::new(), Some(msg), now);
                return;
            }
        };
        if act {
            let exec = &self.exec;
            let clock = &self.clock;
            self.net
                .check(&mut seen, &self.queue.busy, &|| clock.now(), &|uuid| {
                    exec.check_network(uuid)
                });
        }
        for (file, errors) in &view.file_errors {
            for e in errors {
                tracing::debug!(file = %file, error = %e, "manifest error");
            }
        }
        let observed = Observed {
            pods: seen,
            history: self.memory.history.clone(),
            busy: self.queue.busy.clone(),
        };
        let phases = if act {
            let plan = plan(&view.desired, &observed, &self.opts.backoff, now);
            self.wake_at = plan.wake_at();
            for record in &plan.records {
                let key = record.key();
                tracing::info!(pod = %key, action = ?record, "recorded");
                let hash = view.desired.pods.get(key).map(|w| w.pod.spec_hash.clone());
                self.memory.hist_mut(key, hash.as_deref()).record(record);
            }
            let mut jobs: BTreeMap<PodKey, Vec<_>> = BTreeMap::new();
            for work in plan.work {
                jobs.entry(work.key().clone()).or_default().push(work);
            }
            for (key, actions) in jobs {
                self.queue.dispatch(Job {
                    pod: view.desired.pods.get(&key).map(|w| w.pod.clone()),
                    key,
                    actions,
                });
            }
            plan.phases
        } else {
            super::plan::phases(&view.desired, &observed, now)
        };
        let seen = observed.pods;
        let busy = &self.queue.busy;
        self.memory.history.retain(|k, _| {
            view.desired.pods.contains_key(k)
                || seen.iter().any(|s| &s.pod.key == k)
                || busy.contains(k)
        });
        let pods = derive_pods(&Inputs {
            view: &view,
            seen: &seen,
            phases: &phases,
            history: &self.memory.history,
            previous: &self.memory.previous,
            now,
        });
        self.write_status(&scan, &view, pods, None, now);
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
            self.memory.previous.clone()
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
            warnings: self.perms.warnings().to_vec(),
            files: derive_files(view),
            pods,
        };
        if let Err(e) = status::write_status(&self.opts.data_dir, &file) {
            tracing::error!(error = %manifests::error::chain(&e), "cannot write the status");
        }
        self.memory.previous = file.pods;
        self.memory.save(&self.opts.data_dir);
        self.notifier.send(&format!(
            "STATUS={running} of {} pods running, {problems} with errors",
            self.memory.previous.len()
        ));
    }
}

/// How long `--once` waits for the pods it started to start their apps.
const ONCE_START_WAIT: Duration = Duration::from_secs(10);

fn min_time(a: Option<SystemTime>, b: Option<SystemTime>) -> Option<SystemTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
