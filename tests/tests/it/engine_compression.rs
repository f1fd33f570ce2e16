//! Engine merges keep a text partition's compression and write the planned file count,
//! against the real Spark Thrift Server (its MetaStore on MariaDB, a `file:` warehouse).
//!
//! Spark writes the small files itself: an unpartitioned gzip text table, a partitioned text
//! table with one gzip and one plain partition, and a Parquet table. The agent merges them
//! with `engine_staged` (`INSERT OVERWRITE DIRECTORY`, then the agent's commit) and with the
//! in-place `engine` path (`INSERT OVERWRITE`). Then, walking the files on disk
//! independently: every output of a gzip partition ends with `.gz` and decompresses, a plain
//! partition's outputs are plain text holding every row, the file count equals the plan's
//! `expected_files` (and `ceil(bytes / target)` computed here), and the rows Spark reads are
//! the same multiset as before.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use hive_smallfiles_agent::audit::AuditLog;
use hive_smallfiles_agent::config::AgentConfig;
use hive_smallfiles_agent::hiveserver2::Hs2Session;
use hive_smallfiles_agent::work::{JobOutcome, JobRunner, Unlimited};
use hive_smallfiles_tests::require;
use hive_smallfiles_tests::spark::{self, exec, metastore_db, port, sorted_rows, warehouse};
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

/// Files each Spark statement writes into a partition.
const SMALL_FILES: usize = 12;
/// Rows per partition.
const ROWS: u64 = 3000;
/// The merge's target file size: a few outputs per partition for these rows.
const TARGET: u64 = 40 * 1024;

const GZIP: &str = "org.apache.hadoop.io.compress.GzipCodec";

fn agent_config(dir: &Path, db: &str, executor: &str) -> AgentConfig {
    let text = format!(
        r#"
        audit_log = "audit.jsonl"
        [native]
        agent_id = "gzip-test-{db}"
        backup_retention = "0s"
        spool_dir = "spool"
        [policy]
        quiet_period = "0s"
        min_excess_files = 1
        allow = ["{db}.*"]
        # The in-place path is measured on purpose.
        allow_in_place = ["*"]
        # Directory swaps: the files stay where the test walks them (switch commits, which
        # move partitions to new directories, are tested in switch_spark.rs).
        commit_mode = "swap"
        [[cluster]]
        name = "spark"
        engine = "spark"
        executor = "{executor}"
        target_file_bytes = {TARGET}
        [cluster.metastore]
        url = "mysql://root@127.0.0.1:3306/{ms}"
        [cluster.storage]
        type = "local"
        root = "{root}"
        [cluster.hiveserver2]
        host = "127.0.0.1"
        port = {port}
        user = "hsf_agent"
        "#,
        ms = metastore_db(),
        root = warehouse().display(),
        port = port()
    );
    AgentConfig::from_toml(&text, dir, &BTreeMap::new()).expect("agent config")
}

/// Visible data files under `dir`, recursively (Hive's rule: names starting with `.` or `_`
/// are not data), sorted.
fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// What is on disk for one partition (or unpartitioned table).
#[derive(Debug)]
struct OnDisk {
    files: usize,
    bytes: u64,
    gz_files: usize,
    /// Lines of text (gzip files decompressed), for text partitions.
    lines: u64,
}

/// Reads every data file: `.gz` ones through a gzip decoder (several members allowed), which
/// fails on anything that is not gzip; others as they are.
fn on_disk(dir: &Path, text: bool) -> OnDisk {
    let files = data_files(dir);
    let mut d = OnDisk {
        files: files.len(),
        bytes: 0,
        gz_files: 0,
        lines: 0,
    };
    for f in &files {
        let raw = std::fs::read(f).unwrap();
        d.bytes += raw.len() as u64;
        if !text {
            continue;
        }
        let plain = if f.to_string_lossy().ends_with(".gz") {
            d.gz_files += 1;
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .unwrap_or_else(|e| panic!("{} is not gzip: {e}", f.display()));
            out
        } else {
            assert!(
                !raw.starts_with(&[0x1f, 0x8b]),
                "{} is gzip without the .gz name",
                f.display()
            );
            raw
        };
        d.lines += plain.iter().filter(|b| **b == b'\n').count() as u64;
    }
    d
}

/// One table or partition the test checks.
struct Case {
    table: &'static str,
    /// `PART_NAME` (empty for the unpartitioned table).
    partition: &'static str,
    gzip: bool,
    text: bool,
}

impl Case {
    fn dir(&self, db: &str) -> PathBuf {
        let t = warehouse().join(format!("{db}.db/{}", self.table));
        if self.partition.is_empty() {
            t
        } else {
            t.join(self.partition)
        }
    }

    /// How the agent's statements select this partition.
    fn predicate(&self) -> String {
        match self.partition.split_once('=') {
            Some((k, v)) => format!(" WHERE `{k}` = '{v}'"),
            None => String::new(),
        }
    }
}

const CASES: &[Case] = &[
    Case {
        table: "gz_flat",
        partition: "",
        gzip: true,
        text: true,
    },
    Case {
        table: "gz_parts",
        partition: "dt=gz",
        gzip: true,
        text: true,
    },
    Case {
        table: "gz_parts",
        partition: "dt=plain",
        gzip: false,
        text: true,
    },
    Case {
        table: "pq",
        partition: "dt=a",
        gzip: false,
        text: false,
    },
];

/// The rows of one partition: ids spread over the small files, text that gzip does not
/// shrink to nothing (a SHA-2 per row), NULLs.
fn select_rows(from: u64) -> String {
    format!(
        "SELECT /*+ REPARTITION({SMALL_FILES}) */ CAST(id AS INT), \
         CASE WHEN id % 7 = 0 THEN NULL ELSE concat('name ', id, ' ', sha2(CAST(id AS STRING), 256)) END, \
         CASE WHEN id % 5 = 0 THEN NULL ELSE id * 1.25 END FROM range({from}, {})",
        from + ROWS
    )
}

async fn compression(s: &mut Hs2Session, gzip: bool) {
    if gzip {
        exec(s, "SET hive.exec.compress.output=true").await;
        exec(
            s,
            &format!("SET mapreduce.output.fileoutputformat.compress.codec={GZIP}"),
        )
        .await;
    } else {
        exec(s, "SET hive.exec.compress.output=false").await;
    }
}

/// Creates the tables with Spark's own small files.
async fn create_tables(s: &mut Hs2Session, db: &str) {
    exec(s, &format!("DROP DATABASE IF EXISTS {db} CASCADE")).await;
    exec(s, &format!("CREATE DATABASE {db}")).await;
    let cols = "id INT, name STRING, amount DOUBLE";
    exec(
        s,
        &format!("CREATE TABLE {db}.gz_flat ({cols}) STORED AS TEXTFILE"),
    )
    .await;
    exec(
        s,
        &format!(
            "CREATE TABLE {db}.gz_parts ({cols}) PARTITIONED BY (dt STRING) \
             ROW FORMAT DELIMITED FIELDS TERMINATED BY ',' STORED AS TEXTFILE"
        ),
    )
    .await;
    exec(
        s,
        &format!("CREATE TABLE {db}.pq ({cols}) PARTITIONED BY (dt STRING) STORED AS PARQUET"),
    )
    .await;
    compression(s, true).await;
    exec(s, &format!("INSERT INTO {db}.gz_flat {}", select_rows(0))).await;
    exec(
        s,
        &format!(
            "INSERT INTO {db}.gz_parts PARTITION (dt='gz') {}",
            select_rows(10_000)
        ),
    )
    .await;
    compression(s, false).await;
    exec(
        s,
        &format!(
            "INSERT INTO {db}.gz_parts PARTITION (dt='plain') {}",
            select_rows(20_000)
        ),
    )
    .await;
    exec(
        s,
        &format!(
            "INSERT INTO {db}.pq PARTITION (dt='a') {}",
            select_rows(30_000)
        ),
    )
    .await;
}

/// The plan's entry of one partition in the latest `planned` event of `job`.
fn planned(audit: &AuditLog, job: u64, partition: &str) -> Json {
    let events = audit.events_of(job);
    let plan = events
        .iter()
        .rev()
        .find(|e| e["event"] == "planned")
        .unwrap_or_else(|| panic!("job {job} has no plan: {events:?}"));
    plan["plan"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == partition)
        .unwrap_or_else(|| panic!("{partition:?} is not in the plan: {plan}"))
        .clone()
}

/// The statements of `job` in order.
fn statements(audit: &AuditLog, job: u64) -> Vec<String> {
    audit
        .events_of(job)
        .iter()
        .filter(|e| e["event"] == "statement")
        .filter_map(|e| e["sql"].as_str().map(str::to_owned))
        .collect()
}

async fn engine_merges_keep_compression(executor: &str, strategy: &str) {
    require!(spark::unavailable());
    let db = format!("hsf_gz_{}_{:08x}", executor, rand::random::<u32>());
    let mut s = spark::session("hsf_gzip_test").await;
    create_tables(&mut s, &db).await;
    let before: Vec<(OnDisk, Vec<String>)> = {
        let mut v = Vec::new();
        for c in CASES {
            let disk = on_disk(&c.dir(&db), c.text);
            assert!(
                disk.files >= SMALL_FILES,
                "{}/{}: small files were created: {disk:?}",
                c.table,
                c.partition
            );
            assert_eq!(
                disk.gz_files,
                if c.gzip { disk.files } else { 0 },
                "{}/{}: Spark's own files",
                c.table,
                c.partition
            );
            if c.text {
                assert_eq!(disk.lines, ROWS, "{}/{}", c.table, c.partition);
            }
            let rows = sorted_rows(&mut s, &format!("{db}.{}", c.table)).await;
            v.push((disk, rows));
        }
        v
    };

    let dir = tempfile::tempdir().unwrap();
    let config = agent_config(dir.path(), &db, executor);
    let (audit, runner) = spark::merge_runner(&config);

    let tables: Vec<&str> = {
        let mut t: Vec<&str> = CASES.iter().map(|c| c.table).collect();
        t.dedup();
        t
    };
    let mut job_of = BTreeMap::new();
    for (i, table) in tables.iter().enumerate() {
        let id = i as u64 + 1;
        let outcome = runner
            .run(
                &spark::manual_job(id, &db, table),
                &Unlimited,
                &CancellationToken::new(),
            )
            .await;
        match &outcome {
            JobOutcome::Merged {
                strategy: got,
                partitions,
                ..
            } => {
                assert_eq!(got, strategy, "{table}");
                let want = CASES.iter().filter(|c| c.table == *table).count();
                assert_eq!(*partitions as usize, want, "{table}: {outcome:?}");
            }
            other => panic!(
                "{table}: expected a merge, got {other:?}: {:?}",
                audit.events_of(id)
            ),
        }
        job_of.insert(*table, id);
    }

    for (c, (disk_before, rows_before)) in CASES.iter().zip(&before) {
        let what = format!("{executor} {}/{}", c.table, c.partition);
        let id = job_of[c.table];
        let plan = planned(&audit, id, c.partition);
        let expected = plan["expected_files"].as_u64().expect("expected_files");
        // The plan's count, computed here from the bytes walked before the merge.
        assert_eq!(
            expected,
            disk_before.bytes.div_ceil(TARGET).max(1),
            "{what}: {plan}"
        );
        assert!(expected > 1, "{what}: the target makes several outputs");
        let after = on_disk(&c.dir(&db), c.text);
        assert_eq!(
            after.files as u64, expected,
            "{what}: planned file count: {after:?}"
        );
        if c.text {
            let codec = &plan["compression"];
            assert_eq!(codec["kind"], "text", "{what}: {plan}");
            if c.gzip {
                assert_eq!(codec["codec"], "gzip", "{what}: {plan}");
                assert_eq!(codec["hadoop_codec"], GZIP, "{what}: {plan}");
                assert_eq!(after.gz_files, after.files, "{what}: every output is .gz");
            } else {
                assert!(codec["codec"].is_null(), "{what}: {plan}");
                assert_eq!(after.gz_files, 0, "{what}: plain stays plain");
            }
            assert_eq!(after.lines, ROWS, "{what}: lines in the files on disk");
        } else {
            assert_eq!(plan["compression"]["kind"], "columnar", "{what}: {plan}");
        }
        let rows_after = sorted_rows(&mut s, &format!("{db}.{}", c.table)).await;
        assert_eq!(rows_after.len() as u64, rows_before.len() as u64, "{what}");
        assert!(rows_after == *rows_before, "{what}: the rows changed");
        eprintln!(
            "measured {what}: {} files, {} bytes ({} .gz) -> {} files (planned {expected}), {} bytes ({} .gz)",
            disk_before.files,
            disk_before.bytes,
            disk_before.gz_files,
            after.files,
            after.bytes,
            after.gz_files
        );
    }

    // Each text partition's statement runs with its own compression setting: the gzip
    // partition's with gzip on, the plain one's with it switched off again.
    let sql = statements(&audit, job_of["gz_parts"]);
    for c in CASES.iter().filter(|c| c.table == "gz_parts") {
        let predicate = c.predicate();
        let at = sql
            .iter()
            .position(|q| q.starts_with("INSERT OVERWRITE") && q.ends_with(&predicate))
            .unwrap_or_else(|| panic!("no merge statement for {}: {sql:?}", c.partition));
        let last = sql[..at]
            .iter()
            .rev()
            .find(|q| q.starts_with("SET hive.exec.compress.output="))
            .unwrap_or_else(|| panic!("no compression setting before {}: {sql:?}", c.partition));
        assert_eq!(
            last,
            &format!("SET hive.exec.compress.output={}", c.gzip),
            "{}: {sql:?}",
            c.partition
        );
    }
    exec(&mut s, &format!("DROP DATABASE {db} CASCADE")).await;
    let _ = s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_staged_keeps_gzip_and_the_planned_file_count() {
    engine_merges_keep_compression("engine_staged", "engine_staged").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_engine_keeps_gzip_and_the_planned_file_count() {
    engine_merges_keep_compression("engine", "insert_overwrite").await;
}
