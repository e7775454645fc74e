//! `rkt run`, `rkt prepare`, `rkt run-prepared`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use manifests::runtime::{Flavor, Volume};
use rkt::fetch::PullPolicy;
use rkt::launch::{self, PodRequest};
use rkt::pod_spec::PodOptions;
use rkt::pods::Pods;
use rkt::run_args::{self, MountArg};

use crate::Cli;

/// Flags of the pod (before the first image); per-app flags follow each image.
#[derive(Debug, Args)]
pub struct PodArgs {
    /// A pod volume: NAME,kind=host,source=PATH[,readOnly=true] or
    /// NAME,kind=empty[,mode=0755,uid=0,gid=0]. Repeatable.
    #[arg(long = "volume", value_name = "SPEC", value_parser = parse_volume)]
    pub volumes: Vec<Volume>,
    /// Mount a volume in every app: volume=NAME,target=PATH. Repeatable.
    #[arg(long = "mount", value_name = "SPEC", value_parser = parse_mount)]
    pub mounts: Vec<MountArg>,
    /// Environment for every app: KEY=VALUE. Repeatable.
    #[arg(long = "set-env", value_name = "KEY=VALUE", value_parser = run_args::parse_env)]
    pub env: Vec<(String, String)>,
    /// The pod's hostname (default rkt-UUID).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Name servers for the pod's resolv.conf (default: the host's resolv.conf).
    #[arg(long, value_delimiter = ',')]
    pub dns: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    pub dns_search: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    pub dns_opt: Vec<String>,
    /// Extra /etc/hosts lines: IP=HOSTNAME[,HOSTNAME]. Repeatable.
    #[arg(long = "hosts-entry", value_name = "IP=HOST")]
    pub hosts_entries: Vec<String>,
    /// Networking: host (the host's network) or none (a private network with only
    /// loopback). CNI networks come with the networking work.
    #[arg(long, default_value = "host", value_name = "NET")]
    pub net: String,
    /// stage1 flavor: default (namespaces, cgroups, overlay) or fly (chroot only).
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub stage1_name: Flavor,
    /// The stage1 binary to use.
    #[arg(long, value_name = "FILE")]
    pub stage1_path: Option<PathBuf>,
    /// When to fetch images: new (only if missing), update, never.
    #[arg(long, default_value = "new", value_name = "POLICY")]
    pub pull_policy: PullPolicy,
    /// How long `rkt stop` waits after SIGTERM before SIGKILL.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub stop_grace_period: Duration,
    /// Write the pod's UUID to this file.
    #[arg(long, value_name = "FILE")]
    pub uuid_file_save: Option<PathBuf>,
    /// IMAGE [APP FLAGS] [-- ARGS] [--- IMAGE ...]
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE"
    )]
    pub apps: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub pod: PodArgs,
    /// Give the (single) app the terminal; press ^] three times to kill the pod.
    #[arg(long)]
    pub interactive: bool,
}

#[derive(Debug, Args)]
pub struct PrepareArgs {
    #[command(flatten)]
    pub pod: PodArgs,
    /// Print only the UUID.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RunPreparedArgs {
    /// The prepared pod (a unique UUID prefix).
    pub uuid: String,
    #[arg(long, value_name = "FILE")]
    pub stage1_path: Option<PathBuf>,
}

fn parse_volume(s: &str) -> Result<Volume, String> {
    run_args::parse_volume(s).map_err(|e| e.to_string())
}

fn parse_mount(s: &str) -> Result<MountArg, String> {
    run_args::parse_mount(s)
}

fn request(cli: &Cli, pod: &PodArgs, interactive: bool) -> Result<PodRequest> {
    let mut apps = run_args::parse_apps(&pod.apps)?;
    for app in &mut apps {
        for m in &pod.mounts {
            if !app.mounts.iter().any(|am| am.target == m.target) {
                app.mounts.push(m.clone());
            }
        }
    }
    let private_network = match pod.net.as_str() {
        "host" => false,
        "none" => true,
        other => bail!(
            "--net={other}: only host and none are available in this build (CNI networks are not implemented yet)"
        ),
    };
    if private_network && pod.stage1_name == Flavor::Fly {
        bail!("--net=none needs the default stage1; fly always uses the host's network");
    }
    Ok(PodRequest {
        pod: PodOptions {
            hostname: pod.hostname.clone(),
            dns: pod.dns.clone(),
            dns_search: pod.dns_search.clone(),
            dns_opts: pod.dns_opt.clone(),
            hosts_entries: pod.hosts_entries.clone(),
            volumes: pod.volumes.clone(),
            flavor: pod.stage1_name,
            interactive,
            env: pod.env.clone(),
            insecure: cli.insecure_options,
            stop_grace_period_secs: Some(pod.stop_grace_period.as_secs().max(1)),
            netns: None,
            private_network,
            cgroup_root: None,
        },
        apps,
        pull_policy: pod.pull_policy,
        insecure: cli.insecure_options,
        annotations: Vec::new(),
        uuid: None,
    })
}

fn prepare_pod(cli: &Cli, pod: &PodArgs, interactive: bool) -> Result<(Pods, String)> {
    let req = request(cli, pod, interactive)?;
    let store = super::open_store(cli)?;
    let keystore = super::keystore(cli);
    let pods = super::open_pods(cli)?;
    let progress = super::progress();
    let (prepared, _) = launch::prepare(&store, &keystore, &pods, &progress, &req)?;
    if let Some(path) = &pod.uuid_file_save {
        std::fs::write(path, format!("{}\n", prepared.uuid))
            .with_context(|| format!("cannot write the UUID to {}", path.display()))?;
    }
    Ok((pods, prepared.uuid))
}

pub fn run(cli: &Cli, args: &RunArgs) -> Result<ExitCode> {
    let (pods, uuid) = prepare_pod(cli, &args.pod, args.interactive)?;
    let stage1 = launch::find_stage1(args.pod.stage1_path.as_deref());
    // On success this process becomes stage1; its exit code is the pod's.
    let err = pods.run_prepared(&uuid, &stage1).unwrap_err();
    Err(err).with_context(|| format!("cannot start pod {uuid}"))
}

pub fn prepare(cli: &Cli, args: &PrepareArgs) -> Result<ExitCode> {
    let (_, uuid) = prepare_pod(cli, &args.pod, false)?;
    if !args.quiet {
        eprintln!("prepared pod {uuid}; start it with: rkt run-prepared {uuid}");
    }
    println!("{uuid}");
    Ok(ExitCode::SUCCESS)
}

pub fn run_prepared(cli: &Cli, args: &RunPreparedArgs) -> Result<ExitCode> {
    let pods = super::open_pods(cli)?;
    let pod = pods.resolve(&args.uuid)?;
    let stage1 = launch::find_stage1(args.stage1_path.as_deref());
    let err = pods.run_prepared(&pod.uuid, &stage1).unwrap_err();
    Err(err).with_context(|| format!("cannot start pod {}", pod.uuid))
}
