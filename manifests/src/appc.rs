//! appc (App Container) image manifest types, as in the appc spec (`spec/aci.md`).
//!
//! Only what the runtime reads is typed; unknown fields are kept so that a manifest
//! can be printed back (`rkt image cat-manifest`) without loss.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The appc version we write into manifests we generate.
pub const AC_VERSION: &str = "0.8.11";

/// Errors from parsing or validating appc documents.
#[derive(Debug, thiserror::Error)]
pub enum AppcError {
    #[error("invalid image manifest JSON")]
    Json(#[from] serde_json::Error),
    #[error("acKind must be \"ImageManifest\", found {0:?}")]
    Kind(String),
    #[error("invalid AC identifier {value:?}: {reason}")]
    Identifier { value: String, reason: &'static str },
    #[error("label name {0:?} is not allowed")]
    Label(String),
}

/// An AC Identifier: lower-case URL-like name (`example.com/app`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AcIdentifier(String);

impl AcIdentifier {
    /// Validate per the appc spec: `[a-z0-9]+([-._~/][a-z0-9]+)*`.
    pub fn new(value: &str) -> Result<Self, AppcError> {
        let err = |reason| AppcError::Identifier {
            value: value.to_string(),
            reason,
        };
        if value.is_empty() {
            return Err(err("empty"));
        }
        let mut prev_sep = true;
        for c in value.chars() {
            let is_sep = matches!(c, '-' | '.' | '_' | '~' | '/');
            if is_sep {
                if prev_sep {
                    return Err(err("separators must sit between alphanumerics"));
                }
            } else if !(c.is_ascii_lowercase() || c.is_ascii_digit()) {
                return Err(err("only lower-case letters, digits and -._~/ are allowed"));
            }
            prev_sep = is_sep;
        }
        if prev_sep {
            return Err(err("must not end with a separator"));
        }
        Ok(Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AcIdentifier {
    type Error = AppcError;
    fn try_from(v: String) -> Result<Self, Self::Error> {
        Self::new(&v)
    }
}

impl From<AcIdentifier> for String {
    fn from(v: AcIdentifier) -> String {
        v.0
    }
}

impl fmt::Display for AcIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A `{name, value}` pair as used by labels, annotations and environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

/// Look a name up in a list of name/value pairs.
pub fn lookup<'a>(list: &'a [NameValue], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|nv| nv.name == name)
        .map(|nv| nv.value.as_str())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountPoint {
    pub name: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    pub name: String,
    pub protocol: String,
    pub port: u16,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub socket_activated: bool,
}

fn one() -> u32 {
    1
}
fn is_one(v: &u32) -> bool {
    *v == 1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Isolator {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec: Vec<String>,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub group: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        rename = "supplementaryGIDs"
    )]
    pub supplementary_gids: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<NameValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub isolators: Vec<Isolator>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_points: Vec<MountPoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    pub image_name: AcIdentifier,
    #[serde(default, rename = "imageID", skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<NameValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// The `manifest` file at the top of an ACI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub ac_kind: String,
    pub ac_version: String,
    pub name: AcIdentifier,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<NameValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<App>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path_whitelist: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<NameValue>,
    /// Fields this version does not know, kept for round-tripping.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl ImageManifest {
    /// Parse and validate an image manifest.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, AppcError> {
        let m: ImageManifest = serde_json::from_slice(bytes)?;
        if m.ac_kind != "ImageManifest" {
            return Err(AppcError::Kind(m.ac_kind));
        }
        if let Some(l) = m.labels.iter().find(|l| l.name == "name") {
            return Err(AppcError::Label(l.name.clone()));
        }
        Ok(m)
    }

    /// The value of a label (`version`, `os`, `arch`, ...).
    pub fn label(&self, name: &str) -> Option<&str> {
        lookup(&self.labels, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(AcIdentifier::new("example.com/app").is_ok());
        assert!(AcIdentifier::new("coreos.com/etcd-v2").is_ok());
        assert!(AcIdentifier::new("Example.com").is_err());
        assert!(AcIdentifier::new("a//b").is_err());
        assert!(AcIdentifier::new("a/").is_err());
        assert!(AcIdentifier::new("").is_err());
    }

    #[test]
    fn manifest_round_trip_keeps_unknown_fields() {
        let json = br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/busybox",
            "labels":[{"name":"version","value":"1.0"},{"name":"os","value":"linux"}],
            "app":{"exec":["/bin/sh"],"user":"0","group":"0"},"x-custom":{"a":1}}"#;
        let m = ImageManifest::from_slice(json).unwrap();
        assert_eq!(m.label("version"), Some("1.0"));
        assert_eq!(m.app.as_ref().unwrap().exec, vec!["/bin/sh"]);
        let back = serde_json::to_value(&m).unwrap();
        assert_eq!(back["x-custom"]["a"], 1);
    }

    #[test]
    fn rejects_wrong_kind_and_name_label() {
        let kind = br#"{"acKind":"PodManifest","acVersion":"0.8.11","name":"a"}"#;
        assert!(matches!(
            ImageManifest::from_slice(kind),
            Err(AppcError::Kind(_))
        ));
        let label = br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"a","labels":[{"name":"name","value":"x"}]}"#;
        assert!(matches!(
            ImageManifest::from_slice(label),
            Err(AppcError::Label(_))
        ));
    }
}
