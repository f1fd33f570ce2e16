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
         request_timeout = \"2s\"\nmax_retries = 0\noutage_backoff = \"100ms\"\noutage_max_backoff = \"1s\"\n",
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

/// Every request the exporter's WebHDFS client sent, by the client's own count
/// (`hive_hdfs_requests_total`, refused connections included under `code="error"`), and the
/// refused ones alone.
fn client_requests(metrics: &hive_smallfiles_exporter::metrics::Metrics) -> (f64, f64) {
    let s = prom::parse(&metrics.render(hive_smallfiles_core::exposition::Format::Text));
    let all = s
        .iter()
        .filter(|x| x.name == "hive_hdfs_requests_total")
        .map(|x| x.value)
        .sum();
    let refused = s
        .iter()
        .filter(|x| {
            x.name == "hive_hdfs_requests_total"
                && x.labels.get("code").map(String::as_str) == Some("error")
        })
        .map(|x| x.value)
        .sum();
    (all, refused)
}

/// A scanner of `db` against the two NameNodes, backing off from `backoff` up to `max`
/// (`"0s"`: not at all), with the default three retries.
fn outage_scanner(
    db: &FixtureDb,
    namenodes: &[String],
    backoff: &str,
    max: &str,
) -> (
    hive_smallfiles_exporter::scan::ClusterScanner,
    hive_smallfiles_exporter::metrics::Metrics,
) {
    let c = db.metastore_config();
    let text = format!(
        "[[cluster]]\nname = \"c1\"\nsmall_file_bytes = {SMALL_FILE_BYTES}\ntarget_file_bytes = {TARGET_FILE_BYTES}\n\
         exclude = [\"scratch.*\"]\n\
         [cluster.metastore]\nurl = \"postgres://{}@{}:{}/{}\"\n\
         [cluster.storage]\ntype = \"webhdfs\"\nnamenodes = {namenodes:?}\nauthorities = [\"testns\"]\n\
         request_timeout = \"2s\"\noutage_backoff = \"{backoff}\"\noutage_max_backoff = \"{max}\"\n",
        c.user, c.host, c.port, c.database
    );
    let env = std::collections::BTreeMap::<String, String>::new();
    let config = hive_smallfiles_exporter::config::Config::from_toml(&text, Path::new("."), &env)
        .unwrap()
        .clusters
        .remove(0);
    let metrics = hive_smallfiles_exporter::metrics::Metrics::new();
    let fs = hive_smallfiles_core::fs::factory::read_filesystem(&config.storage, &metrics.webhdfs)
        .unwrap();
    (
        hive_smallfiles_exporter::scan::ClusterScanner::new(config, fs),
        metrics,
    )
}

/// The outage: one NameNode of an HA pair down (connections refused), the other
/// standby. A scan loop running back to back through the whole outage sends at most the
/// requests of one healthy scan (counted by the server for the standby NameNode, by the
/// client for the refused connections), and the first scan that reaches a NameNode after the
/// outage succeeds in full.
///
/// Time is scaled down tenfold against the defaults (backing off from 100 ms up to 3 s
/// instead of 1 s up to 30 s, an outage of 3 s instead of 30 s): the same number of backoff
/// rounds fits into the outage. The scan loop runs back to back (every few milliseconds),
/// far more often than any `scan_interval`, which only makes the bound harder to hold. The
/// same loop without backing off exceeds the bound within a tenth of the outage, so the
/// comparison can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_every_namenode_costs_at_most_one_healthy_scan_of_requests() {
    use hive_smallfiles_tests::webhdfs_server::HaState;
    use tokio_util::sync::CancellationToken;

    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::new(dir.path().join("warehouse")).unwrap();
    let scenario = Scenario::build(&w, &|rel| format!("hdfs://testns/warehouse/{rel}"), false);
    let ns = Namespace::new_shared();
    ns.import_dir(w.root(), "/warehouse").unwrap();
    let server = WebHdfsServer::start(
        ServerOptions::new()
            .namespace(Arc::clone(&ns))
            .namenodes(2)
            .active(Some(0)),
    )
    .await
    .unwrap();
    let namenodes = server.namenode_urls();
    let db = FixtureDb::create(
        DbKind::Postgres,
        SchemaVersion::Hive2_1,
        &unique_db_name("outage_backoff"),
    )
    .await
    .unwrap();
    db.insert(&scenario.tables).await.unwrap();
    let never = CancellationToken::new();

    // One healthy scan: its requests are the bound.
    let (mut scanner, metrics) = outage_scanner(&db, &namenodes, "100ms", "3s");
    server.reset_counters();
    let snapshot = scanner.scan(&never).await;
    assert!(snapshot.scan.success, "{:?}", snapshot.scan.error);
    assert_eq!(snapshot.scan.tables.failed, 0);
    let healthy = server.total_requests();
    let (client_healthy, _) = client_requests(&metrics);
    assert_eq!(client_healthy, healthy as f64, "both sides count alike");
    assert!(healthy >= 10, "a healthy scan sends {healthy} requests");

    // The outage: NameNode 0 refuses connections, NameNode 1 is standby.
    let outage = |server: &hive_smallfiles_tests::webhdfs_server::RunningServer| {
        let server = server.handle();
        async move {
            server.stop_namenode(0).await;
            server.set_ha_state(1, HaState::Standby);
        }
    };
    outage(&server).await;
    server.reset_counters();
    let (client_before, refused_before) = client_requests(&metrics);
    let started = Instant::now();
    let mut scans = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let snapshot = scanner.scan(&never).await;
        assert!(!snapshot.scan.success);
        scans += 1;
    }
    let standby_answers = server.total_requests();
    let (client_after, refused_after) = client_requests(&metrics);
    let refused = refused_after - refused_before;
    let sent = client_after - client_before;
    assert_eq!(
        sent,
        standby_answers as f64 + refused,
        "every request the client sent was refused or answered by the standby"
    );
    assert!(
        sent <= healthy as f64,
        "{scans} scans during the outage sent {sent} requests ({refused} refused, \
         {standby_answers} standby answers); one healthy scan sends {healthy}"
    );
    assert!(
        refused >= 1.0 && standby_answers >= 1,
        "the NameNodes were probed"
    );
    let s = prom::parse(&metrics.render(hive_smallfiles_core::exposition::Format::Text));
    assert_eq!(prom::value(&s, "hive_hdfs_circuit_open", &C1), Some(1.0));
    assert!(prom::value(&s, "hive_hdfs_backoff_seconds_total", &C1).unwrap() > 0.0);
    assert!(prom::value(&s, "hive_hdfs_rejected_requests_total", &C1).unwrap() > 0.0);

    // Back: NameNode 0 restarts as the active one. The first scan that reaches a NameNode
    // succeeds in full; scans before it (still backing off) sent nothing.
    server.start_namenode(0).await.unwrap();
    server.set_active(0);
    let back = Instant::now();
    loop {
        let before = client_requests(&metrics).0;
        let snapshot = scanner.scan(&never).await;
        let reached = client_requests(&metrics).0 > before;
        if reached {
            assert!(snapshot.scan.success, "{:?}", snapshot.scan.error);
            assert_eq!(snapshot.scan.tables.failed, 0);
            assert_eq!(snapshot.scan.tables.scanned, scenario.expected.len() as u64);
            break;
        }
        assert!(!snapshot.scan.success);
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "no request within the longest backoff after the outage"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = prom::parse(&metrics.render(hive_smallfiles_core::exposition::Format::Text));
    assert_eq!(prom::value(&s, "hive_hdfs_circuit_open", &C1), Some(0.0));

    // Without backing off, the same loop exceeds the bound within a tenth of the outage.
    let (mut hammering, metrics) = outage_scanner(&db, &namenodes, "0s", "0s");
    outage(&server).await;
    let before = client_requests(&metrics).0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(300) {
        hammering.scan(&never).await;
    }
    let sent = client_requests(&metrics).0 - before;
    assert!(
        sent > healthy as f64,
        "without backing off only {sent} requests (healthy scan: {healthy})"
    );
    db.drop_database().await.unwrap();
}
