//! Errors as messages that say what failed, and a way to add what was being done.

use std::fmt;

/// Errors are messages that say what failed: which node, which port, which step.
pub type Result<T, E = String> = std::result::Result<T, E>;

/// Adds what was being done to an error.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|err| format!("{}: {err}", what()))
    }
}
