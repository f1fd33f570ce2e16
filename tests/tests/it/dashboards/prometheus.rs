//! A real Prometheus server over the synthetic series of [`super::synthetic`], backfilled
//! into its TSDB with `promtool tsdb create-blocks-from openmetrics`, queried at the time of
//! the last sample.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::synthetic::{self, Layout, Table};

/// A Prometheus server on a free local port with an empty configuration, over `data` (a TSDB
/// directory, backfilled beforehand); killed on drop.
struct Prometheus {
    child: Child,
    url: String,
}

impl Prometheus {
    fn start(dir: &Path, data: &Path) -> Self {
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, "{}\n").expect("write config");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package prometheus) must be installed: run tests/run.sh");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/-/ready", self.url)).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited: {status}");
            }
            assert!(Instant::now() < deadline, "prometheus not ready in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Prometheus over the synthetic warehouse's series in `layout`, and the time of their
/// last sample (queries are evaluated there).
pub(super) struct Loaded {
    prometheus: Prometheus,
    client: reqwest::Client,
    end: i64,
    families: BTreeSet<String>,
    _dir: tempfile::TempDir,
}

pub(super) async fn load(tables: &[Table], layout: Layout) -> Loaded {
    let dir = tempfile::tempdir().expect("temp dir");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let end = now - now % synthetic::STEP_SECONDS - 2 * synthetic::STEP_SECONDS;
    let text = synthetic::openmetrics(tables, layout, end);
    let families = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let input = dir.path().join("series.om");
    std::fs::write(&input, text).expect("write series");
    let data = dir.path().join("data");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&data)
        .output()
        .expect("promtool (Debian package prometheus) must be installed: run tests/run.sh");
    assert!(
        out.status.success(),
        "promtool tsdb create-blocks-from: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut prometheus = Prometheus::start(dir.path(), &data);
    prometheus.wait_ready(&client).await;
    Loaded {
        prometheus,
        client,
        end,
        families,
        _dir: dir,
    }
}

impl Loaded {
    pub(super) async fn query(&self, promql: &str) -> Value {
        let mut url =
            url::Url::parse(&format!("{}/api/v1/query", self.prometheus.url)).expect("url");
        url.query_pairs_mut()
            .append_pair("query", promql)
            .append_pair("time", &self.end.to_string());
        let response = self.client.get(url).send().await.expect("query Prometheus");
        response.json().await.expect("Prometheus answers JSON")
    }

    /// The result vector of `promql`: labels (without `__name__`) and value.
    pub(super) async fn vector(&self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let answer = self.query(promql).await;
        assert_eq!(answer["status"], "success", "{promql}: {answer}");
        answer["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| *k != "__name__")
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                let value = r["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (labels, value)
            })
            .collect()
    }

    /// Whether every metric `expr` names is one the synthetic series have (and it names one).
    pub(super) fn synthesized(&self, expr: &str) -> bool {
        let names = metric_names(expr);
        !names.is_empty() && names.iter().all(|n| self.families.contains(n))
    }

    /// The metrics `expr` names that the synthetic series lack.
    pub(super) fn not_synthesized(&self, expr: &str) -> Vec<String> {
        metric_names(expr)
            .into_iter()
            .filter(|n| !self.families.contains(n))
            .collect()
    }
}

/// The `hive_…` metric names in a PromQL expression.
pub(super) fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("hive_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}
