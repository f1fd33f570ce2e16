//! The operator's report of `scan --once`: tables sorted by excess files, as an aligned
//! table, JSON or CSV. Pure functions of snapshots.

use std::fmt::Write as _;

use serde::Serialize;

use crate::snapshot::{ClusterSnapshot, ScanResult, TableStats};

/// Report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON document.
    Json,
    /// CSV with a header row.
    Csv,
}

/// One row of the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportRow {
    /// Cluster name.
    pub cluster: String,
    /// Database label.
    pub database: String,
    /// Table name.
    pub table: String,
    /// File format.
    pub format: String,
    /// Table type.
    pub table_type: String,
    /// Partitions in the MetaStore.
    pub partitions: u64,
    /// Files.
    pub files: u64,
    /// Small files.
    pub small_files: u64,
    /// Empty files.
    pub empty_files: u64,
    /// Bytes.
    pub size_bytes: u64,
    /// Excess files.
    pub excess_files: u64,
    /// Average file size in bytes (0 without files).
    pub average_file_bytes: u64,
    /// Share of small files (0–1).
    pub small_file_ratio: f64,
    /// Bytes held in small files.
    pub small_file_bytes: u64,
    /// Files in partitions not written to within the quiet period.
    pub cold_files: u64,
    /// Excess files of those partitions: what a merge may remove now.
    pub cold_excess_files: u64,
    /// Partition directories that do not exist.
    pub missing_directories: u64,
    /// Newest file modification time (Unix seconds); `None` without files.
    pub newest_file_timestamp_seconds: Option<i64>,
}

impl ReportRow {
    fn new(cluster: &str, t: &TableStats) -> Self {
        let c = &t.counts;
        #[allow(clippy::cast_precision_loss)]
        let ratio = if c.files == 0 {
            0.0
        } else {
            c.small_files as f64 / c.files as f64
        };
        Self {
            cluster: cluster.to_owned(),
            database: t.database.clone(),
            table: t.table.clone(),
            format: t.format.to_owned(),
            table_type: t.table_type.to_owned(),
            partitions: t.partitions,
            files: c.files,
            small_files: c.small_files,
            empty_files: c.empty_files,
            size_bytes: c.bytes,
            excess_files: t.excess_files,
            average_file_bytes: c.bytes.checked_div(c.files).unwrap_or(0),
            small_file_ratio: (ratio * 10_000.0).round() / 10_000.0,
            small_file_bytes: c.small_bytes,
            cold_files: t.cold.files,
            cold_excess_files: t.cold.excess_files,
            missing_directories: t.missing_directories,
            newest_file_timestamp_seconds: (c.files > 0)
                .then(|| c.newest_modification_ms.div_euclid(1000)),
        }
    }
}

/// A table not listed, with its reason.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SkippedRow<'a> {
    /// Cluster name.
    pub cluster: &'a str,
    /// Database label.
    pub database: &'a str,
    /// Table name.
    pub table: &'a str,
    /// Why it was not listed (`view`, `storage_handler`, `foreign_filesystem`...).
    pub reason: &'static str,
}

/// The skipped tables of all snapshots, by cluster, database and table.
pub fn skipped_rows(snapshots: &[impl AsRef<ClusterSnapshot>]) -> Vec<SkippedRow<'_>> {
    let mut rows: Vec<SkippedRow<'_>> = snapshots
        .iter()
        .flat_map(|s| {
            let s = s.as_ref();
            s.scan.skipped_tables.iter().map(|t| SkippedRow {
                cluster: &s.cluster,
                database: &t.database,
                table: &t.table,
                reason: t.reason,
            })
        })
        .collect();
    rows.sort_by(|a, b| (a.cluster, a.database, a.table).cmp(&(b.cluster, b.database, b.table)));
    rows
}

/// Rows of all snapshots, most excess files first (then most small files, then name).
pub fn rows(snapshots: &[impl AsRef<ClusterSnapshot>]) -> Vec<ReportRow> {
    let mut rows: Vec<ReportRow> = snapshots
        .iter()
        .flat_map(|s| {
            let s = s.as_ref();
            s.tables.iter().map(move |t| ReportRow::new(&s.cluster, t))
        })
        .collect();
    rows.sort_by(|a, b| {
        b.excess_files
            .cmp(&a.excess_files)
            .then(b.small_files.cmp(&a.small_files))
            .then_with(|| {
                (&a.cluster, &a.database, &a.table).cmp(&(&b.cluster, &b.database, &b.table))
            })
    });
    rows
}

/// Human-readable bytes (binary units).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Renders the report.
pub fn render(snapshots: &[impl AsRef<ClusterSnapshot>], format: ReportFormat) -> String {
    let rows = rows(snapshots);
    match format {
        ReportFormat::Json => {
            #[derive(Serialize)]
            struct Doc<'a> {
                clusters: Vec<ClusterLine<'a>>,
                tables: &'a [ReportRow],
                skipped: Vec<SkippedRow<'a>>,
            }
            #[derive(Serialize)]
            struct ClusterLine<'a> {
                cluster: &'a str,
                success: bool,
                result: &'static str,
                error: Option<&'a str>,
                duration_seconds: f64,
                small_file_bytes: u64,
                target_file_bytes: u64,
                tables_scanned: u64,
                tables_skipped: u64,
                tables_failed: u64,
                tables_filtered: u64,
                failed_tables_ratio: f64,
                tables_skipped_by_reason: &'a std::collections::BTreeMap<&'static str, u64>,
                tables_filtered_by_reason: &'a std::collections::BTreeMap<&'static str, u64>,
            }
            let clusters = snapshots
                .iter()
                .map(|s| {
                    let s = s.as_ref();
                    ClusterLine {
                        cluster: &s.cluster,
                        success: s.scan.success,
                        result: s.scan.result().as_str(),
                        error: s.scan.error.as_deref(),
                        duration_seconds: s.scan.duration_seconds,
                        small_file_bytes: s.small_file_bytes,
                        target_file_bytes: s.target_file_bytes,
                        tables_scanned: s.scan.tables.scanned,
                        tables_skipped: s.scan.tables.skipped,
                        tables_failed: s.scan.tables.failed,
                        tables_filtered: s.scan.tables.filtered,
                        failed_tables_ratio: s.scan.failed_tables_ratio(),
                        tables_skipped_by_reason: &s.scan.skipped_by_reason,
                        tables_filtered_by_reason: &s.scan.filtered_by_reason,
                    }
                })
                .collect();
            let mut out = serde_json::to_string_pretty(&Doc {
                clusters,
                tables: &rows,
                skipped: skipped_rows(snapshots),
            })
            .unwrap_or_default();
            out.push('\n');
            out
        }
        ReportFormat::Csv => {
            let mut out = String::from(
                "cluster,database,table,format,table_type,partitions,files,small_files,empty_files,size_bytes,excess_files,average_file_bytes,small_file_ratio,small_file_bytes,cold_files,cold_excess_files,missing_directories,newest_file_timestamp_seconds,status,reason\n",
            );
            for r in &rows {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},scanned,",
                    csv(&r.cluster),
                    csv(&r.database),
                    csv(&r.table),
                    r.format,
                    r.table_type,
                    r.partitions,
                    r.files,
                    r.small_files,
                    r.empty_files,
                    r.size_bytes,
                    r.excess_files,
                    r.average_file_bytes,
                    r.small_file_ratio,
                    r.small_file_bytes,
                    r.cold_files,
                    r.cold_excess_files,
                    r.missing_directories,
                    r.newest_file_timestamp_seconds
                        .map(|t| t.to_string())
                        .unwrap_or_default()
                );
            }
            // Skipped tables: no numbers, a reason.
            for r in skipped_rows(snapshots) {
                let _ = writeln!(
                    out,
                    "{},{},{},,,,,,,,,,,,,,,,skipped,{}",
                    csv(r.cluster),
                    csv(r.database),
                    csv(r.table),
                    r.reason
                );
            }
            out
        }
        ReportFormat::Table => {
            let header = [
                "CLUSTER", "DATABASE", "TABLE", "FORMAT", "PARTS", "FILES", "SMALL", "EMPTY",
                "SIZE", "AVG FILE", "EXCESS",
            ];
            let body: Vec<[String; 11]> = rows
                .iter()
                .map(|r| {
                    [
                        r.cluster.clone(),
                        r.database.clone(),
                        printable(&r.table),
                        r.format.clone(),
                        r.partitions.to_string(),
                        r.files.to_string(),
                        r.small_files.to_string(),
                        r.empty_files.to_string(),
                        human_bytes(r.size_bytes),
                        human_bytes(r.average_file_bytes),
                        r.excess_files.to_string(),
                    ]
                })
                .collect();
            let mut widths = header.map(|h| h.chars().count());
            for row in &body {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let mut out = String::new();
            let mut line = |cells: Vec<&str>| {
                for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                    let pad = w.saturating_sub(cell.chars().count());
                    if i >= 4 {
                        out.push_str(&" ".repeat(pad));
                        out.push_str(cell);
                    } else {
                        out.push_str(cell);
                        if i + 1 < cells.len() {
                            out.push_str(&" ".repeat(pad));
                        }
                    }
                    if i + 1 < cells.len() {
                        out.push_str("  ");
                    }
                }
                out.push('\n');
            };
            line(header.to_vec());
            for row in &body {
                line(row.iter().map(String::as_str).collect());
            }
            for s in snapshots {
                let s = s.as_ref();
                let t = s.scan.tables;
                let _ = writeln!(
                    out,
                    "\n{}: {} in {:.1} s; tables scanned {}, skipped {}, failed {}, filtered {}; small = under {}",
                    s.cluster,
                    match s.scan.result() {
                        ScanResult::Success => "scan ok",
                        ScanResult::Partial => "scan PARTIAL (tables failed)",
                        ScanResult::Failure => "scan FAILED",
                    },
                    s.scan.duration_seconds,
                    t.scanned,
                    t.skipped,
                    t.failed,
                    t.filtered,
                    human_bytes(s.small_file_bytes)
                );
                if let Some(e) = &s.scan.error {
                    let _ = writeln!(out, "  error: {e}");
                }
                for (label, reasons) in [
                    ("skipped", &s.scan.skipped_by_reason),
                    ("filtered", &s.scan.filtered_by_reason),
                ] {
                    if !reasons.is_empty() {
                        let list: Vec<String> =
                            reasons.iter().map(|(k, v)| format!("{k} {v}")).collect();
                        let _ = writeln!(out, "  {label}: {}", list.join(", "));
                    }
                }
            }
            out
        }
    }
}

/// Escapes control characters (a newline in a table name must not break the table).
fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_smallfiles_core::walk::counts::FileCounts;

    fn t(name: &str, files: u64, excess: u64) -> TableStats {
        let mut counts = FileCounts::default();
        for _ in 0..files {
            counts.add_file(10, 1, 0, 100);
        }
        TableStats {
            catalog: "hive".into(),
            database: "db".into(),
            table: name.into(),
            format: "text",
            compression: "none".into(),
            table_type: "managed",
            transactional: "false",
            location: String::new(),
            partitions: 0,
            counts,
            excess_files: excess,
            missing_directories: 0,
            unreferenced: None,
            cold: crate::snapshot::ColdCounts::default(),
        }
    }

    #[test]
    fn sorted_by_excess_and_csv_quoted() {
        let snap = ClusterSnapshot {
            cluster: "c".into(),
            tables: vec![t("a", 2, 1), t("b,\"x\"", 9, 8)],
            ..Default::default()
        };
        let r = rows(&[&snap]);
        assert_eq!(r[0].table, "b,\"x\"");
        assert_eq!(r[0].average_file_bytes, 10);
        let csv = render(&[&snap], ReportFormat::Csv);
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .starts_with("c,db,\"b,\"\"x\"\"\",text,")
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&[&snap], ReportFormat::Json)).unwrap();
        assert_eq!(json["tables"][0]["excess_files"], 8);
        assert_eq!(json["tables"][0]["small_file_bytes"], 90);
        // Every CSV line has as many fields as the header (no commas in these names).
        let snap2 = ClusterSnapshot {
            scan: crate::snapshot::ScanSummary {
                skipped_tables: vec![crate::snapshot::SkippedTable {
                    database: "db".into(),
                    table: "v".into(),
                    reason: "view",
                }],
                ..Default::default()
            },
            tables: vec![t("a", 2, 1)],
            ..snap.clone()
        };
        let csv = render(&[&snap2], ReportFormat::Csv);
        let widths: Vec<usize> = csv.lines().map(|l| l.split(',').count()).collect();
        assert_eq!(widths.len(), 3, "{csv}");
        assert!(widths.iter().all(|w| *w == widths[0]), "{csv}");
        let table = render(&[&snap], ReportFormat::Table);
        assert!(table.starts_with("CLUSTER"));
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    impl AsRef<ClusterSnapshot> for &ClusterSnapshot {
        fn as_ref(&self) -> &ClusterSnapshot {
            self
        }
    }
}
