//! Registry mirrors: `<config>/registries.d/<registry-host>/hosts.toml`, with the
//! meaning containerd gives these files.
//!
//! ```toml
//! server = "https://registry.k8s.io"        # optional: the registry itself
//!
//! [host."http://mirror.local:5000"]
//! capabilities = ["pull", "resolve"]
//! skip_verify = false
//! ```
//!
//! - The directory is named after the registry host of the image (`registry.k8s.io`,
//!   `host:port`; Docker Hub is `docker.io`). When there is none, `_default` applies.
//!   The local configuration directory is looked in before the system one; the first
//!   file found is the whole configuration for that registry.
//! - The `[host."URL"]` tables are tried in the order written, then `server` (by
//!   default the registry itself, found as without a file: https, then plain http if
//!   `--insecure-options=http` allows). An endpoint that fails in any way (cannot
//!   connect, 404, refused) is skipped for the next; when all fail, the error names
//!   each endpoint and why.
//! - A host URL is `http://` or `https://`; `/v2` is appended to its path unless it
//!   already ends with `/v2` or `override_path = true`. A plain `http://` host is used
//!   as written (the file's author chose it), without `--insecure-options=http`.
//! - `capabilities`: `resolve` (a tag may be looked up there) and `pull` (content by
//!   digest); `push` is accepted and ignored. A host without `resolve` is used only for
//!   images pinned by digest; one without `pull` is refused; the endpoint that
//!   resolved the image serves all of its content.
//! - `skip_verify = true` skips TLS certificate checks for that endpoint.
//! - Refused, with the file and line: `ca`, `client`, `header`, `dial_timeout`, any
//!   other key or table, and TOML beyond strings, booleans and one-line arrays of
//!   strings.
//! - The image keeps its name: the store records `registry.k8s.io/...` whichever
//!   endpoint served it; digests are verified as always; `auth.d` credentials are
//!   those of the endpoint's host.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::reference::{RegistryRef, DOCKER_HUB};

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("cannot read {path}", path = path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}:{line}: {message}", path = path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// One place an image may be fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL as configured, for messages (`registry.k8s.io` for the registry
    /// found by probing).
    pub url: String,
    /// `host[:port]`: whose `auth.d` credentials apply.
    pub host: String,
    /// The API root (`http://mirror:5000/v2`); `None`: probe the registry host.
    pub api: Option<String>,
    pub resolve: bool,
    pub pull: bool,
    pub skip_verify: bool,
    /// A `[host]` entry rather than the registry itself.
    pub mirror: bool,
}

impl Endpoint {
    /// The registry itself, as fetched without a `hosts.toml`.
    pub fn registry(host: &str) -> Endpoint {
        Endpoint {
            url: host.to_string(),
            host: host.to_string(),
            api: None,
            resolve: true,
            pull: true,
            skip_verify: false,
            mirror: false,
        }
    }

    /// Usable for an image reference (`pinned`: by digest).
    pub fn serves(&self, pinned: bool) -> bool {
        if pinned {
            self.pull
        } else {
            self.resolve && self.pull
        }
    }
}

/// The `registries.d` directories to look in.
#[derive(Debug, Clone, Default)]
pub struct Mirrors {
    dirs: Vec<PathBuf>,
}

impl Mirrors {
    /// `<dir>/registries.d` for each configuration directory, in precedence order
    /// (local first).
    pub fn new(config_dirs: &[&Path]) -> Mirrors {
        Mirrors {
            dirs: config_dirs.iter().map(|d| d.join("registries.d")).collect(),
        }
    }

    /// The directory name for a registry host (`docker.io` for Docker Hub).
    fn dir_name(registry: &str) -> &str {
        if registry == DOCKER_HUB {
            "docker.io"
        } else {
            registry
        }
    }

    /// The endpoints to try for `r`, in order.
    pub fn endpoints(&self, r: &RegistryRef) -> Result<Vec<Endpoint>, MirrorError> {
        let names = [Self::dir_name(&r.registry), "_default"];
        for name in names {
            for dir in &self.dirs {
                let path = dir.join(name).join("hosts.toml");
                match fs::read_to_string(&path) {
                    Ok(text) => {
                        tracing::debug!(path = %path.display(), registry = %r.registry, "registry hosts");
                        return parse_hosts(&text, &path, &r.registry);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(source) => return Err(MirrorError::Read { path, source }),
                }
            }
        }
        Ok(vec![Endpoint::registry(&r.registry)])
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    List(Vec<String>),
}

/// The endpoints a `hosts.toml` describes for `registry`: its hosts, then the server.
pub fn parse_hosts(text: &str, path: &Path, registry: &str) -> Result<Vec<Endpoint>, MirrorError> {
    let err = |line: usize, message: String| MirrorError::Invalid {
        path: path.to_path_buf(),
        line,
        message,
    };
    // (line, url, keys) per host; None = the top level.
    struct Table {
        line: usize,
        url: Option<String>,
        keys: Vec<(usize, String, Value)>,
    }
    let mut tables = vec![Table {
        line: 0,
        url: None,
        keys: Vec::new(),
    }];
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let inner = header
                .strip_suffix(']')
                .ok_or_else(|| err(n, "a table header must end with ]".into()))?
                .trim();
            let url = inner
                .strip_prefix("host.")
                .and_then(|q| parse_string(q.trim()))
                .ok_or_else(|| {
                    err(
                        n,
                        format!(
                            "unsupported table [{inner}]; only [host.\"URL\"] tables are \
                             supported"
                        ),
                    )
                })?;
            if let Some(t) = tables
                .iter()
                .find(|t| t.url.as_deref() == Some(url.as_str()))
            {
                return Err(err(
                    n,
                    format!("host {url} is already declared on line {}", t.line),
                ));
            }
            tables.push(Table {
                line: n,
                url: Some(url),
                keys: Vec::new(),
            });
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| err(n, format!("expected key = value, found {line:?}")))?;
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(err(n, format!("unsupported key {key:?}")));
        }
        let value = parse_value(value.trim()).ok_or_else(|| {
            err(
                n,
                format!(
                    "the value of {key} is not a string, a boolean or a one-line array of \
                     strings"
                ),
            )
        })?;
        let table = tables.last_mut().expect("the top level");
        if table.keys.iter().any(|(_, k, _)| k == key) {
            return Err(err(n, format!("{key} is set twice")));
        }
        table.keys.push((n, key.to_string(), value));
    }

    let mut endpoints = Vec::new();
    let mut server = Endpoint::registry(registry);
    for table in &tables {
        let top = table.url.is_none();
        let mut url = table.url.clone();
        let mut caps: Option<(usize, Vec<String>)> = None;
        let mut skip_verify = false;
        let mut override_path = false;
        for (n, key, value) in &table.keys {
            let n = *n;
            match (key.as_str(), value) {
                ("server", Value::Str(s)) if top => url = Some(s.clone()),
                ("capabilities", Value::List(l)) => caps = Some((n, l.clone())),
                ("skip_verify", Value::Bool(b)) => skip_verify = *b,
                ("override_path", Value::Bool(b)) => override_path = *b,
                ("server", _) if !top => {
                    return Err(err(n, "server is misplaced: it belongs at the top".into()))
                }
                ("server" | "capabilities" | "skip_verify" | "override_path", _) => {
                    return Err(err(n, format!("{key} has the wrong type")))
                }
                ("ca" | "client" | "header" | "dial_timeout", _) => {
                    return Err(err(
                        n,
                        format!(
                            "{key} is not supported (supported: server, capabilities, \
                             skip_verify, override_path)"
                        ),
                    ))
                }
                _ => return Err(err(n, format!("unknown key {key}"))),
            }
        }
        let (resolve, pull) = match &caps {
            None => (true, true),
            Some((n, list)) => {
                let mut resolve = false;
                let mut pull = false;
                for c in list {
                    match c.as_str() {
                        "resolve" => resolve = true,
                        "pull" => pull = true,
                        "push" => {}
                        other => {
                            return Err(err(
                                *n,
                                format!("unknown capability {other:?} (pull, resolve, push)"),
                            ))
                        }
                    }
                }
                if resolve && !pull {
                    return Err(err(
                        *n,
                        "a host that resolves but does not pull is not supported: the \
                         endpoint that resolves an image serves its content"
                            .into(),
                    ));
                }
                (resolve, pull)
            }
        };
        let line = if top { 1 } else { table.line };
        let endpoint = match url {
            None => Endpoint {
                skip_verify,
                resolve,
                pull,
                ..server.clone()
            },
            Some(u) => {
                let (host, api) = api_root(&u, override_path).map_err(|m| err(line, m))?;
                Endpoint {
                    url: u,
                    host,
                    api: Some(api),
                    resolve,
                    pull,
                    skip_verify,
                    mirror: !top,
                }
            }
        };
        if top {
            server = endpoint;
        } else if endpoint.pull {
            endpoints.push(endpoint);
        }
    }
    if server.pull {
        endpoints.push(server);
    }
    Ok(endpoints)
}

/// `(host[:port], API root)` of a host URL.
fn api_root(url: &str, override_path: bool) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let scheme = &url[..url.len() - rest.len()];
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if host.is_empty() || host.contains(['?', '#', '@', ' ']) || path.contains(['?', '#']) {
        return Err(format!("{url:?} is not a usable host URL"));
    }
    let path = if override_path || path.ends_with("/v2") {
        path.to_string()
    } else {
        format!("{path}/v2")
    };
    Ok((host.to_string(), format!("{scheme}{host}{path}")))
}

/// The line without a `#` comment (outside strings).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return &line[..i],
            None => {}
        }
    }
    line
}

fn parse_value(v: &str) -> Option<Value> {
    match v {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    if let Some(inner) = v.strip_prefix('[') {
        let inner = inner.strip_suffix(']')?.trim();
        let mut items = Vec::new();
        let mut rest = inner;
        while !rest.is_empty() {
            let (s, after) = take_string(rest)?;
            items.push(s);
            rest = after.trim_start();
            match rest.strip_prefix(',') {
                Some(r) => rest = r.trim_start(),
                None if rest.is_empty() => {}
                None => return None,
            }
        }
        return Some(Value::List(items));
    }
    parse_string(v).map(Value::Str)
}

/// A whole quoted string.
fn parse_string(v: &str) -> Option<String> {
    match take_string(v)? {
        (s, "") => Some(s),
        _ => None,
    }
}

/// A `"basic"` (with `\"` and `\\` escapes) or `'literal'` string at the start of
/// `v`, and what follows it.
fn take_string(v: &str) -> Option<(String, &str)> {
    let quote = v.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let mut out = String::new();
    let mut escaped = false;
    for (i, c) in v.char_indices().skip(1) {
        if escaped {
            match c {
                '"' | '\\' => out.push(c),
                _ => return None,
            }
            escaped = false;
        } else if quote == '"' && c == '\\' {
            escaped = true;
        } else if c == quote {
            return Some((out, &v[i + 1..]));
        } else {
            out.push(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Endpoint>, MirrorError> {
        parse_hosts(
            text,
            Path::new("r.d/registry.k8s.io/hosts.toml"),
            "registry.k8s.io",
        )
    }

    /// `(url, api, resolve)` of an endpoint.
    type Summary = (String, Option<String>, bool);

    fn summary(text: &str) -> Vec<Summary> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|e| (e.url, e.api, e.resolve))
            .collect()
    }

    fn s(v: &str) -> String {
        v.to_string()
    }

    #[test]
    fn endpoints_in_order_then_the_server() {
        let cases: &[(&str, Vec<Summary>)] = &[
            // No file content: the registry itself, probed.
            ("", vec![(s("registry.k8s.io"), None, true)]),
            (
                "server = \"https://registry.k8s.io\"\n",
                vec![(
                    s("https://registry.k8s.io"),
                    Some(s("https://registry.k8s.io/v2")),
                    true,
                )],
            ),
            (
                "# mirrors\nserver = \"https://registry.k8s.io\"\n\n\
                 [host.\"http://a:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n\
                 [host.'https://b/prefix/'] # second\n  capabilities = ['pull']\n",
                vec![
                    (s("http://a:5000"), Some(s("http://a:5000/v2")), true),
                    (s("https://b/prefix/"), Some(s("https://b/prefix/v2")), false),
                    (
                        s("https://registry.k8s.io"),
                        Some(s("https://registry.k8s.io/v2")),
                        true,
                    ),
                ],
            ),
            // No server: the registry itself comes last.
            (
                "[host.\"http://m/v2\"]\n",
                vec![
                    (s("http://m/v2"), Some(s("http://m/v2")), true),
                    (s("registry.k8s.io"), None, true),
                ],
            ),
            (
                "[host.\"https://m/custom/api\"]\noverride_path = true\n",
                vec![
                    (s("https://m/custom/api"), Some(s("https://m/custom/api")), true),
                    (s("registry.k8s.io"), None, true),
                ],
            ),
            // A push-only host is left out; a server without pull too.
            (
                "capabilities = [\"resolve\", \"pull\"]\n[host.\"http://p\"]\ncapabilities = [\"push\"]\n",
                vec![(s("registry.k8s.io"), None, true)],
            ),
            (
                "capabilities = [\"push\"]\n[host.\"http://m\"]\n",
                vec![(s("http://m"), Some(s("http://m/v2")), true)],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&summary(text), want, "{text}");
        }
    }

    #[test]
    fn skip_verify_and_hosts() {
        let e = parse("[host.\"https://m.example:8443\"]\nskip_verify = true\n").unwrap();
        assert!(e[0].skip_verify && e[0].mirror);
        assert_eq!(e[0].host, "m.example:8443");
        assert!(!e[1].skip_verify && !e[1].mirror);
        assert_eq!(e[1].host, "registry.k8s.io");
        assert!(e[0].serves(false) && e[0].serves(true));
        let pull_only = parse("[host.\"http://m\"]\ncapabilities = [\"pull\"]\n").unwrap();
        assert!(!pull_only[0].serves(false) && pull_only[0].serves(true));
    }

    #[test]
    fn refused_with_file_and_line() {
        let cases = [
            (
                "[host.\"http://m\"]\nca = \"/etc/ca.pem\"\n",
                2,
                "ca is not supported",
            ),
            (
                "[host.\"http://m\"]\n\nclient = [\"a\", \"b\"]\n",
                3,
                "client is not supported",
            ),
            (
                "[host.\"http://m\"]\n[host.\"http://m\"]\n",
                2,
                "already declared on line 1",
            ),
            ("[host.\"http://m\".header]\n", 1, "unsupported table"),
            ("[plugins]\n", 1, "unsupported table"),
            ("x = 1\n", 1, "not a string"),
            ("skip_verify = \"yes\"\n", 1, "wrong type"),
            (
                "[host.\"http://m\"]\nserver = \"https://x\"\n",
                2,
                "misplaced",
            ),
            ("bogus = true\n", 1, "unknown key bogus"),
            ("[host.\"ftp://m\"]\n", 1, "not an http:// or https:// URL"),
            (
                "server = \"registry.k8s.io\"\n",
                1,
                "not an http:// or https:// URL",
            ),
            (
                "[host.\"http://m\"]\ncapabilities = [\"fly\"]\n",
                2,
                "unknown capability",
            ),
            (
                "[host.\"http://m\"]\ncapabilities = [\"resolve\"]\n",
                2,
                "does not pull",
            ),
            (
                "[host.\"http://m\"]\ncapabilities = [\"pull\",\n",
                2,
                "one-line array",
            ),
            ("[host.\"http://m\"\n", 1, "must end with ]"),
            ("skip_verify = true\nskip_verify = false\n", 2, "set twice"),
            ("server\n", 1, "expected key = value"),
        ];
        for (text, line, what) in cases {
            let e = parse(text).unwrap_err().to_string();
            let want = format!("r.d/registry.k8s.io/hosts.toml:{line}: ");
            assert!(e.starts_with(&want) && e.contains(what), "{text:?}: {e}");
        }
    }

    #[test]
    fn comments_and_strings() {
        assert_eq!(strip_comment("a = \"x#y\" # c"), "a = \"x#y\" ");
        assert_eq!(strip_comment("a = 'x\"#' # c"), "a = 'x\"#' ");
        assert_eq!(parse_string("\"a\\\"b\\\\\""), Some(s("a\"b\\")));
        assert_eq!(parse_string("'a\\b'"), Some(s("a\\b")));
        assert_eq!(parse_string("\"a\\nb\""), None);
        assert_eq!(parse_string("\"a\" x"), None);
        assert_eq!(
            parse_value("[ 'a' , \"b\" ]"),
            Some(Value::List(vec![s("a"), s("b")]))
        );
        assert_eq!(parse_value("[]"), Some(Value::List(vec![])));
        assert_eq!(parse_value("['a' 'b']"), None);
    }

    #[test]
    fn directories_default_and_precedence() {
        let root = tempfile::tempdir().unwrap();
        let local = root.path().join("local");
        let system = root.path().join("system");
        let write = |dir: &Path, name: &str, text: &str| {
            let d = dir.join("registries.d").join(name);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("hosts.toml"), text).unwrap();
        };
        write(&system, "registry.k8s.io", "[host.\"http://system\"]\n");
        write(&local, "registry.k8s.io", "[host.\"http://local\"]\n");
        write(&system, "_default", "[host.\"http://default\"]\n");
        write(&local, "docker.io", "[host.\"http://hub-mirror\"]\n");
        let mirrors = Mirrors::new(&[&local, &system]);
        let first = |image: &str| {
            let r = super::super::reference::parse_docker(image).unwrap();
            let e = mirrors.endpoints(&r).unwrap();
            (e[0].url.clone(), e.last().unwrap().url.clone())
        };
        assert_eq!(
            first("registry.k8s.io/pause:3.9"),
            (s("http://local"), s("registry.k8s.io"))
        );
        assert_eq!(
            first("busybox"),
            (s("http://hub-mirror"), s("registry-1.docker.io"))
        );
        assert_eq!(first("quay.io/x/y"), (s("http://default"), s("quay.io")));
        let none = Mirrors::new(&[&root.path().join("nothing")]);
        let r = super::super::reference::parse_docker("quay.io/x/y").unwrap();
        assert_eq!(
            none.endpoints(&r).unwrap(),
            vec![Endpoint::registry("quay.io")]
        );
        // An error names the file.
        write(&local, "quay.io", "nope\n");
        let e = mirrors.endpoints(&r).unwrap_err().to_string();
        assert!(e.contains("quay.io/hosts.toml:1:"), "{e}");
    }
}
