use super::*;
use std::os::unix::fs::symlink;

fn manifest(exec: &[&str]) -> ImageManifest {
    let json = serde_json::json!({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/busybox",
        "app": {"exec": exec, "user": "0", "group": "0",
                "environment": [{"name": "IMG", "value": "1"}],
                "isolators": [{"name": "resource/memory", "value": {"limit": "64Mi"}}],
                "mountPoints": [{"name": "data", "path": "/data"}]}
    });
    ImageManifest::from_slice(json.to_string().as_bytes()).unwrap()
}

fn rootfs() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("bin")).unwrap();
    std::fs::write(d.path().join("bin/busybox"), b"").unwrap();
    symlink("/bin/busybox", d.path().join("bin/sh")).unwrap();
    symlink("../bin", d.path().join("sbin")).unwrap();
    symlink("/../../../etc/passwd", d.path().join("bin/escape")).unwrap();
    d
}

fn resolved(root: &Path, args: AppRequest) -> ResolvedApp {
    ResolvedApp {
        request: args,
        image_id: "sha512-abc".into(),
        manifest: manifest(&["/bin/sh", "-c", "true"]),
        rootfs: root.to_path_buf(),
    }
}

#[test]
fn exec_resolution_follows_links_inside_the_root() {
    let r = rootfs();
    assert!(exists_in_root(r.path(), "/bin/sh"));
    assert!(exists_in_root(r.path(), "/sbin/busybox"));
    assert!(!exists_in_root(r.path(), "/bin/nothing"));
    // An absolute link with .. cannot reach the host's /etc/passwd.
    assert!(!exists_in_root(r.path(), "/bin/escape"));
}

#[test]
fn image_defaults_and_overrides() {
    let r = rootfs();
    let opts = PodOptions {
        env: vec![("POD".into(), "p".into())],
        volumes: vec![Volume::Empty {
            name: "data".into(),
            mode: "0755".into(),
            uid: 0,
            gid: 0,
        }],
        ..PodOptions::default()
    };
    let cfg = build_runtime("u-1", &opts, &[resolved(r.path(), AppRequest::default())]).unwrap();
    let app = &cfg.apps[0];
    assert_eq!(cfg.hostname, "rkt-u-1");
    assert_eq!(app.name, "busybox");
    assert_eq!(app.exec, vec!["/bin/sh", "-c", "true"]);
    assert_eq!(app.memory_limit_bytes, Some(64 << 20));
    assert!(app.env.contains(&("IMG".into(), "1".into())));
    assert!(app.env.contains(&("POD".into(), "p".into())));
    assert!(app.env.contains(&("AC_APP_NAME".into(), "busybox".into())));
    assert_eq!(
        app.mounts.len(),
        1,
        "image mountPoint matched to the volume"
    );
    assert!(app.capabilities.contains(&"CAP_CHOWN".to_string()));
    assert!(app.masked_paths.contains(&"/proc/kcore".to_string()));

    let args = AppRequest {
        exec: Some("/bin/busybox".into()),
        args: vec!["echo".into(), "hi".into()],
        args_given: true,
        name: Some("echo".into()),
        memory: Some(1 << 20),
        caps_remove: Some(vec!["CAP_CHOWN".into()]),
        ..AppRequest::default()
    };
    let cfg = build_runtime("u", &PodOptions::default(), &[resolved(r.path(), args)]).unwrap();
    let app = &cfg.apps[0];
    assert_eq!(app.exec, vec!["/bin/busybox", "echo", "hi"]);
    assert_eq!(app.memory_limit_bytes, Some(1 << 20));
    assert!(!app.capabilities.contains(&"CAP_CHOWN".to_string()));
    assert!(app.capabilities.contains(&"CAP_KILL".to_string()));
}

#[test]
fn bad_input_is_refused_with_names() {
    let r = rootfs();
    let missing = AppRequest {
        exec: Some("/bin/nothing".into()),
        ..AppRequest::default()
    };
    let e = build_runtime("u", &PodOptions::default(), &[resolved(r.path(), missing)]).unwrap_err();
    assert!(e.to_string().contains("/bin/nothing"), "{e}");
    // A bare name is found through PATH in the image; an unknown one is refused.
    let bare = AppRequest {
        exec: Some("busybox".into()),
        ..AppRequest::default()
    };
    let cfg = build_runtime("u", &PodOptions::default(), &[resolved(r.path(), bare)]).unwrap();
    assert_eq!(
        cfg.apps[0].exec[0], "/sbin/busybox",
        "first PATH entry that has it"
    );
    let unknown = AppRequest {
        exec: Some("nothing".into()),
        ..AppRequest::default()
    };
    assert!(matches!(
        build_runtime("u", &PodOptions::default(), &[resolved(r.path(), unknown)]),
        Err(SpecError::ExecRelative { .. })
    ));
    let two = [
        resolved(r.path(), AppRequest::default()),
        resolved(r.path(), AppRequest::default()),
    ];
    assert!(matches!(
        build_runtime("u", &PodOptions::default(), &two),
        Err(SpecError::DuplicateApp(_))
    ));
    let opts = PodOptions {
        volumes: vec![Volume::Host {
            name: "v".into(),
            source: "/nonexistent/source".into(),
            read_only: false,
        }],
        ..PodOptions::default()
    };
    let e = build_runtime("u", &opts, &[resolved(r.path(), AppRequest::default())]).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/source"));
    let unknown = AppRequest {
        mounts: vec![MountArg {
            volume: "nope".into(),
            target: "/x".into(),
            read_only: false,
        }],
        ..AppRequest::default()
    };
    assert!(matches!(
        build_runtime("u", &PodOptions::default(), &[resolved(r.path(), unknown)]),
        Err(SpecError::UnknownVolume { .. })
    ));
    let opts = PodOptions {
        hosts_entries: vec!["notanip=x".into()],
        ..PodOptions::default()
    };
    assert!(build_runtime("u", &opts, &[resolved(r.path(), AppRequest::default())]).is_err());
}

#[test]
fn private_users_ask_for_a_range_from_the_uuid() {
    let r = rootfs();
    let app = || [resolved(r.path(), AppRequest::default())];
    let cfg = build_runtime("u", &PodOptions::default(), &app()).unwrap();
    assert_eq!(cfg.user_namespace, None);
    let opts = PodOptions {
        private_users: true,
        ..PodOptions::default()
    };
    let uuid = "6f1c3e2a-9b7d-4c1e-8a2b-3c4d5e6f7a8b";
    let cfg = build_runtime(uuid, &opts, &app()).unwrap();
    assert_eq!(
        cfg.user_namespace,
        crate::pod::dir::userns::choose(uuid, &[]),
        "the pod's preferred range"
    );
    let fly = PodOptions {
        flavor: Flavor::Fly,
        ..opts
    };
    assert!(matches!(
        build_runtime(uuid, &fly, &app()),
        Err(SpecError::PrivateUsersFly)
    ));
}

#[test]
fn app_names() {
    assert_eq!(default_app_name("example.com/busybox"), "busybox");
    assert_eq!(default_app_name("example.com/My_App"), "my-app");
    assert!(valid_app_name("web-1"));
    assert!(!valid_app_name("Web"));
}

fn hostile(isolators: serde_json::Value) -> ImageManifest {
    let json = serde_json::json!({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/hostile",
        "app": {"exec": ["/bin/sh"], "user": "0", "group": "0", "isolators": isolators}
    });
    ImageManifest::from_slice(json.to_string().as_bytes()).unwrap()
}

fn app_with(
    root: &Path,
    manifest: ImageManifest,
    insecure: &str,
    args: AppRequest,
) -> manifests::runtime::RuntimeApp {
    let opts = PodOptions {
        insecure: insecure.parse().unwrap(),
        ..PodOptions::default()
    };
    let app = ResolvedApp {
        request: args,
        image_id: "sha512-abc".into(),
        manifest,
        rootfs: root.to_path_buf(),
    };
    build_runtime("u-1", &opts, &[app]).unwrap().apps.remove(0)
}

fn defaults() -> Vec<String> {
    DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect()
}

#[test]
fn an_image_cannot_grant_itself_capabilities_or_lift_no_new_privs() {
    let r = rootfs();
    let greedy = serde_json::json!([
        {"name": ISOLATOR_CAPS_RETAIN,
         "value": {"set": ["CAP_SYS_ADMIN", "sys_module", "CAP_CHOWN", "CAP_KILL"]}},
        {"name": ISOLATOR_NO_NEW_PRIVS, "value": false},
        {"name": "os/linux/seccomp-remove-set", "value": {"set": ["@all"]}}
    ]);
    // Defaults: the retain set is cut down to the default set; no_new_privs stays.
    let app = app_with(
        r.path(),
        hostile(greedy.clone()),
        "none",
        AppRequest::default(),
    );
    assert_eq!(app.capabilities, ["CAP_CHOWN", "CAP_KILL"]);
    assert!(app.no_new_privileges);
    assert_eq!(app.seccomp, Seccomp::Default);
    let (iso, dropped) = image_isolators(
        "hostile",
        hostile(greedy.clone()).app.as_ref().unwrap(),
        &defaults(),
        false,
    )
    .unwrap();
    assert_eq!(
        iso.retain.as_deref(),
        Some(&["CAP_CHOWN".to_string(), "CAP_KILL".to_string()][..])
    );
    let shown: Vec<String> = dropped.iter().map(|d| d.to_string()).collect();
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert!(shown[0].contains(ISOLATOR_CAPS_RETAIN), "{}", shown[0]);
    assert!(
        shown[0].contains("ignored: CAP_SYS_ADMIN, CAP_SYS_MODULE"),
        "{}",
        shown[0]
    );
    assert!(
        shown[0].contains("--insecure-options=image-privileges"),
        "{}",
        shown[0]
    );
    assert!(shown[1].contains(ISOLATOR_NO_NEW_PRIVS), "{}", shown[1]);
    assert!(
        shown[2].contains("seccomp-remove-set is not supported"),
        "{}",
        shown[2]
    );

    // Allowed by the operator: the image's set is taken as it is (the control).
    let app = app_with(
        r.path(),
        hostile(greedy.clone()),
        "image-privileges",
        AppRequest::default(),
    );
    assert_eq!(
        app.capabilities,
        ["CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_CHOWN", "CAP_KILL"]
    );
    assert!(!app.no_new_privileges);
    // Seccomp isolators are not implemented at all: still the default profile.
    assert_eq!(app.seccomp, Seccomp::Default);

    // --insecure-options=capabilities makes every capability the default, so the
    // image's set fits within it.
    let app = app_with(
        r.path(),
        hostile(greedy),
        "capabilities",
        AppRequest::default(),
    );
    assert!(app.capabilities.contains(&"CAP_SYS_ADMIN".to_string()));
    assert!(app.no_new_privileges);
}

#[test]
fn narrowing_image_isolators_and_operator_flags_still_apply() {
    let r = rootfs();
    let narrow = serde_json::json!([
        {"name": ISOLATOR_CAPS_RETAIN, "value": {"set": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID"]}},
        {"name": ISOLATOR_CAPS_REMOVE, "value": {"set": ["CAP_KILL"]}},
        {"name": ISOLATOR_NO_NEW_PRIVS, "value": true},
        {"name": "resource/memory", "value": {"limit": "64Mi"}},
        {"name": "resource/cpu", "value": {"limit": "500m"}}
    ]);
    let app = app_with(
        r.path(),
        hostile(narrow.clone()),
        "none",
        AppRequest::default(),
    );
    assert_eq!(app.capabilities, ["CAP_CHOWN", "CAP_SETUID"]);
    assert!(app.no_new_privileges);
    assert_eq!(app.memory_limit_bytes, Some(64 << 20));
    assert_eq!(app.cpu_millis, Some(500));
    let (_, dropped) = image_isolators(
        "hostile",
        hostile(narrow.clone()).app.as_ref().unwrap(),
        &defaults(),
        false,
    )
    .unwrap();
    assert_eq!(dropped, vec![], "nothing narrowing is dropped");

    // Only a remove set: the defaults less it.
    let remove_only = serde_json::json!([
        {"name": ISOLATOR_CAPS_REMOVE, "value": {"set": ["CAP_NET_RAW"]}}
    ]);
    let app = app_with(
        r.path(),
        hostile(remove_only),
        "none",
        AppRequest::default(),
    );
    let mut expected = defaults();
    expected.retain(|c| c != "CAP_NET_RAW");
    assert_eq!(app.capabilities, expected);

    // The operator's retain set wins over the image's, beyond the defaults too;
    // the operator's remove set applies to the image's retain set.
    let greedy = serde_json::json!([
        {"name": ISOLATOR_CAPS_RETAIN, "value": {"set": ["CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_KILL"]}}
    ]);
    let app = app_with(
        r.path(),
        hostile(greedy.clone()),
        "none",
        AppRequest {
            caps_retain: Some(vec!["CAP_NET_ADMIN".into()]),
            ..AppRequest::default()
        },
    );
    assert_eq!(app.capabilities, ["CAP_NET_ADMIN"]);
    let app = app_with(
        r.path(),
        hostile(greedy),
        "image-privileges",
        AppRequest {
            caps_remove: Some(vec!["CAP_SYS_ADMIN".into()]),
            ..AppRequest::default()
        },
    );
    assert_eq!(app.capabilities, ["CAP_CHOWN", "CAP_KILL"]);
}

/// An image's app from its JSON (`exec`, `environment`, `isolators`, ...).
fn image_app(app: serde_json::Value) -> appc::App {
    serde_json::from_value(app).unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, val)| (k.to_string(), val.to_string()))
        .collect()
}

/// A spec error's variant, for tables.
fn kind(e: &SpecError) -> &'static str {
    match e {
        SpecError::NoExec { .. } => "NoExec",
        SpecError::ExecMissing { .. } => "ExecMissing",
        SpecError::ExecRelative { .. } => "ExecRelative",
        SpecError::UnknownVolume { .. } => "UnknownVolume",
        SpecError::Capability { .. } => "Capability",
        _ => "other",
    }
}

#[test]
fn exec_table() {
    let in_image = [
        "/bin/sh",
        "/bin/echo",
        "/app/bin/tool",
        "/pod/bin/tool",
        "/img/bin/tool",
        "/usr/bin/tool",
    ];
    let exists = |p: &str| in_image.contains(&p);
    let img = |exec: &[&str], path: Option<&str>| {
        let env: Vec<serde_json::Value> = path
            .map(|p| serde_json::json!({"name": "PATH", "value": p}))
            .into_iter()
            .collect();
        image_app(serde_json::json!({"exec": exec, "user": "0", "group": "0",
                                     "environment": env}))
    };
    let sh = &["/bin/sh", "-c", "true"][..];
    struct Case {
        what: &'static str,
        image: appc::App,
        exec: Option<&'static str>,
        args: Option<&'static [&'static str]>,
        app_env: &'static [(&'static str, &'static str)],
        pod_env: &'static [(&'static str, &'static str)],
        want: Result<&'static [&'static str], &'static str>,
    }
    let cases = [
        Case {
            what: "the image's",
            image: img(sh, None),
            exec: None,
            args: None,
            app_env: &[],
            pod_env: &[],
            want: Ok(&["/bin/sh", "-c", "true"]),
        },
        Case {
            what: "--exec replaces the program and drops the image's arguments",
            image: img(sh, None),
            exec: Some("/bin/echo"),
            args: None,
            app_env: &[],
            pod_env: &[],
            want: Ok(&["/bin/echo"]),
        },
        Case {
            what: "--exec with arguments",
            image: img(sh, None),
            exec: Some("/bin/echo"),
            args: Some(&["a", "b"]),
            app_env: &[],
            pod_env: &[],
            want: Ok(&["/bin/echo", "a", "b"]),
        },
        Case {
            what: "arguments replace the image's",
            image: img(sh, None),
            exec: None,
            args: Some(&["x"]),
            app_env: &[],
            pod_env: &[],
            want: Ok(&["/bin/sh", "x"]),
        },
        Case {
            what: "an empty `--` clears the image's arguments",
            image: img(sh, None),
            exec: None,
            args: Some(&[]),
            app_env: &[],
            pod_env: &[],
            want: Ok(&["/bin/sh"]),
        },
        Case {
            what: "--exec for an image without exec",
            image: img(&[], None),
            exec: Some("/bin/echo"),
            args: None,
            app_env: &[],
            pod_env: &[],
            want: Ok(&["/bin/echo"]),
        },
        Case {
            what: "a bare name in the app's PATH first",
            image: img(sh, Some("/img/bin")),
            exec: Some("tool"),
            args: None,
            app_env: &[("PATH", "/app/bin")],
            pod_env: &[("PATH", "/pod/bin")],
            want: Ok(&["/app/bin/tool"]),
        },
        Case {
            what: "a bare name in the pod's PATH",
            image: img(sh, Some("/img/bin")),
            exec: Some("tool"),
            args: None,
            app_env: &[],
            pod_env: &[("PATH", "relative:/nothing:/pod/bin/")],
            want: Ok(&["/pod/bin/tool"]),
        },
        Case {
            what: "a bare name in the image's PATH",
            image: img(sh, Some("/img/bin")),
            exec: Some("tool"),
            args: None,
            app_env: &[],
            pod_env: &[],
            want: Ok(&["/img/bin/tool"]),
        },
        Case {
            what: "a bare name in rkt's PATH",
            image: img(sh, None),
            exec: Some("tool"),
            args: None,
            app_env: &[],
            pod_env: &[],
            want: Ok(&["/usr/bin/tool"]),
        },
        Case {
            what: "a bare name found nowhere",
            image: img(sh, None),
            exec: Some("nothing"),
            args: None,
            app_env: &[],
            pod_env: &[],
            want: Err("ExecRelative"),
        },
        Case {
            what: "a relative path is not looked up",
            image: img(sh, None),
            exec: Some("bin/sh"),
            args: None,
            app_env: &[],
            pod_env: &[],
            want: Err("ExecRelative"),
        },
        Case {
            what: "nothing to run",
            image: img(&[], None),
            exec: None,
            args: None,
            app_env: &[],
            pod_env: &[],
            want: Err("NoExec"),
        },
        Case {
            what: "arguments alone for an image without exec: the first is the program",
            image: img(&[], None),
            exec: None,
            args: Some(&["/bin/echo", "x"]),
            app_env: &[],
            pod_env: &[],
            want: Ok(&["/bin/echo", "x"]),
        },
        Case {
            what: "nothing to run but arguments",
            image: img(&[], None),
            exec: None,
            args: Some(&[]),
            app_env: &[],
            pod_env: &[],
            want: Err("NoExec"),
        },
        Case {
            what: "not in the image",
            image: img(sh, None),
            exec: Some("/bin/nothing"),
            args: None,
            app_env: &[],
            pod_env: &[],
            want: Err("ExecMissing"),
        },
    ];
    for c in cases {
        let a = AppRequest {
            exec: c.exec.map(str::to_string),
            args: strings(c.args.unwrap_or_default()),
            args_given: c.args.is_some(),
            env: pairs(c.app_env),
            ..AppRequest::default()
        };
        let got = exec(
            &a,
            &pairs(c.pod_env),
            &c.image,
            "app",
            "example.com/img",
            &exists,
        );
        let got = got.as_ref().map_err(kind);
        let want = c.want.map(strings);
        assert_eq!(got, want.as_ref().map_err(|e| *e), "{}", c.what);
    }
}

#[test]
fn environment_table() {
    type Vars = &'static [(&'static str, &'static str)];
    // (what, the image's environment, the pod's, the app's, expected)
    let cases: [(&str, serde_json::Value, Vars, Vars, Vars); 4] = [
        (
            "nothing given: rkt's PATH and the app's name",
            serde_json::json!([]),
            &[],
            &[],
            &[("PATH", DEFAULT_PATH), ("AC_APP_NAME", "web")],
        ),
        (
            "image, then pod, then app; replaced in place",
            serde_json::json!([{"name": "IMG", "value": "1"}, {"name": "PATH", "value": "/img"}]),
            &[("POD", "p"), ("PATH", "/pod")],
            &[("APP", "a"), ("POD", "app"), ("IMG", "2")],
            &[
                ("PATH", "/pod"),
                ("IMG", "2"),
                ("POD", "app"),
                ("APP", "a"),
                ("AC_APP_NAME", "web"),
            ],
        ),
        (
            "the image's PATH when nobody else sets one",
            serde_json::json!([{"name": "PATH", "value": "/img"}]),
            &[],
            &[],
            &[("PATH", "/img"), ("AC_APP_NAME", "web")],
        ),
        (
            "AC_APP_NAME is always the app's",
            serde_json::json!([{"name": "AC_APP_NAME", "value": "img"}]),
            &[],
            &[("AC_APP_NAME", "app")],
            &[("PATH", DEFAULT_PATH), ("AC_APP_NAME", "web")],
        ),
    ];
    for (what, image_env, pod_env, app_env, want) in cases {
        let img = image_app(
            serde_json::json!({"exec": ["/bin/sh"], "user": "0", "group": "0",
                                               "environment": image_env}),
        );
        assert_eq!(
            environment(&img, &pairs(pod_env), &pairs(app_env), "web"),
            pairs(want),
            "{what}"
        );
    }
}

#[test]
fn mounts_table() {
    let volumes = [
        Volume::Host {
            name: "ro".into(),
            source: "/srv/ro".into(),
            read_only: true,
        },
        Volume::Host {
            name: "rw".into(),
            source: "/srv/rw".into(),
            read_only: false,
        },
        Volume::Empty {
            name: "e".into(),
            mode: "0755".into(),
            uid: 0,
            gid: 0,
        },
    ];
    let arg = |volume: &str, target: &str, read_only: bool| MountArg {
        volume: volume.into(),
        target: target.into(),
        read_only,
    };
    let point = |name: &str, path: &str, read_only: bool| appc::MountPoint {
        name: name.into(),
        path: path.into(),
        read_only,
    };
    let mount = |volume: &str, path: &str, read_only: bool| Mount {
        volume: volume.into(),
        path: path.into(),
        read_only,
    };
    type Want = Result<Vec<Mount>, &'static str>;
    // (what, the app's mounts, the image's mountPoints, expected)
    let cases: Vec<(&str, Vec<MountArg>, Vec<appc::MountPoint>, Want)> = vec![
        ("none", vec![], vec![], Ok(vec![])),
        (
            "a writable volume",
            vec![arg("rw", "/rw", false)],
            vec![],
            Ok(vec![mount("rw", "/rw", false)]),
        ),
        (
            "read-only by the mount",
            vec![arg("rw", "/rw", true)],
            vec![],
            Ok(vec![mount("rw", "/rw", true)]),
        ),
        (
            "read-only by the host volume",
            vec![arg("ro", "/ro", false)],
            vec![],
            Ok(vec![mount("ro", "/ro", true)]),
        ),
        (
            "an unknown volume",
            vec![arg("nope", "/x", false)],
            vec![],
            Err("UnknownVolume"),
        ),
        (
            "the image's mountPoints by name, after the app's mounts",
            vec![arg("rw", "/rw", false)],
            vec![
                point("e", "/e", false),
                point("rw", "/again", true),
                point("ro", "/ro", false),
            ],
            Ok(vec![
                mount("rw", "/rw", false),
                mount("e", "/e", false),
                mount("rw", "/again", true),
                mount("ro", "/ro", true),
            ]),
        ),
        (
            "a mountPoint whose path is mounted already, or without a volume, is left out",
            vec![arg("e", "/data", false)],
            vec![point("rw", "/data", true), point("missing", "/m", false)],
            Ok(vec![mount("e", "/data", false)]),
        ),
    ];
    for (what, requested, points, want) in cases {
        let got = mounts("app", &requested, &points, &volumes);
        assert_eq!(
            got.as_ref().map_err(kind),
            want.as_ref().map_err(|e| *e),
            "{what}"
        );
    }
}

#[test]
fn capabilities_table() {
    let all: Vec<String> = KNOWN_CAPS.iter().map(|c| c.to_string()).collect();
    let without =
        |cap: &str| -> Vec<String> { defaults().into_iter().filter(|c| c != cap).collect() };
    let plain = image_app(serde_json::json!({"exec": ["/bin/sh"], "user": "0", "group": "0"}));
    let narrowing = image_app(
        serde_json::json!({"exec": ["/bin/sh"], "user": "0", "group": "0",
        "isolators": [{"name": ISOLATOR_CAPS_REMOVE, "value": {"set": ["CAP_KILL"]}}]}),
    );
    let greedy = image_app(
        serde_json::json!({"exec": ["/bin/sh"], "user": "0", "group": "0",
        "isolators": [{"name": ISOLATOR_CAPS_RETAIN, "value": {"set": ["CAP_SYS_ADMIN", "CAP_CHOWN"]}},
                      {"name": ISOLATOR_NO_NEW_PRIVS, "value": false}]}),
    );
    let unknown = image_app(
        serde_json::json!({"exec": ["/bin/sh"], "user": "0", "group": "0",
        "isolators": [{"name": ISOLATOR_CAPS_RETAIN, "value": {"set": ["CAP_BOGUS"]}}]}),
    );
    let retain = |caps: &[&str]| AppRequest {
        caps_retain: Some(strings(caps)),
        ..AppRequest::default()
    };
    let remove = |caps: &[&str]| AppRequest {
        caps_remove: Some(strings(caps)),
        ..AppRequest::default()
    };
    let privileged = AppRequest {
        privileged: true,
        caps_retain: Some(strings(&["CAP_CHOWN"])),
        ..AppRequest::default()
    };
    let none = InsecureOptions::default();
    let allow_caps: InsecureOptions = "capabilities".parse().unwrap();
    let allow_image: InsecureOptions = "image-privileges".parse().unwrap();
    // Capabilities, no_new_privs and how many image isolators were left out.
    type Want = Result<(Vec<String>, bool, usize), &'static str>;
    // (what, image, app, insecure, expected)
    let cases: Vec<(&str, &appc::App, AppRequest, InsecureOptions, Want)> = vec![
        (
            "the defaults",
            &plain,
            AppRequest::default(),
            none,
            Ok((defaults(), true, 0)),
        ),
        (
            "every one allowed",
            &plain,
            AppRequest::default(),
            allow_caps,
            Ok((all.clone(), true, 0)),
        ),
        (
            "the operator's retain set",
            &plain,
            retain(&["CAP_NET_ADMIN"]),
            none,
            Ok((strings(&["CAP_NET_ADMIN"]), true, 0)),
        ),
        (
            "the operator's remove set",
            &plain,
            remove(&["CAP_CHOWN"]),
            none,
            Ok((without("CAP_CHOWN"), true, 0)),
        ),
        (
            "the image's remove set",
            &narrowing,
            AppRequest::default(),
            none,
            Ok((without("CAP_KILL"), true, 0)),
        ),
        (
            "the operator's remove set over the image's",
            &narrowing,
            remove(&["CAP_CHOWN"]),
            none,
            Ok((without("CAP_CHOWN"), true, 0)),
        ),
        (
            "the image cannot widen",
            &greedy,
            AppRequest::default(),
            none,
            Ok((strings(&["CAP_CHOWN"]), true, 2)),
        ),
        (
            "unless allowed",
            &greedy,
            AppRequest::default(),
            allow_image,
            Ok((strings(&["CAP_SYS_ADMIN", "CAP_CHOWN"]), false, 0)),
        ),
        (
            "privileged: every one, no no_new_privs",
            &plain,
            privileged.clone(),
            none,
            Ok((all.clone(), false, 0)),
        ),
        (
            "privileged, still told what the image asked",
            &greedy,
            privileged.clone(),
            none,
            Ok((all.clone(), false, 2)),
        ),
        (
            "an unknown capability in the image",
            &unknown,
            privileged,
            none,
            Err("Capability"),
        ),
    ];
    for (what, img, a, insecure, want) in cases {
        let got = capabilities("app", &a, img, &insecure)
            .map(|c| (c.capabilities, c.no_new_privileges, c.dropped.len()));
        assert_eq!(
            got.as_ref().map_err(kind),
            want.as_ref().map_err(|e| *e),
            "{what}"
        );
    }
}

#[test]
fn seccomp_table() {
    let unconfined: InsecureOptions = "seccomp".parse().unwrap();
    let none = InsecureOptions::default();
    // (insecure, privileged, the app's seccomp, expected)
    let cases = [
        (none, false, Seccomp::Default, Seccomp::Default),
        (unconfined, false, Seccomp::Default, Seccomp::Unconfined),
        (none, true, Seccomp::Default, Seccomp::Unconfined),
        (none, false, Seccomp::Unconfined, Seccomp::Unconfined),
        (unconfined, true, Seccomp::Unconfined, Seccomp::Unconfined),
    ];
    for (insecure, privileged, asked, want) in cases {
        let a = AppRequest {
            privileged,
            seccomp: asked,
            ..AppRequest::default()
        };
        assert_eq!(
            seccomp(&insecure, &a),
            want,
            "{insecure:?} privileged={privileged} {asked:?}"
        );
    }
}

#[test]
fn limits_table() {
    let img = |isolators: serde_json::Value| {
        image_app(
            serde_json::json!({"exec": ["/bin/sh"], "user": "0", "group": "0",
                                     "isolators": isolators}),
        )
    };
    let limited = img(serde_json::json!([
        {"name": "resource/memory", "value": {"limit": "64Mi"}},
        {"name": "resource/cpu", "value": {"limit": 2}}
    ]));
    let garbage = img(serde_json::json!([
        {"name": "resource/memory", "value": {"limit": "lots"}},
        {"name": "resource/cpu", "value": {"limit": true}}
    ]));
    let unlimited = img(serde_json::json!([]));
    let asked = AppRequest {
        memory: Some(1 << 20),
        cpu_millis: Some(250),
        ..AppRequest::default()
    };
    let cases = [
        ("none", &unlimited, AppRequest::default(), (None, None)),
        (
            "the image's",
            &limited,
            AppRequest::default(),
            (Some(64 << 20), Some(2000)),
        ),
        (
            "the app's over the image's",
            &limited,
            asked.clone(),
            (Some(1 << 20), Some(250)),
        ),
        (
            "the app's alone",
            &unlimited,
            asked,
            (Some(1 << 20), Some(250)),
        ),
        (
            "unparsable image limits are none",
            &garbage,
            AppRequest::default(),
            (None, None),
        ),
    ];
    for (what, image, a, want) in cases {
        assert_eq!(limits(&a, image), want, "{what}");
    }
}

#[test]
fn paths_table() {
    let masked = strings(DEFAULT_MASKED_PATHS);
    let readonly = strings(DEFAULT_READONLY_PATHS);
    let open: InsecureOptions = "paths".parse().unwrap();
    let none = InsecureOptions::default();
    let cases = [
        (none, false, (masked, readonly)),
        (open, false, (vec![], vec![])),
        (none, true, (vec![], vec![])),
        (open, true, (vec![], vec![])),
    ];
    for (insecure, privileged, want) in cases {
        assert_eq!(
            paths(&insecure, privileged),
            want,
            "{insecure:?} {privileged}"
        );
    }
}

#[test]
fn identity_table() {
    let img = |user: &str, group: &str, gids: &[u32], dir: Option<&str>| {
        image_app(
            serde_json::json!({"exec": ["/bin/sh"], "user": user, "group": group,
                                     "supplementaryGIDs": gids, "workingDirectory": dir}),
        )
    };
    let want = |user: &str, group: &str, gids: &[u32], dir: &str| Identity {
        user: user.into(),
        group: group.into(),
        supplementary_gids: gids.to_vec(),
        working_dir: dir.into(),
    };
    let asked = AppRequest {
        user: Some("1000".into()),
        group: Some("100".into()),
        supplementary_gids: vec![7],
        working_dir: Some("/app".into()),
        ..AppRequest::default()
    };
    let cases = [
        (
            "the image's",
            img("5", "6", &[1, 2], Some("/srv")),
            AppRequest::default(),
            want("5", "6", &[1, 2], "/srv"),
        ),
        (
            "root and / when the image says nothing",
            img("", "", &[], None),
            AppRequest::default(),
            want("0", "0", &[], "/"),
        ),
        (
            "an empty working directory is /",
            img("5", "6", &[], Some("")),
            AppRequest::default(),
            want("5", "6", &[], "/"),
        ),
        (
            "the app's over the image's",
            img("5", "6", &[1], Some("/srv")),
            asked,
            want("1000", "100", &[7], "/app"),
        ),
    ];
    for (what, image, a, expected) in cases {
        assert_eq!(identity(&a, &image), expected, "{what}");
    }
}

#[test]
fn the_request_is_the_whole_runtime_app() {
    let r = rootfs();
    let probe = manifests::runtime::Probe {
        action: manifests::runtime::ProbeAction::TcpSocket { port: 80 },
        initial_delay_secs: 1,
        period_secs: 2,
        timeout_secs: 3,
        success_threshold: 1,
        failure_threshold: 4,
    };
    let opts = PodOptions {
        backoff: manifests::runtime::Backoff {
            initial_secs: 1,
            max_secs: 2,
            reset_secs: 3,
        },
        ..PodOptions::default()
    };
    let init = AppRequest {
        name: Some("init".into()),
        init: true,
        restart_policy: manifests::runtime::RestartPolicy::OnFailure,
        seccomp: Seccomp::Unconfined,
        ..AppRequest::default()
    };
    let main = AppRequest {
        name: Some("main".into()),
        restart_policy: manifests::runtime::RestartPolicy::Always,
        liveness_probe: Some(probe.clone()),
        readiness_probe: Some(probe.clone()),
        privileged: true,
        ..AppRequest::default()
    };
    let cfg = build_runtime(
        "u",
        &opts,
        &[resolved(r.path(), init), resolved(r.path(), main)],
    )
    .unwrap();
    assert_eq!(cfg.backoff, opts.backoff);
    let (init, main) = (&cfg.apps[0], &cfg.apps[1]);
    assert!(init.init && !main.init);
    assert_eq!(
        init.restart_policy,
        manifests::runtime::RestartPolicy::OnFailure
    );
    assert_eq!(
        main.restart_policy,
        manifests::runtime::RestartPolicy::Always
    );
    assert_eq!(init.liveness_probe, None);
    assert_eq!(main.liveness_probe.as_ref(), Some(&probe));
    assert_eq!(main.readiness_probe.as_ref(), Some(&probe));
    assert_eq!(init.seccomp, Seccomp::Unconfined, "asked for");
    assert!(
        !init.allow_all_devices && init.no_new_privileges,
        "unconfined is not privileged"
    );
    assert_eq!(init.capabilities, defaults());
    assert_eq!(main.seccomp, Seccomp::Unconfined, "privileged");
    assert!(main.allow_all_devices && !main.no_new_privileges);
    assert_eq!(main.capabilities.len(), KNOWN_CAPS.len());
    assert!(main.masked_paths.is_empty() && main.readonly_paths.is_empty());
}
