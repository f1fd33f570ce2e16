//! Checks of the Grafana dashboards (`dashboards/*.json`): their JSON model, and every PromQL
//! expression (panels, annotations, variable queries) run by a real Prometheus server (Debian
//! package `prometheus`, which also provides promtool) over synthetic series of the exporter
//! backfilled into its TSDB, in two layouts: every table with per-table series from one
//! exporter, and per-table series capped with two shards (one with two HA replicas). Every
//! query must be accepted, those over synthesized families must return data, and the panels
//! whose numbers follow from the synthetic warehouse must show them in both layouts.

mod prometheus;
mod synthetic;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use prometheus::{Loaded, load, metric_names};
use synthetic::{Layout, Table};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn dashboards() -> Vec<(PathBuf, Value)> {
    let dir = repo_root().join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
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

/// Grafana's variables replaced by values Prometheus accepts: every cluster, database and
/// table.
fn substitute(expr: &str) -> String {
    substitute_for(expr, ".*", ".*", ".*")
}

/// Grafana's variables replaced, with the given cluster, database and table.
fn substitute_for(expr: &str, cluster: &str, database: &str, table: &str) -> String {
    [
        ("${__rate_interval}", "5m"),
        ("$__rate_interval", "5m"),
        ("${__interval}", "1m"),
        ("$__interval", "1m"),
        ("${__range}", "1h"),
        ("$__range", "1h"),
        ("${cluster}", cluster),
        ("$cluster", cluster),
        ("${database}", database),
        ("$database", database),
        ("${table}", table),
        ("$table", table),
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

/// The expression of target `ref_id` of the panel titled `title` in dashboard `uid`.
fn panel_expr(uid: &str, title: &str, ref_id: &str) -> String {
    let dashboards = dashboards();
    let (_, d) = dashboards
        .iter()
        .find(|(_, d)| d["uid"] == uid)
        .unwrap_or_else(|| panic!("no dashboard {uid}"));
    let panels: Vec<&Value> = all_panels(d)
        .into_iter()
        .filter(|p| p["title"] == title && p["type"] != "row")
        .collect();
    assert_eq!(panels.len(), 1, "{uid}: panels titled {title:?}");
    let panel = panels[0];
    panel["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["refId"] == ref_id)
        .and_then(|t| t["expr"].as_str())
        .unwrap_or_else(|| panic!("{uid}: {title:?} has no target {ref_id}"))
        .to_owned()
}

fn assert_close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-6 * want.abs().max(1.0),
        "{what}: got {got}, want {want}"
    );
}

/// The metrics the dashboards may name without synthetic series: scan health, the
/// MetaStore and NameNodes, the build, and the merge agent. Every other name (the table,
/// database, partition and series families) must be one the synthetic series have, so that a
/// misspelt name fails.
const NOT_SYNTHESIZED: &[&str] = &[
    "hive_scan_",
    "hive_scans_total",
    "hive_cluster_scan_interval_seconds",
    "hive_metastore_",
    "hive_hdfs_",
    "hive_exporter_build_info",
    "hive_merge_",
];

/// Every dashboard expression is accepted; those over synthesized families (annotations
/// aside: they mark changes) return data.
async fn every_query_runs(p: &Loaded) {
    let bad = p.query("sum by (cluster (x)").await;
    assert_eq!(bad["status"], "error", "{bad}");
    assert_eq!(bad["errorType"], "bad_data", "{bad}");

    let exprs: Vec<(String, String)> = dashboards()
        .iter()
        .flat_map(|(path, d)| expressions(path, d))
        .collect();
    assert!(exprs.len() > 50, "only {} expressions", exprs.len());
    let mut failures = Vec::new();
    let mut with_data = 0;
    for (origin, expr) in &exprs {
        let promql = substitute(expr);
        assert!(
            !promql.contains('$'),
            "{origin}: unsubstituted variable in {promql}"
        );
        for name in p.not_synthesized(expr) {
            if !NOT_SYNTHESIZED
                .iter()
                .any(|prefix| name.starts_with(prefix))
            {
                failures.push(format!("{origin}: unknown metric {name}"));
            }
        }
        let answer = p.query(&promql).await;
        if answer["status"] != "success" {
            failures.push(format!("{origin}: {promql}\n    {answer}"));
            continue;
        }
        let empty = answer["data"]["result"]
            .as_array()
            .is_none_or(|r| r.is_empty());
        if !empty {
            with_data += 1;
        } else if p.synthesized(expr) && !origin.contains(": annotation ") {
            failures.push(format!("{origin}: no data for {promql}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(with_data > 40, "only {with_data} expressions returned data");
}

/// The panels whose numbers follow from the synthetic warehouse.
async fn panels_show_the_warehouse(p: &Loaded, tables: &[Table], layout: Layout) {
    let sum = |f: &dyn Fn(&Table) -> f64| tables.iter().map(f).sum::<f64>();
    let overview_total = |title: &'static str, want: f64| async move {
        let got = p
            .vector(&substitute(&panel_expr("hsf-overview", title, "A")))
            .await;
        assert_eq!(got.len(), 1, "{layout:?}: {title}: {got:?}");
        assert_close(&format!("{layout:?}: {title}"), got[0].1, want);
    };
    overview_total("Clusters", 2.0).await;
    overview_total("Tables", tables.len() as f64).await;
    overview_total("Files", sum(&|t| t.files)).await;
    overview_total("Small files", sum(&|t| t.small_files)).await;
    overview_total("Excess files", sum(&|t| t.excess_files)).await;
    overview_total("Bytes", sum(&|t| t.size_bytes)).await;
    overview_total("Small-file bytes", sum(&|t| t.small_file_bytes())).await;
    overview_total("Merge-able excess files", sum(&|t| t.cold_excess_files)).await;
    overview_total(
        "Small-file share",
        sum(&|t| t.small_files) / sum(&|t| t.files),
    )
    .await;

    // Per cluster (and per database): from the rollups, whatever has per-table series.
    let by = |label: &'static str, title: &'static str, ref_id: &'static str| async move {
        p.vector(&substitute(&panel_expr("hsf-overview", title, ref_id)))
            .await
            .into_iter()
            .map(|(l, v)| (l.get(label).cloned().unwrap_or_default(), v))
            .collect::<BTreeMap<String, f64>>()
    };
    let per_cluster = |f: &dyn Fn(&Table) -> f64| {
        let mut m = BTreeMap::new();
        for t in tables {
            *m.entry(t.cluster.clone()).or_insert(0.0) += f(t);
        }
        m
    };
    let check_map = |what: &str, got: BTreeMap<String, f64>, want: BTreeMap<String, f64>| {
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{layout:?}: {what}"
        );
        for (k, w) in &want {
            assert_close(&format!("{layout:?}: {what} {k}"), got[k], *w);
        }
    };
    check_map(
        "small files by cluster",
        by("cluster", "Small files by cluster", "A").await,
        per_cluster(&|t| t.small_files),
    );
    check_map(
        "hot small files by cluster",
        by("cluster", "Small files: cold vs hot", "B").await,
        per_cluster(&|t| t.small_files - t.cold_small_files),
    );
    check_map(
        "small files a week ahead by cluster",
        by("cluster", "Small files now and a week ahead", "B").await,
        per_cluster(&Table::small_files_in_a_week),
    );
    let mut per_db = BTreeMap::new();
    for t in tables {
        *per_db.entry(t.database.clone()).or_insert(0.0) += t.growth_per_hour * 24.0;
    }
    let got = p
        .vector(&substitute(&panel_expr(
            "hsf-overview",
            "Small files added per day, by database (top 10)",
            "A",
        )))
        .await;
    assert_eq!(got.len(), 4, "{layout:?}: growth by database: {got:?}");
    for (l, v) in &got {
        let want: f64 = tables
            .iter()
            .filter(|t| t.cluster == l["cluster"] && t.database == l["database"])
            .map(|t| t.growth_per_hour * 24.0)
            .sum();
        assert_close(&format!("{layout:?}: growth of {l:?}"), *v, want);
    }
    let classes = by("size_class", "Files by size class", "A").await;
    assert_close(
        &format!("{layout:?}: size class under_1mib"),
        classes["under_1mib"],
        sum(&|t| t.small_files),
    );

    // Per-table panels: the tables with per-table series.
    let exported = synthetic::exported(tables, layout);
    let top = p
        .vector(&substitute(&panel_expr(
            "hsf-overview",
            "Top tables by excess files",
            "A",
        )))
        .await;
    let want: BTreeSet<String> = exported
        .iter()
        .map(|t| format!("{}.{}.{}", t.cluster, t.database, t.table))
        .collect();
    let got: BTreeSet<String> = top
        .iter()
        .map(|(l, _)| format!("{}.{}.{}", l["cluster"], l["database"], l["table"]))
        .collect();
    assert_eq!(got, want, "{layout:?}: top tables");
    assert_eq!(top.len(), want.len(), "{layout:?}: a table twice: {top:?}");
    let projected = p
        .vector(&substitute(&panel_expr(
            "hsf-overview",
            "Tables projected to exceed 100k small files within a week",
            "B",
        )))
        .await;
    let orders = tables.iter().find(|t| t.table == "orders").expect("orders");
    assert_eq!(projected.len(), 1, "{layout:?}: projected: {projected:?}");
    assert_eq!(projected[0].0["table"], "orders");
    assert_close(
        &format!("{layout:?}: orders in a week"),
        projected[0].1,
        orders.small_files_in_a_week(),
    );
    let partitions = p
        .vector(&substitute(&panel_expr(
            "hsf-overview",
            "Worst partitions by excess files",
            "A",
        )))
        .await;
    let got: BTreeSet<(String, String)> = partitions
        .iter()
        .map(|(l, _)| {
            (
                format!("{}.{}.{}", l["cluster"], l["database"], l["table"]),
                l["partition"].clone(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = synthetic::partitions_with_series(tables, layout)
        .into_iter()
        .collect();
    assert_eq!(got, want, "{layout:?}: worst partitions");
    assert_eq!(partitions.len(), want.len(), "{layout:?}: {partitions:?}");

    // The table dashboard on c1.sales.orders (per-table series in both layouts).
    let one = |title: &'static str, ref_id: &'static str| async move {
        let expr = substitute_for(
            &panel_expr("hsf-table", title, ref_id),
            "c1",
            "sales",
            "orders",
        );
        let got = p.vector(&expr).await;
        assert_eq!(got.len(), 1, "{layout:?}: table {title}: {got:?}");
        got[0].1
    };
    assert_close("table Files", one("Files", "A").await, orders.files);
    assert_close(
        "table Small-file bytes",
        one("Small-file bytes", "A").await,
        orders.small_file_bytes(),
    );
    assert_close(
        "table Cold partitions",
        one("Cold partitions", "A").await,
        orders.cold_partitions,
    );
    assert_close(
        "table Cold excess files",
        one("Cold excess files", "A").await,
        orders.cold_excess_files,
    );
    assert_close(
        "table Small files in a week",
        one("Small files in a week", "A").await,
        orders.small_files_in_a_week(),
    );
    assert_close(
        "table hot small files",
        one("Small files: cold vs hot", "B").await,
        orders.small_files - orders.cold_small_files,
    );
    let rows = p
        .vector(&substitute_for(
            &panel_expr("hsf-table", "Partition drill-down", "A"),
            "c1",
            "sales",
            "orders",
        ))
        .await;
    let mut got: Vec<(String, f64)> = rows
        .iter()
        .map(|(l, v)| (l["partition"].clone(), *v))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let want: Vec<(String, f64)> = orders
        .top_partitions
        .iter()
        .map(|p| (p.name.clone(), p.excess_files))
        .collect();
    assert_eq!(got, want, "{layout:?}: partitions of orders");

    // The exporter dashboard: tables per shard, HA replicas once.
    let shards = p
        .vector(&substitute(&panel_expr(
            "hsf-exporter",
            "Tables by shard",
            "A",
        )))
        .await;
    let mut want = BTreeMap::new();
    for t in tables {
        let shard = match layout {
            Layout::AllExported => "0/1".to_owned(),
            Layout::CappedSharded => format!("{}/2", t.shard),
        };
        *want.entry((t.cluster.clone(), shard)).or_insert(0.0) += 1.0;
    }
    let got: BTreeMap<(String, String), f64> = shards
        .into_iter()
        .map(|(l, v)| ((l["cluster"].clone(), l["shard"].clone()), v))
        .collect();
    assert_eq!(got, want, "{layout:?}: tables by shard");
}

#[tokio::test]
async fn dashboards_with_every_table_exported() {
    let tables = synthetic::warehouse();
    let p = load(&tables, Layout::AllExported).await;
    every_query_runs(&p).await;
    panels_show_the_warehouse(&p, &tables, Layout::AllExported).await;
}

#[tokio::test]
async fn dashboards_with_capped_tables_and_two_shards() {
    let tables = synthetic::warehouse();
    // The layout must actually leave tables out, or this test is the other one.
    assert!(synthetic::exported(&tables, Layout::CappedSharded).len() < tables.len() / 2);
    let p = load(&tables, Layout::CappedSharded).await;
    every_query_runs(&p).await;
    panels_show_the_warehouse(&p, &tables, Layout::CappedSharded).await;
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
    assert_eq!(
        metric_names("sum(max by (a) (hive_x{b=\"c\"})) / hive_y_total"),
        BTreeSet::from(["hive_x".to_owned(), "hive_y_total".to_owned()])
    );
}
