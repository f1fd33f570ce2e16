//! What happens to a job, as typed events: every step the executor takes is one [`JobEvent`],
//! written as one line of the audit log (`{"ts": …, "job": …, "event": "<name>", …fields}`).
//! The event names and fields are the audit log's documented format; adding a field is
//! compatible, renaming one is not.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::native::MergeReport;
use crate::plan::MergePlan;
use crate::work::{JobOutcome, Source, TableKey};

/// One step of a job (or of recovery, which is job 0).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JobEvent<'a> {
    /// An attempt started.
    Started {
        /// The table.
        table: &'a TableKey,
        /// Attempt number (1-based).
        attempt: u32,
        /// Plan only.
        dry_run: bool,
    },
    /// The plan made from the live MetaStore row and listing.
    Planned {
        /// The plan.
        plan: &'a MergePlan,
        /// Where the request came from.
        source: Source,
        /// Alert fingerprints folded into the job.
        fingerprints: &'a BTreeSet<String>,
    },
    /// A dry run: the statements that would have been sent.
    DryRun {
        /// Statements, in order.
        statements: Vec<String>,
    },
    /// Not merged, by policy or because nothing was worth it.
    Skipped {
        /// Bounded reason label.
        reason: &'a str,
        /// Human detail.
        detail: &'a str,
    },
    /// A statement sent to the engine.
    Statement {
        /// The SQL.
        sql: &'a str,
    },
    /// Row counts around an in-place engine merge of one partition.
    RowCount {
        /// Partition name.
        partition: &'a str,
        /// `count(*)` before.
        before: i64,
        /// `count(*)` after.
        after: i64,
    },
    /// One partition merged in place by the engine.
    PartitionMerged {
        /// Partition name.
        partition: &'a str,
        /// Wall time.
        seconds: f64,
    },
    /// The job stopped early at a step boundary.
    Stopped {
        /// Why (`cancelled`: by shutdown or an operator's cancel).
        reason: &'a str,
        /// Partitions merged before stopping.
        merged_partitions: usize,
    },
    /// A staged merge of one partition failed; its original files are in place.
    PartitionFailed {
        /// Partition name.
        partition: &'a str,
        /// Bounded reason label.
        reason: &'a str,
        /// Human detail.
        error: String,
        /// Partitions committed before this one.
        merged_partitions: usize,
    },
    /// A staged merge of one partition committed.
    Committed {
        /// Cluster name (rollback needs it).
        cluster: &'a str,
        /// Partition name.
        partition: &'a str,
        /// What the commit protocol did.
        report: &'a MergeReport,
        /// Wall time.
        seconds: f64,
    },
    /// Files counted again after in-place engine merges.
    Rescanned {
        /// Files of the merged partitions before.
        files_before: u64,
        /// Files of the merged partitions after.
        files_after: u64,
        /// Files of every planned partition before.
        files_before_all_planned: u64,
    },
    /// The attempt failed.
    Failed {
        /// Bounded error kind label.
        kind: &'a str,
        /// Human detail.
        error: &'a str,
        /// Whether the queue may retry it.
        retryable: bool,
    },
    /// The attempt ended.
    Finished {
        /// Its outcome.
        outcome: &'a JobOutcome,
    },
    /// One committed merge of a job rolled back (API).
    Rollback {
        /// The merge directory.
        merge_dir: &'a str,
        /// The action taken, or the error.
        result: Result<&'static str, String>,
    },
    /// A merge directory rolled back by hand (CLI).
    RolledBack {
        /// Cluster name.
        cluster: &'a str,
        /// The merge directory.
        merge_dir: &'a str,
        /// The action taken.
        action: &'static str,
    },
    /// A recovery pass over every staging area.
    Recovery {
        /// What was found and done.
        results: &'a [RecoveryEntry],
    },
}

/// What one recovery pass found in one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveryEntry {
    /// Cluster name.
    pub cluster: String,
    /// The staging area (`<parent>/.hive-smallfiles.<leaf>`), when one was examined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    /// The merge directory, when one was acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_dir: Option<String>,
    /// The action taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    /// Why it could not be recovered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
