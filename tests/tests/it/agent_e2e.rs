//! The agent end to end: a real Alertmanager delivers a firing small-file alert (bearer token
//! from a file) to the agent's service (in-process, on a listener of the test), which
//! re-reads the table from the MetaStore, merges it through Spark's Thrift Server and reports
//! the job in its API, audit log and metrics; the partition's files drop to one and its rows
//! stay the same.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hive_smallfiles_tests::process::free_port;
use hive_smallfiles_tests::require;
use hive_smallfiles_tests::services::Agent;
use hive_smallfiles_tests::spark::{
    self, exec, metastore_db, port, session, sorted_rows, warehouse,
};
use hive_smallfiles_tests::stack::Killed;
use hive_smallfiles_tests::truth::{Truth, walk_partition};

async fn wait_http(url: &str, token: &str) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_to_agent_to_spark_merge() {
    require!(spark::unavailable());
    let db = format!("hsf_e2e_{}", std::process::id());
    let mut s = session("hsf_test").await;
    exec(&mut s, &format!("DROP DATABASE IF EXISTS {db} CASCADE")).await;
    exec(&mut s, &format!("CREATE DATABASE {db}")).await;
    exec(&mut s, &format!("CREATE TABLE {db}.clicks (id INT, url STRING) PARTITIONED BY (dt STRING) STORED AS TEXTFILE")).await;
    for i in 0..6 {
        exec(
            &mut s,
            &format!("INSERT INTO {db}.clicks PARTITION (dt='2024-05-01') VALUES ({i}, 'u{i}')"),
        )
        .await;
    }
    let rows_before = sorted_rows(&mut s, &format!("{db}.clicks")).await;
    assert_eq!(rows_before.len(), 6, "the rows inserted");
    let part_dir = warehouse().join(format!("{db}.db/clicks/dt=2024-05-01"));
    let files = |d: &std::path::Path| {
        let mut t = Truth::default();
        walk_partition(d, u64::MAX, 128 << 20, &mut t);
        t.files
    };
    assert!(files(&part_dir) >= 6);

    let dir = tempfile::tempdir().unwrap();
    let token = "e2e-token-0123456789";
    std::fs::write(dir.path().join("token"), token).unwrap();
    std::fs::write(
        dir.path().join("agent.toml"),
        format!(
            r#"
audit_log = "audit.jsonl"
[api]
bearer_token_file = "token"
[policy]
quiet_period = "0s"
min_excess_files = 1
# This test measures the in-place engine path on purpose.
allow_in_place = ["*"]
[[cluster]]
name = "spark"
engine = "spark"
executor = "engine"
[cluster.metastore]
url = "mysql://root@127.0.0.1:3306/{}"
[cluster.storage]
type = "local"
root = "{}"
[cluster.hiveserver2]
host = "127.0.0.1"
port = {}
"#,
            metastore_db(),
            warehouse().display(),
            port()
        ),
    )
    .unwrap();
    let agent_service = Agent::from_file(&dir.path().join("agent.toml")).await;
    let agent = agent_service.base_url.clone();
    wait_http(&format!("{agent}/ready"), token).await;

    // Alertmanager takes a port number, not a listener.
    let am_port = free_port();
    std::fs::write(
        dir.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: merge\n  group_by: ['cluster', 'database', 'table']\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\n\
             receivers:\n  - name: merge\n    webhook_configs:\n      - url: {agent}/api/v1/alerts\n        send_resolved: true\n        \
             http_config:\n          authorization:\n            type: Bearer\n            credentials_file: {}\n",
            dir.path().join("token").display()
        ),
    )
    .unwrap();
    let _am = Killed(
        Command::new("prometheus-alertmanager")
            .arg(format!(
                "--config.file={}",
                dir.path().join("alertmanager.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("am").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager (Debian package) must be installed: run tests/run.sh"),
    );
    let am = format!("http://127.0.0.1:{am_port}");
    wait_http(&format!("{am}/-/ready"), "").await;
    let alert = serde_json::json!([{
        "labels": {"alertname": "HiveTableSmallFiles", "cluster": "spark", "database": db, "table": "clicks",
                   "action": "merge", "severity": "info"},
        "annotations": {"summary": "small files"}
    }]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = client
        .post(format!("{am}/api/v2/alerts"))
        .json(&alert)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    // The job shows up in the agent's API and finishes merged.
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let jobs: serde_json::Value = client
            .get(format!("{agent}/api/v1/merges"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let found = jobs
            .as_array()
            .into_iter()
            .flatten()
            .chain(
                jobs.get("jobs")
                    .and_then(|j| j.as_array())
                    .into_iter()
                    .flatten(),
            )
            .find(|j| j["item"]["key"]["table"] == "clicks" && j["state"] == "finished");
        if let Some(j) = found {
            break j.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no finished job after 120 s: {jobs}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(job["outcome"]["result"], "merged", "{job}");
    assert_eq!(job["outcome"]["files_after"], 1, "{job}");
    assert_eq!(files(&part_dir), 1);
    // The same rows, as a multiset.
    assert_eq!(
        sorted_rows(&mut s, &format!("{db}.clicks")).await,
        rows_before
    );
    // Unauthenticated API calls are refused.
    assert_eq!(
        client
            .get(format!("{agent}/api/v1/merges"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    let metrics = client
        .get(format!("{agent}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains("hive_merge_jobs_total{result=\"merged\",strategy=\"insert_overwrite\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hive_merge_alerts_received_total{status=\"firing\"}"),
        "{metrics}"
    );
    let lint = hive_smallfiles_tests::prom::promtool_check_metrics(&metrics);
    assert!(lint.is_empty(), "promtool check metrics: {lint}");
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"event\":\"row_count\""), "{audit}");
    agent_service.stop().await;
    exec(&mut s, &format!("DROP DATABASE {db} CASCADE")).await;
    let _ = s.close().await;
}
