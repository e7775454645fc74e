//! Registry credentials (`auth.d`) and `WWW-Authenticate` challenges.
//!
//! Credentials come from `*.json` files in `<system-config>/auth.d` and then
//! `<local-config>/auth.d` (a later file wins for the same registry), in rkt's
//! `dockerAuth` format:
//!
//! ```json
//! {"rktKind": "dockerAuth", "rktVersion": "v1",
//!  "registries": ["registry.example.com:5000"],
//!  "credentials": {"user": "me", "password": "secret"}}
//! ```
//!
//! Files of other kinds (`auth`, for ACI servers) are skipped. Passwords never reach
//! logs or errors: [`Credentials`] prints without them.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::prelude::{Engine, BASE64_STANDARD};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use super::reference::DOCKER_HUB;

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("cannot read registry credentials {path}", path = path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("invalid registry credentials file {path}", path = path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "registry credentials file {path} has rktVersion {version}; only v1 is understood",
        path = path.display()
    )]
    Version { path: PathBuf, version: String },
}

/// A user name and password for a registry.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// The value of an `Authorization: Basic` header.
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            BASE64_STANDARD.encode(format!("{}:{}", self.user, self.password))
        )
    }
}

/// Credentials per registry host (`host[:port]`, Docker Hub as `registry-1.docker.io`).
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    by_registry: BTreeMap<String, (Credentials, PathBuf)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kind {
    rkt_kind: String,
    #[serde(default)]
    rkt_version: String,
}

#[derive(Deserialize)]
struct DockerAuthFile {
    registries: Vec<String>,
    credentials: Credentials,
}

impl AuthConfig {
    /// Read `<dir>/auth.d/*.json` for each of `config_dirs` in order (system first,
    /// then local). Missing directories are fine.
    pub fn load(config_dirs: &[&Path]) -> Result<AuthConfig, AuthConfigError> {
        let mut cfg = AuthConfig::default();
        for dir in config_dirs {
            let auth_dir = dir.join("auth.d");
            let entries = match fs::read_dir(&auth_dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(AuthConfigError::Read {
                        path: auth_dir,
                        source,
                    })
                }
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            files.sort();
            for path in files {
                cfg.load_file(&path)?;
            }
        }
        Ok(cfg)
    }

    fn load_file(&mut self, path: &Path) -> Result<(), AuthConfigError> {
        let bytes = fs::read(path).map_err(|source| AuthConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let parse_err = |source| AuthConfigError::Parse {
            path: path.to_path_buf(),
            source,
        };
        let kind: Kind = serde_json::from_slice(&bytes).map_err(parse_err)?;
        if kind.rkt_kind != "dockerAuth" {
            return Ok(());
        }
        if kind.rkt_version != "v1" {
            return Err(AuthConfigError::Version {
                path: path.to_path_buf(),
                version: kind.rkt_version,
            });
        }
        let file: DockerAuthFile = serde_json::from_slice(&bytes).map_err(parse_err)?;
        for registry in file.registries {
            self.by_registry.insert(
                normalize_registry(&registry),
                (file.credentials.clone(), path.to_path_buf()),
            );
        }
        Ok(())
    }

    /// Add credentials for a registry (tests, callers with their own source).
    pub fn insert(&mut self, registry: &str, credentials: Credentials) {
        self.by_registry.insert(
            normalize_registry(registry),
            (credentials, PathBuf::from("<given>")),
        );
    }

    /// The credentials for `registry` (`host[:port]`), if any.
    pub fn for_registry(&self, registry: &str) -> Option<&Credentials> {
        self.by_registry
            .get(&normalize_registry(registry))
            .map(|(c, _)| c)
    }

    /// The file the credentials for `registry` came from.
    pub fn source_of(&self, registry: &str) -> Option<&Path> {
        self.by_registry
            .get(&normalize_registry(registry))
            .map(|(_, p)| p.as_path())
    }
}

/// Lower-case, without a scheme or path, Docker Hub's aliases folded together.
fn normalize_registry(registry: &str) -> String {
    let r = registry.trim();
    let r = r
        .strip_prefix("https://")
        .or_else(|| r.strip_prefix("http://"))
        .unwrap_or(r);
    let r = r.split('/').next().unwrap_or(r).to_ascii_lowercase();
    match r.as_str() {
        "docker.io" | "index.docker.io" => DOCKER_HUB.to_string(),
        _ => r,
    }
}

/// One authentication challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    /// A token is to be fetched from `realm` (with `service` and `scope`).
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` value; the first Bearer or Basic challenge wins.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let mut rest = header.trim();
    while !rest.is_empty() {
        let (scheme, after) = match rest.find(|c: char| c.is_whitespace() || c == ',') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (params, remaining) = parse_params(after);
        match scheme.to_ascii_lowercase().as_str() {
            "bearer" => {
                let get = |k: &str| params.get(k).cloned();
                if let Some(realm) = get("realm") {
                    return Some(Challenge::Bearer {
                        realm,
                        service: get("service"),
                        scope: get("scope"),
                    });
                }
            }
            "basic" => return Some(Challenge::Basic),
            _ => {}
        }
        rest = remaining.trim_start_matches([',', ' ', '\t']);
    }
    None
}

/// Parse `k=v, k="v"` pairs until the next challenge's scheme (a token not
/// followed by `=`); returns the pairs (keys lower-cased) and what is left.
fn parse_params(s: &str) -> (BTreeMap<String, String>, &str) {
    let mut out = BTreeMap::new();
    let mut rest = s;
    loop {
        let trimmed = rest.trim_start_matches([',', ' ', '\t']);
        let key_end = trimmed
            .find(|c: char| c == '=' || c == ',' || c.is_whitespace())
            .unwrap_or(trimmed.len());
        let key = &trimmed[..key_end];
        let after_key = trimmed[key_end..].trim_start();
        if key.is_empty() || !after_key.starts_with('=') {
            return (out, trimmed);
        }
        let value_part = after_key[1..].trim_start();
        let (value, after_value) = if let Some(q) = value_part.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &q[end.min(q.len())..])
        } else {
            let end = value_part.find(',').unwrap_or(value_part.len());
            (value_part[..end].trim().to_string(), &value_part[end..])
        };
        out.insert(key.to_ascii_lowercase(), value);
        rest = after_value;
    }
}

/// What [`query_escape`] encodes: everything but RFC 3986's unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encode a query parameter value (RFC 3986 unreserved characters kept).
pub fn query_escape(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_and_query_escape() {
        // RFC 7617's example, padding of each length, and a password with
        // bytes outside ASCII.
        for (user, password, want) in [
            ("Aladdin", "open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            ("user", "pa ss", "dXNlcjpwYSBzcw=="),
            ("f", "", "Zjo="),
            ("fo", "", "Zm86"),
            ("foob", "", "Zm9vYjo="),
            ("a", "\u{e9}", "YTrDqQ=="),
        ] {
            let c = Credentials {
                user: user.into(),
                password: password.into(),
            };
            assert_eq!(c.basic_header(), format!("Basic {want}"), "{user}");
        }
        assert_eq!(
            query_escape("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
        assert_eq!(
            query_escape("Az09-_.~ +&=\u{e9}"),
            "Az09-_.~%20%2B%26%3D%C3%A9"
        );
    }

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(r#"Negotiate abc, Basic realm="x\"y", charset="UTF-8""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(r#"bearer Realm=http://127.0.0.1:1/t , Service=reg"#),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: Some("reg".into()),
                scope: None,
            })
        );
        assert_eq!(
            parse_challenge("Bearer"),
            None,
            "a bearer challenge needs a realm"
        );
        assert_eq!(parse_challenge(""), None);
    }

    #[test]
    fn auth_d_files() {
        let root = tempfile::tempdir().unwrap();
        let system = root.path().join("usr-lib");
        let local = root.path().join("etc");
        fs::create_dir_all(system.join("auth.d")).unwrap();
        fs::create_dir_all(local.join("auth.d")).unwrap();
        let file = |dir: &Path, name: &str, body: &str| {
            fs::write(dir.join("auth.d").join(name), body).unwrap()
        };
        file(
            &system,
            "hub.json",
            r#"{"rktKind":"dockerAuth","rktVersion":"v1","registries":["docker.io","reg.example.com:5000"],"credentials":{"user":"sys","password":"s3cret"}}"#,
        );
        file(
            &local,
            "override.json",
            r#"{"rktKind":"dockerAuth","rktVersion":"v1","registries":["REG.example.com:5000"],"credentials":{"user":"admin","password":"pw"}}"#,
        );
        file(
            &local,
            "aci.json",
            r#"{"rktKind":"auth","rktVersion":"v1","domains":["example.com"],"type":"basic","credentials":{"user":"a","password":"b"}}"#,
        );
        file(&local, "notes.txt", "not json, not read");
        let cfg = AuthConfig::load(&[&system, &local]).unwrap();
        assert_eq!(cfg.for_registry(DOCKER_HUB).unwrap().user, "sys");
        assert_eq!(cfg.for_registry("index.docker.io").unwrap().user, "sys");
        let reg = cfg.for_registry("reg.example.com:5000").unwrap();
        assert_eq!(reg.user, "admin", "local overrides system");
        assert!(cfg.for_registry("example.com").is_none());
        assert_eq!(
            reg.basic_header(),
            format!("Basic {}", BASE64_STANDARD.encode("admin:pw"))
        );
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("\"pw\""),
            "{shown}"
        );

        file(
            &local,
            "broken.json",
            r#"{"rktKind":"dockerAuth","rktVersion":"v1"}"#,
        );
        let err = AuthConfig::load(&[&system, &local]).unwrap_err();
        assert!(err.to_string().contains("broken.json"), "{err}");
        fs::remove_file(local.join("auth.d/broken.json")).unwrap();
        file(
            &local,
            "v2.json",
            r#"{"rktKind":"dockerAuth","rktVersion":"v2"}"#,
        );
        let err = AuthConfig::load(&[&system, &local]).unwrap_err();
        assert!(matches!(err, AuthConfigError::Version { .. }), "{err}");
        // Missing directories are not an error.
        assert!(AuthConfig::load(&[&root.path().join("none")]).is_ok());
    }
}
