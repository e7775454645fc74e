//! appc pod manifest types, as in the appc spec (`spec/pods.md`).
//!
//! stage0 writes a *reified* pod manifest — every image referenced by ID, every mount
//! naming a declared volume — to the pod directory's `pod` file; `rkt cat-manifest`
//! prints it back. stage1 does not read it (it reads `runtime.json`). Unknown fields are
//! kept so that a manifest round-trips without loss.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::appc::{lookup, AcIdentifier, App, Isolator, NameValue, Port, AC_VERSION};

/// The `acKind` of a pod manifest.
pub const POD_MANIFEST_KIND: &str = "PodManifest";

/// Errors from parsing or validating a pod manifest.
#[derive(Debug, thiserror::Error)]
pub enum PodManifestError {
    #[error("invalid pod manifest JSON")]
    Json(#[from] serde_json::Error),
    #[error("acKind must be \"PodManifest\", found {0:?}")]
    Kind(String),
    #[error("invalid {what} name {name:?}: {reason}")]
    Name {
        what: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error("app {0:?} appears more than once in the pod")]
    DuplicateApp(String),
    #[error("volume {0:?} is declared more than once in the pod")]
    DuplicateVolume(String),
    #[error("app {app:?}: image ID {id:?} is not of the form sha512-<lower-case hex>")]
    ImageId { app: String, id: String },
    #[error("volume {volume:?}: a host volume needs an absolute source path")]
    HostSource { volume: String },
    #[error("volume {volume:?}: mode {mode:?} is not an octal permission like \"0755\"")]
    VolumeMode { volume: String, mode: String },
    #[error("app {app:?}: mount of undeclared volume {volume:?}")]
    UnknownVolume { app: String, volume: String },
    #[error("app {app:?}: mount path {path:?} is not absolute")]
    MountPath { app: String, path: String },
}

/// Check an AC Name (`spec/types.md`): `[a-z0-9]+(-[a-z0-9]+)*`. App, volume and port
/// names are AC Names; app names also name directories in the pod directory.
pub fn validate_ac_name(what: &'static str, name: &str) -> Result<(), PodManifestError> {
    let err = |reason| PodManifestError::Name {
        what,
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(err("empty"));
    }
    let mut prev_dash = true;
    for c in name.chars() {
        if c == '-' {
            if prev_dash {
                return Err(err("dashes must sit between letters or digits"));
            }
            prev_dash = true;
        } else if c.is_ascii_lowercase() || c.is_ascii_digit() {
            prev_dash = false;
        } else {
            return Err(err("only lower-case letters, digits and '-' are allowed"));
        }
    }
    if prev_dash {
        return Err(err("must not end with '-'"));
    }
    Ok(())
}

/// The image an app runs: `id` is required in a reified manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeImage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<AcIdentifier>,
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<NameValue>,
}

/// A volume mounted into an app: `volume` names a pod volume, `path` is where it
/// appears in the app's root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMount {
    pub volume: String,
    pub path: String,
    /// A volume declared inline for this mount only (appc `appVolume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_volume: Option<Volume>,
}

/// One app of the pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodApp {
    pub name: String,
    pub image: RuntimeImage,
    /// Overrides the image's app section when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<App>,
    #[serde(
        default,
        rename = "readOnlyRootFS",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub read_only_root_fs: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<PodMount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<NameValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeKind {
    /// A directory of the host, bind-mounted.
    Host,
    /// An empty directory made for the pod, removed with it.
    Empty,
}

/// A pod volume. `source` is for `host` volumes; `mode`, `uid`, `gid` for `empty` ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub kind: VolumeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<bool>,
    /// Octal permission string, e.g. "0755".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

/// A port of an app exposed on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExposedPort {
    pub name: String,
    pub host_port: u16,
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_port: Option<Port>,
}

/// The appc pod manifest. `apps`, `volumes`, `isolators`, `annotations` and `ports`
/// are always written (possibly empty), as rkt does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodManifest {
    pub ac_kind: String,
    pub ac_version: String,
    #[serde(default)]
    pub apps: Vec<PodApp>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    #[serde(default)]
    pub isolators: Vec<Isolator>,
    #[serde(default)]
    pub annotations: Vec<NameValue>,
    #[serde(default)]
    pub ports: Vec<ExposedPort>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_labels: BTreeMap<String, String>,
    /// Fields this version does not know, kept for round-tripping.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl PodManifest {
    /// An empty manifest of the current appc version.
    pub fn new(apps: Vec<PodApp>) -> Self {
        Self {
            ac_kind: POD_MANIFEST_KIND.to_string(),
            ac_version: AC_VERSION.to_string(),
            apps,
            volumes: Vec::new(),
            isolators: Vec::new(),
            annotations: Vec::new(),
            ports: Vec::new(),
            user_annotations: BTreeMap::new(),
            user_labels: BTreeMap::new(),
            extra: BTreeMap::new(),
        }
    }

    /// Parse and validate a pod manifest.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, PodManifestError> {
        let m: PodManifest = serde_json::from_slice(bytes)?;
        m.validate()?;
        Ok(m)
    }

    /// Check that the manifest is reified and names are well formed: the kind, AC
    /// names of apps, volumes and ports, unique app and volume names, full image IDs,
    /// host volumes with an absolute source, octal modes, and mounts that name a
    /// declared volume at an absolute path.
    pub fn validate(&self) -> Result<(), PodManifestError> {
        if self.ac_kind != POD_MANIFEST_KIND {
            return Err(PodManifestError::Kind(self.ac_kind.clone()));
        }
        let mut volumes = BTreeSet::new();
        for v in &self.volumes {
            validate_volume(v)?;
            if !volumes.insert(v.name.as_str()) {
                return Err(PodManifestError::DuplicateVolume(v.name.clone()));
            }
        }
        let mut apps = BTreeSet::new();
        for app in &self.apps {
            validate_ac_name("app", &app.name)?;
            if !apps.insert(app.name.as_str()) {
                return Err(PodManifestError::DuplicateApp(app.name.clone()));
            }
            if !is_image_id(&app.image.id) {
                return Err(PodManifestError::ImageId {
                    app: app.name.clone(),
                    id: app.image.id.clone(),
                });
            }
            for m in &app.mounts {
                match &m.app_volume {
                    Some(v) => validate_volume(v)?,
                    None if volumes.contains(m.volume.as_str()) => {}
                    None => {
                        return Err(PodManifestError::UnknownVolume {
                            app: app.name.clone(),
                            volume: m.volume.clone(),
                        })
                    }
                }
                if !m.path.starts_with('/') {
                    return Err(PodManifestError::MountPath {
                        app: app.name.clone(),
                        path: m.path.clone(),
                    });
                }
            }
        }
        for p in &self.ports {
            validate_ac_name("port", &p.name)?;
        }
        Ok(())
    }

    /// The app named `name`.
    pub fn app(&self, name: &str) -> Option<&PodApp> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// The value of a pod annotation.
    pub fn annotation(&self, name: &str) -> Option<&str> {
        lookup(&self.annotations, name)
    }
}

fn validate_volume(v: &Volume) -> Result<(), PodManifestError> {
    validate_ac_name("volume", &v.name)?;
    if v.kind == VolumeKind::Host && !v.source.as_deref().is_some_and(|s| s.starts_with('/')) {
        return Err(PodManifestError::HostSource {
            volume: v.name.clone(),
        });
    }
    if let Some(mode) = &v.mode {
        if mode.is_empty() || mode.len() > 4 || u32::from_str_radix(mode, 8).is_err() {
            return Err(PodManifestError::VolumeMode {
                volume: v.name.clone(),
                mode: mode.clone(),
            });
        }
    }
    Ok(())
}

/// `sha512-` followed by lower-case hex digits (a full or shortened hash).
fn is_image_id(id: &str) -> bool {
    id.strip_prefix("sha512-").is_some_and(|hex| {
        !hex.is_empty()
            && hex.len() <= 128
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> &'static str {
        r#"{"acKind":"PodManifest","acVersion":"0.8.11",
            "apps":[{"name":"web","image":{"name":"example.com/web","id":"sha512-0123abcd",
                "labels":[{"name":"version","value":"1"}]},
                "app":{"exec":["/bin/httpd"],"user":"0","group":"0"},
                "readOnlyRootFS":true,
                "mounts":[{"volume":"data","path":"/data"}],
                "annotations":[{"name":"a","value":"b"}]}],
            "volumes":[{"name":"data","kind":"host","source":"/srv","readOnly":true,"recursive":false},
                       {"name":"scratch","kind":"empty","mode":"0700","uid":1,"gid":2}],
            "isolators":[],"annotations":[{"name":"rkt.example/spec-hash","value":"abc"}],
            "ports":[{"name":"http","hostPort":8080}],
            "x-extra":1}"#
    }

    #[test]
    fn parses_and_round_trips() {
        let m = PodManifest::from_slice(sample().as_bytes()).unwrap();
        let web = m.app("web").unwrap();
        assert!(web.read_only_root_fs);
        assert_eq!(web.image.id, "sha512-0123abcd");
        assert_eq!(web.app.as_ref().unwrap().exec, vec!["/bin/httpd"]);
        assert_eq!(m.volumes[1].kind, VolumeKind::Empty);
        assert_eq!(m.volumes[1].mode.as_deref(), Some("0700"));
        assert_eq!(m.annotation("rkt.example/spec-hash"), Some("abc"));
        assert_eq!(m.ports[0].host_port, 8080);
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains("\"readOnlyRootFS\":true"), "{text}");
        assert!(text.contains("\"x-extra\":1"), "{text}");
        assert_eq!(PodManifest::from_slice(text.as_bytes()).unwrap(), m);
    }

    #[test]
    fn new_writes_empty_lists() {
        let text = serde_json::to_string(&PodManifest::new(vec![])).unwrap();
        assert_eq!(
            text,
            r#"{"acKind":"PodManifest","acVersion":"0.8.11","apps":[],"volumes":[],"isolators":[],"annotations":[],"ports":[]}"#
        );
    }

    #[test]
    fn rejects_bad_manifests() {
        let bad = |from: &str, to: &str| {
            let text = sample().replace(from, to);
            assert_ne!(text, sample(), "replacement {from:?} did not apply");
            PodManifest::from_slice(text.as_bytes()).unwrap_err()
        };
        assert!(matches!(
            bad("\"PodManifest\"", "\"ImageManifest\""),
            PodManifestError::Kind(_)
        ));
        assert!(matches!(
            bad("\"name\":\"web\"", "\"name\":\"Web\""),
            PodManifestError::Name { what: "app", .. }
        ));
        assert!(matches!(
            bad("sha512-0123abcd", "sha256-0123"),
            PodManifestError::ImageId { .. }
        ));
        assert!(matches!(
            bad("\"source\":\"/srv\"", "\"source\":\"srv\""),
            PodManifestError::HostSource { .. }
        ));
        assert!(matches!(
            bad("\"0700\"", "\"0980\""),
            PodManifestError::VolumeMode { .. }
        ));
        assert!(matches!(
            bad("\"volume\":\"data\"", "\"volume\":\"nope\""),
            PodManifestError::UnknownVolume { .. }
        ));
        assert!(matches!(
            bad("\"path\":\"/data\"", "\"path\":\"data\""),
            PodManifestError::MountPath { .. }
        ));
        assert!(matches!(
            bad("\"name\":\"scratch\"", "\"name\":\"data\""),
            PodManifestError::DuplicateVolume(_)
        ));
    }

    #[test]
    fn ac_names() {
        for ok in ["a", "web-1", "0"] {
            validate_ac_name("app", ok).unwrap();
        }
        for bad in ["", "-a", "a-", "a--b", "A", "a_b", "a/b", ".."] {
            assert!(validate_ac_name("app", bad).is_err(), "{bad}");
        }
    }
}
