//! The whole loop on real components, on loopback: a Spark-managed table with small files
//! (metastore on MariaDB), the exporter (in-process, like the agent) scanning it, Prometheus scraping the exporter and the
//! agent and evaluating `alerts/` (with short test thresholds), Alertmanager routing the
//! merge alert to the agent with a bearer token, the agent merging through Spark's Thrift
//! Server, and the exporter's next scan showing the files gone while the rows stay. Then every
//! dashboard panel's PromQL runs against that Prometheus.

use std::path::Path;
use std::time::{Duration, Instant};

use hive_smallfiles_tests::require;
use hive_smallfiles_tests::spark::{
    self, exec, metastore_db, port, session, sorted_rows, warehouse,
};
use hive_smallfiles_tests::stack::{Ports, Stack, StackOptions, query};

async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> Option<serde_json::Value> {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_to_merge_to_fewer_files() {
    require!(spark::unavailable());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let db = format!("hsf_loop_{}", std::process::id());
    let mut s = session("hsf_test").await;
    exec(&mut s, &format!("DROP DATABASE IF EXISTS {db} CASCADE")).await;
    exec(&mut s, &format!("CREATE DATABASE {db}")).await;
    exec(&mut s, &format!("CREATE TABLE {db}.logs (id INT, msg STRING) PARTITIONED BY (dt STRING) STORED AS TEXTFILE")).await;
    for i in 0..5 {
        exec(&mut s, &format!("INSERT INTO {db}.logs PARTITION (dt='2024-06-01') VALUES ({i}, 'm{i}'), ({i}, 'n{i}')")).await;
    }
    let rows_before = sorted_rows(&mut s, &format!("{db}.logs")).await;
    assert_eq!(rows_before.len(), 10, "the rows inserted");

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = "loop-token-0123456789";
    let ms_url = format!("mysql://root@127.0.0.1:3306/{}", metastore_db());
    let wh = warehouse().display().to_string();
    let options = StackOptions {
        ports: Ports::any(),
        exporter_clusters: format!(
            "[[cluster]]\nname = \"spark\"\ninclude = [\"{db}.*\"]\nscan_interval = \"2s\"\nquiet_period = \"0s\"\n[cluster.metastore]\nurl = \"{ms_url}\"\n\
             [cluster.storage]\ntype = \"local\"\nroot = \"{wh}\"\n"
        ),
        agent_clusters: format!(
            "[[cluster]]\nname = \"spark\"\nengine = \"spark\"\n[cluster.metastore]\nurl = \"{ms_url}\"\n[cluster.storage]\ntype = \"local\"\n\
             root = \"{wh}\"\n[cluster.hiveserver2]\nhost = \"127.0.0.1\"\nport = {}\n",
            port()
        ),
        token: token.to_owned(),
    };
    let stack = Stack::start(d, &options).await;
    let prom = stack.prometheus_url.clone();
    let agent = stack.agent_url.clone();

    let files_q = format!("hive_table_files{{cluster=\"spark\",database=\"{db}\",table=\"logs\"}}");
    let value = |r: &[serde_json::Value]| {
        r.first()
            .and_then(|x| x["value"][1].as_str())
            .and_then(|v| v.parse::<f64>().ok())
    };
    // Prometheus sees the small files, the alert fires, the agent merges.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut before = None;
    let merged = loop {
        if before.is_none() {
            before = value(&query(&client, &prom, &files_q).await.unwrap_or_default())
                .filter(|v| *v >= 5.0);
        }
        let jobs = get_json(&client, &format!("{agent}/api/v1/merges"), token)
            .await
            .unwrap_or_default();
        let done = jobs
            .as_array()
            .into_iter()
            .flatten()
            .find(|j| j["item"]["key"]["table"] == "logs" && j["state"] == "finished")
            .cloned();
        if let Some(j) = done {
            break j;
        }
        assert!(
            Instant::now() < deadline,
            "no merge after 180 s; files seen {before:?}; alerts {:?}; jobs {jobs}; Alertmanager log:\n{}",
            query(&client, &prom, "ALERTS").await,
            std::fs::read_to_string(stack.dir.join("alertmanager.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(merged["outcome"]["result"], "merged", "{merged}");
    assert!(
        before.is_some(),
        "Prometheus had the table's file count before the merge"
    );
    // The next scans show the planned count; rows are unchanged.
    let planned = merged["outcome"]["files_after"].as_f64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while value(&query(&client, &prom, &files_q).await.unwrap_or_default()) != Some(planned) {
        assert!(
            Instant::now() < deadline,
            "hive_table_files never dropped to {planned}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The same rows, as a multiset.
    assert_eq!(
        sorted_rows(&mut s, &format!("{db}.logs")).await,
        rows_before
    );

    // Every dashboard panel's PromQL runs against this Prometheus without errors; the
    // overview's core panels return data.
    let vars = [
        ("$cluster", "spark"),
        ("${cluster}", "spark"),
        ("$database", db.as_str()),
        ("${database}", db.as_str()),
        ("$table", "logs"),
        ("${table}", "logs"),
        ("$__rate_interval", "1m"),
        ("$__interval", "15s"),
        ("$__range", "1h"),
        ("${__range}", "1h"),
    ];
    let mut with_data = 0;
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards"))
        .unwrap()
        .flatten()
    {
        let dash: serde_json::Value =
            serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
        let mut panels: Vec<serde_json::Value> =
            dash["panels"].as_array().cloned().unwrap_or_default();
        let nested: Vec<serde_json::Value> = panels
            .iter()
            .flat_map(|p| p["panels"].as_array().cloned().unwrap_or_default())
            .collect();
        panels.extend(nested);
        for p in &panels {
            for t in p["targets"].as_array().into_iter().flatten() {
                let Some(expr) = t["expr"].as_str() else {
                    continue;
                };
                let mut q = expr.to_owned();
                for (k, v) in vars {
                    q = q.replace(k, v);
                }
                let r = query(&client, &prom, &q).await.unwrap_or_else(|e| {
                    panic!("{}: panel {}: {e}", entry.path().display(), p["title"])
                });
                if !r.is_empty() {
                    with_data += 1;
                }
            }
        }
    }
    assert!(
        with_data >= 10,
        "only {with_data} panel queries returned data"
    );
    stack.stop().await;
    exec(&mut s, &format!("DROP DATABASE {db} CASCADE")).await;
    let _ = s.close().await;
}
