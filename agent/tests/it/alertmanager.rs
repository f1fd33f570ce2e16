//! The webhook against a real Alertmanager (the Debian `prometheus-alertmanager` package, or
//! the binary named by `ALERTMANAGER_BIN`): alerts posted to Alertmanager's API arrive as
//! work items; resolved alerts withdraw queued items; a paused intake (503) is retried by
//! Alertmanager and the alerts arrive after resuming; a wrong bearer token gets 401, which
//! Alertmanager does not retry.
//!
//! The agent runs its real router on a listener the test bound, with no workers, so items
//! stay queued. What Alertmanager did (its attempts, its failed attempts) is read from
//! Alertmanager's own metrics, not from the agent's counters; the agent's counters must
//! agree with it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use hive_smallfiles_agent::api::{ApiSettings, ApiState, router};
use hive_smallfiles_agent::metrics::AgentMetrics;
use hive_smallfiles_agent::queue::{Queue, QueueSettings};
use hive_smallfiles_agent::work::{
    JobOutcome, JobRecord, JobRunner, JobState, MergeBudget, Source, TableKey,
};
use hive_smallfiles_core::exposition::Format;
use hive_smallfiles_core::web::{WebConfig, bind, serve};

// === helpers ===

fn alertmanager_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ALERTMANAGER_BIN") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["prometheus-alertmanager", "alertmanager"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "Alertmanager not found: install the Debian package `prometheus-alertmanager` \
         (binary `prometheus-alertmanager`) or set ALERTMANAGER_BIN to an alertmanager binary"
    );
}

/// A free port for Alertmanager, which takes a port number and cannot be handed a listener.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 client (one request per connection).
async fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    try_http(port, method, path, body).await.unwrap()
}

async fn try_http(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |x| x.1).to_owned();
    Ok((code, body))
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

async fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `f` (asynchronous) gives `Some`.
async fn wait_for_async<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A running Alertmanager, killed on drop.
struct Alertmanager {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    async fn start(agent_port: u16, token: &str, group_interval: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, token).unwrap();
        let config = format!(
            r#"route:
  receiver: merge
  group_by: ['cluster', 'database', 'table']
  group_wait: 1s
  group_interval: {group_interval}
  repeat_interval: 1h
receivers:
  - name: merge
    webhook_configs:
      - url: http://127.0.0.1:{agent_port}/api/v1/alerts
        send_resolved: true
        max_alerts: 2
        http_config:
          authorization:
            type: Bearer
            credentials_file: {}
"#,
            token_file.display()
        );
        let config_file = dir.path().join("alertmanager.yml");
        std::fs::write(&config_file, config).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).unwrap();
        let child = Command::new(alertmanager_binary())
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting Alertmanager");
        let mut am = Self { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Ok((200, _))) = tokio::time::timeout(
                Duration::from_secs(2),
                try_http(port, "GET", "/-/ready", ""),
            )
            .await
            {
                break;
            }
            if let Ok(Some(status)) = am.child.try_wait() {
                panic!("Alertmanager exited ({status}):\n{}", am.log());
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager not ready:\n{}",
                am.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        am
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }

    /// Alertmanager's own counter `name{integration="webhook"}` (0 when absent).
    async fn webhook_metric(&self, name: &str) -> u64 {
        let (code, text) = http(self.port, "GET", "/metrics", "").await;
        assert_eq!(code, 200, "Alertmanager /metrics");
        let prefix = format!("{name}{{integration=\"webhook\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |v| v.trim().parse::<f64>().unwrap_or(0.0) as u64)
    }

    /// HTTP requests Alertmanager sent to the webhook (each attempt counts).
    async fn requests(&self) -> u64 {
        self.webhook_metric("alertmanager_notification_requests_total")
            .await
    }

    /// Of those, the ones Alertmanager saw fail (non-2xx).
    async fn failed_requests(&self) -> u64 {
        self.webhook_metric("alertmanager_notification_requests_failed_total")
            .await
    }

    async fn post_alerts(&self, alerts: serde_json::Value) {
        let (code, body) = http(self.port, "POST", "/api/v2/alerts", &alerts.to_string()).await;
        assert_eq!(code, 200, "posting alerts: {body}");
    }
}

fn alert(
    table: &str,
    partition: Option<&str>,
    excess: u64,
    ends_at: Option<SystemTime>,
) -> serde_json::Value {
    let mut labels = json!({
        "alertname": "HiveSmallFiles", "cluster": "prod", "database": "sales", "table": table,
        "severity": "info",
    });
    if let Some(p) = partition {
        labels["partition"] = json!(p);
    }
    let mut a = json!({
        "labels": labels,
        "annotations": {"excess_files": excess.to_string(), "summary": "too many small files"},
        "generatorURL": "http://prometheus.invalid/graph",
    });
    if let Some(t) = ends_at {
        a["endsAt"] = json!(rfc3339(t));
    }
    a
}

#[derive(Debug)]
struct NeverRuns;

#[async_trait::async_trait]
impl JobRunner for NeverRuns {
    async fn run(&self, _: &JobRecord, _: &dyn MergeBudget, _: &CancellationToken) -> JobOutcome {
        unreachable!("no workers in this test")
    }
    async fn preview(&self, _: &TableKey) -> Result<serde_json::Value, String> {
        Ok(json!({}))
    }
}

/// The agent's router on a real listener.
struct Agent {
    state: ApiState,
    port: u16,
    shutdown: CancellationToken,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Agent {
    async fn start(token: &str) -> Self {
        let queue = Arc::new(Queue::new(
            QueueSettings::default(),
            Arc::new(AgentMetrics::new()),
        ));
        let shutdown = CancellationToken::new();
        let state = ApiState::new(
            ApiSettings {
                bearer_token: Some(token.to_owned()),
                ..ApiSettings::default()
            },
            queue,
            Arc::new(NeverRuns),
            shutdown.clone(),
        );
        let listener = bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = router(state.clone());
        let token = shutdown.clone();
        tokio::spawn(async move {
            serve(
                listener,
                app,
                &WebConfig::default(),
                token,
                Duration::from_secs(1),
            )
            .await;
        });
        Self {
            state,
            port,
            shutdown,
        }
    }

    fn webhook_count(&self, code: u16) -> u64 {
        let text = self.state.queue().metrics().render(Format::Text);
        let prefix = format!("hive_merge_webhook_requests_total{{code=\"{code}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |v| v.trim().parse().unwrap_or(0))
    }

    fn job(&self, table: &str) -> Option<JobRecord> {
        self.state
            .queue()
            .list(None, 100)
            .into_iter()
            .find(|r| r.item.key.table == table)
    }
}

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_arrive_as_work_items_and_resolve() {
    let agent = Agent::start("am-token").await;
    let am = Alertmanager::start(agent.port, "am-token", "2s").await;
    am.post_alerts(json!([
        alert("orders", Some("dt=2024-01-01"), 300, None),
        alert("orders", Some("dt=2024-01-02"), 500, None),
        alert("orders", Some("dt=2024-01-03"), 100, None),
        alert("users", None, 42, None),
    ]))
    .await;
    let orders = wait_for("orders job", Duration::from_secs(20), || {
        agent.job("orders")
    })
    .await;
    let users = wait_for("users job", Duration::from_secs(20), || agent.job("users")).await;
    // Labels become the table key; the partition label the partition set.
    assert_eq!(
        orders.item.key,
        TableKey {
            cluster: "prod".into(),
            database: "sales".into(),
            table: "orders".into()
        }
    );
    assert_eq!(orders.item.source, Source::Alert);
    assert_eq!(orders.state, JobState::Queued);
    // max_alerts: 2 cut the group of three alerts to two.
    assert_eq!(orders.item.partitions.len(), 2, "{orders:?}");
    assert_eq!(orders.item.fingerprints.len(), 2);
    assert!(
        orders
            .item
            .partitions
            .iter()
            .all(|p| p.starts_with("dt=2024-01-0"))
    );
    assert!(orders.item.priority >= 300, "{orders:?}");
    assert!(users.item.partitions.is_empty());
    assert_eq!(users.item.priority, 42);
    assert_eq!(users.item.fingerprints.len(), 1);

    // Resolve "users": Alertmanager sends the resolved alert, the queued item goes away.
    let past = SystemTime::now() - Duration::from_secs(1);
    am.post_alerts(json!([alert("users", None, 42, Some(past))]))
        .await;
    let cancelled = wait_for("users resolved", Duration::from_secs(20), || {
        agent
            .job("users")
            .filter(|j| j.state == JobState::Cancelled)
    })
    .await;
    assert!(
        matches!(cancelled.outcome, Some(JobOutcome::Skipped { ref reason, .. }) if reason == "resolved"),
        "{cancelled:?}"
    );
    assert_eq!(agent.job("orders").unwrap().state, JobState::Queued);
    // Alertmanager saw every delivery succeed, and the agent counted each of its requests.
    wait_for_async(
        "the agent's 200s to match Alertmanager's requests",
        Duration::from_secs(10),
        || async {
            let sent = am.requests().await;
            (sent > 0 && sent == agent.webhook_count(200)).then_some(())
        },
    )
    .await;
    assert_eq!(am.failed_requests().await, 0, "{}", am.log());
    assert_eq!(agent.webhook_count(401), 0);
    assert_eq!(agent.webhook_count(400), 0);
    let text = agent.state.queue().metrics().render(Format::Text);
    assert!(
        text.contains("hive_merge_alerts_received_total{status=\"resolved\"}"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_intake_is_retried_and_delivered_after_resume() {
    let agent = Agent::start("am-token").await;
    // A long group_interval: repeated attempts within it are Alertmanager's retries.
    let am = Alertmanager::start(agent.port, "am-token", "30s").await;
    agent.state.pause();
    am.post_alerts(json!([alert("events", Some("dt=1"), 10, None)]))
        .await;
    // Alertmanager itself saw two failed attempts: the first and a retry.
    wait_for_async(
        "two failed deliveries in Alertmanager",
        Duration::from_secs(20),
        || async { (am.failed_requests().await >= 2).then_some(()) },
    )
    .await;
    assert!(agent.job("events").is_none());
    agent.state.resume();
    let job = wait_for("events job after resume", Duration::from_secs(25), || {
        agent.job("events")
    })
    .await;
    assert_eq!(job.item.partitions, ["dt=1".to_owned()].into());
    // Every attempt Alertmanager made was answered 503 (paused) or 200 (delivered), and the
    // last one succeeded: one more attempt than failures.
    let (sent, failed) = wait_for_async(
        "Alertmanager's attempts to match the agent's answers",
        Duration::from_secs(10),
        || async {
            let (sent, failed) = (am.requests().await, am.failed_requests().await);
            (sent == failed + 1
                && agent.webhook_count(503) == failed
                && agent.webhook_count(200) == 1)
                .then_some((sent, failed))
        },
    )
    .await;
    assert!(
        failed >= 2,
        "retried while paused: {sent} attempts, {failed} failed"
    );
    eprintln!(
        "503 answers before resume: {}; Alertmanager log tail:\n{}",
        agent.webhook_count(503),
        am.log()
            .lines()
            .filter(|l| l.contains("webhook") || l.contains("Notify"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_gets_401_and_is_not_retried() {
    let agent = Agent::start("right-token").await;
    let am = Alertmanager::start(agent.port, "wrong-token", "30s").await;
    am.post_alerts(json!([alert("clicks", None, 10, None)]))
        .await;
    wait_for_async(
        "a failed delivery in Alertmanager",
        Duration::from_secs(20),
        || async { (am.failed_requests().await >= 1).then_some(()) },
    )
    .await;
    // Alertmanager's retries start at ~0.5 s and grow; 5 s would show several.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        am.requests().await,
        1,
        "Alertmanager made one attempt: a 4xx is not retried\n{}",
        am.log()
    );
    assert_eq!(am.failed_requests().await, 1);
    assert_eq!(agent.webhook_count(401), 1, "the agent answered it 401");
    assert!(agent.job("clicks").is_none());
}
