//! The immutable result of one cluster scan, as `/metrics` and reports read it.
//!
//! A scan builds a new [`ClusterSnapshot`] and swaps it in whole at the end; readers hold an
//! `Arc` to whatever was current when they started, so nothing is ever half-updated.

use std::collections::BTreeMap;

use hive_smallfiles_core::fs::EndpointProbe;
use hive_smallfiles_core::metastore::SchemaInfo;
use hive_smallfiles_core::walk::counts::FileCounts;

/// Statistics of one scanned table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStats {
    /// Catalog (`hive` on Hive 1/2).
    pub catalog: String,
    /// Database as exported in the `database` label: the plain name in the `hive` catalog,
    /// `@<catalog>#<database>` in any other (Hive's catalog-qualified form, HIVE-18755).
    pub database: String,
    /// Table name.
    pub table: String,
    /// File format label.
    pub format: &'static str,
    /// Compression label (declared codec, else the dominant file suffix, else `none` for
    /// text and `unknown` otherwise).
    pub compression: String,
    /// Table type label.
    pub table_type: &'static str,
    /// Transactional label.
    pub transactional: &'static str,
    /// Table location as stored in the MetaStore.
    pub location: String,
    /// Partitions in the MetaStore (0 for unpartitioned tables).
    pub partitions: u64,
    /// Counts over all listed partition directories.
    pub counts: FileCounts,
    /// Sum over partitions of what a perfect merge would remove.
    pub excess_files: u64,
    /// Partitions (or the table) whose directory does not exist.
    pub missing_directories: u64,
    /// What lies below a partitioned table's location that no partition points at; `None`
    /// when not looked at (unpartitioned tables, the view turned off, a table location not on
    /// this cluster).
    pub unreferenced: Option<Unreferenced>,
}

/// Data below a partitioned table's location that no partition points at ("dark data"):
/// partition directories written but never registered, the old directory of a partition whose
/// location was switched, stray files in the table directory. Hidden entries (`.…`, `_…`) are
/// not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unreferenced {
    /// Outermost directories no partition points at.
    pub directories: u64,
    /// Visible files in them, recursively, and directly in directories that hold partitions.
    pub files: u64,
    /// Their logical bytes.
    pub bytes: u64,
}

/// How the tables of one scan ended up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableResults {
    /// Listed completely.
    pub scanned: u64,
    /// Not listed by nature (views, storage handlers, foreign filesystems...).
    pub skipped: u64,
    /// Listing failed (previous numbers kept when there are any).
    pub failed: u64,
    /// Excluded by include/exclude globs.
    pub filtered: u64,
}

/// How the partition directories of one scan ended up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionResults {
    /// Listed (or reused from the previous scan).
    pub listed: u64,
    /// Directory does not exist.
    pub missing: u64,
    /// Not listed: no location, or on another filesystem.
    pub skipped: u64,
    /// Listing failed.
    pub failed: u64,
}

/// Outcome of the last scan attempt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanSummary {
    /// When it started (Unix seconds).
    pub started_unix: f64,
    /// How long it took.
    pub duration_seconds: f64,
    /// Whether it completed (MetaStore read, within the timeout).
    pub success: bool,
    /// Whether the MetaStore answered.
    pub metastore_up: bool,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Tables by result.
    pub tables: TableResults,
    /// Skipped tables by reason.
    pub skipped_by_reason: BTreeMap<&'static str, u64>,
    /// Partition directories by result.
    pub partitions: PartitionResults,
    /// Directory listings made.
    pub listings: u64,
    /// Directories reused from the previous scan without a request.
    pub reused_directories: u64,
    /// Listings made for the unreferenced-data view (included in `listings`).
    pub unreferenced_listings: u64,
    /// Whether cached directory states were ignored.
    pub full_rescan: bool,
}

/// Everything exported about one cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterSnapshot {
    /// Cluster name.
    pub cluster: String,
    /// Small-file threshold in bytes.
    pub small_file_bytes: u64,
    /// Target file size in bytes.
    pub target_file_bytes: u64,
    /// Configured time between scan starts, in seconds.
    pub scan_interval_seconds: f64,
    /// Tables of the last completed scan, sorted by (database, table).
    pub tables: Vec<TableStats>,
    /// The last scan attempt.
    pub scan: ScanSummary,
    /// End of the last successful scan (Unix seconds).
    pub last_success_unix: Option<f64>,
    /// Whether any scan has completed since start.
    pub completed_once: bool,
    /// MetaStore schema as last probed.
    pub schema: Option<SchemaInfo>,
    /// NameNodes (or the local root) as last probed.
    pub endpoints: Vec<EndpointProbe>,
}
