//! The content-addressed image store under `<dir>/cas`.
//!
//! ```text
//! cas/
//!   blob/sha512/<2 hex>/sha512-<128 hex>   uncompressed ACIs, named by their image ID
//!   blob/sha256/<2 hex>/sha256-<64 hex>    OCI configs, manifests, uncompressed layers
//!                                          (see `oci.rs`)
//!   db/index.sqlite3                       the index: images and the remote (HTTP) cache
//!   tree/<image id>/                       rendered trees (owned by the tree store)
//!   tmp/                                   imports and downloads in progress
//!   locks/<image id>                       per-image flock files
//! ```
//!
//! An image ID is `sha512-` and the hex sha512 of the *uncompressed* tar, so
//! `gzip -dc x.aci | sha512sum` reproduces it whatever the compression.
//!
//! # Crash safety
//! An import writes the uncompressed stream to `tmp/import-*`, hashing it on the
//! way, checks that it is an ACI, fsyncs it, then — under the image's lock — renames
//! it into `blob/` (unless an equal blob is there), fsyncs the directory, and only
//! then writes the index row. Removal deletes the row first, then the blob. So a
//! crash (kill -9, full disk) can leave a blob without a row — invisible, and swept
//! by [`Store::gc`] — but never a row without its blob, nor a partial blob.
//!
//! Each import temp file is exclusively `flock`ed by its writer for as long as it
//! exists. [`Store::open`] deletes `tmp/import-*` files that nobody holds a lock on:
//! their writer died. Other files in `tmp/` (downloads, which may be resumed) are
//! not touched.

mod db;
mod lock;
mod oci;
mod validate;

#[cfg(test)]
mod tests;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use manifests::appc::{AppcError, ImageManifest};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha512};

use crate::image::archive::{self, ArchiveError, Compression};
use lock::{LockGuard, LockedTemp};
pub use oci::{BlobLease, BlobRole, BlobWriter, NewOciImage, OciRecord};
pub use validate::AciProblem;

/// Check that the uncompressed archive in `file` is an ACI (a `manifest` and a
/// `rootfs/`, nothing escaping it) and return the manifest's bytes and parsed form, as
/// an import does. Public for the fuzz targets (`fuzz/`).
#[doc(hidden)]
pub fn check_aci(file: &File) -> Result<(Vec<u8>, ImageManifest), AciProblem> {
    validate::check_aci(file)
}

/// `sha512-`, the only hash algorithm appc allows for image IDs.
pub const ID_PREFIX: &str = "sha512-";
/// Hex digits in a full image ID.
pub const ID_HEX_LEN: usize = 128;
/// The fewest hex digits [`Store::resolve`] accepts after `sha512-`.
pub const MIN_PREFIX_HEX: usize = 4;
/// Hex digits shown by [`short_id`].
pub const SHORT_ID_HEX: usize = 32;

/// An image in the store.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// `sha512-<128 hex>`: the sha512 of the uncompressed tar.
    pub id: String,
    pub name: String,
    pub labels: Vec<(String, String)>,
    /// Size of the uncompressed blob in bytes.
    pub size: u64,
    pub import_time: SystemTime,
    pub last_used: SystemTime,
    /// Fetched without a version label (rkt semantics): preferred by
    /// [`Store::find_by_name`] when no version is asked for.
    pub latest: bool,
    pub manifest: ImageManifest,
    /// The `manifest` file exactly as it is in the ACI.
    pub manifest_json: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Mark the image `latest` (it was fetched without a version label). Once set it
    /// stays set when the same image is imported again without it.
    pub latest: bool,
}

/// A cached HTTP download: which image a URL gave, and how to revalidate it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    pub url: String,
    pub image_id: String,
    pub etag: Option<String>,
    /// `Cache-Control: max-age`; stored with one-second precision.
    pub max_age: Option<Duration>,
    pub download_time: SystemTime,
}

/// `sha512-` and the first 32 hex digits of an image ID, as `rkt image list` shows.
pub fn short_id(id: &str) -> String {
    id.get(..ID_PREFIX.len() + SHORT_ID_HEX)
        .unwrap_or(id)
        .to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create store directory {path}", path = path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("image index {path}: cannot {op}", path = path.display())]
    Db {
        path: PathBuf,
        op: &'static str,
        source: rusqlite::Error,
    },
    #[error(
        "image index {path} has schema version {found}, newer than the {supported} this rkt \
         understands; use a newer rkt",
        path = path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("cannot open image archive {path}", path = path.display())]
    OpenInput { path: PathBuf, source: io::Error },
    #[error("cannot read image archive {input}")]
    Archive { input: String, source: ArchiveError },
    #[error(
        "cannot read {compression} image archive {input} \
         (the archive is truncated or corrupt; fetch it again)"
    )]
    ReadArchive {
        input: String,
        compression: Compression,
        source: io::Error,
    },
    #[error("image archive {input} is not a valid ACI")]
    InvalidAci {
        input: String,
        #[source]
        problem: AciProblem,
    },
    #[error("cannot write temporary file {path}", path = path.display())]
    WriteTemp { path: PathBuf, source: io::Error },
    #[error("cannot lock {path}", path = path.display())]
    Lock { path: PathBuf, source: io::Error },
    #[error("cannot store blob {path}", path = path.display())]
    StoreBlob { path: PathBuf, source: io::Error },
    #[error("cannot open blob {path} of image {id}", path = path.display())]
    OpenBlob {
        id: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "blob {path} of image {id} is missing; remove the image (rkt image rm) and fetch it again",
        path = path.display()
    )]
    MissingBlob { id: String, path: PathBuf },
    #[error("cannot read blob {path} of image {id}", path = path.display())]
    ReadBlob {
        id: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "image {id} is corrupt: its blob hashes to {actual}; remove it (rkt image rm) and fetch \
         it again"
    )]
    Corrupt { id: String, actual: String },
    #[error("cannot remove {path}", path = path.display())]
    Remove { path: PathBuf, source: io::Error },
    #[error("invalid image ID {id}: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("image ID prefix {prefix} is too short: give sha512- and at least {min} hex digits")]
    PrefixTooShort { prefix: String, min: usize },
    #[error("no image with ID {id} in the store (see rkt image list)")]
    NotFound { id: String },
    #[error(
        "image ID prefix {prefix} is ambiguous; it matches {}; give more digits",
        describe_candidates(candidates)
    )]
    Ambiguous {
        prefix: String,
        /// `(full id, name)` of every image that matches.
        candidates: Vec<(String, String)>,
    },
    #[error("the index row of image {id} holds an unreadable manifest")]
    CorruptRow { id: String, source: AppcError },
    #[error("blob content hashes to {actual}, not the expected {expected}; nothing was stored")]
    BlobDigest { expected: String, actual: String },
    #[error(
        "blob {path} of image {id} is corrupt: it hashes to {actual}; remove the image \
         (rkt image rm) and fetch it again",
        path = path.display()
    )]
    CorruptBlob {
        id: String,
        path: PathBuf,
        actual: String,
    },
    #[error(
        "image {id} is an OCI image: it is stored as layers, not as an ACI archive; \
         use rkt image render to get its root filesystem"
    )]
    NotAnAci { id: String },
}

fn describe_candidates(candidates: &[(String, String)]) -> String {
    const SHOWN: usize = 10;
    let mut out: Vec<String> = candidates
        .iter()
        .take(SHOWN)
        .map(|(id, name)| format!("{} ({name})", short_id(id)))
        .collect();
    if candidates.len() > SHOWN {
        out.push(format!("and {} more", candidates.len() - SHOWN));
    }
    out.join(", ")
}

/// Check that `id` is `sha512-` followed by 128 lower-case hex digits.
pub fn validate_id(id: &str) -> Result<(), StoreError> {
    let invalid = |reason| StoreError::InvalidId {
        id: id.to_string(),
        reason,
    };
    let hex = id
        .strip_prefix(ID_PREFIX)
        .ok_or_else(|| invalid("it must start with sha512-"))?;
    if hex.len() != ID_HEX_LEN {
        return Err(invalid("it must have 128 hex digits after sha512-"));
    }
    if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(invalid("only lower-case hex digits may follow sha512-"));
    }
    Ok(())
}

/// The image store. Cheap operations go through one SQLite connection (behind a
/// mutex, so a `Store` can be shared between threads); several processes may use the
/// same store at once.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    db_path: PathBuf,
    conn: Mutex<Connection>,
    /// What [`Store::open`] had to close: `cas` found open to other users.
    tightened: Vec<crate::perms::Tightened>,
}

impl Store {
    /// Open the store at `cas_dir`, creating its directories and index as needed,
    /// and delete temp files left by dead imports.
    pub fn open(cas_dir: &Path) -> Result<Store, StoreError> {
        let root = cas_dir.to_path_buf();
        // Rendered trees hold images' setuid binaries and device nodes: only root may
        // reach them.
        let tightened: Vec<_> = crate::perms::private_dir(&root, "image store")
            .map_err(|source| StoreError::CreateDir {
                path: root.clone(),
                source,
            })?
            .into_iter()
            .collect();
        for t in &tightened {
            tracing::warn!("SECURITY: {t}");
        }
        for dir in [
            root.join("blob").join("sha512"),
            root.join("db"),
            root.join("tree"),
            root.join("tmp"),
            root.join("locks"),
        ] {
            fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        }
        let db_path = root.join("db").join("index.sqlite3");
        let conn = db::open(&db_path)?;
        let store = Store {
            root,
            db_path,
            conn: Mutex::new(conn),
            tightened,
        };
        let tmp = store.tmp_dir();
        match lock::remove_stale_temp_files(&tmp) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(dir = %tmp.display(), removed = n, "removed temp files of interrupted imports")
            }
            Err(e) => {
                tracing::warn!(dir = %tmp.display(), error = %e, "cannot clean temp files of interrupted imports")
            }
        }
        Ok(store)
    }

    /// The private roots [`Store::open`] found open to other users and closed.
    pub fn tightened(&self) -> &[crate::perms::Tightened] {
        &self.tightened
    }

    /// The `cas` directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `cas/tmp`, on the same filesystem as the blobs, for downloads. Files named
    /// `import-*` there are the store's own; do not use that prefix.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// `cas/tree`, where the tree store renders images.
    pub fn tree_dir(&self) -> PathBuf {
        self.root.join("tree")
    }

    /// `cas/blob/sha512/<2 hex>/<id>`. Does not check the ID.
    pub fn blob_path(&self, id: &str) -> PathBuf {
        let shard = id
            .strip_prefix(ID_PREFIX)
            .and_then(|hex| hex.get(..2))
            .unwrap_or("00");
        self.root.join("blob").join("sha512").join(shard).join(id)
    }

    fn lock_path(&self, id: &str) -> PathBuf {
        self.root.join("locks").join(id)
    }

    fn lock_image(&self, id: &str) -> Result<LockGuard, StoreError> {
        let path = self.lock_path(id);
        LockGuard::exclusive(&path).map_err(|source| StoreError::Lock { path, source })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the mutex cannot leave the connection half-used in a
        // way SQLite does not recover from (an open transaction rolls back on drop).
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn db_err(&self, op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Db {
            path: self.db_path.clone(),
            op,
            source,
        }
    }

    /// Import an ACI (plain, gzip, bzip2, xz or zstd) from a stream.
    pub fn import(
        &self,
        reader: impl Read + Send,
        opts: &ImportOptions,
    ) -> Result<ImageInfo, StoreError> {
        self.import_from(reader, "<stream>", opts)
    }

    /// Like [`Store::import`], naming the stream's origin (a URL, say) in errors.
    pub fn import_named(
        &self,
        reader: impl Read + Send,
        origin: &str,
        opts: &ImportOptions,
    ) -> Result<ImageInfo, StoreError> {
        self.import_from(reader, origin, opts)
    }

    /// Import an ACI file.
    pub fn import_file(&self, path: &Path, opts: &ImportOptions) -> Result<ImageInfo, StoreError> {
        let file = File::open(path).map_err(|source| StoreError::OpenInput {
            path: path.to_path_buf(),
            source,
        })?;
        self.import_from(file, &path.display().to_string(), opts)
    }

    fn import_from(
        &self,
        reader: impl Read + Send,
        input: &str,
        opts: &ImportOptions,
    ) -> Result<ImageInfo, StoreError> {
        let (compression, mut plain) =
            archive::decompress(reader).map_err(|source| StoreError::Archive {
                input: input.to_string(),
                source,
            })?;
        let mut tmp =
            LockedTemp::create(&self.tmp_dir()).map_err(|source| StoreError::WriteTemp {
                path: self.tmp_dir(),
                source,
            })?;
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::WriteTemp { path, source }
        };

        // Copy, hashing what we write.
        let mut hasher = Sha512::new();
        let mut size: u64 = 0;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match plain.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(StoreError::ReadArchive {
                        input: input.to_string(),
                        compression,
                        source,
                    })
                }
            };
            hasher.update(&buf[..n]);
            tmp.file_mut()
                .write_all(&buf[..n])
                .map_err(write_err(tmp.path()))?;
            size += n as u64;
        }
        let id = format!("{ID_PREFIX}{}", hex::encode(hasher.finalize()));

        if size == 0 {
            return Err(StoreError::InvalidAci {
                input: input.to_string(),
                problem: AciProblem::Empty,
            });
        }
        let (manifest_json, manifest) =
            validate::check_aci(tmp.file()).map_err(|problem| StoreError::InvalidAci {
                input: input.to_string(),
                problem,
            })?;
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.file()
                .set_permissions(fs::Permissions::from_mode(0o644))
                .map_err(write_err(tmp.path()))?;
        }
        tmp.file().sync_all().map_err(write_err(tmp.path()))?;

        let guard = self.lock_image(&id)?;
        let blob = self.blob_path(&id);
        let keep_existing = match fs::symlink_metadata(&blob) {
            Ok(m) if m.is_file() && m.len() == size => true,
            Ok(_) => {
                tracing::warn!(image = %id, blob = %blob.display(), "replacing a blob of the wrong size");
                false
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(source) => return Err(StoreError::StoreBlob { path: blob, source }),
        };
        if keep_existing {
            drop(tmp); // deletes the temp file
        } else {
            self.place_blob(tmp, &blob)?;
        }

        let now = db::to_nanos(SystemTime::now());
        let labels =
            serde_json::to_string(&manifest.labels).expect("name/value pairs serialise to JSON");
        let info = {
            let conn = self.conn();
            conn.execute(
                "INSERT INTO images (id, name, labels, size, import_time, last_used, latest, manifest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)
                 ON CONFLICT(id) DO UPDATE SET
                    name = excluded.name, labels = excluded.labels, size = excluded.size,
                    import_time = excluded.import_time, last_used = excluded.last_used,
                    latest = (latest OR excluded.latest), manifest = excluded.manifest",
                params![
                    id,
                    manifest.name.as_str(),
                    labels,
                    i64::try_from(size).unwrap_or(i64::MAX),
                    now,
                    opts.latest,
                    manifest_json,
                ],
            )
            .map_err(self.db_err("record the image"))?;
            get_row(&conn, &id).map_err(self.db_err("read the image back"))?
        };
        self.drop_lock(guard, &id);
        let info = info.ok_or_else(|| StoreError::NotFound { id: id.clone() })??;
        tracing::debug!(image = %id, name = %info.name, %compression, size, "imported image");
        Ok(info)
    }

    /// Rename a verified temp file to `blob` and make the rename durable.
    fn place_blob(&self, tmp: LockedTemp, blob: &Path) -> Result<(), StoreError> {
        let store_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::StoreBlob { path, source }
        };
        let shard = blob.parent().unwrap_or(&self.root).to_path_buf();
        if !shard.is_dir() {
            fs::create_dir_all(&shard).map_err(store_err(&shard))?;
            if let Some(parent) = shard.parent() {
                sync_dir(parent).map_err(store_err(parent))?;
            }
        }
        tmp.persist(blob).map_err(store_err(blob))?;
        sync_dir(&shard).map_err(store_err(&shard))
    }

    /// The image with exactly this full ID, if it is in the store.
    pub fn get(&self, id: &str) -> Result<Option<ImageInfo>, StoreError> {
        validate_id(id)?;
        let conn = self.conn();
        match get_row(&conn, id).map_err(self.db_err("look up an image"))? {
            None => Ok(None),
            Some(info) => info.map(Some),
        }
    }

    /// The one image whose ID starts with `id_prefix` (`sha512-` and at least
    /// [`MIN_PREFIX_HEX`] hex digits; case does not matter).
    pub fn resolve(&self, id_prefix: &str) -> Result<ImageInfo, StoreError> {
        let lowered = id_prefix.to_ascii_lowercase();
        let hex = lowered
            .strip_prefix(ID_PREFIX)
            .ok_or_else(|| StoreError::InvalidId {
                id: id_prefix.to_string(),
                reason: "an image ID starts with sha512-",
            })?;
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(StoreError::InvalidId {
                id: id_prefix.to_string(),
                reason: "only hex digits may follow sha512-",
            });
        }
        if hex.len() < MIN_PREFIX_HEX {
            return Err(StoreError::PrefixTooShort {
                prefix: id_prefix.to_string(),
                min: MIN_PREFIX_HEX,
            });
        }
        if hex.len() > ID_HEX_LEN {
            return Err(StoreError::InvalidId {
                id: id_prefix.to_string(),
                reason: "it has more than 128 hex digits after sha512-",
            });
        }
        let mut found = self.by_prefix(&lowered)?;
        match found.len() {
            0 => Err(StoreError::NotFound {
                id: id_prefix.to_string(),
            }),
            1 => found.remove(0),
            _ => Err(StoreError::Ambiguous {
                prefix: id_prefix.to_string(),
                candidates: found
                    .into_iter()
                    .filter_map(Result::ok)
                    .map(|i| (i.id, i.name))
                    .collect(),
            }),
        }
    }

    /// Every image whose ID starts with `prefix` (already validated, lower case).
    fn by_prefix(&self, prefix: &str) -> Result<Vec<Result<ImageInfo, StoreError>>, StoreError> {
        // Hex digits sort below 'g', so [prefix, prefix + "g") is exactly the IDs that
        // start with prefix, and the primary key index serves the range.
        let upper = format!("{prefix}g");
        let conn = self.conn();
        query_rows(
            &conn,
            &format!(
                "SELECT {} FROM images WHERE id >= ?1 AND id < ?2 ORDER BY id",
                db::IMAGE_COLUMNS
            ),
            params![prefix, upper],
        )
        .map_err(self.db_err("look up images by ID prefix"))
    }

    /// The best image called `name` whose manifest has every label in `labels`.
    /// Without a `version` label asked for, images marked `latest` win; otherwise
    /// (and among those) the most recent import.
    pub fn find_by_name(
        &self,
        name: &str,
        labels: &[(String, String)],
    ) -> Result<Option<ImageInfo>, StoreError> {
        let rows = {
            let conn = self.conn();
            query_rows(
                &conn,
                &format!(
                    "SELECT {} FROM images WHERE name = ?1 ORDER BY import_time DESC, id",
                    db::IMAGE_COLUMNS
                ),
                params![name],
            )
            .map_err(self.db_err("look up images by name"))?
        };
        let mut matching = Vec::new();
        for row in rows {
            let info = row?;
            if labels
                .iter()
                .all(|(k, v)| info.manifest.label(k) == Some(v.as_str()))
            {
                matching.push(info);
            }
        }
        let versioned = labels.iter().any(|(k, _)| k == "version");
        if !versioned {
            // Stable sort: keeps the newest-first order within each group.
            matching.sort_by_key(|i| !i.latest);
        }
        Ok(matching.into_iter().next())
    }

    /// Every image, oldest import first.
    pub fn list(&self) -> Result<Vec<ImageInfo>, StoreError> {
        let rows = {
            let conn = self.conn();
            query_rows(
                &conn,
                &format!(
                    "SELECT {} FROM images ORDER BY import_time, id",
                    db::IMAGE_COLUMNS
                ),
                [],
            )
            .map_err(self.db_err("list images"))?
        };
        rows.into_iter().collect()
    }

    /// Open an image's blob (the uncompressed ACI) for reading.
    pub fn open_blob(&self, id: &str) -> Result<File, StoreError> {
        validate_id(id)?;
        let path = self.blob_path(id);
        File::open(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound
                && self.oci_record(id).is_ok_and(|r| r.is_some())
            {
                StoreError::NotAnAci { id: id.to_string() }
            } else if source.kind() == io::ErrorKind::NotFound {
                StoreError::MissingBlob {
                    id: id.to_string(),
                    path,
                }
            } else {
                StoreError::OpenBlob {
                    id: id.to_string(),
                    path,
                    source,
                }
            }
        })
    }

    /// Record that the image was used now (for [`Store::gc`]).
    pub fn touch(&self, id: &str) -> Result<(), StoreError> {
        validate_id(id)?;
        let now = db::to_nanos(SystemTime::now());
        let n = self
            .conn()
            .execute(
                "UPDATE images SET last_used = ?2 WHERE id = ?1",
                params![id, now],
            )
            .map_err(self.db_err("update the last-used time"))?;
        if n == 0 {
            return Err(StoreError::NotFound { id: id.to_string() });
        }
        Ok(())
    }

    /// Remove an image: its index row, its remote-cache rows, its blob and its
    /// rendered tree. Errors with `NotFound` when there was neither row nor blob.
    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        validate_id(id)?;
        let guard = self.lock_image(id)?;
        let oci_blobs = self.oci_digests(id)?;
        let had_row = self.delete_rows(id, None)?;
        let had_blob = self.remove_files(id)?;
        self.drop_lock(guard, id);
        // After the image lock is released: see store/oci.rs on lock order.
        self.free_unused_blobs(&oci_blobs)?;
        if !had_row && !had_blob {
            return Err(StoreError::NotFound { id: id.to_string() });
        }
        tracing::debug!(image = %id, "removed image");
        Ok(())
    }

    /// Delete the rows of `id` (only if `last_used < before`, when given). Returns
    /// whether the image row existed (and was deleted).
    fn delete_rows(&self, id: &str, before: Option<i64>) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(self.db_err("begin removing an image"))?;
        let n = match before {
            None => tx.execute("DELETE FROM images WHERE id = ?1", params![id]),
            Some(cutoff) => tx.execute(
                "DELETE FROM images WHERE id = ?1 AND last_used < ?2",
                params![id, cutoff],
            ),
        }
        .map_err(self.db_err("remove an image"))?;
        if n > 0 {
            tx.execute("DELETE FROM remote WHERE image_id = ?1", params![id])
                .map_err(self.db_err("remove the remote cache of an image"))?;
        }
        tx.commit()
            .map_err(self.db_err("commit removing an image"))?;
        Ok(n > 0)
    }

    /// Delete the blob and tree of `id`; returns whether the blob existed. Call with
    /// the image lock held and its row gone.
    fn remove_files(&self, id: &str) -> Result<bool, StoreError> {
        let blob = self.blob_path(id);
        let had_blob = match fs::remove_file(&blob) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(source) => return Err(StoreError::Remove { path: blob, source }),
        };
        if had_blob {
            if let Some(shard) = blob.parent() {
                if let Err(e) = sync_dir(shard) {
                    tracing::warn!(dir = %shard.display(), error = %e, "cannot sync directory");
                }
            }
        }
        let tree = self.tree_dir().join(id);
        match fs::remove_dir_all(&tree) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(StoreError::Remove { path: tree, source }),
        }
        Ok(had_blob)
    }

    fn drop_lock(&self, guard: LockGuard, id: &str) {
        if let Err(e) = guard.remove() {
            tracing::warn!(lock = %self.lock_path(id).display(), error = %e, "cannot remove lock file");
        }
    }

    /// The cached download of `url`, if any.
    pub fn remote(&self, url: &str) -> Result<Option<RemoteEntry>, StoreError> {
        let conn = self.conn();
        conn.query_row(
            "SELECT url, image_id, etag, max_age_secs, download_time FROM remote WHERE url = ?1",
            params![url],
            |r| {
                let max_age: Option<i64> = r.get(3)?;
                Ok(RemoteEntry {
                    url: r.get(0)?,
                    image_id: r.get(1)?,
                    etag: r.get(2)?,
                    max_age: max_age.map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0))),
                    download_time: db::from_nanos(r.get(4)?),
                })
            },
        )
        .optional()
        .map_err(self.db_err("look up the remote cache"))
    }

    /// Record (or replace) the cached download of `entry.url`. The image must be in
    /// the store; removing the image drops the entry.
    pub fn put_remote(&self, entry: &RemoteEntry) -> Result<(), StoreError> {
        validate_id(&entry.image_id)?;
        let max_age = entry
            .max_age
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let conn = self.conn();
        let n = conn
            .execute(
                "INSERT INTO remote (url, image_id, etag, max_age_secs, download_time)
                 SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM images WHERE id = ?2)
                 ON CONFLICT(url) DO UPDATE SET image_id = excluded.image_id,
                    etag = excluded.etag, max_age_secs = excluded.max_age_secs,
                    download_time = excluded.download_time",
                params![
                    entry.url,
                    entry.image_id,
                    entry.etag,
                    max_age,
                    db::to_nanos(entry.download_time)
                ],
            )
            .map_err(self.db_err("record the remote cache"))?;
        if n == 0 {
            return Err(StoreError::NotFound {
                id: entry.image_id.clone(),
            });
        }
        Ok(())
    }

    /// Re-hash an image's blob and compare with its ID.
    pub fn verify_blob(&self, id: &str) -> Result<(), StoreError> {
        if self.verify_oci_blobs(id)? {
            return Ok(());
        }
        let mut file = self.open_blob(id)?;
        let mut hasher = Sha512::new();
        io::copy(&mut file, &mut hasher).map_err(|source| StoreError::ReadBlob {
            id: id.to_string(),
            path: self.blob_path(id),
            source,
        })?;
        let actual = format!("{ID_PREFIX}{}", hex::encode(hasher.finalize()));
        if actual != id {
            return Err(StoreError::Corrupt {
                id: id.to_string(),
                actual,
            });
        }
        Ok(())
    }

    /// Remove the images last used before `now - grace`; returns their IDs. Also
    /// deletes blobs that have no index row (left by a crash between storing a blob
    /// and recording it).
    pub fn gc(&self, grace: Duration, now: SystemTime) -> Result<Vec<String>, StoreError> {
        let cutoff = db::to_nanos(now.checked_sub(grace).unwrap_or(SystemTime::UNIX_EPOCH));
        let candidates: Vec<String> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare("SELECT id FROM images WHERE last_used < ?1 ORDER BY last_used")
                .map_err(self.db_err("find unused images"))?;
            let ids = stmt
                .query_map(params![cutoff], |r| r.get(0))
                .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
                .map_err(self.db_err("find unused images"))?;
            ids
        };
        let mut removed = Vec::new();
        for id in candidates {
            if validate_id(&id).is_err() {
                tracing::warn!(image = %id, "skipping an index row with a malformed ID");
                continue;
            }
            let guard = self.lock_image(&id)?;
            // Re-check under the lock: it may have been used or removed meanwhile.
            if self.delete_rows(&id, Some(cutoff))? {
                self.remove_files(&id)?;
                removed.push(id.clone());
                tracing::debug!(image = %id, "garbage-collected image");
            }
            self.drop_lock(guard, &id);
        }
        self.remove_orphan_blobs()?;
        let freed = self.sweep_oci_blobs()?;
        if freed > 0 {
            tracing::debug!(freed, "freed unused OCI blobs");
        }
        Ok(removed)
    }

    /// Delete blobs that have no index row; returns their IDs.
    fn remove_orphan_blobs(&self) -> Result<Vec<String>, StoreError> {
        let base = self.root.join("blob").join("sha512");
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Remove { path, source }
        };
        let mut removed = Vec::new();
        for shard in fs::read_dir(&base).map_err(read_err(&base))? {
            let shard = shard.map_err(read_err(&base))?.path();
            if !shard.is_dir() {
                continue;
            }
            for blob in fs::read_dir(&shard).map_err(read_err(&shard))? {
                let blob = blob.map_err(read_err(&shard))?;
                let id = blob.file_name().to_string_lossy().into_owned();
                if validate_id(&id).is_err() || self.blob_path(&id) != blob.path() {
                    continue;
                }
                if self.get(&id)?.is_some() {
                    continue;
                }
                // An import holds the lock from before its rename until its row is
                // written: under the lock, "no row" means no import is in progress.
                let guard = self.lock_image(&id)?;
                if self.get(&id)?.is_none() {
                    self.remove_files(&id)?;
                    tracing::info!(image = %id, "removed a blob without an index row");
                    removed.push(id.clone());
                }
                self.drop_lock(guard, &id);
            }
        }
        Ok(removed)
    }
}

/// Read one image row; the outer `Result` is the database's, the inner one the
/// row's contents.
fn get_row(conn: &Connection, id: &str) -> rusqlite::Result<Option<Result<ImageInfo, StoreError>>> {
    conn.query_row(
        &format!("SELECT {} FROM images WHERE id = ?1", db::IMAGE_COLUMNS),
        params![id],
        row_to_info,
    )
    .optional()
}

fn query_rows(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<Result<ImageInfo, StoreError>>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params, row_to_info)?;
    rows.collect()
}

/// Build an [`ImageInfo`] from the columns in [`db::IMAGE_COLUMNS`]. Labels come
/// from the manifest, the single source of truth.
fn row_to_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<ImageInfo, StoreError>> {
    let id: String = r.get(0)?;
    let name: String = r.get(1)?;
    let size: i64 = r.get(2)?;
    let import_time: i64 = r.get(3)?;
    let last_used: i64 = r.get(4)?;
    let latest: bool = r.get(5)?;
    let manifest_json: Vec<u8> = r.get(6)?;
    Ok(match ImageManifest::from_slice(&manifest_json) {
        Err(source) => Err(StoreError::CorruptRow { id, source }),
        Ok(manifest) => Ok(ImageInfo {
            labels: manifest
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect(),
            id,
            name,
            size: u64::try_from(size).unwrap_or(0),
            import_time: db::from_nanos(import_time),
            last_used: db::from_nanos(last_used),
            latest,
            manifest,
            manifest_json,
        }),
    })
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
