//! A storage outage made visible: with every NameNode down, a scan that reads the MetaStore
//! but lists no table is a failed scan (`hive_scan_success` 0, every table failed, `scan
//! --once` exit 1); with some tables failing it is partial (exit 2, a failed-tables ratio).
//! `/ready` means "has numbers to serve": it stays 200 after a good scan and is 503 while no
//! scan has listed anything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hive_smallfiles_tests::metastore_fixture::{DbKind, FixtureDb, SchemaVersion, unique_db_name};
use hive_smallfiles_tests::prom;
use hive_smallfiles_tests::scenario::{SMALL_FILE_BYTES, Scenario, TARGET_FILE_BYTES};
use hive_smallfiles_tests::services::Exporter;
use hive_smallfiles_tests::warehouse::Warehouse;
use hive_smallfiles_tests::webhdfs_server::{Namespace, ServerOptions, WebHdfsServer};

/// `scan --once --format json` as a process, off the runtime's threads (the in-process
/// WebHDFS server keeps serving): (exit code, parsed report).
async fn scan_once(config: &Path) -> (Option<i32>, serde_json::Value) {
    let config = config.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(crate::EXPORTER_BIN)
            .arg("--config.file")
            .arg(&config)
            .args(["scan", "--once", "--format", "json"])
            .output()
            .expect("run exporter")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (out.status.code(), doc)
}

fn write_config(dir: &Path, db: &FixtureDb, namenode: &str) -> PathBuf {
    let c = db.metastore_config();
    let text = format!(
        "[[cluster]]\nname = \"c1\"\nsmall_file_bytes = {SMALL_FILE_BYTES}\ntarget_file_bytes = {TARGET_FILE_BYTES}\n\
         scan_interval = \"1s\"\nexclude = [\"scratch.*\"]\n\
         [cluster.metastore]\nurl = \"postgres://{}@{}:{}/{}\"\n\
         [cluster.storage]\ntype = \"webhdfs\"\nnamenodes = [\"{namenode}\"]\nauthorities = [\"testns\"]\n\
         request_timeout = \"2s\"\nmax_retries = 0\n",
        c.user, c.host, c.port, c.database
    );
    let path = dir.join("exporter.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Scrapes until `done` holds for the samples, or panics after 30 s.
async fn scrape_until(
    exporter: &Exporter,
    what: &str,
    done: impl Fn(&[prom::Sample]) -> bool,
) -> Vec<prom::Sample> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, body) = exporter.get("/metrics", None).await;
        let samples = prom::parse(&body);
        if done(&samples) {
            return samples;
        }
        assert!(Instant::now() < deadline, "after 30 s, not {what}:\n{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const C1: [(&str, &str); 1] = [("cluster", "c1")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_namenode_down_fails_the_scan_and_some_tables_make_it_partial() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::new(dir.path().join("warehouse")).unwrap();
    let scenario = Scenario::build(&w, &|rel| format!("hdfs://testns/warehouse/{rel}"), false);
    let ns = Namespace::new_shared();
    ns.import_dir(w.root(), "/warehouse").unwrap();
    let server = WebHdfsServer::start(ServerOptions::new().namespace(Arc::clone(&ns)))
        .await
        .unwrap();
    let db = FixtureDb::create(
        DbKind::Postgres,
        SchemaVersion::Hive2_1,
        &unique_db_name("outage"),
    )
    .await
    .unwrap();
    db.insert(&scenario.tables).await.unwrap();
    let config = write_config(dir.path(), &db, &server.namenode_url(0));
    let listable = scenario.expected.len() as u64;

    // Healthy: exit 0, success.
    let (code, doc) = scan_once(&config).await;
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(doc["clusters"][0]["result"], "success");
    assert_eq!(doc["clusters"][0]["tables_failed"], 0);

    // One table's directories refused: partial, exit 2, its share of failed tables.
    server.fail_path_prefix("/warehouse/sales.db/orders", 403, "AccessControlException");
    let (code, doc) = scan_once(&config).await;
    assert_eq!(code, Some(2), "{doc}");
    let cluster = &doc["clusters"][0];
    assert_eq!(cluster["result"], "partial");
    assert_eq!(cluster["success"], true);
    assert_eq!(cluster["tables_failed"], 1);
    let ratio = cluster["failed_tables_ratio"].as_f64().unwrap();
    #[allow(clippy::cast_precision_loss)]
    let want = 1.0 / listable as f64;
    assert!((ratio - want).abs() < 1e-9, "{ratio} vs {want}");
    server.clear_failures();

    // The serving exporter: good scans first, ready.
    let mut exporter = Exporter::from_file(&config).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let s = scrape_until(&exporter, "successful", |s| {
        prom::value(s, "hive_scan_success", &C1) == Some(1.0)
    })
    .await;
    assert_eq!(
        prom::value(&s, "hive_scan_failed_tables_ratio", &C1),
        Some(0.0)
    );
    let orders = [
        ("cluster", "c1"),
        ("database", "sales"),
        ("table", "orders"),
    ];
    let orders_files = prom::value(&s, "hive_table_files", &orders).expect("orders counted");

    // Every NameNode down: the MetaStore still answers, no table can be listed.
    server.stop_namenode(0).await;
    let s = scrape_until(&exporter, "failed", |s| {
        prom::value(s, "hive_scan_success", &C1) == Some(0.0)
    })
    .await;
    assert_eq!(
        prom::value(&s, "hive_scan_failed_tables_ratio", &C1),
        Some(1.0)
    );
    assert_eq!(
        prom::value(
            &s,
            "hive_scan_tables",
            &[("cluster", "c1"), ("result", "failed")]
        ),
        Some(f64::from(u32::try_from(listable).unwrap()))
    );
    assert!(
        prom::value(
            &s,
            "hive_scans_total",
            &[("cluster", "c1"), ("result", "failure")]
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(prom::value(&s, "hive_metastore_up", &C1), Some(1.0));
    // The previous numbers are still served, so the exporter stays ready.
    assert_eq!(
        prom::value(&s, "hive_table_files", &orders),
        Some(orders_files)
    );
    assert_eq!(exporter.get("/ready", None).await.0, 200);

    // scan --once in the outage: exit 1, a failed scan with the reason.
    let (code, doc) = scan_once(&config).await;
    assert_eq!(code, Some(1), "{doc}");
    let cluster = &doc["clusters"][0];
    assert_eq!(cluster["success"], false);
    assert_eq!(cluster["result"], "failure");
    assert_eq!(cluster["tables_failed"], listable);
    assert!(
        cluster["error"]
            .as_str()
            .unwrap()
            .contains("every table to list failed"),
        "{cluster}"
    );
    exporter.stop().await.expect("the exporter stops cleanly");

    // An exporter started during the outage has nothing to serve: not ready.
    let exporter = Exporter::from_file(&config).await;
    scrape_until(&exporter, "failed", |s| {
        prom::value(s, "hive_scan_success", &C1) == Some(0.0)
    })
    .await;
    assert_eq!(exporter.get("/ready", None).await.0, 503);

    // Storage back: success again, ready.
    server.start_namenode(0).await.unwrap();
    scrape_until(&exporter, "successful again", |s| {
        prom::value(s, "hive_scan_success", &C1) == Some(1.0)
    })
    .await;
    assert_eq!(exporter.get("/ready", None).await.0, 200);
    exporter.stop().await.expect("the exporter stops cleanly");
    db.drop_database().await.unwrap();
}
