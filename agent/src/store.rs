//! The agent's record of finished jobs and of the merges each job committed, behind a small
//! trait so that the queue (history for the API) and the executor (rollback by job id) do
//! not depend on where records live. [`MemoryStore`] keeps them in memory: after a restart
//! a committed merge is rolled back by its merge directory (`rollback --merge-dir`).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

use crate::work::{JobId, JobRecord, JobState};

/// One partition merge a job committed through the staged commit protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommittedMerge {
    /// Cluster name.
    pub cluster: String,
    /// Partition name (empty for an unpartitioned table).
    pub partition: String,
    /// The merge directory that holds the backup.
    pub merge_dir: String,
}

/// Where finished job records and committed merges live.
pub trait JobStore: Send + Sync + fmt::Debug {
    /// Records a job that finished or was cancelled (replacing an earlier record of it).
    fn save_finished(&self, record: &JobRecord);
    /// A finished job.
    fn finished(&self, id: JobId) -> Option<JobRecord>;
    /// Finished jobs, newest first, optionally of one state, at most `limit`.
    fn recent(&self, state: Option<JobState>, limit: usize) -> Vec<JobRecord>;
    /// Records a merge a job committed.
    fn add_commit(&self, job: JobId, merge: CommittedMerge);
    /// The merges a job committed, in commit order.
    fn commits(&self, job: JobId) -> Vec<CommittedMerge>;
}

/// In-memory store keeping the last `history` finished jobs and the commits of the last
/// `history` jobs that committed any.
#[derive(Debug)]
pub struct MemoryStore {
    history: usize,
    inner: Mutex<Records>,
}

#[derive(Debug, Default)]
struct Records {
    finished: VecDeque<JobRecord>,
    commits: BTreeMap<JobId, Vec<CommittedMerge>>,
}

impl MemoryStore {
    /// A store remembering the last `history` jobs.
    pub fn new(history: usize) -> Self {
        Self {
            history,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl JobStore for MemoryStore {
    fn save_finished(&self, record: &JobRecord) {
        if self.history == 0 {
            return;
        }
        let mut r = self.lock();
        r.finished.retain(|x| x.id != record.id);
        while r.finished.len() >= self.history {
            r.finished.pop_front();
        }
        r.finished.push_back(record.clone());
    }

    fn finished(&self, id: JobId) -> Option<JobRecord> {
        self.lock().finished.iter().find(|r| r.id == id).cloned()
    }

    fn recent(&self, state: Option<JobState>, limit: usize) -> Vec<JobRecord> {
        self.lock()
            .finished
            .iter()
            .rev()
            .filter(|r| state.is_none_or(|s| r.state == s))
            .take(limit)
            .cloned()
            .collect()
    }

    fn add_commit(&self, job: JobId, merge: CommittedMerge) {
        let mut r = self.lock();
        r.commits.entry(job).or_default().push(merge);
        while r.commits.len() > self.history.max(1) {
            r.commits.pop_first();
        }
    }

    fn commits(&self, job: JobId) -> Vec<CommittedMerge> {
        self.lock().commits.get(&job).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::work::{Source, TableKey, WorkItem};

    fn record(id: JobId, state: JobState) -> JobRecord {
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
