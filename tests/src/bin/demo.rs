//! The local demo of the whole loop, on loopback: tables full of small files (a CDP 3.1.3000
//! MetaStore on the local MariaDB with a `file:` warehouse of real text and Parquet files,
//! and real tables created through Spark's Thrift Server), the exporter, Prometheus
//! evaluating `alerts/` with demo thresholds, Alertmanager routing merge alerts to the agent,
//! and the agent merging every table it is alerted about: the `demo` cluster's natively, the
//! Spark tables natively or through Spark. It says first what it creates on this machine,
//! prints the URLs, then every alert that fires, every merge and every alert not acted on
//! (with the reason), until Ctrl-C; then a before/after summary per table.
//! Run it with `tests/demo.sh`, which installs and starts what it needs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use std::collections::{BTreeMap, BTreeSet};

use hive_smallfiles_agent::hiveserver2::Hs2Session;
use hive_smallfiles_tests::metastore_fixture::{
    DbKind, FixtureDb, FixtureTable, Format, SchemaVersion,
};
use hive_smallfiles_tests::samples;
use hive_smallfiles_tests::spark;
use hive_smallfiles_tests::stack::{Ports, Stack, StackOptions, query};
use hive_smallfiles_tests::warehouse::Warehouse;
use tokio_util::sync::CancellationToken;

const DEMO_DB: &str = "hive_smallfiles_demo";
/// The Spark database whose tables the agent merges.
const SPARK_DB: &str = "hsf_demo";

fn demo_dir() -> PathBuf {
    std::env::var_os("HSF_DEMO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("hive-smallfiles-demo"))
}

/// Daily-partitioned tables as an ingestion job leaves them: many small files per day.
fn generated_tables(w: &Warehouse) -> anyhow::Result<Vec<FixtureTable>> {
    let mut tables = Vec::new();
    let mut seed: u64 = 42;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed >> 33
    };
    for (i, name) in [
        "clicks",
        "impressions",
        "sessions",
        "orders_raw",
        "payments",
        "logins",
        "searches",
        "app_events",
    ]
    .iter()
    .enumerate()
    {
        let format = if i % 2 == 0 {
            Format::Text
        } else {
            Format::Parquet
        };
        let rel = format!("ods.db/{name}");
        let mut t = FixtureTable::new("ods", name, format, &w.uri(&rel))
            .partitioned_by(&[("dt", "string")]);
        if format == Format::Parquet {
            // The columns of the sample files.
            t.columns = vec![
                ("id".to_owned(), "bigint".to_owned()),
                ("value".to_owned(), "double".to_owned()),
                ("name".to_owned(), "string".to_owned()),
            ];
        }
        let mut first_id = 0_i64;
        for day in 1..=20 {
            let dt = format!("2024-03-{day:02}");
            t = t.partition(&[&dt]);
            let dir = format!("{rel}/{}", t.part_name(&[&dt]));
            let files = 5 + next() % (10 * (i as u64 + 1));
            for f in 0..files {
                let file = format!("{dir}/part-{f:05}");
                if format == Format::Parquet {
                    // Real Parquet files (the agent merges them natively), 20-2,000 rows.
                    let rows = 20 + usize::try_from(next() % 1_980).unwrap_or(0);
                    let path = w.mkdir(&dir)?.join(format!("part-{f:05}.snappy.parquet"));
                    std::fs::write(&path, samples::parquet_file(first_id, rows, name))?;
                    first_id += i64::try_from(rows).unwrap_or(0);
                } else {
                    w.file(&file, 200 + next() % 60_000)?;
                }
            }
        }
        tables.push(t);
    }
    // One healthy table for contrast: a few files per partition.
    let mut t = FixtureTable::new(
        "dw",
        "daily_summary",
        Format::Orc,
        &w.uri("dw.db/daily_summary"),
    )
    .partitioned_by(&[("dt", "string")]);
    for day in 1..=20 {
        let dt = format!("2024-03-{day:02}");
        t = t.partition(&[&dt]);
        w.file(
            &format!("dw.db/daily_summary/{}/000000_0", t.part_name(&[&dt])),
            400_000,
        )?;
    }
    tables.push(t);
    // A view: listed as skipped by the exporter, never merged.
    tables.push(
        FixtureTable::new("dw", "daily_summary_v", Format::Text, "")
            .view("SELECT * FROM dw.daily_summary"),
    );
    Ok(tables)
}

/// The `[[cluster]]` block of the `demo` cluster: the generated MetaStore and warehouse.
fn demo_cluster(db: &FixtureDb, w: &Warehouse, extra: &str) -> String {
    let ms = db.metastore_config();
    format!(
        "[[cluster]]\nname = \"demo\"\n{extra}[cluster.metastore]\nurl = \"mysql://{}@{}:{}/{DEMO_DB}\"\n\
         catalogs = [\"hive\", \"spark\"]\n[cluster.storage]\ntype = \"local\"\nroot = \"{}\"\n",
        ms.user,
        ms.host,
        ms.port,
        w.root().display()
    )
}

/// Creates the Spark tables (text and Parquet, a few small files per partition).
async fn create_spark_tables() -> anyhow::Result<()> {
    let mut s = Hs2Session::open(&spark::hs2_config("demo"))
        .await
        .context("connecting to the Spark Thrift Server (tests/scripts/spark-thrift.sh start)")?;
    let never = CancellationToken::new();
    for sql in [
        format!("DROP DATABASE IF EXISTS {SPARK_DB} CASCADE"),
        format!("CREATE DATABASE {SPARK_DB}"),
        format!(
            "CREATE TABLE {SPARK_DB}.clicks (id INT, url STRING) PARTITIONED BY (dt STRING) STORED AS TEXTFILE"
        ),
        format!(
            "CREATE TABLE {SPARK_DB}.orders (id BIGINT, amount DECIMAL(10,2)) PARTITIONED BY (dt STRING) STORED AS PARQUET"
        ),
    ] {
        s.execute_update(&sql, &never).await?;
    }
    for day in ["2024-03-01", "2024-03-02"] {
        for i in 0..5 {
            s.execute_update(&format!("INSERT INTO {SPARK_DB}.clicks PARTITION (dt='{day}') VALUES ({i}, '/a'), ({i}, '/b')"), &never).await?;
        }
    }
    for i in 0..5 {
        s.execute_update(&format!("INSERT INTO {SPARK_DB}.orders PARTITION (dt='2024-03-01') VALUES ({i}, {i}.50), ({i}, 1.25)"), &never).await?;
    }
    let _ = s.close().await;
    Ok(())
}

fn ports() -> Ports {
    std::env::var("HSF_DEMO_PORTS")
        .ok()
        .and_then(|v| {
            let p: Vec<u16> = v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            (p.len() == 4).then(|| Ports {
                exporter: p[0],
                agent: p[1],
                prometheus: p[2],
                alertmanager: p[3],
            })
        })
        .unwrap_or(Ports {
            exporter: 9878,
            agent: 9879,
            prometheus: 9090,
            alertmanager: 9093,
        })
}

/// `cluster/database.table` of a sample's labels.
fn table_of(labels: &serde_json::Value) -> String {
    format!(
        "{}/{}.{}",
        labels["cluster"].as_str().unwrap_or(""),
        labels["database"].as_str().unwrap_or(""),
        labels["table"].as_str().unwrap_or("")
    )
}

/// A Prometheus query's samples as `label → value`, keyed by `key`.
async fn samples_by(
    client: &reqwest::Client,
    prometheus: &str,
    q: &str,
    key: fn(&serde_json::Value) -> String,
) -> BTreeMap<String, f64> {
    query(client, prometheus, q)
        .await
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let v = s["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            (key(&s["metric"]), v)
        })
        .collect()
}

/// Debian's Prometheus ships without the new web UI: its pages live under `/classic/`.
async fn alerts_page(client: &reqwest::Client, prometheus: &str) -> String {
    for path in ["/alerts", "/classic/alerts"] {
        let url = format!("{prometheus}{path}");
        if client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return url;
        }
    }
    format!("{prometheus}/classic/alerts")
}

/// What happened to one table during the demo.
#[derive(Debug, Default)]
struct TableSummary {
    alerted: bool,
    merges: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = demo_dir();
    let ports = ports();
    println!(
        "This demo creates, and leaves in place after Ctrl-C:\n\
         \x20 * the MariaDB databases {DEMO_DB} (a generated CDP 3.1.3000 MetaStore) and {} (Spark's metastore),\n\
         \x20 * {} (warehouse, configurations, logs) and {} (Spark's warehouse and server).\n\
         It listens on 127.0.0.1: exporter {}, agent {}, Prometheus {}, Alertmanager {} (HSF_DEMO_PORTS)\n\
         and uses Spark's Thrift Server on {} (HSF_SPARK_PORT).\n\
         Remove it all: mariadb -h 127.0.0.1 -u root -e 'DROP DATABASE {DEMO_DB}; DROP DATABASE {}'; rm -rf {} {}\n",
        spark::metastore_db(),
        dir.display(),
        spark::warehouse()
            .parent()
            .unwrap_or(&spark::warehouse())
            .display(),
        ports.exporter,
        ports.agent,
        ports.prometheus,
        ports.alertmanager,
        spark::port(),
        spark::metastore_db(),
        dir.display(),
        spark::warehouse()
            .parent()
            .unwrap_or(&spark::warehouse())
            .display(),
    );
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cleaning {}", dir.display()))?;
    }
    let w = Warehouse::new(dir.join("warehouse"))?;
    println!("Creating the demo warehouse in {} ...", w.root().display());
    let tables = generated_tables(&w)?;
    println!("Creating the demo MetaStore database {DEMO_DB} on MariaDB (CDP 3.1.3000 schema) ...");
    let db = FixtureDb::create(DbKind::Mysql, SchemaVersion::Cdp3_1_3000, DEMO_DB)
        .await
        .context("creating the demo MetaStore on MariaDB at 127.0.0.1:3306 (is it running? tests/demo.sh starts it)")?;
    db.insert(&tables).await?;

    println!("Creating tables with small files through Spark's Thrift Server ...");
    create_spark_tables().await?;
    let ms_url = format!("mysql://root@127.0.0.1:3306/{}", spark::metastore_db());
    let wh = spark::warehouse().display().to_string();
    let spark_cluster = |engine: &str| {
        format!(
            "[[cluster]]\nname = \"spark\"\n{engine}[cluster.metastore]\nurl = \"{ms_url}\"\n[cluster.storage]\ntype = \"local\"\nroot = \"{wh}\"\n"
        )
    };
    let exporter_clusters = format!(
        "{}\n{}",
        // Tables written seconds ago count as cold at once (the agent's quiet period is 0 too).
        demo_cluster(&db, &w, "scan_interval = \"5s\"\nquiet_period = \"0s\"\n"),
        spark_cluster(&format!(
            "include = [\"{SPARK_DB}.*\"]\nscan_interval = \"5s\"\nquiet_period = \"0s\"\n"
        ))
    );
    // The demo cluster has no engine: its text and Parquet tables are merged natively.
    let agent_clusters = format!(
        "{}\n{}[cluster.hiveserver2]\nhost = \"127.0.0.1\"\nport = {}\n",
        demo_cluster(&db, &w, "engine = \"hive\"\nexecutor = \"native\"\n"),
        spark_cluster("engine = \"spark\"\n"),
        spark::port()
    );
    let token = format!("demo-{:016x}", rand::random::<u64>());
    let options = StackOptions {
        ports,
        exporter_clusters,
        agent_clusters,
        token: token.clone(),
    };
    std::fs::write(dir.join("exporter.toml"), &options.exporter_clusters)?;

    println!(
        "\n$ hive-smallfiles-exporter --config.file {} scan --once\n",
        dir.join("exporter.toml").display()
    );
    // The exporter's command line, run in this process.
    let cli = <hive_smallfiles_exporter::cli::Cli as clap::Parser>::try_parse_from([
        "hive-smallfiles-exporter".into(),
        "--config.file".into(),
        dir.join("exporter.toml").into_os_string(),
        "scan".into(),
        "--once".into(),
    ])?;
    let code = hive_smallfiles_exporter::cli::run(cli)
        .await
        .map_err(|e| anyhow::anyhow!("the scan failed: {e}"))?;
    anyhow::ensure!(
        code == std::process::ExitCode::SUCCESS,
        "the scan failed: {code:?}"
    );

    println!("Starting the exporter, the agent, Prometheus and Alertmanager ...");
    // The exporter and the agent run in this process; their logs go to a file.
    std::fs::create_dir_all(dir.join("stack"))?;
    let log = std::fs::File::create(dir.join("stack/services.log"))?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(log))
        .init();
    let started = std::time::Instant::now();
    let stack = Stack::start(&dir.join("stack"), &options).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let token_file = stack.dir.join("token");
    println!(
        "\n  exporter      {}/metrics\n  agent         {}/api/v1/merges and {}/metrics\n                (bearer token: curl -H \"Authorization: Bearer $(cat {})\" …)\n  prometheus    {}\n  alertmanager  {}/api/v2/alerts   (Debian's package has no web UI; or: amtool --alertmanager.url={} alert)\n  configs, logs {}\n",
        stack.exporter_url,
        stack.agent_url,
        stack.agent_url,
        token_file.display(),
        alerts_page(&client, &stack.prometheus_url).await,
        stack.alertmanager_url,
        stack.alertmanager_url,
        stack.dir.display()
    );
    println!(
        "Waiting for HiveTableSmallFiles alerts (demo thresholds: more than 2 excess files) and merges. Ctrl-C stops.\n"
    );
    let mut summary: BTreeMap<String, TableSummary> = BTreeMap::new();
    let mut seen_jobs = BTreeSet::new();
    let mut dropped_seen: BTreeMap<String, f64> = BTreeMap::new();
    let watch = async {
        loop {
            for a in query(
                &client,
                &stack.prometheus_url,
                "ALERTS{alertname=\"HiveTableSmallFiles\",alertstate=\"firing\"}",
            )
            .await
            .unwrap_or_default()
            {
                let key = table_of(&a["metric"]);
                let t = summary.entry(key.clone()).or_default();
                if !t.alerted {
                    t.alerted = true;
                    println!("alert firing    {key}");
                }
            }
            // Alerts the agent did not turn into a job, with the reason it counted.
            let dropped = samples_by(
                &client,
                &stack.prometheus_url,
                "sum by (reason) (hive_merge_intake_dropped_total)",
                |m| m["reason"].as_str().unwrap_or("").to_owned(),
            )
            .await;
            for (reason, n) in dropped {
                let before = dropped_seen.insert(reason.clone(), n).unwrap_or(0.0);
                if n > before {
                    println!(
                        "alert not acted on: {} alert(s) dropped by the agent, reason {reason}",
                        n - before
                    );
                }
            }
            let jobs: serde_json::Value = match client
                .get(format!("{}/api/v1/merges", stack.agent_url))
                .bearer_auth(&token)
                .send()
                .await
            {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            };
            for j in jobs
                .as_array()
                .into_iter()
                .flatten()
                .filter(|j| j["state"] == "finished")
            {
                if !seen_jobs.insert(j["id"].as_u64().unwrap_or(0)) {
                    continue;
                }
                let key = table_of(&j["item"]["key"]);
                let o = &j["outcome"];
                let result = o["result"].as_str().unwrap_or("?");
                let detail = match result {
                    "merged" => format!(
                        "({}) {} partitions, files {} -> {}",
                        o["strategy"].as_str().unwrap_or("?"),
                        o["partitions"],
                        o["files_before"],
                        o["files_after"]
                    ),
                    _ => format!(
                        "{}: {}",
                        o["reason"].as_str().or(o["kind"].as_str()).unwrap_or("?"),
                        o["detail"]
                            .as_str()
                            .or(o["error"].as_str())
                            .unwrap_or("")
                            .chars()
                            .take(160)
                            .collect::<String>()
                    ),
                };
                if result == "merged" {
                    println!("merged          {key}: {detail}");
                } else {
                    println!("not merged      {key}: {result} ({detail})");
                }
                summary
                    .entry(key)
                    .or_default()
                    .merges
                    .push(format!("{result} {detail}"));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    };
    tokio::select! {
        () = watch => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    println!("\nCollecting the final numbers (the exporter's next scan, a few seconds) ...");
    tokio::time::sleep(Duration::from_secs(7)).await;
    let window = started.elapsed().as_secs().max(60);
    let before = samples_by(
        &client,
        &stack.prometheus_url,
        &format!("max_over_time(hive_table_files[{window}s])"),
        table_of,
    )
    .await;
    let after = samples_by(&client, &stack.prometheus_url, "hive_table_files", table_of).await;
    println!(
        "\nSummary: files per table (the exporter's numbers) before the demo's merges and now\n"
    );
    println!(
        "  {:<44} {:>8} {:>8}  what happened",
        "table", "before", "now"
    );
    for (table, files_before) in &before {
        let now = after.get(table).copied().unwrap_or(f64::NAN);
        let t = summary.get(table);
        let what = match t {
            Some(t) if !t.merges.is_empty() => t.merges.join("; "),
            Some(t) if t.alerted => "alerted, no merge finished yet".to_owned(),
            _ => "no alert (not worth merging)".to_owned(),
        };
        println!("  {table:<44} {files_before:>8} {now:>8}  {what}");
    }
    println!("\nStopping the exporter, the agent, Prometheus and Alertmanager ...");
    stack.stop().await;
    Ok(())
}
