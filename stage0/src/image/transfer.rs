//! What every way of fetching an image shares ([`crate::image::fetch`] for appc and
//! files, [`crate::image::oci`] for Docker and OCI): the pull policy, progress
//! reporting, and the notice shown when verification is skipped. A leaf: it uses no
//! other image module, so both fetchers can use it without using each other.

pub mod progress;

use std::fmt;
use std::str::FromStr;

pub use progress::{Progress, QuietProgress, StderrProgress};

/// The warning printed when `--insecure-options=image` skips verification.
pub const SKIPPED_VERIFICATION: &str =
    "warning: signature verification skipped (--insecure-options=image)";

/// When to use the store and when to ask the network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Use what the store has; fetch only what is missing.
    #[default]
    New,
    /// Ask the remote for a newer image (HTTP caching still applies).
    Update,
    /// Use only the store.
    Never,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown pull policy {0:?} (valid: new, update, never)")]
pub struct UnknownPullPolicy(pub String);

impl FromStr for PullPolicy {
    type Err = UnknownPullPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "new" => Ok(PullPolicy::New),
            "update" => Ok(PullPolicy::Update),
            "never" => Ok(PullPolicy::Never),
            other => Err(UnknownPullPolicy(other.to_string())),
        }
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PullPolicy::New => "new",
            PullPolicy::Update => "update",
            PullPolicy::Never => "never",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_parses_and_prints() {
        for (s, p) in [
            ("new", PullPolicy::New),
            ("update", PullPolicy::Update),
            ("never", PullPolicy::Never),
        ] {
            assert_eq!(s.parse::<PullPolicy>().unwrap(), p);
            assert_eq!(p.to_string(), s);
        }
        assert_eq!(PullPolicy::default(), PullPolicy::New);
        let err = "always".parse::<PullPolicy>().unwrap_err();
        assert!(err.to_string().contains("new, update, never"), "{err}");
        assert!("New".parse::<PullPolicy>().is_err());
    }
}
