//! Kubernetes Pod manifests (YAML or JSON, `apiVersion: v1`, `kind: Pod` or a `List` of
//! Pods) turned into [`DesiredPod`]s for the reconciler. Pure: no I/O beyond the bytes
//! handed in.
//!
//! Every field is checked: a field the runtime cannot honour, or an unknown (mistyped)
//! one, is a [`ManifestError`] naming the file, line, column and field path. Errors are
//! collected, not stop-at-first; one bad Pod does not hide the good ones of the same
//! file. Kubernetes defaults are applied, so writing a default value out or leaving it
//! away gives the same [`DesiredPod`] and the same [`DesiredPod::spec_hash`].
//!
//! rkt-specific choices are annotations: `rkt.io/stage1` (`default` | `fly`),
//! `rkt.io/networks` (comma-separated network names, default `default`),
//! `rkt.io/replace` (`stop-first` | `start-first`), `rkt.io/seccomp` (`default` |
//! `unconfined`, for every container that sets no `seccompProfile`) and
//! `rkt.io/image-privileges` (`deny` | `allow`: whether the images' own isolators may
//! widen what their apps may do, e.g. keep capabilities beyond the default set).

mod convert;
mod node;
mod schema;
mod yaml;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::runtime::{Flavor, Seccomp};
pub use node::{
    kube_arch, Node, NodeFile, NodeOperator, NodeRequirement, NodeSelectorTerm, Placement,
    LABEL_ARCH, LABEL_HOSTNAME, LABEL_OS,
};

/// Largest manifest file read, as the kubelet does.
pub const MAX_MANIFEST_BYTES: usize = 10 * 1024 * 1024;

/// Version of the canonical form hashed into [`DesiredPod::spec_hash`]; bump it when the
/// meaning of a field changes so that running pods are replaced deliberately.
const HASH_FORMAT: &str = "rkt.io/k8s-pod-spec/v1";

/// Whether a directory entry looks like a manifest: `*.yaml`, `*.yml` or `*.json`, not
/// hidden (names starting with `.` are editor and tool temporaries).
pub fn is_manifest_file_name(name: &str) -> bool {
    !name.starts_with('.')
        && [".yaml", ".yml", ".json"]
            .iter()
            .any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

/// Identity of a desired pod: `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One problem found in a manifest file. `line`/`column` are 1-based where known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestError {
    /// As given by the caller (a path, for messages).
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// e.g. `spec.containers[0].env[1].valueFrom`; empty for syntax errors.
    pub field: String,
    /// e.g. `valueFrom is not supported: use value`.
    pub message: String,
}

impl fmt::Display for ManifestError {
    /// `{file}:{line}:{column}: {field}: {message}`, leaving out the unknown parts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ManifestError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

/// How a changed pod is replaced (annotation `rkt.io/replace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ReplaceStrategy {
    /// `stop-first`: stop the old pod, then start the new one.
    #[default]
    StopFirst,
    /// `start-first`: start the new pod, then stop the old one.
    StartFirst,
}

/// Kubernetes' default: `Always` when the image has no tag or the tag `latest`,
/// otherwise `IfNotPresent` (also for digests and `sha512-` image IDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImagePullPolicy {
    Always,
    IfNotPresent,
    Never,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredPod {
    /// The namespace defaults to `default`.
    pub key: PodKey,
    /// The file, as given to [`parse_file`], and the line where the Pod starts.
    pub file: String,
    pub line: usize,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// sha256 hex of the canonical JSON of the semantic content (metadata name/namespace/
    /// labels/annotations + spec), unchanged by formatting, key order, comments, and
    /// by fields that equal their defaults being written out or not. `rkt.io/replace`
    /// is left out: it says how to replace the pod, not what runs.
    pub spec_hash: String,
    pub restart_policy: RestartPolicy,
    pub host_network: bool,
    /// `spec.hostUsers: false`: the pod gets a user namespace of its own (`rkt run
    /// --private-users`). Absent or `true`: the host's ids.
    #[serde(default)]
    pub private_users: bool,
    pub hostname: Option<String>,
    /// `spec.hostAliases`: appended to the pod's `/etc/hosts` after the runtime's
    /// entries, in order, as kubelet does.
    #[serde(default)]
    pub host_aliases: Vec<HostAlias>,
    /// `dnsPolicy: None` with its `dnsConfig`: exactly the pod's `resolv.conf`. `None`
    /// (any other policy): the host's resolver, or the CNI network's DNS.
    #[serde(default)]
    pub dns: Option<PodDns>,
    /// Default 30.
    pub termination_grace_period_secs: u64,
    /// Annotation `rkt.io/stage1`: `default` | `fly` (fly needs `hostNetwork: true`).
    pub stage1: Flavor,
    /// Annotation `rkt.io/networks`: `"a,b"`; default `["default"]`; empty when
    /// `host_network`.
    pub networks: Vec<String>,
    /// Annotation `rkt.io/replace`.
    pub replace: ReplaceStrategy,
    /// Annotation `rkt.io/image-privileges: allow`: the images' isolators may widen
    /// what their apps may do (default `deny`: they may only narrow it).
    #[serde(default)]
    pub image_privileges: bool,
    /// `spec.nodeName`, `spec.nodeSelector` and required node affinity: which hosts
    /// run the pod ([`Placement::mismatch`]). Left out of the hash: it says where the
    /// pod runs, not what runs.
    #[serde(default)]
    pub placement: Placement,
    pub init_containers: Vec<DesiredContainer>,
    pub containers: Vec<DesiredContainer>,
    pub volumes: Vec<DesiredVolume>,
    /// Fields that were read but have nothing to do on a single host (scheduling,
    /// service accounts, API-server metadata): ignored, each with a warning naming the
    /// file, line and field. Not part of [`DesiredPod::spec_hash`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<ManifestError>,
}

/// One `spec.hostAliases` entry: an IP address and the names it gets in `/etc/hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAlias {
    pub ip: String,
    pub hostnames: Vec<String>,
}

/// `spec.dnsConfig` (with `dnsPolicy: None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodDns {
    /// IP addresses, at most 3.
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `name` or `name:value`, as written in `resolv.conf`.
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredContainer {
    pub name: String,
    /// Any rkt image reference: path, https URL, appc name, `docker://...`.
    pub image: String,
    pub image_pull_policy: ImagePullPolicy,
    /// Kubernetes `command` (replaces the image's exec/entrypoint), with `$(VAR)`
    /// references to the container's env expanded as Kubernetes does.
    pub command: Vec<String>,
    /// Kubernetes `args` (replace the image's arguments), expanded like `command`.
    pub args: Vec<String>,
    /// In order; values have `$(VAR)` references to earlier entries expanded.
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub ports: Vec<ContainerPort>,
    pub volume_mounts: Vec<VolumeMount>,
    /// `resources.limits.memory`.
    pub memory_limit_bytes: Option<u64>,
    /// `resources.limits.cpu`.
    pub cpu_millis: Option<u64>,
    /// The container's securityContext, else the pod's.
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    pub read_only_root_filesystem: bool,
    /// Canonical `CAP_X` names, sorted, without duplicates.
    pub capabilities_add: Vec<String>,
    /// Canonical `CAP_X` names, sorted, without duplicates; `ALL` stays `ALL`.
    pub capabilities_drop: Vec<String>,
    pub privileged: bool,
    /// `securityContext.seccompProfile.type` of the container, else of the pod, else
    /// the `rkt.io/seccomp` annotation: `RuntimeDefault` is [`Seccomp::Default`].
    /// Left out of the hash when it is the default, so older hashes stay valid.
    #[serde(default, skip_serializing_if = "Seccomp::is_default")]
    pub seccomp: Seccomp,
    pub liveness_probe: Option<Probe>,
    pub readiness_probe: Option<Probe>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub container_port: u16,
    pub host_port: Option<u16>,
    /// `TCP` or `UDP`.
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DesiredVolume {
    HostPath {
        name: String,
        path: String,
        /// Kubernetes `type`: `Directory`, `DirectoryOrCreate`, `File`, `FileOrCreate`,
        /// `Socket`, `CharDevice`, `BlockDevice`; `None` for no check.
        kind: Option<String>,
    },
    EmptyDir {
        name: String,
    },
}

impl DesiredVolume {
    pub fn name(&self) -> &str {
        match self {
            DesiredVolume::HostPath { name, .. } | DesiredVolume::EmptyDir { name } => name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub action: ProbeAction,
    pub initial_delay_secs: u64,
    /// Default 10.
    pub period_secs: u64,
    /// Default 1.
    pub timeout_secs: u64,
    /// Default 1 (always 1 for liveness probes).
    pub success_threshold: u32,
    /// Default 3.
    pub failure_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProbeAction {
    Exec {
        command: Vec<String>,
    },
    /// Named ports are resolved against the container's ports.
    TcpSocket {
        port: u16,
    },
    HttpGet {
        /// Default `/`.
        path: String,
        port: u16,
        /// `HTTP` (the only scheme supported).
        scheme: String,
    },
}

/// Parse one file's bytes (YAML or JSON; several `---` documents; `kind: Pod` and
/// `kind: List` of Pods; apiVersion v1). Every problem is collected (not stop-at-first).
/// Pods with errors are NOT returned; the others are, with the warnings of their ignored
/// fields in [`DesiredPod::warnings`] (see [`strict`] to refuse them instead).
pub fn parse_file(file: &str, bytes: &[u8]) -> (Vec<DesiredPod>, Vec<ManifestError>) {
    let whole_file = |message: String| ManifestError {
        file: file.to_string(),
        line: None,
        column: None,
        field: String::new(),
        message,
    };
    if bytes.len() > MAX_MANIFEST_BYTES {
        return (
            Vec::new(),
            vec![whole_file(format!(
                "the file is {} bytes, larger than the {} MiB a manifest may have",
                bytes.len(),
                MAX_MANIFEST_BYTES >> 20
            ))],
        );
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let column = valid.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            return (
                Vec::new(),
                vec![ManifestError {
                    line: Some(line),
                    column: Some(column),
                    ..whole_file("the file is not valid UTF-8".to_string())
                }],
            );
        }
    };
    convert::convert_file(file, text)
}

/// `--strict`: a pod with warnings is refused: its warnings become errors of the file
/// (in file order) and the pod is left out, as if it had errors.
pub fn strict(
    pods: Vec<DesiredPod>,
    mut errors: Vec<ManifestError>,
) -> (Vec<DesiredPod>, Vec<ManifestError>) {
    let (warned, clean): (Vec<DesiredPod>, Vec<DesiredPod>) =
        pods.into_iter().partition(|p| !p.warnings.is_empty());
    if warned.is_empty() {
        return (clean, errors);
    }
    errors.extend(warned.into_iter().flat_map(|p| p.warnings));
    errors.sort_by_key(|e| (e.line.is_none(), e.line, e.column));
    (clean, errors)
}

/// Parse a host's `node.yaml` (`name:` and `labels:`, both optional): the name, if
/// set, and the labels. Errors name the file and line.
pub fn parse_node_file(file: &str, bytes: &[u8]) -> Result<NodeFile, Vec<ManifestError>> {
    let text = std::str::from_utf8(bytes).map_err(|_| {
        vec![ManifestError {
            file: file.to_string(),
            line: None,
            column: None,
            field: String::new(),
            message: "the file is not valid UTF-8".to_string(),
        }]
    })?;
    convert::node_file(file, text)
}

/// Whether `name` may name a host (`--node-name`): a DNS subdomain, as Kubernetes'
/// node names.
pub fn check_node_name(name: &str) -> Result<(), String> {
    convert::dns_subdomain(name)
}

/// Whether `key=value` is a valid label (`--node-label`).
pub fn check_label(key: &str, value: &str) -> Result<(), String> {
    convert::qualified_name(key)?;
    convert::label_value(value)
}

impl DesiredPod {
    /// The hash of everything but where the pod was read from (file, line) and how it is
    /// replaced (`rkt.io/replace`: changing only that must not replace a running pod).
    /// The other `rkt.io/` annotations are hashed through the fields they set, so writing
    /// out their default (`rkt.io/stage1: default`) changes nothing.
    pub(crate) fn compute_spec_hash(&self) -> String {
        #[derive(Serialize)]
        struct Canonical<'a> {
            format: &'static str,
            key: &'a PodKey,
            labels: &'a BTreeMap<String, String>,
            annotations: BTreeMap<&'a str, &'a str>,
            restart_policy: RestartPolicy,
            host_network: bool,
            // Left out when false, so pods without hostUsers keep their hashes.
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            private_users: bool,
            // Left out when false, so existing pods keep their hashes.
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            image_privileges: bool,
            hostname: &'a Option<String>,
            // Left out when empty, so existing pods keep their hashes.
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            host_aliases: &'a [HostAlias],
            #[serde(skip_serializing_if = "Option::is_none")]
            dns: &'a Option<PodDns>,
            termination_grace_period_secs: u64,
            stage1: Flavor,
            networks: &'a [String],
            init_containers: &'a [DesiredContainer],
            containers: &'a [DesiredContainer],
            volumes: &'a [DesiredVolume],
        }
        let canonical = Canonical {
            format: HASH_FORMAT,
            key: &self.key,
            labels: &self.labels,
            annotations: self
                .annotations
                .iter()
                .filter(|(k, _)| !k.starts_with("rkt.io/"))
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            restart_policy: self.restart_policy,
            host_network: self.host_network,
            private_users: self.private_users,
            image_privileges: self.image_privileges,
            hostname: &self.hostname,
            host_aliases: &self.host_aliases,
            dns: &self.dns,
            termination_grace_period_secs: self.termination_grace_period_secs,
            stage1: self.stage1,
            networks: &self.networks,
            init_containers: &self.init_containers,
            containers: &self.containers,
            volumes: &self.volumes,
        };
        // Serializing plain structs, strings and integers to JSON cannot fail.
        let json = serde_json::to_vec(&canonical).unwrap_or_default();
        format!("{:x}", Sha256::digest(&json))
    }
}
