//! The job queue: deduplication, ordering, limits, retries, cool-downs, job history and the
//! worker loop that hands jobs to a [`JobRunner`].
//!
//! Semantics (what the API and the operator see):
//!
//! * **One job per table.** At most one queued-or-running job exists per [`TableKey`]. Alerts
//!   and manual requests for a *queued* table fold into its job (union of partitions and
//!   fingerprints, max priority). Alerts for a *running* table are dropped as duplicates
//!   (`intake_dropped{reason="running"}`): a successful merge puts the table into its
//!   cool-down anyway, a failed one is retried, and Alertmanager re-sends still-firing alerts
//!   every `repeat_interval`, so nothing is lost. Manual requests for a running table are
//!   refused ([`SubmitError::Running`]). Alerts for a queued *dry-run* job are dropped
//!   (`dry_run_queued`); a manual request whose `dry_run` differs from the queued job's is
//!   refused ([`SubmitError::Conflict`]).
//! * **Resolved alerts** withdraw their fingerprint; a queued job that no firing alert and no
//!   manual request backs any more is cancelled (outcome `skipped`, reason `resolved`).
//! * **Order:** priority (highest first), then age (oldest first), then id.
//! * **Queue full** (`capacity` queued jobs): a new job evicts the lowest-priority queued job
//!   (the youngest among equals) if its own priority is higher, otherwise it is rejected;
//!   either way `intake_dropped{reason="queue_full"}` counts it. Evicted jobs end as
//!   `cancelled` with outcome `skipped`/`queue_full`.
//! * **Queue full:** at most `capacity_per_cluster` queued jobs per cluster and `capacity` in
//!   all. At a bound, a new job evicts the weakest queued job under that bound (the
//!   cluster's, then anyone's: lowest priority, the youngest among equals) if its own
//!   priority is higher, otherwise it is rejected; either way
//!   `intake_dropped{reason="cluster_queue_full"|"queue_full"}` counts it, evicted jobs end
//!   `cancelled` with outcome `skipped` and that reason, and a refused manual request gets
//!   503. One noisy cluster therefore cannot take the whole queue from the others.
//! * **Limits:** a global and a per-cluster concurrency cap, checked when a job is about to
//!   start; merges started per hour and bytes rewritten per hour (global and per cluster),
//!   taken by the runner through [`crate::work::MergeBudget::try_start`] only when a merge really starts
//!   (after the live MetaStore re-read and a plan that found work): jobs that end
//!   `table_not_found`, `nothing_to_merge`, skipped by policy or as dry runs spend nothing.
//!   The four limits are probed first and taken all together or not at all, so one limit's
//!   refusal never spends another's budget (see `budget`). The queue starts a job only
//!   while the merges-per-hour limits would admit it (a probe that takes nothing). Rates
//!   are GCRA quotas: a burst of `n` refilled at `n` per hour, so over any window of length
//!   `W` at most `n + W·n/1h` merges start. A byte reservation larger than a whole hour's
//!   budget waits for a full bucket and takes all of it.
//! * **Refused starts:** when the runner's start is refused it returns promptly (any
//!   outcome but `merged`/`dry_run`); the queue then re-queues the job after the wait
//!   without counting an attempt.
//! * **Retries:** `failed` outcomes with `retryable: true` are re-queued with jittered
//!   exponential backoff until `max_attempts` attempts; only final outcomes are counted in
//!   `jobs_total`.
//! * **Cool-down:** after a `merged` outcome the table's alerts are dropped for `cooldown`.
//!   Manual requests ignore the cool-down.
//! * **History:** finished or cancelled jobs are kept for the API, at most `history` of them
//!   and none older than `history_max_age`.
//! * **Persistence:** with a persistent [`JobStore`] every change of a queued or running job
//!   (and every cool-down) is written before the call that made it returns, so a restart —
//!   even after `kill -9` — resumes the same queue (see [`Queue::with_store`]).
//! * **Shutdown:** [`Queue::begin_shutdown`] stops starting jobs and asks running ones to
//!   stop at their next step boundary; a job that stops so is queued again with `stopped:
//!   "shutdown"` (its attempt not counted), so it continues after the restart.
//!
//! Time comes from an injected [`Clock`]: wall time for records and cool-downs, a monotonic
//! reading for the rate limiters, so tests drive limits with a [`ManualClock`] instead of
//! waiting.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

mod budget;
mod clock;
mod gcra;
mod requests;
mod scheduling;
mod settings;
mod worker;

pub use budget::{JobBudget, RateBudget};
pub use clock::{Clock, ManualClock, SystemClock};
pub use settings::{QueueSettings, RetrySettings};
pub use worker::run_workers;

use crate::alertmanager::WebhookPayload;
use crate::intake::{self, IntakeSettings, IntakeView, Origin, reason};
use crate::metrics::{
    AgentMetrics, ClusterLabels, JobLabels, LimitLabels, ReasonLabels, StatusLabels,
};
use crate::store::{ActiveJob, HistoryLimits, JobStore, MemoryStore, StoredOrigin};
use crate::work::{JobId, JobOutcome, JobRecord, JobRunner, JobState, Source, TableKey, WorkItem};

/// A manual merge request (`POST /api/v1/merges`, the CLI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualRequest {
    /// The table.
    pub key: TableKey,
    /// Partitions; empty: the whole table.
    pub partitions: BTreeSet<String>,
    /// Plan and report only.
    pub dry_run: bool,
    /// Ordering priority; manual requests default to the top ([`u64::MAX`]).
    pub priority: u64,
}

/// Why a manual request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// A job for the table is running.
    #[error("job {0} for this table is running")]
    Running(JobId),
    /// A queued job for the table differs in `dry_run`.
    #[error("queued job {0} for this table has a different dry_run setting")]
    Conflict(JobId),
    /// The queue is full of jobs with at least this priority.
    #[error("the queue is full")]
    QueueFull,
    /// The cluster's share of the queue is full of jobs with at least this priority.
    #[error("the queue of this cluster is full")]
    ClusterQueueFull,
}

/// Why a cancel was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    /// No such job.
    #[error("no job {0}")]
    NotFound(JobId),
    /// The job has finished.
    #[error("job {0} is {1:?}, only queued or running jobs can be cancelled")]
    NotQueued(JobId, JobState),
}

/// What the queue did with one webhook payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IntakeReport {
    /// Alerts in the payload.
    pub alerts: u64,
    /// Alerts Alertmanager cut (`max_alerts`); their tables are not known.
    pub truncated_alerts: u64,
    /// New jobs.
    pub queued: Vec<JobId>,
    /// Existing queued jobs the alerts folded into.
    pub folded: Vec<JobId>,
    /// Queued jobs cancelled because their alerts resolved.
    pub removed: Vec<JobId>,
    /// Alerts or requests not queued, by reason.
    pub dropped: BTreeMap<&'static str, u64>,
}

/// A job handed to a worker.
#[derive(Debug, Clone)]
pub struct StartedJob {
    /// The record at start (state `running`).
    pub record: JobRecord,
    /// Fires on shutdown.
    pub cancel: CancellationToken,
    started: Duration,
}

#[derive(Debug)]
struct Entry {
    record: JobRecord,
    /// Alert fingerprint → what it asked for.
    origins: BTreeMap<String, Origin>,
    /// A manual request backs the job: its partitions (empty: whole table) and priority.
    manual: Option<(BTreeSet<String>, u64)>,
    /// Too many fingerprints: whole table, not cancelled by resolves.
    overflow: bool,
    /// Limits this attempt was already counted as waiting for (bit per limit).
    waited: u8,
}

impl Entry {
    fn refresh_item(&mut self) {
        let item = &mut self.record.item;
        item.partitions = if self.overflow || self.manual.as_ref().is_some_and(|m| m.0.is_empty()) {
            BTreeSet::new()
        } else if self.origins.is_empty() {
            self.manual
                .as_ref()
                .map(|m| m.0.clone())
                .unwrap_or_default()
        } else {
            let mut p = intake::partitions_of(self.origins.values());
            if !p.is_empty()
                && let Some((mp, _)) = &self.manual
            {
                p.extend(mp.iter().cloned());
            }
            p
        };
        item.priority = self
            .origins
            .values()
            .map(|o| o.priority)
            .chain(self.manual.as_ref().map(|m| m.1))
            .max()
            .unwrap_or(0);
        item.fingerprints = self.origins.keys().cloned().collect();
        item.source = if self.manual.is_some() {
            Source::Manual
        } else {
            Source::Alert
        };
    }

    /// The entry as the store keeps it.
    fn stored(&self) -> ActiveJob {
        ActiveJob {
            record: self.record.clone(),
            origins: self
                .origins
                .iter()
                .map(|(fp, o)| {
                    (
                        fp.clone(),
                        StoredOrigin {
                            partition: o.partition.clone(),
                            priority: o.priority,
                        },
                    )
                })
                .collect(),
            manual: self.manual.clone(),
            overflow: self.overflow,
        }
    }

    /// An entry restored from the store.
    fn restored(job: ActiveJob) -> Self {
        Self {
            record: job.record,
            origins: job
                .origins
                .into_iter()
                .map(|(fp, o)| {
                    (
                        fp,
                        Origin {
                            partition: o.partition,
                            priority: o.priority,
                        },
                    )
                })
                .collect(),
            manual: job.manual,
            overflow: job.overflow,
            waited: 0,
        }
    }

    fn backed(&self) -> bool {
        self.overflow || self.manual.is_some() || !self.origins.is_empty()
    }

    /// Sort key: higher priority first, then older, then lower id.
    fn order(&self) -> (std::cmp::Reverse<u64>, SystemTime, JobId) {
        (
            std::cmp::Reverse(self.record.item.priority),
            self.record.created_at,
            self.record.id,
        )
    }
}

const WAIT_CONCURRENCY: u8 = 1;
const WAIT_CLUSTER_CONCURRENCY: u8 = 2;
const WAIT_CLUSTER_RATE: u8 = 4;
const WAIT_GLOBAL_RATE: u8 = 8;

#[derive(Debug, Default)]
struct Inner {
    next_id: JobId,
    active: HashMap<JobId, Entry>,
    by_table: HashMap<TableKey, JobId>,
    cooldowns: HashMap<TableKey, SystemTime>,
    queued: usize,
    running: usize,
    running_per_cluster: HashMap<String, usize>,
    /// Running jobs' tokens: cancelling one stops the job at its next step boundary.
    running_tokens: HashMap<JobId, CancellationToken>,
    /// Queued jobs per cluster (bounded by `capacity_per_cluster`).
    queued_per_cluster: HashMap<String, usize>,
    /// Running jobs an operator asked to stop.
    cancel_requested: HashSet<JobId>,
    /// The agent is stopping: no job starts, running ones stop at a step boundary.
    shutting_down: bool,
}

impl Inner {
    fn count_queued(&mut self, cluster: &str) {
        self.queued += 1;
        *self
            .queued_per_cluster
            .entry(cluster.to_owned())
            .or_default() += 1;
    }

    fn uncount_queued(&mut self, cluster: &str) {
        self.queued = self.queued.saturating_sub(1);
        if let Some(n) = self.queued_per_cluster.get_mut(cluster) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.queued_per_cluster.remove(cluster);
            }
        }
    }
}

/// `stopped` reasons of a job record (see [`JobRecord::stopped`]).
pub mod stop {
    /// An operator cancelled the running job.
    pub const CANCELLED: &str = "cancelled";
    /// The agent stopped; the job stopped at a step boundary and is queued again.
    pub const SHUTDOWN: &str = "shutdown";
    /// The agent stopped before the job reached a step boundary within the drain timeout.
    pub const SHUTDOWN_TIMEOUT: &str = "shutdown_timeout";
    /// The agent died while the job ran (found at start-up).
    pub const INTERRUPTED: &str = "interrupted";
}

/// `intake_dropped{reason}` and outcome reason of a job refused or evicted because its
/// cluster has `capacity_per_cluster` queued jobs.
pub const CLUSTER_QUEUE_FULL: &str = "cluster_queue_full";

struct CooldownView<'a>(&'a HashMap<TableKey, SystemTime>);

impl IntakeView for CooldownView<'_> {
    fn cooldown_until(&self, key: &TableKey) -> Option<SystemTime> {
        self.0.get(key).copied()
    }
}

/// The queue (share it as `Arc<Queue>`).
pub struct Queue {
    settings: QueueSettings,
    clock: Arc<dyn Clock>,
    metrics: Arc<AgentMetrics>,
    inner: Mutex<Inner>,
    notify: Notify,
    budget: Arc<RateBudget>,
    store: Arc<dyn JobStore>,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("settings", &self.settings)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

fn inc_reason(metrics: &AgentMetrics, reason: &str, by: u64) {
    metrics
        .intake_dropped
        .get_or_create(&ReasonLabels {
            reason: reason.to_owned(),
        })
        .inc_by(by);
}

fn inc_limit(metrics: &AgentMetrics, limit: &str) {
    metrics
        .rate_limited
        .get_or_create(&LimitLabels {
            limit: limit.to_owned(),
        })
        .inc();
}

impl Queue {
    /// A queue on the system clock.
    pub fn new(settings: QueueSettings, metrics: Arc<AgentMetrics>) -> Self {
        Self::with_clock(settings, metrics, Arc::new(SystemClock::default()))
    }

    /// A queue on the given clock.
    pub fn with_clock(
        settings: QueueSettings,
        metrics: Arc<AgentMetrics>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let first_id = settings.first_job_id.max(1);
        Self {
            budget: Arc::new(RateBudget::new(
                &settings,
                Arc::clone(&clock),
                Arc::clone(&metrics),
            )),
            store: Arc::new(MemoryStore::with_limits(HistoryLimits {
                max_jobs: settings.history,
                max_age: settings.history_max_age,
            })),
            settings,
            clock,
            metrics,
            inner: Mutex::new(Inner {
                next_id: first_id,
                ..Inner::default()
            }),
            notify: Notify::new(),
        }
    }

    /// Keeps its state in `store` (shared with the runner) instead of its own memory, and
    /// restores what the store holds: queued jobs (with their retry times), cool-downs and
    /// job ids. Jobs that were running when the agent stopped without draining (`kill -9`,
    /// a crash, a drain timeout) are queued again with `stopped: "interrupted"` — they start
    /// only after start-up recovery has run, because the workers start after it — unless
    /// they have used all their attempts, then they end `failed` (`interrupted`).
    #[must_use]
    pub fn with_store(mut self, store: Arc<dyn JobStore>) -> Self {
        self.store = store;
        self.restore();
        self
    }

    fn restore(&self) {
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.next_id = inner.next_id.max(self.store.max_job_id() + 1);
        for (key, until) in self.store.cooldowns(now) {
            inner.cooldowns.insert(key, until);
        }
        let (mut queued, mut interrupted) = (0usize, Vec::new());
        for job in self.store.active() {
            let mut entry = Entry::restored(job);
            if inner.by_table.contains_key(&entry.record.item.key) {
                continue;
            }
            if entry.record.state == JobState::Running {
                entry.record.stopped = Some(stop::INTERRUPTED.to_owned());
                if entry.record.attempts >= self.settings.retry.max_attempts {
                    entry.record.state = JobState::Finished;
                    entry.record.finished_at = Some(now);
                    entry.record.outcome = Some(JobOutcome::Failed {
                        kind: stop::INTERRUPTED.into(),
                        error: "the agent stopped while the job ran, on its last attempt".into(),
                        retryable: false,
                    });
                    self.store.save_finished(&entry.record);
                    continue;
                }
                entry.record.state = JobState::Queued;
                interrupted.push(entry.record.id);
            }
            queued += 1;
            Self::insert(&mut inner, entry);
        }
        if queued > 0 {
            tracing::info!(
                queued,
                interrupted = interrupted.len(),
                "Restored the queue from the state store."
            );
        }
        self.persist(&inner, interrupted);
        self.update_gauges(&inner);
    }

    /// Writes these active jobs to the store.
    fn persist(&self, inner: &Inner, ids: impl IntoIterator<Item = JobId>) {
        let jobs: Vec<ActiveJob> = ids
            .into_iter()
            .filter_map(|id| inner.active.get(&id))
            .map(Entry::stored)
            .collect();
        self.store.save_active(&jobs);
    }

    /// The settings.
    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<AgentMetrics> {
        &self.metrics
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The shared bytes-per-hour budget.
    pub fn budget(&self) -> Arc<RateBudget> {
        Arc::clone(&self.budget)
    }

    /// Wakes the worker loop (e.g. after advancing a manual clock).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent-enough state; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update_gauges(&self, inner: &Inner) {
        self.metrics
            .jobs_queued
            .set(i64::try_from(inner.queued).unwrap_or(i64::MAX));
        self.metrics
            .jobs_running
            .set(i64::try_from(inner.running).unwrap_or(i64::MAX));
    }

    fn new_entry(inner: &mut Inner, key: TableKey, dry_run: bool, now: SystemTime) -> Entry {
        let id = inner.next_id;
        inner.next_id += 1;
        Entry {
            record: JobRecord {
                id,
                item: WorkItem {
                    key,
                    partitions: BTreeSet::new(),
                    priority: 0,
                    fingerprints: BTreeSet::new(),
                    source: Source::Alert,
                    dry_run,
                },
                state: JobState::Queued,
                attempts: 0,
                created_at: now,
                started_at: None,
                finished_at: None,
                not_before: None,
                outcome: None,
                stopped: None,
            },
            origins: BTreeMap::new(),
            manual: None,
            overflow: false,
            waited: 0,
        }
    }

    fn insert(inner: &mut Inner, entry: Entry) -> JobId {
        let id = entry.record.id;
        inner.count_queued(&entry.record.item.key.cluster);
        inner.by_table.insert(entry.record.item.key.clone(), id);
        inner.active.insert(id, entry);
        id
    }

    /// Ensures there is room for a new job of `priority` on `cluster`, in the cluster's
    /// share first (`capacity_per_cluster`), then in the whole queue (`capacity`): at a
    /// bound, the weakest queued job under that bound (lowest priority, youngest among
    /// equals) is evicted if it is weaker than the new one; otherwise the new job is
    /// rejected, with the reason of the bound it hit.
    fn make_room(
        &self,
        inner: &mut Inner,
        cluster: &str,
        priority: u64,
        now: SystemTime,
    ) -> Result<(), &'static str> {
        let here = inner.queued_per_cluster.get(cluster).copied().unwrap_or(0);
        if here >= self.settings.capacity_per_cluster {
            return self.evict_weakest(inner, Some(cluster), priority, now, CLUSTER_QUEUE_FULL);
        }
        if inner.queued >= self.settings.capacity {
            return self.evict_weakest(inner, None, priority, now, reason::QUEUE_FULL);
        }
        Ok(())
    }

    fn evict_weakest(
        &self,
        inner: &mut Inner,
        cluster: Option<&str>,
        priority: u64,
        now: SystemTime,
        why: &'static str,
    ) -> Result<(), &'static str> {
        let victim = inner
            .active
            .values()
            .filter(|e| e.record.state == JobState::Queued)
            .filter(|e| cluster.is_none_or(|c| e.record.item.key.cluster == c))
            .min_by_key(|e| {
                (
                    e.record.item.priority,
                    std::cmp::Reverse(e.record.created_at),
                    std::cmp::Reverse(e.record.id),
                )
            })
            .map(|e| (e.record.id, e.record.item.priority));
        match victim {
            Some((id, p)) if p < priority => {
                self.end_queued(
                    inner,
                    id,
                    JobOutcome::Skipped {
                        reason: why.into(),
                        detail: "evicted by a higher-priority request while the queue was full"
                            .into(),
                    },
                    now,
                );
                inc_reason(&self.metrics, why, 1);
                Ok(())
            }
            _ => Err(why),
        }
    }

    /// Ends a queued job as cancelled.
    fn end_queued(&self, inner: &mut Inner, id: JobId, outcome: JobOutcome, now: SystemTime) {
        if let Some(mut entry) = inner.active.remove(&id) {
            inner.by_table.remove(&entry.record.item.key);
            inner.uncount_queued(&entry.record.item.key.cluster);
            entry.record.state = JobState::Cancelled;
            entry.record.finished_at = Some(now);
            entry.record.outcome = Some(outcome);
            self.store.save_finished(&entry.record);
        }
    }

    /// One job (active or in the history).
    pub fn get(&self, id: JobId) -> Option<JobRecord> {
        let inner = self.lock();
        inner
            .active
            .get(&id)
            .map(|e| e.record.clone())
            .or_else(|| self.store.finished(id))
    }

    /// The active job of a table.
    pub fn job_for(&self, key: &TableKey) -> Option<JobRecord> {
        let inner = self.lock();
        let id = inner.by_table.get(key)?;
        inner.active.get(id).map(|e| e.record.clone())
    }

    /// Jobs, newest first, optionally of one state, at most `limit`.
    pub fn list(&self, state: Option<JobState>, limit: usize) -> Vec<JobRecord> {
        let inner = self.lock();
        let mut out: Vec<JobRecord> = inner
            .active
            .values()
            .map(|e| &e.record)
            .filter(|r| state.is_none_or(|s| r.state == s))
            .cloned()
            .chain(self.store.recent(state, limit))
            .collect();
        out.sort_unstable_by_key(|r| std::cmp::Reverse(r.id));
        out.truncate(limit);
        out
    }

    /// Queued and running job counts.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.queued, inner.running)
    }

    /// End of a table's cool-down, if it is cooling down.
    pub fn cooldown_until(&self, key: &TableKey) -> Option<SystemTime> {
        let now = self.clock.now();
        self.lock().cooldowns.get(key).copied().filter(|t| *t > now)
    }
}

#[cfg(test)]
mod tests;
