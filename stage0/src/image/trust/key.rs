//! Parsing an armored OpenPGP public key and checking its self-signatures.
//!
//! We do not use the crate's `verify_bindings()`: it requires *every* signature on a user
//! id to be a valid self-signature, so a key that others have certified (as keys exported
//! from a real keyring often are) would be refused. Here third-party certifications are
//! ignored, each user id needs one valid self-signature, subkeys need a valid binding
//! from the primary (plus the subkey's back-signature when it can sign), and revocations
//! by the key itself are honoured.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pgp::composed::{Deserializable, SignedPublicKey};
use pgp::crypto::public_key::PublicKeyAlgorithm;
use pgp::packet::{self, Signature, SignatureType, SubpacketData};
use pgp::ser::Serialize;
use pgp::types::{
    EcdsaPublicParams, EddsaLegacyPublicParams, Fingerprint, KeyDetails, KeyId, PublicParams, Tag,
    Timestamp,
};

use super::{KeyInfo, TrustError};

const PUBLIC_KEY_HEADER: &[u8] = b"-----BEGIN PGP PUBLIC KEY BLOCK-----";
const PRIVATE_KEY_HEADER: &[u8] = b"-----BEGIN PGP PRIVATE KEY BLOCK-----";

/// A parsed public key whose self-signatures have been checked.
#[derive(Debug, Clone)]
pub(super) struct ValidKey {
    pub key: SignedPublicKey,
    pub info: KeyInfo,
    /// The primary key as a data signer.
    pub primary: SignerState,
    /// Every subkey that carries a valid binding from the primary.
    pub subkeys: Vec<SubkeyState>,
}

/// What decides whether a (sub)key may make data signatures.
#[derive(Debug, Clone)]
pub(super) struct SignerState {
    pub fingerprint: Fingerprint,
    pub key_id: KeyId,
    pub revoked: bool,
    /// `false` when the newest binding/self-signature states key flags without "sign".
    pub can_sign: bool,
    /// Set when a signing-capable subkey lacks a valid back-signature.
    pub binding_problem: Option<String>,
    pub expires: Option<SystemTime>,
}

#[derive(Debug, Clone)]
pub(super) struct SubkeyState {
    pub key: packet::PublicSubkey,
    pub state: SignerState,
}

impl SignerState {
    /// Why this key must not be trusted for a data signature now, if it must not.
    pub fn unusable_reason(&self, now: SystemTime) -> Option<String> {
        if self.revoked {
            return Some("it has been revoked by its owner".to_string());
        }
        if let Some(problem) = &self.binding_problem {
            return Some(problem.clone());
        }
        if !self.can_sign {
            return Some("it is not marked as a signing key".to_string());
        }
        match self.expires {
            Some(at) if at <= now => Some(format!(
                "it expired on {}",
                humantime::format_rfc3339_seconds(at)
            )),
            _ => None,
        }
    }
}

pub(super) fn hex_fingerprint(fp: &Fingerprint) -> String {
    hex::encode(fp.as_bytes())
}

pub(super) fn system_time(t: Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::from(t.as_secs()))
}

/// Whether `sig` names the key `fp`/`id` as its issuer. The issuer fingerprint decides
/// when present (a 64-bit key id can collide); a signature that names no issuer at all
/// could be from anyone, so it matches and its cryptographic check decides.
pub(super) fn issued_by(sig: &Signature, fp: &Fingerprint, id: &KeyId) -> bool {
    let fps = sig.issuer_fingerprint();
    if !fps.is_empty() {
        return fps.contains(&fp);
    }
    let ids = sig.issuer_key_id();
    ids.is_empty() || ids.contains(&id)
}

fn newest<'a>(sigs: impl Iterator<Item = &'a Signature>) -> Option<&'a Signature> {
    sigs.max_by_key(|s| s.created().map(|t| t.as_secs()).unwrap_or(0))
}

fn has_key_flags(sig: &Signature) -> bool {
    sig.config().is_some_and(|c| {
        c.hashed_subpackets()
            .any(|p| matches!(p.data, SubpacketData::KeyFlags(_)))
    })
}

/// Expiry from a key-expiration subpacket, counted from the key's creation.
fn expiry(sig: &Signature, created: Timestamp) -> Option<SystemTime> {
    match sig.key_expiration_time() {
        Some(d) if d.as_secs() > 0 => {
            Some(system_time(created) + Duration::from_secs(u64::from(d.as_secs())))
        }
        _ => None,
    }
}

/// Parse exactly one armored public key and check it.
pub(super) fn parse_armored(armored: &[u8]) -> Result<ValidKey, TrustError> {
    if contains(armored, PRIVATE_KEY_HEADER) {
        return Err(TrustError::SecretKey);
    }
    if !contains(armored, PUBLIC_KEY_HEADER) {
        return Err(TrustError::NotAPublicKey {
            reason: "no \"BEGIN PGP PUBLIC KEY BLOCK\" armor header found".to_string(),
        });
    }
    let (keys, _headers) =
        SignedPublicKey::from_armor_many(armored).map_err(|e| TrustError::NotAPublicKey {
            reason: e.to_string(),
        })?;
    let mut found = Vec::new();
    for key in keys {
        found.push(key.map_err(|e| TrustError::NotAPublicKey {
            reason: e.to_string(),
        })?);
    }
    let key = match found.len() {
        0 => {
            return Err(TrustError::NotAPublicKey {
                reason: "the armor holds no key".to_string(),
            })
        }
        1 => found.remove(0),
        count => return Err(TrustError::MultipleKeys { count }),
    };
    validate(key)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn validate(key: SignedPublicKey) -> Result<ValidKey, TrustError> {
    let primary = &key.primary_key;
    let fp = primary.fingerprint();
    let id = primary.legacy_key_id();
    let fingerprint = hex_fingerprint(&fp);
    let self_sig_error = |reason: String| TrustError::SelfSignature {
        fingerprint: fingerprint.clone(),
        reason,
    };

    // A valid revocation by the key itself: nobody should trust it any more.
    let revoked = key.details.revocation_signatures.iter().any(|sig| {
        sig.typ() == Some(SignatureType::KeyRevocation)
            && issued_by(sig, &fp, &id)
            && sig.verify_key(primary).is_ok()
    });
    if revoked {
        return Err(TrustError::Revoked { fingerprint });
    }

    // User ids: each needs a valid self-certification; the newest one decides
    // whether the user id is revoked.
    let mut user_ids = Vec::new();
    let mut binding_sigs: Vec<(bool, &Signature)> = Vec::new();
    let mut first_failure: Option<String> = None;
    for user in &key.details.users {
        let shown = String::from_utf8_lossy(user.id.id()).into_owned();
        let mut valid = Vec::new();
        for sig in user.signatures.iter().filter(|s| issued_by(s, &fp, &id)) {
            match sig.verify_certification(primary, Tag::UserId, &user.id) {
                Ok(()) => valid.push(sig),
                Err(e) => {
                    tracing::warn!(key = %fingerprint, user_id = %shown, error = %e,
                        "ignoring an invalid self-signature");
                    first_failure.get_or_insert_with(|| format!("user id \"{shown}\": {e}"));
                }
            }
        }
        match newest(valid.iter().copied()) {
            Some(sig) if sig.typ() == Some(SignatureType::CertRevocation) => {
                tracing::debug!(key = %fingerprint, user_id = %shown, "user id revoked");
            }
            Some(sig) => {
                user_ids.push(shown);
                binding_sigs.push((sig.is_primary(), sig));
            }
            None => {
                first_failure
                    .get_or_insert_with(|| format!("user id \"{shown}\" has no self-signature"));
            }
        }
    }
    // Direct-key self-signatures also bind key properties (and are all a key without
    // user ids has).
    for sig in key.details.direct_signatures.iter() {
        if sig.typ() == Some(SignatureType::Key) && issued_by(sig, &fp, &id) {
            match sig.verify_key(primary) {
                Ok(()) => binding_sigs.push((false, sig)),
                Err(e) => {
                    first_failure.get_or_insert_with(|| format!("direct-key signature: {e}"));
                }
            }
        }
    }
    if binding_sigs.is_empty() {
        return Err(self_sig_error(first_failure.unwrap_or_else(|| {
            "the key carries no self-signature".to_string()
        })));
    }
    // As gpg does: the primary user id's self-signature first, else the newest.
    let binding = newest(binding_sigs.iter().filter(|(p, _)| *p).map(|(_, s)| *s))
        .or_else(|| newest(binding_sigs.iter().map(|(_, s)| *s)));
    let primary_state = SignerState {
        fingerprint: fp.clone(),
        key_id: id,
        revoked: false,
        can_sign: binding.is_none_or(|b| !has_key_flags(b) || b.key_flags().sign()),
        binding_problem: None,
        expires: binding.and_then(|b| expiry(b, primary.created_at())),
    };

    let mut subkeys = Vec::new();
    for sub in &key.public_subkeys {
        let sub_fp = sub.key.fingerprint();
        let shown = hex_fingerprint(&sub_fp);
        let mut bindings = Vec::new();
        let mut revoked = false;
        for sig in sub.signatures.iter().filter(|s| issued_by(s, &fp, &id)) {
            if sig.verify_subkey_binding(primary, &sub.key).is_err() {
                tracing::warn!(key = %fingerprint, subkey = %shown,
                    "ignoring an invalid subkey binding signature");
                continue;
            }
            match sig.typ() {
                Some(SignatureType::SubkeyRevocation) => revoked = true,
                Some(SignatureType::SubkeyBinding) => bindings.push(sig),
                _ => {}
            }
        }
        let Some(binding) = newest(bindings.into_iter()) else {
            tracing::warn!(key = %fingerprint, subkey = %shown,
                "ignoring a subkey without a valid binding signature");
            continue;
        };
        let can_sign = !has_key_flags(binding) || binding.key_flags().sign();
        // A signing subkey must also sign the primary (the "back-signature"), or anyone
        // could attach someone else's signing key to their own certificate.
        let binding_problem = if can_sign {
            match binding.embedded_signature() {
                Some(back) => back
                    .verify_primary_key_binding(&sub.key, primary)
                    .err()
                    .map(|e| format!("its back-signature to the primary key is invalid: {e}")),
                None => Some("it has no back-signature to the primary key".to_string()),
            }
        } else {
            None
        };
        subkeys.push(SubkeyState {
            state: SignerState {
                fingerprint: sub_fp,
                key_id: sub.key.legacy_key_id(),
                revoked,
                can_sign,
                binding_problem,
                expires: expiry(binding, sub.key.created_at()),
            },
            key: sub.key.clone(),
        });
    }

    let info = KeyInfo {
        fingerprint,
        user_ids,
        algorithm: algorithm_name(primary.algorithm(), primary.public_params()),
        subkeys: subkeys
            .iter()
            .map(|s| hex_fingerprint(&s.state.fingerprint))
            .collect(),
    };
    Ok(ValidKey {
        primary: primary_state,
        subkeys,
        info,
        key,
    })
}

/// A readable algorithm name, as gpg would show it ("RSA 3072", "EdDSA (Ed25519)").
fn algorithm_name(alg: PublicKeyAlgorithm, params: &PublicParams) -> String {
    // MPI-encoded parameters start with the bit length of the first MPI (the modulus
    // for RSA, p for DSA).
    let leading_bits = |bytes: Result<Vec<u8>, _>| -> Option<u16> {
        bytes
            .ok()
            .and_then(|b: Vec<u8>| Some(u16::from_be_bytes([*b.first()?, *b.get(1)?])))
    };
    match params {
        PublicParams::RSA(p) => match leading_bits(p.to_bytes()) {
            Some(bits) => format!("RSA {bits}"),
            None => "RSA".to_string(),
        },
        PublicParams::DSA(_) => "DSA".to_string(),
        PublicParams::ECDSA(p) => match p {
            EcdsaPublicParams::P256 { .. } => "ECDSA (NIST P-256)".to_string(),
            EcdsaPublicParams::P384 { .. } => "ECDSA (NIST P-384)".to_string(),
            EcdsaPublicParams::P521 { .. } => "ECDSA (NIST P-521)".to_string(),
            EcdsaPublicParams::Secp256k1 { .. } => "ECDSA (secp256k1)".to_string(),
            EcdsaPublicParams::Unsupported { curve, .. } => format!("ECDSA ({})", curve.name()),
        },
        PublicParams::EdDSALegacy(p) => match p {
            EddsaLegacyPublicParams::Ed25519 { .. } => "EdDSA (Ed25519)".to_string(),
            EddsaLegacyPublicParams::Unsupported { curve, .. } => {
                format!("EdDSA ({})", curve.name())
            }
        },
        PublicParams::Ed25519(_) => "Ed25519".to_string(),
        PublicParams::Ed448(_) => "Ed448".to_string(),
        _ => format!("{alg:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_armor_headers() {
        assert!(contains(
            b"xx-----BEGIN PGP PUBLIC KEY BLOCK-----\n",
            PUBLIC_KEY_HEADER
        ));
        assert!(!contains(b"short", PUBLIC_KEY_HEADER));
    }

    #[test]
    fn refuses_private_keys_with_a_hint() {
        let err = parse_armored(b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxx\n").unwrap_err();
        assert!(matches!(err, TrustError::SecretKey), "{err}");
        assert!(err.to_string().contains("--export"), "{err}");
    }
}
