//! Parsing `docker://`, `oci:`, `oci-archive:` and `docker-archive:` references.
//!
//! `docker://[REGISTRY/]REPO[:TAG][@sha256:DIGEST]` follows Docker's grammar: the
//! first path component is a registry when it contains `.` or `:` or is `localhost`;
//! otherwise the image is on Docker Hub (`registry-1.docker.io`), where a
//! one-component repository lives under `library/`. The tag defaults to `latest`
//! unless a digest is given; with both, the digest decides what is fetched and the
//! tag only names the image.

use std::fmt;
use std::path::{Path, PathBuf};

use super::spec::Digest;

/// Docker Hub's registry API host, which `docker.io` and bare names mean.
pub const DOCKER_HUB: &str = "registry-1.docker.io";
/// The tag used when a reference names none.
pub const DEFAULT_TAG: &str = "latest";
/// Docker's limit on a repository name (with its registry).
const MAX_NAME_LEN: usize = 255;

#[derive(Debug, thiserror::Error)]
#[error("invalid image reference {input}: {reason}")]
pub struct ReferenceError {
    pub input: String,
    pub reason: String,
}

/// An image in a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRef {
    /// `host[:port]`, Docker Hub spelled `registry-1.docker.io`.
    pub registry: String,
    /// `library/busybox`, `team/app`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl RegistryRef {
    /// `registry/repository`: the image's name in the store.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag to fetch or record: the given one, else `latest` when no digest pins
    /// the image.
    pub fn effective_tag(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some(DEFAULT_TAG),
            (None, Some(_)) => None,
        }
    }

    /// What goes after `/manifests/` in the registry API: the digest, else the tag.
    pub fn manifest_reference(&self) -> String {
        match &self.digest {
            Some(d) => d.to_string(),
            None => self.effective_tag().unwrap_or(DEFAULT_TAG).to_string(),
        }
    }
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = self.effective_tag() {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Where an OCI or Docker image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `docker://...`: a registry speaking the distribution API.
    Registry(RegistryRef),
    /// `oci:DIR[:REF]`: an OCI image layout directory; REF names an entry of its
    /// index (`org.opencontainers.image.ref.name`) or is a digest.
    Layout {
        dir: PathBuf,
        reference: Option<String>,
    },
    /// `oci-archive:FILE[:REF]`: an OCI image layout in a tar file.
    OciArchive {
        file: PathBuf,
        reference: Option<String>,
    },
    /// `docker-archive:FILE[:NAME:TAG|:@N]`: what `docker save` writes.
    DockerArchive {
        file: PathBuf,
        reference: Option<String>,
    },
}

impl Source {
    /// Parse any of the four transports.
    pub fn parse(input: &str) -> Result<Source, ReferenceError> {
        let err = |reason: &str| ReferenceError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = input.strip_prefix("docker://") {
            return parse_docker(rest)
                .map(Source::Registry)
                .map_err(|reason| err(&reason));
        }
        let (transport, rest) = input
            .split_once(':')
            .ok_or_else(|| err("expected docker://, oci:, oci-archive: or docker-archive:"))?;
        let want_dir = transport == "oci";
        let (path, reference) = split_path(rest, want_dir);
        if path.as_os_str().is_empty() {
            return Err(err("the path is empty"));
        }
        if reference.as_deref() == Some("") {
            return Err(err("the reference after the path is empty"));
        }
        match transport {
            "oci" => Ok(Source::Layout {
                dir: path,
                reference,
            }),
            "oci-archive" => Ok(Source::OciArchive {
                file: path,
                reference,
            }),
            "docker-archive" => Ok(Source::DockerArchive {
                file: path,
                reference,
            }),
            _ => Err(err(
                "expected docker://, oci:, oci-archive: or docker-archive:",
            )),
        }
    }

    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            Source::Registry(r) => format!("docker://{r}"),
            Source::Layout { dir, reference } => with_ref("oci:", dir, reference),
            Source::OciArchive { file, reference } => with_ref("oci-archive:", file, reference),
            Source::DockerArchive { file, reference } => {
                with_ref("docker-archive:", file, reference)
            }
        }
    }
}

fn with_ref(prefix: &str, path: &Path, reference: &Option<String>) -> String {
    match reference {
        Some(r) => format!("{prefix}{}:{r}", path.display()),
        None => format!("{prefix}{}", path.display()),
    }
}

/// Split `PATH[:REF]`. The longest prefix that exists (as a directory for layouts,
/// a file for archives) is the path; failing that, the part before the first `:`.
fn split_path(rest: &str, want_dir: bool) -> (PathBuf, Option<String>) {
    let exists = |p: &str| {
        let p = Path::new(p);
        if want_dir {
            p.is_dir()
        } else {
            p.is_file()
        }
    };
    if exists(rest) {
        return (PathBuf::from(rest), None);
    }
    let colons: Vec<usize> = rest.match_indices(':').map(|(i, _)| i).collect();
    for &i in colons.iter().rev() {
        if exists(&rest[..i]) {
            return (PathBuf::from(&rest[..i]), Some(rest[i + 1..].to_string()));
        }
    }
    match colons.first() {
        Some(&i) => (PathBuf::from(&rest[..i]), Some(rest[i + 1..].to_string())),
        None => (PathBuf::from(rest), None),
    }
}

/// Parse a Docker reference (without `docker://`), normalising Docker Hub names.
pub fn parse_docker(input: &str) -> Result<RegistryRef, String> {
    if input.is_empty() {
        return Err("the reference is empty".to_string());
    }
    let (name_tag, digest) = match input.split_once('@') {
        Some((n, d)) => (
            n,
            Some(Digest::parse(d).map_err(|e| format!("bad digest after @: {}", e.reason))?),
        ),
        None => (input, None),
    };
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => {
            let at = last_slash + i;
            (&name_tag[..at], Some(&name_tag[at + 1..]))
        }
        None => (name_tag, None),
    };
    if let Some(t) = tag {
        check_tag(t)?;
    }
    let (registry, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    };
    let registry = match registry {
        None | Some("docker.io" | "index.docker.io" | DOCKER_HUB) => DOCKER_HUB.to_string(),
        Some(r) => {
            check_registry(r)?;
            r.to_ascii_lowercase()
        }
    };
    if path.is_empty() {
        return Err("the repository name is empty".to_string());
    }
    for component in path.split('/') {
        check_component(component)?;
    }
    let repository = if registry == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
        return Err(format!("the name is longer than {MAX_NAME_LEN} characters"));
    }
    Ok(RegistryRef {
        registry,
        repository,
        tag: tag.map(str::to_string),
        digest,
    })
}

fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bad tag {tag:?}: up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"
        ))
    }
}

fn check_registry(registry: &str) -> Result<(), String> {
    let bad = || format!("bad registry host {registry:?}");
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        // [IPv6]:port
        let (addr, after) = rest.split_once(']').ok_or_else(bad)?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        match after {
            "" => return Ok(()),
            p => (None, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match registry.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(registry), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
    }
    if let Some(h) = host {
        let ok = !h.is_empty()
            && h.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn check_component(c: &str) -> Result<(), String> {
    if c.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "bad repository name component {c:?}: repository names must be lower-case"
        ));
    }
    let bad = || {
        format!(
            "bad repository name component {c:?}: use lower-case letters and digits, \
             separated by '.', '_', '__' or dashes"
        )
    };
    let bytes = c.as_bytes();
    if bytes.is_empty() {
        return Err(bad());
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    let mut expect_alnum = true;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            expect_alnum = false;
            i += 1;
            continue;
        }
        if expect_alnum {
            return Err(bad());
        }
        // A separator: '.', '_', '__' or a run of '-'.
        let start = i;
        match b {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return Err(bad()),
        }
        if i == start {
            return Err(bad());
        }
        expect_alnum = true;
    }
    if expect_alnum {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn docker(s: &str) -> RegistryRef {
        parse_docker(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_hub_conventions() {
        let r = docker("busybox");
        assert_eq!(r.registry, DOCKER_HUB);
        assert_eq!(r.repository, "library/busybox");
        assert_eq!(r.effective_tag(), Some("latest"));
        assert_eq!(r.manifest_reference(), "latest");
        assert_eq!(r.to_string(), "registry-1.docker.io/library/busybox:latest");
        assert_eq!(
            docker("docker.io/busybox:1.36").repository,
            "library/busybox"
        );
        assert_eq!(docker("index.docker.io/team/app").repository, "team/app");
        assert_eq!(docker("team/app:v1").registry, DOCKER_HUB);
    }

    #[test]
    fn registries_tags_and_digests() {
        let r = docker("127.0.0.1:5000/busybox:latest");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "busybox");
        assert_eq!(r.name(), "127.0.0.1:5000/busybox");
        let r = docker(&format!("localhost/a/b@{D}"));
        assert_eq!(r.registry, "localhost");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.effective_tag(), None);
        assert_eq!(r.manifest_reference(), D);
        let r = docker(&format!("quay.io/x/y:1.0@{D}"));
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.manifest_reference(), D, "the digest decides");
        assert_eq!(docker("[::1]:5000/app").registry, "[::1]:5000");
        assert_eq!(docker("Example.COM/app").registry, "example.com");
        assert_eq!(
            docker("a.b/c__d/e-f--g/h.i:t_1.2-3").repository,
            "c__d/e-f--g/h.i"
        );
    }

    #[test]
    fn bad_references_say_why() {
        for (input, needle) in [
            ("", "empty"),
            ("Busybox", "lower-case"),
            ("busybox:", "bad tag"),
            ("busybox:-x", "bad tag"),
            ("busybox@sha256:abc", "bad digest"),
            ("busybox@md5:abc", "bad digest"),
            ("a..b", "bad repository name"),
            ("a/_b", "bad repository name"),
            ("a/", "bad repository name"),
            ("host.com:99999999/a", "bad registry"),
            ("ex_ample.com/a", "bad registry"),
        ] {
            let err = parse_docker(input).unwrap_err();
            assert!(err.contains(needle), "{input}: {err}");
        }
        let long = format!("a/{}", "b".repeat(300));
        assert!(parse_docker(&long).unwrap_err().contains("longer"));
        let err = Source::parse("docker://Bad").unwrap_err();
        assert!(err.to_string().contains("docker://Bad"), "{err}");
    }

    #[test]
    fn local_transports() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("lay:out");
        std::fs::create_dir(&layout).unwrap();
        let l = layout.display().to_string();
        assert_eq!(
            Source::parse(&format!("oci:{l}")).unwrap(),
            Source::Layout {
                dir: layout.clone(),
                reference: None
            }
        );
        assert_eq!(
            Source::parse(&format!("oci:{l}:v1")).unwrap(),
            Source::Layout {
                dir: layout.clone(),
                reference: Some("v1".into())
            }
        );
        let archive = dir.path().join("img.tar");
        std::fs::write(&archive, b"").unwrap();
        let a = archive.display().to_string();
        assert_eq!(
            Source::parse(&format!("docker-archive:{a}:busybox:latest")).unwrap(),
            Source::DockerArchive {
                file: archive.clone(),
                reference: Some("busybox:latest".into())
            }
        );
        assert_eq!(
            Source::parse(&format!("oci-archive:{a}")).unwrap(),
            Source::OciArchive {
                file: archive,
                reference: None
            }
        );
        // A path that does not exist: split at the first colon.
        assert_eq!(
            Source::parse("oci:/nonexistent:tag").unwrap(),
            Source::Layout {
                dir: "/nonexistent".into(),
                reference: Some("tag".into())
            }
        );
        assert!(Source::parse("oci:").is_err());
        assert!(Source::parse("oci:/x:").is_err());
        assert!(Source::parse("tarball:/x").is_err());
    }
}
