//! Reading `spec.nodeName`, `spec.nodeSelector` and `spec.affinity` (into a
//! [`Placement`]), and the host's own `node.yaml` (into a [`Node`]).
//!
//! Preferred node affinity and pod (anti-)affinity have no meaning on one host: they
//! are checked for shape and otherwise ignored.

use std::collections::{BTreeMap, HashMap};

use super::super::node::{NodeFile, NodeOperator, NodeRequirement, NodeSelectorTerm, Placement};
use super::schema::{
    Schema, AFFINITY, LABEL_SELECTOR, NODE_AFFINITY, NODE_SELECTOR, NODE_SELECTOR_TERM,
    POD_AFFINITY, POD_AFFINITY_TERM, PREFERRED_TERM, REQUIREMENT, WEIGHTED_POD_AFFINITY_TERM,
};
use super::{dns_subdomain, index, join, label_value, qualified_name, Obj, Reader};
use crate::k8s::yaml::{self, Node as YamlNode};
use crate::k8s::{ManifestError, Seccomp};

static NODE_FILE: Schema = Schema {
    what: "node file",
    fields: &["name", "labels"],
    unsupported: &[],
};

const REQUIRED: &str = "requiredDuringSchedulingIgnoredDuringExecution";
const PREFERRED: &str = "preferredDuringSchedulingIgnoredDuringExecution";

impl Reader<'_> {
    /// The placement fields of the pod spec `obj` (errors are reported, the result is
    /// only used when there are none).
    pub(super) fn placement(&mut self, obj: &Obj<'_>) -> Placement {
        let mut out = Placement::default();
        if let Some(n) = obj.get("nodeName") {
            let p = obj.path("nodeName");
            if let Some(s) = self.string(n, &p) {
                if self.check(n, &p, dns_subdomain(&s)).is_some() {
                    out.node_name = Some(s);
                }
            }
        }
        if let Some(n) = obj.get("nodeSelector") {
            out.node_selector = self.labels(n, &obj.path("nodeSelector"));
        }
        if let Some(n) = obj.get("affinity") {
            out.required = self.affinity(n, &obj.path("affinity"));
        }
        out
    }

    fn affinity(&mut self, node: &YamlNode, path: &str) -> Option<Vec<NodeSelectorTerm>> {
        let obj = self.object(node, path, &AFFINITY)?;
        for field in ["podAffinity", "podAntiAffinity"] {
            if let Some(n) = obj.get(field) {
                self.pod_affinity(n, &obj.path(field));
            }
        }
        let n = obj.get("nodeAffinity")?;
        let na = self.object(n, &obj.path("nodeAffinity"), &NODE_AFFINITY)?;
        if let Some(n) = na.get(PREFERRED) {
            let p = na.path(PREFERRED);
            for (i, item) in self.list(n, &p).unwrap_or_default().iter().enumerate() {
                let ip = index(&p, i);
                let Some(t) = self.object(item, &ip, &PREFERRED_TERM) else {
                    continue;
                };
                if let Some(w) = self.required(&t, "weight") {
                    self.integer(w, &t.path("weight"), 1, 100);
                }
                if let Some(pref) = self.required(&t, "preference") {
                    self.node_selector_term(pref, &t.path("preference"));
                }
            }
        }
        let n = na.get(REQUIRED)?;
        let p = na.path(REQUIRED);
        let sel = self.object(n, &p, &NODE_SELECTOR)?;
        let terms_node = self.required(&sel, "nodeSelectorTerms")?;
        let tp = sel.path("nodeSelectorTerms");
        let items = self.list(terms_node, &tp)?;
        if items.is_empty() {
            self.error(
                terms_node.pos,
                &tp,
                "nodeSelectorTerms needs at least one term",
            );
            return None;
        }
        let mut terms = Vec::new();
        for (i, item) in items.iter().enumerate() {
            terms.push(self.node_selector_term(item, &index(&tp, i))?);
        }
        Some(terms)
    }

    fn node_selector_term(&mut self, node: &YamlNode, path: &str) -> Option<NodeSelectorTerm> {
        let obj = self.object(node, path, &NODE_SELECTOR_TERM)?;
        let mut term = NodeSelectorTerm::default();
        let mut ok = true;
        for (field, fields) in [("matchExpressions", false), ("matchFields", true)] {
            let Some(n) = obj.get(field) else { continue };
            let p = obj.path(field);
            for (i, item) in self.list(n, &p).unwrap_or_default().iter().enumerate() {
                match self.requirement(item, &index(&p, i), fields) {
                    Some(r) if fields => term.match_fields.push(r),
                    Some(r) => term.match_expressions.push(r),
                    None => ok = false,
                }
            }
        }
        ok.then_some(term)
    }

    /// A node selector requirement (`fields`: of `matchFields`), checked as Kubernetes
    /// validates it.
    fn requirement(
        &mut self,
        node: &YamlNode,
        path: &str,
        fields: bool,
    ) -> Option<NodeRequirement> {
        let errors_before = self.count;
        let obj = self.object(node, path, &REQUIREMENT)?;
        let key = self.required(&obj, "key").and_then(|n| {
            let p = obj.path("key");
            let s = self.string(n, &p)?;
            if fields {
                if s != "metadata.name" {
                    self.error(
                        n.pos,
                        &p,
                        format!("matchFields key {s} is not supported: only metadata.name"),
                    );
                    return None;
                }
            } else {
                self.check(n, &p, qualified_name(&s))?;
            }
            Some(s)
        });
        let operator = self.required(&obj, "operator").and_then(|n| {
            let p = obj.path("operator");
            let s = self.string(n, &p)?;
            let op = NodeOperator::parse(&s);
            match op {
                Some(NodeOperator::In | NodeOperator::NotIn) => op,
                Some(_) if !fields => op,
                _ => {
                    let allowed = if fields {
                        "In or NotIn (matchFields)"
                    } else {
                        "In, NotIn, Exists, DoesNotExist, Gt or Lt"
                    };
                    self.error(n.pos, &p, format!("unknown operator {s}: use {allowed}"));
                    None
                }
            }
        });
        let values_path = obj.path("values");
        let values = match obj.get("values") {
            Some(n) => self.string_list(n, &values_path),
            None => Some(Vec::new()),
        };
        let (Some(key), Some(operator), Some(values)) = (key, operator, values) else {
            return None;
        };
        let at = obj.get("values").map_or(obj.pos, |n| n.pos);
        let problem = match operator {
            _ if fields && values.len() != 1 => {
                Some("matchFields needs exactly one value with In or NotIn".to_string())
            }
            NodeOperator::In | NodeOperator::NotIn if values.is_empty() => {
                Some("values must not be empty with In or NotIn".to_string())
            }
            NodeOperator::Exists | NodeOperator::DoesNotExist if !values.is_empty() => {
                Some("values must be empty with Exists or DoesNotExist".to_string())
            }
            NodeOperator::Gt | NodeOperator::Lt
                if values.len() != 1 || values[0].parse::<i64>().is_err() =>
            {
                Some("Gt and Lt need exactly one value, an integer".to_string())
            }
            _ => None,
        };
        if let Some(message) = problem {
            self.error(at, &values_path, message);
        }
        if !fields && matches!(operator, NodeOperator::In | NodeOperator::NotIn) {
            for (i, v) in values.iter().enumerate() {
                if let Err(message) = label_value(v) {
                    self.error(at, &index(&values_path, i), message);
                }
            }
        }
        (self.count == errors_before).then_some(NodeRequirement {
            key,
            operator,
            values,
        })
    }

    /// `podAffinity` / `podAntiAffinity`: shape only.
    fn pod_affinity(&mut self, node: &YamlNode, path: &str) {
        let Some(obj) = self.object(node, path, &POD_AFFINITY) else {
            return;
        };
        if let Some(n) = obj.get(REQUIRED) {
            let p = obj.path(REQUIRED);
            for (i, item) in self.list(n, &p).unwrap_or_default().iter().enumerate() {
                self.pod_affinity_term(item, &index(&p, i));
            }
        }
        if let Some(n) = obj.get(PREFERRED) {
            let p = obj.path(PREFERRED);
            for (i, item) in self.list(n, &p).unwrap_or_default().iter().enumerate() {
                let ip = index(&p, i);
                let Some(t) = self.object(item, &ip, &WEIGHTED_POD_AFFINITY_TERM) else {
                    continue;
                };
                if let Some(w) = self.required(&t, "weight") {
                    self.integer(w, &t.path("weight"), 1, 100);
                }
                if let Some(term) = self.required(&t, "podAffinityTerm") {
                    self.pod_affinity_term(term, &t.path("podAffinityTerm"));
                }
            }
        }
    }

    fn pod_affinity_term(&mut self, node: &YamlNode, path: &str) {
        let Some(obj) = self.object(node, path, &POD_AFFINITY_TERM) else {
            return;
        };
        if let Some(n) = self.required(&obj, "topologyKey") {
            let p = obj.path("topologyKey");
            if let Some(s) = self.string(n, &p) {
                self.check(n, &p, qualified_name(&s));
            }
        }
        for field in ["labelSelector", "namespaceSelector"] {
            if let Some(n) = obj.get(field) {
                self.label_selector(n, &obj.path(field));
            }
        }
        for field in ["namespaces", "matchLabelKeys", "mismatchLabelKeys"] {
            if let Some(n) = obj.get(field) {
                self.string_list(n, &obj.path(field));
            }
        }
    }

    fn label_selector(&mut self, node: &YamlNode, path: &str) {
        let Some(obj) = self.object(node, path, &LABEL_SELECTOR) else {
            return;
        };
        if let Some(n) = obj.get("matchLabels") {
            self.labels(n, &obj.path("matchLabels"));
        }
        if let Some(n) = obj.get("matchExpressions") {
            let p = obj.path("matchExpressions");
            for (i, item) in self.list(n, &p).unwrap_or_default().iter().enumerate() {
                let ip = index(&p, i);
                // Label selectors have no Gt and Lt.
                if let Some(r) = self.requirement(item, &ip, false) {
                    if matches!(r.operator, NodeOperator::Gt | NodeOperator::Lt) {
                        self.error(
                            item.pos,
                            &join(&ip, "operator"),
                            "a label selector's operator is In, NotIn, Exists or DoesNotExist",
                        );
                    }
                }
            }
        }
    }
}

/// Parse a host's `node.yaml`: `name:` (a DNS subdomain) and `labels:` (a mapping of
/// label keys to values), both optional. `None` for the name when it is not set.
pub(in crate::k8s) fn node_file(file: &str, text: &str) -> Result<NodeFile, Vec<ManifestError>> {
    let mut reader = Reader {
        file,
        errors: Vec::new(),
        count: 0,
        warnings: Vec::new(),
        pods: Vec::new(),
        seen: HashMap::new(),
        seccomp_annotation: Seccomp::Default,
    };
    let mut name = None;
    let mut labels = BTreeMap::new();
    let docs = yaml::parse_stream(text);
    if docs.len() > 1 {
        reader.error(
            yaml::Pos { line: 1, col: 1 },
            "",
            "a node file holds one document",
        );
    }
    for doc in docs {
        match doc {
            Err(e) => reader.error(e.pos, "", format!("invalid YAML: {}", e.message)),
            Ok(yaml::Document { root: None }) => {}
            Ok(yaml::Document { root: Some(root) }) => {
                let Some(obj) = reader.object(&root, "", &NODE_FILE) else {
                    continue;
                };
                if let Some(n) = obj.get("name") {
                    if let Some(s) = reader.string(n, "name") {
                        if reader.check(n, "name", dns_subdomain(&s)).is_some() {
                            name = Some(s);
                        }
                    }
                }
                if let Some(n) = obj.get("labels") {
                    labels = reader.labels(n, "labels");
                }
            }
        }
    }
    if reader.count > 0 {
        return Err(reader.errors);
    }
    Ok(NodeFile { name, labels })
}
