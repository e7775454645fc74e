//! Image archives: decompression (plain, gzip, bzip2, xz, zstd), the ACI check an
//! import makes (`store::check_aci`) and extraction into a root that already holds a
//! small tree. An archive that passes the check is rendered as an ACI layer (its
//! `rootfs/`, then the manifest's `pathWhitelist`); any other is extracted whole with
//! OCI whiteouts, as a Docker/OCI layer would be.
//!
//! After every run the target asserts that nothing outside the root changed: the
//! scratch directory holds only what it held, and the file `outside/sentinel`, reached
//! from the root by the symlinks `escape` (relative) and `abs` (absolute), kept its
//! content, mode, owner and link count.
#![no_main]

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::PathBuf;
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use manifests::appc::ImageManifest;
use stage0::image::archive;
use stage0::image::extract::{self, ExtractError, UnpackOptions};
use stage0::image::store;
use stage0::image::treestore::{self, Layer};

/// Decompressed archives larger than this are skipped (a few bytes of xz can claim
/// gigabytes; that costs time, not coverage).
const MAX_PLAIN: u64 = 4 << 20;
const SENTINEL: &[u8] = b"outside the extraction root\n";

struct Scratch {
    _dir: tempfile::TempDir,
    base: PathBuf,
    input: PathBuf,
    root: PathBuf,
    outside: PathBuf,
    sentinel: PathBuf,
    sentinel_meta: (u32, u32, u32, u64),
}

impl Scratch {
    fn new() -> Scratch {
        let dir = rkt_fuzz::scratch_dir("aci_extract");
        let base = dir.path().to_path_buf();
        let outside = base.join("outside");
        fs::create_dir(&outside).unwrap();
        let sentinel = outside.join("sentinel");
        fs::write(&sentinel, SENTINEL).unwrap();
        let sentinel_meta = meta(&sentinel);
        Scratch {
            input: base.join("input.tar"),
            root: base.join("root"),
            _dir: dir,
            base,
            outside,
            sentinel,
            sentinel_meta,
        }
    }

    /// A fresh root holding a lower layer's worth of files and two links out of it.
    fn reset_root(&self) {
        if self.root.symlink_metadata().is_ok() {
            fs::remove_dir_all(&self.root).expect("remove the last run's root");
        }
        let r = &self.root;
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::create_dir_all(r.join("bin")).unwrap();
        fs::create_dir_all(r.join("dir/sub")).unwrap();
        fs::write(r.join("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n").unwrap();
        fs::write(r.join("bin/busybox"), b"\x7fELF").unwrap();
        fs::write(r.join("dir/sub/file"), b"lower").unwrap();
        symlink("busybox", r.join("bin/sh")).unwrap();
        symlink("../outside", r.join("escape")).unwrap();
        symlink(&self.outside, r.join("abs")).unwrap();
    }

    fn assert_contained(&self) {
        assert_eq!(
            rkt_fuzz::list_dir(&self.base),
            ["input.tar", "outside", "root"],
            "something was created next to the extraction root"
        );
        assert_eq!(
            rkt_fuzz::list_dir(&self.outside),
            ["sentinel"],
            "something was created outside the extraction root"
        );
        assert_eq!(
            fs::read(&self.sentinel).unwrap(),
            SENTINEL,
            "a file outside the root was written"
        );
        assert_eq!(
            meta(&self.sentinel),
            self.sentinel_meta,
            "a file outside the root changed mode, owner or link count"
        );
        let root = fs::symlink_metadata(&self.root).expect("the root exists");
        assert!(root.is_dir(), "the root was replaced by a non-directory");
    }
}

fn meta(path: &std::path::Path) -> (u32, u32, u32, u64) {
    let m = fs::symlink_metadata(path).unwrap();
    (m.mode(), m.uid(), m.gid(), m.nlink())
}

static SCRATCH: Mutex<Option<Scratch>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let Ok((_, reader)) = archive::decompress(data) else {
        return;
    };
    let mut plain = Vec::new();
    if reader.take(MAX_PLAIN + 1).read_to_end(&mut plain).is_err() || plain.len() as u64 > MAX_PLAIN
    {
        return;
    }

    let mut guard = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
    let s = guard.get_or_insert_with(Scratch::new);
    s.reset_root();
    File::create(&s.input)
        .and_then(|mut f| f.write_all(&plain))
        .expect("write the input archive");
    let checked = store::check_aci(&File::open(&s.input).unwrap());
    match checked {
        Ok((bytes, manifest)) => {
            assert_eq!(
                ImageManifest::from_slice(&bytes).ok().as_ref(),
                Some(&manifest),
                "check_aci returned a manifest its bytes do not parse to"
            );
            // What the import check lets into the store must not be refused for
            // escaping when rendered on its own: the two enforce the same rules.
            let fresh = s.base.join("fresh");
            let result = extract::unpack(&plain[..], &fresh, &UnpackOptions::aci_rootfs());
            fs::remove_dir_all(&fresh).expect("remove the fresh root");
            if let Err(
                e @ (ExtractError::PathEscapes { .. }
                | ExtractError::WriteThroughSymlink { .. }
                | ExtractError::HardlinkOutside { .. }),
            ) = result
            {
                panic!("check_aci accepted an archive that extraction refuses: {e}");
            }
            let _ = treestore::render_layers_into(
                &s.root,
                &[Layer::aci(&s.input)],
                &manifest.path_whitelist,
            );
        }
        Err(_) => {
            let opts = UnpackOptions {
                whiteouts: true,
                ..UnpackOptions::default()
            };
            let _ = extract::unpack(&plain[..], &s.root, &opts);
        }
    }
    s.assert_contained();
});
