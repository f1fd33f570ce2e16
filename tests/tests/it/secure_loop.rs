//! The whole loop on a secured cluster, on loopback, with real parts wherever they can run
//! here: a real MIT KDC (20-second tickets, so logins renew many times during the run), the
//! MetaStore databases read over TLS with `verify-full` (the TLS MariaDB; its password from a
//! file), a WebHDFS server accepting only SPNEGO (through the real GSSAPI acceptor) and
//! delegation tokens, and Spark's Thrift Server with Kerberos (SASL GSSAPI, `auth-conf`) over
//! TLS. The exporter scans both clusters, Prometheus evaluates the rules, Alertmanager routes
//! the merge alerts to the agent, which merges the WebHDFS table natively and the Spark table
//! through the engine; no password is in a configuration file and no `user.name` is sent.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hive_smallfiles_agent::hiveserver2::{
    Hs2Auth, Hs2Config, Hs2Kerberos, Hs2Session, Qop, tls_client_config,
};
use hive_smallfiles_core::kerberos::{Kerberos, KerberosConfig};
use hive_smallfiles_tests::kdc::Kdc;
use hive_smallfiles_tests::metastore_fixture::{
    DbKind, FixtureDb, FixtureTable, Format, SchemaVersion, unique_db_name,
};
use hive_smallfiles_tests::require;
use hive_smallfiles_tests::rows::{multiset, text_lines};
use hive_smallfiles_tests::spark::{self, exec, secure_ports, secure_tls_dir, sorted_rows};
use hive_smallfiles_tests::stack::{Ports, Stack, StackOptions, query};
use hive_smallfiles_tests::tls_databases::{SSL_USER, TlsDatabases};
use hive_smallfiles_tests::webhdfs_server::security::keytab_acceptor;
use hive_smallfiles_tests::webhdfs_server::{
    AuthKind, FileType, Namespace, RunningServer, SecurityOptions, ServerOptions, WebHdfsServer,
};

const TABLE_DIR: &str = "/warehouse/secure_sales.db/events";
const FILES: usize = 12;

/// Why the secured loop cannot run: the KDC, the TLS databases or the Kerberized Spark.
fn unavailable() -> Option<String> {
    Kdc::unavailable()
        .or_else(TlsDatabases::unavailable)
        .or_else(spark::secure_unavailable)
}

/// Data files (not `_`/`.` names) of a directory of the WebHDFS namespace.
fn data_files(ns: &Namespace, dir: &str) -> Vec<String> {
    ns.list(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| matches!(s.file_type, FileType::File))
        .map(|s| s.path_suffix)
        .filter(|n| !n.starts_with('_') && !n.starts_with('.'))
        .collect()
}

/// Rows of the WebHDFS table, read from its files (independently of the agent).
fn hdfs_rows(ns: &Namespace, dir: &str) -> BTreeMap<String, usize> {
    let mut all = Vec::new();
    for f in data_files(ns, dir) {
        let data = ns.read_file(&format!("{dir}/{f}")).unwrap();
        all.extend(text_lines(&data, f.ends_with(".gz")));
    }
    multiset(all)
}

/// The SPNEGO-only WebHDFS server with a text table of `FILES` small files in one partition.
async fn secured_webhdfs(kdc: &Kdc) -> (RunningServer, String) {
    let acceptor = keytab_acceptor(&kdc.http_keytab(), "HTTP/localhost@HSF.TEST").unwrap();
    let srv = WebHdfsServer::start(
        ServerOptions::new()
            .host("localhost")
            .security(SecurityOptions::new(acceptor)),
    )
    .await
    .unwrap();
    let ns = srv.handle().namespace().clone();
    let part = format!("{TABLE_DIR}/dt=2024-06-01");
    for f in 0..FILES {
        let text: String = (0..5).map(|r| format!("{f}\tevent-{f}-{r}\n")).collect();
        ns.add_file(&format!("{part}/{f:06}_0"), text.into_bytes())
            .unwrap();
    }
    (srv, part)
}

/// A session of the test's own on the Kerberized binary endpoint.
async fn spark_session(login: &KerberosConfig) -> Hs2Session {
    let mut cfg = Hs2Config::new("localhost", secure_ports().0, "hsf");
    cfg.auth = Hs2Auth::Kerberos;
    cfg.kerberos = Some(Hs2Kerberos {
        login: Kerberos::shared(login),
        principal: "hive/_HOST@HSF.TEST".to_owned(),
        qop: Qop::AuthConf,
    });
    cfg.tls = Some(tls_client_config(Some(&secure_tls_dir().join("ca.pem"))).unwrap());
    cfg.connect_timeout = Duration::from_secs(60);
    cfg.poll_interval = Duration::from_millis(50);
    Hs2Session::open(&cfg).await.expect("Kerberized session")
}

/// The value of the first sample of `q`.
async fn value(client: &reqwest::Client, prom: &str, q: &str) -> Option<f64> {
    query(client, prom, q)
        .await
        .ok()?
        .first()
        .and_then(|x| x["value"][1].as_str())
        .and_then(|v| v.parse().ok())
}

/// The exporter's own `/metrics` text (empty when it does not answer).
async fn metrics_text(client: &reqwest::Client, exporter: &str) -> String {
    match client.get(format!("{exporter}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// A sample of the exporter's own `/metrics` whose line starts with `prefix`.
async fn scrape(client: &reqwest::Client, exporter: &str, prefix: &str) -> Option<f64> {
    metrics_text(client, exporter)
        .await
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerberized_cluster_alert_to_native_and_engine_merges() {
    require!(unavailable());
    let kdc = Kdc::get().unwrap();
    kdc.apply_env();
    let tls = TlsDatabases::get().unwrap();
    let t0 = Instant::now();
    let login = KerberosConfig::keytab(kdc.tiny_principal(), kdc.tiny_keytab());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // The engine's table: written through the Kerberized Thrift Server (metastore on the TLS
    // MariaDB), 6 small files.
    let sdb = format!("hsf_secure_{}", std::process::id());
    let mut s = spark_session(&login).await;
    exec(&mut s, &format!("DROP DATABASE IF EXISTS {sdb} CASCADE")).await;
    exec(&mut s, &format!("CREATE DATABASE {sdb}")).await;
    exec(
        &mut s,
        &format!("CREATE TABLE {sdb}.clicks (id INT, url STRING) PARTITIONED BY (dt STRING) STORED AS TEXTFILE"),
    )
    .await;
    for i in 0..6 {
        exec(
            &mut s,
            &format!("INSERT INTO {sdb}.clicks PARTITION (dt='2024-06-01') VALUES ({i}, 'u{i}')"),
        )
        .await;
    }
    let spark_rows_before = sorted_rows(&mut s, &format!("{sdb}.clicks")).await;
    assert_eq!(spark_rows_before.len(), 6);

    // The native table: on the SPNEGO-only WebHDFS server, its MetaStore on the TLS MariaDB.
    let (srv, part) = secured_webhdfs(&kdc).await;
    let ns = srv.handle().namespace().clone();
    let hdfs_rows_before = hdfs_rows(&ns, &part);
    let fixture = FixtureDb::create_at(
        &tls.admin_url(DbKind::Mysql),
        DbKind::Mysql,
        SchemaVersion::Hive3_1,
        &unique_db_name("secure_loop"),
    )
    .await
    .expect("a Hive 3.1 MetaStore on the TLS MariaDB");
    let table = FixtureTable::new(
        "secure_sales",
        "events",
        Format::Text,
        &format!("hdfs://testns{TABLE_DIR}"),
    )
    .partitioned_by(&[("dt", "string")])
    .partition(&["2024-06-01"]);
    fixture.insert(&[table]).await.unwrap();

    // Configuration as an operator writes it: keytab, password file (0600), CA bundles.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let password_file = d.join("metastore.password");
    std::fs::write(&password_file, format!("{}\n", SSL_USER.1)).unwrap();
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let kerberos = format!(
        "[cluster.kerberos]\nprincipal = \"{}\"\nkeytab = \"{}\"\n",
        kdc.tiny_principal(),
        kdc.tiny_keytab().display()
    );
    let metastore = |db: &str| {
        format!(
            "[cluster.metastore]\nurl = \"mysql://{}@localhost:{}/{db}\"\npassword_file = \"{}\"\n\
             tls = \"verify-full\"\nca_file = \"{}\"\n",
            SSL_USER.0,
            tls.port(DbKind::Mysql),
            password_file.display(),
            tls.file("ca.crt").display()
        )
    };
    let hdfs_storage = format!(
        "[cluster.storage]\ntype = \"webhdfs\"\nnamenodes = [\"{}\"]\nauth = \"kerberos\"\n\
         authorities = [\"testns\"]\nrequest_timeout = \"10s\"\n",
        srv.handle().namenode_url(0)
    );
    let spark_warehouse: PathBuf = secure_tls_dir()
        .parent()
        .unwrap()
        .join(format!("warehouse-{}", secure_ports().0));
    let spark_storage = format!(
        "[cluster.storage]\ntype = \"local\"\nroot = \"{}\"\n",
        spark_warehouse.display()
    );
    let spark_metastore_db = format!("hsf_spark_metastore_{}", secure_ports().0);
    let hs2 = format!(
        "[cluster.hiveserver2]\nhost = \"localhost\"\nport = {}\nuser = \"hsf\"\nauth = \"kerberos\"\n\
         kerberos_principal = \"hive/_HOST@HSF.TEST\"\nqop = \"auth-conf\"\ntls = true\nca_file = \"{}\"\n",
        secure_ports().0,
        secure_tls_dir().join("ca.pem").display()
    );
    let exporter_clusters = format!(
        "[[cluster]]\nname = \"secure_hdfs\"\ninclude = [\"secure_sales.*\"]\nscan_interval = \"2s\"\nquiet_period = \"0s\"\n\
         {kerberos}{}{hdfs_storage}\n\
         [[cluster]]\nname = \"secure_spark\"\ninclude = [\"{sdb}.*\"]\nscan_interval = \"2s\"\nquiet_period = \"0s\"\n\
         {kerberos}{}{spark_storage}",
        metastore(fixture.db_name()),
        metastore(&spark_metastore_db),
    );
    let agent_clusters = format!(
        "[[cluster]]\nname = \"secure_hdfs\"\nengine = \"spark\"\nexecutor = \"native\"\n\
         {kerberos}{}{hdfs_storage}\n\
         [[cluster]]\nname = \"secure_spark\"\nengine = \"spark\"\nexecutor = \"engine_staged\"\n\
         {kerberos}{}{spark_storage}{hs2}",
        metastore(fixture.db_name()),
        metastore(&spark_metastore_db),
    );
    for text in [&exporter_clusters, &agent_clusters] {
        assert!(!text.contains(SSL_USER.1), "a password in a configuration");
        assert!(!text.contains("user.name"));
    }
    let token = "secure-loop-token-0123456789";
    let stack = Stack::start(
        d,
        &StackOptions {
            ports: Ports::any(),
            exporter_clusters,
            agent_clusters,
            token: token.to_owned(),
        },
    )
    .await;
    let prom = stack.prometheus_url.clone();
    let agent = stack.agent_url.clone();

    // Both alerts fire and both tables are merged.
    let deadline = Instant::now() + Duration::from_secs(240);
    let finished = |jobs: &serde_json::Value, table: &str| {
        jobs.as_array()
            .into_iter()
            .flatten()
            .find(|j| j["item"]["key"]["table"] == table && j["state"] == "finished")
            .cloned()
    };
    let (hdfs_job, spark_job) = loop {
        let jobs: serde_json::Value = match client
            .get(format!("{agent}/api/v1/merges"))
            .bearer_auth(token)
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        if let (Some(h), Some(sp)) = (finished(&jobs, "events"), finished(&jobs, "clicks")) {
            break (h, sp);
        }
        assert!(
            Instant::now() < deadline,
            "both merges did not finish in 240 s; jobs {jobs}; alerts {:?}",
            query(&client, &prom, "ALERTS").await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for job in [&hdfs_job, &spark_job] {
        assert_eq!(job["outcome"]["result"], "merged", "{job}");
    }

    // The exporter's next scans show the planned file counts; rows are exactly the same.
    for (cluster, db, table, job) in [
        ("secure_hdfs", "secure_sales", "events", &hdfs_job),
        ("secure_spark", sdb.as_str(), "clicks", &spark_job),
    ] {
        let planned = job["outcome"]["files_after"].as_f64().unwrap();
        let q = format!(
            "hive_table_files{{cluster=\"{cluster}\",database=\"{db}\",table=\"{table}\"}}"
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while value(&client, &prom, &q).await != Some(planned) {
            assert!(Instant::now() < deadline, "{q} never dropped to {planned}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let after = data_files(&ns, &part);
    assert!(after.len() < FILES, "WebHDFS files after: {after:?}");
    assert_eq!(hdfs_rows(&ns, &part), hdfs_rows_before);
    let mut s = spark_session(&login).await;
    assert_eq!(
        sorted_rows(&mut s, &format!("{sdb}.clicks")).await,
        spark_rows_before
    );

    // Tickets renewed during the run (20-second tickets: several logins), none failed.
    let logins = format!(
        "hive_exporter_kerberos_logins_total{{principal=\"{}\"}}",
        kdc.tiny_principal()
    );
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let n = scrape(&client, &stack.exporter_url, &logins)
            .await
            .unwrap_or(0.0);
        if n >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{logins} = {n} after {:?}",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let metrics = metrics_text(&client, &stack.exporter_url).await;
    let failures: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("hive_exporter_kerberos_login_failures_total{"))
        .filter(|l| !l.ends_with(" 0"))
        .collect();
    assert!(failures.is_empty(), "failed logins: {failures:?}");

    // Only SPNEGO, cookies and delegation tokens reached the NameNode; never `user.name`.
    let handle = srv.handle();
    assert!(handle.auth_count(AuthKind::Negotiate) >= 1);
    assert!(handle.auth_count(AuthKind::Delegation) >= 1);
    for r in handle.request_log() {
        assert!(
            !r.query.to_ascii_lowercase().contains("user.name"),
            "user.name sent: {}",
            r.query
        );
    }
    eprintln!(
        "secured loop: {:.1?}; WebHDFS table {FILES} -> {} files (native), Spark table {} -> {} files \
         (engine); logins of {}: {:?}; NameNode authentications: negotiate {}, cookie {}, \
         delegation {}, rejected {}",
        t0.elapsed(),
        after.len(),
        spark_job["outcome"]["files_before"],
        spark_job["outcome"]["files_after"],
        kdc.tiny_principal(),
        scrape(&client, &stack.exporter_url, &logins).await,
        handle.auth_count(AuthKind::Negotiate),
        handle.auth_count(AuthKind::Cookie),
        handle.auth_count(AuthKind::Delegation),
        handle.auth_count(AuthKind::Rejected),
    );

    stack.stop().await;
    exec(&mut s, &format!("DROP DATABASE {sdb} CASCADE")).await;
    let _ = s.close().await;
    let _ = fixture.drop_database().await;
    srv.shutdown().await;
}
