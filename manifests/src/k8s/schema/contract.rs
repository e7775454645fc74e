//! `docs/pod-fields.md` against the Kubernetes OpenAPI schema (`k8s-openapi`, one
//! Kubernetes version, a dev-dependency) and against the tables of `schema.rs`: every
//! field of every type the tables check has one row, no row names a field the schema
//! lacks, and each row's kind (runs / ignored / refused) is what the table does.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Schema, TABLES};

const DOC: &str = include_str!("../../../../docs/pod-fields.md");

/// The JSON schema of `v1.Pod`, with every type it reaches in `$defs`.
fn openapi() -> Value {
    let root = schemars::SchemaGenerator::default()
        .into_root_schema_for::<k8s_openapi::api::core::v1::Pod>();
    serde_json::to_value(&root).expect("the schema serializes")
}

fn definition<'v>(root: &'v Value, type_name: &str) -> &'v Value {
    if type_name == "Pod" {
        return root;
    }
    let defs = &root["$defs"];
    let found = [
        "io.k8s.api.core.v1.",
        "io.k8s.apimachinery.pkg.apis.meta.v1.",
    ]
    .iter()
    .map(|prefix| &defs[format!("{prefix}{type_name}")])
    .find(|d| !d.is_null());
    found.unwrap_or_else(|| panic!("{type_name} is not in the Kubernetes schema"))
}

fn properties(def: &Value) -> BTreeMap<String, Value> {
    def["properties"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// The object type a field holds (directly, as array items or as map values), if any.
fn object_type(root: &Value, field: &Value) -> Option<String> {
    let target = [
        &field["$ref"],
        &field["items"]["$ref"],
        &field["additionalProperties"]["$ref"],
    ]
    .into_iter()
    .find_map(Value::as_str)?;
    let name = target.rsplit('.').next()?.to_string();
    let def = &root["$defs"][target.trim_start_matches("#/$defs/")];
    def["properties"].is_object().then_some(name)
}

fn kind_of(schema: &Schema, field: &str) -> Option<&'static str> {
    if schema.fields.contains(&field) {
        Some("runs")
    } else {
        schema
            .unsupported(field)
            .map(|u| if u.ignored { "ignored" } else { "refused" })
    }
}

/// `Type.field` -> the kind written in its row (the second cell).
fn doc_rows(doc: &str) -> BTreeMap<String, String> {
    let mut rows = BTreeMap::new();
    for line in doc.lines() {
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let Some((name, rest)) = rest.split_once("` |") else {
            continue;
        };
        if !name.contains('.') {
            continue;
        }
        let kind = rest.split('|').next().unwrap_or("").trim().to_string();
        let previous = rows.insert(name.to_string(), kind);
        assert!(
            previous.is_none(),
            "two rows for {name} in docs/pod-fields.md"
        );
    }
    rows
}

/// What is wrong with `doc` (the text of `docs/pod-fields.md`) and the tables.
fn problems(root: &Value, doc: &str) -> Vec<String> {
    let rows = doc_rows(doc);
    let tables: BTreeSet<&str> = TABLES.iter().map(|(_, t)| *t).collect();
    let mut problems = Vec::new();
    let mut named = BTreeSet::new();
    for (schema, type_name) in TABLES {
        let props = properties(definition(root, type_name));
        for (field, field_schema) in &props {
            let row = format!("{type_name}.{field}");
            named.insert(row.clone());
            let Some(kind) = kind_of(schema, field) else {
                problems.push(format!(
                    "{row}: in the Kubernetes schema but neither read nor refused by schema.rs ({})",
                    schema.what
                ));
                continue;
            };
            match rows.get(&row) {
                None => problems.push(format!("{row}: no row in docs/pod-fields.md")),
                Some(written) if written != kind => problems.push(format!(
                    "{row}: docs/pod-fields.md says {written}, schema.rs: {kind}"
                )),
                Some(_) => {}
            }
            // As far as the YAML reaches: an object a field that runs holds is checked
            // by a table of its own (and so has rows of its own).
            if kind == "runs" {
                if let Some(inner) = object_type(root, field_schema) {
                    if !tables.contains(inner.as_str()) {
                        problems.push(format!("{row}: runs, but its type {inner} has no table"));
                    }
                }
            }
        }
        for field in schema
            .fields
            .iter()
            .copied()
            .chain(schema.unsupported.iter().map(|u| u.name))
        {
            if !props.contains_key(field) {
                problems.push(format!(
                    "{type_name}.{field}: in schema.rs ({}) but not in the Kubernetes schema",
                    schema.what
                ));
            }
        }
    }
    for row in rows.keys() {
        if !named.contains(row) {
            problems.push(format!(
                "{row}: a row of docs/pod-fields.md that names no field of the Kubernetes schema"
            ));
        }
    }
    problems
}

#[test]
fn every_field_of_the_schema_has_a_table_entry_and_a_row_of_its_kind() {
    let problems = problems(&openapi(), DOC);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_contract_notices_a_missing_extra_or_wrong_row() {
    let root = openapi();
    let rows = doc_rows(DOC);
    assert_eq!(
        rows.get("Container.image").map(String::as_str),
        Some("runs")
    );
    assert_eq!(
        rows.get("PodSpec.tolerations").map(String::as_str),
        Some("ignored")
    );
    assert_eq!(
        rows.get("Container.envFrom").map(String::as_str),
        Some("refused")
    );
    assert!(rows.len() > 150, "{}", rows.len());

    let without: String = DOC
        .lines()
        .filter(|l| !l.starts_with("| `Container.image` |"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        problems(&root, &without),
        ["Container.image: no row in docs/pod-fields.md"]
    );
    let extra = format!("{DOC}\n| `Container.imageDigest` | runs | - | - | - |\n");
    assert_eq!(
        problems(&root, &extra),
        ["Container.imageDigest: a row of docs/pod-fields.md that names no field of the Kubernetes schema"]
    );
    let wrong = DOC.replace(
        "| `PodSpec.tolerations` | ignored |",
        "| `PodSpec.tolerations` | refused |",
    );
    assert_eq!(
        problems(&root, &wrong),
        ["PodSpec.tolerations: docs/pod-fields.md says refused, schema.rs: ignored"]
    );
}
