//! The commit protocol (native and engine-staged executors) against the real Spark Thrift
//! Server: Hive-format tables created through SQL (so the MetaStore rows are Spark's own),
//! a `file:` warehouse, and the real agent binary as a child process.
//!
//! * Native merges, and merges killed (SIGKILL) at fail points of the protocol and then
//!   recovered: `MSCK REPAIR TABLE` never turns the hidden staging areas into partitions,
//!   and Spark reads exactly the original rows.
//! * Engine-staged merges (Spark's `INSERT OVERWRITE DIRECTORY` into the staging area) of
//!   text (non-default row format), Parquet and ORC tables: rows kept, the planned file
//!   count, one `committed` audit event per partition, staging removed by recovery.
//! * Writers during an engine-staged merge: a file added after the engine's write aborts the
//!   merge; one added after the last look travels into the merged directory; a Spark
//!   `INSERT` between the two renames re-creates the partition directory and the merged
//!   files move in beside its files. No row is lost or doubled.
//! * Parquet and ORC codecs the tables declare are kept; what Spark reads while a merge is
//!   stopped between the renames is measured (text: the query fails; Parquet: no rows of
//!   that partition).
//! * A gzip text partition merged by copying gzip members reads in Spark with exactly its
//!   rows and sum of ids, sources without a final newline included.
//!
//! Needs the Spark Thrift Server (`tests/scripts/spark-thrift.sh start`; started here when
//! missing). When it cannot be started, or with `HSF_SKIP=spark`, these tests are skipped:
//! `SKIPPED: …` (counted by tests/run.sh), a failure with `CI=true`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hive_smallfiles_agent::hiveserver2::Hs2Session;
use hive_smallfiles_agent::sql::{Engine, string_literal};
use hive_smallfiles_tests::agent_process::{AgentProcess, kill9};
use hive_smallfiles_tests::require;
use hive_smallfiles_tests::spark::{self, metastore_db, port, warehouse};
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

const AREA_PREFIX: &str = ".hive-smallfiles.";

/// The user of the test's own sessions.
const TEST_USER: &str = "hsf_native_test";

/// A session of the test (not the agent's).
pub(super) struct Spark {
    pub(super) session: Hs2Session,
}

impl Spark {
    pub(super) async fn open() -> Self {
        Self {
            session: spark::session(TEST_USER).await,
        }
    }

    pub(super) async fn exec(&mut self, sql: &str) {
        spark::exec(&mut self.session, sql).await;
    }

    pub(super) async fn query(&mut self, sql: &str) -> Vec<Vec<String>> {
        spark::query(&mut self.session, sql).await
    }

    /// `SHOW PARTITIONS`, sorted.
    pub(super) async fn partitions(&mut self, table: &str) -> Vec<String> {
        let mut p: Vec<String> = self
            .query(&format!("SHOW PARTITIONS {table}"))
            .await
            .into_iter()
            .map(|r| r.join("|"))
            .collect();
        p.sort();
        p
    }

    /// `MSCK REPAIR TABLE`, then `SHOW PARTITIONS`.
    pub(super) async fn repair_and_list(&mut self, table: &str) -> Vec<String> {
        self.exec(&format!("MSCK REPAIR TABLE {table}")).await;
        self.partitions(table).await
    }

    /// What Spark reads now (after `REFRESH TABLE`: this session's listings predate the
    /// agent's changes): the row count and every row, ordered by every column.
    pub(super) async fn read(&mut self, t: &SparkTable) -> (u64, Vec<String>) {
        let q = t.qualified();
        let count = spark::count(&mut self.session, &q).await;
        let rows = self
            .query(&format!("SELECT * FROM {q} ORDER BY {}", t.order_by))
            .await
            .into_iter()
            .map(|r| r.join("|"))
            .collect();
        (count, rows)
    }

    /// `SELECT * ... ORDER BY` every column, or the engine's error.
    pub(super) async fn try_rows(&mut self, t: &SparkTable) -> Result<Vec<String>, String> {
        let q = t.qualified();
        self.exec(&format!("REFRESH TABLE {q}")).await;
        let rows = spark::try_query(
            &mut self.session,
            &format!("SELECT * FROM {q} ORDER BY {}", t.order_by),
        )
        .await?;
        Ok(rows.into_iter().map(|r| r.join("|")).collect())
    }

    pub(super) async fn close(self) {
        let _ = self.session.close().await;
    }
}

/// A database of the Spark metastore, dropped (with everything under it) when the test ends,
/// also when it fails.
pub(super) struct SparkDb {
    pub(super) name: String,
}

impl SparkDb {
    pub(super) async fn create(spark: &mut Spark, tag: &str) -> Self {
        let name = format!("hsf_ns_{tag}_{:08x}", rand::random::<u32>());
        spark
            .exec(&format!("DROP DATABASE IF EXISTS {name} CASCADE"))
            .await;
        spark.exec(&format!("CREATE DATABASE {name}")).await;
        Self { name }
    }
}

impl Drop for SparkDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Its own thread and runtime: this runs inside the test's runtime, maybe unwinding.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut s = Hs2Session::open(&spark::hs2_config(TEST_USER)).await.ok()?;
                let _ = s
                    .execute_update(
                        &format!("DROP DATABASE IF EXISTS {name} CASCADE"),
                        &CancellationToken::new(),
                    )
                    .await;
                let _ = s.close().await;
                Some(())
            })
        })
        .join();
    }
}

/// A partitioned table created through Spark: `(id INT, name STRING, amount DOUBLE,
/// price DECIMAL(10,2), ts TIMESTAMP, tags ARRAY<STRING>)` partitioned by `dt STRING`.
pub(super) struct SparkTable {
    pub(super) db: String,
    pub(super) name: String,
    pub(super) dir: PathBuf,
    pub(super) order_by: &'static str,
}

impl SparkTable {
    /// Creates the table and fills every partition value with small files: `inserts`
    /// statements, each spread over 3 tasks, so each statement writes 3 files into every
    /// partition. Every column but `id` has NULLs.
    pub(super) async fn create(
        spark: &mut Spark,
        db: &SparkDb,
        name: &str,
        storage: &str,
        values: &[&str],
        inserts: usize,
    ) -> Self {
        let t = Self {
            db: db.name.clone(),
            name: name.to_owned(),
            dir: warehouse().join(format!("{}.db/{name}", db.name)),
            order_by: "id, name, amount, price, ts, tags, dt",
        };
        spark
            .exec(&format!(
                "CREATE TABLE {} (id INT, name STRING, amount DOUBLE, price DECIMAL(10,2), ts TIMESTAMP, \
                 tags ARRAY<STRING>) PARTITIONED BY (dt STRING) {storage}",
                t.qualified()
            ))
            .await;
        spark
            .exec("SET hive.exec.dynamic.partition.mode=nonstrict")
            .await;
        let literals: Vec<String> = values
            .iter()
            .map(|v| string_literal(v, Engine::Spark))
            .collect();
        // 4 rows per task and partition; gcd(3, partitions) = 1 unless there are 3k of them.
        let n = (values.len() * 12) as i64;
        for i in 0..inserts as i64 {
            let (from, to) = (i * 1000, i * 1000 + n);
            spark
                .exec(&format!(
                    "INSERT INTO {} PARTITION (dt) SELECT /*+ REPARTITION(3) */ CAST(id AS INT), \
                     CASE WHEN id % 5 = 0 THEN NULL ELSE concat('name ', id) END, \
                     CASE WHEN id % 7 = 0 THEN NULL ELSE id * 1.25 END, \
                     CASE WHEN id % 3 = 0 THEN NULL ELSE CAST(id / 4 AS DECIMAL(10,2)) END, \
                     CASE WHEN id % 4 = 0 THEN NULL ELSE timestamp_seconds(1700000000 + id * 3601) END, \
                     CASE WHEN id % 6 = 0 THEN NULL ELSE array(concat('t', id % 3), 'x y') END, \
                     element_at(array({}), CAST(id % {} AS INT) + 1) FROM range({from}, {to})",
                    t.qualified(),
                    literals.join(", "),
                    values.len()
                ))
                .await;
        }
        t
    }

    pub(super) fn qualified(&self) -> String {
        format!("{}.{}", self.db, self.name)
    }

    /// Visible files of a partition (names starting with `.` or `_` are not data).
    pub(super) fn files(&self, part: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.join(part))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.') && !n.starts_with('_'))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Staging areas beside the partitions.
    fn areas(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(AREA_PREFIX))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// What Spark shows of a table.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Seen {
    pub(super) partitions: Vec<String>,
    pub(super) count: u64,
    pub(super) rows: Vec<String>,
}

pub(super) async fn seen(spark: &mut Spark, t: &SparkTable) -> Seen {
    let partitions = spark.partitions(&t.qualified()).await;
    let (count, rows) = spark.read(t).await;
    Seen {
        partitions,
        count,
        rows,
    }
}

/// `MSCK REPAIR TABLE` adds no partition, and Spark reads exactly the original rows.
pub(super) async fn assert_same_through_spark(
    spark: &mut Spark,
    t: &SparkTable,
    original: &Seen,
    when: &str,
) {
    let partitions = spark.repair_and_list(&t.qualified()).await;
    assert_eq!(
        partitions, original.partitions,
        "{when}: MSCK REPAIR TABLE must find exactly the original partitions"
    );
    let (count, rows) = spark.read(t).await;
    assert_eq!(count, original.count, "{when}: count(*)");
    if let Some(i) =
        (0..rows.len().max(original.rows.len())).find(|i| rows.get(*i) != original.rows.get(*i))
    {
        panic!(
            "{when}: the rows differ ({} now, {} before); first difference at {i}: {:?} now, {:?} before",
            rows.len(),
            original.rows.len(),
            rows.get(i),
            original.rows.get(i)
        );
    }
}

/// The agent binary with its own configuration, audit log and agent id.
pub(super) struct Agent {
    pub(super) dir: tempfile::TempDir,
    pub(super) process: AgentProcess,
    db: String,
    /// `policy.commit_mode` and `native.switch_grace`.
    commit: (String, String),
    /// `native.switch_settle`.
    settle: String,
}

impl Agent {
    /// Directory-swap commits (what this file tests).
    pub(super) fn new(db: &str, executor: &str, retention: &str) -> Self {
        Self::with_commit(db, executor, retention, "swap", "1h")
    }

    pub(super) fn with_commit(
        db: &str,
        executor: &str,
        retention: &str,
        commit: &str,
        grace: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let a = Self {
            process: AgentProcess::new(crate::AGENT_BIN, dir.path()),
            dir,
            db: db.to_owned(),
            commit: (commit.to_owned(), grace.to_owned()),
            settle: "1s".to_owned(),
        };
        a.write_config(executor, retention);
        a
    }

    /// Changes `policy.commit_mode` and `native.switch_grace` (then write the config).
    pub(super) fn set_commit(&mut self, commit: &str, grace: &str) {
        self.commit = (commit.to_owned(), grace.to_owned());
    }

    /// Changes `native.switch_settle` (then write the config).
    pub(super) fn set_settle(&mut self, settle: &str) {
        settle.clone_into(&mut self.settle);
    }

    pub(super) fn write_config(&self, executor: &str, retention: &str) {
        let text = format!(
            r#"audit_log = "audit.jsonl"
[native]
agent_id = "spark-test-{db}"
backup_retention = "{retention}"
switch_grace = "{grace}"
switch_settle = "{settle}"
spool_dir = "spool"
[policy]
commit_mode = "{commit}"
quiet_period = "0s"
min_excess_files = 1
allow = ["{db}.*"]
[[cluster]]
name = "spark"
engine = "spark"
executor = "{executor}"
target_file_bytes = "128MiB"
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
            db = self.db,
            commit = self.commit.0,
            grace = self.commit.1,
            settle = self.settle,
            ms = metastore_db(),
            root = warehouse().display(),
            port = port(),
        );
        std::fs::write(self.process.config_path(), text).unwrap();
    }

    pub(super) fn merge_args(&self, table: &str, partition: Option<&str>) -> Vec<String> {
        let mut v: Vec<String> = [
            "merge",
            "--cluster",
            "spark",
            "--database",
            &self.db,
            "--table",
            table,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        if let Some(p) = partition {
            v.push("--partition".to_owned());
            v.push(p.to_owned());
        }
        v
    }

    pub(super) fn audit(&self) -> Vec<Json> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The latest `planned` event (the plan of the latest merge).
    pub(super) fn last_plan(&self) -> Json {
        self.audit()
            .into_iter()
            .rev()
            .find(|e| e["event"] == "planned")
            .expect("a planned event in the audit log")
    }
}

pub(super) fn planned_files(plan: &Json, partition: &str) -> u64 {
    plan["plan"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == partition)
        .unwrap_or_else(|| panic!("{partition} is not in the plan: {plan}"))["expected_files"]
        .as_u64()
        .expect("expected_files")
}

/// Fail points of a merge, and whether the partition is merged after recovery.
const CRASHES: &[(&str, bool)] = &[
    ("after_stage", false),
    ("after_manifest", false),
    ("after_relist", false),
    ("between_renames", true),
    ("after_swap", true),
    ("after_reconcile", true),
    ("after_commit", true),
];

/// Native merges of a Spark table: one runs to the end, the others are killed at a fail
/// point (each in its own partition) and recovered; Spark's view stays exactly the same
/// after each, and MSCK never turns a staging area into a partition.
async fn native_merges_and_crashes(kind: &str, storage: &str) {
    require!(spark::unavailable());
    let started = Instant::now();
    let mut spark = Spark::open().await;
    let db = SparkDb::create(&mut spark, &format!("native_{kind}")).await;
    let mut values: Vec<String> = vec!["it's a b=c%".to_owned()];
    values.extend((1..=CRASHES.len()).map(|i| format!("p {i}")));
    let value_refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let t = SparkTable::create(&mut spark, &db, kind, storage, &value_refs, 3).await;
    let original = seen(&mut spark, &t).await;
    eprintln!(
        "{kind}: table created in {:.1?}: {} partitions, {} rows",
        started.elapsed(),
        original.partitions.len(),
        original.count
    );
    assert_eq!(original.partitions.len(), values.len(), "{original:?}");
    let files_before: Vec<usize> = original
        .partitions
        .iter()
        .map(|p| t.files(p).len())
        .collect();
    assert!(
        files_before.iter().all(|n| *n >= 3),
        "small files were created: {files_before:?}"
    );
    let agent = Agent::new(&db.name, "native", "1h");

    // A merge that runs to the end, with the agent's REFRESH TABLE afterwards.
    let t1 = Instant::now();
    let normal = &original.partitions[0];
    let (code, out) = agent
        .process
        .run(&agent.merge_args(&t.name, Some(normal)))
        .await;
    assert_eq!(code, 0, "merge: {out}");
    let outcome: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(outcome["result"], "merged", "{outcome}");
    assert_eq!(outcome["strategy"], "native", "{outcome}");
    let plan = agent.last_plan();
    let planned = planned_files(&plan, normal);
    assert_eq!(planned, 1, "128 MiB target: one file per partition");
    assert_eq!(
        t.files(normal).len() as u64,
        planned,
        "{normal}: planned file count"
    );
    let codecs_before: BTreeSet<String> = t
        .files(&original.partitions[1])
        .iter()
        .flat_map(|f| codecs(&t.dir.join(&original.partitions[1]).join(f)))
        .collect();
    if kind == "parquet" {
        assert_eq!(
            codecs_before,
            ["GZIP".to_owned()].into(),
            "the declared codec"
        );
    }
    for f in t.files(normal) {
        assert_eq!(
            codecs(&t.dir.join(normal).join(&f)),
            codecs_before,
            "{normal}/{f}: the sources' codec"
        );
    }
    assert!(
        agent.audit().iter().any(|e| e["event"] == "statement"
            && e["sql"]
                .as_str()
                .is_some_and(|s| s.starts_with("REFRESH TABLE"))),
        "the agent refreshes Spark's listings after the merge"
    );
    assert_same_through_spark(&mut spark, &t, &original, "after a native merge").await;
    eprintln!("{kind}: normal merge checked in {:.1?}", t1.elapsed());

    for (i, (fp, merged)) in CRASHES.iter().enumerate() {
        let t1 = Instant::now();
        let part = &original.partitions[i + 1];
        let child = agent
            .process
            .run_to_failpoint(&agent.merge_args(&t.name, Some(part)), fp, None)
            .await;
        kill9(child);
        assert!(
            !t.areas().is_empty(),
            "{fp}: the crash leaves a staging area"
        );
        // What a reader sees before recovery: the old rows or the new ones, never both. Between
        // the renames the partition directory does not exist: its rows are missing, or the
        // engine fails the query.
        let now = spark.try_rows(&t).await;
        if *fp == "between_renames" {
            // `p <n>`: no character of the value is escaped in the directory name.
            let value = part.strip_prefix("dt=").unwrap();
            let without: Vec<String> = original
                .rows
                .iter()
                .filter(|r| r.rsplit('|').next() != Some(value))
                .cloned()
                .collect();
            match &now {
                Ok(rows) => assert!(
                    *rows == without,
                    "{fp}: a reader sees the other partitions' rows only ({} rows, {} expected)",
                    rows.len(),
                    without.len()
                ),
                Err(e) => eprintln!("{kind}: {fp}: Spark fails the query: {e}"),
            }
            eprintln!(
                "{kind}: {fp}: measured: Spark {}",
                if now.is_ok() {
                    "reads no rows of the absent partition"
                } else {
                    "fails the query"
                }
            );
        } else {
            assert!(
                now.as_ref() == Ok(&original.rows),
                "{fp}: a reader right after the crash sees exactly the original rows: {:?}",
                now.as_ref().map(Vec::len)
            );
        }
        // Before recovery, with the staging area at its fullest: still no new partition.
        assert_eq!(
            spark.repair_and_list(&t.qualified()).await,
            original.partitions,
            "{fp}: MSCK REPAIR TABLE right after the crash"
        );
        agent.process.recover().await;
        assert_same_through_spark(&mut spark, &t, &original, &format!("{fp}: after recovery"))
            .await;
        let files = t.files(part).len();
        if *merged {
            assert_eq!(
                files as u64,
                planned_files(&agent.last_plan(), part),
                "{fp}: rolled forward to the planned file count"
            );
        } else {
            assert_eq!(
                files,
                files_before[i + 1],
                "{fp}: rolled back: the original files"
            );
        }
        eprintln!("{kind}: crash at {fp} checked in {:.1?}", t1.elapsed());
    }
    // Every partition that was not touched still has its original files.
    assert_eq!(t.files(&original.partitions[0]).len(), 1);

    // Rolling the first merge back (its backup is kept for the retention).
    let committed: Vec<String> = agent
        .audit()
        .iter()
        .filter(|e| e["event"] == "committed" && e["partition"] == normal.as_str())
        .filter_map(|e| e["report"]["merge_dir"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(committed.len(), 1, "one committed merge of {normal}");
    let args: Vec<String> = [
        "rollback",
        "--cluster",
        "spark",
        "--merge-dir",
        &committed[0],
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let (code, out) = agent.process.run(&args).await;
    assert_eq!(code, 0, "rollback: {out}");
    assert_eq!(
        t.files(normal).len(),
        files_before[0],
        "rollback: originals back"
    );
    assert_same_through_spark(&mut spark, &t, &original, "after a rollback").await;

    // Expired backups are removed; nothing of the protocol is left.
    agent.write_config("native", "0s");
    agent.process.recover().await;
    assert_eq!(
        t.areas(),
        Vec::<String>::new(),
        "staging left after retention"
    );
    assert_same_through_spark(&mut spark, &t, &original, "after the backups expired").await;
    spark.close().await;
    drop(db);
    eprintln!("{kind}: done in {:.1?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_text_merges_and_crashes_keep_msck_and_rows() {
    native_merges_and_crashes("text", "STORED AS TEXTFILE").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_parquet_merges_and_crashes_keep_msck_and_rows() {
    // Not Spark's default codec: the merged files must keep it.
    native_merges_and_crashes(
        "parquet",
        "STORED AS PARQUET TBLPROPERTIES ('parquet.compression'='GZIP')",
    )
    .await;
}

/// Engine-staged merges of text (comma-delimited, NULLs), Parquet and ORC tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_staged_merges_keep_rows_and_format() {
    require!(spark::unavailable());
    let started = Instant::now();
    let mut spark = Spark::open().await;
    let db = SparkDb::create(&mut spark, "staged").await;
    let values = ["2024-01-01", "it's a b=c%"];
    let tables = [
        (
            "txt",
            "ROW FORMAT DELIMITED FIELDS TERMINATED BY ',' STORED AS TEXTFILE",
        ),
        // Codecs the tables declare (not Spark's defaults): the merged files must keep them.
        (
            "pq",
            "STORED AS PARQUET TBLPROPERTIES ('parquet.compression'='GZIP')",
        ),
        ("orc", "STORED AS ORC TBLPROPERTIES ('orc.compress'='ZLIB')"),
    ];
    let mut created = Vec::new();
    for (name, storage) in tables {
        created.push(SparkTable::create(&mut spark, &db, name, storage, &values, 3).await);
    }
    eprintln!("staged: tables created in {:.1?}", started.elapsed());
    let agent = Agent::new(&db.name, "engine_staged", "0s");
    for t in &created {
        let t1 = Instant::now();
        let original = seen(&mut spark, t).await;
        assert_eq!(original.partitions.len(), 2, "{original:?}");
        let mut codecs_before = BTreeSet::new();
        for p in &original.partitions {
            assert!(t.files(p).len() >= 3, "{}/{p}: small files", t.name);
            for f in t.files(p) {
                codecs_before.extend(codecs(&t.dir.join(p).join(f)));
            }
        }
        let (code, out) = agent.process.run(&agent.merge_args(&t.name, None)).await;
        assert_eq!(code, 0, "{}: merge: {out}", t.name);
        let outcome: Json = serde_json::from_str(&out).unwrap();
        assert_eq!(outcome["result"], "merged", "{outcome}");
        assert_eq!(outcome["strategy"], "engine_staged", "{outcome}");
        assert_eq!(outcome["partitions"], 2, "{outcome}");
        let plan = agent.last_plan();
        let job = plan["job"].as_u64().unwrap();
        for p in &original.partitions {
            let planned = planned_files(&plan, p);
            assert_eq!(planned, 1, "128 MiB target: one file per partition");
            assert_eq!(
                t.files(p).len() as u64,
                planned,
                "{}/{p}: the planned file count: {:?}",
                t.name,
                t.files(p)
            );
        }
        // The codec the table declares, as Spark's own writes used it.
        let declared: BTreeSet<String> = match t.name.as_str() {
            "pq" => ["GZIP".to_owned()].into(),
            "orc" => ["ZLIB".to_owned()].into(),
            _ => BTreeSet::new(),
        };
        assert_eq!(codecs_before, declared, "{}: Spark's own files", t.name);
        for p in &original.partitions {
            for f in t.files(p) {
                assert_eq!(
                    codecs(&t.dir.join(p).join(&f)),
                    codecs_before,
                    "{}/{p}/{f}: the table's codec",
                    t.name
                );
            }
        }
        // One `committed` event per partition.
        let committed: BTreeSet<String> = agent
            .audit()
            .iter()
            .filter(|e| e["job"] == job && e["event"] == "committed")
            .map(|e| e["partition"].as_str().unwrap().to_owned())
            .collect();
        let want: BTreeSet<String> = original.partitions.iter().cloned().collect();
        assert_eq!(committed, want, "{}: committed events", t.name);
        if t.name == "txt" {
            // The table's row format, not Hive's default: comma-separated, NULL as \N.
            let mut lines = Vec::new();
            for p in &original.partitions {
                for f in t.files(p) {
                    let text = std::fs::read_to_string(t.dir.join(p).join(f)).unwrap();
                    lines.extend(text.lines().map(str::to_owned));
                }
            }
            assert_eq!(lines.len() as u64, original.count);
            assert!(
                lines
                    .iter()
                    .all(|l| l.split(',').count() == 6 && !l.contains('\x01')),
                "comma-delimited rows: {:?}",
                &lines[..3]
            );
            assert!(
                lines.iter().any(|l| l.contains("\\N")),
                "NULL written as \\N: {:?}",
                &lines[..3]
            );
        }
        assert_same_through_spark(&mut spark, t, &original, &format!("{}: merged", t.name)).await;
        // The backups stay until recovery finds them expired.
        assert_eq!(
            t.areas().len(),
            2,
            "{}: one staging area per partition",
            t.name
        );
        agent.process.recover().await;
        assert_eq!(
            t.areas(),
            Vec::<String>::new(),
            "{}: staging left after recovery",
            t.name
        );
        assert_same_through_spark(&mut spark, t, &original, &format!("{}: recovered", t.name))
            .await;
        eprintln!("staged: {} checked in {:.1?}", t.name, t1.elapsed());
    }
    spark.close().await;
    drop(db);
    eprintln!("staged: done in {:.1?}", started.elapsed());
}

/// Rows of a data file written by Spark (text: lines; Parquet: the footer's row count).
fn rows_in_file(path: &Path) -> u64 {
    let data = std::fs::read(path).unwrap();
    if path.to_string_lossy().ends_with(".parquet") {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let r = SerializedFileReader::new(bytes::Bytes::from(data)).unwrap();
        u64::try_from(r.metadata().file_metadata().num_rows()).expect("row count")
    } else {
        data.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count() as u64
    }
}

/// The codecs of a Parquet file's column chunks (`GZIP`, `SNAPPY`...).
fn parquet_codecs(path: &Path) -> BTreeSet<String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let r = SerializedFileReader::new(bytes::Bytes::from(std::fs::read(path).unwrap())).unwrap();
    r.metadata()
        .row_groups()
        .iter()
        .flat_map(|g| g.columns().iter())
        .map(|c| {
            let name = format!("{:?}", c.compression());
            name.split('(').next().unwrap_or_default().to_owned()
        })
        .collect()
}

/// A protobuf varint: (value, bytes used).
fn varint(b: &[u8]) -> (u64, usize) {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (v, i + 1);
        }
    }
    panic!("bad varint")
}

/// The compression kind in an ORC file's postscript (its last byte is the postscript's
/// length; field 2 is the kind: NONE, ZLIB, SNAPPY, LZO, LZ4, ZSTD).
fn orc_codec(path: &Path) -> &'static str {
    let data = std::fs::read(path).unwrap();
    let len = usize::from(*data.last().unwrap());
    let ps = &data[data.len() - 1 - len..data.len() - 1];
    let mut i = 0;
    while i < ps.len() {
        let (key, n) = varint(&ps[i..]);
        i += n;
        let (v, n) = varint(&ps[i..]);
        i += n;
        match key & 7 {
            0 if key >> 3 == 2 => {
                return ["NONE", "ZLIB", "SNAPPY", "LZO", "LZ4", "ZSTD"]
                    .get(usize::try_from(v).unwrap())
                    .copied()
                    .unwrap_or("?");
            }
            0 => {}
            2 => i += usize::try_from(v).unwrap(),
            w => panic!("wire type {w} in an ORC postscript"),
        }
    }
    "NONE"
}

/// Codecs of a data file (Parquet column chunks, ORC postscript; text: none).
fn codecs(path: &Path) -> BTreeSet<String> {
    let name = path.to_string_lossy();
    if name.ends_with(".parquet") {
        parquet_codecs(path)
    } else if name.ends_with(".orc") {
        [orc_codec(path).to_owned()].into()
    } else {
        BTreeSet::new()
    }
}

/// A file written into the partition while an engine-staged merge waits: after the engine
/// wrote the staging output (before the agent's last look) the merge aborts; after the last
/// look (before the swap) the file travels into the merged directory. Either way the file
/// and its rows stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_staged_merge_aborts_when_a_file_arrives() {
    require!(spark::unavailable());
    let started = Instant::now();
    let mut spark = Spark::open().await;
    let db = SparkDb::create(&mut spark, "staged_cw").await;
    let values = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"];
    let mut created = Vec::new();
    for (name, storage) in [("txt", "STORED AS TEXTFILE"), ("pq", "STORED AS PARQUET")] {
        created.push(SparkTable::create(&mut spark, &db, name, storage, &values, 2).await);
    }
    let agent = Agent::new(&db.name, "engine_staged", "0s");
    for t in &created {
        let t1 = Instant::now();
        let original = seen(&mut spark, t).await;
        let mut rows_now = original.count;
        // After the engine wrote the staging output the merge must abort; in the instant
        // between the last look and the swap the file travels into the new directory.
        for (part, failpoint, aborts) in [
            (&original.partitions[0], "after_verify", true),
            (&original.partitions[1], "after_relist", false),
        ] {
            let files_before = t.files(part);
            assert!(files_before.len() >= 3, "{files_before:?}");
            let resume = agent
                .dir
                .path()
                .join(format!("resume-{}-{failpoint}", t.name));
            let child = agent
                .process
                .run_to_failpoint(
                    &agent.merge_args(&t.name, Some(part)),
                    failpoint,
                    Some(&resume),
                )
                .await;
            // A writer adds a file (a copy of a data file: more rows) while the merge waits.
            let source = t.dir.join(part).join(&files_before[0]);
            let added_name = if t.name == "pq" {
                "part-99999-arrived.c000.snappy.parquet"
            } else {
                "part-99999-arrived-c000"
            };
            let added = t.dir.join(part).join(added_name);
            std::fs::copy(&source, &added).unwrap();
            let added_rows = rows_in_file(&added);
            assert!(added_rows > 0);
            rows_now += added_rows;
            std::fs::write(&resume, b"go").unwrap();
            let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
                .await
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let what = format!("{}/{part} at {failpoint}", t.name);
            if aborts {
                assert_eq!(
                    out.status.code(),
                    Some(1),
                    "{what}: the merge aborts: {stdout}"
                );
                assert!(
                    stdout.contains("new_file_arrived"),
                    "{what}: the result says why: {stdout}"
                );
                let mut want = files_before.clone();
                want.push(added_name.to_owned());
                want.sort();
                assert_eq!(
                    t.files(part),
                    want,
                    "{what}: every file kept, the new one too"
                );
                assert_eq!(
                    t.areas(),
                    Vec::<String>::new(),
                    "{what}: the aborted merge removed its staging"
                );
            } else {
                assert_eq!(out.status.code(), Some(0), "{what}: merged: {stdout}");
                let files = t.files(part);
                assert_eq!(
                    files.len(),
                    2,
                    "{what}: the merged file and the new one: {files:?}"
                );
                assert!(files.iter().any(|f| f == added_name), "{what}: {files:?}");
                let report = agent
                    .audit()
                    .into_iter()
                    .rev()
                    .find(|e| e["event"] == "committed")
                    .expect("committed event");
                assert_eq!(
                    report["report"]["arrived_during_swap"],
                    serde_json::json!([added_name]),
                    "{what}: {report}"
                );
            }
            let (count, _) = spark.read(t).await;
            assert_eq!(count, rows_now, "{what}: no row lost or doubled");
            assert_eq!(
                spark.repair_and_list(&t.qualified()).await,
                original.partitions,
                "{what}: partitions"
            );
        }

        // A writer through Spark while the partition directory is absent (between the two
        // renames): its INSERT re-creates the directory. The merged files move in beside the
        // writer's (never as a subdirectory), at once, and no row is lost or doubled.
        let part = &original.partitions[2];
        let resume = agent.dir.path().join(format!("resume-{}-swap", t.name));
        let child = agent
            .process
            .run_to_failpoint(
                &agent.merge_args(&t.name, Some(part)),
                "between_renames",
                Some(&resume),
            )
            .await;
        assert!(!t.dir.join(part).exists(), "between the renames");
        let value = part.strip_prefix("dt=").unwrap();
        spark
            .exec(&format!(
                "INSERT INTO {} PARTITION (dt='{value}') SELECT 900000 + CAST(id AS INT), \
                 'late', NULL, NULL, NULL, NULL FROM range(0, 3)",
                t.qualified()
            ))
            .await;
        rows_now += 3;
        let written = t.files(part);
        assert!(!written.is_empty(), "Spark re-created {part}");
        std::fs::write(&resume, b"go").unwrap();
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!(
            "staged_cw: {}: a Spark INSERT between the renames: merge exit {:?}: {stdout}",
            t.name,
            out.status.code()
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}/{part}: the merge finishes in the re-created directory: {stdout}",
            t.name
        );
        let report = agent
            .audit()
            .into_iter()
            .rev()
            .find(|e| e["event"] == "committed")
            .expect("committed event");
        let arrived = report["report"]["arrived_during_swap"].to_string();
        assert!(
            written.iter().all(|w| arrived.contains(w.as_str())),
            "{}/{part}: Spark's files are reported: {report}",
            t.name
        );
        // Right after the merge returned, before any recovery, readers see every row.
        let (count, _) = spark.read(t).await;
        assert_eq!(
            count, rows_now,
            "{}/{part}: rows right after the merge returned: {stdout}",
            t.name
        );
        let recovered = agent.process.recover().await;
        eprintln!("staged_cw: {}: recovery: {recovered}", t.name);
        let subdirs: Vec<String> = std::fs::read_dir(t.dir.join(part))
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(subdirs, Vec::<String>::new(), "{part}: no subdirectory");
        let files = t.files(part);
        assert!(
            written.iter().all(|w| files.contains(w)),
            "{part}: Spark's new files kept: {files:?}"
        );
        let (count, _) = spark.read(t).await;
        assert_eq!(count, rows_now, "{}/{part}: no row lost or doubled", t.name);
        let late = spark
            .query(&format!(
                "SELECT count(*) FROM {} WHERE name = 'late'",
                t.qualified()
            ))
            .await;
        assert_eq!(late[0][0], "3", "{}/{part}: the late rows", t.name);
        assert_eq!(
            spark.repair_and_list(&t.qualified()).await,
            original.partitions,
            "{}: partitions",
            t.name
        );
        agent.write_config("engine_staged", "0s");
        agent.process.recover().await;
        assert_eq!(t.areas(), Vec::<String>::new());
        eprintln!("staged_cw: {} checked in {:.1?}", t.name, t1.elapsed());
    }
    spark.close().await;
    drop(db);
    eprintln!("staged_cw: done in {:.1?}", started.elapsed());
}

/// `(id, name)` rows of a gzip text source: the text, its rows, and the sum of its ids.
struct GzSource {
    members: Vec<Vec<u8>>,
    rows: u64,
    id_sum: i64,
}

/// One gzip member per text: ids `from..to`, one row each (`id \x01 name id`), the last
/// row of a text without its `\n` where `newline_at_end` is false.
fn gz_source(texts: &[(i64, i64, bool)]) -> GzSource {
    use std::io::Write as _;
    let mut s = GzSource {
        members: Vec::new(),
        rows: 0,
        id_sum: 0,
    };
    for &(from, to, newline_at_end) in texts {
        let mut text = String::new();
        for id in from..to {
            text.push_str(&format!("{id}\x01name {id}\n"));
            s.rows += 1;
            s.id_sum += id;
        }
        if !newline_at_end {
            text.pop();
        }
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        s.members.push(e.finish().unwrap());
    }
    s
}

/// Spark's count, sum of ids, and rows whose name is not `name <id>` (a row run into the
/// next one would have such a name, and one row fewer).
async fn gz_table_seen(spark: &mut Spark, q: &str) -> (u64, i64, u64) {
    spark.exec(&format!("REFRESH TABLE {q}")).await;
    let r = spark
        .query(&format!(
            "SELECT count(*), sum(id), sum(CASE WHEN name = concat('name ', CAST(id AS STRING)) THEN 0 ELSE 1 END) FROM {q}"
        ))
        .await;
    let cell = |i: usize| r[0][i].parse::<i64>().unwrap_or_else(|_| panic!("{r:?}"));
    (cell(0) as u64, cell(1), cell(2) as u64)
}

/// A gzip text partition is merged by copying the sources' gzip members one after the other
/// (no recompression), and Spark reads the merged file with exactly the rows and the sum of
/// ids the sources hold (computed here while writing them). Spark's text reader goes through
/// Hadoop's `GzipCodec`, whose `DecompressorStream` reads concatenated members as one stream
/// (HADOOP-6835). Sources whose text lacks its final newline (also inside a multi-member
/// source, and last in the partition) must not run into the next source's first row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_gzip_text_merge_copies_members_and_spark_reads_every_row() {
    require!(spark::unavailable());
    let mut spark = Spark::open().await;
    let db = SparkDb::create(&mut spark, "native_gz").await;
    let q = format!("{}.gz", db.name);
    spark
        .exec(&format!(
            "CREATE TABLE {q} (id BIGINT, name STRING) PARTITIONED BY (dt STRING) STORED AS TEXTFILE"
        ))
        .await;
    spark
        .exec(&format!("ALTER TABLE {q} ADD PARTITION (dt='a')"))
        .await;
    let dir = warehouse().join(format!("{}.db/gz/dt=a", db.name));
    std::fs::create_dir_all(&dir).unwrap();
    let sources = [
        gz_source(&[(1, 101, true)]),
        // Two members, the second's last row without its newline.
        gz_source(&[(101, 151, true), (151, 161, false)]),
        gz_source(&[(161, 171, false)]),
        // A member of no text.
        gz_source(&[(171, 171, true)]),
        gz_source(&[(171, 400, true), (400, 401, false)]),
    ];
    let (rows, id_sum) = sources
        .iter()
        .fold((0, 0), |(r, s), x| (r + x.rows, s + x.id_sum));
    let mut raw_sources = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let bytes = s.members.concat();
        std::fs::write(dir.join(format!("{i:06}_0.gz")), &bytes).unwrap();
        raw_sources.push(bytes);
    }
    assert_eq!(
        gz_table_seen(&mut spark, &q).await,
        (rows, id_sum, 0),
        "Spark reads the sources"
    );

    let agent = Agent::new(&db.name, "native", "1h");
    let (code, out) = agent
        .process
        .run(&agent.merge_args("gz", Some("dt=a")))
        .await;
    assert_eq!(code, 0, "merge: {out}");
    let outcome: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(outcome["result"], "merged", "{outcome}");
    assert_eq!(outcome["strategy"], "native", "{outcome}");
    let merged: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && !n.starts_with('_'))
        })
        .collect();
    assert_eq!(merged.len(), 1, "one merged file: {merged:?}");
    assert!(
        merged[0].to_string_lossy().ends_with(".gz"),
        "{merged:?}: still gzip"
    );
    let raw = std::fs::read(&merged[0]).unwrap();
    // Copied, not recompressed: the first source's bytes open the merged file, and it holds
    // several members (a single-member reader stops after the first).
    assert!(raw.starts_with(&raw_sources[0]), "the members are copied");
    let mut first_member = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(raw.as_slice()),
        &mut first_member,
    )
    .unwrap();
    assert_eq!(
        first_member.iter().filter(|&&b| b == b'\n').count(),
        100,
        "the first member is the first source's"
    );
    assert_eq!(
        gz_table_seen(&mut spark, &q).await,
        (rows, id_sum, 0),
        "Spark reads every row of the merged members, none run into another"
    );
    spark.close().await;
    drop(db);
}
