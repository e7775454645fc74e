//! Drive the real `gpg` in a throwaway home directory: make keys, export them, sign.
//!
//! ```no_run
//! use e2e::gpg::GpgHome;
//! let home = GpgHome::new();
//! let fpr = home.gen_key("Test <t@example.com>", "ed25519");
//! let public_key = home.export_armored(&fpr);
//! std::fs::write(home.path().join("data"), b"payload").unwrap();
//! let sig = home.sign_detached_armored(&fpr, &home.path().join("data"));
//! # let _ = (public_key, sig);
//! ```
//!
//! Every command runs with `--batch --pinentry-mode loopback --passphrase ''`, so keys
//! have no passphrase and nothing ever prompts. The home directory (and the gpg-agent
//! that gpg starts for it) goes away when the [`GpgHome`] is dropped.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A temporary `GNUPGHOME`.
pub struct GpgHome {
    dir: tempfile::TempDir,
}

/// The fingerprints of one key as `gpg --with-colons --fingerprint` lists them
/// (lower-case hex, no spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprints {
    pub primary: String,
    pub subkeys: Vec<String>,
    /// User ids as gpg prints them (`uid` records, field 10).
    pub user_ids: Vec<String>,
}

impl Default for GpgHome {
    fn default() -> Self {
        Self::new()
    }
}

impl GpgHome {
    /// A fresh, empty home directory (mode 0700, as gpg wants).
    pub fn new() -> Self {
        // Short prefix: the agent's socket path must fit in sun_path (108 bytes).
        let dir = tempfile::Builder::new()
            .prefix("gpg-")
            .tempdir()
            .expect("create temporary GNUPGHOME");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod GNUPGHOME 0700");
        GpgHome { dir }
    }

    /// The home directory; tests may keep their own files in it too.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A `gpg` command for this home with the non-interactive flags set.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("gpg");
        cmd.arg("--homedir")
            .arg(self.path())
            .args([
                "--batch",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .env("GNUPGHOME", self.path())
            .stdin(Stdio::null());
        cmd
    }

    /// Run `gpg ARGS`, require success and return its output.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(args);
        let shown = format!("{cmd:?}");
        let out = cmd.output().expect("spawn gpg (is gnupg installed?)");
        assert!(
            out.status.success(),
            "{shown} failed: {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `gpg --quick-gen-key UID ALGO sign never`; returns the new primary key's
    /// fingerprint. `algo` is what gpg accepts there: `rsa3072`, `ed25519`, ...
    pub fn gen_key(&self, uid: &str, algo: &str) -> String {
        self.quick_gen(uid, algo, "sign", "never", None)
    }

    /// Like [`GpgHome::gen_key`] with an expiry (`1d`, `2y`, ...) and, if given, gpg's
    /// `--faked-system-time` (e.g. `20200101T000000!`) so the key can be made in the past.
    pub fn gen_key_expiring(
        &self,
        uid: &str,
        algo: &str,
        expire: &str,
        faked_time: Option<&str>,
    ) -> String {
        self.quick_gen(uid, algo, "sign", expire, faked_time)
    }

    /// A key whose primary may only certify, with an Ed25519 subkey that signs:
    /// `--quick-gen-key UID ed25519 cert never` then `--quick-add-key FPR ed25519 sign never`.
    /// Returns `(primary fingerprint, signing subkey fingerprint)`.
    pub fn gen_key_with_signing_subkey(&self, uid: &str) -> (String, String) {
        let primary = self.quick_gen(uid, "ed25519", "cert", "never", None);
        let out = self.run([
            "--status-fd",
            "1",
            "--quick-add-key",
            &primary,
            "ed25519",
            "sign",
            "never",
        ]);
        let sub = key_created(&out.stdout).expect("KEY_CREATED status after --quick-add-key");
        assert!(
            self.fingerprints(&primary).subkeys.contains(&sub),
            "new subkey {sub} not listed under {primary}"
        );
        (primary, sub)
    }

    fn quick_gen(
        &self,
        uid: &str,
        algo: &str,
        usage: &str,
        expire: &str,
        faked_time: Option<&str>,
    ) -> String {
        let mut args: Vec<&str> = Vec::new();
        if let Some(t) = faked_time {
            args.extend(["--faked-system-time", t]);
        }
        args.extend([
            "--status-fd",
            "1",
            "--quick-gen-key",
            uid,
            algo,
            usage,
            expire,
        ]);
        let out = self.run(args);
        key_created(&out.stdout).expect("KEY_CREATED status after --quick-gen-key")
    }

    /// Fingerprints and user ids of the key `fpr`, parsed from
    /// `gpg --with-colons --fingerprint --fingerprint FPR`.
    pub fn fingerprints(&self, fpr: &str) -> Fingerprints {
        let out = self.run([
            "--with-colons",
            "--fingerprint",
            "--fingerprint",
            "--list-keys",
            fpr,
        ]);
        parse_colons(&String::from_utf8_lossy(&out.stdout))
    }

    /// `gpg --armor --export FPR`.
    pub fn export_armored(&self, fpr: &str) -> Vec<u8> {
        let out = self.run(["--armor", "--export", fpr]);
        assert!(
            out.stdout
                .starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"),
            "gpg exported no key for {fpr}"
        );
        out.stdout
    }

    /// `gpg --armor --export-secret-keys FPR`: the secret key, unprotected (keys made
    /// here have an empty passphrase). For tests that sign with another OpenPGP library.
    pub fn export_secret_armored(&self, fpr: &str) -> Vec<u8> {
        let out = self.run(["--armor", "--export-secret-keys", fpr]);
        assert!(
            out.stdout
                .starts_with(b"-----BEGIN PGP PRIVATE KEY BLOCK-----"),
            "gpg exported no secret key for {fpr}"
        );
        out.stdout
    }

    /// `gpg --armor --detach-sign -u FPR! --output - DATA`: an armored detached
    /// signature made by exactly the key or subkey `fpr`.
    pub fn sign_detached_armored(&self, fpr: &str, data: &Path) -> Vec<u8> {
        self.sign_detached_armored_at(fpr, data, None)
    }

    /// Like [`GpgHome::sign_detached_armored`], with gpg's `--faked-system-time`.
    pub fn sign_detached_armored_at(
        &self,
        fpr: &str,
        data: &Path,
        faked_time: Option<&str>,
    ) -> Vec<u8> {
        let user = format!("{fpr}!");
        let mut cmd: Vec<&OsStr> = Vec::new();
        if let Some(t) = faked_time {
            cmd.extend([OsStr::new("--faked-system-time"), OsStr::new(t)]);
        }
        cmd.extend(
            [
                "--armor",
                "--detach-sign",
                "--local-user",
                &user,
                "--output",
                "-",
            ]
            .map(OsStr::new),
        );
        cmd.push(data.as_os_str());
        let out = self.run(cmd);
        assert!(
            out.stdout.starts_with(b"-----BEGIN PGP SIGNATURE-----"),
            "gpg wrote no armored signature"
        );
        out.stdout
    }

    /// Revoke the key `fpr` with the revocation certificate gpg made when it generated
    /// the key (`openpgp-revocs.d/FPR.rev`); a later export carries the revocation.
    pub fn revoke_key(&self, fpr: &str) {
        let rev = self
            .path()
            .join("openpgp-revocs.d")
            .join(format!("{}.rev", fpr.to_uppercase()));
        let text = std::fs::read_to_string(&rev)
            .unwrap_or_else(|e| panic!("read revocation certificate {}: {e}", rev.display()));
        // gpg prefixes the armor line with ':' so the file cannot be imported by accident.
        let cert = text.replace(
            ":-----BEGIN PGP PUBLIC KEY BLOCK-----",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----",
        );
        let file = self.path().join(format!("{fpr}.rev.asc"));
        std::fs::write(&file, cert).expect("write revocation certificate");
        self.run([OsStr::new("--import"), file.as_os_str()]);
    }

    /// `signer` certifies every user id of `fpr` (a third-party signature, as a web of
    /// trust would add): `gpg -u SIGNER! --quick-sign-key FPR`.
    pub fn certify(&self, signer: &str, fpr: &str) {
        let user = format!("{signer}!");
        self.run(["--local-user", &user, "--quick-sign-key", fpr]);
    }

    /// Stop the gpg-agent serving this home (if one runs).
    fn kill_agent(&self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.path())
            .args(["--kill", "gpg-agent"])
            .env("GNUPGHOME", self.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for GpgHome {
    fn drop(&mut self) {
        // Only this home's agent: gpgconf finds it by the socket in the home directory.
        self.kill_agent();
    }
}

/// The fingerprint from a `[GNUPG:] KEY_CREATED <type> <fpr>` status line.
fn key_created(status: &[u8]) -> Option<String> {
    String::from_utf8_lossy(status).lines().find_map(|l| {
        let rest = l.strip_prefix("[GNUPG:] KEY_CREATED ")?;
        let fpr = rest.split_whitespace().nth(1)?;
        Some(fpr.to_ascii_lowercase())
    })
}

/// Parse gpg's `--with-colons` listing of one key.
fn parse_colons(listing: &str) -> Fingerprints {
    let mut primary = None;
    let mut subkeys = Vec::new();
    let mut user_ids = Vec::new();
    // Which record the next `fpr` line belongs to.
    let mut last = "";
    for line in listing.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.first().copied() {
            Some("pub") => last = "pub",
            Some("sub") => last = "sub",
            Some("uid") => {
                if let Some(uid) = fields.get(9) {
                    user_ids.push(unescape_colons(uid));
                }
                last = "uid";
            }
            Some("fpr") => {
                let fpr = fields.get(9).map(|f| f.to_ascii_lowercase());
                match (last, fpr) {
                    ("pub", Some(f)) if primary.is_none() => primary = Some(f),
                    ("sub", Some(f)) => subkeys.push(f),
                    _ => {}
                }
                last = "";
            }
            _ => {}
        }
    }
    Fingerprints {
        primary: primary.expect("gpg listed no primary key fingerprint"),
        subkeys,
        user_ids,
    }
}

/// gpg escapes bytes in colon listings as `\xHH`.
fn unescape_colons(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            if let Some(v) = s
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Write `data` to `dir/name` and return the path (handy for signing).
pub fn write_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_colon_listing() {
        let listing = "tru::1:1700000000:0:3:1:5\n\
pub:u:255:22:AAAA:1700000000:::u:::cC:::::ed25519:::0:\n\
fpr:::::::::ABCDEF0123:\n\
uid:u::::1700000000::HASH::Test \\x3ca\\x3e <t@example.com>::::::::::0:\n\
sub:u:255:22:BBBB:1700000000::::::s:::::ed25519::\n\
fpr:::::::::1234ABCD:\n";
        let f = parse_colons(listing);
        assert_eq!(f.primary, "abcdef0123");
        assert_eq!(f.subkeys, vec!["1234abcd".to_string()]);
        assert_eq!(f.user_ids, vec!["Test <a> <t@example.com>".to_string()]);
    }

    #[test]
    fn key_created_status() {
        let s = b"[GNUPG:] PROGRESS x\n[GNUPG:] KEY_CREATED P 0123ABCD\n";
        assert_eq!(key_created(s).as_deref(), Some("0123abcd"));
        assert_eq!(key_created(b"nothing"), None);
    }
}
