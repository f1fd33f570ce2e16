//! Per-table families (`hive_table_*`, labels cluster, database, table), for the tables the
//! selection kept.

use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::info::Info;

use super::store::Published;
use super::{NO_LABELS, f, gauge_family};
use crate::snapshot::TableStats;

type TableLabels<'a> = [(&'static str, &'a str); 3];

/// A per-table count family: name, help, value.
type CountFamily = (&'static str, &'static str, fn(&TableStats) -> u64);

const COUNTS: [CountFamily; 13] = [
    (
        "hive_table_files",
        "Visible files in the table's partition directories",
        |t| t.counts.files,
    ),
    (
        "hive_table_small_files",
        "Files smaller than the cluster's small-file threshold (empty files included)",
        |t| t.counts.small_files,
    ),
    (
        "hive_table_small_file_bytes",
        "Bytes held in the table's small files",
        |t| t.counts.small_bytes,
    ),
    ("hive_table_empty_files", "Zero-length files", |t| {
        t.counts.empty_files
    }),
    (
        "hive_table_size_bytes",
        "Logical size of the table's files in bytes, without replication",
        |t| t.counts.bytes,
    ),
    (
        "hive_table_partitions",
        "Partitions in the MetaStore (0 for unpartitioned tables)",
        |t| t.partitions,
    ),
    (
        "hive_table_excess_files",
        "Files a perfect merge would remove: sum over partitions of max(0, files - ceil(bytes / target_file_bytes))",
        |t| t.excess_files,
    ),
    (
        "hive_table_missing_directories",
        "Partitions (or the table) whose directory does not exist",
        |t| t.missing_directories,
    ),
    (
        "hive_table_cold_partitions",
        "Partitions (1 for an unpartitioned table) whose newest file is older than the quiet period: what a merge may touch now",
        |t| t.cold.partitions,
    ),
    (
        "hive_table_cold_files",
        "Files in the table's cold partitions",
        |t| t.cold.files,
    ),
    (
        "hive_table_cold_small_files",
        "Small files in the table's cold partitions",
        |t| t.cold.small_files,
    ),
    (
        "hive_table_cold_small_file_bytes",
        "Bytes held in small files of the table's cold partitions",
        |t| t.cold.small_bytes,
    ),
    (
        "hive_table_cold_excess_files",
        "Files a perfect merge of the table's cold partitions would remove",
        |t| t.cold.excess_files,
    ),
];

/// Encodes the per-table families of every published cluster.
pub(super) fn encode(
    e: &mut DescriptorEncoder<'_>,
    pubs: &[Arc<Published>],
) -> Result<(), std::fmt::Error> {
    let tables = || {
        pubs.iter().flat_map(|p| {
            let s = &p.snapshot;
            p.selected.iter().map(move |&i| {
                let t = &s.tables[i];
                let labels: TableLabels<'_> = [
                    ("cluster", s.cluster.as_str()),
                    ("database", t.database.as_str()),
                    ("table", t.table.as_str()),
                ];
                (labels, t)
            })
        })
    };
    for (name, help, value) in COUNTS {
        gauge_family(e, name, help, tables().map(|(l, t)| (l, f(value(t)))))?;
    }
    gauge_family(
        e,
        "hive_table_unreferenced_files",
        "Visible files below a partitioned table's location that no partition points at (unregistered or abandoned partition directories, stray files); absent when not looked at",
        tables().filter_map(|(l, t)| t.unreferenced.map(|u| (l, f(u.files)))),
    )?;
    gauge_family(
        e,
        "hive_table_unreferenced_bytes",
        "Logical size of the unreferenced files in bytes, without replication",
        tables().filter_map(|(l, t)| t.unreferenced.map(|u| (l, f(u.bytes)))),
    )?;
    gauge_family(
        e,
        "hive_table_unreferenced_directories",
        "Outermost directories below a partitioned table's location that no partition points at",
        tables().filter_map(|(l, t)| t.unreferenced.map(|u| (l, f(u.directories)))),
    )?;
    #[allow(clippy::cast_precision_loss)]
    gauge_family(
        e,
        "hive_table_newest_file_timestamp_seconds",
        "Newest file modification time (Unix seconds); absent for tables without files",
        tables()
            .filter(|(_, t)| t.counts.files > 0)
            .map(|(l, t)| (l, t.counts.newest_modification_ms as f64 / 1000.0)),
    )?;
    #[allow(clippy::cast_precision_loss)]
    gauge_family(
        e,
        "hive_table_last_access_timestamp_seconds",
        "Newest HDFS access time of the table's files (Unix seconds); absent when access times are not tracked",
        tables()
            .filter(|(_, t)| t.counts.newest_access_ms > 0)
            .map(|(l, t)| (l, t.counts.newest_access_ms as f64 / 1000.0)),
    )?;
    if pubs.iter().any(|p| !p.selected.is_empty()) {
        let mut family = e.encode_descriptor(
            "hive_table",
            "Table properties: format, compression, table type, transactional kind, location (unless series.location_label = false)",
            None,
            MetricType::Info,
        )?;
        for p in pubs {
            let s = &p.snapshot;
            for &i in &p.selected {
                let t = &s.tables[i];
                let labels = [
                    ("cluster", s.cluster.as_str()),
                    ("database", t.database.as_str()),
                    ("table", t.table.as_str()),
                    ("format", t.format),
                    ("compression", t.compression.as_str()),
                    ("table_type", t.table_type),
                    ("transactional", t.transactional),
                ];
                if p.location_label {
                    let [a, b, c, d, e, f, g] = labels;
                    Info::new([a, b, c, d, e, f, g, ("location", t.location.as_str())])
                        .encode(family.encode_family(&NO_LABELS)?)?;
                } else {
                    Info::new(labels).encode(family.encode_family(&NO_LABELS)?)?;
                }
            }
        }
    }
    Ok(())
}
