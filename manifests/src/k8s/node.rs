//! Which host a Pod is for: the host's name and labels ([`Node`]) and a Pod's
//! `spec.nodeName`, `spec.nodeSelector` and required node affinity ([`Placement`]),
//! matched as the Kubernetes scheduler does. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// This host as Pods select it: a name and labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// What a host's `node.yaml` says: its name (if set) and labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFile {
    pub name: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// The label Kubernetes gives every node with its name.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
pub const LABEL_OS: &str = "kubernetes.io/os";
pub const LABEL_ARCH: &str = "kubernetes.io/arch";

/// Kubernetes' (Go's) name of a Rust target architecture (`std::env::consts::ARCH`).
pub fn kube_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        "mips" => "mipsle",
        "mips64" => "mips64le",
        other => other,
    }
}

impl Node {
    /// A host named `name` with the labels Kubernetes gives every node
    /// (`kubernetes.io/hostname`, `kubernetes.io/os`, `kubernetes.io/arch`) and `labels`
    /// (which win over those).
    pub fn new(name: &str, labels: BTreeMap<String, String>) -> Node {
        let mut all = BTreeMap::from([
            (LABEL_HOSTNAME.to_string(), name.to_string()),
            (LABEL_OS.to_string(), "linux".to_string()),
            (
                LABEL_ARCH.to_string(),
                kube_arch(std::env::consts::ARCH).to_string(),
            ),
        ]);
        all.extend(labels);
        Node {
            name: name.to_string(),
            labels: all,
        }
    }
}

/// `spec.nodeName`, `spec.nodeSelector` and
/// `spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub node_name: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    /// The `nodeSelectorTerms` (ORed); `None` when not set.
    pub required: Option<Vec<NodeSelectorTerm>>,
}

/// One term: every expression and every field requirement must match (an empty term
/// matches no node, as in Kubernetes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSelectorTerm {
    pub match_expressions: Vec<NodeRequirement>,
    /// Only `metadata.name` with `In` or `NotIn`.
    pub match_fields: Vec<NodeRequirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRequirement {
    pub key: String,
    pub operator: NodeOperator,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    /// The label's value, an integer, is greater than the one value.
    Gt,
    /// The label's value, an integer, is less than the one value.
    Lt,
}

impl NodeOperator {
    pub fn parse(s: &str) -> Option<NodeOperator> {
        Some(match s {
            "In" => NodeOperator::In,
            "NotIn" => NodeOperator::NotIn,
            "Exists" => NodeOperator::Exists,
            "DoesNotExist" => NodeOperator::DoesNotExist,
            "Gt" => NodeOperator::Gt,
            "Lt" => NodeOperator::Lt,
            _ => return None,
        })
    }
}

impl NodeRequirement {
    /// Whether the value `actual` (`None`: no such label) meets the requirement.
    pub fn matches(&self, actual: Option<&str>) -> bool {
        let number = |s: &str| s.parse::<i64>().ok();
        let compare =
            |want: std::cmp::Ordering| match (actual.and_then(number), self.values.first()) {
                (Some(have), Some(bound)) => number(bound).is_some_and(|b| have.cmp(&b) == want),
                _ => false,
            };
        match self.operator {
            NodeOperator::In => actual.is_some_and(|v| self.values.iter().any(|w| w == v)),
            NodeOperator::NotIn => actual.is_none_or(|v| !self.values.iter().any(|w| w == v)),
            NodeOperator::Exists => actual.is_some(),
            NodeOperator::DoesNotExist => actual.is_none(),
            NodeOperator::Gt => compare(std::cmp::Ordering::Greater),
            NodeOperator::Lt => compare(std::cmp::Ordering::Less),
        }
    }
}

impl NodeSelectorTerm {
    pub fn matches(&self, node: &Node) -> bool {
        if self.match_expressions.is_empty() && self.match_fields.is_empty() {
            return false;
        }
        self.match_expressions
            .iter()
            .all(|r| r.matches(node.labels.get(&r.key).map(String::as_str)))
            && self.match_fields.iter().all(|r| {
                let field = (r.key == "metadata.name").then_some(node.name.as_str());
                r.matches(field)
            })
    }
}

impl Placement {
    /// Whether the pod runs on `node`: `None` if it does, else which selector does
    /// not match, for people.
    pub fn mismatch(&self, node: &Node) -> Option<String> {
        if let Some(name) = &self.node_name {
            if *name != node.name {
                return Some(format!(
                    "spec.nodeName is {name}, this host is {}",
                    node.name
                ));
            }
        }
        for (key, want) in &self.node_selector {
            match node.labels.get(key) {
                Some(have) if have == want => {}
                Some(have) => {
                    return Some(format!(
                        "spec.nodeSelector wants {key}={want}, this host has {key}={have}"
                    ))
                }
                None => {
                    return Some(format!(
                        "spec.nodeSelector wants {key}={want}, this host has no label {key}"
                    ))
                }
            }
        }
        if let Some(terms) = &self.required {
            if !terms.iter().any(|t| t.matches(node)) {
                return Some(format!(
                    "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution: \
                     none of its {} nodeSelectorTerms matches this host ({})",
                    terms.len(),
                    node.name
                ));
            }
        }
        None
    }
}
