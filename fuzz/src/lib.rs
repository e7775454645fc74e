//! Helpers shared by the fuzz targets.

use std::path::{Path, PathBuf};

use base64::Engine;

/// A directory for a target's scratch files, on tmpfs when there is one (extraction
/// and key files are rewritten on every run; a disk would slow the fuzzer down).
pub fn scratch_dir(target: &str) -> tempfile::TempDir {
    let base = Path::new("/dev/shm");
    let prefix = format!("rkt-fuzz-{target}-");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    if base.is_dir() {
        if let Ok(dir) = builder.tempdir_in(base) {
            return dir;
        }
    }
    builder.tempdir().expect("create a scratch directory")
}

/// A rendered rootfs with a few programs where images have them (`/bin/sh`,
/// `/usr/sbin/httpd`, ...) and an `/etc/passwd`, for building apps that run them.
pub fn app_rootfs(target: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch_dir(target);
    let programs = [
        "bin/sh",
        "bin/true",
        "bin/cat",
        "bin/echo",
        "bin/busybox",
        "bin/httpd",
        "usr/bin/env",
        "usr/sbin/httpd",
    ];
    for prog in programs {
        let path = dir.path().join(prog);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create a directory");
        std::fs::write(&path, b"#!/bin/sh\n").expect("write a program");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("make it executable");
    }
    std::fs::create_dir_all(dir.path().join("etc")).expect("create etc");
    std::fs::write(
        dir.path().join("etc/passwd"),
        b"root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000::/srv:/bin/sh\n",
    )
    .expect("write passwd");
    std::fs::write(dir.path().join("etc/group"), b"root:x:0:\nweb:x:1000:\n").expect("write group");
    dir
}

/// ASCII-armor `bytes` as an OpenPGP block of `kind` (`SIGNATURE`, `PUBLIC KEY BLOCK`),
/// without a CRC line (it is optional), 64 columns a line.
pub fn armor(kind: &str, bytes: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = format!("-----BEGIN PGP {kind}-----\n\n").into_bytes();
    for line in b64.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(format!("-----END PGP {kind}-----\n").as_bytes());
    out
}

/// A path under the fuzz package (fixtures are read at run time by path so that a
/// regenerated fixture needs no rebuild).
pub fn package_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Every entry name directly in `dir`, sorted.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Whether two JSON values are equal, numbers that are not integers compared to a few
/// units in the last place: serde_json (without its `float_roundtrip` feature) may
/// read a decimal back one ulp off what it wrote, which is no bug of ours.
pub fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => {
                    x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
                }
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Assert that `a` and `b` serialise to [`json_eq`] JSON.
pub fn assert_same_json<T: serde::Serialize + std::fmt::Debug>(a: &T, b: &T, what: &str) {
    let (x, y) = (
        serde_json::to_value(a).expect("serialises"),
        serde_json::to_value(b).expect("serialises"),
    );
    assert!(json_eq(&x, &y), "{what} round trip:\n{a:?}\n{b:?}");
}
