//! The loop with a fake executor, a simulated clock and scripted events: no root, no
//! pods, no waiting. Time only moves when the event source lets it (to the next
//! scripted event, a finished job or the loop's deadline), so every pass happens at
//! an exact simulated time.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use signal_hook::consts::{SIGHUP, SIGTERM};

use super::*;
use crate::act::ActError;
use crate::mapping::MapError;
use crate::plan::{ObservedPod, Work};
use crate::status::Phase;
use stage0::pod::dir::{PodError, PodState};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Simulated time: `elapsed` since the loop started.
#[derive(Clone)]
struct FakeClock {
    base: Instant,
    wall: SystemTime,
    elapsed: Arc<Mutex<Duration>>,
}

impl FakeClock {
    fn new() -> FakeClock {
        FakeClock {
            base: Instant::now(),
            wall: UNIX_EPOCH + secs(1_700_000_000),
            elapsed: Arc::default(),
        }
    }
    fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap()
    }
    fn set(&self, t: Duration) {
        let mut e = self.elapsed.lock().unwrap();
        *e = (*e).max(t);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.base + self.elapsed()
    }
    fn wall(&self) -> SystemTime {
        self.wall + self.elapsed()
    }
    fn sleep(&self, d: Duration) {
        self.set(self.elapsed() + d);
    }
}

/// How creations fail.
#[derive(Clone, Copy, PartialEq)]
enum Failing {
    No,
    /// A retryable error (as a network failure).
    Retryable,
    /// A permanent error (an invalid spec).
    Permanent,
}

#[derive(Default)]
struct ExecState {
    /// Simulated times of the passes (each lists the pods once).
    passes: Vec<Duration>,
    /// `(time, what)` of every call that changes pods.
    calls: Vec<(Duration, String)>,
    pods: Vec<SeenPod>,
    /// When each pod was created, by UUID.
    created: BTreeMap<String, Duration>,
    /// When each key's job is done (one job per key at a time).
    done_at: BTreeMap<PodKey, Duration>,
    next_uuid: u32,
}

/// Pods in memory; every job takes `job_time` of simulated time.
#[derive(Clone)]
struct FakeExec {
    clock: FakeClock,
    job_time: Duration,
    /// How creations fail, and how many more times (`u32::MAX`: always).
    failing: Arc<Mutex<(Failing, u32)>>,
    /// Created pods are `started` (stage1 started their apps) this long after they
    /// were created.
    start_delay: Duration,
    /// Removals fail.
    fail_removes: bool,
    state: Arc<Mutex<ExecState>>,
}

impl FakeExec {
    fn new(clock: &FakeClock) -> FakeExec {
        FakeExec {
            clock: clock.clone(),
            job_time: Duration::ZERO,
            failing: Arc::new(Mutex::new((Failing::No, 0))),
            start_delay: Duration::ZERO,
            fail_removes: false,
            state: Arc::default(),
        }
    }
    fn fail(&self, how: Failing, times: u32) {
        *self.failing.lock().unwrap() = (how, times);
    }
    fn passes(&self) -> Vec<Duration> {
        self.state.lock().unwrap().passes.clone()
    }
    fn calls(&self) -> Vec<(Duration, String)> {
        self.state.lock().unwrap().calls.clone()
    }
    fn running(&self) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.pods
            .iter()
            .filter(|s| s.pod.state.is_running())
            .map(|s| s.pod.key.name.clone())
            .collect()
    }
}

impl Execute for FakeExec {
    fn run(&self, job: &Job) -> Vec<Outcome> {
        let now = self.clock.elapsed();
        let mut failing = self.failing.lock().unwrap();
        let mut st = self.state.lock().unwrap();
        st.done_at.insert(job.key.clone(), now + self.job_time);
        let mut out = Vec::new();
        for work in &job.actions {
            match work {
                Work::Create { key, restart } => {
                    st.calls.push((now, format!("create {}", key.name)));
                    let how = if failing.1 > 0 {
                        failing.0
                    } else {
                        Failing::No
                    };
                    if how != Failing::No && failing.1 != u32::MAX {
                        failing.1 -= 1;
                    }
                    let error = match how {
                        Failing::No => None,
                        Failing::Retryable => Some(ActError::NotReady {
                            uuid: "u0".into(),
                            old: "u1".into(),
                            reason: "a network failure".into(),
                        }),
                        Failing::Permanent => Some(ActError::Spec {
                            field: "spec.containers[0]".into(),
                            source: MapError::Capability {
                                container: "main".into(),
                                cap: "CAP_NOPE".into(),
                            },
                        }),
                    };
                    if let Some(error) = error {
                        out.push(Outcome::Failed { error });
                        break;
                    }
                    st.next_uuid += 1;
                    let uuid = format!("u{}", st.next_uuid);
                    st.created.insert(uuid.clone(), now);
                    let pod = job.pod.as_ref().unwrap();
                    st.pods.push(SeenPod {
                        pod: ObservedPod {
                            uuid: uuid.clone(),
                            key: key.clone(),
                            source: pod.file.clone(),
                            spec_hash: pod.spec_hash.clone(),
                            state: PodState::Running,
                            created_at: Some(self.clock.wall()),
                            started_at: Some(self.clock.wall()),
                            succeeded: false,
                            problem: None,
                        },
                        ready: false,
                        started: false,
                        has_readiness: false,
                        app_restarts: 0,
                        exits: String::new(),
                        waiting: Vec::new(),
                    });
                    out.push(Outcome::Started {
                        uuid,
                        restart: *restart,
                    });
                }
                Work::Remove { key, uuid, .. } => {
                    st.calls.push((now, format!("remove {} {uuid}", key.name)));
                    if self.fail_removes {
                        out.push(Outcome::RemoveFailed {
                            uuid: uuid.clone(),
                            error: PodError::NoApps.into(),
                        });
                        continue;
                    }
                    st.pods.retain(|s| &s.pod.uuid != uuid);
                    out.push(Outcome::Removed { uuid: uuid.clone() });
                }
                Work::Replace { key, old, .. } => {
                    st.calls.push((now, format!("replace {} {old}", key.name)));
                }
                Work::Stop { key, uuid, .. } => {
                    st.calls.push((now, format!("stop {} {uuid}", key.name)));
                }
            }
        }
        out
    }

    fn observe(&self) -> Result<Vec<SeenPod>, PodError> {
        let mut st = self.state.lock().unwrap();
        let now = self.clock.elapsed();
        st.passes.push(now);
        let created = st.created.clone();
        for p in &mut st.pods {
            if p.pod.state.is_running() && created[&p.pod.uuid] + self.start_delay <= now {
                p.started = true;
                p.ready = true;
            }
        }
        Ok(st.pods.clone())
    }

    fn check_network(&self, _uuid: &str) -> Result<(), String> {
        Ok(())
    }

    fn stop_pod(&self, uuid: &str) -> Result<(), ActError> {
        let mut st = self.state.lock().unwrap();
        let now = self.clock.elapsed();
        st.calls.push((now, format!("stop-on-exit {uuid}")));
        for s in st.pods.iter_mut().filter(|s| s.pod.uuid == uuid) {
            s.pod.state = PodState::Exited;
        }
        Ok(())
    }

    fn reap(&self) -> Vec<(String, Option<i32>)> {
        Vec::new()
    }

    fn has_children(&self) -> bool {
        false
    }
}

/// Scripted events at simulated times, and the workers' reports at the time their
/// job is done. Without anything left to deliver it disconnects (the loop ends).
struct FakeEvents {
    clock: FakeClock,
    exec: FakeExec,
    rx: Receiver<Event>,
    script: VecDeque<(Duration, Event)>,
    /// Reports received, not yet delivered: `(done at, event)`.
    pending: Vec<(Duration, Event)>,
}

impl Events for FakeEvents {
    fn next(&mut self, timeout: Duration, in_flight: usize) -> Result<Event, RecvTimeoutError> {
        // Let no time pass before every job in flight has reported (in real time).
        while self.pending.len() < in_flight {
            let ev = self
                .rx
                .recv_timeout(secs(10))
                .expect("a job in flight never reported");
            let Event::Done { key, .. } = &ev else {
                panic!("only workers send on the channel")
            };
            let at = self.exec.state.lock().unwrap().done_at[key];
            self.pending.push((at, ev));
        }
        let now = self.clock.elapsed();
        let deadline = now.saturating_add(timeout);
        let done = self
            .pending
            .iter()
            .enumerate()
            .min_by_key(|(_, (at, _))| *at)
            .map(|(i, (at, _))| (i, *at));
        let scripted = self.script.front().map(|(at, _)| *at);
        let next = match (done, scripted) {
            (Some((i, d)), Some(s)) if d <= s => Some((d, Some(i))),
            (Some((i, d)), None) => Some((d, Some(i))),
            (_, Some(s)) => Some((s, None)),
            (None, None) => None,
        };
        match next {
            Some((at, which)) if at <= deadline => {
                self.clock.set(at);
                Ok(match which {
                    Some(i) => self.pending.remove(i).1,
                    None => self.script.pop_front().unwrap().1,
                })
            }
            None if in_flight == 0 => Err(RecvTimeoutError::Disconnected),
            _ => {
                self.clock.set(deadline);
                Err(RecvTimeoutError::Timeout)
            }
        }
    }
}

fn pod_yaml(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  hostNetwork: true\n  containers:\n  - name: main\n    image: example.com/{name}:1\n"
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    data: PathBuf,
    pods: PathBuf,
    clock: FakeClock,
    exec: FakeExec,
    opts: Options,
}

fn setup(names: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pods = dir.path().join("pods.d");
    std::fs::create_dir_all(&pods).unwrap();
    for name in names {
        std::fs::write(pods.join(format!("{name}.yaml")), pod_yaml(name)).unwrap();
    }
    let clock = FakeClock::new();
    let exec = FakeExec::new(&clock);
    let opts = Options {
        data_dir: data.clone(),
        pods_dir: pods.clone(),
        resync: secs(3600),
        debounce: ms(200),
        once: false,
        backoff: BackoffPolicy {
            initial: secs(10),
            max: secs(40),
            reset: secs(600),
        },
        stop_pods_on_exit: false,
        workers: 2,
        lock_timeout: Duration::ZERO,
        net_check: Duration::ZERO,
        guarded: Vec::new(),
        strict_permissions: false,
        strict: false,
        node: manifests::k8s::Node::new("this-host", Default::default()),
    };
    Setup {
        _dir: dir,
        data,
        pods,
        clock,
        exec,
        opts,
    }
}

/// Run the loop over `script` to its end.
fn run(s: &Setup, script: Vec<(Duration, Event)>) -> Summary {
    let (tx, rx) = mpsc::channel();
    let events = FakeEvents {
        clock: s.clock.clone(),
        exec: s.exec.clone(),
        rx,
        script: script.into(),
        pending: Vec::new(),
    };
    let l = Loop::new(
        s.opts.clone(),
        s.exec.clone(),
        s.clock.clone(),
        events,
        tx,
        Notifier::disabled(),
    )
    .unwrap();
    l.run().unwrap()
}

fn status_of(data: &Path, name: &str) -> PodStatus {
    let st = status::read_status(data).unwrap().unwrap();
    st.pod(&format!("default/{name}")).unwrap().clone()
}

fn at(t: Duration, what: &str) -> (Duration, String) {
    (t, what.to_string())
}

#[test]
fn file_events_are_debounced_into_one_pass() {
    let s = setup(&["web"]);
    let script = vec![
        (secs(1), Event::Fs),
        (ms(1100), Event::Fs),
        (ms(1150), Event::Fs),
        (secs(5), Event::Signal(SIGTERM)),
    ];
    run(&s, script);
    // The first pass, one pass 200 ms after the last of the three events, the pass
    // after the create finished (200 ms after it), and the pass at shutdown.
    assert_eq!(
        s.exec.passes(),
        vec![Duration::ZERO, ms(200), ms(1350), secs(5)]
    );
    assert_eq!(s.exec.calls(), vec![at(Duration::ZERO, "create web")]);
}

#[test]
fn a_stream_of_events_is_coalesced_but_not_starved() {
    let s = setup(&[]);
    // An event every 100 ms for 3 s: the debounce never runs out, but a pass comes at
    // most 5 debounce intervals after the first event of a burst.
    let mut script: Vec<(Duration, Event)> = (0..30)
        .map(|i| (secs(1) + ms(100 * i), Event::Fs))
        .collect();
    script.push((secs(10), Event::Signal(SIGTERM)));
    run(&s, script);
    assert_eq!(
        s.exec.passes(),
        vec![
            Duration::ZERO,
            secs(2),
            ms(3100),
            // The last event (at 3.9 s) plus the debounce.
            ms(4100),
            secs(10)
        ]
    );
}

#[test]
fn sighup_passes_at_once_and_the_resync_runs_without_events() {
    let mut s = setup(&[]);
    s.opts.resync = secs(10);
    let script = vec![
        (secs(3), Event::Signal(SIGHUP)),
        (secs(25), Event::Signal(SIGTERM)),
    ];
    run(&s, script);
    assert_eq!(
        s.exec.passes(),
        vec![Duration::ZERO, secs(3), secs(13), secs(23), secs(25)]
    );
}

#[test]
fn a_busy_key_gets_no_second_job() {
    let mut s = setup(&["web"]);
    s.exec.job_time = secs(3);
    s.exec.fail(Failing::Retryable, u32::MAX);
    let script = vec![
        // Passes while the first create runs: the key is busy.
        (secs(1), Event::Fs),
        (secs(2), Event::Signal(SIGHUP)),
        (secs(20), Event::Signal(SIGTERM)),
    ];
    run(&s, script);
    // The create that started at 0 failed at 3 s: back-off 10 s from then.
    assert_eq!(
        s.exec.calls(),
        vec![at(Duration::ZERO, "create web"), at(secs(13), "create web")]
    );
    assert_eq!(
        s.exec.passes(),
        vec![
            Duration::ZERO,
            ms(1200),
            secs(2),
            ms(3200),
            secs(13),
            // The second create failed at 16 s.
            ms(16200),
            secs(20)
        ]
    );
}

#[test]
fn failed_creations_back_off_exponentially_up_to_the_maximum() {
    let s = setup(&["web"]);
    s.exec.fail(Failing::Retryable, u32::MAX);
    run(&s, vec![(secs(200), Event::Signal(SIGTERM))]);
    let creates: Vec<Duration> = s.exec.calls().into_iter().map(|(t, _)| t).collect();
    // 10 s, 20 s, 40 s, then the 40 s maximum.
    assert_eq!(
        creates,
        vec![
            Duration::ZERO,
            secs(10),
            secs(30),
            secs(70),
            secs(110),
            secs(150),
            secs(190)
        ]
    );
    let st = status_of(&s.data, "web");
    assert_eq!(st.phase, Phase::Pending);
    let err = st.last_error.expect("the failure is the pod's last error");
    assert_eq!(
        (err.file.as_str(), err.line, err.field.as_str()),
        (s.pods.join("web.yaml").to_str().unwrap(), Some(1), "")
    );
    assert!(err.message.contains("a network failure"), "{}", err.message);
    assert!(
        st.message
            .as_deref()
            .unwrap_or("")
            .starts_with("retrying at"),
        "{:?}",
        st.message
    );
}

#[test]
fn a_permanent_error_backs_off_too_and_a_fixed_host_recovers() {
    let s = setup(&["web"]);
    s.exec.fail(Failing::Permanent, 2);
    run(&s, vec![(secs(60), Event::Signal(SIGTERM))]);
    assert_eq!(
        s.exec.calls(),
        vec![
            at(Duration::ZERO, "create web"),
            at(secs(10), "create web"),
            at(secs(30), "create web")
        ]
    );
    assert_eq!(s.exec.running(), vec!["web".to_string()]);
    let st = status_of(&s.data, "web");
    assert_eq!(
        (st.phase, st.last_error.is_none(), st.restarts),
        (Phase::Running, true, 0)
    );
}

#[test]
fn a_permanent_error_names_its_field() {
    let mut s = setup(&["web"]);
    s.opts.once = true;
    s.exec.fail(Failing::Permanent, u32::MAX);
    let summary = run(&s, vec![]);
    assert_eq!(
        summary,
        Summary {
            pods: 1,
            problems: 1
        }
    );
    let err = status_of(&s.data, "web").last_error.unwrap();
    assert_eq!(err.field, "spec.containers[0]");
    assert!(err.message.contains("CAP_NOPE"), "{}", err.message);
}

#[test]
fn once_runs_one_pass_waits_for_its_work_and_reports() {
    let mut s = setup(&["a", "b"]);
    s.opts.once = true;
    s.exec.job_time = secs(4);
    let summary = run(&s, vec![]);
    assert_eq!(
        summary,
        Summary {
            pods: 2,
            problems: 0
        }
    );
    let mut calls = s.exec.calls();
    calls.sort();
    assert_eq!(
        calls,
        vec![
            at(Duration::ZERO, "create a"),
            at(Duration::ZERO, "create b")
        ]
    );
    // One pass that acts, one after the work (at 4 s) that only reports.
    assert_eq!(s.exec.passes(), vec![Duration::ZERO, secs(4)]);
    assert_eq!(status_of(&s.data, "a").phase, Phase::Running);
}

#[test]
fn once_does_not_wait_for_back_offs() {
    let mut s = setup(&["web"]);
    s.opts.once = true;
    s.exec.fail(Failing::Retryable, u32::MAX);
    let summary = run(&s, vec![]);
    assert_eq!(
        summary,
        Summary {
            pods: 1,
            problems: 1
        }
    );
    assert_eq!(s.exec.calls(), vec![at(Duration::ZERO, "create web")]);
    assert_eq!(s.exec.passes(), vec![Duration::ZERO, Duration::ZERO]);
}

#[test]
fn once_gives_starting_pods_a_moment() {
    let mut s = setup(&["web"]);
    s.opts.once = true;
    s.exec.start_delay = secs(1);
    let summary = run(&s, vec![]);
    assert_eq!(
        summary,
        Summary {
            pods: 1,
            problems: 0
        }
    );
    // The pass that acts, the one after its work, then one every 50 ms until stage1
    // started the apps (1 s).
    let passes = s.exec.passes();
    assert_eq!(passes.len(), 22, "{passes:?}");
    assert_eq!(passes.last(), Some(&secs(1)));
    assert_eq!(status_of(&s.data, "web").phase, Phase::Running);
}

#[test]
fn shutdown_finishes_work_in_flight_and_leaves_pods_running() {
    let mut s = setup(&["web"]);
    s.exec.job_time = secs(4);
    run(&s, vec![(secs(1), Event::Signal(SIGTERM))]);
    // The create done at 4 s is recorded, then the last pass writes the status.
    assert_eq!(s.exec.passes(), vec![Duration::ZERO, secs(4)]);
    assert_eq!(s.exec.running(), vec!["web".to_string()]);
    let st = status_of(&s.data, "web");
    assert_eq!((st.phase, st.uuid.as_deref()), (Phase::Running, Some("u1")));
}

#[test]
fn shutdown_waits_at_most_the_grace_period() {
    let mut s = setup(&["web"]);
    s.exec.job_time = secs(60);
    run(&s, vec![(secs(1), Event::Signal(SIGTERM))]);
    assert_eq!(
        s.exec.passes(),
        vec![Duration::ZERO, secs(1) + SHUTDOWN_GRACE]
    );
    // The job's outcome never came: nothing recorded it.
    let state = status::read_state(&s.data).unwrap();
    assert_eq!(
        state
            .history
            .get("default/web")
            .and_then(|h| h.uuid.clone()),
        None
    );
}

#[test]
fn stop_pods_on_exit_stops_the_running_pods() {
    let mut s = setup(&["a", "b"]);
    s.opts.stop_pods_on_exit = true;
    run(&s, vec![(secs(1), Event::Signal(SIGTERM))]);
    let stops: Vec<String> = s
        .exec
        .calls()
        .into_iter()
        .filter(|(t, _)| *t == secs(1))
        .map(|(_, c)| c)
        .collect();
    let mut stops = stops;
    stops.sort();
    assert_eq!(stops, vec!["stop-on-exit u1", "stop-on-exit u2"]);
    assert!(s.exec.running().is_empty());
}

#[test]
fn the_state_outlives_the_loop_and_a_removed_manifest_removes_its_pod() {
    let s = setup(&["web"]);
    run(&s, vec![(secs(1), Event::Signal(SIGTERM))]);
    assert_eq!(s.exec.running(), vec!["web".to_string()]);
    let state = status::read_state(&s.data).unwrap();
    assert_eq!(state.history["default/web"].uuid.as_deref(), Some("u1"));
    // A new loop on the same data dir: the manifest is gone, so is its pod.
    std::fs::remove_file(s.pods.join("web.yaml")).unwrap();
    s.clock.set(secs(10));
    run(&s, vec![(secs(12), Event::Signal(SIGTERM))]);
    assert_eq!(
        s.exec.calls(),
        vec![
            at(Duration::ZERO, "create web"),
            at(secs(10), "remove web u1")
        ]
    );
    assert!(s.exec.running().is_empty());
    assert!(status::read_status(&s.data)
        .unwrap()
        .unwrap()
        .pods
        .is_empty());
    assert!(status::read_state(&s.data).unwrap().history.is_empty());
}

#[test]
fn a_failed_removal_is_remembered_and_tried_again_after_each_pass() {
    let mut s = setup(&["web"]);
    run(&s, vec![(secs(1), Event::Signal(SIGTERM))]);
    std::fs::remove_file(s.pods.join("web.yaml")).unwrap();
    s.exec.fail_removes = true;
    s.clock.set(secs(10));
    run(&s, vec![(ms(10_900), Event::Signal(SIGTERM))]);
    let removes: Vec<(Duration, String)> = s.exec.calls().into_iter().skip(1).collect();
    assert_eq!(
        removes,
        [10_000, 10_200, 10_400, 10_600, 10_800]
            .into_iter()
            .map(|t| at(ms(t), "remove web u1"))
            .collect::<Vec<_>>()
    );
    assert_eq!(s.exec.running(), vec!["web".to_string()]);
    let state = status::read_state(&s.data).unwrap();
    let err = state.history["default/web"].last_error.clone().unwrap();
    assert_eq!(
        err.message,
        "cannot remove pod u1: a pod needs at least one app"
    );
}

/// The loop plans with the Node of its options: a pod placed on another host is
/// neither created nor a problem for `--once`, and shows NotForThisHost.
#[test]
fn once_skips_pods_for_other_hosts_without_a_problem() {
    let mut s = setup(&["here"]);
    s.opts.once = true;
    std::fs::write(
        s.pods.join("away.yaml"),
        format!("{}  nodeName: other-host\n", pod_yaml("away")),
    )
    .unwrap();
    let summary = run(&s, vec![]);
    assert_eq!(
        summary,
        Summary {
            pods: 2,
            problems: 0
        }
    );
    assert_eq!(s.exec.calls(), vec![at(Duration::ZERO, "create here")]);
    let away = status_of(&s.data, "away");
    assert_eq!(away.phase, Phase::NotForThisHost);
    assert_eq!(
        away.message.as_deref(),
        Some("spec.nodeName is other-host, this host is this-host")
    );
}
