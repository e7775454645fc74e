//! OCI content in the store: sha256 blobs beside the sha512 ACI blobs, and OCI images
//! as index rows that reference them.
//!
//! ```text
//! cas/blob/sha256/<2 hex>/sha256-<64 hex>   configs and manifests as received,
//!                                           layers *uncompressed* (named by diff_id)
//! ```
//!
//! Every file's name is the sha256 of its content, so `sha256sum` checks it. An OCI
//! image is an `images` row like an ACI's (its ID is `sha512-` of the appc manifest
//! generated for it, which names its manifest and config digests, so equal content
//! under equal names gives equal IDs) plus an `oci_images` row (where it came from)
//! and `oci_refs` rows (its manifest, config and layers in order). The number of
//! `oci_refs` rows naming a digest is that blob's reference count: removing an image
//! frees the blobs no other image uses.
//!
//! # Concurrency
//! A fetch holds a *shared* lock (`locks/sha256-<hex>`) on every blob it placed or
//! found, from then until its image row is written ([`BlobLease`]). Freeing a blob
//! takes the lock exclusively without waiting, re-checks the reference count under
//! it, and skips a blob somebody holds: a blob in use by a fetch in progress is never
//! deleted, and one skipped is collected by a later `rkt image gc`. No code path
//! waits for a blob lock while holding an image lock, so the two cannot deadlock.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use manifests::appc::ImageManifest;
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256, Sha512};

use super::lock::{LockGuard, LockedTemp};
use super::{db, get_row, ImageInfo, Store, StoreError, ID_PREFIX};

/// `sha256:` as digests are written.
const SHA256: &str = "sha256:";

/// How an image uses a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobRole {
    Index,
    Manifest,
    Config,
    Layer,
}

impl BlobRole {
    fn as_str(self) -> &'static str {
        match self {
            BlobRole::Index => "index",
            BlobRole::Manifest => "manifest",
            BlobRole::Config => "config",
            BlobRole::Layer => "layer",
        }
    }
}

/// Where an OCI image came from and what identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRecord {
    pub image_id: String,
    /// `docker`, `oci`, `oci-archive` or `docker-archive`.
    pub source: String,
    /// The registry (`host[:port]`) or the absolute path of the layout or archive.
    pub location: String,
    pub repository: String,
    pub tag: Option<String>,
    /// The digest of the image manifest, when the source had one.
    pub manifest_digest: Option<String>,
    pub config_digest: String,
}

/// An OCI image to record: its generated appc manifest, provenance and blobs.
#[derive(Debug)]
pub struct NewOciImage<'a> {
    /// The `images.name` column: `registry/repository` as the user knows it.
    pub name: String,
    pub manifest_json: Vec<u8>,
    pub latest: bool,
    pub source: String,
    pub location: String,
    pub repository: String,
    pub tag: Option<String>,
    /// The index (manifest list) the manifest was chosen from, if any.
    pub index_blob: Option<&'a BlobLease>,
    pub manifest_blob: Option<&'a BlobLease>,
    pub config_blob: &'a BlobLease,
    /// Uncompressed layers, bottom first.
    pub layers: &'a [BlobLease],
}

/// A blob that is in the store and is kept there while this value lives.
#[derive(Debug)]
pub struct BlobLease {
    digest: String,
    path: PathBuf,
    size: u64,
    _lock: LockGuard,
}

impl BlobLease {
    /// `sha256:<hex>`.
    pub fn digest(&self) -> &str {
        &self.digest
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// A blob being written: a locked temp file under `cas/tmp`, hashed on the way.
/// Dropped without [`Store::commit_blob`], it is deleted.
#[derive(Debug)]
pub struct BlobWriter {
    tmp: LockedTemp,
    hasher: Sha256,
    size: u64,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tmp.file_mut().write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tmp.file_mut().flush()
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// Check `sha256:<64 lower-case hex>`.
fn check_digest(digest: &str) -> Result<&str, StoreError> {
    let invalid = |reason| StoreError::InvalidId {
        id: digest.to_string(),
        reason,
    };
    let hex = digest
        .strip_prefix(SHA256)
        .ok_or_else(|| invalid("the store keeps OCI content by sha256 digest"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(invalid("a sha256 digest has 64 lower-case hex digits"));
    }
    Ok(hex)
}

impl Store {
    /// `cas/blob/sha256/<2 hex>/sha256-<hex>` for `sha256:<hex>`. Does not check it.
    pub fn oci_blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix(SHA256).unwrap_or(digest);
        let shard = hex.get(..2).unwrap_or("00");
        self.root
            .join("blob")
            .join("sha256")
            .join(shard)
            .join(format!("sha256-{hex}"))
    }

    fn blob_lock_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix(SHA256).unwrap_or(digest);
        self.root.join("locks").join(format!("sha256-{hex}"))
    }

    /// Keep the blob `digest` (`sha256:<hex>`) if the store has it whole; `None`
    /// when it must be fetched.
    pub fn lease_blob(&self, digest: &str) -> Result<Option<BlobLease>, StoreError> {
        check_digest(digest)?;
        let lock_path = self.blob_lock_path(digest);
        let lock = LockGuard::shared(&lock_path).map_err(|source| StoreError::Lock {
            path: lock_path,
            source,
        })?;
        let size: Option<i64> = self
            .conn()
            .query_row(
                "SELECT size FROM oci_blobs WHERE digest = ?1",
                params![digest],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db_err("look up a blob"))?;
        let Some(size) = size.and_then(|s| u64::try_from(s).ok()) else {
            return Ok(None);
        };
        let path = self.oci_blob_path(digest);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() && m.len() == size => Ok(Some(BlobLease {
                digest: digest.to_string(),
                path,
                size,
                _lock: lock,
            })),
            Ok(_) => {
                tracing::warn!(blob = %path.display(), "a stored blob has the wrong size; fetching it again");
                Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::OpenBlob {
                id: digest.to_string(),
                path,
                source,
            }),
        }
    }

    /// Start writing a blob (content as it is to be stored).
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        let tmp = LockedTemp::create(&self.tmp_dir()).map_err(|source| StoreError::WriteTemp {
            path: self.tmp_dir(),
            source,
        })?;
        Ok(BlobWriter {
            tmp,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Store what `writer` received, if its sha256 is `expected` (when given).
    /// Nothing is stored on a mismatch.
    pub fn commit_blob(
        &self,
        mut writer: BlobWriter,
        expected: Option<&str>,
    ) -> Result<BlobLease, StoreError> {
        let digest = format!("{SHA256}{}", hex::encode(writer.hasher.finalize_reset()));
        if let Some(want) = expected {
            if want != digest {
                return Err(StoreError::BlobDigest {
                    expected: want.to_string(),
                    actual: digest,
                });
            }
        }
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::WriteTemp { path, source }
        };
        {
            use std::os::unix::fs::PermissionsExt;
            writer
                .tmp
                .file()
                .set_permissions(fs::Permissions::from_mode(0o644))
                .map_err(write_err(writer.tmp.path()))?;
        }
        writer
            .tmp
            .file()
            .sync_all()
            .map_err(write_err(writer.tmp.path()))?;
        let lock_path = self.blob_lock_path(&digest);
        let lock = LockGuard::shared(&lock_path).map_err(|source| StoreError::Lock {
            path: lock_path,
            source,
        })?;
        let path = self.oci_blob_path(&digest);
        let size = writer.size;
        let present = fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == size);
        if present {
            drop(writer); // an equal blob is there: drop the copy
        } else {
            self.place_blob(writer.tmp, &path)?;
        }
        self.conn()
            .execute(
                "INSERT INTO oci_blobs (digest, size, stored_time) VALUES (?1, ?2, ?3)
                 ON CONFLICT(digest) DO UPDATE SET size = excluded.size",
                params![
                    digest,
                    i64::try_from(size).unwrap_or(i64::MAX),
                    db::to_nanos(SystemTime::now())
                ],
            )
            .map_err(self.db_err("record a blob"))?;
        tracing::debug!(blob = %digest, size, reused = present, "stored blob");
        Ok(BlobLease {
            digest,
            path,
            size,
            _lock: lock,
        })
    }

    /// Record an OCI image whose blobs are all leased; returns it as an image.
    pub fn put_oci_image(&self, image: &NewOciImage<'_>) -> Result<ImageInfo, StoreError> {
        let manifest = ImageManifest::from_slice(&image.manifest_json).map_err(|source| {
            StoreError::CorruptRow {
                id: image.name.clone(),
                source,
            }
        })?;
        let id = format!(
            "{ID_PREFIX}{}",
            hex::encode(Sha512::digest(&image.manifest_json))
        );
        let size: u64 = image.layers.iter().map(BlobLease::size).sum();
        let labels =
            serde_json::to_string(&manifest.labels).expect("name/value pairs serialise to JSON");
        let now = db::to_nanos(SystemTime::now());
        let guard = self.lock_image(&id)?;
        let info = {
            let mut conn = self.conn();
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(self.db_err("begin recording an image"))?;
            let result = (|| {
                tx.execute(
                    "INSERT INTO images (id, name, labels, size, import_time, last_used, latest, manifest)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)
                     ON CONFLICT(id) DO UPDATE SET
                        name = excluded.name, labels = excluded.labels, size = excluded.size,
                        last_used = excluded.last_used,
                        latest = (latest OR excluded.latest), manifest = excluded.manifest",
                    params![
                        id,
                        image.name,
                        labels,
                        i64::try_from(size).unwrap_or(i64::MAX),
                        now,
                        image.latest,
                        image.manifest_json,
                    ],
                )?;
                tx.execute(
                    "INSERT INTO oci_images (image_id, source, location, repository, tag,
                        manifest_digest, config_digest)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(image_id) DO UPDATE SET source = excluded.source,
                        location = excluded.location, repository = excluded.repository,
                        tag = excluded.tag, manifest_digest = excluded.manifest_digest,
                        config_digest = excluded.config_digest",
                    params![
                        id,
                        image.source,
                        image.location,
                        image.repository,
                        image.tag,
                        image.manifest_blob.map(BlobLease::digest),
                        image.config_blob.digest(),
                    ],
                )?;
                tx.execute("DELETE FROM oci_refs WHERE image_id = ?1", params![id])?;
                let mut refs: Vec<(BlobRole, usize, &str)> = Vec::new();
                if let Some(i) = image.index_blob {
                    refs.push((BlobRole::Index, 0, i.digest()));
                }
                if let Some(m) = image.manifest_blob {
                    refs.push((BlobRole::Manifest, 0, m.digest()));
                }
                refs.push((BlobRole::Config, 0, image.config_blob.digest()));
                for (i, layer) in image.layers.iter().enumerate() {
                    refs.push((BlobRole::Layer, i, layer.digest()));
                }
                for (role, position, digest) in refs {
                    tx.execute(
                        "INSERT INTO oci_refs (image_id, role, position, digest)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![
                            id,
                            role.as_str(),
                            i64::try_from(position).unwrap_or(i64::MAX),
                            digest
                        ],
                    )?;
                }
                get_row(&tx, &id)
            })();
            let row = result.map_err(self.db_err("record an OCI image"))?;
            tx.commit().map_err(self.db_err("commit an OCI image"))?;
            row
        };
        self.drop_lock(guard, &id);
        let info = info.ok_or_else(|| StoreError::NotFound { id: id.clone() })??;
        tracing::debug!(image = %id, name = %info.name, layers = image.layers.len(), "recorded OCI image");
        Ok(info)
    }

    /// Where an OCI image came from; `None` for an ACI (or an unknown ID).
    pub fn oci_record(&self, id: &str) -> Result<Option<OciRecord>, StoreError> {
        self.conn()
            .query_row(
                "SELECT image_id, source, location, repository, tag, manifest_digest,
                    config_digest FROM oci_images WHERE image_id = ?1",
                params![id],
                |r| {
                    Ok(OciRecord {
                        image_id: r.get(0)?,
                        source: r.get(1)?,
                        location: r.get(2)?,
                        repository: r.get(3)?,
                        tag: r.get(4)?,
                        manifest_digest: r.get(5)?,
                        config_digest: r.get(6)?,
                    })
                },
            )
            .optional()
            .map_err(self.db_err("look up an OCI image"))
    }

    /// The newest OCI image from `source`/`location`/`repository` with `tag` (when
    /// given) and `digest` (when given: its manifest's, or its index's).
    pub fn find_oci(
        &self,
        source: &str,
        location: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<Option<ImageInfo>, StoreError> {
        let id: Option<String> = self
            .conn()
            .query_row(
                "SELECT o.image_id FROM oci_images o JOIN images i ON i.id = o.image_id
                 WHERE o.source = ?1 AND o.location = ?2 AND o.repository = ?3
                   AND (?4 IS NULL OR o.tag = ?4)
                   AND (?5 IS NULL OR o.manifest_digest = ?5 OR EXISTS (
                        SELECT 1 FROM oci_refs r WHERE r.image_id = o.image_id
                        AND r.role = 'index' AND r.digest = ?5))
                 ORDER BY i.import_time DESC, i.id LIMIT 1",
                params![source, location, repository, tag, digest],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db_err("look up an OCI image"))?;
        match id {
            Some(id) => self.get(&id),
            None => Ok(None),
        }
    }

    /// The uncompressed layer files of an OCI image, bottom first (empty for an ACI).
    pub fn oci_layers(&self, id: &str) -> Result<Vec<PathBuf>, StoreError> {
        Ok(self
            .oci_refs(id)?
            .into_iter()
            .filter(|(role, _)| role == "layer")
            .map(|(_, digest)| self.oci_blob_path(&digest))
            .collect())
    }

    /// `(role, digest)` of every blob an image references, in order.
    fn oci_refs(&self, id: &str) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT role, digest FROM oci_refs WHERE image_id = ?1
                 ORDER BY CASE role WHEN 'index' THEN 0 WHEN 'manifest' THEN 1
                    WHEN 'config' THEN 2 ELSE 3 END,
                    position",
            )
            .map_err(self.db_err("list the blobs of an image"))?;
        let rows = stmt
            .query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<(String, String)>, _>>())
            .map_err(self.db_err("list the blobs of an image"));
        rows
    }

    /// How many image references the blob `digest` has.
    pub fn blob_refcount(&self, digest: &str) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM oci_refs WHERE digest = ?1",
                params![digest],
                |r| r.get(0),
            )
            .map_err(self.db_err("count blob references"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The distinct digests an image references (to free them after it is removed).
    pub(super) fn oci_digests(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let mut digests: Vec<String> = self.oci_refs(id)?.into_iter().map(|(_, d)| d).collect();
        digests.sort();
        digests.dedup();
        Ok(digests)
    }

    /// Delete the blobs among `digests` that no image references and nobody holds;
    /// returns how many were deleted.
    pub fn free_unused_blobs(&self, digests: &[String]) -> Result<usize, StoreError> {
        let mut freed = 0;
        for digest in digests {
            if check_digest(digest).is_err() || self.blob_refcount(digest)? > 0 {
                continue;
            }
            let lock_path = self.blob_lock_path(digest);
            let Some(guard) =
                LockGuard::try_exclusive(&lock_path).map_err(|source| StoreError::Lock {
                    path: lock_path.clone(),
                    source,
                })?
            else {
                tracing::debug!(blob = %digest, "blob in use by a fetch; leaving it");
                continue;
            };
            if self.blob_refcount(digest)? == 0 {
                self.conn()
                    .execute("DELETE FROM oci_blobs WHERE digest = ?1", params![digest])
                    .map_err(self.db_err("forget a blob"))?;
                let path = self.oci_blob_path(digest);
                match fs::remove_file(&path) {
                    Ok(()) => freed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => return Err(StoreError::Remove { path, source }),
                }
                tracing::debug!(blob = %digest, "freed blob");
            }
            if let Err(e) = guard.remove() {
                tracing::warn!(lock = %lock_path.display(), error = %e, "cannot remove lock file");
            }
        }
        Ok(freed)
    }

    /// Free every unreferenced blob: rows without references and files without rows
    /// (left by a crash). Returns how many files were deleted.
    pub(super) fn sweep_oci_blobs(&self) -> Result<usize, StoreError> {
        let mut digests: Vec<String> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare(
                    "SELECT digest FROM oci_blobs b
                     WHERE NOT EXISTS (SELECT 1 FROM oci_refs r WHERE r.digest = b.digest)",
                )
                .map_err(self.db_err("find unused blobs"))?;
            let found = stmt
                .query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
                .map_err(self.db_err("find unused blobs"))?;
            found
        };
        let base = self.root.join("blob").join("sha256");
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Remove { path, source }
        };
        match fs::read_dir(&base) {
            Ok(shards) => {
                for shard in shards {
                    let shard = shard.map_err(read_err(&base))?.path();
                    if !shard.is_dir() {
                        continue;
                    }
                    for blob in fs::read_dir(&shard).map_err(read_err(&shard))? {
                        let name = blob.map_err(read_err(&shard))?.file_name();
                        let Some(hex) = name.to_str().and_then(|n| n.strip_prefix("sha256-"))
                        else {
                            continue;
                        };
                        let digest = format!("{SHA256}{hex}");
                        if check_digest(&digest).is_ok() && !digests.contains(&digest) {
                            let known: bool = self
                                .conn()
                                .query_row(
                                    "SELECT EXISTS (SELECT 1 FROM oci_blobs WHERE digest = ?1)",
                                    params![digest],
                                    |r| r.get(0),
                                )
                                .map_err(self.db_err("look up a blob"))?;
                            if !known {
                                digests.push(digest);
                            }
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(StoreError::Remove { path: base, source }),
        }
        self.free_unused_blobs(&digests)
    }

    /// Re-hash the blobs of an OCI image. `Ok(false)` if `id` is not an OCI image.
    pub(super) fn verify_oci_blobs(&self, id: &str) -> Result<bool, StoreError> {
        let refs = self.oci_refs(id)?;
        if refs.is_empty() && self.oci_record(id)?.is_none() {
            return Ok(false);
        }
        for (_, digest) in refs {
            let path = self.oci_blob_path(&digest);
            let mut file = File::open(&path).map_err(|source| {
                if source.kind() == io::ErrorKind::NotFound {
                    StoreError::MissingBlob {
                        id: id.to_string(),
                        path: path.clone(),
                    }
                } else {
                    StoreError::OpenBlob {
                        id: id.to_string(),
                        path: path.clone(),
                        source,
                    }
                }
            })?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(source) => {
                        return Err(StoreError::ReadBlob {
                            id: id.to_string(),
                            path,
                            source,
                        })
                    }
                };
                hasher.update(&buf[..n]);
            }
            let actual = format!("{SHA256}{}", hex::encode(hasher.finalize()));
            if actual != digest {
                return Err(StoreError::CorruptBlob {
                    id: id.to_string(),
                    path,
                    actual,
                });
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    fn new_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("cas")).unwrap();
        (dir, store)
    }

    fn blob(store: &Store, data: &[u8]) -> BlobLease {
        let mut w = store.blob_writer().unwrap();
        w.write_all(data).unwrap();
        let want = format!("sha256:{}", hex::encode(Sha256::digest(data)));
        store.commit_blob(w, Some(&want)).unwrap()
    }

    fn manifest(name: &str, tag: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
            "labels": [{"name": "version", "value": tag}],
            "app": {"exec": ["/bin/sh"], "user": "0", "group": "0"}
        }))
        .unwrap()
    }

    fn record<'a>(
        store: &Store,
        tag: &str,
        config: &'a BlobLease,
        layers: &'a [BlobLease],
    ) -> ImageInfo {
        store
            .put_oci_image(&NewOciImage {
                name: "127.0.0.1:5000/app".into(),
                manifest_json: manifest("127.0.0.1-5000/app", tag),
                latest: false,
                source: "docker".into(),
                location: "127.0.0.1:5000".into(),
                repository: "app".into(),
                tag: Some(tag.into()),
                index_blob: None,
                manifest_blob: None,
                config_blob: config,
                layers,
            })
            .unwrap()
    }

    #[test]
    fn blobs_are_content_addressed_and_checked() {
        let (_d, store) = new_store();
        let lease = blob(&store, b"layer one");
        let path = store.oci_blob_path(lease.digest());
        assert_eq!(fs::read(&path).unwrap(), b"layer one");
        assert!(path
            .to_string_lossy()
            .contains(&format!("blob/sha256/{}/sha256-", &lease.digest()[7..9])));
        drop(lease);
        // A wrong expectation stores nothing.
        let mut w = store.blob_writer().unwrap();
        w.write_all(b"tampered").unwrap();
        let err = store
            .commit_blob(w, Some(&format!("sha256:{}", "0".repeat(64))))
            .unwrap_err();
        assert!(matches!(err, StoreError::BlobDigest { .. }), "{err}");
        assert!(err.to_string().contains("nothing was stored"), "{err}");
        let tmp: Vec<_> = fs::read_dir(store.tmp_dir()).unwrap().collect();
        assert!(tmp.is_empty(), "temp files left: {tmp:?}");
        assert!(store.lease_blob(&digest_of(b"tampered")).unwrap().is_none());
        assert!(store
            .lease_blob(&digest_of(b"layer one"))
            .unwrap()
            .is_some());
        assert!(store.lease_blob("sha512:00").is_err());
    }

    fn digest_of(data: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(data)))
    }

    #[test]
    fn images_share_blobs_and_removal_frees_only_unused_ones() {
        let (_d, store) = new_store();
        let config_a = blob(&store, b"{\"config\":\"a\"}");
        let config_b = blob(&store, b"{\"config\":\"b\"}");
        let base = blob(&store, b"shared base layer");
        let top = blob(&store, b"top layer of a");
        let layers_a = [store.lease_blob(base.digest()).unwrap().unwrap(), top];
        let layers_b = [store.lease_blob(base.digest()).unwrap().unwrap()];
        let a = record(&store, "a", &config_a, &layers_a);
        let b = record(&store, "b", &config_b, &layers_b);
        assert_ne!(a.id, b.id);
        assert_eq!(a.name, "127.0.0.1:5000/app");
        assert_eq!(
            a.size,
            (b"shared base layer".len() + b"top layer of a".len()) as u64
        );
        assert_eq!(store.blob_refcount(base.digest()).unwrap(), 2);
        assert_eq!(
            store.oci_layers(&a.id).unwrap(),
            vec![
                store.oci_blob_path(base.digest()),
                store.oci_blob_path(layers_a[1].digest())
            ]
        );
        let rec = store.oci_record(&a.id).unwrap().unwrap();
        assert_eq!(rec.tag.as_deref(), Some("a"));
        assert_eq!(rec.config_digest, config_a.digest());
        let found = store
            .find_oci("docker", "127.0.0.1:5000", "app", Some("b"), None)
            .unwrap()
            .unwrap();
        assert_eq!(found.id, b.id);
        assert!(store
            .find_oci("docker", "127.0.0.1:5000", "app", Some("c"), None)
            .unwrap()
            .is_none());
        store.verify_blob(&a.id).unwrap();
        let top_path = layers_a[1].path().to_path_buf();
        let base_path = base.path().to_path_buf();
        let config_a_path = config_a.path().to_path_buf();
        drop((config_a, config_b, base, layers_a, layers_b));

        store.remove(&a.id).unwrap();
        assert!(!top_path.exists(), "a's own layer is freed");
        assert!(!config_a_path.exists(), "a's config is freed");
        assert!(base_path.exists(), "the layer b still uses stays");
        assert_eq!(
            store
                .blob_refcount(&digest_of(b"shared base layer"))
                .unwrap(),
            1
        );
        store.remove(&b.id).unwrap();
        assert!(!base_path.exists());
        let left = files_under(&store.root().join("blob"));
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_leased_blob_survives_removal_and_gc_collects_it_later() {
        let (_d, store) = new_store();
        let config = blob(&store, b"{}");
        let layer = blob(&store, b"layer");
        let img = record(&store, "t", &config, std::slice::from_ref(&layer));
        drop(config);
        // A concurrent fetch holds the layer (e.g. for another image being written).
        store.remove(&img.id).unwrap();
        assert!(layer.path().exists(), "a held blob is not deleted");
        let path = layer.path().to_path_buf();
        drop(layer);
        // An orphan file (crash between rename and row) and an unreferenced row.
        let orphan = store.oci_blob_path(&digest_of(b"orphan"));
        fs::create_dir_all(orphan.parent().unwrap()).unwrap();
        fs::write(&orphan, b"orphan").unwrap();
        store
            .gc(std::time::Duration::from_secs(3600), SystemTime::now())
            .unwrap();
        assert!(!path.exists(), "gc frees unreferenced blobs");
        assert!(!orphan.exists(), "gc frees blobs without a row");
    }

    #[test]
    fn verify_detects_a_modified_layer() {
        let (_d, store) = new_store();
        let config = blob(&store, b"{}");
        let layer = blob(&store, b"original");
        let img = record(&store, "t", &config, std::slice::from_ref(&layer));
        let path = layer.path().to_path_buf();
        drop((config, layer));
        fs::write(&path, b"modified").unwrap();
        let err = store.verify_blob(&img.id).unwrap_err();
        assert!(matches!(err, StoreError::CorruptBlob { .. }), "{err}");
        let err = store.open_blob(&img.id).unwrap_err();
        assert!(matches!(err, StoreError::NotAnAci { .. }), "{err}");
        assert!(err.to_string().contains("rkt image render"), "{err}");
    }

    #[test]
    fn a_version_1_index_is_migrated_keeping_its_images() {
        let dir = tempfile::tempdir().unwrap();
        let cas = dir.path().join("cas");
        fs::create_dir_all(cas.join("db")).unwrap();
        let path = cas.join("db").join("index.sqlite3");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(super::super::db::MIGRATIONS[0]).unwrap();
            conn.execute(
                "INSERT INTO images VALUES ('sha512-aa', 'example.com/x', '[]', 1, 0, 0, 0, ?1)",
                params![manifest("example.com/x", "1")],
            )
            .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let store = Store::open(&cas).unwrap();
        let n: i64 = store
            .conn()
            .query_row("SELECT COUNT(*) FROM images", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        let v: i64 = store
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 2);
        assert_eq!(store.blob_refcount(&digest_of(b"x")).unwrap(), 0);
    }
}
