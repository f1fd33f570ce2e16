//! Checks of the Grafana dashboards (`dashboards/*.json`) and the deployment files
//! (`deploy/`): the dashboards' JSON model, every YAML file's syntax, and every PromQL
//! expression of the dashboards (panels, annotations, variable queries) against a real
//! Prometheus server (Debian package `prometheus`, which also provides promtool).

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// Files under `dir` (recursively) whose name ends with one of `suffixes`, sorted.
fn files(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| suffixes.iter().any(|s| n.ends_with(s)))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn dashboards() -> Vec<(PathBuf, Value)> {
    let files = files(&repo_root().join("dashboards"), &[".json"]);
    assert!(
        files.len() >= 4,
        "expected the four dashboards, found {files:?}"
    );
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read dashboard");
            let json: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", p.display()));
            (p, json)
        })
        .collect()
}

/// Every panel, rows' nested panels included.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for p in panels.as_array().into_iter().flatten() {
            out.push(p);
            if let Some(children) = p.get("panels") {
                walk(children, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn is_prometheus_datasource(ds: &Value) -> bool {
    ds.get("type").and_then(Value::as_str) == Some("prometheus")
        && ds.get("uid").and_then(Value::as_str) == Some("${datasource}")
}

/// Grafana's variables replaced by values Prometheus accepts.
fn substitute(expr: &str) -> String {
    [
        ("${__rate_interval}", "5m"),
        ("$__rate_interval", "5m"),
        ("${__interval}", "1m"),
        ("$__interval", "1m"),
        ("${__range}", "1h"),
        ("$__range", "1h"),
        ("${cluster}", ".*"),
        ("$cluster", ".*"),
        ("${database}", ".*"),
        ("$database", ".*"),
        ("${table}", ".*"),
        ("$table", ".*"),
    ]
    .iter()
    .fold(expr.to_owned(), |e, (from, to)| e.replace(from, to))
}

/// The PromQL of a Grafana Prometheus variable query: `label_values(m{…}, l)` → `m{…}`;
/// `label_values(l)` and other helpers without a selector → `None`.
fn variable_promql(query: &str) -> Option<String> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, _label) = inner.rsplit_once(',')?;
    Some(selector.trim().to_owned())
}

/// Every PromQL expression of a dashboard with where it comes from.
fn expressions(path: &Path, dashboard: &Value) -> Vec<(String, String)> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut out = Vec::new();
    for p in all_panels(dashboard) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_default();
            out.push((format!("{name}: panel {:?}", p["title"]), expr.to_owned()));
        }
    }
    for a in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(expr) = a.get("expr").and_then(Value::as_str) {
            out.push((
                format!("{name}: annotation {:?}", a["name"]),
                expr.to_owned(),
            ));
        }
    }
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if v["type"] != "query" {
            continue;
        }
        let query = v["query"]
            .get("query")
            .unwrap_or(&v["query"])
            .as_str()
            .unwrap_or_default();
        if let Some(expr) = variable_promql(query) {
            out.push((format!("{name}: variable {:?}", v["name"]), expr));
        }
    }
    out
}

#[test]
fn dashboards_follow_the_json_model() {
    let mut uids = BTreeSet::new();
    for (path, d) in dashboards() {
        let name = path.display().to_string();
        assert!(
            d["schemaVersion"].as_u64().is_some_and(|v| v >= 39),
            "{name}: schemaVersion"
        );
        assert!(d.get("__inputs").is_none(), "{name}: __inputs present");
        assert!(
            d.get("id").is_none_or(Value::is_null),
            "{name}: provisioned dashboards carry no id"
        );
        let uid = d["uid"].as_str().expect("uid");
        assert!(
            uid.starts_with("hsf-") && uid.len() <= 40,
            "{name}: uid {uid}"
        );
        assert!(uids.insert(uid.to_owned()), "{name}: duplicate uid {uid}");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));

        let vars = d["templating"]["list"].as_array().expect("templating.list");
        let ds = vars
            .iter()
            .find(|v| v["type"] == "datasource" && v["name"] == "datasource")
            .unwrap_or_else(|| panic!("{name}: no datasource variable"));
        assert_eq!(ds["query"], "prometheus", "{name}: datasource variable");
        for v in vars.iter().filter(|v| v["type"] == "query") {
            assert!(
                is_prometheus_datasource(&v["datasource"]),
                "{name}: variable {} datasource",
                v["name"]
            );
        }
        for a in d["annotations"]["list"].as_array().into_iter().flatten() {
            if a.get("expr").is_some() {
                assert!(
                    is_prometheus_datasource(&a["datasource"]),
                    "{name}: annotation {} datasource",
                    a["name"]
                );
            }
        }

        let panels = all_panels(&d);
        assert!(!panels.is_empty(), "{name}: no panels");
        let mut ids = BTreeSet::new();
        for p in panels {
            let title = &p["title"];
            let id = p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: {title} has no id"));
            assert!(ids.insert(id), "{name}: duplicate panel id {id}");
            let kind = p["type"].as_str().expect("panel type");
            assert!(
                !["graph", "singlestat", "table-old"].contains(&kind),
                "{name}: {title} is an Angular panel ({kind})"
            );
            assert!(
                [
                    "timeseries",
                    "stat",
                    "table",
                    "bargauge",
                    "gauge",
                    "piechart",
                    "heatmap",
                    "text",
                    "row"
                ]
                .contains(&kind),
                "{name}: {title} has an unexpected type {kind}"
            );
            let pos = &p["gridPos"];
            let (x, w) = (pos["x"].as_u64(), pos["w"].as_u64());
            assert!(
                x.zip(w).is_some_and(|(x, w)| w > 0 && x + w <= 24),
                "{name}: {title} gridPos {pos}"
            );
            if kind == "row" || kind == "text" {
                continue;
            }
            assert!(
                is_prometheus_datasource(&p["datasource"]),
                "{name}: {title} datasource {}",
                p["datasource"]
            );
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name}: {title} has no targets");
            let mut ref_ids = BTreeSet::new();
            for t in targets {
                assert!(
                    t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                    "{name}: {title} has a target without expr"
                );
                assert!(
                    ref_ids.insert(t["refId"].as_str().expect("refId")),
                    "{name}: {title} duplicate refId"
                );
                if let Some(ds) = t.get("datasource") {
                    assert!(is_prometheus_datasource(ds), "{name}: {title} target ds");
                }
            }
        }
    }
    let expected = ["hsf-agent", "hsf-exporter", "hsf-overview", "hsf-table"];
    assert!(
        expected.iter().all(|u| uids.contains(*u)),
        "dashboards {uids:?}"
    );
}

#[test]
fn deploy_yaml_files_parse() {
    let files = files(&repo_root().join("deploy"), &[".yml", ".yaml"]);
    assert!(files.len() >= 5, "YAML files under deploy/: {files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read YAML");
        let mut documents = 0;
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value = <serde_norway::Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if !value.is_null() {
                documents += 1;
            }
            if path.components().any(|c| c.as_os_str() == "kubernetes") && !value.is_null() {
                let kind = value.get("kind").and_then(serde_norway::Value::as_str);
                assert!(
                    kind.is_some(),
                    "{}: a document without kind",
                    path.display()
                );
                if kind != Some("Kustomization") {
                    assert!(
                        value.get("apiVersion").is_some()
                            && value["metadata"].get("name").is_some(),
                        "{}: {kind:?} without apiVersion or metadata.name",
                        path.display()
                    );
                }
            }
        }
        let commented_out_only = text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
        assert!(
            documents > 0 || commented_out_only,
            "{}: empty",
            path.display()
        );
    }
}

/// A Prometheus server on a free local port with an empty configuration; killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, "{}\n").expect("write config");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package prometheus) must be installed: run tests/run.sh");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client.get(format!("{}/-/ready", self.url)).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited: {status}");
            }
            assert!(Instant::now() < deadline, "prometheus not ready in 20 s");
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

#[tokio::test]
async fn dashboard_promql_is_accepted_by_prometheus() {
    let exprs: Vec<(String, String)> = dashboards()
        .iter()
        .flat_map(|(p, d)| expressions(p, d))
        .collect();
    assert!(exprs.len() > 50, "only {} expressions", exprs.len());

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut prometheus = Prometheus::start();
    prometheus.wait_ready(&client).await;

    // A known-bad expression must be rejected, or the check proves nothing.
    let bad = query(&client, &prometheus.url, "sum by (cluster (x)").await;
    assert_eq!(bad["status"], "error", "{bad}");
    assert_eq!(bad["errorType"], "bad_data", "{bad}");

    let mut failures = Vec::new();
    for (origin, expr) in &exprs {
        let promql = substitute(expr);
        assert!(
            !promql.contains('$'),
            "{origin}: unsubstituted variable in {promql}"
        );
        let answer = query(&client, &prometheus.url, &promql).await;
        if answer["status"] != "success" {
            failures.push(format!("{origin}: {promql}\n    {answer}"));
        }
    }
    assert!(
        failures.is_empty(),
        "Prometheus rejected:\n{}",
        failures.join("\n")
    );
}

async fn query(client: &reqwest::Client, base: &str, promql: &str) -> Value {
    let mut url = url::Url::parse(&format!("{base}/api/v1/query")).expect("url");
    url.query_pairs_mut().append_pair("query", promql);
    let response = client.get(url).send().await.expect("query Prometheus");
    response.json().await.expect("Prometheus answers JSON")
}

#[test]
fn substitution_and_variable_queries() {
    assert_eq!(
        substitute(r#"rate(x{cluster=~"$cluster"}[$__rate_interval])"#),
        r#"rate(x{cluster=~".*"}[5m])"#
    );
    assert_eq!(
        variable_promql(r#"label_values(hive_table_files{cluster=~"$cluster"}, database)"#)
            .as_deref(),
        Some(r#"hive_table_files{cluster=~"$cluster"}"#)
    );
    assert_eq!(variable_promql("label_values(cluster)"), None);
}
