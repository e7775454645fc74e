//! Fetch tests: pure parts, and the whole flow against a real HTTP server on
//! loopback, a real store, real gpg keys and the real keystore. Discovery tests run
//! in a private network namespace so that `localhost/...` names reach port 80.

use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;

use e2e::aci::{gzip, AciBuilder};
use e2e::gpg::GpgHome;
use e2e::http::TestServer;
use e2e::netns::in_new_netns;

use super::*;
use crate::image::trust::TrustScope;

/// Records what fetch reports.
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

impl Recorder {
    fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

/// A store, a keystore, a gpg home with one key, in one temp dir.
struct Env {
    dir: tempfile::TempDir,
    store: Store,
    keystore: Keystore,
    gpg: GpgHome,
    fpr: String,
    progress: Recorder,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("cas")).unwrap();
        let keystore = Keystore::new(&dir.path().join("etc"), &dir.path().join("usr"));
        let gpg = GpgHome::new();
        let fpr = gpg.gen_key("Image Signer <signer@example.com>", "ed25519");
        Env {
            dir,
            store,
            keystore,
            gpg,
            fpr,
            progress: Recorder::default(),
        }
    }

    fn trust(&self, prefix: &str) {
        self.keystore
            .add(
                &self.gpg.export_armored(&self.fpr),
                &TrustScope::Prefix(prefix.to_string()),
            )
            .unwrap();
    }

    fn fetcher(&self, policy: PullPolicy, insecure: &str) -> Fetcher<'_> {
        let opts = FetchOptions {
            pull_policy: policy,
            insecure: insecure.parse().unwrap(),
            signature: None,
        };
        Fetcher::new(&self.store, &self.keystore, opts, &self.progress)
    }

    /// A gzipped ACI and its armored detached signature by `self.fpr`.
    fn signed(&self, aci: &AciBuilder) -> (Vec<u8>, Vec<u8>) {
        let bytes = gzip(&aci.build_tar());
        let sig = self.sign(&bytes);
        (bytes, sig)
    }

    fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        let path = self.gpg.path().join("to-sign");
        fs::write(&path, bytes).unwrap();
        self.gpg.sign_detached_armored(&self.fpr, &path)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    /// Nothing was stored and no temp file is left.
    fn assert_nothing_stored(&self) {
        assert!(
            self.store.list().unwrap().is_empty(),
            "the store is not empty"
        );
        let left: Vec<_> = fs::read_dir(self.store.tmp_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "temp files left: {left:?}");
    }
}

fn app(name: &str) -> AciBuilder {
    AciBuilder::new(name)
        .label("os", "linux")
        .label("arch", "amd64")
        .exec(&["/bin/app"])
        .file("bin/app", b"#!/bin/sh\necho app\n", 0o755)
}

fn url_ref(url: &str) -> ImageRef {
    ImageRef::Url(url.to_string())
}

fn name_ref(s: &str) -> ImageRef {
    let r = ImageRef::parse(s).unwrap();
    assert!(matches!(r, ImageRef::Name { .. }), "{s} is not a name");
    r
}

// ---- pure parts ----

#[test]
fn reads_manifest_from_plain_and_compressed_archives() {
    let dir = tempfile::tempdir().unwrap();
    let tar = app("example.com/app").label("version", "1").build_tar();
    for (i, bytes) in [tar.clone(), gzip(&tar)].into_iter().enumerate() {
        let path = dir.path().join(format!("a{i}.aci"));
        fs::write(&path, bytes).unwrap();
        let m = read_manifest(&mut File::open(&path).unwrap(), "a.aci").unwrap();
        assert_eq!(m.name.as_str(), "example.com/app");
        assert_eq!(m.label("version"), Some("1"));
    }
    // A tar without a manifest.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    b.append_data(&mut h, "rootfs/", std::io::empty()).unwrap();
    let path = dir.path().join("none.aci");
    fs::write(&path, b.into_inner().unwrap()).unwrap();
    let err = read_manifest(&mut File::open(&path).unwrap(), "none.aci").unwrap_err();
    assert!(matches!(err, FetchError::NoManifest { .. }), "{err}");
    // A broken manifest.
    let path = dir.path().join("bad.aci");
    fs::write(
        &path,
        app("example.com/app").manifest_bytes(b"{").build_tar(),
    )
    .unwrap();
    let err = read_manifest(&mut File::open(&path).unwrap(), "bad.aci").unwrap_err();
    assert!(matches!(err, FetchError::InvalidManifest { .. }), "{err}");
}

#[test]
fn expected_name_and_labels_are_checked() {
    let tar = app("example.com/app").label("version", "1.0").build_tar();
    let m = ImageManifest::from_slice(
        &tar::Archive::new(tar.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_str() == Some("manifest"))
            .map(|mut e| {
                let mut v = Vec::new();
                e.read_to_end(&mut v).unwrap();
                v
            })
            .unwrap(),
    )
    .unwrap();
    let labels = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let ok = labels(&[("version", "1.0"), ("os", "linux")]);
    let expect = |name, labels| Expect {
        name,
        labels,
        latest: false,
    };
    assert!(check_expected("u", &m, &expect(Some("example.com/app"), &ok)).is_ok());
    assert!(check_expected("u", &m, &expect(None, &[])).is_ok());
    let err = check_expected("u", &m, &expect(Some("example.com/other"), &ok)).unwrap_err();
    assert!(
        matches!(&err, FetchError::NameMismatch { expected, found, .. }
            if expected == "example.com/other" && found == "example.com/app"),
        "{err}"
    );
    let wrong = labels(&[("version", "2.0")]);
    let err = check_expected("u", &m, &expect(Some("example.com/app"), &wrong)).unwrap_err();
    assert!(err.to_string().contains("version=1.0"), "{err}");
    assert!(err.to_string().contains("version=2.0"), "{err}");
    let absent = labels(&[("channel", "beta")]);
    let err = check_expected("u", &m, &expect(Some("example.com/app"), &absent)).unwrap_err();
    assert!(err.to_string().contains("channel=<unset>"), "{err}");
}

#[test]
fn names_are_described_like_references() {
    let l = vec![
        ("os".to_string(), "linux".to_string()),
        ("version".to_string(), "1".to_string()),
    ];
    assert_eq!(describe_name("e.com/a", &l), "e.com/a:1,os=linux");
    assert_eq!(describe_name("e.com/a", &[]), "e.com/a");
}

// ---- local files ----

#[test]
fn file_with_adjacent_signature_is_verified_and_imported() {
    let env = Env::new();
    env.trust("example.com");
    let (bytes, sig) = env.signed(&app("example.com/app"));
    let path = env.write("app.aci", &bytes);
    env.write("app.aci.asc", &sig);
    let info = env
        .fetcher(PullPolicy::New, "none")
        .fetch(&ImageRef::Path(path))
        .unwrap();
    assert_eq!(info.name, "example.com/app");
    assert!(!info.latest);
    assert_eq!(env.store.list().unwrap().len(), 1);
    assert!(env
        .progress
        .messages()
        .iter()
        .any(|m| m.contains("signature verified") && m.contains(&env.fpr)));
}

#[test]
fn file_with_signature_option() {
    let env = Env::new();
    env.trust("example.com/app");
    let (bytes, sig) = env.signed(&app("example.com/app"));
    let path = env.write("app.aci", &bytes);
    let sig_path = env.write("elsewhere.sig", &sig);
    let opts = FetchOptions {
        signature: Some(sig_path),
        ..Default::default()
    };
    let fetcher = Fetcher::new(&env.store, &env.keystore, opts, &env.progress);
    let info = fetcher.fetch(&ImageRef::Path(path)).unwrap();
    assert_eq!(info.name, "example.com/app");
}

#[test]
fn unsigned_file_is_refused_and_nothing_stored() {
    let env = Env::new();
    env.trust("example.com");
    let path = env.write("app.aci", &gzip(&app("example.com/app").build_tar()));
    let err = env
        .fetcher(PullPolicy::New, "none")
        .fetch(&ImageRef::Path(path))
        .unwrap_err();
    assert!(matches!(err, FetchError::SignatureMissing { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("app.aci.asc"), "{msg}");
    assert!(msg.contains("--insecure-options=image"), "{msg}");
    env.assert_nothing_stored();
}

#[test]
fn file_signed_by_untrusted_key_is_refused() {
    let env = Env::new();
    // Trusted for another prefix only.
    env.trust("other.org");
    let (bytes, sig) = env.signed(&app("example.com/app"));
    let path = env.write("app.aci", &bytes);
    env.write("app.aci.asc", &sig);
    let err = env
        .fetcher(PullPolicy::New, "none")
        .fetch(&ImageRef::Path(path))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            FetchError::Verify { name, source, .. }
                if name == "example.com/app"
                    && matches!(
                        **source,
                        VerifyError::NoTrustedKeys { .. } | VerifyError::UntrustedSigner { .. }
                    )
        ),
        "{err}"
    );
    env.assert_nothing_stored();
}

#[test]
fn file_with_signature_of_other_data_is_refused() {
    let env = Env::new();
    env.trust("example.com");
    let (bytes, _) = env.signed(&app("example.com/app"));
    let other_sig = env.sign(b"something else");
    let path = env.write("app.aci", &bytes);
    env.write("app.aci.asc", &other_sig);
    let err = env
        .fetcher(PullPolicy::New, "none")
        .fetch(&ImageRef::Path(path))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            FetchError::Verify { source, .. } if matches!(**source, VerifyError::BadSignature { .. })
        ),
        "{err}"
    );
    env.assert_nothing_stored();
}

#[test]
fn insecure_image_skips_verification_with_a_warning() {
    let env = Env::new();
    let path = env.write("app.aci", &gzip(&app("example.com/app").build_tar()));
    let info = env
        .fetcher(PullPolicy::New, "image")
        .fetch(&ImageRef::Path(path))
        .unwrap();
    assert_eq!(info.name, "example.com/app");
    assert!(env
        .progress
        .messages()
        .contains(&SKIPPED_VERIFICATION.to_string()));
}

#[test]
fn missing_file_is_a_clear_error() {
    let env = Env::new();
    let path = env.dir.path().join("nope.aci");
    let err = env
        .fetcher(PullPolicy::New, "image")
        .fetch(&ImageRef::Path(path.clone()))
        .unwrap_err();
    assert!(matches!(err, FetchError::OpenFile { .. }), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()));
}

// ---- hashes and docker ----

#[test]
fn hash_is_resolved_from_the_store_only() {
    let env = Env::new();
    let path = env.write("app.aci", &gzip(&app("example.com/app").build_tar()));
    let fetcher = env.fetcher(PullPolicy::Update, "image");
    let info = fetcher.fetch(&ImageRef::Path(path)).unwrap();
    let prefix = info.id[..20].to_string();
    let found = fetcher.fetch(&ImageRef::Hash(prefix)).unwrap();
    assert_eq!(found.id, info.id);
    let err = fetcher
        .fetch(&ImageRef::Hash("sha512-00000000".into()))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            FetchError::Store { source, .. } if matches!(**source, StoreError::NotFound { .. })
        ),
        "{err}"
    );
}

#[test]
fn docker_references_go_to_the_oci_fetcher() {
    let env = Env::new();
    // A bad reference is refused before any network access.
    let err = env
        .fetcher(PullPolicy::New, "image")
        .fetch(&ImageRef::parse("docker://Busybox").unwrap())
        .unwrap_err();
    assert!(matches!(err, FetchError::Oci(_)), "{err}");
    assert!(err.to_string().contains("lower-case"), "{err}");
    // Pull policy never: only the store is asked.
    let err = env
        .fetcher(PullPolicy::Never, "image")
        .fetch(&ImageRef::parse("docker://busybox").unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("pull policy is never"), "{err}");
}

// ---- URLs ----

/// A server with a signed image at `/app.aci` and its signature.
fn serve_signed(env: &Env, aci: &AciBuilder) -> (TestServer, Vec<u8>) {
    let server = TestServer::start();
    let (bytes, sig) = env.signed(aci);
    server.put("/app.aci", bytes.clone());
    server.put("/app.aci.asc", sig);
    (server, bytes)
}

#[test]
fn url_fetch_verifies_stores_and_records_the_cache() {
    let env = Env::new();
    env.trust("example.com");
    let (server, bytes) = serve_signed(&env, &app("example.com/app"));
    let url = server.url("/app.aci");
    let info = env
        .fetcher(PullPolicy::Update, "http")
        .fetch(&url_ref(&url))
        .unwrap();
    assert_eq!(info.name, "example.com/app");
    assert!(!info.latest);
    assert_eq!(server.statuses("/app.aci"), vec![200]);
    assert_eq!(server.statuses("/app.aci.asc"), vec![200]);
    let remote = env.store.remote(&url).unwrap().expect("a cache entry");
    assert_eq!(remote.image_id, info.id);
    assert_eq!(remote.etag, Some(TestServer::etag_of(&bytes)));
    assert_eq!(remote.max_age, None);
    assert_eq!(*env.progress.bytes.lock().unwrap(), bytes.len() as u64);
    assert_eq!(
        env.progress.starts.lock().unwrap().as_slice(),
        &[(format!("downloading {url}"), Some(bytes.len() as u64))]
    );
    // Only the store's files remain: the download's temp file is gone.
    assert_eq!(fs::read_dir(env.store.tmp_dir()).unwrap().count(), 0);
}

#[test]
fn update_revalidates_and_a_304_transfers_nothing() {
    let env = Env::new();
    env.trust("example.com");
    let (server, _) = serve_signed(&env, &app("example.com/app"));
    let url = server.url("/app.aci");
    let fetcher = env.fetcher(PullPolicy::Update, "http");
    let first = fetcher.fetch(&url_ref(&url)).unwrap();
    let before = env.store.remote(&url).unwrap().unwrap();
    let second = fetcher.fetch(&url_ref(&url)).unwrap();
    assert_eq!(second.id, first.id);
    let log: Vec<_> = server
        .log()
        .into_iter()
        .filter(|r| r.path == "/app.aci")
        .collect();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].status, 304);
    assert_eq!(log[1].body_len, 0);
    assert_eq!(log[1].if_none_match, before.etag);
    // The signature is not fetched again for an unchanged image.
    assert_eq!(server.hits("/app.aci.asc"), 1);
    assert_eq!(env.store.list().unwrap().len(), 1);
    let after = env.store.remote(&url).unwrap().unwrap();
    assert!(after.download_time >= before.download_time);
}

#[test]
fn update_downloads_a_changed_image() {
    let env = Env::new();
    env.trust("example.com");
    let (server, _) = serve_signed(&env, &app("example.com/app").label("version", "1"));
    let url = server.url("/app.aci");
    let fetcher = env.fetcher(PullPolicy::Update, "http");
    let first = fetcher.fetch(&url_ref(&url)).unwrap();
    let (bytes, sig) = env.signed(&app("example.com/app").label("version", "2"));
    server.put("/app.aci", bytes.clone());
    server.put("/app.aci.asc", sig);
    let second = fetcher.fetch(&url_ref(&url)).unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(second.manifest.label("version"), Some("2"));
    assert_eq!(server.statuses("/app.aci"), vec![200, 200]);
    let remote = env.store.remote(&url).unwrap().unwrap();
    assert_eq!(remote.image_id, second.id);
    assert_eq!(remote.etag, Some(TestServer::etag_of(&bytes)));
}

#[test]
fn cached_downloads_are_used_without_requests() {
    let env = Env::new();
    env.trust("example.com");
    let (server, _) = serve_signed(&env, &app("example.com/app"));
    let url = server.url("/app.aci");
    server.set_max_age("/app.aci", Some(3600));
    let first = env
        .fetcher(PullPolicy::Update, "http")
        .fetch(&url_ref(&url))
        .unwrap();
    assert_eq!(
        env.store.remote(&url).unwrap().unwrap().max_age,
        Some(std::time::Duration::from_secs(3600))
    );
    server.clear_log();
    // `new`, `never`, and `update` while max-age holds: no request at all.
    for policy in [PullPolicy::New, PullPolicy::Never, PullPolicy::Update] {
        let info = env.fetcher(policy, "http").fetch(&url_ref(&url)).unwrap();
        assert_eq!(info.id, first.id, "{policy}");
        assert_eq!(server.total_requests(), 0, "{policy} made a request");
    }
}

#[test]
fn new_uses_a_cached_download_even_without_max_age() {
    let env = Env::new();
    env.trust("example.com");
    let (server, _) = serve_signed(&env, &app("example.com/app"));
    let url = server.url("/app.aci");
    let fetcher = env.fetcher(PullPolicy::New, "http");
    let first = fetcher.fetch(&url_ref(&url)).unwrap();
    server.clear_log();
    assert_eq!(fetcher.fetch(&url_ref(&url)).unwrap().id, first.id);
    assert_eq!(server.total_requests(), 0);
    // Once the image is gone from the store, the cache entry no longer counts.
    env.store.remove(&first.id).unwrap();
    assert_eq!(fetcher.fetch(&url_ref(&url)).unwrap().id, first.id);
    assert_eq!(server.statuses("/app.aci"), vec![200]);
}

#[test]
fn never_without_a_cached_download_fails() {
    let env = Env::new();
    let server = TestServer::start();
    let url = server.url("/app.aci");
    let err = env
        .fetcher(PullPolicy::Never, "http,image")
        .fetch(&url_ref(&url))
        .unwrap_err();
    assert!(matches!(err, FetchError::NotInStore { .. }), "{err}");
    assert_eq!(server.total_requests(), 0);
}

#[test]
fn plain_http_is_refused_without_insecure_http() {
    let env = Env::new();
    env.trust("example.com");
    let (server, _) = serve_signed(&env, &app("example.com/app"));
    let url = server.url("/app.aci");
    let err = env
        .fetcher(PullPolicy::Update, "none")
        .fetch(&url_ref(&url))
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Http(HttpError::InsecureHttp { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("--insecure-options=http"), "{err}");
    assert_eq!(server.total_requests(), 0);
    env.assert_nothing_stored();
}

#[test]
fn unsigned_url_is_refused_and_nothing_stored() {
    let env = Env::new();
    env.trust("example.com");
    let server = TestServer::start();
    server.put("/app.aci", gzip(&app("example.com/app").build_tar()));
    let url = server.url("/app.aci");
    let err = env
        .fetcher(PullPolicy::Update, "http")
        .fetch(&url_ref(&url))
        .unwrap_err();
    assert!(matches!(err, FetchError::SignatureMissing { .. }), "{err}");
    assert!(err.to_string().contains(&format!("{url}.asc")), "{err}");
    env.assert_nothing_stored();
    assert!(env.store.remote(&url).unwrap().is_none());
}

#[test]
fn untrusted_url_is_refused_and_nothing_stored() {
    let env = Env::new();
    // No key trusted at all.
    let (server, _) = serve_signed(&env, &app("example.com/app"));
    let url = server.url("/app.aci");
    let err = env
        .fetcher(PullPolicy::Update, "http")
        .fetch(&url_ref(&url))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            FetchError::Verify { source, .. } if matches!(**source, VerifyError::NoTrustedKeys { .. })
        ),
        "{err}"
    );
    let msg = manifests::error::chain(&err);
    assert!(msg.contains("rkt trust"), "{msg}");
    env.assert_nothing_stored();
    assert!(env.store.remote(&url).unwrap().is_none());
}

#[test]
fn insecure_image_url_fetch_skips_the_signature() {
    let env = Env::new();
    let server = TestServer::start();
    server.put("/app.aci", gzip(&app("example.com/app").build_tar()));
    let info = env
        .fetcher(PullPolicy::Update, "http,image")
        .fetch(&url_ref(&server.url("/app.aci")))
        .unwrap();
    assert_eq!(info.name, "example.com/app");
    assert_eq!(server.hits("/app.aci.asc"), 0);
    assert!(env
        .progress
        .messages()
        .contains(&SKIPPED_VERIFICATION.to_string()));
}

#[test]
fn downloads_left_by_dead_processes_are_removed() {
    let env = Env::new();
    env.trust("example.com");
    let (server, _) = serve_signed(&env, &app("example.com/app"));
    let stale = env.store.tmp_dir().join("fetch-dead.aci");
    fs::write(&stale, b"partial").unwrap();
    // One a live process is writing: locked, so it stays.
    let live = env.store.tmp_dir().join("fetch-live.aci");
    fs::write(&live, b"in progress").unwrap();
    let held = File::open(&live).unwrap();
    rustix::fs::flock(&held, FlockOperation::LockExclusive).unwrap();
    // Not ours: untouched.
    let other = env.store.tmp_dir().join("unrelated");
    fs::write(&other, b"x").unwrap();
    env.fetcher(PullPolicy::Update, "http")
        .fetch(&url_ref(&server.url("/app.aci")))
        .unwrap();
    assert!(!stale.exists());
    assert!(live.exists());
    assert!(other.exists());
}

#[test]
fn missing_url_gives_a_clear_404_error() {
    let env = Env::new();
    let server = TestServer::start();
    let url = server.url("/missing.aci");
    let err = env
        .fetcher(PullPolicy::Update, "http")
        .fetch(&url_ref(&url))
        .unwrap_err();
    assert!(matches!(err, FetchError::NotFound { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&url) && msg.contains("404"), "{msg}");
    env.assert_nothing_stored();
}

#[test]
fn redirects_are_followed_and_credentials_never_shown() {
    let env = Env::new();
    env.trust("example.com");
    let (server, _) = serve_signed(&env, &app("example.com/app"));
    server.redirect("/latest.aci", "/app.aci");
    server.redirect("/latest.aci.asc", "/app.aci.asc");
    let info = env
        .fetcher(PullPolicy::Update, "http")
        .fetch(&url_ref(&server.url("/latest.aci")))
        .unwrap();
    assert_eq!(info.name, "example.com/app");
    assert_eq!(server.statuses("/latest.aci"), vec![302]);
    assert_eq!(server.statuses("/app.aci"), vec![200]);

    let secret_url = format!("http://user:hunter2@{}/gone.aci", server.addr());
    let err = env
        .fetcher(PullPolicy::Update, "http")
        .fetch(&url_ref(&secret_url))
        .unwrap_err();
    assert!(matches!(err, FetchError::NotFound { .. }), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn a_dead_server_is_a_network_error() {
    let env = Env::new();
    let url = {
        let server = TestServer::start();
        server.url("/app.aci")
    };
    let err = env
        .fetcher(PullPolicy::Update, "http")
        .fetch(&url_ref(&url))
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Http(HttpError::Request { .. })),
        "{err}"
    );
    assert!(err.to_string().contains(&url), "{err}");
}

// ---- discovery, in a private network namespace with a server on port 80 ----

const ROOT_PAGE: &str = r#"<html><head>
<meta name="ac-discovery" content="localhost http://localhost/images/{name}-{version}-{os}-{arch}.{ext}">
<meta name="ac-discovery-pubkeys" content="localhost http://localhost/pubkeys.asc">
</head></html>"#;

/// Serve `aci` (signed by the env's key) where [`ROOT_PAGE`]'s template puts `name`
/// with `version`.
fn serve_discovered(env: &Env, server: &TestServer, name: &str, version: &str, aci: &AciBuilder) {
    let (bytes, sig) = env.signed(aci);
    let path = format!("/images/{name}-{version}-linux-amd64.aci");
    server.put(&path, bytes);
    server.put(&format!("{path}.asc"), sig);
}

#[test]
fn discovery_walks_up_and_fetches_by_name() {
    in_new_netns(|| {
        let env = Env::new();
        env.trust("localhost/acme");
        let server = TestServer::start_on("127.0.0.1:80").unwrap();
        // /acme/app has no page (404); /acme has one for another prefix only; the root
        // page applies.
        server.put_discovery(
            "/acme",
            r#"<meta name="ac-discovery" content="localhost/other http://localhost/x/{name}.{ext}">"#,
        );
        server.put_discovery("/", ROOT_PAGE);
        serve_discovered(
            &env,
            &server,
            "localhost/acme/app",
            "latest",
            &app("localhost/acme/app"),
        );

        let image = name_ref("localhost/acme/app");
        let info = env.fetcher(PullPolicy::New, "http").fetch(&image).unwrap();
        assert_eq!(info.name, "localhost/acme/app");
        assert!(info.latest, "fetched without a version: marked latest");
        assert_eq!(server.statuses("/acme/app"), vec![404]);
        assert_eq!(server.statuses("/acme"), vec![200]);
        assert_eq!(server.statuses("/"), vec![200]);
        let aci_path = "/images/localhost/acme/app-latest-linux-amd64.aci";
        assert_eq!(server.statuses(aci_path), vec![200]);

        // `new` finds it in the store: no request.
        server.clear_log();
        let again = env.fetcher(PullPolicy::New, "http").fetch(&image).unwrap();
        assert_eq!(again.id, info.id);
        assert_eq!(server.total_requests(), 0);

        // `update` discovers again and revalidates: 304.
        let updated = env
            .fetcher(PullPolicy::Update, "http")
            .fetch(&image)
            .unwrap();
        assert_eq!(updated.id, info.id);
        assert_eq!(server.statuses(aci_path), vec![304]);
        assert_eq!(env.store.list().unwrap().len(), 1);
    });
}

#[test]
fn discovery_fills_version_and_labels() {
    in_new_netns(|| {
        let env = Env::new();
        env.trust("localhost");
        let server = TestServer::start_on("127.0.0.1:80").unwrap();
        server.put_discovery("/app", ROOT_PAGE);
        serve_discovered(
            &env,
            &server,
            "localhost/app",
            "1.0",
            &app("localhost/app").label("version", "1.0"),
        );
        let info = env
            .fetcher(PullPolicy::New, "http")
            .fetch(&name_ref("localhost/app:1.0,os=linux"))
            .unwrap();
        assert_eq!(info.manifest.label("version"), Some("1.0"));
        assert!(!info.latest, "fetched with a version: not latest");

        // Asking for 2.0 where the server wrongly serves 1.0: refused.
        serve_discovered(
            &env,
            &server,
            "localhost/app",
            "2.0",
            &app("localhost/app").label("version", "1.0").label("x", "y"),
        );
        let err = env
            .fetcher(PullPolicy::New, "http")
            .fetch(&name_ref("localhost/app:2.0"))
            .unwrap_err();
        assert!(matches!(err, FetchError::LabelMismatch { .. }), "{err}");
        assert_eq!(env.store.list().unwrap().len(), 1);
    });
}

#[test]
fn discovered_image_with_another_name_is_refused() {
    in_new_netns(|| {
        let env = Env::new();
        env.trust("localhost");
        let server = TestServer::start_on("127.0.0.1:80").unwrap();
        server.put_discovery("/app", ROOT_PAGE);
        // Correctly signed by a key trusted for `localhost`, but named differently.
        serve_discovered(
            &env,
            &server,
            "localhost/app",
            "latest",
            &app("localhost/evil"),
        );
        let err = env
            .fetcher(PullPolicy::New, "http")
            .fetch(&name_ref("localhost/app"))
            .unwrap_err();
        assert!(
            matches!(&err, FetchError::NameMismatch { expected, found, .. }
                if expected == "localhost/app" && found == "localhost/evil"),
            "{err}"
        );
        env.assert_nothing_stored();
    });
}

#[test]
fn discovery_follows_redirects_and_reports_every_attempt() {
    in_new_netns(|| {
        let env = Env::new();
        env.trust("localhost");
        let server = TestServer::start_on("127.0.0.1:80").unwrap();
        server.redirect("/app?ac-discovery=1", "/meta/app.html");
        server.put("/meta/app.html", ROOT_PAGE);
        serve_discovered(
            &env,
            &server,
            "localhost/app",
            "latest",
            &app("localhost/app"),
        );
        let info = env
            .fetcher(PullPolicy::New, "http")
            .fetch(&name_ref("localhost/app"))
            .unwrap();
        assert_eq!(info.name, "localhost/app");
        assert_eq!(server.statuses("/meta/app.html"), vec![200]);

        // Nothing anywhere: the error lists what was tried.
        let err = env
            .fetcher(PullPolicy::New, "http")
            .fetch(&name_ref("localhost/nothing/here"))
            .unwrap_err();
        let FetchError::Discovery { attempts, .. } = &err else {
            panic!("expected a discovery error, got {err}");
        };
        let urls: Vec<&str> = attempts.iter().map(|a| a.url.as_str()).collect();
        assert_eq!(
            urls,
            vec![
                "https://localhost/nothing/here?ac-discovery=1",
                "http://localhost/nothing/here?ac-discovery=1",
                "https://localhost/nothing?ac-discovery=1",
                "http://localhost/nothing?ac-discovery=1",
                "https://localhost?ac-discovery=1",
                "http://localhost?ac-discovery=1",
            ]
        );
        let msg = err.to_string();
        assert!(msg.contains("localhost/nothing/here"), "{msg}");
        assert!(msg.contains("HTTP status 404"), "{msg}");
    });
}

#[test]
fn discovery_without_insecure_http_uses_https_only() {
    in_new_netns(|| {
        let env = Env::new();
        let server = TestServer::start_on("127.0.0.1:80").unwrap();
        server.put_discovery("/app", ROOT_PAGE);
        let err = env
            .fetcher(PullPolicy::New, "none")
            .fetch(&name_ref("localhost/app"))
            .unwrap_err();
        assert!(matches!(err, FetchError::Discovery { .. }), "{err}");
        assert_eq!(server.total_requests(), 0, "plain http was used");
    });
}

#[test]
fn public_keys_are_discovered_for_a_prefix() {
    in_new_netns(|| {
        let env = Env::new();
        let server = TestServer::start_on("127.0.0.1:80").unwrap();
        server.put_discovery("/", ROOT_PAGE);
        let key = env.gpg.export_armored(&env.fpr);
        server.put("/pubkeys.asc", key.clone());
        let insecure: InsecureOptions = "http".parse().unwrap();
        let client = HttpClient::new(insecure);
        let keys = discover_pubkeys(&client, "localhost/acme", insecure).unwrap();
        assert_eq!(keys, vec!["http://localhost/pubkeys.asc".to_string()]);
        assert_eq!(fetch_pubkey(&client, &keys[0]).unwrap(), key);
        server.remove("/");
        server.put_discovery("/", "<html></html>");
        let err = discover_pubkeys(&client, "localhost/acme", insecure).unwrap_err();
        assert!(matches!(err, FetchError::KeyDiscovery { .. }), "{err}");
    });
}

#[test]
fn discovery_page_helpers_agree_with_the_server() {
    // The template of ROOT_PAGE renders to the path serve_discovered uses.
    let metas = parse_meta(ROOT_PAGE);
    let eps =
        discovery::endpoints_from_meta(&metas, "localhost/app", &discovery::template_labels(&[]));
    assert_eq!(
        eps.aci[0].0,
        format!(
            "http://localhost/images/localhost/app-latest-linux-{}.aci",
            discovery::default_arch()
        )
    );
}
