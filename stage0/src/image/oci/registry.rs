//! A client for the Registry HTTP API v2 (the OCI distribution spec), pull side only.
//!
//! - The scheme is found once per registry by `GET /v2/`: https first; if that fails
//!   to connect or handshake and `--insecure-options=http` allows it, plain http.
//!   `--insecure-options=tls` skips certificate checks; the two are independent.
//! - A `401` carries a `WWW-Authenticate` challenge. `Basic`: the request is sent
//!   again with the `auth.d` credentials of the registry. `Bearer`: a token is fetched
//!   from the challenge's realm (with those credentials, if any, as Basic auth, else
//!   anonymously) for the challenge's scope (default `repository:REPO:pull`), and the
//!   request is sent again with it. Tokens are kept for the life of the client.
//! - Redirects are followed (blobs often redirect to storage); the `Authorization`
//!   header is not sent to the redirect target.
//! - Credentials and tokens never appear in logs or errors.
//! - A mirror endpoint (`registries.d`, see [`super::mirrors`]) has a fixed API root:
//!   no probing; plain http when its URL says so; `skip_verify` as configured.

use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use ureq::http::Response;
use ureq::tls::TlsConfig;
use ureq::{Agent, Body};

use super::auth::{query_escape, Challenge, Credentials};
use super::mirrors::Endpoint;
use super::reference::RegistryRef;
use super::spec::{Digest, MANIFEST_ACCEPT};
use super::{OciError, RawBlob, RawManifest};
use crate::insecure::InsecureOptions;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_REDIRECTS: u32 = 10;
/// The largest manifest or index accepted (the distribution spec suggests 4 MiB).
pub const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;
/// The largest token response accepted.
const TOKEN_LIMIT: u64 = 1024 * 1024;
/// How much of an error body is read for its message.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// A repository on a registry.
pub struct Registry {
    agent: Agent,
    image: RegistryRef,
    /// The host requests go to (the registry's, or a mirror's).
    host: String,
    /// A fixed API root (mirrors, `server`), else found by probing.
    api: Option<String>,
    insecure: InsecureOptions,
    credentials: Option<Credentials>,
    /// Where the credentials came from (for error messages).
    credentials_source: Option<String>,
    /// The API root (`https://host/v2`), decided by the first request.
    base: Mutex<Option<String>>,
    /// The current `Authorization` value.
    authorization: Mutex<Option<String>>,
}

impl Registry {
    pub fn new(
        image: &RegistryRef,
        endpoint: &Endpoint,
        insecure: InsecureOptions,
        credentials: Option<Credentials>,
        credentials_source: Option<String>,
    ) -> Registry {
        let tls = TlsConfig::builder()
            .disable_verification(insecure.tls || endpoint.skip_verify)
            .build();
        let http_endpoint = endpoint
            .api
            .as_deref()
            .is_some_and(|a| a.starts_with("http://"));
        let agent = Agent::config_builder()
            .https_only(!insecure.http && !http_endpoint)
            .http_status_as_error(false)
            .tls_config(tls)
            .max_redirects(MAX_REDIRECTS)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(READ_TIMEOUT))
            // Digests are over the bytes as stored: no transfer compression.
            .accept_encoding("identity")
            .user_agent(concat!("rkt/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Registry {
            agent,
            image: image.clone(),
            host: endpoint.host.clone(),
            api: endpoint.api.clone(),
            insecure,
            credentials,
            credentials_source,
            base: Mutex::new(None),
            authorization: Mutex::new(None),
        }
    }

    fn image_name(&self) -> String {
        self.image.to_string()
    }

    /// The base URL, found on first use.
    fn base(&self) -> Result<String, OciError> {
        let mut base = self.base.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = base.as_ref() {
            return Ok(b.clone());
        }
        if let Some(api) = &self.api {
            *base = Some(api.clone());
            return Ok(api.clone());
        }
        let found = self.ping()?;
        *base = Some(found.clone());
        Ok(found)
    }

    /// `GET /v2/` over https, then (if allowed) http; returns the base URL that
    /// answered like a registry.
    fn ping(&self) -> Result<String, OciError> {
        let host = &self.host;
        let https = format!("https://{host}/v2");
        let first = self.ping_at(&https);
        let err = match first {
            Ok(()) => return Ok(https),
            Err(e @ OciError::Connect { .. }) if self.insecure.http => e,
            Err(OciError::Connect { url, error, .. }) => {
                return Err(OciError::Connect {
                    registry: host.clone(),
                    url,
                    error,
                    hint: " (a registry that speaks plain http needs --insecure-options=http; \
                           one with an untrusted certificate, --insecure-options=tls)"
                        .to_string(),
                })
            }
            Err(e) => return Err(e),
        };
        tracing::debug!(registry = %host, error = %manifests::error::chain(&err), "https failed; trying plain http");
        let http = format!("http://{host}/v2");
        match self.ping_at(&http) {
            Ok(()) => Ok(http),
            // Neither answers like a registry: the https failure says more (a
            // certificate, say); the http one goes into the hint.
            Err(http_err) => match err {
                OciError::Connect {
                    registry,
                    url,
                    error,
                    ..
                } => Err(OciError::Connect {
                    registry,
                    url,
                    error,
                    hint: format!("; over plain http: {}", manifests::error::chain(&http_err)),
                }),
                e => Err(e),
            },
        }
    }

    fn ping_at(&self, base: &str) -> Result<(), OciError> {
        let url = format!("{base}/");
        tracing::debug!(%url, "registry ping");
        let resp = self
            .agent
            .get(&url)
            .call()
            .map_err(|source| OciError::Connect {
                registry: self.host.clone(),
                url: url.clone(),
                error: Box::new(source),
                hint: String::new(),
            })?;
        match resp.status().as_u16() {
            200..=299 | 401 => Ok(()),
            404 => Err(OciError::NotARegistry {
                registry: self.host.clone(),
                url,
            }),
            status => Err(OciError::Status {
                url,
                what: "the registry API root",
                status,
                message: error_message(resp),
            }),
        }
    }

    /// `GET path` (below the base URL), authenticating as challenged.
    fn get(&self, path: &str, accept: Option<&str>) -> Result<(String, Response<Body>), OciError> {
        let url = format!("{}{path}", self.base()?);
        let mut challenged = false;
        loop {
            let auth = self
                .authorization
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let mut req = self.agent.get(&url);
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            tracing::debug!(%url, authenticated = auth.is_some(), "registry get");
            let resp = req.call().map_err(|source| OciError::Request {
                url: url.clone(),
                source: Box::new(source),
            })?;
            if resp.status().as_u16() != 401 {
                tracing::debug!(%url, status = resp.status().as_u16(), "registry response");
                return Ok((url, resp));
            }
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .and_then(super::auth::parse_challenge);
            if challenged {
                return Err(self.unauthorized(auth.is_some(), None));
            }
            challenged = true;
            let new_auth = match challenge {
                Some(Challenge::Basic) => match &self.credentials {
                    Some(c) => c.basic_header(),
                    None => return Err(self.unauthorized(false, None)),
                },
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope,
                }) => {
                    let scope = scope
                        .unwrap_or_else(|| format!("repository:{}:pull", self.image.repository));
                    format!("Bearer {}", self.token(&realm, service.as_deref(), &scope)?)
                }
                None => return Err(self.unauthorized(auth.is_some(), None)),
            };
            *self.authorization.lock().unwrap_or_else(|e| e.into_inner()) = Some(new_auth);
        }
    }

    fn unauthorized(&self, sent_credentials: bool, detail: Option<String>) -> OciError {
        OciError::Unauthorized {
            image: self.image_name(),
            registry: self.host.clone(),
            credentials: self.credentials.as_ref().map(|c| {
                (
                    c.user.clone(),
                    self.credentials_source.clone().unwrap_or_default(),
                )
            }),
            sent_credentials,
            detail,
        }
    }

    /// Fetch a bearer token for `scope` from `realm`.
    fn token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String, OciError> {
        let mut url = realm.to_string();
        url.push(if realm.contains('?') { '&' } else { '?' });
        if let Some(s) = service {
            url.push_str(&format!("service={}&", query_escape(s)));
        }
        url.push_str(&format!("scope={}", query_escape(scope)));
        let mut req = self.agent.get(&url);
        if let Some(c) = &self.credentials {
            req = req.header("Authorization", c.basic_header());
        }
        tracing::debug!(
            realm,
            scope,
            with_credentials = self.credentials.is_some(),
            "fetching a registry token"
        );
        let resp = req.call().map_err(|source| match source {
            ureq::Error::RequireHttpsOnly(_) => OciError::InsecureRealm {
                realm: realm.to_string(),
            },
            source => OciError::Request {
                url: realm.to_string(),
                source: Box::new(source),
            },
        })?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(self.unauthorized(
                self.credentials.is_some(),
                Some(format!("the token service {realm} answered HTTP {status}")),
            ));
        }
        if !(200..300).contains(&status) {
            return Err(OciError::Status {
                url: realm.to_string(),
                what: "a registry token",
                status,
                message: error_message(resp),
            });
        }
        let body = read_limited(resp, TOKEN_LIMIT, realm)?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|source| OciError::Json {
                what: "the token response",
                image: self.image_name(),
                source,
            })?;
        parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OciError::Status {
                url: realm.to_string(),
                what: "a registry token",
                status,
                message: "the response holds no token".to_string(),
            })
    }

    /// `GET /v2/REPO/manifests/REFERENCE` (a tag or a digest).
    pub fn manifest(&self, reference: &str) -> Result<RawManifest, OciError> {
        let path = format!("/{}/manifests/{reference}", self.image.repository);
        let (url, resp) = self.get(&path, Some(MANIFEST_ACCEPT))?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Err(OciError::ManifestUnknown {
                image: format!(
                    "{}/{}:{reference}",
                    self.image.registry, self.image.repository
                )
                .replace(":sha256:", "@sha256:")
                .replace(":sha512:", "@sha512:"),
                message: error_message(resp),
            });
        }
        if !(200..300).contains(&status) {
            return Err(OciError::Status {
                url,
                what: "the manifest",
                status,
                message: error_message(resp),
            });
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type");
        let digest_header = header("docker-content-digest").and_then(|d| Digest::parse(&d).ok());
        let bytes = read_limited(resp, MANIFEST_LIMIT, &url)?;
        Ok(RawManifest {
            bytes,
            media_type: content_type,
            digest_header,
        })
    }

    /// `GET /v2/REPO/blobs/DIGEST`, as a stream.
    pub fn blob(&self, digest: &Digest, what: &str) -> Result<RawBlob, OciError> {
        let path = format!("/{}/blobs/{digest}", self.image.repository);
        let (url, resp) = self.get(&path, None)?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Err(OciError::BlobUnknown {
                image: self.image_name(),
                digest: digest.to_string(),
                what: what.to_string(),
            });
        }
        if !(200..300).contains(&status) {
            return Err(OciError::Status {
                url,
                what: "a blob",
                status,
                message: error_message(resp),
            });
        }
        let length = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        Ok(RawBlob {
            reader: Box::new(resp.into_body().into_reader()),
            length,
        })
    }
}

fn read_limited(resp: Response<Body>, limit: u64, url: &str) -> Result<Vec<u8>, OciError> {
    let mut out = Vec::new();
    resp.into_body()
        .into_reader()
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|source| OciError::ReadBody {
            what: url.to_string(),
            source,
        })?;
    if out.len() as u64 > limit {
        return Err(OciError::TooLarge {
            what: url.to_string(),
            limit,
        });
    }
    Ok(out)
}

/// The message of a registry error response (`{"errors":[{"code","message"}]}`), or
/// the start of a plain body.
fn error_message(resp: Response<Body>) -> String {
    let mut body = Vec::new();
    let _ = resp
        .into_body()
        .into_reader()
        .take(ERROR_BODY_LIMIT)
        .read_to_end(&mut body);
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(&body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{}: {}", e.code, e.message),
                (false, true) => e.code.clone(),
                _ => e.message.clone(),
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text = String::from_utf8_lossy(&body);
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().take(200).collect()
}
