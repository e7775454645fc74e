//! Running CNI plugin binaries: finding them on the CNI path, the environment and
//! stdin they get, and reading their result or error.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::result::{error_code_meaning, parse_error};

/// How long one plugin call may take before it is killed.
pub const PLUGIN_TIMEOUT: Duration = Duration::from_secs(120);
/// How much of a plugin's stderr (or unparsable stdout) an error keeps.
const OUTPUT_TAIL: usize = 2048;

/// Where plugin binaries are looked up, in order (`CNI_PATH`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CniPath {
    pub dirs: Vec<PathBuf>,
}

impl CniPath {
    /// A `:`-separated list of directories (empty entries are skipped).
    pub fn parse(s: &str) -> CniPath {
        CniPath {
            dirs: s
                .split(':')
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .collect(),
        }
    }

    /// The default: the directory of the running `rkt` executable (our plugins are
    /// installed beside it), then `/usr/lib/cni`, then `/opt/cni/bin`.
    pub fn default_dirs() -> CniPath {
        let mut dirs = Vec::new();
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            dirs.push(dir);
        }
        dirs.push(PathBuf::from("/usr/lib/cni"));
        dirs.push(PathBuf::from("/opt/cni/bin"));
        CniPath { dirs }
    }

    /// `self`, then the directories of `other` it does not have yet.
    pub fn then(&self, other: &CniPath) -> CniPath {
        let mut dirs = self.dirs.clone();
        for d in &other.dirs {
            if !dirs.contains(d) {
                dirs.push(d.clone());
            }
        }
        CniPath { dirs }
    }

    /// The first executable file named `plugin` in the path.
    pub fn find(&self, plugin: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        self.dirs.iter().map(|d| d.join(plugin)).find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    }

    /// The value of `CNI_PATH`.
    pub fn to_env(&self) -> OsString {
        let mut out = OsString::new();
        for (i, d) in self.dirs.iter().enumerate() {
            if i > 0 {
                out.push(":");
            }
            out.push(d.as_os_str());
        }
        out
    }
}

impl fmt::Display for CniPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_env().to_string_lossy())
    }
}

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CniCommand {
    Add,
    Del,
    Check,
}

impl CniCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
            CniCommand::Check => "CHECK",
        }
    }
}

impl fmt::Display for CniCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The environment of one plugin call.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    pub command: CniCommand,
    pub container_id: &'a str,
    /// `CNI_NETNS`; optional for DEL (the namespace may be gone).
    pub netns: Option<&'a Path>,
    pub ifname: &'a str,
    /// `CNI_ARGS` (`K=V;K2=V2`), empty for none.
    pub cni_args: &'a str,
    pub path: &'a CniPath,
}

/// Why a plugin call failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot run it")]
    Spawn(#[source] io::Error),
    #[error("it did not finish within {}; killed", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("{}", describe_failure(*.status, *.code, .msg, .details, .output))]
    Failed {
        status: ExitStatus,
        /// The CNI error code, if the plugin printed an error object.
        code: Option<u32>,
        msg: String,
        details: String,
        /// stderr (or stdout that was not an error object), trimmed to its tail.
        output: String,
    },
    #[error("its output is not a CNI result ({reason}): {output}")]
    BadOutput { reason: String, output: String },
}

fn describe_failure(
    status: ExitStatus,
    code: Option<u32>,
    msg: &str,
    details: &str,
    output: &str,
) -> String {
    let mut s = match code {
        Some(c) => match error_code_meaning(c) {
            Some(meaning) => format!("error {c} ({meaning})"),
            None => format!("error {c}"),
        },
        None => format!("it exited with {status}"),
    };
    if !msg.is_empty() {
        s.push_str(": ");
        s.push_str(msg);
    }
    if !details.is_empty() {
        s.push_str(&format!(" ({details})"));
    }
    if !output.is_empty() {
        s.push_str(&format!("; output: {output}"));
    }
    s
}

/// Run `binary` with the CNI environment of `inv` and `config` on stdin; returns
/// stdout on success. The caller's environment is passed on (plugins run tools such
/// as `iptables` from `PATH`), without any `CNI_*` variables of its own.
pub fn exec(
    binary: &Path,
    inv: &Invocation<'_>,
    config: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, PluginError> {
    let mut cmd = Command::new(binary);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CNI_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("CNI_COMMAND", inv.command.as_str())
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_PATH", inv.path.to_env());
    if let Some(ns) = inv.netns {
        cmd.env("CNI_NETNS", ns);
    }
    if !inv.cni_args.is_empty() {
        cmd.env("CNI_ARGS", inv.cni_args);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_retrying(&mut cmd).map_err(PluginError::Spawn)?;
    let pid = child.id();
    // stdin is written by a thread of its own: a plugin that fails early may never
    // read it, and a large prevResult could fill the pipe.
    let stdin = child.stdin.take();
    let input = config.to_vec();
    let writer = thread::spawn(move || {
        if let Some(mut s) = stdin {
            // A plugin that exits without reading closes the pipe: not our error.
            let _ = s.write_all(&input);
        }
    });
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(timeout) {
        Ok(out) => out.map_err(PluginError::Spawn)?,
        Err(_) => {
            if let Some(pid) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            let _ = rx.recv();
            let _ = writer.join();
            return Err(PluginError::Timeout(timeout));
        }
    };
    let _ = writer.join();
    if output.status.success() {
        return Ok(output.stdout);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Plugins print their error object on stdout (some on stderr).
    let body = parse_error(&stdout).or_else(|| parse_error(&stderr));
    let output_text = match &body {
        Some(_) => tail(stderr.trim()),
        None if !stderr.trim().is_empty() => tail(stderr.trim()),
        None => tail(stdout.trim()),
    };
    Err(match body {
        Some(b) => PluginError::Failed {
            status: output.status,
            code: Some(b.code),
            msg: b.msg,
            details: b.details,
            output: output_text,
        },
        None => PluginError::Failed {
            status: output.status,
            code: None,
            msg: String::new(),
            details: String::new(),
            output: output_text,
        },
    })
}

/// Spawn, retrying a few times on ETXTBSY: a plugin binary that was just written
/// (installed, upgraded) may still be open for writing in a child another thread of
/// this process forked before it exec'd.
fn spawn_retrying(cmd: &mut Command) -> io::Result<std::process::Child> {
    let mut pause = Duration::from_millis(5);
    for _ in 0..6 {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::TXTBSY.raw_os_error()) => {
                thread::sleep(pause);
                pause *= 2;
            }
            other => return other,
        }
    }
    cmd.spawn()
}

/// The last [`OUTPUT_TAIL`] bytes of `s` (on a character boundary), one line.
pub fn tail(s: &str) -> String {
    let start = s
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| s.len() - i <= OUTPUT_TAIL)
        .unwrap_or(s.len());
    s[start..].replace('\n', " | ")
}
