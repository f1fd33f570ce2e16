//! Per-partition families (`hive_partition_*`, labels cluster, database, table, partition)
//! for the cluster's worst partitions (`top_partitions`), for drill-down panels.

use std::sync::Arc;

use prometheus_client::encoding::DescriptorEncoder;

use super::store::Published;
use super::{f, gauge_family};
use crate::snapshot::PartitionStats;

/// A per-partition count family: name, help, value.
type CountFamily = (&'static str, &'static str, fn(&PartitionStats) -> u64);

const COUNTS: [CountFamily; 5] = [
    (
        "hive_partition_files",
        "Visible files of one of the cluster's worst partitions by excess files",
        |p| p.files,
    ),
    (
        "hive_partition_small_files",
        "Small files of one of the cluster's worst partitions",
        |p| p.small_files,
    ),
    (
        "hive_partition_small_file_bytes",
        "Bytes held in small files of one of the cluster's worst partitions",
        |p| p.small_bytes,
    ),
    (
        "hive_partition_size_bytes",
        "Logical size in bytes of one of the cluster's worst partitions",
        |p| p.bytes,
    ),
    (
        "hive_partition_excess_files",
        "Files a perfect merge of one of the cluster's worst partitions would remove",
        |p| p.excess_files,
    ),
];

/// Encodes the worst partitions of every published cluster.
pub(super) fn encode(
    e: &mut DescriptorEncoder<'_>,
    pubs: &[Arc<Published>],
) -> Result<(), std::fmt::Error> {
    let rows = || {
        pubs.iter().flat_map(|p| {
            let s = &p.snapshot;
            s.top_partitions.iter().map(move |part| {
                (
                    [
                        ("cluster", s.cluster.as_str()),
                        ("database", part.database.as_str()),
                        ("table", part.table.as_str()),
                        ("partition", part.partition.as_str()),
                    ],
                    part,
                )
            })
        })
    };
    for (name, help, value) in COUNTS {
        gauge_family(e, name, help, rows().map(|(l, p)| (l, f(value(p)))))?;
    }
    #[allow(clippy::cast_precision_loss)]
    gauge_family(
        e,
        "hive_partition_newest_file_timestamp_seconds",
        "Newest file modification time of one of the cluster's worst partitions (Unix seconds); absent when it has no files",
        rows()
            .filter(|(_, p)| p.files > 0)
            .map(|(l, p)| (l, p.newest_modification_ms as f64 / 1000.0)),
    )
}
