//! Reading the two sides the plan compares: the manifests in the pods dir (desired)
//! and the pod directories that carry a manifest identity (observed).
//!
//! Desired: every `*.yaml`, `*.yml` and `*.json` file directly in the pods dir (no
//! dotfiles, no editor leftovers, no recursion), in name order, each parsed on its own
//! so one bad file never hides another. The pods dir may be a symlink that is swapped
//! atomically (`pods.d -> .worktrees/<rev>`): it is resolved once per scan and the scan
//! is repeated if the link moved meanwhile, so one scan sees one revision.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::k8s::{self, DesiredPod, ManifestError, PodKey};
pub use super::plan::SeenPod;
use super::plan::{Desired, ObservedPod, Wanted};
use super::{ANNOTATION_KEY, ANNOTATION_SOURCE, ANNOTATION_SPEC_HASH};
use manifests::poddir::{self, Waiting};
use stage0::pod::dir::{PodError, PodInfo, Pods};

/// Larger manifest files are refused (as the kubelet does).
pub const MAX_MANIFEST_BYTES: u64 = 10 << 20;

/// How often a scan is repeated when the directory changes under it.
const SCAN_ATTEMPTS: usize = 5;

/// Whether a file name in the pods dir is a manifest: `*.yaml`, `*.yml` or `*.json`,
/// not hidden, not an editor's backup or swap file.
pub fn is_manifest_name(name: &str) -> bool {
    !name.starts_with('.')
        && !name.starts_with('#')
        && !name.ends_with('~')
        && !name.ends_with(".swp")
        && [".yaml", ".yml", ".json"]
            .iter()
            .any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

/// One manifest file, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestFile {
    /// `<pods dir as given>/<name>`: stable across symlink swaps.
    pub path: String,
    pub pods: Vec<DesiredPod>,
    pub errors: Vec<ManifestError>,
}

impl ManifestFile {
    /// `--strict`: a pod with warnings (ignored fields) is refused like a pod with
    /// errors: its warnings become the file's errors, so the file is invalid and its
    /// last good pods are kept (see [`build_desired`]).
    pub fn make_strict(&mut self) {
        let (pods, errors) = k8s::strict(
            std::mem::take(&mut self.pods),
            std::mem::take(&mut self.errors),
        );
        self.pods = pods;
        self.errors = errors;
    }
}

/// What one scan of the pods dir found.
#[derive(Debug, Clone, PartialEq)]
pub struct DirScan {
    /// The pods dir as given.
    pub dir: PathBuf,
    /// What it resolved to (following symlinks); `None` when it does not exist.
    pub resolved: Option<PathBuf>,
    /// Manifest files in name order.
    pub files: Vec<ManifestFile>,
    /// The directory exists but could not be read: the pass must not act on it.
    pub error: Option<String>,
}

/// Where `dir` points now (`None` if it, or the symlink's target, does not exist).
pub fn resolve_dir(dir: &Path) -> io::Result<Option<PathBuf>> {
    match fs::canonicalize(dir) {
        Ok(p) => Ok(Some(p)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

enum Attempt {
    Done(DirScan),
    /// The directory changed under the scan (symlink swapped, files vanished).
    Moved,
}

/// Read and parse every manifest in `dir`.
pub fn scan_dir(dir: &Path) -> DirScan {
    for _ in 0..SCAN_ATTEMPTS {
        if let Attempt::Done(scan) = scan_once(dir) {
            return scan;
        }
    }
    DirScan {
        dir: dir.to_path_buf(),
        resolved: None,
        files: Vec::new(),
        error: Some(format!(
            "{} kept changing during {SCAN_ATTEMPTS} scans; will try again",
            dir.display()
        )),
    }
}

fn scan_once(dir: &Path) -> Attempt {
    let failed = |error: String| {
        Attempt::Done(DirScan {
            dir: dir.to_path_buf(),
            resolved: None,
            files: Vec::new(),
            error: Some(error),
        })
    };
    let resolved = match resolve_dir(dir) {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Attempt::Done(DirScan {
                dir: dir.to_path_buf(),
                resolved: None,
                files: Vec::new(),
                error: None,
            })
        }
        Err(e) => return failed(format!("cannot resolve {}: {e}", dir.display())),
    };
    let entries = match fs::read_dir(&resolved) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Attempt::Moved,
        Err(e) => return failed(format!("cannot read {}: {e}", resolved.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => return failed(format!("cannot read {}: {e}", resolved.display())),
        };
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if is_manifest_name(&name) {
            names.push(name);
        }
    }
    names.sort();
    let mut files = Vec::new();
    for name in names {
        let shown = dir.join(&name).display().to_string();
        let real = resolved.join(&name);
        let meta = match fs::metadata(&real) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Attempt::Moved,
            Err(e) => {
                files.push(file_error(&shown, format!("cannot read: {e}")));
                continue;
            }
        };
        if !meta.is_file() {
            continue;
        }
        let bytes = match read_limited(&real) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Attempt::Moved,
            Err(e) => {
                files.push(file_error(&shown, e.to_string()));
                continue;
            }
        };
        files.push(parse_manifest(&shown, &bytes));
    }
    // The link may have been swapped (or the old tree deleted) while we read.
    match resolve_dir(dir) {
        Ok(Some(now)) if now == resolved => Attempt::Done(DirScan {
            dir: dir.to_path_buf(),
            resolved: Some(resolved),
            files,
            error: None,
        }),
        _ => Attempt::Moved,
    }
}

fn read_limited(path: &Path) -> io::Result<Vec<u8>> {
    let file = fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the file is larger than {} MiB", MAX_MANIFEST_BYTES >> 20),
        ));
    }
    Ok(bytes)
}

fn file_error(path: &str, message: String) -> ManifestFile {
    ManifestFile {
        path: path.to_string(),
        pods: Vec::new(),
        errors: vec![ManifestError {
            file: path.to_string(),
            line: None,
            column: None,
            field: String::new(),
            message,
        }],
    }
}

/// Parse one manifest file's bytes. An empty (or blank) file counts as half-written:
/// it is an error, so the pods it had keep running; delete the file to remove them.
pub fn parse_manifest(path: &str, bytes: &[u8]) -> ManifestFile {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return ManifestFile {
            path: path.to_string(),
            pods: Vec::new(),
            errors: vec![ManifestError {
                file: path.to_string(),
                line: Some(1),
                column: None,
                field: String::new(),
                message: "the file is empty (delete it to remove its pods)".into(),
            }],
        };
    }
    let (pods, errors) = k8s::parse_file(path, bytes);
    ManifestFile {
        path: path.to_string(),
        pods,
        errors,
    }
}

/// The last version of each file that parsed (pods by file), so the pods of a file
/// that turns invalid keep running and can be recreated.
pub type LastGood = BTreeMap<String, Vec<DesiredPod>>;

/// The desired set built from a scan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredView {
    pub desired: Desired,
    /// Problems per file: parse errors, and definitions that lost to an earlier file.
    pub file_errors: BTreeMap<String, Vec<ManifestError>>,
}

impl DesiredView {
    /// The first error of a file, if it has any.
    pub fn first_error(&self, file: &str) -> Option<&ManifestError> {
        self.file_errors.get(file).and_then(|e| e.first())
    }
}

/// Build the desired set from a scan: the first definition of a `namespace/name` by
/// path order wins (later ones are reported); a file with errors contributes the pods
/// that parsed plus the last good version of the others. `last_good` is updated.
pub fn build_desired(scan: &DirScan, last_good: &mut LastGood) -> DesiredView {
    let mut view = DesiredView::default();
    let mut owner: BTreeMap<PodKey, (String, usize)> = BTreeMap::new();
    let present: BTreeSet<&str> = scan.files.iter().map(|f| f.path.as_str()).collect();
    last_good.retain(|file, _| present.contains(file.as_str()));

    for file in &scan.files {
        let invalid = !file.errors.is_empty();
        let mut candidates: Vec<(DesiredPod, bool)> =
            file.pods.iter().map(|p| (p.clone(), false)).collect();
        if invalid {
            view.desired.invalid_files.insert(file.path.clone());
            view.file_errors
                .entry(file.path.clone())
                .or_default()
                .extend(file.errors.iter().cloned());
            let parsed: BTreeSet<&PodKey> = file.pods.iter().map(|p| &p.key).collect();
            let previous = last_good.get(&file.path).cloned().unwrap_or_default();
            let kept: Vec<DesiredPod> = previous
                .into_iter()
                .filter(|p| !parsed.contains(&p.key))
                .collect();
            candidates.extend(kept.iter().map(|p| (p.clone(), true)));
            let mut merged = file.pods.clone();
            merged.extend(kept);
            last_good.insert(file.path.clone(), merged);
        } else {
            last_good.insert(file.path.clone(), file.pods.clone());
        }
        for (pod, stale) in candidates {
            if let Some((winner, line)) = owner.get(&pod.key) {
                view.file_errors
                    .entry(file.path.clone())
                    .or_default()
                    .push(ManifestError {
                        file: file.path.clone(),
                        line: Some(pod.line),
                        column: None,
                        field: "metadata.name".into(),
                        message: format!(
                        "pod {} is already defined in {winner}:{line}; this definition is ignored",
                        pod.key
                    ),
                    });
                continue;
            }
            owner.insert(pod.key.clone(), (file.path.clone(), pod.line));
            view.desired
                .pods
                .insert(pod.key.clone(), Wanted { pod, stale });
        }
    }
    view
}

/// The identity a pod directory records: `(key, source file, spec hash)`.
pub fn identity(info: &PodInfo) -> Option<(PodKey, String, String)> {
    let manifest = info.manifest.as_ref()?;
    let key = parse_key(manifest.annotation(ANNOTATION_KEY)?)?;
    let source = manifest.annotation(ANNOTATION_SOURCE).unwrap_or_default();
    let hash = manifest
        .annotation(ANNOTATION_SPEC_HASH)
        .unwrap_or_default();
    Some((key, source.to_string(), hash.to_string()))
}

/// `namespace/name` back into a key.
pub fn parse_key(s: &str) -> Option<PodKey> {
    let (namespace, name) = s.split_once('/')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains('/')).then(|| PodKey {
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

/// Every pod directory with a manifest identity.
pub fn observe_pods(pods: &Pods) -> Result<Vec<SeenPod>, PodError> {
    Ok(pods.list()?.iter().filter_map(seen).collect())
}

/// What the reconciler needs to know about one listed pod (`None`: not ours).
pub fn seen(info: &PodInfo) -> Option<SeenPod> {
    let (key, source, spec_hash) = identity(info)?;
    let running = info.state.is_running();
    let succeeded = !info.apps.is_empty()
        && info
            .apps
            .iter()
            .all(|a| a.status.as_ref().is_some_and(|s| s.exit_code == 0));
    let probed: Vec<&str> = info
        .runtime
        .as_ref()
        .map(|r| {
            r.apps
                .iter()
                .filter(|a| a.readiness_probe.is_some())
                .map(|a| a.name.as_str())
                .collect()
        })
        .unwrap_or_default();
    let ready = running
        && info.ready
        && probed.iter().all(|app| {
            poddir::app_dir(&info.dir, app)
                .join(poddir::APP_READY_FILE)
                .exists()
        });
    let exits = info
        .apps
        .iter()
        .map(|a| match a.exit_code() {
            Some(c) => format!("{}={c}", a.name),
            None => format!("{}=?", a.name),
        })
        .collect::<Vec<_>>()
        .join(" ");
    Some(SeenPod {
        pod: ObservedPod {
            uuid: info.uuid.clone(),
            key,
            source,
            spec_hash,
            state: info.state,
            created_at: info.created_at,
            started_at: info.started_at,
            succeeded,
            problem: if running { pod_problem(info) } else { None },
        },
        ready,
        started: running && info.ready,
        has_readiness: !probed.is_empty(),
        app_restarts: info
            .apps
            .iter()
            .filter_map(|a| a.status.as_ref().map(|s| s.restarts))
            .sum(),
        waiting: if running {
            waiting_apps(info)
        } else {
            Vec::new()
        },
        exits,
    })
}

/// Apps of a running pod that stage1 restarts after a back-off (`apps/<app>/waiting`:
/// `{"reason": "CrashLoopBackOff", "until": RFC3339}`).
fn waiting_apps(info: &PodInfo) -> Vec<(String, Option<String>)> {
    info.apps
        .iter()
        .filter_map(|a| {
            let path = poddir::app_dir(&info.dir, &a.name).join(poddir::APP_WAITING_FILE);
            let bytes = std::fs::read(&path).ok()?;
            let until = serde_json::from_slice::<Waiting>(&bytes)
                .ok()
                .map(|w| w.until);
            Some((a.name.clone(), until))
        })
        .collect()
}

/// Why a running pod cannot work any more, as far as its files tell: its network
/// namespace was deleted. (A CNI CHECK costs a plugin call per network, so those are
/// rate-limited: [`NetChecks`].)
pub fn pod_problem(info: &PodInfo) -> Option<String> {
    let netns = info.runtime.as_ref()?.netns.as_ref()?;
    (!netns.exists()).then(|| format!("network namespace {} is gone", netns.display()))
}

/// Plugin time one pass may spend on CNI CHECKs; the rest wait for later passes.
pub const NET_CHECK_BUDGET: Duration = Duration::from_millis(500);

/// When each running pod's networks are next due a CNI CHECK.
#[derive(Debug, Clone, Default)]
pub struct NetChecks {
    /// At most this often per pod (zero: never).
    interval: Duration,
    /// By UUID.
    due: BTreeMap<String, Instant>,
}

impl NetChecks {
    pub fn new(interval: Duration) -> NetChecks {
        NetChecks {
            interval,
            due: BTreeMap::new(),
        }
    }

    /// CNI CHECK of the running pods' networks (`check(uuid)`): each pod at most once
    /// per interval (its first check spread over that interval by its UUID, so pods
    /// adopted together are not all checked in one pass), and no more than
    /// [`NET_CHECK_BUDGET`] of plugin time per pass. Pods of `busy` keys are skipped. A
    /// failed CHECK is the pod's problem: the plan replaces it, as for a deleted
    /// network namespace. `now` tells the time.
    pub fn check(
        &mut self,
        seen: &mut [SeenPod],
        busy: &BTreeSet<PodKey>,
        now: &dyn Fn() -> Instant,
        check: &dyn Fn(&str) -> Result<(), String>,
    ) {
        if self.interval.is_zero() {
            return;
        }
        let running: BTreeSet<&str> = seen
            .iter()
            .filter(|s| s.pod.state.is_running())
            .map(|s| s.pod.uuid.as_str())
            .collect();
        self.due.retain(|uuid, _| running.contains(uuid.as_str()));
        let started = now();
        let interval = self.interval;
        for s in seen.iter_mut() {
            if !s.pod.state.is_running() || s.pod.problem.is_some() || busy.contains(&s.pod.key) {
                continue;
            }
            let due = *self
                .due
                .entry(s.pod.uuid.clone())
                .or_insert_with(|| started + spread(&s.pod.uuid, interval));
            if due > started || now().saturating_duration_since(started) > NET_CHECK_BUDGET {
                continue;
            }
            if let Err(e) = check(&s.pod.uuid) {
                tracing::warn!(pod = %s.pod.key, uuid = %s.pod.uuid, error = %e, "network check failed");
                s.pod.problem = Some(format!("network check failed: {e}"));
            }
            self.due.insert(s.pod.uuid.clone(), now() + interval);
        }
    }
}

/// A fraction of `interval` chosen by `uuid`: when a pod first seen is first checked.
fn spread(uuid: &str, interval: Duration) -> Duration {
    let h = uuid
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    interval.mul_f64(f64::from(h % 1000) / 1000.0)
}

/// Who can write the directories that decide what runs as root (`stage0::perms`):
/// what the last check found, so each change is logged once.
#[derive(Debug, Clone, Default)]
pub struct Permissions {
    guarded: Vec<(PathBuf, &'static str)>,
    warnings: Vec<String>,
}

impl Permissions {
    pub fn new(guarded: Vec<(PathBuf, &'static str)>) -> Permissions {
        Permissions {
            guarded,
            warnings: Vec::new(),
        }
    }

    /// Look at who can write the guarded directories; log what changed, loudly.
    pub fn check(&mut self) {
        let now: Vec<String> = stage0::perms::check_all(&self.guarded)
            .iter()
            .map(ToString::to_string)
            .collect();
        if now != self.warnings {
            for w in now.iter().filter(|w| !self.warnings.contains(w)) {
                tracing::warn!("SECURITY: {w}");
            }
            self.warnings = now;
        }
    }

    /// What the last check found.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

#[cfg(test)]
mod tests;
