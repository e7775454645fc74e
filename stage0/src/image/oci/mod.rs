//! Docker and OCI images: `docker://` registries (the distribution API), OCI image
//! layouts and archives, and `docker save` archives, stored as content-addressed
//! layers and run like ACIs.
//!
//! A fetch resolves the reference to an image manifest (through an index for the
//! host's platform), reads the image config, transfers the layers the store lacks
//! (in parallel, each verified by digest and diff ID), generates an appc image
//! manifest from the config ([`convert`]) and records the image ([`Store::put_oci_image`]).
//! Rendering applies the layers in order with OCI whiteouts ([`crate::image::render::render`]).
//!
//! # Trust
//! These images carry no OpenPGP signature. An image is accepted when its reference
//! pins its content (`@sha256:...`, verified byte for byte), or when the user says
//! `--insecure-options=image`. An image already in the store is used without either,
//! as an ACI would be: it was accepted when it was fetched.
//!
//! Pull policies: `new` uses a stored image of the same registry, repository and tag
//! (or digest); `update` asks the registry what the tag is now and transfers only
//! what the store lacks (nothing, if the tag did not move); `never` uses the store
//! only. Local sources (`oci:`, `oci-archive:`, `docker-archive:`) are always read,
//! like a path to an `.aci`, but blobs already stored are not copied again.

pub mod auth;
pub mod convert;
pub mod layout;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod spec;

#[cfg(test)]
mod tests;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use manifests::appc::AppcError;

use crate::image::fetch::{Progress, PullPolicy, SKIPPED_VERIFICATION};
use crate::image::store::{BlobLease, ImageInfo, NewOciImage, Store, StoreError};
use crate::insecure::InsecureOptions;
pub use auth::{AuthConfig, AuthConfigError, Credentials};
use convert::{LayerIndex, Provenance};
use layout::{DockerArchive, Files, Layout};
use pull::LayerJob;
pub use reference::{ReferenceError, RegistryRef, Source};
use registry::Registry;
use spec::{Digest, Document, ImageConfig, Index, Platform};

/// The largest image config accepted.
const CONFIG_LIMIT: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    AuthConfig(#[from] AuthConfigError),
    #[error("cannot reach registry {registry} at {url}: {error}{hint}")]
    Connect {
        registry: String,
        url: String,
        /// Not a `source`: the hint, about this failure, follows it in the message.
        error: Box<ureq::Error>,
        hint: String,
    },
    #[error("request to {url} failed")]
    Request {
        url: String,
        source: Box<ureq::Error>,
    },
    #[error(
        "refusing to fetch a registry token from {realm} over plain http; allow it with \
         --insecure-options=http"
    )]
    InsecureRealm { realm: String },
    #[error("{registry} does not speak the registry API v2 ({url} answered 404)")]
    NotARegistry { registry: String, url: String },
    #[error("{}", describe_unauthorized(image, registry, credentials, *sent_credentials, detail))]
    Unauthorized {
        image: String,
        registry: String,
        /// The user name and the file the credentials came from.
        credentials: Option<(String, String)>,
        sent_credentials: bool,
        detail: Option<String>,
    },
    #[error("image {image} was not found: the registry knows no such manifest ({message})")]
    ManifestUnknown { image: String, message: String },
    #[error("{what} {digest} of {image} is missing from the registry")]
    BlobUnknown {
        image: String,
        digest: String,
        what: String,
    },
    #[error("cannot fetch {what} from {url}: the registry answered HTTP {status}{}", if message.is_empty() { String::new() } else { format!(" ({message})") })]
    Status {
        url: String,
        what: &'static str,
        status: u16,
        message: String,
    },
    #[error("cannot read {what}")]
    ReadBody { what: String, source: io::Error },
    #[error("downloading {what} of {image} failed (nothing was stored)")]
    ReadBlob {
        what: String,
        image: String,
        source: io::Error,
    },
    #[error("cannot write {what} of {image} to the store")]
    WriteBlob {
        what: String,
        image: String,
        source: io::Error,
    },
    #[error("{what} is larger than {limit} bytes; refusing it")]
    TooLarge { what: String, limit: u64 },
    #[error("{what} of {image} is not valid")]
    Document {
        what: &'static str,
        image: String,
        source: spec::DocumentError,
    },
    #[error("{what} of {image} is not valid JSON")]
    Json {
        what: &'static str,
        image: String,
        source: serde_json::Error,
    },
    #[error(
        "{what} of {image} does not match its digest: expected {expected}, got {actual}; \
         the content was altered or corrupted, nothing was stored"
    )]
    DigestMismatch {
        what: String,
        image: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{what} of {image} has {actual} bytes, but {expected} were announced; nothing was stored"
    )]
    SizeMismatch {
        what: String,
        image: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "{what} of {image} uncompresses to content with digest {actual}, but the image \
         config says {expected}; nothing was stored"
    )]
    DiffIdMismatch {
        what: String,
        image: String,
        expected: String,
        actual: String,
    },
    #[error("{image} has no image for {want}; it has: {available}")]
    NoPlatform {
        image: String,
        want: String,
        available: String,
    },
    #[error("{image} is an image for {found}, not for {want}")]
    WrongOs {
        image: String,
        found: String,
        want: String,
    },
    #[error("{image} lists {layers} layers but its config has {diff_ids} diff IDs")]
    LayerCount {
        image: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error("{image}: layer diff ID {digest} is not a sha256 digest; only sha256 is supported")]
    UnsupportedDiffId { image: String, digest: String },
    #[error(
        "image {image} is not signed: Docker and OCI images carry no OpenPGP signature; pin \
         its content with a digest (@sha256:...) or accept it unverified with \
         --insecure-options=image"
    )]
    Unsigned { image: String },
    #[error(
        "image {image} is not in the store and the pull policy is never; fetch it first \
         (rkt fetch) or use --pull-policy=new"
    )]
    NotInStore { image: String },
    #[error("cannot read {path}", path = path.display())]
    OpenSource { path: PathBuf, source: io::Error },
    #[error("{path} is not an OCI image layout: {reason}", path = path.display())]
    NotALayout { path: PathBuf, reason: &'static str },
    #[error("{path} has no {member}", path = path.display())]
    LayoutMissing { path: PathBuf, member: String },
    #[error("{}", describe_ref_not_found(image, reference, available))]
    RefNotFound {
        image: String,
        reference: Option<String>,
        available: String,
    },
    #[error("cannot read layer {path}", path = path.display())]
    ReadLayer { path: PathBuf, source: io::Error },
    #[error("cannot name image {name} in appc terms")]
    Name { name: String, source: AppcError },
    #[error("image store: cannot {op} {image}")]
    Store {
        op: &'static str,
        image: String,
        source: Box<StoreError>,
    },
}

fn describe_unauthorized(
    image: &str,
    registry: &str,
    credentials: &Option<(String, String)>,
    sent: bool,
    detail: &Option<String>,
) -> String {
    let detail = detail
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    match credentials {
        Some((user, file)) if sent || !file.is_empty() => format!(
            "registry {registry} refused the credentials of user {user} (from {file}) for \
             {image}{detail}; check them"
        ),
        _ => format!(
            "registry {registry} requires authentication for {image}{detail}; add credentials \
             for it to <local-config>/auth.d/ (rktKind dockerAuth)"
        ),
    }
}

fn describe_ref_not_found(image: &str, reference: &Option<String>, available: &str) -> String {
    match reference {
        Some(r) => format!("{image} has no image named {r}; it has: {available}"),
        None => format!("{image} holds several images; name one of: {available}"),
    }
}

/// `os/arch` of each image in an index, for messages.
pub(crate) fn available_platforms(index: &Index) -> String {
    let v: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref().map(Platform::to_string))
        .collect();
    if v.is_empty() {
        "no platform-specific images".to_string()
    } else {
        v.join(", ")
    }
}

/// A manifest as the registry sent it.
#[derive(Debug)]
pub struct RawManifest {
    pub bytes: Vec<u8>,
    pub media_type: Option<String>,
    /// `Docker-Content-Digest`, when sent.
    pub digest_header: Option<Digest>,
}

/// A blob being read.
pub struct RawBlob {
    pub reader: Box<dyn Read + Send>,
    pub length: Option<u64>,
}

/// How to find a blob in its source.
#[derive(Debug, Clone)]
pub enum Locator {
    Digest(Digest),
    /// A member of a docker archive.
    Path(String),
}

/// A blob to read: what it should be and where it is.
#[derive(Debug, Clone)]
pub struct BlobSpec {
    /// Expected digest of the bytes as stored in the source (unknown for some
    /// members of docker archives).
    pub digest: Option<Digest>,
    pub size: Option<u64>,
    pub media_type: String,
    pub locator: Locator,
}

impl BlobSpec {
    pub fn from_descriptor(d: &spec::Descriptor) -> BlobSpec {
        BlobSpec {
            digest: Some(d.digest.clone()),
            size: Some(d.size),
            media_type: d.media_type.clone(),
            locator: Locator::Digest(d.digest.clone()),
        }
    }
}

/// What an image is made of, once its reference is resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The image manifest and its digest (none for docker archives).
    pub manifest: Option<(Vec<u8>, Digest)>,
    pub config: BlobSpec,
    pub layers: Vec<BlobSpec>,
}

/// Somewhere blobs can be read from.
pub trait ContentSource: Sync {
    fn open(&self, blob: &BlobSpec, what: &str) -> Result<RawBlob, OciError>;
}

impl ContentSource for Registry {
    fn open(&self, blob: &BlobSpec, what: &str) -> Result<RawBlob, OciError> {
        match &blob.locator {
            Locator::Digest(d) => self.blob(d, what),
            Locator::Path(p) => Err(OciError::BlobUnknown {
                image: String::new(),
                digest: p.clone(),
                what: what.to_string(),
            }),
        }
    }
}

impl ContentSource for Layout {
    fn open(&self, blob: &BlobSpec, _what: &str) -> Result<RawBlob, OciError> {
        self.open_blob(blob)
    }
}

impl ContentSource for DockerArchive {
    fn open(&self, blob: &BlobSpec, _what: &str) -> Result<RawBlob, OciError> {
        self.open_blob(blob)
    }
}

/// How an image is recorded: its identity and provenance.
struct Identity {
    source: &'static str,
    location: String,
    repository: String,
    /// The `images.name` column.
    name: String,
    tag: Option<String>,
    latest: bool,
    annotations: Vec<(String, String)>,
    /// Shown in messages.
    described: String,
}

/// Fetches Docker and OCI images into the store.
pub struct OciFetcher<'a> {
    store: &'a Store,
    progress: &'a dyn Progress,
    pull_policy: PullPolicy,
    insecure: InsecureOptions,
    auth: AuthConfig,
    platform: Platform,
}

impl<'a> OciFetcher<'a> {
    pub fn new(
        store: &'a Store,
        progress: &'a dyn Progress,
        pull_policy: PullPolicy,
        insecure: InsecureOptions,
        auth: AuthConfig,
    ) -> Self {
        OciFetcher {
            store,
            progress,
            pull_policy,
            insecure,
            auth,
            platform: spec::host_platform(),
        }
    }

    /// Fetch for another platform than the host's (multi-arch indexes).
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    /// Fetch `input` (`docker://...`, `oci:...`, `oci-archive:...`,
    /// `docker-archive:...`) and return the stored image.
    pub fn fetch(&self, input: &str) -> Result<ImageInfo, OciError> {
        match Source::parse(input)? {
            Source::Registry(r) => self.fetch_registry(&r),
            Source::Layout { dir, reference } => {
                let layout = Layout::open(Files::dir(&dir)?)?;
                self.fetch_layout(&layout, "oci", &dir, reference.as_deref(), input)
            }
            Source::OciArchive { file, reference } => {
                let layout = Layout::open(Files::tar(&file)?)?;
                self.fetch_layout(&layout, "oci-archive", &file, reference.as_deref(), input)
            }
            Source::DockerArchive { file, reference } => {
                self.fetch_docker_archive(&file, reference.as_deref(), input)
            }
        }
    }

    fn store_err(op: &'static str, image: &str) -> impl FnOnce(StoreError) -> OciError {
        let image = image.to_string();
        move |source| OciError::Store {
            op,
            image,
            source: Box::new(source),
        }
    }

    fn touch(&self, info: &ImageInfo) -> Result<(), OciError> {
        self.store
            .touch(&info.id)
            .map_err(Self::store_err("update", &info.id))
    }

    fn check_trust(&self, pinned: bool, described: &str) -> Result<(), OciError> {
        if pinned {
            self.progress.message(&format!(
                "{described}: content pinned by digest; every blob is verified against it"
            ));
            Ok(())
        } else if self.insecure.image {
            self.progress.message(SKIPPED_VERIFICATION);
            Ok(())
        } else {
            Err(OciError::Unsigned {
                image: described.to_string(),
            })
        }
    }

    fn fetch_registry(&self, r: &RegistryRef) -> Result<ImageInfo, OciError> {
        let described = format!("docker://{r}");
        let pinned = r.digest.is_some();
        let digest = r.digest.as_ref().map(Digest::to_string);
        let tag = r.effective_tag().map(str::to_string);
        if self.pull_policy != PullPolicy::Update || pinned {
            let found = self
                .store
                .find_oci(
                    "docker",
                    &r.registry,
                    &r.repository,
                    if pinned { None } else { tag.as_deref() },
                    digest.as_deref(),
                )
                .map_err(Self::store_err("look up", &described))?;
            if let Some(info) = found {
                tracing::debug!(image = %info.id, %described, "using the stored image");
                self.touch(&info)?;
                return Ok(info);
            }
            if self.pull_policy == PullPolicy::Never {
                return Err(OciError::NotInStore { image: described });
            }
        }

        let credentials = self.auth.for_registry(&r.registry).cloned();
        let source = self
            .auth
            .source_of(&r.registry)
            .map(|p| p.display().to_string());
        let registry = Registry::new(r, self.insecure, credentials, source);
        let top = registry.manifest(&r.manifest_reference())?;
        let top_digest = match &r.digest {
            Some(pin) => {
                let actual = pin.same_algorithm_of(&top.bytes);
                if &actual != pin {
                    return Err(OciError::DigestMismatch {
                        what: "the manifest".to_string(),
                        image: described,
                        expected: pin.to_string(),
                        actual: actual.to_string(),
                    });
                }
                actual
            }
            None => {
                let actual = Digest::sha256_of(&top.bytes);
                if let Some(claimed) = &top.digest_header {
                    let same = claimed.same_algorithm_of(&top.bytes);
                    if &same != claimed {
                        return Err(OciError::DigestMismatch {
                            what: "the manifest".to_string(),
                            image: described,
                            expected: claimed.to_string(),
                            actual: same.to_string(),
                        });
                    }
                }
                actual
            }
        };
        let document =
            spec::parse_document(&top.bytes, top.media_type.as_deref()).map_err(|source| {
                OciError::Document {
                    what: "the manifest",
                    image: described.clone(),
                    source,
                }
            })?;
        let (index, manifest_bytes, manifest_digest, manifest) = match document {
            Document::Manifest(m) => (None, top.bytes, top_digest, m),
            Document::Index(i) => {
                let desc = spec::select_platform(&i, &self.platform)
                    .cloned()
                    .ok_or_else(|| OciError::NoPlatform {
                        image: described.clone(),
                        want: self.platform.to_string(),
                        available: available_platforms(&i),
                    })?;
                let raw = registry.manifest(&desc.digest.to_string())?;
                let actual = desc.digest.same_algorithm_of(&raw.bytes);
                if actual != desc.digest {
                    return Err(OciError::DigestMismatch {
                        what: format!("the {} manifest", self.platform),
                        image: described,
                        expected: desc.digest.to_string(),
                        actual: actual.to_string(),
                    });
                }
                let media = (!desc.media_type.is_empty()).then_some(desc.media_type.as_str());
                let m = match spec::parse_document(&raw.bytes, media.or(raw.media_type.as_deref()))
                    .map_err(|source| OciError::Document {
                        what: "the platform manifest",
                        image: described.clone(),
                        source,
                    })? {
                    Document::Manifest(m) => m,
                    Document::Index(_) => {
                        return Err(OciError::Document {
                            what: "the platform manifest",
                            image: described,
                            source: spec::DocumentError::MediaType("a nested index".to_string()),
                        })
                    }
                };
                (Some((top.bytes, top_digest)), raw.bytes, desc.digest, m)
            }
        };

        // The tag still names what the store has: nothing to transfer.
        let same = self
            .store
            .find_oci(
                "docker",
                &r.registry,
                &r.repository,
                tag.as_deref(),
                Some(&manifest_digest.to_string()),
            )
            .map_err(Self::store_err("look up", &described))?;
        if let Some(info) = same {
            self.progress.message(&format!(
                "{described}: up to date ({})",
                manifest_digest.short()
            ));
            self.touch(&info)?;
            return Ok(info);
        }
        self.check_trust(pinned, &described)?;

        let identity = Identity {
            source: "docker",
            location: r.registry.clone(),
            repository: r.repository.clone(),
            name: r.name(),
            tag,
            latest: r.tag.is_none() && r.digest.is_none(),
            annotations: vec![
                ("appc.io/docker/registryurl".into(), r.registry.clone()),
                ("appc.io/docker/repository".into(), r.repository.clone()),
            ],
            described,
        };
        let plan = Plan {
            manifest: Some((manifest_bytes, manifest_digest)),
            config: BlobSpec::from_descriptor(&manifest.config),
            layers: manifest
                .layers
                .iter()
                .map(BlobSpec::from_descriptor)
                .collect(),
        };
        self.import(&registry, plan, index, identity)
    }

    fn fetch_layout(
        &self,
        layout: &Layout,
        kind: &'static str,
        path: &Path,
        reference: Option<&str>,
        input: &str,
    ) -> Result<ImageInfo, OciError> {
        let pinned = reference.is_some_and(|r| Digest::parse(r).is_ok());
        let (plan, ref_name) = layout.plan(reference, &self.platform, input)?;
        self.check_trust(pinned, input)?;
        let stem = local_stem(path);
        let (name, tag) = match ref_name.as_deref() {
            Some(r) => split_name_tag(r, &stem),
            None => (stem, None),
        };
        let location = absolute(path);
        let identity = Identity {
            source: kind,
            annotations: vec![("appc.io/oci/source".into(), format!("{kind}:{location}"))],
            location,
            repository: name.clone(),
            name,
            latest: tag.is_none(),
            tag,
            described: input.to_string(),
        };
        self.import(layout, plan, None, identity)
    }

    fn fetch_docker_archive(
        &self,
        file: &Path,
        reference: Option<&str>,
        input: &str,
    ) -> Result<ImageInfo, OciError> {
        let archive = DockerArchive {
            files: Files::tar(file)?,
        };
        let (plan, repo_tag) = archive.plan(reference, input)?;
        self.check_trust(false, input)?;
        let stem = local_stem(file);
        let (name, tag) = match repo_tag.as_deref() {
            Some(r) => split_name_tag(r, &stem),
            None => (stem, None),
        };
        let location = absolute(file);
        let identity = Identity {
            source: "docker-archive",
            annotations: vec![(
                "appc.io/oci/source".into(),
                format!("docker-archive:{location}"),
            )],
            location,
            repository: name.clone(),
            name,
            latest: tag.is_none(),
            tag,
            described: input.to_string(),
        };
        self.import(&archive, plan, None, identity)
    }

    /// Store the config, manifest and missing layers of `plan`, then record the image.
    /// On failure, blobs this call stored and no image uses are freed again.
    fn import(
        &self,
        source: &dyn ContentSource,
        plan: Plan,
        index: Option<(Vec<u8>, Digest)>,
        id: Identity,
    ) -> Result<ImageInfo, OciError> {
        let mut created: Vec<String> = Vec::new();
        let result = self.import_inner(source, plan, index, &id, &mut created);
        if result.is_err() && !created.is_empty() {
            // A blob's lock can stay held for a moment after its lease is gone (a
            // process forked by another thread keeps a copy of the descriptor until
            // it execs): try again for a short while before leaving it to gc.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            loop {
                match self.store.free_unused_blobs(&created) {
                    Ok(n) => tracing::debug!(freed = n, "freed the blobs of a failed fetch"),
                    Err(e) => {
                        tracing::warn!(error = %manifests::error::chain(&e), "cannot free the blobs of a failed fetch");
                        break;
                    }
                }
                let left = created.iter().any(|d| {
                    self.store.oci_blob_path(d).exists()
                        && self.store.blob_refcount(d).is_ok_and(|n| n == 0)
                });
                if !left || std::time::Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        result
    }

    fn import_inner(
        &self,
        source: &dyn ContentSource,
        plan: Plan,
        index: Option<(Vec<u8>, Digest)>,
        id: &Identity,
        created: &mut Vec<String>,
    ) -> Result<ImageInfo, OciError> {
        let image = id.described.as_str();
        let store_err = |op| Self::store_err(op, image);

        // The config: small, read whole and verified.
        let config_what = "the image config";
        let config_bytes = {
            let raw = source.open(&plan.config, config_what)?;
            if raw.length.is_some_and(|l| l > CONFIG_LIMIT) {
                return Err(OciError::TooLarge {
                    what: format!("{config_what} of {image}"),
                    limit: CONFIG_LIMIT,
                });
            }
            let mut bytes = Vec::new();
            raw.reader
                .take(CONFIG_LIMIT + 1)
                .read_to_end(&mut bytes)
                .map_err(|source| OciError::ReadBlob {
                    what: config_what.to_string(),
                    image: image.to_string(),
                    source,
                })?;
            if bytes.len() as u64 > CONFIG_LIMIT {
                return Err(OciError::TooLarge {
                    what: format!("{config_what} of {image}"),
                    limit: CONFIG_LIMIT,
                });
            }
            if let Some(size) = plan.config.size {
                if size != bytes.len() as u64 {
                    return Err(OciError::SizeMismatch {
                        what: config_what.to_string(),
                        image: image.to_string(),
                        expected: size,
                        actual: bytes.len() as u64,
                    });
                }
            }
            if let Some(want) = &plan.config.digest {
                let actual = want.same_algorithm_of(&bytes);
                if &actual != want {
                    return Err(OciError::DigestMismatch {
                        what: config_what.to_string(),
                        image: image.to_string(),
                        expected: want.to_string(),
                        actual: actual.to_string(),
                    });
                }
            }
            bytes
        };
        let config: ImageConfig =
            serde_json::from_slice(&config_bytes).map_err(|source| OciError::Json {
                what: "the image config",
                image: image.to_string(),
                source,
            })?;
        if !config.os.is_empty() && config.os != self.platform.os {
            return Err(OciError::WrongOs {
                image: image.to_string(),
                found: format!("{}/{}", config.os, config.architecture),
                want: self.platform.to_string(),
            });
        }
        if !config.architecture.is_empty() && config.architecture != self.platform.architecture {
            self.progress.message(&format!(
                "warning: {image} is built for {}/{}, this host is {}",
                config.os, config.architecture, self.platform
            ));
        }
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != plan.layers.len() {
            return Err(OciError::LayerCount {
                image: image.to_string(),
                layers: plan.layers.len(),
                diff_ids: diff_ids.len(),
            });
        }
        if let Some(bad) = diff_ids
            .iter()
            .find(|d| d.algorithm() != spec::Algorithm::Sha256)
        {
            return Err(OciError::UnsupportedDiffId {
                image: image.to_string(),
                digest: bad.to_string(),
            });
        }

        let mut put_small = |bytes: &[u8]| -> Result<BlobLease, OciError> {
            let digest = Digest::sha256_of(bytes).to_string();
            if let Some(lease) = self
                .store
                .lease_blob(&digest)
                .map_err(store_err("look up a blob of"))?
            {
                return Ok(lease);
            }
            let mut w = self.store.blob_writer().map_err(store_err("store"))?;
            w.write_all(bytes).map_err(|source| OciError::WriteBlob {
                what: "a manifest".to_string(),
                image: image.to_string(),
                source,
            })?;
            let lease = self
                .store
                .commit_blob(w, Some(&digest))
                .map_err(store_err("store"))?;
            created.push(digest);
            Ok(lease)
        };
        let config_lease = put_small(&config_bytes)?;
        let manifest_lease = match &plan.manifest {
            Some((bytes, _)) => Some(put_small(bytes)?),
            None => None,
        };
        let index_lease = match &index {
            Some((bytes, _)) => Some(put_small(bytes)?),
            None => None,
        };

        // Layers: reuse what the store has, transfer the rest.
        let mut leases: Vec<Option<BlobLease>> = Vec::with_capacity(plan.layers.len());
        let mut jobs = Vec::new();
        let mut job_slots = Vec::new();
        for (i, (spec, diff_id)) in plan.layers.iter().zip(diff_ids).enumerate() {
            match self
                .store
                .lease_blob(&diff_id.to_string())
                .map_err(store_err("look up a layer of"))?
            {
                Some(lease) => leases.push(Some(lease)),
                None if jobs.iter().any(|j: &LayerJob| &j.diff_id == diff_id) => {
                    // The same layer twice in one image: transferred once.
                    leases.push(None);
                    job_slots.push((i, None));
                }
                None => {
                    leases.push(None);
                    job_slots.push((i, Some(jobs.len())));
                    jobs.push(LayerJob {
                        spec: spec.clone(),
                        diff_id: diff_id.clone(),
                    });
                }
            }
        }
        let reused = plan.layers.len() - job_slots.len();
        if reused > 0 {
            self.progress.message(&format!(
                "{image}: {reused} of {} layers already in the store",
                plan.layers.len()
            ));
        }
        created.extend(jobs.iter().map(|j| j.diff_id.to_string()));
        let fetched = pull::fetch_layers(self.store, source, &jobs, image, self.progress)?;
        let mut fetched: Vec<Option<BlobLease>> = fetched.into_iter().map(Some).collect();
        for (slot, job) in job_slots {
            leases[slot] = match job {
                Some(j) => fetched[j].take(),
                None => None,
            };
        }
        // Duplicates (and any slot not filled above) lease the now-stored blob.
        let mut layers = Vec::with_capacity(leases.len());
        for (lease, diff_id) in leases.into_iter().zip(diff_ids) {
            let lease = match lease {
                Some(l) => l,
                None => self
                    .store
                    .lease_blob(&diff_id.to_string())
                    .map_err(store_err("look up a layer of"))?
                    .ok_or_else(|| OciError::Store {
                        op: "find a layer of",
                        image: image.to_string(),
                        source: Box::new(StoreError::NotFound {
                            id: diff_id.to_string(),
                        }),
                    })?,
            };
            layers.push(lease);
        }

        let paths: Vec<PathBuf> = layers.iter().map(|l| l.path().to_path_buf()).collect();
        let layer_index = LayerIndex::build(&paths)?;
        let manifest_digest = plan.manifest.as_ref().map(|(_, d)| d);
        let config_digest = plan
            .config
            .digest
            .clone()
            .unwrap_or_else(|| Digest::sha256_of(&config_bytes));
        let mut annotations = id.annotations.clone();
        if let Some((_, d)) = &index {
            annotations.push(("appc.io/oci/index".into(), d.to_string()));
        }
        let prov = Provenance {
            name: &id.name,
            tag: id.tag.as_deref(),
            manifest_digest,
            config_digest: &config_digest,
            annotations,
        };
        let (_, manifest_json) = convert::image_manifest(&prov, &config, &layer_index)?;
        let info = self
            .store
            .put_oci_image(&NewOciImage {
                name: id.name.clone(),
                manifest_json,
                latest: id.latest,
                source: id.source.to_string(),
                location: id.location.clone(),
                repository: id.repository.clone(),
                tag: id.tag.clone(),
                index_blob: index_lease.as_ref(),
                manifest_blob: manifest_lease.as_ref(),
                config_blob: &config_lease,
                layers: &layers,
            })
            .map_err(store_err("record"))?;
        tracing::debug!(image = %info.id, name = %info.name, "stored OCI image");
        Ok(info)
    }
}

/// The stored image a `docker://` reference names, if any (for `rkt image` commands).
pub fn lookup(store: &Store, input: &str) -> Result<Option<ImageInfo>, OciError> {
    match Source::parse(input)? {
        Source::Registry(r) => {
            let digest = r.digest.as_ref().map(Digest::to_string);
            let tag = if digest.is_some() {
                r.tag.clone()
            } else {
                r.effective_tag().map(str::to_string)
            };
            store
                .find_oci(
                    "docker",
                    &r.registry,
                    &r.repository,
                    tag.as_deref(),
                    digest.as_deref(),
                )
                .map_err(|source| OciError::Store {
                    op: "look up",
                    image: input.to_string(),
                    source: Box::new(source),
                })
        }
        _ => Ok(None),
    }
}

/// A name for a local layout or archive: its file name without extension.
fn local_stem(path: &Path) -> String {
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let stem = canonical
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sanitized = convert::sanitize_name(&stem);
    sanitized.replace('/', "-")
}

fn absolute(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// `name:tag` (a ref name or a repo tag) split; a bare tag names `stem`.
fn split_name_tag(r: &str, stem: &str) -> (String, Option<String>) {
    let last_slash = r.rfind('/').map_or(0, |i| i + 1);
    match r[last_slash..].rfind(':') {
        Some(i) => {
            let at = last_slash + i;
            (r[..at].to_string(), Some(r[at + 1..].to_string()))
        }
        None if r.contains('/') => (r.to_string(), None),
        None => (stem.to_string(), Some(r.to_string())),
    }
}
