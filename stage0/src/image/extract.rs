//! Safe tar extraction.
//!
//! [`unpack`] extracts an uncompressed tar stream under a destination directory and
//! never writes outside it, whatever the archive contains:
//!
//! - Entry paths are archive-relative. A leading `./` and `.` components are ignored;
//!   an absolute path (leading `/`) or a `..` component is refused with
//!   [`ExtractError::PathEscapes`] rather than silently rewritten, so a malicious or
//!   broken image is noticed.
//! - Every object is created relative to an open descriptor of its parent directory,
//!   and that descriptor is reached from the destination one component at a time with
//!   `O_NOFOLLOW | O_DIRECTORY`. A parent that is a symlink is refused with
//!   [`ExtractError::WriteThroughSymlink`]; nothing is ever opened through a link.
//! - Symlinks themselves may point anywhere (absolute links are normal in a rootfs).
//!   An entry that replaces an existing object removes it first and creates the new one
//!   with `O_CREAT | O_EXCL | O_NOFOLLOW`.
//! - A hardlink's target must be a path inside the extracted tree that exists, reached
//!   without symlinks; `linkat` does not follow a target that is itself a symlink.
//!
//! Ownership (`lchown`), permission bits including setuid/setgid/sticky (set after the
//! owner, which clears them), mtimes, extended attributes (PAX `SCHILY.xattr.*`; only
//! `user.*`, `security.capability` and POSIX ACLs, see [`xattr_allowed`]),
//! symlinks, hardlinks, device nodes and fifos are reproduced. Directory modes and
//! mtimes are applied once the whole archive is written, so a read-only directory does
//! not block its children and adding children does not disturb its mtime.
//!
//! A stream that is truncated, corrupt, or ends without the tar end-of-archive marker
//! is an error ([`ExtractError::Corrupt`]), never a silent partial success. After the
//! marker the rest of the stream is read to its end, so a decompressor underneath gets
//! to check its trailer (a gzip CRC, for instance).
//!
//! With [`UnpackOptions::whiteouts`] the OCI layer conventions apply: `.wh.NAME` removes
//! `NAME` as written by earlier layers and `.wh..wh..opq` empties its directory of what
//! earlier layers wrote, keeping what the same archive adds (in any order).

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;
use tar::EntryType;

/// Longest entry path accepted, in bytes (Linux `PATH_MAX`). Longer paths could only be
/// created through descriptor walks and could not be used by path afterwards.
const MAX_PATH_LEN: usize = 4096;

/// The whiteout prefix of the OCI image layer format.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The opaque-directory marker of the OCI image layer format.
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";

/// How [`unpack`] treats an archive.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Only entries under this top-level directory are extracted, with the prefix removed
    /// (e.g. `"rootfs"` for an ACI's rootfs). `None` extracts everything as is. A leading
    /// `./` (in the option or in entry names) is ignored.
    pub strip_prefix: Option<String>,
    /// Restore uid/gid from the archive (`lchown`). True by default.
    pub preserve_owner: bool,
    /// OCI whiteouts: `.wh.NAME` deletes `NAME` from what lower layers wrote,
    /// `.wh..wh..opq` empties the directory. False by default (ACIs).
    pub whiteouts: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            strip_prefix: None,
            preserve_owner: true,
            whiteouts: false,
        }
    }
}

impl UnpackOptions {
    /// The options for an ACI's `rootfs/`: prefix stripped, owners kept, no whiteouts.
    pub fn aci_rootfs() -> Self {
        UnpackOptions {
            strip_prefix: Some("rootfs".to_string()),
            ..UnpackOptions::default()
        }
    }
}

/// What [`unpack`] did.
#[derive(Debug, Clone, Default)]
pub struct UnpackStats {
    /// Entries applied (files, directories, links, nodes and whiteouts); entries outside
    /// [`UnpackOptions::strip_prefix`] are not counted.
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("cannot open the extraction directory {}", path.display())]
    OpenDest { path: PathBuf, source: io::Error },
    #[error("tar entry {entry}: absolute paths and `..` components are refused")]
    PathEscapes { entry: String },
    #[error("tar entry {entry}: path is longer than {MAX_PATH_LEN} bytes")]
    PathTooLong { entry: String },
    #[error("tar entry {entry}: refusing to write through the symlink {link}")]
    WriteThroughSymlink { entry: String, link: String },
    #[error("tar entry {entry}: {path} exists and is not a directory")]
    NotADirectory { entry: String, path: String },
    #[error("tar entry {entry}: a non-directory cannot replace the extraction directory")]
    ReplacesRoot { entry: String },
    #[error("tar entry {entry}: hardlink target {target} is outside the extracted tree")]
    HardlinkOutside { entry: String, target: String },
    #[error("tar entry {entry}: cannot hardlink to {target}")]
    HardlinkTarget {
        entry: String,
        target: String,
        source: io::Error,
    },
    #[error("tar entry {entry}: unsupported entry type {kind}")]
    UnsupportedType { entry: String, kind: String },
    #[error("tar entry {entry}: invalid header")]
    BadHeader { entry: String, source: io::Error },
    #[error("tar entry {entry}: {op}")]
    Io {
        entry: String,
        op: &'static str,
        source: io::Error,
    },
    #[error("tar entry {entry}: content is truncated or corrupt")]
    CorruptEntry { entry: String, source: io::Error },
    #[error("corrupt or truncated tar stream")]
    Corrupt { source: io::Error },
}

/// Extract the tar stream `reader` under `dest` (created if missing).
///
/// On error `dest` may hold part of the archive; callers extract into a fresh
/// directory and discard it on failure.
pub fn unpack<R: Read>(
    reader: R,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, ExtractError> {
    std::fs::create_dir_all(dest).map_err(|source| ExtractError::OpenDest {
        path: dest.to_path_buf(),
        source,
    })?;
    let root = rfs::open(
        dest,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ExtractError::OpenDest {
        path: dest.to_path_buf(),
        source: e.into(),
    })?;

    let prefix = opts.strip_prefix.as_deref().and_then(|p| {
        let comps: Vec<Vec<u8>> = p
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(|c| c.as_bytes().to_vec())
            .collect();
        (!comps.is_empty()).then_some(comps)
    });

    let mut x = Extractor {
        root: Rc::new(root),
        opts,
        prefix,
        parent_cache: None,
        dirs: HashMap::new(),
        layer_paths: HashSet::new(),
        stats: UnpackStats::default(),
        buf: vec![0u8; 128 * 1024],
    };

    let eof = Cell::new(false);
    let mut archive = tar::Archive::new(EofTracker {
        inner: reader,
        eof: &eof,
    });
    let entries = archive
        .entries()
        .map_err(|source| ExtractError::Corrupt { source })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| ExtractError::Corrupt { source })?;
        x.entry(&mut entry)?;
    }
    let mut rest = archive.into_inner();
    if eof.get() {
        return Err(ExtractError::Corrupt {
            source: io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stream ends without the end-of-archive marker",
            ),
        });
    }
    io::copy(&mut rest, &mut io::sink()).map_err(|source| ExtractError::Corrupt { source })?;
    x.finish()?;
    Ok(x.stats)
}

/// Notes whether the underlying stream reached its end. The tar reader stops right
/// after the end-of-archive marker, so reaching the end while reading entries means
/// the marker is missing (the stream was cut at a block boundary).
struct EofTracker<'a, R> {
    inner: R,
    eof: &'a Cell<bool>,
}

impl<R: Read> Read for EofTracker<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof.set(true);
        }
        Ok(n)
    }
}

/// A path relative to the destination, as its components (none of them empty, `.`
/// or `..`, none containing `/`).
type Rel = Vec<Vec<u8>>;

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    comps.join(&b'/')
}

fn show(comps: &[Vec<u8>]) -> String {
    String::from_utf8_lossy(&join(comps)).into_owned()
}

/// Split an archive path into components. `None` if it is absolute or has `..`.
fn split_archive_path(raw: &[u8]) -> Option<Rel> {
    if raw.first() == Some(&b'/') {
        return None;
    }
    let mut comps = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return None,
            c => comps.push(c.to_vec()),
        }
    }
    Some(comps)
}

/// POSIX ACLs: permission bits in another encoding, acting on the pod's own files.
const ACL_XATTRS: &[&[u8]] = &[b"system.posix_acl_access", b"system.posix_acl_default"];

/// Whether an extended attribute from an archive may be written: `user.*`,
/// `security.capability` (file capabilities, which `no_new_privs` and the bounding set
/// still limit) and the POSIX ACLs. Everything else is dropped: `trusted.overlay.*`
/// would act on the overlay filesystem that mounts the tree (opaque directories,
/// redirects, metacopy), other `trusted.*` attributes belong to the host's root, and
/// `security.*` labels (SELinux, IMA/EVM, SMACK) are the host's policy, not the image's.
/// No image format needs more: OCI whiteouts and opaque directories are `.wh.` names.
pub fn xattr_allowed(name: &[u8]) -> bool {
    match name.strip_prefix(b"user.") {
        Some(rest) => !rest.is_empty(),
        None => name == b"security.capability" || ACL_XATTRS.contains(&name),
    }
}

/// Metadata of one entry, read from its header and PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta, ExtractError> {
        let bad = |source: io::Error| ExtractError::BadHeader {
            entry: name.to_string(),
            source,
        };
        let header = entry.header();
        let mode = header.mode().map_err(bad)? & 0o7777;
        let id = |v: u64, what: &str| {
            u32::try_from(v).map_err(|_| {
                bad(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{what} {v} is out of range"),
                ))
            })
        };
        let uid = id(header.uid().map_err(bad)?, "uid")?;
        let gid = id(header.gid().map_err(bad)?, "gid")?;
        let mut mtime = Timespec {
            tv_sec: i64::try_from(header.mtime().map_err(bad)?).unwrap_or(i64::MAX),
            tv_nsec: 0,
        };
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions().map_err(bad)? {
            for ext in pax {
                let ext = ext.map_err(bad)?;
                let key = ext.key_bytes();
                if let Some(xname) = key.strip_prefix(b"SCHILY.xattr.") {
                    if xattr_allowed(xname) {
                        xattrs.push((xname.to_vec(), ext.value_bytes().to_vec()));
                    } else if !xname.is_empty() {
                        tracing::debug!(
                            entry = name,
                            xattr = %String::from_utf8_lossy(xname),
                            "extended attribute not in the allowed set; dropped"
                        );
                    }
                } else if key == b"mtime" {
                    if let Some(t) = parse_pax_time(ext.value_bytes()) {
                        mtime = t;
                    }
                }
            }
        }
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    fn times(&self) -> Timestamps {
        Timestamps {
            last_access: self.mtime,
            last_modification: self.mtime,
        }
    }
}

/// Parse a PAX time (`seconds[.fraction]`, non-negative).
fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let v = std::str::from_utf8(v).ok()?;
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    if tv_sec < 0 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let tv_nsec: i64 = digits.parse().ok()?;
    Some(Timespec { tv_sec, tv_nsec })
}

/// Deferred directory metadata.
struct DirMeta {
    mode: u32,
    times: Timestamps,
}

/// How a descriptor walk ended when it did not reach its directory.
enum WalkError {
    /// `comps[..=index]` is a symlink.
    Symlink(usize),
    /// `comps[..=index]` exists and is not a directory.
    NotDir(usize),
    Io(&'static str, io::Error),
}

struct Extractor<'o> {
    root: Rc<OwnedFd>,
    opts: &'o UnpackOptions,
    prefix: Option<Rel>,
    /// The last parent directory opened, by its relative path. Any directory removal
    /// clears it, so the path always names the directory the descriptor refers to.
    parent_cache: Option<(Rel, Rc<OwnedFd>)>,
    /// Directory modes and mtimes, applied at the end.
    dirs: HashMap<Rel, DirMeta>,
    /// Paths this archive wrote and their ancestors (kept only with whiteouts).
    layer_paths: HashSet<Rel>,
    stats: UnpackStats,
    /// Copy buffer, reused across entries.
    buf: Vec<u8>,
}

impl Extractor<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ExtractError> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let mut kind = entry.header().entry_type();
        match kind {
            // Global PAX records carry nothing we apply per file.
            EntryType::XGlobalHeader => return Ok(()),
            // Pre-POSIX archives mark directories with a trailing slash only.
            EntryType::Regular if raw.ends_with(b"/") => kind = EntryType::Directory,
            _ => {}
        }
        if raw.len() > MAX_PATH_LEN {
            return Err(ExtractError::PathTooLong { entry: name });
        }
        let Some(path) = self.relative(&raw) else {
            return Err(ExtractError::PathEscapes { entry: name });
        };
        let Some(path) = path else {
            tracing::trace!(entry = %name, "outside the extracted prefix, skipped");
            return Ok(());
        };

        if self.opts.whiteouts {
            if let Some(leaf) = path.last() {
                if leaf.starts_with(WHITEOUT_PREFIX) {
                    self.stats.entries += 1;
                    return self.whiteout(&path, &name);
                }
            }
        }

        let meta = Meta::read(entry, &name)?;
        match kind {
            EntryType::Directory => self.directory(&path, &name, &meta)?,
            _ if path.is_empty() => return Err(ExtractError::ReplacesRoot { entry: name }),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.regular(entry, &path, &name, &meta)?
            }
            EntryType::Symlink => {
                let Some(target) = entry.link_name_bytes().map(|t| t.into_owned()) else {
                    return Err(missing_link_name(name));
                };
                self.symlink(&path, &name, &target, &meta)?
            }
            EntryType::Link => {
                let Some(target) = entry.link_name_bytes().map(|t| t.into_owned()) else {
                    return Err(missing_link_name(name));
                };
                self.hardlink(&path, &name, &target)?
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let header = entry.header();
                let bad = |source| ExtractError::BadHeader {
                    entry: name.clone(),
                    source,
                };
                let (file_type, dev) = if kind == EntryType::Fifo {
                    (FileType::Fifo, 0)
                } else {
                    let major = header.device_major().map_err(bad)?;
                    let minor = header.device_minor().map_err(bad)?;
                    let (Some(major), Some(minor)) = (major, minor) else {
                        return Err(bad(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "device entry without device numbers",
                        )));
                    };
                    let ft = if kind == EntryType::Char {
                        FileType::CharacterDevice
                    } else {
                        FileType::BlockDevice
                    };
                    (ft, rfs::makedev(major, minor))
                };
                self.node(&path, &name, file_type, dev, &meta)?
            }
            other => {
                return Err(ExtractError::UnsupportedType {
                    entry: name,
                    kind: format!("{other:?} ({:?})", char::from(other.as_byte())),
                })
            }
        }
        self.stats.entries += 1;
        if self.opts.whiteouts {
            self.note_written(&path);
        }
        Ok(())
    }

    /// The destination-relative path of an archive path: `None` if it escapes,
    /// `Some(None)` if it is outside the prefix.
    fn relative(&self, raw: &[u8]) -> Option<Option<Rel>> {
        let comps = split_archive_path(raw)?;
        Some(match &self.prefix {
            None => Some(comps),
            Some(prefix) => comps
                .starts_with(prefix)
                .then(|| comps[prefix.len()..].to_vec()),
        })
    }

    fn note_written(&mut self, path: &[Vec<u8>]) {
        // Deepest first: once an ancestor is known, its own ancestors are too.
        for n in (0..=path.len()).rev() {
            if !self.layer_paths.insert(path[..n].to_vec()) && n < path.len() {
                break;
            }
        }
    }

    /// Walk from the destination to the directory `comps` with `O_NOFOLLOW`, creating
    /// missing directories if `create`. `Ok(None)`: a component is missing.
    fn walk(&mut self, comps: &[Vec<u8>], create: bool) -> Result<Option<Rc<OwnedFd>>, WalkError> {
        if comps.is_empty() {
            return Ok(Some(self.root.clone()));
        }
        if let Some((cached, fd)) = &self.parent_cache {
            if cached.as_slice() == comps {
                return Ok(Some(fd.clone()));
            }
        }
        let mut cur: Rc<OwnedFd> = self.root.clone();
        for (i, c) in comps.iter().enumerate() {
            let next = match open_dir_at(cur.as_fd(), c) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    match rfs::mkdirat(cur.as_fd(), c.as_slice(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(WalkError::Io("create parent directory", e.into())),
                    }
                    let fd = open_dir_at(cur.as_fd(), c)
                        .map_err(|e| WalkError::Io("open parent directory", e.into()))?;
                    // The process umask must not decide implicit directories' modes.
                    rfs::fchmod(&fd, Mode::from_raw_mode(0o755))
                        .map_err(|e| WalkError::Io("set parent directory mode", e.into()))?;
                    if self.opts.whiteouts {
                        self.layer_paths.insert(comps[..=i].to_vec());
                    }
                    fd
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                    return Err(
                        match rfs::statat(cur.as_fd(), c.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                                WalkError::Symlink(i)
                            }
                            Ok(_) => WalkError::NotDir(i),
                            Err(e) => WalkError::Io("inspect parent directory", e.into()),
                        },
                    );
                }
                Err(e) => return Err(WalkError::Io("open parent directory", e.into())),
            };
            cur = Rc::new(next);
        }
        self.parent_cache = Some((comps.to_vec(), cur.clone()));
        Ok(Some(cur))
    }

    /// The parent directory of `path` for writing `name`'s entry, created if missing.
    fn parent_for_write(
        &mut self,
        path: &[Vec<u8>],
        name: &str,
    ) -> Result<Rc<OwnedFd>, ExtractError> {
        let parents = &path[..path.len() - 1];
        match self.walk(parents, true) {
            Ok(Some(fd)) => Ok(fd),
            Ok(None) => Err(ExtractError::Io {
                entry: name.to_string(),
                op: "open parent directory",
                source: io::Error::from(io::ErrorKind::NotFound),
            }),
            Err(e) => Err(self.walk_error(e, parents, name)),
        }
    }

    fn walk_error(&self, e: WalkError, comps: &[Vec<u8>], name: &str) -> ExtractError {
        match e {
            WalkError::Symlink(i) => ExtractError::WriteThroughSymlink {
                entry: name.to_string(),
                link: show(&comps[..=i]),
            },
            WalkError::NotDir(i) => ExtractError::NotADirectory {
                entry: name.to_string(),
                path: show(&comps[..=i]),
            },
            WalkError::Io(op, source) => ExtractError::Io {
                entry: name.to_string(),
                op,
                source,
            },
        }
    }

    /// Remove whatever is at `parent/leaf` (`path`), unless it is a directory and
    /// `keep_dir`. Returns whether a directory was kept.
    fn clear(
        &mut self,
        parent: BorrowedFd<'_>,
        path: &[Vec<u8>],
        keep_dir: bool,
        name: &str,
    ) -> Result<bool, ExtractError> {
        let leaf = path[path.len() - 1].as_slice();
        let io_err = |op, e: Errno| ExtractError::Io {
            entry: name.to_string(),
            op,
            source: e.into(),
        };
        let st = match rfs::statat(parent, leaf, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(io_err("inspect existing file", e)),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            if keep_dir {
                return Ok(true);
            }
            self.forget_dir(path);
            remove_tree(parent, leaf).map_err(|e| io_err("remove existing directory", e))?;
        } else {
            rfs::unlinkat(parent, leaf, AtFlags::empty())
                .map_err(|e| io_err("remove existing file", e))?;
        }
        Ok(false)
    }

    /// A directory at `path` is going away: drop cached descriptors and deferred
    /// metadata for it and everything below it.
    fn forget_dir(&mut self, path: &[Vec<u8>]) {
        self.parent_cache = None;
        self.dirs.retain(|p, _| !p.starts_with(path));
    }

    fn set_owner(&self, fd: BorrowedFd<'_>, meta: &Meta, name: &str) -> Result<(), ExtractError> {
        if !self.opts.preserve_owner {
            return Ok(());
        }
        rfs::fchown(
            fd,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .map_err(|e| ExtractError::Io {
            entry: name.to_string(),
            op: "set owner",
            source: e.into(),
        })
    }

    fn directory(&mut self, path: &[Vec<u8>], name: &str, meta: &Meta) -> Result<(), ExtractError> {
        let io_err = |op, e: Errno| ExtractError::Io {
            entry: name.to_string(),
            op,
            source: e.into(),
        };
        let fd: Rc<OwnedFd> = if path.is_empty() {
            self.root.clone()
        } else {
            let parent = self.parent_for_write(path, name)?;
            let leaf = path[path.len() - 1].as_slice();
            if !self.clear(parent.as_fd(), path, true, name)? {
                rfs::mkdirat(parent.as_fd(), leaf, Mode::from_raw_mode(0o700))
                    .map_err(|e| io_err("create directory", e))?;
            }
            Rc::new(open_dir_at(parent.as_fd(), leaf).map_err(|e| io_err("open directory", e))?)
        };
        self.set_owner(fd.as_fd(), meta, name)?;
        set_xattrs(XattrTarget::Fd(fd.as_fd()), &meta.xattrs, name)?;
        self.dirs.insert(
            path.to_vec(),
            DirMeta {
                mode: meta.mode,
                times: meta.times(),
            },
        );
        Ok(())
    }

    fn regular<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &[Vec<u8>],
        name: &str,
        meta: &Meta,
    ) -> Result<(), ExtractError> {
        let io_err = |op, source: io::Error| ExtractError::Io {
            entry: name.to_string(),
            op,
            source,
        };
        let parent = self.parent_for_write(path, name)?;
        let leaf = path[path.len() - 1].as_slice();
        self.clear(parent.as_fd(), path, false, name)?;
        let fd = rfs::openat(
            parent.as_fd(),
            leaf,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io_err("create file", e.into()))?;
        let mut file = File::from(fd);

        let expected = entry.size();
        let mut written: u64 = 0;
        let buf = &mut self.buf;
        loop {
            let n = match entry.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ExtractError::CorruptEntry {
                        entry: name.to_string(),
                        source,
                    })
                }
            };
            file.write_all(&buf[..n])
                .map_err(|e| io_err("write file", e))?;
            written += n as u64;
        }
        if written != expected {
            return Err(ExtractError::CorruptEntry {
                entry: name.to_string(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the stream ends after {written} of {expected} bytes"),
                ),
            });
        }
        self.stats.bytes += written;

        // Owner first (chown clears setuid bits and file capabilities), then the
        // attributes, then the exact mode, then the times.
        self.set_owner(file.as_fd(), meta, name)?;
        set_xattrs(XattrTarget::Fd(file.as_fd()), &meta.xattrs, name)?;
        rfs::fchmod(&file, Mode::from_raw_mode(meta.mode))
            .map_err(|e| io_err("set mode", e.into()))?;
        rfs::futimens(&file, &meta.times()).map_err(|e| io_err("set times", e.into()))?;
        Ok(())
    }

    fn symlink(
        &mut self,
        path: &[Vec<u8>],
        name: &str,
        target: &[u8],
        meta: &Meta,
    ) -> Result<(), ExtractError> {
        let io_err = |op, e: Errno| ExtractError::Io {
            entry: name.to_string(),
            op,
            source: e.into(),
        };
        let parent = self.parent_for_write(path, name)?;
        let leaf = path[path.len() - 1].as_slice();
        self.clear(parent.as_fd(), path, false, name)?;
        rfs::symlinkat(target, parent.as_fd(), leaf).map_err(|e| io_err("create symlink", e))?;
        if self.opts.preserve_owner {
            rfs::chownat(
                parent.as_fd(),
                leaf,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| io_err("set owner", e))?;
        }
        set_xattrs(XattrTarget::At(parent.as_fd(), leaf), &meta.xattrs, name)?;
        rfs::utimensat(
            parent.as_fd(),
            leaf,
            &meta.times(),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_err("set times", e))?;
        Ok(())
    }

    fn hardlink(
        &mut self,
        path: &[Vec<u8>],
        name: &str,
        raw_target: &[u8],
    ) -> Result<(), ExtractError> {
        let target_name = String::from_utf8_lossy(raw_target).into_owned();
        let outside = || ExtractError::HardlinkOutside {
            entry: name.to_string(),
            target: target_name.clone(),
        };
        let target = match self.relative(raw_target) {
            Some(Some(t)) if !t.is_empty() => t,
            _ => return Err(outside()),
        };
        if target.as_slice() == path {
            // A link to itself: the file is already there.
            return Ok(());
        }
        let target_parent = match self.walk(&target[..target.len() - 1], false) {
            Ok(Some(fd)) => fd,
            Ok(None) => {
                return Err(ExtractError::HardlinkTarget {
                    entry: name.to_string(),
                    target: target_name,
                    source: io::Error::from(io::ErrorKind::NotFound),
                })
            }
            Err(WalkError::Symlink(_)) => return Err(outside()),
            Err(e) => return Err(self.walk_error(e, &target, name)),
        };
        let parent = self.parent_for_write(path, name)?;
        let leaf = path[path.len() - 1].as_slice();
        self.clear(parent.as_fd(), path, false, name)?;
        // Flags empty: a target that is a symlink is linked itself, never followed.
        rfs::linkat(
            target_parent.as_fd(),
            target[target.len() - 1].as_slice(),
            parent.as_fd(),
            leaf,
            AtFlags::empty(),
        )
        .map_err(|e| ExtractError::HardlinkTarget {
            entry: name.to_string(),
            target: target_name,
            source: e.into(),
        })
    }

    fn node(
        &mut self,
        path: &[Vec<u8>],
        name: &str,
        file_type: FileType,
        dev: rfs::Dev,
        meta: &Meta,
    ) -> Result<(), ExtractError> {
        let io_err = |op, e: Errno| ExtractError::Io {
            entry: name.to_string(),
            op,
            source: e.into(),
        };
        let parent = self.parent_for_write(path, name)?;
        let leaf = path[path.len() - 1].as_slice();
        self.clear(parent.as_fd(), path, false, name)?;
        rfs::mknodat(
            parent.as_fd(),
            leaf,
            file_type,
            Mode::from_raw_mode(0o600),
            dev,
        )
        .map_err(|e| io_err("create special file", e))?;
        if self.opts.preserve_owner {
            rfs::chownat(
                parent.as_fd(),
                leaf,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| io_err("set owner", e))?;
        }
        set_xattrs(XattrTarget::At(parent.as_fd(), leaf), &meta.xattrs, name)?;
        // Just created by us with O_EXCL semantics (mknod fails if the name exists), so
        // the name is not a symlink.
        rfs::chmodat(
            parent.as_fd(),
            leaf,
            Mode::from_raw_mode(meta.mode),
            AtFlags::empty(),
        )
        .map_err(|e| io_err("set mode", e))?;
        rfs::utimensat(
            parent.as_fd(),
            leaf,
            &meta.times(),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_err("set times", e))?;
        Ok(())
    }

    fn whiteout(&mut self, path: &[Vec<u8>], name: &str) -> Result<(), ExtractError> {
        let dir = &path[..path.len() - 1];
        let leaf = path[path.len() - 1].as_slice();
        let parent = match self.walk(dir, false) {
            Ok(Some(fd)) => fd,
            // Nothing below a missing directory to delete.
            Ok(None) => return Ok(()),
            Err(e) => return Err(self.walk_error(e, dir, name)),
        };
        if leaf == WHITEOUT_OPAQUE {
            self.parent_cache = None;
            let mut removed = Vec::new();
            opaque(parent.as_fd(), dir, &self.layer_paths, &mut removed).map_err(|e| {
                ExtractError::Io {
                    entry: name.to_string(),
                    op: "empty opaque directory",
                    source: e.into(),
                }
            })?;
            for r in removed {
                self.forget_dir(&r);
            }
            return Ok(());
        }
        if leaf.starts_with(b".wh..wh.") {
            // Other `.wh..wh.` names are aufs bookkeeping, not whiteouts.
            return Ok(());
        }
        let victim = &leaf[WHITEOUT_PREFIX.len()..];
        if victim.is_empty() || victim == b"." || victim == b".." {
            return Err(ExtractError::PathEscapes {
                entry: name.to_string(),
            });
        }
        let mut victim_path = dir.to_vec();
        victim_path.push(victim.to_vec());
        if self.layer_paths.contains(&victim_path) {
            // A whiteout hides lower layers only, never what its own layer adds.
            return Ok(());
        }
        self.clear(parent.as_fd(), &victim_path, false, name)?;
        Ok(())
    }

    /// Apply deferred directory modes and mtimes, deepest first.
    fn finish(&mut self) -> Result<(), ExtractError> {
        let mut dirs: Vec<(Rel, DirMeta)> = self.dirs.drain().collect();
        dirs.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        self.parent_cache = None;
        for (path, meta) in dirs {
            let name = show(&path);
            let fd = match self.walk(&path, false) {
                Ok(Some(fd)) => fd,
                // Replaced by a non-directory since: its metadata no longer applies.
                Ok(None) | Err(WalkError::Symlink(_)) | Err(WalkError::NotDir(_)) => continue,
                Err(e) => return Err(self.walk_error(e, &path, &name)),
            };
            let io_err = |op, e: Errno| ExtractError::Io {
                entry: name.clone(),
                op,
                source: e.into(),
            };
            rfs::fchmod(fd.as_fd(), Mode::from_raw_mode(meta.mode))
                .map_err(|e| io_err("set directory mode", e))?;
            rfs::futimens(fd.as_fd(), &meta.times).map_err(|e| io_err("set directory times", e))?;
        }
        Ok(())
    }
}

fn missing_link_name(entry: String) -> ExtractError {
    ExtractError::BadHeader {
        entry,
        source: io::Error::new(io::ErrorKind::InvalidData, "link entry without a target"),
    }
}

/// Open the directory `name` under `dir` without following a symlink.
pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The names in the directory `fd`, without `.` and `..`.
pub(crate) fn dir_names(fd: BorrowedFd<'_>) -> rustix::io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(fd)? {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    Ok(names)
}

/// Remove `name` under `parent` and, if it is a directory, everything in it, never
/// following symlinks.
pub(crate) fn remove_tree(parent: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<()> {
    let st = rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return rfs::unlinkat(parent, name, AtFlags::empty());
    }
    let fd = open_dir_at(parent, name)?;
    for child in dir_names(fd.as_fd())? {
        remove_tree(fd.as_fd(), &child)?;
    }
    rfs::unlinkat(parent, name, AtFlags::REMOVEDIR)
}

/// Empty the directory `fd` (at `path`) of everything not in `keep`, recursing into
/// kept directories. Removed directories' paths are pushed onto `removed`.
fn opaque(
    fd: BorrowedFd<'_>,
    path: &[Vec<u8>],
    keep: &HashSet<Rel>,
    removed: &mut Vec<Rel>,
) -> rustix::io::Result<()> {
    for child in dir_names(fd)? {
        let mut child_path = path.to_vec();
        child_path.push(child.clone());
        let st = rfs::statat(fd, child.as_slice(), AtFlags::SYMLINK_NOFOLLOW)?;
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        if keep.contains(&child_path) {
            if is_dir {
                let sub = open_dir_at(fd, &child)?;
                opaque(sub.as_fd(), &child_path, keep, removed)?;
            }
        } else {
            remove_tree(fd, &child)?;
            if is_dir {
                removed.push(child_path);
            }
        }
    }
    Ok(())
}

/// Where extended attributes go: an open file, or a name under a directory (for
/// symlinks and special files, which cannot be opened for this).
pub(crate) enum XattrTarget<'a> {
    Fd(BorrowedFd<'a>),
    At(BorrowedFd<'a>, &'a [u8]),
}

/// `/proc/self/fd/<dir>/<name>`: resolves `dir` through its descriptor and `name`
/// inside it, so the `l*xattr` calls act on exactly that name.
pub(crate) fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    p.push(OsStr::from_bytes(name));
    p
}

fn set_xattrs(
    target: XattrTarget<'_>,
    xattrs: &[(Vec<u8>, Vec<u8>)],
    name: &str,
) -> Result<(), ExtractError> {
    for (key, value) in xattrs {
        let res = match &target {
            XattrTarget::Fd(fd) => {
                rfs::fsetxattr(fd, key.as_slice(), value, rfs::XattrFlags::empty())
            }
            XattrTarget::At(dir, leaf) => rfs::lsetxattr(
                proc_path(*dir, leaf),
                key.as_slice(),
                value,
                rfs::XattrFlags::empty(),
            ),
        };
        match res {
            Ok(()) => {}
            Err(Errno::NOTSUP) => {
                tracing::warn!(
                    entry = name,
                    xattr = %String::from_utf8_lossy(key),
                    "the filesystem does not support this extended attribute; not restored"
                );
            }
            Err(e) => {
                return Err(ExtractError::Io {
                    entry: name.to_string(),
                    op: "set extended attribute",
                    source: e.into(),
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    /// Builds tar archives entry by entry, writing names into the header bytes
    /// directly so that hostile names (`..`, absolute) are written as given.
    pub(crate) struct TarBuilder {
        b: tar::Builder<Vec<u8>>,
    }

    pub(crate) const MTIME: u64 = 1_000_000_000;

    impl TarBuilder {
        pub(crate) fn new() -> Self {
            TarBuilder {
                b: tar::Builder::new(Vec::new()),
            }
        }

        fn header(kind: EntryType, path: &str, mode: u32, size: u64) -> tar::Header {
            let mut h = tar::Header::new_gnu();
            let name = path.as_bytes();
            assert!(name.len() < 100, "test names must fit the header");
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(MTIME);
            h.set_size(size);
            h
        }

        fn push(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Self {
            h.set_cksum();
            self.b.append(&h, data).expect("append to a Vec");
            self
        }

        pub(crate) fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
            self.file_owned(path, mode, 0, 0, data)
        }

        pub(crate) fn file_owned(
            &mut self,
            path: &str,
            mode: u32,
            uid: u64,
            gid: u64,
            data: &[u8],
        ) -> &mut Self {
            let mut h = Self::header(EntryType::Regular, path, mode, data.len() as u64);
            h.set_uid(uid);
            h.set_gid(gid);
            self.push(h, data)
        }

        pub(crate) fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
            let h = Self::header(EntryType::Directory, path, mode, 0);
            self.push(h, &[])
        }

        fn link(&mut self, kind: EntryType, path: &str, target: &str) -> &mut Self {
            let mut h = Self::header(kind, path, 0o777, 0);
            let t = target.as_bytes();
            assert!(t.len() < 100, "test link targets must fit the header");
            h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
            self.push(h, &[])
        }

        pub(crate) fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
            self.link(EntryType::Symlink, path, target)
        }

        pub(crate) fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
            self.link(EntryType::Link, path, target)
        }

        pub(crate) fn device(
            &mut self,
            kind: EntryType,
            path: &str,
            mode: u32,
            major: u32,
            minor: u32,
        ) -> &mut Self {
            let mut h = Self::header(kind, path, mode, 0);
            h.set_device_major(major).expect("gnu header");
            h.set_device_minor(minor).expect("gnu header");
            self.push(h, &[])
        }

        pub(crate) fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
            self.b
                .append_pax_extensions(records.iter().copied())
                .expect("append to a Vec");
            self
        }

        pub(crate) fn finish(self) -> Vec<u8> {
            self.b.into_inner().expect("finish a Vec")
        }
    }

    /// `<tmp>/dest` to extract into and `<tmp>/sentinel/victim`, which nothing may
    /// touch.
    struct Sandbox {
        tmp: tempfile::TempDir,
    }

    const VICTIM: &[u8] = b"original";

    impl Sandbox {
        fn new() -> Self {
            let tmp = tempfile::tempdir().expect("tempdir");
            fs::create_dir(tmp.path().join("dest")).expect("mkdir dest");
            fs::create_dir(tmp.path().join("sentinel")).expect("mkdir sentinel");
            fs::write(tmp.path().join("sentinel/victim"), VICTIM).expect("write victim");
            Sandbox { tmp }
        }
        fn dest(&self) -> PathBuf {
            self.tmp.path().join("dest")
        }
        fn sentinel(&self) -> PathBuf {
            self.tmp.path().join("sentinel")
        }
        fn unpack(&self, tar: &[u8]) -> Result<UnpackStats, ExtractError> {
            unpack(tar, &self.dest(), &UnpackOptions::default())
        }
        /// Nothing was created, changed or linked outside `dest`.
        fn assert_contained(&self) {
            assert_eq!(names(self.tmp.path()), ["dest", "sentinel"]);
            assert_eq!(names(&self.sentinel()), ["victim"]);
            let victim = self.sentinel().join("victim");
            assert_eq!(fs::read(&victim).expect("read victim"), VICTIM);
            let m = fs::symlink_metadata(&victim).expect("stat victim");
            assert_eq!(m.nlink(), 1, "victim was hardlinked");
            assert_eq!(m.mode() & 0o7777, 0o644 & !umask_bits());
        }
    }

    use std::fs;

    fn umask_bits() -> u32 {
        // Only to predict the victim's mode: create a probe and read back its mode.
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("probe");
        fs::write(&p, b"").expect("probe");
        !fs::metadata(&p).expect("probe").mode() & 0o666
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn xattrs_supported(dir: &Path) -> bool {
        let p = dir.join(".xattr-probe");
        fs::write(&p, b"").expect("probe");
        let ok = rfs::setxattr(&p, "user.probe", b"1", rfs::XattrFlags::empty()).is_ok();
        fs::remove_file(&p).expect("remove probe");
        ok
    }

    #[test]
    fn round_trip_reproduces_metadata() {
        let sb = Sandbox::new();
        let dest = sb.dest();
        let with_xattrs = xattrs_supported(&dest);
        if !with_xattrs {
            eprintln!(
                "SKIPPING the xattr part: {} has no user xattrs",
                dest.display()
            );
        }
        let mut t = TarBuilder::new();
        t.dir("./", 0o755)
            .dir("bin/", 0o755)
            .file_owned("bin/busybox", 0o4755, 1000, 1000, b"#!busybox")
            .symlink("bin/sh", "busybox")
            .symlink("bin/abs", "/bin/busybox")
            .hardlink("bin/hard", "bin/busybox")
            .dir("dev/", 0o755)
            .device(EntryType::Char, "dev/null", 0o666, 1, 3)
            .device(EntryType::Block, "dev/loop9", 0o660, 7, 9)
            .dir("run/", 0o1777)
            .device(EntryType::Fifo, "run/fifo", 0o600, 0, 0)
            .dir("ro/", 0o555)
            .file("ro/inside", 0o444, b"child of a read-only dir")
            .file_owned("sgid", 0o2750, 0, 1000, b"x");
        if with_xattrs {
            t.pax(&[("SCHILY.xattr.user.test", b"hello")]);
        }
        t.file("etc-attr", 0o640, b"attributed");
        let tar = t.finish();

        let stats = sb.unpack(&tar).expect("unpack");
        assert_eq!(stats.entries, 15);
        assert_eq!(stats.bytes, (9 + 24 + 1 + 10) as u64);

        let meta = |p: &str| fs::symlink_metadata(dest.join(p)).expect(p);
        let bb = meta("bin/busybox");
        assert!(bb.is_file());
        assert_eq!(bb.mode() & 0o7777, 0o4755, "setuid kept after chown");
        assert_eq!((bb.uid(), bb.gid()), (1000, 1000));
        assert_eq!(bb.mtime(), MTIME as i64);
        assert_eq!(
            fs::read(dest.join("bin/busybox")).expect("read"),
            b"#!busybox"
        );

        assert!(meta("bin/sh").file_type().is_symlink());
        assert_eq!(
            fs::read_link(dest.join("bin/sh")).expect("readlink"),
            Path::new("busybox")
        );
        assert_eq!(
            fs::read_link(dest.join("bin/abs")).expect("readlink"),
            Path::new("/bin/busybox")
        );
        assert_eq!(meta("bin/sh").mtime(), MTIME as i64);

        assert_eq!(
            meta("bin/hard").ino(),
            bb.ino(),
            "hardlink shares the inode"
        );
        assert_eq!(meta("bin/hard").nlink(), 2);

        let null = meta("dev/null");
        assert!(null.file_type().is_char_device());
        assert_eq!((rfs::major(null.rdev()), rfs::minor(null.rdev())), (1, 3));
        assert_eq!(null.mode() & 0o7777, 0o666);
        let blk = meta("dev/loop9");
        assert!(blk.file_type().is_block_device());
        assert_eq!((rfs::major(blk.rdev()), rfs::minor(blk.rdev())), (7, 9));
        assert!(meta("run/fifo").file_type().is_fifo());
        assert_eq!(meta("run/fifo").mode() & 0o7777, 0o600);
        assert_eq!(meta("run").mode() & 0o7777, 0o1777, "sticky bit");

        assert_eq!(
            meta("ro").mode() & 0o7777,
            0o555,
            "applied after its children"
        );
        assert_eq!(
            meta("ro").mtime(),
            MTIME as i64,
            "not disturbed by children"
        );
        assert_eq!(meta("ro/inside").mode() & 0o7777, 0o444);
        assert_eq!(meta("bin").mtime(), MTIME as i64);
        assert_eq!(meta("sgid").mode() & 0o7777, 0o2750);
        assert_eq!(meta("sgid").gid(), 1000);

        if with_xattrs {
            let mut buf = vec![0u8; 64];
            let n = rfs::getxattr(dest.join("etc-attr"), "user.test", &mut buf).expect("xattr");
            assert_eq!(&buf[..n], b"hello");
        }
        sb.assert_contained();
    }

    #[test]
    fn owner_not_restored_when_disabled() {
        let sb = Sandbox::new();
        let mut t = TarBuilder::new();
        t.file_owned("f", 0o4755, 1000, 1000, b"x");
        let opts = UnpackOptions {
            preserve_owner: false,
            ..UnpackOptions::default()
        };
        unpack(&t.finish()[..], &sb.dest(), &opts).expect("unpack");
        let m = fs::metadata(sb.dest().join("f")).expect("stat");
        assert_eq!((m.uid(), m.gid()), (0, 0));
        assert_eq!(m.mode() & 0o7777, 0o4755);
    }

    #[test]
    fn strip_prefix_extracts_only_the_rootfs() {
        let sb = Sandbox::new();
        let mut t = TarBuilder::new();
        t.file("manifest", 0o644, b"{}")
            .dir("rootfs/", 0o755)
            .file("./rootfs/etc/os-release", 0o644, b"ID=test")
            .file("rootfsx/nope", 0o644, b"not under the prefix")
            .hardlink("rootfs/etc/again", "./rootfs/etc/os-release");
        let opts = UnpackOptions::aci_rootfs();
        let stats = unpack(&t.finish()[..], &sb.dest(), &opts).expect("unpack");
        assert_eq!(stats.entries, 3);
        assert_eq!(names(&sb.dest()), ["etc"]);
        assert_eq!(names(&sb.dest().join("etc")), ["again", "os-release"]);
        assert_eq!(
            fs::read(sb.dest().join("etc/os-release")).expect("read"),
            b"ID=test"
        );
    }

    #[test]
    fn hardlink_outside_the_prefix_is_refused() {
        let sb = Sandbox::new();
        let mut t = TarBuilder::new();
        t.file("manifest", 0o644, b"{}")
            .hardlink("rootfs/m", "manifest");
        let err = unpack(&t.finish()[..], &sb.dest(), &UnpackOptions::aci_rootfs())
            .expect_err("link to a file outside rootfs");
        assert!(
            matches!(&err, ExtractError::HardlinkOutside { entry, target }
                if entry == "rootfs/m" && target == "manifest"),
            "{err}"
        );
    }

    /// Unpack `tar` in a fresh sandbox, expect an error naming `entry`, and check
    /// nothing escaped.
    fn refused(tar: &[u8], entry: &str) -> ExtractError {
        let sb = Sandbox::new();
        let err = sb.unpack(tar).expect_err("hostile archive must be refused");
        assert!(
            err.to_string().contains(entry),
            "error {err:?} does not name {entry}"
        );
        sb.assert_contained();
        err
    }

    #[test]
    fn dotdot_entries_are_refused() {
        for name in ["../evil", "a/../../evil", "./../sentinel/victim", "a/.."] {
            let mut t = TarBuilder::new();
            t.file("ok", 0o644, b"fine").file(name, 0o644, b"evil");
            let err = refused(&t.finish(), name);
            assert!(
                matches!(err, ExtractError::PathEscapes { .. }),
                "{name}: {err:?}"
            );
        }
    }

    #[test]
    fn absolute_entries_are_refused() {
        let sb = Sandbox::new();
        let target = sb.sentinel().join("evil");
        let target = target.to_str().expect("utf-8 temp path");
        let mut t = TarBuilder::new();
        t.file(target, 0o644, b"evil");
        let err = refused(&t.finish(), target);
        assert!(matches!(err, ExtractError::PathEscapes { .. }), "{err:?}");
        assert!(!Path::new(target).exists());
    }

    #[test]
    fn pax_path_with_dotdot_is_refused() {
        let mut t = TarBuilder::new();
        t.pax(&[("path", b"../sentinel/victim")])
            .file("harmless", 0o644, b"evil");
        let err = refused(&t.finish(), "../sentinel/victim");
        assert!(matches!(err, ExtractError::PathEscapes { .. }), "{err:?}");
    }

    #[test]
    fn writing_through_a_symlink_is_refused() {
        // `None`: the sandbox's sentinel directory, absolute.
        for (link, target) in [("link", None), ("up", Some("..")), ("root", Some("/"))] {
            let sb = Sandbox::new();
            let sentinel = sb.sentinel();
            let target = target.unwrap_or_else(|| sentinel.to_str().expect("utf-8"));
            let entry = format!("{link}/victim");
            let mut t = TarBuilder::new();
            t.symlink(link, target).file(&entry, 0o644, b"pwned");
            let err = sb.unpack(&t.finish()).expect_err("write through a symlink");
            assert!(
                matches!(&err, ExtractError::WriteThroughSymlink { entry: e, link: l }
                    if *e == entry && l == link),
                "{err:?}"
            );
            sb.assert_contained();
        }

        // Deeper: a symlinked directory in the middle of the path.
        let sb = Sandbox::new();
        let mut t = TarBuilder::new();
        t.dir("a/", 0o755)
            .symlink("a/b", "../..")
            .file("a/b/sentinel/victim", 0o644, b"pwned");
        let err = sb.unpack(&t.finish()).expect_err("symlink in the middle");
        assert!(
            matches!(&err, ExtractError::WriteThroughSymlink { link, .. } if link == "a/b"),
            "{err:?}"
        );
        sb.assert_contained();
    }

    #[test]
    fn hostile_hardlinks_are_refused() {
        for target in ["../../outside", "/etc/passwd", "../sentinel/victim"] {
            let mut t = TarBuilder::new();
            t.hardlink("h", target);
            let err = refused(&t.finish(), "h");
            assert!(
                matches!(&err, ExtractError::HardlinkOutside { entry, target: t }
                    if entry == "h" && t == target),
                "{err:?}"
            );
        }

        // A hardlink whose target is reached through a symlink.
        let sb = Sandbox::new();
        let sentinel = sb.sentinel();
        let mut t = TarBuilder::new();
        t.symlink("s", sentinel.to_str().expect("utf-8"))
            .hardlink("h", "s/victim");
        let err = sb.unpack(&t.finish()).expect_err("link through a symlink");
        assert!(
            matches!(err, ExtractError::HardlinkOutside { .. }),
            "{err:?}"
        );
        sb.assert_contained();

        // A hardlink to a missing file.
        let mut t = TarBuilder::new();
        t.hardlink("h", "missing");
        let err = refused(&t.finish(), "h");
        assert!(
            matches!(err, ExtractError::HardlinkTarget { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn symlink_then_hardlink_chain_writes_nothing_outside() {
        let sb = Sandbox::new();
        let victim = sb.sentinel().join("victim");
        let mut t = TarBuilder::new();
        // `h` becomes a second name of the symlink itself, not of its target; the
        // later regular entries replace the names instead of writing through them.
        t.symlink("s", victim.to_str().expect("utf-8"))
            .hardlink("h", "s")
            .file("h", 0o644, b"pwned via h")
            .file("s", 0o644, b"pwned via s");
        sb.unpack(&t.finish()).expect("safe archive");
        sb.assert_contained();
        let dest = sb.dest();
        assert!(fs::symlink_metadata(dest.join("h")).expect("h").is_file());
        assert_eq!(fs::read(dest.join("s")).expect("s"), b"pwned via s");
    }

    #[test]
    fn directory_entry_replaces_a_symlink() {
        let sb = Sandbox::new();
        let sentinel = sb.sentinel();
        let mut t = TarBuilder::new();
        t.symlink("d", sentinel.to_str().expect("utf-8"))
            .dir("d/", 0o700)
            .file("d/victim", 0o644, b"pwned")
            .symlink("f", sentinel.join("victim").to_str().expect("utf-8"))
            .device(EntryType::Fifo, "f", 0o600, 0, 0);
        sb.unpack(&t.finish()).expect("safe archive");
        sb.assert_contained();
        let d = fs::symlink_metadata(sb.dest().join("d")).expect("d");
        assert!(d.is_dir());
        assert_eq!(d.mode() & 0o7777, 0o700);
        assert!(fs::symlink_metadata(sb.dest().join("f"))
            .expect("f")
            .file_type()
            .is_fifo());
    }

    #[test]
    fn later_entries_replace_earlier_ones() {
        let sb = Sandbox::new();
        let mut t = TarBuilder::new();
        t.file("x", 0o644, b"first")
            .file("x", 0o600, b"second")
            .dir("d/", 0o755)
            .file("d/inner", 0o644, b"gone")
            .file("d", 0o644, b"now a file")
            .symlink("l", "target")
            .dir("l/", 0o755);
        sb.unpack(&t.finish()).expect("unpack");
        let dest = sb.dest();
        assert_eq!(fs::read(dest.join("x")).expect("x"), b"second");
        assert_eq!(
            fs::metadata(dest.join("x"))
                .expect("x")
                .permissions()
                .mode()
                & 0o7777,
            0o600
        );
        assert_eq!(fs::read(dest.join("d")).expect("d"), b"now a file");
        assert!(fs::symlink_metadata(dest.join("l")).expect("l").is_dir());
    }

    #[test]
    fn file_replacing_the_root_is_refused() {
        let sb = Sandbox::new();
        let mut t = TarBuilder::new();
        t.file("rootfs", 0o644, b"not a dir");
        let err = unpack(&t.finish()[..], &sb.dest(), &UnpackOptions::aci_rootfs())
            .expect_err("root replaced");
        assert!(matches!(err, ExtractError::ReplacesRoot { .. }), "{err:?}");
    }

    fn big_archive() -> Vec<u8> {
        let mut t = TarBuilder::new();
        t.file("first", 0o644, b"small")
            .file("big", 0o644, &vec![7u8; 10_000])
            .file("last", 0o644, b"tail");
        t.finish()
    }

    #[test]
    fn truncated_tar_is_an_error() {
        let tar = big_archive();
        // Inside `big`'s data, at a header of `last`, and just before the end marker.
        let big_data = 512 * 3;
        let last_header = 512 * 3 + 10_240;
        let end_marker = last_header + 1024;
        for cut in [
            0,
            100,
            big_data + 3000,
            last_header,
            last_header + 200,
            end_marker,
        ] {
            let sb = Sandbox::new();
            let err = sb.unpack(&tar[..cut]).expect_err("truncated");
            assert!(
                matches!(
                    err,
                    ExtractError::Corrupt { .. } | ExtractError::CorruptEntry { .. }
                ),
                "cut at {cut}: {err:?}"
            );
            if cut == big_data + 3000 {
                assert!(err.to_string().contains("big"), "names the entry: {err}");
            }
            sb.assert_contained();
        }
        // The intact archive extracts.
        let sb = Sandbox::new();
        sb.unpack(&tar).expect("intact archive");
        assert_eq!(names(&sb.dest()), ["big", "first", "last"]);
    }

    #[test]
    fn truncated_or_corrupt_gzip_is_an_error() {
        use flate2::{read::GzDecoder, write::GzEncoder, Compression};
        let tar = big_archive();
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&tar).expect("gzip");
        let gz = enc.finish().expect("gzip");

        let sb = Sandbox::new();
        sb.unpack(&tar).expect("plain");
        let sb = Sandbox::new();
        unpack(
            GzDecoder::new(&gz[..]),
            &sb.dest(),
            &UnpackOptions::default(),
        )
        .expect("gzip");

        for cut in [gz.len() / 2, gz.len() - 4] {
            let sb = Sandbox::new();
            let err = unpack(
                GzDecoder::new(&gz[..cut]),
                &sb.dest(),
                &UnpackOptions::default(),
            )
            .expect_err("truncated gzip");
            assert!(
                matches!(
                    err,
                    ExtractError::Corrupt { .. } | ExtractError::CorruptEntry { .. }
                ),
                "cut at {cut}: {err:?}"
            );
            sb.assert_contained();
        }
        // A damaged CRC trailer is caught by reading the stream to its end.
        let mut bad = gz.clone();
        let n = bad.len();
        bad[n - 8] ^= 0xff;
        let sb = Sandbox::new();
        let err = unpack(
            GzDecoder::new(&bad[..]),
            &sb.dest(),
            &UnpackOptions::default(),
        )
        .expect_err("bad crc");
        assert!(matches!(err, ExtractError::Corrupt { .. }), "{err:?}");
    }

    fn whiteout_opts() -> UnpackOptions {
        UnpackOptions {
            whiteouts: true,
            ..UnpackOptions::default()
        }
    }

    #[test]
    fn whiteouts_remove_lower_files_and_opaque_dirs() {
        let sb = Sandbox::new();
        let dest = sb.dest();
        let mut lower = TarBuilder::new();
        lower
            .file("a/keep", 0o644, b"k")
            .file("a/gone", 0o644, b"g")
            .file("a/gonedir/deep", 0o644, b"g")
            .file("d/old1", 0o644, b"o")
            .file("d/sub/old2", 0o644, b"o")
            .file("d/sub2/old3", 0o644, b"o");
        unpack(&lower.finish()[..], &dest, &whiteout_opts()).expect("lower");

        let mut upper = TarBuilder::new();
        upper
            .file("a/.wh.gone", 0o644, b"")
            .file("a/.wh.gonedir", 0o644, b"")
            .file("a/.wh.never-existed", 0o644, b"")
            .file("d/new", 0o644, b"n")
            .file("d/.wh..wh..opq", 0o644, b"")
            .file("d/sub2/new2", 0o644, b"n")
            .file("missing/.wh.x", 0o644, b"");
        unpack(&upper.finish()[..], &dest, &whiteout_opts()).expect("upper");

        assert_eq!(names(&dest.join("a")), ["keep"]);
        assert_eq!(names(&dest.join("d")), ["new", "sub2"]);
        assert_eq!(
            names(&dest.join("d/sub2")),
            ["new2"],
            "lower content of an added dir is gone too"
        );
        assert!(!dest.join("missing").exists(), "whiteouts create nothing");
        sb.assert_contained();
    }

    #[test]
    fn whiteout_does_not_remove_its_own_layer() {
        let sb = Sandbox::new();
        let mut t = TarBuilder::new();
        t.file("x", 0o644, b"same layer").file(".wh.x", 0o644, b"");
        unpack(&t.finish()[..], &sb.dest(), &whiteout_opts()).expect("unpack");
        assert_eq!(names(&sb.dest()), ["x"]);
    }

    #[test]
    fn whiteout_through_a_symlink_is_refused() {
        let sb = Sandbox::new();
        let sentinel = sb.sentinel();
        let mut t = TarBuilder::new();
        t.symlink("s", sentinel.to_str().expect("utf-8"))
            .file("s/.wh.victim", 0o644, b"")
            .file("s/.wh..wh..opq", 0o644, b"");
        let err = unpack(&t.finish()[..], &sb.dest(), &whiteout_opts()).expect_err("through link");
        assert!(
            matches!(&err, ExtractError::WriteThroughSymlink { entry, .. } if entry == "s/.wh.victim"),
            "{err:?}"
        );
        sb.assert_contained();
    }

    #[test]
    fn whiteout_names_are_plain_files_without_the_option() {
        let sb = Sandbox::new();
        let mut t = TarBuilder::new();
        t.file(".wh.x", 0o644, b"");
        sb.unpack(&t.finish()).expect("unpack");
        assert_eq!(names(&sb.dest()), [".wh.x"]);
    }

    #[test]
    fn only_user_capability_and_acl_xattrs_are_allowed() {
        for ok in [
            &b"user.x"[..],
            b"user.mime_type",
            b"security.capability",
            b"system.posix_acl_access",
            b"system.posix_acl_default",
        ] {
            assert!(xattr_allowed(ok), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b"trusted.overlay.opaque"[..],
            b"trusted.overlay.redirect",
            b"trusted.overlay.metacopy",
            b"trusted.overlay.origin",
            b"trusted.x",
            b"security.selinux",
            b"security.ima",
            b"security.evm",
            b"security.capability.x",
            b"system.nfs4_acl",
            b"user.",
            b"user",
            b"",
        ] {
            assert!(!xattr_allowed(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    /// A `security.capability` value: revision 2, effective, `CAP_NET_BIND_SERVICE`.
    const FILE_CAP: &[u8] = &[
        0x01, 0, 0, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    fn xattr_names(path: &Path) -> Vec<String> {
        let mut buf = vec![0u8; 4096];
        let n = rfs::llistxattr(path, &mut buf).expect("listxattr");
        buf[..n]
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect()
    }

    fn getxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 4096];
        match rfs::lgetxattr(path, name, &mut buf) {
            Ok(n) => Some(buf[..n].to_vec()),
            Err(Errno::NODATA) => None,
            Err(e) => panic!("getxattr {} {name}: {e}", path.display()),
        }
    }

    #[test]
    fn overlay_and_other_trusted_or_security_xattrs_are_dropped() {
        if !rustix::process::geteuid().is_root() {
            eprintln!(
                "SKIPPED overlay_and_other_trusted_or_security_xattrs_are_dropped: needs root"
            );
            return;
        }
        let sb = Sandbox::new();
        let dest = sb.dest();
        let dropped: &[(&str, &[u8])] = &[
            ("trusted.overlay.opaque", b"y"),
            ("trusted.overlay.redirect", b"/etc"),
            ("security.selinux", b"system_u:object_r:shadow_t:s0"),
            ("trusted.x", b"1"),
        ];
        // Control: this filesystem takes every one of them from root, so only the
        // filter can keep them off the extracted files.
        let probe = sb.tmp.path().join("probe");
        fs::write(&probe, b"").expect("probe");
        for (k, v) in dropped {
            rfs::setxattr(&probe, *k, v, rfs::XattrFlags::empty())
                .unwrap_or_else(|e| panic!("the filesystem refuses {k} from root: {e}"));
            assert_eq!(getxattr(&probe, k).as_deref(), Some(*v), "{k}");
        }
        fs::remove_file(&probe).expect("remove probe");

        let pax = |extra: &[(&str, &[u8])]| -> Vec<(String, Vec<u8>)> {
            dropped
                .iter()
                .chain(extra)
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.to_vec()))
                .collect()
        };
        let mut t = TarBuilder::new();
        let dir_records = pax(&[("user.x", b"dir")]);
        let dir_refs: Vec<(&str, &[u8])> = dir_records
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        t.pax(&dir_refs).dir("hidden/", 0o755);
        let file_records = pax(&[("user.x", b"file"), ("security.capability", FILE_CAP)]);
        let file_refs: Vec<(&str, &[u8])> = file_records
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        t.pax(&file_refs).file("ping", 0o755, b"#!ping");
        sb.unpack(&t.finish()).expect("unpack");

        let dir = dest.join("hidden");
        assert_eq!(xattr_names(&dir), ["user.x"]);
        assert_eq!(getxattr(&dir, "user.x").as_deref(), Some(&b"dir"[..]));
        let file = dest.join("ping");
        let mut names = xattr_names(&file);
        names.sort();
        assert_eq!(names, ["security.capability", "user.x"]);
        assert_eq!(getxattr(&file, "user.x").as_deref(), Some(&b"file"[..]));
        assert_eq!(
            getxattr(&file, "security.capability").as_deref(),
            Some(FILE_CAP)
        );
        for path in [&dir, &file] {
            for (k, _) in dropped {
                assert_eq!(getxattr(path, k), None, "{k} on {}", path.display());
            }
        }
    }

    #[test]
    fn pax_time_parsing() {
        assert_eq!(
            parse_pax_time(b"1700000000.5"),
            Some(Timespec {
                tv_sec: 1_700_000_000,
                tv_nsec: 500_000_000
            })
        );
        assert_eq!(
            parse_pax_time(b"12"),
            Some(Timespec {
                tv_sec: 12,
                tv_nsec: 0
            })
        );
        assert_eq!(parse_pax_time(b"-1"), None);
        assert_eq!(parse_pax_time(b"1.x"), None);
    }
}
