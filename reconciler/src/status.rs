//! What the reconciler reports and remembers, on disk under `<dir>/reconcile/`:
//!
//! - `status.json` ([`StatusFile`]): per manifest pod its phase, pod UUID, restarts,
//!   readiness and last error (with file and line), plus the errors of every invalid
//!   manifest file. `rkt reconcile status`, `rkt apply --wait` and `rkt list` read it;
//!   no daemon needs to answer.
//! - `state.json` ([`State`]): the reconciler's own memory (back-off, restarts, the
//!   last good version of each manifest file), read back when it starts again.
//!
//! Both are written by temp file + `rename`, so readers never see half a file.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::k8s::{ManifestError, PodKey};
use super::observe::{parse_key, DesiredView, LastGood, SeenPod};
use super::plan::{History, KeyStatus};
pub use super::plan::{Phase, STARTING};

/// `<dir>/reconcile`.
pub const STATE_DIR: &str = "reconcile";
pub const STATUS_FILE: &str = "status.json";
pub const STATE_FILE: &str = "state.json";
/// Held (flock) by the running reconciler: one per data dir.
pub const LOCK_FILE: &str = "lock";

/// Version of `status.json` and `state.json`.
pub const STATUS_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot create {}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot write {}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read {}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot parse {}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot encode {}", path.display())]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The status of one manifest pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// `namespace/name`.
    pub key: String,
    pub namespace: String,
    pub name: String,
    /// The manifest file (and the line its document starts at).
    pub file: String,
    #[serde(default)]
    pub line: Option<usize>,
    /// The spec hash of the manifest's current (or last good) version.
    #[serde(default)]
    pub spec_hash: String,
    pub phase: Phase,
    /// The pod directory (`rkt status UUID`).
    #[serde(default)]
    pub uuid: Option<String>,
    /// Pods recreated plus in-place app restarts of the current pod.
    #[serde(default)]
    pub restarts: u32,
    /// Running and ready (every app started; readiness probes passing).
    #[serde(default)]
    pub ready: bool,
    /// Whether an app has a readiness probe.
    #[serde(default)]
    pub readiness_probes: bool,
    /// The last error: a manifest error (file:line:column), or a failed action
    /// (fetch, verification, start) reported at the pod's document.
    #[serde(default)]
    pub last_error: Option<ManifestError>,
    /// More about the phase for people ("back-off 20s", "replacing ...").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The manifest's ignored fields (file:line, field, why): the pod runs without them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<ManifestError>,
    #[serde(with = "super::time::one")]
    pub last_transition_time: SystemTime,
}

/// The errors of one manifest file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileStatus {
    pub file: String,
    pub errors: Vec<ManifestError>,
}

/// `<dir>/reconcile/status.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusFile {
    pub version: u32,
    #[serde(with = "super::time::one")]
    pub updated_at: SystemTime,
    /// PID of the reconciler that wrote it.
    pub pid: u32,
    pub pods_dir: PathBuf,
    /// Where the pods dir pointed (it may be a symlink); null when missing.
    #[serde(default)]
    pub resolved_dir: Option<PathBuf>,
    /// The pods dir could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir_error: Option<String>,
    /// Paths that decide what runs as root but that others than root can write
    /// (see `stage0::perms`); refused with `--strict-permissions`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub pods: Vec<PodStatus>,
    /// Files with errors (parse errors, duplicate definitions).
    pub files: Vec<FileStatus>,
}

impl StatusFile {
    pub fn pod(&self, key: &str) -> Option<&PodStatus> {
        self.pods.iter().find(|p| p.key == key)
    }
}

/// `<dir>/reconcile/state.json`: the reconciler's memory between passes and runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    #[serde(default)]
    pub version: u32,
    /// Per `namespace/name`.
    #[serde(default)]
    pub history: BTreeMap<String, History>,
    /// Per manifest file, the pods of its last version that parsed.
    #[serde(default)]
    pub last_good: LastGood,
}

impl State {
    pub fn history(&self) -> BTreeMap<PodKey, History> {
        self.history
            .iter()
            .filter_map(|(k, h)| parse_key(k).map(|k| (k, h.clone())))
            .collect()
    }

    pub fn set_history(&mut self, history: &BTreeMap<PodKey, History>) {
        self.history = history
            .iter()
            .map(|(k, h)| (k.to_string(), h.clone()))
            .collect();
    }
}

/// `<data dir>/reconcile`.
pub fn state_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(STATE_DIR)
}

/// Write `value` as JSON to `path` by temp file + fsync + rename.
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<(), StatusError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|source| StatusError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| StatusError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let write = || -> io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|source| {
        let _ = fs::remove_file(&tmp);
        StatusError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, StatusError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StatusError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StatusError::Parse {
            path: path.to_path_buf(),
            source,
        })
}

/// Read `<dir>/reconcile/status.json` (`None` if no reconciler ever wrote it).
pub fn read_status(data_dir: &Path) -> Result<Option<StatusFile>, StatusError> {
    read_json(&state_dir(data_dir).join(STATUS_FILE))
}

pub fn write_status(data_dir: &Path, status: &StatusFile) -> Result<(), StatusError> {
    write_json_atomic(&state_dir(data_dir).join(STATUS_FILE), status)
}

/// Read `<dir>/reconcile/state.json`; a missing file is an empty state.
pub fn read_state(data_dir: &Path) -> Result<State, StatusError> {
    Ok(read_json(&state_dir(data_dir).join(STATE_FILE))?.unwrap_or_default())
}

pub fn write_state(data_dir: &Path, state: &State) -> Result<(), StatusError> {
    let mut state = state.clone();
    state.version = STATUS_VERSION;
    write_json_atomic(&state_dir(data_dir).join(STATE_FILE), &state)
}

/// Everything the status is formatted from.
pub struct Inputs<'a> {
    pub view: &'a DesiredView,
    /// The manifest pods found.
    pub seen: &'a [SeenPod],
    /// Each key's phase, decided with the plan ([`super::plan::phases`]).
    pub phases: &'a BTreeMap<PodKey, KeyStatus>,
    /// The loop's bookkeeping (for each key's last error).
    pub history: &'a BTreeMap<PodKey, History>,
    /// The previous status, for transition times.
    pub previous: &'a [PodStatus],
    pub now: SystemTime,
}

/// The status of every manifest pod: the desired ones, and those kept running from
/// invalid files, in key order (their phases come from the plan).
pub fn derive_pods(i: &Inputs) -> Vec<PodStatus> {
    let mut out = Vec::new();
    // The desired keys first, then those kept from invalid files.
    let desired = i.view.desired.pods.keys();
    let held = i
        .phases
        .keys()
        .filter(|k| !i.view.desired.pods.contains_key(*k));
    for key in desired.chain(held) {
        let Some(phase) = i.phases.get(key) else {
            continue;
        };
        let st = match i.view.desired.pods.get(key) {
            Some(wanted) => {
                let hash = wanted.pod.spec_hash.as_str();
                let last_error = if wanted.stale {
                    i.view.first_error(&wanted.pod.file).cloned()
                } else {
                    i.history
                        .get(key)
                        .filter(|h| h.spec_hash == hash)
                        .and_then(|h| h.last_error.clone())
                };
                PodStatus {
                    key: key.to_string(),
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    file: wanted.pod.file.clone(),
                    line: Some(wanted.pod.line),
                    spec_hash: hash.to_string(),
                    phase: phase.phase,
                    uuid: phase.uuid.clone(),
                    restarts: phase.restarts,
                    ready: phase.ready,
                    readiness_probes: wanted
                        .pod
                        .containers
                        .iter()
                        .any(|c| c.readiness_probe.is_some()),
                    last_error,
                    message: phase.message.clone(),
                    warnings: wanted.pod.warnings.clone(),
                    last_transition_time: i.now,
                }
            }
            None => {
                // Kept from an invalid file: its pod tells the rest.
                let Some(pod) = i
                    .seen
                    .iter()
                    .find(|s| Some(&s.pod.uuid) == phase.uuid.as_ref())
                else {
                    continue;
                };
                PodStatus {
                    key: key.to_string(),
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    file: pod.pod.source.clone(),
                    line: None,
                    spec_hash: pod.pod.spec_hash.clone(),
                    phase: phase.phase,
                    uuid: phase.uuid.clone(),
                    restarts: phase.restarts,
                    ready: phase.ready,
                    readiness_probes: pod.has_readiness,
                    last_error: i.view.first_error(&pod.pod.source).cloned(),
                    message: phase.message.clone(),
                    warnings: Vec::new(),
                    last_transition_time: i.now,
                }
            }
        };
        out.push(st);
    }
    for st in &mut out {
        if let Some(prev) = i.previous.iter().find(|p| p.key == st.key) {
            if prev.phase == st.phase {
                st.last_transition_time = prev.last_transition_time;
            }
        }
    }
    out
}

/// The files with errors, for the status.
pub fn derive_files(view: &DesiredView) -> Vec<FileStatus> {
    view.file_errors
        .iter()
        .map(|(file, errors)| FileStatus {
            file: file.clone(),
            errors: errors.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
