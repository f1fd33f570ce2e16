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
    /// The merge-able part of the table: its partitions (or the unpartitioned table itself)
    /// whose newest file is older than the cluster's `quiet_period`.
    pub cold: ColdCounts,
}

/// Counts over the partitions of a table not written to within the quiet period: what a merge
/// may touch now, even while newer partitions are still being appended to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColdCounts {
    /// Cold partitions (1 for a cold unpartitioned table).
    pub partitions: u64,
    /// Files in them.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Small files in them.
    pub small_files: u64,
    /// Bytes held by those small files.
    pub small_bytes: u64,
    /// Sum over the cold partitions of what a perfect merge would remove.
    pub excess_files: u64,
}

impl ColdCounts {
    /// Adds one cold partition (or unpartitioned table) with these counts.
    pub fn add(&mut self, counts: &hive_smallfiles_core::walk::counts::FileCounts, excess: u64) {
        self.partitions += 1;
        self.files += counts.files;
        self.bytes += counts.bytes;
        self.small_files += counts.small_files;
        self.small_bytes += counts.small_bytes;
        self.excess_files += excess;
    }
}

/// One partition among the worst of a cluster, kept for drill-down panels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStats {
    /// Database label (see [`TableStats::database`]).
    pub database: String,
    /// Table name.
    pub table: String,
    /// Partition name (`k1=v1/k2=v2`, as `PART_NAME`).
    pub partition: String,
    /// Files.
    pub files: u64,
    /// Bytes.
    pub bytes: u64,
    /// Small files.
    pub small_files: u64,
    /// Bytes held by small files.
    pub small_bytes: u64,
    /// What a perfect merge of the partition would remove.
    pub excess_files: u64,
    /// Newest file modification time, ms since the epoch (0 when empty).
    pub newest_modification_ms: i64,
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
    /// Not looked at by configuration: excluded by the include/exclude globs, or in a Hive 3
    /// catalog not in `metastore.catalogs`.
    pub filtered: u64,
}

/// A table the scan did not list, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedTable {
    /// Database label (see [`TableStats::database`]).
    pub database: String,
    /// Table name.
    pub table: String,
    /// The reason, as in `hive_scan_skipped_tables{reason}`.
    pub reason: &'static str,
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
    /// Whether it succeeded: it completed (MetaStore read, within the timeout) and listed at
    /// least one table when it had any to list. A scan whose every table failed (all
    /// NameNodes down) completed but did not succeed; one where only some failed succeeded
    /// partially (see [`ScanSummary::result`]).
    pub success: bool,
    /// Whether the MetaStore answered.
    pub metastore_up: bool,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Tables by result.
    pub tables: TableResults,
    /// Skipped tables by reason.
    pub skipped_by_reason: BTreeMap<&'static str, u64>,
    /// The skipped tables themselves, for the report.
    pub skipped_tables: Vec<SkippedTable>,
    /// Filtered tables by reason: `glob` (include/exclude) or `catalog` (a catalog not
    /// configured).
    pub filtered_by_reason: BTreeMap<&'static str, u64>,
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

/// How the last scan ended, as `hive_scans_total{result}`, the report and the exit code of
/// `scan --once` tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanResult {
    /// Completed, every table it meant to list listed.
    Success,
    /// Completed, some tables listed and some failed (their previous numbers kept).
    Partial,
    /// Did not complete (MetaStore, timeout) or no table could be listed.
    Failure,
}

impl ScanResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Partial => "partial",
            Self::Failure => "failure",
        }
    }
}

impl ScanSummary {
    /// How the scan ended.
    pub fn result(&self) -> ScanResult {
        if !self.success {
            ScanResult::Failure
        } else if self.tables.failed > 0 {
            ScanResult::Partial
        } else {
            ScanResult::Success
        }
    }

    /// Failed tables among those the scan tried to list (0 when it had none to list).
    pub fn failed_tables_ratio(&self) -> f64 {
        let tried = self.tables.scanned + self.tables.failed;
        if tried == 0 {
            0.0
        } else {
            #[allow(clippy::cast_precision_loss)]
            let ratio = self.tables.failed as f64 / tried as f64;
            ratio
        }
    }
}

/// Whether a completed scan failed as a whole: it had tables to list and listed none of them
/// (every NameNode down, the warehouse root unreadable). Pure.
pub fn every_table_failed(tables: &TableResults) -> bool {
    tables.failed > 0 && tables.scanned == 0
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
    /// Whether any scan has completed since start (successfully or not: the scan
    /// families describe it).
    pub completed_once: bool,
    /// MetaStore schema as last probed.
    pub schema: Option<SchemaInfo>,
    /// NameNodes (or the local root) as last probed.
    pub endpoints: Vec<EndpointProbe>,
    /// The cluster's worst partitions by excess files (at most `top_partitions`), worst
    /// first.
    pub top_partitions: Vec<PartitionStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(success: bool, scanned: u64, failed: u64) -> ScanSummary {
        ScanSummary {
            success,
            tables: TableResults {
                scanned,
                failed,
                skipped: 5,
                filtered: 7,
            },
            ..ScanSummary::default()
        }
    }

    #[test]
    fn results_and_ratio() {
        assert_eq!(summary(true, 3, 0).result(), ScanResult::Success);
        assert_eq!(summary(true, 3, 1).result(), ScanResult::Partial);
        assert_eq!(summary(false, 3, 0).result(), ScanResult::Failure);
        assert!((summary(true, 3, 1).failed_tables_ratio() - 0.25).abs() < 1e-12);
        // Skipped and filtered tables were never tried: not in the ratio.
        assert!(summary(true, 0, 0).failed_tables_ratio().abs() < f64::EPSILON);
        assert!(every_table_failed(&summary(true, 0, 4).tables));
        assert!(!every_table_failed(&summary(true, 1, 4).tables));
        assert!(!every_table_failed(&summary(true, 0, 0).tables));
    }
}
