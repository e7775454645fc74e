//! Checking that an uncompressed archive is an ACI (appc `spec/aci.md`): a tar whose
//! top level holds exactly a `manifest` file and a `rootfs/` directory.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use manifests::appc::{AppcError, ImageManifest};

/// Manifests are small JSON documents; refuse anything absurd before reading it.
pub(super) const MAX_MANIFEST_SIZE: u64 = 16 * 1024 * 1024;

/// What makes an archive not a valid ACI.
#[derive(Debug, thiserror::Error)]
pub enum AciProblem {
    #[error("the archive is empty")]
    Empty,
    #[error("not a readable tar archive: {0}")]
    Tar(io::Error),
    #[error("missing manifest")]
    MissingManifest,
    #[error("missing rootfs directory")]
    MissingRootfs,
    #[error("unexpected top-level entry {0} (an ACI holds only manifest and rootfs/)")]
    UnexpectedEntry(String),
    #[error("duplicate manifest entry")]
    DuplicateManifest,
    #[error("manifest is a {0}, not a regular file")]
    ManifestNotFile(String),
    #[error("rootfs is a {0}, not a directory")]
    RootfsNotDir(String),
    #[error("manifest is {size} bytes, more than the {max} allowed")]
    ManifestTooLarge { size: u64, max: u64 },
    #[error("invalid manifest")]
    Manifest(#[source] AppcError),
    #[error("entry {0} climbs out of the image with '..'")]
    PathEscapes(String),
    #[error("entry {entry} would be written through the symbolic link {link}")]
    ThroughSymlink { entry: String, link: String },
    #[error("hard link {entry} points outside the image, to {target}")]
    HardlinkOutside { entry: String, target: String },
}

/// Read the headers of the archive in `file` (seeking over contents) and return the
/// raw manifest bytes and the parsed manifest.
pub(super) fn check_aci(mut file: &File) -> Result<(Vec<u8>, ImageManifest), AciProblem> {
    file.seek(SeekFrom::Start(0)).map_err(AciProblem::Tar)?;
    let mut archive = tar::Archive::new(file);
    let mut manifest: Option<Vec<u8>> = None;
    let mut rootfs = false;
    let mut any = false;
    let mut links = SymlinkTracker::default();
    for entry in archive.entries_with_seek().map_err(AciProblem::Tar)? {
        let mut entry = entry.map_err(AciProblem::Tar)?;
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            continue;
        }
        any = true;
        let path = entry.path().map_err(AciProblem::Tar)?.into_owned();
        let Some((top, nested)) = top_level(&path)? else {
            continue; // the archive's own "./"
        };
        match top.as_str() {
            "manifest" if nested => {
                return Err(AciProblem::ManifestNotFile("directory".to_string()));
            }
            "manifest" => {
                if manifest.is_some() {
                    return Err(AciProblem::DuplicateManifest);
                }
                if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
                    return Err(AciProblem::ManifestNotFile(kind_name(kind)));
                }
                let size = entry.size();
                if size > MAX_MANIFEST_SIZE {
                    return Err(AciProblem::ManifestTooLarge {
                        size,
                        max: MAX_MANIFEST_SIZE,
                    });
                }
                let mut bytes = Vec::with_capacity(size as usize);
                entry.read_to_end(&mut bytes).map_err(AciProblem::Tar)?;
                manifest = Some(bytes);
            }
            "rootfs" => {
                if !nested && kind != tar::EntryType::Directory {
                    return Err(AciProblem::RootfsNotDir(kind_name(kind)));
                }
                rootfs = true;
                let link = match kind {
                    tar::EntryType::Link => entry
                        .link_name()
                        .map_err(AciProblem::Tar)?
                        .map(|l| l.into_owned()),
                    _ => None,
                };
                links.check(&path, kind, link.as_deref())?;
            }
            _ => return Err(AciProblem::UnexpectedEntry(top)),
        }
    }
    if !any {
        return Err(AciProblem::Empty);
    }
    let bytes = manifest.ok_or(AciProblem::MissingManifest)?;
    if !rootfs {
        return Err(AciProblem::MissingRootfs);
    }
    let parsed = ImageManifest::from_slice(&bytes).map_err(AciProblem::Manifest)?;
    Ok((bytes, parsed))
}

/// Refuses entries that would land outside the rootfs when extracted: `..`
/// components, paths below an earlier symlink entry, and hard links whose target is
/// outside the image or below a symlink. (Extraction enforces the same rules again,
/// on the file system; this check keeps such archives out of the store altogether.)
#[derive(Default)]
struct SymlinkTracker {
    symlinks: HashSet<PathBuf>,
}

impl SymlinkTracker {
    fn check(
        &mut self,
        path: &Path,
        kind: tar::EntryType,
        hardlink_target: Option<&Path>,
    ) -> Result<(), AciProblem> {
        let shown = path.to_string_lossy().into_owned();
        let norm = normalize(path).ok_or_else(|| AciProblem::PathEscapes(shown.clone()))?;
        self.through_symlink(&norm, &shown)?;
        if let Some(target) = hardlink_target {
            let outside = || AciProblem::HardlinkOutside {
                entry: shown.clone(),
                target: target.to_string_lossy().into_owned(),
            };
            let t = normalize(target).ok_or_else(outside)?;
            if !t.starts_with("rootfs") {
                return Err(outside());
            }
            self.through_symlink(&t, &shown)?;
        }
        if kind == tar::EntryType::Symlink {
            self.symlinks.insert(norm);
        } else {
            // A later entry replaces an earlier symlink of the same name.
            self.symlinks.remove(&norm);
        }
        Ok(())
    }

    fn through_symlink(&self, norm: &Path, shown: &str) -> Result<(), AciProblem> {
        let mut parent = norm.parent();
        while let Some(p) = parent {
            if self.symlinks.contains(p) {
                return Err(AciProblem::ThroughSymlink {
                    entry: shown.to_string(),
                    link: p.to_string_lossy().into_owned(),
                });
            }
            parent = p.parent();
        }
        Ok(())
    }
}

/// `./a/b/` -> `a/b`; `None` for absolute paths or any `..`.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// The first path component (ignoring `.`) and whether more follow. `None` for the
/// archive root itself (`./`).
fn top_level(path: &Path) -> Result<Option<(String, bool)>, AciProblem> {
    let mut parts = path.components().filter(|c| *c != Component::CurDir);
    let first = match parts.next() {
        None => return Ok(None),
        Some(Component::Normal(name)) => name.to_string_lossy().into_owned(),
        Some(_) => {
            return Err(AciProblem::UnexpectedEntry(
                path.to_string_lossy().into_owned(),
            ))
        }
    };
    Ok(Some((first, parts.next().is_some())))
}

fn kind_name(kind: tar::EntryType) -> String {
    match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous => "regular file".to_string(),
        tar::EntryType::Directory => "directory".to_string(),
        tar::EntryType::Symlink => "symbolic link".to_string(),
        tar::EntryType::Link => "hard link".to_string(),
        tar::EntryType::Char => "character device".to_string(),
        tar::EntryType::Block => "block device".to_string(),
        tar::EntryType::Fifo => "fifo".to_string(),
        other => format!("tar entry of type {:?}", other.as_byte() as char),
    }
}
