//! Network sysctls through `/proc/sys/net`.
//!
//! The kernel resolves `/proc/sys/net/...` in the network namespace of the
//! *thread* that opens the file, so a write from a thread inside a container's
//! namespace (see [`crate::netns`]) changes that namespace only.

use std::path::PathBuf;

use crate::error::{code, CniError};

#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("invalid sysctl name component {part:?}")]
    BadName { part: String },
    #[error("cannot write {value:?} to {path}", path = path.display())]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("cannot read {path}", path = path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<SysctlError> for CniError {
    fn from(e: SysctlError) -> Self {
        CniError::from_error(code::KERNEL, &e)
    }
}

fn path_of(parts: &[&str]) -> Result<PathBuf, SysctlError> {
    let mut path = PathBuf::from("/proc/sys");
    for part in parts {
        if part.is_empty() || part.contains('/') || *part == "." || *part == ".." {
            return Err(SysctlError::BadName {
                part: part.to_string(),
            });
        }
        path.push(part);
    }
    Ok(path)
}

/// Write `value` to `/proc/sys/<parts...>` (say `["net", "ipv4", "ip_forward"]`).
/// Components are separate so interface names with dots stay intact.
pub fn write(parts: &[&str], value: &str) -> Result<(), SysctlError> {
    let path = path_of(parts)?;
    std::fs::write(&path, value).map_err(|source| SysctlError::Write {
        path,
        value: value.to_string(),
        source,
    })
}

/// Read `/proc/sys/<parts...>`, trimmed.
pub fn read(parts: &[&str]) -> Result<String, SysctlError> {
    let path = path_of(parts)?;
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|source| SysctlError::Read { path, source })
}

/// Write only when the value differs (avoids needless writes on every ADD).
pub fn ensure(parts: &[&str], value: &str) -> Result<(), SysctlError> {
    if read(parts).ok().as_deref() == Some(value) {
        return Ok(());
    }
    write(parts, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_path_tricks() {
        assert!(matches!(
            write(&["net", "..", "kernel"], "1"),
            Err(SysctlError::BadName { .. })
        ));
        assert!(matches!(
            read(&["net/ipv4", "x"]),
            Err(SysctlError::BadName { .. })
        ));
    }

    #[test]
    fn writes_in_the_calling_threads_netns_only() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIPPED: needs root");
            return;
        }
        let key = ["net", "ipv4", "ip_forward"];
        let outside = read(&key).unwrap();
        let inside = e2e::netns::in_new_netns(move || {
            // Make sure /proc/sys/net resolves to this thread's fresh namespace
            // (only all/default/lo) before writing anything.
            let names: Vec<String> = std::fs::read_dir("/proc/sys/net/ipv4/conf")
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(
                names
                    .iter()
                    .all(|n| ["all", "default", "lo"].contains(&n.as_str())),
                "/proc/sys/net does not follow the thread's netns: {names:?}"
            );
            ensure(&key, "1").unwrap();
            read(&key).unwrap()
        });
        assert_eq!(inside, "1");
        assert_eq!(read(&key).unwrap(), outside);
    }
}
