//! The workspace's shape, checked from its sources: no import cycles between the modules
//! of a crate, and the crate dependencies `docs/architecture.md` promises (stage1 and the
//! CNI plugins never depend on stage0; `manifests` depends on no workspace crate).
//!
//! A module is a file or folder module at the first level under its crate root, and for
//! stage0 at the second (`image::fetch`, `pod::net`); deeper files count as the module
//! they sit in. Edges come from `crate::…`, `super::…`, `self::…` paths and paths through
//! a child module, in `use` items (with `{…}` groups) and in code alike. `#[cfg(test)]`
//! modules are left out: tests may import whatever they test. The crate root itself
//! (`lib.rs`, `main.rs`) is not a node: it declares and re-exports the modules.
//!
//! Pure: reads files and `cargo metadata`, needs no root. `LAYOUT_DUMP=1` prints every
//! crate's module graph (each edge with the first place that makes it).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Crates whose module graphs are checked, with the depth at which modules are nodes.
const CRATES: &[(&str, usize)] = &[
    ("manifests", 1),
    ("stage0", 2),
    ("reconciler", 1),
    ("stage1", 1),
    ("cni-plugins", 1),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e sits in the workspace")
        .to_path_buf()
}

// ---------------------------------------------------------------------------------------
// Lexing: Rust source to identifiers and punctuation, without comments, strings, chars.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn lex(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let count_lines =
        |from: usize, to: usize, c: &[char]| c[from..to].iter().filter(|&&ch| ch == '\n').count();
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            let start = i;
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            line += count_lines(start, i, &c);
        } else if let Some(end) = raw_string_end(&c, i) {
            line += count_lines(i, end, &c);
            i = end;
        } else if ch == '"'
            || (ch == 'b' && c.get(i + 1) == Some(&'"'))
            || (ch == 'c' && c.get(i + 1) == Some(&'"'))
        {
            let start = i;
            i += if ch == '"' { 1 } else { 2 };
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            line += count_lines(start, i.min(c.len()), &c);
        } else if ch == '\'' || (ch == 'b' && c.get(i + 1) == Some(&'\'')) {
            let q = if ch == '\'' { i } else { i + 1 };
            if c.get(q + 1) == Some(&'\\') {
                // An escaped char literal (a quote, a backslash, `\n`, `\u{..}`): past
                // the escaped character, up to the closing quote.
                i = q + 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(q + 2) == Some(&'\'') {
                i = q + 3;
            } else if ch == '\'' {
                // A lifetime or label: the quote goes, the name lexes as an identifier.
                i += 1;
            } else {
                // `b` followed by a lifetime cannot happen; treat `b` as an identifier.
                out.push(Token {
                    tok: Tok::Ident("b".into()),
                    line,
                });
                i += 1;
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let mut word: String = c[start..i].iter().collect();
            if word == "r" && c.get(i) == Some(&'#') {
                // A raw identifier, `r#type`.
                let s = i + 1;
                i = s;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                word = c[s..i].iter().collect();
            }
            out.push(Token {
                tok: Tok::Ident(word),
                line,
            });
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    out
}

/// If a raw (byte/C) string literal starts at `i`, the index just past it.
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if matches!(c.get(j), Some('b') | Some('c')) {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    // Not the tail of an identifier such as `bar"`: the lexer only calls this at a
    // token start, so `r` here begins a word.
    j += 1;
    let mut hashes = 0;
    while c.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    if c.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < c.len() {
        if c[j] == '"' && (1..=hashes).all(|k| c.get(j + k) == Some(&'#')) {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(c.len())
}

// ---------------------------------------------------------------------------------------
// Parsing: module declarations and the module paths a file names.

/// What one source file says: its child modules (file modules, not `#[cfg(test)]`), and
/// every module path it names, absolute from the crate root, with the line.
#[derive(Debug, Default)]
struct FileFacts {
    children: Vec<String>,
    /// (absolute path segments, line)
    paths: Vec<(Vec<String>, usize)>,
}

fn ident(t: Option<&Token>) -> Option<&str> {
    match t.map(|t| &t.tok) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

fn punct(t: Option<&Token>, p: char) -> bool {
    matches!(t.map(|t| &t.tok), Some(Tok::Punct(q)) if *q == p)
}

fn is_sep(t: Option<&Token>) -> bool {
    matches!(t.map(|t| &t.tok), Some(Tok::PathSep))
}

/// Index just past the bracket group opening at `open` (`{`, `[` or `(`).
fn skip_group(toks: &[Token], open: usize) -> usize {
    let mut depth = 0i32;
    let mut i = open;
    while i < toks.len() {
        if let Tok::Punct(p) = toks[i].tok {
            match p {
                '{' | '[' | '(' => depth += 1,
                '}' | ']' | ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    toks.len()
}

/// `module` is the file's own absolute module path; `known_children(path)` tells which
/// names are file modules under a module (so `fetch::X` in `image/mod.rs` resolves).
fn parse_file(
    src: &str,
    module: &[String],
    known_children: &dyn Fn(&[String]) -> Vec<String>,
) -> FileFacts {
    let toks = lex(src);
    let mut facts = FileFacts::default();
    // Inline modules: (module path, brace depth at which it closes).
    let mut scopes: Vec<(Vec<String>, usize)> = vec![(module.to_vec(), 0)];
    let mut depth = 0usize;
    let mut cfg_test = false;
    let mut i = 0;
    while i < toks.len() {
        let here: Vec<String> = scopes.last().expect("root scope").0.clone();
        // Attributes: remember `#[cfg(test)]`, skip the rest.
        if punct(toks.get(i), '#') {
            let mut j = i + 1;
            if punct(toks.get(j), '!') {
                j += 1;
            }
            if punct(toks.get(j), '[') {
                let end = skip_group(&toks, j);
                let body: Vec<&Tok> = toks[j + 1..end - 1].iter().map(|t| &t.tok).collect();
                let test = [
                    Tok::Ident("cfg".into()),
                    Tok::Punct('('),
                    Tok::Ident("test".into()),
                    Tok::Punct(')'),
                ];
                if body.len() == test.len() && body.iter().zip(test.iter()).all(|(a, b)| *a == b) {
                    cfg_test = true;
                }
                i = end;
                continue;
            }
        }
        match &toks[i].tok {
            Tok::Ident(w) if w == "mod" => {
                if let Some(name) = ident(toks.get(i + 1)) {
                    let name = name.to_string();
                    if punct(toks.get(i + 2), ';') {
                        if !cfg_test {
                            facts.children.push(name);
                        }
                        cfg_test = false;
                        i += 3;
                        continue;
                    }
                    if punct(toks.get(i + 2), '{') {
                        if cfg_test {
                            i = skip_group(&toks, i + 2);
                        } else {
                            depth += 1;
                            let mut inner = here.clone();
                            inner.push(name);
                            scopes.push((inner, depth));
                            i += 3;
                        }
                        cfg_test = false;
                        continue;
                    }
                }
                i += 1;
            }
            Tok::Ident(w) if w == "pub" => {
                // `pub` and `pub(crate)` keep a pending `#[cfg(test)]` for the item.
                i += if punct(toks.get(i + 1), '(') {
                    skip_group(&toks, i + 1) - i
                } else {
                    1
                };
            }
            Tok::Ident(w) => {
                let after_sep = i > 0 && (is_sep(toks.get(i - 1)) || punct(toks.get(i - 1), '.'));
                let starts_path = match w.as_str() {
                    "crate" | "super" | "self" => is_sep(toks.get(i + 1)),
                    _ => is_sep(toks.get(i + 1)) && known_children(&here).iter().any(|c| c == w),
                };
                if starts_path && !after_sep {
                    let line = toks[i].line;
                    let mut paths = Vec::new();
                    i = parse_path_tree(&toks, i, Vec::new(), &mut paths);
                    for p in paths {
                        if let Some(abs) = resolve(&p, &here) {
                            facts.paths.push((abs, line));
                        }
                    }
                } else {
                    i += 1;
                }
                cfg_test = false;
            }
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if scopes.len() > 1 && scopes.last().map(|s| s.1) == Some(depth) {
                    scopes.pop();
                }
                depth = depth.saturating_sub(1);
                cfg_test = false;
                i += 1;
            }
            Tok::Punct(';') => {
                cfg_test = false;
                i += 1;
            }
            _ => i += 1,
        }
    }
    facts
}

/// Reads `a::b::{c, d::{e, f}}` starting at `i`; pushes every full path (prefix
/// included) into `out` and returns the index after it.
fn parse_path_tree(
    toks: &[Token],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let mut path = prefix;
    loop {
        match ident(toks.get(i)) {
            Some(w) => {
                path.push(w.to_string());
                i += 1;
            }
            None if punct(toks.get(i), '{') => {
                i += 1;
                loop {
                    if punct(toks.get(i), '}') {
                        return i + 1;
                    }
                    if punct(toks.get(i), ',') {
                        i += 1;
                        continue;
                    }
                    if i >= toks.len() {
                        return i;
                    }
                    let before = i;
                    i = parse_path_tree(toks, i, path.clone(), out);
                    // `as alias` after an element.
                    if ident(toks.get(i)) == Some("as") {
                        i += 2;
                    }
                    if i == before {
                        i += 1;
                    }
                }
            }
            None => {
                // `*` or anything else ends the path.
                if punct(toks.get(i), '*') {
                    i += 1;
                }
                break;
            }
        }
        if is_sep(toks.get(i)) {
            i += 1;
        } else {
            break;
        }
    }
    out.push(path);
    i
}

/// A path as written, from module `here`, to an absolute path from the crate root.
fn resolve(path: &[String], here: &[String]) -> Option<Vec<String>> {
    let mut abs: Vec<String>;
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => {
            abs = Vec::new();
            rest = &path[1..];
        }
        Some("self") => {
            abs = here.to_vec();
            rest = &path[1..];
        }
        Some("super") => {
            abs = here.to_vec();
            while rest.first().map(String::as_str) == Some("super") {
                abs.pop()?;
                rest = &rest[1..];
            }
        }
        Some(_) => abs = here.to_vec(),
        None => return None,
    }
    // `use super::{self, …}`: the `self` names the module before it.
    abs.extend(rest.iter().filter(|s| s.as_str() != "self").cloned());
    Some(abs)
}

// ---------------------------------------------------------------------------------------
// A crate's module graph.

struct CrateGraph {
    /// node -> (node it uses -> first place it does, `file:line`)
    edges: BTreeMap<String, BTreeMap<String, String>>,
}

/// Walks the modules declared from `root` (a `lib.rs`, `main.rs` or `src/bin/*.rs`) and
/// collects the edges between nodes at `depth`.
fn crate_graph(src_dir: &Path, root: &Path, depth: usize) -> CrateGraph {
    // First the module tree (file modules only), so that paths through a child resolve.
    let mut files: BTreeMap<Vec<String>, PathBuf> = BTreeMap::new();
    let mut tree: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    let mut queue = VecDeque::from([(Vec::<String>::new(), root.to_path_buf())]);
    while let Some((module, file)) = queue.pop_front() {
        let src = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let facts = parse_file(&src, &module, &|_| Vec::new());
        // A root or `mod.rs` owns the folder it sits in; `a.rs` owns `a/`.
        let dir = if module.is_empty() || file.file_name().is_some_and(|n| n == "mod.rs") {
            file.parent().expect("a file's folder").to_path_buf()
        } else {
            file.with_extension("")
        };
        for child in &facts.children {
            let flat = dir.join(format!("{child}.rs"));
            let nested = dir.join(child).join("mod.rs");
            let path = if flat.is_file() { flat } else { nested };
            assert!(
                path.is_file(),
                "{}: mod {child} has no file",
                file.display()
            );
            let mut m = module.clone();
            m.push(child.clone());
            queue.push_back((m, path));
        }
        tree.insert(module.clone(), facts.children);
        files.insert(module, file);
    }
    let children = |m: &[String]| tree.get(m).cloned().unwrap_or_default();
    let node = |abs: &[String]| -> Option<String> {
        let mut known = 0;
        while known < abs.len() && known < depth && files.contains_key(&abs[..=known]) {
            known += 1;
        }
        (known > 0).then(|| abs[..known].join("::"))
    };
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (module, file) in &files {
        let Some(from) = node(module) else { continue };
        let src = fs::read_to_string(file).expect("read above");
        let facts = parse_file(&src, module, &children);
        for (abs, line) in facts.paths {
            let Some(to) = node(&abs) else { continue };
            if to == from {
                continue;
            }
            let shown = file.strip_prefix(workspace_of(src_dir)).unwrap_or(file);
            edges
                .entry(from.clone())
                .or_default()
                .entry(to)
                .or_insert_with(|| format!("{}:{line}", shown.display()));
        }
    }
    CrateGraph { edges }
}

/// The workspace a crate's `src/` sits in, for short file names in messages.
fn workspace_of(src_dir: &Path) -> &Path {
    src_dir.parent().and_then(Path::parent).unwrap_or(src_dir)
}

/// Strongly connected components with more than one node (Tarjan), each sorted.
fn cycles(g: &CrateGraph) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a CrateGraph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let g = s.g;
        for w in g.edges.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// One concrete cycle through the first node of a component, each step with the place
/// that makes it: `a -> b (src/a.rs:3) -> a (src/b.rs:9)`.
fn describe(g: &CrateGraph, comp: &[String]) -> String {
    let start = &comp[0];
    let inside: BTreeSet<&String> = comp.iter().collect();
    // Breadth first from `start` back to `start`, inside the component.
    let mut prev: BTreeMap<&String, &String> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    let mut found = false;
    'bfs: while let Some(v) = queue.pop_front() {
        for w in g.edges.get(v).into_iter().flat_map(|e| e.keys()) {
            if !inside.contains(w) {
                continue;
            }
            if w == start {
                prev.insert(start, v);
                found = true;
                break 'bfs;
            }
            if !prev.contains_key(w) {
                prev.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    assert!(found, "a component has a cycle through each node");
    let mut steps = vec![start];
    let mut at = prev[start];
    while at != start {
        steps.push(at);
        at = prev[at];
    }
    steps.push(start);
    steps.reverse();
    let mut text = start.to_string();
    for pair in steps.windows(2) {
        text += &format!(" -> {} ({})", pair[1], g.edges[pair[0]][pair[1]]);
    }
    text
}

/// Crate roots under `src/`: `lib.rs`, `main.rs` and `bin/*.rs`, each its own crate.
fn roots(src: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = ["lib.rs", "main.rs"]
        .iter()
        .map(|f| src.join(f))
        .filter(|p| p.is_file())
        .collect();
    if let Ok(bins) = fs::read_dir(src.join("bin")) {
        let mut bins: Vec<PathBuf> = bins
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect();
        bins.sort();
        out.extend(bins);
    }
    out
}

#[test]
fn no_import_cycles_between_modules() {
    let ws = workspace();
    let mut failures = Vec::new();
    for (krate, depth) in CRATES {
        let src = ws.join(krate).join("src");
        let roots = roots(&src);
        assert!(
            !roots.is_empty(),
            "{krate}: no crate root under {}",
            src.display()
        );
        for root in roots {
            let g = crate_graph(&src, &root, *depth);
            if std::env::var_os("LAYOUT_DUMP").is_some() {
                eprintln!("{krate} {}: {:#?}", root.display(), g.edges);
            }
            for comp in cycles(&g) {
                let name = format!(
                    "{krate} ({}): {}",
                    root.strip_prefix(&ws).unwrap_or(&root).display(),
                    describe(&g, &comp)
                );
                failures.push(format!("import cycle in {name} (component: {comp:?})"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}

#[test]
fn crate_dependencies_keep_their_direction() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let members: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_string())
        .collect();
    // Workspace crate -> workspace crates it depends on, any kind (normal, dev, build).
    let direct: BTreeMap<String, BTreeSet<String>> = packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .map(|d| d["name"].as_str().expect("dependency name").to_string())
                .filter(|d| members.contains(d))
                .collect();
            (p["name"].as_str().expect("name").to_string(), deps)
        })
        .collect();
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(c) = todo.pop() {
            for d in direct.get(&c).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    for krate in ["manifests", "stage0", "reconciler", "stage1", "cni-plugins"] {
        assert!(
            members.contains(krate),
            "{krate} is not a workspace member: {members:?}"
        );
    }
    for krate in ["stage1", "cni-plugins"] {
        assert!(
            !reach(krate).contains("stage0"),
            "{krate} depends on stage0: {:?}",
            reach(krate)
        );
        assert!(
            !reach(krate).contains("reconciler"),
            "{krate} depends on reconciler: {:?}",
            reach(krate)
        );
    }
    assert!(
        reach("manifests").is_empty(),
        "manifests depends on workspace crates: {:?}",
        reach("manifests")
    );
    assert!(
        !reach("stage0").contains("reconciler"),
        "stage0 depends on reconciler: {:?}",
        reach("stage0")
    );
}

// ---------------------------------------------------------------------------------------
// The parser itself, on small sources.

fn paths_of(src: &str, here: &[&str], children: &[&str]) -> Vec<String> {
    let here: Vec<String> = here.iter().map(|s| s.to_string()).collect();
    let kids: Vec<String> = children.iter().map(|s| s.to_string()).collect();
    let facts = parse_file(src, &here, &|m: &[String]| {
        if m == here.as_slice() {
            kids.clone()
        } else {
            Vec::new()
        }
    });
    facts.paths.into_iter().map(|(p, _)| p.join("::")).collect()
}

#[test]
fn parser_reads_paths_groups_and_relative_forms() {
    // (source, the file's module, its child modules, the paths it names)
    type Case = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
    );
    let table: &[Case] = &[
        ("use crate::a::B;", &["x"], &[], &["a::B"]),
        (
            "use crate::{a::B, c::{d, e::F as G}};",
            &["x"],
            &[],
            &["a::B", "c::d", "c::e::F"],
        ),
        (
            "use super::Progress;",
            &["image", "oci"],
            &[],
            &["image::Progress"],
        ),
        (
            "use super::super::paths;",
            &["image", "oci", "pull"],
            &[],
            &["image::paths"],
        ),
        (
            "use super::{self, fetch};",
            &["image", "oci"],
            &[],
            &["image", "image::fetch"],
        ),
        (
            "use self::inner::X;",
            &["pod", "net"],
            &[],
            &["pod::net::inner::X"],
        ),
        (
            "fn f() { let x = crate::pod::dir::Pod::open(); }",
            &["y"],
            &[],
            &["pod::dir::Pod::open"],
        ),
        (
            "use fetch::Progress;",
            &["image"],
            &["fetch"],
            &["image::fetch::Progress"],
        ),
        (
            "use std::result::Result; fn f(_: fetch::X) {}",
            &["image"],
            &["result", "fetch"],
            &["image::fetch::X"],
        ),
        ("pub use crate::a::*;", &["x"], &[], &["a"]),
        (
            "fn f(s: &Self) { s.super_thing(); self.crate_x(); }",
            &["x"],
            &[],
            &[],
        ),
    ];
    for (src, here, kids, want) in table {
        assert_eq!(paths_of(src, here, kids), *want, "{src}");
    }
}

#[test]
fn parser_skips_comments_strings_and_test_modules() {
    let table: &[(&str, &[&str])] = &[
        ("// use crate::a;\nuse crate::b;", &["b"]),
        (
            "/* use crate::a; /* nested */ crate::c */ use crate::b;",
            &["b"],
        ),
        (r#"const S: &str = "crate::a::x"; use crate::b;"#, &["b"]),
        (
            r##"const S: &str = r#"crate::a " x"#; use crate::b;"##,
            &["b"],
        ),
        (
            r#"const S: &str = "escaped \" crate::a"; use crate::b;"#,
            &["b"],
        ),
        (
            "const Q: char = '\"'; use crate::b; fn f<'a>(x: &'a str) {}",
            &["b"],
        ),
        (
            r"const Q: char = '\''; use crate::b; const R: u8 = b'\''; use crate::c;",
            &["b", "c"],
        ),
        (
            r"const Q: [char; 3] = ['\\', '\u{22}', '\n']; use crate::b;",
            &["b"],
        ),
        (
            "#[cfg(test)]\nmod tests {\n use crate::a;\n use super::*;\n}\nuse crate::b;",
            &["b"],
        ),
        (
            "#[cfg(test)]\n#[allow(unused)]\nmod tests { use crate::a; }\nuse crate::b;",
            &["b"],
        ),
        ("#[cfg(not(test))]\nmod real { use crate::a; }", &["a"]),
        ("mod inner { use super::a; }", &["x::a"]),
    ];
    for (src, want) in table {
        assert_eq!(paths_of(src, &["x"], &[]), *want, "{src}");
    }
}

#[test]
fn cycles_are_found_and_named() {
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("e", "f")] {
        edges
            .entry(a.into())
            .or_default()
            .insert(b.into(), format!("{a}.rs:1"));
    }
    let g = CrateGraph { edges };
    let found = cycles(&g);
    assert_eq!(found, vec![vec!["a".to_string(), "b".into(), "c".into()]]);
    assert_eq!(
        describe(&g, &found[0]),
        "a -> b (a.rs:1) -> c (b.rs:1) -> a (c.rs:1)"
    );
}
