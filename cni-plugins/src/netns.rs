//! Doing work inside a network namespace.
//!
//! `setns` changes the namespace of the calling *thread* only. Work for a
//! container's namespace therefore runs on a fresh OS thread that enters the
//! namespace and then ends: it never has to switch back, so no thread of the
//! process is ever left in the wrong namespace.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::error::{code, CniError};

/// `NSFS_MAGIC` from `linux/magic.h`: the filesystem of namespace files.
const NSFS_MAGIC: i64 = 0x6e73_6673;
/// `PROC_SUPER_MAGIC`: `/proc/<pid>/ns/net` opened through procfs on old kernels.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("network namespace {path} does not exist")]
    NotFound { path: PathBuf },
    #[error("{path} is not a network namespace")]
    NotANetns { path: PathBuf },
    #[error("cannot open network namespace {path}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot enter network namespace {path}")]
    Enter {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the thread working in network namespace {path} panicked")]
    Panicked { path: PathBuf },
}

impl NetnsError {
    /// The namespace is gone (or was never one): DEL treats this as done.
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            NetnsError::NotFound { .. } | NetnsError::NotANetns { .. }
        )
    }
}

impl From<NetnsError> for CniError {
    fn from(e: NetnsError) -> Self {
        let code = if e.is_gone() {
            code::UNKNOWN_CONTAINER
        } else {
            code::KERNEL
        };
        CniError::from_error(code, &e)
    }
}

/// An open network namespace file.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
}

impl NetNs {
    /// Open `path` and check that it is a network namespace file.
    pub fn open(path: &Path) -> Result<Self, NetnsError> {
        let file = File::open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                NetnsError::NotFound {
                    path: path.to_path_buf(),
                }
            } else {
                NetnsError::Open {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let stat = rustix::fs::fstatfs(&file).map_err(|e| NetnsError::Open {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        #[allow(clippy::unnecessary_cast)]
        let magic = stat.f_type as i64;
        if magic != NSFS_MAGIC && magic != PROC_SUPER_MAGIC {
            return Err(NetnsError::NotANetns {
                path: path.to_path_buf(),
            });
        }
        Ok(NetNs {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Run `f` on a new thread inside this namespace and return its result.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        std::thread::scope(|scope| {
            let handle = scope.spawn(|| {
                move_into_link_name_space(self.file.as_fd(), Some(LinkNameSpaceType::Network))
                    .map_err(|e| NetnsError::Enter {
                        path: self.path.clone(),
                        source: e.into(),
                    })?;
                Ok(f())
            });
            handle.join().unwrap_or_else(|_| {
                Err(NetnsError::Panicked {
                    path: self.path.clone(),
                })
            })
        })
    }
}

/// Open `path` and run `f` inside that namespace.
pub fn run_in_netns<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
    NetNs::open(path)?.run(f)
}
