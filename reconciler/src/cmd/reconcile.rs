//! `rkt reconcile [status]`, `rkt apply -f`, `rkt delete -f`

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use reconciler::act::{self, Children, Executor};
use reconciler::apply::{self, Change};
use reconciler::daemon::{Options, Reconciler};
use reconciler::k8s::{Node, PodKey};
use reconciler::mapping::MapContext;
use reconciler::observe::scan_dir;
use reconciler::plan::BackoffPolicy;
use reconciler::status::{self, Phase, StatusFile};

use super::image::Format;
use crate::Cli;

/// `rkt reconcile --help` examples. Each `rkt` line is parsed by a unit test.
pub const RECONCILE_EXAMPLES: &str = "\
Examples:
  # The service: keep the pods of /etc/rkt/pods.d running (examples/rkt-reconcile.service)
  rkt reconcile
  # One pass over a directory, for scripts and CI: exit 0 once every pod is up
  rkt reconcile --once --pods-dir ./pods
  # Refuse to act while others than root can write the pods, trust or net.d dirs
  rkt reconcile --strict-permissions --resync=30s --stop-pods-on-exit
  # One of several hosts sharing a pods dir: run the pods placed on this host
  rkt reconcile --node-name=edge-1 --node-label=disk=ssd
  # How the manifests' pods are doing: phase, pod, restarts, last error
  rkt reconcile status --format=json-pretty";

/// `rkt apply --help` examples.
pub const APPLY_EXAMPLES: &str = "\
Examples:
  # Validate a directory of manifests and show what would change; write nothing
  rkt apply -f examples/pods --dry-run
  # Put two manifests into the pods dir and wait up to 2 minutes for their pods
  rkt apply -f web.yaml -f job.yaml --wait=2m
  # A manifest from standard input
  rkt apply -f -
  # Into the pods dir of a reconciler started with --pods-dir
  rkt apply -f web.yaml --pods-dir /srv/pods";

/// Exit code when manifests are invalid, or pods failed or did not get ready in time.
const EXIT_PODS: u8 = 1;

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReconcileArgs {
    #[command(subcommand)]
    pub command: Option<ReconcileCommand>,
    /// The directory of Pod manifests (default <local-config>/pods.d). May be a symlink
    /// that is swapped atomically.
    #[arg(long, value_name = "DIR")]
    pub pods_dir: Option<PathBuf>,
    /// Full pass at least this often (catches anything inotify missed).
    #[arg(long, default_value = "10s", value_parser = duration, value_name = "DURATION")]
    pub resync: Duration,
    /// How long to wait for another reconciler on this data dir to exit (one that was
    /// just killed may still be exiting) before giving up.
    #[arg(long, default_value = "30s", value_parser = duration, value_name = "DURATION")]
    pub lock_timeout: Duration,
    /// Quiet time after a change in the pods dir before acting on it.
    #[arg(long, default_value = "200ms", value_parser = duration, value_name = "DURATION")]
    pub debounce: Duration,
    /// One pass: act, wait for the pods to be created or removed, write the status, exit
    /// (0: no errors, 1: some pods or files have errors).
    #[arg(long)]
    pub once: bool,
    /// CrashLoopBackOff: first delay before a pod is recreated.
    #[arg(long, default_value = "10s", value_parser = duration, value_name = "DURATION")]
    pub backoff_initial: Duration,
    /// CrashLoopBackOff: longest delay.
    #[arg(long, default_value = "5m", value_parser = duration, value_name = "DURATION")]
    pub backoff_max: Duration,
    /// CrashLoopBackOff: a pod running this long starts the back-off over.
    #[arg(long, default_value = "10m", value_parser = duration, value_name = "DURATION")]
    pub backoff_reset: Duration,
    /// Stop the manifests' pods when the loop ends (default: leave them running).
    #[arg(long)]
    pub stop_pods_on_exit: bool,
    /// CNI CHECK each running pod's networks this often; a failing CHECK (a veth or
    /// address removed by hand, say) gets the pod replaced. 0 turns it off.
    #[arg(long, default_value = "30s", value_parser = duration, value_name = "DURATION")]
    pub net_check_interval: Duration,
    /// Refuse to act while the pods dir, the trust dirs or the network configuration
    /// dirs (or a directory above them, or a file in them) can be written by others
    /// than root: write access there is root on this host. Without it: a warning.
    #[arg(long)]
    pub strict_permissions: bool,
    /// Refuse manifest pods with warnings (fields ignored because a single host has
    /// nothing to do with them: scheduling, service accounts, API-server metadata):
    /// their files are handled as invalid files. Without it: warnings, in the status.
    #[arg(long)]
    pub strict: bool,
    /// Pod operations (fetch, start, stop) run in parallel.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub parallel: usize,
    /// The stage1 binary to use.
    #[arg(long, value_name = "FILE")]
    pub stage1_path: Option<PathBuf>,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// This host as Pods' `nodeName`, `nodeSelector` and node affinity see it.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// This host's node name (default: <local-config>/node.yaml's name, else the
    /// hostname). Pods whose spec.nodeName names another host are not run here.
    #[arg(long, value_name = "NAME", value_parser = node_name)]
    pub node_name: Option<String>,
    /// A label of this host, over node.yaml's labels and the defaults
    /// (kubernetes.io/hostname, kubernetes.io/os, kubernetes.io/arch). Repeatable.
    #[arg(long = "node-label", value_name = "KEY=VALUE", value_parser = node_label)]
    pub node_labels: Vec<(String, String)>,
}

fn node_name(s: &str) -> Result<String, String> {
    manifests::k8s::check_node_name(s)?;
    Ok(s.to_string())
}

fn node_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    manifests::k8s::check_label(k, v)?;
    Ok((k.to_string(), v.to_string()))
}

/// This host: `<local-config>/node.yaml` (if it exists), the flags over it, the
/// hostname for a name neither gives.
pub fn node(cli: &Cli, args: &NodeArgs) -> Result<Node> {
    let path = cli.local_config.join("node.yaml");
    let file = match std::fs::read(&path) {
        Ok(bytes) => {
            let shown = path.display().to_string();
            match manifests::k8s::parse_node_file(&shown, &bytes) {
                Ok(f) => f,
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    bail!("{shown} is invalid");
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let name = match args.node_name.clone().or(file.name) {
        Some(name) => name,
        // As the kubelet names its node: the hostname in lower case.
        None => rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .to_lowercase(),
    };
    let mut labels = file.labels;
    labels.extend(args.node_labels.iter().cloned());
    Ok(Node::new(&name, labels))
}

#[derive(Debug, Subcommand)]
pub enum ReconcileCommand {
    /// Show each manifest pod's phase, pod, restarts and last error (from
    /// <dir>/reconcile/status.json; no daemon needed).
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A manifest file, a directory of them, or - for standard input. Repeatable.
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// The pods dir to write into (default <local-config>/pods.d).
    #[arg(long, value_name = "DIR")]
    pub pods_dir: Option<PathBuf>,
    /// Validate and show what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Refuse pods with warnings (fields that are ignored because a single host has
    /// nothing to do with them: scheduling, service accounts, API-server metadata).
    #[arg(long)]
    pub strict: bool,
    /// Wait until the pods run (and are ready, if they have readiness probes), at most
    /// TIMEOUT (default 5m); exit 1 with their errors otherwise. Pods placed on other
    /// hosts count as done.
    #[arg(long, num_args = 0..=1, default_missing_value = "5m", value_parser = duration, value_name = "TIMEOUT")]
    pub wait: Option<Duration>,
    #[command(flatten)]
    pub node: NodeArgs,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Manifests naming the pods to delete: a file, a directory, or -. Repeatable.
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
    pub files: Vec<String>,
    #[arg(long, value_name = "DIR")]
    pub pods_dir: Option<PathBuf>,
    /// Wait until the reconciler has removed the pods, at most TIMEOUT (default 5m).
    #[arg(long, num_args = 0..=1, default_missing_value = "5m", value_parser = duration, value_name = "TIMEOUT")]
    pub wait: Option<Duration>,
}

fn pods_dir(cli: &Cli, explicit: &Option<PathBuf>) -> PathBuf {
    explicit
        .clone()
        .unwrap_or_else(|| cli.local_config.join("pods.d"))
}

/// The directories whose write access is root on this host: the pods dir, the
/// trusted keys and the CNI network configurations, local and system.
fn guarded_dirs(cli: &Cli, explicit: &Option<PathBuf>) -> Vec<(PathBuf, &'static str)> {
    vec![
        (pods_dir(cli, explicit), "pods dir"),
        (cli.local_config.join("trustedkeys"), "trust dir"),
        (cli.system_config.join("trustedkeys"), "trust dir"),
        (cli.local_config.join("net.d"), "network configuration dir"),
        (cli.system_config.join("net.d"), "network configuration dir"),
    ]
}

pub fn reconcile(cli: &Cli, args: &ReconcileArgs) -> Result<ExitCode> {
    if let Some(ReconcileCommand::Status(s)) = &args.command {
        return show_status(cli, s);
    }
    if args.backoff_initial.is_zero() || args.backoff_max < args.backoff_initial {
        bail!("--backoff-initial must be positive and at most --backoff-max");
    }
    let node = node(cli, &args.node)?;
    let stage1 = act::stage1_path(args.stage1_path.as_deref());
    let exec = Executor {
        store: super::open_store(cli)?,
        keystore: super::keystore(cli),
        pods: super::open_pods(cli)?,
        stage1,
        map: MapContext {
            insecure: cli.insecure_options,
            backoff: manifests::runtime::Backoff {
                initial_secs: args.backoff_initial.as_secs().max(1),
                max_secs: args.backoff_max.as_secs().max(1),
                reset_secs: args.backoff_reset.as_secs().max(1),
            },
            host_name: Some(
                rustix::system::uname()
                    .nodename()
                    .to_string_lossy()
                    .into_owned(),
            ),
        },
        local_config: cli.local_config.clone(),
        system_config: cli.system_config.clone(),
        cni_path: cli.cni_path(),
        children: Children::default(),
    };
    let opts = Options {
        data_dir: cli.dir.clone(),
        pods_dir: pods_dir(cli, &args.pods_dir),
        resync: args.resync.max(Duration::from_millis(100)),
        debounce: args.debounce,
        once: args.once,
        backoff: BackoffPolicy {
            initial: args.backoff_initial,
            max: args.backoff_max,
            reset: args.backoff_reset,
        },
        stop_pods_on_exit: args.stop_pods_on_exit,
        workers: args.parallel.max(1),
        lock_timeout: args.lock_timeout,
        net_check: args.net_check_interval,
        guarded: guarded_dirs(cli, &args.pods_dir),
        strict_permissions: args.strict_permissions,
        strict: args.strict,
        node,
    };
    tracing::info!(node = %opts.node.name, labels = ?opts.node.labels, "this host");
    let findings = stage0::perms::check_all(&opts.guarded);
    for f in &findings {
        eprintln!("rkt: WARNING: {f}");
    }
    if args.strict_permissions && !findings.is_empty() {
        bail!(
            "refusing to start with --strict-permissions: {} path(s) above can be written by others than root",
            findings.len()
        );
    }
    let shown = opts.pods_dir.display().to_string();
    let summary = Reconciler::new(opts, exec)?
        .run()
        .with_context(|| format!("reconciling {shown}"))?;
    if args.once && summary.problems > 0 {
        eprintln!(
            "rkt: {} of the manifests' pods or files have errors; see rkt reconcile status",
            summary.problems
        );
        return Ok(ExitCode::from(EXIT_PODS));
    }
    Ok(ExitCode::SUCCESS)
}

fn read_status(cli: &Cli) -> Result<Option<StatusFile>> {
    status::read_status(&cli.dir).context("cannot read the reconciler's status")
}

fn age(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .unwrap_or_default()
        .as_secs();
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

fn show_status(cli: &Cli, args: &StatusArgs) -> Result<ExitCode> {
    let Some(st) = read_status(cli)? else {
        bail!(
            "no reconciler has written a status under {} yet; start one with rkt reconcile",
            cli.dir.display()
        );
    };
    if let Some(format) = args.format {
        let out = match format {
            Format::Json => serde_json::to_string(&st)?,
            Format::JsonPretty => serde_json::to_string_pretty(&st)?,
        };
        println!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows: Vec<[String; 7]> =
        vec![["POD", "PHASE", "READY", "RESTARTS", "UUID", "AGE", "FILE"].map(String::from)];
    for p in &st.pods {
        rows.push([
            p.key.clone(),
            p.phase.to_string(),
            if p.ready { "yes" } else { "no" }.into(),
            p.restarts.to_string(),
            p.uuid
                .as_deref()
                .map(|u| u[..8.min(u.len())].to_string())
                .unwrap_or_else(|| "-".into()),
            age(p.last_transition_time),
            match p.line {
                Some(l) => format!("{}:{l}", p.file),
                None => p.file.clone(),
            },
        ]);
    }
    let widths: Vec<usize> = (0..7)
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
    for p in &st.pods {
        if let Some(m) = &p.message {
            println!("{}: {m}", p.key);
        }
        if let Some(e) = &p.last_error {
            println!("{}: error: {e}", p.key);
        }
        for w in &p.warnings {
            println!("{}: warning: {w}", p.key);
        }
    }
    for f in &st.files {
        for e in &f.errors {
            println!("invalid: {e}");
        }
    }
    if let Some(e) = &st.dir_error {
        println!("pods dir: {e}");
    }
    for w in &st.warnings {
        println!("WARNING: {w}");
    }
    println!(
        "pods dir {} (updated {} ago by pid {})",
        st.pods_dir.display(),
        age(st.updated_at),
        st.pid
    );
    Ok(ExitCode::SUCCESS)
}

pub fn apply(cli: &Cli, args: &ApplyArgs) -> Result<ExitCode> {
    let dir = pods_dir(cli, &args.pods_dir);
    if let Ok(findings) = stage0::perms::check_dir(&dir, "pods dir") {
        for f in findings {
            eprintln!("rkt: WARNING: {f}");
        }
    }
    let mut parsed = apply::parse_inputs(apply::read_inputs(&args.files)?);
    if args.strict {
        parsed.iter_mut().for_each(apply::Parsed::make_strict);
    }
    let mut invalid = false;
    for p in &parsed {
        for w in p.pods.iter().flat_map(|pod| &pod.warnings) {
            eprintln!("warning: {w}");
        }
        if !p.errors.is_empty() {
            invalid = true;
            println!("{} invalid", p.input.name);
            for e in &p.errors {
                eprintln!("{e}");
            }
        }
    }
    if invalid {
        eprintln!("rkt: nothing was applied: fix the errors above");
        return Ok(ExitCode::from(EXIT_PODS));
    }
    let scan = scan_dir(&dir);
    if let Some(e) = &scan.error {
        bail!("cannot read the pods dir: {e}");
    }
    let writes = match apply::plan_apply(&parsed, &scan) {
        Ok(w) => w,
        Err(problems) => {
            for p in problems {
                eprintln!("rkt: {p}");
            }
            eprintln!("rkt: nothing was applied");
            return Ok(ExitCode::from(EXIT_PODS));
        }
    };
    let suffix = if args.dry_run { " (dry run)" } else { "" };
    let host = node(cli, &args.node)?;
    let elsewhere: std::collections::BTreeMap<&PodKey, String> = parsed
        .iter()
        .flat_map(|p| &p.pods)
        .filter_map(|pod| Some((&pod.key, pod.placement.mismatch(&host)?)))
        .collect();
    let mut wanted: Vec<(PodKey, String)> = Vec::new();
    for w in &writes {
        for (key, hash, change) in &w.changes {
            println!("pod/{key} {}{suffix}", change.as_str());
            if let Some(why) = elsewhere.get(key) {
                println!("  not for this host ({}): {why}", host.name);
            }
            wanted.push((key.clone(), hash.clone()));
        }
    }
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    for w in writes.iter().filter(|w| w.differs) {
        apply::write_atomic(&dir, &w.target, &w.bytes)?;
        eprintln!("wrote {}", dir.join(&w.target).display());
    }
    if writes
        .iter()
        .all(|w| w.changes.iter().all(|(_, _, c)| *c == Change::Unchanged))
        && args.wait.is_none()
    {
        return Ok(ExitCode::SUCCESS);
    }
    match args.wait {
        Some(timeout) => wait_running(cli, &wanted, timeout),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Poll the status until every pod runs its applied spec (and is ready when it has
/// readiness probes), one failed, or the time is up.
fn wait_running(cli: &Cli, wanted: &[(PodKey, String)], timeout: Duration) -> Result<ExitCode> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(100);
    loop {
        let st = read_status(cli)?;
        let mut pending = Vec::new();
        let mut failed = Vec::new();
        for (key, hash) in wanted {
            let k = key.to_string();
            let p = st.as_ref().and_then(|s| s.pod(&k));
            match p {
                Some(p) if p.spec_hash == *hash => match p.phase {
                    Phase::Running if p.ready || !p.readiness_probes => {}
                    Phase::Succeeded | Phase::NotForThisHost => {}
                    Phase::Failed | Phase::Invalid => failed.push(p.clone()),
                    _ => pending.push((k, Some(p.clone()))),
                },
                other => pending.push((k, other.cloned())),
            }
        }
        if failed.is_empty() && pending.is_empty() {
            for (key, _) in wanted {
                let k = key.to_string();
                let phase = st.as_ref().and_then(|s| s.pod(&k)).map(|p| p.phase);
                match phase {
                    Some(Phase::NotForThisHost) => println!("pod/{key} not for this host"),
                    _ => println!("pod/{key} running"),
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        if !failed.is_empty() || Instant::now() >= deadline {
            for p in &failed {
                eprintln!("pod/{} {}", p.key, p.phase);
                if let Some(e) = &p.last_error {
                    eprintln!("  {e}");
                }
                if let Some(m) = &p.message {
                    eprintln!("  {m}");
                }
            }
            for (k, p) in &pending {
                match p {
                    Some(p) => {
                        let what = if p.phase == Phase::Running {
                            "running, not ready".to_string()
                        } else {
                            p.phase.to_string()
                        };
                        eprintln!("pod/{k} still {what}");
                        if let Some(e) = &p.last_error {
                            eprintln!("  {e}");
                        }
                        if let Some(m) = &p.message {
                            eprintln!("  {m}");
                        }
                    }
                    None => eprintln!(
                        "pod/{k} not seen by the reconciler yet (is rkt reconcile running on {}?)",
                        cli.dir.display()
                    ),
                }
            }
            if failed.is_empty() {
                eprintln!(
                    "rkt: timed out after {}",
                    humantime::format_duration(timeout)
                );
            }
            return Ok(ExitCode::from(EXIT_PODS));
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

pub fn delete(cli: &Cli, args: &DeleteArgs) -> Result<ExitCode> {
    let dir = pods_dir(cli, &args.pods_dir);
    let parsed = apply::parse_inputs(apply::read_inputs(&args.files)?);
    let mut keys: BTreeSet<PodKey> = BTreeSet::new();
    let mut invalid = false;
    for p in &parsed {
        for e in &p.errors {
            invalid = true;
            eprintln!("{e}");
        }
        keys.extend(p.pods.iter().map(|d| d.key.clone()));
    }
    if invalid {
        eprintln!("rkt: nothing was deleted: fix the errors above");
        return Ok(ExitCode::from(EXIT_PODS));
    }
    let scan = scan_dir(&dir);
    if let Some(e) = &scan.error {
        bail!("cannot read the pods dir: {e}");
    }
    let plan = apply::plan_delete(&keys, &scan);
    for f in &plan.files {
        apply::remove_file(&dir, f)?;
        eprintln!("removed {}", dir.join(f).display());
    }
    for k in &plan.deleted {
        println!("pod/{k} deleted");
    }
    for k in &plan.not_found {
        println!("pod/{k} not found");
    }
    for p in &plan.problems {
        eprintln!("rkt: {p}");
    }
    let mut ok = plan.problems.is_empty() && plan.not_found.is_empty();
    if let Some(timeout) = args.wait {
        ok &= wait_gone(cli, &plan.deleted, timeout)?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PODS)
    })
}

fn wait_gone(cli: &Cli, keys: &[PodKey], timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let st = read_status(cli)?;
        let left: Vec<String> = keys
            .iter()
            .map(|k| k.to_string())
            .filter(|k| st.as_ref().is_some_and(|s| s.pod(k).is_some()))
            .collect();
        if left.is_empty() {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            eprintln!(
                "rkt: timed out waiting for {} to be removed",
                left.join(", ")
            );
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
