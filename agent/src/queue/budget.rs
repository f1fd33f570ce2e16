//! The merge budget: merges started per hour and bytes rewritten per hour, each global and
//! per cluster. A runner takes from it once, right before a job changes anything (after the
//! live MetaStore re-read and a plan that found work), so jobs that end without merging —
//! `table_not_found`, `nothing_to_merge`, policy skips, dry runs — spend nothing.
//!
//! **Order:** the four limits are probed without spending under one lock, and taken only if
//! every one of them admits the merge; a refusal by any limit spends nothing anywhere (a
//! consume-on-success limiter such as `governor` cannot give that guarantee across two
//! limits, hence [`super::gcra`]). The queue uses the same probes, without taking, to hold
//! back jobs while the merges-per-hour limits are known to refuse.

use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::gcra::{Gcra, KeyedGcra, Quota};
use super::*;
use crate::work::{BudgetRefusal, MergeBudget};

/// Budget granularity: one cell per MiB.
pub(super) const BYTE_CELL: u64 = 1 << 20;

/// `rate_limited_total{limit}` labels of the four limits.
pub(super) mod limit {
    /// Merges per hour, all clusters.
    pub(crate) const GLOBAL_RATE: &str = "global_rate";
    /// Merges per hour, one cluster.
    pub(crate) const CLUSTER_RATE: &str = "cluster_rate";
    /// Bytes per hour (global or per cluster).
    pub(crate) const BYTES: &str = "bytes";
}

/// The limits, shared by all jobs (share it as `Arc<RateBudget>`).
pub struct RateBudget {
    clock: Arc<dyn Clock>,
    limits: Mutex<Limits>,
    metrics: Arc<AgentMetrics>,
}

#[derive(Debug)]
struct Limits {
    merges: Option<Gcra>,
    cluster_merges: Option<KeyedGcra>,
    bytes: Option<Gcra>,
    cluster_bytes: Option<KeyedGcra>,
}

impl fmt::Debug for RateBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateBudget")
            .field("limits", &*self.lock())
            .finish_non_exhaustive()
    }
}

/// The quota of a bytes-per-hour setting, in cells.
fn byte_quota(bytes: Option<NonZeroU64>) -> Option<Quota> {
    let cells = bytes?.get().div_ceil(BYTE_CELL);
    let cells = NonZeroU32::new(u32::try_from(cells).unwrap_or(u32::MAX).max(1))?;
    Some(Quota::per_hour(cells))
}

/// Cells for `bytes`; a reservation above a whole hour's budget waits for a full bucket and
/// takes all of it.
fn cells_for(bytes: u64, quota: Quota) -> NonZeroU32 {
    let cells = u32::try_from(bytes.div_ceil(BYTE_CELL)).unwrap_or(u32::MAX);
    NonZeroU32::new(cells.clamp(1, quota.burst().get())).unwrap_or(NonZeroU32::MIN)
}

/// A probe of one limit: what to commit, or the refusal.
type Probed = Result<Option<Duration>, BudgetRefusal>;

fn probed(p: Option<Result<Duration, Duration>>, limit: &'static str) -> Probed {
    match p {
        None => Ok(None),
        Some(Ok(tat)) => Ok(Some(tat)),
        Some(Err(wait)) => Err(BudgetRefusal { limit, wait }),
    }
}

/// The refusal with the longest wait: before then at least one limit still refuses.
fn longest(probes: &[&Probed]) -> Option<BudgetRefusal> {
    probes
        .iter()
        .filter_map(|p| p.as_ref().err())
        .max_by_key(|r| r.wait)
        .copied()
}

impl RateBudget {
    pub(super) fn new(
        settings: &QueueSettings,
        clock: Arc<dyn Clock>,
        metrics: Arc<AgentMetrics>,
    ) -> Self {
        Self {
            clock,
            limits: Mutex::new(Limits {
                merges: settings
                    .merges_per_hour
                    .map(|n| Gcra::new(Quota::per_hour(n))),
                cluster_merges: settings
                    .merges_per_hour_per_cluster
                    .map(|n| KeyedGcra::new(Quota::per_hour(n))),
                bytes: byte_quota(settings.bytes_per_hour).map(Gcra::new),
                cluster_bytes: byte_quota(settings.bytes_per_hour_per_cluster).map(KeyedGcra::new),
            }),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Limits> {
        self.limits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the merges-per-hour limits would admit a merge on `cluster` now; takes
    /// nothing. The queue starts a job only then (the job may still be refused when it
    /// merges, if others took the last start meanwhile).
    pub fn probe_start(&self, cluster: &str) -> Result<(), BudgetRefusal> {
        let now = self.clock.elapsed();
        let l = self.lock();
        let cluster_p = probed(
            l.cluster_merges
                .as_ref()
                .map(|g| g.probe(cluster, now, NonZeroU32::MIN)),
            limit::CLUSTER_RATE,
        );
        let global_p = probed(
            l.merges.as_ref().map(|g| g.probe(now, NonZeroU32::MIN)),
            limit::GLOBAL_RATE,
        );
        match longest(&[&cluster_p, &global_p]) {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }
}

impl MergeBudget for RateBudget {
    fn try_start(&self, cluster: &str, bytes: u64) -> Result<(), BudgetRefusal> {
        let now = self.clock.elapsed();
        let mut l = self.lock();
        let one = NonZeroU32::MIN;
        let cluster_merges = probed(
            l.cluster_merges
                .as_ref()
                .map(|g| g.probe(cluster, now, one)),
            limit::CLUSTER_RATE,
        );
        let merges = probed(
            l.merges.as_ref().map(|g| g.probe(now, one)),
            limit::GLOBAL_RATE,
        );
        let (cluster_bytes, global_bytes) = if bytes == 0 {
            (Ok(None), Ok(None))
        } else {
            (
                probed(
                    l.cluster_bytes
                        .as_ref()
                        .map(|g| g.probe(cluster, now, cells_for(bytes, g.quota()))),
                    limit::BYTES,
                ),
                probed(
                    l.bytes
                        .as_ref()
                        .map(|g| g.probe(now, cells_for(bytes, g.quota()))),
                    limit::BYTES,
                ),
            )
        };
        if let Some(refusal) = longest(&[&cluster_merges, &merges, &cluster_bytes, &global_bytes]) {
            drop(l);
            self.metrics
                .rate_limited
                .get_or_create(&LimitLabels {
                    limit: refusal.limit.to_owned(),
                })
                .inc();
            return Err(refusal);
        }
        // Every limit admitted the merge: take from all of them.
        if let (Some(g), Ok(Some(t))) = (l.cluster_merges.as_mut(), cluster_merges) {
            g.commit(cluster, t, now);
        }
        if let (Some(g), Ok(Some(t))) = (l.merges.as_mut(), merges) {
            g.commit(t);
        }
        if let (Some(g), Ok(Some(t))) = (l.cluster_bytes.as_mut(), cluster_bytes) {
            g.commit(cluster, t, now);
        }
        if let (Some(g), Ok(Some(t))) = (l.bytes.as_mut(), global_bytes) {
            g.commit(t);
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

    /// The wait of the last refused start, if any.
    pub fn refused(&self) -> Option<Duration> {
        self.refused.lock().ok().and_then(|g| *g)
    }
}

impl MergeBudget for JobBudget {
    fn try_start(&self, cluster: &str, bytes: u64) -> Result<(), BudgetRefusal> {
        let r = self.inner.try_start(cluster, bytes);
        if let Err(refusal) = r
            && let Ok(mut g) = self.refused.lock()
        {
            *g = Some(refusal.wait);
        }
        r
    }
}
