//! Subcommand implementations. Each returns `anyhow::Result<ExitCode>`; `main` prints
//! errors once, at the edge.

pub mod fetch;
pub mod image;
pub mod pods;
pub mod reconcile;
pub mod run;
pub mod run_args;
pub mod shell;
pub mod trust;

use anyhow::{Context, Result};
use stage0::image::fetch::StderrProgress;
use stage0::image::store::Store;
use stage0::image::trust::Keystore;

use crate::Cli;

pub fn open_store(cli: &Cli) -> Result<Store> {
    let cas = cli.dirs().cas();
    Store::open(&cas).with_context(|| format!("cannot open the image store at {}", cas.display()))
}

pub fn open_pods(cli: &Cli) -> Result<stage0::pod::dir::Pods> {
    let network = match cli.cni_path() {
        Some(path) => stage0::pod::net::CniNetworks::with_cni_path(path),
        None => stage0::pod::net::CniNetworks::default(),
    };
    stage0::pod::dir::Pods::open(&cli.dir, std::sync::Arc::new(network))
        .with_context(|| format!("cannot open the pods directory under {}", cli.dir.display()))
}

pub fn keystore(cli: &Cli) -> Keystore {
    Keystore::new(&cli.local_config, &cli.system_config)
}

pub fn progress() -> StderrProgress {
    StderrProgress::new()
}
