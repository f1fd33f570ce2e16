//! The whole system on loopback, for the full-loop test and the demo: the exporter, the
//! agent, Prometheus (evaluating `alerts/` with short demo thresholds) and Alertmanager
//! (routing `action="merge"` alerts to the agent with a bearer token), as child processes.
//! Spark's Thrift Server and MariaDB are started separately (`tests/scripts/`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::exporter_process::workspace_binary;

/// A child process killed on drop.
#[derive(Debug)]
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Ports of the four processes.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Exporter.
    pub exporter: u16,
    /// Agent.
    pub agent: u16,
    /// Prometheus.
    pub prometheus: u16,
    /// Alertmanager.
    pub alertmanager: u16,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Ports.
    pub ports: Ports,
    /// `[[cluster]]` blocks of the exporter's configuration.
    pub exporter_clusters: String,
    /// `[[cluster]]` blocks of the agent's configuration (its `[policy]` is permissive: no
    /// quiet period, one excess file is worth merging).
    pub agent_clusters: String,
    /// Bearer token shared by Alertmanager, Prometheus and the agent.
    pub token: String,
}

/// The running processes and their URLs.
#[derive(Debug)]
pub struct Stack {
    /// Working directory (configs, logs, data).
    pub dir: PathBuf,
    /// `http://127.0.0.1:<port>` of each.
    pub exporter_url: String,
    /// Agent URL.
    pub agent_url: String,
    /// Prometheus URL.
    pub prometheus_url: String,
    /// Alertmanager URL.
    pub alertmanager_url: String,
    children: Vec<Killed>,
}

/// The repository's rule file with thresholds and `for:` durations short enough for a demo.
pub fn demo_rules() -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../alerts/hive-smallfiles.rules.yml"),
    )
    .expect("alerts/hive-smallfiles.rules.yml");
    text.replace(
        "hive_table_excess_files > 1000",
        "hive_table_excess_files > 2",
    )
    .replace(
        "hive_table_newest_file_timestamp_seconds) > 3600",
        "hive_table_newest_file_timestamp_seconds) > -86400",
    )
    .lines()
    .map(|l| match l.trim_start().strip_prefix("for:") {
        Some(_) => format!("{}for: 2s", &l[..l.len() - l.trim_start().len()]),
        None => l.to_owned(),
    })
    .collect::<Vec<_>>()
    .join("\n")
}

fn spawn(program: &Path, args: &[String], log: &Path) -> Killed {
    let log = std::fs::File::create(log).expect("log file");
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

async fn wait_ready(client: &reqwest::Client, url: &str, token: Option<&str>, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut req = client.get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if req.send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} not ready; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Stack {
    /// Writes the configurations into `dir` and starts everything; returns when all are ready.
    pub async fn start(dir: &Path, o: &StackOptions) -> Self {
        let p = o.ports;
        std::fs::create_dir_all(dir).expect("stack directory");
        let token_file = dir.join("token");
        std::fs::write(&token_file, &o.token).expect("token");
        std::fs::write(dir.join("exporter.toml"), &o.exporter_clusters).expect("exporter.toml");
        std::fs::write(
            dir.join("agent.toml"),
            format!(
                "audit_log = \"audit.jsonl\"\n[api]\nbearer_token_file = \"token\"\n[policy]\nquiet_period = \"0s\"\nmin_excess_files = 1\n\n{}",
                o.agent_clusters
            ),
        )
        .expect("agent.toml");
        std::fs::write(dir.join("rules.yml"), demo_rules()).expect("rules.yml");
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\nrule_files: ['{}']\n\
                 alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{}']\n\
                 scrape_configs:\n  - job_name: hive-smallfiles-exporter\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n\
                 \x20 - job_name: hive-smallfiles-agent\n    authorization:\n      credentials_file: {}\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
                dir.join("rules.yml").display(),
                p.alertmanager,
                p.exporter,
                token_file.display(),
                p.agent
            ),
        )
        .expect("prometheus.yml");
        std::fs::write(
            dir.join("alertmanager.yml"),
            format!(
                "route:\n  receiver: 'null'\n  routes:\n    - matchers: ['action=\"merge\"']\n      receiver: merge\n      group_by: ['cluster', 'database', 'table']\n      group_wait: 1s\n      group_interval: 2s\n      repeat_interval: 1h\n\
                 receivers:\n  - name: 'null'\n  - name: merge\n    webhook_configs:\n      - url: http://127.0.0.1:{}/api/v1/alerts\n        send_resolved: true\n        max_alerts: 100\n        \
                 http_config:\n          authorization:\n            type: Bearer\n            credentials_file: {}\n",
                p.agent,
                token_file.display()
            ),
        )
        .expect("alertmanager.yml");
        let s = |x: &str| x.to_owned();
        let arg = |k: &str, v: &Path| format!("{k}={}", v.display());
        let mut children = Vec::new();
        children.push(spawn(
            &workspace_binary("hive-smallfiles-exporter"),
            &[
                arg("--config.file", &dir.join("exporter.toml")),
                format!("--web.listen-address=127.0.0.1:{}", p.exporter),
                s("--log.level=warn"),
                s("serve"),
            ],
            &dir.join("exporter.log"),
        ));
        children.push(spawn(
            &workspace_binary("hive-smallfiles-agent"),
            &[
                arg("--config.file", &dir.join("agent.toml")),
                format!("--web.listen-address=127.0.0.1:{}", p.agent),
                s("serve"),
            ],
            &dir.join("agent.log"),
        ));
        children.push(spawn(
            Path::new("prometheus-alertmanager"),
            &[
                arg("--config.file", &dir.join("alertmanager.yml")),
                arg("--storage.path", &dir.join("alertmanager-data")),
                format!("--web.listen-address=127.0.0.1:{}", p.alertmanager),
                s("--cluster.listen-address="),
            ],
            &dir.join("alertmanager.log"),
        ));
        children.push(spawn(
            Path::new("prometheus"),
            &[
                arg("--config.file", &dir.join("prometheus.yml")),
                arg("--storage.tsdb.path", &dir.join("prometheus-data")),
                format!("--web.listen-address=127.0.0.1:{}", p.prometheus),
            ],
            &dir.join("prometheus.log"),
        ));
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let stack = Self {
            dir: dir.to_owned(),
            exporter_url: url(p.exporter),
            agent_url: url(p.agent),
            prometheus_url: url(p.prometheus),
            alertmanager_url: url(p.alertmanager),
            children,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        wait_ready(
            &client,
            &format!("{}/ready", stack.exporter_url),
            None,
            &dir.join("exporter.log"),
        )
        .await;
        wait_ready(
            &client,
            &format!("{}/ready", stack.agent_url),
            Some(&o.token),
            &dir.join("agent.log"),
        )
        .await;
        wait_ready(
            &client,
            &format!("{}/-/ready", stack.alertmanager_url),
            None,
            &dir.join("alertmanager.log"),
        )
        .await;
        wait_ready(
            &client,
            &format!("{}/-/ready", stack.prometheus_url),
            None,
            &dir.join("prometheus.log"),
        )
        .await;
        stack
    }

    /// Number of running child processes.
    pub fn processes(&self) -> usize {
        self.children.len()
    }
}

/// Prometheus instant query; the result vector.
pub async fn query(
    client: &reqwest::Client,
    prometheus: &str,
    q: &str,
) -> Result<Vec<serde_json::Value>, String> {
    let r = client
        .get(format!("{prometheus}/api/v1/query"))
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
