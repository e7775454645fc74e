//! Fetching images into the store: local files, http(s) URLs with caching, appc
//! names through meta discovery, and store hashes.
//!
//! Nothing reaches the store before its signature verified (unless
//! `--insecure-options=image`): a download goes to a temp file in the store's `tmp/`
//! (removed on any failure), its manifest name is read, the detached signature is
//! checked over the exact bytes received, and only then is the file imported.
//!
//! Pull policies (`--pull-policy`):
//!
//! | reference | `new` | `update` | `never` |
//! |-----------|-------|----------|---------|
//! | path      | import the file | import the file | import the file |
//! | URL       | cached download if its image is stored, else download | within `max-age`: cached; else revalidate (`If-None-Match`) | cached download only |
//! | name      | best stored match, else discover and download | discover, then as a URL under `update` | best stored match only |
//! | hash      | store | store | store |

pub mod discovery;
pub mod http;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use manifests::appc::{AppcError, ImageManifest};
use rustix::fs::FlockOperation;

use crate::image::archive::{self, ArchiveError};
use crate::image::oci::{AuthConfig, Mirrors, OciError, OciFetcher};
use crate::image::reference::ImageRef;
use crate::image::store::{ImageInfo, ImportOptions, RemoteEntry, Store, StoreError};
use crate::image::transfer::SKIPPED_VERIFICATION;
use crate::image::trust::{Keystore, VerifyError};
use crate::insecure::InsecureOptions;
use discovery::{describe_attempts, Attempt};
pub use discovery::{discover, discover_pubkeys, fetch_pubkey, parse_meta, Endpoints, Meta};
pub use http::{HttpClient, HttpError};
// What fetch's API takes, for its callers (they live in the leaf both fetchers share).
pub use crate::image::transfer::{Progress, PullPolicy, QuietProgress, StderrProgress};

/// Name prefix of download temp files in the store's `tmp/`.
const DOWNLOAD_PREFIX: &str = "fetch-";
/// The largest manifest we read out of an archive to learn the image name.
const MANIFEST_LIMIT: u64 = 1024 * 1024;
/// The largest detached signature we accept.
const SIGNATURE_LIMIT: u64 = 1024 * 1024;

#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    pub pull_policy: PullPolicy,
    pub insecure: InsecureOptions,
    /// `--signature`: the detached signature of a local image file (instead of
    /// `<file>.asc`).
    pub signature: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// `docker://`, `oci:`, `oci-archive:`, `docker-archive:` (see `crate::image::oci`).
    #[error(transparent)]
    Oci(Box<OciError>),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{what} {url} was not found (HTTP 404)")]
    NotFound { url: String, what: &'static str },
    #[error("cannot fetch {what} {url}: the server answered HTTP {status}")]
    Status {
        url: String,
        what: &'static str,
        status: u16,
    },
    #[error(
        "discovery found no image for {name}; tried:{}",
        describe_attempts(attempts)
    )]
    Discovery {
        name: String,
        attempts: Vec<Attempt>,
    },
    #[error(
        "discovery found no public keys for {prefix}; tried:{}",
        describe_attempts(attempts)
    )]
    KeyDiscovery {
        prefix: String,
        attempts: Vec<Attempt>,
    },
    #[error(
        "image {image} is not in the store and the pull policy is never; fetch it first \
         (rkt fetch) or use --pull-policy=new"
    )]
    NotInStore { image: String },
    #[error("cannot read image file {path}", path = path.display())]
    OpenFile { path: PathBuf, source: io::Error },
    #[error("cannot create a temporary file in {dir}", dir = dir.display())]
    CreateTemp { dir: PathBuf, source: io::Error },
    #[error("downloading {url} failed")]
    Download { url: String, source: io::Error },
    #[error("cannot write the download of {url} to {path}", path = path.display())]
    WriteTemp {
        url: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot read the manifest of {image}")]
    ReadArchive { image: String, source: io::Error },
    #[error("cannot read the manifest of {image}")]
    Decompress { image: String, source: ArchiveError },
    #[error("{image} is not an ACI: it has no manifest")]
    NoManifest { image: String },
    #[error("{image} has an invalid manifest")]
    InvalidManifest { image: String, source: AppcError },
    #[error(
        "image {url} is named {found} in its manifest, but {expected} was asked for; \
         refusing it"
    )]
    NameMismatch {
        url: String,
        expected: String,
        found: String,
    },
    #[error(
        "image {url} ({name}) has label {label}={}, but {label}={expected} was asked for; \
         refusing it",
        found.as_deref().unwrap_or("<unset>")
    )]
    LabelMismatch {
        url: String,
        name: String,
        label: String,
        expected: String,
        found: Option<String>,
    },
    #[error(
        "image {image} is not signed: no signature at {signature}; provide one (--signature \
         for files) or skip verification with --insecure-options=image"
    )]
    SignatureMissing { image: String, signature: String },
    #[error("cannot read signature {path}", path = path.display())]
    ReadSignature { path: PathBuf, source: io::Error },
    #[error("image {image}")]
    Verify {
        image: String,
        name: String,
        source: Box<VerifyError>,
    },
    #[error("image store: cannot {op} {image}")]
    Store {
        op: &'static str,
        image: String,
        source: Box<StoreError>,
    },
}

impl FetchError {
    /// The error for a non-2xx status other than 304.
    pub fn status(url: &str, status: u16, what: &'static str) -> FetchError {
        if status == 404 || status == 410 {
            FetchError::NotFound {
                url: url.to_string(),
                what,
            }
        } else {
            FetchError::Status {
                url: url.to_string(),
                what,
                status,
            }
        }
    }

    /// Whether another endpoint might do better (the transfer failed, not the image).
    fn is_transport(&self) -> bool {
        matches!(
            self,
            FetchError::Http(_)
                | FetchError::NotFound { .. }
                | FetchError::Status { .. }
                | FetchError::Download { .. }
        )
    }
}

/// Resolves image references, fetches, verifies and stores images.
pub struct Fetcher<'a> {
    store: &'a Store,
    keystore: &'a Keystore,
    opts: FetchOptions,
    progress: &'a dyn Progress,
    client: HttpClient,
}

/// What the image must be to be accepted from a URL.
struct Expect<'r> {
    /// The name asked for (discovery); `None` for a plain URL.
    name: Option<&'r str>,
    /// Labels the user gave explicitly.
    labels: &'r [(String, String)],
    /// Import as `latest` (fetched by name without a version).
    latest: bool,
}

/// How to use a cached download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CacheUse {
    /// Use the cached image without asking (pull policy `new`).
    Prefer,
    /// Use it only while `max-age` holds; otherwise revalidate.
    Revalidate,
    /// Use only the cache.
    Only,
}

impl<'a> Fetcher<'a> {
    pub fn new(
        store: &'a Store,
        keystore: &'a Keystore,
        opts: FetchOptions,
        progress: &'a dyn Progress,
    ) -> Self {
        let client = HttpClient::new(opts.insecure);
        // Whatever a killed fetch left behind goes before this one starts.
        remove_stale_downloads(&store.tmp_dir());
        Fetcher {
            store,
            keystore,
            opts,
            progress,
            client,
        }
    }

    /// The HTTP client this fetcher uses (for key discovery by the caller).
    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    /// Resolve, fetch, verify and store an image; returns the stored image.
    pub fn fetch(&self, image: &ImageRef) -> Result<ImageInfo, FetchError> {
        match image {
            ImageRef::Path(path) => self.fetch_file(path),
            ImageRef::Url(url) => {
                let cache = match self.opts.pull_policy {
                    PullPolicy::New => CacheUse::Prefer,
                    PullPolicy::Update => CacheUse::Revalidate,
                    PullPolicy::Never => CacheUse::Only,
                };
                let expect = Expect {
                    name: None,
                    labels: &[],
                    latest: false,
                };
                self.fetch_url(url, &format!("{url}.asc"), &expect, cache)
            }
            ImageRef::Hash(prefix) => {
                let info = self
                    .store
                    .resolve(prefix)
                    .map_err(Self::store_err("find", prefix))?;
                self.touch(&info)?;
                Ok(info)
            }
            ImageRef::Name { name, labels } => self.fetch_name(name.as_str(), labels),
            ImageRef::Docker(reference) => self.fetch_oci(reference),
        }
    }

    /// A Docker or OCI image: credentials from `auth.d` under the configuration
    /// directories (system, then local), mirrors from `registries.d` (local, then
    /// system), then the OCI fetcher.
    fn fetch_oci(&self, reference: &str) -> Result<ImageInfo, FetchError> {
        let (local, system) = self.keystore.config_dirs();
        let oci_err = |e: OciError| FetchError::Oci(Box::new(e));
        let auth = AuthConfig::load(&[system, local]).map_err(|e| oci_err(e.into()))?;
        OciFetcher::new(
            self.store,
            self.progress,
            self.opts.pull_policy,
            self.opts.insecure,
            auth,
        )
        .with_mirrors(Mirrors::new(&[local, system]))
        .fetch(reference)
        .map_err(oci_err)
    }

    fn touch(&self, info: &ImageInfo) -> Result<(), FetchError> {
        self.store
            .touch(&info.id)
            .map_err(Self::store_err("update", &info.id))
    }

    fn store_err(op: &'static str, image: &str) -> impl FnOnce(StoreError) -> FetchError {
        let image = image.to_string();
        move |source| FetchError::Store {
            op,
            image,
            source: Box::new(source),
        }
    }

    /// A local `.aci`: verify with `--signature` or `<file>.asc`, then import.
    fn fetch_file(&self, path: &Path) -> Result<ImageInfo, FetchError> {
        let display = path.display().to_string();
        let open_err = |source| FetchError::OpenFile {
            path: path.to_path_buf(),
            source,
        };
        // One open file for reading the name, verifying and importing, so what is
        // imported is what was verified even if the path is replaced meanwhile.
        let mut file = File::open(path).map_err(open_err)?;
        // A pipe (a FIFO, /dev/stdin) can be read only once: keep a copy to re-read.
        let _spooled = if file.metadata().map_err(open_err)?.is_file() {
            None
        } else {
            let tmp = self.spool(&mut file, None, &format!("reading {display}"), &display)?;
            file = tmp.reopen().map_err(open_err)?;
            Some(tmp)
        };
        if !self.opts.insecure.image {
            let sig_path = match &self.opts.signature {
                Some(p) => p.clone(),
                None => {
                    let mut p = path.as_os_str().to_owned();
                    p.push(".asc");
                    PathBuf::from(p)
                }
            };
            let signature = match read_limited_file(&sig_path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(FetchError::SignatureMissing {
                        image: display,
                        signature: sig_path.display().to_string(),
                    })
                }
                Err(source) => {
                    return Err(FetchError::ReadSignature {
                        path: sig_path,
                        source,
                    })
                }
            };
            let manifest = read_manifest(&mut file, &display)?;
            rewind(&mut file).map_err(open_err)?;
            self.verify(&display, manifest.name.as_str(), &mut file, &signature)?;
        } else {
            self.progress.message(SKIPPED_VERIFICATION);
        }
        rewind(&mut file).map_err(open_err)?;
        self.store
            .import(&file, &ImportOptions::default())
            .map_err(Self::store_err("import", &display))
    }

    fn verify(
        &self,
        image: &str,
        name: &str,
        data: impl Read,
        signature: &[u8],
    ) -> Result<(), FetchError> {
        let verified = self
            .keystore
            .verify(name, data, signature)
            .map_err(|source| FetchError::Verify {
                image: image.to_string(),
                name: name.to_string(),
                source: Box::new(source),
            })?;
        self.progress.message(&format!(
            "signature verified for {name}: {} ({})",
            verified.signer, verified.fingerprint
        ));
        Ok(())
    }

    /// An appc name: the store first (policies new, never), then discovery.
    fn fetch_name(&self, name: &str, labels: &[(String, String)]) -> Result<ImageInfo, FetchError> {
        let described = describe_name(name, labels);
        if self.opts.pull_policy != PullPolicy::Update {
            let found = self
                .store
                .find_by_name(name, labels)
                .map_err(Self::store_err("look up", &described))?;
            if let Some(info) = found {
                tracing::debug!(image = %info.id, %name, "using the stored image");
                self.touch(&info)?;
                return Ok(info);
            }
            if self.opts.pull_policy == PullPolicy::Never {
                return Err(FetchError::NotInStore { image: described });
            }
        }
        let endpoints = discover(&self.client, name, labels, self.opts.insecure)?;
        let expect = Expect {
            name: Some(name),
            labels,
            latest: !labels.iter().any(|(k, _)| k == "version"),
        };
        let mut first_err = None;
        for (aci, asc) in &endpoints.aci {
            match self.fetch_url(aci, asc, &expect, CacheUse::Revalidate) {
                Ok(info) => return Ok(info),
                Err(e) if e.is_transport() => {
                    tracing::debug!(url = %http::redact(aci), error = %manifests::error::chain(&e), "endpoint failed; trying the next");
                    first_err.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_err.unwrap_or(FetchError::Discovery {
            name: name.to_string(),
            attempts: Vec::new(),
        }))
    }

    /// The stored image of a cached download of `url`, if both exist.
    fn cached(&self, url: &str) -> Result<Option<(RemoteEntry, ImageInfo)>, FetchError> {
        let shown = http::redact(url);
        let Some(entry) = self
            .store
            .remote(url)
            .map_err(Self::store_err("look up the cache of", &shown))?
        else {
            return Ok(None);
        };
        let info = self
            .store
            .get(&entry.image_id)
            .map_err(Self::store_err("look up", &entry.image_id))?;
        Ok(info.map(|i| (entry, i)))
    }

    fn fetch_url(
        &self,
        url: &str,
        asc_url: &str,
        expect: &Expect<'_>,
        cache: CacheUse,
    ) -> Result<ImageInfo, FetchError> {
        let shown = http::redact(url);
        self.client.check_url(url)?;
        let cached = self.cached(url)?;
        if let Some((entry, info)) = &cached {
            let fresh = entry
                .max_age
                .and_then(|age| entry.download_time.checked_add(age))
                .is_some_and(|until| SystemTime::now() < until);
            if cache != CacheUse::Revalidate || fresh {
                tracing::debug!(url = %shown, image = %info.id, fresh, "using the cached download");
                self.touch(info)?;
                return Ok(info.clone());
            }
        } else if cache == CacheUse::Only {
            return Err(FetchError::NotInStore { image: shown });
        }

        let etag = cached.as_ref().and_then(|(e, _)| e.etag.as_deref());
        let resp = self.client.get(url, etag)?;
        if resp.status == 304 {
            if let Some((entry, info)) = cached {
                tracing::debug!(url = %shown, image = %info.id, "not modified");
                self.progress
                    .message(&format!("{shown}: not modified, using the stored image"));
                let refreshed = RemoteEntry {
                    etag: resp.etag.clone().or(entry.etag),
                    max_age: resp.max_age.or(entry.max_age),
                    download_time: SystemTime::now(),
                    ..entry
                };
                self.store
                    .put_remote(&refreshed)
                    .map_err(Self::store_err("record the download of", &shown))?;
                self.touch(&info)?;
                return Ok(info);
            }
        }
        if !resp.is_success() {
            return Err(FetchError::status(&shown, resp.status, "image"));
        }

        // Before transferring the image, make sure there is a signature to check.
        let signature = if self.opts.insecure.image {
            None
        } else {
            Some(self.fetch_signature(&shown, asc_url)?)
        };

        let etag = resp.etag.clone();
        let max_age = resp.max_age;
        let mut tmp = self.download(resp, &shown)?;
        let tmp_path = tmp.path().to_path_buf();
        let read_err = |source| FetchError::ReadArchive {
            image: shown.clone(),
            source,
        };
        let file = tmp.as_file_mut();
        rewind(file).map_err(read_err)?;
        let manifest = read_manifest(file, &shown)?;
        check_expected(&shown, &manifest, expect)?;
        rewind(file).map_err(read_err)?;
        match &signature {
            Some(sig) => self.verify(&shown, manifest.name.as_str(), &mut *file, sig)?,
            None => self.progress.message(SKIPPED_VERIFICATION),
        }
        rewind(file).map_err(read_err)?;
        let info = self
            .store
            .import(
                &*file,
                &ImportOptions {
                    latest: expect.latest,
                },
            )
            .map_err(Self::store_err("import", &shown))?;
        drop(tmp);
        tracing::debug!(url = %shown, image = %info.id, tmp = %tmp_path.display(), "imported download");
        self.store
            .put_remote(&RemoteEntry {
                url: url.to_string(),
                image_id: info.id.clone(),
                etag,
                max_age,
                download_time: SystemTime::now(),
            })
            .map_err(Self::store_err("record the download of", &shown))?;
        Ok(info)
    }

    fn fetch_signature(&self, image: &str, asc_url: &str) -> Result<Vec<u8>, FetchError> {
        let resp = self.client.get(asc_url, None)?;
        match resp.status {
            200..=299 => Ok(resp.read_limited(SIGNATURE_LIMIT)?),
            404 | 410 => Err(FetchError::SignatureMissing {
                image: image.to_string(),
                signature: resp.url,
            }),
            status => Err(FetchError::status(&resp.url, status, "signature")),
        }
    }

    /// Stream the body into a temp file under the store's `tmp/` (deleted on drop).
    fn download(
        &self,
        resp: http::Response,
        shown: &str,
    ) -> Result<tempfile::NamedTempFile, FetchError> {
        let total = resp.content_length;
        let mut body = resp.into_reader();
        self.spool(&mut body, total, &format!("downloading {shown}"), shown)
    }

    /// Copy `from` into a locked temp file under the store's `tmp/` (deleted on drop;
    /// if this process dies, the next fetch removes it).
    fn spool(
        &self,
        from: &mut impl Read,
        total: Option<u64>,
        what: &str,
        shown: &str,
    ) -> Result<tempfile::NamedTempFile, FetchError> {
        let dir = self.store.tmp_dir();
        let mut tmp = tempfile::Builder::new()
            .prefix(DOWNLOAD_PREFIX)
            .suffix(".aci")
            .tempfile_in(&dir)
            .map_err(|source| FetchError::CreateTemp {
                dir: dir.clone(),
                source,
            })?;
        // Held until the file is dropped: tells other processes it is in use.
        rustix::fs::flock(tmp.as_file(), FlockOperation::LockExclusive).map_err(|e| {
            FetchError::CreateTemp {
                dir,
                source: e.into(),
            }
        })?;
        self.progress.start(what, total);
        let result = copy_with_progress(from, tmp.as_file_mut(), self.progress);
        self.progress.finish();
        match result {
            Ok(_) => Ok(tmp),
            Err(CopyError::Read(source)) => Err(FetchError::Download {
                url: shown.to_string(),
                source,
            }),
            Err(CopyError::Write(source)) => Err(FetchError::WriteTemp {
                url: shown.to_string(),
                path: tmp.path().to_path_buf(),
                source,
            }),
        }
    }
}

/// Delete `fetch-*` files in `dir` that no process holds a lock on: downloads of
/// processes that died. Only the file descriptors of a live download are used after
/// it was created, so even removing one that was just created (before its lock) is
/// harmless.
fn remove_stale_downloads(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(DOWNLOAD_PREFIX) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!(file = %path.display(), "removed an interrupted download"),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot remove an interrupted download")
                }
            }
        }
    }
}

/// `name[:version][,label=value]` for messages.
fn describe_name(name: &str, labels: &[(String, String)]) -> String {
    let mut s = name.to_string();
    if let Some((_, v)) = labels.iter().find(|(k, _)| k == "version") {
        s.push(':');
        s.push_str(v);
    }
    for (k, v) in labels.iter().filter(|(k, _)| k != "version") {
        s.push_str(&format!(",{k}={v}"));
    }
    s
}

/// The fetched manifest must carry the name asked for (rkt issue #776) and every
/// label the user gave.
fn check_expected(
    url: &str,
    manifest: &ImageManifest,
    expect: &Expect<'_>,
) -> Result<(), FetchError> {
    let Some(name) = expect.name else {
        return Ok(());
    };
    if manifest.name.as_str() != name {
        return Err(FetchError::NameMismatch {
            url: url.to_string(),
            expected: name.to_string(),
            found: manifest.name.to_string(),
        });
    }
    for (label, value) in expect.labels {
        let found = manifest.label(label);
        if found != Some(value.as_str()) {
            return Err(FetchError::LabelMismatch {
                url: url.to_string(),
                name: name.to_string(),
                label: label.clone(),
                expected: value.clone(),
                found: found.map(str::to_string),
            });
        }
    }
    Ok(())
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

fn copy_with_progress(
    from: &mut impl Read,
    to: &mut File,
    progress: &dyn Progress,
) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
        progress.advance(n as u64);
    }
    to.flush().map_err(CopyError::Write)?;
    Ok(total)
}

fn rewind(file: &mut File) -> io::Result<()> {
    file.seek(SeekFrom::Start(0)).map(|_| ())
}

fn read_limited_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    File::open(path)?
        .take(SIGNATURE_LIMIT + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > SIGNATURE_LIMIT {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {SIGNATURE_LIMIT} bytes"),
        ));
    }
    Ok(out)
}

/// Read the `manifest` entry of an ACI (any supported compression) from the
/// current position of `file`.
pub fn read_manifest(file: &mut File, image: &str) -> Result<ImageManifest, FetchError> {
    let (_, plain) = archive::decompress(&mut *file).map_err(|source| FetchError::Decompress {
        image: image.to_string(),
        source,
    })?;
    let read_err = |source| FetchError::ReadArchive {
        image: image.to_string(),
        source,
    };
    let mut archive = tar::Archive::new(plain);
    for entry in archive.entries().map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let is_manifest = {
            let path = entry.path().map_err(read_err)?;
            let s = path.to_string_lossy();
            s == "manifest" || s == "./manifest"
        };
        if !is_manifest || !entry.header().entry_type().is_file() {
            continue;
        }
        let mut bytes = Vec::new();
        entry
            .take(MANIFEST_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > MANIFEST_LIMIT {
            return Err(read_err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the manifest is larger than {MANIFEST_LIMIT} bytes"),
            )));
        }
        return ImageManifest::from_slice(&bytes).map_err(|source| FetchError::InvalidManifest {
            image: image.to_string(),
            source,
        });
    }
    Err(FetchError::NoManifest {
        image: image.to_string(),
    })
}
