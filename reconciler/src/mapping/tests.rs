use manifests::runtime::RuntimeConfig;
use stage0::pod::spec::{build_runtime, ResolvedApp};

use super::*;
use crate::k8s::{ContainerPort, VolumeMount};
use crate::testutil::{container, desired_pod};

fn ctx() -> MapContext {
    MapContext {
        insecure: InsecureOptions::default(),
        backoff: Backoff {
            initial_secs: 1,
            max_secs: 4,
            reset_secs: 60,
        },
        host_name: Some("node1".into()),
    }
}

fn probe_of(action: ProbeAction) -> Probe {
    Probe {
        action,
        initial_delay_secs: 2,
        period_secs: 5,
        timeout_secs: 1,
        success_threshold: 1,
        failure_threshold: 3,
    }
}

#[test]
fn command_and_args_follow_kubernetes() {
    let mut c = container("a", "/img.aci");
    let args = app_request(&c, false, runtime::RestartPolicy::Always).unwrap();
    assert_eq!(
        (args.exec.clone(), args.args_given),
        (None, false),
        "image defaults"
    );

    c.args = vec!["x".into(), "y".into()];
    let args = app_request(&c, false, runtime::RestartPolicy::Always).unwrap();
    assert_eq!(
        (args.exec.clone(), args.args.clone(), args.args_given),
        (None, vec!["x".into(), "y".into()], true)
    );

    c.command = vec!["/bin/sh".into(), "-c".into()];
    c.args = vec!["echo hi".into()];
    let args = app_request(&c, false, runtime::RestartPolicy::Always).unwrap();
    assert_eq!(args.exec.as_deref(), Some("/bin/sh"));
    assert_eq!(args.args, vec!["-c", "echo hi"]);
    assert!(args.args_given);

    c.args.clear();
    c.command = vec!["/bin/true".into()];
    let args = app_request(&c, false, runtime::RestartPolicy::Always).unwrap();
    assert_eq!(
        (args.exec.as_deref(), args.args.len(), args.args_given),
        (Some("/bin/true"), 0, true)
    );
}

#[test]
fn capabilities_are_relative_to_the_default_set() {
    let mut c = container("a", "/img.aci");
    assert_eq!(capabilities(&c).unwrap(), None);
    c.capabilities_add = vec!["CAP_NET_ADMIN".into()];
    c.capabilities_drop = vec!["CAP_CHOWN".into()];
    let set = capabilities(&c).unwrap().unwrap();
    assert!(set.contains(&"CAP_NET_ADMIN".to_string()));
    assert!(!set.contains(&"CAP_CHOWN".to_string()));
    assert!(set.contains(&"CAP_KILL".to_string()));
    assert_eq!(set.len(), DEFAULT_CAPABILITIES.len());

    c.capabilities_drop = vec!["ALL".into()];
    assert_eq!(capabilities(&c).unwrap().unwrap(), vec!["CAP_NET_ADMIN"]);

    c.capabilities_add = vec!["CAP_BOGUS".into()];
    let e = capabilities(&c).unwrap_err();
    assert!(e.to_string().contains("CAP_BOGUS"), "{e}");
}

#[test]
fn a_pod_maps_to_a_request_and_runtime_settings() {
    let mut pod = desired_pod("web", "h1");
    pod.host_network = false;
    pod.restart_policy = RestartPolicy::OnFailure;
    pod.termination_grace_period_secs = 0;
    pod.volumes = vec![
        DesiredVolume::HostPath {
            name: "data".into(),
            path: "/srv/data".into(),
            kind: Some("DirectoryOrCreate".into()),
        },
        DesiredVolume::EmptyDir {
            name: "scratch".into(),
        },
    ];
    let mut init = container("setup", "/img.aci");
    init.image_pull_policy = ImagePullPolicy::Never;
    let mut main = container("main", "/img.aci");
    main.volume_mounts = vec![
        VolumeMount {
            name: "data".into(),
            mount_path: "/data".into(),
            read_only: true,
        },
        VolumeMount {
            name: "scratch".into(),
            mount_path: "/tmp/s".into(),
            read_only: false,
        },
    ];
    main.readiness_probe = Some(probe_of(ProbeAction::HttpGet {
        path: "/healthz".into(),
        port: 8080,
        scheme: "HTTP".into(),
    }));
    main.liveness_probe = Some(probe_of(ProbeAction::Exec {
        command: vec!["/bin/true".into()],
    }));
    main.ports = vec![ContainerPort {
        name: Some("http".into()),
        container_port: 8080,
        host_port: Some(18080),
        protocol: "TCP".into(),
    }];
    main.env = vec![("A".into(), "1".into())];
    main.run_as_user = Some(1000);
    main.memory_limit_bytes = Some(64 << 20);
    pod.init_containers = vec![init];
    pod.containers = vec![main];

    let m = to_request(&pod, &ctx()).unwrap();
    let r = &m.request;
    assert_eq!(
        r.pod.hostname.as_deref(),
        Some("web"),
        "the pod's name, as in Kubernetes"
    );
    assert!(r.pod.private_network);
    assert!(!r.pod.private_users, "hostUsers absent: the host's ids");
    assert_eq!(r.pod.stop_grace_period_secs, Some(1));
    assert_eq!(
        r.pod.volumes[1],
        Volume::Empty {
            name: "scratch".into(),
            mode: "0777".into(),
            uid: 0,
            gid: 0
        }
    );
    assert_eq!(r.pull_policy, PullPolicy::New);
    let names: Vec<_> = r.apps.iter().map(|a| a.name.clone().unwrap()).collect();
    assert_eq!(names, vec!["setup", "main"], "init containers first");
    assert_eq!(r.apps[1].user.as_deref(), Some("1000"));
    assert_eq!(r.apps[1].memory, Some(64 << 20));
    assert_eq!(r.apps[1].mounts.len(), 2);
    assert_eq!(
        r.annotations,
        vec![
            ("rkt.io/pod-key".to_string(), "default/web".to_string()),
            ("rkt.io/source".to_string(), "/pods.d/web.yaml".to_string()),
            ("rkt.io/spec-hash".to_string(), "h1".to_string()),
        ]
    );
    assert_eq!(
        m.ports,
        vec![PortMapping {
            container: "main".into(),
            host_port: 18080,
            container_port: 8080,
            protocol: "TCP".into()
        }]
    );

    let exposed = &r.pod.ports[0];
    assert_eq!(
        (exposed.name.as_str(), exposed.host_port),
        ("main-8080-tcp", 18080)
    );
    let pod_port = exposed.pod_port.as_ref().unwrap();
    assert_eq!((pod_port.port, pod_port.protocol.as_str()), (8080, "tcp"));

    let (setup, main) = (&r.apps[0], &r.apps[1]);
    assert!(setup.init && !main.init);
    assert_eq!(setup.restart_policy, runtime::RestartPolicy::OnFailure);
    assert_eq!(main.restart_policy, runtime::RestartPolicy::OnFailure);
    assert!(matches!(
        main.readiness_probe.as_ref().unwrap().action,
        runtime::ProbeAction::HttpGet { port: 8080, .. }
    ));
    assert_eq!(main.liveness_probe.as_ref().unwrap().period_secs, 5);
    let read_only: Vec<_> = main
        .mounts
        .iter()
        .map(|m| (m.target.as_str(), m.read_only))
        .collect();
    assert_eq!(read_only, vec![("/data", true), ("/tmp/s", false)]);
    assert_eq!(r.pod.backoff, ctx().backoff);

    // hostNetwork: the host's name, no private network, host ports need no mapping.
    pod.host_network = true;
    pod.restart_policy = RestartPolicy::Never;
    let m = to_request(&pod, &ctx()).unwrap();
    assert_eq!(m.request.pod.hostname.as_deref(), Some("node1"));
    assert!(!m.request.pod.private_network);
    assert!(m.ports.is_empty() && m.request.pod.ports.is_empty());
    assert_eq!(
        m.request.apps[0].restart_policy,
        runtime::RestartPolicy::Never
    );

    // Any container with pull policy Always asks for an update.
    pod.containers[0].image_pull_policy = ImagePullPolicy::Always;
    assert_eq!(
        to_request(&pod, &ctx()).unwrap().request.pull_policy,
        PullPolicy::Update
    );
}

#[test]
fn host_users_false_maps_to_private_users() {
    let mut pod = desired_pod("web", "h");
    pod.containers = vec![container("app", "example.com/app:1.0")];
    pod.private_users = true;
    assert!(to_request(&pod, &ctx()).unwrap().request.pod.private_users);
}

#[test]
fn image_privileges_annotation_allows_the_images_isolators_for_that_pod_only() {
    let mut pod = desired_pod("web", "h");
    pod.containers = vec![container("app", "example.com/app:1.0")];
    let m = to_request(&pod, &ctx()).unwrap();
    assert!(!m.request.pod.insecure.image_privileges);
    pod.image_privileges = true;
    let m = to_request(&pod, &ctx()).unwrap();
    assert!(m.request.pod.insecure.image_privileges);
    // Only the pod's run-time options: fetching is not made less strict.
    assert_eq!(m.request.insecure, InsecureOptions::default());
}

/// A rootfs with `/bin/sh` and the image every app of a mapped pod runs, to build the
/// runtime configuration from a mapped request as `rkt prepare` does.
fn build(request: &PodRequest) -> RuntimeConfig {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("bin")).unwrap();
    std::fs::write(root.path().join("bin/sh"), b"").unwrap();
    let manifest = appc::ImageManifest::from_slice(
        br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/i",
            "app":{"exec":["/bin/sh"],"user":"0","group":"0"}}"#,
    )
    .unwrap();
    let apps: Vec<ResolvedApp> = request
        .apps
        .iter()
        .map(|a| ResolvedApp {
            request: a.clone(),
            image_id: "sha512-x".into(),
            manifest: manifest.clone(),
            rootfs: root.path().to_path_buf(),
        })
        .collect();
    build_runtime("u", &request.pod, &apps).unwrap()
}

#[test]
fn the_request_builds_the_runtime_settings_per_app() {
    let mut pod = desired_pod("web", "h");
    pod.volumes = vec![DesiredVolume::EmptyDir { name: "v".into() }];
    let mut init = container("init", "/i.aci");
    init.liveness_probe = Some(probe_of(ProbeAction::TcpSocket { port: 1 }));
    init.seccomp = runtime::Seccomp::Unconfined;
    let mut main = container("main", "/i.aci");
    main.privileged = true;
    main.volume_mounts = vec![
        VolumeMount {
            name: "v".into(),
            mount_path: "/ro".into(),
            read_only: true,
        },
        VolumeMount {
            name: "v".into(),
            mount_path: "/rw".into(),
            read_only: false,
        },
    ];
    pod.init_containers = vec![init];
    pod.containers = vec![main];
    let rt = build(&to_request(&pod, &ctx()).unwrap().request);
    assert_eq!(rt.backoff, ctx().backoff);
    let (init, main) = (&rt.apps[0], &rt.apps[1]);
    assert!(init.init);
    assert_eq!(init.liveness_probe, None, "init containers have no probes");
    assert_eq!(main.restart_policy, runtime::RestartPolicy::Always);
    assert!(main.mounts[0].read_only && !main.mounts[1].read_only);
    assert_eq!(
        main.capabilities.len(),
        KNOWN_CAPS.len(),
        "privileged: every capability"
    );
    assert!(main.masked_paths.is_empty() && main.readonly_paths.is_empty());
    assert!(!main.no_new_privileges);
    assert!(main.allow_all_devices, "privileged: every device");
    assert!(!init.allow_all_devices, "unconfined is not privileged");
    assert_eq!(init.seccomp, runtime::Seccomp::Unconfined, "seccompProfile");
    assert_eq!(main.seccomp, runtime::Seccomp::Unconfined, "privileged");
    // Otherwise the filter stays, and so do the default capabilities and paths.
    let mut plain = desired_pod("web", "h");
    plain.init_containers = vec![container("init", "/i.aci")];
    plain.containers = vec![container("main", "/i.aci")];
    let rt = build(&to_request(&plain, &ctx()).unwrap().request);
    assert!(rt
        .apps
        .iter()
        .all(|a| a.seccomp == runtime::Seccomp::Default));
    assert!(rt
        .apps
        .iter()
        .all(|a| a.no_new_privileges && !a.allow_all_devices && !a.masked_paths.is_empty()));
    assert_eq!(rt.apps[1].capabilities.len(), DEFAULT_CAPABILITIES.len());
}

#[test]
fn host_aliases_become_the_runtimes_hosts_entries_in_order() {
    let mut pod = desired_pod("web", "h");
    pod.containers = vec![container("main", "/i.aci")];
    pod.host_aliases = vec![
        crate::k8s::HostAlias {
            ip: "10.1.2.3".into(),
            hostnames: vec!["foo.local".into(), "bar".into()],
        },
        crate::k8s::HostAlias {
            ip: "fd00::1".into(),
            hostnames: vec!["six".into()],
        },
    ];
    let rt = build(&to_request(&pod, &ctx()).unwrap().request);
    let entries: Vec<(&str, Vec<&str>)> = rt
        .hosts_entries
        .iter()
        .map(|e| {
            (
                e.ip.as_str(),
                e.hostnames.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            ("10.1.2.3", vec!["foo.local", "bar"]),
            ("fd00::1", vec!["six"])
        ]
    );
}

#[test]
fn dns_config_becomes_the_runtimes_dns_and_no_config_leaves_it_to_the_host() {
    let mut pod = desired_pod("web", "h");
    pod.containers = vec![container("main", "/i.aci")];
    assert_eq!(build(&to_request(&pod, &ctx()).unwrap().request).dns, None);
    pod.dns = Some(crate::k8s::PodDns {
        nameservers: vec!["192.0.2.53".into()],
        searches: vec!["example.".into()],
        options: vec!["ndots:2".into(), "edns0".into()],
    });
    let dns = build(&to_request(&pod, &ctx()).unwrap().request)
        .dns
        .unwrap();
    assert_eq!(dns.nameservers, vec!["192.0.2.53"]);
    assert_eq!(dns.search, vec!["example."]);
    assert_eq!(dns.options, vec!["ndots:2", "edns0"]);
}

#[test]
fn host_path_types_are_checked_and_created() {
    let d = tempfile::tempdir().unwrap();
    let mut pod = desired_pod("web", "h");
    let vol = |name: &str, path: &Path, kind: &str| DesiredVolume::HostPath {
        name: name.into(),
        path: path.display().to_string(),
        kind: (!kind.is_empty()).then(|| kind.to_string()),
    };
    pod.volumes = vec![
        vol("a", &d.path().join("made/deep"), "DirectoryOrCreate"),
        vol("b", &d.path().join("file"), "FileOrCreate"),
        vol("c", &d.path().join("whatever"), ""),
    ];
    prepare_host_paths(&pod).unwrap();
    assert!(d.path().join("made/deep").is_dir());
    assert!(d.path().join("file").is_file());
    assert!(!d.path().join("whatever").exists());

    pod.volumes = vec![vol("d", &d.path().join("missing"), "Directory")];
    let e = prepare_host_paths(&pod).unwrap_err();
    assert!(matches!(e, MapError::HostPathMissing { .. }), "{e}");
    assert_eq!(e.field(&pod), "spec.volumes[0].hostPath");

    pod.volumes = vec![vol("e", &d.path().join("file"), "Directory")];
    assert!(matches!(
        prepare_host_paths(&pod),
        Err(MapError::HostPathType { .. })
    ));
    pod.volumes = vec![vol("f", &d.path().join("made"), "FileOrCreate")];
    assert!(matches!(
        prepare_host_paths(&pod),
        Err(MapError::HostPathType { .. })
    ));
    pod.volumes = vec![vol("g", d.path(), "Pipe")];
    assert!(matches!(
        prepare_host_paths(&pod),
        Err(MapError::HostPathKind { .. })
    ));
}
