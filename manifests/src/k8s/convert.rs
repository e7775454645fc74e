//! From the positioned YAML tree to [`DesiredPod`]s: every field is read through a
//! [`Schema`], so unknown and unsupported fields are reported with their position.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::schema::{self, Accept, Schema};
use super::yaml::{self, Key, Node, Pos, Value};
use super::{
    ContainerPort, DesiredContainer, DesiredPod, DesiredVolume, Flavor, HostAlias, ImagePullPolicy,
    ManifestError, PodDns, PodKey, Probe, ProbeAction, ReplaceStrategy, RestartPolicy, Seccomp,
    VolumeMount,
};
use crate::quantity;

mod placement;
pub(super) use placement::node_file;

const DEFAULT_NAMESPACE: &str = "default";
/// Errors kept per file; more are counted in a last one.
const MAX_ERRORS: usize = 100;
const DEFAULT_GRACE_SECS: u64 = 30;
const DEFAULT_NETWORK: &str = "default";
/// Kubernetes caps all annotations of an object together at 256 KiB.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;
/// Kubernetes' range for user and group IDs.
const MAX_ID: i64 = 2_147_483_647;
const HOST_PATH_TYPES: &[&str] = &[
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
];

pub(super) fn convert_file(file: &str, text: &str) -> (Vec<DesiredPod>, Vec<ManifestError>) {
    let mut reader = Reader {
        file,
        errors: Vec::new(),
        count: 0,
        warnings: Vec::new(),
        pods: Vec::new(),
        seen: HashMap::new(),
        seccomp_annotation: Seccomp::Default,
    };
    for doc in yaml::parse_stream(text) {
        match doc {
            Err(e) => reader.error(e.pos, "", format!("invalid YAML: {}", e.message)),
            Ok(yaml::Document { root: None }) => {}
            Ok(yaml::Document { root: Some(root) }) => reader.document(&root),
        }
    }
    // In file order, whatever order the checks ran in.
    reader
        .errors
        .sort_by_key(|e| (e.line.unwrap_or(0), e.column.unwrap_or(0)));
    if reader.count > reader.errors.len() {
        let more = reader.count - reader.errors.len();
        reader.errors.push(ManifestError {
            file: file.to_string(),
            line: None,
            column: None,
            field: String::new(),
            message: format!("{more} more errors not shown"),
        });
    }
    (reader.pods, reader.errors)
}

struct Reader<'f> {
    file: &'f str,
    /// The first [`MAX_ERRORS`] errors.
    errors: Vec<ManifestError>,
    /// All errors found so far (whether a Pod had errors is told by this count).
    count: usize,
    /// Warnings of the Pod being read (ignored fields), moved into it when it loads.
    warnings: Vec<ManifestError>,
    pods: Vec<DesiredPod>,
    /// Pods of this file so far, with the line they start at.
    seen: HashMap<PodKey, usize>,
    /// The `rkt.io/seccomp` annotation of the Pod being read (checked, with errors,
    /// in `rkt_annotations`).
    seccomp_annotation: Seccomp,
}

/// Keys and values from the file can be long; keep messages readable.
fn cut(mut text: String) -> String {
    const MAX: usize = 400;
    if let Some((at, _)) = text.char_indices().nth(MAX) {
        text.truncate(at);
        text.push_str("...");
    }
    text
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The fields of one mapping that its schema supports (null values count as absent).
struct Obj<'n> {
    pos: Pos,
    path: String,
    entries: Vec<(&'n Key, &'n Node)>,
}

impl<'n> Obj<'n> {
    fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| *v)
            .filter(|v| v.value != Value::Null)
    }

    fn path(&self, name: &str) -> String {
        join(&self.path, name)
    }

    fn key_pos(&self, name: &str) -> Pos {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map_or(self.pos, |(k, _)| k.pos)
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Str(s) | Value::Number(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn accepts(accept: Accept, node: &Node) -> bool {
    match (&node.value, accept) {
        (Value::Null, _) | (_, Accept::Any) => true,
        (_, Accept::Never) => false,
        (value, Accept::Empty) => match value {
            Value::Map(m) => m.is_empty(),
            Value::Seq(s) => s.is_empty(),
            Value::Str(s) => s.is_empty(),
            _ => false,
        },
        (value, Accept::Value(want)) => scalar_text(value).as_deref() == Some(want),
    }
}

fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else {
        digits.parse::<i64>().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// What `containers[i]` reading needs to know about the pod around it.
struct PodContext<'a> {
    volumes: &'a BTreeSet<String>,
    run_as_user: Option<u32>,
    run_as_group: Option<u32>,
    host_network: bool,
    init: bool,
    /// The pod's seccomp profile: its securityContext's, else the annotation's.
    seccomp: Seccomp,
}

impl Reader<'_> {
    fn error(&mut self, pos: Pos, field: &str, message: impl Into<String>) {
        self.count += 1;
        if self.errors.len() >= MAX_ERRORS {
            return;
        }
        self.errors.push(ManifestError {
            file: self.file.to_string(),
            line: Some(pos.line),
            column: Some(pos.col),
            field: cut(field.to_string()),
            message: cut(message.into()),
        });
    }

    fn warn(&mut self, pos: Pos, field: &str, message: String) {
        if self.warnings.len() >= MAX_ERRORS {
            return;
        }
        self.warnings.push(ManifestError {
            file: self.file.to_string(),
            line: Some(pos.line),
            column: Some(pos.col),
            field: cut(field.to_string()),
            message: cut(message),
        });
    }

    // ---- generic readers -------------------------------------------------------------

    /// Check a mapping against its schema; `None` (after an error) if it is no mapping.
    fn object<'n>(&mut self, node: &'n Node, path: &str, schema: &Schema) -> Option<Obj<'n>> {
        let entries = match &node.value {
            Value::Map(entries) => entries,
            Value::Null => {
                return Some(Obj {
                    pos: node.pos,
                    path: path.to_string(),
                    entries: Vec::new(),
                })
            }
            other => {
                self.error(
                    node.pos,
                    path,
                    format!(
                        "expected a mapping ({}), found {}",
                        schema.what,
                        other.describe()
                    ),
                );
                return None;
            }
        };
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut kept = Vec::new();
        for (key, value) in entries {
            let field = join(path, &key.name);
            if let Some(line) = seen.get(key.name.as_str()) {
                let message = format!("duplicate field (first at line {line})");
                self.error(key.pos, &field, message);
                continue;
            }
            seen.insert(&key.name, key.pos.line);
            if schema.fields.contains(&key.name.as_str()) {
                kept.push((key, value));
            } else if let Some(unsupported) = schema.unsupported(&key.name) {
                if unsupported.ignored {
                    if !accepts(unsupported.accept, value) {
                        self.warn(
                            key.pos,
                            &field,
                            format!("{} is ignored: {}", key.name, unsupported.why),
                        );
                    }
                } else if !accepts(unsupported.accept, value) {
                    let only = match unsupported.accept {
                        Accept::Value(v) if !v.is_empty() => format!(" (only {v} is accepted)"),
                        _ => String::new(),
                    };
                    self.error(
                        key.pos,
                        &field,
                        format!("{} is not supported: {}{only}", key.name, unsupported.why),
                    );
                }
            } else if let Some(suggestion) = schema.suggest(&key.name) {
                self.error(
                    key.pos,
                    &field,
                    format!("unknown field {}; did you mean {suggestion}?", key.name),
                );
            } else if schema.fields.is_empty() {
                self.error(
                    key.pos,
                    &field,
                    format!(
                        "unknown field {} ({} takes no fields)",
                        key.name, schema.what
                    ),
                );
            } else {
                self.error(
                    key.pos,
                    &field,
                    format!(
                        "unknown field {} (a {} has: {})",
                        key.name,
                        schema.what,
                        schema.fields.join(", ")
                    ),
                );
            }
        }
        Some(Obj {
            pos: node.pos,
            path: path.to_string(),
            entries: kept,
        })
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            Value::Number(n) => {
                self.error(
                    node.pos,
                    path,
                    format!("expected a string, found number {n}; quote it: \"{n}\""),
                );
                None
            }
            Value::Bool(b) => {
                self.error(
                    node.pos,
                    path,
                    format!("expected a string, found boolean {b}; quote it: \"{b}\""),
                );
                None
            }
            other => {
                self.error(
                    node.pos,
                    path,
                    format!("expected a string, found {}", other.describe()),
                );
                None
            }
        }
    }

    fn integer(&mut self, node: &Node, path: &str, min: i64, max: i64) -> Option<i64> {
        let value = match &node.value {
            Value::Number(n) => match parse_int(n) {
                Some(v) => v,
                None => {
                    self.error(
                        node.pos,
                        path,
                        format!("expected a whole number, found {n}"),
                    );
                    return None;
                }
            },
            Value::Str(s) if parse_int(s).is_some() => {
                self.error(
                    node.pos,
                    path,
                    format!("expected a number, found the string \"{s}\"; remove the quotes"),
                );
                return None;
            }
            other => {
                self.error(
                    node.pos,
                    path,
                    format!("expected a whole number, found {}", other.describe()),
                );
                return None;
            }
        };
        if value < min || value > max {
            self.error(
                node.pos,
                path,
                format!("{value} is out of range: it must be between {min} and {max}"),
            );
            return None;
        }
        Some(value)
    }

    fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            Value::Str(s) if matches!(s.as_str(), "true" | "false") => {
                self.error(
                    node.pos,
                    path,
                    format!("expected true or false, found the string \"{s}\"; remove the quotes"),
                );
                None
            }
            other => {
                self.error(
                    node.pos,
                    path,
                    format!("expected true or false, found {}", other.describe()),
                );
                None
            }
        }
    }

    fn list<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            Value::Null => Some(&[]),
            other => {
                self.error(
                    node.pos,
                    path,
                    format!("expected a list, found {}", other.describe()),
                );
                None
            }
        }
    }

    fn string_list(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        let items = self.list(node, path)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(item, &index(path, i)) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A mapping of strings to strings (labels, annotations), with positions.
    fn string_map<'n>(&mut self, node: &'n Node, path: &str) -> Vec<(&'n Key, String, Pos)> {
        let entries = match &node.value {
            Value::Map(entries) => entries,
            Value::Null => return Vec::new(),
            other => {
                self.error(
                    node.pos,
                    path,
                    format!("expected a mapping of strings, found {}", other.describe()),
                );
                return Vec::new();
            }
        };
        let mut out: Vec<(&Key, String, Pos)> = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (key, value) in entries {
            let field = format!("{path}[{}]", key.name);
            if let Some(line) = seen.get(key.name.as_str()) {
                let message = format!("duplicate key (first at line {line})");
                self.error(key.pos, &field, message);
                continue;
            }
            seen.insert(&key.name, key.pos.line);
            if let Some(s) = self.string(value, &field) {
                out.push((key, s, value.pos));
            }
        }
        out
    }

    fn required<'n>(&mut self, obj: &Obj<'n>, name: &str) -> Option<&'n Node> {
        let node = obj.get(name);
        if node.is_none() {
            self.error(obj.pos, &obj.path(name), format!("{name} is required"));
        }
        node
    }

    fn check<T>(&mut self, node: &Node, path: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(node.pos, path, message);
                None
            }
        }
    }

    // ---- documents ---------------------------------------------------------------------

    fn document(&mut self, root: &Node) {
        let Value::Map(entries) = &root.value else {
            self.error(
                root.pos,
                "",
                format!(
                    "expected a Kubernetes object (a mapping with apiVersion and kind), found {}",
                    root.value.describe()
                ),
            );
            return;
        };
        let kind = entries.iter().find(|(k, _)| k.name == "kind");
        match kind.map(|(_, v)| (v, &v.value)) {
            None | Some((_, Value::Null)) => {
                self.error(root.pos, "kind", "kind is required (Pod or List)");
            }
            Some((_, Value::Str(k))) if k == "Pod" => self.pod(root, ""),
            Some((_, Value::Str(k))) if k == "List" => self.list_document(root),
            Some((node, value)) => {
                let text = scalar_text(value).unwrap_or_else(|| value.describe());
                let hint = match schema::suggest(&text, ["Pod", "List"]) {
                    Some(s) => format!("; did you mean {s}?"),
                    None => String::new(),
                };
                self.error(
                    node.pos,
                    "kind",
                    format!(
                        "kind {text} is not supported: a manifest holds Pods (kind: Pod) or a \
                         List of Pods{hint}"
                    ),
                );
            }
        }
    }

    fn api_version(&mut self, obj: &Obj<'_>, kind: &str) {
        let Some(node) = self.required(obj, "apiVersion") else {
            return;
        };
        let path = obj.path("apiVersion");
        if let Some(v) = self.string(node, &path) {
            if v != "v1" {
                self.error(
                    node.pos,
                    &path,
                    format!("apiVersion {v} is not supported: a {kind} has apiVersion v1"),
                );
            }
        }
    }

    fn list_document(&mut self, root: &Node) {
        let Some(obj) = self.object(root, "", &schema::LIST) else {
            return;
        };
        self.api_version(&obj, "List");
        if let Some(meta) = obj.get("metadata") {
            self.object(meta, "metadata", &schema::LIST_METADATA);
        }
        let Some(items) = obj.get("items") else {
            return;
        };
        let Some(items) = self.list(items, "items") else {
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let path = index("items", i);
            let kind = match &item.value {
                Value::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| k.name == "kind")
                    .map(|(_, v)| v),
                _ => None,
            };
            match kind.map(|v| &v.value) {
                Some(Value::Str(k)) if k == "Pod" => self.pod(item, &path),
                Some(value) => {
                    let text = scalar_text(value).unwrap_or_else(|| value.describe());
                    let pos = kind.map_or(item.pos, |v| v.pos);
                    self.error(
                        pos,
                        &join(&path, "kind"),
                        format!("kind {text} is not supported: a List may hold Pods only"),
                    );
                }
                None => {
                    self.error(
                        item.pos,
                        &join(&path, "kind"),
                        "kind is required (items of a List are Pods)",
                    );
                }
            }
        }
    }

    // ---- pods --------------------------------------------------------------------------

    fn pod(&mut self, node: &Node, path: &str) {
        let errors_before = self.count;
        self.warnings.clear();
        let Some(obj) = self.object(node, path, &schema::POD) else {
            return;
        };
        self.api_version(&obj, "Pod");

        let mut name = String::new();
        let mut name_pos = obj.pos;
        let mut namespace = DEFAULT_NAMESPACE.to_string();
        let mut labels = BTreeMap::new();
        let mut annotation_entries = Vec::new();
        let meta_path = obj.path("metadata");
        match obj.get("metadata") {
            None => self.error(
                obj.pos,
                &meta_path,
                "metadata is required (with at least a name)",
            ),
            Some(meta_node) => {
                if let Some(meta) = self.object(meta_node, &meta_path, &schema::METADATA) {
                    if let Some(n) = self.required(&meta, "name") {
                        let p = meta.path("name");
                        if let Some(s) = self.string(n, &p) {
                            if self.check(n, &p, dns_subdomain(&s)).is_some() {
                                name = s;
                                name_pos = n.pos;
                            }
                        }
                    }
                    if let Some(n) = meta.get("namespace") {
                        let p = meta.path("namespace");
                        if let Some(s) = self.string(n, &p) {
                            if self.check(n, &p, dns_label(&s)).is_some() {
                                namespace = s;
                            }
                        }
                    }
                    if let Some(n) = meta.get("labels") {
                        labels = self.labels(n, &meta.path("labels"));
                    }
                    if let Some(n) = meta.get("annotations") {
                        annotation_entries = self.string_map(n, &meta.path("annotations"));
                    }
                }
            }
        }
        let annotations_path = join(&meta_path, "annotations");
        let mut annotations = BTreeMap::new();
        let mut annotation_bytes = 0;
        for (key, value, _) in &annotation_entries {
            let field = format!("{annotations_path}[{}]", key.name);
            if let Err(message) = qualified_name(&key.name) {
                self.error(key.pos, &field, message);
            }
            annotation_bytes += key.name.len() + value.len();
            annotations.insert(key.name.clone(), value.clone());
        }
        if annotation_bytes > MAX_ANNOTATIONS_BYTES {
            self.error(
                obj.key_pos("metadata"),
                &annotations_path,
                format!(
                    "annotations take {annotation_bytes} bytes, more than the {} KiB allowed",
                    MAX_ANNOTATIONS_BYTES >> 10
                ),
            );
        }

        self.seccomp_annotation = annotation_entries
            .iter()
            .find(|(key, _, _)| key.name == schema::ANNOTATION_SECCOMP)
            .and_then(|(_, value, _)| value.parse().ok())
            .unwrap_or_default();
        let spec_path = obj.path("spec");
        let spec = match obj.get("spec") {
            Some(spec) => self.spec(spec, &spec_path),
            None => {
                self.error(obj.pos, &spec_path, "spec is required (with containers)");
                None
            }
        };
        // Read from the tree, so that the annotations are checked even when the spec
        // has errors of its own.
        let host_network = obj.get("spec").and_then(raw_host_network);
        let rkt = self.rkt_annotations(&annotation_entries, &annotations_path, host_network);

        if self.count > errors_before {
            return;
        }
        let (Some(spec), Some(rkt)) = (spec, rkt) else {
            return;
        };
        if let (Flavor::Fly, Some(pos)) = (rkt.stage1, spec.private_users) {
            self.error(
                pos,
                &join(&spec_path, "hostUsers"),
                "the fly stage1 runs apps with the host's user ids; remove hostUsers: false or the rkt.io/stage1: fly annotation",
            );
            return;
        }
        let key = PodKey { namespace, name };
        if let Some(first) = self.seen.get(&key) {
            let message =
                format!("pod {key} is defined twice in this file (first at line {first})");
            self.error(name_pos, &join(&meta_path, "name"), message);
            return;
        }
        self.seen.insert(key.clone(), node.pos.line);
        let mut pod = DesiredPod {
            key,
            file: self.file.to_string(),
            line: node.pos.line,
            labels,
            annotations,
            spec_hash: String::new(),
            restart_policy: spec.restart_policy,
            host_network: spec.host_network,
            private_users: spec.private_users.is_some(),
            hostname: spec.hostname,
            host_aliases: spec.host_aliases,
            dns: spec.dns,
            termination_grace_period_secs: spec.grace,
            stage1: rkt.stage1,
            networks: rkt.networks,
            replace: rkt.replace,
            image_privileges: rkt.image_privileges,
            placement: spec.placement,
            init_containers: spec.init_containers,
            containers: spec.containers,
            volumes: spec.volumes,
            warnings: std::mem::take(&mut self.warnings),
        };
        pod.spec_hash = pod.compute_spec_hash();
        self.pods.push(pod);
    }

    /// `spec.hostAliases`: each an IP address and at least one hostname (RFC 1123
    /// subdomains), as the API server validates them.
    fn host_aliases(&mut self, node: &Node, path: &str) -> Vec<HostAlias> {
        let mut out = Vec::new();
        for (i, item) in self.list(node, path).unwrap_or_default().iter().enumerate() {
            let item_path = index(path, i);
            let Some(obj) = self.object(item, &item_path, &schema::HOST_ALIAS) else {
                continue;
            };
            let errors_before = self.count;
            let ip = match obj.get("ip") {
                Some(n) => {
                    let p = obj.path("ip");
                    self.string(n, &p).and_then(|ip| {
                        let valid = ip
                            .parse::<std::net::IpAddr>()
                            .map(|_| ())
                            .map_err(|_| format!("{} is not an IP address", quoted(&ip)));
                        self.check(n, &p, valid).map(|()| ip)
                    })
                }
                None => {
                    self.error(obj.pos, &obj.path("ip"), "ip is required");
                    None
                }
            };
            let hostnames = match obj.get("hostnames") {
                Some(n) => {
                    let p = obj.path("hostnames");
                    let items = self.list(n, &p).unwrap_or_default();
                    if items.is_empty() && self.count == errors_before {
                        self.error(n.pos, &p, "a host alias needs at least one hostname");
                    }
                    let mut names = Vec::new();
                    for (j, item) in items.iter().enumerate() {
                        let item_path = index(&p, j);
                        if let Some(name) = self.string(item, &item_path) {
                            if self.check(item, &item_path, dns_subdomain(&name)).is_some() {
                                names.push(name);
                            }
                        }
                    }
                    names
                }
                None => {
                    self.error(obj.pos, &obj.path("hostnames"), "hostnames is required");
                    Vec::new()
                }
            };
            if let (Some(ip), true) = (ip, self.count == errors_before) {
                out.push(HostAlias { ip, hostnames });
            }
        }
        out
    }

    /// `spec.dnsPolicy` and `spec.dnsConfig`. `Default`, `ClusterFirst` and
    /// `ClusterFirstWithHostNet` all mean the host's resolver here (there is no cluster
    /// DNS); `None` takes the pod's resolver from `dnsConfig` alone.
    fn dns(&mut self, spec: &Obj) -> Option<PodDns> {
        let policy = spec.get("dnsPolicy").and_then(|n| {
            let p = spec.path("dnsPolicy");
            let s = self.string(n, &p)?;
            match s.as_str() {
                "ClusterFirst" | "ClusterFirstWithHostNet" | "Default" | "None" => Some((s, n)),
                other => {
                    let message = format!(
                        "unknown dnsPolicy {other}: use ClusterFirst, ClusterFirstWithHostNet, \
                         Default or None"
                    );
                    self.error(n.pos, &p, message);
                    None
                }
            }
        });
        let none = policy.as_ref().is_some_and(|(s, _)| s == "None");
        let Some(node) = spec.get("dnsConfig") else {
            if let (true, Some((_, n))) = (none, &policy) {
                let message = "dnsPolicy: None needs a dnsConfig with at least one nameserver";
                self.error(n.pos, &spec.path("dnsPolicy"), message);
            }
            return None;
        };
        let path = spec.path("dnsConfig");
        let obj = self.object(node, &path, &schema::DNS_CONFIG)?;
        if !none {
            let message = "dnsConfig is only supported with dnsPolicy: None (merging it into \
                           the host's resolver configuration is not implemented)";
            self.error(node.pos, &path, message);
            return None;
        }
        let mut out = PodDns {
            nameservers: Vec::new(),
            searches: Vec::new(),
            options: Vec::new(),
        };
        let mut written = 0;
        if let Some(n) = obj.get("nameservers") {
            let p = obj.path("nameservers");
            let items = self.list(n, &p).unwrap_or_default();
            written = items.len();
            if items.len() > 3 {
                self.error(n.pos, &p, format!("{} nameservers: at most 3", items.len()));
            }
            for (i, item) in items.iter().enumerate() {
                let ip_path = index(&p, i);
                let Some(ip) = self.string(item, &ip_path) else {
                    continue;
                };
                let valid = ip
                    .parse::<std::net::IpAddr>()
                    .map_err(|_| format!("{} is not an IP address", quoted(&ip)));
                if self.check(item, &ip_path, valid).is_some() {
                    out.nameservers.push(ip);
                }
            }
        }
        if written == 0 {
            let message = "dnsPolicy: None needs at least one nameserver in dnsConfig";
            self.error(node.pos, &join(&path, "nameservers"), message);
        }
        if let Some(n) = obj.get("searches") {
            let p = obj.path("searches");
            let items = self.list(n, &p).unwrap_or_default();
            if items.len() > 32 {
                self.error(
                    n.pos,
                    &p,
                    format!("{} search domains: at most 32", items.len()),
                );
            }
            for (i, item) in items.iter().enumerate() {
                let s_path = index(&p, i);
                let Some(s) = self.string(item, &s_path) else {
                    continue;
                };
                let trimmed = s.strip_suffix('.').unwrap_or(&s);
                if self.check(item, &s_path, dns_subdomain(trimmed)).is_some() {
                    out.searches.push(s);
                }
            }
            let total = out.searches.iter().map(String::len).sum::<usize>()
                + out.searches.len().saturating_sub(1);
            if total > 2048 {
                let message = format!("the search domains have {total} characters: at most 2048");
                self.error(n.pos, &p, message);
            }
        }
        if let Some(n) = obj.get("options") {
            let p = obj.path("options");
            for (i, item) in self.list(n, &p).unwrap_or_default().iter().enumerate() {
                let o_path = index(&p, i);
                let Some(o) = self.object(item, &o_path, &schema::DNS_OPTION) else {
                    continue;
                };
                let word = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
                let name = match o.get("name") {
                    Some(v) => self.string(v, &o.path("name")).and_then(|name| {
                        let valid = if word(&name) && !name.contains(':') {
                            Ok(name)
                        } else {
                            Err(format!("{} is not an option name", quoted(&name)))
                        };
                        self.check(v, &o.path("name"), valid)
                    }),
                    None => {
                        self.error(o.pos, &o.path("name"), "name is required");
                        None
                    }
                };
                let value = o.get("value").and_then(|v| {
                    let value = self.string(v, &o.path("value"))?;
                    let valid = if word(&value) {
                        Ok(value)
                    } else {
                        Err(format!("{} is not an option value", quoted(&value)))
                    };
                    self.check(v, &o.path("value"), valid)
                });
                if let Some(name) = name {
                    // Kubernetes: an option given again overrides the earlier one.
                    out.options
                        .retain(|o| o.split(':').next() != Some(name.as_str()));
                    out.options.push(match value {
                        Some(v) if !v.is_empty() => format!("{name}:{v}"),
                        _ => name,
                    });
                }
            }
        }
        Some(out)
    }

    fn labels(&mut self, node: &Node, path: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (key, value, value_pos) in self.string_map(node, path) {
            let field = format!("{path}[{}]", key.name);
            if let Err(message) = qualified_name(&key.name) {
                self.error(key.pos, &field, message);
            }
            if let Err(message) = label_value(&value) {
                self.error(value_pos, &field, message);
            }
            out.insert(key.name.clone(), value);
        }
        out
    }

    fn rkt_annotations(
        &mut self,
        entries: &[(&Key, String, Pos)],
        path: &str,
        spec_host_network: Option<bool>,
    ) -> Option<RktChoices> {
        let errors_before = self.count;
        let host_network = spec_host_network.unwrap_or(false);
        let mut choices = RktChoices {
            stage1: Flavor::Default,
            networks: if host_network {
                Vec::new()
            } else {
                vec![DEFAULT_NETWORK.to_string()]
            },
            replace: ReplaceStrategy::StopFirst,
            image_privileges: false,
        };
        let mut stage1_pos = None;
        for (key, value, pos) in entries {
            let field = format!("{path}[{}]", key.name);
            match key.name.as_str() {
                schema::ANNOTATION_STAGE1 => match value.parse::<Flavor>() {
                    Ok(flavor) => {
                        choices.stage1 = flavor;
                        stage1_pos = Some(*pos);
                    }
                    Err(_) => self.error(
                        *pos,
                        &field,
                        format!("unknown stage1 flavor {value}: use default or fly"),
                    ),
                },
                schema::ANNOTATION_REPLACE => match value.as_str() {
                    "stop-first" => choices.replace = ReplaceStrategy::StopFirst,
                    "start-first" => choices.replace = ReplaceStrategy::StartFirst,
                    other => self.error(
                        *pos,
                        &field,
                        format!("unknown replace strategy {other}: use stop-first or start-first"),
                    ),
                },
                schema::ANNOTATION_SECCOMP if value.parse::<Seccomp>().is_err() => {
                    self.error(
                        *pos,
                        &field,
                        format!("unknown seccomp profile {value}: use default or unconfined"),
                    );
                }
                schema::ANNOTATION_SECCOMP => {}
                schema::ANNOTATION_IMAGE_PRIVILEGES => match value.as_str() {
                    "allow" => choices.image_privileges = true,
                    "deny" => choices.image_privileges = false,
                    other => self.error(
                        *pos,
                        &field,
                        format!("unknown image privileges choice {other}: use deny or allow"),
                    ),
                },
                schema::ANNOTATION_NETWORKS => {
                    if host_network {
                        self.error(
                            *pos,
                            &field,
                            "the pod uses the host's network (hostNetwork: true); remove \
                             rkt.io/networks",
                        );
                        continue;
                    }
                    match networks(value) {
                        Ok(list) => choices.networks = list,
                        Err(message) => self.error(*pos, &field, message),
                    }
                }
                other if other.starts_with("rkt.io/") => {
                    let hint = match schema::suggest(other, schema::RKT_ANNOTATIONS.iter().copied())
                    {
                        Some(s) => format!("did you mean {s}?"),
                        None => format!("known: {}", schema::RKT_ANNOTATIONS.join(", ")),
                    };
                    self.error(key.pos, &field, format!("unknown rkt annotation; {hint}"));
                }
                _ => {}
            }
        }
        if let (Flavor::Fly, Some(pos)) = (choices.stage1, stage1_pos) {
            if spec_host_network == Some(false) {
                self.error(
                    pos,
                    &format!("{path}[{}]", schema::ANNOTATION_STAGE1),
                    "the fly stage1 runs apps in the host's namespaces; set spec.hostNetwork: true",
                );
            }
        }
        (self.count == errors_before).then_some(choices)
    }

    fn spec(&mut self, node: &Node, path: &str) -> Option<Spec> {
        let errors_before = self.count;
        let obj = self.object(node, path, &schema::POD_SPEC)?;
        let (run_as_user, run_as_group, pod_seccomp) = match obj.get("securityContext") {
            Some(sc) => self.pod_security_context(sc, &obj.path("securityContext")),
            None => (None, None, None),
        };
        let restart_policy = match obj.get("restartPolicy") {
            None => RestartPolicy::Always,
            Some(n) => {
                let p = obj.path("restartPolicy");
                match self.string(n, &p).as_deref() {
                    Some("Always") => RestartPolicy::Always,
                    Some("OnFailure") => RestartPolicy::OnFailure,
                    Some("Never") => RestartPolicy::Never,
                    Some(other) => {
                        self.error(
                            n.pos,
                            &p,
                            format!(
                                "unknown restartPolicy {other}: use Always, OnFailure or Never"
                            ),
                        );
                        RestartPolicy::Always
                    }
                    None => RestartPolicy::Always,
                }
            }
        };
        let grace = obj
            .get("terminationGracePeriodSeconds")
            .and_then(|n| self.integer(n, &obj.path("terminationGracePeriodSeconds"), 0, i64::MAX))
            .map_or(DEFAULT_GRACE_SECS, |v| v.unsigned_abs());
        let host_network = obj
            .get("hostNetwork")
            .and_then(|n| self.boolean(n, &obj.path("hostNetwork")))
            .unwrap_or(false);
        // Kubernetes' default is true: the host's user namespace.
        let private_users = obj.get("hostUsers").and_then(|n| {
            let host_users = self.boolean(n, &obj.path("hostUsers"))?;
            (!host_users).then_some(n.pos)
        });
        let hostname = obj.get("hostname").and_then(|n| {
            let p = obj.path("hostname");
            let s = self.string(n, &p)?;
            self.check(n, &p, dns_label(&s))?;
            Some(s)
        });
        let host_aliases = obj
            .get("hostAliases")
            .map(|n| self.host_aliases(n, &obj.path("hostAliases")))
            .unwrap_or_default();
        let dns = self.dns(&obj);

        let placement = self.placement(&obj);

        let mut volumes = Vec::new();
        let mut volume_names = BTreeSet::new();
        if let Some(n) = obj.get("volumes") {
            let p = obj.path("volumes");
            let mut first_line: HashMap<String, usize> = HashMap::new();
            for (i, item) in self.list(n, &p).unwrap_or_default().iter().enumerate() {
                let item_path = index(&p, i);
                let Some(volume) = self.volume(item, &item_path) else {
                    // Still count it as declared, so that its mounts do not add errors.
                    if let Some(name) = raw_string_field(item, "name") {
                        volume_names.insert(name.to_string());
                    }
                    continue;
                };
                let name = volume.name().to_string();
                if let Some(line) = first_line.get(&name) {
                    let message = format!("duplicate volume name {name} (first at line {line})");
                    self.error(item.pos, &join(&item_path, "name"), message);
                    continue;
                }
                first_line.insert(name.clone(), item.pos.line);
                volume_names.insert(name);
                volumes.push(volume);
            }
        }

        let mut ctx = PodContext {
            volumes: &volume_names,
            run_as_user,
            run_as_group,
            host_network,
            init: true,
            seccomp: pod_seccomp.unwrap_or(self.seccomp_annotation),
        };
        let mut init_containers = Vec::new();
        let mut containers = Vec::new();
        // (name, line) of every container, to find duplicates across both lists.
        let mut names: HashMap<String, usize> = HashMap::new();
        // (hostPort, protocol) -> line, host ports must be unique on the host.
        let mut host_ports: HashMap<(u16, String), usize> = HashMap::new();
        for (field, init) in [("initContainers", true), ("containers", false)] {
            let p = obj.path(field);
            let Some(n) = obj.get(field) else {
                if !init {
                    self.error(obj.pos, &p, "containers is required (at least one)");
                }
                continue;
            };
            let Some(items) = self.list(n, &p) else {
                continue;
            };
            if !init && items.is_empty() {
                self.error(n.pos, &p, "a pod needs at least one container");
            }
            ctx.init = init;
            for (i, item) in items.iter().enumerate() {
                let item_path = index(&p, i);
                let Some(c) = self.container(item, &item_path, &ctx) else {
                    continue;
                };
                if let Some(line) = names.get(&c.name) {
                    let message =
                        format!("duplicate container name {} (first at line {line})", c.name);
                    self.error(item.pos, &join(&item_path, "name"), message);
                }
                names.entry(c.name.clone()).or_insert(item.pos.line);
                for port in &c.ports {
                    let Some(host_port) = port.host_port else {
                        continue;
                    };
                    let key = (host_port, port.protocol.clone());
                    if let Some(line) = host_ports.get(&key) {
                        let message = format!(
                            "hostPort {host_port}/{} is used twice (first at line {line})",
                            port.protocol
                        );
                        self.error(item.pos, &join(&item_path, "ports"), message);
                    }
                    host_ports.entry(key).or_insert(item.pos.line);
                }
                if init {
                    init_containers.push(c);
                } else {
                    containers.push(c);
                }
            }
        }
        if self.count > errors_before {
            return None;
        }
        Some(Spec {
            restart_policy,
            host_network,
            private_users,
            hostname,
            host_aliases,
            dns,
            grace,
            placement,
            init_containers,
            containers,
            volumes,
        })
    }

    fn pod_security_context(
        &mut self,
        node: &Node,
        path: &str,
    ) -> (Option<u32>, Option<u32>, Option<Seccomp>) {
        let Some(obj) = self.object(node, path, &schema::POD_SECURITY_CONTEXT) else {
            return (None, None, None);
        };
        let seccomp = obj
            .get("seccompProfile")
            .and_then(|n| self.seccomp_profile(n, &obj.path("seccompProfile")));
        (
            self.id(&obj, "runAsUser"),
            self.id(&obj, "runAsGroup"),
            seccomp,
        )
    }

    /// `seccompProfile`: `type: RuntimeDefault` (rkt's default profile) or
    /// `Unconfined`; `Localhost` profiles (files) do not exist here.
    fn seccomp_profile(&mut self, node: &Node, path: &str) -> Option<Seccomp> {
        let obj = self.object(node, path, &schema::SECCOMP_PROFILE)?;
        let type_node = self.required(&obj, "type")?;
        let p = obj.path("type");
        match self.string(type_node, &p)?.as_str() {
            "RuntimeDefault" => Some(Seccomp::Default),
            "Unconfined" => Some(Seccomp::Unconfined),
            "Localhost" => {
                self.error(
                    type_node.pos,
                    &p,
                    "type Localhost is not supported: profiles from files do not exist here; \
                     use RuntimeDefault or Unconfined",
                );
                None
            }
            other => {
                self.error(
                    type_node.pos,
                    &p,
                    format!(
                        "unknown seccompProfile type {other}: use RuntimeDefault or Unconfined"
                    ),
                );
                None
            }
        }
    }

    fn id(&mut self, obj: &Obj<'_>, name: &str) -> Option<u32> {
        let node = obj.get(name)?;
        let v = self.integer(node, &obj.path(name), 0, MAX_ID)?;
        u32::try_from(v).ok()
    }

    fn volume(&mut self, node: &Node, path: &str) -> Option<DesiredVolume> {
        let errors_before = self.count;
        let obj = self.object(node, path, &schema::VOLUME)?;
        let name_node = self.required(&obj, "name");
        let name = name_node.and_then(|n| {
            let p = obj.path("name");
            let s = self.string(n, &p)?;
            self.check(n, &p, dns_label(&s))?;
            Some(s)
        });
        let host_path = obj.get("hostPath");
        let empty_dir = obj.entries.iter().find(|(k, _)| k.name == "emptyDir");
        match (host_path, empty_dir) {
            (Some(hp), None) => {
                let p = obj.path("hostPath");
                let hp_obj = self.object(hp, &p, &schema::HOST_PATH)?;
                let path_node = self.required(&hp_obj, "path")?;
                let pp = hp_obj.path("path");
                let host = self.string(path_node, &pp)?;
                self.check(path_node, &pp, absolute_path(&host))?;
                let kind = match hp_obj.get("type") {
                    None => None,
                    Some(t) => {
                        let tp = hp_obj.path("type");
                        let s = self.string(t, &tp)?;
                        if s.is_empty() {
                            None
                        } else if HOST_PATH_TYPES.contains(&s.as_str()) {
                            Some(s)
                        } else {
                            let hint = match schema::suggest(&s, HOST_PATH_TYPES.iter().copied()) {
                                Some(h) => format!("; did you mean {h}?"),
                                None => format!(" (use one of {})", HOST_PATH_TYPES.join(", ")),
                            };
                            self.error(t.pos, &tp, format!("unknown hostPath type {s}{hint}"));
                            return None;
                        }
                    }
                };
                Some(DesiredVolume::HostPath {
                    name: name?,
                    path: host,
                    kind,
                })
            }
            (None, Some((_, ed))) => {
                self.object(ed, &obj.path("emptyDir"), &schema::EMPTY_DIR)?;
                Some(DesiredVolume::EmptyDir { name: name? })
            }
            (Some(_), Some((k, _))) => {
                self.error(
                    k.pos,
                    path,
                    "a volume has exactly one source: hostPath or emptyDir, not both",
                );
                None
            }
            (None, None) => {
                // An unsupported source was reported already by `object`.
                if self.count == errors_before {
                    self.error(
                        obj.pos,
                        path,
                        "a volume needs a source: hostPath or emptyDir",
                    );
                }
                None
            }
        }
    }

    // ---- containers --------------------------------------------------------------------

    fn container(
        &mut self,
        node: &Node,
        path: &str,
        ctx: &PodContext<'_>,
    ) -> Option<DesiredContainer> {
        let errors_before = self.count;
        let obj = self.object(node, path, &schema::CONTAINER)?;
        let name = self.required(&obj, "name").and_then(|n| {
            let p = obj.path("name");
            let s = self.string(n, &p)?;
            self.check(n, &p, dns_label(&s))?;
            Some(s)
        });
        let image = self.required(&obj, "image").and_then(|n| {
            let p = obj.path("image");
            let s = self.string(n, &p)?;
            self.check(n, &p, image_reference(&s))?;
            Some(s)
        });
        let image_pull_policy = match obj.get("imagePullPolicy") {
            None => image.as_deref().map(default_pull_policy),
            Some(n) => {
                let p = obj.path("imagePullPolicy");
                match self.string(n, &p).as_deref() {
                    Some("Always") => Some(ImagePullPolicy::Always),
                    Some("IfNotPresent") => Some(ImagePullPolicy::IfNotPresent),
                    Some("Never") => Some(ImagePullPolicy::Never),
                    Some(other) => {
                        self.error(
                            n.pos,
                            &p,
                            format!(
                                "unknown imagePullPolicy {other}: use Always, IfNotPresent or Never"
                            ),
                        );
                        None
                    }
                    None => None,
                }
            }
        };
        let command = obj
            .get("command")
            .and_then(|n| self.string_list(n, &obj.path("command")))
            .unwrap_or_default();
        let args = obj
            .get("args")
            .and_then(|n| self.string_list(n, &obj.path("args")))
            .unwrap_or_default();
        let env = match obj.get("env") {
            Some(n) => self.env(n, &obj.path("env")),
            None => Vec::new(),
        };
        let working_dir = obj.get("workingDir").and_then(|n| {
            let p = obj.path("workingDir");
            let s = self.string(n, &p)?;
            self.check(n, &p, absolute_path(&s))?;
            Some(s)
        });
        let ports = match obj.get("ports") {
            Some(n) => self.ports(n, &obj.path("ports"), ctx),
            None => Vec::new(),
        };
        let volume_mounts = match obj.get("volumeMounts") {
            Some(n) => self.volume_mounts(n, &obj.path("volumeMounts"), ctx),
            None => Vec::new(),
        };
        let (memory_limit_bytes, cpu_millis) = match obj.get("resources") {
            Some(n) => self.resources(n, &obj.path("resources")),
            None => (None, None),
        };
        let mut security = match obj.get("securityContext") {
            Some(n) => self.container_security_context(n, &obj.path("securityContext")),
            None => Security::default(),
        };
        security.run_as_user = security.run_as_user.or(ctx.run_as_user);
        security.run_as_group = security.run_as_group.or(ctx.run_as_group);

        let mut probes = [None, None];
        for (slot, field) in probes.iter_mut().zip(["livenessProbe", "readinessProbe"]) {
            let Some(n) = obj.get(field) else {
                continue;
            };
            if ctx.init {
                self.error(
                    obj.key_pos(field),
                    &obj.path(field),
                    format!("{field} is not allowed on an init container (it runs to completion)"),
                );
                continue;
            }
            *slot = self.probe(n, &obj.path(field), &ports, field == "livenessProbe");
        }
        let [liveness_probe, readiness_probe] = probes;

        if self.count > errors_before {
            return None;
        }
        let vars = expand_env(env);
        let expand_all = |list: Vec<String>| -> Vec<String> {
            list.iter().map(|s| expand_refs(s, &vars)).collect()
        };
        Some(DesiredContainer {
            name: name?,
            image: image?,
            image_pull_policy: image_pull_policy?,
            command: expand_all(command),
            args: expand_all(args),
            env: vars,
            working_dir,
            ports,
            volume_mounts,
            memory_limit_bytes,
            cpu_millis,
            run_as_user: security.run_as_user,
            run_as_group: security.run_as_group,
            read_only_root_filesystem: security.read_only_root_filesystem,
            capabilities_add: security.capabilities_add,
            capabilities_drop: security.capabilities_drop,
            privileged: security.privileged,
            seccomp: security.seccomp.unwrap_or(ctx.seccomp),
            liveness_probe,
            readiness_probe,
        })
    }

    fn env(&mut self, node: &Node, path: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut lines: HashMap<String, usize> = HashMap::new();
        for (i, item) in self.list(node, path).unwrap_or_default().iter().enumerate() {
            let item_path = index(path, i);
            let Some(obj) = self.object(item, &item_path, &schema::ENV) else {
                continue;
            };
            let Some(name) = self.required(&obj, "name").and_then(|n| {
                let p = obj.path("name");
                let s = self.string(n, &p)?;
                self.check(n, &p, env_name(&s))?;
                Some(s)
            }) else {
                continue;
            };
            let value = match obj.get("value") {
                Some(n) => match self.string(n, &obj.path("value")) {
                    Some(v) => v,
                    None => continue,
                },
                None => String::new(),
            };
            if let Some(line) = lines.get(&name) {
                let message = format!("duplicate env name {name} (first at line {line})");
                self.error(obj.key_pos("name"), &obj.path("name"), message);
                continue;
            }
            lines.insert(name.clone(), item.pos.line);
            out.push((name, value));
        }
        out
    }

    fn ports(&mut self, node: &Node, path: &str, ctx: &PodContext<'_>) -> Vec<ContainerPort> {
        let mut out: Vec<ContainerPort> = Vec::new();
        let mut names = BTreeSet::new();
        for (i, item) in self.list(node, path).unwrap_or_default().iter().enumerate() {
            let item_path = index(path, i);
            let Some(obj) = self.object(item, &item_path, &schema::PORT) else {
                continue;
            };
            let container_port = self
                .required(&obj, "containerPort")
                .and_then(|n| self.port_number(n, &obj.path("containerPort"), "containerPort"));
            let host_port = match obj.get("hostPort") {
                None => Some(None),
                Some(n) => self
                    .port_number(n, &obj.path("hostPort"), "hostPort")
                    .map(Some),
            };
            let protocol = match obj.get("protocol") {
                None => Some("TCP".to_string()),
                Some(n) => {
                    let p = obj.path("protocol");
                    match self.string(n, &p).as_deref() {
                        Some(proto @ ("TCP" | "UDP")) => Some(proto.to_string()),
                        Some("SCTP") => {
                            self.error(n.pos, &p, "SCTP ports are not supported: use TCP or UDP");
                            None
                        }
                        Some(other) => {
                            self.error(
                                n.pos,
                                &p,
                                format!("unknown protocol {other}: use TCP or UDP"),
                            );
                            None
                        }
                        None => None,
                    }
                }
            };
            let name = match obj.get("name") {
                None => Some(None),
                Some(n) => {
                    let p = obj.path("name");
                    self.string(n, &p)
                        .and_then(|s| self.check(n, &p, port_name(&s)).map(|()| Some(s)))
                }
            };
            let (Some(container_port), Some(host_port), Some(protocol), Some(name)) =
                (container_port, host_port, protocol, name)
            else {
                continue;
            };
            if let (true, Some(hp)) = (ctx.host_network, host_port) {
                if hp != container_port {
                    self.error(
                        obj.key_pos("hostPort"),
                        &obj.path("hostPort"),
                        format!(
                            "with hostNetwork: true the hostPort must equal containerPort \
                             ({container_port}) or be left out"
                        ),
                    );
                    continue;
                }
            }
            if let Some(n) = &name {
                if !names.insert(n.clone()) {
                    self.error(
                        obj.key_pos("name"),
                        &obj.path("name"),
                        format!("duplicate port name {n} in this container"),
                    );
                    continue;
                }
            }
            out.push(ContainerPort {
                name,
                container_port,
                host_port,
                protocol,
            });
        }
        out
    }

    fn port_number(&mut self, node: &Node, path: &str, what: &str) -> Option<u16> {
        if let Value::Number(n) = &node.value {
            if let Some(v) = parse_int(n) {
                if !(1..=65535).contains(&v) {
                    let extra = if what == "hostPort" && v == 0 {
                        " (leave hostPort out to not publish the port)"
                    } else {
                        ""
                    };
                    self.error(
                        node.pos,
                        path,
                        format!(
                            "{what} {v} is out of range: it must be between 1 and 65535{extra}"
                        ),
                    );
                    return None;
                }
            }
        }
        let v = self.integer(node, path, 1, 65535)?;
        u16::try_from(v).ok()
    }

    fn volume_mounts(&mut self, node: &Node, path: &str, ctx: &PodContext<'_>) -> Vec<VolumeMount> {
        let mut out: Vec<VolumeMount> = Vec::new();
        let mut paths = BTreeSet::new();
        for (i, item) in self.list(node, path).unwrap_or_default().iter().enumerate() {
            let item_path = index(path, i);
            let Some(obj) = self.object(item, &item_path, &schema::VOLUME_MOUNT) else {
                continue;
            };
            let name = self.required(&obj, "name").and_then(|n| {
                let p = obj.path("name");
                let s = self.string(n, &p)?;
                if !ctx.volumes.contains(&s) {
                    let declared: Vec<&str> = ctx.volumes.iter().map(String::as_str).collect();
                    let hint = match schema::suggest(&s, declared.iter().copied()) {
                        Some(h) => format!("; did you mean {h}?"),
                        None if declared.is_empty() => {
                            "; declare it under spec.volumes".to_string()
                        }
                        None => format!(" (declared: {})", declared.join(", ")),
                    };
                    self.error(
                        n.pos,
                        &p,
                        format!("volume {s} is not declared in spec.volumes{hint}"),
                    );
                    return None;
                }
                Some(s)
            });
            let mount_path = self.required(&obj, "mountPath").and_then(|n| {
                let p = obj.path("mountPath");
                let s = self.string(n, &p)?;
                self.check(n, &p, absolute_path(&s))?;
                Some(s)
            });
            let read_only = match obj.get("readOnly") {
                None => Some(false),
                Some(n) => self.boolean(n, &obj.path("readOnly")),
            };
            let (Some(name), Some(mount_path), Some(read_only)) = (name, mount_path, read_only)
            else {
                continue;
            };
            if !paths.insert(mount_path.trim_end_matches('/').to_string()) {
                self.error(
                    obj.key_pos("mountPath"),
                    &obj.path("mountPath"),
                    format!("{mount_path} is mounted twice in this container"),
                );
                continue;
            }
            out.push(VolumeMount {
                name,
                mount_path,
                read_only,
            });
        }
        out
    }

    /// (memory limit in bytes, cpu limit in millicores); requests are checked, not used.
    fn resources(&mut self, node: &Node, path: &str) -> (Option<u64>, Option<u64>) {
        let Some(obj) = self.object(node, path, &schema::RESOURCES) else {
            return (None, None);
        };
        let limits = match obj.get("limits") {
            Some(n) => self.quantities(n, &obj.path("limits")),
            None => Quantities::default(),
        };
        let requests = match obj.get("requests") {
            Some(n) => self.quantities(n, &obj.path("requests")),
            None => Quantities::default(),
        };
        for (what, request, limit) in [
            ("memory", requests.memory, limits.memory),
            ("cpu", requests.cpu, limits.cpu),
        ] {
            if let (Some((req, pos)), Some((lim, _))) = (request, limit) {
                if req > lim {
                    self.error(
                        pos,
                        &format!("{}.{what}", obj.path("requests")),
                        format!("the {what} request is larger than its limit"),
                    );
                }
            }
        }
        (limits.memory.map(|(v, _)| v), limits.cpu.map(|(v, _)| v))
    }

    fn quantities(&mut self, node: &Node, path: &str) -> Quantities {
        let mut out = Quantities::default();
        let Value::Map(entries) = &node.value else {
            if node.value != Value::Null {
                self.error(
                    node.pos,
                    path,
                    format!(
                        "expected a mapping of cpu and memory, found {}",
                        node.value.describe()
                    ),
                );
            }
            return out;
        };
        for (key, value) in entries {
            let field = join(path, &key.name);
            if !schema::RESOURCE_NAMES.contains(&key.name.as_str()) {
                let hint = match schema::suggest(&key.name, schema::RESOURCE_NAMES.iter().copied())
                {
                    Some(s) => format!("; did you mean {s}?"),
                    None => String::new(),
                };
                self.error(
                    key.pos,
                    &field,
                    format!(
                        "resource {} is not supported: only cpu and memory are enforced{hint}",
                        key.name
                    ),
                );
                continue;
            }
            let Some(text) =
                scalar_text(&value.value).filter(|_| !matches!(value.value, Value::Bool(_)))
            else {
                self.error(
                    value.pos,
                    &field,
                    format!("expected a quantity, found {}", value.value.describe()),
                );
                continue;
            };
            let parsed = if key.name == "cpu" {
                quantity::parse_cpu_millis(&text)
            } else {
                quantity::parse_bytes(&text)
            };
            match parsed {
                Ok(v) if key.name == "cpu" => out.cpu = Some((v, value.pos)),
                Ok(v) => out.memory = Some((v, value.pos)),
                Err(e) => self.error(value.pos, &field, e.to_string()),
            }
        }
        out
    }

    fn container_security_context(&mut self, node: &Node, path: &str) -> Security {
        let mut out = Security::default();
        let Some(obj) = self.object(node, path, &schema::CONTAINER_SECURITY_CONTEXT) else {
            return out;
        };
        out.run_as_user = self.id(&obj, "runAsUser");
        out.run_as_group = self.id(&obj, "runAsGroup");
        let flag = |r: &mut Self, name: &str| -> bool {
            obj.get(name)
                .and_then(|n| r.boolean(n, &obj.path(name)))
                .unwrap_or(false)
        };
        out.read_only_root_filesystem = flag(self, "readOnlyRootFilesystem");
        out.privileged = flag(self, "privileged");
        out.seccomp = obj
            .get("seccompProfile")
            .and_then(|n| self.seccomp_profile(n, &obj.path("seccompProfile")));
        if let Some(n) = obj.get("allowPrivilegeEscalation") {
            let p = obj.path("allowPrivilegeEscalation");
            match self.boolean(n, &p) {
                Some(false) if out.privileged => self.error(
                    n.pos,
                    &p,
                    "allowPrivilegeEscalation: false contradicts privileged: true",
                ),
                Some(true) => self.error(
                    n.pos,
                    &p,
                    "allowPrivilegeEscalation: true is not supported: apps always run with \
                     no_new_privs; remove it (or use privileged: true)",
                ),
                _ => {}
            }
        }
        if let Some(n) = obj.get("capabilities") {
            let p = obj.path("capabilities");
            if let Some(caps) = self.object(n, &p, &schema::CAPABILITIES) {
                if let Some(add) = caps.get("add") {
                    out.capabilities_add = self.capabilities(add, &caps.path("add"), false);
                }
                if let Some(drop) = caps.get("drop") {
                    out.capabilities_drop = self.capabilities(drop, &caps.path("drop"), true);
                }
            }
        }
        out
    }

    fn capabilities(&mut self, node: &Node, path: &str, allow_all: bool) -> Vec<String> {
        let mut out = BTreeSet::new();
        for (i, item) in self.list(node, path).unwrap_or_default().iter().enumerate() {
            let p = index(path, i);
            let Some(s) = self.string(item, &p) else {
                continue;
            };
            let upper = s.to_ascii_uppercase();
            if upper == "ALL" {
                if allow_all {
                    out.insert("ALL".to_string());
                } else {
                    self.error(
                        item.pos,
                        &p,
                        "adding ALL capabilities is not supported: use privileged: true or list \
                         them",
                    );
                }
                continue;
            }
            let canonical = if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            };
            if schema::CAPABILITIES_KNOWN.contains(&canonical.as_str()) {
                out.insert(canonical);
            } else {
                let hint =
                    match schema::suggest(&canonical, schema::CAPABILITIES_KNOWN.iter().copied()) {
                        Some(h) => format!("; did you mean {}?", &h[4..]),
                        None => String::new(),
                    };
                self.error(item.pos, &p, format!("unknown capability {s}{hint}"));
            }
        }
        out.into_iter().collect()
    }

    fn probe(
        &mut self,
        node: &Node,
        path: &str,
        ports: &[ContainerPort],
        liveness: bool,
    ) -> Option<Probe> {
        let errors_before = self.count;
        let obj = self.object(node, path, &schema::PROBE)?;
        let handlers: Vec<&str> = ["exec", "tcpSocket", "httpGet"]
            .into_iter()
            .filter(|h| obj.entries.iter().any(|(k, _)| k.name == *h))
            .collect();
        let action = match handlers.as_slice() {
            [] => {
                // An unsupported handler (grpc) was reported already by `object`.
                if self.count == errors_before {
                    self.error(
                        obj.pos,
                        path,
                        "a probe needs one of exec, tcpSocket or httpGet",
                    );
                }
                None
            }
            [one] => {
                let p = obj.path(one);
                let n = obj
                    .entries
                    .iter()
                    .find(|(k, _)| k.name == *one)
                    .map(|(_, v)| *v)?;
                self.probe_action(one, n, &p, ports)
            }
            [_, second, ..] => {
                self.error(
                    obj.key_pos(second),
                    &obj.path(second),
                    format!("a probe has exactly one of {}", handlers.join(", ")),
                );
                None
            }
        };
        let mut timing = |name: &str, min: i64, default: u64| -> u64 {
            obj.get(name)
                .and_then(|n| self.integer(n, &obj.path(name), min, i64::from(i32::MAX)))
                .map_or(default, |v| v.unsigned_abs())
        };
        let initial_delay_secs = timing("initialDelaySeconds", 0, 0);
        let period_secs = timing("periodSeconds", 1, 10);
        let timeout_secs = timing("timeoutSeconds", 1, 1);
        let success_threshold = timing("successThreshold", 1, 1);
        let failure_threshold = timing("failureThreshold", 1, 3);
        if liveness && success_threshold != 1 {
            self.error(
                obj.key_pos("successThreshold"),
                &obj.path("successThreshold"),
                "successThreshold of a livenessProbe must be 1",
            );
        }
        if self.count > errors_before {
            return None;
        }
        Some(Probe {
            action: action?,
            initial_delay_secs,
            period_secs,
            timeout_secs,
            success_threshold: u32::try_from(success_threshold).ok()?,
            failure_threshold: u32::try_from(failure_threshold).ok()?,
        })
    }

    fn probe_action(
        &mut self,
        handler: &str,
        node: &Node,
        path: &str,
        ports: &[ContainerPort],
    ) -> Option<ProbeAction> {
        match handler {
            "exec" => {
                let obj = self.object(node, path, &schema::EXEC_ACTION)?;
                let n = self.required(&obj, "command")?;
                let p = obj.path("command");
                let command = self.string_list(n, &p)?;
                if command.is_empty() {
                    self.error(n.pos, &p, "an exec probe needs a command");
                    return None;
                }
                Some(ProbeAction::Exec { command })
            }
            "tcpSocket" => {
                let obj = self.object(node, path, &schema::TCP_ACTION)?;
                let n = self.required(&obj, "port")?;
                let port = self.probe_port(n, &obj.path("port"), ports)?;
                Some(ProbeAction::TcpSocket { port })
            }
            _ => {
                let obj = self.object(node, path, &schema::HTTP_ACTION)?;
                let n = self.required(&obj, "port")?;
                let port = self.probe_port(n, &obj.path("port"), ports);
                let http_path = match obj.get("path") {
                    None => Some("/".to_string()),
                    Some(n) => {
                        let p = obj.path("path");
                        self.string(n, &p).and_then(|s| {
                            if s.starts_with('/') {
                                Some(s)
                            } else {
                                self.error(n.pos, &p, format!("path {s} must start with /"));
                                None
                            }
                        })
                    }
                };
                let scheme = match obj.get("scheme") {
                    None => Some("HTTP".to_string()),
                    Some(n) => {
                        let p = obj.path("scheme");
                        match self.string(n, &p).as_deref() {
                            Some("HTTP") => Some("HTTP".to_string()),
                            Some(other) => {
                                self.error(
                                    n.pos,
                                    &p,
                                    format!("scheme {other} is not supported: probes use HTTP"),
                                );
                                None
                            }
                            None => None,
                        }
                    }
                };
                Some(ProbeAction::HttpGet {
                    path: http_path?,
                    port: port?,
                    scheme: scheme?,
                })
            }
        }
    }

    /// A port number, or the name of one of the container's ports.
    fn probe_port(&mut self, node: &Node, path: &str, ports: &[ContainerPort]) -> Option<u16> {
        let Value::Str(name) = &node.value else {
            return self.port_number(node, path, "port");
        };
        self.check(node, path, port_name(name))?;
        match ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
        {
            Some(p) => Some(p.container_port),
            None => {
                let named: Vec<&str> = ports.iter().filter_map(|p| p.name.as_deref()).collect();
                let known = if named.is_empty() {
                    "it has no named ports".to_string()
                } else {
                    format!("its named ports: {}", named.join(", "))
                };
                self.error(
                    node.pos,
                    path,
                    format!("the container has no port named {name} ({known})"),
                );
                None
            }
        }
    }
}

/// `spec.hostNetwork` as written: `None` when the spec or the value is malformed.
fn raw_host_network(spec: &Node) -> Option<bool> {
    let Value::Map(entries) = &spec.value else {
        return None;
    };
    match entries.iter().find(|(k, _)| k.name == "hostNetwork") {
        None => Some(false),
        Some((_, v)) => match v.value {
            Value::Null => Some(false),
            Value::Bool(b) => Some(b),
            _ => None,
        },
    }
}

fn raw_string_field<'n>(node: &'n Node, name: &str) -> Option<&'n str> {
    let Value::Map(entries) = &node.value else {
        return None;
    };
    entries.iter().find_map(|(k, v)| match &v.value {
        Value::Str(s) if k.name == name => Some(s.as_str()),
        _ => None,
    })
}

struct Spec {
    restart_policy: RestartPolicy,
    host_network: bool,
    /// `hostUsers: false`, and where it was written.
    private_users: Option<Pos>,
    hostname: Option<String>,
    host_aliases: Vec<HostAlias>,
    dns: Option<PodDns>,
    grace: u64,
    placement: super::Placement,
    init_containers: Vec<DesiredContainer>,
    containers: Vec<DesiredContainer>,
    volumes: Vec<DesiredVolume>,
}

struct RktChoices {
    stage1: Flavor,
    networks: Vec<String>,
    replace: ReplaceStrategy,
    image_privileges: bool,
}

#[derive(Default)]
struct Security {
    run_as_user: Option<u32>,
    run_as_group: Option<u32>,
    read_only_root_filesystem: bool,
    privileged: bool,
    capabilities_add: Vec<String>,
    capabilities_drop: Vec<String>,
    seccomp: Option<Seccomp>,
}

/// Parsed values with the position of each, to point at a request above its limit.
#[derive(Default)]
struct Quantities {
    cpu: Option<(u64, Pos)>,
    memory: Option<(u64, Pos)>,
}

// ---- defaults and expansion ------------------------------------------------------------

/// Kubernetes' default pull policy: `Always` for no tag or `latest`, else `IfNotPresent`.
/// Digests (`@sha256:...`) and image IDs (`sha512-...`) name fixed content.
pub(super) fn default_pull_policy(image: &str) -> ImagePullPolicy {
    if image.starts_with("sha512-") || image.contains('@') {
        return ImagePullPolicy::IfNotPresent;
    }
    let without_scheme = image.split_once("://").map_or(image, |(_, rest)| rest);
    let last = without_scheme.rsplit('/').next().unwrap_or(without_scheme);
    match last.split_once(':') {
        None => ImagePullPolicy::Always,
        Some((_, "latest")) => ImagePullPolicy::Always,
        Some(_) => ImagePullPolicy::IfNotPresent,
    }
}

/// Expand `$(VAR)` in each value with the variables defined before it.
fn expand_env(env: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(env.len());
    for (name, value) in env {
        let expanded = expand_refs(&value, &out);
        out.push((name, expanded));
    }
    out
}

/// Kubernetes' `$(VAR)` expansion: `$(NAME)` becomes the value of `NAME` when defined
/// (and stays as written when not), `$$` becomes `$`.
pub(super) fn expand_refs(input: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.iter().rev().find(|(n, _)| n == name) {
                        Some((_, value)) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

// ---- names -----------------------------------------------------------------------------

/// A value for a message: quoted, and cut short when long.
fn quoted(s: &str) -> String {
    const MAX: usize = 100;
    match s.char_indices().nth(MAX) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
    }
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// RFC 1123 label: container, volume and namespace names, hostnames.
pub(super) fn dns_label(s: &str) -> Result<(), String> {
    let q = quoted(s);
    if s.is_empty() || s.len() > 63 {
        return Err(format!(
            "{q} is not a valid name: it must have 1 to 63 characters"
        ));
    }
    let ok = s.chars().all(is_label_char) && !s.starts_with('-') && !s.ends_with('-');
    if !ok {
        return Err(format!(
            "{q} is not a valid name: use lower-case letters, digits and '-', starting and \
             ending with a letter or digit (RFC 1123)"
        ));
    }
    Ok(())
}

/// RFC 1123 subdomain: pod names.
pub(super) fn dns_subdomain(s: &str) -> Result<(), String> {
    let q = quoted(s);
    if s.is_empty() || s.len() > 253 {
        return Err(format!(
            "{q} is not a valid name: it must have 1 to 253 characters"
        ));
    }
    let ok = s.split('.').all(|part| {
        !part.is_empty()
            && part.chars().all(is_label_char)
            && !part.starts_with('-')
            && !part.ends_with('-')
    });
    if !ok {
        return Err(format!(
            "{q} is not a valid name: use lower-case letters, digits, '-' and '.', each \
             part starting and ending with a letter or digit (RFC 1123)"
        ));
    }
    Ok(())
}

/// IANA service name: port names (also what named probe ports refer to).
pub(super) fn port_name(s: &str) -> Result<(), String> {
    let q = quoted(s);
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.chars().all(is_label_char)
        && s.chars().any(|c| c.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{q} is not a valid port name: up to 15 lower-case letters, digits and single \
             '-', with at least one letter"
        ))
    }
}

fn is_name_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Label and annotation keys: `[prefix/]name`.
pub(super) fn qualified_name(s: &str) -> Result<(), String> {
    let q = quoted(s);
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        if dns_subdomain(p).is_err() {
            return Err(format!(
                "{q} is not a valid key: the prefix before '/' must be a DNS subdomain"
            ));
        }
    }
    if !is_name_part(name) {
        return Err(format!(
            "{q} is not a valid key: the name must have 1 to 63 letters, digits, '-', '_' \
             or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

pub(super) fn label_value(s: &str) -> Result<(), String> {
    let q = quoted(s);
    if s.is_empty() || is_name_part(s) {
        Ok(())
    } else {
        Err(format!(
            "{q} is not a valid label value: up to 63 letters, digits, '-', '_' or '.', \
             starting and ending with a letter or digit"
        ))
    }
}

pub(super) fn env_name(s: &str) -> Result<(), String> {
    let q = quoted(s);
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic() && c != '=') {
        Ok(())
    } else {
        Err(format!(
            "{q} is not a valid environment variable name: printable characters without \
             '=' or spaces"
        ))
    }
}

fn absolute_path(s: &str) -> Result<(), String> {
    let q = quoted(s);
    if !s.starts_with('/') {
        return Err(format!("{q} must be an absolute path (starting with /)"));
    }
    if s.split('/').any(|part| part == "..") {
        return Err(format!("{q} must not contain '..'"));
    }
    if s.contains('\0') {
        return Err("the path contains a NUL character".to_string());
    }
    Ok(())
}

fn image_reference(s: &str) -> Result<(), String> {
    let q = quoted(s);
    if s.is_empty() {
        return Err("image must not be empty".to_string());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("image {q} contains white space"));
    }
    Ok(())
}

/// `rkt.io/networks`: comma-separated network names.
fn networks(value: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    for part in value.split(',') {
        let name = part.trim();
        if name.is_empty() {
            return Err(format!(
                "{} has an empty network name: list names separated by commas",
                quoted(value)
            ));
        }
        if name == "host" {
            return Err("use spec.hostNetwork: true instead of the host network".to_string());
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "{} is not a valid network name: letters, digits, '-', '_' and '.'",
                quoted(name)
            ));
        }
        if !seen.insert(name) {
            return Err(format!("network {name} is listed twice"));
        }
        out.push(name.to_string());
    }
    if out.len() > 1 && out.iter().any(|n| n == "none") {
        return Err("none cannot be combined with other networks".to_string());
    }
    Ok(out)
}
