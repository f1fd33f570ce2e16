//! The agent's state behind a small trait, so that the queue (active jobs, cool-downs,
//! history for the API) and the executor (rollback by job id) do not depend on where it
//! lives: [`RedbStore`] keeps it in an embedded ACID database file that survives restarts
//! and `kill -9`; [`MemoryStore`] keeps it in memory (tests, embedding).
//!
//! What is kept: every queued or running job with what backs it (alert fingerprints, manual
//! request), written in the same call that changes it in the queue; the tables' cool-downs;
//! finished jobs, bounded by count and by age; the merges each job committed (pruned with
//! the job's history entry).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::work::{JobId, JobRecord, JobState, TableKey};

mod persistent;

pub use persistent::{RedbStore, StoreError};

/// One partition merge a job committed through the staged commit protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedMerge {
    /// Cluster name.
    pub cluster: String,
    /// Partition name (empty for an unpartitioned table).
    pub partition: String,
    /// The merge directory that holds the backup.
    pub merge_dir: String,
}

/// One firing alert's contribution to a queued job, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOrigin {
    /// The partition it names; `None`: the whole table.
    pub partition: Option<String>,
    /// Its priority.
    pub priority: u64,
}

/// A queued or running job with what backs it: enough to rebuild the queue after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveJob {
    /// The record.
    pub record: JobRecord,
    /// Alert fingerprint → what it asked for.
    pub origins: BTreeMap<String, StoredOrigin>,
    /// A manual request: its partitions (empty: whole table) and priority.
    pub manual: Option<(BTreeSet<String>, u64)>,
    /// Too many fingerprints: whole table.
    pub overflow: bool,
}

/// How much history to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Finished jobs at most.
    pub max_jobs: usize,
    /// Finished jobs older than this (by finish time) are pruned.
    pub max_age: Duration,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        Self {
            max_jobs: 1000,
            max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Where the agent's state lives. Writes are durable when they return (for stores that
/// persist); a write that fails is logged and counted by the implementation, and the queue
/// goes on in memory.
pub trait JobStore: Send + Sync + fmt::Debug {
    /// Records queued or running jobs (replacing earlier records of them).
    fn save_active(&self, jobs: &[ActiveJob]);
    /// Queued or running jobs as last saved, by id.
    fn active(&self) -> Vec<ActiveJob>;
    /// Records a job that finished or was cancelled (replacing an earlier record of it and
    /// removing it from the active jobs), and prunes the history.
    fn save_finished(&self, record: &JobRecord);
    /// A finished job.
    fn finished(&self, id: JobId) -> Option<JobRecord>;
    /// Finished jobs, newest first, optionally of one state, at most `limit`.
    fn recent(&self, state: Option<JobState>, limit: usize) -> Vec<JobRecord>;
    /// Records a merge a job committed.
    fn add_commit(&self, job: JobId, merge: CommittedMerge);
    /// The merges a job committed, in commit order.
    fn commits(&self, job: JobId) -> Vec<CommittedMerge>;
    /// Records the end of a table's cool-down (expired ones are pruned).
    fn save_cooldown(&self, key: &TableKey, until: SystemTime);
    /// Cool-downs that have not ended at `now`.
    fn cooldowns(&self, now: SystemTime) -> Vec<(TableKey, SystemTime)>;
    /// The highest job id the store has seen (active or finished), 0 if none.
    fn max_job_id(&self) -> JobId;
}

/// Whether a finished record is beyond the age limit.
fn too_old(r: &JobRecord, limits: HistoryLimits, now: SystemTime) -> bool {
    r.finished_at
        .and_then(|f| now.duration_since(f).ok())
        .is_some_and(|age| age > limits.max_age)
}

/// In-memory store (tests, embedding): the same bounds, nothing survives the process.
#[derive(Debug)]
pub struct MemoryStore {
    limits: HistoryLimits,
    inner: Mutex<Records>,
}

#[derive(Debug, Default)]
struct Records {
    active: BTreeMap<JobId, ActiveJob>,
    finished: BTreeMap<JobId, JobRecord>,
    commits: BTreeMap<JobId, Vec<CommittedMerge>>,
    cooldowns: HashMap<TableKey, SystemTime>,
    max_id: JobId,
}

impl MemoryStore {
    /// A store remembering the last `history` jobs (and at most 30 days of them).
    pub fn new(history: usize) -> Self {
        Self::with_limits(HistoryLimits {
            max_jobs: history,
            ..HistoryLimits::default()
        })
    }

    /// A store with these history bounds.
    pub fn with_limits(limits: HistoryLimits) -> Self {
        Self {
            limits,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl JobStore for MemoryStore {
    fn save_active(&self, jobs: &[ActiveJob]) {
        let mut r = self.lock();
        for j in jobs {
            r.max_id = r.max_id.max(j.record.id);
            r.active.insert(j.record.id, j.clone());
        }
    }

    fn active(&self) -> Vec<ActiveJob> {
        self.lock().active.values().cloned().collect()
    }

    fn save_finished(&self, record: &JobRecord) {
        let mut r = self.lock();
        r.active.remove(&record.id);
        r.max_id = r.max_id.max(record.id);
        if self.limits.max_jobs == 0 {
            return;
        }
        r.finished.insert(record.id, record.clone());
        let now = record.finished_at.unwrap_or_else(SystemTime::now);
        while r.finished.len() > self.limits.max_jobs
            || r.finished
                .first_key_value()
                .is_some_and(|(_, f)| too_old(f, self.limits, now))
        {
            if let Some((id, _)) = r.finished.pop_first() {
                r.commits.remove(&id);
            }
        }
    }

    fn finished(&self, id: JobId) -> Option<JobRecord> {
        self.lock().finished.get(&id).cloned()
    }

    fn recent(&self, state: Option<JobState>, limit: usize) -> Vec<JobRecord> {
        self.lock()
            .finished
            .values()
            .rev()
            .filter(|r| state.is_none_or(|s| r.state == s))
            .take(limit)
            .cloned()
            .collect()
    }

    fn add_commit(&self, job: JobId, merge: CommittedMerge) {
        let mut r = self.lock();
        r.commits.entry(job).or_default().push(merge);
        while r.commits.len() > self.limits.max_jobs.max(1) {
            r.commits.pop_first();
        }
    }

    fn commits(&self, job: JobId) -> Vec<CommittedMerge> {
        self.lock().commits.get(&job).cloned().unwrap_or_default()
    }

    fn save_cooldown(&self, key: &TableKey, until: SystemTime) {
        let mut r = self.lock();
        if r.cooldowns.len() >= 4096 {
            let now = SystemTime::now();
            r.cooldowns.retain(|_, u| *u > now);
        }
        r.cooldowns.insert(key.clone(), until);
    }

    fn cooldowns(&self, now: SystemTime) -> Vec<(TableKey, SystemTime)> {
        self.lock()
            .cooldowns
            .iter()
            .filter(|(_, u)| **u > now)
            .map(|(k, u)| (k.clone(), *u))
            .collect()
    }

    fn max_job_id(&self) -> JobId {
        self.lock().max_id
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::work::{Source, TableKey, WorkItem};

    pub(crate) fn record(id: JobId, state: JobState) -> JobRecord {
        JobRecord {
            id,
            item: WorkItem {
                key: TableKey {
                    cluster: "c".into(),
                    database: "d".into(),
                    table: "t".into(),
                },
                partitions: Default::default(),
                priority: 0,
                fingerprints: Default::default(),
                source: Source::Manual,
                dry_run: false,
            },
            state,
            attempts: 1,
            created_at: SystemTime::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
            not_before: None,
            outcome: None,
            stopped: None,
        }
    }

    #[test]
    fn keeps_the_last_jobs_newest_first() {
        let s = MemoryStore::new(2);
        s.save_finished(&record(1, JobState::Finished));
        s.save_finished(&record(2, JobState::Cancelled));
        s.save_finished(&record(3, JobState::Finished));
        assert!(s.finished(1).is_none());
        let ids: Vec<JobId> = s.recent(None, 10).iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![3, 2]);
        let finished: Vec<JobId> = s
            .recent(Some(JobState::Finished), 10)
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(finished, vec![3]);
    }

    #[test]
    fn commits_per_job_in_order() {
        let s = MemoryStore::new(10);
        let m = |p: &str| CommittedMerge {
            cluster: "c".into(),
            partition: p.into(),
            merge_dir: format!("/w/.hive-smallfiles.{p}/m"),
        };
        s.add_commit(7, m("a"));
        s.add_commit(7, m("b"));
        assert_eq!(s.commits(7), vec![m("a"), m("b")]);
        assert!(s.commits(8).is_empty());
    }
}
