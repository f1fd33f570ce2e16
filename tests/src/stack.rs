//! The whole system on loopback, for the full-loop test and the demo: the exporter and the
//! agent in-process (each on a listener bound here), Prometheus (evaluating `alerts/` with
//! short demo thresholds) and Alertmanager (routing `action="merge"` alerts to the agent with
//! a bearer token) as child processes. Spark's Thrift Server and MariaDB are started
//! separately (`tests/scripts/`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hive_smallfiles_agent::config::AgentConfig;
use hive_smallfiles_core::config::ProcessEnv;
use hive_smallfiles_exporter::config::Config;

use crate::process::free_port;
use crate::services::{Agent, AgentOptions, Exporter, ExporterOptions};

/// A child process killed on drop.
#[derive(Debug)]
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Ports of the four services; 0: any free port (our services bind port 0 and keep the
/// listener; Prometheus and Alertmanager, which take a port number, get one that is free
/// when they start).
#[derive(Debug, Clone, Copy, Default)]
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

impl Ports {
    /// Any free ports.
    pub fn any() -> Self {
        Self::default()
    }
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

/// The running services and their URLs.
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
    /// The exporter (in-process).
    pub exporter: Exporter,
    /// The agent (in-process).
    pub agent: Agent,
    children: Vec<Killed>,
}

/// The repository's rule file with thresholds and `for:` durations short enough for a demo.
/// The demo's exporters run with `quiet_period = "0s"`, so their freshly written tables count
/// as cold and the merge alert fires on its real expression.
pub fn demo_rules() -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../alerts/hive-smallfiles.rules.yml"),
    )
    .expect("alerts/hive-smallfiles.rules.yml");
    let demo = text.replace(
        "hive_table_cold_excess_files > 1000",
        "hive_table_cold_excess_files > 2",
    );
    assert!(
        demo.contains("hive_table_cold_excess_files > 2"),
        "demo_rules: the merge alert's expression changed"
    );
    demo.lines()
        .map(|l| match l.trim_start().strip_prefix("for:") {
            Some(_) => format!("{}for: 2s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Starts a child in its own process group: a Ctrl-C in the terminal reaches the demo, which
/// still needs Prometheus for its summary and then stops the children itself.
fn spawn(program: &Path, args: &[String], log: &Path) -> Killed {
    let log = std::fs::File::create(log).expect("log file");
    Killed(
        Command::new(program)
            .process_group(0)
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

async fn wait_ready(client: &reqwest::Client, url: &str, token: Option<&str>, log: Option<&Path>) {
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
            log.map(|l| std::fs::read_to_string(l).unwrap_or_default())
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Stack {
    /// Writes the configurations into `dir` and starts everything; returns when all are ready.
    pub async fn start(dir: &Path, o: &StackOptions) -> Self {
        let p = o.ports;
        let pick = |port: u16| if port == 0 { free_port() } else { port };
        let (prometheus_port, alertmanager_port) = (pick(p.prometheus), pick(p.alertmanager));
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
        let exporter_config = Config::load(&dir.join("exporter.toml"), &ProcessEnv)
            .unwrap_or_else(|e| panic!("exporter.toml: {e}"));
        let exporter = Exporter::start_on(
            &format!("127.0.0.1:{}", p.exporter),
            exporter_config,
            ExporterOptions::default(),
        )
        .await;
        let agent_config = AgentConfig::load(&dir.join("agent.toml"), &ProcessEnv)
            .unwrap_or_else(|e| panic!("agent.toml: {e}"));
        let agent = Agent::start_on(
            &format!("127.0.0.1:{}", p.agent),
            agent_config,
            AgentOptions::default(),
        )
        .await;
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\nrule_files: ['{}']\n\
                 alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{}']\n\
                 scrape_configs:\n  - job_name: hive-smallfiles-exporter\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n\
                 \x20 - job_name: hive-smallfiles-agent\n    authorization:\n      credentials_file: {}\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
                dir.join("rules.yml").display(),
                alertmanager_port,
                exporter.addr.port(),
                token_file.display(),
                agent.addr.port()
            ),
        )
        .expect("prometheus.yml");
        std::fs::write(
            dir.join("alertmanager.yml"),
            format!(
                "route:\n  receiver: 'null'\n  routes:\n    - matchers: ['action=\"merge\"']\n      receiver: merge\n      group_by: ['cluster', 'database', 'table']\n      group_wait: 1s\n      group_interval: 2s\n      repeat_interval: 1h\n\
                 receivers:\n  - name: 'null'\n  - name: merge\n    webhook_configs:\n      - url: http://127.0.0.1:{}/api/v1/alerts\n        send_resolved: true\n        max_alerts: 100\n        \
                 http_config:\n          authorization:\n            type: Bearer\n            credentials_file: {}\n",
                agent.addr.port(),
                token_file.display()
            ),
        )
        .expect("alertmanager.yml");
        let arg = |k: &str, v: &Path| format!("{k}={}", v.display());
        let mut children = Vec::new();
        children.push(spawn(
            Path::new("prometheus-alertmanager"),
            &[
                arg("--config.file", &dir.join("alertmanager.yml")),
                arg("--storage.path", &dir.join("alertmanager-data")),
                format!("--web.listen-address=127.0.0.1:{alertmanager_port}"),
                "--cluster.listen-address=".to_owned(),
            ],
            &dir.join("alertmanager.log"),
        ));
        children.push(spawn(
            Path::new("prometheus"),
            &[
                arg("--config.file", &dir.join("prometheus.yml")),
                arg("--storage.tsdb.path", &dir.join("prometheus-data")),
                format!("--web.listen-address=127.0.0.1:{prometheus_port}"),
            ],
            &dir.join("prometheus.log"),
        ));
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let stack = Self {
            dir: dir.to_owned(),
            exporter_url: exporter.base_url.clone(),
            agent_url: agent.base_url.clone(),
            prometheus_url: url(prometheus_port),
            alertmanager_url: url(alertmanager_port),
            exporter,
            agent,
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
            None,
        )
        .await;
        wait_ready(
            &client,
            &format!("{}/ready", stack.agent_url),
            Some(&o.token),
            None,
        )
        .await;
        wait_ready(
            &client,
            &format!("{}/-/ready", stack.alertmanager_url),
            None,
            Some(&dir.join("alertmanager.log")),
        )
        .await;
        wait_ready(
            &client,
            &format!("{}/-/ready", stack.prometheus_url),
            None,
            Some(&dir.join("prometheus.log")),
        )
        .await;
        stack
    }

    /// Stops the exporter and the agent (cancelling their tokens) and kills Prometheus and
    /// Alertmanager.
    pub async fn stop(self) {
        let Self {
            exporter,
            agent,
            children,
            ..
        } = self;
        drop(children);
        agent.stop().await;
        if let Err(e) = exporter.stop().await {
            eprintln!("exporter: {e}");
        }
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
