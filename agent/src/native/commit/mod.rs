//! The commit protocol: stage, verify, write the manifest, re-list, swap, reconcile, commit —
//! and its inverse (rollback) and its recovery after a crash at any instant.
//!
//! Invariant: a reader of the partition directory sees exactly the old files or exactly the
//! new ones, never both and never a part. The swap is two renames on one filesystem
//! (`partition → <merge>/backup`, `<merge>/output → partition`); for the instant between them
//! the directory is absent (a reader listing it then gets "no such directory", which Hive,
//! Impala and Spark treat as an empty partition — or fail the query, depending on version).
//! Nothing else happens between the two renames.
//!
//! A file that arrives between the last re-list and the first rename travels with the old
//! directory into `backup/`; *reconcile* moves every such file back into the new partition
//! directory, so it is never lost. A source that changed in that instant (an append) makes
//! reconcile roll the swap back, because the merged output lacks its new rows.
//!
//! The steps live in one file each, all of them `impl` blocks of [`Committer`]:
//!
//! * `listing.rs` — what the partition holds: sources, carried and
//!   dropped hidden files, and the re-list comparison before the swap;
//! * `merge.rs` — the forward path: lock, recover earlier merges, stage, carry hidden files,
//!   verify, manifest, re-list, swap, reconcile;
//! * `verify.rs` — counting the rows of the staged output read back from the filesystem;
//! * `swap.rs` — the two-rename swap, reconcile after it and the `committed` marker;
//! * `rollback.rs` — undoing a committed merge (while its backup is retained);
//! * `recovery.rs` — bringing merge directories left by a crash to a consistent state
//!   (observe, then act on [`decide`](super::manifest::decide)'s answer), backup expiry;
//! * `io.rs` — filesystem helpers: existence, complete listings, whole-file reads.

mod io;
mod listing;
mod merge;
mod recovery;
mod rollback;
mod swap;
mod switch;
mod verify;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hive_smallfiles_core::fs::FileStatus;
use hive_smallfiles_core::fs::write::FileSystemWrite;
use serde::Serialize;

use super::error::NativeError;
use super::format;
use super::lock::Identity;
use super::manifest::{DirectoryAttributes, Writer};

pub use self::io::{READ_CHUNK, exists, list_all, read_file};

/// Settings of the protocol.
#[derive(Debug, Clone)]
pub struct CommitSettings {
    /// Who we are (lock files).
    pub identity: Identity,
    /// How long backups of committed merges are kept (rollback possible until then).
    pub backup_retention: Duration,
    /// Switch commits: how long the old directory stays untouched after the switch.
    pub switch_grace: Duration,
    /// Switch commits: how long after the switch inserts that may have looked the old
    /// location up are watched for (`switch.rs`).
    pub switch_settle: Duration,
    /// Local directory for spooling merged output before upload.
    pub spool_dir: PathBuf,
}

/// The partition a merge works on.
#[derive(Debug, Clone)]
pub struct Target {
    /// Cluster name.
    pub cluster: String,
    /// `database.table`.
    pub table: String,
    /// `PART_NAME` (empty for an unpartitioned table).
    pub partition: String,
    /// The partition directory (normalized absolute path).
    pub path: String,
}

/// The partition as listed at the start of a merge.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The directory's attributes.
    pub directory: DirectoryAttributes,
    /// Data files (visible names), sorted by name.
    pub sources: Vec<FileStatus>,
    /// Hidden files carried over unchanged.
    pub carried: Vec<FileStatus>,
    /// Hidden files dropped (checksums of sources).
    pub dropped: Vec<String>,
}

/// What a stage writer produced in `output/`.
#[derive(Debug, Clone)]
pub struct Staged {
    /// Who wrote it.
    pub writer: Writer,
    /// The format, when the agent wrote it.
    pub format: Option<format::NativeFormat>,
    /// Rows (or lines) the sources hold, as counted independently of the output.
    pub expected_rows: u64,
    /// How to count rows of the output files.
    pub verify_as: VerifyAs,
}

/// How output rows are counted for verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyAs {
    /// Lines of text (compression by file name).
    Text,
    /// Parquet footers.
    Parquet,
    /// ORC footers.
    Orc,
}

/// Writes the merged output of a partition into the staging `output/` directory.
#[async_trait::async_trait]
pub trait StageWriter: Send + Sync {
    /// Writes merged files of `listing.sources` into `output` (a directory that does not
    /// exist yet, in the staging area). Must not touch the partition.
    async fn write(
        &self,
        fs: &Arc<dyn FileSystemWrite>,
        target: &Target,
        listing: &Listing,
        output: &str,
        spool: &std::path::Path,
    ) -> Result<Staged, NativeError>;
}

/// The MetaStore side of switch commits: where a partition points, and switching it
/// (through the cluster's engine; the MetaStore database is never written directly).
/// Locations are normalized paths on the cluster's filesystem.
#[async_trait::async_trait]
pub trait Locations: Send + Sync {
    /// Where `table`'s partition `partition` (empty: the unpartitioned table) points now;
    /// `None` when it is gone.
    async fn current(&self, table: &str, partition: &str) -> Result<Option<String>, NativeError>;
    /// Points it at `to`.
    async fn switch(&self, table: &str, partition: &str, to: &str) -> Result<(), NativeError>;
}

/// What a switch commit needs besides the partition.
#[allow(missing_debug_implementations)]
pub struct SwitchTarget<'a> {
    /// The MetaStore side.
    pub locations: &'a dyn Locations,
    /// The table's location (partitioned tables: the new directories go under it).
    pub table_root: Option<String>,
}

/// Result of one committed merge.
#[derive(Debug, Clone, Serialize)]
pub struct MergeReport {
    /// How it was committed.
    pub commit: crate::policy::CommitMode,
    /// Switch commits: the partition's new location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_location: Option<String>,
    /// Merge id.
    pub merge_id: String,
    /// The merge directory (backup for rollback lives there).
    pub merge_dir: String,
    /// Files before.
    pub files_before: u64,
    /// Files after (outputs).
    pub files_after: u64,
    /// Bytes read.
    pub bytes_before: u64,
    /// Bytes written.
    pub bytes_after: u64,
    /// Rows (or lines).
    pub rows: u64,
    /// Files that arrived during the swap: moved from the backup into the new directory, or
    /// written into a partition directory a writer re-created between the two renames.
    pub arrived_during_swap: Vec<String>,
}

/// What recovery did with one merge directory.
#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    /// The merge directory.
    pub merge_dir: String,
    /// The action taken.
    pub action: &'static str,
    /// Error, when the action failed.
    pub error: Option<String>,
}

/// The protocol on one cluster's filesystem.
#[derive(Debug, Clone)]
pub struct Committer {
    fs: Arc<dyn FileSystemWrite>,
    settings: CommitSettings,
}

impl Committer {
    /// The protocol over `fs`.
    pub fn new(fs: Arc<dyn FileSystemWrite>, settings: CommitSettings) -> Self {
        Self { fs, settings }
    }

    /// The filesystem.
    pub fn fs(&self) -> &Arc<dyn FileSystemWrite> {
        &self.fs
    }
}
