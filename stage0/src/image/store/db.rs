//! The SQLite index of the store (`cas/db/index.sqlite3`): schema and migrations.
//!
//! The schema version lives in `PRAGMA user_version`. [`MIGRATIONS`]`[n]` takes a
//! database from version `n` to `n + 1`; they run in one `BEGIN IMMEDIATE`
//! transaction, so concurrent openers wait for each other and a crash mid-way leaves
//! the old version. A database newer than this binary knows is refused, not touched.
//!
//! Timestamps are unix nanoseconds (`INTEGER`), sizes bytes, `max_age_secs` seconds.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// The schema version this code reads and writes.
pub(super) const SCHEMA_VERSION: i64 = 2;

/// How long a writer waits for another process's write transaction.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the initial schema.
    "CREATE TABLE images (
        id          TEXT PRIMARY KEY NOT NULL,
        name        TEXT NOT NULL,
        labels      TEXT NOT NULL,
        size        INTEGER NOT NULL,
        import_time INTEGER NOT NULL,
        last_used   INTEGER NOT NULL,
        latest      INTEGER NOT NULL,
        manifest    BLOB NOT NULL
    );
    CREATE INDEX images_by_name ON images(name);
    CREATE TABLE remote (
        url           TEXT PRIMARY KEY NOT NULL,
        image_id      TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        etag          TEXT,
        max_age_secs  INTEGER,
        download_time INTEGER NOT NULL
    );
    CREATE INDEX remote_by_image ON remote(image_id);",
    // 1 -> 2: OCI content (see store/oci.rs). `oci_blobs` lists the files under
    // blob/sha256; `oci_refs` says which image uses which blob (its row count per
    // digest is the blob's reference count); `oci_images` keeps where an image came
    // from and the digests that identify it.
    "CREATE TABLE oci_blobs (
        digest      TEXT PRIMARY KEY NOT NULL,
        size        INTEGER NOT NULL,
        stored_time INTEGER NOT NULL
    );
    CREATE TABLE oci_images (
        image_id        TEXT PRIMARY KEY NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        source          TEXT NOT NULL,
        location        TEXT NOT NULL,
        repository      TEXT NOT NULL,
        tag             TEXT,
        manifest_digest TEXT,
        config_digest   TEXT NOT NULL
    );
    CREATE INDEX oci_images_by_ref ON oci_images(source, location, repository, tag);
    CREATE INDEX oci_images_by_manifest ON oci_images(manifest_digest);
    CREATE TABLE oci_refs (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        role     TEXT NOT NULL,
        position INTEGER NOT NULL,
        digest   TEXT NOT NULL REFERENCES oci_blobs(digest),
        PRIMARY KEY (image_id, role, position)
    );
    CREATE INDEX oci_refs_by_digest ON oci_refs(digest);",
];

/// The columns of `images` in the order [`super::row_to_info`] reads them.
pub(super) const IMAGE_COLUMNS: &str = "id, name, size, import_time, last_used, latest, manifest";

/// Open (creating if needed) and migrate the index.
pub(super) fn open(path: &Path) -> Result<Connection, StoreError> {
    let db_err = |op: &'static str| {
        move |source| StoreError::Db {
            path: path.to_path_buf(),
            op,
            source,
        }
    };
    let mut conn = Connection::open(path).map_err(db_err("open the database"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(db_err("set the busy timeout"))?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
        .map_err(db_err("switch to WAL mode"))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(db_err("enable foreign keys"))?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Bring the schema to [`SCHEMA_VERSION`].
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let db_err = |op: &'static str| {
        move |source| StoreError::Db {
            path: path.to_path_buf(),
            op,
            source,
        }
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err("begin the schema migration"))?;
    let found: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err("read the schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tracing::info!(db = %path.display(), from, to = from + 1, "migrating the image index");
        tx.execute_batch(sql)
            .map_err(db_err("migrate the schema"))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(db_err("write the schema version"))?;
    tx.commit().map_err(db_err("commit the schema migration"))
}

/// Unix nanoseconds, clamped to what an `i64` holds (times before 1970 become 0).
pub(super) fn to_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

pub(super) fn from_nanos(n: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite3");
        let conn = open(&path).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        // Reopening is a no-op on an up-to-date schema.
        let conn = open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let err = open(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaTooNew { found, .. } if found == SCHEMA_VERSION + 1),
            "{err}"
        );
        assert!(err.to_string().contains("newer"), "{err}");
    }

    #[test]
    fn nanos_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(from_nanos(to_nanos(t)), t);
        assert_eq!(to_nanos(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
