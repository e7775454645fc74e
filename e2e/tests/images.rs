//! End-to-end: `rkt trust`, `rkt fetch` and `rkt image ...` on real files, real GnuPG
//! keys and signatures, and a real SQLite store.

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::gpg::GpgHome;
use e2e::rkt::{busybox_aci, sha512_file, Rkt};

const NAME: &str = "example.com/busybox";

/// The image ID of a gzip-compressed ACI, computed independently of rkt.
fn gunzipped_id(aci: &Path, scratch: &Path) -> String {
    let tar = scratch.join("plain.tar");
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(aci)
        .output()
        .expect("run gzip");
    assert!(out.status.success());
    fs::write(&tar, out.stdout).unwrap();
    sha512_file(&tar)
}

fn short(id: &str) -> String {
    id[.."sha512-".len() + 32].to_string()
}

/// A signed example image and the key that signed it.
struct Signed {
    aci: PathBuf,
    key: PathBuf,
    fpr: String,
}

fn signed_image(rkt: &Rkt, gpg: &GpgHome, name: &str) -> Signed {
    let scratch = rkt.scratch();
    let aci = busybox_aci(&scratch, name);
    let fpr = gpg.gen_key("rkt e2e <e2e@example.com>", "ed25519");
    let asc = gpg.sign_detached_armored(&fpr, &aci);
    fs::write(aci.with_extension("aci.asc"), asc).unwrap();
    let key = scratch.join(format!("{fpr}.pub"));
    fs::write(&key, gpg.export_armored(&fpr)).unwrap();
    Signed { aci, key, fpr }
}

fn assert_store_empty(rkt: &Rkt) {
    assert!(rkt.images().is_empty(), "images were stored");
    assert!(
        rkt.blob_files().is_empty(),
        "blobs were stored: {:?}",
        rkt.blob_files()
    );
    assert!(
        rkt.tmp_files().is_empty(),
        "temp files left: {:?}",
        rkt.tmp_files()
    );
}

#[test]
fn fetch_a_signed_local_image_and_manage_it() {
    let rkt = Rkt::new();
    let gpg = GpgHome::new();
    let img = signed_image(&rkt, &gpg, NAME);
    let scratch = rkt.scratch();

    let out = rkt.ok([
        "trust",
        "--prefix",
        NAME,
        "--skip-fingerprint-review",
        img.key.to_str().unwrap(),
    ]);
    assert!(out.is_empty(), "trust prints on stderr only: {out}");
    let stored_key = rkt
        .local_config()
        .join("trustedkeys/prefix.d")
        .join(NAME)
        .join(&img.fpr);
    assert!(stored_key.is_file(), "key not at {}", stored_key.display());

    let expected = gunzipped_id(&img.aci, &scratch);
    let id = rkt.ok(["fetch", img.aci.to_str().unwrap()]);
    assert_eq!(
        id.trim(),
        short(&expected),
        "fetch prints the short image ID"
    );
    let full = rkt.ok([
        "fetch",
        "--full",
        "--pull-policy=new",
        img.aci.to_str().unwrap(),
    ]);
    assert_eq!(full.trim(), expected);
    assert_eq!(
        rkt.blob_files().len(),
        1,
        "a second fetch stores nothing new"
    );

    let images = rkt.images();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["id"], expected.as_str());
    assert_eq!(images[0]["name"], NAME);

    let table = rkt.ok(["image", "list"]);
    assert!(table.starts_with("ID"), "legend first: {table}");
    assert!(table.contains(&short(&expected)) && table.contains(NAME));
    let bare = rkt.ok(["image", "list", "--no-legend", "--full"]);
    assert!(bare.starts_with(&expected), "{bare}");

    // By ID prefix and by name.
    let manifest = rkt.ok(["image", "cat-manifest", &expected[..16]]);
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(m["name"], NAME);
    let by_name = rkt.ok(["image", "cat-manifest", "--pretty-print=false", NAME]);
    assert_eq!(by_name.lines().count(), 1);

    // Export writes the uncompressed ACI: same hash as the ID.
    let exported = scratch.join("exported.aci");
    rkt.ok(["image", "export", NAME, exported.to_str().unwrap()]);
    assert_eq!(sha512_file(&exported), expected);
    rkt.run(["image", "export", NAME, exported.to_str().unwrap()])
        .fails_with(254, &["--overwrite"]);

    let extracted = scratch.join("extracted");
    rkt.ok(["image", "extract", NAME, extracted.to_str().unwrap()]);
    assert!(extracted.join("manifest").is_file());
    assert!(extracted.join("rootfs/bin/busybox").is_file());
    let rootfs_only = scratch.join("rootfs-only");
    rkt.ok([
        "image",
        "extract",
        "--rootfs-only",
        NAME,
        rootfs_only.to_str().unwrap(),
    ]);
    assert_eq!(
        fs::read_link(rootfs_only.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    let rendered = scratch.join("rendered");
    rkt.ok(["image", "render", NAME, rendered.to_str().unwrap()]);
    let meta = fs::metadata(rendered.join("rootfs/tmp")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o1777,
        "sticky /tmp kept"
    );
    rkt.run(["image", "render", NAME, rendered.to_str().unwrap()])
        .fails_with(254, &["not empty"]);

    let verify = rkt.ok(["image", "verify"]);
    assert!(verify.contains("ok"), "{verify}");

    rkt.ok(["image", "rm", &expected[..20]]);
    assert_store_empty(&rkt);
    rkt.run(["image", "rm", NAME]).fails_with(254, &[NAME]);
}

#[test]
fn bad_signatures_and_untrusted_keys_are_refused() {
    let rkt = Rkt::new();
    let gpg = GpgHome::new();
    let img = signed_image(&rkt, &gpg, NAME);
    let aci = img.aci.to_str().unwrap().to_string();
    let asc = img.aci.with_extension("aci.asc");

    // No key trusted at all.
    rkt.run(["fetch", &aci])
        .fails_with(254, &["rkt trust", NAME]);
    assert_store_empty(&rkt);

    // Trusted for another prefix only.
    rkt.ok([
        "trust",
        "--prefix",
        "example.org/other",
        "--skip-fingerprint-review",
        img.key.to_str().unwrap(),
    ]);
    rkt.run(["fetch", &aci]).fails_with(254, &[NAME]);
    assert_store_empty(&rkt);

    // Trusted for a parent prefix: accepted.
    rkt.ok([
        "trust",
        "--prefix",
        "example.com",
        "--skip-fingerprint-review",
        img.key.to_str().unwrap(),
    ]);

    // No signature file.
    let good_asc = fs::read(&asc).unwrap();
    fs::remove_file(&asc).unwrap();
    rkt.run(["fetch", &aci]).fails_with(254, &["signature"]);
    assert_store_empty(&rkt);

    // A signature over other data (the image was swapped after signing).
    let other = rkt.scratch().join("other.bin");
    fs::write(&other, b"not the image").unwrap();
    fs::write(&asc, gpg.sign_detached_armored(&img.fpr, &other)).unwrap();
    rkt.run(["fetch", &aci]).fails_with(254, &["signature"]);
    assert_store_empty(&rkt);

    // A damaged signature.
    let mut damaged = String::from_utf8(good_asc.clone()).unwrap();
    let pos = damaged.find("\n\n").map(|p| p + 10).unwrap_or(60);
    let flipped = if &damaged[pos..pos + 1] == "A" {
        "B"
    } else {
        "A"
    };
    damaged.replace_range(pos..pos + 1, flipped);
    fs::write(&asc, damaged).unwrap();
    let res = rkt.run(["fetch", &aci]);
    assert_eq!(res.code(), Some(254), "{}", res.stderr());
    assert_store_empty(&rkt);

    // Skipping verification is possible, and loud.
    fs::remove_file(&asc).unwrap();
    let res = rkt
        .run(["--insecure-options=image", "fetch", &aci])
        .success();
    assert!(
        res.stderr().contains("insecure-options=image"),
        "{}",
        res.stderr()
    );
    assert_eq!(rkt.images().len(), 1);

    // --signature names the file explicitly.
    let sig = rkt.scratch().join("explicit.asc");
    fs::write(&sig, &good_asc).unwrap();
    rkt.ok(["image", "rm", NAME]);
    rkt.ok(["fetch", "--signature", sig.to_str().unwrap(), &aci]);
    assert_eq!(rkt.images().len(), 1);
}

#[test]
fn root_keys_vendor_keys_and_masks() {
    let rkt = Rkt::new();
    let gpg = GpgHome::new();
    let img = signed_image(&rkt, &gpg, NAME);
    let aci = img.aci.to_str().unwrap().to_string();

    // A vendor (system config) key for the prefix is honoured...
    let vendor = rkt.system_config().join("trustedkeys/prefix.d").join(NAME);
    fs::create_dir_all(&vendor).unwrap();
    fs::copy(&img.key, vendor.join(&img.fpr)).unwrap();
    rkt.ok(["fetch", &aci]);
    rkt.ok(["image", "rm", NAME]);

    // ...until an empty local file of the same name masks it.
    let mask = rkt.local_config().join("trustedkeys/prefix.d").join(NAME);
    fs::create_dir_all(&mask).unwrap();
    fs::write(mask.join(&img.fpr), b"").unwrap();
    rkt.run(["fetch", &aci]).fails_with(254, &[NAME]);
    assert_store_empty(&rkt);

    // A root key verifies any name.
    rkt.ok([
        "trust",
        "--root",
        "--skip-fingerprint-review",
        img.key.to_str().unwrap(),
    ]);
    assert!(rkt
        .local_config()
        .join("trustedkeys/root.d")
        .join(&img.fpr)
        .is_file());
    rkt.ok(["fetch", &aci]);

    // Trusting without review needs a terminal to ask on.
    rkt.run([
        "trust",
        "--prefix",
        "example.com/x",
        img.key.to_str().unwrap(),
    ])
    .fails_with(254, &["--skip-fingerprint-review"]);
}

#[test]
fn kill_during_fetch_leaves_the_store_consistent() {
    let rkt = Rkt::new();
    let scratch = rkt.scratch();
    let aci = busybox_aci(&scratch, NAME);
    let data = fs::read(&aci).unwrap();

    // Feed rkt half the image through a FIFO, then kill -9 it mid-read.
    let fifo = scratch.join("slow.aci");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    let mut child = rkt
        .command(["--insecure-options=image", "fetch", fifo.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut writer = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    writer.write_all(&data[..data.len() / 2]).unwrap();
    writer.flush().unwrap();
    // The rest of the image, sent after the kill, must not reach the store.
    // Wait until rkt has written part of its temp file, then kill it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while rkt.tmp_files().is_empty() {
        assert!(Instant::now() < deadline, "rkt never started writing");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(writer);

    assert!(rkt.images().is_empty());
    assert!(rkt.blob_files().is_empty());
    let verify = rkt.run(["image", "verify"]).success();
    assert!(!verify.stdout().contains("CORRUPT"));

    // The same fetch afterwards succeeds, stores exactly one image and removes what
    // the killed process left in the store's temp dir.
    rkt.ok(["--insecure-options=image", "fetch", aci.to_str().unwrap()]);
    assert_eq!(rkt.images().len(), 1);
    assert_eq!(rkt.blob_files().len(), 1);
    assert!(rkt.tmp_files().is_empty(), "{:?}", rkt.tmp_files());
}

#[test]
fn concurrent_fetches_of_one_image_store_one_blob() {
    let rkt = Rkt::new();
    let aci = busybox_aci(&rkt.scratch(), NAME);
    let children: Vec<_> = (0..4)
        .map(|_| {
            rkt.command([
                "--insecure-options=image",
                "fetch",
                "--full",
                aci.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let ids: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
        .collect();
    assert!(ids.iter().all(|i| i == &ids[0]), "{ids:?}");
    assert_eq!(rkt.images().len(), 1);
    assert_eq!(rkt.blob_files().len(), 1);
    assert!(rkt.tmp_files().is_empty(), "{:?}", rkt.tmp_files());
    rkt.ok(["image", "verify"]);
}

#[test]
fn bad_input_gets_clear_errors() {
    let rkt = Rkt::new();
    rkt.run(["fetch", "/nonexistent/image.aci"])
        .fails_with(254, &["/nonexistent/image.aci"]);
    rkt.run(["fetch", "--pull-policy=never", "example.com/absent:1.0"])
        .fails_with(254, &["example.com/absent"]);
    rkt.run(["fetch", "--pull-policy=sometimes", "x.aci"])
        .fails_with(2, &["sometimes"]);
    rkt.run(["--insecure-options=bogus", "image", "list"])
        .fails_with(2, &["bogus"]);
    rkt.run(["image", "cat-manifest", "sha512-ab"])
        .fails_with(254, &["4 hex"]);
    rkt.run(["fetch", "http://127.0.0.1:9/x.aci"])
        .fails_with(254, &["insecure-options=http"]);
    let not_aci = rkt.scratch().join("junk.aci");
    fs::write(&not_aci, b"this is not an archive at all").unwrap();
    rkt.run([
        "--insecure-options=image",
        "fetch",
        not_aci.to_str().unwrap(),
    ])
    .fails_with(254, &["junk.aci"]);
    assert_store_empty(&rkt);
}

/// Discovery by appc name, key discovery for `rkt trust`, ETag revalidation — over a
/// real HTTP server on port 80 of a network namespace this test creates, so the
/// host's network is never involved.
#[test]
fn discovery_trust_and_revalidation_over_http() {
    if !e2e::rkt::is_root() {
        eprintln!("SKIPPED discovery_trust_and_revalidation_over_http: needs root for a network namespace");
        return;
    }
    e2e::netns::in_new_netns(|| {
        let rkt = Rkt::new();
        let gpg = GpgHome::new();
        let name = "localhost/busybox";
        let img = signed_image(&rkt, &gpg, name);
        let aci = fs::read(&img.aci).unwrap();
        let server = e2e::http::TestServer::start_on("127.0.0.1:80").expect("bind port 80");
        server.put("/keys/signing.pub", fs::read(&img.key).unwrap());
        // The page is on the parent path: discovery must walk up from localhost/busybox.
        server.put_discovery(
            "/",
            "<html><head>\
             <meta name=\"ac-discovery\" content=\"localhost http://localhost/images/{name}-{version}.{ext}\">\
             <meta name=\"ac-discovery-pubkeys\" content=\"localhost http://localhost/keys/signing.pub\">\
             </head></html>",
        );
        // {name} is the full name, so the image lives under /images/localhost/.
        server.put("/images/localhost/busybox-latest.aci", aci);
        server.put(
            "/images/localhost/busybox-latest.aci.asc",
            fs::read(img.aci.with_extension("aci.asc")).unwrap(),
        );

        // Without --insecure-options=http, nothing is fetched over plain http.
        rkt.run(["trust", "--prefix", name, "--skip-fingerprint-review"])
            .fails_with(254, &["http"]);
        // Key discovery over http when allowed.
        let res = rkt
            .run([
                "trust",
                "--prefix",
                name,
                "--skip-fingerprint-review",
                "--insecure-allow-http",
            ])
            .success();
        assert!(res.stderr().contains(&img.fpr), "{}", res.stderr());
        assert_eq!(server.hits("/keys/signing.pub"), 1);

        let id = rkt.ok(["--insecure-options=http", "fetch", name]);
        assert!(id.starts_with("sha512-"), "{id}");
        assert_eq!(
            server.statuses("/images/localhost/busybox-latest.aci"),
            vec![200]
        );

        // update revalidates with the ETag: a 304, no body.
        let again = rkt.ok([
            "--insecure-options=http",
            "fetch",
            "--pull-policy=update",
            name,
        ]);
        assert_eq!(again, id);
        assert_eq!(
            server.statuses("/images/localhost/busybox-latest.aci"),
            vec![200, 304]
        );
        // new uses the store without asking anyone.
        let before = server.total_requests();
        rkt.ok([
            "--insecure-options=http",
            "fetch",
            "--pull-policy=new",
            name,
        ]);
        assert_eq!(server.total_requests(), before);
        assert_eq!(rkt.images().len(), 1);
    });
}
