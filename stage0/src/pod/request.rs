//! What a pod is made from, typed and complete: the pod-wide choices
//! ([`PodOptions`]) and every app as asked for ([`AppRequest`]), images not yet
//! resolved. `rkt run`'s argument parser (`reconciler`'s `cmd/run_args.rs`) and the
//! Pod YAML mapping (`reconciler`'s `mapping.rs`) both produce a [`PodRequest`];
//! [`super::spec`] resolves it against the images into the runtime configuration,
//! with nothing set afterwards.
//!
//! The networks a pod is attached to are not part of it: they are chosen when the pod
//! starts (`rkt run-prepared --net`, the reconciler's pod networks), and the networking
//! hook sets the runtime configuration's namespace then.

use std::path::PathBuf;

use manifests::runtime::{Backoff, Flavor, Probe, RestartPolicy, Seccomp, Volume};

use crate::image::fetch::PullPolicy;
use crate::insecure::InsecureOptions;

/// Capability names the kernel knows (as of Linux 6.x).
pub use manifests::runtime::KNOWN_CAPABILITIES as KNOWN_CAPS;

/// Everything needed to prepare one pod.
#[derive(Debug, Clone)]
pub struct PodRequest {
    pub pod: PodOptions,
    pub apps: Vec<AppRequest>,
    pub pull_policy: PullPolicy,
    /// What fetching may skip (signatures, TLS); the pod's run-time choices are in
    /// [`PodOptions::insecure`].
    pub insecure: InsecureOptions,
    /// Extra pod annotations (the reconciler records the manifest's identity here).
    pub annotations: Vec<(String, String)>,
    /// Use this UUID instead of a new one.
    pub uuid: Option<String>,
}

/// Pod-wide choices (`rkt run` flags before the first image, a Pod's `spec`).
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
    /// found by name in the images ([`super::spec::resolve_ports`]) unless given.
    pub ports: Vec<manifests::pod::ExposedPort>,
    /// How stage1 delays restarting apps that keep exiting.
    pub backoff: Backoff,
}

/// `--mount volume=NAME,target=PATH` (a container's `volumeMounts[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountArg {
    pub volume: String,
    pub target: String,
    /// Read-only whatever the volume says (`volumeMounts[].readOnly`).
    pub read_only: bool,
}

/// One app of a pod, as asked for (its image not yet resolved). What is not given
/// comes from the image or rkt's defaults.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppRequest {
    pub image: String,
    pub name: Option<String>,
    pub exec: Option<String>,
    pub args: Vec<String>,
    /// Whether `--` was given (so an empty argument list overrides the image's).
    pub args_given: bool,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub supplementary_gids: Vec<u32>,
    pub working_dir: Option<String>,
    pub readonly_rootfs: bool,
    pub mounts: Vec<MountArg>,
    pub memory: Option<u64>,
    pub cpu_millis: Option<u64>,
    pub caps_retain: Option<Vec<String>>,
    pub caps_remove: Option<Vec<String>>,
    pub signature: Option<PathBuf>,
    /// An init app: runs to completion, in order, before the others start.
    pub init: bool,
    pub restart_policy: RestartPolicy,
    pub liveness_probe: Option<Probe>,
    pub readiness_probe: Option<Probe>,
    /// Every capability and device, no masked or read-only paths, no seccomp filter,
    /// no `no_new_privs` (a Kubernetes `privileged` container).
    pub privileged: bool,
    /// `Unconfined` lifts the seccomp filter for this app; `Default` leaves the pod's.
    pub seccomp: Seccomp,
}
