//! Build small App Container Images (ACIs) for tests.
//!
//! ```no_run
//! use e2e::aci::{gzip, AciBuilder};
//! let tar = AciBuilder::new("example.com/hello")
//!     .label("version", "1.0")
//!     .exec(&["/bin/hello"])
//!     .file("bin/hello", b"#!/bin/sh\necho hi\n", 0o755)
//!     .symlink("bin/hi", "hello")
//!     .build_tar();
//! let aci = gzip(&tar);
//! # let _ = aci;
//! ```
//!
//! Paths given to [`AciBuilder::file`], [`AciBuilder::dir`] and [`AciBuilder::symlink`]
//! are inside the rootfs (`bin/sh` becomes `rootfs/bin/sh`); missing parent directories
//! are added. Every entry gets the same fixed mtime and uid/gid 0, so the same builder
//! calls always give the same bytes (and so the same image ID).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use sha2::{Digest, Sha512};

/// The mtime of every entry: fixed so that builds are reproducible.
pub const MTIME: u64 = 1_600_000_000;

#[derive(Debug, Clone)]
enum Entry {
    File {
        path: String,
        data: Vec<u8>,
        mode: u32,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    /// A block (`block: true`) or character device node.
    Device {
        path: String,
        block: bool,
        major: u32,
        minor: u32,
    },
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Entry::File { path, .. }
            | Entry::Dir { path, .. }
            | Entry::Symlink { path, .. }
            | Entry::Device { path, .. } => path,
        }
    }
}

/// A builder for a test ACI: a `manifest` and a `rootfs/`.
#[derive(Debug, Clone)]
pub struct AciBuilder {
    name: String,
    labels: Vec<(String, String)>,
    exec: Option<Vec<String>>,
    user: String,
    group: String,
    dependencies: Vec<Value>,
    annotations: Vec<(String, String)>,
    entries: Vec<Entry>,
    manifest_override: Option<Vec<u8>>,
}

impl AciBuilder {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            labels: Vec::new(),
            exec: None,
            user: "0".to_string(),
            group: "0".to_string(),
            dependencies: Vec::new(),
            annotations: Vec::new(),
            entries: Vec::new(),
            manifest_override: None,
        }
    }

    /// Add a label (`version`, `os`, `arch`, ...).
    pub fn label(mut self, name: &str, value: &str) -> Self {
        self.labels.push((name.to_string(), value.to_string()));
        self
    }

    /// Give the image an app with this command line.
    pub fn exec(mut self, argv: &[&str]) -> Self {
        self.exec = Some(argv.iter().map(|s| s.to_string()).collect());
        self
    }

    /// The app's user (default `0`); only written when the image has an app.
    pub fn user(mut self, user: &str) -> Self {
        self.user = user.to_string();
        self
    }

    /// The app's group (default `0`); only written when the image has an app.
    pub fn group(mut self, group: &str) -> Self {
        self.group = group.to_string();
        self
    }

    /// Add an appc dependency by name (and optional image ID and labels).
    pub fn dependency(
        mut self,
        image_name: &str,
        image_id: Option<&str>,
        labels: &[(&str, &str)],
    ) -> Self {
        let mut dep = json!({ "imageName": image_name });
        if let Some(id) = image_id {
            dep["imageID"] = json!(id);
        }
        if !labels.is_empty() {
            dep["labels"] = labels
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
        }
        self.dependencies.push(dep);
        self
    }

    /// Add an image annotation.
    pub fn annotation(mut self, name: &str, value: &str) -> Self {
        self.annotations.push((name.to_string(), value.to_string()));
        self
    }

    /// Add a regular file under the rootfs.
    pub fn file(mut self, path: &str, data: &[u8], mode: u32) -> Self {
        self.entries.push(Entry::File {
            path: clean(path),
            data: data.to_vec(),
            mode,
        });
        self
    }

    /// Add a directory (mode 0755) under the rootfs.
    pub fn dir(mut self, path: &str) -> Self {
        self.entries.push(Entry::Dir {
            path: clean(path),
            mode: 0o755,
        });
        self
    }

    /// Add a symbolic link under the rootfs.
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.entries.push(Entry::Symlink {
            path: clean(path),
            target: target.to_string(),
        });
        self
    }

    /// Add a device node (mode 0666) under the rootfs.
    pub fn device(mut self, path: &str, block: bool, major: u32, minor: u32) -> Self {
        self.entries.push(Entry::Device {
            path: clean(path),
            block,
            major,
            minor,
        });
        self
    }

    /// Use these bytes as the `manifest` file instead of the generated one
    /// (to test broken manifests).
    pub fn manifest_bytes(mut self, bytes: &[u8]) -> Self {
        self.manifest_override = Some(bytes.to_vec());
        self
    }

    /// The generated image manifest.
    pub fn manifest(&self) -> Value {
        let mut m = json!({
            "acKind": "ImageManifest",
            "acVersion": "0.8.11",
            "name": self.name,
        });
        if !self.labels.is_empty() {
            m["labels"] = self
                .labels
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
        }
        if let Some(exec) = &self.exec {
            m["app"] = json!({ "exec": exec, "user": self.user, "group": self.group });
        }
        if !self.dependencies.is_empty() {
            m["dependencies"] = Value::Array(self.dependencies.clone());
        }
        if !self.annotations.is_empty() {
            m["annotations"] = self
                .annotations
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
        }
        m
    }

    /// The bytes of the `manifest` file.
    pub fn manifest_json(&self) -> Vec<u8> {
        match &self.manifest_override {
            Some(bytes) => bytes.clone(),
            None => serde_json::to_vec_pretty(&self.manifest()).expect("a JSON value serialises"),
        }
    }

    /// The uncompressed ACI: `manifest`, `rootfs/`, then the entries in the order
    /// given, each preceded by any parent directory not added yet.
    pub fn build_tar(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        append_file(&mut b, "manifest", &self.manifest_json(), 0o644);
        append_dir(&mut b, "rootfs", 0o755);
        let mut dirs: Vec<String> = Vec::new();
        for entry in &self.entries {
            let path = entry.path();
            let mut parent = String::new();
            let parts: Vec<&str> = path.split('/').collect();
            for part in &parts[..parts.len().saturating_sub(1)] {
                if !parent.is_empty() {
                    parent.push('/');
                }
                parent.push_str(part);
                if !dirs.contains(&parent) {
                    append_dir(&mut b, &format!("rootfs/{parent}"), 0o755);
                    dirs.push(parent.clone());
                }
            }
            let full = format!("rootfs/{path}");
            match entry {
                Entry::File { data, mode, .. } => append_file(&mut b, &full, data, *mode),
                Entry::Dir { mode, .. } => {
                    append_dir(&mut b, &full, *mode);
                    dirs.push(path.to_string());
                }
                Entry::Symlink { target, .. } => {
                    let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                    b.append_link(&mut h, &full, target)
                        .expect("writing to a Vec cannot fail");
                }
                Entry::Device {
                    block,
                    major,
                    minor,
                    ..
                } => {
                    let kind = if *block {
                        tar::EntryType::Block
                    } else {
                        tar::EntryType::Char
                    };
                    let mut h = header(kind, 0o666, 0);
                    h.set_device_major(*major).expect("a ustar header");
                    h.set_device_minor(*minor).expect("a ustar header");
                    b.append_data(&mut h, &full, std::io::empty())
                        .expect("writing to a Vec cannot fail");
                }
            }
        }
        b.into_inner().expect("writing to a Vec cannot fail")
    }

    /// Write the uncompressed ACI to `path`.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.build_tar())
    }
}

fn clean(path: &str) -> String {
    let p = path.trim_start_matches('/').trim_end_matches('/');
    assert!(!p.is_empty(), "an empty rootfs path");
    p.to_string()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h
}

fn append_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
    let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
    b.append_data(&mut h, path, data)
        .expect("writing to a Vec cannot fail");
}

fn append_dir(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) {
    let mut h = header(tar::EntryType::Directory, mode, 0);
    b.append_data(&mut h, format!("{path}/"), std::io::empty())
        .expect("writing to a Vec cannot fail");
}

/// The appc image ID of an uncompressed ACI: `sha512-` and the hex sha512.
pub fn image_id(tar: &[u8]) -> String {
    format!("sha512-{}", hex::encode(Sha512::digest(tar)))
}

/// gzip-compress `data` (in process).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// bzip2-compress `data` with the `bzip2` command.
pub fn bzip2(data: &[u8]) -> Vec<u8> {
    pipe_through("bzip2", &["-c"], data)
}

/// xz-compress `data` with the `xz` command.
pub fn xz(data: &[u8]) -> Vec<u8> {
    pipe_through("xz", &["-c"], data)
}

/// zstd-compress `data` with the `zstd` command.
pub fn zstd(data: &[u8]) -> Vec<u8> {
    pipe_through("zstd", &["-q", "-c"], data)
}

/// Run `tool args` with `input` on stdin and return its stdout; panics if the tool
/// is missing or fails (tests rely on these tools being installed).
pub fn pipe_through(tool: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {tool}: {e}"));
    writer
        .join()
        .expect("writer thread panicked")
        .unwrap_or_else(|e| panic!("feeding {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        out.status
    );
    out.stdout
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar: &[u8]) -> Vec<(String, tar::EntryType)> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().entry_type(),
                )
            })
            .collect()
    }

    #[test]
    fn layout_and_parents() {
        let tar = AciBuilder::new("example.com/t")
            .exec(&["/bin/sh"])
            .file("/bin/sh", b"x", 0o755)
            .symlink("usr/bin/sh", "/bin/sh")
            .dir("etc")
            .build_tar();
        let got: Vec<String> = names(&tar).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            got,
            [
                "manifest",
                "rootfs/",
                "rootfs/bin/",
                "rootfs/bin/sh",
                "rootfs/usr/",
                "rootfs/usr/bin/",
                "rootfs/usr/bin/sh",
                "rootfs/etc/"
            ]
        );
    }

    #[test]
    fn reproducible_and_distinct() {
        let a = AciBuilder::new("example.com/t").label("version", "1");
        assert_eq!(a.build_tar(), a.clone().build_tar());
        let b = a.clone().label("os", "linux");
        assert_ne!(image_id(&a.build_tar()), image_id(&b.build_tar()));
    }

    #[test]
    fn manifest_fields() {
        let m = AciBuilder::new("example.com/t")
            .label("version", "1")
            .exec(&["/bin/sh", "-c", "true"])
            .dependency("example.com/base", None, &[("version", "2")])
            .manifest();
        assert_eq!(m["name"], "example.com/t");
        assert_eq!(m["labels"][0]["value"], "1");
        assert_eq!(m["app"]["exec"][2], "true");
        assert_eq!(m["dependencies"][0]["labels"][0]["value"], "2");
    }

    #[test]
    fn compressors_round_trip() {
        let tar = AciBuilder::new("example.com/t").build_tar();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip(&tar)[..]), &mut out)
            .unwrap();
        assert_eq!(out, tar);
        for (packed, tool) in [
            (bzip2(&tar), "bzip2"),
            (xz(&tar), "xz"),
            (zstd(&tar), "zstd"),
        ] {
            assert_ne!(packed, tar);
            let args: &[&str] = if tool == "zstd" {
                &["-q", "-dc"]
            } else {
                &["-dc"]
            };
            assert_eq!(pipe_through(tool, args, &packed), tar, "{tool}");
        }
    }
}

/// One entry of a hand-made (possibly malicious) tar archive.
#[derive(Debug, Clone)]
pub enum RawEntry {
    Dir(&'static str),
    File(&'static str, &'static [u8]),
    Symlink(&'static str, &'static str),
    Hardlink(&'static str, &'static str),
}

/// A tar archive written header by header, with names copied in verbatim, so that
/// `..`, absolute paths and links out can be produced (the `tar` crate's builder
/// refuses them). Starts with a valid `manifest` for `name` unless `with_manifest`
/// is false.
pub fn raw_tar(name: &str, entries: &[RawEntry], with_manifest: bool) -> Vec<u8> {
    fn header(path: &str, kind: tar::EntryType, size: u64, link: &str, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            assert!(path.len() < old.name.len() && link.len() < old.linkname.len());
            old.name[..path.len()].copy_from_slice(path.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        h
    }
    let mut out = tar::Builder::new(Vec::new());
    if with_manifest {
        let manifest = AciBuilder::new(name).manifest_json();
        let h = header(
            "manifest",
            tar::EntryType::Regular,
            manifest.len() as u64,
            "",
            0o644,
        );
        out.append(&h, manifest.as_slice())
            .expect("append manifest");
        let h = header("rootfs/", tar::EntryType::Directory, 0, "", 0o755);
        out.append(&h, std::io::empty()).expect("append rootfs");
    }
    for e in entries {
        match e {
            RawEntry::Dir(p) => {
                let h = header(p, tar::EntryType::Directory, 0, "", 0o755);
                out.append(&h, std::io::empty())
            }
            RawEntry::File(p, data) => {
                let h = header(p, tar::EntryType::Regular, data.len() as u64, "", 0o644);
                out.append(&h, *data)
            }
            RawEntry::Symlink(p, target) => {
                let h = header(p, tar::EntryType::Symlink, 0, target, 0o777);
                out.append(&h, std::io::empty())
            }
            RawEntry::Hardlink(p, target) => {
                let h = header(p, tar::EntryType::Link, 0, target, 0o644);
                out.append(&h, std::io::empty())
            }
        }
        .expect("append raw entry");
    }
    out.into_inner().expect("finish raw tar")
}
