//! The documents of the OCI image spec and their Docker (schema 2) twins: digests,
//! descriptors, indexes (manifest lists), manifests and image configurations.
//!
//! Only the fields rkt reads are typed; everything else is ignored. Both the OCI and
//! the Docker media types are accepted wherever the spec allows either.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};

use serde::Deserialize;
use sha2::{Digest as _, Sha256, Sha512};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// What a registry is asked for when a manifest is requested.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Annotation of an OCI image layout's index naming a manifest (`oci:DIR:REF`).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// A hash algorithm a digest may use. OCI requires sha256 and allows sha512.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid digest {value:?}: {reason}")]
pub struct DigestError {
    pub value: String,
    pub reason: &'static str,
}

/// A content digest, `sha256:<64 lower-case hex>` (or sha512).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    pub fn parse(value: &str) -> Result<Digest, DigestError> {
        let err = |reason| DigestError {
            value: value.to_string(),
            reason,
        };
        let (alg, hex) = value
            .split_once(':')
            .ok_or_else(|| err("a digest is ALGORITHM:HEX"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(err("only sha256 and sha512 digests are supported")),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(err("the hex part has the wrong length for its algorithm"));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(err("only lower-case hex digits may follow the algorithm"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// The sha256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(Sha256::digest(data)),
        }
    }

    /// The digest of `data` with this digest's algorithm.
    pub fn same_algorithm_of(&self, data: &[u8]) -> Digest {
        let mut h = Hasher::new(self.algorithm);
        h.update(data);
        h.finish()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// `sha256-<hex>`: the form used in file names and appc labels.
    pub fn file_name(&self) -> String {
        format!("{}-{}", self.algorithm.name(), self.hex)
    }

    /// The first 12 hex digits, for messages.
    pub fn short(&self) -> String {
        format!(
            "{}:{}",
            self.algorithm.name(),
            self.hex.get(..12).unwrap_or(&self.hex)
        )
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A running hash of either algorithm.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest {
                algorithm: Algorithm::Sha256,
                hex: hex::encode(h.finalize()),
            },
            Hasher::Sha512(h) => Digest {
                algorithm: Algorithm::Sha512,
                hex: hex::encode(h.finalize()),
            },
        }
    }
}

/// A reader that hashes and counts what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, algorithm: Algorithm) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(algorithm),
            count: 0,
        }
    }

    /// Read the rest of the stream (so that the hash covers all of it), then return
    /// the digest and the byte count.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.hasher.finish(), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// An OS/architecture pair (and variant) of an image or an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = self.variant.as_deref().filter(|v| !v.is_empty()) {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The platform this rkt runs on, in OCI (Go) spelling.
pub fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "loongarch64" => "loong64",
        other => other,
    };
    // Rust has no powerpc64le arch name of its own: tell it by endianness.
    let architecture = if architecture == "ppc64" && cfg!(target_endian = "little") {
        "ppc64le"
    } else {
        architecture
    };
    Platform {
        architecture: architecture.to_string(),
        os: std::env::consts::OS.to_string(),
        variant: match architecture {
            "arm64" => Some("v8".to_string()),
            _ => None,
        },
    }
}

/// A reference to content: what it is, its digest and size.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// An image manifest (OCI, or Docker schema 2).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// The image configuration blob.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
}

/// The execution defaults of an image (`config` in the image configuration).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContainerConfig {
    #[serde(rename = "User", default)]
    pub user: Option<String>,
    #[serde(rename = "ExposedPorts", default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// A fetched manifest document: an index or an image manifest.
#[derive(Debug, Clone)]
pub enum Document {
    Index(Index),
    Manifest(Manifest),
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error(
        "it is a Docker schema 1 manifest, which is not supported (push the image again \
         with a current client to get schema 2)"
    )]
    Schema1,
    #[error("unsupported manifest media type {0}")]
    MediaType(String),
    #[error("invalid JSON")]
    Json(#[from] serde_json::Error),
}

/// Parse a manifest document. `content_type` is the transport's (the HTTP
/// `Content-Type`, or a descriptor's media type); the document's own `mediaType`
/// field, then its shape, decide when that is absent or generic.
pub fn parse_document(bytes: &[u8], content_type: Option<&str>) -> Result<Document, DocumentError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        schema_version: Option<i64>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        config: Option<serde_json::Value>,
    }
    let known = |m: &str| {
        matches!(
            m,
            OCI_INDEX
                | DOCKER_LIST
                | OCI_MANIFEST
                | DOCKER_MANIFEST
                | DOCKER_SCHEMA1
                | DOCKER_SCHEMA1_SIGNED
        )
    };
    // A transport type we know wins; a generic or unknown one (some servers say
    // application/json or octet-stream) defers to the document.
    let declared = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_string())
        .filter(|c| known(c));
    let probe: Probe = serde_json::from_slice(bytes)?;
    match declared.or(probe.media_type).as_deref() {
        Some(OCI_INDEX | DOCKER_LIST) => Ok(Document::Index(serde_json::from_slice(bytes)?)),
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => {
            Ok(Document::Manifest(serde_json::from_slice(bytes)?))
        }
        Some(DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED) => Err(DocumentError::Schema1),
        Some(other) => Err(DocumentError::MediaType(other.to_string())),
        None if probe.schema_version == Some(1) => Err(DocumentError::Schema1),
        None if probe.manifests.is_some() => Ok(Document::Index(serde_json::from_slice(bytes)?)),
        None if probe.config.is_some() => Ok(Document::Manifest(serde_json::from_slice(bytes)?)),
        None => Err(DocumentError::MediaType("(none)".to_string())),
    }
}

/// Whether a descriptor's media type is one of a manifest (not an index).
pub fn is_manifest_type(media_type: &str) -> bool {
    matches!(media_type, OCI_MANIFEST | DOCKER_MANIFEST | "")
}

/// Choose the entry of an index for `want`: same OS and architecture, then the
/// variant if both sides name one (an entry without a variant matches any). Entries
/// that are not image manifests (attestations, nested indexes) are skipped.
pub fn select_platform<'a>(index: &'a Index, want: &Platform) -> Option<&'a Descriptor> {
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| is_manifest_type(&d.media_type))
        .filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == want.os && p.architecture == want.architecture)
        })
        .collect();
    let want_variant = want.variant.as_deref().filter(|v| !v.is_empty());
    let exact = candidates.iter().find(|d| {
        let v = d
            .platform
            .as_ref()
            .and_then(|p| p.variant.as_deref())
            .filter(|v| !v.is_empty());
        v == want_variant
    });
    exact
        .or_else(|| {
            candidates.iter().find(|d| {
                d.platform
                    .as_ref()
                    .and_then(|p| p.variant.as_deref())
                    .is_none_or(str::is_empty)
            })
        })
        .or(candidates.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digests_parse_and_verify() {
        let d = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        assert_eq!(d, Digest::sha256_of(b""));
        assert_eq!(d.file_name(), format!("sha256-{HEX}"));
        assert_eq!(d.short(), "sha256:e3b0c44298fc");
        assert_eq!(d.to_string(), format!("sha256:{HEX}"));
        for bad in [
            "sha256",
            "md5:abcd",
            "sha256:abc",
            &format!("sha256:{}", HEX.to_uppercase()),
            &format!("sha512:{HEX}"),
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
        let s512 = Digest::parse(&format!("sha512:{}", "0".repeat(128))).unwrap();
        assert_eq!(s512.algorithm(), Algorithm::Sha512);
        assert_ne!(s512.same_algorithm_of(b"x"), s512);
    }

    #[test]
    fn hashing_reader_covers_the_whole_stream() {
        let data = b"hello world".to_vec();
        let mut r = HashingReader::new(&data[..], Algorithm::Sha256);
        let mut first = [0u8; 5];
        r.read_exact(&mut first).unwrap();
        let (digest, n) = r.finish().unwrap();
        assert_eq!(n, 11);
        assert_eq!(digest, Digest::sha256_of(&data));
    }

    fn desc(os: &str, arch: &str, variant: Option<&str>, media: &str) -> serde_json::Value {
        let mut p = serde_json::json!({"os": os, "architecture": arch});
        if let Some(v) = variant {
            p["variant"] = v.into();
        }
        serde_json::json!({
            "mediaType": media,
            "digest": format!("sha256:{}", hex::encode(Sha256::digest(format!("{os}{arch}{variant:?}{media}")))),
            "size": 1,
            "platform": p,
        })
    }

    #[test]
    fn platform_selection() {
        let index: Index = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "manifests": [
                desc("unknown", "unknown", None, OCI_MANIFEST),
                desc("linux", "arm", Some("v6"), OCI_MANIFEST),
                desc("linux", "arm", Some("v7"), OCI_MANIFEST),
                desc("linux", "arm64", Some("v8"), OCI_MANIFEST),
                desc("linux", "amd64", None, DOCKER_MANIFEST),
                desc("windows", "amd64", None, OCI_MANIFEST),
            ]
        }))
        .unwrap();
        let pick = |os: &str, arch: &str, variant: Option<&str>| {
            select_platform(
                &index,
                &Platform {
                    os: os.into(),
                    architecture: arch.into(),
                    variant: variant.map(String::from),
                },
            )
            .map(|d| d.platform.clone().unwrap().to_string())
        };
        assert_eq!(pick("linux", "amd64", None).as_deref(), Some("linux/amd64"));
        assert_eq!(
            pick("linux", "arm", Some("v7")).as_deref(),
            Some("linux/arm/v7")
        );
        assert_eq!(
            pick("linux", "arm64", None).as_deref(),
            Some("linux/arm64/v8")
        );
        assert_eq!(pick("linux", "s390x", None), None);
        let host = host_platform();
        assert_eq!(host.os, "linux");
        assert!(!host.architecture.is_empty());
    }

    #[test]
    fn documents_by_content_type_media_type_or_shape() {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "x", "digest": format!("sha256:{HEX}"), "size": 2},
            "layers": []
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        assert!(matches!(
            parse_document(&bytes, Some(OCI_MANIFEST)),
            Ok(Document::Manifest(_))
        ));
        assert!(matches!(
            parse_document(&bytes, None),
            Ok(Document::Manifest(_))
        ));
        assert!(matches!(
            parse_document(&bytes, Some("application/json; charset=utf-8")),
            Ok(Document::Manifest(_))
        ));
        let index =
            serde_json::json!({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": []});
        assert!(matches!(
            parse_document(&serde_json::to_vec(&index).unwrap(), None),
            Ok(Document::Index(_))
        ));
        let v1 = serde_json::json!({"schemaVersion": 1, "name": "x", "fsLayers": []});
        assert!(matches!(
            parse_document(&serde_json::to_vec(&v1).unwrap(), None),
            Err(DocumentError::Schema1)
        ));
        assert!(matches!(
            parse_document(&bytes, Some(DOCKER_SCHEMA1_SIGNED)),
            Err(DocumentError::Schema1)
        ));
        assert!(matches!(
            parse_document(&bytes, Some("application/octet-stream")),
            Ok(Document::Manifest(_))
        ));
        let artifact =
            serde_json::json!({"mediaType": "application/vnd.example+json", "config": {}});
        assert!(matches!(
            parse_document(&serde_json::to_vec(&artifact).unwrap(), None),
            Err(DocumentError::MediaType(_))
        ));
        assert!(parse_document(b"not json", None).is_err());
    }
}
