//! Hostile images against stage0: the store, the pods dir and what an image may ask
//! for. Each test tries what a hostile image (or a curious host user) would, asserts it
//! is blocked with the defaults, and shows the attempt really works where the
//! protection is lifted (modes loosened by hand, `--insecure-options=image-privileges`,
//! a plain `tar --xattrs` extraction), so each test can fail. Each prints
//! `hostile <test>: escapes attempted: N, blocked: N` on stderr, past the test
//! harness's capture. Needs root.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use e2e::aci::AciBuilder;
use e2e::rkt::{is_root, Rkt};
use sha2::{Digest, Sha256};

macro_rules! need_root {
    ($name:expr) => {
        if !is_root() {
            eprintln!("SKIPPED {}: needs root", $name);
            return;
        }
    };
}

/// Prints figures past the harness's output capture, so CI logs show them.
fn tally(test: &str, attempted: usize, blocked: usize) {
    let _ = writeln!(
        std::io::stderr(),
        "hostile {test}: escapes attempted: {attempted}, blocked: {blocked}"
    );
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn mode_owner(path: &Path) -> (u32, u32) {
    let m = fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (m.mode() & 0o7777, m.uid())
}

/// `rootfs/` of the one rendered tree in `rkt`'s store.
fn only_tree(rkt: &Rkt) -> PathBuf {
    let tree = rkt.data_dir().join("cas/tree");
    let ids: Vec<PathBuf> = fs::read_dir(&tree)
        .unwrap_or_else(|e| panic!("read {}: {e}", tree.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(ids.len(), 1, "one rendered tree: {ids:?}");
    ids[0].join("rootfs")
}

// ------------------------------------------------------------ store permissions

/// Run `argv` as uid/gid 65534 without supplementary groups; whether it succeeded.
fn as_nobody(argv: &[&str]) -> (bool, String) {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(argv)
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// What a host user would try: list the store, read a setuid-root binary of a
/// rendered tree, list the pods dir and its running pods.
fn nobody_attempts(rkt: &Rkt, suid: &Path) -> Vec<(String, bool, String)> {
    let data = rkt.data_dir();
    let cas = data.join("cas");
    let pods = data.join("pods");
    let run = pods.join("run");
    let tries: Vec<(String, Vec<String>)> = vec![
        (
            "ls cas".into(),
            vec!["ls".into(), cas.display().to_string()],
        ),
        (
            "read a rendered setuid binary".into(),
            vec!["cat".into(), suid.display().to_string()],
        ),
        (
            "ls pods".into(),
            vec!["ls".into(), pods.display().to_string()],
        ),
        (
            "ls pods/run".into(),
            vec!["ls".into(), run.display().to_string()],
        ),
    ];
    tries
        .into_iter()
        .map(|(what, argv)| {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let (ok, out) = as_nobody(&argv);
            (what, ok, out)
        })
        .collect()
}

#[test]
fn store_and_pods_are_root_only() {
    need_root!("store_and_pods_are_root_only");
    let rkt = Rkt::new();
    let aci = rkt.scratch().join("suid.aci");
    AciBuilder::new("example.com/suid")
        .exec(&["/bin/true"])
        .file("bin/true", b"#!/bin/sh\n", 0o755)
        .file("bin/su", b"setuid-root payload", 0o4755)
        .write(&aci)
        .unwrap();
    rkt.ok([
        "--insecure-options=image",
        "prepare",
        "--quiet",
        aci.to_str().unwrap(),
    ]);
    // The test's temp root is 0700 (tempfile's choice): open it and the data dir, so
    // only the modes of cas/ and pods/ stand between uid 65534 and the files.
    chmod(rkt.root.path(), 0o755);
    chmod(&rkt.data_dir(), 0o755);
    let data = rkt.data_dir();
    let (cas, pods) = (data.join("cas"), data.join("pods"));
    let suid = only_tree(&rkt).join("bin/su");
    assert_eq!(mode_owner(&suid).0, 0o4755, "the tree keeps the setuid bit");
    assert_eq!(mode_owner(&cas), (0o700, 0), "cas as created");
    assert_eq!(mode_owner(&pods), (0o700, 0), "pods as created");

    let mut attempted = 0;
    let mut blocked = 0;
    let mut check_blocked = |when: &str, results: Vec<(String, bool, String)>| {
        for (what, ok, out) in results {
            attempted += 1;
            assert!(!ok, "{when}: uid 65534 could {what}:\n{out}");
            blocked += 1;
        }
    };
    check_blocked("as created", nobody_attempts(&rkt, &suid));

    // Control: with the modes loosened by hand, the same attempts get through (the
    // pods' own state dirs are 0750: loosen pods/run too, to show the root is what
    // keeps them out afterwards).
    let loosen = || {
        chmod(&cas, 0o755);
        chmod(&pods, 0o755);
        chmod(&pods.join("run"), 0o755);
    };
    loosen();
    for (what, ok, out) in nobody_attempts(&rkt, &suid) {
        assert!(
            ok,
            "control: with 0755 modes uid 65534 should {what}:\n{out}"
        );
        if what.contains("setuid") {
            assert!(out.contains("setuid-root payload"), "{out}");
        }
    }

    // `rkt image verify` closes both and says so.
    let res = rkt.run(["image", "verify"]).success();
    let (out, err) = (res.stdout(), res.stderr());
    for dir in [&cas, &pods] {
        assert!(
            out.contains(&format!("{}\trepaired: ", dir.display())),
            "verify reports {}:\n{out}",
            dir.display()
        );
        assert!(
            err.contains(&format!("SECURITY: {}", dir.display())),
            "verify warns about {}:\n{err}",
            dir.display()
        );
        assert_eq!(mode_owner(dir), (0o700, 0), "{} repaired", dir.display());
    }
    check_blocked("after rkt image verify", nobody_attempts(&rkt, &suid));

    // Any command opening the store closes it again, with a warning; one opening the
    // pods dir closes that.
    loosen();
    let err = rkt.run(["image", "list"]).success().stderr();
    assert!(
        err.contains(&format!("SECURITY: {}", cas.display())) && err.contains("mode 0755"),
        "{err}"
    );
    assert_eq!(mode_owner(&cas), (0o700, 0));
    let err = rkt.run(["list"]).success().stderr();
    assert!(
        err.contains(&format!("SECURITY: {}", pods.display())),
        "{err}"
    );
    assert_eq!(mode_owner(&pods), (0o700, 0));
    check_blocked(
        "after rkt image list and rkt list",
        nobody_attempts(&rkt, &suid),
    );
    tally("store_and_pods_are_root_only", attempted, blocked);
}

// ------------------------------------------------------------ image isolators

const CAP_KILL: u32 = 5;
const CAP_CHOWN: u32 = 0;
const CAP_SYS_MODULE: u32 = 16;
const CAP_SYS_ADMIN: u32 = 21;

/// An image whose manifest asks for `CAP_SYS_ADMIN` and `CAP_SYS_MODULE` (and two
/// default capabilities) and for `no_new_privs` off; its app prints its capability and
/// `NoNewPrivs` lines.
fn greedy_aci(dir: &Path) -> PathBuf {
    let manifest = serde_json::json!({
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": "example.com/greedy",
        "labels": [{"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}],
        "app": {
            "exec": ["/bin/busybox", "grep", "-E", "^(Cap|NoNewPrivs)", "/proc/self/status"],
            "user": "0",
            "group": "0",
            "isolators": [
                {"name": "os/linux/capabilities-retain-set",
                 "value": {"set": ["CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_CHOWN", "CAP_KILL"]}},
                {"name": "os/linux/no-new-privileges", "value": false}
            ]
        }
    });
    let busybox = fs::read("/bin/busybox").expect("read /bin/busybox (busybox-static)");
    let aci = dir.join("greedy.aci");
    AciBuilder::new("example.com/greedy")
        .manifest_bytes(&serde_json::to_vec(&manifest).unwrap())
        .file("bin/busybox", &busybox, 0o755)
        .write(&aci)
        .unwrap();
    aci
}

/// `CapEff` and `NoNewPrivs` from the app's output.
fn caps_of(out: &str) -> (u64, String) {
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in:\n{out}"))
    };
    let eff = u64::from_str_radix(&field("CapEff:"), 16).expect("hex CapEff");
    (eff, field("NoNewPrivs:"))
}

fn bits(caps: &[u32]) -> u64 {
    caps.iter().map(|c| 1u64 << c).sum()
}

#[test]
fn an_image_cannot_grant_itself_capabilities() {
    need_root!("an_image_cannot_grant_itself_capabilities");
    let rkt = Rkt::new();
    let aci = greedy_aci(&rkt.scratch());
    let aci = aci.to_str().unwrap();

    let res = rkt
        .run(["--insecure-options=image", "run", "--net=none", aci])
        .success();
    let (eff, nnp) = caps_of(&res.stdout());
    let err = res.stderr();
    let attempts = [
        ("CAP_SYS_ADMIN", eff & bits(&[CAP_SYS_ADMIN]) == 0),
        ("CAP_SYS_MODULE", eff & bits(&[CAP_SYS_MODULE]) == 0),
        ("no_new_privs off", nnp == "1"),
    ];
    let blocked = attempts.iter().filter(|(_, b)| *b).count();
    tally(
        "an_image_cannot_grant_itself_capabilities",
        attempts.len(),
        blocked,
    );
    for (what, b) in attempts {
        assert!(b, "the image got {what}: CapEff {eff:#x}, NoNewPrivs {nnp}");
    }
    // The narrowing part of the image's set still applies: exactly what it kept of
    // the defaults.
    assert_eq!(eff, bits(&[CAP_CHOWN, CAP_KILL]), "CapEff {eff:#x}");
    for needle in [
        "SECURITY:",
        "example.com/greedy",
        "os/linux/capabilities-retain-set",
        "CAP_SYS_ADMIN, CAP_SYS_MODULE",
        "os/linux/no-new-privileges",
        "--insecure-options=image-privileges",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }

    // Control: allowed by the operator, the image gets what it asked for.
    let out = rkt.ok([
        "--insecure-options=image,image-privileges",
        "run",
        "--net=none",
        aci,
    ]);
    let (eff, nnp) = caps_of(&out);
    assert_eq!(
        eff,
        bits(&[CAP_CHOWN, CAP_KILL, CAP_SYS_MODULE, CAP_SYS_ADMIN]),
        "control: CapEff {eff:#x}"
    );
    assert_eq!(nnp, "0", "control: no_new_privs off");

    // The operator's own flags are not the image's: --caps-retain still gives them.
    let out = rkt.ok([
        "--insecure-options=image",
        "run",
        "--net=none",
        aci,
        "--caps-retain=CAP_SYS_ADMIN",
    ]);
    assert_eq!(caps_of(&out).0, bits(&[CAP_SYS_ADMIN]), "--caps-retain");
}

// ------------------------------------------------------------ xattrs

/// A `security.capability` value: revision 2, effective, `CAP_NET_BIND_SERVICE`.
const FILE_CAP: &[u8] = &[
    0x01, 0, 0, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// The extended attributes a hostile image sets, by path in its rootfs: overlayfs
/// control (an opaque directory, a redirect, metacopy) and a host security label.
const HOSTILE: &[(&str, &str, &[u8])] = &[
    ("hidden", "trusted.overlay.opaque", b"y"),
    ("redir", "trusted.overlay.redirect", b"/hidden"),
    ("file", "trusted.overlay.metacopy", b""),
    ("file", "security.selinux", b"system_u:object_r:shadow_t:s0"),
];
/// The ones that stay.
const KEPT: &[(&str, &str, &[u8])] = &[
    ("hidden", "user.x", b"1"),
    ("file", "user.kept", b"yes"),
    ("file", "security.capability", FILE_CAP),
];

/// A tar of the hostile rootfs, each path under `prefix` (`rootfs/` for an ACI, empty
/// for an OCI layer), xattrs as PAX `SCHILY.xattr.*` records.
fn xattr_tar(prefix: &str, manifest: Option<&[u8]>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000_000);
        h
    };
    if let Some(m) = manifest {
        let mut h = header(tar::EntryType::Regular, 0o644, m.len() as u64);
        b.append_data(&mut h, "manifest", m).unwrap();
    }
    let entries: &[(&str, tar::EntryType, &[u8])] = &[
        ("", tar::EntryType::Directory, b""),
        ("bin", tar::EntryType::Directory, b""),
        ("bin/true", tar::EntryType::Regular, b"#!/bin/sh\n"),
        ("hidden", tar::EntryType::Directory, b""),
        (
            "hidden/secret",
            tar::EntryType::Regular,
            b"hidden by nothing",
        ),
        ("redir", tar::EntryType::Directory, b""),
        ("file", tar::EntryType::Regular, b"plain"),
    ];
    for (path, kind, data) in entries {
        if path.is_empty() && prefix.is_empty() {
            continue;
        }
        let records: Vec<(String, &[u8])> = HOSTILE
            .iter()
            .chain(KEPT)
            .filter(|(p, _, _)| p == path)
            .map(|(_, k, v)| (format!("SCHILY.xattr.{k}"), *v))
            .collect();
        if !records.is_empty() {
            b.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
                .unwrap();
        }
        let full = format!("{prefix}{path}");
        let (mode, name) = if *kind == tar::EntryType::Directory {
            (0o755, format!("{}/", full.trim_end_matches('/')))
        } else {
            (0o755, full)
        };
        let mut h = header(*kind, mode, data.len() as u64);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn getxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::lgetxattr(path, name, &mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => panic!("getxattr {} {name}: {e}", path.display()),
    }
}

/// Control: GNU tar, told to restore every xattr, puts the hostile ones on disk here,
/// so the archive carries them and this filesystem takes them from root.
fn control_with_gnu_tar(scratch: &Path, tar: &[u8], prefix: &str) {
    let archive = scratch.join("control.tar");
    fs::write(&archive, tar).unwrap();
    let out = scratch.join("control");
    fs::create_dir_all(&out).unwrap();
    let status = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "-xf"])
        .arg(&archive)
        .arg("-C")
        .arg(&out)
        .status()
        .expect("run tar");
    assert!(status.success(), "tar --xattrs failed");
    for (path, name, value) in HOSTILE {
        let p = out.join(prefix).join(path);
        assert_eq!(
            getxattr(&p, name).as_deref(),
            Some(*value),
            "control: tar --xattrs restores {name} on {path}"
        );
    }
}

/// The rendered tree has the kept xattrs and none of the hostile ones; returns how
/// many hostile ones were blocked.
fn check_tree(rootfs: &Path) -> usize {
    for (path, name, value) in KEPT {
        assert_eq!(
            getxattr(&rootfs.join(path), name).as_deref(),
            Some(*value),
            "{name} on {path} is kept"
        );
    }
    let mut blocked = 0;
    for (path, name, _) in HOSTILE {
        let got = getxattr(&rootfs.join(path), name);
        assert_eq!(got, None, "{name} on {path} reached the tree");
        blocked += 1;
    }
    blocked
}

#[test]
fn overlay_xattrs_in_an_aci_do_not_reach_the_tree() {
    need_root!("overlay_xattrs_in_an_aci_do_not_reach_the_tree");
    let rkt = Rkt::new();
    let manifest = AciBuilder::new("example.com/xattrs")
        .exec(&["/bin/true"])
        .manifest_json();
    let tar = xattr_tar("rootfs/", Some(&manifest));
    control_with_gnu_tar(&rkt.scratch(), &tar, "rootfs");
    let aci = rkt.scratch().join("xattrs.aci");
    fs::write(&aci, &tar).unwrap();
    let aci = aci.to_str().unwrap();
    rkt.ok(["--insecure-options=image", "prepare", "--quiet", aci]);
    let blocked = check_tree(&only_tree(&rkt));
    tally(
        "overlay_xattrs_in_an_aci_do_not_reach_the_tree",
        HOSTILE.len(),
        blocked,
    );
    // What the pod sees of the tree is all there (nothing is hidden or redirected).
    let rootfs = only_tree(&rkt);
    assert_eq!(
        fs::read(rootfs.join("hidden/secret")).unwrap(),
        b"hidden by nothing"
    );
}

/// Write `data` as a blob of an OCI layout; its descriptor.
fn oci_blob(layout: &Path, media_type: &str, data: &[u8]) -> serde_json::Value {
    let hex = hex::encode(Sha256::digest(data));
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&hex), data).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": data.len()})
}

#[test]
fn overlay_xattrs_in_an_oci_layer_do_not_reach_the_tree() {
    need_root!("overlay_xattrs_in_an_oci_layer_do_not_reach_the_tree");
    let rkt = Rkt::new();
    let layer = xattr_tar("", None);
    control_with_gnu_tar(&rkt.scratch(), &layer, "");
    let layout = rkt.scratch().join("layout");
    let layer_desc = oci_blob(&layout, "application/vnd.oci.image.layer.v1.tar", &layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]}
    });
    let config_desc = oci_blob(
        &layout,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc]
    });
    let mut manifest_desc = oci_blob(
        &layout,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    manifest_desc["annotations"] =
        serde_json::json!({"org.opencontainers.image.ref.name": "latest"});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [manifest_desc]});
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();

    let image = format!("oci:{}:latest", layout.display());
    rkt.ok(["--insecure-options=image", "prepare", "--quiet", &image]);
    let blocked = check_tree(&only_tree(&rkt));
    tally(
        "overlay_xattrs_in_an_oci_layer_do_not_reach_the_tree",
        HOSTILE.len(),
        blocked,
    );
}
