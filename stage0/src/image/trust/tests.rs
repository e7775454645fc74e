//! Trust store and verification against keys and signatures made by the real `gpg`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use e2e::gpg::{write_file, Fingerprints, GpgHome};

use super::*;

/// One gpg key with a detached signature over [`Fixture::data`].
struct Key {
    /// Primary key fingerprint as gpg reports it.
    fpr: String,
    /// The (sub)key gpg signed with.
    signer: String,
    armored: Vec<u8>,
    sig: Vec<u8>,
    listed: Fingerprints,
}

/// Keys and signatures shared by all tests: gpg runs once per test process. The gpg
/// home (and its agent) is gone once this is built; only bytes are kept.
struct Fixture {
    data: Vec<u8>,
    rsa: Key,
    ed: Key,
    sub: Key,
    /// `rsa`'s signature over other data.
    rsa_sig_other: Vec<u8>,
    /// Made in 2020, valid for one day; its signature is from that day.
    expired: Key,
    /// Revoked by its own revocation certificate (exported after revoking).
    revoked: Key,
    /// An Ed25519 key whose user id `rsa` has certified.
    certified: Key,
    /// `gpg --armor --export RSA ED`: two keys in one armor block.
    two_keys: Vec<u8>,
    /// `ed`'s secret key, for signatures gpg would not make.
    ed_secret: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let start = Instant::now();
        let home = GpgHome::new();
        // Enough data to take several reads, not all one byte value.
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let data_path = write_file(home.path(), "image.aci", &data);
        let other_path = write_file(home.path(), "other.aci", b"some other image");

        let make = |fpr: String, signer: String| {
            let sig = home.sign_detached_armored(&signer, &data_path);
            Key {
                armored: home.export_armored(&fpr),
                listed: home.fingerprints(&fpr),
                fpr,
                signer,
                sig,
            }
        };
        let rsa_fpr = home.gen_key("RSA Test <rsa@example.com>", "rsa3072");
        let rsa = make(rsa_fpr.clone(), rsa_fpr);
        let ed_fpr = home.gen_key("Ed Test <ed@example.com>", "ed25519");
        let ed = make(ed_fpr.clone(), ed_fpr);
        let (sub_primary, sub_signer) =
            home.gen_key_with_signing_subkey("Sub Test <sub@example.com>");
        let sub = make(sub_primary, sub_signer);
        let rsa_sig_other = home.sign_detached_armored(&rsa.fpr, &other_path);

        let old_fpr = home.gen_key_expiring(
            "Old Test <old@example.com>",
            "ed25519",
            "1d",
            Some("20200101T000000!"),
        );
        let expired = Key {
            sig: home.sign_detached_armored_at(&old_fpr, &data_path, Some("20200101T120000!")),
            armored: home.export_armored(&old_fpr),
            listed: home.fingerprints(&old_fpr),
            signer: old_fpr.clone(),
            fpr: old_fpr,
        };

        let rev_fpr = home.gen_key("Revoked Test <revoked@example.com>", "ed25519");
        let rev_sig = home.sign_detached_armored(&rev_fpr, &data_path);
        home.revoke_key(&rev_fpr);
        let revoked = Key {
            sig: rev_sig,
            armored: home.export_armored(&rev_fpr),
            listed: home.fingerprints(&rev_fpr),
            signer: rev_fpr.clone(),
            fpr: rev_fpr,
        };

        let friend_fpr = home.gen_key("Friend Test <friend@example.com>", "ed25519");
        home.certify(&rsa.fpr, &friend_fpr);
        let certified = make(friend_fpr.clone(), friend_fpr);

        let two_keys = home
            .run(["--armor", "--export", rsa.fpr.as_str(), ed.fpr.as_str()])
            .stdout;
        let ed_secret = home.export_secret_armored(&ed.fpr);
        drop(home);
        eprintln!(
            "trust test fixture: gpg keys and signatures made in {:?}",
            start.elapsed()
        );
        Fixture {
            data,
            rsa,
            ed,
            sub,
            rsa_sig_other,
            expired,
            revoked,
            certified,
            two_keys,
            ed_secret,
        }
    })
}

/// A keystore over fresh local and system config dirs.
struct Store {
    _dir: tempfile::TempDir,
    local: PathBuf,
    system: PathBuf,
    ks: Keystore,
}

fn store() -> Store {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("etc-rkt");
    let system = dir.path().join("usr-lib-rkt");
    let ks = Keystore::new(&local, &system);
    Store {
        _dir: dir,
        local,
        system,
        ks,
    }
}

fn prefix(p: &str) -> TrustScope {
    TrustScope::Prefix(p.to_string())
}

impl Store {
    fn trust(&self, key: &Key, scope: TrustScope) -> PathBuf {
        self.ks.add(&key.armored, &scope).expect("add key").1
    }
    fn verify(&self, name: &str, data: &[u8], sig: &[u8]) -> Result<Verified, VerifyError> {
        self.ks.verify(name, data, sig)
    }
}

#[test]
fn good_rsa_signature_verifies() {
    let f = fixture();
    let s = store();
    s.trust(&f.rsa, prefix("example.com/app"));
    let v = s
        .verify("example.com/app", &f.data, &f.rsa.sig)
        .expect("valid RSA signature");
    assert_eq!(v.fingerprint, f.rsa.fpr);
    assert_eq!(v.signer, f.rsa.fpr);
    assert_eq!(v.scope, prefix("example.com/app"));
    assert_eq!(v.user_ids, vec!["RSA Test <rsa@example.com>".to_string()]);
}

#[test]
fn good_ed25519_signature_verifies() {
    let f = fixture();
    let s = store();
    s.trust(&f.ed, prefix("example.com/app"));
    let v = s
        .verify("example.com/app", &f.data, &f.ed.sig)
        .expect("valid Ed25519 signature");
    assert_eq!(v.fingerprint, f.ed.fpr);
    assert_eq!(v.signer, f.ed.fpr);
}

#[test]
fn signature_by_signing_subkey_verifies() {
    let f = fixture();
    assert_ne!(f.sub.fpr, f.sub.signer, "fixture must sign with the subkey");
    let s = store();
    s.trust(&f.sub, prefix("example.com"));
    let v = s
        .verify("example.com/app", &f.data, &f.sub.sig)
        .expect("valid subkey signature");
    assert_eq!(v.fingerprint, f.sub.fpr, "reports the trusted primary key");
    assert_eq!(v.signer, f.sub.signer, "reports the signing subkey");
    assert_eq!(v.user_ids, vec!["Sub Test <sub@example.com>".to_string()]);
}

#[test]
fn tampered_data_is_a_bad_signature() {
    let f = fixture();
    let s = store();
    s.trust(&f.rsa, prefix("example.com"));
    s.trust(&f.sub, prefix("example.com"));
    for key in [&f.rsa, &f.sub] {
        let mut data = f.data.clone();
        data[100_000] ^= 0x01;
        match s.verify("example.com/app", &data, &key.sig) {
            Err(VerifyError::BadSignature { name, signer }) => {
                assert_eq!(name, "example.com/app");
                assert_eq!(signer, key.signer);
            }
            other => panic!("expected BadSignature, got {other:?}"),
        }
        // Truncated data too.
        let short = &f.data[..f.data.len() - 1];
        assert!(matches!(
            s.verify("example.com/app", short, &key.sig),
            Err(VerifyError::BadSignature { .. })
        ));
    }
}

#[test]
fn signature_over_other_data_is_a_bad_signature() {
    let f = fixture();
    let s = store();
    s.trust(&f.rsa, prefix("example.com"));
    let err = s
        .verify("example.com/app", &f.data, &f.rsa_sig_other)
        .expect_err("signature of other data must not verify");
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("example.com/app") && msg.contains(&f.rsa.fpr),
        "{msg}"
    );
}

#[test]
fn tampered_signature_never_verifies() {
    let f = fixture();
    for key in [&f.rsa, &f.ed] {
        let s = store();
        s.trust(key, prefix("example.com"));
        let text = String::from_utf8(key.sig.clone()).expect("armor is text");
        // The base64 body: lines after the blank line, before the checksum/end line.
        let body_start = text.find("\n\n").expect("armor blank line") + 2;
        let body_end = text
            .rfind("\n=")
            .unwrap_or_else(|| text.rfind("\n-----END").expect("end"));
        let mut tried = 0;
        // About 40 positions spread over the whole body (RSA checks are slow in debug builds).
        let step = ((body_end - body_start) / 40).max(1);
        for pos in (body_start..body_end).step_by(step) {
            let c = text.as_bytes()[pos];
            if !c.is_ascii_alphanumeric() {
                continue;
            }
            let flipped = if c == b'A' { b'B' } else { b'A' };
            let mut bad = key.sig.clone();
            bad[pos] = flipped;
            if only_unhashed_area_differs(&key.sig, &bad) {
                // The unhashed subpackets (e.g. the issuer key id hint) are by design not
                // covered by the signature.
                continue;
            }
            match s.verify("example.com/app", &f.data, &bad) {
                Err(
                    VerifyError::BadSignature { .. }
                    | VerifyError::MalformedSignature { .. }
                    | VerifyError::UntrustedSigner { .. },
                ) => {}
                other => panic!("flipping byte {pos} gave {other:?}"),
            }
            tried += 1;
        }
        assert!(tried > 10, "too few positions tried: {tried}");
    }
}

/// Whether two armored signatures parse and differ only in their unhashed subpackets.
fn only_unhashed_area_differs(a: &[u8], b: &[u8]) -> bool {
    let strip = |armored: &[u8]| {
        let (mut sig, _) = DetachedSignature::from_armor_single(armored).ok()?;
        while sig.signature.unhashed_subpacket_remove(0).is_ok() {}
        Some(sig)
    };
    match (strip(a), strip(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

#[test]
fn key_trusted_for_another_prefix_is_not_trusted() {
    let f = fixture();
    let s = store();
    s.trust(&f.rsa, prefix("other.org"));
    s.trust(&f.ed, prefix("example.com"));
    let err = s
        .verify("example.com/app", &f.data, &f.rsa.sig)
        .expect_err("key of another prefix must not be accepted");
    match &err {
        VerifyError::UntrustedSigner { name, issuer } => {
            assert_eq!(name, "example.com/app");
            assert_eq!(issuer, &f.rsa.fpr);
        }
        other => panic!("expected UntrustedSigner, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("rkt trust --prefix=example.com/app"),
        "{err}"
    );
    // The same signature is fine for the prefix the key is trusted for.
    s.verify("other.org/app", &f.data, &f.rsa.sig)
        .expect("verifies under its own prefix");
}

#[test]
fn no_trusted_keys_says_how_to_trust_one() {
    let f = fixture();
    let s = store();
    let err = s
        .verify("example.com/app", &f.data, &f.rsa.sig)
        .expect_err("empty store");
    assert!(matches!(&err, VerifyError::NoTrustedKeys { name } if name == "example.com/app"));
    assert!(
        err.to_string()
            .contains("rkt trust --prefix=example.com/app"),
        "{err}"
    );

    // Keys for unrelated prefixes, or for a name that is only a string prefix
    // (example.co is not a parent of example.com), do not count.
    s.trust(&f.rsa, prefix("other.org"));
    s.trust(&f.rsa, prefix("example.co"));
    s.trust(&f.rsa, prefix("example.com/application"));
    let err = s
        .verify("example.com/app", &f.data, &f.rsa.sig)
        .expect_err("no applicable key");
    assert!(matches!(err, VerifyError::NoTrustedKeys { .. }), "{err:?}");
}

#[test]
fn root_key_verifies_any_image() {
    let f = fixture();
    let s = store();
    let path = s.trust(&f.rsa, TrustScope::Root);
    assert_eq!(path, s.local.join("trustedkeys/root.d").join(&f.rsa.fpr));
    for name in ["example.com/app", "coreos.com/etcd", "single"] {
        let v = s
            .verify(name, &f.data, &f.rsa.sig)
            .expect("root key verifies");
        assert_eq!(v.scope, TrustScope::Root);
        assert_eq!(v.fingerprint, f.rsa.fpr);
    }
}

#[test]
fn parent_prefix_trust_applies_to_sub_names() {
    let f = fixture();
    let s = store();
    s.trust(&f.ed, prefix("example.com"));
    let v = s
        .verify("example.com/app/x", &f.data, &f.ed.sig)
        .expect("parent prefix key verifies");
    assert_eq!(v.scope, prefix("example.com"));

    // The most specific entry is reported when a key is trusted at several levels.
    s.trust(&f.ed, prefix("example.com/app"));
    s.trust(&f.ed, TrustScope::Root);
    let v = s
        .verify("example.com/app/x", &f.data, &f.ed.sig)
        .expect("verifies");
    assert_eq!(v.scope, prefix("example.com/app"));
}

#[test]
fn system_keys_apply_and_an_empty_local_file_masks_them() {
    let f = fixture();
    let s = store();
    // A vendor key in the system config.
    let vendor = Keystore::new(&s.system, &s.local.join("unused"));
    let (_, sys_path) = vendor
        .add(&f.rsa.armored, &prefix("example.com"))
        .expect("add system key");
    assert!(sys_path.starts_with(&s.system));
    let v = s
        .verify("example.com/app", &f.data, &f.rsa.sig)
        .expect("system key verifies");
    assert_eq!(v.scope, prefix("example.com"));
    assert_eq!(s.ks.list().expect("list").len(), 1);

    // An empty local file with the same prefix and fingerprint masks it.
    let mask = s
        .local
        .join("trustedkeys/prefix.d/example.com")
        .join(&f.rsa.fpr);
    std::fs::create_dir_all(mask.parent().expect("parent")).expect("mkdir");
    std::fs::write(&mask, b"").expect("write mask");
    let err = s
        .verify("example.com/app", &f.data, &f.rsa.sig)
        .expect_err("masked key must not verify");
    assert!(matches!(err, VerifyError::NoTrustedKeys { .. }), "{err:?}");
    assert!(
        s.ks.list().expect("list").is_empty(),
        "masked key is not listed"
    );
    assert!(s
        .ks
        .trusted_for("example.com/app")
        .expect("trusted_for")
        .is_empty());

    // Masking is per prefix: the same key as a system root key still applies...
    vendor
        .add(&f.rsa.armored, &TrustScope::Root)
        .expect("add system root key");
    let v = s
        .verify("example.com/app", &f.data, &f.rsa.sig)
        .expect("root entry is not masked");
    assert_eq!(v.scope, TrustScope::Root);
    // ...until it is masked too.
    let root_mask = s.local.join("trustedkeys/root.d").join(&f.rsa.fpr);
    std::fs::create_dir_all(root_mask.parent().expect("parent")).expect("mkdir");
    std::fs::write(&root_mask, b"").expect("write mask");
    assert!(matches!(
        s.verify("example.com/app", &f.data, &f.rsa.sig),
        Err(VerifyError::NoTrustedKeys { .. })
    ));
}

#[test]
fn masking_one_key_leaves_another_signer_untrusted() {
    let f = fixture();
    let s = store();
    let vendor = Keystore::new(&s.system, &s.local.join("unused"));
    vendor
        .add(&f.rsa.armored, &prefix("example.com"))
        .expect("add");
    s.trust(&f.ed, prefix("example.com"));
    let mask = s
        .local
        .join("trustedkeys/prefix.d/example.com")
        .join(&f.rsa.fpr);
    std::fs::write(&mask, b"").expect("write mask");
    let err = s
        .verify("example.com/app", &f.data, &f.rsa.sig)
        .expect_err("masked");
    assert!(
        matches!(err, VerifyError::UntrustedSigner { .. }),
        "{err:?}"
    );
    s.verify("example.com/app", &f.data, &f.ed.sig)
        .expect("the other key still verifies");
}

#[test]
fn inspect_agrees_with_gpg() {
    let f = fixture();
    let rsa = Keystore::inspect(&f.rsa.armored).expect("inspect rsa");
    assert_eq!(rsa.fingerprint, f.rsa.listed.primary);
    assert_eq!(rsa.user_ids, f.rsa.listed.user_ids);
    assert_eq!(rsa.algorithm, "RSA 3072");
    assert!(rsa.subkeys.is_empty(), "{:?}", rsa.subkeys);

    let ed = Keystore::inspect(&f.ed.armored).expect("inspect ed25519");
    assert_eq!(ed.fingerprint, f.ed.listed.primary);
    assert_eq!(ed.user_ids, vec!["Ed Test <ed@example.com>".to_string()]);
    assert_eq!(ed.algorithm, "EdDSA (Ed25519)");

    let sub = Keystore::inspect(&f.sub.armored).expect("inspect subkey key");
    assert_eq!(sub.fingerprint, f.sub.listed.primary);
    assert_eq!(sub.subkeys, f.sub.listed.subkeys);
    assert!(sub.subkeys.contains(&f.sub.signer));
    assert!(sub
        .fingerprint
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(sub.fingerprint.len(), 40);
}

#[test]
fn add_writes_the_key_where_rkt_keeps_it() {
    let f = fixture();
    let s = store();
    let (info, path) =
        s.ks.add(&f.rsa.armored, &prefix("example.com/app"))
            .expect("add");
    assert_eq!(info.fingerprint, f.rsa.fpr);
    let want = s
        .local
        .join("trustedkeys/prefix.d/example.com/app")
        .join(&f.rsa.fpr);
    assert_eq!(path, want);
    assert_eq!(std::fs::read(&path).expect("read key"), f.rsa.armored);
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let names: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temporary files left: {names:?}");

    // Adding again replaces the file in place.
    s.ks.add(&f.rsa.armored, &prefix("example.com/app"))
        .expect("add again");
    let (_, root_path) =
        s.ks.add(&f.ed.armored, &TrustScope::Root)
            .expect("add root");
    assert_eq!(
        root_path,
        s.local.join("trustedkeys/root.d").join(&f.ed.fpr)
    );

    s.ks.add(&f.sub.armored, &prefix("example.com"))
        .expect("add parent");
    let listed = s.ks.list().expect("list");
    let summary: Vec<(TrustScope, String, PathBuf)> = listed
        .into_iter()
        .map(|(scope, info, path)| (scope, info.fingerprint, path))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                prefix("example.com"),
                f.sub.fpr.clone(),
                s.local
                    .join("trustedkeys/prefix.d/example.com")
                    .join(&f.sub.fpr)
            ),
            (prefix("example.com/app"), f.rsa.fpr.clone(), want),
            (TrustScope::Root, f.ed.fpr.clone(), root_path),
        ]
    );
}

#[test]
fn add_rejects_invalid_prefixes() {
    let f = fixture();
    let s = store();
    for bad in [
        "",
        "Example.com",
        "../etc",
        "/abs",
        "a//b",
        "a/",
        "example.com/../x",
    ] {
        let err =
            s.ks.add(&f.rsa.armored, &prefix(bad))
                .expect_err("invalid prefix");
        assert!(
            matches!(err, TrustError::InvalidPrefix { .. }),
            "{bad}: {err:?}"
        );
    }
    assert!(!s.local.exists(), "nothing written for invalid prefixes");
    let err = s
        .verify("../x", &f.data, &f.rsa.sig)
        .expect_err("invalid name");
    assert!(matches!(err, VerifyError::InvalidName { .. }), "{err:?}");
}

#[test]
fn garbage_keys_are_refused() {
    let f = fixture();
    let not_key = |input: &[u8]| match Keystore::inspect(input) {
        Err(TrustError::NotAPublicKey { reason }) => reason,
        other => panic!("expected NotAPublicKey, got {other:?}"),
    };
    not_key(b"");
    not_key(b"hello, I am not a key");
    not_key(&f.rsa.sig);
    // A key block with a mangled body.
    let text = String::from_utf8(f.ed.armored.clone()).expect("text");
    let body_start = text.find("\n\n").expect("blank line") + 2;
    let mut cut = text[..body_start + 40].to_string();
    cut.push_str("\n-----END PGP PUBLIC KEY BLOCK-----\n");
    assert!(Keystore::inspect(cut.as_bytes()).is_err());
    let err = Keystore::inspect(&f.two_keys).expect_err("two keys");
    assert!(
        matches!(err, TrustError::MultipleKeys { count: 2 }),
        "{err:?}"
    );
    let s = store();
    assert!(s.ks.add(b"garbage", &TrustScope::Root).is_err());
    assert!(!s.local.exists(), "nothing written for garbage");
}

#[test]
fn garbage_signatures_are_malformed() {
    let f = fixture();
    let s = store();
    s.trust(&f.rsa, prefix("example.com"));
    let armor_only = b"-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n";
    for bad in [&b""[..], b"not a signature", &f.rsa.armored, armor_only] {
        match s.verify("example.com/app", &f.data, bad) {
            Err(VerifyError::MalformedSignature { name, reason }) => {
                assert_eq!(name, "example.com/app");
                assert!(!reason.is_empty());
            }
            other => panic!("expected MalformedSignature, got {other:?}"),
        }
    }
}

#[test]
fn revoked_key_is_refused() {
    let f = fixture();
    let err = Keystore::inspect(&f.revoked.armored).expect_err("revoked");
    assert!(
        matches!(&err, TrustError::Revoked { fingerprint } if *fingerprint == f.revoked.fpr),
        "{err:?}"
    );
    let s = store();
    assert!(matches!(
        s.ks.add(&f.revoked.armored, &prefix("example.com")),
        Err(TrustError::Revoked { .. })
    ));
    // A revoked key placed in the store by hand does not verify anything.
    let dir = s.local.join("trustedkeys/prefix.d/example.com");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join(&f.revoked.fpr);
    std::fs::write(&path, &f.revoked.armored).expect("write");
    match s.verify("example.com/app", &f.data, &f.revoked.sig) {
        Err(VerifyError::InvalidKey {
            path: p, source, ..
        }) => {
            assert_eq!(p, path);
            assert!(matches!(*source, TrustError::Revoked { .. }), "{source:?}");
        }
        other => panic!("expected InvalidKey, got {other:?}"),
    }
}

#[test]
fn expired_key_is_refused() {
    let f = fixture();
    let s = store();
    s.trust(&f.expired, prefix("example.com"));
    match s.verify("example.com/app", &f.data, &f.expired.sig) {
        Err(VerifyError::UnusableSigner { signer, reason, .. }) => {
            assert_eq!(signer, f.expired.fpr);
            assert!(reason.contains("expired on 2020-01-02"), "{reason}");
        }
        other => panic!("expected UnusableSigner, got {other:?}"),
    }
}

#[test]
fn third_party_certifications_do_not_break_a_key() {
    let f = fixture();
    // The export really carries the other key's certification.
    let (key, _) =
        pgp::composed::SignedPublicKey::from_armor_single(&f.certified.armored[..]).expect("parse");
    let sigs = &key.details.users[0].signatures;
    assert!(
        sigs.len() >= 2,
        "expected a third-party certification, got {}",
        sigs.len()
    );
    let info = Keystore::inspect(&f.certified.armored).expect("inspect certified key");
    assert_eq!(
        info.user_ids,
        vec!["Friend Test <friend@example.com>".to_string()]
    );
    let s = store();
    s.trust(&f.certified, prefix("example.com"));
    s.verify("example.com/app", &f.data, &f.certified.sig)
        .expect("certified key verifies");
}

#[test]
fn tampered_user_id_fails_the_self_signature() {
    let f = fixture();
    let (mut key, _) =
        pgp::composed::SignedPublicKey::from_armor_single(&f.ed.armored[..]).expect("parse");
    key.details.users[0].id = pgp::packet::UserId::from_str(
        pgp::types::PacketHeaderVersion::New,
        "Mallory <ed@example.com>",
    )
    .expect("user id");
    let armored = key
        .to_armored_bytes(pgp::composed::ArmorOptions::default())
        .expect("armor");
    match Keystore::inspect(&armored) {
        Err(TrustError::SelfSignature {
            fingerprint,
            reason,
        }) => {
            assert_eq!(fingerprint, f.ed.fpr);
            assert!(reason.contains("Mallory"), "{reason}");
        }
        other => panic!("expected SelfSignature, got {other:?}"),
    }
}

#[test]
fn key_file_must_be_named_by_its_fingerprint() {
    let f = fixture();
    let s = store();
    let dir = s.local.join("trustedkeys/prefix.d/example.com");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(&f.ed.fpr), &f.rsa.armored).expect("write");
    match s.verify("example.com/app", &f.data, &f.rsa.sig) {
        Err(VerifyError::InvalidKey { source, .. }) => {
            assert!(
                matches!(*source, TrustError::FingerprintMismatch { .. }),
                "{source:?}"
            )
        }
        other => panic!("expected InvalidKey, got {other:?}"),
    }
}

#[test]
fn unreadable_data_is_reported_as_such() {
    struct Failing(usize);
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(0);
            self.0 -= n;
            Ok(n)
        }
    }
    let f = fixture();
    let s = store();
    s.trust(&f.rsa, prefix("example.com"));
    match s.ks.verify("example.com/app", Failing(10_000), &f.rsa.sig) {
        Err(VerifyError::ReadData { name, source }) => {
            assert_eq!(name, "example.com/app");
            assert!(source.to_string().contains("disk on fire"));
        }
        other => panic!("expected ReadData, got {other:?}"),
    }
}

#[test]
fn unreadable_key_file_names_its_path() {
    let f = fixture();
    let s = store();
    let dir = s.local.join("trustedkeys/prefix.d/example.com");
    std::fs::create_dir_all(&dir).expect("mkdir");
    // A dangling symlink where a key should be: the error names it.
    let link = dir.join(&f.rsa.fpr);
    std::os::unix::fs::symlink(dir.join("missing"), &link).expect("symlink");
    match s.verify("example.com/app", &f.data, &f.rsa.sig) {
        Err(err @ VerifyError::ReadKey { .. }) => {
            assert!(
                err.to_string().contains(&link.display().to_string()),
                "{err}"
            );
            assert!(matches!(err, VerifyError::ReadKey { ref path, .. } if *path == link));
        }
        other => panic!("expected ReadKey naming the link, got {other:?}"),
    }
}

#[test]
fn scopes_walk_parent_prefixes_then_root() {
    assert_eq!(
        scopes_for("example.com/a/b"),
        vec![
            prefix("example.com/a/b"),
            prefix("example.com/a"),
            prefix("example.com"),
            TrustScope::Root
        ]
    );
    assert_eq!(
        scopes_for("single"),
        vec![prefix("single"), TrustScope::Root]
    );
}

/// Sign `data` with the fixture's Ed25519 secret key through rPGP, with exactly the
/// given subpackets (gpg always names the issuer by fingerprint; these do not).
fn sign_with_subpackets(
    data: &[u8],
    hashed: Vec<pgp::packet::Subpacket>,
    unhashed: Vec<pgp::packet::Subpacket>,
) -> Vec<u8> {
    use pgp::composed::{ArmorOptions, SignedSecretKey, SubpacketConfig};
    let (secret, _) =
        SignedSecretKey::from_armor_single(&fixture().ed_secret[..]).expect("parse secret key");
    let sig = DetachedSignature::sign_binary_data_with_subpackets(
        rand::thread_rng(),
        &secret.primary_key,
        &pgp::types::Password::empty(),
        pgp::crypto::hash::HashAlgorithm::Sha256,
        data,
        SubpacketConfig::UserDefined { hashed, unhashed },
    )
    .expect("sign");
    sig.to_armored_bytes(ArmorOptions::default())
        .expect("armor")
}

#[test]
fn signatures_naming_no_issuer_or_only_a_key_id_verify() {
    use pgp::packet::{Subpacket, SubpacketData};
    use pgp::types::{KeyDetails, Timestamp};
    let f = fixture();
    let created =
        Subpacket::regular(SubpacketData::SignatureCreationTime(Timestamp::now())).expect("sp");
    let (ed_key, _) =
        pgp::composed::SignedPublicKey::from_armor_single(&f.ed.armored[..]).expect("parse");
    let key_id =
        Subpacket::regular(SubpacketData::IssuerKeyId(ed_key.legacy_key_id())).expect("sp");
    let s = store();
    s.trust(&f.rsa, prefix("example.com"));
    s.trust(&f.ed, prefix("example.com"));

    // Only the (unprotected) key id names the signer.
    let by_id = sign_with_subpackets(&f.data, vec![created.clone()], vec![key_id]);
    let v = s
        .verify("example.com/app", &f.data, &by_id)
        .expect("key id only");
    assert_eq!(v.signer, f.ed.fpr);

    // No issuer at all: every trusted key is tried.
    let anonymous = sign_with_subpackets(&f.data, vec![created], vec![]);
    let v = s
        .verify("example.com/app", &f.data, &anonymous)
        .expect("no issuer");
    assert_eq!(v.fingerprint, f.ed.fpr);
    let mut other = f.data.clone();
    other[0] ^= 0xff;
    match s.verify("example.com/app", &other, &anonymous) {
        Err(VerifyError::UntrustedSigner { issuer, .. }) => {
            assert!(issuer.contains("names no key"), "{issuer}")
        }
        other => panic!("expected UntrustedSigner, got {other:?}"),
    }
    // ...and only trusted keys are tried.
    let only_rsa = store();
    only_rsa.trust(&f.rsa, prefix("example.com"));
    assert!(matches!(
        only_rsa.verify("example.com/app", &f.data, &anonymous),
        Err(VerifyError::UntrustedSigner { .. })
    ));
}
