//! A small blocking HTTP client for image downloads and discovery.
//!
//! Plain `http://` is refused unless `--insecure-options=http`, also when a redirect
//! leads there; TLS certificates are checked unless `--insecure-options=tls`.
//! Non-2xx answers are returned as responses (not errors) so callers can tell a 304
//! or a 404 from a broken connection. URLs in errors and logs have any user
//! information (`user:password@`) removed.

use std::io::{self, Read};
use std::time::Duration;

use ureq::tls::TlsConfig;
use ureq::{Agent, Body, ResponseExt};

use crate::insecure::InsecureOptions;

/// Give up connecting after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Give up when the server sends nothing for this long (headers or body).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Follow at most this many redirects.
const MAX_REDIRECTS: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "refusing to fetch {url} over plain http: use https, or allow http with \
         --insecure-options=http"
    )]
    InsecureHttp { url: String },
    #[error("cannot fetch {url}: only http and https URLs are supported")]
    UnsupportedScheme { url: String },
    #[error("request to {url} failed")]
    Request { url: String, source: ureq::Error },
    #[error("cannot read the response from {url}")]
    ReadBody { url: String, source: io::Error },
    #[error("the response from {url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
}

/// An HTTP(S) client honouring `--insecure-options` (`http`, `tls`).
#[derive(Debug, Clone)]
pub struct HttpClient {
    agent: Agent,
    insecure: InsecureOptions,
}

/// A response whose body has not been read yet.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// The URL that answered, after redirects (user information removed).
    pub url: String,
    /// The `ETag` header, as sent.
    pub etag: Option<String>,
    /// `Cache-Control: max-age`, unless `no-cache` or `no-store` say not to reuse.
    pub max_age: Option<Duration>,
    pub content_length: Option<u64>,
    body: Body,
}

impl Response {
    /// The body as a reader (no size limit: images can be large).
    pub fn into_reader(self) -> impl Read + Send + 'static {
        self.body.into_reader()
    }

    /// Read the whole body, failing if it is longer than `limit` bytes.
    pub fn read_limited(self, limit: u64) -> Result<Vec<u8>, HttpError> {
        let url = self.url.clone();
        let mut out = Vec::new();
        self.into_reader()
            .take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|source| HttpError::ReadBody {
                url: url.clone(),
                source,
            })?;
        if out.len() as u64 > limit {
            return Err(HttpError::TooLarge { url, limit });
        }
        Ok(out)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl HttpClient {
    pub fn new(insecure: InsecureOptions) -> Self {
        let tls = TlsConfig::builder()
            .disable_verification(insecure.tls)
            .build();
        let config = Agent::config_builder()
            .https_only(!insecure.http)
            .http_status_as_error(false)
            .tls_config(tls)
            .max_redirects(MAX_REDIRECTS)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(READ_TIMEOUT))
            // The bytes we receive must be the bytes that were signed.
            .accept_encoding("identity")
            .user_agent(concat!("rkt/", env!("CARGO_PKG_VERSION")))
            .build();
        HttpClient {
            agent: config.new_agent(),
            insecure,
        }
    }

    pub fn insecure(&self) -> InsecureOptions {
        self.insecure
    }

    /// Check that `url` may be fetched with these options.
    pub fn check_url(&self, url: &str) -> Result<(), HttpError> {
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        if lower.starts_with("https://") {
            Ok(())
        } else if lower.starts_with("http://") {
            if self.insecure.http {
                Ok(())
            } else {
                Err(HttpError::InsecureHttp { url: redact(url) })
            }
        } else {
            Err(HttpError::UnsupportedScheme { url: redact(url) })
        }
    }

    /// `GET url`, following redirects; with `if_none_match`, a conditional request.
    pub fn get(&self, url: &str, if_none_match: Option<&str>) -> Result<Response, HttpError> {
        self.check_url(url)?;
        let mut req = self.agent.get(url);
        if let Some(etag) = if_none_match {
            req = req.header("If-None-Match", etag);
        }
        tracing::debug!(url = %redact(url), conditional = if_none_match.is_some(), "http get");
        let resp = req.call().map_err(|source| match source {
            // A redirect to plain http.
            ureq::Error::RequireHttpsOnly(_) => HttpError::InsecureHttp { url: redact(url) },
            source => HttpError::Request {
                url: redact(url),
                source,
            },
        })?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header("etag").filter(|e| !e.is_empty());
        let max_age = header("cache-control").and_then(|v| parse_max_age(&v));
        let content_length = header("content-length").and_then(|v| v.trim().parse().ok());
        let final_url = redact(&resp.get_uri().to_string());
        let status = resp.status().as_u16();
        tracing::debug!(url = %final_url, status, "http response");
        Ok(Response {
            status,
            url: final_url,
            etag,
            max_age,
            content_length,
            body: resp.into_body(),
        })
    }
}

/// `max-age` from a `Cache-Control` value; `None` when absent or when `no-cache` or
/// `no-store` forbid reusing the response without asking.
pub fn parse_max_age(cache_control: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in cache_control.split(',') {
        let directive = directive.trim();
        let (key, value) = match directive.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive, None),
        };
        if key.eq_ignore_ascii_case("no-cache") || key.eq_ignore_ascii_case("no-store") {
            return None;
        }
        if key.eq_ignore_ascii_case("max-age") {
            max_age = value
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs);
        }
    }
    max_age
}

/// `url` without `user:password@` (so credentials never reach errors or logs).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://{}{tail}", &authority[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_directives() {
        assert_eq!(parse_max_age("max-age=60"), Some(Duration::from_secs(60)));
        assert_eq!(
            parse_max_age("public, Max-Age=3600"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(parse_max_age("max-age=\"5\""), Some(Duration::from_secs(5)));
        assert_eq!(parse_max_age("max-age=60, no-cache"), None);
        assert_eq!(parse_max_age("no-store"), None);
        assert_eq!(parse_max_age("public"), None);
        assert_eq!(parse_max_age("max-age=soon"), None);
    }

    #[test]
    fn redacts_user_information() {
        assert_eq!(
            redact("https://user:secret@example.com/a.aci?x=1"),
            "https://example.com/a.aci?x=1"
        );
        assert_eq!(redact("https://example.com/a@b"), "https://example.com/a@b");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn scheme_checks() {
        let strict = HttpClient::new(InsecureOptions::default());
        assert!(strict.check_url("https://example.com/x").is_ok());
        assert!(strict.check_url("HTTPS://example.com/x").is_ok());
        let err = strict.check_url("http://u:pw@example.com/x").unwrap_err();
        assert!(matches!(err, HttpError::InsecureHttp { .. }));
        let msg = err.to_string();
        assert!(msg.contains("--insecure-options=http"), "{msg}");
        assert!(!msg.contains("pw"), "{msg}");
        assert!(matches!(
            strict.check_url("ftp://example.com/x"),
            Err(HttpError::UnsupportedScheme { .. })
        ));
        let lax = HttpClient::new(InsecureOptions {
            http: true,
            ..Default::default()
        });
        assert!(lax.check_url("http://example.com/x").is_ok());
    }
}
