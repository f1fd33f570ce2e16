//! Why a step of a job failed: a bounded kind (the `kind` of a failed outcome and of metrics),
//! a human message, and whether the queue may retry it.

use std::fmt;

/// The kind of a step failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepErrorKind {
    /// The job names a cluster that is not configured.
    UnknownCluster,
    /// The plan needs an engine and none is configured.
    NoEngine,
    /// A merges- or bytes-per-hour limit refused the start (re-queued after the wait).
    RateLimited,
    /// Rows before and after an in-place engine merge differ.
    RowCountMismatch,
    /// Listing or locating files failed.
    Storage,
    /// The engine (HiveServer2) failed or answered unexpectedly.
    Engine,
    /// The MetaStore could not be read.
    Metastore,
    /// The staged commit protocol stopped; its reason label.
    Staged(&'static str),
    /// The table's storage cannot be merged natively; the planner's reason label.
    Refused(&'static str),
}

impl StepErrorKind {
    /// The bounded label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownCluster => "unknown_cluster",
            Self::NoEngine => "no_engine",
            Self::RateLimited => "rate_limited",
            Self::RowCountMismatch => "row_count_mismatch",
            Self::Storage => "storage",
            Self::Engine => "engine",
            Self::Metastore => "metastore",
            Self::Staged(reason) | Self::Refused(reason) => reason,
        }
    }
}

impl fmt::Display for StepErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct StepError {
    /// What failed.
    pub kind: StepErrorKind,
    /// Human detail.
    pub message: String,
    retryable: bool,
}

impl StepError {
    /// A failure of `kind`; `retryable` comes from the error at the boundary that failed.
    pub fn new(kind: StepErrorKind, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            kind,
            message: message.into(),
            retryable,
        }
    }

    /// Whether the queue may run the job again.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_display() {
        let e = StepError::new(StepErrorKind::Staged("new_file_arrived"), "x", true);
        assert_eq!(e.kind.as_str(), "new_file_arrived");
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "new_file_arrived: x");
        assert_eq!(StepErrorKind::RateLimited.as_str(), "rate_limited");
    }
}
