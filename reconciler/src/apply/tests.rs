use super::*;
use crate::observe::scan_dir;
use crate::testutil::key;

fn pod_yaml(name: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: main\n    image: {image}\n"
    )
}

fn input(name: Option<&str>, text: &str) -> Input {
    Input {
        name: name.unwrap_or("-").to_string(),
        file_name: name.map(str::to_string),
        bytes: text.as_bytes().to_vec(),
    }
}

fn parsed(name: Option<&str>, text: &str) -> Parsed {
    let p = parse_inputs(vec![input(name, text)]).remove(0);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    p
}

fn changes(w: &Write1) -> Vec<(String, Change)> {
    w.changes
        .iter()
        .map(|(k, _, c)| (k.to_string(), *c))
        .collect()
}

#[test]
fn files_are_named_by_pod_or_kept_and_existing_ones_reused() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("pods.d");
    fs::create_dir(&dir).unwrap();
    let scan = scan_dir(&dir);

    // One pod: <namespace>_<name>.yaml.
    let one = parsed(Some("web.yaml"), &pod_yaml("web", "/a.aci"));
    let w = plan_apply(std::slice::from_ref(&one), &scan).unwrap();
    assert_eq!(w[0].target, "default_web.yaml");
    assert_eq!(
        changes(&w[0]),
        vec![("default/web".to_string(), Change::Created)]
    );
    assert!(w[0].differs);
    write_atomic(&dir, &w[0].target, &w[0].bytes).unwrap();

    // Several pods: the input's own name; from stdin: named after the first pod.
    let two = format!(
        "{}---\n{}",
        pod_yaml("a", "/a.aci"),
        pod_yaml("b", "/a.aci")
    );
    let w = plan_apply(&[parsed(Some("app.yml"), &two)], &scan).unwrap();
    assert_eq!(w[0].target, "app.yml");
    let w = plan_apply(&[parsed(None, &two)], &scan).unwrap();
    assert_eq!(w[0].target, "default_a.yaml");

    // Applying again: the same file, unchanged, nothing to write.
    let scan = scan_dir(&dir);
    let w = plan_apply(&[one], &scan).unwrap();
    assert_eq!(w[0].target, "default_web.yaml");
    assert_eq!(
        changes(&w[0]),
        vec![("default/web".to_string(), Change::Unchanged)]
    );
    assert!(!w[0].differs);

    // A changed spec under another input name goes to the file that defines the pod.
    let changed = parsed(Some("other-name.yaml"), &pod_yaml("web", "/b.aci"));
    let w = plan_apply(&[changed], &scan).unwrap();
    assert_eq!(w[0].target, "default_web.yaml");
    assert_eq!(
        changes(&w[0]),
        vec![("default/web".to_string(), Change::Configured)]
    );

    // No temp file is left in the pods dir.
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["default_web.yaml"]);
}

#[test]
fn applying_never_drops_pods_it_does_not_mention() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let both = format!(
        "{}---\n{}",
        pod_yaml("a", "/a.aci"),
        pod_yaml("b", "/a.aci")
    );
    fs::write(dir.join("app.yaml"), &both).unwrap();
    fs::write(dir.join("c.yaml"), pod_yaml("c", "/a.aci")).unwrap();
    let scan = scan_dir(dir);

    let only_a = parsed(Some("a.yaml"), &pod_yaml("a", "/new.aci"));
    let e = plan_apply(&[only_a], &scan).unwrap_err();
    assert!(e[0].contains("also defines default/b"), "{e:?}");

    let a_and_c = format!(
        "{}---\n{}",
        pod_yaml("a", "/a.aci"),
        pod_yaml("c", "/a.aci")
    );
    let e = plan_apply(&[parsed(Some("x.yaml"), &a_and_c)], &scan).unwrap_err();
    assert!(e[0].contains("several files"), "{e:?}");

    // A new pod whose natural name is taken by a file with other pods.
    fs::write(dir.join("default_d.yaml"), pod_yaml("other", "/a.aci")).unwrap();
    let scan = scan_dir(dir);
    let e = plan_apply(&[parsed(None, &pod_yaml("d", "/a.aci"))], &scan).unwrap_err();
    assert!(e[0].contains("already has a file default_d.yaml"), "{e:?}");

    // The same pod in two inputs.
    let e = plan_apply(
        &[
            parsed(Some("1.yaml"), &pod_yaml("z", "/a.aci")),
            parsed(Some("2.yaml"), &pod_yaml("z", "/b.aci")),
        ],
        &scan,
    )
    .unwrap_err();
    assert!(e.iter().any(|m| m.contains("defined in both")), "{e:?}");
}

#[test]
fn invalid_input_reports_file_and_line() {
    let bad = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: main\n    image: /a.aci\n    imagePullPolicy: Sometimes\n";
    let p = parse_inputs(vec![input(Some("bad.yaml"), bad)]).remove(0);
    assert!(p.pods.is_empty());
    assert!(!p.errors.is_empty());
    assert_eq!(p.errors[0].line, Some(9), "{:?}", p.errors);
    let none = parse_inputs(vec![input(Some("empty.yaml"), "# nothing\n")]).remove(0);
    assert!(!none.errors.is_empty());
}

#[test]
fn delete_removes_whole_files_only() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let both = format!(
        "{}---\n{}",
        pod_yaml("a", "/a.aci"),
        pod_yaml("b", "/a.aci")
    );
    fs::write(dir.join("app.yaml"), &both).unwrap();
    fs::write(dir.join("c.yaml"), pod_yaml("c", "/a.aci")).unwrap();
    let scan = scan_dir(dir);

    let keys: BTreeSet<PodKey> = [key("c"), key("nope")].into_iter().collect();
    let plan = plan_delete(&keys, &scan);
    assert_eq!(plan.files, vec!["c.yaml"]);
    assert_eq!(plan.deleted, vec![key("c")]);
    assert_eq!(plan.not_found, vec![key("nope")]);
    assert!(plan.problems.is_empty());

    let keys: BTreeSet<PodKey> = [key("a")].into_iter().collect();
    let plan = plan_delete(&keys, &scan);
    assert!(plan.files.is_empty());
    assert!(
        plan.problems[0].contains("also defines default/b"),
        "{:?}",
        plan.problems
    );

    let keys: BTreeSet<PodKey> = [key("a"), key("b")].into_iter().collect();
    let plan = plan_delete(&keys, &scan);
    assert_eq!(plan.files, vec!["app.yaml"]);
    remove_file(dir, "app.yaml").unwrap();
    remove_file(dir, "app.yaml").unwrap();
    assert!(!dir.join("app.yaml").exists());
}

#[test]
fn inputs_from_a_directory_follow_the_scan_rules() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("b.yaml"), "b").unwrap();
    fs::write(d.path().join("a.json"), "a").unwrap();
    fs::write(d.path().join(".hidden.yaml"), "h").unwrap();
    fs::write(d.path().join("notes.txt"), "n").unwrap();
    let inputs = read_inputs(&[d.path().display().to_string()]).unwrap();
    let names: Vec<_> = inputs
        .iter()
        .map(|i| i.file_name.clone().unwrap())
        .collect();
    assert_eq!(names, vec!["a.json", "b.yaml"]);
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        read_inputs(&[empty.path().display().to_string()]),
        Err(ApplyError::EmptyDir { .. })
    ));
    assert!(matches!(
        read_inputs(&["/nonexistent/x.yaml".to_string()]),
        Err(ApplyError::Read { .. })
    ));
}
