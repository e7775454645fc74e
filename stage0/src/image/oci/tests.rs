//! OCI fetch tests against a small registry served on loopback (real HTTP, real
//! store, real extraction): tags, digests, indexes, auth flows, faults. The e2e tests
//! (`e2e/tests/oci.rs`) repeat the main journeys against Docker Distribution itself.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use base64::prelude::{Engine, BASE64_STANDARD};
use e2e::aci::{gzip, zstd};
use serde_json::json;

use super::*;
use crate::image::transfer::Progress;

// ---------------------------------------------------------------- the registry

#[derive(Clone, Debug, PartialEq)]
enum Auth {
    None,
    Basic(String, String),
    /// Tokens from `/token`, which wants these Basic credentials (None: anonymous).
    Bearer(Option<(String, String)>),
}

#[derive(Clone, Debug)]
enum Fault {
    /// Answer with this status.
    Status(u16),
    /// Announce the full length, send this many bytes, then close.
    DropAfter(usize),
}

#[derive(Default)]
struct RegState {
    /// path -> (content type, body)
    files: HashMap<String, (String, Vec<u8>)>,
    faults: HashMap<String, Fault>,
    log: Vec<(String, u16, bool)>,
    auth: Option<Auth>,
}

struct Reg {
    addr: SocketAddr,
    state: Arc<Mutex<RegState>>,
}

const TOKEN: &str = "t0ken-for-tests";

impl Reg {
    fn start(auth: Auth) -> Reg {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(RegState {
            auth: Some(auth),
            ..Default::default()
        }));
        let st = Arc::clone(&state);
        // The listener thread lives as long as the test process; each test has its
        // own port, and nothing connects once the test is over.
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = Arc::clone(&st);
                thread::spawn(move || {
                    let _ = serve(conn, &st, addr);
                });
            }
        });
        Reg { addr, state }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn put(&self, path: &str, content_type: &str, body: Vec<u8>) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(path.to_string(), (content_type.to_string(), body));
    }

    fn fault(&self, path: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .insert(path.to_string(), fault);
    }

    fn blob_gets(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|(p, s, _)| p.contains("/blobs/") && *s == 200)
            .count()
    }

    fn requests(&self) -> usize {
        self.state.lock().unwrap().log.len()
    }

    fn log(&self) -> Vec<(String, u16, bool)> {
        self.state.lock().unwrap().log.clone()
    }

    /// Push an image: blobs and a manifest under `tag` (and its digest).
    fn push(&self, repo: &str, tag: &str, image: &TestImage) -> Digest {
        for (digest, bytes) in &image.blobs {
            self.put(
                &format!("/v2/{repo}/blobs/{digest}"),
                "application/octet-stream",
                bytes.clone(),
            );
        }
        self.put_manifest(repo, tag, spec::OCI_MANIFEST, &image.manifest)
    }

    fn put_manifest(&self, repo: &str, tag: &str, media: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::sha256_of(bytes);
        for r in [tag.to_string(), digest.to_string()] {
            self.put(&format!("/v2/{repo}/manifests/{r}"), media, bytes.to_vec());
        }
        digest
    }
}

fn respond(
    conn: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)
}

fn serve(mut conn: TcpStream, st: &Mutex<RegState>, addr: SocketAddr) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut authorization = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_string());
            }
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (auth, file, fault) = {
        let s = st.lock().unwrap();
        (
            s.auth.clone().unwrap_or(Auth::None),
            s.files.get(path).cloned(),
            s.faults.get(path).cloned(),
        )
    };
    let log = |status: u16| {
        st.lock()
            .unwrap()
            .log
            .push((target.clone(), status, authorization.is_some()))
    };
    let basic = |u: &str, p: &str| format!("Basic {}", BASE64_STANDARD.encode(format!("{u}:{p}")));

    if path == "/token" {
        let ok = match &auth {
            Auth::Bearer(Some((u, p))) => authorization.as_deref() == Some(basic(u, p).as_str()),
            _ => true,
        };
        if !ok {
            log(401);
            return respond(&mut conn, 401, &[], b"{}");
        }
        assert!(query.contains("scope=repository%3A"), "{query}");
        log(200);
        let body = serde_json::to_vec(&json!({"token": TOKEN})).unwrap();
        return respond(&mut conn, 200, &[], &body);
    }
    let authorized = match &auth {
        Auth::None => true,
        Auth::Basic(u, p) => authorization.as_deref() == Some(basic(u, p).as_str()),
        Auth::Bearer(_) => authorization.as_deref() == Some(&format!("Bearer {TOKEN}")),
    };
    if !authorized {
        let challenge = match &auth {
            Auth::Basic(..) => "Basic realm=\"test\"".to_string(),
            _ => {
                let scope = path
                    .strip_prefix("/v2/")
                    .and_then(|p| p.split_once("/manifests/").or(p.split_once("/blobs/")))
                    .map(|(repo, _)| format!(",scope=\"repository:{repo}:pull\""))
                    .unwrap_or_default();
                format!("Bearer realm=\"http://{addr}/token\",service=\"test\"{scope}")
            }
        };
        log(401);
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
        return respond(&mut conn, 401, &[("WWW-Authenticate", challenge)], body);
    }
    if path == "/v2/" {
        log(200);
        return respond(&mut conn, 200, &[], b"{}");
    }
    match (fault, file) {
        (Some(Fault::Status(s)), _) => {
            log(s);
            respond(
                &mut conn,
                s,
                &[],
                br#"{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}"#,
            )
        }
        (Some(Fault::DropAfter(n)), Some((ct, body))) => {
            log(200);
            let head = format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            conn.write_all(head.as_bytes())?;
            conn.write_all(&body[..n.min(body.len())])?;
            conn.flush()?;
            conn.shutdown(std::net::Shutdown::Both)
        }
        (_, Some((ct, body))) => {
            log(200);
            let digest = Digest::sha256_of(&body).to_string();
            respond(
                &mut conn,
                200,
                &[("Content-Type", ct), ("Docker-Content-Digest", digest)],
                &body,
            )
        }
        (_, None) => {
            log(404);
            let code = if path.contains("/manifests/") {
                "MANIFEST_UNKNOWN"
            } else {
                "BLOB_UNKNOWN"
            };
            let body = format!(r#"{{"errors":[{{"code":"{code}","message":"unknown"}}]}}"#);
            respond(&mut conn, 404, &[], body.as_bytes())
        }
    }
}

// ---------------------------------------------------------------- test images

/// An entry of a test layer.
pub(super) enum Ent<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Link(&'a str, &'a str),
}

/// A tar (a layer) of `entries`, root-owned, mode 0755, mtime 0.
pub(super) fn tar_of(entries: &[Ent<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        match e {
            Ent::File(p, data) => {
                h.set_size(data.len() as u64);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, p, *data).unwrap();
            }
            Ent::Dir(p) => {
                h.set_size(0);
                h.set_entry_type(tar::EntryType::Directory);
                b.append_data(&mut h, p, &b""[..]).unwrap();
            }
            Ent::Link(p, t) => {
                h.set_size(0);
                h.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut h, p, t).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

#[derive(Clone, Copy)]
enum Comp {
    None,
    Gzip,
    Zstd,
}

struct TestImage {
    manifest: Vec<u8>,
    config: Vec<u8>,
    blobs: Vec<(Digest, Vec<u8>)>,
    layer_digests: Vec<Digest>,
}

fn image(arch: &str, layers: &[(Vec<u8>, Comp)], cfg: serde_json::Value) -> TestImage {
    let mut blobs = Vec::new();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layer_digests = Vec::new();
    for (tar, comp) in layers {
        diff_ids.push(Digest::sha256_of(tar).to_string());
        let (bytes, media) = match comp {
            Comp::None => (tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
            Comp::Gzip => (gzip(tar), "application/vnd.oci.image.layer.v1.tar+gzip"),
            Comp::Zstd => (zstd(tar), "application/vnd.oci.image.layer.v1.tar+zstd"),
        };
        let d = Digest::sha256_of(&bytes);
        descs.push(json!({"mediaType": media, "digest": d.to_string(), "size": bytes.len()}));
        layer_digests.push(d.clone());
        blobs.push((d, bytes));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": arch, "os": "linux",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cd = Digest::sha256_of(&config);
    blobs.push((cd.clone(), config.clone()));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": spec::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    TestImage {
        manifest,
        config,
        blobs,
        layer_digests,
    }
}

/// Four layers in three encodings, with a whiteout and an opaque directory.
fn layered() -> TestImage {
    let l0 = tar_of(&[
        Ent::Dir("bin/"),
        Ent::File("bin/busybox", b"#!fake busybox"),
        Ent::Link("bin/sh", "busybox"),
        Ent::File(
            "etc/passwd",
            b"root:x:0:0::/root:/bin/sh\nsvc:x:100:101::/:/bin/sh\n",
        ),
        Ent::File("etc/deleted", b"bottom"),
        Ent::File("data/old1", b"1"),
        Ent::File("data/old2", b"2"),
    ]);
    let l1 = tar_of(&[
        Ent::File("etc/.wh.deleted", b""),
        Ent::File("etc/added", b"middle"),
    ]);
    let l2 = tar_of(&[
        Ent::File("data/.wh..wh..opq", b""),
        Ent::File("data/new", b"new"),
    ]);
    let l3 = tar_of(&[Ent::File("top.txt", b"top")]);
    image(
        &spec::host_platform().architecture,
        &[
            (l0, Comp::Gzip),
            (l1, Comp::Zstd),
            (l2, Comp::None),
            (l3, Comp::Gzip),
        ],
        json!({"Cmd": ["sh", "-c", "echo hi"], "User": "svc", "Env": ["A=1"], "WorkingDir": "/data",
               "ExposedPorts": {"8080/tcp": {}}}),
    )
}

// ---------------------------------------------------------------- fixtures

#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<String>>,
    bytes: Mutex<u64>,
    starts: Mutex<Vec<(String, Option<u64>)>>,
}

impl Progress for Recorder {
    fn start(&self, what: &str, total: Option<u64>) {
        self.starts.lock().unwrap().push((what.to_string(), total));
    }
    fn advance(&self, bytes: u64) {
        *self.bytes.lock().unwrap() += bytes;
    }
    fn finish(&self) {}
    fn message(&self, msg: &str) {
        self.messages.lock().unwrap().push(msg.to_string());
    }
}

struct Env {
    _dir: tempfile::TempDir,
    store: Store,
    progress: Recorder,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("cas")).unwrap();
        Env {
            _dir: dir,
            store,
            progress: Recorder::default(),
        }
    }

    fn fetcher(&self, policy: PullPolicy, insecure: &str, auth: AuthConfig) -> OciFetcher<'_> {
        OciFetcher::new(
            &self.store,
            &self.progress,
            policy,
            insecure.parse().unwrap(),
            auth,
        )
    }

    fn fetch(&self, input: &str) -> Result<ImageInfo, OciError> {
        self.fetcher(PullPolicy::Update, "image,http", AuthConfig::default())
            .fetch(input)
    }

    fn assert_empty(&self) {
        assert!(self.store.list().unwrap().is_empty(), "images were stored");
        let blobs = files_under(&self.store.root().join("blob"));
        assert!(blobs.is_empty(), "blobs were stored: {blobs:?}");
        let tmp = files_under(&self.store.tmp_dir());
        assert!(tmp.is_empty(), "temp files left: {tmp:?}");
    }
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
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

fn creds(user: &str, password: &str) -> AuthConfig {
    let mut a = AuthConfig::default();
    a.insert(
        "placeholder",
        Credentials {
            user: user.into(),
            password: password.into(),
        },
    );
    a
}

fn creds_for(reg: &Reg, user: &str, password: &str) -> AuthConfig {
    let mut a = AuthConfig::default();
    a.insert(
        &reg.host(),
        Credentials {
            user: user.into(),
            password: password.into(),
        },
    );
    a
}

// ---------------------------------------------------------------- tests

#[test]
fn pulls_by_tag_renders_with_whiteouts_and_skips_stored_layers() {
    let reg = Reg::start(Auth::None);
    let img = layered();
    reg.push("app", "v1", &img);
    let env = Env::new();
    let input = format!("docker://{}/app:v1", reg.host());
    let info = env.fetch(&input).unwrap();

    assert_eq!(info.name, format!("{}/app", reg.host()));
    assert_eq!(info.manifest.label("version"), Some("v1"));
    let app = info.manifest.app.as_ref().unwrap();
    assert_eq!(app.exec, vec!["/bin/sh", "-c", "echo hi"]);
    assert_eq!((app.user.as_str(), app.group.as_str()), ("svc", "101"));
    assert_eq!(app.working_directory.as_deref(), Some("/data"));
    assert_eq!(app.ports[0].name, "8080-tcp");
    assert_eq!(reg.blob_gets(), 5, "config and four layers");
    let total: u64 = img.blobs[..4].iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(*env.progress.bytes.lock().unwrap(), total);
    assert_eq!(
        env.progress.starts.lock().unwrap().len(),
        1,
        "one progress display for all layers"
    );

    // Layers are stored uncompressed under their diff IDs.
    let layers = env.store.oci_layers(&info.id).unwrap();
    assert_eq!(layers.len(), 4);
    for path in &layers {
        let hex = path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .strip_prefix("sha256-")
            .unwrap();
        assert_eq!(Digest::sha256_of(&fs::read(path).unwrap()).hex(), hex);
    }
    env.store.verify_blob(&info.id).unwrap();

    let rootfs = crate::image::render::render(&env.store, &info).unwrap();
    assert!(rootfs.join("bin/busybox").is_file());
    assert_eq!(
        fs::read_link(rootfs.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert!(!rootfs.join("etc/deleted").exists(), "whiteout applied");
    assert_eq!(fs::read(rootfs.join("etc/added")).unwrap(), b"middle");
    assert!(
        !rootfs.join("data/old1").exists() && !rootfs.join("data/old2").exists(),
        "opaque dir"
    );
    assert_eq!(fs::read(rootfs.join("data/new")).unwrap(), b"new");
    assert_eq!(fs::read(rootfs.join("top.txt")).unwrap(), b"top");

    // Found again by reference; `update` transfers nothing when the tag did not move.
    let found = crate::image::render::lookup(&env.store, &input).unwrap();
    assert_eq!(found.id, info.id);
    let before = reg.blob_gets();
    let again = env.fetch(&input).unwrap();
    assert_eq!(again.id, info.id);
    assert_eq!(reg.blob_gets(), before);
    // `new` does not even ask the registry.
    let requests = reg.requests();
    let fetcher = env.fetcher(PullPolicy::New, "", AuthConfig::default());
    assert_eq!(fetcher.fetch(&input).unwrap().id, info.id);
    assert_eq!(reg.requests(), requests);

    // A new image sharing the bottom layers transfers only the new one.
    let img2 = image(
        &spec::host_platform().architecture,
        &[
            (fs::read(&layers[0]).unwrap(), Comp::Gzip),
            (fs::read(&layers[1]).unwrap(), Comp::Zstd),
            (tar_of(&[Ent::File("v2.txt", b"v2")]), Comp::Gzip),
        ],
        json!({"Cmd": ["/bin/sh"]}),
    );
    reg.push("app", "v2", &img2);
    let before = reg.blob_gets();
    let v2 = env
        .fetch(&format!("docker://{}/app:v2", reg.host()))
        .unwrap();
    assert_eq!(reg.blob_gets() - before, 2, "config and the new layer only");
    assert!(env
        .progress
        .messages
        .lock()
        .unwrap()
        .iter()
        .any(|m| m.contains("2 of 3 layers already in the store")));
    let shared = env.store.oci_layers(&v2.id).unwrap()[0].clone();
    assert_eq!(shared, layers[0]);
    env.store.remove(&info.id).unwrap();
    assert!(shared.exists(), "still used by v2");
    assert!(!layers[3].exists(), "only v1 used it");
    env.store.remove(&v2.id).unwrap();
    assert!(files_under(&env.store.root().join("blob")).is_empty());
}

#[test]
fn a_digest_pins_the_image_and_needs_no_insecure_option() {
    let reg = Reg::start(Auth::None);
    let img = layered();
    let digest = reg.push("app", "v1", &img);
    let env = Env::new();
    let f = env.fetcher(PullPolicy::Update, "http", AuthConfig::default());
    let err = f
        .fetch(&format!("docker://{}/app:v1", reg.host()))
        .unwrap_err();
    assert!(matches!(err, OciError::Unsigned { .. }), "{err}");
    assert!(
        err.to_string().contains("--insecure-options=image"),
        "{err}"
    );
    assert_eq!(reg.blob_gets(), 0, "refused before any blob transfer");
    env.assert_empty();

    let info = f
        .fetch(&format!("docker://{}/app@{digest}", reg.host()))
        .unwrap();
    assert_eq!(info.manifest.label("version"), None);
    let rec = env.store.oci_record(&info.id).unwrap().unwrap();
    assert_eq!(
        rec.manifest_digest.as_deref(),
        Some(digest.to_string().as_str())
    );
    // Without http allowed, a plain-http registry is not reached.
    let strict = env.fetcher(PullPolicy::Update, "image", AuthConfig::default());
    let err = strict
        .fetch(&format!("docker://{}/app:v1", reg.host()))
        .unwrap_err();
    assert!(err.to_string().contains("--insecure-options=http"), "{err}");

    // A wrong digest is a manifest mismatch... when the registry serves other bytes.
    let other = Digest::sha256_of(b"something else");
    reg.put(
        &format!("/v2/app/manifests/{other}"),
        spec::OCI_MANIFEST,
        img.manifest.clone(),
    );
    let err = f
        .fetch(&format!("docker://{}/app@{other}", reg.host()))
        .unwrap_err();
    assert!(matches!(err, OciError::DigestMismatch { .. }), "{err}");
}

#[test]
fn a_multi_arch_index_gives_the_host_platform_or_the_chosen_one() {
    let reg = Reg::start(Auth::None);
    let host = spec::host_platform();
    let other_arch = if host.architecture == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let native = image(
        &host.architecture,
        &[(tar_of(&[Ent::File("native", b"n")]), Comp::Gzip)],
        json!({"Cmd": ["/native"]}),
    );
    let foreign = image(
        other_arch,
        &[(tar_of(&[Ent::File("foreign", b"f")]), Comp::Gzip)],
        json!({"Cmd": ["/foreign"]}),
    );
    let dn = reg.push("multi", "native-only", &native);
    let df = reg.push("multi", "foreign-only", &foreign);
    let entry = |d: &Digest, m: &[u8], arch: &str| {
        json!({"mediaType": spec::OCI_MANIFEST, "digest": d.to_string(), "size": m.len(),
               "platform": {"os": "linux", "architecture": arch}})
    };
    let attestation = json!({"mediaType": spec::OCI_MANIFEST, "digest": dn.to_string(), "size": native.manifest.len(),
        "platform": {"os": "unknown", "architecture": "unknown"}});
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": spec::OCI_INDEX,
        "manifests": [attestation, entry(&df, &foreign.manifest, other_arch), entry(&dn, &native.manifest, &host.architecture)]
    }))
    .unwrap();
    let index_digest = reg.put_manifest("multi", "latest", spec::DOCKER_LIST, &index);
    let env = Env::new();
    let info = env
        .fetch(&format!("docker://{}/multi", reg.host()))
        .unwrap();
    assert_eq!(info.manifest.app.as_ref().unwrap().exec, vec!["/native"]);
    assert!(info.latest, "fetched without a tag");
    let rec = env.store.oci_record(&info.id).unwrap().unwrap();
    assert_eq!(rec.manifest_digest, Some(dn.to_string()));
    // The index digest finds it too.
    let pinned = env
        .fetcher(PullPolicy::New, "", AuthConfig::default())
        .fetch(&format!("docker://{}/multi@{index_digest}", reg.host()))
        .unwrap();
    assert_eq!(pinned.id, info.id);

    let chosen = env
        .fetcher(PullPolicy::Update, "image,http", AuthConfig::default())
        .with_platform(Platform {
            os: "linux".into(),
            architecture: other_arch.into(),
            variant: None,
        })
        .fetch(&format!("docker://{}/multi:latest", reg.host()))
        .unwrap();
    assert_eq!(chosen.manifest.app.as_ref().unwrap().exec, vec!["/foreign"]);
    let err = env
        .fetcher(PullPolicy::Update, "image,http", AuthConfig::default())
        .with_platform(Platform {
            os: "linux".into(),
            architecture: "s390x".into(),
            variant: None,
        })
        .fetch(&format!("docker://{}/multi", reg.host()))
        .unwrap_err();
    assert!(matches!(err, OciError::NoPlatform { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("linux/{other_arch}")),
        "{err}"
    );
}

#[test]
fn a_tampered_blob_is_detected_and_nothing_is_stored() {
    let reg = Reg::start(Auth::None);
    let img = layered();
    reg.push("app", "v1", &img);
    // The third layer's content is replaced in the registry's storage.
    let victim = &img.layer_digests[2];
    reg.put(
        &format!("/v2/app/blobs/{victim}"),
        "application/octet-stream",
        tar_of(&[Ent::File("evil", b"x")]),
    );
    let env = Env::new();
    let err = env
        .fetch(&format!("docker://{}/app:v1", reg.host()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            OciError::DigestMismatch { .. } | OciError::SizeMismatch { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was stored"), "{err}");
    env.assert_empty();

    // Same bytes, but the config lies about the diff ID.
    let reg2 = Reg::start(Auth::None);
    let mut img = layered();
    let mut config: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
    config["rootfs"]["diff_ids"][1] = json!(Digest::sha256_of(b"other").to_string());
    let config = serde_json::to_vec(&config).unwrap();
    let cd = Digest::sha256_of(&config);
    let mut manifest: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    manifest["config"]["digest"] = json!(cd.to_string());
    manifest["config"]["size"] = json!(config.len());
    img.manifest = serde_json::to_vec(&manifest).unwrap();
    img.blobs.push((cd, config));
    reg2.push("app", "v1", &img);
    let err = env
        .fetch(&format!("docker://{}/app:v1", reg2.host()))
        .unwrap_err();
    assert!(matches!(err, OciError::DiffIdMismatch { .. }), "{err}");
    env.assert_empty();
}

#[test]
fn a_connection_dropped_mid_layer_leaves_no_partial_blob() {
    let reg = Reg::start(Auth::None);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: Vec<u8> = (0..3_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let img = image(
        &spec::host_platform().architecture,
        &[
            (tar_of(&[Ent::File("small", b"s")]), Comp::Gzip),
            (tar_of(&[Ent::File("big", &big)]), Comp::Gzip),
        ],
        json!({"Cmd": ["/x"]}),
    );
    reg.push("app", "v1", &img);
    let layer_len = img.blobs[1].1.len();
    assert!(layer_len > 2_000_000, "the layer must not compress away");
    reg.fault(
        &format!("/v2/app/blobs/{}", img.layer_digests[1]),
        Fault::DropAfter(layer_len / 2),
    );
    let env = Env::new();
    let err = env
        .fetch(&format!("docker://{}/app:v1", reg.host()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            OciError::ReadBlob { .. } | OciError::SizeMismatch { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("layer"), "{err}");
    env.assert_empty();
}

#[test]
fn bearer_tokens_and_basic_auth() {
    // Bearer with credentials.
    let reg = Reg::start(Auth::Bearer(Some(("alice".into(), "s3cret-pw".into()))));
    reg.push("team/app", "v1", &layered());
    let env = Env::new();
    let input = format!("docker://{}/team/app:v1", reg.host());
    let anon = env.fetcher(PullPolicy::Update, "image,http", AuthConfig::default());
    let err = anon.fetch(&input).unwrap_err();
    assert!(matches!(err, OciError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("auth.d"), "{err}");
    let wrong = env.fetcher(
        PullPolicy::Update,
        "image,http",
        creds_for(&reg, "alice", "nope-pw"),
    );
    let err = wrong.fetch(&input).unwrap_err();
    assert!(
        err.to_string()
            .contains("refused the credentials of user alice"),
        "{err}"
    );
    assert!(!err.to_string().contains("nope-pw") && !format!("{err:?}").contains("nope-pw"));
    let good = env.fetcher(
        PullPolicy::Update,
        "image,http",
        creds_for(&reg, "alice", "s3cret-pw"),
    );
    let info = good.fetch(&input).unwrap();
    assert_eq!(info.name, format!("{}/team/app", reg.host()));
    // One token for the whole pull: only the first repository request was refused.
    let log = reg.log();
    let refused: Vec<_> = log
        .iter()
        .filter(|(p, s, _)| *s == 401 && p != "/v2/" && !p.starts_with("/token"))
        .collect();
    assert_eq!(
        refused.len(),
        3,
        "anonymous, wrong and good attempts: {log:?}"
    );
    assert!(log
        .iter()
        .filter(|(p, _, _)| p.contains("/blobs/"))
        .all(|(_, _, a)| *a));
    // Credentials for another registry are not sent.
    let other = env.fetcher(PullPolicy::Update, "image,http", creds("bob", "x"));
    assert!(other
        .fetch(&format!("docker://{}/team/app:v2", reg.host()))
        .is_err());

    // Anonymous bearer tokens (public images on token-based registries).
    let public = Reg::start(Auth::Bearer(None));
    public.push("app", "v1", &layered());
    assert!(env
        .fetch(&format!("docker://{}/app:v1", public.host()))
        .is_ok());

    // Basic.
    let basic = Reg::start(Auth::Basic("bob".into(), "pw".into()));
    basic.push("app", "v1", &layered());
    let input = format!("docker://{}/app:v1", basic.host());
    let err = env
        .fetcher(PullPolicy::Update, "image,http", AuthConfig::default())
        .fetch(&input)
        .unwrap_err();
    assert!(err.to_string().contains("requires authentication"), "{err}");
    let err = env
        .fetcher(
            PullPolicy::Update,
            "image,http",
            creds_for(&basic, "bob", "bad"),
        )
        .fetch(&input)
        .unwrap_err();
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    env.fetcher(
        PullPolicy::Update,
        "image,http",
        creds_for(&basic, "bob", "pw"),
    )
    .fetch(&input)
    .unwrap();
}

#[test]
fn registry_errors_are_clear() {
    let reg = Reg::start(Auth::None);
    reg.push("app", "v1", &layered());
    let env = Env::new();
    let err = env
        .fetch(&format!("docker://{}/app:nope", reg.host()))
        .unwrap_err();
    assert!(matches!(err, OciError::ManifestUnknown { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("app:nope") && msg.contains("MANIFEST_UNKNOWN"),
        "{msg}"
    );

    reg.fault("/v2/app/manifests/v1", Fault::Status(503));
    let err = env
        .fetch(&format!("docker://{}/app:v1", reg.host()))
        .unwrap_err();
    assert!(
        err.to_string().contains("HTTP 503") && err.to_string().contains("try later"),
        "{err}"
    );

    let img = layered();
    reg.push("app", "v2", &img);
    reg.fault(
        &format!("/v2/app/blobs/{}", img.layer_digests[0]),
        Fault::Status(500),
    );
    let err = env
        .fetch(&format!("docker://{}/app:v2", reg.host()))
        .unwrap_err();
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    env.assert_empty();

    let err = env.fetch("docker://127.0.0.1:1/app:v1").unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot reach registry 127.0.0.1:1"),
        "{err}"
    );
    let err = env.fetch("docker://app:Bad Tag").unwrap_err();
    assert!(matches!(err, OciError::Reference(_)), "{err}");
    let never = env.fetcher(PullPolicy::Never, "image,http", AuthConfig::default());
    let err = never
        .fetch(&format!("docker://{}/app:v1", reg.host()))
        .unwrap_err();
    assert!(matches!(err, OciError::NotInStore { .. }), "{err}");

    // A schema 1 manifest is refused with a hint.
    reg.put_manifest(
        "old",
        "v1",
        spec::DOCKER_SCHEMA1_SIGNED,
        br#"{"schemaVersion":1}"#,
    );
    let err = env
        .fetch(&format!("docker://{}/old:v1", reg.host()))
        .unwrap_err();
    let msg = manifests::error::chain(&err);
    assert!(msg.contains("schema 1"), "{msg}");
}

/// Write an OCI image layout holding `img` under ref name `name`.
fn write_layout(dir: &Path, images: &[(&str, &TestImage)]) {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut manifests = Vec::new();
    for (name, img) in images {
        for (d, bytes) in &img.blobs {
            fs::write(dir.join("blobs/sha256").join(d.hex()), bytes).unwrap();
        }
        let md = Digest::sha256_of(&img.manifest);
        fs::write(dir.join("blobs/sha256").join(md.hex()), &img.manifest).unwrap();
        manifests.push(json!({"mediaType": spec::OCI_MANIFEST, "digest": md.to_string(), "size": img.manifest.len(),
            "annotations": {REF: name}}));
    }
    const REF: &str = spec::REF_NAME_ANNOTATION;
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": manifests})).unwrap(),
    )
    .unwrap();
}

fn tar_dir(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(fs::File::create(out).unwrap());
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

#[test]
fn oci_layouts_and_archives() {
    let env = Env::new();
    let scratch = tempfile::tempdir().unwrap();
    let layout = scratch.path().join("busybox-layout");
    let a = layered();
    let b = image(
        &spec::host_platform().architecture,
        &[(tar_of(&[Ent::File("b", b"b")]), Comp::None)],
        json!({"Cmd": ["/b"]}),
    );
    write_layout(&layout, &[("latest", &a), ("example.com/b:2.0", &b)]);
    let l = layout.display();

    let err = env
        .fetcher(PullPolicy::New, "", AuthConfig::default())
        .fetch(&format!("oci:{l}:latest"))
        .unwrap_err();
    assert!(matches!(err, OciError::Unsigned { .. }), "{err}");
    let info = env.fetch(&format!("oci:{l}:latest")).unwrap();
    assert_eq!(info.name, "busybox-layout");
    assert_eq!(info.manifest.label("version"), Some("latest"));
    let info_b = env.fetch(&format!("oci:{l}:example.com/b:2.0")).unwrap();
    assert_eq!(info_b.name, "example.com/b");
    assert_eq!(info_b.manifest.label("version"), Some("2.0"));
    let err = env.fetch(&format!("oci:{l}")).unwrap_err();
    assert!(err.to_string().contains("several images"), "{err}");
    let err = env.fetch(&format!("oci:{l}:nope")).unwrap_err();
    assert!(err.to_string().contains("example.com/b:2.0"), "{err}");
    // A digest pins it: no insecure option needed.
    let md = Digest::sha256_of(&b.manifest);
    let pinned = env
        .fetcher(PullPolicy::New, "", AuthConfig::default())
        .fetch(&format!("oci:{l}:{md}"))
        .unwrap();
    assert_eq!(pinned.manifest.app.unwrap().exec, vec!["/b"]);

    // The same layout as a tar file.
    let archive = scratch.path().join("img.tar");
    tar_dir(&layout, &archive);
    let from_archive = env
        .fetch(&format!("oci-archive:{}:latest", archive.display()))
        .unwrap();
    assert_eq!(from_archive.name, "img");
    let rootfs = crate::image::render::render(&env.store, &from_archive).unwrap();
    assert!(!rootfs.join("etc/deleted").exists());
    assert_eq!(fs::read(rootfs.join("top.txt")).unwrap(), b"top");

    // A tampered layout blob is caught.
    let victim = layout.join("blobs/sha256").join(a.layer_digests[3].hex());
    let mut bytes = fs::read(&victim).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    fs::write(&victim, bytes).unwrap();
    let fresh = Env::new();
    let err = fresh.fetch(&format!("oci:{l}:latest")).unwrap_err();
    assert!(
        matches!(
            err,
            OciError::DigestMismatch { .. } | OciError::ReadBlob { .. }
        ),
        "{err}"
    );
    fresh.assert_empty();
    let err = fresh
        .fetch(&format!("oci:{}", scratch.path().display()))
        .unwrap_err();
    assert!(err.to_string().contains("not an OCI image layout"), "{err}");
}

#[test]
fn docker_save_archives() {
    let scratch = tempfile::tempdir().unwrap();
    let img = layered();
    // docker save (legacy): <id>/layer.tar, uncompressed, and a repeated layer as a
    // symlink; the config named by its digest.
    let root = scratch.path().join("save");
    let config: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let env = Env::new();
    let mut layers = Vec::new();
    for (i, (d, bytes)) in img.blobs[..4].iter().enumerate() {
        let dir = root.join(format!("l{i}"));
        fs::create_dir_all(&dir).unwrap();
        let plain = crate::image::archive::decompress(&bytes[..]).unwrap().1;
        let mut tar = Vec::new();
        std::io::copy(&mut { plain }, &mut tar).unwrap();
        assert_eq!(Digest::sha256_of(&tar).to_string(), diff_ids[i], "{d}");
        fs::write(dir.join("layer.tar"), tar).unwrap();
        layers.push(format!("l{i}/layer.tar"));
    }
    let cd = Digest::sha256_of(&img.config);
    fs::write(root.join(format!("{}.json", cd.hex())), &img.config).unwrap();
    fs::write(
        root.join("manifest.json"),
        serde_json::to_vec(&json!([{"Config": format!("{}.json", cd.hex()), "RepoTags": ["busybox:latest"], "Layers": layers}]))
            .unwrap(),
    )
    .unwrap();
    let archive = scratch.path().join("saved.tar");
    tar_dir(&root, &archive);
    let a = archive.display();
    let info = env.fetch(&format!("docker-archive:{a}")).unwrap();
    assert_eq!(info.name, "busybox");
    assert_eq!(info.manifest.label("version"), Some("latest"));
    assert_eq!(
        env.fetch(&format!(
            "docker-archive:{a}:docker.io/library/busybox:latest"
        ))
        .unwrap()
        .id,
        info.id
    );
    let err = env
        .fetch(&format!("docker-archive:{a}:other:1"))
        .unwrap_err();
    assert!(err.to_string().contains("busybox:latest"), "{err}");
    let rootfs = crate::image::render::render(&env.store, &info).unwrap();
    assert!(!rootfs.join("data/old1").exists());
    assert_eq!(fs::read(rootfs.join("data/new")).unwrap(), b"new");
}

// ---------------------------------------------------------------- the steps of a registry fetch

#[test]
fn the_store_is_consulted_first_unless_updating_an_unpinned_reference() {
    for (policy, pinned, want) in [
        (PullPolicy::New, false, true),
        (PullPolicy::New, true, true),
        (PullPolicy::Never, false, true),
        (PullPolicy::Never, true, true),
        (PullPolicy::Update, false, false),
        (PullPolicy::Update, true, true),
    ] {
        assert_eq!(
            store_first(policy, pinned),
            want,
            "{policy} pinned={pinned}"
        );
    }
}

fn raw(bytes: &[u8], media_type: Option<&str>, header: Option<Digest>) -> RawManifest {
    RawManifest {
        bytes: bytes.to_vec(),
        media_type: media_type.map(str::to_string),
        digest_header: header,
    }
}

#[test]
fn the_top_manifest_matches_its_pin_or_the_claimed_digest() {
    let bytes = b"{\"schemaVersion\":2}";
    let sha256 = Digest::sha256_of(bytes);
    let sha512 = Digest::parse(&format!("sha512:{}", "00".repeat(64)))
        .unwrap()
        .same_algorithm_of(bytes);
    let other = Digest::sha256_of(b"other");
    /// The digest, or the (expected, actual) of the mismatch.
    type Want<'a> = Result<&'a Digest, (&'a Digest, &'a Digest)>;
    // (pin, Docker-Content-Digest, what comes out)
    let table: Vec<(Option<&Digest>, Option<Digest>, Want<'_>)> = vec![
        (None, None, Ok(&sha256)),
        (None, Some(sha256.clone()), Ok(&sha256)),
        // A claimed sha512 is checked as sha512; the digest is still the sha256.
        (None, Some(sha512.clone()), Ok(&sha256)),
        (None, Some(other.clone()), Err((&other, &sha256))),
        (Some(&sha256), None, Ok(&sha256)),
        (Some(&sha512), None, Ok(&sha512)),
        // A pin wins over whatever the registry claims.
        (Some(&sha256), Some(other.clone()), Ok(&sha256)),
        (Some(&other), Some(sha256.clone()), Err((&other, &sha256))),
    ];
    for (pin, header, want) in table {
        let got = verify_top_manifest(&raw(bytes, None, header.clone()), pin, "docker://r/i");
        match (got, want) {
            (Ok(d), Ok(w)) => assert_eq!(&d, w, "{pin:?} {header:?}"),
            (
                Err(OciError::DigestMismatch {
                    what,
                    image,
                    expected,
                    actual,
                }),
                Err((e, a)),
            ) => {
                assert_eq!(what, "the manifest");
                assert_eq!(image, "docker://r/i");
                assert_eq!((expected, actual), (e.to_string(), a.to_string()));
            }
            (got, want) => panic!("{pin:?} {header:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn a_platform_manifest_has_its_descriptors_digest_and_is_no_index() {
    let platform = Platform {
        os: "linux".into(),
        architecture: "arm64".into(),
        variant: None,
    };
    let config = Digest::sha256_of(b"config");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "config": {"mediaType": spec::DOCKER_CONFIG, "digest": config.to_string(), "size": 6},
        "layers": [],
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": []})).unwrap();
    let desc = |bytes: &[u8], media_type: &str| spec::Descriptor {
        media_type: media_type.to_string(),
        digest: Digest::sha256_of(bytes),
        size: bytes.len() as u64,
        platform: Some(platform.clone()),
        annotations: Default::default(),
    };

    let m = verify_platform_manifest(
        &desc(&manifest, spec::OCI_MANIFEST),
        &raw(&manifest, None, None),
        &platform,
        "img",
    )
    .unwrap();
    assert_eq!(m.config.digest, config);
    // No media type in the descriptor: the one sent decides, then the document.
    assert!(verify_platform_manifest(
        &desc(&manifest, ""),
        &raw(&manifest, Some(spec::DOCKER_MANIFEST), None),
        &platform,
        "img"
    )
    .is_ok());
    assert!(verify_platform_manifest(
        &desc(&manifest, ""),
        &raw(&manifest, None, None),
        &platform,
        "img"
    )
    .is_ok());

    let tampered = [manifest.as_slice(), b" "].concat();
    match verify_platform_manifest(
        &desc(&manifest, spec::OCI_MANIFEST),
        &raw(&tampered, None, None),
        &platform,
        "img",
    ) {
        Err(OciError::DigestMismatch { what, .. }) => assert_eq!(what, "the linux/arm64 manifest"),
        other => panic!("unexpected {other:?}"),
    }
    match verify_platform_manifest(
        &desc(&index, spec::OCI_INDEX),
        &raw(&index, None, None),
        &platform,
        "img",
    ) {
        Err(OciError::Document {
            what,
            source: spec::DocumentError::MediaType(m),
            ..
        }) => {
            assert_eq!(what, "the platform manifest");
            assert_eq!(m, "a nested index");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        verify_platform_manifest(
            &desc(b"{", spec::OCI_MANIFEST),
            &raw(b"{", None, None),
            &platform,
            "img"
        ),
        Err(OciError::Document {
            what: "the platform manifest",
            ..
        })
    ));
}

#[test]
fn a_registry_image_is_recorded_by_registry_repository_and_tag() {
    let parse = |s: &str| reference::parse_docker(s).unwrap();
    // (reference, name, tag as stored, latest)
    let table = [
        (
            "example.test:5000/team/app",
            "example.test:5000/team/app",
            Some("latest"),
            true,
        ),
        (
            "example.test:5000/team/app:1.2",
            "example.test:5000/team/app",
            Some("1.2"),
            false,
        ),
    ];
    for (input, name, tag, latest) in table {
        let r = parse(input);
        let id = registry_identity(
            &r,
            r.effective_tag().map(str::to_string),
            format!("docker://{r}"),
        );
        assert_eq!(id.source, "docker");
        assert_eq!(id.location, "example.test:5000");
        assert_eq!(id.repository, "team/app");
        assert_eq!(id.name, name);
        assert_eq!(id.tag.as_deref(), tag);
        assert_eq!(id.latest, latest, "{input}");
        assert_eq!(
            id.annotations,
            vec![
                (
                    "appc.io/docker/registryurl".to_string(),
                    "example.test:5000".to_string()
                ),
                (
                    "appc.io/docker/repository".to_string(),
                    "team/app".to_string()
                ),
            ]
        );
    }
    let pinned = parse(&format!("example.test/app@{}", Digest::sha256_of(b"m")));
    assert!(!registry_identity(&pinned, None, String::new()).latest);

    let layer = |n: &[u8]| spec::Descriptor {
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        digest: Digest::sha256_of(n),
        size: n.len() as u64,
        platform: None,
        annotations: Default::default(),
    };
    let resolved = Resolved {
        index: Some((b"index".to_vec(), Digest::sha256_of(b"index"))),
        bytes: b"manifest".to_vec(),
        digest: Digest::sha256_of(b"manifest"),
        manifest: spec::Manifest {
            media_type: None,
            config: layer(b"c"),
            layers: vec![layer(b"1"), layer(b"2")],
        },
    };
    let (plan, index) = resolved.into_plan();
    assert_eq!(index.map(|(_, d)| d), Some(Digest::sha256_of(b"index")));
    assert_eq!(
        plan.manifest,
        Some((b"manifest".to_vec(), Digest::sha256_of(b"manifest")))
    );
    assert_eq!(plan.config.digest, Some(Digest::sha256_of(b"c")));
    let layers: Vec<_> = plan.layers.iter().map(|l| l.digest.clone()).collect();
    assert_eq!(
        layers,
        vec![Some(Digest::sha256_of(b"1")), Some(Digest::sha256_of(b"2"))]
    );
}

#[test]
fn mirrors_in_order_each_with_its_own_credentials() {
    // The first mirror lacks the image (404), the second has it behind Basic auth.
    let empty = Reg::start(Auth::None);
    let mirror = Reg::start(Auth::Basic("m".into(), "mirror-pw".into()));
    let digest = mirror.push("pause", "3.9", &layered());
    let config = tempfile::tempdir().unwrap();
    let dir = config.path().join("registries.d/registry.k8s.io");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("hosts.toml"),
        format!(
            // The server, last, is kept offline (the test must not reach out).
            "server = \"http://127.0.0.1:1\"\n\
             [host.\"http://{}\"]\n[host.\"http://{}\"]\n",
            empty.host(),
            mirror.host()
        ),
    )
    .unwrap();
    let mirrors = || Mirrors::new(&[config.path()]);
    let env = Env::new();
    // Plain http mirrors need no `http` option: the file names them.
    let fetcher = |auth| {
        env.fetcher(PullPolicy::Update, "image", auth)
            .with_mirrors(mirrors())
    };
    // Credentials for the registry's name are not the mirror's.
    let mut wrong_host = AuthConfig::default();
    wrong_host.insert(
        "registry.k8s.io",
        Credentials {
            user: "m".into(),
            password: "mirror-pw".into(),
        },
    );
    let err = fetcher(wrong_host)
        .fetch("docker://registry.k8s.io/pause:3.9")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("http://{}", empty.host()))
            && err.contains(&format!(
                "http://{} (registry {} requires",
                mirror.host(),
                mirror.host()
            ))
            && err.contains("http://127.0.0.1:1 ("),
        "{err}"
    );
    env.assert_empty();

    let info = fetcher(creds_for(&mirror, "m", "mirror-pw"))
        .fetch("docker://registry.k8s.io/pause:3.9")
        .unwrap();
    // The image keeps its name; the first mirror was asked and said 404.
    assert_eq!(info.name, "registry.k8s.io/pause");
    assert!(empty
        .log()
        .iter()
        .any(|(p, s, _)| p == "/v2/pause/manifests/3.9" && *s == 404));
    assert!(mirror.blob_gets() > 0);
    assert!(env
        .progress
        .messages
        .lock()
        .unwrap()
        .iter()
        .any(|m| m.contains(&format!("from mirror http://{}", mirror.host()))));
    // Pinned by digest: found in the store under the registry's name.
    let pinned = env
        .fetcher(PullPolicy::New, "", AuthConfig::default())
        .with_mirrors(mirrors())
        .fetch(&format!("docker://registry.k8s.io/pause@{digest}"))
        .unwrap();
    assert_eq!(pinned.id, info.id);
}
