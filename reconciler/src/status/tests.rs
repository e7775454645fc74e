use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::observe::DesiredView;
use std::collections::BTreeSet;

use crate::plan::{Observed, ObservedPod, Wanted};
use crate::testutil::{desired_pod, key};
use stage0::pod::dir::PodState;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn seen(name: &str, uuid: &str, hash: &str, state: PodState) -> SeenPod {
    SeenPod {
        pod: ObservedPod {
            uuid: uuid.into(),
            key: key(name),
            source: format!("/pods.d/{name}.yaml"),
            spec_hash: hash.into(),
            state,
            created_at: Some(t(0)),
            started_at: Some(t(1)),
            succeeded: false,
            problem: None,
        },
        ready: state.is_running(),
        started: state.is_running(),
        has_readiness: false,
        app_restarts: 2,
        exits: "app=3".into(),
        waiting: Vec::new(),
    }
}

fn view(names: &[(&str, &str, bool)], invalid: &[&str]) -> DesiredView {
    let mut v = DesiredView::default();
    for (name, hash, stale) in names {
        v.desired.pods.insert(
            key(name),
            Wanted {
                pod: desired_pod(name, hash),
                stale: *stale,
            },
        );
    }
    for f in invalid {
        v.desired.invalid_files.insert(f.to_string());
        v.file_errors.insert(
            f.to_string(),
            vec![ManifestError {
                file: f.to_string(),
                line: Some(4),
                column: Some(7),
                field: "spec.containers[0].image".into(),
                message: "expected a string".into(),
            }],
        );
    }
    v
}

fn derive(
    v: &DesiredView,
    seen: &[SeenPod],
    history: Vec<(&str, History)>,
    busy: &[&str],
    previous: &[PodStatus],
    now: SystemTime,
) -> Vec<PodStatus> {
    let busy: BTreeSet<PodKey> = busy.iter().map(|n| key(n)).collect();
    let observed = Observed {
        busy,
        pods: seen.to_vec(),
        history: history.into_iter().map(|(n, h)| (key(n), h)).collect(),
    };
    let phases = crate::plan::phases(&v.desired, &observed, now);
    derive_pods(&Inputs {
        view: v,
        seen,
        phases: &phases,
        history: &observed.history,
        previous,
        now,
    })
}

#[test]
fn phases_follow_pods_and_history() {
    let v = view(
        &[
            ("run", "h", false),
            ("crash", "h", false),
            ("done", "h", false),
            ("new", "h", false),
            ("broken", "h", true),
            ("upd", "h2", false),
            ("loop", "h", false),
            ("starting", "h", false),
        ],
        &["/pods.d/broken.yaml", "/pods.d/held.yaml"],
    );
    let pods = vec![
        seen("run", "u-run", "h", PodState::Running),
        seen("crash", "u-crash", "h", PodState::Exited),
        seen("done", "u-done", "h", PodState::Exited),
        seen("upd", "u-upd", "h1", PodState::Running),
        SeenPod {
            waiting: vec![("app".into(), Some("2030-01-01T00:00:00Z".into()))],
            ..seen("loop", "u-loop", "h", PodState::Running)
        },
        seen("held", "u-held", "hx", PodState::Running),
        SeenPod {
            ready: false,
            started: false,
            ..seen("starting", "u-starting", "h", PodState::Running)
        },
    ];
    let err = ManifestError {
        file: "/pods.d/new.yaml".into(),
        line: Some(1),
        column: None,
        field: "spec.containers[0].image".into(),
        message: "cannot fetch: no signature".into(),
    };
    let history = vec![
        (
            "run",
            History {
                restarts: 1,
                uuid: Some("u-run".into()),
                ..History::new("h")
            },
        ),
        (
            "crash",
            History {
                failed_uuid: Some("u-crash".into()),
                failures: 2,
                retry_at: Some(t(50)),
                ..History::new("h")
            },
        ),
        (
            "done",
            History {
                finished: Some(true),
                ..History::new("h")
            },
        ),
        (
            "new",
            History {
                failures: 1,
                retry_at: Some(t(40)),
                last_error: Some(err.clone()),
                ..History::new("h")
            },
        ),
    ];
    let st = derive(&v, &pods, history, &[], &[], t(30));
    let get = |k: &str| st.iter().find(|s| s.key == format!("default/{k}")).unwrap();

    let run = get("run");
    assert_eq!(
        (run.phase, run.uuid.as_deref(), run.ready),
        (Phase::Running, Some("u-run"), true)
    );
    assert_eq!(run.restarts, 3, "recreations plus in-place app restarts");

    let crash = get("crash");
    assert_eq!(crash.phase, Phase::CrashLoopBackOff);
    assert!(
        crash.message.as_deref().unwrap().contains("app=3"),
        "{crash:?}"
    );

    assert_eq!(get("done").phase, Phase::Succeeded);

    let new = get("new");
    assert_eq!(new.phase, Phase::Pending);
    assert_eq!(new.last_error.as_ref(), Some(&err));

    let broken = get("broken");
    assert_eq!(broken.phase, Phase::Invalid);
    let e = broken.last_error.as_ref().unwrap();
    assert_eq!((e.file.as_str(), e.line), ("/pods.d/broken.yaml", Some(4)));

    let upd = get("upd");
    assert_eq!(
        (upd.phase, upd.uuid.as_deref()),
        (Phase::Running, Some("u-upd"))
    );
    assert!(upd.message.as_deref().unwrap().contains("replacing"));

    let looping = get("loop");
    assert_eq!(
        looping.phase,
        Phase::CrashLoopBackOff,
        "in-place restarts by stage1"
    );
    assert_eq!(looping.uuid.as_deref(), Some("u-loop"));
    assert!(looping
        .message
        .as_deref()
        .unwrap()
        .contains("app (restarting at 2030"));

    let held = get("held");
    assert_eq!(held.phase, Phase::Running);
    assert_eq!(held.file, "/pods.d/held.yaml");
    assert_eq!(held.last_error.as_ref().unwrap().line, Some(4));
    // In run/ while its networks are attached, before stage1 started its apps: not
    // Running yet (apply --wait must not take it for running).
    let starting = get("starting");
    assert_eq!(
        (starting.phase, starting.uuid.as_deref(), starting.ready),
        (Phase::Pending, Some("u-starting"), false)
    );
    assert_eq!(starting.message.as_deref(), Some("starting the pod"));
    assert_eq!(st.len(), 9);
}

#[test]
fn transition_times_change_only_with_the_phase() {
    let v = view(&[("web", "h", false)], &[]);
    let first = derive(&v, &[], vec![], &["web"], &[], t(10));
    assert_eq!(first[0].phase, Phase::Pending);
    assert_eq!(first[0].last_transition_time, t(10));
    let again = derive(&v, &[], vec![], &[], &first, t(20));
    assert_eq!(again[0].last_transition_time, t(10));
    let running = derive(
        &v,
        &[seen("web", "u", "h", PodState::Running)],
        vec![],
        &[],
        &again,
        t(30),
    );
    assert_eq!(running[0].phase, Phase::Running);
    assert_eq!(running[0].last_transition_time, t(30));
}

#[test]
fn a_pods_warnings_are_in_its_status_and_its_json() {
    let mut v = view(&[("web", "h", false), ("db", "h", false)], &[]);
    let warning = ManifestError {
        file: "/pods.d/web.yaml".into(),
        line: Some(9),
        column: Some(3),
        field: "spec.priorityClassName".into(),
        message: "priorityClassName is ignored: scheduling does not apply".into(),
    };
    v.desired
        .pods
        .get_mut(&key("web"))
        .unwrap()
        .pod
        .warnings
        .push(warning.clone());
    let pods = derive(&v, &[], vec![], &[], &[], t(5));
    let web = pods.iter().find(|p| p.name == "web").unwrap();
    let db = pods.iter().find(|p| p.name == "db").unwrap();
    assert_eq!(web.warnings, vec![warning]);
    assert!(db.warnings.is_empty());
    // Warnings are not errors.
    assert_eq!(web.last_error, None);
    assert_ne!(web.phase, Phase::Invalid);

    let json = serde_json::to_value(web).unwrap();
    assert_eq!(json["warnings"][0]["field"], "spec.priorityClassName");
    assert_eq!(json["warnings"][0]["line"], 9);
    let db_json = serde_json::to_value(db).unwrap();
    assert!(db_json.get("warnings").is_none(), "{db_json}");
    let back: PodStatus = serde_json::from_value(json).unwrap();
    assert_eq!(&back, web);
}

#[test]
fn status_and_state_files_are_replaced_atomically_and_read_back() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(read_status(d.path()).unwrap(), None);
    assert_eq!(read_state(d.path()).unwrap(), State::default());
    let v = view(&[("web", "h", false)], &["/pods.d/bad.yaml"]);
    let status = StatusFile {
        warnings: vec![],
        version: STATUS_VERSION,
        updated_at: t(5),
        pid: 42,
        pods_dir: "/etc/rkt/pods.d".into(),
        resolved_dir: Some("/etc/rkt/pods.d".into()),
        dir_error: None,
        pods: derive(&v, &[], vec![], &[], &[], t(5)),
        files: derive_files(&v),
    };
    write_status(d.path(), &status).unwrap();
    assert_eq!(read_status(d.path()).unwrap(), Some(status.clone()));
    let text = fs::read_to_string(d.path().join("reconcile/status.json")).unwrap();
    assert!(text.contains("\"phase\": \"Pending\""), "{text}");
    assert!(text.contains("\"lastTransitionTime\""), "{text}");
    assert!(text.contains("\"line\": 4"), "{text}");

    let mut state = State::default();
    let mut history = BTreeMap::new();
    history.insert(
        key("web"),
        History {
            restarts: 3,
            ..History::new("h")
        },
    );
    state.set_history(&history);
    state
        .last_good
        .insert("/pods.d/web.yaml".into(), vec![desired_pod("web", "h")]);
    write_state(d.path(), &state).unwrap();
    let back = read_state(d.path()).unwrap();
    assert_eq!(back.history(), history);
    assert_eq!(back.last_good, state.last_good);

    // No temp files are left behind.
    let names: Vec<String> = fs::read_dir(d.path().join("reconcile"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");

    // A corrupt file is an error naming it, not an empty status.
    fs::write(d.path().join("reconcile/status.json"), "{").unwrap();
    let e = read_status(d.path()).unwrap_err();
    assert!(e.to_string().contains("status.json"), "{e}");
}
