//! Store tests: real files and a real SQLite index in temp dirs, real compressors,
//! and child processes (this test binary, re-executed) for cross-process cases.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime};

use e2e::aci::{self, AciBuilder};

use super::*;

/// Env var telling [`child_import_stdin`] which store to import into.
const CHILD_ENV: &str = "RKT_STORE_TEST_CHILD_CAS";

fn opts() -> ImportOptions {
    ImportOptions::default()
}

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("cas")).unwrap();
    (dir, store)
}

fn simple(name: &str) -> AciBuilder {
    AciBuilder::new(name)
        .label("version", "1.0")
        .label("os", "linux")
        .exec(&["/bin/true"])
        .file("bin/true", b"#!/bin/sh\n", 0o755)
        .symlink("bin/false", "true")
}

/// An image with `len` bytes of incompressible-ish content.
fn big(name: &str, len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    AciBuilder::new(name)
        .file("data.bin", &data, 0o644)
        .build_tar()
}

fn blobs(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for shard in fs::read_dir(store.root().join("blob/sha512")).unwrap() {
        for blob in fs::read_dir(shard.unwrap().path()).unwrap() {
            out.push(blob.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

fn tmp_files(store: &Store) -> Vec<String> {
    fs::read_dir(store.tmp_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Every row has its blob, and (optionally) the store holds exactly `ids`.
fn assert_consistent(store: &Store, ids: &[&str]) {
    let rows: Vec<String> = store.list().unwrap().into_iter().map(|i| i.id).collect();
    for id in &rows {
        assert!(store.blob_path(id).is_file(), "row {id} has no blob");
        store.verify_blob(id).unwrap();
    }
    let mut want: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    want.sort();
    let mut got = rows.clone();
    got.sort();
    assert_eq!(got, want, "rows");
    assert_eq!(blobs(store), want, "blobs");
    assert_eq!(tmp_files(store), Vec::<String>::new(), "temp files");
    let locks = fs::read_dir(store.root().join("locks")).unwrap().count();
    assert_eq!(locks, 0, "lock files left behind");
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn open_creates_the_layout() {
    let (_dir, store) = new_store();
    for sub in ["blob/sha512", "db", "tree", "tmp", "locks"] {
        assert!(store.root().join(sub).is_dir(), "{sub}");
    }
    assert!(store.root().join("db/index.sqlite3").is_file());
    assert_eq!(store.tree_dir(), store.root().join("tree"));
    assert_eq!(store.tmp_dir(), store.root().join("tmp"));
    // Reopening an existing store works and sees the same data.
    let tar = simple("example.com/a").build_tar();
    let id = store.import(&tar[..], &opts()).unwrap().id;
    let again = Store::open(store.root()).unwrap();
    assert!(again.get(&id).unwrap().is_some());
}

#[test]
fn every_compression_gives_the_same_image() {
    let (_dir, store) = new_store();
    let tar = simple("example.com/hello").build_tar();
    let want = aci::image_id(&tar);
    let variants = [
        ("plain", tar.clone()),
        ("gzip", aci::gzip(&tar)),
        ("bzip2", aci::bzip2(&tar)),
        ("xz", aci::xz(&tar)),
        ("zstd", aci::zstd(&tar)),
    ];
    for (what, bytes) in &variants {
        let info = store.import(&bytes[..], &opts()).unwrap();
        assert_eq!(info.id, want, "{what}");
        assert_eq!(info.size, tar.len() as u64, "{what}");
    }
    assert_consistent(&store, &[&want]);
    assert_eq!(fs::read(store.blob_path(&want)).unwrap(), tar);
}

#[test]
fn id_is_the_sha512_of_the_uncompressed_tar() {
    let (dir, store) = new_store();
    let tar = simple("example.com/hello").build_tar();
    let file = dir.path().join("hello.aci");
    fs::write(&file, aci::gzip(&tar)).unwrap();
    let info = store.import_file(&file, &opts()).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("gzip -dc \"$1\" | sha512sum")
        .arg("sh")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let hex = String::from_utf8(out.stdout).unwrap();
    let hex = hex.split_whitespace().next().unwrap();
    assert_eq!(info.id, format!("sha512-{hex}"));
    assert_eq!(
        store.blob_path(&info.id),
        store
            .root()
            .join("blob/sha512")
            .join(&hex[..2])
            .join(&info.id)
    );
    assert_eq!(short_id(&info.id), format!("sha512-{}", &hex[..32]));
}

#[test]
fn import_records_metadata() {
    let (_dir, store) = new_store();
    let b = simple("example.com/meta").annotation("authors", "someone");
    let tar = b.build_tar();
    let before = SystemTime::now();
    let info = store.import(&tar[..], &opts()).unwrap();
    assert_eq!(info.name, "example.com/meta");
    assert_eq!(
        info.labels,
        vec![
            ("version".to_string(), "1.0".to_string()),
            ("os".to_string(), "linux".to_string())
        ]
    );
    assert_eq!(info.manifest_json, b.manifest_json());
    assert_eq!(info.manifest.app.as_ref().unwrap().exec, ["/bin/true"]);
    assert!(!info.latest);
    assert!(info.import_time >= before && info.last_used == info.import_time);
    let got = store.get(&info.id).unwrap().unwrap();
    assert_eq!(got.manifest_json, info.manifest_json);
    assert_eq!(got.import_time, info.import_time);

    // A re-import marks it latest, and a later one without the flag keeps it.
    let latest = ImportOptions { latest: true };
    assert!(store.import(&tar[..], &latest).unwrap().latest);
    let again = store.import(&tar[..], &opts()).unwrap();
    assert!(again.latest);
    assert!(again.import_time >= info.import_time);
    assert_consistent(&store, &[&info.id]);

    assert!(store
        .get(&format!("sha512-{}", "0".repeat(128)))
        .unwrap()
        .is_none());
    assert!(matches!(
        store.get("sha512-abc"),
        Err(StoreError::InvalidId { .. })
    ));
}

#[test]
fn accepts_dot_slash_paths_and_a_root_entry() {
    let (_dir, store) = new_store();
    let manifest = simple("example.com/dot").manifest_json();
    let mut b = tar::Builder::new(Vec::new());
    append_dir(&mut b, "./");
    append_file(&mut b, "./manifest", &manifest);
    append_dir(&mut b, "./rootfs/");
    append_file(&mut b, "./rootfs/etc/hostname", b"x\n");
    let tar = b.into_inner().unwrap();
    let info = store.import(&tar[..], &opts()).unwrap();
    assert_eq!(info.name, "example.com/dot");
    assert_eq!(info.manifest_json, manifest);
}

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h
}

fn append_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = header(tar::EntryType::Regular, data.len() as u64);
    b.append_data(&mut h, path, data).unwrap();
}

fn append_dir(b: &mut tar::Builder<Vec<u8>>, path: &str) {
    let mut h = header(tar::EntryType::Directory, 0);
    b.append_data(&mut h, path, std::io::empty()).unwrap();
}

fn raw_tar(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    f(&mut b);
    b.into_inner().unwrap()
}

#[test]
fn invalid_acis_are_rejected_and_nothing_is_stored() {
    let (_dir, store) = new_store();
    let good = simple("example.com/ok").manifest_json();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "no manifest",
            raw_tar(|b| append_dir(b, "rootfs/")),
            "missing manifest",
        ),
        (
            "no rootfs",
            raw_tar(|b| append_file(b, "manifest", &good)),
            "missing rootfs",
        ),
        (
            "extra entry",
            raw_tar(|b| {
                append_file(b, "manifest", &good);
                append_dir(b, "rootfs/");
                append_file(b, "foo", b"bar");
            }),
            "unexpected top-level entry foo",
        ),
        (
            "absolute entry",
            raw_tar(|b| {
                append_file(b, "manifest", &good);
                append_dir(b, "rootfs/");
                let mut h = header(tar::EntryType::Regular, 0);
                h.as_old_mut().name[..9].copy_from_slice(b"/etc/pwnd");
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }),
            "unexpected top-level entry /etc/pwnd",
        ),
        (
            "duplicate manifest",
            raw_tar(|b| {
                append_file(b, "manifest", &good);
                append_dir(b, "rootfs/");
                append_file(b, "./manifest", &good);
            }),
            "duplicate manifest",
        ),
        (
            "manifest is a directory",
            raw_tar(|b| {
                append_dir(b, "manifest/");
                append_dir(b, "rootfs/");
            }),
            "manifest is a directory",
        ),
        (
            "manifest is a symlink",
            raw_tar(|b| {
                let mut h = header(tar::EntryType::Symlink, 0);
                b.append_link(&mut h, "manifest", "/etc/passwd").unwrap();
                append_dir(b, "rootfs/");
            }),
            "manifest is a symbolic link",
        ),
        (
            "rootfs is a file",
            raw_tar(|b| {
                append_file(b, "manifest", &good);
                append_file(b, "rootfs", b"");
            }),
            "rootfs is a regular file",
        ),
        (
            "manifest is not JSON",
            AciBuilder::new("example.com/x")
                .manifest_bytes(b"{not json")
                .build_tar(),
            "invalid manifest",
        ),
        (
            "manifest of the wrong kind",
            AciBuilder::new("example.com/x")
                .manifest_bytes(br#"{"acKind":"PodManifest","acVersion":"0.8.11","name":"x"}"#)
                .build_tar(),
            "acKind",
        ),
        (
            "not a tar",
            b"this is not a tar archive, just some text".repeat(20),
            "not a readable tar archive",
        ),
        ("empty input", Vec::new(), "the archive is empty"),
    ];
    for (what, bytes, want) in cases {
        for (how, input) in [("plain", bytes.clone()), ("gzip", aci::gzip(&bytes))] {
            let err = store.import(&input[..], &opts()).unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidAci { .. }),
                "{what} ({how}): {err:?}"
            );
            let msg = manifests::error::chain(&err);
            assert!(msg.contains(want), "{what} ({how}): {msg}");
            assert!(msg.contains("not a valid ACI"), "{what}: {msg}");
            assert_consistent(&store, &[]);
        }
    }
}

#[test]
fn truncated_or_corrupt_archives_leave_the_store_unchanged() {
    let (dir, store) = new_store();
    let first = store
        .import(&simple("example.com/first").build_tar()[..], &opts())
        .unwrap();
    let tar = big("example.com/second", 300_000);
    let gz = aci::gzip(&tar);
    let mut flipped = gz.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    let cases = [
        ("truncated gzip", gz[..gz.len() / 2].to_vec()),
        ("gzip without its trailer", gz[..gz.len() - 4].to_vec()),
        ("corrupt gzip", flipped),
        ("truncated xz", {
            let xz = aci::xz(&tar);
            xz[..xz.len() - 10].to_vec()
        }),
        ("truncated zstd", {
            let z = aci::zstd(&tar);
            z[..z.len() - 10].to_vec()
        }),
        ("truncated bzip2", {
            let z = aci::bzip2(&tar);
            z[..z.len() / 2].to_vec()
        }),
    ];
    for (what, bytes) in cases {
        let err = store.import(&bytes[..], &opts()).unwrap_err();
        assert!(
            matches!(err, StoreError::ReadArchive { .. }),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains("truncated or corrupt"), "{err}");
        assert_consistent(&store, &[&first.id]);
    }
    // The file variant names the file.
    let path = dir.path().join("broken.aci");
    fs::write(&path, &gz[..gz.len() / 2]).unwrap();
    let err = store.import_file(&path, &opts()).unwrap_err();
    assert!(err.to_string().contains("broken.aci"), "{err}");
    let err = store
        .import_file(&dir.path().join("missing.aci"), &opts())
        .unwrap_err();
    assert!(matches!(err, StoreError::OpenInput { .. }), "{err:?}");
    assert_consistent(&store, &[&first.id]);
}

/// Two tiny images whose IDs share the first [`MIN_PREFIX_HEX`] hex digits.
fn colliding_pair() -> (Vec<u8>, Vec<u8>) {
    let mut seen: HashMap<String, Vec<u8>> = HashMap::new();
    for i in 0..100_000u32 {
        let tar = AciBuilder::new("example.com/amb")
            .label("n", &i.to_string())
            .build_tar();
        let id = aci::image_id(&tar);
        let key = id[ID_PREFIX.len()..ID_PREFIX.len() + MIN_PREFIX_HEX].to_string();
        if let Some(other) = seen.insert(key, tar.clone()) {
            return (other, tar);
        }
    }
    panic!("no two images shared a 4-digit prefix");
}

#[test]
fn resolve_by_prefix() {
    let (_dir, store) = new_store();
    let (a, b) = colliding_pair();
    let a = store.import(&a[..], &opts()).unwrap();
    let b = store.import(&b[..], &opts()).unwrap();
    let common =
        a.id.bytes()
            .zip(b.id.bytes())
            .take_while(|(x, y)| x == y)
            .count();
    assert!(common >= ID_PREFIX.len() + MIN_PREFIX_HEX);

    let shared = &a.id[..ID_PREFIX.len() + MIN_PREFIX_HEX];
    match store.resolve(shared) {
        Err(StoreError::Ambiguous { prefix, candidates }) => {
            assert_eq!(prefix, shared);
            let mut ids: Vec<&str> = candidates.iter().map(|(id, _)| id.as_str()).collect();
            ids.sort();
            let mut want = vec![a.id.as_str(), b.id.as_str()];
            want.sort();
            assert_eq!(ids, want);
            let msg = StoreError::Ambiguous {
                prefix,
                candidates: candidates.clone(),
            }
            .to_string();
            assert!(msg.contains(&short_id(&a.id)), "{msg}");
            assert!(msg.contains(&short_id(&b.id)), "{msg}");
            assert!(msg.contains("example.com/amb"), "{msg}");
        }
        other => panic!("expected ambiguity, got {other:?}"),
    }
    // One more digit than they share picks each.
    assert_eq!(store.resolve(&a.id[..common + 1]).unwrap().id, a.id);
    assert_eq!(store.resolve(&b.id[..common + 1]).unwrap().id, b.id);
    assert_eq!(store.resolve(&a.id).unwrap().id, a.id);
    assert_eq!(store.resolve(&short_id(&b.id)).unwrap().id, b.id);
    assert_eq!(
        store
            .resolve(
                &a.id[..common + 1]
                    .to_ascii_uppercase()
                    .replace("SHA512-", "sha512-")
            )
            .unwrap()
            .id,
        a.id
    );

    let err = store.resolve("sha512-abc").unwrap_err();
    assert!(
        matches!(err, StoreError::PrefixTooShort { min: 4, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("at least 4 hex digits"), "{err}");

    // A prefix nobody has: flip the first digit after the shared ones' first.
    let first = a.id.as_bytes()[ID_PREFIX.len()];
    let other = if first == b'0' { '1' } else { '0' };
    let missing = format!(
        "sha512-{other}{}",
        &a.id[ID_PREFIX.len() + 1..ID_PREFIX.len() + 6]
    );
    let err = store.resolve(&missing).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains(&missing), "{err}");

    for bad in ["abcdef12", "sha512-xyz12345", "sha256-abcd1234"] {
        let err = store.resolve(bad).unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidId { .. }),
            "{bad}: {err:?}"
        );
    }
}

#[test]
fn find_by_name_prefers_latest_then_newest() {
    let (_dir, store) = new_store();
    let name = "example.com/app";
    let labels = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let import = |b: AciBuilder, latest: bool| {
        store
            .import(&b.build_tar()[..], &ImportOptions { latest })
            .unwrap()
    };
    let v1 = import(
        AciBuilder::new(name)
            .label("version", "1")
            .label("os", "linux"),
        false,
    );
    let v2 = import(AciBuilder::new(name).label("version", "2"), false);
    // No `latest` mark yet: the newest import wins.
    assert_eq!(store.find_by_name(name, &[]).unwrap().unwrap().id, v2.id);
    let marked = import(AciBuilder::new(name).label("version", "3"), true);
    let v4 = import(AciBuilder::new(name).label("version", "4"), false);
    // `latest` beats a newer unmarked import when no version is asked for.
    assert_eq!(
        store.find_by_name(name, &[]).unwrap().unwrap().id,
        marked.id
    );
    // An asked-for version is matched exactly.
    for (v, want) in [("1", &v1), ("2", &v2), ("3", &marked), ("4", &v4)] {
        let got = store
            .find_by_name(name, &labels(&[("version", v)]))
            .unwrap()
            .unwrap();
        assert_eq!(got.id, want.id, "version {v}");
    }
    // Every label must match; a missing label is no match.
    assert_eq!(
        store
            .find_by_name(name, &labels(&[("os", "linux")]))
            .unwrap()
            .unwrap()
            .id,
        v1.id
    );
    assert!(store
        .find_by_name(name, &labels(&[("os", "freebsd")]))
        .unwrap()
        .is_none());
    assert!(store
        .find_by_name(name, &labels(&[("version", "1"), ("arch", "amd64")]))
        .unwrap()
        .is_none());
    assert!(store
        .find_by_name("example.com/other", &[])
        .unwrap()
        .is_none());
    assert_eq!(store.list().unwrap().len(), 4);
}

#[test]
fn remote_cache_round_trip() {
    let (_dir, store) = new_store();
    let a = store
        .import(&simple("example.com/a").build_tar()[..], &opts())
        .unwrap();
    let b = store
        .import(&simple("example.com/b").build_tar()[..], &opts())
        .unwrap();
    let url = "https://example.com/a.aci";
    assert_eq!(store.remote(url).unwrap(), None);
    let entry = RemoteEntry {
        url: url.to_string(),
        image_id: a.id.clone(),
        etag: Some("\"v1\"".to_string()),
        max_age: Some(Duration::from_secs(600)),
        download_time: SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 42),
    };
    store.put_remote(&entry).unwrap();
    assert_eq!(store.remote(url).unwrap().as_ref(), Some(&entry));
    // Replacing the entry (the URL now serves another image, without caching hints).
    let newer = RemoteEntry {
        image_id: b.id.clone(),
        etag: None,
        max_age: None,
        download_time: SystemTime::now(),
        ..entry.clone()
    };
    store.put_remote(&newer).unwrap();
    assert_eq!(store.remote(url).unwrap().as_ref(), Some(&newer));
    // Visible from another process's connection.
    let other = Store::open(store.root()).unwrap();
    assert_eq!(other.remote(url).unwrap().as_ref(), Some(&newer));

    // Unknown images cannot be cached.
    let ghost = RemoteEntry {
        url: "https://example.com/ghost.aci".to_string(),
        image_id: format!("sha512-{}", "1".repeat(128)),
        ..entry.clone()
    };
    assert!(matches!(
        store.put_remote(&ghost),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.remote(&ghost.url).unwrap(), None);

    // Removing the image drops its cache entries.
    store.remove(&b.id).unwrap();
    assert_eq!(store.remote(url).unwrap(), None);
}

#[test]
fn gc_removes_images_unused_within_the_grace_period() {
    let (_dir, store) = new_store();
    let old = store
        .import(&simple("example.com/old").build_tar()[..], &opts())
        .unwrap();
    wait_until("the clock to move", || SystemTime::now() > old.last_used);
    let recent = store
        .import(&simple("example.com/recent").build_tar()[..], &opts())
        .unwrap();
    assert!(recent.last_used > old.last_used);
    let grace = Duration::from_secs(3600);

    // Nothing is old enough yet.
    assert!(store.gc(grace, recent.last_used).unwrap().is_empty());
    // A cutoff between the two removes only the older one.
    let removed = store.gc(grace, recent.last_used + grace).unwrap();
    assert_eq!(removed, vec![old.id.clone()]);
    assert_consistent(&store, &[&recent.id]);

    // Using an image protects it.
    let cutoff_now = SystemTime::now() + grace;
    wait_until("the clock to move", || SystemTime::now() < cutoff_now);
    store.touch(&recent.id).unwrap();
    let touched = store.get(&recent.id).unwrap().unwrap();
    assert!(touched.last_used > recent.last_used);
    assert!(store
        .gc(grace, recent.last_used + grace)
        .unwrap()
        .is_empty());
    assert!(matches!(
        store.touch(&old.id),
        Err(StoreError::NotFound { .. })
    ));

    // A blob without a row (a crash after storing it) is swept too.
    let orphan_tar = simple("example.com/orphan").build_tar();
    let orphan_id = aci::image_id(&orphan_tar);
    let orphan = store.blob_path(&orphan_id);
    fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    fs::write(&orphan, &orphan_tar).unwrap();
    assert!(store.gc(grace, SystemTime::now()).unwrap().is_empty());
    assert!(!orphan.exists());
    assert_consistent(&store, &[&recent.id]);
}

#[test]
fn remove_deletes_row_blob_remote_and_tree() {
    let (_dir, store) = new_store();
    let keep = store
        .import(&simple("example.com/keep").build_tar()[..], &opts())
        .unwrap();
    let gone = store
        .import(&simple("example.com/gone").build_tar()[..], &opts())
        .unwrap();
    let tree = store.tree_dir().join(&gone.id);
    fs::create_dir_all(tree.join("rootfs/etc")).unwrap();
    fs::write(tree.join("rootfs/etc/x"), b"x").unwrap();
    let keep_tree = store.tree_dir().join(&keep.id);
    fs::create_dir_all(&keep_tree).unwrap();
    store
        .put_remote(&RemoteEntry {
            url: "https://example.com/gone.aci".to_string(),
            image_id: gone.id.clone(),
            etag: None,
            max_age: None,
            download_time: SystemTime::now(),
        })
        .unwrap();

    store.remove(&gone.id).unwrap();
    assert!(store.get(&gone.id).unwrap().is_none());
    assert!(!tree.exists());
    assert!(keep_tree.exists());
    assert_eq!(store.remote("https://example.com/gone.aci").unwrap(), None);
    assert_consistent(&store, &[&keep.id]);

    let err = store.remove(&gone.id).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let err = store.remove("sha512-../../etc").unwrap_err();
    assert!(matches!(err, StoreError::InvalidId { .. }), "{err:?}");
    // The image can come back.
    let again = store
        .import(&simple("example.com/gone").build_tar()[..], &opts())
        .unwrap();
    assert_eq!(again.id, gone.id);
    assert_consistent(&store, &[&keep.id, &gone.id]);
}

#[test]
fn verify_blob_detects_a_flipped_byte() {
    let (_dir, store) = new_store();
    let info = store
        .import(&simple("example.com/v").build_tar()[..], &opts())
        .unwrap();
    store.verify_blob(&info.id).unwrap();
    let path = store.blob_path(&info.id);
    let mut bytes = fs::read(&path).unwrap();
    bytes[700] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    match store.verify_blob(&info.id) {
        Err(StoreError::Corrupt { id, actual }) => {
            assert_eq!(id, info.id);
            assert_eq!(actual, aci::image_id(&bytes));
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // A same-size corrupt blob is what it is; a re-import of a blob with the wrong
    // size replaces it.
    fs::write(&path, b"short").unwrap();
    let again = store
        .import(&simple("example.com/v").build_tar()[..], &opts())
        .unwrap();
    store.verify_blob(&again.id).unwrap();

    fs::remove_file(&path).unwrap();
    let err = store.verify_blob(&info.id).unwrap_err();
    assert!(matches!(err, StoreError::MissingBlob { .. }), "{err:?}");
    assert!(err.to_string().contains("rkt image rm"), "{err}");
    assert!(matches!(
        store.open_blob(&info.id),
        Err(StoreError::MissingBlob { .. })
    ));
}

#[test]
fn concurrent_imports_from_two_threads() {
    let (_dir, store) = new_store();
    let other = Store::open(store.root()).unwrap();
    let tar = big("example.com/race", 2_000_000);
    let gz = aci::gzip(&tar);
    let barrier = Barrier::new(4);
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = [&store, &store, &other, &other]
            .into_iter()
            .enumerate()
            .map(|(i, st)| {
                let (barrier, tar, gz) = (&barrier, &tar, &gz);
                s.spawn(move || {
                    barrier.wait();
                    let input: &[u8] = if i % 2 == 0 { tar } else { gz };
                    st.import(input, &opts()).unwrap().id
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let want = aci::image_id(&tar);
    assert!(ids.iter().all(|id| *id == want), "{ids:?}");
    assert_consistent(&store, &[&want]);
}

/// Not a test on its own: the body of the child processes that other tests start
/// (this binary, re-executed): import stdin into the store named by [`CHILD_ENV`].
#[test]
#[ignore = "run as a child process by other store tests"]
fn child_import_stdin() {
    let Some(cas) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = Store::open(Path::new(&cas)).unwrap();
    store.import(std::io::stdin(), &opts()).unwrap();
}

fn spawn_importer(cas: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "image::store::tests::child_import_stdin",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, cas)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child import failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn concurrent_imports_from_two_processes() {
    let (_dir, store) = new_store();
    let tar = big("example.com/procs", 3_000_000);
    let mut children = [spawn_importer(store.root()), spawn_importer(store.root())];
    // Feed both halfway before either can finish, so the imports overlap.
    let (first, second) = tar.split_at(tar.len() / 2);
    for part in [first, second] {
        for child in &mut children {
            child.stdin.as_mut().unwrap().write_all(part).unwrap();
        }
    }
    for mut child in children {
        drop(child.stdin.take());
        finish(child);
    }
    assert_consistent(&store, &[&aci::image_id(&tar)]);
}

#[test]
fn a_killed_import_leaves_the_store_consistent() {
    let (_dir, store) = new_store();
    let done = store
        .import(&simple("example.com/before").build_tar()[..], &opts())
        .unwrap();
    let tar = big("example.com/killed", 4_000_000);
    let mut child = spawn_importer(store.root());
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(&tar[..tar.len() / 2])
        .unwrap();
    // The child is now stuck mid-import, waiting for the rest of its input.
    let temp_with_data = || {
        fs::read_dir(store.tmp_dir()).unwrap().any(|e| {
            let e = e.unwrap();
            e.file_name().to_string_lossy().starts_with("import-")
                && e.metadata().map(|m| m.len() > 0).unwrap_or(false)
        })
    };
    wait_until("the child's temp file", temp_with_data);
    // A store opened while the import is alive must not touch its temp file.
    drop(Store::open(store.root()).unwrap());
    assert!(temp_with_data());

    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(
        temp_with_data(),
        "the dead child's temp file should still be there"
    );

    // Reopening cleans up after the dead import.
    let reopened = Store::open(store.root()).unwrap();
    assert_consistent(&reopened, &[&done.id]);
    // And the same image imports fine afterwards.
    let info = reopened.import(&tar[..], &opts()).unwrap();
    assert_consistent(&reopened, &[&done.id, &info.id]);
}

#[test]
fn cleanup_spares_locked_temp_files_and_foreign_files() {
    let (_dir, store) = new_store();
    let live = lock::LockedTemp::create(&store.tmp_dir()).unwrap();
    let download = store.tmp_dir().join("download-1234.part");
    fs::write(&download, b"partial").unwrap();
    let stale = store.tmp_dir().join("import-stale.tar");
    fs::write(&stale, b"left by a dead process").unwrap();
    drop(Store::open(store.root()).unwrap());
    assert!(live.path().exists());
    assert!(download.exists());
    assert!(!stale.exists());
    let path = live.path().to_path_buf();
    drop(live);
    assert!(!path.exists());
}

#[test]
fn stale_ids_and_bad_input_are_reported_clearly() {
    let (_dir, store) = new_store();
    let err = store.open_blob("sha512-1234").unwrap_err();
    assert!(err.to_string().contains("128 hex digits"), "{err}");
    let upper = format!("sha512-{}", "A".repeat(128));
    assert!(matches!(
        validate_id(&upper),
        Err(StoreError::InvalidId { .. })
    ));
    assert!(validate_id(&format!("sha512-{}", "a".repeat(128))).is_ok());
    assert_eq!(short_id("sha512-12"), "sha512-12");
}

/// Env var that lets [`child_disk_full`] run (in a private mount namespace).
const DISK_FULL_ENV: &str = "RKT_STORE_TEST_DISK_FULL";

/// Not a test on its own: run by [`a_full_disk_fails_the_import_cleanly`] inside
/// `unshare --mount`, so the small tmpfs it mounts is private to it.
#[test]
#[ignore = "run as a child process by other store tests"]
fn child_disk_full() {
    if std::env::var_os(DISK_FULL_ENV).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    rustix::mount::mount(
        "tmpfs",
        dir.path(),
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        Some(c"size=1m"),
    )
    .unwrap();
    let store = Store::open(&dir.path().join("cas")).unwrap();
    let small = store
        .import(&simple("example.com/small").build_tar()[..], &opts())
        .unwrap();
    let err = store
        .import(&big("example.com/huge", 3_000_000)[..], &opts())
        .unwrap_err();
    match &err {
        StoreError::WriteTemp { source, .. } => {
            assert_eq!(source.raw_os_error(), Some(28), "{err}") // ENOSPC
        }
        other => panic!("expected a write error, got {other:?}"),
    }
    assert_consistent(&store, &[&small.id]);
    // The space is back: further imports work.
    let other = store
        .import(&simple("example.com/other").build_tar()[..], &opts())
        .unwrap();
    assert_consistent(&store, &[&small.id, &other.id]);
    drop(store);
    rustix::mount::unmount(dir.path(), rustix::mount::UnmountFlags::DETACH).unwrap();
}

#[test]
fn a_full_disk_fails_the_import_cleanly() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED a_full_disk_fails_the_import_cleanly: mounting a tmpfs needs root");
        return;
    }
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "image::store::tests::child_disk_full",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DISK_FULL_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn archives_made_by_gnu_tar_import() {
    let (dir, store) = new_store();
    let src = dir.path().join("src");
    let long = format!("rootfs/{}/file", "d".repeat(120));
    fs::create_dir_all(src.join(&long).parent().unwrap()).unwrap();
    fs::write(src.join(&long), b"deep\n").unwrap();
    fs::write(
        src.join("manifest"),
        simple("example.com/gnutar").manifest_json(),
    )
    .unwrap();
    for (what, args) in [
        (
            "named entries, pax",
            &["--format=pax", "-cf", "-", "manifest", "rootfs"][..],
        ),
        ("dot root, gnu", &["--format=gnu", "-cf", "-", "."][..]),
    ] {
        let out = Command::new("tar")
            .arg("-C")
            .arg(&src)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{what}");
        let info = store.import(&aci::xz(&out.stdout)[..], &opts()).unwrap();
        assert_eq!(info.id, aci::image_id(&out.stdout), "{what}");
        assert_eq!(info.name, "example.com/gnutar", "{what}");
    }
}

#[test]
fn archives_that_escape_their_rootfs_are_refused_and_nothing_is_stored() {
    use aci::RawEntry::*;
    let cases: Vec<(&str, Vec<aci::RawEntry>, &str)> = vec![
        (
            "dot-dot",
            vec![File("rootfs/../evil", b"x")],
            "rootfs/../evil",
        ),
        (
            "nested dot-dot",
            vec![Dir("rootfs/a/"), File("rootfs/a/../../evil", b"x")],
            "rootfs/a/../../evil",
        ),
        ("absolute", vec![File("/etc/evil", b"x")], "/etc/evil"),
        (
            "symlink then write through it",
            vec![
                Symlink("rootfs/link", "/"),
                File("rootfs/link/etc/evil", b"x"),
            ],
            "rootfs/link",
        ),
        (
            "relative symlink then write through it",
            vec![Symlink("rootfs/up", "../.."), Dir("rootfs/up/x/")],
            "rootfs/up",
        ),
        (
            "hardlink out",
            vec![Hardlink("rootfs/passwd", "/etc/passwd")],
            "/etc/passwd",
        ),
        (
            "hardlink with dot-dot",
            vec![Hardlink("rootfs/x", "rootfs/../../outside")],
            "outside",
        ),
        (
            "hardlink to the manifest",
            vec![Hardlink("rootfs/m", "manifest")],
            "manifest",
        ),
        (
            "hardlink through a symlink",
            vec![
                Symlink("rootfs/l", "/etc"),
                Hardlink("rootfs/p", "rootfs/l/passwd"),
            ],
            "rootfs/l",
        ),
    ];
    for (what, entries, needle) in cases {
        let (_dir, store) = new_store();
        let tar = aci::raw_tar("example.com/evil", &entries, true);
        for data in [tar.clone(), aci::gzip(&tar)] {
            let err =
                manifests::error::chain(&store.import(data.as_slice(), &opts()).expect_err(what));
            assert!(err.contains(needle), "{what}: {err}");
            assert!(store.list().unwrap().is_empty(), "{what}: row stored");
            assert!(blobs(&store).is_empty(), "{what}: blob stored");
            assert!(tmp_files(&store).is_empty(), "{what}: temp left");
        }
    }
    // A symlink replaced by a directory of the same name is fine, as is a link
    // that merely points out (it is never followed when writing).
    let (_dir, store) = new_store();
    let ok = aci::raw_tar(
        "example.com/fine",
        &[
            Symlink("rootfs/bin/sh", "/bin/busybox"),
            Symlink("rootfs/d", "/"),
            Dir("rootfs/d/"),
            File("rootfs/d/f", b"x"),
            File("rootfs/target", b"t"),
            Hardlink("rootfs/hl", "rootfs/target"),
        ],
        true,
    );
    store.import(ok.as_slice(), &opts()).unwrap();
}
