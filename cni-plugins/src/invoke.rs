//! Running a delegated plugin (the IPAM plugin of `bridge`): found through
//! `CNI_PATH`, given the same `CNI_*` values and the full configuration.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use crate::error::{code, CniError};
use crate::skel::{CmdArgs, Command};
use crate::types::CniResult;

/// Find `plugin_type` in the `CNI_PATH` directories.
pub fn find_plugin(plugin_type: &str, path: &[PathBuf]) -> Result<PathBuf, CniError> {
    if plugin_type.is_empty()
        || plugin_type.contains('/')
        || plugin_type == "."
        || plugin_type == ".."
    {
        return Err(CniError::config(format!(
            "invalid plugin type {plugin_type:?}"
        )));
    }
    path.iter()
        .map(|dir| dir.join(plugin_type))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            let dirs: Vec<String> = path.iter().map(|p| p.display().to_string()).collect();
            CniError::config(format!("failed to find plugin {plugin_type:?} in CNI_PATH"))
                .with_details(format!("searched [{}]", dirs.join(", ")))
        })
}

/// A delegated plugin that has been started and not yet waited for.
#[derive(Debug)]
pub struct Pending {
    child: std::process::Child,
    plugin: PathBuf,
}

/// Start `plugin` with `command`, the `CNI_*` values of `args` and `stdin`,
/// without waiting for it (so the caller can do other work meanwhile).
pub fn spawn_plugin(
    plugin: &Path,
    command: Command,
    args: &CmdArgs,
    stdin: &[u8],
) -> Result<Pending, CniError> {
    let path: Vec<String> = args.path.iter().map(|p| p.display().to_string()).collect();
    let mut cmd = Process::new(plugin);
    cmd.env("CNI_COMMAND", command.as_str())
        .env("CNI_CONTAINERID", &args.container_id)
        .env("CNI_IFNAME", &args.ifname)
        .env("CNI_ARGS", &args.args)
        .env("CNI_PATH", path.join(":"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match &args.netns {
        Some(ns) => cmd.env("CNI_NETNS", ns),
        None => cmd.env_remove("CNI_NETNS"),
    };
    let mut child = cmd.spawn().map_err(|e| spawn_error(plugin, e))?;
    if let Some(mut input) = child.stdin.take() {
        // A plugin that exits without reading its stdin is judged by its output.
        let _ = input.write_all(stdin);
    }
    Ok(Pending {
        child,
        plugin: plugin.to_path_buf(),
    })
}

fn spawn_error(plugin: &Path, e: std::io::Error) -> CniError {
    CniError::new(
        code::DELEGATE_FAILED,
        format!("cannot run plugin {}", plugin.display()),
    )
    .with_details(e.to_string())
}

impl Pending {
    /// Wait for the plugin: its stdout on success, its error (code kept) on failure.
    pub fn wait(self) -> Result<Vec<u8>, CniError> {
        let plugin = self.plugin;
        let name = plugin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let output = self
            .child
            .wait_with_output()
            .map_err(|e| spawn_error(&plugin, e))?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        // Errors are JSON on stdout (libcni reads them there); fall back to stderr.
        if let Ok(err) = serde_json::from_slice::<CniError>(&output.stdout) {
            return Err(CniError {
                msg: format!("{name}: {}", err.msg),
                ..err
            });
        }
        let text = if output.stdout.is_empty() {
            String::from_utf8_lossy(&output.stderr).trim().to_string()
        } else {
            String::from_utf8_lossy(&output.stdout).trim().to_string()
        };
        Err(CniError::new(
            code::DELEGATE_FAILED,
            format!("plugin {name} failed ({})", output.status),
        )
        .with_details(text))
    }

    /// Wait for an ADD: the result in the 1.0 form.
    pub fn wait_result(self) -> Result<CniResult, CniError> {
        let name = self
            .plugin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let out = self.wait()?;
        CniResult::from_slice(&out).map_err(|e| {
            CniError::new(
                code::DELEGATE_FAILED,
                format!("plugin {name} returned an unreadable result"),
            )
            .with_details(e.to_string())
        })
    }
}

/// Run `plugin` with `command`, the `CNI_*` values of `args` and `stdin`; return
/// its stdout on success, its error (code kept) on failure.
pub fn exec_plugin(
    plugin: &Path,
    command: Command,
    args: &CmdArgs,
    stdin: &[u8],
) -> Result<Vec<u8>, CniError> {
    spawn_plugin(plugin, command, args, stdin)?.wait()
}

/// Start a delegate found through `CNI_PATH` without waiting for it.
pub fn spawn_delegate(
    plugin_type: &str,
    command: Command,
    args: &CmdArgs,
    stdin: &[u8],
) -> Result<Pending, CniError> {
    spawn_plugin(&find_plugin(plugin_type, &args.path)?, command, args, stdin)
}

/// ADD through a delegate; its result is returned in the 1.0 form.
pub fn delegate_add(
    plugin_type: &str,
    args: &CmdArgs,
    stdin: &[u8],
) -> Result<CniResult, CniError> {
    spawn_delegate(plugin_type, Command::Add, args, stdin)?.wait_result()
}

/// DEL or CHECK through a delegate.
pub fn delegate(
    plugin_type: &str,
    command: Command,
    args: &CmdArgs,
    stdin: &[u8],
) -> Result<(), CniError> {
    let plugin = find_plugin(plugin_type, &args.path)?;
    exec_plugin(&plugin, command, args, stdin).map(|_| ())
}
