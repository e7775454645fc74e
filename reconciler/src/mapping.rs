//! From a desired Kubernetes pod to what `rkt run` would be asked: a [`PodRequest`]
//! (pod options and one [`AppArgs`] per container), plus the settings `rkt run` has no
//! flag for, applied to the runtime configuration once it is built
//! ([`RuntimeAdjust`]): init apps, restart policies, probes, per-mount read-only flags,
//! privileged containers and the back-off timing.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use manifests::appc;
use manifests::pod::ExposedPort;
use manifests::runtime::{self, Backoff, RuntimeConfig, Volume, DEFAULT_CAPABILITIES};

use super::k8s::{
    DesiredContainer, DesiredPod, DesiredVolume, ImagePullPolicy, ManifestError, Probe,
    ProbeAction, RestartPolicy,
};
use super::{ANNOTATION_KEY, ANNOTATION_SOURCE, ANNOTATION_SPEC_HASH};
use stage0::image::fetch::PullPolicy;
use stage0::insecure::InsecureOptions;
use stage0::pod::launch::PodRequest;
use stage0::pod::request::{AppArgs, MountArg, KNOWN_CAPS};
use stage0::pod::spec::PodOptions;

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("container {container}: unknown capability {cap}")]
    Capability { container: String, cap: String },
    #[error("volume {name}: hostPath {} of type {kind} does not exist", path.display())]
    HostPathMissing {
        name: String,
        path: PathBuf,
        kind: String,
    },
    #[error("volume {name}: hostPath {} is not a {kind}", path.display())]
    HostPathType {
        name: String,
        path: PathBuf,
        kind: String,
    },
    #[error("volume {name}: cannot create hostPath {}", path.display())]
    HostPathCreate {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("volume {name}: unknown hostPath type {kind}")]
    HostPathKind { name: String, kind: String },
}

impl MapError {
    /// The manifest field the error is about, for the status.
    pub fn field(&self, pod: &DesiredPod) -> String {
        let container_field = |name: &str| {
            pod.init_containers
                .iter()
                .position(|c| c.name == name)
                .map(|i| format!("spec.initContainers[{i}].securityContext.capabilities"))
                .or_else(|| {
                    pod.containers
                        .iter()
                        .position(|c| c.name == name)
                        .map(|i| format!("spec.containers[{i}].securityContext.capabilities"))
                })
                .unwrap_or_default()
        };
        let volume_field = |name: &str| {
            pod.volumes
                .iter()
                .position(|v| v.name() == name)
                .map(|i| format!("spec.volumes[{i}].hostPath"))
                .unwrap_or_default()
        };
        match self {
            MapError::Capability { container, .. } => container_field(container),
            MapError::HostPathMissing { name, .. }
            | MapError::HostPathType { name, .. }
            | MapError::HostPathCreate { name, .. }
            | MapError::HostPathKind { name, .. } => volume_field(name),
        }
    }
}

/// What the reconciler adds to `rkt run`'s choices.
#[derive(Debug, Clone)]
pub struct MapContext {
    pub insecure: InsecureOptions,
    pub backoff: Backoff,
    /// The host's name, for `hostNetwork` pods without `hostname`.
    pub host_name: Option<String>,
}

/// A host port published by a container (`ports[].hostPort`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub container: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

/// Per-app settings applied after `build_runtime`.
#[derive(Debug, Clone, PartialEq)]
pub struct AppAdjust {
    pub name: String,
    pub init: bool,
    pub restart_policy: runtime::RestartPolicy,
    pub liveness_probe: Option<runtime::Probe>,
    pub readiness_probe: Option<runtime::Probe>,
    pub privileged: bool,
    /// `seccompProfile` / `rkt.io/seccomp`: `Unconfined` lifts the default filter.
    pub seccomp: runtime::Seccomp,
    /// Mount targets that are read-only (`volumeMounts[].readOnly`).
    pub read_only_mounts: Vec<String>,
}

/// The runtime settings `rkt run` has no flags for.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeAdjust {
    pub apps: Vec<AppAdjust>,
    pub backoff: Backoff,
}

impl RuntimeAdjust {
    pub fn apply(&self, rt: &mut RuntimeConfig) {
        rt.backoff = self.backoff;
        for adj in &self.apps {
            let Some(app) = rt.apps.iter_mut().find(|a| a.name == adj.name) else {
                continue;
            };
            app.init = adj.init;
            app.restart_policy = adj.restart_policy;
            app.liveness_probe.clone_from(&adj.liveness_probe);
            app.readiness_probe.clone_from(&adj.readiness_probe);
            for m in &mut app.mounts {
                if adj.read_only_mounts.contains(&m.path) {
                    m.read_only = true;
                }
            }
            // Privileged containers run without a filter, as under the CRI.
            if adj.privileged || adj.seccomp == runtime::Seccomp::Unconfined {
                app.seccomp = runtime::Seccomp::Unconfined;
            }
            if adj.privileged {
                app.capabilities = KNOWN_CAPS.iter().map(|c| c.to_string()).collect();
                app.masked_paths.clear();
                app.readonly_paths.clear();
                app.no_new_privileges = false;
                app.allow_all_devices = true;
            }
        }
    }
}

/// A desired pod as a prepare request.
#[derive(Debug, Clone)]
pub struct Mapped {
    pub request: PodRequest,
    pub adjust: RuntimeAdjust,
    /// Host ports published (also in `request.pod.ports`, for the portmap plugin).
    pub ports: Vec<PortMapping>,
}

/// The annotations that record a pod's identity in its pod manifest.
pub fn identity_annotations(pod: &DesiredPod) -> Vec<(String, String)> {
    vec![
        (ANNOTATION_KEY.to_string(), pod.key.to_string()),
        (ANNOTATION_SOURCE.to_string(), pod.file.clone()),
        (ANNOTATION_SPEC_HASH.to_string(), pod.spec_hash.clone()),
    ]
}

/// Map a desired pod to a request. Pure (host paths are checked by
/// [`prepare_host_paths`] when the pod is created).
pub fn to_request(pod: &DesiredPod, ctx: &MapContext) -> Result<Mapped, MapError> {
    let volumes = pod
        .volumes
        .iter()
        .map(|v| match v {
            DesiredVolume::HostPath { name, path, .. } => Volume::Host {
                name: name.clone(),
                source: PathBuf::from(path),
                read_only: false,
            },
            // Kubernetes' emptyDir is writable by any user of the pod.
            DesiredVolume::EmptyDir { name } => Volume::Empty {
                name: name.clone(),
                mode: "0777".into(),
                uid: 0,
                gid: 0,
            },
        })
        .collect();
    let hostname = match (&pod.hostname, pod.host_network) {
        (Some(h), _) => Some(h.clone()),
        (None, true) => ctx.host_name.clone(),
        (None, false) => Some(pod.key.name.chars().take(63).collect()),
    };
    let mut pod_insecure = ctx.insecure;
    // rkt.io/image-privileges: allow (the reconciler's own flag allows it for all pods).
    pod_insecure.image_privileges |= pod.image_privileges;
    let options = PodOptions {
        hostname,
        volumes,
        flavor: pod.stage1,
        insecure: pod_insecure,
        stop_grace_period_secs: Some(pod.termination_grace_period_secs.max(1)),
        // The networks themselves are attached as the pod starts
        // (`act::net_mode`: hostNetwork, no network, or the pod's CNI networks).
        private_network: !pod.host_network && pod.networks.is_empty(),
        // spec.hostUsers: false
        private_users: pod.private_users,
        ..PodOptions::default()
    };
    let init_policy = match pod.restart_policy {
        RestartPolicy::Never => runtime::RestartPolicy::Never,
        RestartPolicy::Always | RestartPolicy::OnFailure => runtime::RestartPolicy::OnFailure,
    };
    let app_policy = match pod.restart_policy {
        RestartPolicy::Always => runtime::RestartPolicy::Always,
        RestartPolicy::OnFailure => runtime::RestartPolicy::OnFailure,
        RestartPolicy::Never => runtime::RestartPolicy::Never,
    };
    let mut apps = Vec::new();
    let mut adjust = Vec::new();
    let mut ports = Vec::new();
    let all = pod
        .init_containers
        .iter()
        .map(|c| (c, true))
        .chain(pod.containers.iter().map(|c| (c, false)));
    for (c, init) in all {
        apps.push(app_args(c)?);
        adjust.push(AppAdjust {
            name: c.name.clone(),
            init,
            restart_policy: if init { init_policy } else { app_policy },
            liveness_probe: if init {
                None
            } else {
                c.liveness_probe.as_ref().map(probe)
            },
            readiness_probe: if init {
                None
            } else {
                c.readiness_probe.as_ref().map(probe)
            },
            privileged: c.privileged,
            seccomp: c.seccomp,
            read_only_mounts: c
                .volume_mounts
                .iter()
                .filter(|m| m.read_only)
                .map(|m| m.mount_path.clone())
                .collect(),
        });
        for p in &c.ports {
            if let Some(host_port) = p.host_port {
                if !pod.host_network {
                    ports.push(PortMapping {
                        container: c.name.clone(),
                        host_port,
                        container_port: p.container_port,
                        protocol: p.protocol.clone(),
                    });
                }
            }
        }
    }
    let containers = || pod.init_containers.iter().chain(&pod.containers);
    let pull_policy = if containers().any(|c| c.image_pull_policy == ImagePullPolicy::Always) {
        PullPolicy::Update
    } else if containers().all(|c| c.image_pull_policy == ImagePullPolicy::Never) {
        PullPolicy::Never
    } else {
        PullPolicy::New
    };
    let mut options = options;
    options.ports = ports.iter().map(exposed_port).collect();
    Ok(Mapped {
        request: PodRequest {
            pod: options,
            apps,
            pull_policy,
            insecure: ctx.insecure,
            annotations: identity_annotations(pod),
            uuid: None,
        },
        adjust: RuntimeAdjust {
            apps: adjust,
            backoff: ctx.backoff,
        },
        ports,
    })
}

/// A host port as the pod manifest's `ports` entry, its app port given (Kubernetes
/// names container ports by number, not by the image's port names).
fn exposed_port(p: &PortMapping) -> ExposedPort {
    let protocol = p.protocol.to_ascii_lowercase();
    let name = format!("{}-{}-{protocol}", p.container, p.container_port);
    ExposedPort {
        name: name.clone(),
        host_port: p.host_port,
        host_ip: None,
        pod_port: Some(appc::Port {
            name,
            protocol,
            port: p.container_port,
            count: 1,
            socket_activated: false,
        }),
    }
}

fn app_args(c: &DesiredContainer) -> Result<AppArgs, MapError> {
    // Kubernetes: `command` replaces the image's whole exec, `args` its arguments.
    let (exec, args, args_given) = match c.command.split_first() {
        Some((program, rest)) => {
            let mut args = rest.to_vec();
            args.extend(c.args.iter().cloned());
            (Some(program.clone()), args, true)
        }
        None => (None, c.args.clone(), !c.args.is_empty()),
    };
    Ok(AppArgs {
        image: c.image.clone(),
        name: Some(c.name.clone()),
        exec,
        args,
        args_given,
        env: c.env.clone(),
        user: c.run_as_user.map(|u| u.to_string()),
        group: c.run_as_group.map(|g| g.to_string()),
        supplementary_gids: Vec::new(),
        working_dir: c.working_dir.clone(),
        readonly_rootfs: c.read_only_root_filesystem,
        mounts: c
            .volume_mounts
            .iter()
            .map(|m| MountArg {
                volume: m.name.clone(),
                target: m.mount_path.clone(),
            })
            .collect(),
        memory: c.memory_limit_bytes,
        cpu_millis: c.cpu_millis,
        caps_retain: capabilities(c)?,
        caps_remove: None,
        signature: None,
    })
}

/// Kubernetes' `capabilities.add`/`drop`, relative to the default set; `None` when
/// neither is given (the image's isolators or the default set apply).
fn capabilities(c: &DesiredContainer) -> Result<Option<Vec<String>>, MapError> {
    if c.capabilities_add.is_empty() && c.capabilities_drop.is_empty() {
        return Ok(None);
    }
    let known = |cap: &String| {
        if cap == "ALL" || KNOWN_CAPS.contains(&cap.as_str()) {
            Ok(())
        } else {
            Err(MapError::Capability {
                container: c.name.clone(),
                cap: cap.clone(),
            })
        }
    };
    for cap in c.capabilities_add.iter().chain(&c.capabilities_drop) {
        known(cap)?;
    }
    let mut set: Vec<String> = if c.capabilities_drop.iter().any(|d| d == "ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPABILITIES
            .iter()
            .map(|s| s.to_string())
            .filter(|s| !c.capabilities_drop.contains(s))
            .collect()
    };
    for cap in &c.capabilities_add {
        if cap == "ALL" {
            set = KNOWN_CAPS.iter().map(|s| s.to_string()).collect();
        } else if !set.contains(cap) {
            set.push(cap.clone());
        }
    }
    Ok(Some(set))
}

fn probe(p: &Probe) -> runtime::Probe {
    runtime::Probe {
        action: match &p.action {
            ProbeAction::Exec { command } => runtime::ProbeAction::Exec {
                command: command.clone(),
            },
            ProbeAction::TcpSocket { port } => runtime::ProbeAction::TcpSocket { port: *port },
            ProbeAction::HttpGet { path, port, .. } => runtime::ProbeAction::HttpGet {
                path: path.clone(),
                port: *port,
            },
        },
        initial_delay_secs: p.initial_delay_secs,
        period_secs: p.period_secs,
        timeout_secs: p.timeout_secs,
        success_threshold: p.success_threshold,
        failure_threshold: p.failure_threshold,
    }
}

/// Check (and for `DirectoryOrCreate` / `FileOrCreate`, create) the pod's host paths
/// as Kubernetes' `hostPath.type` says.
pub fn prepare_host_paths(pod: &DesiredPod) -> Result<(), MapError> {
    for v in &pod.volumes {
        let DesiredVolume::HostPath { name, path, kind } = v else {
            continue;
        };
        let path = Path::new(path);
        let kind = kind.as_deref().unwrap_or("");
        let meta = fs::metadata(path);
        let missing = || MapError::HostPathMissing {
            name: name.clone(),
            path: path.to_path_buf(),
            kind: kind.to_string(),
        };
        let wrong = || MapError::HostPathType {
            name: name.clone(),
            path: path.to_path_buf(),
            kind: kind.to_string(),
        };
        use std::os::unix::fs::FileTypeExt;
        match kind {
            "" => {}
            "DirectoryOrCreate" => match &meta {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(wrong()),
                Err(_) => fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(path)
                    .map_err(|source| MapError::HostPathCreate {
                        name: name.clone(),
                        path: path.to_path_buf(),
                        source,
                    })?,
            },
            "FileOrCreate" => match &meta {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Err(wrong()),
                Err(_) => {
                    fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|source| MapError::HostPathCreate {
                            name: name.clone(),
                            path: path.to_path_buf(),
                            source,
                        })?;
                }
            },
            "Directory" | "File" | "Socket" | "CharDevice" | "BlockDevice" => {
                let m = meta.map_err(|_| missing())?;
                let t = m.file_type();
                let ok = match kind {
                    "Directory" => t.is_dir(),
                    "File" => t.is_file(),
                    "Socket" => t.is_socket(),
                    "CharDevice" => t.is_char_device(),
                    _ => t.is_block_device(),
                };
                if !ok {
                    return Err(wrong());
                }
            }
            other => {
                return Err(MapError::HostPathKind {
                    name: name.clone(),
                    kind: other.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// An error of an action on `pod`, reported at the pod's document.
pub fn error_at(pod: &DesiredPod, field: &str, message: String) -> ManifestError {
    ManifestError {
        file: pod.file.clone(),
        line: Some(pod.line),
        column: None,
        field: field.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests;
