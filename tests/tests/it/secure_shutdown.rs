//! Shutdown gives back what the clients hold: an exporter scanning a SPNEGO-only WebHDFS
//! (the test server's real GSSAPI acceptor, the test KDC's keytabs) with delegation tokens
//! cancels its token when it stops (`CANCELDELEGATIONTOKEN` reaches the NameNode, which then
//! knows no live token), and a NameNode that died meanwhile does not hold the stop up; the
//! agent does the same after its drain, and shows its WebHDFS Kerberos metrics. Oracles: the
//! server's request counters and token table.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hive_smallfiles_tests::kdc::Kdc;
use hive_smallfiles_tests::metastore_fixture::{
    DbKind, FixtureDb, FixtureTable, Format, SchemaVersion, unique_db_name,
};
use hive_smallfiles_tests::prom;
use hive_smallfiles_tests::require;
use hive_smallfiles_tests::services::{Agent, Exporter};
use hive_smallfiles_tests::webhdfs_server::security::keytab_acceptor;
use hive_smallfiles_tests::webhdfs_server::{
    Namespace, RunningServer, SecurityOptions, ServerOptions, WebHdfsServer,
};

const C1: [(&str, &str); 1] = [("cluster", "c1")];

/// A SPNEGO-only NameNode on `localhost` holding one table of three files.
async fn secured_namenode(kdc: &Kdc) -> RunningServer {
    let ns = Namespace::new_shared();
    for f in 0..3 {
        ns.add_file(&format!("/warehouse/db.db/t/part-{f}"), vec![b'x'; 10])
            .unwrap();
    }
    let acceptor =
        keytab_acceptor(&kdc.http_keytab(), "HTTP/localhost@HSF.TEST").expect("acceptor");
    WebHdfsServer::start(
        ServerOptions::new()
            .namespace(Arc::clone(&ns))
            .host("localhost")
            .security(SecurityOptions::new(acceptor)),
    )
    .await
    .expect("server")
}

fn write_config(dir: &Path, db: &FixtureDb, kdc: &Kdc, namenode: &str) -> PathBuf {
    let c = db.metastore_config();
    let text = format!(
        "[[cluster]]\nname = \"c1\"\nscan_interval = \"1h\"\n\
         [cluster.metastore]\nurl = \"postgres://{}@{}:{}/{}\"\n\
         [cluster.storage]\ntype = \"webhdfs\"\nnamenodes = [\"{namenode}\"]\nauthorities = [\"testns\"]\n\
         auth = \"kerberos\"\ndelegation_tokens = true\nrequest_timeout = \"2s\"\nmax_retries = 0\n\
         [cluster.kerberos]\nprincipal = \"{}\"\nkeytab = \"{}\"\n",
        c.user,
        c.host,
        c.port,
        c.database,
        kdc.client_principal(),
        kdc.client_keytab().display()
    );
    let path = dir.join("exporter.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// An exporter whose first scan over SPNEGO succeeded, holding a delegation token.
async fn scanned(config: &Path, srv: &RunningServer) -> Exporter {
    let exporter = Exporter::from_file(config).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, body) = exporter.get("/metrics", None).await;
        let samples = prom::parse(&body);
        if prom::value(&samples, "hive_scan_success", &C1) == Some(1.0) {
            let obtained = [("cluster", "c1"), ("event", "token_obtained")];
            assert_eq!(
                prom::value(&samples, "hive_hdfs_authentications_total", &obtained),
                Some(1.0),
                "{body}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no successful scan after 30 s:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(srv.live_tokens(), 1, "the scan used a delegation token");
    exporter
}

async fn metastore() -> FixtureDb {
    let db = FixtureDb::create(
        DbKind::Postgres,
        SchemaVersion::Hive2_1,
        &unique_db_name("secure_shutdown"),
    )
    .await
    .unwrap();
    db.insert(&[FixtureTable::new(
        "db",
        "t",
        Format::Text,
        "hdfs://testns/warehouse/db.db/t",
    )])
    .await
    .unwrap();
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_cancels_its_delegation_token_when_it_stops() {
    require!(Kdc::unavailable());
    let kdc = Kdc::get().expect("realm");
    kdc.apply_env();
    let srv = secured_namenode(&kdc).await;
    let db = metastore().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &db, &kdc, &srv.namenode_url(0));

    let exporter = scanned(&config, &srv).await;
    assert_eq!(srv.requests_for_op("CANCELDELEGATIONTOKEN"), 0);
    let started = Instant::now();
    exporter.stop().await.expect("the exporter stops cleanly");
    eprintln!("stopped in {:?}", started.elapsed());
    assert_eq!(
        srv.request_count(None, Some("CANCELDELEGATIONTOKEN"), Some(200)),
        1,
        "one cancel, accepted: {:?}",
        srv.counters()
    );
    assert_eq!(srv.live_tokens(), 0, "the NameNode forgot the token");

    // A NameNode gone by then: the cancel fails fast and the stop still completes.
    let exporter = scanned(&config, &srv).await;
    srv.stop_namenode(0).await;
    let started = Instant::now();
    exporter.stop().await.expect("the exporter stops cleanly");
    let took = started.elapsed();
    eprintln!("stopped without a NameNode in {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(srv.requests_for_op("CANCELDELEGATIONTOKEN"), 1);
    srv.start_namenode(0).await.unwrap();
    db.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_cancels_its_delegation_token_after_the_drain() {
    require!(Kdc::unavailable());
    let kdc = Kdc::get().expect("realm");
    kdc.apply_env();
    let srv = secured_namenode(&kdc).await;
    let db = metastore().await;
    let dir = tempfile::tempdir().unwrap();
    let exporter_config =
        std::fs::read_to_string(write_config(dir.path(), &db, &kdc, &srv.namenode_url(0))).unwrap();
    // The exporter's cluster, as an agent's (an engine; no scan interval).
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "audit_log = \"{}\"\n{}",
            dir.path().join("audit.jsonl").display(),
            exporter_config.replace("scan_interval = \"1h\"", "engine = \"spark\"")
        ),
    )
    .unwrap();
    let agent = Agent::from_file(&config).await;
    // The agent's own client lists the table (start-up recovery may have used it already).
    let filesystems = agent.runner.filesystems();
    assert_eq!(filesystems.len(), 1);
    let mut entries = 0;
    filesystems[0]
        .1
        .list_status("/warehouse/db.db/t", &mut |page| entries += page.len())
        .await
        .expect("listing over SPNEGO");
    assert_eq!(entries, 3);
    assert_eq!(srv.live_tokens(), 1, "the listing used a delegation token");
    let (status, _, body) =
        hive_smallfiles_tests::services::get(&format!("{}/metrics", agent.base_url), None).await;
    assert_eq!(status, 200, "{body}");
    let samples = prom::parse(&body);
    let obtained = [("cluster", "c1"), ("event", "token_obtained")];
    assert_eq!(
        prom::value(&samples, "hive_hdfs_authentications_total", &obtained),
        Some(1.0),
        "{body}"
    );
    let expiry = prom::value(
        &samples,
        "hive_hdfs_delegation_token_expiry_timestamp_seconds",
        &C1,
    )
    .unwrap_or(0.0);
    assert!(expiry > 1.0e9, "a token expiry date: {body}");
    drop(filesystems);

    agent.stop().await;
    assert_eq!(
        srv.request_count(None, Some("CANCELDELEGATIONTOKEN"), Some(200)),
        1,
        "one cancel, accepted: {:?}",
        srv.counters()
    );
    assert_eq!(srv.live_tokens(), 0, "the NameNode forgot the token");
    db.drop_database().await.unwrap();
}
