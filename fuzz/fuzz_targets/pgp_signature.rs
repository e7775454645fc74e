//! OpenPGP: detached signatures and public keys as the trust store reads them
//! (`trust::Keystore::verify` and `Keystore::inspect`). Every input must end in an
//! answer (verified or an error), never a panic.
//!
//! The first byte picks what the rest is:
//! - `0`: an armored signature, verified over the fixed data against a keystore that
//!   trusts the fixture keys (an Ed25519 key for the prefix `example.com`, an RSA key
//!   as a root key, and a key with an Ed25519 signing subkey for `example.com/fuzz`);
//! - `1`: a binary signature, armored by the target, then as `0`;
//! - `2`: an armored public key: inspected, and if it is accepted, trusted as a root
//!   key of an otherwise empty keystore and used to verify the fixture signatures;
//! - `3`: a binary public key, armored by the target, then as `2`.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use stage0::image::trust::{Keystore, TrustScope};

const NAME: &str = "example.com/fuzz";
const DATA: &[u8] = include_bytes!("../fixtures/signed-data");
const SIGNATURES: &[&[u8]] = &[
    include_bytes!("../fixtures/ed.sig.asc"),
    include_bytes!("../fixtures/ed-text.sig.asc"),
    include_bytes!("../fixtures/rsa.sig.asc"),
    include_bytes!("../fixtures/sub.sig.asc"),
];

struct Stores {
    _dir: tempfile::TempDir,
    /// Trusts the three fixture keys.
    fixture: Keystore,
    /// Empty but for the key under test (`scratch_local/trustedkeys/root.d`).
    scratch: Keystore,
}

fn stores() -> &'static Stores {
    static STORES: OnceLock<Stores> = OnceLock::new();
    STORES.get_or_init(|| {
        let dir = rkt_fuzz::scratch_dir("pgp_signature");
        let p = dir.path();
        let fixture = Keystore::new(&p.join("local"), &p.join("system"));
        let prefix = |s: &str| TrustScope::Prefix(s.to_string());
        for (key, scope) in [
            (
                &include_bytes!("../fixtures/ed.pub.asc")[..],
                prefix("example.com"),
            ),
            (
                &include_bytes!("../fixtures/rsa.pub.asc")[..],
                TrustScope::Root,
            ),
            (&include_bytes!("../fixtures/sub.pub.asc")[..], prefix(NAME)),
        ] {
            fixture.add(key, &scope).expect("trust a fixture key");
        }
        for sig in SIGNATURES {
            fixture
                .verify(NAME, DATA, sig)
                .expect("a fixture signature verifies");
        }
        let scratch = Keystore::new(&p.join("scratch_local"), &p.join("scratch_system"));
        Stores {
            _dir: dir,
            fixture,
            scratch,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let s = stores();
    match mode % 4 {
        0 => {
            let _ = s.fixture.verify(NAME, DATA, rest);
        }
        1 => {
            let armored = rkt_fuzz::armor("SIGNATURE", rest);
            let _ = s.fixture.verify(NAME, DATA, &armored);
        }
        _ => {
            let armored;
            let key = if mode % 4 == 2 {
                rest
            } else {
                armored = rkt_fuzz::armor("PUBLIC KEY BLOCK", rest);
                &armored
            };
            if let Ok(info) = Keystore::inspect(key) {
                assert!(!info.fingerprint.is_empty());
                let (_, path) = s
                    .scratch
                    .add(key, &TrustScope::Root)
                    .expect("an inspected key can be trusted");
                for sig in SIGNATURES {
                    let _ = s.scratch.verify(NAME, DATA, sig);
                }
                remove(&path);
            }
        }
    }
});

fn remove(path: &Path) {
    std::fs::remove_file(path).expect("remove the trusted key");
}
