//! Trusted keys and signature verification.
//!
//! Keys live in two configuration trees of the same shape, the local one (`/etc/rkt`,
//! the admin's) and the system one (`/usr/lib/rkt`, the vendor's):
//!
//! ```text
//! <cfg>/trustedkeys/prefix.d/<prefix>/<fingerprint>   trusted for images named <prefix>[/...]
//! <cfg>/trustedkeys/root.d/<fingerprint>              trusted for every image
//! ```
//!
//! A prefix such as `example.com/app` is stored as nested directories
//! (`prefix.d/example.com/app/`). Each key file holds one armored public key and is named
//! by the primary key's fingerprint in lower-case hex. A zero-length local file masks the
//! system key of the same prefix and fingerprint.
//!
//! An image `example.com/app/x` is checked against keys trusted for `example.com/app/x`,
//! `example.com/app` and `example.com`, then root keys. The signature must be an armored
//! detached OpenPGP signature (`gpg --armor --detach-sign`), made by a trusted primary key
//! or by one of its signing subkeys.

mod key;

use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use pgp::composed::{Deserializable, DetachedSignature};
use pgp::packet::{Signature, SignatureType};

use key::{hex_fingerprint, issued_by, SignerState, ValidKey};

/// Which images a trusted key may sign.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrustScope {
    /// Images whose name is this prefix or lies below it (`example.com` covers
    /// `example.com/app`).
    Prefix(String),
    /// Every image.
    Root,
}

impl fmt::Display for TrustScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustScope::Prefix(p) => write!(f, "prefix {p}"),
            TrustScope::Root => f.write_str("root"),
        }
    }
}

/// What a public key is, as shown to a person before trusting it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// The primary key's fingerprint, lower-case hex, no spaces.
    pub fingerprint: String,
    /// User ids with a valid self-signature.
    pub user_ids: Vec<String>,
    /// e.g. "RSA 3072", "EdDSA (Ed25519)".
    pub algorithm: String,
    /// Fingerprints of the subkeys bound to the primary key.
    pub subkeys: Vec<String>,
}

/// A signature that checked out against a trusted key.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The trusted primary key's fingerprint.
    pub fingerprint: String,
    /// Fingerprint of the (sub)key that made the signature.
    pub signer: String,
    /// The trusted key's user ids.
    pub user_ids: Vec<String>,
    /// The trust entry that matched: the prefix, or root.
    pub scope: TrustScope,
}

/// Errors about keys and the trust store.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("not an armored OpenPGP public key: {reason}")]
    NotAPublicKey { reason: String },
    #[error(
        "this is a private key block; give the public key instead \
         (`gpg --armor --export KEYID` writes it)"
    )]
    SecretKey,
    #[error("expected one OpenPGP public key, found {count}; trust them one at a time")]
    MultipleKeys { count: usize },
    #[error("key {fingerprint}: self-signature invalid: {reason}")]
    SelfSignature { fingerprint: String, reason: String },
    #[error("key {fingerprint} has been revoked by its owner and cannot be trusted")]
    Revoked { fingerprint: String },
    #[error("invalid trust prefix {prefix}: {reason} (a prefix is an image name or a leading part of one, like example.com/app)")]
    InvalidPrefix { prefix: String, reason: String },
    #[error("cannot read trusted key {path}", path = path.display())]
    ReadKey { path: PathBuf, source: io::Error },
    #[error("cannot list trusted keys in {path}", path = path.display())]
    ReadDir { path: PathBuf, source: io::Error },
    #[error("cannot create {path}", path = path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot write trusted key {path}", path = path.display())]
    WriteKey { path: PathBuf, source: io::Error },
    #[error("trusted key file {path} is invalid", path = path.display())]
    KeyFile {
        path: PathBuf,
        source: Box<TrustError>,
    },
    #[error(
        "trusted key file {path} holds key {fingerprint}; the file must be named after \
         the key's fingerprint",
        path = path.display()
    )]
    FingerprintMismatch { path: PathBuf, fingerprint: String },
}

/// Why an image's signature was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "no keys are trusted for image {name}: run `rkt trust --prefix={name} KEYFILE` to \
         trust its signing key (or `rkt trust --root KEYFILE` for a key trusted for every image)"
    )]
    NoTrustedKeys { name: String },
    #[error(
        "image {name} is signed by key {issuer}, which is not trusted for {name} or any of its \
         parent prefixes; if you know this key, trust it with `rkt trust --prefix={name} KEYFILE`"
    )]
    UntrustedSigner { name: String, issuer: String },
    #[error(
        "bad signature for image {name}: the signature by key {signer} does not match the image \
         data; the image or its signature was altered or they do not belong together"
    )]
    BadSignature { name: String, signer: String },
    #[error("the signature for image {name} is not an armored OpenPGP signature: {reason}")]
    MalformedSignature { name: String, reason: String },
    #[error("image {name} is signed by key {signer}, which cannot be trusted: {reason}")]
    UnusableSigner {
        name: String,
        signer: String,
        reason: String,
    },
    #[error("the signature by key {signer} for image {name} expired on {expired}")]
    SignatureExpired {
        name: String,
        signer: String,
        expired: String,
    },
    #[error("cannot check the signature of {name}: not a valid image name: {reason}")]
    InvalidName { name: String, reason: String },
    #[error(
        "cannot read trusted key {path} while verifying image {name}",
        path = path.display()
    )]
    ReadKey {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "cannot list trusted keys in {path} while verifying image {name}",
        path = path.display()
    )]
    ReadDir {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "trusted key {path} is unusable while verifying image {name} \
         (fix or remove that file)",
        path = path.display()
    )]
    InvalidKey {
        name: String,
        path: PathBuf,
        source: Box<TrustError>,
    },
    #[error("cannot read the data of image {name} to verify it")]
    ReadData { name: String, source: io::Error },
}

/// The trust store: local (admin) and system (vendor) key directories.
#[derive(Debug, Clone)]
pub struct Keystore {
    local: PathBuf,
    system: PathBuf,
}

/// One key file that applies, before it is read.
#[derive(Debug, Clone)]
struct Entry {
    scope: TrustScope,
    path: PathBuf,
    /// From the file name.
    fingerprint: String,
}

impl Keystore {
    /// `local_config` is e.g. `/etc/rkt`, `system_config` e.g. `/usr/lib/rkt`.
    pub fn new(local_config: &Path, system_config: &Path) -> Keystore {
        Keystore {
            local: local_config.join("trustedkeys"),
            system: system_config.join("trustedkeys"),
        }
    }

    /// The configuration directories (`local`, `system`) this keystore reads, for
    /// the other things kept there (`auth.d` registry credentials).
    pub fn config_dirs(&self) -> (&Path, &Path) {
        (
            self.local.parent().unwrap_or(&self.local),
            self.system.parent().unwrap_or(&self.system),
        )
    }

    /// Parse an armored public key (as `gpg --armor --export` writes it) and check its
    /// self-signatures.
    pub fn inspect(armored: &[u8]) -> Result<KeyInfo, TrustError> {
        key::parse_armored(armored).map(|k| k.info)
    }

    /// The directory holding keys for `scope` under one configuration's `trustedkeys`.
    fn scope_dir(base: &Path, scope: &TrustScope) -> PathBuf {
        match scope {
            TrustScope::Prefix(p) => base.join("prefix.d").join(p),
            TrustScope::Root => base.join("root.d"),
        }
    }

    /// Store a key in the local configuration for `scope`. The file is written to a
    /// temporary name and renamed, mode 0644. Returns the key's info and the file path.
    pub fn add(
        &self,
        armored: &[u8],
        scope: &TrustScope,
    ) -> Result<(KeyInfo, PathBuf), TrustError> {
        if let TrustScope::Prefix(p) = scope {
            validate_prefix(p)?;
        }
        let info = Self::inspect(armored)?;
        let dir = Self::scope_dir(&self.local, scope);
        std::fs::create_dir_all(&dir).map_err(|source| TrustError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(&info.fingerprint);
        let write_err = |source| TrustError::WriteKey {
            path: path.clone(),
            source,
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(write_err)?;
        tmp.write_all(armored).map_err(write_err)?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(write_err)?;
        tmp.as_file().sync_all().map_err(write_err)?;
        tmp.persist(&path).map_err(|e| write_err(e.error))?;
        tracing::info!(fingerprint = %info.fingerprint, scope = %scope, path = %path.display(),
            "trusted key added");
        Ok((info, path))
    }

    /// Every effective trusted key (local ones, and system ones not masked or replaced
    /// by a local file), for `rkt trust --list` style output. Prefix entries come
    /// first, sorted by prefix, then root keys.
    pub fn list(&self) -> Result<Vec<(TrustScope, KeyInfo, PathBuf)>, TrustError> {
        let mut scopes = BTreeSet::new();
        for base in [&self.local, &self.system] {
            collect_prefixes(&base.join("prefix.d"), "", &mut scopes)?;
        }
        scopes.insert(TrustScope::Root);
        let mut out = Vec::new();
        for scope in scopes {
            for entry in self
                .entries(&scope)
                .map_err(|ListError { path, source }| TrustError::ReadDir { path, source })?
            {
                let k = load_key(&entry)?;
                out.push((entry.scope, k.info, entry.path));
            }
        }
        Ok(out)
    }

    /// The key files that apply to image `name` (its prefixes from the longest, then
    /// root), with masking applied, without reading them. A fetcher can use this to tell
    /// whether any key is trusted for a name yet.
    pub fn trusted_for(&self, name: &str) -> Result<Vec<(TrustScope, PathBuf)>, TrustError> {
        validate_prefix(name)?;
        let mut out = Vec::new();
        for scope in scopes_for(name) {
            let entries = self
                .entries(&scope)
                .map_err(|ListError { path, source }| TrustError::ReadDir { path, source })?;
            out.extend(entries.into_iter().map(|e| (e.scope, e.path)));
        }
        Ok(out)
    }

    /// Key files for one scope: local first, then system ones whose file name is not
    /// taken by a local file (a zero-length local file masks and is itself skipped).
    fn entries(&self, scope: &TrustScope) -> Result<Vec<Entry>, ListError> {
        let local = key_files(&Self::scope_dir(&self.local, scope))?;
        let system = key_files(&Self::scope_dir(&self.system, scope))?;
        let mut out = Vec::new();
        for f in &local {
            if f.len > 0 {
                out.push(Entry {
                    scope: scope.clone(),
                    path: f.path.clone(),
                    fingerprint: f.fingerprint.clone(),
                });
            }
        }
        for f in system {
            if local.iter().any(|l| l.fingerprint == f.fingerprint) {
                tracing::debug!(path = %f.path.display(), "system key masked by local config");
                continue;
            }
            out.push(Entry {
                scope: scope.clone(),
                path: f.path,
                fingerprint: f.fingerprint,
            });
        }
        Ok(out)
    }

    /// Verify an armored detached `signature` over `data` for image `name`.
    ///
    /// Candidate keys are those trusted for `name` or any parent prefix, then root keys,
    /// from both configurations. The signature's issuer (fingerprint or key id) picks
    /// the key — a primary key or one of its signing subkeys — and `data` is read once.
    pub fn verify(
        &self,
        name: &str,
        mut data: impl Read,
        signature: &[u8],
    ) -> Result<Verified, VerifyError> {
        if let Err(e) = manifests::appc::AcIdentifier::new(name) {
            return Err(VerifyError::InvalidName {
                name: name.to_string(),
                reason: appc_reason(e),
            });
        }
        let sig = parse_signature(name, signature)?;

        let mut entries = Vec::new();
        for scope in scopes_for(name) {
            let found = self.entries(&scope).map_err(|ListError { path, source }| {
                VerifyError::ReadDir {
                    name: name.to_string(),
                    path,
                    source,
                }
            })?;
            entries.extend(found);
        }
        if entries.is_empty() {
            return Err(VerifyError::NoTrustedKeys {
                name: name.to_string(),
            });
        }
        let mut keys = Vec::new();
        for entry in entries {
            let k = load_key(&entry).map_err(|e| match e {
                TrustError::ReadKey { path, source } => VerifyError::ReadKey {
                    name: name.to_string(),
                    path,
                    source,
                },
                // The error names the file already; keep only what is wrong with it.
                TrustError::KeyFile { source, .. } => VerifyError::InvalidKey {
                    name: name.to_string(),
                    path: entry.path.clone(),
                    source,
                },
                other => VerifyError::InvalidKey {
                    name: name.to_string(),
                    path: entry.path.clone(),
                    source: Box::new(other),
                },
            })?;
            keys.push((entry, k));
        }

        let names_issuer = !sig.issuer_fingerprint().is_empty() || !sig.issuer_key_id().is_empty();
        // (trust entry, key, signer state, subkey index or None for the primary)
        let mut candidates = Vec::new();
        for (entry, k) in &keys {
            for (idx, state) in signer_states(k) {
                if issued_by(&sig, &state.fingerprint, &state.key_id) {
                    candidates.push((entry, k, state, idx));
                }
            }
        }
        let Some(&(entry, k, state, idx)) = candidates.first() else {
            return Err(VerifyError::UntrustedSigner {
                name: name.to_string(),
                issuer: issuer_of(&sig),
            });
        };

        let now = SystemTime::now();
        let verified = |entry: &Entry, k: &ValidKey, state: &SignerState| Verified {
            fingerprint: k.info.fingerprint.clone(),
            signer: hex_fingerprint(&state.fingerprint),
            user_ids: k.info.user_ids.clone(),
            scope: entry.scope.clone(),
        };

        if names_issuer {
            // The issuer names exactly one key (fingerprints and key ids are unique
            // enough that several trust entries naming it are the same key).
            let signer = hex_fingerprint(&state.fingerprint);
            if let Some(reason) = state.unusable_reason(now) {
                return Err(VerifyError::UnusableSigner {
                    name: name.to_string(),
                    signer,
                    reason,
                });
            }
            check_signature_expiry(name, &sig, &signer, now)?;
            let mut reader = ErrorKeepingReader::new(&mut data);
            let result = match idx {
                None => sig.verify(&k.key.primary_key, &mut reader),
                Some(i) => sig.verify(&k.subkeys[i].key, &mut reader),
            };
            if let Some(source) = reader.error.take() {
                return Err(VerifyError::ReadData {
                    name: name.to_string(),
                    source,
                });
            }
            return match result {
                Ok(()) => Ok(verified(entry, k, state)),
                Err(e) => {
                    tracing::debug!(image = name, signer = %signer, error = %e, "signature check failed");
                    Err(VerifyError::BadSignature {
                        name: name.to_string(),
                        signer,
                    })
                }
            };
        }

        // A signature that names no issuer: try every usable trusted key on a copy of
        // the data.
        let mut buf = Vec::new();
        data.read_to_end(&mut buf)
            .map_err(|source| VerifyError::ReadData {
                name: name.to_string(),
                source,
            })?;
        for &(entry, k, state, idx) in &candidates {
            if state.unusable_reason(now).is_some() {
                continue;
            }
            let ok = match idx {
                None => sig.verify(&k.key.primary_key, &buf[..]),
                Some(i) => sig.verify(&k.subkeys[i].key, &buf[..]),
            };
            if ok.is_ok() {
                let signer = hex_fingerprint(&state.fingerprint);
                check_signature_expiry(name, &sig, &signer, now)?;
                return Ok(verified(entry, k, state));
            }
        }
        Err(VerifyError::UntrustedSigner {
            name: name.to_string(),
            issuer: issuer_of(&sig),
        })
    }
}

/// The primary and each bound subkey, as possible data signers.
fn signer_states(k: &ValidKey) -> impl Iterator<Item = (Option<usize>, &SignerState)> {
    std::iter::once((None, &k.primary)).chain(
        k.subkeys
            .iter()
            .enumerate()
            .map(|(i, s)| (Some(i), &s.state)),
    )
}

/// A trust scope for `name` and each parent prefix, longest first, then root.
fn scopes_for(name: &str) -> Vec<TrustScope> {
    let mut out = Vec::new();
    let mut prefix = name;
    loop {
        out.push(TrustScope::Prefix(prefix.to_string()));
        match prefix.rfind('/') {
            Some(i) => prefix = &prefix[..i],
            None => break,
        }
    }
    out.push(TrustScope::Root);
    out
}

fn appc_reason(e: manifests::appc::AppcError) -> String {
    match e {
        manifests::appc::AppcError::Identifier { reason, .. } => reason.to_string(),
        other => other.to_string(),
    }
}

/// A trust prefix must be an AC identifier (`example.com/app`): this also keeps it
/// from naming anything outside `prefix.d` (no `..`, no leading `/`).
fn validate_prefix(prefix: &str) -> Result<(), TrustError> {
    manifests::appc::AcIdentifier::new(prefix)
        .map(|_| ())
        .map_err(|e| TrustError::InvalidPrefix {
            prefix: prefix.to_string(),
            reason: appc_reason(e),
        })
}

/// Whether a file name looks like a key fingerprint (v4: 40 hex digits, v6: 64).
fn is_fingerprint_name(name: &str) -> bool {
    (name.len() == 40 || name.len() == 64) && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A file in a key directory named like a fingerprint.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct KeyFile {
    /// Lower-case, from the file name.
    fingerprint: String,
    path: PathBuf,
    len: u64,
}

/// A key directory that could not be listed.
#[derive(Debug)]
struct ListError {
    path: PathBuf,
    source: io::Error,
}

/// Every key file directly in `dir` (none if it does not exist), sorted by name. Files
/// not named like a fingerprint are ignored.
fn key_files(dir: &Path) -> Result<Vec<KeyFile>, ListError> {
    let list_err = |source| ListError {
        path: dir.to_path_buf(),
        source,
    };
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(list_err(e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(list_err)?;
        let path = e.path();
        let Some(file_name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !is_fingerprint_name(&file_name) {
            if !file_name.starts_with('.') {
                tracing::warn!(path = %path.display(), "ignoring a file not named like a key fingerprint");
            }
            continue;
        }
        // Follow symlinks: a key may be linked in from elsewhere. An entry that cannot
        // be examined is kept, so that reading it reports the problem with its path.
        let len = match std::fs::metadata(&path) {
            Ok(m) if !m.is_file() => continue,
            Ok(m) => m.len(),
            Err(_) => u64::MAX,
        };
        out.push(KeyFile {
            fingerprint: file_name.to_ascii_lowercase(),
            path,
            len,
        });
    }
    out.sort();
    Ok(out)
}

/// Every prefix that has a directory under `prefix.d` (recursively).
fn collect_prefixes(
    dir: &Path,
    prefix: &str,
    out: &mut BTreeSet<TrustScope>,
) -> Result<(), TrustError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(TrustError::ReadDir {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for e in rd {
        let e = e.map_err(|source| TrustError::ReadDir {
            path: dir.to_path_buf(),
            source,
        })?;
        // A symlinked prefix directory counts, but is not descended into (no loops).
        let is_link = e.file_type().is_ok_and(|t| t.is_symlink());
        let is_dir = std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir());
        let Some(part) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !is_dir || part.starts_with('.') {
            continue;
        }
        let child = if prefix.is_empty() {
            part
        } else {
            format!("{prefix}/{part}")
        };
        out.insert(TrustScope::Prefix(child.clone()));
        if !is_link {
            collect_prefixes(&e.path(), &child, out)?;
        }
    }
    Ok(())
}

/// Read and check one key file; its name must be the key's fingerprint.
fn load_key(entry: &Entry) -> Result<ValidKey, TrustError> {
    let bytes = std::fs::read(&entry.path).map_err(|source| TrustError::ReadKey {
        path: entry.path.clone(),
        source,
    })?;
    let k = key::parse_armored(&bytes).map_err(|e| TrustError::KeyFile {
        path: entry.path.clone(),
        source: Box::new(e),
    })?;
    if k.info.fingerprint != entry.fingerprint {
        return Err(TrustError::FingerprintMismatch {
            path: entry.path.clone(),
            fingerprint: k.info.fingerprint,
        });
    }
    Ok(k)
}

fn parse_signature(name: &str, armored: &[u8]) -> Result<Signature, VerifyError> {
    let malformed = |reason: String| VerifyError::MalformedSignature {
        name: name.to_string(),
        reason,
    };
    const HEADER: &[u8] = b"-----BEGIN PGP SIGNATURE-----";
    if !armored.windows(HEADER.len()).any(|w| w == HEADER) {
        return Err(malformed(
            "no \"BEGIN PGP SIGNATURE\" armor header found".to_string(),
        ));
    }
    // Only the first signature counts (`gpg --detach-sign` writes one).
    let (sig, _headers) =
        DetachedSignature::from_armor_single(armored).map_err(|e| malformed(e.to_string()))?;
    let sig = sig.signature;
    match sig.typ() {
        Some(SignatureType::Binary | SignatureType::Text) => Ok(sig),
        other => Err(malformed(format!(
            "it is a {other:?} signature, not a signature over a file"
        ))),
    }
}

/// The signer as the signature names it: a fingerprint if present, else a key id.
fn issuer_of(sig: &Signature) -> String {
    if let Some(fp) = sig.issuer_fingerprint().first() {
        hex_fingerprint(fp)
    } else if let Some(id) = sig.issuer_key_id().first() {
        format!("with id {id}")
    } else {
        "(the signature names no key)".to_string()
    }
}

fn check_signature_expiry(
    name: &str,
    sig: &Signature,
    signer: &str,
    now: SystemTime,
) -> Result<(), VerifyError> {
    let (Some(created), Some(valid_for)) = (sig.created(), sig.signature_expiration_time()) else {
        return Ok(());
    };
    if valid_for.as_secs() == 0 {
        return Ok(());
    }
    let expired =
        key::system_time(created) + std::time::Duration::from_secs(u64::from(valid_for.as_secs()));
    if expired <= now {
        return Err(VerifyError::SignatureExpired {
            name: name.to_string(),
            signer: signer.to_string(),
            expired: humantime::format_rfc3339_seconds(expired).to_string(),
        });
    }
    Ok(())
}

/// Passes reads through and keeps the first I/O error, so that a read failure is not
/// mistaken for a bad signature.
struct ErrorKeepingReader<R> {
    inner: R,
    error: Option<io::Error>,
}

impl<R: Read> ErrorKeepingReader<R> {
    fn new(inner: R) -> Self {
        ErrorKeepingReader { inner, error: None }
    }
}

impl<R: Read> Read for ErrorKeepingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.error.get_or_insert(e);
                Err(copy)
            }
        }
    }
}

#[cfg(test)]
mod tests;
