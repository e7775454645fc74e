//! From a [`PodRequest`](crate::pod::request::PodRequest) (`rkt run`'s flags or a
//! Pod YAML) and the resolved images to the `runtime.json` stage1 executes, whole:
//! nothing is set on it afterwards. Everything is checked here, before a pod directory
//! exists, so bad input never leaves a pod behind.
//!
//! Each app's settings come from one pure function of the request and the image:
//! `exec`, `environment`, `mounts`, `capabilities`, `seccomp`, `limits`, `paths` and
//! `identity` (each table-tested).

use std::path::{Component, Path, PathBuf};

use manifests::appc::{self, ImageManifest};
use manifests::runtime::{
    Dns, Flavor, HostsEntry, Mount, RuntimeApp, RuntimeConfig, Seccomp, Volume,
    DEFAULT_CAPABILITIES, DEFAULT_MASKED_PATHS, DEFAULT_PATH, DEFAULT_READONLY_PATHS,
    RUNTIME_VERSION,
};

use crate::insecure::InsecureOptions;
use crate::pod::request::{AppRequest, MountArg, PodOptions, KNOWN_CAPS};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("app {app}: image {image} has no app to run and no --exec was given")]
    NoExec { app: String, image: String },
    #[error("app {app}: {path} does not exist in image {image}")]
    ExecMissing {
        app: String,
        path: String,
        image: String,
    },
    #[error("app {app}: exec {path} is not absolute and not in the image's PATH")]
    ExecRelative { app: String, path: String },
    #[error("two apps are named {0}; give one a different --name")]
    DuplicateApp(String),
    #[error("invalid app name {0:?}: use lower-case letters, digits and '-'")]
    BadAppName(String),
    #[error("app {app}: mount of volume {volume}, which is not defined (add --volume {volume},kind=...)")]
    UnknownVolume { app: String, volume: String },
    #[error("volume {name}: source {} does not exist", path.display())]
    MissingSource { name: String, path: PathBuf },
    #[error("volume {0} is defined twice")]
    DuplicateVolume(String),
    #[error("invalid --hosts-entry {0:?}: expected IP=HOSTNAME")]
    HostsEntry(String),
    #[error("invalid hostname {0:?}")]
    Hostname(String),
    #[error("--interactive takes exactly one app, found {0}")]
    Interactive(usize),
    #[error("app {app}: unknown capability {cap} in image isolator")]
    Capability { app: String, cap: String },
    #[error(
        "--port {name}: no app of the pod has a port named {name} (the images' ports: {available})"
    )]
    UnknownPort { name: String, available: String },
    #[error("--port: host port {port} is given twice")]
    DuplicateHostPort { port: u16 },
    #[error("--port: port {name} is given twice")]
    DuplicatePortName { name: String },
    #[error(
        "--private-users needs the default stage1; the fly stage1 runs apps with the host's ids"
    )]
    PrivateUsersFly,
}

/// Check `--port` requests against the apps' image ports (`app.ports`) and fill in
/// each one's app port (protocol and number): the pod manifest's `ports`.
pub fn resolve_ports(
    requested: &[manifests::pod::ExposedPort],
    apps: &[ResolvedApp],
) -> Result<Vec<manifests::pod::ExposedPort>, SpecError> {
    let image_ports: Vec<&appc::Port> = apps
        .iter()
        .filter_map(|a| a.manifest.app.as_ref())
        .flat_map(|a| a.ports.iter())
        .collect();
    let mut out: Vec<manifests::pod::ExposedPort> = Vec::new();
    for req in requested {
        if out.iter().any(|p| p.name == req.name) {
            return Err(SpecError::DuplicatePortName {
                name: req.name.clone(),
            });
        }
        // A request that names its app port already (the reconciler's Kubernetes
        // `containerPort`s) is taken as it is; others are looked up by name.
        let found = req
            .pod_port
            .as_ref()
            .or_else(|| image_ports.iter().copied().find(|p| p.name == req.name));
        let Some(port) = found else {
            let names: Vec<&str> = image_ports.iter().map(|p| p.name.as_str()).collect();
            return Err(SpecError::UnknownPort {
                name: req.name.clone(),
                available: if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                },
            });
        };
        let protocol = port.protocol.to_ascii_lowercase();
        let clash = out.iter().any(|p| {
            p.host_port == req.host_port
                && p.pod_port
                    .as_ref()
                    .is_some_and(|pp| pp.protocol.eq_ignore_ascii_case(&protocol))
        });
        if clash {
            return Err(SpecError::DuplicateHostPort {
                port: req.host_port,
            });
        }
        let mut exposed = req.clone();
        exposed.pod_port = Some((*port).clone());
        out.push(exposed);
    }
    Ok(out)
}

/// One app whose image is in the store and rendered.
#[derive(Debug, Clone)]
pub struct ResolvedApp {
    pub request: AppRequest,
    pub image_id: String,
    pub manifest: ImageManifest,
    /// The rendered rootfs (tree store).
    pub rootfs: PathBuf,
}

/// Default app name: the last component of the image name (`example.com/busybox` -> `busybox`).
pub fn default_app_name(image_name: &str) -> String {
    let base = image_name.rsplit('/').next().unwrap_or(image_name);
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() {
        "app".to_string()
    } else {
        trimmed.to_string()
    }
}

fn valid_app_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Build the runtime configuration for a pod.
pub fn build_runtime(
    uuid: &str,
    opts: &PodOptions,
    apps: &[ResolvedApp],
) -> Result<RuntimeConfig, SpecError> {
    if opts.interactive && apps.len() != 1 {
        return Err(SpecError::Interactive(apps.len()));
    }
    if opts.private_users && opts.flavor == Flavor::Fly {
        return Err(SpecError::PrivateUsersFly);
    }
    let hostname = match &opts.hostname {
        Some(h) => {
            if h.is_empty()
                || h.len() > 63
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(SpecError::Hostname(h.clone()));
            }
            h.clone()
        }
        None => format!("rkt-{uuid}"),
    };
    let mut seen = Vec::new();
    for v in &opts.volumes {
        if seen.contains(&v.name()) {
            return Err(SpecError::DuplicateVolume(v.name().to_string()));
        }
        seen.push(v.name());
        if let Volume::Host { name, source, .. } = v {
            if !source.exists() {
                return Err(SpecError::MissingSource {
                    name: name.clone(),
                    path: source.clone(),
                });
            }
        }
    }
    let hosts_entries = opts
        .hosts_entries
        .iter()
        .map(|e| {
            let (ip, host) = e
                .split_once('=')
                .filter(|(ip, h)| ip.parse::<std::net::IpAddr>().is_ok() && !h.is_empty())
                .ok_or_else(|| SpecError::HostsEntry(e.clone()))?;
            Ok(HostsEntry {
                ip: ip.to_string(),
                hostnames: h_split(host),
            })
        })
        .collect::<Result<Vec<_>, SpecError>>()?;
    let dns = (!opts.dns.is_empty() || !opts.dns_search.is_empty() || !opts.dns_opts.is_empty())
        .then(|| Dns {
            nameservers: opts.dns.clone(),
            search: opts.dns_search.clone(),
            options: opts.dns_opts.clone(),
        });

    let mut runtime_apps: Vec<RuntimeApp> = Vec::new();
    for app in apps {
        let ra = build_app(opts, app)?;
        if runtime_apps.iter().any(|a| a.name == ra.name) {
            return Err(SpecError::DuplicateApp(ra.name));
        }
        runtime_apps.push(ra);
    }
    Ok(RuntimeConfig {
        version: RUNTIME_VERSION,
        uuid: uuid.to_string(),
        flavor: opts.flavor,
        hostname,
        interactive: opts.interactive,
        stop_grace_period_secs: opts.stop_grace_period_secs.unwrap_or(10),
        log_max_bytes: 10 * 1024 * 1024,
        dns,
        hosts_entries,
        netns: opts.netns.clone(),
        private_network: opts.private_network,
        cgroup_root: opts
            .cgroup_root
            .clone()
            .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup")),
        volumes: opts.volumes.clone(),
        backoff: opts.backoff,
        user_namespace: opts
            .private_users
            .then(|| crate::pod::dir::userns::choose(uuid, &[]))
            .flatten(),
        apps: runtime_apps,
    })
}

fn h_split(hosts: &str) -> Vec<String> {
    hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect()
}

/// One app of the pod: the functions below, composed. The only look at the file
/// system is whether the command exists in the rendered image.
fn build_app(opts: &PodOptions, app: &ResolvedApp) -> Result<RuntimeApp, SpecError> {
    let a = &app.request;
    let image_app = app.manifest.app.clone().unwrap_or_default();
    let name = app_name(a, &app.manifest)?;
    let image_name = app.manifest.name.to_string();
    let exec = exec(a, &opts.env, &image_app, &name, &image_name, &|p| {
        exists_in_root(&app.rootfs, p)
    })?;
    let env = environment(&image_app, &opts.env, &a.env, &name);
    let mounts = mounts(&name, &a.mounts, &image_app.mount_points, &opts.volumes)?;
    let caps = capabilities(&name, a, &image_app, &opts.insecure)?;
    for d in &caps.dropped {
        tracing::warn!("SECURITY: app {name}: image {image_name}: {d}");
    }
    let (memory_limit_bytes, cpu_millis) = limits(a, &image_app);
    let (masked_paths, readonly_paths) = paths(&opts.insecure, a.privileged);
    let identity = identity(a, &image_app);
    Ok(RuntimeApp {
        name,
        image_id: app.image_id.clone(),
        image: app.rootfs.clone(),
        exec,
        env,
        user: identity.user,
        group: identity.group,
        supplementary_gids: identity.supplementary_gids,
        working_dir: identity.working_dir,
        read_only_rootfs: a.readonly_rootfs,
        mounts,
        memory_limit_bytes,
        cpu_millis,
        capabilities: caps.capabilities,
        no_new_privileges: caps.no_new_privileges,
        seccomp: seccomp(&opts.insecure, a),
        masked_paths,
        readonly_paths,
        init: a.init,
        restart_policy: a.restart_policy,
        liveness_probe: a.liveness_probe.clone(),
        readiness_probe: a.readiness_probe.clone(),
        allow_all_devices: a.privileged,
    })
}

/// The app's name: `--name`, else from the image's name; checked.
fn app_name(a: &AppRequest, manifest: &ImageManifest) -> Result<String, SpecError> {
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| default_app_name(manifest.name.as_str()));
    if valid_app_name(&name) {
        Ok(name)
    } else {
        Err(SpecError::BadAppName(name))
    }
}

/// The command line: the image's `exec`, its program replaced by `--exec` and its
/// arguments by `-- args`; a bare program name is looked up in the app's `PATH`
/// inside the image (as Kubernetes and Docker do for `command`). `exists` says
/// whether an absolute path exists in the image.
fn exec(
    a: &AppRequest,
    pod_env: &[(String, String)],
    image_app: &appc::App,
    name: &str,
    image_name: &str,
    exists: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>, SpecError> {
    let mut exec = image_app.exec.clone();
    if let Some(e) = &a.exec {
        if exec.is_empty() {
            exec = vec![e.clone()];
        } else {
            exec[0] = e.clone();
        }
        if !a.args_given {
            exec.truncate(1);
        }
    }
    if a.args_given {
        exec.truncate(1);
        exec.extend(a.args.iter().cloned());
    }
    if let Some(first) = exec.first_mut() {
        if !first.is_empty() && !first.contains('/') {
            let path_var = a
                .env
                .iter()
                .chain(pod_env.iter())
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.clone())
                .or_else(|| {
                    image_app
                        .environment
                        .iter()
                        .find(|nv| nv.name == "PATH")
                        .map(|nv| nv.value.clone())
                })
                .unwrap_or_else(|| DEFAULT_PATH.to_string());
            let found = path_var
                .split(':')
                .filter(|d| d.starts_with('/'))
                .map(|d| format!("{}/{first}", d.trim_end_matches('/')))
                .find(|p| exists(p));
            if let Some(found) = found {
                *first = found;
            }
        }
    }
    let Some(program) = exec.first() else {
        return Err(SpecError::NoExec {
            app: name.to_string(),
            image: image_name.to_string(),
        });
    };
    if !program.starts_with('/') {
        return Err(SpecError::ExecRelative {
            app: name.to_string(),
            path: program.clone(),
        });
    }
    if !exists(program) {
        return Err(SpecError::ExecMissing {
            app: name.to_string(),
            path: program.clone(),
            image: image_name.to_string(),
        });
    }
    Ok(exec)
}

/// The environment: rkt's `PATH`, then the image's, then the pod-wide `--set-env`,
/// then the app's own (later ones replace earlier ones in place), then `AC_APP_NAME`.
fn environment(
    image_app: &appc::App,
    pod_env: &[(String, String)],
    app_env: &[(String, String)],
    name: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| {
        if let Some(slot) = env.iter_mut().find(|(ek, _)| ek == k) {
            slot.1 = v.to_string();
        } else {
            env.push((k.to_string(), v.to_string()));
        }
    };
    set("PATH", DEFAULT_PATH);
    for nv in &image_app.environment {
        set(&nv.name, &nv.value);
    }
    for (k, v) in pod_env.iter().chain(app_env.iter()) {
        set(k, v);
    }
    set("AC_APP_NAME", name);
    env
}

/// The volumes mounted: the app's mounts, then the image's mountPoints matched by
/// name (unless a mount has their path already). Read-only when the mount, the
/// mountPoint or the host volume says so.
fn mounts(
    name: &str,
    requested: &[MountArg],
    mount_points: &[appc::MountPoint],
    volumes: &[Volume],
) -> Result<Vec<Mount>, SpecError> {
    let host_read_only = |vol: &Volume| {
        matches!(
            vol,
            Volume::Host {
                read_only: true,
                ..
            }
        )
    };
    let mut mounts: Vec<Mount> = Vec::new();
    for m in requested {
        let vol = volumes
            .iter()
            .find(|v| v.name() == m.volume)
            .ok_or_else(|| SpecError::UnknownVolume {
                app: name.to_string(),
                volume: m.volume.clone(),
            })?;
        mounts.push(Mount {
            volume: m.volume.clone(),
            path: m.target.clone(),
            read_only: m.read_only || host_read_only(vol),
        });
    }
    for mp in mount_points {
        if mounts.iter().any(|m| m.path == mp.path) {
            continue;
        }
        if let Some(vol) = volumes.iter().find(|v| v.name() == mp.name) {
            mounts.push(Mount {
                volume: mp.name.clone(),
                path: mp.path.clone(),
                read_only: mp.read_only || host_read_only(vol),
            });
        }
    }
    Ok(mounts)
}

/// An app's capabilities and `no_new_privs`, and the image isolators left out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Capabilities {
    capabilities: Vec<String>,
    no_new_privileges: bool,
    dropped: Vec<DroppedIsolator>,
}

/// Capabilities: a privileged app gets every one (and no `no_new_privs`); otherwise the
/// operator's retain set, else the image's retain set (within the defaults unless the
/// operator allows image privileges) or the defaults, less the operator's remove set,
/// else the image's. The image's isolators are checked either way.
fn capabilities(
    name: &str,
    a: &AppRequest,
    image_app: &appc::App,
    insecure: &InsecureOptions,
) -> Result<Capabilities, SpecError> {
    let defaults: Vec<String> = if insecure.capabilities {
        KNOWN_CAPS.iter().map(|c| c.to_string()).collect()
    } else {
        DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    };
    let (iso, dropped) = image_isolators(name, image_app, &defaults, insecure.image_privileges)?;
    if a.privileged {
        return Ok(Capabilities {
            capabilities: KNOWN_CAPS.iter().map(|c| c.to_string()).collect(),
            no_new_privileges: false,
            dropped,
        });
    }
    let capabilities = match &a.caps_retain {
        Some(retain) => retain.clone(),
        None => {
            let base = iso.retain.clone().unwrap_or(defaults);
            match a.caps_remove.as_ref().or(iso.remove.as_ref()) {
                Some(remove) => base.into_iter().filter(|c| !remove.contains(c)).collect(),
                None => base,
            }
        }
    };
    Ok(Capabilities {
        capabilities,
        no_new_privileges: iso.no_new_privileges,
        dropped,
    })
}

/// The seccomp filter: none under `--insecure-options=seccomp` (also what
/// `rkt run --seccomp=unconfined` sets), for a privileged app or one that asks for
/// `Unconfined`; rkt's default profile otherwise.
fn seccomp(insecure: &InsecureOptions, a: &AppRequest) -> Seccomp {
    if insecure.seccomp || a.privileged || a.seccomp == Seccomp::Unconfined {
        Seccomp::Unconfined
    } else {
        Seccomp::Default
    }
}

/// Memory (bytes) and CPU (millicores) limits: the app's, else the image's
/// `resource/memory` and `resource/cpu` isolators (unparsable ones are no limit).
fn limits(a: &AppRequest, image_app: &appc::App) -> (Option<u64>, Option<u64>) {
    let memory = a.memory.or_else(|| {
        isolator_limit(image_app, "resource/memory")
            .and_then(|l| manifests::quantity::parse_bytes(&l).ok())
    });
    let cpu = a.cpu_millis.or_else(|| {
        isolator_limit(image_app, "resource/cpu")
            .and_then(|l| manifests::quantity::parse_cpu_millis(&l).ok())
    });
    (memory, cpu)
}

/// The masked and read-only paths under `/proc` and `/sys`: rkt's defaults, none under
/// `--insecure-options=paths` or for a privileged app.
fn paths(insecure: &InsecureOptions, privileged: bool) -> (Vec<String>, Vec<String>) {
    if insecure.paths || privileged {
        (Vec::new(), Vec::new())
    } else {
        (
            DEFAULT_MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
            DEFAULT_READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
    }
}

/// Who the app runs as and where.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    user: String,
    group: String,
    supplementary_gids: Vec<u32>,
    working_dir: String,
}

/// User, group (the app's, else the image's, else root), supplementary groups and
/// working directory (the app's, else the image's, else `/`).
fn identity(a: &AppRequest, image_app: &appc::App) -> Identity {
    Identity {
        user: a
            .user
            .clone()
            .unwrap_or_else(|| non_empty(&image_app.user, "0")),
        group: a
            .group
            .clone()
            .unwrap_or_else(|| non_empty(&image_app.group, "0")),
        supplementary_gids: if a.supplementary_gids.is_empty() {
            image_app.supplementary_gids.clone()
        } else {
            a.supplementary_gids.clone()
        },
        working_dir: a
            .working_dir
            .clone()
            .or(image_app.working_directory.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".to_string()),
    }
}

fn non_empty(v: &str, default: &str) -> String {
    if v.is_empty() {
        default.to_string()
    } else {
        v.to_string()
    }
}

/// Capabilities an image may keep by its own retain set: `os/linux/capabilities-retain-set`.
pub const ISOLATOR_CAPS_RETAIN: &str = "os/linux/capabilities-retain-set";
pub const ISOLATOR_CAPS_REMOVE: &str = "os/linux/capabilities-remove-set";
pub const ISOLATOR_NO_NEW_PRIVS: &str = "os/linux/no-new-privileges";
/// Isolators that would replace the pod's security settings with the image's own and
/// that rkt does not implement: always ignored, with a warning.
const UNSUPPORTED_ISOLATORS: &[&str] = &[
    "os/linux/seccomp-retain-set",
    "os/linux/seccomp-remove-set",
    "os/linux/selinux-context",
    "os/linux/apparmor",
];

/// What an image's own isolators still decide for its app (narrowing always; widening
/// only when the operator allows image privileges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageIsolators {
    /// The image's retain set, cut down to the defaults unless allowed.
    pub retain: Option<Vec<String>>,
    pub remove: Option<Vec<String>>,
    pub no_new_privileges: bool,
}

/// An image isolator (or part of one) that was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedIsolator {
    pub isolator: String,
    /// What was left out, e.g. `CAP_SYS_ADMIN, CAP_SYS_MODULE`.
    pub dropped: String,
    /// Whether `--insecure-options=image-privileges` would have applied it.
    pub allowable: bool,
}

impl std::fmt::Display for DroppedIsolator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.allowable {
            write!(
                f,
                "isolator {} asks for more than the defaults; ignored: {} (an image cannot \
                 grant itself privileges; allow with --insecure-options=image-privileges or \
                 the pod annotation rkt.io/image-privileges: allow)",
                self.isolator, self.dropped
            )
        } else {
            write!(
                f,
                "isolator {} is not supported; ignored: {} (rkt's defaults apply)",
                self.isolator, self.dropped
            )
        }
    }
}

/// Read the isolators of an image's app that stage0 applies. `defaults`: the capability
/// set the operator's choices give the app; `allow`: whether the image may widen them.
pub fn image_isolators(
    app_name: &str,
    image_app: &appc::App,
    defaults: &[String],
    allow: bool,
) -> Result<(ImageIsolators, Vec<DroppedIsolator>), SpecError> {
    let retain = isolator_set(image_app, ISOLATOR_CAPS_RETAIN);
    let remove = isolator_set(image_app, ISOLATOR_CAPS_REMOVE);
    for cap in retain.iter().chain(remove.iter()).flatten() {
        if !KNOWN_CAPS.contains(&cap.as_str()) {
            return Err(SpecError::Capability {
                app: app_name.to_string(),
                cap: cap.clone(),
            });
        }
    }
    let mut dropped = Vec::new();
    let retain = retain.map(|set| {
        if allow {
            return set;
        }
        let (kept, extra): (Vec<String>, Vec<String>) =
            set.into_iter().partition(|c| defaults.contains(c));
        if !extra.is_empty() {
            dropped.push(DroppedIsolator {
                isolator: ISOLATOR_CAPS_RETAIN.to_string(),
                dropped: extra.join(", "),
                allowable: true,
            });
        }
        kept
    });
    let mut no_new_privileges = true;
    for iso in image_app
        .isolators
        .iter()
        .filter(|i| i.name == ISOLATOR_NO_NEW_PRIVS)
    {
        if iso.value.as_ref().and_then(|v| v.as_bool()) == Some(false) {
            if allow {
                no_new_privileges = false;
            } else {
                dropped.push(DroppedIsolator {
                    isolator: ISOLATOR_NO_NEW_PRIVS.to_string(),
                    dropped: "false (no_new_privs stays on)".to_string(),
                    allowable: true,
                });
            }
        }
    }
    for iso in image_app
        .isolators
        .iter()
        .filter(|i| UNSUPPORTED_ISOLATORS.contains(&i.name.as_str()))
    {
        dropped.push(DroppedIsolator {
            isolator: iso.name.clone(),
            dropped: iso
                .value
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "null".to_string()),
            allowable: false,
        });
    }
    Ok((
        ImageIsolators {
            retain,
            remove,
            no_new_privileges,
        },
        dropped,
    ))
}

fn isolator_set(app: &appc::App, name: &str) -> Option<Vec<String>> {
    let iso = app.isolators.iter().find(|i| i.name == name)?;
    let set = iso.value.as_ref()?.get("set")?.as_array()?;
    Some(
        set.iter()
            .filter_map(|v| v.as_str())
            .map(|c| {
                let up = c.to_ascii_uppercase();
                if up.starts_with("CAP_") {
                    up
                } else {
                    format!("CAP_{up}")
                }
            })
            .collect(),
    )
}

fn isolator_limit(app: &appc::App, name: &str) -> Option<String> {
    let iso = app.isolators.iter().find(|i| i.name == name)?;
    let limit = iso.value.as_ref()?.get("limit")?;
    match limit {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether `path` (absolute, inside the image) exists in `root`, following symlinks
/// the way they would resolve inside the pod (absolute targets are relative to
/// `root`; `..` never climbs above it).
pub fn exists_in_root(root: &Path, path: &str) -> bool {
    resolve_in_root(root, path, 0).is_some_and(|p| p.exists())
}

fn resolve_in_root(root: &Path, path: &str, depth: u32) -> Option<PathBuf> {
    if depth > 40 {
        return None;
    }
    let mut inside: Vec<String> = Vec::new();
    let comps: Vec<String> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_string()),
            _ => None,
        })
        .collect();
    for (i, c) in comps.iter().enumerate() {
        if c == ".." {
            inside.pop();
            continue;
        }
        inside.push(c.clone());
        let host = root.join(inside.join("/"));
        if let Ok(target) = std::fs::read_link(&host) {
            inside.pop();
            let target = target.to_string_lossy().into_owned();
            let base = if target.starts_with('/') {
                String::new()
            } else {
                format!("/{}", inside.join("/"))
            };
            let rest = comps[i + 1..].join("/");
            let next = format!("{base}/{target}/{rest}");
            return resolve_in_root(root, &next, depth + 1);
        }
    }
    Some(root.join(inside.join("/")))
}

#[cfg(test)]
mod tests;
