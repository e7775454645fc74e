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
mod import;
pub mod layout;
pub mod mirrors;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod spec;

#[cfg(test)]
mod tests;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use manifests::appc::AppcError;

use crate::image::store::{ImageInfo, Store, StoreError};
use crate::image::transfer::{Progress, PullPolicy, SKIPPED_VERIFICATION};
use crate::insecure::InsecureOptions;
pub use auth::{AuthConfig, AuthConfigError, Credentials};
use layout::{DockerArchive, Files, Layout};
pub use mirrors::{Endpoint, MirrorError, Mirrors};
pub use reference::{ReferenceError, RegistryRef, Source};
use registry::Registry;
use spec::{Digest, Document, Index, Platform};

/// The largest image config accepted.
const CONFIG_LIMIT: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    AuthConfig(#[from] AuthConfigError),
    #[error(transparent)]
    Mirrors(#[from] MirrorError),
    #[error("no endpoint served {image}; tried: {tried}")]
    NoEndpoint { image: String, tried: String },
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
    mirrors: Mirrors,
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
            mirrors: Mirrors::default(),
            platform: spec::host_platform(),
        }
    }

    /// Look for `registries.d/<host>/hosts.toml` mirror configuration.
    pub fn with_mirrors(mut self, mirrors: Mirrors) -> Self {
        self.mirrors = mirrors;
        self
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

    /// `docker://`: the stored image if the policy allows; else the manifest (through an
    /// index for this platform), verified; nothing transferred if the store has that
    /// manifest under the tag; else the trust check and the import.
    fn fetch_registry(&self, r: &RegistryRef) -> Result<ImageInfo, OciError> {
        let described = format!("docker://{r}");
        let tag = r.effective_tag().map(str::to_string);
        if let Some(info) = self.stored_first(r, tag.as_deref(), &described)? {
            return Ok(info);
        }
        let (registry, top) = self.resolve(r, &described)?;
        let top_digest = verify_top_manifest(&top, r.digest.as_ref(), &described)?;
        let resolved = self.platform_manifest(&registry, top, top_digest, &described)?;
        if let Some(info) = self.up_to_date(r, tag.as_deref(), &resolved.digest, &described)? {
            return Ok(info);
        }
        self.check_trust(r.digest.is_some(), &described)?;
        let (plan, index) = resolved.into_plan();
        self.import(&registry, plan, index, registry_identity(r, tag, described))
    }

    /// The stored image `r` names, when the pull policy (or a pinned digest) says to
    /// use it; `never` with none stored is an error.
    fn stored_first(
        &self,
        r: &RegistryRef,
        tag: Option<&str>,
        described: &str,
    ) -> Result<Option<ImageInfo>, OciError> {
        let pinned = r.digest.is_some();
        if !store_first(self.pull_policy, pinned) {
            return Ok(None);
        }
        let digest = r.digest.as_ref().map(Digest::to_string);
        let found = self
            .store
            .find_oci(
                "docker",
                &r.registry,
                &r.repository,
                if pinned { None } else { tag },
                digest.as_deref(),
            )
            .map_err(Self::store_err("look up", described))?;
        if let Some(info) = found {
            tracing::debug!(image = %info.id, %described, "using the stored image");
            self.touch(&info)?;
            return Ok(Some(info));
        }
        if self.pull_policy == PullPolicy::Never {
            return Err(OciError::NotInStore {
                image: described.to_string(),
            });
        }
        Ok(None)
    }

    /// The top manifest of `r` from the first endpoint (mirrors in order, then the
    /// registry) that serves it, and a client for that endpoint, which serves the
    /// rest of the image. With one endpoint its error is returned as it is; with
    /// several, one error names each endpoint tried and why it failed.
    fn resolve(
        &self,
        r: &RegistryRef,
        described: &str,
    ) -> Result<(Registry, RawManifest), OciError> {
        let pinned = r.digest.is_some();
        let endpoints: Vec<Endpoint> = self
            .mirrors
            .endpoints(r)?
            .into_iter()
            .filter(|e| e.serves(pinned))
            .collect();
        let single = endpoints.len() == 1;
        let mut tried = Vec::new();
        for endpoint in &endpoints {
            let registry = self.registry_for(r, endpoint);
            match registry.manifest(&r.manifest_reference()) {
                Ok(top) => {
                    if endpoint.mirror {
                        self.progress
                            .message(&format!("{described}: from mirror {}", endpoint.url));
                    }
                    return Ok((registry, top));
                }
                Err(e) if single => return Err(e),
                Err(e) => {
                    tracing::info!(endpoint = %endpoint.url, error = %manifests::error::chain(&e), "trying the next endpoint");
                    tried.push(format!(
                        "{} ({})",
                        endpoint.url,
                        manifests::error::chain(&e)
                    ));
                }
            }
        }
        Err(OciError::NoEndpoint {
            image: described.to_string(),
            tried: if tried.is_empty() {
                "none: no configured endpoint can resolve a tag; pin the image by digest"
                    .to_string()
            } else {
                tried.join("; ")
            },
        })
    }

    /// A client for `endpoint` with the credentials configured for its host.
    fn registry_for(&self, r: &RegistryRef, endpoint: &Endpoint) -> Registry {
        let credentials = self.auth.for_registry(&endpoint.host).cloned();
        let source = self
            .auth
            .source_of(&endpoint.host)
            .map(|p| p.display().to_string());
        Registry::new(r, endpoint, self.insecure, credentials, source)
    }

    /// The image manifest for this platform: `top` itself, or the one its index
    /// selects (fetched from `registry` and verified).
    fn platform_manifest(
        &self,
        registry: &Registry,
        top: RawManifest,
        top_digest: Digest,
        described: &str,
    ) -> Result<Resolved, OciError> {
        let document =
            spec::parse_document(&top.bytes, top.media_type.as_deref()).map_err(|source| {
                OciError::Document {
                    what: "the manifest",
                    image: described.to_string(),
                    source,
                }
            })?;
        match document {
            Document::Manifest(manifest) => Ok(Resolved {
                index: None,
                bytes: top.bytes,
                digest: top_digest,
                manifest,
            }),
            Document::Index(i) => {
                let desc = spec::select_platform(&i, &self.platform)
                    .cloned()
                    .ok_or_else(|| OciError::NoPlatform {
                        image: described.to_string(),
                        want: self.platform.to_string(),
                        available: available_platforms(&i),
                    })?;
                let raw = registry.manifest(&desc.digest.to_string())?;
                let manifest = verify_platform_manifest(&desc, &raw, &self.platform, described)?;
                Ok(Resolved {
                    index: Some((top.bytes, top_digest)),
                    bytes: raw.bytes,
                    digest: desc.digest,
                    manifest,
                })
            }
        }
    }

    /// The stored image the tag names, if it is still `manifest_digest`: nothing to
    /// transfer.
    fn up_to_date(
        &self,
        r: &RegistryRef,
        tag: Option<&str>,
        manifest_digest: &Digest,
        described: &str,
    ) -> Result<Option<ImageInfo>, OciError> {
        let same = self
            .store
            .find_oci(
                "docker",
                &r.registry,
                &r.repository,
                tag,
                Some(&manifest_digest.to_string()),
            )
            .map_err(Self::store_err("look up", described))?;
        if let Some(info) = &same {
            self.progress.message(&format!(
                "{described}: up to date ({})",
                manifest_digest.short()
            ));
            self.touch(info)?;
        }
        Ok(same)
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
}

/// An image manifest resolved from a registry: its bytes and digest, and the index
/// it was chosen from, if any.
#[derive(Debug)]
struct Resolved {
    index: Option<(Vec<u8>, Digest)>,
    bytes: Vec<u8>,
    digest: Digest,
    manifest: spec::Manifest,
}

impl Resolved {
    /// The blobs to store (the manifest, and the config and layers it lists), and the
    /// index.
    fn into_plan(self) -> (Plan, Option<(Vec<u8>, Digest)>) {
        let plan = Plan {
            config: BlobSpec::from_descriptor(&self.manifest.config),
            layers: self
                .manifest
                .layers
                .iter()
                .map(BlobSpec::from_descriptor)
                .collect(),
            manifest: Some((self.bytes, self.digest)),
        };
        (plan, self.index)
    }
}

/// Whether a registry fetch looks in the store before asking the registry: always,
/// except under `update` for a reference not pinned by digest.
fn store_first(policy: PullPolicy, pinned: bool) -> bool {
    policy != PullPolicy::Update || pinned
}

/// The digest of the manifest a registry sent for a reference: it must match the
/// pinned digest, or else the `Docker-Content-Digest` the registry claimed (if any);
/// unpinned, it is the sha256 of the bytes.
fn verify_top_manifest(
    top: &RawManifest,
    pin: Option<&Digest>,
    described: &str,
) -> Result<Digest, OciError> {
    let mismatch = |expected: &Digest, actual: &Digest| OciError::DigestMismatch {
        what: "the manifest".to_string(),
        image: described.to_string(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    };
    match pin {
        Some(pin) => {
            let actual = pin.same_algorithm_of(&top.bytes);
            if &actual != pin {
                return Err(mismatch(pin, &actual));
            }
            Ok(actual)
        }
        None => {
            let actual = Digest::sha256_of(&top.bytes);
            if let Some(claimed) = &top.digest_header {
                let same = claimed.same_algorithm_of(&top.bytes);
                if &same != claimed {
                    return Err(mismatch(claimed, &same));
                }
            }
            Ok(actual)
        }
    }
}

/// The platform manifest an index pointed at (`desc`): the bytes must have its digest
/// and be an image manifest (of the descriptor's media type, else the one sent).
fn verify_platform_manifest(
    desc: &spec::Descriptor,
    raw: &RawManifest,
    platform: &Platform,
    described: &str,
) -> Result<spec::Manifest, OciError> {
    let actual = desc.digest.same_algorithm_of(&raw.bytes);
    if actual != desc.digest {
        return Err(OciError::DigestMismatch {
            what: format!("the {platform} manifest"),
            image: described.to_string(),
            expected: desc.digest.to_string(),
            actual: actual.to_string(),
        });
    }
    let media = (!desc.media_type.is_empty()).then_some(desc.media_type.as_str());
    match spec::parse_document(&raw.bytes, media.or(raw.media_type.as_deref())).map_err(
        |source| OciError::Document {
            what: "the platform manifest",
            image: described.to_string(),
            source,
        },
    )? {
        Document::Manifest(m) => Ok(m),
        Document::Index(_) => Err(OciError::Document {
            what: "the platform manifest",
            image: described.to_string(),
            source: spec::DocumentError::MediaType("a nested index".to_string()),
        }),
    }
}

/// How an image from a registry is recorded.
fn registry_identity(r: &RegistryRef, tag: Option<String>, described: String) -> Identity {
    Identity {
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
