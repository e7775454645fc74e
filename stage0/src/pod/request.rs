//! What a pod is made from: its apps as the user asked for them, images not yet
//! resolved. `rkt run`'s argument parser (`reconciler`'s `cmd/run_args.rs`) and the
//! Pod YAML mapping both produce these; [`super::spec`] resolves them.

use std::path::PathBuf;

/// `--mount volume=NAME,target=PATH`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountArg {
    pub volume: String,
    pub target: String,
}

/// One app of `rkt run`, as the user asked for it (images not yet resolved).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppArgs {
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
}

/// Capability names the kernel knows (as of Linux 6.x).
pub use manifests::runtime::KNOWN_CAPABILITIES as KNOWN_CAPS;
