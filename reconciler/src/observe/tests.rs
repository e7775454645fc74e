use std::fs;
use std::os::unix::fs::symlink;

use super::*;
use crate::testutil::{desired_pod, key};

#[test]
fn manifest_names() {
    for (name, want) in [
        ("web.yaml", true),
        ("web.yml", true),
        ("web.json", true),
        ("a.b.yaml", true),
        (".web.yaml", false),
        (".#web.yaml", false),
        ("#web.yaml#", false),
        ("web.yaml~", false),
        ("web.yaml.swp", false),
        (".web.yaml.swp", false),
        ("web.yaml.tmp", false),
        ("web.txt", false),
        ("README", false),
        (".yaml", false),
        ("yaml", false),
    ] {
        assert_eq!(is_manifest_name(name), want, "{name}");
    }
}

fn names(scan: &DirScan) -> Vec<String> {
    scan.files
        .iter()
        .map(|f| {
            Path::new(&f.path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn scan_reads_only_manifests_in_name_order() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("pods.d");
    fs::create_dir(&dir).unwrap();
    for name in [
        "b.yaml",
        "a.yml",
        "c.json",
        ".hidden.yaml",
        "web.yaml~",
        ".#web.yaml",
        "web.yaml.swp",
        "notes.txt",
    ] {
        fs::write(dir.join(name), "apiVersion: v1\nkind: Pod\n").unwrap();
    }
    fs::write(dir.join("empty.yaml"), "  \n").unwrap();
    fs::create_dir(dir.join("sub.yaml")).unwrap();
    fs::create_dir(dir.join("nested")).unwrap();
    fs::write(dir.join("nested/deep.yaml"), "x").unwrap();
    // A symlinked file is read like a file.
    fs::write(d.path().join("outside.yaml"), "x: 1\n").unwrap();
    symlink(d.path().join("outside.yaml"), dir.join("linked.yaml")).unwrap();

    let scan = scan_dir(&dir);
    assert_eq!(scan.error, None);
    assert_eq!(scan.resolved, Some(fs::canonicalize(&dir).unwrap()));
    assert_eq!(
        names(&scan),
        ["a.yml", "b.yaml", "c.json", "empty.yaml", "linked.yaml"]
    );
    assert_eq!(scan.files[0].path, dir.join("a.yml").display().to_string());
    let empty = &scan.files[3];
    assert!(empty.pods.is_empty());
    assert_eq!(empty.errors.len(), 1);
    assert!(
        empty.errors[0].message.contains("empty"),
        "{:?}",
        empty.errors
    );
    assert_eq!(empty.errors[0].line, Some(1));
}

#[test]
fn a_missing_dir_is_an_empty_set_and_an_unreadable_one_an_error() {
    let d = tempfile::tempdir().unwrap();
    let scan = scan_dir(&d.path().join("nope"));
    assert_eq!(
        (scan.resolved, scan.files.len(), scan.error),
        (None, 0, None)
    );

    // A dangling symlink is a missing directory too.
    symlink(d.path().join("gone"), d.path().join("link")).unwrap();
    let scan = scan_dir(&d.path().join("link"));
    assert_eq!((scan.resolved, scan.error), (None, None));

    // A file where the directory should be cannot be read: an error, not "empty".
    fs::write(d.path().join("file"), "x").unwrap();
    let scan = scan_dir(&d.path().join("file"));
    assert!(scan.error.is_some(), "{scan:?}");
}

#[test]
fn oversized_files_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let f = fs::File::create(d.path().join("big.yaml")).unwrap();
    f.set_len(MAX_MANIFEST_BYTES + 1).unwrap();
    let scan = scan_dir(d.path());
    assert_eq!(scan.files.len(), 1);
    assert!(
        scan.files[0].errors[0]
            .message
            .contains("larger than 10 MiB"),
        "{:?}",
        scan.files[0].errors
    );
}

#[test]
fn a_symlinked_dir_is_followed_and_a_swap_is_seen_as_one_change() {
    let d = tempfile::tempdir().unwrap();
    let rev1 = d.path().join(".worktrees/rev1");
    let rev2 = d.path().join(".worktrees/rev2");
    fs::create_dir_all(&rev1).unwrap();
    fs::create_dir_all(&rev2).unwrap();
    fs::write(rev1.join("a.yaml"), "a").unwrap();
    fs::write(rev1.join("b.yaml"), "b").unwrap();
    fs::write(rev2.join("b.yaml"), "b2").unwrap();
    fs::write(rev2.join("c.yaml"), "c").unwrap();
    let link = d.path().join("pods.d");
    symlink(".worktrees/rev1", &link).unwrap();

    let scan = scan_dir(&link);
    assert_eq!(scan.resolved, Some(fs::canonicalize(&rev1).unwrap()));
    assert_eq!(names(&scan), ["a.yaml", "b.yaml"]);
    // Paths are reported through the link, so they stay the same across revisions.
    assert_eq!(
        scan.files[1].path,
        link.join("b.yaml").display().to_string()
    );

    // GitOps-style atomic swap: a new link renamed over the old one.
    symlink(".worktrees/rev2", d.path().join(".pods.d.new")).unwrap();
    fs::rename(d.path().join(".pods.d.new"), &link).unwrap();
    fs::remove_dir_all(&rev1).unwrap();
    let scan = scan_dir(&link);
    assert_eq!(scan.resolved, Some(fs::canonicalize(&rev2).unwrap()));
    assert_eq!(names(&scan), ["b.yaml", "c.yaml"]);
    assert_eq!(
        scan.files[0].path,
        link.join("b.yaml").display().to_string()
    );
}

fn file(path: &str, pods: Vec<DesiredPod>, errors: usize) -> ManifestFile {
    ManifestFile {
        path: path.into(),
        pods,
        errors: (0..errors)
            .map(|i| ManifestError {
                file: path.into(),
                line: Some(7 + i),
                column: Some(3),
                field: "spec".into(),
                message: "broken".into(),
            })
            .collect(),
    }
}

fn at(mut p: DesiredPod, file: &str, line: usize) -> DesiredPod {
    p.file = file.into();
    p.line = line;
    p
}

fn scan_of(files: Vec<ManifestFile>) -> DirScan {
    DirScan {
        dir: "/pods.d".into(),
        resolved: Some("/pods.d".into()),
        files,
        error: None,
    }
}

#[test]
fn the_first_definition_of_a_key_by_path_wins() {
    let scan = scan_of(vec![
        file(
            "/pods.d/a.yaml",
            vec![at(desired_pod("web", "ha"), "/pods.d/a.yaml", 1)],
            0,
        ),
        file(
            "/pods.d/b.yaml",
            vec![
                at(desired_pod("db", "hdb"), "/pods.d/b.yaml", 1),
                at(desired_pod("web", "hb"), "/pods.d/b.yaml", 9),
            ],
            0,
        ),
    ]);
    let mut last_good = LastGood::new();
    let view = build_desired(&scan, &mut last_good);
    assert_eq!(view.desired.pods.len(), 2);
    assert_eq!(view.desired.pods[&key("web")].pod.spec_hash, "ha");
    assert_eq!(view.desired.pods[&key("db")].pod.spec_hash, "hdb");
    let errs = &view.file_errors["/pods.d/b.yaml"];
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].line, Some(9));
    assert!(
        errs[0]
            .message
            .contains("default/web is already defined in /pods.d/a.yaml:1"),
        "{}",
        errs[0].message
    );
    // A duplicate does not make the file invalid: its other pods are managed normally.
    assert!(view.desired.invalid_files.is_empty());
}

#[test]
fn an_invalid_file_keeps_its_last_good_pods_until_fixed_or_deleted() {
    let path = "/pods.d/app.yaml";
    let mut last_good = LastGood::new();
    let good = scan_of(vec![file(
        path,
        vec![
            at(desired_pod("web", "h1"), path, 1),
            at(desired_pod("db", "h1"), path, 20),
        ],
        0,
    )]);
    let view = build_desired(&good, &mut last_good);
    assert!(view.desired.pods.values().all(|w| !w.stale));

    // Half-written: nothing parses.
    let broken = scan_of(vec![file(path, vec![], 1)]);
    let view = build_desired(&broken, &mut last_good);
    assert!(view.desired.invalid_files.contains(path));
    assert_eq!(view.desired.pods.len(), 2);
    assert!(view.desired.pods.values().all(|w| w.stale));
    assert_eq!(view.desired.pods[&key("web")].pod.spec_hash, "h1");
    assert_eq!(view.first_error(path).unwrap().line, Some(7));

    // One document fixed and changed, the other still broken.
    let partly = scan_of(vec![file(
        path,
        vec![at(desired_pod("web", "h2"), path, 1)],
        1,
    )]);
    let view = build_desired(&partly, &mut last_good);
    assert_eq!(view.desired.pods[&key("web")].pod.spec_hash, "h2");
    assert!(!view.desired.pods[&key("web")].stale);
    assert!(view.desired.pods[&key("db")].stale);

    // Fixed: the file's set is exactly what it says now (db removed from it).
    let fixed = scan_of(vec![file(
        path,
        vec![at(desired_pod("web", "h3"), path, 1)],
        0,
    )]);
    let view = build_desired(&fixed, &mut last_good);
    assert_eq!(view.desired.pods.len(), 1);
    assert!(view.desired.invalid_files.is_empty());
    assert_eq!(last_good[path].len(), 1);

    // Broken again, then deleted: the last good version goes with the file.
    build_desired(&scan_of(vec![file(path, vec![], 2)]), &mut last_good);
    let view = build_desired(&scan_of(vec![]), &mut last_good);
    assert!(view.desired.pods.is_empty());
    assert!(last_good.is_empty());
}

#[test]
fn strict_refuses_pods_with_warnings_and_keeps_their_last_good_version() {
    let path = "/pods.d/app.yaml";
    let warned = |hash: &str| {
        let mut p = at(desired_pod("web", hash), path, 1);
        p.warnings.push(ManifestError {
            file: path.into(),
            line: Some(5),
            column: Some(3),
            field: "spec.tolerations".into(),
            message: "tolerations is ignored: scheduling does not apply".into(),
        });
        p
    };
    let strict = |mut f: ManifestFile| {
        f.make_strict();
        f
    };
    let mut last_good = LastGood::new();
    // Without --strict, a pod with warnings is a good pod.
    let lenient = scan_of(vec![file(
        path,
        vec![warned("h1"), at(desired_pod("db", "h1"), path, 20)],
        0,
    )]);
    let view = build_desired(&lenient, &mut last_good);
    assert!(view.desired.invalid_files.is_empty());
    assert_eq!(view.desired.pods.len(), 2);

    // With --strict, the changed pod with warnings is refused like one with errors:
    // the file is invalid, its last good web keeps running, db is managed normally.
    let scan = scan_of(vec![strict(file(
        path,
        vec![warned("h2"), at(desired_pod("db", "h2"), path, 20)],
        0,
    ))]);
    let view = build_desired(&scan, &mut last_good);
    assert!(view.desired.invalid_files.contains(path));
    let first = view.first_error(path).unwrap();
    assert_eq!(
        (first.line, first.field.as_str()),
        (Some(5), "spec.tolerations")
    );
    assert!(view.desired.pods[&key("web")].stale);
    assert_eq!(view.desired.pods[&key("web")].pod.spec_hash, "h1");
    assert!(!view.desired.pods[&key("db")].stale);
    assert_eq!(view.desired.pods[&key("db")].pod.spec_hash, "h2");

    // A file without warnings is untouched by --strict.
    let clean = strict(file(path, vec![at(desired_pod("db", "h3"), path, 20)], 0));
    assert!(clean.errors.is_empty());
    assert_eq!(clean.pods.len(), 1);
}

#[test]
fn keys_parse_back() {
    assert_eq!(parse_key("default/web"), Some(key("web")));
    assert_eq!(parse_key("web"), None);
    assert_eq!(parse_key("/web"), None);
    assert_eq!(parse_key("a/b/c"), None);
}

fn running(name: &str, uuid: &str) -> SeenPod {
    SeenPod {
        pod: ObservedPod {
            uuid: uuid.into(),
            key: key(name),
            source: format!("/pods.d/{name}.yaml"),
            spec_hash: "h".into(),
            state: stage0::pod::dir::PodState::Running,
            created_at: None,
            started_at: None,
            succeeded: false,
            problem: None,
        },
        ready: true,
        started: true,
        has_readiness: false,
        app_restarts: 0,
        exits: String::new(),
        waiting: Vec::new(),
    }
}

#[test]
fn network_checks_are_spread_rate_limited_and_fail_the_pod() {
    use std::cell::{Cell, RefCell};
    use std::time::{Duration, Instant};

    let interval = Duration::from_secs(30);
    let base = Instant::now();
    let now = Cell::new(base);
    let calls = RefCell::new(Vec::<String>::new());
    let check = |uuid: &str| {
        calls.borrow_mut().push(uuid.to_string());
        // A CHECK costs 20 ms of plugin time; "bad"'s network is broken.
        now.set(now.get() + Duration::from_millis(20));
        if uuid == "u-bad" {
            Err("eth0 is gone".to_string())
        } else {
            Ok(())
        }
    };
    let mut pods = vec![
        running("a", "u-a"),
        running("bad", "u-bad"),
        running("busy", "u-busy"),
    ];
    let busy: BTreeSet<PodKey> = [key("busy")].into();
    let mut net = NetChecks::new(interval);

    // First seen: each pod's first check falls somewhere in the interval.
    net.check(&mut pods, &busy, &|| now.get(), &check);
    assert!(calls.borrow().len() < 3);
    // After a whole interval every pod but the busy one was checked once.
    now.set(base + interval);
    net.check(&mut pods, &busy, &|| now.get(), &check);
    let mut checked = calls.borrow().clone();
    checked.sort();
    assert_eq!(checked, vec!["u-a", "u-bad"]);
    assert_eq!(
        pods[1].pod.problem.as_deref(),
        Some("network check failed: eth0 is gone")
    );
    assert_eq!(
        (pods[0].pod.problem.as_ref(), pods[2].pod.problem.as_ref()),
        (None, None)
    );
    // Not again before the interval is over; a pod with a problem is not checked.
    calls.borrow_mut().clear();
    net.check(&mut pods, &busy, &|| now.get(), &check);
    assert!(calls.borrow().is_empty());
    now.set(base + interval * 3);
    net.check(&mut pods, &busy, &|| now.get(), &check);
    assert_eq!(*calls.borrow(), vec!["u-a"]);

    // One pass spends at most the budget: 40 pods due at once, 20 ms each.
    let mut many: Vec<SeenPod> = (0..40)
        .map(|i| running(&format!("p{i}"), &format!("u{i}")))
        .collect();
    let mut net = NetChecks::new(interval);
    calls.borrow_mut().clear();
    let start = now.get();
    net.check(&mut many, &BTreeSet::new(), &|| now.get(), &check);
    now.set(start + interval);
    calls.borrow_mut().clear();
    net.check(&mut many, &BTreeSet::new(), &|| now.get(), &check);
    let n = calls.borrow().len();
    assert!(n > 0 && n <= 26, "{n} checks in one pass");

    // Zero turns them off.
    let mut off = NetChecks::new(Duration::ZERO);
    calls.borrow_mut().clear();
    off.check(
        &mut many,
        &BTreeSet::new(),
        &|| now.get() + interval * 10,
        &check,
    );
    assert!(calls.borrow().is_empty());
}
