//! Driving the real `rkt` binary from tests, each test in its own temporary roots.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Path to the `rkt` binary of this workspace, built (once per test process) with the
/// same cargo that runs the tests, so it is never stale.
pub fn rkt_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "reconciler",
                "-p",
                "stage1",
                "--bins",
            ])
            .current_dir(&workspace)
            .status()
            .expect("run cargo build for the rkt binary");
        assert!(status.success(), "cargo build -p reconciler failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"));
        let bin = target.join("debug").join("rkt");
        assert!(bin.is_file(), "no rkt binary at {}", bin.display());
        bin
    })
    .clone()
}

/// A throwaway rkt installation: `--dir`, `--local-config` and `--system-config` under
/// one temporary directory, removed on drop — after every pod still running was
/// killed and every pod collected (`rkt gc`, which runs `stage1 gc`), so no cgroup,
/// process or mount of a pod outlives the test, even when it fails.
pub struct Rkt {
    pub root: tempfile::TempDir,
}

impl Drop for Rkt {
    fn drop(&mut self) {
        if self.data_dir().join("pods").is_dir() {
            self.collect_pods(&[]);
        }
    }
}

impl Default for Rkt {
    fn default() -> Self {
        Self::new()
    }
}

impl Rkt {
    pub fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("rkt-e2e-")
            .tempdir()
            .expect("create temp root");
        Rkt { root }
    }

    /// Kill every running pod (all first, then wait for each) and collect every pod,
    /// prepared ones too. `flags`: global flags for each command (say `--cni-path`).
    pub fn collect_pods(&self, flags: &[&str]) {
        let run = |rest: &[&str]| self.run(flags.iter().chain(rest));
        let out = run(&["list", "--format=json"]);
        let pods: Vec<serde_json::Value> = serde_json::from_str(&out.stdout()).unwrap_or_default();
        let running: Vec<&str> = pods
            .iter()
            .filter(|p| p["state"] == "running")
            .filter_map(|p| p["uuid"].as_str())
            .collect();
        for uuid in &running {
            let _ = run(&["stop", "--force", uuid]);
        }
        for uuid in &running {
            let _ = run(&["status", "--wait=20s", uuid]);
        }
        let _ = run(&["gc", "--grace-period=0s", "--expire-prepared=0s"]);
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }
    pub fn local_config(&self) -> PathBuf {
        self.root.path().join("etc")
    }
    pub fn system_config(&self) -> PathBuf {
        self.root.path().join("usr-lib")
    }
    /// A scratch directory for the test's own files.
    pub fn scratch(&self) -> PathBuf {
        let p = self.root.path().join("scratch");
        std::fs::create_dir_all(&p).expect("create scratch dir");
        p
    }

    /// A command for `rkt ARGS` with this installation's global flags.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(rkt_bin());
        cmd.arg("--dir")
            .arg(self.data_dir())
            .arg("--local-config")
            .arg(self.local_config())
            .arg("--system-config")
            .arg(self.system_config())
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Run `rkt ARGS` to completion.
    pub fn run<I, S>(&self, args: I) -> RunResult
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = self.command(args);
        let shown = format!("{cmd:?}");
        let output = cmd.output().expect("spawn rkt");
        RunResult { cmd: shown, output }
    }

    /// Run and require success; returns stdout.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.run(args).success().stdout()
    }

    /// Every file under `cas/blob`.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        files_under(&self.data_dir().join("cas/blob"))
    }

    /// Every file under `cas/tmp` (leftovers of interrupted work).
    pub fn tmp_files(&self) -> Vec<PathBuf> {
        files_under(&self.data_dir().join("cas/tmp"))
    }

    /// `rkt image list --format=json`, parsed.
    pub fn images(&self) -> Vec<serde_json::Value> {
        let out = self.ok(["image", "list", "--format=json"]);
        serde_json::from_str(&out).expect("image list JSON")
    }
}

impl Rkt {
    /// The apps' cgroups in a v1 `devices` hierarchy, from every pod's `cgroups` list
    /// (leaves `.../rkt/<uuid>/<app>` only).
    pub fn app_device_cgroups(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for list in files_under(&self.data_dir().join("pods")) {
            if list.file_name().is_none_or(|n| n != "cgroups") {
                continue;
            }
            let Ok(bytes) = std::fs::read(&list) else {
                continue;
            };
            let dirs: Vec<PathBuf> = serde_json::from_slice(&bytes).unwrap_or_default();
            out.extend(dirs.into_iter().filter(|d| {
                d.join("devices.allow").exists()
                    && d.parent()
                        .and_then(Path::parent)
                        .is_some_and(|p| p.ends_with("rkt"))
            }));
        }
        out
    }

    /// Lift the device cgroup of every app of this installation by hand (`a` to its
    /// `devices.allow`): what a test does to show an attack works without it.
    /// Returns how many cgroups were changed.
    pub fn lift_device_cgroups(&self) -> usize {
        let dirs = self.app_device_cgroups();
        for d in &dirs {
            std::fs::write(d.join("devices.allow"), "a")
                .unwrap_or_else(|e| panic!("lift {}: {e}", d.display()));
        }
        dirs.len()
    }
}

/// All regular files below `dir` (none if it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => out.extend(files_under(&p)),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
    out.sort();
    out
}

/// The outcome of one `rkt` run, with assertions that print everything on failure.
pub struct RunResult {
    pub cmd: String,
    pub output: Output,
}

impl RunResult {
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    fn describe(&self) -> String {
        format!(
            "{}\nexit: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.cmd,
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }
    /// Require exit 0.
    pub fn success(self) -> Self {
        assert!(
            self.output.status.success(),
            "rkt failed:\n{}",
            self.describe()
        );
        self
    }
    /// Require the given exit code and that stderr contains every needle.
    pub fn fails_with(self, code: i32, needles: &[&str]) -> Self {
        assert_eq!(
            self.code(),
            Some(code),
            "unexpected exit:\n{}",
            self.describe()
        );
        let err = self.stderr();
        for n in needles {
            assert!(err.contains(n), "stderr lacks {n:?}:\n{}", self.describe());
        }
        self
    }
}

/// sha512 of a file's bytes, as `sha512-<hex>`.
pub fn sha512_file(path: &Path) -> String {
    use sha2::{Digest, Sha512};
    let bytes = std::fs::read(path).expect("read file to hash");
    format!("sha512-{}", hex::encode(Sha512::digest(bytes)))
}

/// Whether we run as root (tests that need it say so loudly when not).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Build the example busybox ACI with the project's own script; returns its path.
pub fn busybox_aci(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(format!("{}.aci", name.replace('/', "_")));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/build-busybox-aci.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(&out)
        .arg(name)
        .stdout(Stdio::null())
        .status()
        .expect("run build-busybox-aci.sh");
    assert!(status.success(), "build-busybox-aci.sh failed");
    out
}

/// The static `rkt-probe` binary (built once per test process, release, static).
pub fn probe_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = Command::new(cargo)
            .args([
                "rustc",
                "--quiet",
                "--release",
                "-p",
                "e2e",
                "--bin",
                "rkt-probe",
                "--",
            ])
            .args(["-C", "target-feature=+crt-static"])
            .current_dir(&workspace)
            .status()
            .expect("run cargo rustc for rkt-probe");
        assert!(status.success(), "building rkt-probe failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"));
        target.join("release").join("rkt-probe")
    })
    .clone()
}

/// The busybox example image with `/probe` (the static rkt-probe) added.
pub fn probe_aci(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(format!("{}-probe.aci", name.replace('/', "_")));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/build-busybox-aci.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(&out)
        .arg(name)
        .env("ACI_EXTRA", format!("{}:/probe", probe_bin().display()))
        .stdout(Stdio::null())
        .status()
        .expect("run build-busybox-aci.sh");
    assert!(status.success(), "build-busybox-aci.sh failed");
    out
}

/// A throwaway installation with one image fetched (without signature check); on
/// drop, its [`Rkt`] kills and collects every pod.
pub struct Fetched {
    pub rkt: Rkt,
    pub aci: PathBuf,
}

impl Fetched {
    /// Fetch `aci` into `rkt`'s store.
    pub fn new(rkt: Rkt, aci: PathBuf) -> Fetched {
        rkt.ok(["--insecure-options=image", "fetch", aci.to_str().unwrap()]);
        Fetched { rkt, aci }
    }
}

/// A child process (a pod run in the background, say) that is SIGKILLed and reaped
/// when dropped, so a failing test leaves nothing running; [`Background::output`]
/// waits for it instead.
pub struct Background(Option<std::process::Child>);

impl Background {
    /// Spawn `cmd` (its stdio as the caller set it up).
    pub fn spawn(cmd: &mut Command) -> Self {
        Background(Some(cmd.spawn().expect("spawn a background process")))
    }

    /// Its PID.
    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, std::process::Child::id)
    }

    /// Wait for it to exit and collect what it printed (piped stdio).
    pub fn output(mut self) -> Output {
        self.0
            .take()
            .expect("not waited for yet")
            .wait_with_output()
            .expect("wait for a background process")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
