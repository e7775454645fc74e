//! `rkt fetch IMAGE...`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use stage0::image::fetch::{FetchOptions, Fetcher, PullPolicy};
use stage0::image::reference::ImageRef;
use stage0::image::store::short_id;

use crate::Cli;

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// When to contact the image's origin: new (only if not in the store), update
    /// (revalidate; a 304 transfers nothing), never (store only).
    #[arg(long, default_value = "update", value_name = "POLICY")]
    pub pull_policy: PullPolicy,
    /// Detached armored signature for a local image (default: IMAGE.asc beside it).
    #[arg(long, value_name = "FILE")]
    pub signature: Option<PathBuf>,
    /// Print full image IDs.
    #[arg(long)]
    pub full: bool,
    /// Image references: a path or file:// URL, an https:// URL, an appc name
    /// (example.com/app:1.0), or an image ID prefix.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub fn run(cli: &Cli, args: &FetchArgs) -> Result<ExitCode> {
    if args.signature.is_some() && args.images.len() > 1 {
        anyhow::bail!("--signature applies to a single image; fetch images one at a time");
    }
    let store = super::open_store(cli)?;
    let keystore = super::keystore(cli);
    let progress = super::progress();
    let opts = FetchOptions {
        pull_policy: args.pull_policy,
        insecure: cli.insecure_options,
        signature: args.signature.clone(),
    };
    let fetcher = Fetcher::new(&store, &keystore, opts, &progress);
    for input in &args.images {
        let image = ImageRef::parse(input)?;
        let info = fetcher
            .fetch(&image)
            .with_context(|| format!("cannot fetch {input}"))?;
        if args.full {
            println!("{}", info.id);
        } else {
            println!("{}", short_id(&info.id));
        }
    }
    Ok(ExitCode::SUCCESS)
}
