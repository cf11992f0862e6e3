//! The exit codes of DESIGN.md §3.

use std::process::ExitCode;

/// How bbsync exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Success; for `plan --detailed-exitcode`: no changes.
    Ok = 0,
    /// An API error, or an action failed.
    Failed = 1,
    /// `plan --detailed-exitcode`: changes pending.
    Changes = 2,
    /// Blocked by a safety guard.
    Blocked = 3,
    /// Invalid manifest, or `validate --online` found an integration invalid.
    Invalid = 4,
    /// Command-line usage error.
    Usage = 64,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}
