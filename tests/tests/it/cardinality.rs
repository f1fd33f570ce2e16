//! Cardinality control end to end: the exporter on a real MetaStore (MariaDB and
//! PostgreSQL) and a local warehouse with `[cluster.series] max_tables = 1` and
//! `location_label = false`. One table keeps its series; the per-database rollups still equal
//! the ground truth over every table (walking the files), and the self-metrics count what is
//! exported.

use std::path::Path;
use std::time::Duration;

use hive_smallfiles_tests::metastore_fixture::{DbKind, FixtureDb, SchemaVersion, unique_db_name};
use hive_smallfiles_tests::prom::{self, Sample};
use hive_smallfiles_tests::scenario::{SMALL_FILE_BYTES, Scenario, TARGET_FILE_BYTES};
use hive_smallfiles_tests::services::Exporter;
use hive_smallfiles_tests::truth::Truth;
use hive_smallfiles_tests::warehouse::Warehouse;

use crate::exporter_e2e::write_config;

/// Bytes held in files smaller than `small` below `dir` (visible files only, as Hive reads
/// them: names starting with `.` or `_` are hidden), walked independently of the exporter.
fn small_file_bytes(dir: &Path, small: u64) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    if meta.is_file() {
        return if meta.len() < small { meta.len() } else { 0 };
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut sum = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        sum += small_file_bytes(&e.path(), small);
    }
    sum
}

fn sum_of(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && s.labels.get("cluster").map(String::as_str) == Some("e2e"))
        .map(|s| s.value)
        .sum()
}

async fn capped(kind: DbKind, version: SchemaVersion) {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::new(dir.path().join("warehouse")).unwrap();
    let scenario = Scenario::build(&w, &|rel| w.uri(rel), version.has_catalogs());
    let truths: Vec<Truth> = scenario
        .expected
        .iter()
        .map(|e| e.truth(SMALL_FILE_BYTES, TARGET_FILE_BYTES))
        .collect();
    let small_bytes: Vec<u64> = scenario
        .expected
        .iter()
        .map(|e| {
            e.dirs
                .iter()
                .map(|d| small_file_bytes(d, SMALL_FILE_BYTES))
                .sum()
        })
        .collect();
    let db = FixtureDb::create(kind, version, &unique_db_name(&format!("card_{kind:?}")))
        .await
        .unwrap();
    db.insert(&scenario.tables).await.unwrap();
    let storage = format!("type = \"local\"\nroot = \"{}\"", w.root().display());
    let config = write_config(dir.path(), &db, &storage, "1h");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "[cluster.metastore]",
        "shard = \"0/1\"\n[cluster.series]\nmax_tables = 1\nlocation_label = false\n[cluster.metastore]",
    );
    std::fs::write(&config, text).unwrap();

    let mut exporter = Exporter::from_file(&config).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (status, _, body) = exporter.get("/metrics", None).await;
    assert_eq!(status, 200);
    let lint = prom::promtool_check_metrics(&body);
    assert!(lint.is_empty(), "promtool check metrics: {lint}");
    let samples = prom::parse(&body);

    // Rollups over every table equal the walked truth, per database and in total.
    let n = scenario.expected.len();
    assert!(n > 2, "the scenario has several tables");
    let mut databases: Vec<&str> = scenario
        .expected
        .iter()
        .map(|e| e.database.as_str())
        .collect();
    databases.sort_unstable();
    databases.dedup();
    #[allow(clippy::cast_precision_loss)]
    for db_name in &databases {
        let of_db = || {
            scenario
                .expected
                .iter()
                .zip(&truths)
                .zip(&small_bytes)
                .filter(move |((e, _), _)| e.database == *db_name)
        };
        let l = [("cluster", "e2e"), ("database", *db_name), ("shard", "0/1")];
        let v = |name: &str| {
            prom::value(&samples, name, &l).unwrap_or_else(|| panic!("{name} of {db_name}"))
        };
        let want = [
            of_db().count() as f64,
            of_db().map(|((e, _), _)| e.partitions).sum::<u64>() as f64,
            of_db().map(|((_, t), _)| t.files).sum::<u64>() as f64,
            of_db().map(|((_, t), _)| t.small).sum::<u64>() as f64,
            of_db().map(|(_, b)| *b).sum::<u64>() as f64,
            of_db().map(|((_, t), _)| t.bytes).sum::<u64>() as f64,
            of_db().map(|((_, t), _)| t.excess).sum::<u64>() as f64,
        ];
        let got = [
            v("hive_database_tables"),
            v("hive_database_partitions"),
            v("hive_database_files"),
            v("hive_database_small_files"),
            v("hive_database_small_file_bytes"),
            v("hive_database_size_bytes"),
            v("hive_database_excess_files"),
        ];
        assert_eq!(
            got, want,
            "tables/partitions/files/small/small bytes/bytes/excess of {db_name}"
        );
        // Cold counts never exceed the totals.
        assert!(v("hive_database_cold_files") <= v("hive_database_files"));
        assert!(v("hive_database_cold_excess_files") <= v("hive_database_excess_files"));
    }
    #[allow(clippy::cast_precision_loss)]
    {
        let files: u64 = truths.iter().map(|t| t.files).sum();
        assert_eq!(sum_of(&samples, "hive_database_files"), files as f64);
        assert_eq!(
            sum_of(&samples, "hive_database_files_by_size_class"),
            files as f64
        );
        assert_eq!(sum_of(&samples, "hive_exporter_tables_exported"), 1.0);
        assert_eq!(
            sum_of(&samples, "hive_exporter_tables_omitted"),
            (n - 1) as f64
        );
    }

    // One table keeps its series, with the walked numbers; no location label.
    let kept: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == "hive_table_files")
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let (database, table) = (&kept[0].labels["database"], &kept[0].labels["table"]);
    let i = scenario
        .expected
        .iter()
        .position(|e| e.database == *database && e.table == *table)
        .expect("the kept table is a scenario table");
    let l = [
        ("cluster", "e2e"),
        ("database", database.as_str()),
        ("table", table.as_str()),
    ];
    #[allow(clippy::cast_precision_loss)]
    {
        assert_eq!(kept[0].value, truths[i].files as f64);
        assert_eq!(
            prom::value(&samples, "hive_table_excess_files", &l),
            Some(truths[i].excess as f64)
        );
        assert_eq!(
            prom::value(&samples, "hive_table_small_file_bytes", &l),
            Some(small_bytes[i] as f64)
        );
    }
    let info: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == "hive_table_info")
        .collect();
    assert_eq!(info.len(), 1);
    assert!(!info[0].labels.contains_key("location"), "{info:?}");
    assert!(info[0].labels.contains_key("format"));

    // The self-count equals the samples of the cluster's snapshot families.
    let snapshot_samples = samples
        .iter()
        .filter(|s| {
            s.labels.get("cluster").map(String::as_str) == Some("e2e")
                && !s.name.starts_with("hive_exporter_")
                && !s.name.starts_with("hive_hdfs_")
                && s.name != "hive_scans_total"
        })
        .count();
    #[allow(clippy::cast_precision_loss)]
    let snapshot_samples = snapshot_samples as f64;
    assert_eq!(
        prom::value(&samples, "hive_exporter_series", &[("cluster", "e2e")]),
        Some(snapshot_samples)
    );

    // OpenMetrics carries the same rollups.
    let (_, _, om) = exporter
        .get(
            "/metrics",
            Some("application/openmetrics-text;version=1.0.0"),
        )
        .await;
    assert!(om.ends_with("# EOF\n"));
    assert_eq!(
        sum_of(&prom::parse(&om), "hive_database_files"),
        sum_of(&samples, "hive_database_files")
    );
    exporter.stop().await.expect("the exporter stops cleanly");
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn mariadb_capped_to_one_table() {
    capped(DbKind::Mysql, SchemaVersion::Hive3_1).await;
}

#[tokio::test]
async fn postgres_capped_to_one_table() {
    capped(DbKind::Postgres, SchemaVersion::Hive2_1).await;
}

/// Two replicas sharing the tables (`shard = "0/2"` and `"1/2"`): every table is counted by
/// exactly one, and the contract's cluster total over the rollups,
/// `sum by (cluster) (max by (cluster, database, shard) (hive_database_files))`, equals the
/// walked truth over all tables.
#[tokio::test]
async fn two_shards_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::new(dir.path().join("warehouse")).unwrap();
    let scenario = Scenario::build(&w, &|rel| w.uri(rel), false);
    let truths: Vec<Truth> = scenario
        .expected
        .iter()
        .map(|e| e.truth(SMALL_FILE_BYTES, TARGET_FILE_BYTES))
        .collect();
    let db = FixtureDb::create(
        DbKind::Mysql,
        SchemaVersion::Hive2_1,
        &unique_db_name("card_shards"),
    )
    .await
    .unwrap();
    db.insert(&scenario.tables).await.unwrap();
    let storage = format!("type = \"local\"\nroot = \"{}\"", w.root().display());
    let mut per_db_shard: std::collections::BTreeMap<(String, String), f64> =
        std::collections::BTreeMap::new();
    let mut tables_scanned = 0.0;
    let mut filtered_by_shard = 0.0;
    for shard in ["0/2", "1/2"] {
        let sub = dir.path().join(shard.replace('/', "of"));
        std::fs::create_dir_all(&sub).unwrap();
        let config = write_config(&sub, &db, &storage, "1h");
        let text = std::fs::read_to_string(&config).unwrap().replace(
            "[cluster.metastore]",
            &format!("shard = \"{shard}\"\n[cluster.metastore]"),
        );
        std::fs::write(&config, text).unwrap();
        let mut exporter = Exporter::from_file(&config).await;
        exporter.wait_ready(Duration::from_secs(60)).await;
        let (_, _, body) = exporter.get("/metrics", None).await;
        let lint = prom::promtool_check_metrics(&body);
        assert!(lint.is_empty(), "promtool check metrics: {lint}");
        let samples = prom::parse(&body);
        for s in samples.iter().filter(|s| s.name == "hive_database_files") {
            assert_eq!(s.labels["shard"], shard);
            let e = per_db_shard
                .entry((s.labels["database"].clone(), s.labels["shard"].clone()))
                .or_insert(0.0);
            *e = e.max(s.value);
        }
        tables_scanned += sum_of(&samples, "hive_database_tables");
        filtered_by_shard += prom::value(
            &samples,
            "hive_scan_filtered_tables",
            &[("cluster", "e2e"), ("reason", "shard")],
        )
        .unwrap_or(0.0);
        exporter.stop().await.expect("the exporter stops cleanly");
    }
    #[allow(clippy::cast_precision_loss)]
    {
        let files: u64 = truths.iter().map(|t| t.files).sum();
        assert_eq!(per_db_shard.values().sum::<f64>(), files as f64);
        assert_eq!(tables_scanned, scenario.expected.len() as f64);
    }
    // Each replica counts the other's listable tables as filtered by shard.
    assert!(filtered_by_shard >= tables_scanned, "{filtered_by_shard}");
    db.drop_database().await.unwrap();
}
