//! Domain types shared by the agent's stages: what a merge request is (a [`WorkItem`]), how
//! the queue tracks it (a [`JobRecord`]), how it ends (a [`JobOutcome`]), and the two seams
//! between the queue and the rest: [`JobRunner`] (plans and executes one job) and
//! [`MergeBudget`] (the rate limits a runner takes from when a merge really starts).

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// A table, as alerts and the exporter name it. `database` is the exporter's `database`
/// label: the plain name in catalog `hive`, `@<catalog>#<database>` in other catalogs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableKey {
    /// Cluster name (as configured in both the exporter and the agent).
    pub cluster: String,
    /// Database label.
    pub database: String,
    /// Table name.
    pub table: String,
}

impl TableKey {
    /// Catalog and database name, parsed from the `database` label.
    pub fn catalog_and_database(&self) -> (&str, &str) {
        if let Some(rest) = self.database.strip_prefix('@')
            && let Some((catalog, db)) = rest.split_once('#')
        {
            return (catalog, db);
        }
        ("hive", &self.database)
    }
}

impl fmt::Display for TableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}.{}", self.cluster, self.database, self.table)
    }
}

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// An Alertmanager webhook.
    Alert,
    /// `POST /api/v1/merges` or the CLI.
    Manual,
}

/// A request to merge (part of) one table; duplicates of the same table fold into one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItem {
    /// The table.
    pub key: TableKey,
    /// Partition names (`k1=v1/k2=v2`, as in `PART_NAME`) the alerts named; empty: let the
    /// planner choose among all partitions.
    pub partitions: BTreeSet<String>,
    /// Ordering hint only (e.g. the alert's excess files); never trusted for decisions.
    pub priority: u64,
    /// Fingerprints of the alerts folded into this item.
    pub fingerprints: BTreeSet<String>,
    /// Where it came from.
    pub source: Source,
    /// Plan and report, but change nothing.
    pub dry_run: bool,
}

/// Queue-assigned job id.
pub type JobId = u64;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its turn, a rate limit or a retry time.
    Queued,
    /// Being planned or executed.
    Running,
    /// Finished; see the outcome.
    Finished,
    /// Cancelled while queued.
    Cancelled,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum JobOutcome {
    /// Merged and verified.
    Merged {
        /// Strategy label (`native`, `engine_staged`, `insert_overwrite`, `concatenate`,
        /// `compact_major`).
        strategy: String,
        /// Partitions merged.
        partitions: u32,
        /// Files before (rescan).
        files_before: u64,
        /// Files after (rescan).
        files_after: u64,
        /// Bytes rewritten.
        bytes_rewritten: u64,
        /// The job stopped at a step boundary (its cancellation token fired) before its
        /// last planned partition: `partitions` is what it merged so far.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        stopped_early: bool,
    },
    /// Dry run: the plan that would have run.
    DryRun {
        /// Strategy label.
        strategy: String,
        /// Partitions that would be merged.
        partitions: u32,
    },
    /// Not merged, by policy or because nothing was worth merging (not an error).
    Skipped {
        /// Bounded reason label (`policy_view`, `quiet_period`, `nothing_to_merge`...).
        reason: String,
        /// Human detail.
        detail: String,
    },
    /// Failed; the original files are in place unless the detail says otherwise.
    Failed {
        /// Bounded error kind label.
        kind: String,
        /// Human detail.
        error: String,
        /// Whether the queue may retry it.
        retryable: bool,
    },
}

impl JobOutcome {
    /// The `result` label of metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Merged { .. } => "merged",
            Self::DryRun { .. } => "dry_run",
            Self::Skipped { .. } => "skipped",
            Self::Failed { .. } => "failed",
        }
    }
}

/// A job as the queue tracks it (and the API shows it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Id.
    pub id: JobId,
    /// The request.
    pub item: WorkItem,
    /// Current state.
    pub state: JobState,
    /// Attempts started so far.
    pub attempts: u32,
    /// When it was queued.
    #[serde(with = "unix_seconds")]
    pub created_at: SystemTime,
    /// When the last attempt started.
    #[serde(with = "unix_seconds_opt", default)]
    pub started_at: Option<SystemTime>,
    /// When it finished or was cancelled.
    #[serde(with = "unix_seconds_opt", default)]
    pub finished_at: Option<SystemTime>,
    /// Not before this time (retry backoff, rate limits).
    #[serde(with = "unix_seconds_opt", default)]
    pub not_before: Option<SystemTime>,
    /// The last attempt's outcome.
    pub outcome: Option<JobOutcome>,
    /// Why the last attempt stopped before its end, at a step boundary (between partitions,
    /// never inside a partition's merge): `cancelled` (an operator), `shutdown` (the agent
    /// stopped; the job is queued again and continues after the restart),
    /// `shutdown_timeout` (the agent stopped before the job reached a step boundary within
    /// the drain timeout) or `interrupted` (the agent died while the job ran); the last two
    /// are queued again after start-up recovery has run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// Why the merge budget refused a start: the limit (a `rate_limited_total` label) and how
/// long until the start would be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetRefusal {
    /// `global_rate`, `cluster_rate` or `bytes`.
    pub limit: &'static str,
    /// Until the limit would admit it.
    pub wait: Duration,
}

/// The merge budget (merges and bytes per hour, global and per cluster). A runner calls
/// [`MergeBudget::try_start`] once per job, right before it changes anything: jobs that end
/// without merging spend nothing.
pub trait MergeBudget: Send + Sync {
    /// Takes one merge start and `bytes` for `cluster` from every limit, or nothing from any
    /// of them when one refuses.
    fn try_start(&self, cluster: &str, bytes: u64) -> Result<(), BudgetRefusal>;
}

/// A budget that never says no (tests, the `plan` command).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unlimited;

impl MergeBudget for Unlimited {
    fn try_start(&self, _cluster: &str, _bytes: u64) -> Result<(), BudgetRefusal> {
        Ok(())
    }
}

/// Plans and executes one job. Implementations stop only at safe points when `cancel` fires
/// (never in the middle of a swap) and report everything in the outcome.
#[async_trait::async_trait]
pub trait JobRunner: Send + Sync + fmt::Debug {
    /// Runs one attempt of `job`.
    async fn run(
        &self,
        job: &JobRecord,
        budget: &dyn MergeBudget,
        cancel: &CancellationToken,
    ) -> JobOutcome;

    /// The plan for a table without executing anything (`GET /api/v1/plan`), as JSON.
    async fn preview(&self, key: &TableKey) -> Result<serde_json::Value, String>;

    /// Rolls back the committed staged merges of a finished job
    /// (`POST /api/v1/merges/{id}/rollback`).
    async fn rollback(&self, job: &JobRecord) -> Result<serde_json::Value, String> {
        Err(format!(
            "job {} cannot be rolled back by this runner",
            job.id
        ))
    }
}

mod unix_seconds {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(
            t.duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        )
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let secs = f64::deserialize(d)?;
        Ok(UNIX_EPOCH + Duration::from_secs_f64(secs.max(0.0)))
    }
}

mod unix_seconds_opt {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)]
    pub(crate) fn serialize<S: Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_f64(
                t.duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
            ),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        Ok(
            Option::<f64>::deserialize(d)?
                .map(|s| UNIX_EPOCH + Duration::from_secs_f64(s.max(0.0))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_from_database_label() {
        let k = |d: &str| TableKey {
            cluster: "c".into(),
            database: d.into(),
            table: "t".into(),
        };
        assert_eq!(k("sales").catalog_and_database(), ("hive", "sales"));
        assert_eq!(k("@spark#sales").catalog_and_database(), ("spark", "sales"));
        assert_eq!(k("@odd").catalog_and_database(), ("hive", "@odd"));
    }
}
