//! Errors of the native executor and the commit protocol.

use hive_smallfiles_core::fs::FsError;

use super::format::FormatError;
use super::lock::{LockError, LockOwner};

/// Why a native merge (or rollback, or recovery) did not complete.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The partition cannot be merged by this executor; nothing was changed.
    #[error("refused ({reason}): {detail}")]
    Refused {
        /// Label.
        reason: &'static str,
        /// Why.
        detail: String,
    },
    /// Something changed under the merge (a new file, a changed source, a writer's staging
    /// directory); the merge stopped and left the partition as it was (or restored it).
    #[error("aborted ({reason}): {detail}")]
    Aborted {
        /// Label.
        reason: &'static str,
        /// What changed.
        detail: String,
    },
    /// Another agent holds the partition's lock.
    #[error("partition is locked by agent {} (host {}, pid {}): {}", .0.agent, .0.host, .0.pid, .0.purpose)]
    Locked(Box<LockOwner>),
    /// The staged output does not match what was merged; nothing was changed.
    #[error("verification failed: {0}")]
    Verification(String),
    /// Filesystem error.
    #[error("filesystem: {0}")]
    Fs(#[from] FsError),
    /// The file format layer refused or failed.
    #[error("format: {0}")]
    Format(#[from] FormatError),
    /// Local spool I/O.
    #[error("local spool: {0}")]
    Spool(#[from] std::io::Error),
    /// The SQL engine (engine-staged mode).
    #[error("engine: {message}")]
    Engine {
        /// Error text.
        message: String,
        /// Whether a retry may succeed.
        retryable: bool,
    },
    /// The protocol found a state it must not touch; a person should look (the merge
    /// directory and the audit log say what is where).
    #[error("needs attention: {0}")]
    Inconsistent(String),
}

impl From<LockError> for NativeError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Held(owner) => Self::Locked(Box::new(owner)),
            LockError::Fs(e) => Self::Fs(e),
        }
    }
}

impl NativeError {
    /// Whether the same merge may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Aborted { .. } | Self::Locked(_) => true,
            Self::Fs(e) => e.is_retryable(),
            Self::Engine { retryable, .. } => *retryable,
            Self::Refused { .. }
            | Self::Verification(_)
            | Self::Format(_)
            | Self::Spool(_)
            | Self::Inconsistent(_) => false,
        }
    }

    /// Short label for metrics and the job's result.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Refused { reason, .. } | Self::Aborted { reason, .. } => reason,
            Self::Locked(_) => "locked",
            Self::Verification(_) => "verification_failed",
            Self::Fs(_) => "storage",
            Self::Format(e) => e.reason(),
            Self::Spool(_) => "spool_io",
            Self::Engine { .. } => "engine",
            Self::Inconsistent(_) => "inconsistent_state",
        }
    }
}

/// Shorthand for an abort.
pub(crate) fn aborted(reason: &'static str, detail: impl Into<String>) -> NativeError {
    NativeError::Aborted {
        reason,
        detail: detail.into(),
    }
}

/// Shorthand for a refusal.
pub(crate) fn refused(reason: &'static str, detail: impl Into<String>) -> NativeError {
    NativeError::Refused {
        reason,
        detail: detail.into(),
    }
}
