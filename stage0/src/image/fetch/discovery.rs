//! appc meta discovery: from an image name to the URLs of its ACI, signature and keys.
//!
//! For `example.com/a/b` rkt asks `https://example.com/a/b?ac-discovery=1` and reads
//!
//! ```html
//! <meta name="ac-discovery" content="example.com https://example.com/{name}-{version}-{os}-{arch}.{ext}">
//! <meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">
//! ```
//!
//! A tag applies when its prefix is a prefix of the image name. When a page cannot
//! be fetched (a 4xx, a network error) or has no tag that applies, the parent path is
//! tried (`example.com/a`, then `example.com`). Templates are filled from the name
//! and labels; `{version}` defaults to `latest`, `{os}` and `{arch}` to the host's,
//! and `{ext}` is `aci` for the image and `aci.asc` for its signature. A template
//! with a placeholder that nothing fills is skipped.

use std::fmt;

use super::http::{HttpClient, HttpError};
use super::FetchError;
use crate::insecure::InsecureOptions;

/// Discovery pages are small; refuse anything larger.
const PAGE_LIMIT: u64 = 1024 * 1024;
/// Public key files are small too.
const KEY_LIMIT: u64 = 1024 * 1024;

/// Which kind of meta tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKind {
    /// `ac-discovery`: a URL template for images and signatures.
    Discovery,
    /// `ac-discovery-pubkeys`: the URL of the public keys for the prefix.
    Pubkeys,
}

/// One discovery meta tag: `content="prefix url"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub kind: MetaKind,
    pub prefix: String,
    /// A URL template (`Discovery`) or a URL (`Pubkeys`).
    pub uri: String,
}

/// What discovery found for an image name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// `(ACI URL, signature URL)`, in the order the page lists them.
    pub aci: Vec<(String, String)>,
    /// Public key URLs for the name's prefix.
    pub keys: Vec<String>,
}

/// What one discovery request gave, for the error when none worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub url: String,
    pub outcome: AttemptOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The server answered with this non-2xx status.
    Status(u16),
    /// The page had no meta tag that applies to the name.
    NoMatch,
    /// The request failed (message of the error).
    Failed(String),
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            AttemptOutcome::Status(s) => write!(f, "{}: HTTP status {s}", self.url),
            AttemptOutcome::NoMatch => write!(f, "{}: no matching meta tag", self.url),
            AttemptOutcome::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// Describe a list of attempts on one line each (for error messages).
pub fn describe_attempts(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(|a| format!("\n  {a}"))
        .collect::<String>()
}

/// The appc name of the host's architecture (`amd64` on x86-64).
pub fn default_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "i386",
        "aarch64" => "aarch64",
        "arm" => "armv7l",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        other => other,
    }
}

/// The appc name of the host's OS (`linux`).
pub fn default_os() -> &'static str {
    std::env::consts::OS
}

/// The prefixes to ask, longest first: `a/b/c`, `a/b`, `a`.
pub fn walk_up(name: &str) -> Vec<String> {
    let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("/"))
        .collect()
}

/// The labels a template sees: the given ones, plus `version=latest`, `os` and
/// `arch` of the host where not given.
pub fn template_labels(labels: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = labels.to_vec();
    for (k, v) in [
        ("version", "latest"),
        ("os", default_os()),
        ("arch", default_arch()),
    ] {
        if !out.iter().any(|(lk, _)| lk == k) {
            out.push((k.to_string(), v.to_string()));
        }
    }
    out
}

/// Fill `{name}`, `{ext}` and `{<label>}` in a template; `None` when a placeholder
/// has no value.
pub fn render_template(
    template: &str,
    name: &str,
    labels: &[(String, String)],
    ext: &str,
) -> Option<String> {
    let mut out = String::with_capacity(template.len() + name.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let key = &after[..close];
        let value = match key {
            "name" => name,
            "ext" => ext,
            _ => labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())?,
        };
        out.push_str(value);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

/// The endpoints that the tags of one page give for `name` (with labels already
/// including defaults).
pub fn endpoints_from_meta(metas: &[Meta], name: &str, labels: &[(String, String)]) -> Endpoints {
    let mut eps = Endpoints::default();
    for m in metas.iter().filter(|m| name.starts_with(&m.prefix)) {
        match m.kind {
            MetaKind::Discovery => {
                let Some(aci) = render_template(&m.uri, name, labels, "aci") else {
                    tracing::debug!(template = %m.uri, "skipping a template with unfilled placeholders");
                    continue;
                };
                let asc = if m.uri.contains("{ext}") {
                    render_template(&m.uri, name, labels, "aci.asc")
                } else {
                    None
                };
                let asc = asc.unwrap_or_else(|| format!("{aci}.asc"));
                if !eps.aci.iter().any(|(a, _)| *a == aci) {
                    eps.aci.push((aci, asc));
                }
            }
            MetaKind::Pubkeys => {
                if !eps.keys.contains(&m.uri) {
                    eps.keys.push(m.uri.clone());
                }
            }
        }
    }
    eps
}

/// Find the image endpoints of `name` (and the keys for it, if the same page lists
/// them).
pub fn discover(
    client: &HttpClient,
    name: &str,
    labels: &[(String, String)],
    insecure: InsecureOptions,
) -> Result<Endpoints, FetchError> {
    let labels = template_labels(labels);
    let mut attempts = Vec::new();
    for prefix in walk_up(name) {
        let Some(metas) = fetch_meta(client, &prefix, insecure, &mut attempts) else {
            continue;
        };
        let eps = endpoints_from_meta(&metas, name, &labels);
        if !eps.aci.is_empty() {
            tracing::debug!(%name, %prefix, endpoints = eps.aci.len(), "discovered image endpoints");
            return Ok(eps);
        }
        if let Some(last) = attempts.last_mut() {
            last.outcome = AttemptOutcome::NoMatch;
        }
    }
    Err(FetchError::Discovery {
        name: name.to_string(),
        attempts,
    })
}

/// Find the public key URLs for `prefix` (for `rkt trust --prefix`).
pub fn discover_pubkeys(
    client: &HttpClient,
    prefix: &str,
    insecure: InsecureOptions,
) -> Result<Vec<String>, FetchError> {
    let mut attempts = Vec::new();
    for candidate in walk_up(prefix) {
        let Some(metas) = fetch_meta(client, &candidate, insecure, &mut attempts) else {
            continue;
        };
        let eps = endpoints_from_meta(&metas, prefix, &[]);
        if !eps.keys.is_empty() {
            return Ok(eps.keys);
        }
        if let Some(last) = attempts.last_mut() {
            last.outcome = AttemptOutcome::NoMatch;
        }
    }
    Err(FetchError::KeyDiscovery {
        prefix: prefix.to_string(),
        attempts,
    })
}

/// Download a public key file found by discovery (armored OpenPGP).
pub fn fetch_pubkey(client: &HttpClient, url: &str) -> Result<Vec<u8>, FetchError> {
    let resp = client.get(url, None)?;
    if !resp.is_success() {
        return Err(FetchError::status(&resp.url, resp.status, "public key"));
    }
    Ok(resp.read_limited(KEY_LIMIT)?)
}

/// Fetch and parse the discovery page for `prefix`: https first, then plain http
/// when allowed. Records the attempt (with outcome `NoMatch` placeholder on success,
/// for the caller to keep or overwrite) and returns the tags, or `None` on failure.
fn fetch_meta(
    client: &HttpClient,
    prefix: &str,
    insecure: InsecureOptions,
    attempts: &mut Vec<Attempt>,
) -> Option<Vec<Meta>> {
    let mut schemes = vec!["https"];
    if insecure.http {
        schemes.push("http");
    }
    for scheme in schemes {
        let url = format!("{scheme}://{prefix}?ac-discovery=1");
        match get_page(client, &url) {
            Ok(html) => {
                attempts.push(Attempt {
                    url,
                    outcome: AttemptOutcome::NoMatch,
                });
                return Some(parse_meta(&html));
            }
            Err(outcome) => {
                tracing::debug!(%url, ?outcome, "discovery attempt failed");
                attempts.push(Attempt { url, outcome });
            }
        }
    }
    None
}

fn get_page(client: &HttpClient, url: &str) -> Result<String, AttemptOutcome> {
    let failed = |e: HttpError| AttemptOutcome::Failed(manifests::error::chain(&e));
    let resp = client.get(url, None).map_err(failed)?;
    if !resp.is_success() {
        return Err(AttemptOutcome::Status(resp.status));
    }
    let body = resp.read_limited(PAGE_LIMIT).map_err(failed)?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The `ac-discovery` and `ac-discovery-pubkeys` meta tags of an HTML page, in
/// document order. Tolerant like a browser: any attribute order, single, double or
/// no quotes, any case for tag and attribute names, entities in values, comments
/// skipped. Tags whose content is not `prefix url` are ignored.
pub fn parse_meta(html: &str) -> Vec<Meta> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        rest = &rest[lt..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            rest = match comment.find("-->") {
                Some(end) => &comment[end + 3..],
                None => "",
            };
            continue;
        }
        let after = &rest[1..];
        let tag_len = after
            .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
            .unwrap_or(after.len());
        let tag = &after[..tag_len];
        let (attrs, consumed) = parse_attributes(&after[tag_len..]);
        rest = &after[tag_len + consumed..];
        if !tag.eq_ignore_ascii_case("meta") {
            continue;
        }
        let get = |key: &str| {
            attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        };
        let kind = match get("name") {
            Some(n) if n.eq_ignore_ascii_case("ac-discovery") => MetaKind::Discovery,
            Some(n) if n.eq_ignore_ascii_case("ac-discovery-pubkeys") => MetaKind::Pubkeys,
            _ => continue,
        };
        let Some(content) = get("content") else {
            continue;
        };
        let fields: Vec<&str> = content.split_ascii_whitespace().collect();
        if let [prefix, uri] = fields[..] {
            out.push(Meta {
                kind,
                prefix: prefix.to_string(),
                uri: uri.to_string(),
            });
        }
    }
    out
}

/// Parse attributes up to the closing `>`; returns them (values entity-decoded) and
/// the number of bytes consumed.
fn parse_attributes(s: &str) -> (Vec<(String, String)>, usize) {
    let bytes = s.as_bytes();
    let mut attrs = Vec::new();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_ws(i);
        if i >= bytes.len() {
            return (attrs, i);
        }
        match bytes[i] {
            b'>' => return (attrs, i + 1),
            b'/' => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let start = i;
        while i < bytes.len()
            && !bytes[i].is_ascii_whitespace()
            && !matches!(bytes[i], b'=' | b'>' | b'/')
        {
            i += 1;
        }
        let key = s[start..i].to_string();
        i = skip_ws(i);
        if i < bytes.len() && bytes[i] == b'=' {
            i = skip_ws(i + 1);
            let value = if i < bytes.len() && matches!(bytes[i], b'"' | b'\'') {
                let quote = bytes[i];
                let vstart = i + 1;
                let vend = bytes[vstart..]
                    .iter()
                    .position(|&b| b == quote)
                    .map_or(bytes.len(), |p| vstart + p);
                i = (vend + 1).min(bytes.len());
                &s[vstart..vend]
            } else {
                let vstart = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                    i += 1;
                }
                &s[vstart..i]
            };
            attrs.push((key, decode_entities(value)));
        } else if !key.is_empty() {
            attrs.push((key, String::new()));
        } else {
            // A stray character; skip it so we always make progress.
            i += 1;
        }
    }
}

/// Decode the HTML character references that appear in URLs and text.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after.find(';').filter(|&end| end <= 10).and_then(|end| {
            let entity = &after[..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let num = entity.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parse_meta_reads_both_kinds_in_order() {
        let html = r#"<!DOCTYPE html><html><head>
            <meta name="ac-discovery" content="example.com https://example.com/{name}-{version}.{ext}">
            <meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">
            <meta name="description" content="not ours">
            <meta name="ac-discovery" content="example.com/other https://mirror.example.com/{name}.{ext}"/>
            </head></html>"#;
        let metas = parse_meta(html);
        assert_eq!(
            metas,
            vec![
                Meta {
                    kind: MetaKind::Discovery,
                    prefix: "example.com".into(),
                    uri: "https://example.com/{name}-{version}.{ext}".into(),
                },
                Meta {
                    kind: MetaKind::Pubkeys,
                    prefix: "example.com".into(),
                    uri: "https://example.com/pubkeys.gpg".into(),
                },
                Meta {
                    kind: MetaKind::Discovery,
                    prefix: "example.com/other".into(),
                    uri: "https://mirror.example.com/{name}.{ext}".into(),
                },
            ]
        );
    }

    #[test]
    fn parse_meta_tolerates_html_variants() {
        let html = "<META CONTENT='a.com https://a.com/x?u=1&amp;v={version}' NAME='AC-Discovery'>\n\
                    <meta content=b.com\tname=ac-discovery-pubkeys>\n\
                    <meta\n  name=\"ac-discovery\"\n  content=\"  c.com   https://c.com/{name}.{ext}  \"\n>\n\
                    <!-- <meta name=\"ac-discovery\" content=\"d.com https://d.com/{name}\"> -->\n\
                    <meta name=\"ac-discovery\" content=\"only-one-field\">\n\
                    <meta name=\"ac-discovery\">\n\
                    <metadata name=\"ac-discovery\" content=\"e.com https://e.com/x\">\n\
                    <meta name=ac-discovery content=\"f.com https://f.com/&#123;name&#x7D;\"";
        let metas = parse_meta(html);
        let got: Vec<(MetaKind, &str, &str)> = metas
            .iter()
            .map(|m| (m.kind, m.prefix.as_str(), m.uri.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    MetaKind::Discovery,
                    "a.com",
                    "https://a.com/x?u=1&v={version}"
                ),
                (MetaKind::Discovery, "c.com", "https://c.com/{name}.{ext}"),
                (MetaKind::Discovery, "f.com", "https://f.com/{name}"),
            ]
        );
        // "b.com" has no URL: the content needs two fields.
        assert!(parse_meta("<meta name=ac-discovery-pubkeys content=b.com>").is_empty());
        assert!(parse_meta("").is_empty());
        assert!(parse_meta("<<<>>> < meta").is_empty());
        assert!(parse_meta("<!-- unterminated <meta name=ac-discovery content='a b'>").is_empty());
    }

    #[test]
    fn entities() {
        assert_eq!(
            decode_entities("a&amp;b&lt;&gt;&quot;&#39;&#x41;"),
            "a&b<>\"'A"
        );
        assert_eq!(decode_entities("AT&T &unknown; &"), "AT&T &unknown; &");
    }

    #[test]
    fn templates_fill_name_labels_and_ext() {
        let l = labels(&[("version", "1.0"), ("os", "linux"), ("arch", "amd64")]);
        assert_eq!(
            render_template(
                "https://e.com/{name}-{version}-{os}-{arch}.{ext}",
                "e.com/app",
                &l,
                "aci"
            )
            .as_deref(),
            Some("https://e.com/e.com/app-1.0-linux-amd64.aci")
        );
        assert_eq!(
            render_template("https://e.com/{name}.{ext}", "e.com/app", &l, "aci.asc").as_deref(),
            Some("https://e.com/e.com/app.aci.asc")
        );
        // A placeholder nothing fills: the template is not usable.
        assert_eq!(
            render_template("https://e.com/{name}-{channel}.{ext}", "a", &l, "aci"),
            None
        );
        assert_eq!(render_template("https://e.com/{name", "a", &l, "aci"), None);
        assert_eq!(render_template("https://e.com/name}", "a", &l, "aci"), None);
        // Any other label the user gives.
        let with_channel = labels(&[("channel", "beta")]);
        assert_eq!(
            render_template(
                "https://e.com/{name}-{channel}.{ext}",
                "a",
                &with_channel,
                "aci"
            )
            .as_deref(),
            Some("https://e.com/a-beta.aci")
        );
    }

    #[test]
    fn template_label_defaults() {
        let l = template_labels(&[]);
        assert!(l.contains(&("version".into(), "latest".into())));
        assert!(l.contains(&("os".into(), "linux".into())));
        assert!(l.contains(&("arch".into(), default_arch().to_string())));
        if cfg!(target_arch = "x86_64") {
            assert_eq!(default_arch(), "amd64");
        }
        let given = template_labels(&labels(&[("version", "2"), ("arch", "aarch64")]));
        assert!(given.contains(&("version".into(), "2".into())));
        assert!(given.contains(&("arch".into(), "aarch64".into())));
        assert_eq!(given.iter().filter(|(k, _)| k == "version").count(), 1);
        assert_eq!(given.iter().filter(|(k, _)| k == "arch").count(), 1);
    }

    #[test]
    fn walk_up_lists_parents_longest_first() {
        assert_eq!(walk_up("a.com/b/c"), vec!["a.com/b/c", "a.com/b", "a.com"]);
        assert_eq!(walk_up("a.com"), vec!["a.com"]);
        assert_eq!(walk_up(""), Vec::<String>::new());
    }

    #[test]
    fn endpoints_use_matching_prefixes_only() {
        let metas = parse_meta(
            r#"<meta name="ac-discovery" content="other.com https://other.com/{name}.{ext}">
               <meta name="ac-discovery" content="e.com/app https://e.com/{name}-{version}.{ext}">
               <meta name="ac-discovery" content="e.com https://mirror.e.com/{name}-{version}.aci">
               <meta name="ac-discovery" content="e.com https://e.com/{name}-{flavor}.{ext}">
               <meta name="ac-discovery-pubkeys" content="e.com https://e.com/keys.asc">
               <meta name="ac-discovery-pubkeys" content="other.com https://other.com/keys.asc">"#,
        );
        let l = template_labels(&[]);
        let eps = endpoints_from_meta(&metas, "e.com/app", &l);
        assert_eq!(
            eps.aci,
            vec![
                (
                    "https://e.com/e.com/app-latest.aci".to_string(),
                    "https://e.com/e.com/app-latest.aci.asc".to_string()
                ),
                (
                    "https://mirror.e.com/e.com/app-latest.aci".to_string(),
                    "https://mirror.e.com/e.com/app-latest.aci.asc".to_string()
                ),
            ]
        );
        assert_eq!(eps.keys, vec!["https://e.com/keys.asc".to_string()]);
        assert_eq!(
            endpoints_from_meta(&metas, "x.org/app", &l),
            Endpoints::default()
        );
    }
}
