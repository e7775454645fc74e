//! The `rkt` command line. Each subcommand lives in `cmd/`; all real work is done by the
//! `rkt` library so the reconciler can reuse it.

mod cmd;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stage0::insecure::InsecureOptions;
use stage0::paths::Dirs;

/// Exit code for rkt's own errors (as in rkt 1.x).
pub const EXIT_RKT_ERROR: u8 = 254;

#[derive(Debug, Parser)]
#[command(
    name = "rkt",
    version,
    about = "rkt: run App Container pods, daemonless, and keep a host's pods equal to a directory of Pod YAML"
)]
pub struct Cli {
    /// Data directory (image store, pods).
    #[arg(
        long,
        global = true,
        default_value = "/var/lib/rkt",
        value_name = "DIR"
    )]
    pub dir: PathBuf,
    /// Local configuration directory (trusted keys, net.d, pods.d, auth.d).
    #[arg(long, global = true, default_value = "/etc/rkt", value_name = "DIR")]
    pub local_config: PathBuf,
    /// Vendor configuration directory, overridden by --local-config.
    #[arg(
        long,
        global = true,
        default_value = "/usr/lib/rkt",
        value_name = "DIR"
    )]
    pub system_config: PathBuf,
    /// Comma-separated security checks to switch off: none, image, tls, http, pubkey,
    /// capabilities, paths, seccomp, image-privileges (let images' isolators widen what
    /// their apps may do), all-fetch, all-run, all.
    #[arg(long, global = true, default_value = "none", value_name = "OPTS")]
    pub insecure_options: InsecureOptions,
    /// Trust keys discovered over https for a prefix that has none, without review.
    #[arg(long, global = true)]
    pub trust_keys_from_https: bool,
    /// Print debug logs on stderr.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Where CNI plugins are looked up, a ':'-separated list of directories (default:
    /// the directory of this rkt binary, then /usr/lib/cni, then /opt/cni/bin).
    #[arg(long, global = true, value_name = "DIRS")]
    pub cni_path: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch images into the store and verify their signatures; prints their IDs.
    Fetch(cmd::fetch::FetchArgs),
    /// Trust a public key for an image name prefix (or for all images with --root).
    Trust(cmd::trust::TrustArgs),
    /// Operate on images in the store.
    #[command(subcommand)]
    Image(cmd::image::ImageCommand),
    /// Fetch images, prepare a pod and run it (rkt's IMAGE [flags] [-- args] [--- IMAGE...]).
    #[command(after_help = cmd::run::RUN_EXAMPLES)]
    Run(cmd::run::RunArgs),
    /// Prepare a pod to run later with run-prepared; prints its UUID.
    Prepare(cmd::run::PrepareArgs),
    /// Run a prepared pod.
    RunPrepared(cmd::run::RunPreparedArgs),
    /// List pods.
    List(cmd::pods::ListArgs),
    /// Show a pod's state and its apps' exit codes.
    Status(cmd::pods::StatusArgs),
    /// Stop running pods (SIGTERM, then SIGKILL after the pod's grace period).
    Stop(cmd::pods::StopArgs),
    /// Remove pods that are not running.
    Rm(cmd::pods::RmArgs),
    /// Collect exited pods after a grace period, and expired prepared pods.
    Gc(cmd::pods::GcArgs),
    /// Print a pod's manifest.
    CatManifest(cmd::pods::CatManifestArgs),
    /// Run a command inside a running app, with the app's isolation.
    Enter(cmd::pods::EnterArgs),
    /// Print an app's output.
    Logs(cmd::pods::LogsArgs),
    /// Keep this host's pods equal to a directory of Kubernetes Pod YAML
    /// (`rkt reconcile status` shows how that goes).
    #[command(after_help = cmd::reconcile::RECONCILE_EXAMPLES)]
    Reconcile(cmd::reconcile::ReconcileArgs),
    /// Validate Pod manifests and put them into the pods dir.
    #[command(after_help = cmd::reconcile::APPLY_EXAMPLES)]
    Apply(cmd::reconcile::ApplyArgs),
    /// Take Pod manifests out of the pods dir (their pods are stopped and removed).
    Delete(cmd::reconcile::DeleteArgs),
    /// Print a shell completion script: rkt completion bash >/etc/bash_completion.d/rkt
    Completion(cmd::shell::CompletionArgs),
    /// Write man pages (rkt.1, rkt-run.1, ...) into a directory.
    Man(cmd::shell::ManArgs),
    /// Print the version.
    Version,
}

impl Cli {
    /// `--cni-path`, if given.
    pub fn cni_path(&self) -> Option<stage0::pod::net::CniPath> {
        self.cni_path
            .as_deref()
            .map(stage0::pod::net::CniPath::parse)
    }

    pub fn dirs(&self) -> Dirs {
        Dirs::new(&self.dir, &self.local_config, &self.system_config)
    }
}

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    // The reconcile loop is a service: it logs what it does (info) by default.
    let service = matches!(&cli.command, Command::Reconcile(a) if a.command.is_none());
    init_logging(cli.debug, service);
    let result = match &cli.command {
        Command::Fetch(args) => cmd::fetch::run(&cli, args),
        Command::Trust(args) => cmd::trust::run(&cli, args),
        Command::Image(c) => cmd::image::run(&cli, c),
        Command::Run(args) => cmd::run::run(&cli, args),
        Command::Prepare(args) => cmd::run::prepare(&cli, args),
        Command::RunPrepared(args) => cmd::run::run_prepared(&cli, args),
        Command::List(args) => cmd::pods::list(&cli, args),
        Command::Status(args) => cmd::pods::status(&cli, args),
        Command::Stop(args) => cmd::pods::stop(&cli, args),
        Command::Rm(args) => cmd::pods::rm(&cli, args),
        Command::Gc(args) => cmd::pods::gc(&cli, args),
        Command::CatManifest(args) => cmd::pods::cat_manifest(&cli, args),
        Command::Enter(args) => cmd::pods::enter(&cli, args),
        Command::Logs(args) => cmd::pods::logs(&cli, args),
        Command::Reconcile(args) => cmd::reconcile::reconcile(&cli, args),
        Command::Apply(args) => cmd::reconcile::apply(&cli, args),
        Command::Delete(args) => cmd::reconcile::delete(&cli, args),
        Command::Completion(args) => cmd::shell::completion(args),
        Command::Man(args) => cmd::shell::man(args),
        Command::Version => {
            println!("rkt Version: {}", env!("CARGO_PKG_VERSION"));
            println!("appc Version: {}", manifests::appc::AC_VERSION);
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the error and its causes: `what failed: because: because`.
            eprintln!("rkt: {err:#}");
            ExitCode::from(EXIT_RKT_ERROR)
        }
    }
}

/// Rust ignores SIGPIPE, so printing to a closed pipe (`rkt list | head -1`) would
/// panic; like other Unix tools, rkt should just end.
fn restore_sigpipe() {
    // SAFETY: called first in main, before any thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE and no handler is involved.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_logging(debug: bool, service: bool) {
    let level = if debug {
        tracing::Level::DEBUG
    } else if service {
        tracing::Level::INFO
    } else {
        tracing::Level::WARN
    };
    let colour = log_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour)
        .init();
}

/// Colour log lines only for a person at a terminal: never in a file, a pipe or the
/// journal (escape codes there are noise), and not when `NO_COLOR` is set to anything
/// but the empty string (no-color.org).
fn log_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(log_colour(true, None));
        assert!(log_colour(true, Some(OsStr::new(""))));
        assert!(!log_colour(true, Some(OsStr::new("1"))));
        assert!(!log_colour(false, None));
        assert!(!log_colour(false, Some(OsStr::new("1"))));
    }

    /// Every `rkt ...` line of the `--help` examples parses, a `run` line's apps too.
    #[test]
    fn help_examples_are_valid_command_lines() {
        let mut checked = 0;
        for (name, text) in [
            ("run", cmd::run::RUN_EXAMPLES),
            ("apply", cmd::reconcile::APPLY_EXAMPLES),
            ("reconcile", cmd::reconcile::RECONCILE_EXAMPLES),
        ] {
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("rkt "))
                .collect();
            assert!(
                (3..=5).contains(&lines.len()),
                "{name}: {} examples",
                lines.len()
            );
            for line in lines {
                let cli = Cli::try_parse_from(line.split_whitespace())
                    .unwrap_or_else(|e| panic!("{line}: {e}"));
                if let Command::Run(args) = &cli.command {
                    cmd::run_args::parse_apps(&args.pod.apps)
                        .unwrap_or_else(|e| panic!("{line}: {e}"));
                }
                checked += 1;
            }
            let help = Cli::command()
                .find_subcommand_mut(name)
                .unwrap()
                .render_long_help()
                .to_string();
            assert!(help.contains("Examples:"), "{name} --help lacks examples");
        }
        assert!(checked >= 9);
    }

    #[test]
    fn subcommand_positionals_do_not_shadow_global_flags() {
        let cli = Cli::try_parse_from([
            "rkt",
            "--dir",
            "/data",
            "image",
            "extract",
            "example.com/x",
            "/out",
        ])
        .unwrap();
        assert_eq!(cli.dir, PathBuf::from("/data"));
    }
}
