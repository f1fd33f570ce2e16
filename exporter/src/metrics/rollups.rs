//! Per-database rollups (`hive_database_*`): sums over every scanned table of this exporter,
//! whether it has per-table series or not, so totals stay exact under any cardinality
//! setting. Computed once per published snapshot; labelled with the replica's `shard` so that
//! `sum by (cluster) (max by (cluster, database, shard) (hive_database_X))` adds shards and
//! dedupes HA replicas of one shard.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::encoding::DescriptorEncoder;

use hive_smallfiles_core::walk::counts::SizeClass;

use super::store::Published;
use super::{f, gauge_family};
use crate::snapshot::TableStats;

/// Sums over the tables of one database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseRollup {
    /// Database label.
    pub database: String,
    /// Scanned tables.
    pub tables: u64,
    /// MetaStore partitions.
    pub partitions: u64,
    /// Visible files.
    pub files: u64,
    /// Small files.
    pub small_files: u64,
    /// Bytes held in small files.
    pub small_file_bytes: u64,
    /// Logical bytes.
    pub size_bytes: u64,
    /// Excess files.
    pub excess_files: u64,
    /// Files in cold partitions.
    pub cold_files: u64,
    /// Small files in cold partitions.
    pub cold_small_files: u64,
    /// Excess files of cold partitions.
    pub cold_excess_files: u64,
    /// Files per size class (index: `SizeClass as usize`).
    pub size_classes: [u64; 6],
}

/// Rolls the tables up per database, ordered by database. Pure.
pub fn database_rollups(tables: &[TableStats]) -> Vec<DatabaseRollup> {
    let mut by_db: BTreeMap<&str, DatabaseRollup> = BTreeMap::new();
    for t in tables {
        let r = by_db.entry(t.database.as_str()).or_default();
        r.tables += 1;
        r.partitions += t.partitions;
        r.files += t.counts.files;
        r.small_files += t.counts.small_files;
        r.small_file_bytes += t.counts.small_bytes;
        r.size_bytes += t.counts.bytes;
        r.excess_files += t.excess_files;
        r.cold_files += t.cold.files;
        r.cold_small_files += t.cold.small_files;
        r.cold_excess_files += t.cold.excess_files;
        for (a, b) in r.size_classes.iter_mut().zip(t.counts.size_classes) {
            *a += b;
        }
    }
    by_db
        .into_iter()
        .map(|(database, mut r)| {
            database.clone_into(&mut r.database);
            r
        })
        .collect()
}

/// The `hive_database_*` families: name, help, value.
type RollupFamily = (&'static str, &'static str, fn(&DatabaseRollup) -> u64);

const FAMILIES: [RollupFamily; 10] = [
    (
        "hive_database_tables",
        "Scanned tables of the database (this shard), with or without per-table series",
        |r| r.tables,
    ),
    (
        "hive_database_partitions",
        "MetaStore partitions of the database's scanned tables",
        |r| r.partitions,
    ),
    (
        "hive_database_files",
        "Visible files of the database's scanned tables",
        |r| r.files,
    ),
    (
        "hive_database_small_files",
        "Small files of the database's scanned tables (empty files included)",
        |r| r.small_files,
    ),
    (
        "hive_database_small_file_bytes",
        "Bytes held in small files of the database's scanned tables",
        |r| r.small_file_bytes,
    ),
    (
        "hive_database_size_bytes",
        "Logical size of the database's scanned tables in bytes, without replication",
        |r| r.size_bytes,
    ),
    (
        "hive_database_excess_files",
        "Files a perfect merge of the database's scanned tables would remove",
        |r| r.excess_files,
    ),
    (
        "hive_database_cold_files",
        "Files in partitions not written to within the quiet period",
        |r| r.cold_files,
    ),
    (
        "hive_database_cold_small_files",
        "Small files in partitions not written to within the quiet period",
        |r| r.cold_small_files,
    ),
    (
        "hive_database_cold_excess_files",
        "Files a perfect merge of the partitions not written to within the quiet period would remove",
        |r| r.cold_excess_files,
    ),
];

/// Encodes the rollups of every published cluster.
pub(super) fn encode(
    e: &mut DescriptorEncoder<'_>,
    pubs: &[Arc<Published>],
) -> Result<(), std::fmt::Error> {
    let rows = || {
        pubs.iter().flat_map(|p| {
            p.databases.iter().map(move |r| {
                (
                    [
                        ("cluster", p.snapshot.cluster.as_str()),
                        ("database", r.database.as_str()),
                        ("shard", p.shard.as_str()),
                    ],
                    r,
                )
            })
        })
    };
    for (name, help, value) in FAMILIES {
        gauge_family(e, name, help, rows().map(|(l, r)| (l, f(value(r)))))?;
    }
    gauge_family(
        e,
        "hive_database_files_by_size_class",
        "Files per fixed size class (empty, under 1 MiB, 16 MiB, 64 MiB, under the small threshold, at or over it)",
        rows().flat_map(|([c, d, s], r)| {
            SizeClass::ALL.iter().map(move |class| {
                (
                    [c, d, s, ("size_class", class.as_str())],
                    f(r.size_classes[*class as usize]),
                )
            })
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::table;

    #[test]
    fn sums_per_database() {
        let mut tables = vec![
            table("a", "x", 3, 100),
            table("a", "y", 4, 50),
            table("b", "z", 1, 7),
        ];
        tables[0].cold.files = 2;
        tables[1].cold.excess_files = 4;
        tables[2].partitions = 9;
        let r = database_rollups(&tables);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].database, "a");
        assert_eq!(
            (
                r[0].tables,
                r[0].excess_files,
                r[0].small_file_bytes,
                r[0].cold_files,
                r[0].cold_excess_files
            ),
            (2, 7, 150, 2, 4)
        );
        assert_eq!(r[0].files, tables[0].counts.files + tables[1].counts.files);
        assert_eq!((r[1].database.as_str(), r[1].partitions), ("b", 9));
        assert!(database_rollups(&[]).is_empty());
    }
}
