//! A synthetic warehouse for the dashboard queries: tables, partitions and their history,
//! rendered as the exporter's series (the names of the metrics contract) in two layouts, and
//! the totals the dashboards must show, computed from the model rather than from the series.
//!
//! - [`Layout::AllExported`]: one unsharded exporter (`shard="0/1"`) with per-table series for
//!   every table.
//! - [`Layout::CappedSharded`]: two shards (`"0/2"`, `"1/2"`), shard 0 reported by two HA
//!   replicas; each exporter has per-table series only for its `CAP` worst tables by excess
//!   files, while its per-database rollups cover all of its tables.
//!
//! Every table grows linearly (small files, files, excess files and small-file bytes), so
//! `predict_linear` over the history gives exact values to compare with.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Samples every 5 minutes for 25 hours: `[1d]` ranges are full and `[5m]` ones hold one.
pub(super) const STEP_SECONDS: i64 = 300;
pub(super) const HISTORY_STEPS: i64 = 300;
/// Per-table series kept per exporter (and cluster) in the capped layout.
pub(super) const CAP: usize = 2;
/// Partitions per cluster with `hive_partition_*` series (the exporter's `top_partitions`).
pub(super) const TOP_PARTITIONS: usize = 3;
const SMALL_FILE_BYTES: f64 = 1000.0;
const WEEK_HOURS: f64 = 168.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    AllExported,
    CappedSharded,
}

#[derive(Debug, Clone)]
pub(super) struct Partition {
    pub(super) name: String,
    pub(super) files: f64,
    pub(super) small_files: f64,
    pub(super) excess_files: f64,
    pub(super) size_bytes: f64,
    pub(super) newest_age_seconds: f64,
}

#[derive(Debug, Clone)]
pub(super) struct Table {
    pub(super) cluster: String,
    pub(super) database: String,
    pub(super) table: String,
    /// Shard (of 2) in the sharded layout.
    pub(super) shard: usize,
    pub(super) files: f64,
    pub(super) small_files: f64,
    pub(super) excess_files: f64,
    pub(super) size_bytes: f64,
    pub(super) partitions: f64,
    pub(super) cold_partitions: f64,
    pub(super) cold_files: f64,
    pub(super) cold_small_files: f64,
    pub(super) cold_excess_files: f64,
    pub(super) unreferenced_files: f64,
    /// Small files (and files, and excess files) added per hour.
    pub(super) growth_per_hour: f64,
    pub(super) top_partitions: Vec<Partition>,
}

impl Table {
    pub(super) fn small_file_bytes(&self) -> f64 {
        self.small_files * SMALL_FILE_BYTES
    }
    pub(super) fn cold_small_file_bytes(&self) -> f64 {
        self.cold_small_files * SMALL_FILE_BYTES
    }
    /// Small files a week after the last sample, at the table's linear growth.
    pub(super) fn small_files_in_a_week(&self) -> f64 {
        self.small_files + self.growth_per_hour * WEEK_HOURS
    }
    fn key(&self) -> (&str, &str, &str) {
        (&self.cluster, &self.database, &self.table)
    }
}

/// 2 clusters × 2 databases × 5 tables. Table `c1.sales.orders` is the worst of its
/// cluster: partitioned, appended hourly (hot newest partition), just under 100,000 small
/// files and projected above it within a week, with unreferenced files.
pub(super) fn warehouse() -> Vec<Table> {
    let mut out = Vec::new();
    let mut i = 0usize;
    for cluster in ["c1", "c2"] {
        for database in ["sales", "logs"] {
            for n in 0..5 {
                i += 1;
                let f = i as f64;
                let table = if cluster == "c1" && database == "sales" && n == 0 {
                    "orders".to_owned()
                } else {
                    format!("t{n}")
                };
                let worst = table == "orders";
                let small_files = if worst { 95_000.0 } else { 300.0 + 97.0 * f };
                let files = small_files + 50.0 + 11.0 * f;
                let excess_files = small_files - 40.0;
                let partitions = 4.0 + f;
                // The worst table's partitions are its cluster's worst.
                let boost = if worst { 5000.0 } else { 0.0 };
                let top_partitions = (0..2)
                    .map(|p| {
                        let pf = f * 10.0 + p as f64 + boost;
                        Partition {
                            name: format!("dt=2026-01-{:02}", p + 1),
                            files: 100.0 + pf,
                            small_files: 90.0 + pf,
                            excess_files: 80.0 + pf,
                            size_bytes: 1.0e6 + pf * 1000.0,
                            newest_age_seconds: 7200.0 + pf,
                        }
                    })
                    .collect();
                out.push(Table {
                    cluster: cluster.to_owned(),
                    database: database.to_owned(),
                    table,
                    shard: i % 2,
                    files,
                    small_files,
                    excess_files,
                    size_bytes: files * 5.0e5,
                    partitions,
                    cold_partitions: partitions - 1.0,
                    cold_files: files - 20.0,
                    cold_small_files: small_files - 20.0,
                    cold_excess_files: excess_files - 20.0,
                    unreferenced_files: if worst || n == 1 { 3.0 } else { 0.0 },
                    growth_per_hour: if worst { 100.0 } else { f },
                    top_partitions,
                });
            }
        }
    }
    out
}

/// The exporters of a layout: (instance, shard label, shard index or None for all tables).
fn exporters(layout: Layout) -> Vec<(&'static str, &'static str, Option<usize>)> {
    match layout {
        Layout::AllExported => vec![("exp:9878", "0/1", None)],
        Layout::CappedSharded => vec![
            ("exp-0a:9878", "0/2", Some(0)),
            ("exp-0b:9878", "0/2", Some(0)),
            ("exp-1:9878", "1/2", Some(1)),
        ],
    }
}

/// The tables with per-table series in a layout (each exporter's worst `CAP` by excess
/// files, per cluster), deduplicated across HA replicas.
pub(super) fn exported(tables: &[Table], layout: Layout) -> Vec<&Table> {
    let mut out: Vec<&Table> = Vec::new();
    for (_, _, shard) in exporters(layout) {
        for t in selected(tables, layout, shard) {
            if !out.iter().any(|o| o.key() == t.key()) {
                out.push(t);
            }
        }
    }
    out
}

fn selected(tables: &[Table], layout: Layout, shard: Option<usize>) -> Vec<&Table> {
    let mine: Vec<&Table> = tables
        .iter()
        .filter(|t| shard.is_none_or(|s| t.shard == s))
        .collect();
    if layout == Layout::AllExported {
        return mine;
    }
    let mut out = Vec::new();
    for cluster in ["c1", "c2"] {
        let mut of: Vec<&Table> = mine
            .iter()
            .copied()
            .filter(|t| t.cluster == cluster)
            .collect();
        of.sort_by(|a, b| b.excess_files.total_cmp(&a.excess_files));
        out.extend(of.into_iter().take(CAP));
    }
    out
}

/// The OpenMetrics text of every exporter of `layout`, samples from `end - HISTORY_STEPS *
/// STEP_SECONDS` to `end` (Unix seconds), for `promtool tsdb create-blocks-from openmetrics`.
pub(super) fn openmetrics(tables: &[Table], layout: Layout, end: i64) -> String {
    // family -> series -> lines: OpenMetrics wants a family's samples together, and each
    // series' samples together in time order.
    let mut families: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for step in 0..=HISTORY_STEPS {
        let ts = end - (HISTORY_STEPS - step) * STEP_SECONDS;
        let hours_before_end = ((HISTORY_STEPS - step) * STEP_SECONDS) as f64 / 3600.0;
        for (instance, shard_label, shard) in exporters(layout) {
            let base = format!("instance=\"{instance}\",job=\"hive-smallfiles-exporter\"");
            let mine: Vec<&Table> = tables
                .iter()
                .filter(|t| shard.is_none_or(|s| t.shard == s))
                .collect();
            let mut put = |family: &str, labels: &str, value: f64| {
                let series = format!("{family}{{{labels},{base}}}");
                let lines = families
                    .entry(family.to_owned())
                    .or_default()
                    .entry(series.clone())
                    .or_default();
                let _ = writeln!(lines, "{series} {value} {ts}");
            };
            let sel = selected(tables, layout, shard);
            for t in &sel {
                let a = At::new(t, hours_before_end);
                let l = format!(
                    "cluster=\"{}\",database=\"{}\",table=\"{}\"",
                    t.cluster, t.database, t.table
                );
                for (family, v) in [
                    ("hive_table_files", a.files),
                    ("hive_table_small_files", a.small_files),
                    ("hive_table_excess_files", a.excess_files),
                    ("hive_table_small_file_bytes", a.small_file_bytes),
                    ("hive_table_size_bytes", t.size_bytes),
                    ("hive_table_partitions", t.partitions),
                    ("hive_table_empty_files", 1.0),
                    ("hive_table_missing_directories", 0.0),
                    ("hive_table_unreferenced_files", t.unreferenced_files),
                    ("hive_table_unreferenced_bytes", t.unreferenced_files * 10.0),
                    (
                        "hive_table_unreferenced_directories",
                        t.unreferenced_files.min(1.0),
                    ),
                    ("hive_table_newest_file_timestamp_seconds", ts as f64 - 60.0),
                    (
                        "hive_table_last_access_timestamp_seconds",
                        ts as f64 - 600.0,
                    ),
                    ("hive_table_cold_partitions", t.cold_partitions),
                    ("hive_table_cold_files", t.cold_files),
                    ("hive_table_cold_small_files", t.cold_small_files),
                    (
                        "hive_table_cold_small_file_bytes",
                        t.cold_small_file_bytes(),
                    ),
                    ("hive_table_cold_excess_files", t.cold_excess_files),
                ] {
                    put(family, &l, v);
                }
                put(
                    "hive_table_info",
                    &format!(
                        "{l},format=\"orc\",compression=\"zlib\",table_type=\"MANAGED_TABLE\",transactional=\"false\",location=\"hdfs://nn/{}/{}\"",
                        t.database, t.table
                    ),
                    1.0,
                );
            }
            for cluster in ["c1", "c2"] {
                let c = format!("cluster=\"{cluster}\"");
                put("hive_cluster_small_file_threshold_bytes", &c, 134_217_728.0);
                let of: Vec<&&Table> = mine.iter().filter(|x| x.cluster == cluster).collect();
                let exported = sel.iter().filter(|x| x.cluster == cluster).count() as f64;
                put("hive_exporter_tables_exported", &c, exported);
                put(
                    "hive_exporter_tables_omitted",
                    &c,
                    of.len() as f64 - exported,
                );
                put("hive_exporter_series", &c, 100.0 + exported * 20.0);
                for database in ["sales", "logs"] {
                    let d: Vec<At<'_>> = of
                        .iter()
                        .filter(|x| x.database == database)
                        .map(|x| At::new(x, hours_before_end))
                        .collect();
                    if d.is_empty() {
                        continue;
                    }
                    let l = format!("{c},database=\"{database}\",shard=\"{shard_label}\"");
                    let sum = |f: fn(&At<'_>) -> f64| d.iter().map(f).sum::<f64>();
                    put("hive_database_tables", &l, d.len() as f64);
                    put("hive_database_partitions", &l, sum(|a| a.t.partitions));
                    put("hive_database_files", &l, sum(|a| a.files));
                    put("hive_database_small_files", &l, sum(|a| a.small_files));
                    put(
                        "hive_database_small_file_bytes",
                        &l,
                        sum(|a| a.small_file_bytes),
                    );
                    put("hive_database_size_bytes", &l, sum(|a| a.t.size_bytes));
                    put("hive_database_excess_files", &l, sum(|a| a.excess_files));
                    put("hive_database_cold_files", &l, sum(|a| a.t.cold_files));
                    put(
                        "hive_database_cold_small_files",
                        &l,
                        sum(|a| a.t.cold_small_files),
                    );
                    put(
                        "hive_database_cold_excess_files",
                        &l,
                        sum(|a| a.t.cold_excess_files),
                    );
                    put(
                        "hive_database_files_by_size_class",
                        &format!("{l},size_class=\"under_1mib\""),
                        sum(|a| a.small_files),
                    );
                    put(
                        "hive_database_files_by_size_class",
                        &format!("{l},size_class=\"at_or_over_threshold\""),
                        sum(|a| a.files - a.small_files),
                    );
                }
                for (t, p) in top_partitions(&of, cluster) {
                    let l = format!(
                        "cluster=\"{}\",database=\"{}\",table=\"{}\",partition=\"{}\"",
                        t.cluster, t.database, t.table, p.name
                    );
                    put("hive_partition_files", &l, p.files);
                    put("hive_partition_small_files", &l, p.small_files);
                    put(
                        "hive_partition_small_file_bytes",
                        &l,
                        p.small_files * SMALL_FILE_BYTES,
                    );
                    put("hive_partition_size_bytes", &l, p.size_bytes);
                    put("hive_partition_excess_files", &l, p.excess_files);
                    put(
                        "hive_partition_newest_file_timestamp_seconds",
                        &l,
                        end as f64 - p.newest_age_seconds,
                    );
                }
            }
        }
    }
    let mut out = String::new();
    for (family, series) in families {
        let _ = writeln!(out, "# TYPE {family} gauge");
        for lines in series.values() {
            out.push_str(lines);
        }
    }
    out.push_str("# EOF\n");
    out
}

/// The `TOP_PARTITIONS` partitions of `tables` (one exporter's tables of `cluster`) with the
/// most excess files.
fn top_partitions<'a>(tables: &[&&'a Table], cluster: &str) -> Vec<(&'a Table, &'a Partition)> {
    let mut all: Vec<(&Table, &Partition)> = tables
        .iter()
        .filter(|t| t.cluster == cluster)
        .flat_map(|t| {
            let t: &'a Table = t;
            t.top_partitions.iter().map(move |p| (t, p))
        })
        .collect();
    all.sort_by(|a, b| b.1.excess_files.total_cmp(&a.1.excess_files));
    all.truncate(TOP_PARTITIONS);
    all
}

/// Partitions with `hive_partition_*` series in a layout (each exporter's top, deduplicated).
pub(super) fn partitions_with_series(tables: &[Table], layout: Layout) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (_, _, shard) in exporters(layout) {
        let mine: Vec<&Table> = tables
            .iter()
            .filter(|t| shard.is_none_or(|s| t.shard == s))
            .collect();
        let refs: Vec<&&Table> = mine.iter().collect();
        for cluster in ["c1", "c2"] {
            for (t, p) in top_partitions(&refs, cluster) {
                let key = (
                    format!("{}.{}.{}", t.cluster, t.database, t.table),
                    p.name.clone(),
                );
                if !out.contains(&key) {
                    out.push(key);
                }
            }
        }
    }
    out
}

/// A table's values `hours_before_end` hours before the last sample.
struct At<'a> {
    t: &'a Table,
    files: f64,
    small_files: f64,
    excess_files: f64,
    small_file_bytes: f64,
}

impl<'a> At<'a> {
    fn new(t: &'a Table, hours_before_end: f64) -> Self {
        let d = t.growth_per_hour * hours_before_end;
        Self {
            t,
            files: t.files - d,
            small_files: t.small_files - d,
            excess_files: t.excess_files - d,
            small_file_bytes: (t.small_files - d) * SMALL_FILE_BYTES,
        }
    }
}
