//! The bytes-per-hour budget (global and per cluster) a runner reserves from once its plan
//! knows a job's size, and the per-job view that remembers a refusal.

use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::state::InMemoryState;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::*;

/// Budget granularity: one governor cell per MiB.
pub(super) const BYTE_CELL: u64 = 1 << 20;

/// The bytes-per-hour budget (global and per cluster), shared by all jobs.
pub struct RateBudget {
    global: Option<(DirectLimiter, NonZeroU32)>,
    per_cluster: Option<(KeyedLimiter, NonZeroU32)>,
    metrics: Arc<AgentMetrics>,
}

impl fmt::Debug for RateBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateBudget")
            .field("global", &self.global.is_some())
            .field("per_cluster", &self.per_cluster.is_some())
            .finish()
    }
}

/// The quota of a bytes-per-hour setting, and its burst in cells.
pub(super) fn byte_quota(bytes: Option<NonZeroU64>) -> Option<(Quota, NonZeroU32)> {
    let cells = bytes?.get().div_ceil(BYTE_CELL);
    let cells = NonZeroU32::new(u32::try_from(cells).unwrap_or(u32::MAX).max(1))?;
    Some((Quota::per_hour(cells), cells))
}

pub(super) fn cells_for(bytes: u64, quota_burst: NonZeroU32) -> NonZeroU32 {
    let cells = u32::try_from(bytes.div_ceil(BYTE_CELL)).unwrap_or(u32::MAX);
    NonZeroU32::new(cells.clamp(1, quota_burst.get())).unwrap_or(NonZeroU32::MIN)
}

impl RateBudget {
    pub(super) fn new(
        settings: &QueueSettings,
        clock: &GovClock,
        metrics: Arc<AgentMetrics>,
    ) -> Self {
        Self {
            global: byte_quota(settings.bytes_per_hour).map(|(q, b)| {
                (
                    RateLimiter::new(q, InMemoryState::default(), clock.clone()),
                    b,
                )
            }),
            per_cluster: byte_quota(settings.bytes_per_hour_per_cluster).map(|(q, b)| {
                (
                    RateLimiter::new(q, DefaultKeyedStateStore::default(), clock.clone()),
                    b,
                )
            }),
            metrics,
        }
    }
}

impl ByteBudget for RateBudget {
    fn try_reserve(&self, cluster: &str, bytes: u64) -> Result<(), Duration> {
        if bytes == 0 {
            return Ok(());
        }
        let refuse = |wait: Duration| {
            self.metrics
                .rate_limited
                .get_or_create(&LimitLabels {
                    limit: "bytes".into(),
                })
                .inc();
            Err(wait)
        };
        if let Some((l, burst)) = &self.per_cluster {
            let n = cells_for(bytes, *burst);
            if let Ok(Err(not_until)) = l.check_key_n(&cluster.to_owned(), n) {
                return refuse(not_until.wait_time_from(governor::clock::Clock::now(l.clock())));
            }
        }
        if let Some((l, burst)) = &self.global {
            let n = cells_for(bytes, *burst);
            if let Ok(Err(not_until)) = l.check_n(n) {
                return refuse(not_until.wait_time_from(governor::clock::Clock::now(l.clock())));
            }
        }
        Ok(())
    }
}

/// One job's view of the budget: remembers a refusal so the queue can re-queue the job.
#[derive(Debug)]
pub struct JobBudget {
    inner: Arc<RateBudget>,
    refused: Mutex<Option<Duration>>,
}

impl JobBudget {
    /// Wraps the shared budget.
    pub fn new(inner: Arc<RateBudget>) -> Self {
        Self {
            inner,
            refused: Mutex::new(None),
        }
    }

    /// The wait of the last refused reservation, if any.
    pub fn refused(&self) -> Option<Duration> {
        self.refused.lock().ok().and_then(|g| *g)
    }
}

impl ByteBudget for JobBudget {
    fn try_reserve(&self, cluster: &str, bytes: u64) -> Result<(), Duration> {
        let r = self.inner.try_reserve(cluster, bytes);
        if let Err(wait) = r
            && let Ok(mut g) = self.refused.lock()
        {
            *g = Some(wait);
        }
        r
    }
}
