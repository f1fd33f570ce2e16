//! The local demo: a Hive MetaStore (CDP 3.1.3000 schema) on the local MariaDB, a `file:`
//! warehouse full of small files, the exporter's report, and the exporter serving /metrics
//! until Ctrl-C. Run it with `tests/demo.sh`, which makes sure MariaDB is installed and running.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use hive_smallfiles_tests::exporter_process::{ExporterProcess, binary};
use hive_smallfiles_tests::metastore_fixture::{
    DbKind, FixtureDb, FixtureTable, Format, SchemaVersion,
};
use hive_smallfiles_tests::scenario::Scenario;
use hive_smallfiles_tests::warehouse::Warehouse;

const DEMO_DB: &str = "hive_smallfiles_demo";

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
    let config_path = dir.join("exporter.toml");
    std::fs::write(
        &config_path,
        format!(
            "# Demo configuration: see deploy/exporter.example.toml for every setting.\n\
             [[cluster]]\nname = \"demo\"\nscan_interval = \"1m\"\nexclude = [\"scratch.*\"]\n\n\
             [cluster.metastore]\nurl = \"mysql://{}@{}:{}/{DEMO_DB}\"\ncatalogs = [\"hive\", \"spark\"]\n\n\
             [cluster.storage]\ntype = \"local\"\nroot = \"{}\"\n",
            ms.user,
            ms.host,
            ms.port,
            w.root().display()
        ),
    )?;

    println!(
        "\n$ hive-smallfiles-exporter --config.file {} scan --once\n",
        config_path.display()
    );
    let status = Command::new(binary())
        .arg("--config.file")
        .arg(&config_path)
        .args(["scan", "--once"])
        .status()?;
    anyhow::ensure!(status.success(), "the scan failed");

    let port: u16 = std::env::var("HSF_DEMO_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9878);
    let mut exporter = ExporterProcess::start_on(&config_path, port, &["--log.level", "warn"]);
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (_, _, body) = exporter.get("/metrics", None).await;
    println!(
        "\nThe exporter is serving {} series at {}/metrics, for example:",
        body.lines().filter(|l| !l.starts_with('#')).count(),
        exporter.base_url
    );
    for line in body
        .lines()
        .filter(|l| l.starts_with("hive_table_excess_files{") && l.contains("\"ods\""))
        .take(4)
    {
        println!("  {line}");
    }
    println!(
        "\nConfiguration: {}\nPress Ctrl-C to stop.",
        config_path.display()
    );
    tokio::signal::ctrl_c().await?;
    println!("\nStopping ...");
    exporter.stop();
    Ok(())
}
