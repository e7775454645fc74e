//! `runtime.json`: the resolved pod configuration stage0 hands to stage1
//! (see `docs/stage1.md`). Version 1.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The interface version this crate reads and writes.
pub const RUNTIME_VERSION: u32 = 1;

/// Default search path for apps that do not set PATH.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    #[default]
    Default,
    Fly,
}

impl std::str::FromStr for Flavor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "default" => Ok(Flavor::Default),
            "fly" => Ok(Flavor::Fly),
            other => Err(format!(
                "unknown stage1 flavor {other:?} (known: default, fly)"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Dns {
    #[serde(default)]
    pub nameservers: Vec<String>,
    #[serde(default)]
    pub search: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsEntry {
    pub ip: String,
    pub hostnames: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Volume {
    Host {
        name: String,
        source: PathBuf,
        #[serde(default, rename = "readOnly")]
        read_only: bool,
    },
    Empty {
        name: String,
        /// Octal permission string, e.g. "0755".
        #[serde(default = "default_mode")]
        mode: String,
        #[serde(default)]
        uid: u32,
        #[serde(default)]
        gid: u32,
    },
}

fn default_mode() -> String {
    "0755".to_string()
}

impl Volume {
    pub fn name(&self) -> &str {
        match self {
            Volume::Host { name, .. } | Volume::Empty { name, .. } => name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    pub volume: String,
    pub path: String,
    #[serde(default)]
    pub read_only: bool,
}

/// When stage1 restarts an app that exited (Kubernetes `restartPolicy`). `rkt run`
/// uses `Never`; the reconciler passes the Pod's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    #[default]
    Never,
}

/// The seccomp filter stage1 installs for an app (see `docs/stage1.md`, "Seccomp").
/// Absent in `runtime.json` means `default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Seccomp {
    /// rkt's default profile: a denylist of dangerous system calls.
    #[default]
    Default,
    /// No filter.
    Unconfined,
}

impl Seccomp {
    pub fn is_default(&self) -> bool {
        *self == Seccomp::Default
    }
}

impl std::str::FromStr for Seccomp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "default" => Ok(Seccomp::Default),
            "unconfined" => Ok(Seccomp::Unconfined),
            other => Err(format!(
                "unknown seccomp profile {other:?} (known: default, unconfined)"
            )),
        }
    }
}

/// CrashLoopBackOff timing: the delay starts at `initial_secs`, doubles per restart up
/// to `max_secs`, and resets after the app ran `reset_secs` without exiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    pub initial_secs: u64,
    pub max_secs: u64,
    pub reset_secs: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_secs: 10,
            max_secs: 300,
            reset_secs: 600,
        }
    }
}

/// What a probe does (Kubernetes semantics; run by stage1 inside the pod).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum ProbeAction {
    /// Run a command in the app's namespaces (like `rkt enter`); exit 0 = success.
    Exec { command: Vec<String> },
    /// Connect to 127.0.0.1:port in the pod's network namespace.
    TcpSocket { port: u16 },
    /// GET http://127.0.0.1:port/path; 200-399 = success.
    HttpGet { path: String, port: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub action: ProbeAction,
    #[serde(default)]
    pub initial_delay_secs: u64,
    #[serde(default = "ten")]
    pub period_secs: u64,
    #[serde(default = "one_u64")]
    pub timeout_secs: u64,
    #[serde(default = "one_u32")]
    pub success_threshold: u32,
    #[serde(default = "three")]
    pub failure_threshold: u32,
}

fn ten() -> u64 {
    10
}
fn one_u64() -> u64 {
    1
}
fn one_u32() -> u32 {
    1
}
fn three() -> u32 {
    3
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeApp {
    pub name: String,
    pub image_id: String,
    /// The rendered tree (overlay lower dir); never written to.
    pub image: PathBuf,
    pub exec: Vec<String>,
    #[serde(default)]
    pub env: Vec<(String, String)>,
    pub user: String,
    pub group: String,
    #[serde(default)]
    pub supplementary_gids: Vec<u32>,
    #[serde(default = "root_dir")]
    pub working_dir: String,
    #[serde(default)]
    pub read_only_rootfs: bool,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
    #[serde(default)]
    pub cpu_millis: Option<u64>,
    /// Names like `CAP_CHOWN`: the app's bounding, permitted and effective set.
    pub capabilities: Vec<String>,
    #[serde(default = "yes")]
    pub no_new_privileges: bool,
    /// The app's seccomp filter; `default` when absent.
    #[serde(default)]
    pub seccomp: Seccomp,
    #[serde(default)]
    pub masked_paths: Vec<String>,
    #[serde(default)]
    pub readonly_paths: Vec<String>,
    /// Init apps run to completion, in order, before the other apps start (Kubernetes
    /// initContainers); a failing init app fails the pod (or is retried per policy).
    #[serde(default)]
    pub init: bool,
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// A failing liveness probe restarts the app (counts as a restart).
    #[serde(default)]
    pub liveness_probe: Option<Probe>,
    /// Readiness is written to `apps/<app>/ready` (present = ready).
    #[serde(default)]
    pub readiness_probe: Option<Probe>,
    /// The app may open every device (a privileged container): stage1 sets up no
    /// device cgroup rules for it. Absent means `false`: only the pod's own devices
    /// and those handed over in `host` volumes (see `docs/stage1.md`).
    #[serde(default)]
    pub allow_all_devices: bool,
}

fn root_dir() -> String {
    "/".to_string()
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    pub version: u32,
    pub uuid: String,
    #[serde(default)]
    pub flavor: Flavor,
    pub hostname: String,
    #[serde(default)]
    pub interactive: bool,
    #[serde(default = "default_grace")]
    pub stop_grace_period_secs: u64,
    #[serde(default = "default_log_max")]
    pub log_max_bytes: u64,
    #[serde(default)]
    pub dns: Option<Dns>,
    #[serde(default)]
    pub hosts_entries: Vec<HostsEntry>,
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// With no `netns`: give the pod a new network namespace holding only `lo` (up),
    /// instead of the host's network (`--net=none`).
    #[serde(default)]
    pub private_network: bool,
    #[serde(default = "default_cgroup_root")]
    pub cgroup_root: PathBuf,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// Back-off between restarts of apps whose restart policy asks for them.
    #[serde(default)]
    pub backoff: Backoff,
    /// `--private-users`: the apps run in a user namespace mapping container ids
    /// `0..size` to this host range; `null`: the host's ids (the default).
    #[serde(default)]
    pub user_namespace: Option<UserNamespace>,
    pub apps: Vec<RuntimeApp>,
}

/// A pod's user namespace: container uid (gid) `n` is host uid `host_uid + n`
/// (`host_gid + n`) for `n < size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserNamespace {
    pub host_uid: u32,
    pub host_gid: u32,
    pub size: u32,
}

impl UserNamespace {
    /// The host uid of container uid `uid`, if the range holds it.
    pub fn host_uid_of(&self, uid: u32) -> Option<u32> {
        (uid < self.size)
            .then(|| self.host_uid.checked_add(uid))
            .flatten()
    }
    /// The host gid of container gid `gid`, if the range holds it.
    pub fn host_gid_of(&self, gid: u32) -> Option<u32> {
        (gid < self.size)
            .then(|| self.host_gid.checked_add(gid))
            .flatten()
    }
    /// Whether the host uid or gid ranges of `self` and `other` share an id.
    pub fn overlaps(&self, other: &UserNamespace) -> bool {
        let meet = |a: u32, b: u32| {
            let (a, b) = (u64::from(a), u64::from(b));
            a < b + u64::from(other.size) && b < a + u64::from(self.size)
        };
        meet(self.host_uid, other.host_uid) || meet(self.host_gid, other.host_gid)
    }
}

fn default_grace() -> u64 {
    10
}
fn default_log_max() -> u64 {
    10 * 1024 * 1024
}
fn default_cgroup_root() -> PathBuf {
    PathBuf::from("/sys/fs/cgroup")
}

/// Every capability name the kernel knows (as of Linux 6.x).
pub const KNOWN_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Capabilities Docker grants by default; rkt uses the same default set.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// /proc paths hidden from apps (bound over with /dev/null or an empty tmpfs).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// /proc paths made read-only for apps.
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

impl RuntimeConfig {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, RuntimeError> {
        let cfg: RuntimeConfig = serde_json::from_slice(bytes)?;
        if cfg.version != RUNTIME_VERSION {
            return Err(RuntimeError::Version(cfg.version));
        }
        if cfg.apps.is_empty() {
            return Err(RuntimeError::NoApps);
        }
        Ok(cfg)
    }

    pub fn app(&self, name: &str) -> Option<&RuntimeApp> {
        self.apps.iter().find(|a| a.name == name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid runtime.json")]
    Json(#[from] serde_json::Error),
    #[error("runtime.json has interface version {0}; this stage1 speaks version 1")]
    Version(u32),
    #[error("runtime.json lists no apps")]
    NoApps,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_check() {
        let cfg = RuntimeConfig {
            version: 1,
            uuid: "u".into(),
            flavor: Flavor::Default,
            hostname: "rkt-u".into(),
            interactive: false,
            stop_grace_period_secs: 10,
            log_max_bytes: 1024,
            dns: None,
            hosts_entries: vec![],
            netns: None,
            private_network: true,
            cgroup_root: "/sys/fs/cgroup".into(),
            volumes: vec![Volume::Empty {
                name: "v".into(),
                mode: "0700".into(),
                uid: 1,
                gid: 2,
            }],
            backoff: Default::default(),
            user_namespace: Some(UserNamespace {
                host_uid: 1 << 28,
                host_gid: 1 << 28,
                size: 65536,
            }),
            apps: vec![RuntimeApp {
                name: "a".into(),
                image_id: "sha512-x".into(),
                image: "/t".into(),
                exec: vec!["/bin/true".into()],
                env: vec![("A".into(), "B".into())],
                user: "0".into(),
                group: "0".into(),
                supplementary_gids: vec![],
                working_dir: "/".into(),
                read_only_rootfs: false,
                mounts: vec![],
                memory_limit_bytes: Some(1 << 20),
                cpu_millis: None,
                capabilities: vec!["CAP_CHOWN".into()],
                no_new_privileges: true,
                seccomp: Seccomp::Unconfined,
                masked_paths: vec![],
                readonly_paths: vec![],
                init: false,
                restart_policy: Default::default(),
                liveness_probe: None,
                readiness_probe: None,
                allow_all_devices: false,
            }],
        };
        let json = serde_json::to_vec(&cfg).unwrap();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains("\"kind\":\"empty\""), "{text}");
        assert!(text.contains("\"memoryLimitBytes\""), "{text}");
        assert_eq!(RuntimeConfig::from_slice(&json).unwrap(), cfg);
        assert!(text.contains("\"seccomp\":\"unconfined\""), "{text}");
        // Written before the field existed: the default profile.
        let older = text.replace(",\"seccomp\":\"unconfined\"", "");
        let parsed = RuntimeConfig::from_slice(older.as_bytes()).unwrap();
        assert_eq!(parsed.apps[0].seccomp, Seccomp::Default);
        assert_eq!("unconfined".parse(), Ok(Seccomp::Unconfined));
        assert!("runtime/default".parse::<Seccomp>().is_err());
        let userns =
            "\"userNamespace\":{\"hostUid\":268435456,\"hostGid\":268435456,\"size\":65536}";
        assert!(text.contains(userns), "{text}");
        // Written before the field existed (or `null`): the host's ids.
        for older in [
            text.replace(userns, "\"userNamespace\":null"),
            text.replace(&format!("{userns},"), ""),
        ] {
            assert_eq!(
                RuntimeConfig::from_slice(older.as_bytes())
                    .unwrap()
                    .user_namespace,
                None
            );
        }
        let bumped = text.replace("\"version\":1", "\"version\":2");
        assert!(matches!(
            RuntimeConfig::from_slice(bumped.as_bytes()),
            Err(RuntimeError::Version(2))
        ));
    }

    #[test]
    fn user_namespace_ids_and_overlap() {
        let u = |base, size| UserNamespace {
            host_uid: base,
            host_gid: base,
            size,
        };
        let a = u(1 << 28, 65536);
        assert_eq!(a.host_uid_of(0), Some(1 << 28));
        assert_eq!(a.host_gid_of(65535), Some((1 << 28) + 65535));
        assert_eq!(a.host_uid_of(65536), None);
        assert_eq!(u(u32::MAX - 1, 65536).host_uid_of(5), None);
        assert!(a.overlaps(&a));
        assert!(!a.overlaps(&u((1 << 28) + 65536, 65536)));
        assert!(a.overlaps(&u((1 << 28) + 65535, 65536)));
        assert!(a.overlaps(&u((1 << 28) - 1, 2)));
        assert!(!a.overlaps(&u((1 << 28) - 1, 1)));
        let mixed = UserNamespace {
            host_uid: 0,
            host_gid: 1 << 28,
            size: 10,
        };
        assert!(a.overlaps(&mixed));
    }
}
