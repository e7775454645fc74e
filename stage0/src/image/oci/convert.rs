//! An appc image manifest for an OCI image, so pods run it like an ACI.
//!
//! | image config                | appc manifest                                    |
//! |-----------------------------|--------------------------------------------------|
//! | `Entrypoint` + `Cmd`        | `app.exec` (a relative program is looked up in the image's `PATH`) |
//! | `Env`                       | `app.environment`                                |
//! | `User` (`uid[:gid]`, names) | `app.user`, `app.group` (no group: the user's primary group from the image's `/etc/passwd`, else 0) |
//! | `WorkingDir`                | `app.workingDirectory`                           |
//! | `ExposedPorts` (`80/tcp`)   | `app.ports` (named `80-tcp`, as rkt named them)  |
//! | `os`, `architecture`        | labels `os`, `arch` (appc spelling: `aarch64`, `armv7l`, ...) |
//! | the tag                     | label `version`                                  |
//!
//! Annotations keep where the image came from and what identifies it
//! (`appc.io/docker/*`, as rkt's docker2aci wrote them), including `Entrypoint` and
//! `Cmd` separately as JSON. The manifest is serialised deterministically, so equal
//! inputs give equal image IDs.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use manifests::appc::{AcIdentifier, App, ImageManifest, NameValue, Port, AC_VERSION};

use super::spec::{Digest, ImageConfig};
use super::OciError;

/// `PATH` when the image sets none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The largest `/etc/passwd` read from an image.
const PASSWD_LIMIT: u64 = 4 * 1024 * 1024;
/// Symlinks followed when resolving a path in the layers.
const MAX_LINKS: usize = 40;

/// What identifies the image and where it came from.
#[derive(Debug, Clone)]
pub struct Provenance<'a> {
    /// `registry/repository` (or a local name).
    pub name: &'a str,
    pub tag: Option<&'a str>,
    pub manifest_digest: Option<&'a Digest>,
    pub config_digest: &'a Digest,
    /// More `appc.io/docker/*` style annotations (registry URL, repository, source).
    pub annotations: Vec<(String, String)>,
}

/// Turn any name into an AC identifier: lower case, invalid characters and runs of
/// separators become one `-` (or the separator), no separator at either end.
pub fn sanitize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut prev_sep = true;
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        let (c, sep) = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            (c, false)
        } else if matches!(c, '-' | '.' | '_' | '~' | '/') {
            (c, true)
        } else {
            ('-', true)
        };
        if sep && prev_sep {
            continue;
        }
        out.push(c);
        prev_sep = sep;
    }
    while out.ends_with(['-', '.', '_', '~', '/']) {
        out.pop();
    }
    if out.is_empty() {
        "image".to_string()
    } else {
        out
    }
}

/// The appc spelling of an OCI architecture (and variant).
pub fn appc_arch(arch: &str, variant: Option<&str>) -> String {
    match (arch, variant.unwrap_or("")) {
        ("386", _) => "i386".to_string(),
        ("arm64", _) => "aarch64".to_string(),
        ("arm", "v6") => "armv6l".to_string(),
        ("arm", "v7" | "") => "armv7l".to_string(),
        (a, _) => a.to_string(),
    }
}

/// One path in the merged view of the layers.
#[derive(Debug, Clone)]
struct Entry {
    layer: usize,
    offset: u64,
    size: u64,
    kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum EntryKind {
    File,
    Dir,
    Symlink(String),
    Other,
}

/// Which paths the rendered image has (whiteouts applied), without rendering it.
pub struct LayerIndex {
    layers: Vec<PathBuf>,
    entries: HashMap<String, Entry>,
}

fn clean(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

impl LayerIndex {
    /// Read the headers of uncompressed layer tars, bottom first.
    pub fn build(layers: &[PathBuf]) -> Result<LayerIndex, OciError> {
        let mut entries: HashMap<String, Entry> = HashMap::new();
        for (i, path) in layers.iter().enumerate() {
            let err = |source| OciError::ReadLayer {
                path: path.clone(),
                source,
            };
            let file = File::open(path).map_err(err)?;
            let mut archive = tar::Archive::new(file);
            let mut own: Vec<(String, Entry)> = Vec::new();
            let mut removed: Vec<(String, bool)> = Vec::new();
            for entry in archive.entries_with_seek().map_err(err)? {
                let entry = entry.map_err(err)?;
                let name = clean(&entry.path().map_err(err)?.to_string_lossy());
                let (dir, base) = match name.rsplit_once('/') {
                    Some((d, b)) => (d.to_string(), b.to_string()),
                    None => (String::new(), name.clone()),
                };
                if base == ".wh..wh..opq" {
                    removed.push((dir, true));
                    continue;
                }
                if let Some(hidden) = base.strip_prefix(".wh.") {
                    let target = if dir.is_empty() {
                        hidden.to_string()
                    } else {
                        format!("{dir}/{hidden}")
                    };
                    removed.push((target, false));
                    continue;
                }
                let header = entry.header();
                let t = header.entry_type();
                let kind = if t.is_dir() {
                    EntryKind::Dir
                } else if t.is_symlink() {
                    EntryKind::Symlink(
                        entry
                            .link_name()
                            .map_err(err)?
                            .map(|l| l.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    )
                } else if t.is_file() {
                    EntryKind::File
                } else {
                    EntryKind::Other
                };
                own.push((
                    name,
                    Entry {
                        layer: i,
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                        kind,
                    },
                ));
            }
            for (path, opaque) in removed {
                let prefix = format!("{path}/");
                entries.retain(|k, _| {
                    !(k.starts_with(&prefix)
                        || (!opaque && *k == path)
                        || (opaque && path.is_empty()))
                });
            }
            for (name, entry) in own {
                if !name.is_empty() {
                    entries.insert(name, entry);
                }
            }
        }
        Ok(LayerIndex {
            layers: layers.to_vec(),
            entries,
        })
    }

    /// The entry at absolute `path`, following symlinks in every component but the
    /// last, and in the last too when `follow` is set.
    fn resolve(&self, path: &str, follow: bool) -> Option<&Entry> {
        let mut pending: Vec<String> = clean(path).split('/').rev().map(str::to_string).collect();
        let mut current: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(component) = pending.pop() {
            if component.is_empty() || component == "." {
                continue;
            }
            if component == ".." {
                current.pop();
                continue;
            }
            current.push(component);
            let key = current.join("/");
            let last = pending.is_empty();
            let entry = match self.entries.get(&key) {
                Some(e) => e,
                // Tars need not list every parent directory.
                None if !last => continue,
                None => return None,
            };
            if let EntryKind::Symlink(target) = &entry.kind {
                if last && !follow {
                    return Some(entry);
                }
                hops += 1;
                if hops > MAX_LINKS {
                    return None;
                }
                current.pop();
                if target.starts_with('/') {
                    current.clear();
                }
                for c in target.split('/').rev() {
                    pending.push(c.to_string());
                }
                if pending.is_empty() {
                    return None;
                }
                continue;
            }
            if last {
                return Some(entry);
            }
        }
        // The root itself.
        None
    }

    /// Whether `path` names something (a link counts; its target need not exist).
    pub fn exists(&self, path: &str) -> bool {
        self.resolve(path, false).is_some()
    }

    /// The content of the regular file at `path` (links followed), up to `limit`.
    fn read(&self, path: &str, limit: u64) -> Option<Vec<u8>> {
        let entry = self.resolve(path, true)?;
        if entry.kind != EntryKind::File || entry.size > limit {
            return None;
        }
        let mut file = File::open(self.layers.get(entry.layer)?).ok()?;
        file.seek(SeekFrom::Start(entry.offset)).ok()?;
        let mut out = Vec::new();
        file.take(entry.size).read_to_end(&mut out).ok()?;
        Some(out)
    }

    /// The primary gid of `user` (a name or a uid) in the image's `/etc/passwd`.
    pub fn primary_gid(&self, user: &str) -> Option<u32> {
        let text = self.read("/etc/passwd", PASSWD_LIMIT)?;
        let text = String::from_utf8_lossy(&text);
        for line in text.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 4 {
                continue;
            }
            if fields[0] == user || fields[2] == user {
                return fields[3].parse().ok();
            }
        }
        None
    }

    /// Look `program` up in `path` (a `PATH` value) like a shell would.
    pub fn which(&self, program: &str, path: &str) -> Option<String> {
        for dir in path.split(':').filter(|d| d.starts_with('/')) {
            let candidate = format!("{}/{program}", dir.trim_end_matches('/'));
            if self.exists(&candidate) {
                return Some(candidate);
            }
        }
        None
    }
}

/// `uid[:gid]` or `name[:group]` split into user and (if given) group.
fn split_user(user: &str) -> (String, Option<String>) {
    match user.split_once(':') {
        Some((u, g)) => (u.to_string(), Some(g.to_string()).filter(|g| !g.is_empty())),
        None => (user.to_string(), None),
    }
}

/// Generate the appc manifest of an image; returns it and its exact JSON.
pub fn image_manifest(
    prov: &Provenance<'_>,
    config: &ImageConfig,
    index: &LayerIndex,
) -> Result<(ImageManifest, Vec<u8>), OciError> {
    let cc = config.config.clone().unwrap_or_default();
    let env: Vec<NameValue> = cc
        .env
        .clone()
        .unwrap_or_default()
        .iter()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (!k.is_empty()).then(|| NameValue {
                name: k.to_string(),
                value: v.to_string(),
            })
        })
        .collect();
    let path_var = env
        .iter()
        .rev()
        .find(|nv| nv.name == "PATH")
        .map_or(DEFAULT_PATH, |nv| nv.value.as_str());

    let entrypoint = cc.entrypoint.clone().unwrap_or_default();
    let cmd = cc.cmd.clone().unwrap_or_default();
    let mut exec: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
    if let Some(program) = exec.first_mut() {
        if !program.starts_with('/') && !program.is_empty() {
            match index.which(program, path_var) {
                Some(found) => *program = found,
                None => {
                    tracing::debug!(%program, "program not found in the image's PATH; keeping it as is")
                }
            }
        }
    }

    let (user, group) = split_user(cc.user.as_deref().unwrap_or(""));
    let (user, group) = match (user.is_empty(), group) {
        (true, g) => ("0".to_string(), g.unwrap_or_else(|| "0".to_string())),
        (false, Some(g)) => (user, g),
        (false, None) => {
            let gid = index.primary_gid(&user).unwrap_or(0);
            (user, gid.to_string())
        }
    };

    let mut ports = Vec::new();
    for spec in cc.exposed_ports.clone().unwrap_or_default().keys() {
        let (port, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
        match port.parse::<u16>() {
            Ok(p) if p > 0 => ports.push(Port {
                name: format!("{p}-{proto}"),
                protocol: proto.to_string(),
                port: p,
                count: 1,
                socket_activated: false,
            }),
            _ => tracing::debug!(%spec, "skipping an exposed port that is not a single port"),
        }
    }

    let mut labels = Vec::new();
    if let Some(t) = prov.tag {
        labels.push(NameValue {
            name: "version".into(),
            value: t.to_string(),
        });
    }
    let os = if config.os.is_empty() {
        "linux"
    } else {
        &config.os
    };
    labels.push(NameValue {
        name: "os".into(),
        value: os.to_string(),
    });
    if !config.architecture.is_empty() {
        labels.push(NameValue {
            name: "arch".into(),
            value: appc_arch(&config.architecture, config.variant.as_deref()),
        });
    }

    let mut annotations: Vec<NameValue> = Vec::new();
    let mut annotate = |k: &str, v: String| {
        annotations.push(NameValue {
            name: k.to_string(),
            value: v,
        })
    };
    if let Some(c) = config.created.clone().filter(|c| !c.is_empty()) {
        annotate("created", c);
    }
    if let Some(a) = config.author.clone().filter(|a| !a.is_empty()) {
        annotate("authors", a);
    }
    for (k, v) in &prov.annotations {
        annotate(k, v.clone());
    }
    if let Some(t) = prov.tag {
        annotate("appc.io/docker/tag", t.to_string());
    }
    if let Some(d) = prov.manifest_digest {
        annotate("appc.io/docker/manifesthash", d.to_string());
    }
    annotate("appc.io/docker/imageid", prov.config_digest.to_string());
    let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    if cc.entrypoint.is_some() {
        annotate("appc.io/docker/entrypoint", json(&entrypoint));
    }
    if cc.cmd.is_some() {
        annotate("appc.io/docker/cmd", json(&cmd));
    }

    let name = sanitize_name(prov.name);
    let manifest = ImageManifest {
        ac_kind: "ImageManifest".to_string(),
        ac_version: AC_VERSION.to_string(),
        name: AcIdentifier::new(&name).map_err(|source| OciError::Name {
            name: prov.name.to_string(),
            source,
        })?,
        labels,
        app: Some(App {
            exec,
            user,
            group,
            working_directory: cc.working_dir.clone().filter(|w| !w.is_empty()),
            environment: env,
            ports,
            ..App::default()
        }),
        dependencies: Vec::new(),
        path_whitelist: Vec::new(),
        annotations,
        extra: Default::default(),
    };
    let bytes = serde_json::to_vec(&manifest).map_err(|source| OciError::Json {
        what: "the generated manifest",
        image: prov.name.to_string(),
        source,
    })?;
    Ok((manifest, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn names_become_ac_identifiers() {
        assert_eq!(
            sanitize_name("127.0.0.1:5000/busybox"),
            "127.0.0.1-5000/busybox"
        );
        assert_eq!(sanitize_name("[::1]:5000/a__b"), "1-5000/a_b");
        assert_eq!(
            sanitize_name("registry-1.docker.io/library/busybox"),
            "registry-1.docker.io/library/busybox"
        );
        assert_eq!(sanitize_name("My Image!"), "my-image");
        assert_eq!(sanitize_name("::"), "image");
        for n in [
            "127.0.0.1:5000/busybox",
            "[::1]:5000/a__b",
            "My Image!",
            "::",
        ] {
            assert!(AcIdentifier::new(&sanitize_name(n)).is_ok(), "{n}");
        }
        assert_eq!(appc_arch("arm64", Some("v8")), "aarch64");
        assert_eq!(appc_arch("arm", Some("v6")), "armv6l");
        assert_eq!(appc_arch("amd64", None), "amd64");
    }

    use super::super::tests::{tar_of, Ent as E};

    fn layer(dir: &Path, name: &str, entries: &[E<'_>]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, tar_of(entries)).unwrap();
        path
    }

    fn config(v: serde_json::Value) -> ImageConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn config_becomes_the_app() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = b"root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
        let l0 = layer(
            dir.path(),
            "l0",
            &[
                E::Dir("usr/bin/"),
                E::File("usr/bin/busybox", b"\x7fELF"),
                E::Link("usr/bin/sh", "busybox"),
                E::Link("bin", "usr/bin"),
                E::File("etc/passwd", b"nobody:x:1:1::/:/bin/false\n"),
                E::File("etc/old", b"gone"),
                E::File("opt/a/x", b"x"),
            ],
        );
        let l1 = layer(
            dir.path(),
            "l1",
            &[
                E::File("etc/passwd", passwd),
                E::File("etc/.wh.old", b""),
                E::File("opt/a/.wh..wh..opq", b""),
                E::File("opt/a/y", b"y"),
            ],
        );
        let index = LayerIndex::build(&[l0, l1]).unwrap();
        assert!(index.exists("/bin/sh"), "through the /bin symlink");
        assert!(!index.exists("/etc/old"), "whited out");
        assert!(!index.exists("/opt/a/x"), "opaque directory");
        assert!(
            index.exists("/opt/a/y"),
            "the opaque layer's own file stays"
        );
        assert_eq!(index.primary_gid("app"), Some(1001));
        assert_eq!(index.primary_gid("1000"), Some(1001));
        assert_eq!(index.primary_gid("nobody"), None, "the upper passwd wins");

        let digest = Digest::sha256_of(b"config");
        let prov = Provenance {
            name: "127.0.0.1:5000/app",
            tag: Some("v1"),
            manifest_digest: None,
            config_digest: &digest,
            annotations: vec![("appc.io/docker/registryurl".into(), "127.0.0.1:5000".into())],
        };
        let cfg = config(serde_json::json!({
            "architecture": "arm64", "variant": "v8", "os": "linux",
            "config": {
                "User": "app",
                "Env": ["PATH=/usr/bin:/bin", "GREETING=a=b"],
                "Entrypoint": ["sh", "-c"],
                "Cmd": ["echo $GREETING"],
                "WorkingDir": "/srv",
                "ExposedPorts": {"80/tcp": {}, "53/udp": {}, "1000-1010/tcp": {}}
            },
            "rootfs": {"type": "layers", "diff_ids": []}
        }));
        let (m, bytes) = image_manifest(&prov, &cfg, &index).unwrap();
        let app = m.app.as_ref().unwrap();
        assert_eq!(app.exec, vec!["/usr/bin/sh", "-c", "echo $GREETING"]);
        assert_eq!((app.user.as_str(), app.group.as_str()), ("app", "1001"));
        assert_eq!(app.working_directory.as_deref(), Some("/srv"));
        assert_eq!(
            app.environment
                .iter()
                .find(|e| e.name == "GREETING")
                .map(|e| e.value.as_str()),
            Some("a=b")
        );
        let ports: Vec<(&str, u16)> = app
            .ports
            .iter()
            .map(|p| (p.name.as_str(), p.port))
            .collect();
        assert_eq!(ports, vec![("53-udp", 53), ("80-tcp", 80)]);
        assert_eq!(m.name.as_str(), "127.0.0.1-5000/app");
        assert_eq!(m.label("version"), Some("v1"));
        assert_eq!(m.label("arch"), Some("aarch64"));
        assert_eq!(m.label("os"), Some("linux"));
        let ann = |k: &str| manifests::appc::lookup(&m.annotations, k).map(str::to_string);
        assert_eq!(
            ann("appc.io/docker/entrypoint").as_deref(),
            Some(r#"["sh","-c"]"#)
        );
        assert_eq!(
            ann("appc.io/docker/cmd").as_deref(),
            Some(r#"["echo $GREETING"]"#)
        );
        assert_eq!(ann("appc.io/docker/imageid"), Some(digest.to_string()));
        // Deterministic: the same input gives the same bytes (and so the same ID).
        assert_eq!(image_manifest(&prov, &cfg, &index).unwrap().1, bytes);
        assert!(ImageManifest::from_slice(&bytes).is_ok());

        // No user: root; uid:gid as given; an unknown user gets group 0.
        for (user, want) in [
            ("", ("0", "0")),
            ("5:6", ("5", "6")),
            ("ghost", ("ghost", "0")),
        ] {
            let cfg = config(serde_json::json!({
                "config": {"User": user, "Cmd": ["/bin/true"]},
                "rootfs": {"type": "layers", "diff_ids": []}
            }));
            let (m, _) = image_manifest(&prov, &cfg, &index).unwrap();
            let app = m.app.unwrap();
            assert_eq!((app.user.as_str(), app.group.as_str()), want, "{user}");
            assert_eq!(app.exec, vec!["/bin/true"]);
        }
    }
}
