//! `rkt completion SHELL` and `rkt man DIR`: shell completions and man pages, both
//! generated from the command-line definition, so they cannot drift from it.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::Cli;

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for: bash, zsh, fish (or elvish, powershell).
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Where to write rkt.1 and one page per subcommand (rkt-run.1, rkt-image-list.1,
    /// ...); created if missing.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn completion(args: &CompletionArgs) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    write_completion(args.shell, &mut out);
    Ok(ExitCode::SUCCESS)
}

pub fn man(args: &ManArgs) -> Result<ExitCode> {
    let pages = write_man_pages(Cli::command(), &args.dir)
        .with_context(|| format!("cannot write man pages into {}", args.dir.display()))?;
    for page in pages {
        println!("{}", page.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The completion script for `shell`.
pub fn write_completion(shell: Shell, out: &mut dyn io::Write) {
    let mut cmd = Cli::command();
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, out);
}

/// Write `rkt.1` and a page for each visible subcommand, nested ones included
/// (`rkt-image-list.1`) into `dir`; returns the pages written, parents first.
pub fn write_man_pages(cmd: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    // Building names each subcommand after its path (`rkt-image-list`), which becomes
    // its page's title and file name; `help` is not a command worth a page.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    write_pages(cmd, dir, &mut pages)?;
    Ok(pages)
}

fn write_pages(cmd: clap::Command, dir: &Path, pages: &mut Vec<PathBuf>) -> io::Result<()> {
    let subcommands: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let man = clap_mangen::Man::new(cmd)
        .manual("rkt Manual")
        .source(format!("rkt {}", env!("CARGO_PKG_VERSION")));
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)?;
    // clap_mangen puts the text after the help (our examples) under "EXTRA"; man pages
    // call that section EXAMPLES.
    let page =
        String::from_utf8_lossy(&page).replacen(".SH EXTRA\nExamples:\n", ".SH EXAMPLES\n", 1);
    std::fs::write(&path, page)?;
    pages.push(path);
    for sub in subcommands {
        write_pages(sub, dir, pages)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Top-level subcommand names, as the user types them (`run-prepared`).
    fn subcommand_names() -> Vec<String> {
        Cli::command()
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.get_name().to_string())
            .collect()
    }

    #[test]
    fn bash_completion_offers_every_subcommand_and_global_flag() {
        let mut out = Vec::new();
        write_completion(Shell::Bash, &mut out);
        let script = String::from_utf8(out).unwrap();
        assert!(
            script.contains("complete -F _rkt"),
            "not a bash completion:\n{script}"
        );
        let names = subcommand_names();
        assert!(names.len() >= 20, "too few subcommands: {names:?}");
        for name in names
            .iter()
            .map(String::as_str)
            .chain(["--dir", "--insecure-options"])
        {
            assert!(
                script.split_whitespace().any(|w| w == name),
                "bash completion does not offer {name}"
            );
        }
        // Nested subcommands and their flags too.
        assert!(script.contains("image,list)"), "no rkt image list");
        assert!(script.contains("--pods-dir"), "no reconcile flag");
    }

    #[test]
    fn zsh_and_fish_completions_name_the_subcommands() {
        for shell in [Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            write_completion(shell, &mut out);
            let script = String::from_utf8(out).unwrap();
            for name in subcommand_names() {
                assert!(script.contains(&name), "{shell} completion lacks {name}");
            }
        }
    }

    #[test]
    fn man_pages_one_per_subcommand_nested_ones_included() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("man1");
        let pages = write_man_pages(Cli::command(), &out).unwrap();

        let mut expected: Vec<String> = vec!["rkt.1".into()];
        for sub in Cli::command()
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
        {
            expected.push(format!("rkt-{}.1", sub.get_name()));
            for nested in sub.get_subcommands().filter(|s| !s.is_hide_set()) {
                expected.push(format!("rkt-{}-{}.1", sub.get_name(), nested.get_name()));
            }
        }
        let mut on_disk: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        expected.sort();
        assert_eq!(on_disk, expected);
        assert_eq!(pages.len(), expected.len());
        for name in ["rkt-run.1", "rkt-image-list.1", "rkt-reconcile-status.1"] {
            assert!(expected.iter().any(|e| e == name), "no page {name}");
        }
        assert!(!expected.iter().any(|e| e.contains("help")), "{expected:?}");

        let run = std::fs::read_to_string(out.join("rkt-run.1")).unwrap();
        assert!(
            run.starts_with(".ie"),
            "not roff: {}",
            &run[..run.len().min(80)]
        );
        assert!(run.contains(".TH rkt-run 1"), "wrong title:\n{run}");
        assert!(run.contains("stage1"), "run page lacks its flags");
        assert!(
            run.contains(".SH EXAMPLES\n  # A signed image"),
            "run page lacks the examples:\n{run}"
        );
    }
}
