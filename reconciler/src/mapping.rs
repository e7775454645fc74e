//! From a desired Kubernetes pod to a complete [`PodRequest`]: the pod options (with
//! the back-off timing) and one [`AppRequest`] per container, init containers first,
//! each with everything its runtime app needs (command, environment, user, mounts and
//! their read-only flags, limits, capabilities, init flag, restart policy, probes,
//! privileges, seccomp). `stage0::pod::spec` builds the runtime configuration from it
//! as it does for `rkt run`; nothing is set afterwards.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use manifests::appc;
use manifests::pod::ExposedPort;
use manifests::runtime::{self, Backoff, Volume, DEFAULT_CAPABILITIES};

use super::k8s::{
    DesiredContainer, DesiredPod, DesiredVolume, ImagePullPolicy, ManifestError, Probe,
    ProbeAction, RestartPolicy,
};
use super::{ANNOTATION_KEY, ANNOTATION_SOURCE, ANNOTATION_SPEC_HASH};
use stage0::image::fetch::PullPolicy;
use stage0::insecure::InsecureOptions;
use stage0::pod::request::{AppRequest, MountArg, PodOptions, PodRequest, KNOWN_CAPS};

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

/// A desired pod as a prepare request.
#[derive(Debug, Clone)]
pub struct Mapped {
    pub request: PodRequest,
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
    let mut options = PodOptions {
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
        // spec.hostAliases: appended to /etc/hosts after the runtime's own entries.
        hosts_entries: pod
            .host_aliases
            .iter()
            .map(|a| format!("{}={}", a.ip, a.hostnames.join(",")))
            .collect(),
        // dnsPolicy: None + dnsConfig: exactly that resolv.conf. Otherwise the host's
        // (hostNetwork, no network) or the CNI result's.
        dns: pod
            .dns
            .as_ref()
            .map(|d| d.nameservers.clone())
            .unwrap_or_default(),
        dns_search: pod
            .dns
            .as_ref()
            .map(|d| d.searches.clone())
            .unwrap_or_default(),
        dns_opts: pod
            .dns
            .as_ref()
            .map(|d| d.options.clone())
            .unwrap_or_default(),
        backoff: ctx.backoff,
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
    let mut ports = Vec::new();
    let all = pod
        .init_containers
        .iter()
        .map(|c| (c, true))
        .chain(pod.containers.iter().map(|c| (c, false)));
    for (c, init) in all {
        let policy = if init { init_policy } else { app_policy };
        apps.push(app_request(c, init, policy)?);
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

/// A container as an app of the pod: an init container (`init`) runs to completion
/// and has no probes; `restart_policy` follows from the pod's.
fn app_request(
    c: &DesiredContainer,
    init: bool,
    restart_policy: runtime::RestartPolicy,
) -> Result<AppRequest, MapError> {
    // Kubernetes: `command` replaces the image's whole exec, `args` its arguments.
    let (exec, args, args_given) = match c.command.split_first() {
        Some((program, rest)) => {
            let mut args = rest.to_vec();
            args.extend(c.args.iter().cloned());
            (Some(program.clone()), args, true)
        }
        None => (None, c.args.clone(), !c.args.is_empty()),
    };
    Ok(AppRequest {
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
                read_only: m.read_only,
            })
            .collect(),
        memory: c.memory_limit_bytes,
        cpu_millis: c.cpu_millis,
        caps_retain: capabilities(c)?,
        caps_remove: None,
        signature: None,
        init,
        restart_policy,
        liveness_probe: c.liveness_probe.as_ref().filter(|_| !init).map(probe),
        readiness_probe: c.readiness_probe.as_ref().filter(|_| !init).map(probe),
        // Privileged containers run without a filter, as under the CRI.
        privileged: c.privileged,
        seccomp: c.seccomp,
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
