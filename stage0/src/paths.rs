//! Where rkt keeps things: the data dir and the configuration dirs.

use std::path::{Path, PathBuf};

/// The three roots every command works under (global flags `--dir`,
/// `--local-config`, `--system-config`).
#[derive(Debug, Clone)]
pub struct Dirs {
    pub data: PathBuf,
    pub local_config: PathBuf,
    pub system_config: PathBuf,
}

impl Dirs {
    pub fn new(data: &Path, local_config: &Path, system_config: &Path) -> Self {
        Self {
            data: data.to_path_buf(),
            local_config: local_config.to_path_buf(),
            system_config: system_config.to_path_buf(),
        }
    }

    /// `<dir>/cas`: the image store.
    pub fn cas(&self) -> PathBuf {
        self.data.join("cas")
    }

    /// `<dir>/pods`: pod directories.
    pub fn pods(&self) -> PathBuf {
        self.data.join("pods")
    }
}
