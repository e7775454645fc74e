//! The error policy's input: which failures are permanent, what they are reported at.

use super::*;
use crate::testutil::{container, desired_pod};
use stage0::image::fetch::FetchError;
use stage0::image::reference::ImageRefError;
use stage0::pod::spec::SpecError;

fn fetch_failed(image: &str) -> PrepareError {
    PrepareError::Fetch {
        image: image.into(),
        source: Box::new(FetchError::NotFound {
            url: format!("https://{image}"),
            what: "image",
        }),
    }
}

#[test]
fn errors_say_whether_only_a_new_manifest_can_fix_them() {
    let cap = || MapError::Capability {
        container: "main".into(),
        cap: "CAP_NOPE".into(),
    };
    // (error, permanent, field, message)
    let cases: Vec<(ActError, bool, &str, &str)> = vec![
        (
            ActError::Spec {
                field: "spec.containers[0].securityContext".into(),
                source: cap(),
            },
            true,
            "spec.containers[0].securityContext",
            "container main: unknown capability CAP_NOPE",
        ),
        (
            ActError::HostPath {
                field: "spec.volumes[0]".into(),
                source: cap(),
            },
            false,
            "spec.volumes[0]",
            "container main: unknown capability CAP_NOPE",
        ),
        (
            ActError::Prepare {
                field: "spec.containers[0].image".into(),
                source: fetch_failed("example.com/web"),
            },
            false,
            "spec.containers[0].image",
            "cannot fetch example.com/web: image https://example.com/web was not found (HTTP 404)",
        ),
        (
            ActError::Prepare {
                field: String::new(),
                source: PrepareError::Reference(ImageRefError::Invalid {
                    input: "x y".into(),
                    reason: "a space".into(),
                }),
            },
            true,
            "",
            "invalid image reference \"x y\": a space",
        ),
        (
            ActError::Prepare {
                field: String::new(),
                source: PrepareError::Spec(SpecError::NoExec {
                    app: "main".into(),
                    image: "example.com/web".into(),
                }),
            },
            true,
            "",
            "app main: image example.com/web has no app to run and no --exec was given",
        ),
        (
            ActError::Start {
                uuid: "u1".into(),
                source: Box::new(PodError::NoApps),
                cleanup: Some(Box::new(PodError::UuidInUse { uuid: "u1".into() })),
            },
            false,
            "",
            "cannot start pod u1: a pod needs at least one app (and removing it failed: pod u1 already exists)",
        ),
        (
            ActError::Start {
                uuid: "u1".into(),
                source: Box::new(PodError::NoApps),
                cleanup: None,
            },
            false,
            "",
            "cannot start pod u1: a pod needs at least one app",
        ),
        (
            ActError::StopOld {
                old: "u0".into(),
                source: Box::new(PodError::NoApps.into()),
            },
            false,
            "",
            "cannot stop the old pod u0: a pod needs at least one app",
        ),
        (
            ActError::NotReady {
                uuid: "u1".into(),
                old: "u0".into(),
                reason: "it is exited".into(),
            },
            false,
            "",
            "the new pod u1 did not become ready: it is exited; the old pod u0 keeps running",
        ),
        (
            PodError::NoApps.into(),
            false,
            "",
            "a pod needs at least one app",
        ),
    ];
    for (error, permanent, field, message) in cases {
        assert_eq!(error.is_permanent(), permanent, "{error:?}");
        assert_eq!(error.field(), field, "{error:?}");
        assert_eq!(manifests::error::chain(&error), message);
    }
}

#[test]
fn errors_are_reported_at_the_pods_document() {
    let mut pod = desired_pod("web", "h");
    pod.line = 7;
    pod.init_containers = vec![container("init", "example.com/init")];
    pod.containers = vec![
        container("main", "example.com/web"),
        container("side", "example.com/side"),
    ];
    let e = ActError::Prepare {
        field: prepare_error_field(&pod, &fetch_failed("example.com/side")),
        source: fetch_failed("example.com/side"),
    };
    let at = e.at(&pod);
    assert_eq!(
        (at.file.as_str(), at.line, at.field.as_str()),
        ("/pods.d/web.yaml", Some(7), "spec.containers[1].image")
    );
    assert_eq!(
        prepare_error_field(&pod, &fetch_failed("example.com/init")),
        "spec.initContainers[0].image"
    );
    assert_eq!(prepare_error_field(&pod, &fetch_failed("other")), "");
}
