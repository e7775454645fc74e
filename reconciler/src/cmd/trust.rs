//! `rkt trust [--prefix=PREFIX | --root] [KEY...]`

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use stage0::image::fetch::discovery;
use stage0::image::fetch::http::HttpClient;
use stage0::image::trust::{KeyInfo, Keystore, TrustScope};

use crate::Cli;

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Image name prefix the keys are trusted for (example.com/app).
    #[arg(long, value_name = "PREFIX", conflicts_with = "root")]
    pub prefix: Option<String>,
    /// Trust the keys for every image (root keys). Only from files, never discovered.
    #[arg(long)]
    pub root: bool,
    /// Do not ask before trusting a key (for scripts that checked the fingerprint already).
    #[arg(long)]
    pub skip_fingerprint_review: bool,
    /// Allow discovering or downloading keys over plain http.
    #[arg(long)]
    pub insecure_allow_http: bool,
    /// Armored public key files or http(s) URLs. Without any, the keys are discovered
    /// through the prefix's ac-discovery-pubkeys.
    #[arg(value_name = "KEY")]
    pub keys: Vec<String>,
}

pub fn run(cli: &Cli, args: &TrustArgs) -> Result<ExitCode> {
    let scope = match (&args.prefix, args.root) {
        (Some(p), false) => TrustScope::Prefix(p.clone()),
        (None, true) => TrustScope::Root,
        _ => bail!("say what the keys are trusted for: --prefix=PREFIX or --root"),
    };
    let mut insecure = cli.insecure_options;
    insecure.http |= args.insecure_allow_http;
    let client = HttpClient::new(insecure);

    let mut sources: Vec<String> = args.keys.clone();
    if sources.is_empty() {
        let TrustScope::Prefix(prefix) = &scope else {
            bail!("--root takes key files; root keys are never discovered");
        };
        let found = discovery::discover_pubkeys(&client, prefix, insecure)
            .with_context(|| format!("cannot discover keys for prefix {prefix}"))?;
        if found.is_empty() {
            bail!("no ac-discovery-pubkeys found for prefix {prefix}");
        }
        sources = found;
    }

    let keystore = super::keystore(cli);
    for source in &sources {
        let armored = read_key(&client, source)?;
        let info =
            Keystore::inspect(&armored).with_context(|| format!("cannot read key {source}"))?;
        if !args.skip_fingerprint_review && !review(source, &scope, &info)? {
            eprintln!("Not trusting key {}", info.fingerprint);
            continue;
        }
        let (info, path) = keystore
            .add(&armored, &scope)
            .with_context(|| format!("cannot trust key {source}"))?;
        eprintln!(
            "Added key {} ({}) for {} at {}",
            info.fingerprint,
            user_ids(&info),
            describe(&scope),
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn read_key(client: &HttpClient, source: &str) -> Result<Vec<u8>> {
    if source.starts_with("http://") || source.starts_with("https://") {
        discovery::fetch_pubkey(client, source)
            .with_context(|| format!("cannot download key {source}"))
    } else {
        let path = source.strip_prefix("file://").unwrap_or(source);
        std::fs::read(path).with_context(|| format!("cannot read key file {path}"))
    }
}

fn describe(scope: &TrustScope) -> String {
    match scope {
        TrustScope::Prefix(p) => format!("prefix {p:?}"),
        TrustScope::Root => "all images (root key)".to_string(),
    }
}

fn user_ids(info: &KeyInfo) -> String {
    if info.user_ids.is_empty() {
        "no user id".to_string()
    } else {
        info.user_ids.join(", ")
    }
}

/// Show the key and ask. Without a terminal to ask on, refuse: trusting a key must be
/// a decision, so scripts pass --skip-fingerprint-review.
fn review(source: &str, scope: &TrustScope, info: &KeyInfo) -> Result<bool> {
    let mut err = std::io::stderr();
    writeln!(err, "Key from {source} for {}:", describe(scope))?;
    writeln!(err, "  fingerprint: {}", info.fingerprint)?;
    writeln!(err, "  algorithm:   {}", info.algorithm)?;
    for uid in &info.user_ids {
        writeln!(err, "  user id:     {uid}")?;
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to trust key {} without review: no terminal to ask on (check the fingerprint and pass --skip-fingerprint-review)", info.fingerprint);
    }
    write!(err, "Are you sure you want to trust this key (yes/no)? ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
