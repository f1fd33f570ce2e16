//! End to end: real MetaStore schemas on real MariaDB and PostgreSQL, a warehouse of real
//! files (`file:` locally, or served over WebHDFS), the exporter's service in-process on a
//! listener of the test, and its `/metrics` compared table by table with ground truth from
//! walking the files.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hive_smallfiles_tests::metastore_fixture::{DbKind, FixtureDb, SchemaVersion, unique_db_name};
use hive_smallfiles_tests::prom::{self, Sample};
use hive_smallfiles_tests::scenario::{SMALL_FILE_BYTES, Scenario, TARGET_FILE_BYTES};
use hive_smallfiles_tests::services::Exporter;
use hive_smallfiles_tests::truth::Truth;
use hive_smallfiles_tests::warehouse::Warehouse;
use hive_smallfiles_tests::webhdfs_server::{Namespace, ServerOptions, WebHdfsServer};

fn metastore_url(db: &FixtureDb) -> String {
    let c = db.metastore_config();
    let scheme = match db.kind() {
        DbKind::Mysql => "mysql",
        DbKind::Postgres => "postgres",
    };
    format!("{scheme}://{}@{}:{}/{}", c.user, c.host, c.port, c.database)
}

pub(crate) fn write_config(
    dir: &Path,
    db: &FixtureDb,
    storage: &str,
    interval: &str,
) -> std::path::PathBuf {
    let c = db.metastore_config();
    let mut metastore = format!("url = \"{}\"\n", metastore_url(db));
    if let Some(pw) = &c.password {
        std::fs::write(dir.join("hms.password"), pw.expose()).unwrap();
        metastore.push_str("password_file = \"hms.password\"\n");
    }
    if db.version().has_catalogs() {
        metastore.push_str("catalogs = [\"hive\", \"spark\"]\n");
    }
    let text = format!(
        "[[cluster]]\nname = \"e2e\"\nsmall_file_bytes = {SMALL_FILE_BYTES}\ntarget_file_bytes = {TARGET_FILE_BYTES}\n\
         exclude = [\"scratch.*\"]\nscan_interval = \"{interval}\"\n\
         [cluster.metastore]\n{metastore}[cluster.storage]\n{storage}\n"
    );
    let path = dir.join("exporter.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn check_tables(samples: &[Sample], scenario: &Scenario, truths: &[Truth]) {
    for (e, want) in scenario.expected.iter().zip(truths) {
        let l = [
            ("cluster", "e2e"),
            ("database", e.database.as_str()),
            ("table", e.table.as_str()),
        ];
        let v = |name: &str| {
            prom::value(samples, name, &l)
                .unwrap_or_else(|| panic!("{name} missing for {}.{}", e.database, e.table))
        };
        let got = [
            v("hive_table_files"),
            v("hive_table_size_bytes"),
            v("hive_table_small_files"),
            v("hive_table_empty_files"),
            v("hive_table_excess_files"),
            v("hive_table_missing_directories"),
            v("hive_table_partitions"),
        ];
        #[allow(clippy::cast_precision_loss)]
        let expected = [
            want.files,
            want.bytes,
            want.small,
            want.empty,
            want.excess,
            want.missing,
            e.partitions,
        ]
        .map(|x| x as f64);
        assert_eq!(
            got, expected,
            "files/bytes/small/empty/excess/missing/partitions of {}.{}",
            e.database, e.table
        );
        if want.files > 0 {
            #[allow(clippy::cast_precision_loss)]
            let newest = want.newest_mtime_ms as f64 / 1000.0;
            assert_eq!(
                v("hive_table_newest_file_timestamp_seconds"),
                newest,
                "{}",
                e.table
            );
            #[allow(clippy::cast_precision_loss)]
            let access = want.newest_atime_ms as f64 / 1000.0;
            assert_eq!(
                v("hive_table_last_access_timestamp_seconds"),
                access,
                "{}",
                e.table
            );
        } else {
            assert!(prom::value(samples, "hive_table_newest_file_timestamp_seconds", &l).is_none());
        }
        let info = samples
            .iter()
            .find(|s| {
                s.name == "hive_table_info"
                    && l.iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .unwrap_or_else(|| panic!("hive_table_info missing for {}", e.table));
        assert_eq!(info.labels["format"], e.format, "{}", e.table);
        assert_eq!(info.labels["table_type"], e.table_type, "{}", e.table);
        assert_eq!(info.labels["transactional"], e.transactional, "{}", e.table);
    }
    let reported = samples
        .iter()
        .filter(|s| s.name == "hive_table_files")
        .count();
    assert_eq!(
        reported,
        scenario.expected.len(),
        "only listed tables are reported"
    );
    for (_, name) in &scenario.skipped {
        assert!(
            !samples
                .iter()
                .any(|s| s.name == "hive_table_files" && s.labels["table"] == *name)
        );
    }
    let result = |r: &str| {
        prom::value(
            samples,
            "hive_scan_tables",
            &[("cluster", "e2e"), ("result", r)],
        )
    };
    #[allow(clippy::cast_precision_loss)]
    {
        assert_eq!(result("scanned"), Some(scenario.expected.len() as f64));
        assert_eq!(result("skipped"), Some(scenario.skipped.len() as f64));
        assert_eq!(result("filtered"), Some(scenario.filtered as f64));
        assert_eq!(result("failed"), Some(0.0));
    }
    // Size classes per database add up to the tables' files and small files.
    for db in ["sales", "ops"] {
        let classes: f64 = samples
            .iter()
            .filter(|s| s.name == "hive_database_files_by_size_class" && s.labels["database"] == db)
            .map(|s| s.value)
            .sum();
        #[allow(clippy::cast_precision_loss)]
        let files: f64 = scenario
            .expected
            .iter()
            .zip(truths)
            .filter(|(e, _)| e.database == db)
            .map(|(_, t)| t.files as f64)
            .sum();
        assert_eq!(classes, files, "size classes of {db}");
    }
    assert_eq!(
        prom::value(samples, "hive_scan_success", &[("cluster", "e2e")]),
        Some(1.0)
    );
    assert_eq!(
        prom::value(samples, "hive_metastore_up", &[("cluster", "e2e")]),
        Some(1.0)
    );
    #[allow(clippy::cast_precision_loss)]
    let threshold = SMALL_FILE_BYTES as f64;
    assert_eq!(
        prom::value(
            samples,
            "hive_cluster_small_file_threshold_bytes",
            &[("cluster", "e2e")]
        ),
        Some(threshold)
    );
}

/// The stable part of `/metrics` for the golden file: table, database and scan-result
/// series, with the warehouse path replaced.
fn golden_view(body: &str, root: &Path) -> String {
    let keep = [
        "hive_table",
        "hive_database_",
        "hive_scan_tables",
        "hive_scan_skipped_tables",
        "hive_scan_partitions",
        "hive_cluster_",
        "hive_exporter_tables_",
    ];
    body.lines()
        .filter(|l| {
            let name = l
                .trim_start_matches("# HELP ")
                .trim_start_matches("# TYPE ");
            keep.iter().any(|k| name.starts_with(k))
        })
        .map(|l| l.replace(&root.display().to_string(), "<warehouse>"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

async fn local_end_to_end(kind: DbKind, version: SchemaVersion, golden: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::new(dir.path().join("warehouse")).unwrap();
    let scenario = Scenario::build(&w, &|rel| w.uri(rel), version.has_catalogs());
    let truths: Vec<Truth> = scenario
        .expected
        .iter()
        .map(|e| e.truth(SMALL_FILE_BYTES, TARGET_FILE_BYTES))
        .collect();
    let db = FixtureDb::create(
        kind,
        version,
        &unique_db_name(&format!("e2e_{kind:?}_{version:?}")),
    )
    .await
    .unwrap();
    db.insert(&scenario.tables).await.unwrap();
    let storage = format!("type = \"local\"\nroot = \"{}\"", w.root().display());
    let config = write_config(dir.path(), &db, &storage, "1h");

    let mut exporter = Exporter::from_file(&config).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (status, content_type, body) = exporter.get("/metrics", None).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    check_tables(&prom::parse(&body), &scenario, &truths);
    let lint = prom::promtool_check_metrics(&body);
    assert!(lint.is_empty(), "promtool check metrics: {lint}");

    let (_, om_type, om) = exporter
        .get(
            "/metrics",
            Some("application/openmetrics-text;version=1.0.0;q=0.5,text/plain;q=0.2"),
        )
        .await;
    assert!(om_type.starts_with("application/openmetrics-text; version=1.0.0"));
    assert!(om.ends_with("# EOF\n"));

    if let Some(name) = golden {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/golden")
            .join(name);
        let view = golden_view(&body, w.root());
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &view).unwrap();
        }
        let want = std::fs::read_to_string(&path).expect("golden file (UPDATE_GOLDEN=1 writes it)");
        assert_eq!(
            view, want,
            "golden /metrics differs; run with UPDATE_GOLDEN=1 after checking the change"
        );
    }
    exporter.stop().await.expect("the exporter stops cleanly");
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn mariadb_hive_2_1_local() {
    local_end_to_end(DbKind::Mysql, SchemaVersion::Hive2_1, None).await;
}

#[tokio::test]
async fn mariadb_hive_3_1_local_golden() {
    local_end_to_end(
        DbKind::Mysql,
        SchemaVersion::Hive3_1,
        Some("local-hive-3.1.prom"),
    )
    .await;
}

#[tokio::test]
async fn mariadb_cdp_3_1_3000_local() {
    local_end_to_end(DbKind::Mysql, SchemaVersion::Cdp3_1_3000, None).await;
}

#[tokio::test]
async fn postgres_hive_2_1_local() {
    local_end_to_end(DbKind::Postgres, SchemaVersion::Hive2_1, None).await;
}

#[tokio::test]
async fn postgres_hive_3_1_local_golden() {
    // Same rows, other database engine: the same golden file.
    local_end_to_end(
        DbKind::Postgres,
        SchemaVersion::Hive3_1,
        Some("local-hive-3.1.prom"),
    )
    .await;
}

#[tokio::test]
async fn postgres_cdp_3_1_3000_local() {
    local_end_to_end(DbKind::Postgres, SchemaVersion::Cdp3_1_3000, None).await;
}

#[tokio::test]
async fn mariadb_cdp_over_webhdfs_with_standby_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::new(dir.path().join("warehouse")).unwrap();
    let scenario = Scenario::build(&w, &|rel| format!("hdfs://testns/warehouse/{rel}"), true);
    // Ground truth first: the import reads the files, which moves their access times.
    let truths: Vec<Truth> = scenario
        .expected
        .iter()
        .map(|e| e.truth(SMALL_FILE_BYTES, TARGET_FILE_BYTES))
        .collect();
    let ns = Namespace::new_shared();
    ns.import_dir(w.root(), "/warehouse").unwrap();
    let server = WebHdfsServer::start(
        ServerOptions::new()
            .namespace(Arc::clone(&ns))
            .namenodes(2)
            .active(Some(1))
            .ls_limit(2),
    )
    .await
    .unwrap();
    server.fail_next(3, 503, "RetriableException");
    let db = FixtureDb::create(
        DbKind::Mysql,
        SchemaVersion::Cdp3_1_3000,
        &unique_db_name("e2e_webhdfs"),
    )
    .await
    .unwrap();
    db.insert(&scenario.tables).await.unwrap();
    let nns: Vec<String> = server
        .namenode_urls()
        .iter()
        .map(|u| format!("{u:?}"))
        .collect();
    let storage = format!(
        "type = \"webhdfs\"\nnamenodes = [{}]\nauthorities = [\"testns\"]\nmax_concurrent_requests = 4\nrequest_timeout = \"5s\"",
        nns.join(", ")
    );
    let config = write_config(dir.path(), &db, &storage, "1h");
    let mut exporter = Exporter::from_file(&config).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (_, _, body) = exporter.get("/metrics", None).await;
    let samples = prom::parse(&body);
    check_tables(&samples, &scenario, &truths);
    let lint = prom::promtool_check_metrics(&body);
    assert!(lint.is_empty(), "promtool check metrics: {lint}");
    // Both NameNodes answered (one as standby); the standby's 403s are counted.
    for nn in server.namenode_urls() {
        let nn = nn.trim_end_matches('/');
        assert_eq!(
            prom::value(
                &samples,
                "hive_hdfs_up",
                &[("cluster", "e2e"), ("namenode", nn)]
            ),
            Some(1.0),
            "{nn}"
        );
    }
    // The exporter's request counts by status equal what the NameNodes themselves answered
    // (the standby's 403s, the injected 503s, the 200s): every request of this test is the
    // exporter's, and its next scan is an hour away.
    for code in [200u16, 403, 503] {
        let counted: f64 = samples
            .iter()
            .filter(|s| {
                s.name == "hive_hdfs_requests_total" && s.labels["code"] == code.to_string()
            })
            .map(|s| s.value)
            .sum();
        let answered = server.request_count(None, None, Some(code));
        #[allow(clippy::cast_precision_loss)]
        let answered_f = answered as f64;
        assert_eq!(counted, answered_f, "requests answered {code}");
        assert!(answered >= 1, "the NameNodes answered {code} at least once");
    }
    assert!(server.max_concurrent() <= 4);
    exporter.stop().await.expect("the exporter stops cleanly");
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn dropped_tables_disappear_and_new_files_appear() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::new(dir.path().join("warehouse")).unwrap();
    let scenario = Scenario::build(&w, &|rel| w.uri(rel), false);
    let db = FixtureDb::create(
        DbKind::Mysql,
        SchemaVersion::Hive2_1,
        &unique_db_name("e2e_drop"),
    )
    .await
    .unwrap();
    db.insert(&scenario.tables).await.unwrap();
    let storage = format!("type = \"local\"\nroot = \"{}\"", w.root().display());
    let config = write_config(dir.path(), &db, &storage, "1s");
    let mut exporter = Exporter::from_file(&config).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let customers = [
        ("cluster", "e2e"),
        ("database", "sales"),
        ("table", "customers"),
    ];
    let (_, _, body) = exporter.get("/metrics", None).await;
    assert_eq!(
        prom::value(&prom::parse(&body), "hive_table_files", &customers),
        Some(13.0)
    );

    db.execute("DELETE FROM TABLE_PARAMS WHERE TBL_ID IN (SELECT TBL_ID FROM TBLS WHERE TBL_NAME = 'customers')").await.unwrap();
    db.execute("DELETE FROM TBLS WHERE TBL_NAME = 'customers'")
        .await
        .unwrap();
    w.file("sales.db/orders/dt=2024-01-03/000000_0", 77)
        .unwrap();
    let orders = [
        ("cluster", "e2e"),
        ("database", "sales"),
        ("table", "orders"),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, body) = exporter.get("/metrics", None).await;
        let s = prom::parse(&body);
        let gone = prom::value(&s, "hive_table_files", &customers).is_none()
            && !s
                .iter()
                .any(|x| x.name == "hive_table_info" && x.labels["table"] == "customers");
        let orders_files = prom::value(&s, "hive_table_files", &orders);
        if gone && orders_files == Some(15.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 30 s: customers gone {gone}, orders files {orders_files:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    exporter.stop().await.expect("the exporter stops cleanly");
    db.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_timeout_keeps_the_previous_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::new(dir.path().join("warehouse")).unwrap();
    let scenario = Scenario::build(&w, &|rel| format!("hdfs://testns/warehouse/{rel}"), false);
    let ns = Namespace::new_shared();
    ns.import_dir(w.root(), "/warehouse").unwrap();
    let server = WebHdfsServer::start(ServerOptions::new().namespace(ns))
        .await
        .unwrap();
    let db = FixtureDb::create(
        DbKind::Postgres,
        SchemaVersion::Hive3_1,
        &unique_db_name("e2e_timeout"),
    )
    .await
    .unwrap();
    db.insert(&scenario.tables).await.unwrap();
    let storage = format!(
        "type = \"webhdfs\"\nnamenodes = [\"{}\"]\nrequest_timeout = \"30s\"",
        server.namenode_url(0)
    );
    let config = write_config(dir.path(), &db, &storage, "1s");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "scan_interval = \"1s\"",
        "scan_interval = \"1s\"\nscan_timeout = \"2s\"",
    );
    std::fs::write(&config, text).unwrap();
    let mut exporter = Exporter::from_file(&config).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let orders = [
        ("cluster", "e2e"),
        ("database", "sales"),
        ("table", "orders"),
    ];
    let (_, _, body) = exporter.get("/metrics", None).await;
    let before = prom::value(&prom::parse(&body), "hive_table_files", &orders);
    assert!(before.is_some());
    // Every NameNode request now takes longer than the whole scan may.
    server.set_latency(Duration::from_secs(3));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, body) = exporter.get("/metrics", None).await;
        let s = prom::parse(&body);
        if prom::value(&s, "hive_scan_success", &[("cluster", "e2e")]) == Some(0.0) {
            assert_eq!(
                prom::value(&s, "hive_table_files", &orders),
                before,
                "previous numbers kept"
            );
            assert_eq!(
                prom::value(&s, "hive_metastore_up", &[("cluster", "e2e")]),
                Some(1.0)
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no timed-out scan after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    server.set_latency(Duration::ZERO);
    exporter.stop().await.expect("the exporter stops cleanly");
    db.drop_database().await.unwrap();
}
