//! stage1's side of the pod directory (the names and types are
//! `manifests::poddir`'s): reading `runtime.json`, writing and removing the files
//! stage1 keeps there. A leaf: it uses no other module of stage1.

use std::io;
use std::path::{Path, PathBuf};

use manifests::poddir::fs::{write_atomic, Durability, Perm};
use manifests::poddir::RUNTIME_FILE;
use manifests::runtime::{RuntimeConfig, RuntimeError};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}")]
    Parse { path: PathBuf, source: RuntimeError },
}

/// Read the pod's `runtime.json`.
pub fn load_config(pod_dir: &Path) -> Result<RuntimeConfig, ConfigError> {
    let path = pod_dir.join(RUNTIME_FILE);
    let bytes = std::fs::read(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    RuntimeConfig::from_slice(&bytes).map_err(|source| ConfigError::Parse { path, source })
}

/// Write one of stage1's status files (`pid`, `ready`, `cgroups`, `apps/<app>/status`,
/// ...) atomically for readers, with the permissions a plain create under the umask
/// gives. Not `fsync`ed: they describe running processes, which a power loss ends
/// anyway (`Durability::Readers`).
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic(path, bytes, Perm::Umask(0o666), Durability::Readers)
}

/// Write `value` as JSON with [`write`].
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> io::Result<()> {
    let json = serde_json::to_vec(value).map_err(io::Error::other)?;
    write(path, &json)
}

/// Remove a status file; one that is not there is fine.
pub fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replaces_and_remove_tolerates_absence() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("status");
        write(&p, b"one").unwrap();
        write_json(&p, &["two"]).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), br#"["two"]"#);
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
        remove(&p).unwrap();
        assert!(!p.exists());
        remove(&p).unwrap();
        // Other failures are reported.
        std::fs::create_dir(&p).unwrap();
        assert!(remove(&p).is_err());
    }

    #[test]
    fn config_errors_name_the_file() {
        let t = tempfile::tempdir().unwrap();
        let e = load_config(t.path()).unwrap_err();
        assert!(matches!(&e, ConfigError::Read { path, .. } if path.ends_with(RUNTIME_FILE)));
        std::fs::write(t.path().join(RUNTIME_FILE), b"{").unwrap();
        assert!(matches!(
            load_config(t.path()),
            Err(ConfigError::Parse { .. })
        ));
    }
}
