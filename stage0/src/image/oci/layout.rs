//! Local image sources: OCI image layout directories (`oci:DIR[:REF]`), the same in
//! a tar file (`oci-archive:FILE[:REF]`), and `docker save` archives
//! (`docker-archive:FILE[:NAME:TAG|:@N]`).
//!
//! Archives are not unpacked: one pass over the tar records where each member's
//! content starts, and blobs are then read in place (symlinked members, as older
//! `docker save` writes for repeated layers, are followed).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::reference::parse_docker;
use super::spec::{self, Descriptor, Digest, Document, Index, Platform, REF_NAME_ANNOTATION};
use super::{BlobSpec, Locator, OciError, Plan, RawBlob};

/// The largest JSON document read from a layout or archive.
const JSON_LIMIT: u64 = 16 * 1024 * 1024;
/// How many symlinks are followed inside an archive before giving up.
const MAX_LINKS: usize = 16;

/// Files of a directory, or members of a tar file, by relative path.
pub enum Files {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        members: HashMap<String, Member>,
    },
}

pub enum Member {
    File { offset: u64, size: u64 },
    Link(String),
}

/// `a/./b/../c` -> `a/c`; leading `/` and `./` dropped.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

impl Files {
    pub fn dir(path: &Path) -> Result<Files, OciError> {
        if !path.is_dir() {
            return Err(OciError::OpenSource {
                path: path.to_path_buf(),
                source: io::Error::new(io::ErrorKind::NotFound, "no such directory"),
            });
        }
        Ok(Files::Dir(path.to_path_buf()))
    }

    /// Index the members of a tar file.
    pub fn tar(path: &Path) -> Result<Files, OciError> {
        let open_err = |source| OciError::OpenSource {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        for entry in archive.entries_with_seek().map_err(open_err)? {
            let entry = entry.map_err(open_err)?;
            let name = normalize(&entry.path().map_err(open_err)?.to_string_lossy());
            let kind = entry.header().entry_type();
            if kind.is_file() {
                members.insert(
                    name,
                    Member::File {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    },
                );
            } else if kind.is_symlink() || kind.is_hard_link() {
                let Some(target) = entry.link_name().map_err(open_err)? else {
                    continue;
                };
                let target = target.to_string_lossy().into_owned();
                let resolved = if kind.is_hard_link() || target.starts_with('/') {
                    normalize(&target)
                } else {
                    let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                    normalize(&format!("{dir}/{target}"))
                };
                members.insert(name, Member::Link(resolved));
            }
        }
        Ok(Files::Tar {
            path: path.to_path_buf(),
            members,
        })
    }

    fn origin(&self) -> &Path {
        match self {
            Files::Dir(p) => p,
            Files::Tar { path, .. } => path,
        }
    }

    fn missing(&self, name: &str) -> OciError {
        OciError::LayoutMissing {
            path: self.origin().to_path_buf(),
            member: name.to_string(),
        }
    }

    /// Open `name`; returns the reader and the size.
    pub fn open(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64), OciError> {
        match self {
            Files::Dir(dir) => {
                let normalized = normalize(name);
                let path = dir.join(&normalized);
                let file = File::open(&path).map_err(|source| {
                    if source.kind() == io::ErrorKind::NotFound {
                        self.missing(name)
                    } else {
                        OciError::OpenSource {
                            path: path.clone(),
                            source,
                        }
                    }
                })?;
                let size = file
                    .metadata()
                    .map_err(|source| OciError::OpenSource {
                        path: path.clone(),
                        source,
                    })?
                    .len();
                Ok((Box::new(file), size))
            }
            Files::Tar { path, members } => {
                let mut current = normalize(name);
                for _ in 0..MAX_LINKS {
                    match members.get(&current) {
                        Some(Member::File { offset, size }) => {
                            let open_err = |source| OciError::OpenSource {
                                path: path.clone(),
                                source,
                            };
                            let mut file = File::open(path).map_err(open_err)?;
                            file.seek(SeekFrom::Start(*offset)).map_err(open_err)?;
                            return Ok((Box::new(file.take(*size)), *size));
                        }
                        Some(Member::Link(target)) => current = target.clone(),
                        None => return Err(self.missing(name)),
                    }
                }
                Err(self.missing(name))
            }
        }
    }

    /// Read a whole (small) member.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, OciError> {
        let (reader, size) = self.open(name)?;
        if size > JSON_LIMIT {
            return Err(OciError::TooLarge {
                what: format!("{} in {}", name, self.origin().display()),
                limit: JSON_LIMIT,
            });
        }
        let mut out = Vec::new();
        reader
            .take(JSON_LIMIT)
            .read_to_end(&mut out)
            .map_err(|source| OciError::OpenSource {
                path: self.origin().to_path_buf(),
                source,
            })?;
        Ok(out)
    }

    /// A blob of an OCI layout, by digest.
    pub fn blob(&self, digest: &Digest) -> Result<(Box<dyn Read + Send>, u64), OciError> {
        self.open(&format!(
            "blobs/{}/{}",
            digest.algorithm().name(),
            digest.hex()
        ))
    }
}

/// An OCI image layout (directory or archive) as a source of blobs.
pub struct Layout {
    pub files: Files,
}

impl Layout {
    pub fn open(files: Files) -> Result<Layout, OciError> {
        let marker = files.read("oci-layout").map_err(|e| match e {
            OciError::LayoutMissing { path, .. } => OciError::NotALayout {
                path,
                reason: "it has no oci-layout file",
            },
            e => e,
        })?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Marker {
            image_layout_version: String,
        }
        let m: Marker = serde_json::from_slice(&marker).map_err(|_| OciError::NotALayout {
            path: files.origin().to_path_buf(),
            reason: "its oci-layout file is not valid",
        })?;
        if !m.image_layout_version.starts_with("1.") {
            return Err(OciError::NotALayout {
                path: files.origin().to_path_buf(),
                reason: "its image layout version is not 1.x",
            });
        }
        Ok(Layout { files })
    }

    fn what(&self) -> String {
        self.files.origin().display().to_string()
    }

    /// Read and verify a blob that is a JSON document.
    fn read_verified(&self, desc: &Descriptor) -> Result<Vec<u8>, OciError> {
        let (reader, size) = self.files.blob(&desc.digest)?;
        if size > JSON_LIMIT {
            return Err(OciError::TooLarge {
                what: format!("{} in {}", desc.digest, self.what()),
                limit: JSON_LIMIT,
            });
        }
        let mut bytes = Vec::new();
        reader
            .take(JSON_LIMIT)
            .read_to_end(&mut bytes)
            .map_err(|source| OciError::OpenSource {
                path: self.files.origin().to_path_buf(),
                source,
            })?;
        let actual = desc.digest.same_algorithm_of(&bytes);
        if actual != desc.digest {
            return Err(OciError::DigestMismatch {
                what: "manifest".to_string(),
                image: self.what(),
                expected: desc.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Find the image for `reference` (a ref name, a digest, or nothing when the
    /// index has a single entry) and return what to fetch.
    pub fn plan(
        &self,
        reference: Option<&str>,
        platform: &Platform,
        described: &str,
    ) -> Result<(Plan, Option<String>), OciError> {
        let index_bytes = self.files.read("index.json")?;
        let index: Index =
            serde_json::from_slice(&index_bytes).map_err(|source| OciError::Json {
                what: "index.json",
                image: described.to_string(),
                source,
            })?;
        let names = |index: &Index| -> String {
            let v: Vec<String> = index
                .manifests
                .iter()
                .map(|d| {
                    d.annotations
                        .get(REF_NAME_ANNOTATION)
                        .cloned()
                        .unwrap_or_else(|| d.digest.to_string())
                })
                .collect();
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        let (desc, ref_name) = match reference {
            None => match index.manifests.as_slice() {
                [only] => (
                    only.clone(),
                    only.annotations.get(REF_NAME_ANNOTATION).cloned(),
                ),
                _ => {
                    return Err(OciError::RefNotFound {
                        image: described.to_string(),
                        reference: None,
                        available: names(&index),
                    })
                }
            },
            Some(r) => {
                if let Ok(d) = Digest::parse(r) {
                    let found = index.manifests.iter().find(|m| m.digest == d).cloned();
                    let desc = match found {
                        Some(desc) => desc,
                        None => {
                            let (_, size) = self.files.blob(&d)?;
                            Descriptor {
                                media_type: String::new(),
                                digest: d,
                                size,
                                platform: None,
                                annotations: Default::default(),
                            }
                        }
                    };
                    (desc, None)
                } else {
                    let found = index
                        .manifests
                        .iter()
                        .find(|m| {
                            m.annotations.get(REF_NAME_ANNOTATION).map(String::as_str) == Some(r)
                        })
                        .cloned();
                    match found {
                        Some(desc) => (desc, Some(r.to_string())),
                        None => {
                            return Err(OciError::RefNotFound {
                                image: described.to_string(),
                                reference: Some(r.to_string()),
                                available: names(&index),
                            })
                        }
                    }
                }
            }
        };
        let mut desc = desc;
        // Follow indexes down to the image manifest for our platform.
        for _ in 0..4 {
            let bytes = self.read_verified(&desc)?;
            let media = (!desc.media_type.is_empty()).then_some(desc.media_type.as_str());
            match spec::parse_document(&bytes, media).map_err(|source| OciError::Document {
                what: "manifest",
                image: described.to_string(),
                source,
            })? {
                Document::Manifest(m) => {
                    let plan = Plan {
                        manifest: Some((bytes, desc.digest.clone())),
                        config: BlobSpec::from_descriptor(&m.config),
                        layers: m.layers.iter().map(BlobSpec::from_descriptor).collect(),
                    };
                    return Ok((plan, ref_name));
                }
                Document::Index(i) => {
                    desc = spec::select_platform(&i, platform)
                        .cloned()
                        .ok_or_else(|| OciError::NoPlatform {
                            image: described.to_string(),
                            want: platform.to_string(),
                            available: super::available_platforms(&i),
                        })?;
                }
            }
        }
        Err(OciError::NotALayout {
            path: self.files.origin().to_path_buf(),
            reason: "its indexes nest too deeply",
        })
    }

    pub fn open_blob(&self, blob: &BlobSpec) -> Result<RawBlob, OciError> {
        let (reader, size) = match &blob.locator {
            Locator::Digest(d) => self.files.blob(d)?,
            Locator::Path(p) => self.files.open(p)?,
        };
        Ok(RawBlob {
            reader,
            length: Some(size),
        })
    }
}

/// A `docker save` archive.
pub struct DockerArchive {
    pub files: Files,
}

#[derive(Debug, Deserialize)]
struct ArchiveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// `blobs/sha256/<hex>` or `<hex>.json` / `<hex>.tar` / `<hex>/layer.tar`: the
/// digest a docker archive member is named by, when its name says.
fn digest_in_name(name: &str) -> Option<Digest> {
    if let Some(hex) = name.strip_prefix("blobs/sha256/") {
        return Digest::parse(&format!("sha256:{hex}")).ok();
    }
    let stem = name.strip_suffix(".json")?;
    let stem = stem.rsplit('/').next().unwrap_or(stem);
    Digest::parse(&format!("sha256:{stem}")).ok()
}

impl DockerArchive {
    /// Find the image for `reference` (`NAME:TAG`, `@N`, or nothing when the archive
    /// holds one image); returns the plan and the repo tag it matched.
    pub fn plan(
        &self,
        reference: Option<&str>,
        described: &str,
    ) -> Result<(Plan, Option<String>), OciError> {
        let bytes = self.files.read("manifest.json")?;
        let entries: Vec<ArchiveEntry> =
            serde_json::from_slice(&bytes).map_err(|source| OciError::Json {
                what: "manifest.json",
                image: described.to_string(),
                source,
            })?;
        let tags_of = |e: &ArchiveEntry| e.repo_tags.clone().unwrap_or_default();
        let available = || {
            let v: Vec<String> = entries
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let tags = tags_of(e);
                    if tags.is_empty() {
                        format!("@{i}")
                    } else {
                        tags.join(", ")
                    }
                })
                .collect();
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        let not_found = |reference: Option<&str>| OciError::RefNotFound {
            image: described.to_string(),
            reference: reference.map(str::to_string),
            available: available(),
        };
        let (entry, tag) = match reference {
            None => match entries.as_slice() {
                [only] => (only, tags_of(only).into_iter().next()),
                _ => return Err(not_found(None)),
            },
            Some(r) => {
                if let Some(n) = r.strip_prefix('@') {
                    let i: usize = n.parse().map_err(|_| not_found(Some(r)))?;
                    let e = entries.get(i).ok_or_else(|| not_found(Some(r)))?;
                    (e, tags_of(e).into_iter().next())
                } else {
                    // Compare normalized names so busybox:latest matches
                    // docker.io/library/busybox:latest.
                    let want = parse_docker(r).ok();
                    entries
                        .iter()
                        .find_map(|e| {
                            tags_of(e)
                                .into_iter()
                                .find(|t| {
                                    t == r || (want.is_some() && parse_docker(t).ok() == want)
                                })
                                .map(|t| (e, Some(t)))
                        })
                        .ok_or_else(|| not_found(Some(r)))?
                }
            }
        };
        let config_name = normalize(&entry.config);
        let (_, config_size) = self.files.open(&config_name)?;
        let config = BlobSpec {
            digest: digest_in_name(&config_name),
            size: Some(config_size),
            media_type: spec::DOCKER_CONFIG.to_string(),
            locator: Locator::Path(config_name),
        };
        let mut layers = Vec::new();
        for name in &entry.layers {
            let name = normalize(name);
            let (_, size) = self.files.open(&name)?;
            layers.push(BlobSpec {
                digest: name
                    .strip_prefix("blobs/sha256/")
                    .and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok()),
                size: Some(size),
                media_type: String::new(),
                locator: Locator::Path(name),
            });
        }
        Ok((
            Plan {
                manifest: None,
                config,
                layers,
            },
            tag,
        ))
    }

    pub fn open_blob(&self, blob: &BlobSpec) -> Result<RawBlob, OciError> {
        let (reader, size) = match &blob.locator {
            Locator::Path(p) => self.files.open(p)?,
            Locator::Digest(d) => self.files.blob(d)?,
        };
        Ok(RawBlob {
            reader,
            length: Some(size),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize("./a/b/../c"), "a/c");
        assert_eq!(normalize("/blobs//sha256/x"), "blobs/sha256/x");
        assert_eq!(normalize("../../x"), "x");
    }

    #[test]
    fn docker_archive_member_names_carry_digests() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            digest_in_name(&format!("{hex}.json")).map(|d| d.to_string()),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(
            digest_in_name(&format!("blobs/sha256/{hex}")).map(|d| d.to_string()),
            Some(format!("sha256:{hex}"))
        );
        assert!(digest_in_name("config.json").is_none());
    }

    #[test]
    fn tar_members_and_links_are_found_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "./x/layer.tar", &b"hello"[..])
            .unwrap();
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Symlink);
        l.set_size(0);
        b.append_link(&mut l, "y/layer.tar", "../x/layer.tar")
            .unwrap();
        std::fs::write(&path, b.into_inner().unwrap()).unwrap();
        let files = Files::tar(&path).unwrap();
        let mut s = String::new();
        files
            .open("y/layer.tar")
            .unwrap()
            .0
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello");
        assert!(matches!(
            files.open("z"),
            Err(OciError::LayoutMissing { .. })
        ));
    }
}
