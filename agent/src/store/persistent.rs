//! [`RedbStore`]: the agent's state in one `redb` database file. Every write is one ACID
//! transaction committed with `redb`'s default durability (fsync before the call returns; a
//! process killed at any point leaves the last committed state, and an interrupted commit is
//! repaired when the file is opened again). Values are JSON, so a record written by one
//! version is readable by the next as long as fields are only added.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{ActiveJob, CommittedMerge, HistoryLimits, JobStore, too_old};
use crate::metrics::AgentMetrics;
use crate::work::{JobId, JobRecord, JobState, TableKey};

/// Queued and running jobs by id.
const ACTIVE: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("active_jobs");
/// Finished jobs by id.
const HISTORY: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("history");
/// Committed merges (a JSON list) by job id.
const COMMITS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("commits");
/// Cool-down ends (milliseconds since the epoch) by table (its JSON).
const COOLDOWNS: TableDefinition<'_, &str, u64> = TableDefinition::new("cooldowns");
/// Counters: `max_job_id`.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

const MAX_JOB_ID: &str = "max_job_id";

/// Why the state store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created (another agent holds it, no
    /// permission, not a database).
    #[error("state store {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What `redb` said.
        #[source]
        source: redb::Error,
    },
    /// Its directory could not be created.
    #[error("state directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A transaction failed.
    #[error("state store: {0}")]
    Database(#[from] redb::Error),
    /// A stored value is not what this version writes.
    #[error("state store: undecodable record: {0}")]
    Decode(#[from] serde_json::Error),
}

impl StoreError {
    /// Disk errors may pass; a file held by another agent or a corrupt one needs an operator.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Database(redb::Error::Io(_)))
    }
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Database(e.into())
}

fn millis(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The state in a `redb` file (see the module docs).
#[derive(Debug)]
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    limits: HistoryLimits,
    metrics: Arc<AgentMetrics>,
}

impl RedbStore {
    /// The file name inside the state directory.
    pub const FILE: &'static str = "agent-state.redb";

    /// Opens (or creates) `<dir>/agent-state.redb`; a file left by a killed agent is
    /// repaired first. Fails if another process has it open.
    pub fn open(
        dir: &Path,
        limits: HistoryLimits,
        metrics: Arc<AgentMetrics>,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(Self::FILE);
        let db = Database::create(&path).map_err(|e| StoreError::Open {
            path: path.clone(),
            source: e.into(),
        })?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(ACTIVE).map_err(db_err)?;
        txn.open_table(HISTORY).map_err(db_err)?;
        txn.open_table(COMMITS).map_err(db_err)?;
        txn.open_table(COOLDOWNS).map_err(db_err)?;
        txn.open_table(META).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(Self {
            db,
            path,
            limits,
            metrics,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Logs and counts a failed operation; the queue carries on in memory.
    fn report<T>(&self, what: &str, r: Result<T, StoreError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!(error = %e, path = %self.path.display(), "State store: {what} failed.");
                self.metrics.state_store_errors.inc();
                None
            }
        }
    }

    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        f(&txn)?;
        txn.commit().map_err(db_err)
    }

    fn bump_max_id(txn: &redb::WriteTransaction, id: JobId) -> Result<(), StoreError> {
        let mut meta = txn.open_table(META).map_err(db_err)?;
        let current = meta
            .get(MAX_JOB_ID)
            .map_err(db_err)?
            .map_or(0, |v| v.value());
        if id > current {
            meta.insert(MAX_JOB_ID, id).map_err(db_err)?;
        }
        Ok(())
    }

    fn prune(&self, txn: &redb::WriteTransaction, now: SystemTime) -> Result<(), StoreError> {
        let mut history = txn.open_table(HISTORY).map_err(db_err)?;
        let mut commits = txn.open_table(COMMITS).map_err(db_err)?;
        let max = self.limits.max_jobs as u64;
        loop {
            let over = history.len().map_err(db_err)? > max;
            let oldest = history
                .first()
                .map_err(db_err)?
                .map(|(k, v)| (k.value(), serde_json::from_slice::<JobRecord>(v.value())));
            let Some((id, record)) = oldest else {
                break;
            };
            // An undecodable record is pruned as if old.
            let old = record
                .as_ref()
                .map_or(true, |r| too_old(r, self.limits, now));
            if !over && !old {
                break;
            }
            history.remove(id).map_err(db_err)?;
            commits.remove(id).map_err(db_err)?;
        }
        Ok(())
    }

    fn read_history(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(HISTORY).map_err(db_err)?;
        let Some(v) = t.get(id).map_err(db_err)? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(v.value())?))
    }
}

impl JobStore for RedbStore {
    fn save_active(&self, jobs: &[ActiveJob]) {
        if jobs.is_empty() {
            return;
        }
        let r = self.write(|txn| {
            let mut t = txn.open_table(ACTIVE).map_err(db_err)?;
            let mut max = 0;
            for j in jobs {
                let bytes = serde_json::to_vec(j)?;
                t.insert(j.record.id, bytes.as_slice()).map_err(db_err)?;
                max = max.max(j.record.id);
            }
            drop(t);
            Self::bump_max_id(txn, max)
        });
        self.report("saving queued jobs", r);
    }

    fn active(&self) -> Vec<ActiveJob> {
        let r = (|| {
            let txn = self.db.begin_read().map_err(db_err)?;
            let t = txn.open_table(ACTIVE).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in t.iter().map_err(db_err)? {
                let (k, v) = entry.map_err(db_err)?;
                match serde_json::from_slice::<ActiveJob>(v.value()) {
                    Ok(j) => out.push(j),
                    Err(e) => {
                        tracing::error!(job = k.value(), error = %e, "State store: a queued job cannot be read; skipped.")
                    }
                }
            }
            Ok(out)
        })();
        self.report("reading queued jobs", r).unwrap_or_default()
    }

    fn save_finished(&self, record: &JobRecord) {
        let r = self.write(|txn| {
            let mut active = txn.open_table(ACTIVE).map_err(db_err)?;
            active.remove(record.id).map_err(db_err)?;
            drop(active);
            Self::bump_max_id(txn, record.id)?;
            if self.limits.max_jobs == 0 {
                return Ok(());
            }
            let bytes = serde_json::to_vec(record)?;
            let mut history = txn.open_table(HISTORY).map_err(db_err)?;
            history
                .insert(record.id, bytes.as_slice())
                .map_err(db_err)?;
            drop(history);
            self.prune(txn, record.finished_at.unwrap_or_else(SystemTime::now))
        });
        self.report("saving a finished job", r);
    }

    fn finished(&self, id: JobId) -> Option<JobRecord> {
        let r = self.read_history(id);
        self.report("reading a finished job", r).flatten()
    }

    fn recent(&self, state: Option<JobState>, limit: usize) -> Vec<JobRecord> {
        let r = (|| {
            let txn = self.db.begin_read().map_err(db_err)?;
            let t = txn.open_table(HISTORY).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in t.iter().map_err(db_err)?.rev() {
                if out.len() >= limit {
                    break;
                }
                let (_, v) = entry.map_err(db_err)?;
                let Ok(rec) = serde_json::from_slice::<JobRecord>(v.value()) else {
                    continue;
                };
                if state.is_none_or(|s| rec.state == s) {
                    out.push(rec);
                }
            }
            Ok(out)
        })();
        self.report("reading the history", r).unwrap_or_default()
    }

    fn add_commit(&self, job: JobId, merge: CommittedMerge) {
        let r = self.write(|txn| {
            let mut t = txn.open_table(COMMITS).map_err(db_err)?;
            let mut list: Vec<CommittedMerge> = match t.get(job).map_err(db_err)? {
                Some(v) => serde_json::from_slice(v.value())?,
                None => Vec::new(),
            };
            list.push(merge);
            let bytes = serde_json::to_vec(&list)?;
            t.insert(job, bytes.as_slice()).map_err(db_err)?;
            Ok(())
        });
        self.report("recording a committed merge", r);
    }

    fn commits(&self, job: JobId) -> Vec<CommittedMerge> {
        let r = (|| {
            let txn = self.db.begin_read().map_err(db_err)?;
            let t = txn.open_table(COMMITS).map_err(db_err)?;
            Ok(match t.get(job).map_err(db_err)? {
                Some(v) => serde_json::from_slice(v.value())?,
                None => Vec::new(),
            })
        })();
        self.report("reading committed merges", r)
            .unwrap_or_default()
    }

    fn save_cooldown(&self, key: &TableKey, until: SystemTime) {
        let r = self.write(|txn| {
            let mut t = txn.open_table(COOLDOWNS).map_err(db_err)?;
            let now = millis(SystemTime::now());
            t.retain(|_, end| end > now).map_err(db_err)?;
            let k = serde_json::to_string(key)?;
            t.insert(k.as_str(), millis(until)).map_err(db_err)?;
            Ok(())
        });
        self.report("saving a cool-down", r);
    }

    fn cooldowns(&self, now: SystemTime) -> Vec<(TableKey, SystemTime)> {
        let r = (|| {
            let txn = self.db.begin_read().map_err(db_err)?;
            let t = txn.open_table(COOLDOWNS).map_err(db_err)?;
            let now = millis(now);
            let mut out = Vec::new();
            for entry in t.iter().map_err(db_err)? {
                let (k, v) = entry.map_err(db_err)?;
                if v.value() <= now {
                    continue;
                }
                if let Ok(key) = serde_json::from_str::<TableKey>(k.value()) {
                    out.push((key, from_millis(v.value())));
                }
            }
            Ok(out)
        })();
        self.report("reading cool-downs", r).unwrap_or_default()
    }

    fn max_job_id(&self) -> JobId {
        let r = (|| {
            let txn = self.db.begin_read().map_err(db_err)?;
            let t = txn.open_table(META).map_err(db_err)?;
            Ok(t.get(MAX_JOB_ID).map_err(db_err)?.map_or(0, |v| v.value()))
        })();
        self.report("reading the last job id", r).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    use crate::store::tests::record;

    fn open(dir: &Path, max_jobs: usize) -> RedbStore {
        RedbStore::open(
            dir,
            HistoryLimits {
                max_jobs,
                max_age: Duration::from_secs(3600),
            },
            Arc::new(AgentMetrics::new()),
        )
        .unwrap()
    }

    #[test]
    fn state_survives_reopening_and_history_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let finished = |id: JobId, at: SystemTime| {
            let mut r = record(id, JobState::Finished);
            r.finished_at = Some(at);
            r
        };
        {
            let s = open(dir.path(), 3);
            let mut queued = record(20, JobState::Queued);
            queued.not_before = Some(now + Duration::from_secs(60));
            s.save_active(&[ActiveJob {
                record: queued,
                origins: BTreeMap::new(),
                manual: Some((BTreeSet::new(), 7)),
                overflow: false,
            }]);
            // Job 1 finished two hours ago: beyond the age limit at the next write.
            s.save_finished(&finished(1, now - Duration::from_secs(7200)));
            for id in 1..=5 {
                s.add_commit(
                    id,
                    CommittedMerge {
                        cluster: "c".into(),
                        partition: format!("p{id}"),
                        merge_dir: format!("m{id}"),
                    },
                );
            }
            s.save_finished(&finished(2, now));
            s.save_finished(&finished(3, now));
            let ids: Vec<JobId> = s.recent(None, 10).iter().map(|r| r.id).collect();
            assert_eq!(ids, [3, 2], "job 1 pruned by age");
            s.save_finished(&finished(4, now));
            s.save_finished(&finished(5, now));
            let key = record(1, JobState::Finished).item.key;
            s.save_cooldown(&key, now + Duration::from_secs(600));
        }
        let s = open(dir.path(), 3);
        let active = s.active();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].record.id, 20);
        assert_eq!(active[0].manual, Some((BTreeSet::new(), 7)));
        let ids: Vec<JobId> = s.recent(None, 10).iter().map(|r| r.id).collect();
        assert_eq!(ids, [5, 4, 3], "three jobs at most");
        assert_eq!(s.finished(4).unwrap().id, 4);
        assert_eq!(s.commits(5)[0].merge_dir, "m5");
        assert!(s.commits(2).is_empty(), "pruned with its history entry");
        assert_eq!(s.cooldowns(now).len(), 1);
        assert!(s.cooldowns(now + Duration::from_secs(601)).is_empty());
        assert_eq!(s.max_job_id(), 20);
        // Finishing a queued job moves it from the active jobs to the history.
        s.save_finished(&finished(20, now));
        assert!(s.active().is_empty());
        assert_eq!(s.recent(Some(JobState::Finished), 1)[0].id, 20);
    }

    #[test]
    fn a_second_agent_cannot_open_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let _first = open(dir.path(), 10);
        let second = RedbStore::open(
            dir.path(),
            HistoryLimits::default(),
            Arc::new(AgentMetrics::new()),
        );
        assert!(matches!(second, Err(StoreError::Open { .. })), "{second:?}");
    }
}
