//! Who can write the files that decide what runs as root.
//!
//! Whoever can write a manifest into the pods dir, a key into `trustedkeys` or a
//! network configuration into `net.d` can run anything as root on this host (a pod
//! with `privileged: true` and a `hostPath` of `/`, an image signed by their own key,
//! a "CNI plugin" of their choosing). So each of these, every directory above it up to
//! `/`, and every file directly in it, must be writable by root alone: owned by root
//! and not writable by group or others. An ancestor with the sticky bit set (`/tmp`)
//! is fine when it is owned by root: others cannot rename or remove root's entries in
//! it.
//!
//! Paths that do not exist are skipped (their nearest existing ancestor is checked,
//! since whoever can create the directory there chooses its contents).
//!
//! The other way round, what rkt writes must not be readable by other users: the image
//! store holds rendered trees with images' setuid binaries and device nodes, and pod
//! directories hold the apps' files. [`private_dir`] creates `<dir>/cas` and
//! `<dir>/pods` with mode 0700 and closes them again (root-owned, 0700) when found open,
//! each time the store or the pods dir is opened.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

const GROUP_WRITE: u32 = 0o020;
const OTHER_WRITE: u32 = 0o002;
const STICKY: u32 = 0o1000;

/// One path that someone other than root can change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: PathBuf,
    /// What protects it too little, e.g. `owned by uid 1000`, `writable by others`.
    pub problem: String,
    /// What the path is for: `pods dir`, `trust dir`, `network configuration dir`.
    pub role: &'static str,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) is {}: anyone who can write there can run anything as root here",
            self.path.display(),
            self.role,
            self.problem
        )
    }
}

/// Why `meta` lets a non-root user change what it is, if it does. `ancestor`: a
/// directory above the checked one, where a root-owned sticky directory is fine.
fn weakness(meta: &fs::Metadata, ancestor: bool) -> Option<String> {
    let mode = meta.mode();
    let mut why = Vec::new();
    if meta.uid() != 0 {
        why.push(format!("owned by uid {}", meta.uid()));
    }
    let sticky_root = ancestor && meta.is_dir() && mode & STICKY != 0 && meta.uid() == 0;
    if !sticky_root {
        if mode & GROUP_WRITE != 0 && meta.gid() != 0 {
            why.push(format!("writable by group {}", meta.gid()));
        }
        if mode & OTHER_WRITE != 0 {
            why.push("writable by others".to_string());
        }
    }
    (!why.is_empty()).then(|| why.join(", "))
}

/// Check `dir` (the directory as given and, for a symlink, what it points to), the
/// directories above both, and the files directly in it.
pub fn check_dir(dir: &Path, role: &'static str) -> io::Result<Vec<Finding>> {
    let mut out = Vec::new();
    let mut seen = Vec::<PathBuf>::new();
    let mut push = |out: &mut Vec<Finding>, path: &Path, problem: String| {
        if !seen.iter().any(|p| p == path) {
            seen.push(path.to_path_buf());
            out.push(Finding {
                path: path.to_path_buf(),
                problem,
                role,
            });
        }
    };
    let absolute = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()?.join(dir)
    };
    // The chain as given (a symlink itself cannot be chmod'ed, but the directory
    // holding it decides who can swap it), then the resolved chain.
    let mut chains = vec![absolute.clone()];
    match fs::canonicalize(&absolute) {
        Ok(real) if real != absolute => chains.push(real),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    for chain in &chains {
        let mut first = true;
        for p in chain.ancestors() {
            let meta = match fs::symlink_metadata(p) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if meta.file_type().is_symlink() {
                // A link's own mode means nothing; its owner can replace it only if
                // the directory holding it allows, which the next step checks.
                first = false;
                continue;
            }
            if let Some(problem) = weakness(&meta, !first) {
                push(&mut out, p, problem);
            }
            first = false;
        }
    }
    let entries = match fs::read_dir(&absolute) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    for path in files {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        // Files a reader follows: regular files and what symlinks point to.
        let meta = if meta.file_type().is_symlink() {
            match fs::metadata(&path) {
                Ok(m) => m,
                Err(_) => continue,
            }
        } else {
            meta
        };
        if meta.is_file() || meta.is_dir() {
            if let Some(problem) = weakness(&meta, false) {
                push(&mut out, &path, problem);
            }
        }
    }
    Ok(out)
}

/// Check several `(dir, role)` pairs; a directory that cannot be inspected is a
/// finding of its own.
pub fn check_all(dirs: &[(PathBuf, &'static str)]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (dir, role) in dirs {
        match check_dir(dir, role) {
            Ok(f) => out.extend(f),
            Err(e) => out.push(Finding {
                path: dir.clone(),
                problem: format!("not inspectable ({e})"),
                role,
            }),
        }
    }
    out
}

/// Mode of the roots of rkt's private data: `<dir>/cas` (images, rendered trees with
/// their setuid binaries and device nodes) and `<dir>/pods` (pods' files and mounts).
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// A private root that rkt found open to other users and closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tightened {
    pub path: PathBuf,
    /// What the directory is: `image store`, `pods dir`.
    pub role: &'static str,
    /// What was wrong, e.g. `mode 0755`, `owned by uid 1000, mode 0775`.
    pub was: String,
}

impl fmt::Display for Tightened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) was open to other users ({}); now owned by root, mode 0700",
            self.path.display(),
            self.role,
            self.was
        )
    }
}

/// Create `dir` with mode 0700 if it does not exist (its parents as usual), else
/// [`close_private_dir`] it.
pub fn private_dir(dir: &Path, role: &'static str) -> io::Result<Option<Tightened>> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(PRIVATE_DIR_MODE).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    close_private_dir(dir, role)
}

/// Make an existing `dir` (a symlink is followed) readable, writable and searchable by
/// its owner only, and, when running as root, owned by root. Returns what had to change;
/// `None` when it was already so or does not exist.
pub fn close_private_dir(dir: &Path, role: &'static str) -> io::Result<Option<Tightened>> {
    use rustix::fs::{fchmod, fchown, fstat, open, Gid, Mode, OFlags, Uid};
    let fd = match open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let st = fstat(&fd)?;
    let mode = st.st_mode & 0o7777;
    let as_root = rustix::process::geteuid().is_root();
    let mut was = Vec::new();
    if as_root && st.st_uid != 0 {
        was.push(format!("owned by uid {}", st.st_uid));
        // chown clears setuid/setgid bits; the mode is set next anyway.
        fchown(&fd, Some(Uid::ROOT), Some(Gid::ROOT))?;
    }
    if mode & !PRIVATE_DIR_MODE != 0 || !was.is_empty() {
        if mode & !PRIVATE_DIR_MODE != 0 {
            was.push(format!("mode {mode:04o}"));
        }
        fchmod(&fd, Mode::from_raw_mode(mode & PRIVATE_DIR_MODE))?;
    }
    Ok((!was.is_empty()).then(|| Tightened {
        path: dir.to_path_buf(),
        role,
        was: was.join(", "),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_private_dir_is_created_0700_and_loosened_ones_are_closed() {
        let tmp = tempfile::tempdir().unwrap();
        let cas = tmp.path().join("data/cas");
        assert_eq!(private_dir(&cas, "image store").unwrap(), None);
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&cas), 0o700);
        // Already private: nothing to do, and owner bits below rwx stay as they are.
        chmod(&cas, 0o500);
        assert_eq!(close_private_dir(&cas, "image store").unwrap(), None);
        assert_eq!(mode(&cas), 0o500);
        for loose in [0o755, 0o750, 0o701, 0o1777, 0o2770] {
            chmod(&cas, loose);
            let t = private_dir(&cas, "image store")
                .unwrap()
                .expect("tightened");
            assert_eq!(mode(&cas), loose & 0o700, "from {loose:o}");
            assert_eq!(t.path, cas);
            assert_eq!(t.was, format!("mode {loose:04o}"));
            assert!(
                t.to_string()
                    .contains("(image store) was open to other users"),
                "{t}"
            );
        }
        // Through a symlink, the target is closed.
        let real = tmp.path().join("real-pods");
        fs::create_dir(&real).unwrap();
        chmod(&real, 0o755);
        let link = tmp.path().join("data/pods");
        symlink(&real, &link).unwrap();
        assert!(close_private_dir(&link, "pods dir").unwrap().is_some());
        assert_eq!(mode(&real), 0o700);
        // Missing: nothing to close, nothing created.
        let missing = tmp.path().join("nope");
        assert_eq!(close_private_dir(&missing, "pods dir").unwrap(), None);
        assert!(!missing.exists());
    }

    #[test]
    fn a_private_dir_owned_by_another_user_is_given_back_to_root() {
        if !is_root() {
            eprintln!(
                "SKIPPED a_private_dir_owned_by_another_user_is_given_back_to_root: needs root"
            );
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let pods = tmp.path().join("pods");
        fs::create_dir(&pods).unwrap();
        chmod(&pods, 0o700);
        rustix::fs::chown(
            &pods,
            Some(rustix::fs::Uid::from_raw(1000)),
            Some(rustix::fs::Gid::from_raw(1000)),
        )
        .unwrap();
        let t = private_dir(&pods, "pods dir").unwrap().expect("tightened");
        assert_eq!(t.was, "owned by uid 1000");
        let m = fs::metadata(&pods).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 0, 0o700));
    }

    #[test]
    fn root_only_dirs_pass_and_each_weakness_is_named() {
        if !is_root() {
            eprintln!("SKIPPED root_only_dirs_pass_and_each_weakness_is_named: needs root");
            return;
        }
        // Under /tmp (root-owned, sticky): fine as an ancestor.
        let tmp = tempfile::tempdir().unwrap();
        let pods = tmp.path().join("pods.d");
        fs::create_dir(&pods).unwrap();
        chmod(&pods, 0o755);
        fs::write(pods.join("web.yaml"), "x").unwrap();
        chmod(&pods.join("web.yaml"), 0o644);
        assert_eq!(check_dir(&pods, "pods dir").unwrap(), vec![]);

        // The dir writable by others.
        chmod(&pods, 0o777);
        let f = check_dir(&pods, "pods dir").unwrap();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].path, pods);
        assert_eq!(f[0].problem, "writable by others");
        assert!(f[0].to_string().contains("(pods dir)"), "{}", f[0]);
        // Sticky does not excuse the directory itself.
        chmod(&pods, 0o1777);
        assert_eq!(check_dir(&pods, "pods dir").unwrap().len(), 1);
        chmod(&pods, 0o755);

        // A file owned by another user, and one writable by a non-root group.
        rustix::fs::chown(
            pods.join("web.yaml"),
            Some(rustix::fs::Uid::from_raw(1000)),
            None,
        )
        .unwrap();
        fs::write(pods.join("db.yaml"), "x").unwrap();
        chmod(&pods.join("db.yaml"), 0o664);
        rustix::fs::chown(
            pods.join("db.yaml"),
            None,
            Some(rustix::fs::Gid::from_raw(100)),
        )
        .unwrap();
        let f = check_dir(&pods, "pods dir").unwrap();
        let problems: Vec<(String, String)> = f
            .iter()
            .map(|f| {
                (
                    f.path.file_name().unwrap().to_string_lossy().into_owned(),
                    f.problem.clone(),
                )
            })
            .collect();
        assert_eq!(
            problems,
            vec![
                ("db.yaml".to_string(), "writable by group 100".to_string()),
                ("web.yaml".to_string(), "owned by uid 1000".to_string()),
            ]
        );
    }

    #[test]
    fn an_ancestor_or_a_symlink_target_that_others_control_is_found() {
        if !is_root() {
            eprintln!(
                "SKIPPED an_ancestor_or_a_symlink_target_that_others_control_is_found: needs root"
            );
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("etc");
        let worktree = tmp.path().join("git/.worktrees/abc");
        fs::create_dir_all(&base).unwrap();
        fs::create_dir_all(&worktree).unwrap();
        chmod(&base, 0o755);
        for d in ["git", "git/.worktrees", "git/.worktrees/abc"] {
            chmod(&tmp.path().join(d), 0o755);
        }
        symlink(&worktree, base.join("pods.d")).unwrap();
        assert_eq!(check_dir(&base.join("pods.d"), "pods dir").unwrap(), vec![]);

        // A git checkout owned by a deploy user: the link's target is theirs.
        rustix::fs::chown(
            tmp.path().join("git/.worktrees"),
            Some(rustix::fs::Uid::from_raw(1000)),
            None,
        )
        .unwrap();
        let f = check_dir(&base.join("pods.d"), "pods dir").unwrap();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].path, tmp.path().join("git/.worktrees"));

        // A directory above the link, writable by others (no sticky bit): whoever
        // can write there can swap the link.
        chmod(&base, 0o777);
        let f = check_dir(&base.join("pods.d"), "pods dir").unwrap();
        assert!(f.iter().any(|f| f.path == base), "{f:?}");

        // A missing dir: its nearest existing ancestor decides.
        let missing = base.join("nope/pods.d");
        let f = check_dir(&missing, "pods dir").unwrap();
        assert!(f.iter().any(|f| f.path == base), "{f:?}");
        chmod(&base, 0o755);
        assert_eq!(check_dir(&missing, "pods dir").unwrap(), vec![]);
    }
}
