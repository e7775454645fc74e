//! The pod's cgroups: one per app, under `rkt/<pod uuid>/<app>` in each hierarchy.
//!
//! cgroup v1 (one hierarchy per controller, `<root>/<controller>`) and v2 (one unified
//! hierarchy at `<root>`) are both supported; which one is in use is read from the root
//! (`cgroup.controllers` exists only on v2). Every function takes the root or the
//! directories as parameters so tests can point them at a temporary tree.

use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use manifests::runtime::{RuntimeApp, RuntimeConfig};
use rustix::process::{kill_process, Pid, Signal};

use crate::devices::{self, Allow, DeviceError};

/// Period used for the CPU quota, in microseconds (the kernel's default).
pub const CPU_PERIOD_US: u64 = 100_000;
/// The smallest quota the kernel accepts, in microseconds.
const CPU_MIN_QUOTA_US: u64 = 1_000;
/// Controllers a pod uses: v1 hierarchies joined, v2 controllers enabled.
const CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];
/// The v1 hierarchy of the device cgroup (v2 has no controller: a BPF program).
const DEVICES_V1: &str = "devices";
/// `statfs.f_type` of cgroup2.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// Directory under each hierarchy that holds all pods.
const RKT_DIR: &str = "rkt";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup root {path} is not a directory")]
    NoRoot { path: PathBuf },
    #[error("{what} {name:?} cannot be used as a cgroup name")]
    InvalidName { what: &'static str, name: String },
    #[error(
        "app {app} needs the {controller} cgroup controller, which is not available under {root}"
    )]
    MissingController {
        app: String,
        controller: &'static str,
        root: PathBuf,
    },
    #[error("cannot create cgroup {path}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot write {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot remove cgroup {path}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("cgroup {path} is still busy after {waited:?}")]
    Busy { path: PathBuf, waited: Duration },
    #[error("refusing to remove {path}: not a pod cgroup (no `rkt/<pod>` in its path)")]
    NotPodCgroup { path: PathBuf },
    #[error("app {app}")]
    Devices { app: String, source: DeviceError },
    #[error("invalid cgroup list {path}")]
    List {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Which cgroup version is mounted at `root`.
pub fn detect(root: &Path) -> Result<Version, CgroupError> {
    if root.join("cgroup.controllers").is_file() {
        Ok(Version::V2)
    } else if root.is_dir() {
        Ok(Version::V1)
    } else {
        Err(CgroupError::NoRoot {
            path: root.to_path_buf(),
        })
    }
}

/// The cgroups of one app, with the limits to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCgroups {
    pub app: String,
    /// Every directory the app joins (one per v1 hierarchy; one on v2).
    pub dirs: Vec<PathBuf>,
    /// The directory holding the memory controller's files, if any.
    pub memory: Option<PathBuf>,
    /// The directory holding the cpu controller's files, if any.
    pub cpu: Option<PathBuf>,
    /// v1: the directory in the `devices` hierarchy, if it is mounted. v2: the app's
    /// cgroup, to which the device program is attached.
    pub devices: Option<PathBuf>,
    /// The devices the app may open (see `devices::allow_list`).
    pub device_allow: Allow,
    pub memory_limit_bytes: Option<u64>,
    pub cpu_millis: Option<u64>,
}

/// All cgroups made for a pod. Computed by [`plan`] (no I/O besides reading the root),
/// made by [`PodCgroups::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroups {
    pub version: Version,
    pub root: PathBuf,
    /// `rkt/<uuid>` in each hierarchy.
    pub pod_dirs: Vec<PathBuf>,
    pub apps: Vec<AppCgroups>,
    /// v2 only: the controllers to enable in `cgroup.subtree_control` on the way down.
    pub enable: Vec<&'static str>,
}

fn check_name(what: &'static str, name: &str) -> Result<(), CgroupError> {
    let mut comps = Path::new(name).components();
    match (comps.next(), comps.next()) {
        (Some(Component::Normal(_)), None) if !name.contains('/') => Ok(()),
        _ => Err(CgroupError::InvalidName {
            what,
            name: name.to_string(),
        }),
    }
}

/// Work out the cgroup directories of pod `cfg` under `root`, and the devices each
/// app may open; `console` is the terminal bound at an interactive pod's
/// `/dev/console` (major, minor).
pub fn plan(
    root: &Path,
    cfg: &RuntimeConfig,
    console: Option<(u32, u32)>,
) -> Result<PodCgroups, CgroupError> {
    let (uuid, apps) = (cfg.uuid.as_str(), cfg.apps.as_slice());
    check_name("pod uuid", uuid)?;
    for app in apps {
        check_name("app name", &app.name)?;
    }
    let allow = |app: &RuntimeApp| {
        devices::allow_list(cfg, app, console).map_err(|source| CgroupError::Devices {
            app: app.name.clone(),
            source,
        })
    };
    let version = detect(root)?;
    let missing = |app: &RuntimeApp, controller| CgroupError::MissingController {
        app: app.name.clone(),
        controller,
        root: root.to_path_buf(),
    };
    match version {
        Version::V1 => {
            // One hierarchy per controller; a comounted one (`cpu` -> `cpu,cpuacct`) is
            // used once.
            let mut hierarchies: Vec<(&'static str, PathBuf)> = Vec::new();
            for ctrl in CONTROLLERS.into_iter().chain([DEVICES_V1]) {
                let dir = root.join(ctrl);
                if !dir.is_dir() {
                    continue;
                }
                let canonical = fs::canonicalize(&dir).unwrap_or(dir);
                if !hierarchies.iter().any(|(_, d)| *d == canonical) {
                    hierarchies.push((ctrl, canonical));
                }
            }
            let find = |ctrl: &str| -> Option<PathBuf> {
                let dir = fs::canonicalize(root.join(ctrl)).ok()?;
                hierarchies.iter().any(|(_, d)| *d == dir).then_some(dir)
            };
            let memory_h = find("memory");
            let cpu_h = find("cpu");
            let devices_h = find(DEVICES_V1);
            if devices_h.is_none() {
                eprintln!(
                    "stage1: no v1 devices hierarchy under {}: the apps get no device \
                     cgroup (nodev still applies)",
                    root.display()
                );
            }
            let pod_dirs: Vec<PathBuf> = hierarchies
                .iter()
                .map(|(_, d)| d.join(RKT_DIR).join(uuid))
                .collect();
            let mut out = Vec::new();
            for app in apps {
                if app.memory_limit_bytes.is_some() && memory_h.is_none() {
                    return Err(missing(app, "memory"));
                }
                if app.cpu_millis.is_some() && cpu_h.is_none() {
                    return Err(missing(app, "cpu"));
                }
                let leaf = |h: &Path| h.join(RKT_DIR).join(uuid).join(&app.name);
                out.push(AppCgroups {
                    app: app.name.clone(),
                    dirs: pod_dirs.iter().map(|p| p.join(&app.name)).collect(),
                    memory: memory_h.as_deref().map(leaf),
                    cpu: cpu_h.as_deref().map(leaf),
                    devices: devices_h.as_deref().map(leaf),
                    device_allow: allow(app)?,
                    memory_limit_bytes: app.memory_limit_bytes,
                    cpu_millis: app.cpu_millis,
                });
            }
            Ok(PodCgroups {
                version,
                root: root.to_path_buf(),
                pod_dirs,
                apps: out,
                enable: Vec::new(),
            })
        }
        Version::V2 => {
            let path = root.join("cgroup.controllers");
            let available = fs::read_to_string(&path).map_err(|source| CgroupError::Read {
                path: path.clone(),
                source,
            })?;
            let available: Vec<&str> = available.split_whitespace().collect();
            let enable: Vec<&'static str> = CONTROLLERS
                .into_iter()
                .filter(|c| available.contains(c))
                .collect();
            let pod_dir = root.join(RKT_DIR).join(uuid);
            let mut out = Vec::new();
            for app in apps {
                if app.memory_limit_bytes.is_some() && !enable.contains(&"memory") {
                    return Err(missing(app, "memory"));
                }
                if app.cpu_millis.is_some() && !enable.contains(&"cpu") {
                    return Err(missing(app, "cpu"));
                }
                let dir = pod_dir.join(&app.name);
                out.push(AppCgroups {
                    app: app.name.clone(),
                    dirs: vec![dir.clone()],
                    memory: enable.contains(&"memory").then(|| dir.clone()),
                    cpu: enable.contains(&"cpu").then(|| dir.clone()),
                    devices: Some(dir.clone()),
                    device_allow: allow(app)?,
                    memory_limit_bytes: app.memory_limit_bytes,
                    cpu_millis: app.cpu_millis,
                });
            }
            Ok(PodCgroups {
                version,
                root: root.to_path_buf(),
                pod_dirs: vec![pod_dir],
                apps: out,
                enable,
            })
        }
    }
}

/// The value written to v1 `cpu.cfs_quota_us` (and the first field of v2 `cpu.max`).
pub fn cpu_quota_us(millis: u64) -> u64 {
    (millis.saturating_mul(CPU_PERIOD_US) / 1000).max(CPU_MIN_QUOTA_US)
}

fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    let err = |source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    };
    // cgroup files exist already; `create` only matters for a plain directory tree.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(err)?;
    f.write_all(value.as_bytes()).map_err(err)
}

fn make_dir(path: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::Create {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Enable `controllers` for the children of `dir` (v2). Each controller is written on
/// its own so one the kernel refuses names itself in the error.
fn enable_controllers(dir: &Path, controllers: &[&str]) -> Result<(), CgroupError> {
    let file = dir.join("cgroup.subtree_control");
    let current = fs::read_to_string(&file).unwrap_or_default();
    let current: Vec<&str> = current.split_whitespace().collect();
    for c in controllers {
        if !current.contains(c) {
            write_file(&file, &format!("+{c}"))?;
        }
    }
    Ok(())
}

impl PodCgroups {
    /// Every directory made for the pod, leaves first: what `gc` removes.
    pub fn dirs_leaf_first(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.apps.iter().flat_map(|a| a.dirs.clone()).collect();
        out.extend(self.pod_dirs.iter().cloned());
        out
    }

    /// The cgroups of app `name`.
    pub fn app(&self, name: &str) -> Option<&AppCgroups> {
        self.apps.iter().find(|a| a.app == name)
    }

    /// Make the directories and write the limits.
    pub fn create(&self) -> Result<(), CgroupError> {
        match self.version {
            Version::V1 => {
                for pod in &self.pod_dirs {
                    if let Some(parent) = pod.parent() {
                        make_dir(parent)?;
                    }
                    make_dir(pod)?;
                }
                for app in &self.apps {
                    for dir in &app.dirs {
                        make_dir(dir)?;
                    }
                    if let (Some(dir), Some(bytes)) = (&app.memory, app.memory_limit_bytes) {
                        write_file(&dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
                    }
                    if let (Some(dir), Some(millis)) = (&app.cpu, app.cpu_millis) {
                        write_file(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                        write_file(
                            &dir.join("cpu.cfs_quota_us"),
                            &cpu_quota_us(millis).to_string(),
                        )?;
                    }
                    if let Some(dir) = &app.devices {
                        // `a` to devices.deny first: it drops what the parent passed
                        // down (the kernel takes it only while the cgroup has no
                        // children, as this new leaf).
                        for (file, line) in devices::v1_lines(&app.device_allow) {
                            write_file(&dir.join(file), &line)?;
                        }
                    }
                }
            }
            Version::V2 => {
                let rkt = self.root.join(RKT_DIR);
                enable_controllers(&self.root, &self.enable)?;
                make_dir(&rkt)?;
                enable_controllers(&rkt, &self.enable)?;
                for pod in &self.pod_dirs {
                    make_dir(pod)?;
                    enable_controllers(pod, &self.enable)?;
                }
                for app in &self.apps {
                    for dir in &app.dirs {
                        make_dir(dir)?;
                    }
                    if let (Some(dir), Some(bytes)) = (&app.memory, app.memory_limit_bytes) {
                        write_file(&dir.join("memory.max"), &bytes.to_string())?;
                    }
                    if let (Some(dir), Some(millis)) = (&app.cpu, app.cpu_millis) {
                        write_file(
                            &dir.join("cpu.max"),
                            &format!("{} {CPU_PERIOD_US}", cpu_quota_us(millis)),
                        )?;
                    }
                    // Only a cgroup2 filesystem takes a program; tests use a plain tree.
                    if let Some(dir) = app.devices.as_ref().filter(|d| is_cgroup2(d)) {
                        devices::attach(dir, &app.device_allow).map_err(|source| {
                            CgroupError::Devices {
                                app: app.app.clone(),
                                source,
                            }
                        })?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn is_cgroup2(dir: &Path) -> bool {
    // `f_type`'s width differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type as i64 == CGROUP2_SUPER_MAGIC)
}

/// Move the calling process into every directory in `dirs`.
pub fn join(dirs: &[PathBuf]) -> Result<(), CgroupError> {
    for dir in dirs {
        write_file(&dir.join("cgroup.procs"), "0")?;
    }
    Ok(())
}

/// SIGKILL every process in the cgroups `dirs` (not their children cgroups), as listed
/// in their `cgroup.procs`: PIDs as the caller's PID namespace sees them (0 for those
/// it cannot see, which are skipped). Processes that are already gone are ignored.
pub fn kill_procs(dirs: &[PathBuf]) {
    let me = rustix::process::getpid();
    for dir in dirs {
        let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) else {
            continue;
        };
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            match Pid::from_raw(pid) {
                Some(pid) if pid != me && !pid.is_init() => {
                    let _ = kill_process(pid, Signal::KILL);
                }
                _ => {}
            }
        }
    }
}

/// How many processes the OOM killer killed in the memory cgroup `dir`, if the kernel
/// reports it (v1 `memory.oom_control`, kernel 4.13 and later; v2 `memory.events`).
pub fn oom_kill_count(version: Version, dir: &Path) -> Option<u64> {
    let file = match version {
        Version::V1 => "memory.oom_control",
        Version::V2 => "memory.events",
    };
    let text = fs::read_to_string(dir.join(file)).ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == "oom_kill").then(|| value.trim().parse().ok())?
    })
}

/// Whether an app whose memory cgroup is `dir` was OOM-killed: its OOM kill counter grew
/// from `baseline`, or (old v1 kernels without the counter) the limit was hit and the
/// app died of SIGKILL.
pub fn oom_killed(version: Version, dir: &Path, baseline: Option<u64>, sigkill: bool) -> bool {
    if let Some(now) = oom_kill_count(version, dir) {
        return now > baseline.unwrap_or(0);
    }
    if version == Version::V1 && sigkill {
        if let Ok(text) = fs::read_to_string(dir.join("memory.failcnt")) {
            return text.trim().parse::<u64>().map(|n| n > 0).unwrap_or(false);
        }
    }
    false
}

/// Write the list of a pod's cgroup directories (JSON, leaves first) by temp + rename.
pub fn write_list(path: &Path, dirs: &[PathBuf]) -> io::Result<()> {
    crate::podfiles::write_json(path, &dirs)
}

/// Read a list written by [`write_list`]; a missing file is an empty list.
pub fn read_list(path: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| CgroupError::List {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Only directories below `.../rkt/<something>` are ever removed or have their
/// processes killed, whatever the list says.
fn is_pod_cgroup(path: &Path) -> bool {
    let comps: Vec<Component> = path.components().collect();
    path.is_absolute()
        && !comps.iter().any(|c| matches!(c, Component::ParentDir))
        && comps
            .iter()
            .position(|c| c.as_os_str() == RKT_DIR)
            .is_some_and(|i| i + 1 < comps.len())
}

/// Kill every process in cgroup `dir` (SIGKILL), then remove it, retrying while the
/// kernel still reports it busy. Child cgroups are removed first.
fn remove_one(dir: &Path, deadline: Instant, started: Instant) -> Result<(), CgroupError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_one(&entry.path(), deadline, started)?;
        }
    }
    // cgroup v2 (Linux 5.14+) kills the whole subtree at once, forks included.
    let kill_file = dir.join("cgroup.kill");
    if kill_file.is_file() {
        let _ = fs::write(&kill_file, "1");
    }
    loop {
        if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                if let Some(pid) = Pid::from_raw(pid) {
                    let _ = kill_process(pid, Signal::KILL);
                }
            }
        }
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(code) if code == rustix::io::Errno::BUSY.raw_os_error()
                        || code == rustix::io::Errno::NOTEMPTY.raw_os_error()
                ) =>
            {
                if Instant::now() >= deadline {
                    return Err(CgroupError::Busy {
                        path: dir.to_path_buf(),
                        waited: started.elapsed(),
                    });
                }
                // Killed processes take a moment to leave the cgroup.
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// Remove the cgroups in `dirs` (leaves first), killing what still runs in them.
/// Directories that do not exist are skipped, so this is idempotent. Every directory is
/// tried; the first error is returned.
pub fn remove(dirs: &[PathBuf], timeout: Duration) -> Result<(), CgroupError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut first_err = None;
    for dir in dirs {
        let res = if is_pod_cgroup(dir) {
            remove_one(dir, deadline, started)
        } else {
            Err(CgroupError::NotPodCgroup { path: dir.clone() })
        };
        if let Err(e) = res {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str, mem: Option<u64>, cpu: Option<u64>) -> RuntimeApp {
        serde_json::from_value(serde_json::json!({
            "name": name, "imageId": "sha512-x", "image": "/nonexistent",
            "exec": ["/bin/true"], "user": "0", "group": "0", "capabilities": [],
            "memoryLimitBytes": mem, "cpuMillis": cpu,
        }))
        .unwrap()
    }

    fn pod(uuid: &str, apps: &[RuntimeApp]) -> RuntimeConfig {
        let mut cfg: RuntimeConfig = serde_json::from_value(serde_json::json!({
            "version": 1, "uuid": uuid, "hostname": "h", "apps": [],
        }))
        .unwrap();
        cfg.apps = apps.to_vec();
        cfg
    }

    fn v1_tree(controllers: &[&str]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for c in controllers {
            fs::create_dir(t.path().join(c)).unwrap();
        }
        t
    }

    #[test]
    fn detects_version() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(detect(t.path()).unwrap(), Version::V1);
        fs::write(t.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
        assert_eq!(detect(t.path()).unwrap(), Version::V2);
        assert!(matches!(
            detect(&t.path().join("nope")),
            Err(CgroupError::NoRoot { .. })
        ));
    }

    #[test]
    fn v1_layout_and_limits() {
        let t = v1_tree(&["memory", "cpu,cpuacct", "pids", "blkio"]);
        std::os::unix::fs::symlink("cpu,cpuacct", t.path().join("cpu")).unwrap();
        let root = fs::canonicalize(t.path()).unwrap();
        let apps = [app("a", Some(32 << 20), Some(250)), app("b", None, None)];
        let plan = plan(&root, &pod("u-1", &apps), None).unwrap();
        assert_eq!(plan.version, Version::V1);
        let cpu = root.join("cpu,cpuacct");
        assert_eq!(
            plan.pod_dirs,
            vec![
                root.join("memory/rkt/u-1"),
                cpu.join("rkt/u-1"),
                root.join("pids/rkt/u-1")
            ]
        );
        let a = plan.app("a").unwrap();
        assert_eq!(a.memory, Some(root.join("memory/rkt/u-1/a")));
        assert_eq!(a.cpu, Some(cpu.join("rkt/u-1/a")));
        let dirs = plan.dirs_leaf_first();
        assert_eq!(dirs.len(), 9);
        assert_eq!(dirs[0], root.join("memory/rkt/u-1/a"));
        assert_eq!(dirs[8], root.join("pids/rkt/u-1"));

        plan.create().unwrap();
        let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(read("memory/rkt/u-1/a/memory.limit_in_bytes"), "33554432");
        assert_eq!(read("cpu,cpuacct/rkt/u-1/a/cpu.cfs_period_us"), "100000");
        assert_eq!(read("cpu,cpuacct/rkt/u-1/a/cpu.cfs_quota_us"), "25000");
        assert!(root.join("pids/rkt/u-1/b").is_dir());
        assert!(!root.join("memory/rkt/u-1/b/memory.limit_in_bytes").exists());
        assert!(!root.join("blkio/rkt").exists());
    }

    fn default_rules() -> Vec<devices::Rule> {
        let Allow::Only(rules) =
            devices::allow_list(&pod("u", &[]), &app("a", None, None), None).unwrap()
        else {
            panic!("defaults allow everything")
        };
        rules
    }

    fn rule_lines(allow: &Allow) -> Vec<String> {
        devices::v1_lines(allow)
            .into_iter()
            .map(|(_, l)| l)
            .collect()
    }

    #[test]
    fn device_allow_list_defaults() {
        let t = v1_tree(&["memory", "devices"]);
        let root = fs::canonicalize(t.path()).unwrap();
        let p = plan(&root, &pod("u", &[app("a", None, None)]), None).unwrap();
        let a = p.app("a").unwrap();
        assert_eq!(a.devices, Some(root.join("devices/rkt/u/a")));
        assert!(a.dirs.contains(&root.join("devices/rkt/u/a")), "joined");
        assert!(
            p.dirs_leaf_first().contains(&root.join("devices/rkt/u")),
            "gc"
        );
        let mut want: Vec<String> = ["a", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm"]
            .iter()
            .chain(&["c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm"])
            .map(|s| s.to_string())
            .collect();
        want.extend((136..=143).map(|m| format!("c {m}:* rwm")));
        assert_eq!(rule_lines(&a.device_allow), want);
        p.create().unwrap();
        // A plain file keeps the last write: the last allow line.
        assert_eq!(
            fs::read_to_string(root.join("devices/rkt/u/a/devices.allow")).unwrap(),
            "c 143:* rwm"
        );
        assert_eq!(
            fs::read_to_string(root.join("devices/rkt/u/a/devices.deny")).unwrap(),
            "a"
        );
        // Without a devices hierarchy: no device cgroup, the pod still starts.
        let t = v1_tree(&["memory"]);
        let p = plan(t.path(), &pod("u", &[app("a", None, None)]), None).unwrap();
        assert_eq!(p.app("a").unwrap().devices, None);
    }

    #[test]
    fn device_allow_list_interactive_console() {
        let t = v1_tree(&["devices"]);
        let p = plan(t.path(), &pod("u", &[app("a", None, None)]), Some((4, 7))).unwrap();
        let lines = rule_lines(&p.app("a").unwrap().device_allow);
        assert!(lines.contains(&"c 4:7 rw".to_string()), "{lines:?}");
        assert_eq!(lines.len(), default_rules().len() + 2);
        // A pty slave console is already covered by 136:*, with more access.
        let p = plan(t.path(), &pod("u", &[app("a", None, None)]), Some((136, 3))).unwrap();
        assert_eq!(
            rule_lines(&p.app("a").unwrap().device_allow).len(),
            default_rules().len() + 2
        );
    }

    fn with_volume(source: &Path, read_only: bool) -> RuntimeConfig {
        let mut a = app("a", None, None);
        a.mounts.push(
            serde_json::from_value(serde_json::json!({
                "volume": "v", "path": "/v", "readOnly": read_only,
            }))
            .unwrap(),
        );
        let mut cfg = pod("u", &[a, app("b", None, None)]);
        cfg.volumes.push(
            serde_json::from_value(serde_json::json!({
                "kind": "host", "name": "v", "source": source,
            }))
            .unwrap(),
        );
        cfg
    }

    fn mknod(path: &Path, kind: rustix::fs::FileType, major: u32, minor: u32) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            kind,
            rustix::fs::Mode::from_raw_mode(0o600),
            rustix::fs::makedev(major, minor),
        )
        .unwrap();
    }

    #[test]
    fn device_allow_list_device_volume() {
        if !is_root() {
            eprintln!("SKIPPED device_allow_list_device_volume: needs root (mknod)");
            return;
        }
        let t = v1_tree(&["devices"]);
        let node = t.path().join("disk");
        mknod(&node, rustix::fs::FileType::BlockDevice, 8, 16);
        let lines = |cfg: &RuntimeConfig, name: &str| {
            rule_lines(
                &plan(t.path(), cfg, None)
                    .unwrap()
                    .app(name)
                    .unwrap()
                    .device_allow,
            )
        };
        let rw = lines(&with_volume(&node, false), "a");
        assert!(rw.contains(&"b 8:16 rw".to_string()), "{rw:?}");
        assert_eq!(rw.len(), default_rules().len() + 2);
        // A read-only mount does not stop writes to a device: the rule does.
        let ro = lines(&with_volume(&node, true), "a");
        assert!(ro.contains(&"b 8:16 r".to_string()), "{ro:?}");
        // Only the app that mounts the volume.
        assert_eq!(
            lines(&with_volume(&node, false), "b").len(),
            default_rules().len() + 1
        );
        // A plain directory volume adds nothing, whatever nodes it holds.
        assert_eq!(
            lines(&with_volume(t.path(), false), "a").len(),
            default_rules().len() + 1
        );
    }

    #[test]
    fn device_allow_list_dev_volume_takes_the_nodes_found() {
        if !is_root() || !Path::new("/dev/shm").is_dir() {
            eprintln!("SKIPPED device_allow_list_dev_volume_takes_the_nodes_found: needs root");
            return;
        }
        let t = v1_tree(&["devices"]);
        let dev = tempfile::tempdir_in("/dev/shm").unwrap();
        fs::create_dir(dev.path().join("sub")).unwrap();
        mknod(
            &dev.path().join("c"),
            rustix::fs::FileType::CharacterDevice,
            60,
            1,
        );
        mknod(
            &dev.path().join("sub/b"),
            rustix::fs::FileType::BlockDevice,
            7,
            3,
        );
        std::os::unix::fs::symlink("/dev/null", dev.path().join("link")).unwrap();
        let allow = plan(t.path(), &with_volume(dev.path(), false), None)
            .unwrap()
            .app("a")
            .unwrap()
            .device_allow
            .clone();
        let lines = rule_lines(&allow);
        assert!(lines.contains(&"c 60:1 rw".to_string()), "{lines:?}");
        assert!(lines.contains(&"b 7:3 rw".to_string()), "{lines:?}");
        assert_eq!(lines.len(), default_rules().len() + 3, "{lines:?}");
    }

    #[test]
    fn device_allow_list_privileged() {
        let t = v1_tree(&["devices"]);
        let mut a = app("a", None, None);
        a.allow_all_devices = true;
        let p = plan(t.path(), &pod("u", &[a, app("b", None, None)]), None).unwrap();
        assert_eq!(p.app("a").unwrap().device_allow, Allow::All);
        assert_eq!(rule_lines(&Allow::All), vec!["a".to_string()]);
        assert!(matches!(p.app("b").unwrap().device_allow, Allow::Only(_)));
        p.create().unwrap();
        assert_eq!(
            fs::read_to_string(t.path().join("devices/rkt/u/a/devices.allow")).unwrap(),
            "a"
        );
        assert!(!t.path().join("devices/rkt/u/a/devices.deny").exists());
    }

    #[test]
    fn v1_missing_controller_is_an_error_only_when_needed() {
        let t = v1_tree(&["pids"]);
        let p = plan(t.path(), &pod("u", &[app("a", None, None)]), None).unwrap();
        assert_eq!(p.pod_dirs, vec![t.path().join("pids/rkt/u")]);
        let err = plan(t.path(), &pod("u", &[app("a", Some(1 << 20), None)]), None).unwrap_err();
        assert!(
            matches!(
                err,
                CgroupError::MissingController {
                    controller: "memory",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn v2_layout_limits_and_subtree_control() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::write(
            root.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        let plan = plan(
            root,
            &pod("u", &[app("a", Some(1 << 30), Some(1500))]),
            None,
        )
        .unwrap();
        assert_eq!(plan.enable, vec!["memory", "cpu", "pids"]);
        assert_eq!(
            plan.dirs_leaf_first(),
            vec![root.join("rkt/u/a"), root.join("rkt/u")]
        );
        plan.create().unwrap();
        let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(read("rkt/u/a/memory.max"), "1073741824");
        assert_eq!(read("rkt/u/a/cpu.max"), "150000 100000");
        // A plain file keeps only the last write; the real file accumulates.
        assert_eq!(read("rkt/u/cgroup.subtree_control"), "+pids");
    }

    #[test]
    fn v2_without_memory_controller_refuses_a_limit() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("cgroup.controllers"), "hugetlb\n").unwrap();
        assert!(plan(t.path(), &pod("u", &[app("a", None, None)]), None).is_ok());
        assert!(matches!(
            plan(t.path(), &pod("u", &[app("a", Some(1), None)]), None),
            Err(CgroupError::MissingController { .. })
        ));
    }

    #[test]
    fn names_cannot_escape() {
        let t = v1_tree(&["memory"]);
        for bad in ["..", "a/b", "", "."] {
            assert!(
                matches!(
                    plan(t.path(), &pod(bad, &[]), None),
                    Err(CgroupError::InvalidName { .. })
                ),
                "{bad}"
            );
            assert!(
                plan(t.path(), &pod("u", &[app(bad, None, None)]), None).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn cpu_quota() {
        assert_eq!(cpu_quota_us(1000), 100_000);
        assert_eq!(cpu_quota_us(500), 50_000);
        assert_eq!(cpu_quota_us(1), 1_000);
        assert_eq!(cpu_quota_us(2500), 250_000);
    }

    #[test]
    fn oom_counters() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::write(
            d.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(oom_kill_count(Version::V1, d), Some(2));
        assert!(oom_killed(Version::V1, d, Some(1), false));
        assert!(!oom_killed(Version::V1, d, Some(2), true));
        fs::write(d.join("memory.oom_control"), "oom_kill_disable 0\n").unwrap();
        fs::write(d.join("memory.failcnt"), "7\n").unwrap();
        assert!(oom_killed(Version::V1, d, None, true));
        assert!(!oom_killed(Version::V1, d, None, false));
        fs::write(
            d.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .unwrap();
        assert_eq!(oom_kill_count(Version::V2, d), Some(1));
        assert!(oom_killed(Version::V2, d, Some(0), false));
    }

    #[test]
    fn list_round_trip_and_missing() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("cgroups");
        assert!(read_list(&f).unwrap().is_empty());
        let dirs = vec![PathBuf::from("/x/rkt/u/a"), PathBuf::from("/x/rkt/u")];
        write_list(&f, &dirs).unwrap();
        assert_eq!(read_list(&f).unwrap(), dirs);
        fs::write(&f, "{").unwrap();
        assert!(matches!(read_list(&f), Err(CgroupError::List { .. })));
    }

    #[test]
    fn remove_refuses_foreign_paths_and_skips_missing() {
        let t = tempfile::tempdir().unwrap();
        let gone = t.path().join("rkt/u/a");
        remove(&[gone], Duration::from_secs(1)).unwrap();
        for bad in [
            "/sys/fs/cgroup/memory",
            "/x/rkt",
            "relative/rkt/u",
            "/x/rkt/../y",
        ] {
            let err = remove(&[PathBuf::from(bad)], Duration::from_secs(1)).unwrap_err();
            assert!(
                matches!(err, CgroupError::NotPodCgroup { .. }),
                "{bad}: {err}"
            );
        }
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// Real cgroupfs: create, join from a child, remove kills the child.
    fn real_round_trip(root: &Path) {
        let uuid = format!("unit-{}", std::process::id());
        let plan = plan(root, &pod(&uuid, &[app("a", None, None)]), None).unwrap();
        plan.create().unwrap();
        let dirs = plan.app("a").unwrap().dirs.clone();
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("600")
            .spawn()
            .unwrap();
        for d in &dirs {
            fs::write(d.join("cgroup.procs"), child.id().to_string()).unwrap();
        }
        if let Some(dev) = &plan.app("a").unwrap().devices {
            if plan.version == Version::V1 {
                let list = fs::read_to_string(dev.join("devices.list")).unwrap();
                let mut got: Vec<&str> = list.lines().collect();
                got.sort();
                let lines = rule_lines(&plan.app("a").unwrap().device_allow);
                let mut want: Vec<&str> = lines[1..].iter().map(|s| s.as_str()).collect();
                want.sort();
                assert_eq!(got, want, "the kernel's list is the allow list");
            }
        }
        let all = plan.dirs_leaf_first();
        remove(&all, Duration::from_secs(10)).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        for d in &all {
            assert!(!d.exists(), "{} left behind", d.display());
        }
        remove(&all, Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn real_v1_create_join_remove() {
        if !is_root() || detect(Path::new("/sys/fs/cgroup")).ok() != Some(Version::V1) {
            eprintln!("SKIPPED real_v1_create_join_remove: needs root and cgroup v1");
            return;
        }
        real_round_trip(Path::new("/sys/fs/cgroup"));
    }

    #[test]
    fn real_v2_create_join_remove() {
        let root = [
            Path::new("/sys/fs/cgroup"),
            Path::new("/sys/fs/cgroup/unified"),
        ]
        .into_iter()
        .find(|r| detect(r).ok() == Some(Version::V2));
        match root {
            Some(root) if is_root() => real_round_trip(root),
            _ => eprintln!("SKIPPED real_v2_create_join_remove: needs root and a cgroup2 mount"),
        }
    }
}
