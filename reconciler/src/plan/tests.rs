//! Table tests: one row per transition of the reconcile plan.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::k8s::{ReplaceStrategy, RestartPolicy};
use crate::testutil::{desired_pod, key};

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
}

const NOW: u64 = 10_000;

/// A desired pod: name, spec hash, restart policy, replace strategy, stale.
struct W(
    &'static str,
    &'static str,
    RestartPolicy,
    ReplaceStrategy,
    bool,
);

fn w(name: &'static str, hash: &'static str) -> W {
    W(
        name,
        hash,
        RestartPolicy::Always,
        ReplaceStrategy::StopFirst,
        false,
    )
}

fn wp(name: &'static str, hash: &'static str, policy: RestartPolicy) -> W {
    W(name, hash, policy, ReplaceStrategy::StopFirst, false)
}

/// An observed pod: name, uuid, hash, state, created (secs), started (secs).
fn pod(name: &str, uuid: &str, hash: &str, state: PodState, created: u64) -> ObservedPod {
    ObservedPod {
        uuid: uuid.into(),
        key: key(name),
        source: format!("/pods.d/{name}.yaml"),
        spec_hash: hash.into(),
        state,
        created_at: Some(t(created)),
        started_at: Some(t(created + 1)),
        succeeded: false,
        problem: None,
    }
}

/// An observed pod as the loop sees it (running pods ready).
fn seen(pod: ObservedPod) -> SeenPod {
    SeenPod {
        ready: pod.state.is_running(),
        started: pod.state.is_running(),
        has_readiness: false,
        app_restarts: 0,
        exits: String::new(),
        waiting: Vec::new(),
        pod,
    }
}

fn ok(mut p: ObservedPod) -> ObservedPod {
    p.succeeded = true;
    p
}

fn hist(hash: &str) -> History {
    History::new(hash)
}

struct Case {
    name: &'static str,
    want: Vec<W>,
    invalid: Vec<&'static str>,
    pods: Vec<ObservedPod>,
    history: Vec<(&'static str, History)>,
    expect: Vec<Step>,
}

fn run(case: &Case) -> Vec<Step> {
    let desired = Desired {
        pods: case
            .want
            .iter()
            .map(|W(name, hash, policy, strategy, stale)| {
                let mut p = desired_pod(name, hash);
                p.restart_policy = *policy;
                p.replace = *strategy;
                (
                    key(name),
                    Wanted {
                        pod: p,
                        stale: *stale,
                    },
                )
            })
            .collect(),
        invalid_files: case
            .invalid
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>(),
        node: Node::default(),
    };
    let observed = Observed {
        busy: BTreeSet::new(),
        pods: case.pods.iter().cloned().map(seen).collect(),
        history: case
            .history
            .iter()
            .map(|(n, h)| (key(n), h.clone()))
            .collect(),
    };
    decide(&desired, &observed, &BackoffPolicy::default(), t(NOW))
}

fn create(name: &str, restart: bool) -> Step {
    Step::Work(Work::Create {
        key: key(name),
        restart,
    })
}
fn remove(name: &str, uuid: &str, reason: RemoveReason) -> Step {
    Step::Work(Work::Remove {
        key: key(name),
        uuid: uuid.into(),
        reason,
    })
}
fn wait(name: &str, secs: u64) -> Step {
    Step::Wait {
        key: key(name),
        until: t(secs),
    }
}
fn backoff(name: &str, failed: &str, failures: u32, until: u64) -> Step {
    Step::Record(Record::BackOff {
        key: key(name),
        failed: failed.into(),
        failures,
        until: t(until),
    })
}

use PodState::*;
use RemoveReason::*;

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "a new manifest is created",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![],
            history: vec![],
            expect: vec![create("web", false)],
        },
        Case {
            name: "a running pod of the current spec is left alone",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![pod("web", "u1", "h1", Running, 0)],
            history: vec![(
                "web",
                History {
                    uuid: Some("u1".into()),
                    ..hist("h1")
                },
            )],
            expect: vec![],
        },
        Case {
            name: "a restarted reconciler adopts the running pod instead of restarting it",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![pod("web", "u1", "h1", Running, 0)],
            history: vec![],
            expect: vec![Step::Record(Record::Adopt {
                key: key("web"),
                uuid: "u1".into(),
            })],
        },
        Case {
            name: "a changed spec replaces the pod, stopping it first by default",
            want: vec![w("web", "h2")],
            invalid: vec![],
            pods: vec![pod("web", "u1", "h1", Running, 0)],
            history: vec![("web", History { uuid: Some("u1".into()), ..hist("h1") })],
            expect: vec![Step::Work(Work::Replace {
                key: key("web"),
                old: "u1".into(),
                strategy: ReplaceStrategy::StopFirst,
            })],
        },
        Case {
            name: "rkt.io/replace: start-first is passed on",
            want: vec![W("web", "h2", RestartPolicy::Always, ReplaceStrategy::StartFirst, false)],
            invalid: vec![],
            pods: vec![pod("web", "u1", "h1", Running, 0)],
            history: vec![],
            expect: vec![Step::Work(Work::Replace {
                key: key("web"),
                old: "u1".into(),
                strategy: ReplaceStrategy::StartFirst,
            })],
        },
        Case {
            name: "a replacement that failed waits for its back-off, the old pod keeps running",
            want: vec![w("web", "h2")],
            invalid: vec![],
            pods: vec![pod("web", "u1", "h1", Running, 0)],
            history: vec![(
                "web",
                History {
                    failures: 1,
                    retry_at: Some(t(NOW + 5)),
                    ..hist("h2")
                },
            )],
            expect: vec![wait("web", NOW + 5)],
        },
        Case {
            name: "a pod whose manifest is gone is removed",
            want: vec![],
            invalid: vec![],
            pods: vec![pod("web", "u1", "h1", Running, 0)],
            history: vec![],
            expect: vec![remove("web", "u1", NotDesired)],
        },
        Case {
            name: "every pod of a removed manifest goes, whatever its state",
            want: vec![],
            invalid: vec![],
            pods: vec![
                pod("web", "u1", "h1", Exited, 0),
                pod("web", "u2", "h1", Prepared, 5),
                pod("web", "u3", "h1", Preparing, 6),
            ],
            history: vec![],
            expect: vec![remove("web", "u2", NotDesired), remove("web", "u1", NotDesired)],
        },
        Case {
            name: "an invalid file keeps the pods it started (no last good version known)",
            want: vec![],
            invalid: vec!["/pods.d/web.yaml"],
            pods: vec![pod("web", "u1", "h1", Running, 0)],
            history: vec![],
            expect: vec![],
        },
        Case {
            name: "an invalid file's last good version keeps running",
            want: vec![W("web", "h1", RestartPolicy::Always, ReplaceStrategy::StopFirst, true)],
            invalid: vec!["/pods.d/web.yaml"],
            pods: vec![pod("web", "u1", "h1", Running, 0)],
            history: vec![("web", History { uuid: Some("u1".into()), ..hist("h1") })],
            expect: vec![],
        },
        Case {
            name: "the last good version of an invalid file is recreated when its pod dies",
            want: vec![W("web", "h1", RestartPolicy::Always, ReplaceStrategy::StopFirst, true)],
            invalid: vec!["/pods.d/web.yaml"],
            pods: vec![pod("web", "u1", "h1", Exited, 0)],
            history: vec![(
                "web",
                History {
                    uuid: Some("u1".into()),
                    failed_uuid: Some("u1".into()),
                    failures: 1,
                    retry_at: Some(t(NOW - 1)),
                    ..hist("h1")
                },
            )],
            expect: vec![remove("web", "u1", Leftover), create("web", true)],
        },
        Case {
            name: "restartPolicy Always: a pod that exited 0 backs off, then restarts",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![ok(pod("web", "u1", "h1", Exited, NOW - 20))],
            history: vec![("web", History { uuid: Some("u1".into()), ..hist("h1") })],
            expect: vec![backoff("web", "u1", 1, NOW + 10), wait("web", NOW + 10)],
        },
        Case {
            name: "restartPolicy OnFailure: exit 0 finishes the pod",
            want: vec![wp("job", "h1", RestartPolicy::OnFailure)],
            invalid: vec![],
            pods: vec![ok(pod("job", "u1", "h1", Exited, 0))],
            history: vec![],
            expect: vec![Step::Record(Record::Finish {
                key: key("job"),
                succeeded: true,
            })],
        },
        Case {
            name: "restartPolicy OnFailure: a failure backs off",
            want: vec![wp("job", "h1", RestartPolicy::OnFailure)],
            invalid: vec![],
            pods: vec![pod("job", "u1", "h1", Exited, NOW - 30)],
            history: vec![],
            expect: vec![backoff("job", "u1", 1, NOW + 10), wait("job", NOW + 10)],
        },
        Case {
            name: "restartPolicy Never: a failure finishes the pod, which is kept",
            want: vec![wp("job", "h1", RestartPolicy::Never)],
            invalid: vec![],
            pods: vec![pod("job", "u1", "h1", Exited, 0)],
            history: vec![],
            expect: vec![Step::Record(Record::Finish {
                key: key("job"),
                succeeded: false,
            })],
        },
        Case {
            name: "a finished pod stays finished; stray pods of its key go",
            want: vec![wp("job", "h1", RestartPolicy::Never)],
            invalid: vec![],
            pods: vec![
                pod("job", "u1", "h1", Exited, 0),
                pod("job", "u0", "h0", Exited, 0),
                pod("job", "u2", "h1", Prepared, 3),
            ],
            history: vec![("job", History { finished: Some(false), uuid: Some("u1".into()), ..hist("h1") })],
            expect: vec![remove("job", "u2", Leftover), remove("job", "u0", Leftover)],
        },
        Case {
            name: "a finished pod that was garbage-collected is not recreated",
            want: vec![wp("job", "h1", RestartPolicy::OnFailure)],
            invalid: vec![],
            pods: vec![],
            history: vec![("job", History { finished: Some(true), uuid: Some("u1".into()), ..hist("h1") })],
            expect: vec![],
        },
        Case {
            name: "a finished history of an older spec does not stop a new spec",
            want: vec![wp("job", "h2", RestartPolicy::Never)],
            invalid: vec![],
            pods: vec![pod("job", "u1", "h1", Exited, 0)],
            history: vec![("job", History { finished: Some(true), uuid: Some("u1".into()), ..hist("h1") })],
            expect: vec![remove("job", "u1", Leftover), create("job", false)],
        },
        Case {
            name: "during the back-off the dead pod is kept and nothing starts",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![pod("web", "u1", "h1", Exited, 0)],
            history: vec![(
                "web",
                History {
                    uuid: Some("u1".into()),
                    failed_uuid: Some("u1".into()),
                    failures: 2,
                    retry_at: Some(t(NOW + 7)),
                    ..hist("h1")
                },
            )],
            expect: vec![wait("web", NOW + 7)],
        },
        Case {
            name: "after the back-off the dead pod is removed and a new one created",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![pod("web", "u1", "h1", ExitedGarbage, 0)],
            history: vec![(
                "web",
                History {
                    uuid: Some("u1".into()),
                    failed_uuid: Some("u1".into()),
                    failures: 2,
                    retry_at: Some(t(NOW)),
                    ..hist("h1")
                },
            )],
            expect: vec![remove("web", "u1", Leftover), create("web", true)],
        },
        Case {
            name: "the back-off doubles with each consecutive failure",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![pod("web", "u3", "h1", Exited, NOW - 15)],
            history: vec![(
                "web",
                History {
                    uuid: Some("u3".into()),
                    failed_uuid: Some("u2".into()),
                    failures: 3,
                    ..hist("h1")
                },
            )],
            expect: vec![backoff("web", "u3", 4, NOW + 80), wait("web", NOW + 80)],
        },
        Case {
            name: "the back-off is capped at five minutes",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![pod("web", "u9", "h1", Exited, NOW - 15)],
            history: vec![("web", History { uuid: Some("u9".into()), failures: 9, ..hist("h1") })],
            expect: vec![backoff("web", "u9", 10, NOW + 300), wait("web", NOW + 300)],
        },
        Case {
            name: "a pod that ran ten minutes before exiting starts the back-off over",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![pod("web", "u5", "h1", Exited, NOW - 700)],
            history: vec![("web", History { uuid: Some("u5".into()), failures: 6, ..hist("h1") })],
            expect: vec![backoff("web", "u5", 1, NOW + 10), wait("web", NOW + 10)],
        },
        Case {
            name: "a pod running for ten minutes resets the back-off",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![pod("web", "u5", "h1", Running, NOW - 601)],
            history: vec![("web", History { uuid: Some("u5".into()), failures: 4, ..hist("h1") })],
            expect: vec![Step::Record(Record::ResetBackOff { key: key("web") })],
        },
        Case {
            name: "a pod running for less keeps its back-off count",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![pod("web", "u5", "h1", Running, NOW - 100)],
            history: vec![("web", History { uuid: Some("u5".into()), failures: 4, ..hist("h1") })],
            expect: vec![],
        },
        Case {
            name: "a running pod with a broken network is stopped",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![ObservedPod {
                problem: Some("network namespace /run/netns/x is gone".into()),
                ..pod("web", "u1", "h1", Running, 0)
            }],
            history: vec![("web", History { uuid: Some("u1".into()), ..hist("h1") })],
            expect: vec![Step::Work(Work::Stop {
                key: key("web"),
                uuid: "u1".into(),
                reason: "network namespace /run/netns/x is gone".into(),
            })],
        },
        Case {
            name: "a pod removed by hand is recreated after a back-off",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![],
            history: vec![("web", History { uuid: Some("u1".into()), ..hist("h1") })],
            expect: vec![backoff("web", "u1", 1, NOW + 10), wait("web", NOW + 10)],
        },
        Case {
            name: "a vanished pod whose back-off ran out is recreated as a restart",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![],
            history: vec![(
                "web",
                History {
                    uuid: Some("u1".into()),
                    failed_uuid: Some("u1".into()),
                    failures: 1,
                    retry_at: Some(t(NOW - 1)),
                    ..hist("h1")
                },
            )],
            expect: vec![create("web", true)],
        },
        Case {
            name: "restartPolicy Never: a vanished pod is not recreated",
            want: vec![wp("job", "h1", RestartPolicy::Never)],
            invalid: vec![],
            pods: vec![],
            history: vec![("job", History { uuid: Some("u1".into()), ..hist("h1") })],
            expect: vec![Step::Record(Record::Finish {
                key: key("job"),
                succeeded: false,
            })],
        },
        Case {
            name: "two running pods of one key: the newest stays",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![pod("web", "u1", "h1", Running, 0), pod("web", "u2", "h1", Running, 5)],
            history: vec![("web", History { uuid: Some("u2".into()), ..hist("h1") })],
            expect: vec![remove("web", "u1", Duplicate)],
        },
        Case {
            name: "an interrupted start-first replacement: the old spec's pod goes",
            want: vec![w("web", "h2")],
            invalid: vec![],
            pods: vec![pod("web", "u1", "h1", Running, 0), pod("web", "u2", "h2", Running, 5)],
            history: vec![],
            expect: vec![
                Step::Record(Record::Adopt {
                    key: key("web"),
                    uuid: "u2".into(),
                }),
                remove("web", "u1", Leftover),
            ],
        },
        Case {
            name: "a prepared pod left by an interrupted create is replaced by a fresh one",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![pod("web", "u1", "h1", Prepared, 0), pod("web", "u0", "h1", AbortedPrepare, 0)],
            history: vec![],
            expect: vec![
                remove("web", "u1", Leftover),
                remove("web", "u0", Leftover),
                create("web", false),
            ],
        },
        Case {
            name: "a pod moved to run/ but never started (interrupted start) is a leftover, not a crash",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![ObservedPod {
                started_at: None,
                ..pod("web", "u1", "h1", Exited, 0)
            }],
            history: vec![],
            expect: vec![remove("web", "u1", Leftover), create("web", false)],
        },
        Case {
            name: "a pod we started that died before writing its pid is a crash",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![ObservedPod {
                started_at: None,
                ..pod("web", "u1", "h1", Exited, NOW)
            }],
            history: vec![("web", History { uuid: Some("u1".into()), ..hist("h1") })],
            expect: vec![backoff("web", "u1", 1, NOW + 10), wait("web", NOW + 10)],
        },
        Case {
            name: "a pod being prepared by someone else is left alone",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![pod("web", "u1", "h1", Preparing, 0)],
            history: vec![],
            expect: vec![create("web", false)],
        },
        Case {
            name: "a failed create waits for its back-off",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![],
            history: vec![("web", History { failures: 1, retry_at: Some(t(NOW + 3)), ..hist("h1") })],
            expect: vec![wait("web", NOW + 3)],
        },
        Case {
            name: "a failed create is retried, not counted as a restart",
            want: vec![w("web", "h1")],
            invalid: vec![],
            pods: vec![],
            history: vec![("web", History { failures: 1, retry_at: Some(t(NOW)), ..hist("h1") })],
            expect: vec![create("web", false)],
        },
        Case {
            name: "a spec changed while its pod was dead: the old pod goes, the new spec starts at once",
            want: vec![w("web", "h2")],
            invalid: vec![],
            pods: vec![pod("web", "u1", "h1", Exited, 0)],
            history: vec![("web", History { uuid: Some("u1".into()), failed_uuid: Some("u1".into()), failures: 3, retry_at: Some(t(NOW + 100)), ..hist("h1") })],
            expect: vec![remove("web", "u1", Leftover), create("web", false)],
        },
        Case {
            name: "keys are independent: one held, one created, one removed",
            want: vec![w("a", "ha")],
            invalid: vec!["/pods.d/b.yaml"],
            pods: vec![pod("b", "ub", "hb", Running, 0), pod("c", "uc", "hc", Exited, 0)],
            history: vec![],
            expect: vec![create("a", false), remove("c", "uc", NotDesired)],
        },
    ]
}

#[test]
fn plan_table() {
    let mut failed = Vec::new();
    for case in cases() {
        let got = run(&case);
        if got != case.expect {
            failed.push(format!(
                "{}:\n  expected {:?}\n  got      {:?}",
                case.name, case.expect, got
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn plan_is_deterministic_and_idempotent_for_a_converged_set() {
    // Running pods of every desired key, with matching history: no action at all.
    let want: Vec<W> = vec![w("a", "h"), w("b", "h"), w("c", "h")];
    let pods: Vec<ObservedPod> = ["a", "b", "c"]
        .iter()
        .map(|n| pod(n, &format!("u-{n}"), "h", Running, 0))
        .collect();
    let history = ["a", "b", "c"]
        .iter()
        .map(|n| {
            (
                *n,
                History {
                    uuid: Some(format!("u-{n}")),
                    ..hist("h")
                },
            )
        })
        .collect();
    let case = Case {
        name: "converged",
        want,
        invalid: vec![],
        pods,
        history,
        expect: vec![],
    };
    assert_eq!(run(&case), Vec::<Step>::new());
    assert_eq!(run(&case), run(&case));
}

#[test]
fn plan_splits_work_from_bookkeeping_and_leaves_busy_keys_alone() {
    let desired = Desired {
        pods: [("web", "h2"), ("crash", "h"), ("adopt", "h"), ("busy", "h")]
            .into_iter()
            .map(|(n, h)| {
                (
                    key(n),
                    Wanted {
                        pod: desired_pod(n, h),
                        stale: false,
                    },
                )
            })
            .collect(),
        invalid_files: BTreeSet::new(),
        node: Node::default(),
    };
    let observed = Observed {
        pods: vec![
            pod("web", "u-web", "h1", Running, 0),
            pod("crash", "u-crash", "h", Exited, 0),
            pod("adopt", "u-adopt", "h", Running, 0),
            pod("busy", "u-busy", "h", Exited, 0),
        ]
        .into_iter()
        .map(seen)
        .collect(),
        history: [
            (
                "web",
                History {
                    uuid: Some("u-web".into()),
                    ..hist("h1")
                },
            ),
            (
                "crash",
                History {
                    uuid: Some("u-crash".into()),
                    ..hist("h")
                },
            ),
        ]
        .into_iter()
        .map(|(n, h)| (key(n), h))
        .collect(),
        busy: [key("busy")].into(),
    };
    let backoff = BackoffPolicy::default();
    let steps = decide(&desired, &observed, &backoff, t(NOW));
    assert!(
        steps.iter().any(|s| s.key() == &key("busy")),
        "the busy key has steps: {steps:?}"
    );
    let until = t(NOW + 10);
    let p = plan(&desired, &observed, &backoff, t(NOW));
    assert_eq!(
        p.work,
        vec![Work::Replace {
            key: key("web"),
            old: "u-web".into(),
            strategy: ReplaceStrategy::StopFirst,
        }]
    );
    assert_eq!(
        p.records,
        vec![
            Record::Adopt {
                key: key("adopt"),
                uuid: "u-adopt".into(),
            },
            Record::BackOff {
                key: key("crash"),
                failed: "u-crash".into(),
                failures: 1,
                until,
            },
        ]
    );
    assert_eq!(p.waits, [(key("crash"), until)].into());
    assert_eq!(p.wake_at(), Some(until));
    // The phases are those the plan leaves behind: its back-off recorded, its work
    // in flight.
    let phase = |n: &str| {
        let st = &p.phases[&key(n)];
        (st.phase, st.uuid.as_deref(), st.message.as_deref())
    };
    assert_eq!(
        phase("web"),
        (
            Phase::Running,
            Some("u-web"),
            Some("the spec changed; replacing the pod")
        )
    );
    assert_eq!(phase("adopt"), (Phase::Running, Some("u-adopt"), None));
    let crash = format!(
        "back-off: restarting at {} (failure 1); exits: ",
        crate::time::format(until)
    );
    assert_eq!(
        phase("crash"),
        (
            Phase::CrashLoopBackOff,
            Some("u-crash"),
            Some(crash.as_str())
        )
    );
    assert_eq!(
        phase("busy"),
        (Phase::Pending, None, Some("creating the pod"))
    );
    // Without the plan's records and work, the same pods read differently.
    let before = phases(&desired, &observed, t(NOW));
    assert_eq!(before[&key("crash")].phase, Phase::Pending);
    assert_eq!(before[&key("crash")].message, None);
}

#[test]
fn backoff_delays() {
    let p = BackoffPolicy::default();
    let secs: Vec<u64> = (1..=8).map(|n| p.delay(n).as_secs()).collect();
    assert_eq!(secs, vec![10, 20, 40, 80, 160, 300, 300, 300]);
    assert_eq!(p.delay(0).as_secs(), 10);
    assert_eq!(p.delay(u32::MAX).as_secs(), 300);
    let fast = BackoffPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(250),
        reset: Duration::from_secs(1),
    };
    assert_eq!(fast.delay(3), Duration::from_millis(250));
}

#[test]
fn history_records_bookkeeping_and_outcomes() {
    let p = BackoffPolicy::default();
    let mut h = History::new("h1");
    h.record(&Record::Adopt {
        key: key("a"),
        uuid: "u1".into(),
    });
    assert_eq!(h.uuid.as_deref(), Some("u1"));
    let Step::Record(backoff) = backoff("a", "u1", 2, 50) else {
        unreachable!()
    };
    h.record(&backoff);
    assert_eq!(
        (h.failures, h.retry_at, h.failed_uuid.as_deref()),
        (2, Some(t(50)), Some("u1"))
    );
    h.started("u2", true);
    assert_eq!(
        (h.restarts, h.uuid.as_deref(), h.retry_at),
        (1, Some("u2"), None)
    );
    assert_eq!(h.failures, 2, "the count only resets after a long run");
    h.record(&Record::ResetBackOff { key: key("a") });
    assert_eq!(h.failures, 0);
    let err = ManifestError {
        file: "/pods.d/a.yaml".into(),
        line: Some(1),
        column: None,
        field: "spec.containers[0].image".into(),
        message: "cannot fetch".into(),
    };
    h.failed(err.clone(), &p, t(100));
    assert_eq!((h.failures, h.retry_at), (1, Some(t(110))));
    h.failed(err.clone(), &p, t(200));
    assert_eq!((h.failures, h.retry_at), (2, Some(t(220))));
    assert_eq!(h.last_error, Some(err));
    h.started("u3", false);
    assert_eq!((h.restarts, h.last_error.is_none()), (1, true));
    h.record(&Record::Finish {
        key: key("a"),
        succeeded: true,
    });
    assert_eq!(h.finished, Some(true));

    // Round trip through the state file's JSON.
    h.retry_at = Some(t(300));
    let json = serde_json::to_string(&h).unwrap();
    assert_eq!(serde_json::from_str::<History>(&json).unwrap(), h);
}

/// Pods placed on other hosts: not run here, removed if they run, shown as
/// NotForThisHost with the selector that does not match.
#[test]
fn pods_for_other_hosts() {
    use crate::k8s::{NodeOperator, NodeRequirement, NodeSelectorTerm, Placement};
    let host = Node::new(
        "this-host",
        [("disk".to_string(), "ssd".to_string())].into(),
    );
    let name = |n: &str| Placement {
        node_name: Some(n.into()),
        ..Placement::default()
    };
    let selector = |k: &str, v: &str| Placement {
        node_selector: [(k.to_string(), v.to_string())].into(),
        ..Placement::default()
    };
    let affinity = |op: NodeOperator, values: &[&str]| Placement {
        required: Some(vec![NodeSelectorTerm {
            match_expressions: vec![NodeRequirement {
                key: "disk".into(),
                operator: op,
                values: values.iter().map(|v| v.to_string()).collect(),
            }],
            match_fields: vec![],
        }]),
        ..Placement::default()
    };
    struct Row {
        name: &'static str,
        placement: Placement,
        pods: Vec<ObservedPod>,
        expect: Vec<Step>,
        phase: Phase,
        message: Option<&'static str>,
    }
    let rows = vec![
        Row {
            name: "nodeName of another host: nothing runs, no error",
            placement: name("other-host"),
            pods: vec![],
            expect: vec![],
            phase: Phase::NotForThisHost,
            message: Some("spec.nodeName is other-host, this host is this-host"),
        },
        Row {
            name: "nodeName of this host: created",
            placement: name("this-host"),
            pods: vec![],
            expect: vec![create("web", false)],
            phase: Phase::Pending,
            message: None,
        },
        Row {
            name: "the hostname label selects this host",
            placement: selector("kubernetes.io/hostname", "this-host"),
            pods: vec![pod("web", "u1", "h", Running, 0)],
            expect: vec![Step::Record(Record::Adopt {
                key: key("web"),
                uuid: "u1".into(),
            })],
            phase: Phase::Running,
            message: None,
        },
        Row {
            name: "moved to another host by nodeSelector: its running pod goes",
            placement: selector("disk", "hdd"),
            pods: vec![pod("web", "u1", "h", Running, 0)],
            expect: vec![remove("web", "u1", RemoveReason::NotForThisHost)],
            phase: Phase::NotForThisHost,
            message: Some(
                "spec.nodeSelector wants disk=hdd, this host has disk=ssd; removing its pod \
                 from this host",
            ),
        },
        Row {
            name: "required affinity excludes this host: every pod of the key goes, newest first",
            placement: affinity(NodeOperator::NotIn, &["ssd"]),
            pods: vec![
                pod("web", "u-old", "h0", Exited, 0),
                pod("web", "u-new", "h", Running, 5),
            ],
            expect: vec![
                remove("web", "u-new", RemoveReason::NotForThisHost),
                remove("web", "u-old", RemoveReason::NotForThisHost),
            ],
            phase: Phase::NotForThisHost,
            message: None,
        },
        Row {
            name: "required affinity matches this host",
            placement: affinity(NodeOperator::In, &["ssd", "nvme"]),
            pods: vec![],
            expect: vec![create("web", false)],
            phase: Phase::Pending,
            message: None,
        },
    ];
    let mut failed = Vec::new();
    for row in rows {
        let mut p = desired_pod("web", "h");
        p.placement = row.placement;
        let desired = Desired {
            pods: [(
                key("web"),
                Wanted {
                    pod: p,
                    stale: false,
                },
            )]
            .into(),
            invalid_files: BTreeSet::new(),
            node: host.clone(),
        };
        let observed = Observed {
            pods: row.pods.into_iter().map(seen).collect(),
            history: BTreeMap::new(),
            busy: BTreeSet::new(),
        };
        let steps = decide(&desired, &observed, &BackoffPolicy::default(), t(NOW));
        let st = &phases(&desired, &observed, t(NOW))[&key("web")];
        let message_ok = match row.message {
            Some(m) => st.message.as_deref() == Some(m),
            None => st.phase != Phase::NotForThisHost || st.message.is_some(),
        };
        if steps != row.expect || st.phase != row.phase || !message_ok {
            failed.push(format!(
                "{}:\n  expected {:?} {:?} {:?}\n  got      {:?} {:?} {:?}",
                row.name, row.expect, row.phase, row.message, steps, st.phase, st.message
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// A running pod whose manifest changes to place it elsewhere is removed through the
/// plan, and once it is gone the key is NotForThisHost without a pending removal.
#[test]
fn a_pod_moved_to_another_host_is_removed() {
    let host = Node::new("this-host", BTreeMap::new());
    let mut p = desired_pod("web", "h");
    let mut desired = Desired {
        pods: [(
            key("web"),
            Wanted {
                pod: p.clone(),
                stale: false,
            },
        )]
        .into(),
        invalid_files: BTreeSet::new(),
        node: host,
    };
    let running = Observed {
        pods: vec![seen(pod("web", "u1", "h", Running, 0))],
        history: [(
            key("web"),
            History {
                uuid: Some("u1".into()),
                ..hist("h")
            },
        )]
        .into(),
        busy: BTreeSet::new(),
    };
    let backoff = BackoffPolicy::default();
    assert_eq!(plan(&desired, &running, &backoff, t(NOW)).work, vec![]);
    p.placement.node_name = Some("other-host".into());
    desired.pods.get_mut(&key("web")).unwrap().pod = p;
    let moved = plan(&desired, &running, &backoff, t(NOW));
    assert_eq!(
        moved.work,
        vec![Work::Remove {
            key: key("web"),
            uuid: "u1".into(),
            reason: RemoveReason::NotForThisHost,
        }]
    );
    let st = &moved.phases[&key("web")];
    assert_eq!(st.phase, Phase::NotForThisHost);
    assert!(st
        .message
        .as_deref()
        .unwrap()
        .ends_with("removing its pod from this host"));
    let gone = Observed {
        pods: vec![],
        ..running
    };
    let after = plan(&desired, &gone, &backoff, t(NOW));
    assert!(
        after.work.is_empty() && after.records.is_empty(),
        "{after:?}"
    );
    assert_eq!(
        after.phases[&key("web")].message.as_deref(),
        Some("spec.nodeName is other-host, this host is this-host")
    );
}
