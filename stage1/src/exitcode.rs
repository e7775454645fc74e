//! Exit codes: stage1's own failures, and a child's as shells report it.

use rustix::process::WaitStatus;

/// Exit status of stage1's own failures.
pub const EXIT_STAGE1_FAILED: u8 = 254;

/// A child's exit code: its own, or 128 + the signal that killed it.
pub fn exit_code_of(status: WaitStatus) -> i32 {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => i32::from(EXIT_STAGE1_FAILED),
    }
}
