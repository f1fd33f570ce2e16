//! The exporter's WebHDFS client and scanner against the WebHDFS server written from the
//! Hadoop documentation: HA with a standby NameNode, tiny listing batches, injected 5xx,
//! a NameNode without LISTSTATUS_BATCH, hostile names. Expected numbers come from walking
//! the local tree the server imported (independent of the exporter).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hive_smallfiles_core::fs::FileSystem;
use hive_smallfiles_core::fs::webhdfs::{WebHdfs, WebHdfsMetrics};
use hive_smallfiles_core::metastore::{
    MetastoreSnapshot, PartitionKey, PartitionMeta, SchemaInfo, TableMeta,
};
use hive_smallfiles_exporter::config::Config;
use hive_smallfiles_exporter::scan::ClusterScanner;
use hive_smallfiles_exporter::snapshot::TableStats;
use hive_smallfiles_tests::truth::{Truth, walk_partition};
use hive_smallfiles_tests::warehouse::Warehouse;
use hive_smallfiles_tests::webhdfs_server::{
    Namespace, RunningServer, ServerOptions, WebHdfsServer,
};

const SMALL: u64 = 1000;
const TARGET: u64 = 4000;

struct Table {
    db: &'static str,
    name: String,
    /// Partition directories relative to the warehouse (empty: unpartitioned).
    parts: Vec<String>,
    /// Table directory relative to the warehouse.
    dir: String,
}

fn build_warehouse(w: &Warehouse) -> Vec<Table> {
    let mut tables = Vec::new();
    // Unpartitioned, with hidden files, an empty file and a staging directory.
    w.file("db.db/plain/000000_0", 10).unwrap();
    w.file("db.db/plain/000001_0", 0).unwrap();
    w.file("db.db/plain/000002_0", 5000).unwrap();
    w.file("db.db/plain/_SUCCESS", 0).unwrap();
    w.file("db.db/plain/.000000_0.crc", 12).unwrap();
    w.file("db.db/plain/.hive-staging_1/-ext-10000/000000_0", 99)
        .unwrap();
    tables.push(Table {
        db: "db",
        name: "plain".into(),
        parts: vec![],
        dir: "db.db/plain".into(),
    });
    // Partitioned with hostile values (stored escaped in directory names, as Hive does).
    let values = [
        "2024-01-01",
        "a b",
        "100%25",
        "x%3Dy",
        "it%27s",
        "ünï",
        "__HIVE_DEFAULT_PARTITION__",
    ];
    let mut parts = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let p = format!("db.db/hostile tbl/k={v}");
        for f in 0..=i {
            w.file(&format!("{p}/part-{f:05}"), (f as u64 + 1) * 300)
                .unwrap();
        }
        parts.push(p);
    }
    // A partition listed in the MetaStore whose directory is gone.
    parts.push("db.db/hostile tbl/k=missing".into());
    tables.push(Table {
        db: "db",
        name: "hostile tbl".into(),
        parts,
        dir: "db.db/hostile tbl".into(),
    });
    // Multi-level partitions, one with a nested directory, and one at a custom location.
    let mut parts = Vec::new();
    for d in 1..=3 {
        for h in 0..4 {
            let p = format!("db.db/multi/dt=2024-01-0{d}/hr={h:02}");
            w.file(&format!("{p}/000000_0"), 100 * h + 1).unwrap();
            parts.push(p);
        }
    }
    w.file(
        "db.db/multi/dt=2024-01-01/hr=00/HIVE_UNION_SUBDIR_1/000000_0",
        7,
    )
    .unwrap();
    w.file("elsewhere/custom/000000_0", 2000).unwrap();
    parts.push("elsewhere/custom".into());
    tables.push(Table {
        db: "db",
        name: "multi".into(),
        parts,
        dir: "db.db/multi".into(),
    });
    // Many small files in one directory, more than several listing batches.
    for f in 0..25 {
        w.file(&format!("big.db/many/f{f:03}"), 10).unwrap();
    }
    tables.push(Table {
        db: "big",
        name: "many".into(),
        parts: vec![],
        dir: "big.db/many".into(),
    });
    tables
}

fn metastore_snapshot(tables: &[Table]) -> MetastoreSnapshot {
    let loc = |rel: &str| format!("hdfs://testns/warehouse/{rel}");
    let tables = tables
        .iter()
        .enumerate()
        .map(|(i, t)| TableMeta {
            id: i as i64,
            catalog: "hive".into(),
            database: t.db.into(),
            name: t.name.clone(),
            tbl_type: "EXTERNAL_TABLE".into(),
            location: Some(loc(&t.dir)),
            input_format: Some("org.apache.hadoop.mapred.TextInputFormat".into()),
            output_format: None,
            serde_lib: None,
            num_buckets: -1,
            bucket_columns: 0,
            sort_columns: 0,
            cd_id: None,
            create_time: 0,
            params: BTreeMap::new(),
            serde_params: BTreeMap::new(),
            partition_keys: if t.parts.is_empty() {
                vec![]
            } else {
                vec![PartitionKey {
                    name: "k".into(),
                    type_name: "string".into(),
                }]
            },
            partitions: t
                .parts
                .iter()
                .enumerate()
                .map(|(j, p)| PartitionMeta {
                    id: j as i64,
                    name: p.rsplit('/').next().unwrap_or_default().into(),
                    values: vec![],
                    location: Some(loc(p)),
                    create_time: 0,
                    stats_num_files: None,
                })
                .collect(),
        })
        .collect();
    MetastoreSnapshot {
        schema: SchemaInfo::default(),
        tables,
        ..MetastoreSnapshot::default()
    }
}

fn truth(w: &Warehouse, t: &Table) -> Truth {
    let mut acc = Truth::default();
    let dirs = if t.parts.is_empty() {
        vec![t.dir.clone()]
    } else {
        t.parts.clone()
    };
    for d in dirs {
        walk_partition(&w.path(&d), SMALL, TARGET, &mut acc);
    }
    acc
}

/// Ground truth of every table. Must be computed before the server imports the tree: reading
/// the files for the import moves their access times.
fn truths(w: &Warehouse, tables: &[Table]) -> BTreeMap<String, Truth> {
    tables
        .iter()
        .map(|t| (t.name.clone(), truth(w, t)))
        .collect()
}

fn assert_matches(stats: &[TableStats], truths: &BTreeMap<String, Truth>, tables: &[Table]) {
    for t in tables {
        let want = truths[&t.name].clone();
        let got = stats
            .iter()
            .find(|s| s.database == t.db && s.table == t.name)
            .unwrap_or_else(|| panic!("table {}.{} missing from the scan", t.db, t.name));
        let c = &got.counts;
        assert_eq!(
            (
                c.files,
                c.bytes,
                c.small_files,
                c.empty_files,
                got.excess_files,
                got.missing_directories
            ),
            (
                want.files,
                want.bytes,
                want.small,
                want.empty,
                want.excess,
                want.missing
            ),
            "table {}.{}",
            t.db,
            t.name
        );
        assert_eq!(c.size_classes, want.classes, "size classes of {}", t.name);
        assert_eq!(
            c.newest_modification_ms, want.newest_mtime_ms,
            "newest mtime of {}",
            t.name
        );
        assert_eq!(
            c.newest_access_ms, want.newest_atime_ms,
            "newest atime of {}",
            t.name
        );
    }
}

fn cluster_config(
    server: &RunningServer,
    max_requests: usize,
) -> hive_smallfiles_exporter::config::ClusterConfig {
    let nns: Vec<String> = server
        .namenode_urls()
        .iter()
        .map(|u| format!("{u:?}"))
        .collect();
    let text = format!(
        r#"
        [[cluster]]
        name = "test"
        small_file_bytes = {SMALL}
        target_file_bytes = {TARGET}
        [cluster.metastore]
        url = "mysql://hive@127.0.0.1/unused"
        [cluster.storage]
        type = "webhdfs"
        namenodes = [{}]
        authorities = ["testns"]
        max_concurrent_requests = {max_requests}
        request_timeout = "5s"
        "#,
        nns.join(", ")
    );
    Config::from_toml(&text, Path::new("."), &BTreeMap::new())
        .unwrap()
        .clusters
        .remove(0)
}

async fn start(ns: Arc<Namespace>, batch: bool) -> RunningServer {
    WebHdfsServer::start(
        ServerOptions::new()
            .namespace(ns)
            .namenodes(2)
            .active(Some(1))
            .ls_limit(3)
            .batch_supported(batch),
    )
    .await
    .unwrap()
}

fn client(
    config: &hive_smallfiles_exporter::config::ClusterConfig,
    metrics: &WebHdfsMetrics,
) -> Arc<dyn FileSystem> {
    match &config.storage {
        hive_smallfiles_core::config::StorageConfig::WebHdfs { client, .. } => {
            let mut c = client.clone();
            c.retry_initial_backoff = Duration::from_millis(5);
            Arc::new(WebHdfs::new(c, metrics.clone()).unwrap())
        }
        hive_smallfiles_core::config::StorageConfig::Local { .. } => unreachable!(),
    }
}

#[tokio::test]
async fn scan_over_webhdfs_matches_ground_truth_and_rescans_incrementally() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::new(dir.path()).unwrap();
    let tables = build_warehouse(&w);
    let expected = truths(&w, &tables);
    let ns = Namespace::new_shared();
    ns.import_dir(w.root(), "/warehouse").unwrap();
    let server = start(Arc::clone(&ns), true).await;
    let config = cluster_config(&server, 4);
    let metrics = WebHdfsMetrics::default();
    let fs = client(&config, &metrics);
    let mut scanner = ClusterScanner::new(config, Arc::clone(&fs));

    // First NameNode is standby; two injected 500s must be retried.
    server.fail_next(2, 500, "RuntimeException");
    let (stats, summary, _) = scanner
        .list_tables(metastore_snapshot(&tables))
        .await
        .unwrap();
    assert_matches(&stats, &expected, &tables);
    assert_eq!(summary.tables.scanned, 4);
    assert!(
        server.max_concurrent() <= 4,
        "client bound exceeded: {}",
        server.max_concurrent()
    );
    let full_calls = server.requests_for_op("LISTSTATUS_BATCH");
    assert!(full_calls > 0);

    // Unchanged rescan: parents only, plus the one partition that has a subdirectory.
    server.reset_counters();
    let (stats2, summary2, _) = scanner
        .list_tables(metastore_snapshot(&tables))
        .await
        .unwrap();
    assert_matches(&stats2, &expected, &tables);
    let rescan_calls = server.requests_for_op("LISTSTATUS_BATCH");
    assert!(
        rescan_calls * 3 < full_calls,
        "rescan {rescan_calls} vs full {full_calls}"
    );
    assert!(summary2.reused_directories >= 20);

    // A writer adds a file to one partition (through WebHDFS semantics): only it changes.
    w.file("db.db/multi/dt=2024-01-03/hr=02/000001_0", 333)
        .unwrap();
    ns.add_file(
        "/warehouse/db.db/multi/dt=2024-01-03/hr=02/000001_0",
        vec![b'x'; 333],
    )
    .unwrap();
    let mtime = std::fs::metadata(w.path("db.db/multi/dt=2024-01-03/hr=02/000001_0"))
        .unwrap()
        .modified()
        .unwrap();
    let ms = mtime
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    ns.set_times(
        "/warehouse/db.db/multi/dt=2024-01-03/hr=02/000001_0",
        Some(ms),
        Some(ms + 60_000),
    )
    .unwrap();
    let mut expected3 = truths(&w, &tables);
    for (name, t) in &mut expected3 {
        let before = expected[name].newest_atime_ms;
        t.newest_atime_ms = if name == "multi" {
            before.max(ms + 60_000)
        } else {
            before
        };
    }
    let (stats3, _, _) = scanner
        .list_tables(metastore_snapshot(&tables))
        .await
        .unwrap();
    assert_matches(&stats3, &expected3, &tables);
}

#[tokio::test]
async fn old_namenode_without_batch_listing() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::new(dir.path()).unwrap();
    let tables = build_warehouse(&w);
    let expected = truths(&w, &tables);
    let ns = Namespace::new_shared();
    ns.import_dir(w.root(), "/warehouse").unwrap();
    let server = start(ns, false).await;
    let config = cluster_config(&server, 8);
    let metrics = WebHdfsMetrics::default();
    let mut scanner = ClusterScanner::new(config.clone(), client(&config, &metrics));
    let (stats, _, _) = scanner
        .list_tables(metastore_snapshot(&tables))
        .await
        .unwrap();
    assert_matches(&stats, &expected, &tables);
    assert!(server.requests_for_op("LISTSTATUS") > 0);
}

#[tokio::test]
async fn a_failing_directory_fails_only_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::new(dir.path()).unwrap();
    let tables = build_warehouse(&w);
    let expected = truths(&w, &tables);
    let ns = Namespace::new_shared();
    ns.import_dir(w.root(), "/warehouse").unwrap();
    let server = start(ns, true).await;
    server.fail_path_prefix("/warehouse/big.db/many", 403, "AccessControlException");
    let config = cluster_config(&server, 8);
    let metrics = WebHdfsMetrics::default();
    let mut scanner = ClusterScanner::new(config.clone(), client(&config, &metrics));
    let (stats, summary, _) = scanner
        .list_tables(metastore_snapshot(&tables))
        .await
        .unwrap();
    assert_eq!(summary.tables.failed, 1);
    assert_eq!(summary.tables.scanned, 3);
    assert!(stats.iter().all(|s| s.table != "many"));
    assert_matches(&stats, &expected, &tables[..3]);
}
