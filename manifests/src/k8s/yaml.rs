//! A YAML 1.2 (and so JSON) document tree where every node knows its line and column.
//!
//! Built from `saphyr_parser` events. The file is split at `---` lines first, so a syntax
//! error in one document does not hide the documents around it. Limits: aliases may
//! expand to at most [`MAX_ALIAS_NODES`] nodes per document (so an "alias bomb" is
//! refused before anything is copied), anchored nodes may hold as many in total, and
//! collections nest at most [`MAX_DEPTH`] deep.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

/// Nodes that aliases may add to one document, in total.
pub(crate) const MAX_ALIAS_NODES: usize = 100_000;
/// Deepest nesting of sequences and mappings.
pub(crate) const MAX_DEPTH: usize = 64;

/// A position in the text, both 1-based (column in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub pos: Pos,
    pub value: Value,
}

/// Scalars are resolved with the YAML 1.2 core schema; numbers keep their text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    /// An integer or float as written (`8080`, `0x1F`, `0.5`, `1e3`).
    Number(String),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; duplicate keys are kept (and reported by the reader).
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub name: String,
    pub pos: Pos,
}

impl Value {
    /// What a person would call this kind of value, for messages.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "null".to_string(),
            Value::Bool(b) => format!("boolean {b}"),
            Value::Number(n) => format!("number {n}"),
            Value::Str(_) => "a string".to_string(),
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
        }
    }
}

/// One document of the stream. `root` is `None` for an empty document.
#[derive(Debug)]
pub(crate) struct Document {
    pub root: Option<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parse every document of `text`. Each entry is one document or the syntax error that
/// ended a `---` section (later sections are still parsed).
pub(crate) fn parse_stream(text: &str) -> Vec<Result<Document, SyntaxError>> {
    let mut out = Vec::new();
    for (first_line, chunk) in split_documents(text) {
        parse_chunk(chunk, first_line - 1, &mut out);
    }
    out
}

/// Split at lines that start a document (`---` alone or followed by a space), keeping
/// sections of only comments, blank lines and directives with the document after them.
/// Returns (1-based first line, text) pairs.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut starts = vec![(1usize, 0usize)];
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_marker = bare == "---"
            || bare.starts_with("--- ")
            || bare.starts_with("---\t")
            || bare.starts_with("---#");
        if is_marker && offset > 0 {
            starts.push((index + 1, offset));
        }
        offset += line.len();
    }
    let mut chunks: Vec<(usize, &str)> = Vec::new();
    let mut pending: Option<(usize, usize)> = None;
    for (i, &(line, start)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(text.len(), |&(_, s)| s);
        let (line, start) = pending.take().unwrap_or((line, start));
        let chunk = &text[start..end];
        if i + 1 < starts.len() && only_trivia(chunk) {
            pending = Some((line, start));
            continue;
        }
        chunks.push((line, chunk));
    }
    chunks
}

/// True when a section holds nothing but blank lines, comments and directives (only the
/// first section can: the others start with `---`).
fn only_trivia(chunk: &str) -> bool {
    chunk.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || l.starts_with('%')
    })
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        merges: Vec<Node>,
        key: Option<PendingKey>,
    },
}

enum PendingKey {
    Key(Key),
    Merge,
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize)>,
    alias_budget: usize,
    /// Anchored nodes are copied when defined; their total size is bounded too.
    anchor_budget: usize,
    root: Option<Node>,
}

fn pos_of(span: &Span, line_offset: usize) -> Pos {
    Pos {
        line: span.start.line() + line_offset,
        col: span.start.col() + 1,
    }
}

fn parse_chunk(chunk: &str, line_offset: usize, out: &mut Vec<Result<Document, SyntaxError>>) {
    let mut parser = Parser::new_from_str(chunk);
    let mut builder: Option<Builder> = None;
    loop {
        let (event, span) = match parser.next_event() {
            None => return,
            Some(Ok(ev)) => ev,
            Some(Err(e)) => {
                let m = e.marker();
                out.push(Err(SyntaxError {
                    pos: Pos {
                        line: m.line() + line_offset,
                        col: m.col() + 1,
                    },
                    message: e.info().to_string(),
                }));
                return;
            }
        };
        let pos = pos_of(&span, line_offset);
        match event {
            Event::StreamStart | Event::Nothing => {}
            Event::StreamEnd => return,
            Event::DocumentStart(_) => {
                builder = Some(Builder {
                    stack: Vec::new(),
                    anchors: HashMap::new(),
                    alias_budget: MAX_ALIAS_NODES,
                    anchor_budget: MAX_ALIAS_NODES,
                    root: None,
                });
            }
            Event::DocumentEnd => {
                if let Some(b) = builder.take() {
                    // A document of only comments is an empty (null) scalar.
                    let root = b.root.filter(|r| r.value != Value::Null);
                    out.push(Ok(Document { root }));
                }
            }
            other => {
                let Some(b) = builder.as_mut() else {
                    continue;
                };
                if let Err(e) = b.event(other, pos) {
                    out.push(Err(e));
                    return;
                }
            }
        }
    }
}

fn count_nodes(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Map(entries) => 1 + entries.iter().map(|(_, v)| count_nodes(v)).sum::<usize>(),
        _ => 1,
    }
}

fn core_tag(tag: &Tag) -> Option<&str> {
    if tag.is_yaml_core_schema() {
        Some(tag.suffix.as_str())
    } else {
        None
    }
}

fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if is_int(text) || is_float(text) {
        Value::Number(text.to_string())
    } else {
        Value::Str(text.to_string())
    }
}

fn is_int(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if let Some(hex) = s.strip_prefix("0x") {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    if let Some(oct) = s.strip_prefix("0o") {
        return !oct.is_empty() && oct.chars().all(|c| ('0'..='7').contains(&c));
    }
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

fn is_float(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if matches!(body, ".inf" | ".Inf" | ".INF") || matches!(s, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int_part, frac) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], Some(&mantissa[i + 1..])),
        None => (mantissa, None),
    };
    let all_digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(f) => all_digits(int_part) && all_digits(f) && !(int_part.is_empty() && f.is_empty()),
        None => !int_part.is_empty() && all_digits(int_part),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok
}

impl Builder {
    fn error(&self, pos: Pos, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            pos,
            message: message.into(),
        }
    }

    fn event(&mut self, event: Event<'_>, pos: Pos) -> Result<(), SyntaxError> {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let value = match (style, tag.as_deref()) {
                    (_, Some(t)) => match core_tag(t) {
                        Some("str") => Value::Str(text.into_owned()),
                        Some("null") => Value::Null,
                        Some("bool" | "int" | "float") => resolve_plain(&text),
                        _ => return Err(self.error(pos, unsupported_tag(t))),
                    },
                    (ScalarStyle::Plain, None) => resolve_plain(&text),
                    (_, None) => Value::Str(text.into_owned()),
                };
                self.push_node(Node { pos, value }, anchor, false)
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), "seq", pos)?;
                self.open(Frame::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                })
            }
            Event::MappingStart(anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), "map", pos)?;
                self.open(Frame::Map {
                    pos,
                    anchor,
                    entries: Vec::new(),
                    merges: Vec::new(),
                    key: None,
                })
            }
            Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Seq { pos, anchor, items }) => self.push_node(
                    Node {
                        pos,
                        value: Value::Seq(items),
                    },
                    anchor,
                    false,
                ),
                _ => Err(self.error(pos, "unbalanced sequence end")),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Map {
                    pos,
                    anchor,
                    mut entries,
                    merges,
                    ..
                }) => {
                    apply_merges(&mut entries, merges)?;
                    self.push_node(
                        Node {
                            pos,
                            value: Value::Map(entries),
                        },
                        anchor,
                        false,
                    )
                }
                _ => Err(self.error(pos, "unbalanced mapping end")),
            },
            Event::Alias(id) => {
                let Some((node, size)) = self.anchors.get(&id) else {
                    return Err(self.error(pos, "alias refers to an anchor that encloses it"));
                };
                if *size > self.alias_budget {
                    return Err(self.error(
                        pos,
                        format!(
                            "aliases expand to more than {MAX_ALIAS_NODES} nodes; refusing \
                             (write the repeated content out instead)"
                        ),
                    ));
                }
                self.alias_budget -= size;
                let node = node.clone();
                self.push_node(node, 0, true)
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => Ok(()),
        }
    }

    fn check_collection_tag(
        &self,
        tag: Option<&Tag>,
        expected: &str,
        pos: Pos,
    ) -> Result<(), SyntaxError> {
        match tag {
            None => Ok(()),
            Some(t) if core_tag(t) == Some(expected) => Ok(()),
            Some(t) => Err(self.error(pos, unsupported_tag(t))),
        }
    }

    fn open(&mut self, frame: Frame) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            let pos = match &frame {
                Frame::Seq { pos, .. } | Frame::Map { pos, .. } => *pos,
            };
            return Err(self.error(
                pos,
                format!("lists and mappings nest more than {MAX_DEPTH} levels deep"),
            ));
        }
        self.stack.push(frame);
        Ok(())
    }

    /// Attach a finished node to its parent (or make it the root).
    fn push_node(
        &mut self,
        node: Node,
        anchor: usize,
        from_alias: bool,
    ) -> Result<(), SyntaxError> {
        if anchor != 0 {
            let size = count_nodes(&node);
            if size > self.anchor_budget {
                return Err(self.error(
                    node.pos,
                    format!(
                        "anchors cover more than {MAX_ALIAS_NODES} nodes; refusing (write the \
                         content out instead)"
                    ),
                ));
            }
            self.anchor_budget -= size;
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map {
                entries,
                merges,
                key,
                ..
            }) => match key.take() {
                Some(PendingKey::Key(k)) => {
                    entries.push((k, node));
                    Ok(())
                }
                Some(PendingKey::Merge) => {
                    merges.push(node);
                    Ok(())
                }
                None => {
                    let pos = node.pos;
                    let name = match node.value {
                        Value::Str(s) => s,
                        Value::Number(n) => n,
                        Value::Bool(b) => b.to_string(),
                        Value::Null => "null".to_string(),
                        Value::Seq(_) | Value::Map(_) => {
                            return Err(SyntaxError {
                                pos,
                                message: "mapping keys must be plain strings, not lists or \
                                          mappings"
                                    .to_string(),
                            })
                        }
                    };
                    // `<<` merges an aliased mapping (YAML 1.1 merge key, which
                    // Kubernetes' YAML reader also honours). An alias is never a key here.
                    *key = Some(if name == "<<" && !from_alias {
                        PendingKey::Merge
                    } else {
                        PendingKey::Key(Key { name, pos })
                    });
                    Ok(())
                }
            },
        }
    }
}

fn unsupported_tag(tag: &Tag) -> String {
    format!(
        "tag {}{} is not supported (only plain YAML and JSON)",
        tag.handle, tag.suffix
    )
}

/// Fold `<<: *a` / `<<: [*a, *b]` into `entries`: keys written in the mapping win, then
/// earlier merged mappings over later ones.
fn apply_merges(entries: &mut Vec<(Key, Node)>, merges: Vec<Node>) -> Result<(), SyntaxError> {
    let mut sources = Vec::new();
    for merge in merges {
        match merge.value {
            Value::Map(m) => sources.push(m),
            Value::Seq(items) => {
                for item in items {
                    match item.value {
                        Value::Map(m) => sources.push(m),
                        _ => {
                            return Err(SyntaxError {
                                pos: item.pos,
                                message: "a merge key (<<) takes mappings only".to_string(),
                            })
                        }
                    }
                }
            }
            _ => {
                return Err(SyntaxError {
                    pos: merge.pos,
                    message: "a merge key (<<) takes a mapping or a list of mappings".to_string(),
                })
            }
        }
    }
    let mut present: HashSet<String> = entries.iter().map(|(k, _)| k.name.clone()).collect();
    for source in sources {
        for (k, v) in source {
            if present.insert(k.name.clone()) {
                entries.push((k, v));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        let docs = parse_stream(text);
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs.into_iter().next().unwrap().unwrap().root.unwrap()
    }

    #[test]
    fn scalars_resolve_with_the_core_schema() {
        let cases: &[(&str, Value)] = &[
            ("a: 8080", Value::Number("8080".into())),
            ("a: '8080'", Value::Str("8080".into())),
            ("a: 0.5", Value::Number("0.5".into())),
            ("a: 1e3", Value::Number("1e3".into())),
            ("a: 0x1F", Value::Number("0x1F".into())),
            ("a: true", Value::Bool(true)),
            ("a: False", Value::Bool(false)),
            ("a: yes", Value::Str("yes".into())),
            ("a: no", Value::Str("no".into())),
            ("a:", Value::Null),
            ("a: ~", Value::Null),
            ("a: 128Mi", Value::Str("128Mi".into())),
            ("a: 1.2.3", Value::Str("1.2.3".into())),
            ("a: !!str 12", Value::Str("12".into())),
            ("a: .5", Value::Number(".5".into())),
            ("a: 1_000", Value::Str("1_000".into())),
        ];
        for (text, want) in cases {
            let node = root(text);
            let Value::Map(entries) = node.value else {
                panic!("{text}: not a map")
            };
            assert_eq!(&entries[0].1.value, want, "{text}");
        }
    }

    #[test]
    fn positions_are_one_based() {
        let node = root("# c\nmetadata:\n  name: web\n  labels: {a: b}\n");
        let Value::Map(top) = node.value else {
            panic!()
        };
        assert_eq!(top[0].0.pos, Pos { line: 2, col: 1 });
        let Value::Map(meta) = &top[0].1.value else {
            panic!()
        };
        assert_eq!(meta[0].0.pos, Pos { line: 3, col: 3 });
        assert_eq!(meta[0].1.pos, Pos { line: 3, col: 9 });
        let Value::Map(labels) = &meta[1].1.value else {
            panic!()
        };
        assert_eq!(labels[0].0.pos, Pos { line: 4, col: 12 });
    }

    #[test]
    fn json_with_tabs_parses() {
        let node = root("{\n\t\"a\": [1, 2],\n\t\"b\": {\"c\": \"d\"}\n}\n");
        let Value::Map(top) = node.value else {
            panic!()
        };
        assert_eq!(top.len(), 2);
        assert_eq!(top[1].0.pos, Pos { line: 3, col: 2 });
    }

    #[test]
    fn documents_are_split_and_syntax_errors_stay_local() {
        let text = "a: 1\n---\nb: [unclosed\n---\n# only a comment\n---\nc: 3\n";
        let docs = parse_stream(text);
        assert_eq!(docs.len(), 4, "{docs:?}");
        assert!(docs[0].is_ok());
        let err = docs[1].as_ref().unwrap_err();
        assert!(err.pos.line >= 3, "{err:?}");
        assert!(docs[2].as_ref().unwrap().root.is_none());
        let last = docs[3].as_ref().unwrap().root.as_ref().unwrap();
        assert_eq!(last.pos.line, 7);
    }

    #[test]
    fn directives_stay_with_their_document() {
        let docs = parse_stream("%YAML 1.2\n---\na: 1\n");
        assert_eq!(docs.len(), 1, "{docs:?}");
        assert_eq!(docs[0].as_ref().unwrap().root.as_ref().unwrap().pos.line, 3);
    }

    #[test]
    fn merge_keys_and_aliases() {
        let node = root("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n");
        let Value::Map(top) = node.value else {
            panic!()
        };
        let Value::Map(c) = &top[1].1.value else {
            panic!()
        };
        let names: Vec<_> = c.iter().map(|(k, _)| k.name.as_str()).collect();
        assert_eq!(names, ["y", "x"]);
        assert_eq!(c[0].1.value, Value::Number("3".into()));
    }

    #[test]
    fn alias_bomb_is_refused_quickly() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let started = std::time::Instant::now();
        let docs = parse_stream(&text);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let err = docs[0].as_ref().unwrap_err();
        assert!(err.message.contains("aliases expand"), "{err:?}");
    }

    #[test]
    fn anchoring_everything_is_bounded() {
        // Every level anchored: copies would grow with size x depth.
        let mut text = String::from("a: ");
        for _ in 0..60 {
            text.push_str("&x [");
            text.push_str(&"1, ".repeat(2_000));
        }
        text.push_str(&"]".repeat(60));
        let err = parse_stream(&text).remove(0).unwrap_err();
        assert!(err.message.contains("anchors cover"), "{err:?}");
        assert!(parse_stream("a: &x [1, 2]\nb: &y {c: *x}\n")[0].is_ok());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let flow = format!("a: {}{}", "[".repeat(10_000), "]".repeat(10_000));
        let mut block = String::new();
        for depth in 0..200 {
            block.push_str(&format!("{}k{depth}:\n", "  ".repeat(depth)));
        }
        let within = format!(
            "a: {}{}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        for text in [flow, block] {
            let docs = parse_stream(&text);
            let err = docs[0].as_ref().unwrap_err();
            assert!(
                err.message.contains("nest") || err.message.contains("recursion"),
                "{err:?}"
            );
        }
        assert!(parse_stream(&within)[0].is_ok());
    }

    #[test]
    fn custom_tags_are_refused() {
        let docs = parse_stream("a: !vault secret\n");
        assert!(docs[0].as_ref().unwrap_err().message.contains("tag"));
    }
}
