//! `rkt run`, `rkt prepare`, `rkt run-prepared`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::run_args;
use anyhow::{bail, Context, Result};
use clap::Args;
use manifests::pod::ExposedPort;
use manifests::runtime::{Flavor, Seccomp, Volume};
use stage0::image::fetch::PullPolicy;
use stage0::pod::dir::Pods;
use stage0::pod::launch;
use stage0::pod::net::{self, NetMode, NetOptions, PodNetworking};
use stage0::pod::request::{MountArg, PodOptions, PodRequest};

use crate::Cli;

/// `rkt run --help` examples. Each `rkt` line is parsed by a unit test.
pub const RUN_EXAMPLES: &str = "\
Examples:
  # A signed image, on the host's network, with arguments for its app
  rkt run --net=host example.com/busybox:1.36 --exec=/bin/echo -- hello from a pod
  # A Docker image by tag (no signature to check), with the terminal
  rkt run --insecure-options=image --interactive docker://alpine:3.20 --exec=/bin/sh
  # A host directory mounted read-only, a port forwarded, 256 MiB of memory
  rkt run --volume=data,kind=host,source=/srv/data,readOnly=true --port=http:8080 example.com/web:1.0 --mount=volume=data,target=/data --memory=256Mi
  # Two apps in one pod, each with its own flags and arguments
  rkt run example.com/app:1.0 --set-env=MODE=server -- --listen=:80 --- example.com/sidecar:1.0 --user=1000";

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
    /// Forward a host port to an app port: NAME:HOSTPORT or NAME:HOSTIP:HOSTPORT,
    /// NAME being a port name of an app's image. Needs a CNI network whose plugins
    /// handle port mappings (the default network does). Repeatable.
    #[arg(long = "port", value_name = "NAME:HOSTPORT", value_parser = parse_port)]
    pub ports: Vec<ExposedPort>,
    /// stage1 flavor: default (namespaces, cgroups, overlay) or fly (chroot only).
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub stage1_name: Flavor,
    /// The stage1 binary to use.
    #[arg(long, value_name = "FILE")]
    pub stage1_path: Option<PathBuf>,
    /// The apps' seccomp filter: default (rkt's profile of blocked system calls) or
    /// unconfined (none; the same as --insecure-options=seccomp).
    #[arg(long, default_value = "default", value_name = "PROFILE")]
    pub seccomp: Seccomp,
    /// When to fetch images: new (only if missing), update, never.
    #[arg(long, default_value = "new", value_name = "POLICY")]
    pub pull_policy: PullPolicy,
    /// How long `rkt stop` waits after SIGTERM before SIGKILL.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub stop_grace_period: Duration,
    /// Write the pod's UUID to this file.
    #[arg(long, value_name = "FILE")]
    pub uuid_file_save: Option<PathBuf>,
    /// Run the apps in a user namespace: container uids and gids 0-65535 are a host
    /// range of the pod's own (root in the pod is unprivileged on the host).
    #[arg(long)]
    pub private_users: bool,
    /// IMAGE [APP FLAGS] [-- ARGS] [--- IMAGE ...]
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE"
    )]
    pub apps: Vec<String>,
}

/// What `--net` means when it is not given.
///
/// `default`, as in rkt 1.x: a CNI bridge network with NAT. Starting such a pod
/// creates a bridge, NAT rules and `ip_forward` in the caller's network namespace,
/// so tests that run pods outside a namespace of their own pass `--net=host`.
pub const DEFAULT_NET: &str = "default";

/// `--net` of `run` and `run-prepared`.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// The pod's network: host (the caller's), none (only loopback), default (a
    /// bridge with NAT, 172.16.28.0/24), default-restricted (no default route), all
    /// (every network in net.d), or a comma-separated list of networks from
    /// <local-config>/net.d and <system-config>/net.d, each optionally followed by
    /// :KEY=VALUE;KEY=VALUE passed to its plugins as CNI_ARGS (e.g. default:IP=172.16.28.9).
    #[arg(long, value_name = "NETS", default_value = DEFAULT_NET)]
    pub net: Vec<String>,
}

impl NetArgs {
    fn mode(&self) -> Result<NetMode> {
        Ok(NetMode::parse(&self.net)?)
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub pod: PodArgs,
    #[command(flatten)]
    pub net: NetArgs,
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
    #[command(flatten)]
    pub net: NetArgs,
}

fn parse_volume(s: &str) -> Result<Volume, String> {
    run_args::parse_volume(s).map_err(|e| manifests::error::chain(&e))
}

fn parse_mount(s: &str) -> Result<MountArg, String> {
    run_args::parse_mount(s)
}

fn parse_port(s: &str) -> Result<ExposedPort, String> {
    net::parse_port(s).map_err(|e| manifests::error::chain(&e))
}

fn net_options(cli: &Cli, mode: NetMode) -> NetOptions {
    NetOptions {
        mode,
        local_config: cli.local_config.clone(),
        system_config: cli.system_config.clone(),
        cni_path: cli.cni_path(),
    }
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
    let mut pod_insecure = cli.insecure_options;
    if pod.seccomp == Seccomp::Unconfined {
        pod_insecure.seccomp = true;
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
            insecure: pod_insecure,
            stop_grace_period_secs: Some(pod.stop_grace_period.as_secs().max(1)),
            netns: None,
            private_network: false,
            cgroup_root: None,
            private_users: pod.private_users,
            ports: pod.ports.clone(),
            backoff: Default::default(),
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
    // Check the network choice before fetching and preparing anything.
    let mode = args.net.mode()?;
    if mode != NetMode::Host && args.pod.stage1_name == Flavor::Fly {
        bail!("--net={mode}: the fly stage1 always uses the host's network; use --net=host or the default stage1");
    }
    if !args.pod.ports.is_empty() && !mode.uses_cni() {
        bail!("--port needs a CNI network whose plugins handle port mappings (such as --net=default), not --net={mode}");
    }
    let opts = net_options(cli, mode);
    net::check(&opts)?;
    let (pods, uuid) = prepare_pod(cli, &args.pod, args.interactive)?;
    let stage1 = launch::find_stage1(args.pod.stage1_path.as_deref());
    let mut hook = PodNetworking::new(opts);
    // On success this process becomes stage1; its exit code is the pod's.
    let err = pods
        .run_prepared_with(&uuid, &stage1, &mut hook)
        .unwrap_err();
    // The pod was made for this run only: do not leave it behind as prepared.
    if let Ok(pod) = pods.resolve(&uuid) {
        if pod.state.can_run() {
            if let Err(e) = pods.remove(&pod, &stage1) {
                eprintln!(
                    "rkt: cannot remove the pod that failed to start: {}",
                    manifests::error::chain(&e)
                );
            }
        }
    }
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
    let mut hook = PodNetworking::new(net_options(cli, args.net.mode()?));
    let err = pods
        .run_prepared_with(&pod.uuid, &stage1, &mut hook)
        .unwrap_err();
    Err(err).with_context(|| format!("cannot start pod {}", pod.uuid))
}
