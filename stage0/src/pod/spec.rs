//! From what the user asked (`rkt run` flags, later Pod YAML) and the resolved images to
//! the `runtime.json` stage1 executes. Everything is checked here, before a pod
//! directory exists, so bad input never leaves a pod behind.

use std::path::{Component, Path, PathBuf};

use manifests::appc::{self, ImageManifest};
use manifests::runtime::{
    Dns, Flavor, HostsEntry, Mount, RuntimeApp, RuntimeConfig, Seccomp, Volume,
    DEFAULT_CAPABILITIES, DEFAULT_MASKED_PATHS, DEFAULT_PATH, DEFAULT_READONLY_PATHS,
    RUNTIME_VERSION,
};

use crate::insecure::InsecureOptions;
use crate::pod::request::{AppArgs, KNOWN_CAPS};

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

/// Pod-wide choices (`rkt run` flags before the first image).
#[derive(Debug, Clone, Default)]
pub struct PodOptions {
    pub hostname: Option<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_opts: Vec<String>,
    pub hosts_entries: Vec<String>,
    pub volumes: Vec<Volume>,
    pub flavor: Flavor,
    pub interactive: bool,
    pub env: Vec<(String, String)>,
    pub insecure: InsecureOptions,
    pub stop_grace_period_secs: Option<u64>,
    pub netns: Option<PathBuf>,
    /// `--net=none`: a network namespace of the pod's own, with only loopback.
    pub private_network: bool,
    pub cgroup_root: Option<PathBuf>,
    /// `--private-users`: the pod gets a user namespace mapping container ids
    /// 0..65535 onto a host range of its own (chosen from the UUID, see
    /// [`crate::pod::dir::userns`]).
    pub private_users: bool,
    /// Host ports to forward to app ports (`--port NAME:HOSTPORT`); the app port is
    /// found by name in the images ([`resolve_ports`]).
    pub ports: Vec<manifests::pod::ExposedPort>,
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
    pub args: AppArgs,
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
        backoff: Default::default(),
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

fn build_app(opts: &PodOptions, app: &ResolvedApp) -> Result<RuntimeApp, SpecError> {
    let a = &app.args;
    let image_app = app.manifest.app.clone().unwrap_or_default();
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| default_app_name(app.manifest.name.as_str()));
    if !valid_app_name(&name) {
        return Err(SpecError::BadAppName(name));
    }
    let image_name = app.manifest.name.to_string();

    // exec: --exec replaces the program; `-- args` replace the arguments.
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
    // A bare program name is looked up in the app's PATH inside the image, as
    // Kubernetes and Docker do for `command`.
    if let Some(first) = exec.first_mut() {
        if !first.is_empty() && !first.contains('/') {
            let path_var = a
                .env
                .iter()
                .chain(opts.env.iter())
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
                .find(|p| exists_in_root(&app.rootfs, p));
            if let Some(found) = found {
                *first = found;
            }
        }
    }
    let Some(program) = exec.first() else {
        return Err(SpecError::NoExec {
            app: name,
            image: image_name,
        });
    };
    if !program.starts_with('/') {
        return Err(SpecError::ExecRelative {
            app: name,
            path: program.clone(),
        });
    }
    if !exists_in_root(&app.rootfs, program) {
        return Err(SpecError::ExecMissing {
            app: name,
            path: program.clone(),
            image: image_name,
        });
    }

    // Environment: image, then pod-wide --set-env, then the app's own.
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
    for (k, v) in opts.env.iter().chain(a.env.iter()) {
        set(k, v);
    }
    set("AC_APP_NAME", &name);

    // Volumes mounted: --mount flags, then the image's mountPoints matched by name.
    let mut mounts: Vec<Mount> = Vec::new();
    for m in &a.mounts {
        let vol = opts
            .volumes
            .iter()
            .find(|v| v.name() == m.volume)
            .ok_or_else(|| SpecError::UnknownVolume {
                app: name.clone(),
                volume: m.volume.clone(),
            })?;
        mounts.push(Mount {
            volume: m.volume.clone(),
            path: m.target.clone(),
            read_only: matches!(
                vol,
                Volume::Host {
                    read_only: true,
                    ..
                }
            ),
        });
    }
    for mp in &image_app.mount_points {
        if mounts.iter().any(|m| m.path == mp.path) {
            continue;
        }
        if let Some(vol) = opts.volumes.iter().find(|v| v.name() == mp.name) {
            mounts.push(Mount {
                volume: mp.name.clone(),
                path: mp.path.clone(),
                read_only: mp.read_only
                    || matches!(
                        vol,
                        Volume::Host {
                            read_only: true,
                            ..
                        }
                    ),
            });
        }
    }

    // Capabilities: the operator's retain set, else the image's retain set (within the
    // defaults unless the operator allows image privileges) or the defaults, less the
    // operator's remove set, else the image's.
    let defaults: Vec<String> = if opts.insecure.capabilities {
        KNOWN_CAPS.iter().map(|c| c.to_string()).collect()
    } else {
        DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    };
    let (iso, dropped) =
        image_isolators(&name, &image_app, &defaults, opts.insecure.image_privileges)?;
    for d in &dropped {
        tracing::warn!("SECURITY: app {name}: image {image_name}: {d}");
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

    let memory_limit_bytes = a.memory.or_else(|| {
        isolator_limit(&image_app, "resource/memory")
            .and_then(|l| manifests::quantity::parse_bytes(&l).ok())
    });
    let cpu_millis = a.cpu_millis.or_else(|| {
        isolator_limit(&image_app, "resource/cpu")
            .and_then(|l| manifests::quantity::parse_cpu_millis(&l).ok())
    });

    let (masked_paths, readonly_paths) = if opts.insecure.paths {
        (Vec::new(), Vec::new())
    } else {
        (
            DEFAULT_MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
            DEFAULT_READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
    };

    Ok(RuntimeApp {
        name,
        image_id: app.image_id.clone(),
        image: app.rootfs.clone(),
        exec,
        env,
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
        read_only_rootfs: a.readonly_rootfs,
        mounts,
        memory_limit_bytes,
        cpu_millis,
        capabilities,
        no_new_privileges: iso.no_new_privileges,
        // `--insecure-options=seccomp` (also what `rkt run --seccomp=unconfined` sets).
        seccomp: if opts.insecure.seccomp {
            Seccomp::Unconfined
        } else {
            Seccomp::Default
        },
        masked_paths,
        readonly_paths,
        init: false,
        restart_policy: Default::default(),
        liveness_probe: None,
        readiness_probe: None,
        allow_all_devices: false,
    })
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
mod tests {
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

    fn resolved(root: &Path, args: AppArgs) -> ResolvedApp {
        ResolvedApp {
            args,
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
        let cfg = build_runtime("u-1", &opts, &[resolved(r.path(), AppArgs::default())]).unwrap();
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

        let args = AppArgs {
            exec: Some("/bin/busybox".into()),
            args: vec!["echo".into(), "hi".into()],
            args_given: true,
            name: Some("echo".into()),
            memory: Some(1 << 20),
            caps_remove: Some(vec!["CAP_CHOWN".into()]),
            ..AppArgs::default()
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
        let missing = AppArgs {
            exec: Some("/bin/nothing".into()),
            ..AppArgs::default()
        };
        let e =
            build_runtime("u", &PodOptions::default(), &[resolved(r.path(), missing)]).unwrap_err();
        assert!(e.to_string().contains("/bin/nothing"), "{e}");
        // A bare name is found through PATH in the image; an unknown one is refused.
        let bare = AppArgs {
            exec: Some("busybox".into()),
            ..AppArgs::default()
        };
        let cfg = build_runtime("u", &PodOptions::default(), &[resolved(r.path(), bare)]).unwrap();
        assert_eq!(
            cfg.apps[0].exec[0], "/sbin/busybox",
            "first PATH entry that has it"
        );
        let unknown = AppArgs {
            exec: Some("nothing".into()),
            ..AppArgs::default()
        };
        assert!(matches!(
            build_runtime("u", &PodOptions::default(), &[resolved(r.path(), unknown)]),
            Err(SpecError::ExecRelative { .. })
        ));
        let two = [
            resolved(r.path(), AppArgs::default()),
            resolved(r.path(), AppArgs::default()),
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
        let e = build_runtime("u", &opts, &[resolved(r.path(), AppArgs::default())]).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/source"));
        let unknown = AppArgs {
            mounts: vec![crate::pod::request::MountArg {
                volume: "nope".into(),
                target: "/x".into(),
            }],
            ..AppArgs::default()
        };
        assert!(matches!(
            build_runtime("u", &PodOptions::default(), &[resolved(r.path(), unknown)]),
            Err(SpecError::UnknownVolume { .. })
        ));
        let opts = PodOptions {
            hosts_entries: vec!["notanip=x".into()],
            ..PodOptions::default()
        };
        assert!(build_runtime("u", &opts, &[resolved(r.path(), AppArgs::default())]).is_err());
    }

    #[test]
    fn private_users_ask_for_a_range_from_the_uuid() {
        let r = rootfs();
        let app = || [resolved(r.path(), AppArgs::default())];
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
        args: AppArgs,
    ) -> manifests::runtime::RuntimeApp {
        let opts = PodOptions {
            insecure: insecure.parse().unwrap(),
            ..PodOptions::default()
        };
        let app = ResolvedApp {
            args,
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
            AppArgs::default(),
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
            AppArgs::default(),
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
            AppArgs::default(),
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
            AppArgs::default(),
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
        let app = app_with(r.path(), hostile(remove_only), "none", AppArgs::default());
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
            AppArgs {
                caps_retain: Some(vec!["CAP_NET_ADMIN".into()]),
                ..AppArgs::default()
            },
        );
        assert_eq!(app.capabilities, ["CAP_NET_ADMIN"]);
        let app = app_with(
            r.path(),
            hostile(greedy),
            "image-privileges",
            AppArgs {
                caps_remove: Some(vec!["CAP_SYS_ADMIN".into()]),
                ..AppArgs::default()
            },
        );
        assert_eq!(app.capabilities, ["CAP_CHOWN", "CAP_KILL"]);
    }
}
