//! Rendering tests over synthetic snapshots: both formats, the cap, the rollups (exact under
//! any cap and across shards), the new families and the self-count.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::config::SeriesConfig;
use crate::shard::Shard;
use crate::snapshot::{
    ClusterSnapshot, ColdCounts, PartitionStats, ScanSummary, TableResults, TableStats,
    Unreferenced,
};
use hive_smallfiles_core::walk::counts::FileCounts;

/// A table of `excess` excess files and `small_bytes` bytes in small files (one small
/// file of that size, one big file).
pub(crate) fn table(database: &str, name: &str, excess: u64, small_bytes: u64) -> TableStats {
    let mut counts = FileCounts::default();
    counts.add_file(small_bytes, 1_700_000_000_000, 0, u64::MAX);
    counts.add_file(1 << 30, 1_700_000_000_000, 0, 1 << 20);
    TableStats {
        catalog: "hive".into(),
        database: database.into(),
        table: name.into(),
        format: "orc",
        compression: "zlib".into(),
        table_type: "managed",
        transactional: "false",
        location: format!("hdfs://ns/w/{database}/{name}"),
        partitions: 1,
        counts,
        excess_files: excess,
        missing_directories: 0,
        unreferenced: None,
        cold: ColdCounts::default(),
    }
}

pub(crate) fn sample_snapshot() -> ClusterSnapshot {
    let mut counts = FileCounts::default();
    counts.add_file(0, 1_700_000_000_000, 0, 100);
    counts.add_file(10, 1_700_000_001_500, 1_700_000_002_000, 100);
    counts.add_file(1000, 1_700_000_000_000, 0, 100);
    ClusterSnapshot {
        cluster: "prod".into(),
        small_file_bytes: 100,
        target_file_bytes: 1000,
        tables: vec![
            TableStats {
                catalog: "hive".into(),
                database: "sales".into(),
                table: "we\"ird \\ name\nx".into(),
                format: "text",
                compression: "none".into(),
                table_type: "external",
                transactional: "false",
                location: "hdfs://ns/w/t".into(),
                partitions: 2,
                counts,
                excess_files: 2,
                missing_directories: 0,
                unreferenced: Some(Unreferenced {
                    directories: 2,
                    files: 5,
                    bytes: 1234,
                }),
                cold: ColdCounts::default(),
            },
            TableStats {
                catalog: "hive".into(),
                database: "sales".into(),
                table: "empty".into(),
                format: "orc",
                compression: "unknown".into(),
                table_type: "managed",
                transactional: "full",
                location: "hdfs://ns/w/e".into(),
                partitions: 0,
                counts: FileCounts::default(),
                excess_files: 0,
                missing_directories: 1,
                unreferenced: None,
                cold: ColdCounts::default(),
            },
        ],
        scan: ScanSummary {
            started_unix: 1_700_000_100.0,
            duration_seconds: 1.5,
            success: true,
            metastore_up: true,
            tables: TableResults {
                scanned: 2,
                skipped: 1,
                failed: 0,
                filtered: 3,
            },
            unreferenced_listings: 4,
            ..ScanSummary::default()
        },
        last_success_unix: Some(1_700_000_101.5),
        completed_once: true,
        ..ClusterSnapshot::default()
    }
}

#[test]
fn renders_both_formats() {
    let m = Metrics::new();
    m.snapshots.publish(Arc::new(sample_snapshot()));
    let text = m.render(Format::Text);
    assert!(text.contains("# TYPE hive_table_files gauge\n"), "{text}");
    assert!(text.contains(
        "hive_table_files{cluster=\"prod\",database=\"sales\",table=\"we\\\"ird \\\\ name\\nx\"} 3\n"
    ));
    assert!(text.contains("hive_table_newest_file_timestamp_seconds{cluster=\"prod\",database=\"sales\",table=\"we\\\"ird \\\\ name\\nx\"} 1700000001.5\n"));
    assert!(!text.contains("hive_table_newest_file_timestamp_seconds{cluster=\"prod\",database=\"sales\",table=\"empty\"}"));
    assert!(text.contains("# TYPE hive_table_info gauge\n"));
    assert!(text.contains("# TYPE hive_exporter_build_info gauge\n"));
    assert!(text.contains("hive_scan_tables{cluster=\"prod\",result=\"filtered\"} 3\n"));
    assert!(text.contains("hive_scan_unreferenced_listings{cluster=\"prod\"} 4\n"));
    for (name, v) in [("files", 5), ("bytes", 1234), ("directories", 2)] {
        assert!(
            text.contains(&format!("# TYPE hive_table_unreferenced_{name} gauge\n")),
            "{name}"
        );
        assert!(
            text.contains(&format!("hive_table_unreferenced_{name}{{cluster=\"prod\",database=\"sales\",table=\"we\\\"ird \\\\ name\\nx\"}} {v}\n")),
            "{name}: {text}"
        );
        // Not looked at: no sample rather than a 0.
        assert!(!text.contains(&format!(
            "hive_table_unreferenced_{name}{{cluster=\"prod\",database=\"sales\",table=\"empty\"}}"
        )));
    }
    assert!(text.contains("hive_database_files_by_size_class{cluster=\"prod\",database=\"sales\",shard=\"0/1\",size_class=\"empty\"} 1\n"));
    assert!(!text.contains("# EOF"));
    let om = m.render(Format::OpenMetrics);
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE hive_table info\n"));
}

/// Sum of the samples of `name` (text format, any labels).
fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

fn big_snapshot(n: usize) -> ClusterSnapshot {
    let mut tables: Vec<TableStats> = (0..n)
        .map(|i| {
            let mut t = table(
                &format!("db{}", i % 3),
                &format!("t{i:03}"),
                (i as u64 * 7) % 11,
                i as u64,
            );
            t.cold = ColdCounts {
                partitions: 1,
                files: 2,
                bytes: 3,
                small_files: 1,
                small_bytes: i as u64,
                excess_files: (i as u64) % 2,
            };
            t
        })
        .collect();
    tables.sort_by(|a, b| (&a.database, &a.table).cmp(&(&b.database, &b.table)));
    ClusterSnapshot {
        cluster: "big".into(),
        tables,
        completed_once: true,
        last_success_unix: Some(1.0),
        top_partitions: vec![PartitionStats {
            database: "db0".into(),
            table: "t000".into(),
            partition: "d=2024-01-01/h=\"x\"".into(),
            files: 40,
            bytes: 4000,
            small_files: 39,
            small_bytes: 3900,
            excess_files: 39,
            newest_modification_ms: 1_700_000_000_500,
        }],
        ..ClusterSnapshot::default()
    }
}

#[test]
fn rollups_stay_exact_under_any_cap() {
    let snap = big_snapshot(50);
    let files: u64 = snap.tables.iter().map(|t| t.counts.files).sum();
    let small_bytes: u64 = snap.tables.iter().map(|t| t.counts.small_bytes).sum();
    let excess: u64 = snap.tables.iter().map(|t| t.excess_files).sum();
    let cold_excess: u64 = snap.tables.iter().map(|t| t.cold.excess_files).sum();
    for max_tables in [0, 1, 7, 50, 5000] {
        let m = Metrics::new();
        m.snapshots.configure(
            "big",
            ExportSettings {
                series: SeriesConfig {
                    max_tables,
                    ..SeriesConfig::default()
                },
                shard: Shard::new(2, 3),
            },
        );
        m.snapshots.publish(Arc::new(snap.clone()));
        let text = m.render(Format::Text);
        #[allow(clippy::cast_precision_loss)]
        {
            assert_eq!(sum(&text, "hive_database_files"), files as f64);
            assert_eq!(
                sum(&text, "hive_database_files_by_size_class"),
                files as f64
            );
            assert_eq!(
                sum(&text, "hive_database_small_file_bytes"),
                small_bytes as f64
            );
            assert_eq!(sum(&text, "hive_database_excess_files"), excess as f64);
            assert_eq!(
                sum(&text, "hive_database_cold_excess_files"),
                cold_excess as f64
            );
            assert_eq!(sum(&text, "hive_database_tables"), 50.0);
            let kept = max_tables.min(50);
            assert_eq!(
                sum(&text, "hive_table_files"),
                (2 * kept) as f64,
                "{max_tables}"
            );
            assert_eq!(sum(&text, "hive_table_info"), kept as f64);
            assert_eq!(sum(&text, "hive_exporter_tables_exported"), kept as f64);
            assert_eq!(
                sum(&text, "hive_exporter_tables_omitted"),
                (50 - kept) as f64
            );
        }
        assert!(
            text.contains("hive_database_files{cluster=\"big\",database=\"db1\",shard=\"2/3\"} ")
        );
        assert!(text.contains(
            "hive_database_files_by_size_class{cluster=\"big\",database=\"db1\",shard=\"2/3\",size_class=\"empty\"} "
        ));
        // The self-count equals the samples of the cluster's other families.
        let samples = text
            .lines()
            .filter(|l| l.starts_with("hive_") && !l.starts_with("hive_exporter_"))
            .count();
        #[allow(clippy::cast_precision_loss)]
        let samples = samples as f64;
        assert_eq!(sum(&text, "hive_exporter_series"), samples);
    }
}

/// Replicas sharing a cluster (`shard = "i/3"`, shard 1 run twice for HA): the contract's
/// cluster total, `sum by (cluster) (max by (cluster, database, shard) (X))`, equals the
/// sum over every table, whatever the cap.
#[test]
fn rollups_add_up_across_shards() {
    let all = big_snapshot(60);
    let want: u64 = all.tables.iter().map(|t| t.counts.files).sum();
    let mut max_by_db_shard: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (index, replica) in [(0, 0), (1, 0), (1, 1), (2, 0)] {
        let shard = Shard::new(index, 3).unwrap();
        let mut snap = all.clone();
        snap.tables
            .retain(|t| shard.owns(&snap.cluster, &t.database, &t.table));
        let m = Metrics::new();
        m.snapshots.configure(
            "big",
            ExportSettings {
                series: SeriesConfig {
                    max_tables: 1 + replica,
                    ..SeriesConfig::default()
                },
                shard: Some(shard),
            },
        );
        m.snapshots.publish(Arc::new(snap));
        for line in m.render(Format::Text).lines() {
            let Some(rest) = line.strip_prefix("hive_database_files{") else {
                continue;
            };
            let (labels, value) = rest.split_once("} ").unwrap();
            let db = labels.split(',').nth(1).unwrap().to_owned();
            let v: f64 = value.parse().unwrap();
            let e = max_by_db_shard
                .entry((db, shard.to_string()))
                .or_insert(0.0);
            *e = e.max(v);
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let want = want as f64;
    assert_eq!(max_by_db_shard.values().sum::<f64>(), want);
    assert_eq!(
        max_by_db_shard
            .keys()
            .map(|(_, s)| s.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3
    );
}

#[test]
fn cap_keeps_the_worst() {
    let m = Metrics::new();
    m.snapshots.configure(
        "big",
        ExportSettings {
            series: SeriesConfig {
                max_tables: 1,
                ..SeriesConfig::default()
            },
            shard: None,
        },
    );
    m.snapshots.publish(Arc::new(big_snapshot(50)));
    let text = m.render(Format::Text);
    // Excess files (i * 7) % 11 peak at 10 for i = 3, 14, 25, 36, 47; the small-file bytes
    // (i) break the tie: db2.t047.
    let files: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("hive_table_excess_files{"))
        .collect();
    assert_eq!(
        files,
        ["hive_table_excess_files{cluster=\"big\",database=\"db2\",table=\"t047\"} 10"]
    );
    assert!(text.contains("hive_database_files{cluster=\"big\",database=\"db0\",shard=\"0/1\"} "));
}

#[test]
fn new_families_and_location_label() {
    for location_label in [true, false] {
        let m = Metrics::new();
        m.snapshots.configure(
            "big",
            ExportSettings {
                series: SeriesConfig {
                    location_label,
                    ..SeriesConfig::default()
                },
                shard: None,
            },
        );
        m.snapshots.publish(Arc::new(big_snapshot(4)));
        let text = m.render(Format::Text);
        let l = "{cluster=\"big\",database=\"db1\",table=\"t001\"}";
        for (name, v) in [
            ("hive_table_small_file_bytes", 1),
            ("hive_table_cold_partitions", 1),
            ("hive_table_cold_files", 2),
            ("hive_table_cold_small_files", 1),
            ("hive_table_cold_small_file_bytes", 1),
            ("hive_table_cold_excess_files", 1),
        ] {
            assert!(text.contains(&format!("# TYPE {name} gauge\n")), "{name}");
            assert!(text.contains(&format!("{name}{l} {v}\n")), "{name}: {text}");
        }
        let p = "{cluster=\"big\",database=\"db0\",table=\"t000\",partition=\"d=2024-01-01/h=\\\"x\\\"\"}";
        for (name, v) in [
            ("hive_partition_files", "40"),
            ("hive_partition_small_files", "39"),
            ("hive_partition_small_file_bytes", "3900"),
            ("hive_partition_size_bytes", "4000"),
            ("hive_partition_excess_files", "39"),
            (
                "hive_partition_newest_file_timestamp_seconds",
                "1700000000.5",
            ),
        ] {
            assert!(text.contains(&format!("{name}{p} {v}\n")), "{name}: {text}");
        }
        let info = text
            .lines()
            .find(|l| l.starts_with("hive_table_info{") && l.contains("t001"))
            .unwrap();
        assert_eq!(
            info.contains("location=\"hdfs://ns/w/db1/t001\""),
            location_label,
            "{info}"
        );
        assert!(info.contains("format=\"orc\""));
        let om = m.render(Format::OpenMetrics);
        assert_eq!(om.contains(",location=\""), location_label);
    }
}

/// Both formats carry the same samples.
#[test]
fn formats_agree_on_samples() {
    let m = Metrics::new();
    m.snapshots.publish(Arc::new(big_snapshot(30)));
    let samples = |text: &str| {
        let mut v: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("hive_") && !l.starts_with("hive_exporter_build"))
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        samples(&m.render(Format::Text)),
        samples(&m.render(Format::OpenMetrics))
    );
}

#[test]
fn negotiation() {
    let prom = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
    assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
    assert_eq!(Format::negotiate(None), Format::Text);
    assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
}
