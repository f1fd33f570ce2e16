//! The whole loop on real components, on loopback: a Spark-managed table with small files
//! (metastore on MariaDB), the exporter scanning it, Prometheus scraping the exporter and the
//! agent and evaluating `alerts/` (with short test thresholds), Alertmanager routing the
//! merge alert to the agent with a bearer token, the agent merging through Spark's Thrift
//! Server, and the exporter's next scan showing the files gone while the rows stay. Then every
//! dashboard panel's PromQL runs against that Prometheus.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hive_smallfiles_agent::hiveserver2::{Hs2Config, Hs2Session};
use hive_smallfiles_tests::exporter_process::{free_port, workspace_binary};
use hive_smallfiles_tests::spark::{ensure_server, metastore_db, port, warehouse};
use tokio_util::sync::CancellationToken;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &Path, args: &[String], log: &Path) -> Killed {
    let log = std::fs::File::create(log).unwrap();
    Killed(
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (tests/run.sh installs Debian's prometheus packages)",
                    program.display()
                )
            }),
    )
}

async fn exec(s: &mut Hs2Session, sql: &str) {
    s.execute_update(sql, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn count(s: &mut Hs2Session, table: &str) -> i64 {
    exec(s, &format!("REFRESH TABLE {table}")).await;
    let r = s
        .execute(
            &format!("SELECT count(*) FROM {table}"),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    r.rows[0][0].as_i64().unwrap()
}

async fn get_json(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> Option<serde_json::Value> {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.ok()?.json().await.ok()
}

async fn wait_ready(client: &reqwest::Client, url: &str, token: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut req = client.get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if req.send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(Instant::now() < deadline, "{url} not ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Instant query; the vector of results.
async fn query(
    client: &reqwest::Client,
    prom: &str,
    q: &str,
) -> Result<Vec<serde_json::Value>, String> {
    let r = client
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
    if v["status"] != "success" {
        return Err(format!("{q}: {v}"));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// The repository's rule file with thresholds and `for:` durations short enough for a test.
fn test_rules(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../alerts/hive-smallfiles.rules.yml"),
    )
    .unwrap();
    let text = text
        .replace(
            "hive_table_excess_files > 1000",
            "hive_table_excess_files > 2",
        )
        .replace(
            "hive_table_newest_file_timestamp_seconds) > 3600",
            "hive_table_newest_file_timestamp_seconds) > -86400",
        );
    let text = regex_lite_for(&text);
    let path = dir.join("rules.yml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `for: <anything>` → `for: 2s`.
fn regex_lite_for(text: &str) -> String {
    text.lines()
        .map(|l| match l.trim_start().strip_prefix("for:") {
            Some(_) => format!("{}for: 2s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_to_merge_to_fewer_files() {
    if !ensure_server() {
        return;
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let db = format!("hsf_loop_{}", std::process::id());
    let mut cfg = Hs2Config::new("127.0.0.1", port(), "hsf_test");
    cfg.connect_timeout = Duration::from_secs(60);
    let mut s = Hs2Session::open(&cfg).await.unwrap();
    exec(&mut s, &format!("DROP DATABASE IF EXISTS {db} CASCADE")).await;
    exec(&mut s, &format!("CREATE DATABASE {db}")).await;
    exec(&mut s, &format!("CREATE TABLE {db}.logs (id INT, msg STRING) PARTITIONED BY (dt STRING) STORED AS TEXTFILE")).await;
    for i in 0..5 {
        exec(&mut s, &format!("INSERT INTO {db}.logs PARTITION (dt='2024-06-01') VALUES ({i}, 'm{i}'), ({i}, 'n{i}')")).await;
    }
    let rows_before = count(&mut s, &format!("{db}.logs")).await;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = "loop-token-0123456789";
    std::fs::write(d.join("token"), token).unwrap();
    let (exporter_port, agent_port, prom_port, am_port) =
        (free_port(), free_port(), free_port(), free_port());
    let ms_url = format!("mysql://root@127.0.0.1:3306/{}", metastore_db());
    std::fs::write(
        d.join("exporter.toml"),
        format!(
            "[[cluster]]\nname = \"spark\"\ninclude = [\"{db}.*\"]\nscan_interval = \"2s\"\n[cluster.metastore]\nurl = \"{ms_url}\"\n\
             [cluster.storage]\ntype = \"local\"\nroot = \"{}\"\n",
            warehouse().display()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("agent.toml"),
        format!(
            "audit_log = \"audit.jsonl\"\n[api]\nbearer_token_file = \"token\"\n[policy]\nquiet_period = \"0s\"\nmin_excess_files = 1\n\
             [[cluster]]\nname = \"spark\"\nengine = \"spark\"\n[cluster.metastore]\nurl = \"{ms_url}\"\n[cluster.storage]\ntype = \"local\"\n\
             root = \"{}\"\n[cluster.hiveserver2]\nhost = \"127.0.0.1\"\nport = {}\n",
            warehouse().display(),
            port()
        ),
    )
    .unwrap();
    let rules = test_rules(d);
    std::fs::write(
        d.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n\
             scrape_configs:\n  - job_name: hive-smallfiles-exporter\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n\
             \x20 - job_name: hive-smallfiles-agent\n    authorization:\n      credentials_file: {}\n    static_configs:\n      - targets: ['127.0.0.1:{agent_port}']\n",
            rules.display(),
            d.join("token").display()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("alertmanager.yml"),
        format!(
            "route:\n  receiver: 'null'\n  routes:\n    - matchers: ['action=\"merge\"']\n      receiver: merge\n      group_by: ['cluster', 'database', 'table']\n      group_wait: 1s\n      group_interval: 2s\n      repeat_interval: 1h\n\
             receivers:\n  - name: 'null'\n  - name: merge\n    webhook_configs:\n      - url: http://127.0.0.1:{agent_port}/api/v1/alerts\n        send_resolved: true\n        max_alerts: 100\n        \
             http_config:\n          authorization:\n            type: Bearer\n            credentials_file: {}\n",
            d.join("token").display()
        ),
    )
    .unwrap();

    let s_ = |x: &str| x.to_owned();
    let _exporter = spawn(
        &workspace_binary("hive-smallfiles-exporter"),
        &[
            s_("--config.file"),
            d.join("exporter.toml").display().to_string(),
            s_("--web.listen-address"),
            format!("127.0.0.1:{exporter_port}"),
            s_("serve"),
        ],
        &d.join("exporter.log"),
    );
    let _agent = spawn(
        &workspace_binary("hive-smallfiles-agent"),
        &[
            s_("--config.file"),
            d.join("agent.toml").display().to_string(),
            s_("--web.listen-address"),
            format!("127.0.0.1:{agent_port}"),
            s_("serve"),
        ],
        &d.join("agent.log"),
    );
    let _am = spawn(
        Path::new("prometheus-alertmanager"),
        &[
            format!("--config.file={}", d.join("alertmanager.yml").display()),
            format!("--storage.path={}", d.join("am").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            s_("--cluster.listen-address="),
        ],
        &d.join("alertmanager.log"),
    );
    let _prom = spawn(
        Path::new("prometheus"),
        &[
            format!("--config.file={}", d.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", d.join("prom").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &d.join("prometheus.log"),
    );
    let prom = format!("http://127.0.0.1:{prom_port}");
    let agent = format!("http://127.0.0.1:{agent_port}");
    wait_ready(
        &client,
        &format!("http://127.0.0.1:{exporter_port}/ready"),
        None,
    )
    .await;
    wait_ready(&client, &format!("{agent}/ready"), Some(token)).await;
    wait_ready(
        &client,
        &format!("http://127.0.0.1:{am_port}/-/ready"),
        None,
    )
    .await;
    wait_ready(&client, &format!("{prom}/-/ready"), None).await;

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
        let jobs = get_json(&client, &format!("{agent}/api/v1/merges"), Some(token))
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
            "no merge after 180 s; files seen {before:?}; alerts {:?}; agent log:\n{}",
            query(&client, &prom, "ALERTS").await,
            std::fs::read_to_string(d.join("agent.log")).unwrap_or_default()
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
    assert_eq!(count(&mut s, &format!("{db}.logs")).await, rows_before);

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
    exec(&mut s, &format!("DROP DATABASE {db} CASCADE")).await;
    let _ = s.close().await;
}
