//! The CNI error result (`{cniVersion, code, msg, details}`) and its codes.
//!
//! Each module has its own `thiserror` enum; they convert into [`CniError`] at the
//! plugin boundary, choosing the spec's code (or one of ours from 100 up).

use serde::{Deserialize, Serialize};

/// Error codes. 1–99 are the spec's; 100 and up are shared by this crate's plugins.
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist (no cleanup needed).
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid or missing environment variables.
    pub const INVALID_ENVIRONMENT: u32 = 4;
    /// I/O failure (stdin, lease files).
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content (stdin is not JSON).
    pub const DECODE_FAILURE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    /// Try again later (a transient condition).
    pub const TRY_AGAIN_LATER: u32 = 11;

    /// A netlink, sysctl or namespace operation failed.
    pub const KERNEL: u32 = 100;
    /// Installing or removing firewall (nftables) rules failed.
    pub const FIREWALL: u32 = 101;
    /// No free address left in a range set.
    pub const NO_ADDRESS_AVAILABLE: u32 = 102;
    /// A requested address is taken, or the container already holds one.
    pub const ADDRESS_UNAVAILABLE: u32 = 103;
    /// A host port is already mapped to another container.
    pub const PORT_CONFLICT: u32 = 104;
    /// The interface to create already exists in the container.
    pub const INTERFACE_EXISTS: u32 = 105;
    /// CHECK found the container's networking differs from the ADD result.
    pub const CHECK_FAILED: u32 = 106;
    /// A delegated plugin could not be run or answered something unreadable.
    pub const DELEGATE_FAILED: u32 = 107;
}

/// A CNI error as written on stdout (without `cniVersion`, which the dispatcher adds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{msg}{}", if details.is_empty() { String::new() } else { format!(": {details}") })]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Build from any error, putting its source chain into `details`.
    pub fn from_error(code: u32, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut details = Vec::new();
        let mut source = err.source();
        while let Some(s) = source {
            details.push(s.to_string());
            source = s.source();
        }
        CniError {
            code,
            msg: err.to_string(),
            details: details.join(": "),
        }
    }

    /// Invalid network configuration (code 7).
    pub fn config(msg: impl Into<String>) -> Self {
        CniError::new(code::INVALID_NETWORK_CONFIG, msg)
    }

    /// Append a note (say, a failed cleanup) to `details`, keeping what was there.
    pub fn also(mut self, note: impl AsRef<str>) -> Self {
        if self.details.is_empty() {
            self.details = note.as_ref().to_string();
        } else {
            self.details = format!("{}; {}", self.details, note.as_ref());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_json() {
        let e = CniError::config("bad subnet").with_details("10.0.0.1/33");
        assert_eq!(e.to_string(), "bad subnet: 10.0.0.1/33");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"code": 7, "msg": "bad subnet", "details": "10.0.0.1/33"})
        );
        let e = CniError::new(code::KERNEL, "x").also("cleanup failed");
        assert_eq!(e.details, "cleanup failed");
        assert_eq!(e.also("again").details, "cleanup failed; again");
    }
}
