//! The queue's settings: capacity, concurrency caps, rate limits, retries, cool-down.

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use super::*;

/// Retry policy for `failed` outcomes with `retryable: true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    /// Attempts in total (first run included). Default 3.
    pub max_attempts: u32,
    /// Backoff before the second attempt. Default 1 minute.
    pub base: Duration,
    /// Longest backoff. Default 30 minutes.
    pub cap: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base: Duration::from_secs(60),
            cap: Duration::from_secs(30 * 60),
        }
    }
}

impl RetrySettings {
    /// Backoff after `attempt` (1-based) failed attempts: `min(cap, base·2^(attempt-1))`,
    /// "equal jitter" (half fixed, half scaled by `unit` in `[0, 1)`).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let full = self.base.saturating_mul(1 << exp).min(self.cap);
        let half = full / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// Settings of the queue (filled from the agent's configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// Queued jobs at most (running ones not counted). Default 1,000.
    pub capacity: usize,
    /// Queued jobs of one cluster at most. Default 1,000 (no bound below `capacity`).
    pub capacity_per_cluster: usize,
    /// Finished or cancelled jobs kept for the API. Default 1,000.
    pub history: usize,
    /// Finished jobs older than this are pruned from the history. Default 30 days.
    pub history_max_age: Duration,
    /// Jobs running at once. Default 4.
    pub max_concurrent: usize,
    /// Jobs running at once per cluster. Default 1.
    pub max_concurrent_per_cluster: usize,
    /// Merges started per hour, all clusters. Default 60; `None`: unlimited.
    pub merges_per_hour: Option<NonZeroU32>,
    /// Merges started per hour per cluster. Default 20; `None`: unlimited.
    pub merges_per_hour_per_cluster: Option<NonZeroU32>,
    /// Bytes rewritten per hour, all clusters. Default `None` (unlimited).
    pub bytes_per_hour: Option<NonZeroU64>,
    /// Bytes rewritten per hour per cluster. Default `None` (unlimited).
    pub bytes_per_hour_per_cluster: Option<NonZeroU64>,
    /// After a merge, alerts for the table are dropped this long. Default 6 hours.
    pub cooldown: Duration,
    /// Retries.
    pub retry: RetrySettings,
    /// Intake rules.
    pub intake: IntakeSettings,
    /// Alert fingerprints tracked per job; beyond, the job becomes a whole-table request
    /// that resolved alerts no longer cancel. Default 10,000.
    pub max_fingerprints_per_job: usize,
    /// Id of the first job (ids continue the audit log's across restarts). Default 1.
    pub first_job_id: JobId,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            capacity: 1000,
            capacity_per_cluster: 1000,
            history: 1000,
            history_max_age: Duration::from_secs(30 * 24 * 3600),
            max_concurrent: 4,
            max_concurrent_per_cluster: 1,
            merges_per_hour: NonZeroU32::new(60),
            merges_per_hour_per_cluster: NonZeroU32::new(20),
            bytes_per_hour: None,
            bytes_per_hour_per_cluster: None,
            cooldown: Duration::from_secs(6 * 3600),
            retry: RetrySettings::default(),
            intake: IntakeSettings::default(),
            max_fingerprints_per_job: 10_000,
            first_job_id: 1,
        }
    }
}
