//! Rendered rootfs trees under `cas/tree/`.
//!
//! A rendered tree is an image's rootfs with its dependencies applied (dependencies
//! first, the image last, then the image's `pathWhitelist`), ready to be the lower
//! layer of an app's overlay. Layout of `<root>/<id>/`:
//!
//! - `rootfs/`  the tree;
//! - `manifest` the image manifest;
//! - `hash`     the [`tree_hash`] of `rootfs/` computed at render time;
//! - `rendered` written last: its presence means the tree is complete.
//!
//! A render happens in a temporary directory under `<root>/.tmp/` and is renamed into
//! place, under an exclusive `flock` on `<root>/.locks/<id>.lock`, so concurrent
//! renders of one image (threads or processes) produce a single tree and a crash
//! leaves no half tree that looks complete. Names starting with `.` under the root are
//! the store's own and never image ids.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha512};

use crate::image::extract::{self, dir_names, open_dir_at, proc_path, ExtractError, UnpackOptions};

const ROOTFS: &str = "rootfs";
const MANIFEST: &str = "manifest";
const HASH: &str = "hash";
const RENDERED: &str = "rendered";
const TMP_DIR: &str = ".tmp";
const LOCK_DIR: &str = ".locks";

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("invalid tree id {id:?}: must be one path component not starting with '.'")]
    InvalidId { id: String },
    #[error("cannot create {}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot lock {}", path.display())]
    Lock { path: PathBuf, source: io::Error },
    #[error("cannot open layer {}", path.display())]
    OpenLayer { path: PathBuf, source: io::Error },
    #[error("cannot unpack layer {}", layer.display())]
    Unpack {
        layer: PathBuf,
        source: ExtractError,
    },
    #[error("cannot apply the path whitelist in {}", path.display())]
    Whitelist { path: PathBuf, source: io::Error },
    #[error("cannot write {}", path.display())]
    WriteFile { path: PathBuf, source: io::Error },
    #[error("cannot read {}", path.display())]
    ReadFile { path: PathBuf, source: io::Error },
    #[error("cannot move {} to {}", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    #[error("cannot remove {}", path.display())]
    Remove { path: PathBuf, source: io::Error },
    #[error("cannot list {}", path.display())]
    ReadDir { path: PathBuf, source: io::Error },
    #[error("cannot hash the tree {} at {}", root.display(), entry)]
    Hash {
        root: PathBuf,
        entry: String,
        source: io::Error,
    },
    #[error("tree {id} is not rendered")]
    NotRendered { id: String },
    #[error("tree {id} was modified after rendering: expected hash {expected}, found {actual}")]
    Tampered {
        id: String,
        expected: String,
        actual: String,
    },
}

/// One tar file to apply when rendering, and how.
#[derive(Debug, Clone)]
pub struct Layer {
    /// An uncompressed tar file.
    pub path: PathBuf,
    pub options: UnpackOptions,
}

impl Layer {
    /// An uncompressed ACI: its `rootfs/` is applied.
    pub fn aci(path: impl Into<PathBuf>) -> Layer {
        Layer {
            path: path.into(),
            options: UnpackOptions::aci_rootfs(),
        }
    }
}

/// The store of rendered trees.
#[derive(Debug, Clone)]
pub struct TreeStore {
    root: PathBuf,
}

impl TreeStore {
    /// A store at `root` (`<dir>/cas/tree`). Directories are created when first needed.
    pub fn new(root: PathBuf) -> TreeStore {
        TreeStore { root }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<id>`, holding `rootfs/` and `manifest`.
    pub fn path(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// `<root>/<id>/rootfs`.
    pub fn rootfs(&self, id: &str) -> PathBuf {
        self.path(id).join(ROOTFS)
    }

    /// Whether a complete render of `id` is present.
    pub fn is_rendered(&self, id: &str) -> bool {
        check_id(id).is_ok()
            && fs::symlink_metadata(self.path(id).join(RENDERED)).is_ok_and(|m| m.is_file())
    }

    /// Render image `id` from uncompressed ACI files `layers` in application order
    /// (dependencies first, the image last), each contributing its `rootfs/`. Writes
    /// `manifest`, removes files not in a non-empty `path_whitelist` (directories are
    /// kept), records the tree hash and returns the rootfs path. A tree already
    /// rendered is returned as is.
    pub fn render(
        &self,
        id: &str,
        layers: &[PathBuf],
        manifest: &[u8],
        path_whitelist: &[String],
    ) -> Result<PathBuf, TreeError> {
        let layers: Vec<Layer> = layers.iter().map(Layer::aci).collect();
        self.render_layers(id, &layers, manifest, path_whitelist)
    }

    /// [`TreeStore::render`] with per-layer unpack options (OCI layers with whiteouts,
    /// for instance).
    pub fn render_layers(
        &self,
        id: &str,
        layers: &[Layer],
        manifest: &[u8],
        path_whitelist: &[String],
    ) -> Result<PathBuf, TreeError> {
        check_id(id)?;
        let dir = self.path(id);
        let rootfs = dir.join(ROOTFS);
        if self.is_rendered(id) {
            return Ok(rootfs);
        }
        let _lock = self.lock(id)?;
        if self.is_rendered(id) {
            return Ok(rootfs);
        }
        // Leftovers of an interrupted render or removal of this id (we hold its lock).
        if fs::symlink_metadata(&dir).is_ok() {
            tracing::debug!(id, "removing an incomplete tree");
            remove_all(&dir)?;
        }
        let tmp_root = self.root.join(TMP_DIR);
        self.clean_tmp(&tmp_root, id)?;

        let tmp = tempfile::Builder::new()
            .prefix(&format!("{id}."))
            .tempdir_in(&tmp_root)
            .map_err(|source| TreeError::CreateDir {
                path: tmp_root.clone(),
                source,
            })?;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).map_err(|source| {
            TreeError::CreateDir {
                path: tmp.path().to_path_buf(),
                source,
            }
        })?;
        let tmp_rootfs = tmp.path().join(ROOTFS);
        fs::create_dir(&tmp_rootfs).map_err(|source| TreeError::CreateDir {
            path: tmp_rootfs.clone(),
            source,
        })?;
        apply_layers(&tmp_rootfs, layers, path_whitelist)?;
        write_file(&tmp.path().join(MANIFEST), manifest)?;
        let hash = tree_hash(&tmp_rootfs)?;
        write_file(&tmp.path().join(HASH), hash.as_bytes())?;
        // Make the tree durable before the marker can claim it is complete.
        sync_fs(tmp.path())?;
        write_file(&tmp.path().join(RENDERED), b"")?;

        let tmp_path = tmp.keep();
        if let Err(source) = fs::rename(&tmp_path, &dir) {
            let _ = fs::remove_dir_all(&tmp_path);
            return Err(TreeError::Rename {
                from: tmp_path,
                to: dir,
                source,
            });
        }
        sync_dir(&self.root);
        tracing::debug!(id, %hash, "rendered tree");
        Ok(rootfs)
    }

    /// The tree hash recorded when `id` was rendered.
    pub fn stored_hash(&self, id: &str) -> Result<String, TreeError> {
        check_id(id)?;
        if !self.is_rendered(id) {
            return Err(TreeError::NotRendered { id: id.to_string() });
        }
        let path = self.path(id).join(HASH);
        let text =
            fs::read_to_string(&path).map_err(|source| TreeError::ReadFile { path, source })?;
        Ok(text.trim().to_string())
    }

    /// Recompute the tree hash of `id` and compare it with the one recorded at render.
    pub fn verify(&self, id: &str) -> Result<(), TreeError> {
        let expected = self.stored_hash(id)?;
        let actual = tree_hash(&self.rootfs(id))?;
        if actual != expected {
            return Err(TreeError::Tampered {
                id: id.to_string(),
                expected,
                actual,
            });
        }
        Ok(())
    }

    /// Remove the tree `id`, if present.
    pub fn remove(&self, id: &str) -> Result<(), TreeError> {
        check_id(id)?;
        let dir = self.path(id);
        if fs::symlink_metadata(&dir).is_err() {
            return Ok(());
        }
        let _lock = self.lock(id)?;
        // The marker goes first: an interrupted removal leaves an incomplete tree,
        // never a damaged one that claims to be complete.
        let marker = dir.join(RENDERED);
        match fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(TreeError::Remove {
                    path: marker,
                    source,
                })
            }
        }
        remove_all(&dir)?;
        sync_dir(&self.root);
        Ok(())
    }

    /// The ids of the trees in the store, complete or not, sorted.
    pub fn list(&self) -> Result<Vec<String>, TreeError> {
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(TreeError::ReadDir {
                    path: self.root.clone(),
                    source,
                })
            }
        };
        let mut ids = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|source| TreeError::ReadDir {
                path: self.root.clone(),
                source,
            })?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            ids.push(name);
        }
        ids.sort();
        Ok(ids)
    }

    /// Bytes used by the regular files of tree `id` (for the image list's tree size).
    pub fn size(&self, id: &str) -> Result<u64, TreeError> {
        check_id(id)?;
        let dir = self.path(id);
        disk_usage(&dir)
    }

    fn lock(&self, id: &str) -> Result<File, TreeError> {
        let lock_dir = self.root.join(LOCK_DIR);
        fs::create_dir_all(&lock_dir).map_err(|source| TreeError::CreateDir {
            path: lock_dir.clone(),
            source,
        })?;
        let path = lock_dir.join(format!("{id}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| TreeError::Lock {
                path: path.clone(),
                source,
            })?;
        loop {
            match rfs::flock(&file, FlockOperation::LockExclusive) {
                Ok(()) => return Ok(file),
                Err(Errno::INTR) => continue,
                Err(e) => {
                    return Err(TreeError::Lock {
                        path,
                        source: e.into(),
                    })
                }
            }
        }
    }

    /// Remove temporary directories of earlier, interrupted renders of `id`. The
    /// caller holds `id`'s lock, so none of them is in use.
    fn clean_tmp(&self, tmp_root: &Path, id: &str) -> Result<(), TreeError> {
        fs::create_dir_all(tmp_root).map_err(|source| TreeError::CreateDir {
            path: tmp_root.to_path_buf(),
            source,
        })?;
        let rd = fs::read_dir(tmp_root).map_err(|source| TreeError::ReadDir {
            path: tmp_root.to_path_buf(),
            source,
        })?;
        let prefix = format!("{id}.");
        for entry in rd.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // `<id>.` followed by tempfile's random suffix: no '.' in it, so the
            // temporary directories of an id that extends this one are not matched.
            if name
                .strip_prefix(&prefix)
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('.'))
            {
                remove_all(&entry.path())?;
            }
        }
        Ok(())
    }
}

/// Render `layers` (uncompressed ACIs, dependencies first) straight into `dest`
/// (created if missing), then apply `path_whitelist` if it is not empty.
pub fn render_into(
    dest: &Path,
    layers: &[PathBuf],
    path_whitelist: &[String],
) -> Result<(), TreeError> {
    let layers: Vec<Layer> = layers.iter().map(Layer::aci).collect();
    render_layers_into(dest, &layers, path_whitelist)
}

/// [`render_into`] with per-layer unpack options.
pub fn render_layers_into(
    dest: &Path,
    layers: &[Layer],
    path_whitelist: &[String],
) -> Result<(), TreeError> {
    fs::create_dir_all(dest).map_err(|source| TreeError::CreateDir {
        path: dest.to_path_buf(),
        source,
    })?;
    apply_layers(dest, layers, path_whitelist)
}

fn apply_layers(dest: &Path, layers: &[Layer], path_whitelist: &[String]) -> Result<(), TreeError> {
    for layer in layers {
        let file = File::open(&layer.path).map_err(|source| TreeError::OpenLayer {
            path: layer.path.clone(),
            source,
        })?;
        let stats = extract::unpack(
            BufReader::with_capacity(256 * 1024, file),
            dest,
            &layer.options,
        )
        .map_err(|source| TreeError::Unpack {
            layer: layer.path.clone(),
            source,
        })?;
        tracing::debug!(layer = %layer.path.display(), entries = stats.entries, bytes = stats.bytes, "applied layer");
    }
    if !path_whitelist.is_empty() {
        apply_whitelist(dest, path_whitelist)?;
    }
    Ok(())
}

/// Remove every non-directory under `root` whose absolute path (`/` being `root`) is
/// not listed in `whitelist`. Directories are kept.
fn apply_whitelist(root: &Path, whitelist: &[String]) -> Result<(), TreeError> {
    let keep: HashSet<Vec<u8>> = whitelist
        .iter()
        .map(|p| {
            let comps: Vec<&str> = p
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .collect();
            format!("/{}", comps.join("/")).into_bytes()
        })
        .collect();
    let err = |source: io::Error| TreeError::Whitelist {
        path: root.to_path_buf(),
        source,
    };
    let fd = open_root(root).map_err(err)?;
    let mut prefix = Vec::new();
    whitelist_dir(fd.as_fd(), &mut prefix, &keep).map_err(|e| err(e.into()))
}

fn whitelist_dir(
    dir: BorrowedFd<'_>,
    path: &mut Vec<u8>,
    keep: &HashSet<Vec<u8>>,
) -> rustix::io::Result<()> {
    for name in dir_names(dir)? {
        let len = path.len();
        path.push(b'/');
        path.extend_from_slice(&name);
        let st = rfs::statat(dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let sub = open_dir_at(dir, &name)?;
            whitelist_dir(sub.as_fd(), path, keep)?;
        } else if !keep.contains(path.as_slice()) {
            rfs::unlinkat(dir, name.as_slice(), AtFlags::empty())?;
        }
        path.truncate(len);
    }
    Ok(())
}

/// A deterministic hash (`sha512-<hex>`) of the tree at `dir`, without following
/// symlinks. Entries are visited depth first in byte order of their names; each
/// contributes its relative path, type, permission bits (with setuid/setgid/sticky),
/// uid, gid, extended attributes (sorted by name), and: the sha512 of the content for
/// a regular file, the target for a symlink, the device number for a device. Times,
/// inode numbers, link counts and directory sizes are not part of it, so a copy or a
/// re-extraction of the same content hashes the same.
pub fn tree_hash(dir: &Path) -> Result<String, TreeError> {
    let fd = open_root(dir).map_err(|source| TreeError::Hash {
        root: dir.to_path_buf(),
        entry: "/".to_string(),
        source,
    })?;
    let mut h = Sha512::new();
    let mut path = Vec::new();
    hash_dir(&mut h, fd.as_fd(), &mut path, &mut vec![0u8; 128 * 1024]).map_err(|(entry, e)| {
        TreeError::Hash {
            root: dir.to_path_buf(),
            entry: if entry.is_empty() {
                "/".to_string()
            } else {
                String::from_utf8_lossy(&entry).into_owned()
            },
            source: e,
        }
    })?;
    Ok(format!("sha512-{}", hex::encode(h.finalize())))
}

type HashResult<T> = Result<T, (Vec<u8>, io::Error)>;

/// Hash the directory `fd` found at `path`: its own record, then its children's.
fn hash_dir(
    h: &mut Sha512,
    fd: BorrowedFd<'_>,
    path: &mut Vec<u8>,
    buf: &mut [u8],
) -> HashResult<()> {
    let at = |p: &[u8], e: Errno| (p.to_vec(), io::Error::from(e));
    let st = rfs::fstat(fd).map_err(|e| at(path, e))?;
    let xattrs = read_xattrs(XattrSource::Fd(fd)).map_err(|e| at(path, e))?;
    record(h, path, b'd', &st, &[], &xattrs);

    let mut names = dir_names(fd).map_err(|e| at(path, e))?;
    names.sort();
    for name in names {
        let len = path.len();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&name);
        let st =
            rfs::statat(fd, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW).map_err(|e| at(path, e))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let sub = open_dir_at(fd, &name).map_err(|e| at(path, e))?;
                hash_dir(h, sub.as_fd(), path, buf)?;
            }
            FileType::RegularFile => {
                let file = rfs::openat(
                    fd,
                    name.as_slice(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
                    Mode::empty(),
                )
                .map_err(|e| at(path, e))?;
                let xattrs = read_xattrs(XattrSource::Fd(file.as_fd())).map_err(|e| at(path, e))?;
                let digest = hash_content(file, buf).map_err(|e| (path.clone(), e))?;
                record(h, path, b'f', &st, &digest, &xattrs);
            }
            ft => {
                let xattrs = read_xattrs(XattrSource::At(fd, &name)).map_err(|e| at(path, e))?;
                let (kind, extra) = match ft {
                    FileType::Symlink => (
                        b'l',
                        rfs::readlinkat(fd, name.as_slice(), Vec::new())
                            .map_err(|e| at(path, e))?
                            .into_bytes(),
                    ),
                    FileType::CharacterDevice | FileType::BlockDevice => (
                        if ft == FileType::CharacterDevice {
                            b'c'
                        } else {
                            b'b'
                        },
                        format!("{}:{}", rfs::major(st.st_rdev), rfs::minor(st.st_rdev))
                            .into_bytes(),
                    ),
                    FileType::Fifo => (b'p', Vec::new()),
                    FileType::Socket => (b's', Vec::new()),
                    _ => (b'?', Vec::new()),
                };
                record(h, path, kind, &st, &extra, &xattrs);
            }
        }
        path.truncate(len);
    }
    Ok(())
}

fn hash_content(fd: OwnedFd, buf: &mut [u8]) -> io::Result<Vec<u8>> {
    let mut file = File::from(fd);
    let mut h = Sha512::new();
    loop {
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_vec())
}

/// Feed one entry's record into `h`. Every field is length-prefixed, so no two
/// different trees produce the same byte stream.
fn record(
    h: &mut Sha512,
    path: &[u8],
    kind: u8,
    st: &rfs::Stat,
    extra: &[u8],
    xattrs: &[(Vec<u8>, Vec<u8>)],
) {
    fn field(h: &mut Sha512, bytes: &[u8]) {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    field(h, path);
    field(h, &[kind]);
    field(
        h,
        format!("{:o}:{}:{}", st.st_mode & 0o7777, st.st_uid, st.st_gid).as_bytes(),
    );
    field(h, extra);
    h.update((xattrs.len() as u64).to_le_bytes());
    for (name, value) in xattrs {
        field(h, name);
        field(h, value);
    }
}

enum XattrSource<'a> {
    Fd(BorrowedFd<'a>),
    At(BorrowedFd<'a>, &'a [u8]),
}

/// The extended attributes of a file, sorted by name. A filesystem without xattr
/// support has none.
fn read_xattrs(src: XattrSource<'_>) -> rustix::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let proc = match &src {
        XattrSource::At(dir, name) => Some(proc_path(*dir, name)),
        XattrSource::Fd(_) => None,
    };
    let list = |buf: &mut Vec<u8>| -> rustix::io::Result<usize> {
        match (&src, &proc) {
            (XattrSource::Fd(fd), _) => rfs::flistxattr(fd, buf),
            (_, Some(p)) => rfs::llistxattr(p, buf),
            _ => Err(Errno::INVAL),
        }
    };
    let get = |name: &[u8], buf: &mut Vec<u8>| -> rustix::io::Result<usize> {
        match (&src, &proc) {
            (XattrSource::Fd(fd), _) => rfs::fgetxattr(fd, name, buf),
            (_, Some(p)) => rfs::lgetxattr(p, name, buf),
            _ => Err(Errno::INVAL),
        }
    };
    let names = match read_sized(|buf| list(buf)) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        match read_sized(|buf| get(name, buf)) {
            Ok(value) => out.push((name.to_vec(), value)),
            // Removed between listing and reading.
            Err(Errno::NODATA) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// Call an xattr syscall with a growing buffer until the value fits.
fn read_sized(
    mut call: impl FnMut(&mut Vec<u8>) -> rustix::io::Result<usize>,
) -> rustix::io::Result<Vec<u8>> {
    let mut size = 256;
    loop {
        let mut buf = vec![0u8; size];
        match call(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) if size < 1 << 24 => size *= 4,
            Err(e) => return Err(e),
        }
    }
}

/// Bytes used by the regular files under `dir` (each inode counted once).
pub fn disk_usage(dir: &Path) -> Result<u64, TreeError> {
    fn walk(fd: BorrowedFd<'_>, seen: &mut HashSet<(u64, u64)>) -> rustix::io::Result<u64> {
        let mut total = 0;
        for name in dir_names(fd)? {
            let st = rfs::statat(fd, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW)?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    let sub = open_dir_at(fd, &name)?;
                    total += walk(sub.as_fd(), seen)?;
                }
                FileType::RegularFile if seen.insert((st.st_dev, st.st_ino)) => {
                    total += u64::try_from(st.st_size).unwrap_or(0);
                }
                _ => {}
            }
        }
        Ok(total)
    }
    let err = |source: io::Error| TreeError::ReadDir {
        path: dir.to_path_buf(),
        source,
    };
    let fd = open_root(dir).map_err(err)?;
    walk(fd.as_fd(), &mut HashSet::new()).map_err(|e| err(e.into()))
}

fn check_id(id: &str) -> Result<(), TreeError> {
    let ok = !id.is_empty()
        && id.len() <= 255
        && !id.starts_with('.')
        && !id.contains('/')
        && !id.contains('\0');
    if ok {
        Ok(())
    } else {
        Err(TreeError::InvalidId { id: id.to_string() })
    }
}

fn open_root(dir: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(
        dir,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), TreeError> {
    let err = |source| TreeError::WriteFile {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::create(path).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    Ok(())
}

fn remove_all(path: &Path) -> Result<(), TreeError> {
    let res = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    res.map_err(|source| TreeError::Remove {
        path: path.to_path_buf(),
        source,
    })
}

fn sync_fs(path: &Path) -> Result<(), TreeError> {
    let err = |source: io::Error| TreeError::WriteFile {
        path: path.to_path_buf(),
        source,
    };
    let fd = open_root(path).map_err(err)?;
    rfs::syncfs(&fd).map_err(|e| err(e.into()))
}

/// Make a rename or removal in `dir` durable; failure only costs durability.
fn sync_dir(dir: &Path) {
    if let Ok(fd) = open_root(dir) {
        if let Err(e) = rfs::fsync(&fd) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot sync directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::extract::tests::TarBuilder;
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Arc, Barrier};

    const MANIFEST_JSON: &[u8] =
        br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/test"}"#;

    /// Write an uncompressed ACI holding `files` (path under rootfs, content).
    fn aci(dir: &Path, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let mut t = TarBuilder::new();
        t.file("manifest", 0o644, MANIFEST_JSON)
            .dir("rootfs/", 0o755);
        for (path, data) in files {
            t.file(&format!("rootfs/{path}"), 0o644, data);
        }
        let path = dir.join(name);
        fs::write(&path, t.finish()).expect("write aci");
        path
    }

    fn store() -> (tempfile::TempDir, TreeStore) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = TreeStore::new(tmp.path().join("cas/tree"));
        (tmp, store)
    }

    fn tmp_entries(store: &TreeStore) -> Vec<String> {
        match fs::read_dir(store.root().join(TMP_DIR)) {
            Ok(rd) => rd
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    const ID: &str = "sha512-0123456789abcdef";

    #[test]
    fn render_is_idempotent() {
        let (tmp, store) = store();
        let layer = aci(tmp.path(), "img.aci", &[("bin/app", b"app")]);
        assert!(!store.is_rendered(ID));
        let rootfs = store
            .render(ID, std::slice::from_ref(&layer), MANIFEST_JSON, &[])
            .expect("render");
        assert_eq!(rootfs, store.path(ID).join("rootfs"));
        assert!(store.is_rendered(ID));
        assert_eq!(fs::read(rootfs.join("bin/app")).expect("app"), b"app");
        assert_eq!(
            fs::read(store.path(ID).join("manifest")).expect("manifest"),
            MANIFEST_JSON
        );
        let hash = store.stored_hash(ID).expect("hash");
        assert_eq!(hash, tree_hash(&rootfs).expect("tree hash"));
        let ino = fs::metadata(&rootfs).expect("stat").ino();

        let again = store
            .render(ID, &[layer], MANIFEST_JSON, &[])
            .expect("render again");
        assert_eq!(again, rootfs);
        assert_eq!(
            fs::metadata(&again).expect("stat").ino(),
            ino,
            "not re-rendered"
        );
        assert_eq!(store.stored_hash(ID).expect("hash"), hash);
        assert_eq!(store.list().expect("list"), [ID]);
        assert!(tmp_entries(&store).is_empty());
        store.verify(ID).expect("verify");
    }

    #[test]
    fn concurrent_renders_make_one_tree() {
        let (tmp, store) = store();
        let files: Vec<(String, Vec<u8>)> = (0..200)
            .map(|i| (format!("d{}/f{i}", i % 10), vec![i as u8; 1000]))
            .collect();
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_slice()))
            .collect();
        let layer = aci(tmp.path(), "img.aci", &refs);
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let store = store.clone();
                let layer = layer.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    store.render(ID, &[layer], MANIFEST_JSON, &[])
                })
            })
            .collect();
        let paths: Vec<PathBuf> = handles
            .into_iter()
            .map(|h| h.join().expect("thread").expect("render"))
            .collect();
        assert_eq!(paths[0], paths[1]);
        assert_eq!(store.list().expect("list"), [ID]);
        assert!(tmp_entries(&store).is_empty(), "{:?}", tmp_entries(&store));
        store.verify(ID).expect("verify");
        assert_eq!(fs::read_dir(paths[0].join("d3")).expect("d3").count(), 20);
    }

    #[test]
    fn tree_hash_covers_content_mode_owner_and_links_but_not_mtime() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("t");
        fs::create_dir_all(dir.join("sub")).expect("mkdir");
        let file = dir.join("sub/file");
        fs::write(&file, b"content").expect("write");
        std::os::unix::fs::symlink("sub/file", dir.join("link")).expect("symlink");
        let h0 = tree_hash(&dir).expect("hash");
        assert!(h0.starts_with("sha512-") && h0.len() == 7 + 128, "{h0}");
        assert_eq!(tree_hash(&dir).expect("hash"), h0, "deterministic");

        let set_mtime = |p: &Path, secs: i64| {
            let t = rfs::Timestamps {
                last_access: rfs::Timespec {
                    tv_sec: secs,
                    tv_nsec: 0,
                },
                last_modification: rfs::Timespec {
                    tv_sec: secs,
                    tv_nsec: 0,
                },
            };
            rfs::utimensat(rfs::CWD, p, &t, AtFlags::SYMLINK_NOFOLLOW).expect("utimensat");
        };
        set_mtime(&file, 12345);
        set_mtime(&dir.join("sub"), 12345);
        set_mtime(&dir.join("link"), 12345);
        assert_eq!(tree_hash(&dir).expect("hash"), h0, "mtimes are not hashed");

        let changed = |what: &str| {
            let h = tree_hash(&dir).expect("hash");
            assert_ne!(h, h0, "{what} must change the hash");
            h
        };
        fs::write(&file, b"Content").expect("write");
        changed("content");
        fs::write(&file, b"content").expect("write");
        assert_eq!(tree_hash(&dir).expect("hash"), h0, "same content again");

        let mode = fs::metadata(&file).expect("stat").mode() & 0o7777;
        fs::set_permissions(&file, fs::Permissions::from_mode(mode | 0o4000)).expect("chmod");
        changed("the setuid bit");
        fs::set_permissions(&file, fs::Permissions::from_mode(mode)).expect("chmod");
        assert_eq!(tree_hash(&dir).expect("hash"), h0);

        rfs::chown(&file, Some(rfs::Uid::from_raw(1000)), None).expect("chown");
        changed("the owner");
        rfs::chown(
            &file,
            Some(rfs::Uid::from_raw(0)),
            Some(rfs::Gid::from_raw(1000)),
        )
        .expect("chown");
        changed("the group");
        rfs::chown(&file, None, Some(rfs::Gid::from_raw(0))).expect("chown");
        assert_eq!(tree_hash(&dir).expect("hash"), h0);

        fs::remove_file(dir.join("link")).expect("rm link");
        std::os::unix::fs::symlink("sub/other", dir.join("link")).expect("symlink");
        changed("a symlink target");
        fs::remove_file(dir.join("link")).expect("rm link");
        std::os::unix::fs::symlink("sub/file", dir.join("link")).expect("symlink");
        assert_eq!(tree_hash(&dir).expect("hash"), h0);

        fs::rename(&file, dir.join("sub/renamed")).expect("rename");
        changed("a name");
        fs::rename(dir.join("sub/renamed"), &file).expect("rename");

        if rfs::setxattr(&file, "user.test", b"v", rfs::XattrFlags::empty()).is_ok() {
            changed("an xattr");
            rfs::removexattr(&file, "user.test").expect("removexattr");
            assert_eq!(tree_hash(&dir).expect("hash"), h0);
        } else {
            eprintln!(
                "SKIPPING the xattr part: no user xattrs on {}",
                dir.display()
            );
        }

        fs::write(dir.join("sub/empty"), b"").expect("write");
        changed("a new empty file");
    }

    #[test]
    fn tree_hash_does_not_follow_symlinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).expect("mkdir");
        fs::write(outside.join("f"), b"1").expect("write");
        let dir = tmp.path().join("t");
        fs::create_dir(&dir).expect("mkdir");
        std::os::unix::fs::symlink(&outside, dir.join("out")).expect("symlink");
        let h0 = tree_hash(&dir).expect("hash");
        fs::write(outside.join("f"), b"2").expect("write");
        assert_eq!(tree_hash(&dir).expect("hash"), h0);
    }

    #[test]
    fn verify_detects_tampering() {
        let (tmp, store) = store();
        let layer = aci(
            tmp.path(),
            "img.aci",
            &[("etc/conf", b"safe"), ("bin/sh", b"sh")],
        );
        let rootfs = store
            .render(ID, &[layer], MANIFEST_JSON, &[])
            .expect("render");
        store.verify(ID).expect("fresh tree verifies");

        fs::write(rootfs.join("etc/conf"), b"evil").expect("tamper");
        match store.verify(ID) {
            Err(TreeError::Tampered {
                id,
                expected,
                actual,
            }) => {
                assert_eq!(id, ID);
                assert_eq!(expected, store.stored_hash(ID).expect("hash"));
                assert_ne!(expected, actual);
            }
            other => panic!("expected Tampered, got {other:?}"),
        }
        fs::write(rootfs.join("etc/conf"), b"safe").expect("restore");
        store.verify(ID).expect("restored tree verifies");

        fs::set_permissions(rootfs.join("bin/sh"), fs::Permissions::from_mode(0o4755))
            .expect("chmod");
        assert!(matches!(store.verify(ID), Err(TreeError::Tampered { .. })));

        assert!(matches!(
            store.verify("sha512-absent"),
            Err(TreeError::NotRendered { .. })
        ));
    }

    #[test]
    fn whitelist_keeps_only_listed_files() {
        let (tmp, store) = store();
        let layer = aci(
            tmp.path(),
            "img.aci",
            &[
                ("bin/a", b"a"),
                ("bin/b", b"b"),
                ("etc/c", b"c"),
                ("var/empty/x", b"x"),
            ],
        );
        let whitelist = vec![
            "/bin/a".to_string(),
            "/etc/c".to_string(),
            "/nonexistent".to_string(),
        ];
        let rootfs = store
            .render(ID, &[layer], MANIFEST_JSON, &whitelist)
            .expect("render");
        assert!(rootfs.join("bin/a").is_file());
        assert!(rootfs.join("etc/c").is_file());
        assert!(!rootfs.join("bin/b").exists());
        assert!(!rootfs.join("var/empty/x").exists());
        assert!(rootfs.join("var/empty").is_dir(), "directories are kept");
        store.verify(ID).expect("hash recorded after the whitelist");
    }

    #[test]
    fn layers_overlay_in_order() {
        let (tmp, store) = store();
        let dep = aci(
            tmp.path(),
            "dep.aci",
            &[("etc/os", b"dep"), ("bin/tool", b"tool")],
        );
        let img = aci(
            tmp.path(),
            "img.aci",
            &[("etc/os", b"image"), ("app", b"app")],
        );
        let rootfs = store
            .render(ID, &[dep, img], MANIFEST_JSON, &[])
            .expect("render");
        assert_eq!(fs::read(rootfs.join("etc/os")).expect("os"), b"image");
        assert_eq!(fs::read(rootfs.join("bin/tool")).expect("tool"), b"tool");
        assert_eq!(fs::read(rootfs.join("app")).expect("app"), b"app");
        assert!(!rootfs.join("manifest").exists(), "only rootfs/ is applied");
    }

    #[test]
    fn remove_is_idempotent() {
        let (tmp, store) = store();
        let layer = aci(tmp.path(), "img.aci", &[("f", b"f")]);
        store
            .render(ID, &[layer], MANIFEST_JSON, &[])
            .expect("render");
        store.remove(ID).expect("remove");
        assert!(!store.is_rendered(ID));
        assert!(!store.path(ID).exists());
        assert!(store.list().expect("list").is_empty());
        store.remove(ID).expect("remove again");
        store.remove("sha512-never-there").expect("remove absent");
    }

    #[test]
    fn failed_render_leaves_nothing() {
        let (tmp, store) = store();
        let good = aci(tmp.path(), "good.aci", &[("f", b"f")]);
        let bad = tmp.path().join("bad.aci");
        let bytes = fs::read(&good).expect("read");
        fs::write(&bad, &bytes[..1024 + 100]).expect("write truncated");
        let err = store
            .render(ID, &[good, bad.clone()], MANIFEST_JSON, &[])
            .expect_err("truncated layer");
        assert!(
            matches!(&err, TreeError::Unpack { layer, .. } if *layer == bad),
            "{err:?}"
        );
        assert!(!store.is_rendered(ID));
        assert!(store.list().expect("list").is_empty());
        assert!(tmp_entries(&store).is_empty());

        let missing = tmp.path().join("missing.aci");
        assert!(matches!(
            store.render(ID, &[missing], MANIFEST_JSON, &[]),
            Err(TreeError::OpenLayer { .. })
        ));
    }

    #[test]
    fn incomplete_leftovers_are_replaced() {
        let (tmp, store) = store();
        let junk = store.path(ID).join("rootfs/junk");
        fs::create_dir_all(junk.parent().expect("parent")).expect("mkdir");
        fs::write(&junk, b"from a crashed render").expect("write");
        let stale_tmp = store.root().join(TMP_DIR).join(format!("{ID}.abc123"));
        fs::create_dir_all(&stale_tmp).expect("mkdir");
        let other_tmp = store.root().join(TMP_DIR).join(format!("{ID}.x.abc123"));
        fs::create_dir_all(&other_tmp).expect("mkdir");
        assert!(!store.is_rendered(ID));
        assert_eq!(store.list().expect("list"), [ID]);

        let layer = aci(tmp.path(), "img.aci", &[("f", b"f")]);
        let rootfs = store
            .render(ID, &[layer], MANIFEST_JSON, &[])
            .expect("render");
        assert!(!junk.exists());
        assert!(rootfs.join("f").is_file());
        assert!(!stale_tmp.exists());
        assert!(
            other_tmp.exists(),
            "another id's temporary directory is left alone"
        );
    }

    #[test]
    fn invalid_ids_are_refused() {
        let (tmp, store) = store();
        let layer = aci(tmp.path(), "img.aci", &[("f", b"f")]);
        for id in ["", "..", ".tmp", "a/b", "../escape"] {
            assert!(
                matches!(
                    store.render(id, std::slice::from_ref(&layer), MANIFEST_JSON, &[]),
                    Err(TreeError::InvalidId { .. })
                ),
                "{id:?}"
            );
            assert!(!store.is_rendered(id));
            assert!(matches!(store.remove(id), Err(TreeError::InvalidId { .. })));
        }
        assert!(!tmp.path().join("cas/escape").exists());
    }

    #[test]
    fn render_into_writes_the_rootfs_directly() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dep = aci(
            tmp.path(),
            "dep.aci",
            &[("etc/os", b"dep"), ("bin/tool", b"tool")],
        );
        let img = aci(tmp.path(), "img.aci", &[("etc/os", b"image")]);
        let dest = tmp.path().join("out/rootfs");
        render_into(&dest, &[dep, img], &["/etc/os".to_string()]).expect("render_into");
        assert_eq!(fs::read(dest.join("etc/os")).expect("os"), b"image");
        assert!(!dest.join("bin/tool").exists());
        assert!(dest.join("bin").is_dir());
    }

    #[test]
    fn size_counts_hardlinked_files_once() {
        let (tmp, store) = store();
        let mut t = TarBuilder::new();
        t.file("manifest", 0o644, MANIFEST_JSON)
            .file("rootfs/a", 0o644, &[1u8; 1000])
            .hardlink("rootfs/b", "rootfs/a")
            .file("rootfs/c", 0o644, &[2u8; 24]);
        let layer = tmp.path().join("img.aci");
        fs::write(&layer, t.finish()).expect("write");
        store
            .render(ID, &[layer], MANIFEST_JSON, &[])
            .expect("render");
        let manifest_and_hash = MANIFEST_JSON.len() as u64 + 7 + 128;
        assert_eq!(store.size(ID).expect("size"), 1024 + manifest_and_hash);
    }
}
