//! `--insecure-options`: which security checks the user switched off.

use std::fmt;
use std::str::FromStr;

/// The set of checks turned off by `--insecure-options=a,b,c` (as in rkt 1.x).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsecureOptions {
    /// Skip signature verification of images.
    pub image: bool,
    /// Skip TLS certificate verification.
    pub tls: bool,
    /// Allow plain `http://` for fetches and discovery.
    pub http: bool,
    /// Accept keys discovered over https without review (`pubkey`).
    pub pubkey: bool,
    /// Run-time relaxations (used by the pods work): capabilities, paths, seccomp.
    pub capabilities: bool,
    pub paths: bool,
    pub seccomp: bool,
    /// Let images' own isolators widen what their apps may do (capabilities beyond
    /// the default set, `no-new-privileges: false`).
    pub image_privileges: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown insecure option {0:?} (valid: none, image, tls, http, pubkey, capabilities, paths, seccomp, image-privileges, ondisk, all-fetch, all-run, all)")]
pub struct UnknownInsecureOption(pub String);

impl FromStr for InsecureOptions {
    type Err = UnknownInsecureOption;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut o = InsecureOptions::default();
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "none" => {}
                // Kept for compatibility with rkt, where it is ignored too.
                "ondisk" => {}
                "image" => o.image = true,
                "tls" => o.tls = true,
                "http" => o.http = true,
                "pubkey" => o.pubkey = true,
                "capabilities" => o.capabilities = true,
                "paths" => o.paths = true,
                "seccomp" => o.seccomp = true,
                "image-privileges" => o.image_privileges = true,
                "all-fetch" => {
                    o.image = true;
                    o.tls = true;
                    o.http = true;
                    o.pubkey = true;
                }
                "all-run" => {
                    o.capabilities = true;
                    o.paths = true;
                    o.seccomp = true;
                    o.image_privileges = true;
                }
                "all" => {
                    o = InsecureOptions {
                        image: true,
                        tls: true,
                        http: true,
                        pubkey: true,
                        capabilities: true,
                        paths: true,
                        seccomp: true,
                        image_privileges: true,
                    }
                }
                other => return Err(UnknownInsecureOption(other.to_string())),
            }
        }
        Ok(o)
    }
}

impl fmt::Display for InsecureOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.image, "image"),
            (self.tls, "tls"),
            (self.http, "http"),
            (self.pubkey, "pubkey"),
            (self.capabilities, "capabilities"),
            (self.paths, "paths"),
            (self.seccomp, "seccomp"),
            (self.image_privileges, "image-privileges"),
        ];
        let on: Vec<&str> = names.iter().filter(|(b, _)| *b).map(|(_, n)| *n).collect();
        if on.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&on.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_groups() {
        let o: InsecureOptions = "image,http".parse().unwrap();
        assert!(o.image && o.http && !o.tls);
        let all: InsecureOptions = "all-fetch".parse().unwrap();
        assert!(all.image && all.tls && all.http && all.pubkey && !all.paths);
        assert_eq!(
            "none".parse::<InsecureOptions>().unwrap(),
            InsecureOptions::default()
        );
        assert_eq!(o.to_string(), "image,http");
        assert!("image,bogus".parse::<InsecureOptions>().is_err());
        let p: InsecureOptions = "image-privileges".parse().unwrap();
        assert!(p.image_privileges && !p.capabilities && !p.image);
        assert_eq!(p.to_string(), "image-privileges");
        assert!(
            "all-run"
                .parse::<InsecureOptions>()
                .unwrap()
                .image_privileges
        );
        assert!(
            !"all-fetch"
                .parse::<InsecureOptions>()
                .unwrap()
                .image_privileges
        );
    }
}
