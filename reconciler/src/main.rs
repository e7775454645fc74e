//! The `rkt` command line. Each subcommand lives in `cmd/`; all real work is done by the
//! `rkt` library so the reconciler can reuse it.

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rkt::insecure::InsecureOptions;
use rkt::paths::Dirs;

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
    /// capabilities, paths, seccomp, all-fetch, all-run, all.
    #[arg(long, global = true, default_value = "none", value_name = "OPTS")]
    pub insecure_options: InsecureOptions,
    /// Trust keys discovered over https for a prefix that has none, without review.
    #[arg(long, global = true)]
    pub trust_keys_from_https: bool,
    /// Print debug logs on stderr.
    #[arg(long, global = true)]
    pub debug: bool,
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
    /// Print the version.
    Version,
}

impl Cli {
    pub fn dirs(&self) -> Dirs {
        Dirs::new(&self.dir, &self.local_config, &self.system_config)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.debug);
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
        Command::Version => {
            println!("rkt Version: {}", env!("CARGO_PKG_VERSION"));
            println!("appc Version: {}", manifests::appc::AC_VERSION);
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("rkt: {}", cmd::format_error(&err));
            ExitCode::from(EXIT_RKT_ERROR)
        }
    }
}

fn init_logging(debug: bool) {
    let level = if debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::WARN
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
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
