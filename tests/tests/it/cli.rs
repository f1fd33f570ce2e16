//! Our binaries as processes (this crate's `hsf-exporter` and `hsf-agent`): the exporter's
//! `--check-config`, `check`, `scan --once`; the agent's `--check-config` and `plan`; and
//! `serve` on a port each picks itself (`127.0.0.1:0`, read back from the log), stopped by
//! SIGTERM with exit code 0.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use hive_smallfiles_tests::metastore_fixture::{DbKind, FixtureDb, SchemaVersion, unique_db_name};
use hive_smallfiles_tests::process::ServedProcess;
use hive_smallfiles_tests::scenario::{SMALL_FILE_BYTES, Scenario, TARGET_FILE_BYTES};
use hive_smallfiles_tests::services::wait_http_ok;
use hive_smallfiles_tests::warehouse::Warehouse;
use hive_smallfiles_tests::webhdfs_server::{Namespace, ServerOptions, WebHdfsServer};

fn run(config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(crate::EXPORTER_BIN)
        .arg("--config.file")
        .arg(config)
        .args(args)
        .output()
        .expect("run exporter");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the binary off the runtime's threads, so the in-process WebHDFS server keeps serving.
async fn run_async(config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let config = config.to_owned();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&config, &args)
    })
    .await
    .unwrap()
}

#[test]
fn check_config_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[cluster]]\nname = \"a\"\n[cluster.metastore]\nurl = \"postgres://hive@db/metastore\"\n[cluster.storage]\ntype = \"local\"\nroot = \"/tmp\"\n",
    )
    .unwrap();
    let (code, out, _) = run(&good, &["--check-config"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("Configuration OK"));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[cluster]]\nname = \"a\"\n[cluster.metastore]\nurl = \"postgres://hive:secret@db/metastore\"\n[cluster.storage]\ntype = \"local\"\nroot = \"/tmp\"\n").unwrap();
    let (code, _, err) = run(&bad, &["--check-config"]);
    assert_eq!(code, Some(64));
    assert!(err.contains("must not contain a password"), "{err}");
    assert!(!err.contains("secret"), "secrets never printed: {err}");
    let (code, _, err) = run(&dir.path().join("missing.toml"), &["--check-config"]);
    assert_eq!(code, Some(64));
    assert!(err.contains("cannot read"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_scan_once() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::new(dir.path().join("warehouse")).unwrap();
    let scenario = Scenario::build(&w, &|rel| format!("hdfs://testns/warehouse/{rel}"), false);
    let truths: Vec<_> = scenario
        .expected
        .iter()
        .map(|e| e.truth(SMALL_FILE_BYTES, TARGET_FILE_BYTES))
        .collect();
    let ns = Namespace::new_shared();
    ns.import_dir(w.root(), "/warehouse").unwrap();
    let server = WebHdfsServer::start(
        ServerOptions::new()
            .namespace(Arc::clone(&ns))
            .namenodes(3)
            .active(Some(0)),
    )
    .await
    .unwrap();
    server.stop_namenode(2).await;
    let db = FixtureDb::create(
        DbKind::Postgres,
        SchemaVersion::Hive2_1,
        &unique_db_name("cli"),
    )
    .await
    .unwrap();
    db.insert(&scenario.tables).await.unwrap();
    let c = db.metastore_config();
    let nns: Vec<String> = server
        .namenode_urls()
        .iter()
        .map(|u| format!("{u:?}"))
        .collect();
    let config = dir.path().join("exporter.toml");
    let write = |url: &str| {
        std::fs::write(
            &config,
            format!(
                "[[cluster]]\nname = \"c1\"\nsmall_file_bytes = {SMALL_FILE_BYTES}\ntarget_file_bytes = {TARGET_FILE_BYTES}\nexclude = [\"scratch.*\"]\n\
                 [cluster.metastore]\nurl = \"{url}\"\nconnect_timeout = \"2s\"\n[cluster.storage]\ntype = \"webhdfs\"\nnamenodes = [{}]\nrequest_timeout = \"2s\"\nmax_retries = 0\n",
                nns.join(", ")
            ),
        )
        .unwrap();
    };
    write(&format!(
        "postgres://{}@{}:{}/{}",
        c.user, c.host, c.port, c.database
    ));

    // One NameNode down (stopped), one standby, one active: the check reports each and fails.
    let (code, out, _) = run_async(&config, &["check"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("c1 metastore postgres://"), "{out}");
    assert!(out.contains(": OK (schema 2.1.0"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains(" storage ")).count(),
        3,
        "{out}"
    );
    assert!(out.contains(": active"), "{out}");
    assert!(out.contains(": standby"), "{out}");
    assert!(out.contains(": DOWN"), "{out}");
    server.start_namenode(2).await.unwrap();
    let (code, out, _) = run_async(&config, &["check"]).await;
    assert_eq!(code, Some(0), "{out}");

    // The report, as JSON and CSV, equals the ground truth and is sorted by excess files.
    let (code, out, _) = run_async(&config, &["scan", "--once", "--format", "json"]).await;
    assert_eq!(code, Some(0));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = doc["tables"].as_array().unwrap();
    assert_eq!(rows.len(), scenario.expected.len());
    for (e, t) in scenario.expected.iter().zip(&truths) {
        let row = rows
            .iter()
            .find(|r| r["database"] == e.database.as_str() && r["table"] == e.table.as_str())
            .unwrap();
        assert_eq!(row["files"], t.files, "{}", e.table);
        assert_eq!(row["small_files"], t.small, "{}", e.table);
        assert_eq!(row["size_bytes"], t.bytes, "{}", e.table);
        assert_eq!(row["excess_files"], t.excess, "{}", e.table);
    }
    let excess: Vec<u64> = rows
        .iter()
        .map(|r| r["excess_files"].as_u64().unwrap())
        .collect();
    assert!(
        excess.windows(2).all(|w| w[0] >= w[1]),
        "sorted by excess: {excess:?}"
    );
    let (code, csv, _) = run_async(&config, &["scan", "--once", "--format", "csv"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(
        csv.lines().filter(|l| l.contains(",scanned,")).count(),
        scenario.expected.len()
    );
    assert!(csv.contains("\"odd name%='ü\"") || csv.contains(",odd name%='ü,"));

    // An unreachable MetaStore: check fails on that line, the scan reports the failure.
    write("postgres://nobody@127.0.0.1:1/none");
    let (code, out, _) = run_async(&config, &["check"]).await;
    assert_eq!(code, Some(1));
    assert!(out.contains("metastore") && out.contains("FAILED"), "{out}");
    let (code, out, _) = run_async(&config, &["scan", "--once"]).await;
    assert_eq!(code, Some(1));
    assert!(out.contains("scan FAILED"), "{out}");
    db.drop_database().await.unwrap();
}

#[test]
fn agent_check_config_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let agent = crate::AGENT_BIN;
    let good = dir.path().join("agent.toml");
    std::fs::write(
        &good,
        "[[cluster]]\nname = \"c\"\nengine = \"hive\"\n[cluster.metastore]\nurl = \"mysql://hive@db/metastore\"\n\
         [cluster.storage]\ntype = \"local\"\nroot = \"/tmp\"\n[cluster.hiveserver2]\nhost = \"hs2\"\n",
    )
    .unwrap();
    let run = |cfg: &Path, args: &[&str]| {
        let out = Command::new(agent)
            .arg("--config.file")
            .arg(cfg)
            .args(args)
            .output()
            .expect("run agent");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&good, &["--check-config"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("Configuration OK: 1 cluster(s): c"));
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&good)
            .unwrap()
            .replace("engine = \"hive\"", "engine = \"presto\""),
    )
    .unwrap();
    let (code, _, err) = run(&bad, &["--check-config"]);
    assert_eq!(code, Some(64), "{err}");
    // `plan` of a table on an unreachable MetaStore fails with a message, not a panic.
    let unreachable = dir.path().join("unreachable.toml");
    std::fs::write(
        &unreachable,
        std::fs::read_to_string(&good).unwrap().replace(
            "mysql://hive@db/metastore",
            "mysql://hive@127.0.0.1:1/metastore",
        ),
    )
    .unwrap();
    let (code, _, err) = run(
        &unreachable,
        &["plan", "--cluster", "c", "--database", "d", "--table", "t"],
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("metastore"), "{err}");
}

#[tokio::test]
async fn exporter_serves_on_its_own_port_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("exporter.toml");
    // An unreachable MetaStore: the exporter serves anyway (and reports the failed scan).
    std::fs::write(
        &config,
        format!(
            "[[cluster]]\nname = \"c\"\n[cluster.metastore]\nurl = \"mysql://hive@127.0.0.1:1/metastore\"\nconnect_timeout = \"1s\"\n\
             [cluster.storage]\ntype = \"local\"\nroot = \"{}\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut exporter = ServedProcess::start(
        Path::new(crate::EXPORTER_BIN),
        &["--config.file", config.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(exporter.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(
        exporter.addr.port(),
        0,
        "the bound port, not the requested 0"
    );
    wait_http_ok(
        &format!("{}/healthz", exporter.base_url),
        None,
        Duration::from_secs(30),
    )
    .await;
    // The first (failed) scan is published.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let body = reqwest::get(format!("{}/metrics", exporter.base_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if body.contains("hive_metastore_up{cluster=\"c\"} 0") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failed scan reported:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let code = tokio::task::spawn_blocking(move || {
        let code = exporter.terminate(Duration::from_secs(20));
        (code, exporter.log())
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(0), "exit code after SIGTERM; log:\n{}", code.1);
}

/// An agent configuration in `dir` with bearer token `token` and an unreachable MetaStore.
pub(crate) fn write_agent_config(dir: &Path, token: &str) -> std::path::PathBuf {
    let config = dir.join("agent.toml");
    std::fs::write(dir.join("token"), token).unwrap();
    std::fs::write(
        &config,
        format!(
            "audit_log = \"audit.jsonl\"\n[api]\nbearer_token_file = \"token\"\n\
             [[cluster]]\nname = \"c\"\nengine = \"spark\"\nexecutor = \"native\"\n\
             [cluster.metastore]\nurl = \"mysql://hive@127.0.0.1:1/metastore\"\n\
             [cluster.storage]\ntype = \"local\"\nroot = \"{}\"\n",
            dir.display()
        ),
    )
    .unwrap();
    config
}

#[tokio::test]
async fn agent_serves_on_its_own_port_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_agent_config(dir.path(), "cli-token");
    let mut agent = ServedProcess::start(
        Path::new(crate::AGENT_BIN),
        &["--config.file", config.to_str().unwrap()],
        Duration::from_secs(30),
    );
    wait_http_ok(
        &format!("{}/healthz", agent.base_url),
        Some("cli-token"),
        Duration::from_secs(30),
    )
    .await;
    // The MetaStore is unreachable: start-up recovery cannot list the staging areas, so the
    // agent serves but says it is not ready, and why.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = reqwest::get(format!("{}/ready", agent.base_url))
            .await
            .unwrap();
        let code = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(code, 503, "{body}");
        if body.contains("not recovered") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first recovery pass never ended: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unauthenticated = reqwest::get(format!("{}/api/v1/merges", agent.base_url))
        .await
        .unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);
    let code = tokio::task::spawn_blocking(move || {
        let code = agent.terminate(Duration::from_secs(20));
        (code, agent.log())
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(0), "exit code after SIGTERM; log:\n{}", code.1);
}
