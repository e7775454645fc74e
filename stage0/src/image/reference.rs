//! Image references as `rkt fetch`/`rkt run` take them.

use std::fmt;
use std::path::PathBuf;

use manifests::appc::AcIdentifier;

/// What the user named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A local `.aci` file (a path, or a `file://` URL).
    Path(PathBuf),
    /// An `http://` or `https://` URL to an `.aci`.
    Url(String),
    /// An image ID or a unique prefix of one (`sha512-0123...`).
    Hash(String),
    /// An appc name with labels (`example.com/app:1.0,os=linux`); `version` is the
    /// label given after `:`.
    Name {
        name: AcIdentifier,
        labels: Vec<(String, String)>,
    },
    /// `docker://...` and the other OCI transports (the Docker/OCI issue).
    Docker(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ImageRefError {
    #[error("invalid image reference {input:?}: {reason}")]
    Invalid { input: String, reason: String },
}

/// Minimum length of an ID prefix: `sha512-` and four hex digits.
pub const MIN_HASH_PREFIX: usize = "sha512-".len() + 4;

impl ImageRef {
    /// Parse a reference. A string that names an existing file is a path, as in rkt.
    pub fn parse(input: &str) -> Result<Self, ImageRefError> {
        let invalid = |reason: &str| ImageRefError::Invalid {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = input.strip_prefix("file://") {
            return Ok(ImageRef::Path(PathBuf::from(rest)));
        }
        if input.starts_with("https://") || input.starts_with("http://") {
            return Ok(ImageRef::Url(input.to_string()));
        }
        if input.starts_with("docker://")
            || input.starts_with("oci:")
            || input.starts_with("oci-archive:")
            || input.starts_with("docker-archive:")
        {
            return Ok(ImageRef::Docker(input.to_string()));
        }
        if let Some(hex) = input.strip_prefix("sha512-") {
            if input.len() < MIN_HASH_PREFIX {
                return Err(invalid(
                    "an image ID prefix needs at least sha512- and 4 hex digits",
                ));
            }
            if hex.len() > 128 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(invalid(
                    "an image ID is sha512- followed by up to 128 hex digits",
                ));
            }
            return Ok(ImageRef::Hash(input.to_ascii_lowercase()));
        }
        if input.starts_with('/')
            || input.starts_with("./")
            || input.starts_with("../")
            || input.ends_with(".aci")
            || std::path::Path::new(input).is_file()
        {
            return Ok(ImageRef::Path(PathBuf::from(input)));
        }
        // name[:version][,label=value...]
        let mut parts = input.split(',');
        let head = parts.next().unwrap_or_default();
        let mut labels = Vec::new();
        let name = match head.rsplit_once(':') {
            Some((n, v)) if !v.contains('/') => {
                if v.is_empty() {
                    return Err(invalid("empty version after ':'"));
                }
                labels.push(("version".to_string(), v.to_string()));
                n
            }
            _ => head,
        };
        for kv in parts {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| invalid("labels are written label=value"))?;
            if k == "name" {
                return Err(invalid("'name' is not a label"));
            }
            if labels.iter().any(|(lk, _)| lk == k) {
                return Err(invalid(&format!("label {k:?} given twice")));
            }
            labels.push((k.to_string(), v.to_string()));
        }
        let name = AcIdentifier::new(name).map_err(|e| invalid(&e.to_string()))?;
        Ok(ImageRef::Name { name, labels })
    }

    /// The value of a label of a `Name` reference.
    pub fn label(&self, key: &str) -> Option<&str> {
        match self {
            ImageRef::Name { labels, .. } => labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Path(p) => write!(f, "{}", p.display()),
            ImageRef::Url(u) | ImageRef::Hash(u) | ImageRef::Docker(u) => f.write_str(u),
            ImageRef::Name { name, labels } => {
                f.write_str(name.as_str())?;
                for (k, v) in labels {
                    if k == "version" {
                        write!(f, ":{v}")?;
                    }
                }
                for (k, v) in labels.iter().filter(|(k, _)| k != "version") {
                    write!(f, ",{k}={v}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            ImageRef::parse("file:///tmp/x.aci").unwrap(),
            ImageRef::Path("/tmp/x.aci".into())
        );
        assert!(matches!(
            ImageRef::parse("https://e.com/a.aci").unwrap(),
            ImageRef::Url(_)
        ));
        assert!(matches!(
            ImageRef::parse("docker://busybox").unwrap(),
            ImageRef::Docker(_)
        ));
        assert_eq!(
            ImageRef::parse("sha512-ABCD").unwrap(),
            ImageRef::Hash("sha512-abcd".into())
        );
        assert!(ImageRef::parse("sha512-abc").is_err());
        assert!(ImageRef::parse("sha512-zzzz").is_err());
        let r = ImageRef::parse("example.com/app:1.0,os=linux").unwrap();
        assert_eq!(r.label("version"), Some("1.0"));
        assert_eq!(r.label("os"), Some("linux"));
        assert_eq!(r.to_string(), "example.com/app:1.0,os=linux");
        let bare = ImageRef::parse("example.com/app").unwrap();
        assert_eq!(bare.label("version"), None);
        assert!(ImageRef::parse("Example.com/App").is_err());
        assert!(ImageRef::parse("example.com/app,name=x").is_err());
    }
}
