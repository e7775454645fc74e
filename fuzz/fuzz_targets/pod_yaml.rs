//! Kubernetes Pod YAML/JSON: parse and validate (`manifests::k8s::parse_file`; the same
//! bytes as a host's `node.yaml` and as a `registries.d` `hosts.toml`), decide each pod's
//! placement on the parsed host, map
//! each valid pod to a complete pod request (`reconciler::mapping::to_request`), build
//! its runtime configuration and pod manifest as `rkt prepare` would, and check that
//! what was built reads back.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use manifests::appc::ImageManifest;
use manifests::k8s;
use manifests::runtime::{Backoff, RuntimeConfig};
use stage0::insecure::InsecureOptions;
use stage0::pod::launch;
use stage0::pod::spec::{self as pod_spec, ResolvedApp};
use reconciler::mapping::{self, MapContext};

/// The rendered rootfs every app gets.
fn rootfs() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| rkt_fuzz::app_rootfs("pod_yaml")).path()
}

/// The image every app runs: `/bin/sh` by default, with a `PATH`.
fn image_manifest() -> &'static ImageManifest {
    static MANIFEST: OnceLock<ImageManifest> = OnceLock::new();
    MANIFEST.get_or_init(|| {
        ImageManifest::from_slice(
            br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/fuzz",
                "app":{"exec":["/bin/sh"],"user":"0","group":"0",
                "environment":[{"name":"PATH","value":"/usr/sbin:/usr/bin:/bin"}]}}"#,
        )
        .expect("minimal image manifest")
    })
}

const IMAGE_ID: &str = "sha512-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    // The file name decides nothing in the parser but is echoed in every error.
    let (pods, errors) = k8s::parse_file("fuzz.yaml", data);
    for e in &errors {
        assert_eq!(e.file, "fuzz.yaml");
        assert!(!e.message.is_empty(), "an error without a message: {e:?}");
        let _ = e.to_string();
    }
    // A host's node.yaml goes through the same positioned YAML: errors name the file.
    let node = match k8s::parse_node_file("node.yaml", data) {
        Ok(file) => k8s::Node::new(
            file.name.as_deref().unwrap_or("fuzz-host"),
            file.labels.clone(),
        ),
        Err(errors) => {
            for e in &errors {
                assert_eq!(e.file, "node.yaml");
                assert!(!e.message.is_empty(), "an error without a message: {e:?}");
            }
            k8s::Node::new("fuzz-host", Default::default())
        }
    };
    // A registries.d hosts.toml (same bytes): refused or read, never a panic.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = stage0::image::oci::mirrors::parse_hosts(
            text,
            std::path::Path::new("hosts.toml"),
            "registry.k8s.io",
        );
    }
    let ctx = MapContext {
        insecure: InsecureOptions::default(),
        backoff: Backoff::default(),
        host_name: Some("fuzz-host".to_string()),
    };
    for pod in &pods {
        assert_eq!(pod.spec_hash.len(), 64, "spec hash of {}", pod.key);
        // Placement is decided for any host without panicking, and explained when not here.
        if let Some(why) = pod.placement.mismatch(&node) {
            assert!(!why.is_empty());
        }
        let Ok(mapped) = mapping::to_request(pod, &ctx) else {
            continue;
        };
        let resolved: Vec<ResolvedApp> = mapped
            .request
            .apps
            .iter()
            .map(|app| ResolvedApp {
                request: app.clone(),
                image_id: IMAGE_ID.to_string(),
                manifest: image_manifest().clone(),
                rootfs: rootfs().to_path_buf(),
            })
            .collect();
        let uuid = "00000000-0000-4000-8000-000000000000";
        let Ok(runtime) = pod_spec::build_runtime(uuid, &mapped.request.pod, &resolved) else {
            continue;
        };
        let json = serde_json::to_vec(&runtime).expect("a runtime configuration serialises");
        RuntimeConfig::from_slice(&json).expect("a built runtime configuration reads back");
        let mut manifest = launch::pod_manifest(&runtime, &resolved, &mapped.request.annotations);
        if let Ok(ports) = pod_spec::resolve_ports(&mapped.request.pod.ports, &resolved) {
            manifest.ports = ports;
        }
        // What `rkt prepare` writes for a valid pod must itself be valid.
        if let Err(e) = manifest.validate() {
            panic!("pod {} maps to an invalid pod manifest: {e}", pod.key);
        }
    }
});
