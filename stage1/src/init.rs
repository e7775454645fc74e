//! The pod's supervisor: PID 1 of the pod's PID namespace (default flavor) or
//! `stage1 run` itself (fly). It makes the apps' cgroups, runs the init apps one after
//! the other and then starts the other apps, each through `stage1 app-exec`, logs
//! their output, reaps every child (orphans included), writes each app's status when
//! it exits, restarts apps in place as their restart policy asks (with
//! CrashLoopBackOff delays), runs their liveness and readiness probes (`probe`), and
//! stops the pod on SIGTERM/SIGINT/SIGHUP.
//!
//! Everything happens on one thread, in one poll loop woken by signals (SIGCHLD
//! included), finished network probes and its own timers (restarts, probes, kills).

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use manifests::poddir::{self, AppStatus, Waiting};
use manifests::runtime::{Backoff, RestartPolicy, RuntimeApp, RuntimeConfig};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{kill_process, kill_process_group, Pid, Signal, WaitOptions, WaitStatus};

use crate::cgroups::{self, CgroupError, PodCgroups};
use crate::handshake::InitMessage;
use crate::logs::{self, LogError, LogFile, Passthrough, Pump, SharedLog};
use crate::podfiles;
use crate::probe::{ProbeError, Prober};

/// Signals that stop the pod.
pub const STOP_SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGHUP,
];
/// How long output readers may lag behind the apps' exit.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the final reap of strays may take.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] crate::podfiles::ConfigError),
    #[error("cannot set the parent death signal")]
    DeathSignal(#[source] io::Error),
    #[error("stage1 run exited before the pod started")]
    ParentGone,
    #[error("cannot set up signal handling")]
    Signals(#[source] io::Error),
    #[error("cannot set the hostname to {hostname:?}")]
    Hostname { hostname: String, source: io::Error },
    #[error("cannot write {path}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot remove {path}")]
    Remove { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    PodFiles(Box<crate::rootfs::RootfsError>),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("cannot start app {app}")]
    Spawn { app: String, source: io::Error },
    #[error("cannot wait for the apps")]
    Wait(#[source] io::Error),
    #[error("an interactive pod has exactly one app; this one has {0}")]
    InteractiveApps(usize),
    #[error(transparent)]
    Reaper(#[from] crate::reaper::ReaperError),
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), InitError> {
    podfiles::write_json(path, value).map_err(|source| InitError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), InitError> {
    podfiles::write(path, bytes).map_err(|source| InitError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Signals turned into events a poll loop can wait for: each registered signal sets a
/// flag and writes a byte to a socket (the self-pipe trick).
#[derive(Debug)]
pub struct SignalWatch {
    wake: UnixStream,
    flags: Vec<(i32, Arc<AtomicBool>)>,
    ids: Vec<signal_hook::SigId>,
}

impl SignalWatch {
    pub fn new(signals: &[i32]) -> io::Result<Self> {
        let (wake, notify) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        notify.set_nonblocking(true)?;
        let mut watch = SignalWatch {
            wake,
            flags: Vec::new(),
            ids: Vec::new(),
        };
        for &sig in signals {
            let flag = Arc::new(AtomicBool::new(false));
            // The flag first: a woken loop then always finds it set.
            watch
                .ids
                .push(signal_hook::flag::register(sig, Arc::clone(&flag))?);
            watch.ids.push(signal_hook::low_level::pipe::register(
                sig,
                notify.try_clone()?,
            )?);
            watch.flags.push((sig, flag));
        }
        Ok(watch)
    }

    /// Signals received since the last call, without waiting.
    pub fn take(&mut self) -> Vec<i32> {
        let mut buf = [0u8; 64];
        while matches!(self.wake.read(&mut buf), Ok(n) if n > 0) {}
        self.flags
            .iter()
            .filter(|(_, f)| f.swap(false, Ordering::SeqCst))
            .map(|(s, _)| *s)
            .collect()
    }

    /// Wait until a signal arrives, one of `extra` becomes readable (or hangs up), or
    /// `timeout` passes. Returns the signals received and, per `extra`, whether it is
    /// ready.
    pub fn wait(
        &mut self,
        timeout: Option<Duration>,
        extra: &[BorrowedFd<'_>],
    ) -> io::Result<(Vec<i32>, Vec<bool>)> {
        let timeout = timeout.map(|d| {
            Timespec::try_from(d).unwrap_or(Timespec {
                tv_sec: i64::MAX,
                tv_nsec: 0,
            })
        });
        let mut fds = Vec::with_capacity(1 + extra.len());
        fds.push(PollFd::from_borrowed_fd(self.wake.as_fd(), PollFlags::IN));
        for fd in extra {
            fds.push(PollFd::from_borrowed_fd(*fd, PollFlags::IN));
        }
        let ready = match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) => fds[1..].iter().map(|p| !p.revents().is_empty()).collect(),
            Err(Errno::INTR) => vec![false; extra.len()],
            Err(e) => return Err(e.into()),
        };
        Ok((self.take(), ready))
    }
}

impl Drop for SignalWatch {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// How the supervisor runs.
#[derive(Debug, Default)]
pub struct Options {
    /// Fly flavor: no PID namespace of our own (so never `kill(-1)`), no cgroups.
    pub fly: bool,
    /// Interactive pods: the pty's app side, the single app's stdin, stdout and stderr.
    pub pty_slave: Option<OwnedFd>,
    /// Fly + interactive: the relay between our stdio and the pty, served by the loop.
    pub relay: Option<crate::pty::Relay>,
    /// The pod's user namespace (inheritable): each app-exec joins it (`--userns-fd`).
    pub userns: Option<OwnedFd>,
}

/// Where an app is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not started yet: an init app waiting for its turn, or a regular app while the
    /// init apps run.
    Pending,
    Running {
        pid: Pid,
        since: Instant,
    },
    /// Exited; started again at `at` (CrashLoopBackOff).
    BackOff {
        at: Instant,
    },
    /// Exited and not to be restarted, or never to be started.
    Done,
}

/// One app: its current (or last) run and its restart history.
struct AppRun<'a> {
    app: &'a RuntimeApp,
    dir: PathBuf,
    cgroups: Vec<PathBuf>,
    memory: Option<PathBuf>,
    oom_baseline: Option<u64>,
    phase: Phase,
    /// Its process group (= the PID of its latest run), kept after it exits.
    pgid: Option<Pid>,
    started_at: SystemTime,
    /// Of the last exit.
    status: Option<AppStatus>,
    /// How many times it was started again after an exit.
    restarts: u32,
    /// The back-off before the next restart.
    next_delay: Duration,
    /// Its liveness probe failed: it was sent SIGTERM, SIGKILL follows at this time.
    liveness_kill: Option<Instant>,
    /// Its liveness probe failed during this run (the exit counts as a failure).
    liveness_failed: bool,
    /// Shared by every run's output readers.
    log: Option<SharedLog>,
    pumps: Vec<Pump>,
}

impl AppRun<'_> {
    fn pid(&self) -> Option<Pid> {
        match self.phase {
            Phase::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }
}

/// The status of an app that ended with `status`.
fn app_status(status: WaitStatus, oom_killed: bool, started: SystemTime) -> AppStatus {
    let signal = status.terminating_signal();
    let exit_code = match (status.exit_status(), signal) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 255,
    };
    AppStatus {
        exit_code,
        signal,
        oom_killed,
        started_at: poddir::format_time(started),
        finished_at: poddir::format_time(SystemTime::now()),
        restarts: 0,
    }
}

/// The pod's exit code: the first app (in pod order) that failed, else 0.
pub fn pod_exit_code<'a>(statuses: impl IntoIterator<Item = Option<&'a AppStatus>>) -> i32 {
    statuses
        .into_iter()
        .flatten()
        .map(|s| s.exit_code)
        .find(|&c| c != 0)
        .unwrap_or(0)
}

/// Whether an app that exited is started again. Regular apps follow their policy
/// (`failed`: a non-zero exit, a signal, or a failed liveness probe); init apps run
/// until they succeed, so they are restarted only after a failure, and never with
/// `Never` (the pod fails instead).
pub fn should_restart(policy: RestartPolicy, init: bool, failed: bool) -> bool {
    match policy {
        RestartPolicy::Never => false,
        RestartPolicy::OnFailure => failed,
        RestartPolicy::Always => failed || !init,
    }
}

/// CrashLoopBackOff: given the delay planned for the next restart (`next`, initially
/// `initialSecs`) and how long the run that just ended lasted, returns the delay
/// before this restart and the one planned after it. The delay doubles per restart up
/// to `maxSecs`; a run of at least `resetSecs` starts over at `initialSecs`.
pub fn backoff_delay(cfg: &Backoff, next: Duration, ran: Duration) -> (Duration, Duration) {
    let initial = Duration::from_secs(cfg.initial_secs);
    let max = Duration::from_secs(cfg.max_secs);
    let base = if ran >= Duration::from_secs(cfg.reset_secs) {
        initial
    } else {
        next
    };
    let delay = base.min(max);
    (delay, delay.saturating_mul(2).min(max))
}

/// SIGKILL every process of the pod's PID namespace but the caller, which must be its
/// PID 1.
fn kill_all_in_pid_namespace() {
    // From anything but a PID namespace's init this would hit the whole host.
    if !rustix::process::getpid().is_init() {
        return;
    }
    // rustix has no safe way to name pid -1 ("every process we may signal").
    #[allow(unsafe_code)]
    // SAFETY: kill(2) takes no pointers; it has no memory-safety preconditions.
    unsafe {
        libc::kill(-1, libc::SIGKILL);
    }
}

/// Signal an app: its process group, or the process alone if the group does not exist
/// (an interactive app before its `setsid`).
fn signal_app(pid: Pid, sig: Signal) {
    if kill_process_group(pid, sig).is_err() {
        let _ = kill_process(pid, sig);
    }
}

fn remove_file(path: &Path) -> Result<(), InitError> {
    podfiles::remove(path).map_err(|source| InitError::Remove {
        path: path.to_path_buf(),
        source,
    })
}

/// Where the pod as a whole is: what may still start, and when it is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodPhase {
    /// The init apps run, one at a time in order; the regular apps wait for them.
    InitApps,
    /// Every init app succeeded and the regular apps were started: only restarts
    /// start anything any more.
    Regular,
    /// An init app failed for good: nothing more starts.
    InitFailed,
    /// The pod stops: nothing starts or restarts any more. What still runs is
    /// SIGKILLed at `kill_at` (the end of the grace period); `None`: it was.
    Stopping { kill_at: Option<Instant> },
}

impl PodPhase {
    fn is_stopping(self) -> bool {
        matches!(self, PodPhase::Stopping { .. })
    }

    /// Whether the pod is over once no app runs or waits for a restart. (While the
    /// init apps run, the next one or the regular apps are still to come.)
    fn ends_when_idle(self) -> bool {
        self != PodPhase::InitApps
    }

    /// When what still runs is to be SIGKILLed.
    fn kill_at(self) -> Option<Instant> {
        match self {
            PodPhase::Stopping { kill_at } => kill_at,
            _ => None,
        }
    }

    /// The init apps all succeeded and the regular apps were started.
    fn regular_started(self) -> Self {
        match self {
            PodPhase::InitApps => PodPhase::Regular,
            other => other,
        }
    }

    /// An init app failed and will not be restarted. (A pod that stops already stays
    /// stopping.)
    fn init_failed(self) -> Self {
        match self {
            PodPhase::InitApps => PodPhase::InitFailed,
            other => other,
        }
    }

    /// The pod is asked to stop; what runs then is killed at `kill_at`. Asking again
    /// changes nothing.
    fn stop(self, kill_at: Instant) -> Self {
        match self {
            PodPhase::Stopping { .. } => self,
            _ => PodPhase::Stopping {
                kill_at: Some(kill_at),
            },
        }
    }

    /// Everything was SIGKILLed: nothing more to wait for but the processes' end.
    fn killed(self) -> Self {
        PodPhase::Stopping { kill_at: None }
    }
}

struct Supervisor<'a> {
    pod_dir: &'a Path,
    cfg: &'a RuntimeConfig,
    fly: bool,
    cgroups: Option<PodCgroups>,
    apps: Vec<AppRun<'a>>,
    prober: Prober,
    /// Interactive pods: the pty's app side, until the app started.
    pty: Option<OwnedFd>,
    phase: PodPhase,
    /// The pod's user namespace, for the apps.
    userns: Option<OwnedFd>,
    /// Default flavor: our own PID namespace, and the apps' nested one with its reaper
    /// (made when the first app starts, again if the reaper is gone).
    own_pidns: Option<crate::reaper::OwnNamespace>,
    apps_ns: Option<crate::reaper::AppsNamespace>,
}

impl<'a> Supervisor<'a> {
    fn spawn(&mut self, idx: usize) -> Result<(), InitError> {
        if let (Some(own), None) = (&self.own_pidns, &self.apps_ns) {
            self.apps_ns = Some(crate::reaper::AppsNamespace::start(own)?);
        }
        let cfg = self.cfg;
        let pty = self.pty.as_ref();
        let run = &mut self.apps[idx];
        let name = &run.app.name;
        let spawn_err = |source| InitError::Spawn {
            app: name.clone(),
            source,
        };
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg("app-exec")
            .arg("--pod-dir")
            .arg(self.pod_dir)
            .arg("--app")
            .arg(name);
        for dir in &run.cgroups {
            cmd.arg("--cgroup").arg(dir);
        }
        if let Some(ns) = &self.userns {
            cmd.arg("--userns-fd").arg(ns.as_raw_fd().to_string());
        }
        cmd.env_remove(poddir::LOCK_FD_ENV);
        match pty {
            Some(slave) => {
                // app-exec makes itself a session leader with the pty as controlling
                // terminal, so it must not be a process group leader already.
                cmd.arg("--pty")
                    .stdin(Stdio::from(slave.try_clone().map_err(spawn_err)?))
                    .stdout(Stdio::from(slave.try_clone().map_err(spawn_err)?))
                    .stderr(Stdio::from(slave.try_clone().map_err(spawn_err)?));
            }
            None => {
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                // A session of its own, so the app has no controlling terminal: it
                // cannot open the terminal of whoever started the pod (`/dev/tty`) to
                // inject input (TIOCSTI) or take its foreground. It is its own process
                // group too, which the signals go to.
                #[allow(unsafe_code)]
                // SAFETY: the closure runs in the forked child before exec and only
                // calls setsid(2), which is async-signal-safe and allocates nothing.
                unsafe {
                    cmd.pre_exec(|| rustix::process::setsid().map(drop).map_err(Into::into));
                }
                if run.log.is_none() {
                    let log =
                        LogFile::open(&run.dir.join(poddir::APP_LOG_FILE), cfg.log_max_bytes)?;
                    run.log = Some(Arc::new(Mutex::new(log)));
                }
            }
        }
        // Readers of earlier runs are done once those runs' processes are gone.
        run.pumps.retain(|p| !p.is_finished());
        if let (Some(dir), Some(cg)) = (&run.memory, &self.cgroups) {
            run.oom_baseline = cgroups::oom_kill_count(cg.version, dir);
        }
        let restart = matches!(run.phase, Phase::BackOff { .. });
        run.started_at = SystemTime::now();
        // Default flavor: the app is our child, in the apps' PID namespace.
        let mut child = match (&self.own_pidns, &self.apps_ns) {
            (Some(own), Some(ns)) => ns.spawn_in(own, || cmd.spawn())?,
            _ => cmd.spawn(),
        }
        .map_err(spawn_err)?;
        let pid = Pid::from_child(&child);
        run.phase = Phase::Running {
            pid,
            since: Instant::now(),
        };
        run.pgid = Some(pid);
        if restart {
            run.restarts = run.restarts.saturating_add(1);
        }
        if let (Some(log), None) = (&run.log, pty) {
            if let Some(out) = child.stdout.take() {
                run.pumps.push(
                    logs::pump(
                        &format!("{name}-stdout"),
                        out,
                        Some(Passthrough::Stdout),
                        Some(Arc::clone(log)),
                    )
                    .map_err(spawn_err)?,
                );
            }
            if let Some(err) = child.stderr.take() {
                run.pumps.push(
                    logs::pump(
                        &format!("{name}-stderr"),
                        err,
                        Some(Passthrough::Stderr),
                        Some(Arc::clone(log)),
                    )
                    .map_err(spawn_err)?,
                );
            }
        }
        // The child is reaped by `reap` (waitpid(-1)), never through `child`.
        drop(child);
        write_file(
            &run.dir.join(poddir::APP_PID_FILE),
            format!("{}\n", pid.as_raw_nonzero()).as_bytes(),
        )?;
        remove_file(&run.dir.join(poddir::APP_WAITING_FILE))?;
        self.prober.app_started(idx, Instant::now())?;
        Ok(())
    }

    /// Start what is due: restarts whose back-off ran out, the next init app, and the
    /// regular apps once every init app succeeded.
    fn start_due(&mut self, now: Instant) -> Result<(), InitError> {
        if self.phase.is_stopping() {
            return Ok(());
        }
        for idx in 0..self.apps.len() {
            if matches!(self.apps[idx].phase, Phase::BackOff { at } if now >= at) {
                self.spawn(idx)?;
            }
        }
        if self.phase != PodPhase::InitApps {
            return Ok(());
        }
        for idx in 0..self.apps.len() {
            if !self.apps[idx].app.init {
                continue;
            }
            match self.apps[idx].phase {
                // Only success ends an init app without failing the pod.
                Phase::Done => continue,
                Phase::Pending => return self.spawn(idx),
                Phase::Running { .. } | Phase::BackOff { .. } => return Ok(()),
            }
        }
        for idx in 0..self.apps.len() {
            if !self.apps[idx].app.init {
                self.spawn(idx)?;
            }
        }
        self.phase = self.phase.regular_started();
        // Only the app may hold the pty's app side now, so the relay sees its end.
        self.pty = None;
        write_file(&self.pod_dir.join(poddir::READY_FILE), b"")
    }

    /// Reap every child that exited; record the apps among them.
    fn reap(&mut self) -> Result<(), InitError> {
        loop {
            match rustix::process::wait(WaitOptions::NOHANG) {
                Ok(Some((pid, status))) => self.exited(pid, status)?,
                Ok(None) | Err(Errno::CHILD) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(InitError::Wait(e.into())),
            }
        }
    }

    fn exited(&mut self, pid: Pid, status: WaitStatus) -> Result<(), InitError> {
        if self.apps_ns.as_ref().is_some_and(|ns| ns.pid == pid) {
            // Its namespace ended with it (the kernel killed the apps in it); the next
            // app to start gets a new one.
            self.apps_ns = None;
            return Ok(());
        }
        if self.prober.reaped(pid, status)? {
            return Ok(());
        }
        let Some(idx) = self.apps.iter().position(|r| r.pid() == Some(pid)) else {
            return Ok(()); // an orphan that was reparented to us
        };
        self.prober.app_stopped(idx)?;
        let now = Instant::now();
        let version = self.cgroups.as_ref().map(|c| c.version);
        let cfg = self.cfg;
        let run = &mut self.apps[idx];
        let ran = match run.phase {
            Phase::Running { since, .. } => now.saturating_duration_since(since),
            _ => Duration::ZERO,
        };
        let sigkill = status.terminating_signal() == Some(Signal::KILL.as_raw());
        let oom = match (version, &run.memory) {
            (Some(v), Some(dir)) => cgroups::oom_killed(v, dir, run.oom_baseline, sigkill),
            _ => false,
        };
        let mut st = app_status(status, oom, run.started_at);
        st.restarts = run.restarts;
        let failed = st.exit_code != 0 || run.liveness_failed;
        let exit_code = st.exit_code;
        let written = write_json(&run.dir.join(poddir::APP_STATUS_FILE), &st);
        run.status = Some(st);
        run.liveness_kill = None;
        run.liveness_failed = false;
        written?;

        // An interactive app's terminal is gone once it exits.
        let restart = !self.phase.is_stopping()
            && !cfg.interactive
            && should_restart(run.app.restart_policy, run.app.init, failed);
        if !restart {
            run.phase = Phase::Done;
            if run.app.init && exit_code != 0 {
                self.phase = self.phase.init_failed();
            }
            return Ok(());
        }
        let (delay, next) = backoff_delay(&cfg.backoff, run.next_delay, ran);
        run.next_delay = next;
        run.phase = Phase::BackOff { at: now + delay };
        // A restarted app starts afresh: whatever its last run left behind goes.
        if let Some(pgid) = run.pgid {
            let _ = kill_process_group(pgid, Signal::KILL);
        }
        cgroups::kill_procs(&run.cgroups);
        let waiting = Waiting {
            reason: poddir::CRASH_LOOP_BACK_OFF.to_string(),
            until: poddir::format_time(SystemTime::now() + delay),
        };
        write_json(&run.dir.join(poddir::APP_WAITING_FILE), &waiting)
    }

    /// Stop the apps whose liveness probe failed (SIGTERM now, SIGKILL after the
    /// grace period) and SIGKILL those whose grace period ran out.
    fn enforce_liveness(&mut self, now: Instant, grace: Duration) -> Result<(), InitError> {
        for (idx, message) in self.prober.take_liveness_failures() {
            let run = &mut self.apps[idx];
            let Some(pid) = run.pid() else { continue };
            if self.phase.is_stopping() || run.liveness_failed {
                continue;
            }
            eprintln!(
                "stage1: app {}: liveness probe failed ({message}); stopping it",
                run.app.name
            );
            run.liveness_failed = true;
            run.liveness_kill = Some(now + grace);
            signal_app(pid, Signal::TERM);
            self.prober.app_stopped(idx)?;
        }
        for run in &mut self.apps {
            if let (Some(at), Some(pid)) = (run.liveness_kill, run.pid()) {
                if now >= at {
                    signal_app(pid, Signal::KILL);
                    run.liveness_kill = None;
                }
            }
        }
        Ok(())
    }

    /// The pod stops: pending restarts are cancelled, running apps get SIGTERM (and
    /// SIGKILL once the grace period is over).
    fn stop(&mut self) -> Result<(), InitError> {
        let grace = Duration::from_secs(self.cfg.stop_grace_period_secs);
        self.phase = self.phase.stop(Instant::now() + grace);
        self.prober.stop_all();
        for run in &mut self.apps {
            match run.phase {
                Phase::BackOff { .. } => {
                    run.phase = Phase::Done;
                    remove_file(&run.dir.join(poddir::APP_WAITING_FILE))?;
                }
                Phase::Running { pid, .. } => signal_app(pid, Signal::TERM),
                Phase::Pending | Phase::Done => {}
            }
        }
        Ok(())
    }

    /// Nothing runs and nothing will start any more.
    fn finished(&self) -> bool {
        let active = self
            .apps
            .iter()
            .any(|r| matches!(r.phase, Phase::Running { .. } | Phase::BackOff { .. }));
        !active && self.phase.ends_when_idle()
    }

    /// When the loop must look again without being woken: a restart, a probe, a
    /// liveness kill.
    fn next_wakeup(&self) -> Option<Instant> {
        let apps = self.apps.iter().filter_map(|r| match r.phase {
            Phase::BackOff { at } => Some(at),
            Phase::Running { .. } => r.liveness_kill,
            _ => None,
        });
        apps.chain(self.prober.next_wakeup()).min()
    }

    fn running(&self) -> impl Iterator<Item = Pid> + '_ {
        self.apps.iter().filter_map(AppRun::pid)
    }

    /// SIGKILL whatever is left: the apps' groups, probes and (default) the whole PID
    /// namespace.
    fn kill_everything(&mut self) {
        self.phase = self.phase.killed();
        self.prober.stop_all();
        for pid in self.running().collect::<Vec<_>>() {
            signal_app(pid, Signal::KILL);
        }
        if !self.fly {
            kill_all_in_pid_namespace();
        }
    }

    /// After the apps are gone: kill strays, reap them, let the log readers drain.
    fn finish(&mut self, watch: &mut SignalWatch) {
        self.prober.stop_all();
        if self.fly {
            // Whatever the apps left in their process groups. A group's ID is not
            // reused while the group exists, so this hits nothing else.
            for r in &self.apps {
                if let Some(pgid) = r.pgid {
                    let _ = kill_process_group(pgid, Signal::KILL);
                }
            }
        } else {
            kill_all_in_pid_namespace();
            let deadline = Instant::now() + REAP_TIMEOUT;
            loop {
                match rustix::process::wait(WaitOptions::NOHANG) {
                    Ok(Some(_)) => continue,
                    Ok(None) => {}
                    Err(Errno::INTR) => continue,
                    Err(_) => break, // ECHILD: nothing left
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let _ = watch.wait(Some(deadline - now), &[]);
            }
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        for r in &mut self.apps {
            for p in r.pumps.drain(..) {
                p.join_until(deadline);
            }
        }
    }

    fn exit_code(&self) -> i32 {
        pod_exit_code(self.apps.iter().map(|r| r.status.as_ref()))
    }

    /// The supervision loop, until nothing runs or will start any more.
    fn run_loop(
        &mut self,
        watch: &mut SignalWatch,
        relay: &mut Option<crate::pty::Relay>,
    ) -> Result<(), InitError> {
        let grace = Duration::from_secs(self.cfg.stop_grace_period_secs);
        loop {
            self.reap()?;
            let now = Instant::now();
            self.prober.poll(now)?;
            self.start_due(now)?;
            if !self.phase.is_stopping() {
                self.prober.run_due(now)?;
            }
            self.enforce_liveness(now, grace)?;
            if self.finished() {
                return Ok(());
            }
            let mut wake_at = self.next_wakeup();
            if let Some(kill_at) = self.phase.kill_at() {
                if now >= kill_at {
                    self.kill_everything();
                    continue;
                }
                wake_at = Some(wake_at.map_or(kill_at, |w| w.min(kill_at)));
            }
            let timeout = wake_at.map(|w| w.saturating_duration_since(now));
            let mut extra = vec![self.prober.wake_fd()];
            if let Some(r) = relay.as_ref() {
                extra.extend(r.fds());
            }
            let (signals, ready) = watch.wait(timeout, &extra).map_err(InitError::Wait)?;
            drop(extra);
            if let Some(r) = relay {
                if r.service(&ready[1..]) == crate::pty::RelayEvent::Escape {
                    crate::pty::escape_notice();
                    self.stop()?;
                    self.kill_everything();
                }
                if signals.contains(&signal_hook::consts::SIGWINCH) {
                    r.resize();
                }
            }
            if !self.phase.is_stopping() && signals.iter().any(|s| STOP_SIGNALS.contains(s)) {
                self.stop()?;
            }
        }
    }
}

/// Run the pod's apps until they have all exited and none will be restarted; returns
/// the pod's exit code. Init apps run first, one at a time in order; the others start
/// once they all succeeded. `watch` must include SIGCHLD and [`STOP_SIGNALS`];
/// registering it before any process is started means no signal is missed.
pub fn supervise(
    pod_dir: &Path,
    cfg: &RuntimeConfig,
    opts: Options,
    watch: &mut SignalWatch,
) -> Result<i32, InitError> {
    if opts.pty_slave.is_some() && cfg.apps.len() != 1 {
        return Err(InitError::InteractiveApps(cfg.apps.len()));
    }
    crate::rootfs::ensure_pod_files(pod_dir, cfg, Path::new("/etc/resolv.conf"))
        .map_err(|e| InitError::PodFiles(Box::new(e)))?;

    let cgroups = if opts.fly {
        None
    } else {
        // An interactive pod's /dev/console is the pty's app side.
        let console = opts
            .pty_slave
            .as_ref()
            .and_then(|fd| rustix::fs::fstat(fd).ok())
            .map(|st| (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev)));
        Some(cgroups::plan(&cfg.cgroup_root, cfg, console)?)
    };
    let list = cgroups
        .as_ref()
        .map(PodCgroups::dirs_leaf_first)
        .unwrap_or_default();
    let list_path = pod_dir.join(poddir::CGROUPS_FILE);
    // Recorded before anything is made, so gc finds whatever a crash leaves behind.
    cgroups::write_list(&list_path, &list).map_err(|source| InitError::Write {
        path: list_path,
        source,
    })?;
    if let Some(cg) = &cgroups {
        cg.create()?;
    }

    let mut apps = Vec::with_capacity(cfg.apps.len());
    for app in &cfg.apps {
        let dir = poddir::app_dir(pod_dir, &app.name);
        fs::create_dir_all(&dir).map_err(|source| InitError::Write {
            path: dir.clone(),
            source,
        })?;
        let app_cg = cgroups.as_ref().and_then(|c| c.app(&app.name));
        apps.push(AppRun {
            app,
            dir,
            cgroups: app_cg.map(|c| c.dirs.clone()).unwrap_or_default(),
            memory: app_cg.and_then(|c| c.memory.clone()),
            oom_baseline: None,
            phase: Phase::Pending,
            pgid: None,
            started_at: SystemTime::now(),
            status: None,
            restarts: 0,
            next_delay: Duration::from_secs(cfg.backoff.initial_secs),
            liveness_kill: None,
            liveness_failed: false,
            log: None,
            pumps: Vec::new(),
        });
    }
    let mut sup = Supervisor {
        pod_dir,
        cfg,
        fly: opts.fly,
        cgroups,
        apps,
        prober: Prober::new(pod_dir, &cfg.apps)?,
        pty: opts.pty_slave,
        phase: PodPhase::InitApps,
        userns: opts.userns,
        own_pidns: if opts.fly {
            None
        } else {
            Some(crate::reaper::OwnNamespace::open()?)
        },
        apps_ns: None,
    };
    let mut relay = opts.relay;
    let result = sup.run_loop(watch, &mut relay);
    if result.is_err() {
        sup.kill_everything();
    }
    sup.finish(watch);
    if let Some(r) = &mut relay {
        r.drain(Instant::now() + DRAIN_TIMEOUT);
    }
    result?;
    Ok(sup.exit_code())
}

/// The `init` entry point, PID 1 of the pod: `sync` is the socket to `stage1 run`,
/// which waits for one byte before it forwards signals to us.
pub fn run_init(
    pod_dir: &Path,
    sync: Option<OwnedFd>,
    pty_slave: Option<OwnedFd>,
    userns: Option<OwnedFd>,
) -> Result<i32, InitError> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| InitError::DeathSignal(e.into()))?;
    // Started as /proc/self/exe; show up as "stage1" in the pod's `ps`.
    let _ = rustix::thread::set_name(c"stage1");
    // Leave the session (and so the controlling terminal) of whoever ran the pod:
    // nothing started from here can reach that terminal.
    let _ = rustix::process::setsid();
    let mut signals = STOP_SIGNALS.to_vec();
    signals.push(signal_hook::consts::SIGCHLD);
    let mut watch = SignalWatch::new(&signals).map_err(InitError::Signals)?;
    if let Some(sync) = sync {
        // Fails once `run` is gone: then the death signal was set too late to fire.
        let mut sync = UnixStream::from(sync);
        if sync.write_all(InitMessage::Ready.encode()).is_err() {
            return Err(InitError::ParentGone);
        }
    }
    let cfg = podfiles::load_config(pod_dir)?;
    rustix::system::sethostname(cfg.hostname.as_bytes()).map_err(|e| InitError::Hostname {
        hostname: cfg.hostname.clone(),
        source: e.into(),
    })?;
    supervise(
        pod_dir,
        &cfg,
        Options {
            fly: false,
            pty_slave,
            relay: None,
            userns,
        },
        &mut watch,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_is_the_first_failed_app_in_order() {
        let st = |code| AppStatus {
            exit_code: code,
            signal: None,
            oom_killed: false,
            started_at: String::new(),
            finished_at: String::new(),
            restarts: 0,
        };
        let (a, b, c) = (st(0), st(5), st(6));
        assert_eq!(pod_exit_code([Some(&a), Some(&b), Some(&c)]), 5);
        assert_eq!(pod_exit_code([Some(&c), Some(&b)]), 6);
        assert_eq!(pod_exit_code([Some(&a), None]), 0);
    }

    #[test]
    fn pod_phase_transitions() {
        use PodPhase::*;
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        let stopping = Stopping {
            kill_at: Some(later),
        };
        // (from, event, to)
        let table: [(PodPhase, &str, PodPhase); 14] = [
            (InitApps, "regular started", Regular),
            (InitApps, "init failed", InitFailed),
            (InitApps, "stop", stopping),
            (Regular, "stop", stopping),
            (InitFailed, "stop", stopping),
            (InitApps, "killed", Stopping { kill_at: None }),
            (Regular, "killed", Stopping { kill_at: None }),
            (stopping, "killed", Stopping { kill_at: None }),
            // A second stop request keeps the first deadline, and a killed pod stays so.
            (
                Stopping { kill_at: Some(now) },
                "stop",
                Stopping { kill_at: Some(now) },
            ),
            (
                Stopping { kill_at: None },
                "stop",
                Stopping { kill_at: None },
            ),
            // An init app exiting while the pod stops does not un-stop it.
            (stopping, "init failed", stopping),
            (stopping, "regular started", stopping),
            (Regular, "init failed", Regular),
            (InitFailed, "regular started", InitFailed),
        ];
        for (from, event, want) in table {
            let got = match event {
                "regular started" => from.regular_started(),
                "init failed" => from.init_failed(),
                "stop" => from.stop(later),
                "killed" => from.killed(),
                _ => unreachable!(),
            };
            assert_eq!(got, want, "{from:?} + {event}");
        }
    }

    #[test]
    fn pod_phase_decides_what_happens() {
        use PodPhase::*;
        let at = Instant::now();
        // (phase, stopping, ends when idle, kill at)
        let table = [
            (InitApps, false, false, None),
            (Regular, false, true, None),
            (InitFailed, false, true, None),
            (Stopping { kill_at: Some(at) }, true, true, Some(at)),
            (Stopping { kill_at: None }, true, true, None),
        ];
        for (phase, stopping, ends, kill_at) in table {
            assert_eq!(phase.is_stopping(), stopping, "{phase:?}");
            assert_eq!(phase.ends_when_idle(), ends, "{phase:?}");
            assert_eq!(phase.kill_at(), kill_at, "{phase:?}");
        }
    }

    #[test]
    fn restart_policy_decides_restarts() {
        use RestartPolicy::*;
        // (policy, init, failed) -> restarted
        let table = [
            (Always, false, false, true),
            (Always, false, true, true),
            (OnFailure, false, false, false),
            (OnFailure, false, true, true),
            (Never, false, true, false),
            (Never, false, false, false),
            // Init apps: done once they succeed, retried after failures unless Never.
            (Always, true, false, false),
            (Always, true, true, true),
            (OnFailure, true, false, false),
            (OnFailure, true, true, true),
            (Never, true, true, false),
        ];
        for (policy, init, failed, want) in table {
            assert_eq!(
                should_restart(policy, init, failed),
                want,
                "{policy:?} init={init} failed={failed}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets_after_a_long_run() {
        let cfg = Backoff {
            initial_secs: 10,
            max_secs: 300,
            reset_secs: 600,
        };
        let s = Duration::from_secs;
        let short = s(1);
        let mut next = s(cfg.initial_secs);
        let mut delays = Vec::new();
        for _ in 0..7 {
            let (delay, n) = backoff_delay(&cfg, next, short);
            delays.push(delay.as_secs());
            next = n;
        }
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        // A run of resetSecs starts over; one just short of it does not.
        assert_eq!(backoff_delay(&cfg, next, s(599)).0, s(300));
        assert_eq!(backoff_delay(&cfg, next, s(600)), (s(10), s(20)));
        // An initial delay above the cap is capped.
        let odd = Backoff {
            initial_secs: 9,
            max_secs: 5,
            reset_secs: 1,
        };
        assert_eq!(backoff_delay(&odd, s(9), Duration::ZERO), (s(5), s(5)));
    }
}
