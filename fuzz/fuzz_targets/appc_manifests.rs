//! appc manifests: the image manifest (an ACI's `manifest`), the pod manifest and the
//! stage0/stage1 `runtime.json`. Whatever parses must serialise and read back equal;
//! a parsed image manifest is also turned into a runtime app as `rkt prepare` does.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use manifests::appc::{AcIdentifier, ImageManifest};
use manifests::pod::PodManifest;
use manifests::runtime::RuntimeConfig;
use stage0::pod::request::{AppRequest, PodOptions};
use stage0::pod::spec::{self as pod_spec, ResolvedApp};

fn rootfs() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| rkt_fuzz::app_rootfs("appc_manifests"))
        .path()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(id) = AcIdentifier::new(text) {
            assert_eq!(id.as_str(), text);
        }
    }

    if let Ok(m) = ImageManifest::from_slice(data) {
        let json = serde_json::to_vec(&m).expect("an image manifest serialises");
        let back = ImageManifest::from_slice(&json).expect("an image manifest reads back");
        rkt_fuzz::assert_same_json(&back, &m, "image manifest");
        let _ = m.label("version");
        let app = ResolvedApp {
            request: AppRequest {
                image: m.name.to_string(),
                ..AppRequest::default()
            },
            image_id: format!("sha512-{}", "0".repeat(64)),
            manifest: m,
            rootfs: rootfs().to_path_buf(),
        };
        let apps = [app];
        let uuid = "00000000-0000-4000-8000-000000000000";
        if let Ok(runtime) = pod_spec::build_runtime(uuid, &PodOptions::default(), &apps) {
            let json = serde_json::to_vec(&runtime).expect("a runtime configuration serialises");
            RuntimeConfig::from_slice(&json).expect("a built runtime configuration reads back");
        }
        let requested: Vec<_> = apps[0]
            .manifest
            .app
            .iter()
            .flat_map(|a| a.ports.iter())
            .map(|p| manifests::pod::ExposedPort {
                name: p.name.clone(),
                host_port: p.port,
                host_ip: None,
                pod_port: None,
            })
            .collect();
        let _ = pod_spec::resolve_ports(&requested, &apps);
    }

    if let Ok(m) = PodManifest::from_slice(data) {
        let json = serde_json::to_vec(&m).expect("a pod manifest serialises");
        let back = PodManifest::from_slice(&json).expect("a pod manifest reads back");
        rkt_fuzz::assert_same_json(&back, &m, "pod manifest");
    }

    if let Ok(cfg) = RuntimeConfig::from_slice(data) {
        let json = serde_json::to_vec(&cfg).expect("a runtime configuration serialises");
        let back = RuntimeConfig::from_slice(&json).expect("a runtime configuration reads back");
        rkt_fuzz::assert_same_json(&back, &cfg, "runtime configuration");
    }
});
