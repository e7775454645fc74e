//! `rkt list`, `status`, `stop`, `rm`, `gc`, `cat-manifest`, `enter`, `logs`

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use clap::Args;
use manifests::poddir;
use stage0::pod::dir::PodInfo;
use stage0::pod::launch;

use super::image::Format;
use crate::Cli;

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Full UUIDs and image IDs.
    #[arg(long)]
    pub full: bool,
    #[arg(long)]
    pub no_legend: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub uuid: String,
    /// Wait until the pod has exited (optionally at most DURATION).
    #[arg(long, num_args = 0..=1, default_missing_value = "0s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub wait: Option<Duration>,
    /// Wait until every app of the pod has started (optionally at most DURATION).
    #[arg(long, num_args = 0..=1, default_missing_value = "0s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub wait_ready: Option<Duration>,
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// SIGKILL at once instead of SIGTERM and the grace period.
    #[arg(long)]
    pub force: bool,
    #[arg(required = true)]
    pub uuids: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(required = true)]
    pub uuids: Vec<String>,
    #[arg(long, value_name = "FILE")]
    pub stage1_path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// How long exited pods are kept after being marked.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    pub grace_period: Duration,
    /// How long prepared pods wait to be run before they are collected.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub expire_prepared: Duration,
    /// Only move exited pods to exited-garbage; delete nothing.
    #[arg(long)]
    pub mark_only: bool,
    #[arg(long, value_name = "FILE")]
    pub stage1_path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CatManifestArgs {
    pub uuid: String,
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pretty_print: bool,
}

#[derive(Debug, Args)]
pub struct EnterArgs {
    /// The app to enter (required when the pod has several).
    #[arg(long)]
    pub app: Option<String>,
    #[arg(long, value_name = "FILE")]
    pub stage1_path: Option<PathBuf>,
    pub uuid: String,
    /// The command (default /bin/sh).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    pub uuid: String,
    /// The app (required when the pod has several).
    #[arg(long)]
    pub app: Option<String>,
    /// Keep printing new output until the pod exits.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

fn short_uuid(uuid: &str, full: bool) -> &str {
    if full {
        uuid
    } else {
        &uuid[..8.min(uuid.len())]
    }
}

fn ago(t: Option<SystemTime>) -> String {
    let Some(t) = t else {
        return "-".to_string();
    };
    let secs = SystemTime::now()
        .duration_since(t)
        .unwrap_or_default()
        .as_secs();
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

fn print_json(value: &impl serde::Serialize, format: Format) -> Result<()> {
    let out = match format {
        Format::Json => serde_json::to_string(value)?,
        Format::JsonPretty => serde_json::to_string_pretty(value)?,
    };
    println!("{out}");
    Ok(())
}

pub fn list(cli: &Cli, args: &ListArgs) -> Result<ExitCode> {
    let pods = super::open_pods(cli)?;
    let infos = pods.list()?;
    if let Some(format) = args.format {
        // Pods made by the reconciler also name their manifest pod.
        let mut values = Vec::with_capacity(infos.len());
        for info in &infos {
            let mut v = serde_json::to_value(info)?;
            if let (Some((key, source, hash)), Some(obj)) =
                (reconciler::observe::identity(info), v.as_object_mut())
            {
                obj.insert(
                    "manifest".into(),
                    serde_json::json!({"key": key.to_string(), "source": source, "specHash": hash}),
                );
            }
            values.push(v);
        }
        print_json(&values, format)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows: Vec<[String; 8]> = Vec::new();
    if !args.no_legend {
        rows.push(
            [
                "UUID",
                "APP",
                "IMAGE NAME",
                "STATE",
                "CREATED",
                "STARTED",
                "NETWORKS",
                "MANIFEST",
            ]
            .map(String::from),
        );
    }
    for info in &infos {
        let networks = info
            .networks
            .iter()
            .map(|n| format!("{}:{}", n.name, n.ip.as_deref().unwrap_or("-")))
            .collect::<Vec<_>>()
            .join(",");
        let manifest = reconciler::observe::identity(info)
            .map(|(key, _, _)| key.to_string())
            .unwrap_or_else(|| "-".into());
        let apps = if info.apps.is_empty() {
            vec![None]
        } else {
            info.apps.iter().map(Some).collect()
        };
        for (i, app) in apps.into_iter().enumerate() {
            let first = i == 0;
            rows.push([
                if first {
                    short_uuid(&info.uuid, args.full).to_string()
                } else {
                    String::new()
                },
                app.map(|a| a.name.clone()).unwrap_or_else(|| "-".into()),
                app.and_then(|a| a.image_name.clone())
                    .unwrap_or_else(|| "-".into()),
                if first {
                    info.state.to_string()
                } else {
                    String::new()
                },
                if first {
                    ago(info.created_at)
                } else {
                    String::new()
                },
                if first {
                    ago(info.started_at)
                } else {
                    String::new()
                },
                if first {
                    networks.clone()
                } else {
                    String::new()
                },
                if first {
                    manifest.clone()
                } else {
                    String::new()
                },
            ]);
        }
    }
    let widths: Vec<usize> = (0..8)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(ExitCode::SUCCESS)
}

fn timeout(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

pub fn status(cli: &Cli, args: &StatusArgs) -> Result<ExitCode> {
    let pods = super::open_pods(cli)?;
    let pod = pods.resolve(&args.uuid)?;
    let mut info = pods.info(&pod)?;
    if let Some(d) = args.wait_ready {
        info = pods.wait_ready(&pod, timeout(d))?;
    }
    if let Some(d) = args.wait {
        info = pods.wait(&pod, timeout(d))?;
    }
    if let Some(format) = args.format {
        print_json(&info, format)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_status(&info);
    Ok(ExitCode::SUCCESS)
}

fn print_status(info: &PodInfo) {
    println!("state={}", info.state);
    if let Some(t) = info.created_at {
        println!("created={}", humantime::format_rfc3339_seconds(t));
    }
    if let Some(t) = info.started_at {
        println!("started={}", humantime::format_rfc3339_seconds(t));
    }
    for n in &info.networks {
        println!("networks={}:ip4={}", n.name, n.ip.as_deref().unwrap_or("-"));
    }
    if let Some(pid) = info.pid {
        println!("pid={pid}");
    }
    if let Some(u) = info.user_namespace {
        println!(
            "user-namespace=uid:{}:gid:{}:size:{}",
            u.host_uid, u.host_gid, u.size
        );
    }
    println!("exited={}", info.state.has_exited());
    for app in &info.apps {
        if let Some(code) = app.exit_code() {
            println!("app-{}={code}", app.name);
        }
    }
    for e in &info.errors {
        eprintln!("rkt: warning: {e}");
    }
}

pub fn stop(cli: &Cli, args: &StopArgs) -> Result<ExitCode> {
    let pods = super::open_pods(cli)?;
    let mut failed = 0;
    for u in &args.uuids {
        match pods
            .resolve(u)
            .and_then(|pod| pods.stop(&pod, args.force).map(|_| pod))
        {
            Ok(pod) => println!("{}", pod.uuid),
            Err(e) => {
                eprintln!("rkt: cannot stop pod {u}: {}", manifests::error::chain(&e));
                failed += 1;
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(crate::EXIT_RKT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn rm(cli: &Cli, args: &RmArgs) -> Result<ExitCode> {
    let pods = super::open_pods(cli)?;
    let stage1 = launch::find_stage1(args.stage1_path.as_deref());
    let mut failed = 0;
    for u in &args.uuids {
        match pods.resolve(u).and_then(|pod| pods.remove(&pod, &stage1)) {
            Ok(removal) => {
                for m in &removal.detached_mounts {
                    eprintln!("rkt: detached a leftover mount {}", m.display());
                }
                println!("{}", removal.uuid);
            }
            Err(e) => {
                eprintln!(
                    "rkt: cannot remove pod {u}: {}",
                    manifests::error::chain(&e)
                );
                failed += 1;
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(crate::EXIT_RKT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn gc(cli: &Cli, args: &GcArgs) -> Result<ExitCode> {
    let pods = super::open_pods(cli)?;
    let stage1 = launch::find_stage1(args.stage1_path.as_deref());
    let report = pods.gc(
        args.grace_period,
        args.expire_prepared,
        args.mark_only,
        &stage1,
        SystemTime::now(),
    )?;
    for u in &report.marked_exited {
        println!("moving pod {u} to garbage");
    }
    for u in &report.marked_garbage {
        println!("moving expired pod {u} to garbage");
    }
    for r in &report.removed {
        for m in &r.detached_mounts {
            eprintln!("rkt: detached a leftover mount {}", m.display());
        }
        println!("garbage collected pod {}", r.uuid);
    }
    for f in &report.failures {
        eprintln!(
            "rkt: cannot collect pod {}: {}",
            f.uuid,
            manifests::error::chain(&f.error)
        );
    }
    Ok(if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_RKT_ERROR)
    })
}

pub fn cat_manifest(cli: &Cli, args: &CatManifestArgs) -> Result<ExitCode> {
    let pods = super::open_pods(cli)?;
    let pod = pods.resolve(&args.uuid)?;
    let manifest = pods.read_manifest(&pod)?;
    if args.pretty_print {
        println!("{}", serde_json::to_string_pretty(&manifest)?);
    } else {
        println!("{}", serde_json::to_string(&manifest)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn pick_app(info: &PodInfo, asked: Option<&str>) -> Result<String> {
    let names: Vec<&str> = info.apps.iter().map(|a| a.name.as_str()).collect();
    match asked {
        Some(a) if names.contains(&a) => Ok(a.to_string()),
        Some(a) => bail!(
            "pod {} has no app {a} (apps: {})",
            info.uuid,
            names.join(", ")
        ),
        None if names.len() == 1 => Ok(names[0].to_string()),
        None => bail!(
            "pod {} has several apps; choose one with --app ({})",
            info.uuid,
            names.join(", ")
        ),
    }
}

pub fn enter(cli: &Cli, args: &EnterArgs) -> Result<ExitCode> {
    let pods = super::open_pods(cli)?;
    let pod = pods.resolve(&args.uuid)?;
    let info = pods.info(&pod)?;
    if !info.state.is_running() {
        bail!("pod {} is {}, not running", pod.uuid, info.state);
    }
    let app = pick_app(&info, args.app.as_deref())?;
    let stage1 = launch::find_stage1(args.stage1_path.as_deref());
    let err = std::process::Command::new(&stage1)
        .arg("enter")
        .arg("--pod-dir")
        .arg(&pod.dir)
        .arg("--app")
        .arg(&app)
        .arg("--")
        .args(&args.command)
        .exec();
    Err(err).with_context(|| format!("cannot run {}", stage1.display()))
}

pub fn logs(cli: &Cli, args: &LogsArgs) -> Result<ExitCode> {
    let pods = super::open_pods(cli)?;
    let pod = pods.resolve(&args.uuid)?;
    let info = pods.info(&pod)?;
    let app = pick_app(&info, args.app.as_deref())?;
    let dir = poddir::app_dir(&pod.dir, &app);
    let mut out = std::io::stdout().lock();
    copy_file(&dir.join(poddir::APP_LOG_ROTATED_FILE), &mut out, 0)?;
    let mut offset = copy_file(&dir.join(poddir::APP_LOG_FILE), &mut out, 0)?;
    if args.follow {
        // Tail until the pod has exited, then print what is left.
        loop {
            let done = !pods.info(&pods.resolve(&pod.uuid)?)?.state.is_running();
            let dir = poddir::app_dir(&pods.resolve(&pod.uuid)?.dir, &app);
            let len = std::fs::metadata(dir.join(poddir::APP_LOG_FILE))
                .map(|m| m.len())
                .unwrap_or(0);
            if len < offset {
                offset = 0; // rotated
            }
            offset = copy_file(&dir.join(poddir::APP_LOG_FILE), &mut out, offset)?;
            if done {
                break;
            }
            let until = Instant::now() + Duration::from_millis(250);
            while Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Copy `path` from `offset` to `out`; returns the new offset. A missing file is empty.
fn copy_file(path: &Path, out: &mut impl Write, offset: u64) -> Result<u64> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(offset),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    out.write_all(&buf)?;
    out.flush()?;
    Ok(offset + buf.len() as u64)
}
