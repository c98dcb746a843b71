//! CLI errors: one readable line, an optional hint, and a documented exit code.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the command ran and found a problem (e.g. governance violations) or failed |
//! | 2 | usage error (bad arguments) |
//! | 3 | configuration error |
//! | 4 | database unavailable |

use std::fmt;

#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
    pub exit_code: i32,
}

impl CliError {
    pub fn failed(message: impl Into<String>) -> Self {
        Self { message: message.into(), hint: None, exit_code: 1 }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self { message: message.into(), hint: None, exit_code: 2 }
    }
    pub fn config(message: impl Into<String>) -> Self {
        Self { message: message.into(), hint: None, exit_code: 3 }
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { message: message.into(), hint: None, exit_code: 4 }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

impl From<spine_store::StoreError> for CliError {
    fn from(e: spine_store::StoreError) -> Self {
        use spine_store::StoreError as E;
        match e {
            E::NotFound => CliError::failed("not found"),
            E::Conflict(w) => CliError::failed(w),
            E::Invalid(w) => CliError::usage(w),
            other => CliError::failed(other.to_string()),
        }
    }
}

impl From<spine_core::names::InvalidValue> for CliError {
    fn from(e: spine_core::names::InvalidValue) -> Self {
        CliError::usage(e.to_string())
    }
}
