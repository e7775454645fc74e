//! `rkt image list|rm|cat-manifest|export|extract|render|verify|gc`

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use stage0::image::extract::{unpack, UnpackOptions};
use stage0::image::render as image;
use stage0::image::store::{short_id, ImageInfo};
use stage0::image::treestore::TreeStore;

use crate::Cli;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List the images in the store.
    List(ListArgs),
    /// Remove images (by ID prefix or name) and their rendered trees.
    Rm {
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
    },
    /// Print an image's manifest.
    CatManifest {
        /// Indent the JSON.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        pretty_print: bool,
        image: String,
    },
    /// Write an image as an uncompressed ACI.
    Export {
        image: String,
        output: PathBuf,
        #[arg(long)]
        overwrite: bool,
    },
    /// Unpack an image's archive (manifest and rootfs) into a directory.
    Extract(UnpackArgs),
    /// Write an image's rootfs with its dependencies applied into a directory.
    Render(UnpackArgs),
    /// Re-hash images and their rendered trees and report any corruption; close the
    /// image store and the pods dir to other users if they were open (and say so).
    Verify {
        /// Images to check (default: all).
        #[arg(value_name = "IMAGE")]
        images: Vec<String>,
    },
    /// Remove images not used within the grace period, and orphaned trees.
    Gc {
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        grace_period: Duration,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Json,
    JsonPretty,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output as JSON instead of a table.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Print full image IDs.
    #[arg(long)]
    pub full: bool,
    /// Do not print the header line.
    #[arg(long)]
    pub no_legend: bool,
}

#[derive(Debug, Args)]
pub struct UnpackArgs {
    pub image: String,
    /// Directory to write into (not named `dir`: that is the global data dir flag).
    #[arg(value_name = "DIR")]
    pub target: PathBuf,
    /// Only the rootfs, directly in DIR.
    #[arg(long)]
    pub rootfs_only: bool,
    /// Write into DIR even if it is not empty.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(cli: &Cli, command: &ImageCommand) -> Result<ExitCode> {
    let store = super::open_store(cli)?;
    match command {
        ImageCommand::List(args) => {
            let images = store.list()?;
            print_list(&images, args)?;
        }
        ImageCommand::Rm { images } => {
            let mut failed = 0;
            for input in images {
                match image::lookup(&store, input).and_then(|info| {
                    store.remove(&info.id)?;
                    Ok(info)
                }) {
                    Ok(info) => println!("successfully removed image {}", short_id(&info.id)),
                    Err(e) => {
                        eprintln!(
                            "rkt: cannot remove image {input}: {}",
                            manifests::error::chain(&e)
                        );
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                return Ok(ExitCode::from(crate::EXIT_RKT_ERROR));
            }
        }
        ImageCommand::CatManifest {
            pretty_print,
            image: input,
        } => {
            let info = image::lookup(&store, input)?;
            let value: serde_json::Value = serde_json::from_slice(&info.manifest_json)
                .context("the stored manifest is not JSON")?;
            if *pretty_print {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!("{}", serde_json::to_string(&value)?);
            }
        }
        ImageCommand::Export {
            image: input,
            output,
            overwrite,
        } => {
            let info = image::lookup(&store, input)?;
            if output.exists() && !overwrite {
                bail!(
                    "{} exists (pass --overwrite to replace it)",
                    output.display()
                );
            }
            let tmp = output.with_extension("tmp-export");
            let mut blob = store.open_blob(&info.id)?;
            let mut out = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            std::io::copy(&mut blob, &mut out)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, output)
                .with_context(|| format!("cannot write {}", output.display()))?;
            store.touch(&info.id)?;
        }
        ImageCommand::Extract(args) => {
            let info = image::lookup(&store, &args.image)?;
            prepare_dir(&args.target, args.overwrite)?;
            let blob = store.open_blob(&info.id)?;
            let opts = UnpackOptions {
                strip_prefix: args.rootfs_only.then(|| "rootfs".to_string()),
                ..UnpackOptions::default()
            };
            unpack(blob, &args.target, &opts).with_context(|| {
                format!(
                    "cannot extract {} into {}",
                    short_id(&info.id),
                    args.target.display()
                )
            })?;
            store.touch(&info.id)?;
        }
        ImageCommand::Render(args) => {
            let info = image::lookup(&store, &args.image)?;
            prepare_dir(&args.target, args.overwrite)?;
            image::render_to(&store, &info, &args.target, args.rootfs_only).with_context(|| {
                format!(
                    "cannot render {} into {}",
                    short_id(&info.id),
                    args.target.display()
                )
            })?;
            store.touch(&info.id)?;
        }
        ImageCommand::Verify { images } => {
            // The store was closed as it was opened; the pods dir is checked here.
            let pods_dir = cli.dirs().pods();
            let pods = stage0::perms::close_private_dir(&pods_dir, "pods dir")
                .with_context(|| format!("cannot restrict {}", pods_dir.display()))?;
            if let Some(t) = &pods {
                tracing::warn!("SECURITY: {t}");
            }
            for t in store.tightened().iter().chain(&pods) {
                println!("{}\trepaired: {}", t.path.display(), t);
            }
            let targets = if images.is_empty() {
                store.list()?
            } else {
                images
                    .iter()
                    .map(|i| image::lookup(&store, i))
                    .collect::<Result<Vec<_>, _>>()?
            };
            let trees = TreeStore::new(store.tree_dir());
            let mut bad = 0;
            for info in &targets {
                let mut problems = Vec::new();
                if let Err(e) = store.verify_blob(&info.id) {
                    problems.push(manifests::error::chain(&e));
                }
                if trees.is_rendered(&info.id) {
                    if let Err(e) = trees.verify(&info.id) {
                        problems.push(manifests::error::chain(&e));
                    }
                }
                if problems.is_empty() {
                    println!("{}\t{}\tok", short_id(&info.id), info.name);
                } else {
                    bad += 1;
                    println!(
                        "{}\t{}\tCORRUPT: {}",
                        short_id(&info.id),
                        info.name,
                        problems.join("; ")
                    );
                }
            }
            if bad > 0 {
                eprintln!("rkt: {bad} of {} images failed verification", targets.len());
                return Ok(ExitCode::from(1));
            }
        }
        ImageCommand::Gc { grace_period } => {
            let removed = store.gc(*grace_period, SystemTime::now())?;
            for id in &removed {
                println!("removed image {}", short_id(id));
            }
            let trees = TreeStore::new(store.tree_dir());
            let mut orphans = 0;
            for id in trees.list()? {
                if store.get(&id)?.is_none() {
                    trees.remove(&id)?;
                    orphans += 1;
                }
            }
            if orphans > 0 {
                println!("removed {orphans} orphaned rendered trees");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn prepare_dir(dir: &Path, overwrite: bool) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() && !overwrite {
                bail!(
                    "{} is not empty (pass --overwrite to write into it)",
                    dir.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
    Ok(())
}

fn print_list(images: &[ImageInfo], args: &ListArgs) -> Result<()> {
    if let Some(format) = args.format {
        let rows: Vec<serde_json::Value> = images
            .iter()
            .map(|i| {
                json!({
                    "id": i.id,
                    "name": i.name,
                    "labels": i.labels.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
                    "size": i.size,
                    "importTime": humantime::format_rfc3339_seconds(i.import_time).to_string(),
                    "lastUsed": humantime::format_rfc3339_seconds(i.last_used).to_string(),
                    "latest": i.latest,
                })
            })
            .collect();
        let out = match format {
            Format::Json => serde_json::to_string(&rows)?,
            Format::JsonPretty => serde_json::to_string_pretty(&rows)?,
        };
        println!("{out}");
        return Ok(());
    }
    let mut table: Vec<[String; 5]> = Vec::new();
    if !args.no_legend {
        table.push(["ID", "NAME", "SIZE", "IMPORT TIME", "LAST USED"].map(String::from));
    }
    let now = SystemTime::now();
    for i in images {
        let version = i
            .labels
            .iter()
            .find(|(k, _)| k == "version")
            .map(|(_, v)| format!(":{v}"))
            .unwrap_or_default();
        table.push([
            if args.full {
                i.id.clone()
            } else {
                short_id(&i.id)
            },
            format!("{}{version}", i.name),
            human_size(i.size),
            ago(now, i.import_time),
            ago(now, i.last_used),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| table.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<w$}", w = widths[c]))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(())
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

fn ago(now: SystemTime, then: SystemTime) -> String {
    let secs = now.duration_since(then).unwrap_or_default().as_secs();
    match secs {
        0..=59 => format!("{secs} seconds ago"),
        60..=3599 => format!("{} minutes ago", secs / 60),
        3600..=86399 => format!("{} hours ago", secs / 3600),
        _ => format!("{} days ago", secs / 86400),
    }
}
