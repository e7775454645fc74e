//! Preparing pods from what the user asked for: fetch and verify images, render them,
//! resolve the runtime configuration and write the pod directory. `rkt run`,
//! `rkt prepare` and the reconciler all come through here.

use std::path::{Path, PathBuf};

use manifests::appc::{AcIdentifier, NameValue};
use manifests::pod::{PodApp, PodManifest, PodMount, RuntimeImage, VolumeKind};
use manifests::runtime::{RuntimeConfig, Volume};

use crate::image::fetch::{FetchError, FetchOptions, Fetcher, Progress};
use crate::image::reference::{ImageRef, ImageRefError};
use crate::image::render::{self as image, ImageError};
use crate::image::store::Store;
use crate::image::trust::Keystore;
use crate::pod::dir::{self as pods, Pod, PodError, Pods};
use crate::pod::request::PodRequest;
use crate::pod::spec::{self as pod_spec, ResolvedApp, SpecError};

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Reference(#[from] ImageRefError),
    #[error("cannot fetch {image}")]
    Fetch {
        image: String,
        #[source]
        source: Box<FetchError>,
    },
    #[error("cannot render {image}")]
    Render {
        image: String,
        #[source]
        source: Box<ImageError>,
    },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Pod(#[from] Box<PodError>),
}

/// Fetch, verify and render every image, then write a prepared pod whose runtime
/// configuration is the request's, resolved against the images.
pub fn prepare(
    store: &Store,
    keystore: &Keystore,
    pods: &Pods,
    progress: &dyn Progress,
    req: &PodRequest,
) -> Result<(Pod, RuntimeConfig), PrepareError> {
    let mut resolved = Vec::with_capacity(req.apps.len());
    for app in &req.apps {
        let reference = ImageRef::parse(&app.image)?;
        let opts = FetchOptions {
            pull_policy: req.pull_policy,
            insecure: req.insecure,
            signature: app.signature.clone(),
        };
        let info = Fetcher::new(store, keystore, opts, progress)
            .fetch(&reference)
            .map_err(|source| PrepareError::Fetch {
                image: app.image.clone(),
                source: Box::new(source),
            })?;
        let rootfs = image::render(store, &info).map_err(|source| PrepareError::Render {
            image: app.image.clone(),
            source: Box::new(source),
        })?;
        resolved.push(ResolvedApp {
            request: app.clone(),
            image_id: info.id.clone(),
            manifest: info.manifest.clone(),
            rootfs,
        });
    }
    let uuid = req.uuid.clone().unwrap_or_else(pods::new_uuid);
    let runtime = pod_spec::build_runtime(&uuid, &req.pod, &resolved)?;
    let mut manifest = pod_manifest(&runtime, &resolved, &req.annotations);
    manifest.ports = pod_spec::resolve_ports(&req.pod.ports, &resolved)?;
    let pod = pods
        .prepare(&manifest, &runtime)
        .map_err(|e| PrepareError::Pod(Box::new(e)))?;
    Ok((pod, runtime))
}

/// The appc pod manifest describing a runtime configuration (what `rkt cat-manifest`
/// prints). The runtime configuration stays the one stage1 executes.
pub fn pod_manifest(
    runtime: &RuntimeConfig,
    apps: &[ResolvedApp],
    annotations: &[(String, String)],
) -> PodManifest {
    let pod_apps = runtime
        .apps
        .iter()
        .zip(apps)
        .map(|(ra, resolved)| {
            let mut app = resolved.manifest.app.clone().unwrap_or_default();
            app.exec = ra.exec.clone();
            app.user = ra.user.clone();
            app.group = ra.group.clone();
            app.working_directory = Some(ra.working_dir.clone());
            app.environment = ra
                .env
                .iter()
                .map(|(k, v)| NameValue {
                    name: k.clone(),
                    value: v.clone(),
                })
                .collect();
            PodApp {
                name: ra.name.clone(),
                image: RuntimeImage {
                    name: AcIdentifier::new(resolved.manifest.name.as_str()).ok(),
                    id: ra.image_id.clone(),
                    labels: resolved.manifest.labels.clone(),
                },
                app: Some(app),
                read_only_root_fs: ra.read_only_rootfs,
                mounts: ra
                    .mounts
                    .iter()
                    .map(|m| PodMount {
                        volume: m.volume.clone(),
                        path: m.path.clone(),
                        app_volume: None,
                    })
                    .collect(),
                annotations: Vec::new(),
            }
        })
        .collect();
    let mut manifest = PodManifest::new(pod_apps);
    manifest.volumes = runtime
        .volumes
        .iter()
        .map(|v| match v {
            Volume::Host {
                name,
                source,
                read_only,
            } => manifests::pod::Volume {
                name: name.clone(),
                kind: VolumeKind::Host,
                source: Some(source.display().to_string()),
                read_only: Some(*read_only),
                recursive: None,
                mode: None,
                uid: None,
                gid: None,
            },
            Volume::Empty {
                name,
                mode,
                uid,
                gid,
            } => manifests::pod::Volume {
                name: name.clone(),
                kind: VolumeKind::Empty,
                source: None,
                read_only: None,
                recursive: None,
                mode: Some(mode.clone()),
                uid: Some(*uid),
                gid: Some(*gid),
            },
        })
        .collect();
    manifest.annotations = annotations
        .iter()
        .map(|(k, v)| NameValue {
            name: k.clone(),
            value: v.clone(),
        })
        .collect();
    manifest
}

/// Where the stage1 binary is: `--stage1-path`, else `stage1` beside the running
/// `rkt`, else the system location.
pub fn find_stage1(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let beside = dir.join("stage1");
            if beside.is_file() {
                return beside;
            }
        }
    }
    PathBuf::from("/usr/lib/rkt/stage1")
}
