//! `rkt apply -f` and `rkt delete -f`: validate manifests and put them into (or take
//! them out of) the pods dir, atomically, so the reconcile loop picks them up.
//!
//! Where an applied file goes:
//! - if pods of it are already defined in one file of the pods dir, that file is
//!   overwritten (it must not define pods the input does not: those would be deleted);
//! - otherwise a file holding one pod becomes `<namespace>_<name>.yaml` (`.json` for a
//!   JSON file), a file holding several keeps its own name, and standard input holding
//!   several is named after its first pod.
//!
//! The input's bytes are written as they are (comments and all), by temp file
//! (`.<name>.tmp`, ignored by the loop) + fsync + rename.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::k8s::{DesiredPod, ManifestError, PodKey};
use super::observe::{is_manifest_name, parse_manifest, DirScan};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot read {}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot read standard input: {0}")]
    Stdin(io::Error),
    #[error("{} holds no manifest (*.yaml, *.yml, *.json)", path.display())]
    EmptyDir { path: PathBuf },
    #[error("cannot write {}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot remove {}", path.display())]
    Remove { path: PathBuf, source: io::Error },
}

/// One input file (or standard input).
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// For messages: the path, or `-`.
    pub name: String,
    /// The file name, `None` for standard input.
    pub file_name: Option<String>,
    pub bytes: Vec<u8>,
}

/// Read `-f` arguments: files, directories (their manifests, not recursive), `-`.
pub fn read_inputs(args: &[String]) -> Result<Vec<Input>, ApplyError> {
    let mut out = Vec::new();
    for arg in args {
        if arg == "-" {
            let mut bytes = Vec::new();
            io::stdin()
                .read_to_end(&mut bytes)
                .map_err(ApplyError::Stdin)?;
            out.push(Input {
                name: "-".into(),
                file_name: None,
                bytes,
            });
            continue;
        }
        let path = PathBuf::from(arg);
        let meta = fs::metadata(&path).map_err(|source| ApplyError::Read {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut names: Vec<String> = fs::read_dir(&path)
                .map_err(|source| ApplyError::Read {
                    path: path.clone(),
                    source,
                })?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| is_manifest_name(n))
                .collect();
            names.sort();
            if names.is_empty() {
                return Err(ApplyError::EmptyDir { path });
            }
            for n in names {
                let p = path.join(&n);
                out.push(read_file(&p, Some(n))?);
            }
        } else {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            out.push(read_file(&path, name)?);
        }
    }
    Ok(out)
}

fn read_file(path: &Path, file_name: Option<String>) -> Result<Input, ApplyError> {
    let bytes = fs::read(path).map_err(|source| ApplyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Input {
        name: path.display().to_string(),
        file_name,
        bytes,
    })
}

/// An input, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub input: Input,
    pub pods: Vec<DesiredPod>,
    pub errors: Vec<ManifestError>,
}

impl Parsed {
    /// `--strict`: pods with warnings are refused (see [`manifests::k8s::strict`]).
    pub fn make_strict(&mut self) {
        let (pods, errors) = manifests::k8s::strict(
            std::mem::take(&mut self.pods),
            std::mem::take(&mut self.errors),
        );
        self.pods = pods;
        self.errors = errors;
    }
}

pub fn parse_inputs(inputs: Vec<Input>) -> Vec<Parsed> {
    inputs
        .into_iter()
        .map(|input| {
            let file = parse_manifest(&input.name, &input.bytes);
            let mut errors = file.errors;
            if errors.is_empty() && file.pods.is_empty() {
                errors.push(ManifestError {
                    file: input.name.clone(),
                    line: None,
                    column: None,
                    field: String::new(),
                    message: "no Pod in this file".into(),
                });
            }
            Parsed {
                input,
                pods: file.pods,
                errors,
            }
        })
        .collect()
}

/// What applying does to one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Configured,
    Unchanged,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Configured => "configured",
            Change::Unchanged => "unchanged",
        }
    }
}

/// One file to write into the pods dir.
#[derive(Debug, Clone, PartialEq)]
pub struct Write1 {
    /// File name in the pods dir.
    pub target: String,
    pub bytes: Vec<u8>,
    /// The bytes differ from what the file holds now (or it is new).
    pub differs: bool,
    pub changes: Vec<(PodKey, String, Change)>,
}

/// Where each pod key is defined in the pods dir now: key -> (file name, spec hash).
pub fn existing(scan: &DirScan) -> BTreeMap<PodKey, (String, String)> {
    let mut out = BTreeMap::new();
    for f in &scan.files {
        let name = file_name_of(&f.path);
        for p in &f.pods {
            out.entry(p.key.clone())
                .or_insert_with(|| (name.clone(), p.spec_hash.clone()));
        }
    }
    out
}

fn file_name_of(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn keys_of_file(scan: &DirScan, name: &str) -> BTreeSet<PodKey> {
    scan.files
        .iter()
        .filter(|f| file_name_of(&f.path) == name)
        .flat_map(|f| f.pods.iter().map(|p| p.key.clone()))
        .collect()
}

fn file_exists(scan: &DirScan, name: &str) -> bool {
    scan.files.iter().any(|f| file_name_of(&f.path) == name)
}

/// Decide the files to write for valid inputs. Problems (naming conflicts) are
/// returned as messages; nothing is written if there are any.
pub fn plan_apply(inputs: &[Parsed], scan: &DirScan) -> Result<Vec<Write1>, Vec<String>> {
    let have = existing(scan);
    let mut problems = Vec::new();
    let mut writes: Vec<Write1> = Vec::new();
    let mut seen_keys: BTreeMap<PodKey, String> = BTreeMap::new();
    for p in inputs {
        for pod in &p.pods {
            if let Some(other) = seen_keys.insert(pod.key.clone(), p.input.name.clone()) {
                problems.push(format!(
                    "pod {} is defined in both {other} and {}",
                    pod.key, p.input.name
                ));
            }
        }
        let keys: BTreeSet<PodKey> = p.pods.iter().map(|d| d.key.clone()).collect();
        let holders: BTreeSet<&str> = keys
            .iter()
            .filter_map(|k| have.get(k).map(|(f, _)| f.as_str()))
            .collect();
        let target = match holders.len() {
            0 => {
                let name = new_name(p);
                if file_exists(scan, &name) {
                    problems.push(format!(
                        "{}: the pods dir already has a file {name} with other pods; rename the input",
                        p.input.name
                    ));
                    continue;
                }
                name
            }
            1 => {
                let Some(holder) = holders.into_iter().next() else {
                    continue;
                };
                let extra: Vec<String> = keys_of_file(scan, holder)
                    .difference(&keys)
                    .map(|k| k.to_string())
                    .collect();
                if !extra.is_empty() {
                    problems.push(format!(
                        "{}: its pods are defined in {holder}, which also defines {}; apply a file with all of them, or edit {holder}",
                        p.input.name,
                        extra.join(", ")
                    ));
                    continue;
                }
                holder.to_string()
            }
            _ => {
                problems.push(format!(
                    "{}: its pods are defined in several files of the pods dir ({}); apply them separately",
                    p.input.name,
                    holders.into_iter().collect::<Vec<_>>().join(", ")
                ));
                continue;
            }
        };
        if writes.iter().any(|w| w.target == target) {
            problems.push(format!(
                "two inputs would be written to {target}; merge them or rename one"
            ));
            continue;
        }
        let current: Option<Vec<u8>> = scan
            .resolved
            .as_ref()
            .and_then(|d| fs::read(d.join(&target)).ok());
        let changes = p
            .pods
            .iter()
            .map(|d| {
                let change = match have.get(&d.key) {
                    None => Change::Created,
                    Some((_, h)) if *h == d.spec_hash => Change::Unchanged,
                    Some(_) => Change::Configured,
                };
                (d.key.clone(), d.spec_hash.clone(), change)
            })
            .collect();
        writes.push(Write1 {
            differs: current.as_deref() != Some(&p.input.bytes[..]),
            target,
            bytes: p.input.bytes.clone(),
            changes,
        });
    }
    if problems.is_empty() {
        Ok(writes)
    } else {
        Err(problems)
    }
}

/// The file name for an input whose pods are not in the pods dir yet.
fn new_name(p: &Parsed) -> String {
    let json = p
        .input
        .file_name
        .as_deref()
        .is_some_and(|n| n.ends_with(".json"));
    let ext = if json { "json" } else { "yaml" };
    let by_key = |d: &DesiredPod| format!("{}_{}.{ext}", d.key.namespace, d.key.name);
    match (&p.input.file_name, p.pods.as_slice()) {
        (_, [one]) => by_key(one),
        (Some(name), _) if is_manifest_name(name) => name.clone(),
        (_, pods) => pods
            .first()
            .map(by_key)
            .unwrap_or_else(|| format!("pods.{ext}")),
    }
}

/// Write `bytes` to `dir/name` by temp file + fsync + rename.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ApplyError> {
    fs::create_dir_all(dir).map_err(|source| ApplyError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| -> io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        fs::File::open(dir)?.sync_all()
    })();
    result.map_err(|source| {
        let _ = fs::remove_file(&tmp);
        ApplyError::Write { path, source }
    })
}

/// What `delete -f` does.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletePlan {
    /// Files of the pods dir to remove.
    pub files: Vec<String>,
    pub deleted: Vec<PodKey>,
    pub not_found: Vec<PodKey>,
    /// Files that define the keys but also other pods (left alone).
    pub problems: Vec<String>,
}

pub fn plan_delete(keys: &BTreeSet<PodKey>, scan: &DirScan) -> DeletePlan {
    let have = existing(scan);
    let mut plan = DeletePlan {
        files: Vec::new(),
        deleted: Vec::new(),
        not_found: Vec::new(),
        problems: Vec::new(),
    };
    let mut files: BTreeSet<String> = BTreeSet::new();
    for k in keys {
        match have.get(k) {
            Some((f, _)) => {
                files.insert(f.clone());
            }
            None => plan.not_found.push(k.clone()),
        }
    }
    for f in files {
        let in_file = keys_of_file(scan, &f);
        let extra: Vec<String> = in_file.difference(keys).map(|k| k.to_string()).collect();
        if extra.is_empty() {
            plan.deleted.extend(in_file);
            plan.files.push(f);
        } else {
            plan.problems.push(format!(
                "{f} also defines {}; not deleted (edit the file instead)",
                extra.join(", ")
            ));
        }
    }
    plan
}

/// Remove a file of the pods dir (a missing one is fine).
pub fn remove_file(dir: &Path, name: &str) -> Result<(), ApplyError> {
    let path = dir.join(name);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ApplyError::Remove { path, source }),
    }
}

#[cfg(test)]
mod tests;
