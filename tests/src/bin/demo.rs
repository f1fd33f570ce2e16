//! The local demo of the whole loop, on loopback: tables full of small files (a CDP 3.1.3000
//! MetaStore on the local MariaDB with a `file:` warehouse, and real tables created through
//! Spark's Thrift Server), the exporter, Prometheus evaluating `alerts/` with demo thresholds,
//! Alertmanager routing merge alerts to the agent, and the agent merging the Spark tables.
//! It prints the URLs, then every alert that fires and every merge as it happens, until
//! Ctrl-C. Run it with `tests/demo.sh`, which installs and starts what it needs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use std::collections::BTreeSet;

use hive_smallfiles_agent::hiveserver2::Hs2Session;
use hive_smallfiles_tests::metastore_fixture::{
    DbKind, FixtureDb, FixtureTable, Format, SchemaVersion,
};
use hive_smallfiles_tests::scenario::Scenario;
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
        for day in 1..=20 {
            let dt = format!("2024-03-{day:02}");
            t = t.partition(&[&dt]);
            let dir = format!("{rel}/{}", t.part_name(&[&dt]));
            let files = 5 + next() % (10 * (i as u64 + 1));
            for f in 0..files {
                w.file(&format!("{dir}/part-{f:05}"), 200 + next() % 60_000)?;
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
    Ok(tables)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = demo_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cleaning {}", dir.display()))?;
    }
    let w = Warehouse::new(dir.join("warehouse"))?;
    println!("Creating the demo warehouse in {} ...", w.root().display());
    let mut scenario = Scenario::build(&w, &|rel| w.uri(rel), true);
    scenario.tables.extend(generated_tables(&w)?);
    println!("Creating the demo MetaStore database {DEMO_DB} on MariaDB (CDP 3.1.3000 schema) ...");
    let db = FixtureDb::create(DbKind::Mysql, SchemaVersion::Cdp3_1_3000, DEMO_DB)
        .await
        .context("creating the demo MetaStore on MariaDB at 127.0.0.1:3306 (is it running? tests/demo.sh starts it)")?;
    db.insert(&scenario.tables).await?;
    let ms = db.metastore_config();
    let demo_cluster = format!(
        "[[cluster]]\nname = \"demo\"\nscan_interval = \"5s\"\nexclude = [\"scratch.*\"]\n\
         [cluster.metastore]\nurl = \"mysql://{}@{}:{}/{DEMO_DB}\"\ncatalogs = [\"hive\", \"spark\"]\n\
         [cluster.storage]\ntype = \"local\"\nroot = \"{}\"\n",
        ms.user,
        ms.host,
        ms.port,
        w.root().display()
    );

    println!("Creating tables with small files through Spark's Thrift Server ...");
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
    let ms_url = format!("mysql://root@127.0.0.1:3306/{}", spark::metastore_db());
    let wh = spark::warehouse().display().to_string();
    let spark_cluster = |engine: &str| {
        format!(
            "[[cluster]]\nname = \"spark\"\n{engine}[cluster.metastore]\nurl = \"{ms_url}\"\n[cluster.storage]\ntype = \"local\"\nroot = \"{wh}\"\n"
        )
    };
    let exporter_clusters = format!(
        "{demo_cluster}\n{}",
        spark_cluster(&format!(
            "include = [\"{SPARK_DB}.*\"]\nscan_interval = \"5s\"\n"
        ))
    );
    let agent_clusters = format!(
        "{}[cluster.hiveserver2]\nhost = \"127.0.0.1\"\nport = {}\n",
        spark_cluster("engine = \"spark\"\n"),
        spark::port()
    );
    let ports = std::env::var("HSF_DEMO_PORTS")
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
        });
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
    let stack = Stack::start(&dir.join("stack"), &options).await;
    println!(
        "\n  exporter      {}/metrics\n  agent         {}/api/v1/merges   (bearer token in {})\n  prometheus    {}/alerts\n  alertmanager  {}\n  configs, logs {}\n",
        stack.exporter_url,
        stack.agent_url,
        stack.dir.join("token").display(),
        stack.prometheus_url,
        stack.alertmanager_url,
        stack.dir.display()
    );
    println!(
        "Waiting for HiveTableSmallFiles alerts (demo thresholds: more than 2 excess files) and merges. Ctrl-C stops.\n"
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut seen_alerts = BTreeSet::new();
    let mut seen_jobs = BTreeSet::new();
    let watch = async {
        loop {
            let firing = query(
                &client,
                &stack.prometheus_url,
                "ALERTS{alertname=\"HiveTableSmallFiles\",alertstate=\"firing\"}",
            )
            .await
            .unwrap_or_default();
            for a in firing {
                let l = &a["metric"];
                let key = format!(
                    "{}/{}.{}",
                    l["cluster"].as_str().unwrap_or(""),
                    l["database"].as_str().unwrap_or(""),
                    l["table"].as_str().unwrap_or("")
                );
                if seen_alerts.insert(key.clone()) {
                    println!("alert firing   {key}");
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
                if seen_jobs.insert(j["id"].as_u64().unwrap_or(0)) {
                    let k = &j["item"]["key"];
                    let o = &j["outcome"];
                    let detail = match o["result"].as_str() {
                        Some("merged") => format!(
                            "({}) {} partitions, files {} -> {}",
                            o["strategy"].as_str().unwrap_or("?"),
                            o["partitions"],
                            o["files_before"],
                            o["files_after"]
                        ),
                        _ => o["detail"]
                            .as_str()
                            .or(o["error"].as_str())
                            .unwrap_or("")
                            .chars()
                            .take(120)
                            .collect(),
                    };
                    println!(
                        "merge finished {}/{}.{}: {} {}",
                        k["cluster"].as_str().unwrap_or(""),
                        k["database"].as_str().unwrap_or(""),
                        k["table"].as_str().unwrap_or(""),
                        o["result"].as_str().unwrap_or("?"),
                        detail
                    );
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    };
    tokio::select! {
        () = watch => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    println!("\nStopping the exporter, the agent, Prometheus and Alertmanager ...");
    stack.stop().await;
    Ok(())
}
