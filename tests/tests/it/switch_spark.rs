//! Switch commits against the real Spark Thrift Server and its MariaDB metastore: the merged
//! files go to a new hidden directory and the partition's location is switched with `ALTER
//! TABLE … PARTITION (…) SET LOCATION` through Spark.
//!
//! * Readers in a tight loop (`count(*)` and a row checksum; one long-lived session, one that
//!   refreshes before every query) while every partition of a Parquet table is merged: 0
//!   failed queries and 0 wrong answers with switch commits; the same loop against directory
//!   swaps is measured and printed (failures are expected there).
//! * SIGKILL at every step of a switch merge (the killed process left unreaped — a zombie —
//!   while the agent restarts at once): start-up recovery makes `/ready` true, Spark reads
//!   exactly the original rows, `MSCK REPAIR TABLE` registers nothing.
//! * A writer appending rows with `INSERT INTO` at random moments during switch merges:
//!   nothing lost.
//! * Rollback restores the exact old files (names and bytes) at a path never used before;
//!   after the grace period the old directories retire into the merge's backup and expire.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hive_smallfiles_agent::sql::{Engine, string_literal};
use hive_smallfiles_tests::require;
use hive_smallfiles_tests::services::Agent as InProcessAgent;
use hive_smallfiles_tests::spark;
use serde_json::Value as Json;

use super::native_spark::{
    Agent, Seen, Spark, SparkDb, SparkTable, assert_same_through_spark, seen,
};

/// The hidden directory under a table that holds switched partitions.
const MERGED_DIR: &str = ".hive-smallfiles-merged";

/// Where a partition points, read through Spark (`DESCRIBE FORMATTED … PARTITION`), as a
/// local path.
async fn location(spark: &mut Spark, t: &SparkTable, partition: &str) -> PathBuf {
    // The tests' values need no escaping in partition names.
    let value = partition.strip_prefix("dt=").expect("dt=<value>");
    let rows = spark
        .query(&format!(
            "DESCRIBE FORMATTED {} PARTITION (dt={})",
            t.qualified(),
            string_literal(value, Engine::Spark)
        ))
        .await;
    let l = rows
        .iter()
        .find(|r| r.first().is_some_and(|c| c.trim() == "Location"))
        .and_then(|r| r.get(1))
        .unwrap_or_else(|| panic!("no Location of {partition}: {rows:?}"))
        .trim()
        .to_owned();
    PathBuf::from(l.strip_prefix("file:").unwrap_or(&l))
}

/// Visible files of a directory with their bytes.
fn files_with_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.') && !n.starts_with('_'))
                .map(|n| {
                    let bytes = std::fs::read(dir.join(&n)).unwrap();
                    (n, bytes)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What one reader saw.
#[derive(Debug, Default, Clone)]
struct ReaderStats {
    queries: u64,
    failed: u64,
    wrong: u64,
    examples: Vec<String>,
}

/// `count(*)` and a checksum of every row.
fn checksum_query(t: &SparkTable) -> String {
    format!(
        "SELECT count(*), sum(hash(id, name, amount, price, ts, tags, dt)) FROM {}",
        t.qualified()
    )
}

/// Queries in a tight loop until `stop`, comparing with `expected`.
async fn reader(
    query: String,
    table: String,
    expected: Vec<Vec<String>>,
    refresh: bool,
    stop: Arc<AtomicBool>,
) -> ReaderStats {
    let mut s = spark::session("hsf_switch_reader").await;
    let mut stats = ReaderStats::default();
    while !stop.load(Ordering::SeqCst) {
        if refresh {
            let _ = spark::try_query(&mut s, &format!("REFRESH TABLE {table}")).await;
        }
        stats.queries += 1;
        match spark::try_query(&mut s, &query).await {
            Ok(rows) if rows == expected => {}
            Ok(rows) => {
                stats.wrong += 1;
                if stats.examples.len() < 3 {
                    stats.examples.push(format!("wrong answer {rows:?}"));
                }
            }
            Err(e) => {
                stats.failed += 1;
                if stats.examples.len() < 3 {
                    stats.examples.push(e.chars().take(300).collect());
                }
            }
        }
    }
    let _ = s.close().await;
    stats
}

/// Seconds of every `committed` event of the audit log, and their commit modes.
fn committed(agent: &Agent) -> Vec<(String, f64, String)> {
    agent
        .audit()
        .iter()
        .filter(|e| e["event"] == "committed")
        .map(|e| {
            (
                e["partition"].as_str().unwrap_or_default().to_owned(),
                e["seconds"].as_f64().unwrap_or_default(),
                e["report"]["commit"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// Every partition of a 22-partition Parquet table merged in one job while two readers
/// query in a loop; returns (reader figures, merge seconds per partition).
async fn reader_loop(mode: &str) -> (ReaderStats, f64) {
    let mut spark = Spark::open().await;
    let db = SparkDb::create(&mut spark, &format!("rl_{mode}")).await;
    let values: Vec<String> = (1..=22).map(|i| format!("p{i:02}")).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let t = SparkTable::create(&mut spark, &db, "events", "STORED AS PARQUET", &refs, 3).await;
    // Ground truth from how the rows were generated: 12 rows per partition and insert.
    let rows = (values.len() * 12 * 3) as u64;
    let query = checksum_query(&t);
    let expected = spark.query(&query).await;
    assert_eq!(expected[0][0], rows.to_string(), "rows generated");
    let original = seen(&mut spark, &t).await;
    let files_before: Vec<usize> = original
        .partitions
        .iter()
        .map(|p| t.files(p).len())
        .collect();
    let agent = Agent::with_commit(&db.name, "native", "1h", mode, "1h");

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = [false, true]
        .into_iter()
        .map(|refresh| {
            tokio::spawn(reader(
                query.clone(),
                t.qualified(),
                expected.clone(),
                refresh,
                Arc::clone(&stop),
            ))
        })
        .collect();
    // Let the readers' sessions plan on the old files first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (code, out) = agent.process.run(&agent.merge_args(&t.name, None)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let mut total = ReaderStats::default();
    for r in readers {
        let s = r.await.unwrap();
        total.queries += s.queries;
        total.failed += s.failed;
        total.wrong += s.wrong;
        total.examples.extend(s.examples);
    }
    assert_eq!(code, 0, "merge: {out}");
    let outcome: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(outcome["result"], "merged", "{outcome}");
    let commits = committed(&agent);
    assert_eq!(commits.len(), values.len(), "one commit per partition");
    assert!(
        commits.iter().all(|(_, _, m)| m == mode),
        "every partition committed by {mode}: {commits:?}"
    );
    let per_partition = commits.iter().map(|(_, s, _)| s).sum::<f64>() / commits.len() as f64;
    assert_same_through_spark(&mut spark, &t, &original, &format!("after {mode} merges")).await;
    if mode == "switch" {
        let mut seen_locations = std::collections::BTreeSet::new();
        for (p, files) in original.partitions.iter().zip(&files_before) {
            let l = location(&mut spark, &t, p).await;
            assert!(
                l.starts_with(t.dir.join(MERGED_DIR)),
                "{p} points into the hidden merged directory: {}",
                l.display()
            );
            assert!(seen_locations.insert(l.clone()), "a path of its own");
            assert_eq!(files_with_bytes(&l).len(), 1, "{p}: merged into one file");
            // Within the grace period the old directory is untouched.
            assert_eq!(t.files(p).len(), *files, "{p}: old files kept for readers");
        }
    }
    spark.close().await;
    drop(db);
    (total, per_partition)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_fail_during_switch_commits_and_swaps_are_measured() {
    require!(spark::unavailable());
    let (switch, switch_secs) = reader_loop("switch").await;
    let (swap, swap_secs) = reader_loop("swap").await;
    eprintln!(
        "reader loop, 22 partition merges each (Parquet, 2 readers: one long-lived session, one \
         refreshing):\n  switch: {} queries, {} failed, {} wrong; {switch_secs:.2} s per partition\n  \
         swap:   {} queries, {} failed, {} wrong; {swap_secs:.2} s per partition; e.g. {:?}",
        switch.queries,
        switch.failed,
        switch.wrong,
        swap.queries,
        swap.failed,
        swap.wrong,
        swap.examples
    );
    assert!(switch.queries >= 20, "the readers ran: {switch:?}");
    assert_eq!(
        (switch.failed, switch.wrong),
        (0, 0),
        "switch commits: no reader fails or sees a wrong answer: {:?}",
        switch.examples
    );
}

/// Fail points of a switch merge, and whether the partition points at the merged directory
/// after recovery.
const SWITCH_CRASHES: &[(&str, bool)] = &[
    ("after_lock", false),
    ("after_stage", false),
    ("after_verify", false),
    ("after_manifest", false),
    ("after_relist", false),
    ("after_new_dir", false),
    ("before_switch", false),
    ("after_switch", true),
    ("after_reconcile", true),
    ("after_commit", true),
];

/// GETs `url` until 200; how long it took.
async fn until_ready(url: &str) -> Duration {
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status().as_u16() == 200 {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{url} not ready in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_merges_killed_at_every_step_recover_at_restart() {
    require!(spark::unavailable());
    let started = Instant::now();
    let mut spark = Spark::open().await;
    let db = SparkDb::create(&mut spark, "switch_crash").await;
    let values: Vec<String> = (0..=SWITCH_CRASHES.len())
        .map(|i| format!("p{i:02}"))
        .collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let t = SparkTable::create(&mut spark, &db, "logs", "STORED AS TEXTFILE", &refs, 3).await;
    let original = seen(&mut spark, &t).await;
    assert_eq!(original.count, (values.len() * 36) as u64);
    let mut agent = Agent::with_commit(&db.name, "native", "1h", "switch", "1h");

    // One merge to the end, to roll back later.
    let first = &original.partitions[0];
    let old_first = location(&mut spark, &t, first).await;
    let old_files = files_with_bytes(&old_first);
    let (code, out) = agent
        .process
        .run(&agent.merge_args(&t.name, Some(first)))
        .await;
    assert_eq!(code, 0, "merge: {out}");
    assert_ne!(location(&mut spark, &t, first).await, old_first);
    assert_same_through_spark(&mut spark, &t, &original, "after a switch merge").await;

    for (i, (fp, switched)) in SWITCH_CRASHES.iter().enumerate() {
        let part = &original.partitions[i + 1];
        let before = location(&mut spark, &t, part).await;
        let files_before = t.files(part).len();
        assert!(files_before >= 2, "{part}: small files to merge");
        let mut child = agent
            .process
            .run_to_failpoint(&agent.merge_args(&t.name, Some(part)), fp, None)
            .await;
        // SIGKILL, not reaped: the process stays a zombie while the agent restarts.
        child.kill().unwrap();
        let restarted = Instant::now();
        let a = InProcessAgent::from_file(&agent.process.config_path()).await;
        let ready = until_ready(&format!("{}/ready", a.base_url)).await;
        let since_kill = restarted.elapsed();
        a.stop().await;
        let _ = child.wait();
        let now = location(&mut spark, &t, part).await;
        if *switched {
            assert!(
                now.starts_with(t.dir.join(MERGED_DIR)),
                "{fp}: rolled forward to the merged directory: {}",
                now.display()
            );
            assert_eq!(
                t.files(part).len(),
                files_before,
                "{fp}: old files kept for readers"
            );
        } else {
            assert_eq!(now, before, "{fp}: the partition stays where it was");
            assert_eq!(
                t.files(part).len(),
                files_before,
                "{fp}: the original files"
            );
        }
        assert_same_through_spark(&mut spark, &t, &original, &format!("{fp}: after restart")).await;
        eprintln!(
            "switch crash at {fp}: ready {ready:.1?} after the restart ({since_kill:.1?} after the kill)"
        );
    }

    // Rollback: the exact old files, at a path of their own.
    let merge_dir = agent
        .audit()
        .iter()
        .find(|e| e["event"] == "committed" && e["partition"] == first.as_str())
        .and_then(|e| e["report"]["merge_dir"].as_str().map(str::to_owned))
        .expect("the first merge's directory");
    let args: Vec<String> = ["rollback", "--cluster", "spark", "--merge-dir", &merge_dir]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let (code, out) = agent.process.run(&args).await;
    assert_eq!(code, 0, "rollback: {out}");
    let rolled = location(&mut spark, &t, first).await;
    assert_ne!(rolled, old_first, "a rollback never reuses a path");
    assert!(rolled.starts_with(t.dir.join(MERGED_DIR)));
    assert_eq!(
        files_with_bytes(&rolled),
        old_files,
        "rollback restores the exact old files"
    );
    assert_same_through_spark(&mut spark, &t, &original, "after the rollback").await;

    // Grace and retention over: old directories retire into the backups, which expire.
    agent.set_commit("switch", "0s");
    agent.write_config("native", "0s");
    for _ in 0..2 {
        agent.process.recover().await;
    }
    for p in &original.partitions {
        let l = location(&mut spark, &t, p).await;
        assert!(l.is_dir(), "{p} points at a directory");
        if l.starts_with(t.dir.join(MERGED_DIR)) {
            assert!(
                !t.dir.join(p).exists(),
                "{p}: the old directory retired after the grace period"
            );
        }
    }
    assert_same_through_spark(&mut spark, &t, &original, "after the grace period").await;
    spark.close().await;
    drop(db);
    eprintln!("switch crashes: done in {:.1?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_appending_during_switch_merges_lose_nothing() {
    require!(spark::unavailable());
    let mut spark = Spark::open().await;
    let db = SparkDb::create(&mut spark, "switch_writer").await;
    let values: Vec<String> = (1..=10).map(|i| format!("p{i:02}")).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let t = SparkTable::create(&mut spark, &db, "facts", "STORED AS PARQUET", &refs, 3).await;
    let mut agent = Agent::with_commit(&db.name, "native", "1h", "switch", "1h");
    // Inserts that planned just before a switch start their jobs within this.
    agent.set_settle("5s");
    agent.write_config("native", "1h");
    let totals = |rows: &[Vec<String>]| (rows[0][0].clone(), rows[0][1].clone());
    let q = format!("SELECT count(*), sum(id) FROM {}", t.qualified());
    // Ground truth from the generation: ids i*1000 + 0..120 for i in 0..3.
    let mut count: u64 = 360;
    let mut sum: i64 = (0..3)
        .map(|i| (0..120).map(|j| i * 1000 + j).sum::<i64>())
        .sum();
    assert_eq!(
        totals(&spark.query(&q).await),
        (count.to_string(), sum.to_string())
    );
    let (mut merged, mut aborted) = (0, 0);
    for (run, part) in values.iter().enumerate() {
        let delay = Duration::from_millis(rand::random::<u64>() % 3000);
        let process = agent.process.clone();
        let args = agent.merge_args(&t.name, Some(&format!("dt={part}")));
        let merge = tokio::spawn(async move { process.run(&args).await });
        tokio::time::sleep(delay).await;
        let base = 100_000 + run as i64 * 10;
        let mut writer = Spark::open().await;
        writer
            .exec(&format!(
                "INSERT INTO {} PARTITION (dt={}) SELECT CAST(id AS INT), 'late', 1.0, 1.00, \
                 timestamp_seconds(1700000000), array('w') FROM range({base}, {})",
                t.qualified(),
                string_literal(part, Engine::Spark),
                base + 4
            ))
            .await;
        writer.close().await;
        count += 4;
        sum += (base..base + 4).sum::<i64>();
        let (code, out) = merge.await.unwrap();
        let outcome: Json = serde_json::from_str(&out).unwrap_or(Json::Null);
        match outcome["result"].as_str() {
            Some("merged") => merged += 1,
            _ => {
                aborted += 1;
                eprintln!("run {run}: merge did not commit (exit {code}): {out}");
            }
        }
        spark
            .exec(&format!("REFRESH TABLE {}", t.qualified()))
            .await;
        assert_eq!(
            totals(&spark.query(&q).await),
            (count.to_string(), sum.to_string()),
            "run {run} (writer after {delay:?}): no row lost or doubled"
        );
    }
    eprintln!("appending writer: 10 runs, {merged} merges committed, {aborted} aborted");
    let parts = spark.repair_and_list(&t.qualified()).await;
    assert_eq!(parts.len(), values.len(), "MSCK registers nothing new");
    spark.close().await;
    drop(db);
}

/// The race of a Hive-format insert with a switch merge, made deterministic: the merge pauses
/// right after its switch, a writer that looked the partition up before it puts a file into
/// the old directory, the merge goes on, and then the writer's `loadPartition` writes the old
/// location back (`ALTER … SET LOCATION` through Spark, as Hive's `alterPartition` does). The
/// agent must have switched back and left the arrival where it was: the partition reads the
/// old directory with every row, the writer's included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_arriving_after_the_switch_switches_back_and_survives_a_location_write_back() {
    require!(spark::unavailable());
    let mut p = PausedAfterSwitch::start("switch_arrival", "1s").await;
    let (data, added) = p.writer_file();
    std::fs::write(p.old.join("000099_0"), &data).unwrap();
    let (code, stdout) = p.resume().await;
    p.assert_switched_back(code, &stdout).await;
    // The writer's loadPartition writes the location it looked up.
    p.spark
        .exec(&format!(
            "ALTER TABLE {} PARTITION (dt='p00') SET LOCATION 'file:{}'",
            p.t.qualified(),
            p.old.display()
        ))
        .await;
    p.assert_rows(p.original.count + added).await;
    assert!(p.old.join("000099_0").is_file(), "the arrival stayed");
    p.spark.close().await;
    drop(p.db);
}

/// A write in flight in the table's directory (here the `_temporary` directory of Hadoop's
/// FileOutputCommitter, which Spark's inserts use for partitions at their default path) makes
/// a switch merge leave the partition alone: that writer resolved the old location and would
/// put its files there after the switch. Once the write is over, the merge goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_flight_keeps_the_partition_from_being_switched() {
    require!(spark::unavailable());
    let mut spark = Spark::open().await;
    let db = SparkDb::create(&mut spark, "switch_inflight").await;
    let t = SparkTable::create(&mut spark, &db, "logs", "STORED AS TEXTFILE", &["p00"], 3).await;
    let original = seen(&mut spark, &t).await;
    let part = original.partitions[0].clone();
    let old = location(&mut spark, &t, &part).await;
    let agent = Agent::with_commit(&db.name, "native", "1h", "switch", "1h");
    let staging = t.dir.join("_temporary/0/_temporary");
    std::fs::create_dir_all(&staging).unwrap();
    let (code, out) = agent
        .process
        .run(&agent.merge_args(&t.name, Some(&part)))
        .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("writer_in_flight"), "{out}");
    assert_eq!(location(&mut spark, &t, &part).await, old, "not switched");
    assert_same_through_spark(&mut spark, &t, &original, "after the refusal").await;
    std::fs::remove_dir_all(t.dir.join("_temporary")).unwrap();
    let (code, out) = agent
        .process
        .run(&agent.merge_args(&t.name, Some(&part)))
        .await;
    assert_eq!(code, 0, "{out}");
    assert_ne!(location(&mut spark, &t, &part).await, old, "switched");
    assert_same_through_spark(&mut spark, &t, &original, "after the merge").await;
    spark.close().await;
    drop(db);
}

/// An insert that looked the partition up just before the switch but started its job after
/// the agent's in-flight check (Spark resolves partition locations while planning and creates
/// `_temporary` when the job starts): the merge, paused right after its switch, finds the
/// writer's staging directory while it settles, waits for the write to end, sees its file in
/// the old directory and switches back. Without the wait it would commit, and the insert's
/// rows would stay out of sight until the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_starting_its_job_after_the_switch_is_waited_for() {
    require!(spark::unavailable());
    let mut p = PausedAfterSwitch::start("switch_settle", "3s").await;
    let (data, added) = p.writer_file();
    // The writer's job starts: FileOutputCommitter's staging in the table's directory.
    std::fs::create_dir_all(p.t.dir.join("_temporary/0/_temporary")).unwrap();
    let writer = {
        let (old, table_dir) = (p.old.clone(), p.t.dir.clone());
        tokio::spawn(async move {
            // The job runs past the end of the settle period, then commits into the location
            // it planned on and removes its staging.
            tokio::time::sleep(Duration::from_secs(4)).await;
            std::fs::write(old.join("000099_0"), &data).unwrap();
            std::fs::remove_dir_all(table_dir.join("_temporary")).unwrap();
        })
    };
    let (code, stdout) = p.resume().await;
    writer.await.unwrap();
    p.assert_switched_back(code, &stdout).await;
    p.assert_rows(p.original.count + added).await;
    p.spark.close().await;
    drop(p.db);
}

/// A one-partition text table and a switch merge of it paused right after its switch.
struct PausedAfterSwitch {
    spark: Spark,
    db: SparkDb,
    t: SparkTable,
    original: Seen,
    part: String,
    /// The partition's directory before the switch.
    old: PathBuf,
    agent: Agent,
    child: Option<std::process::Child>,
}

impl PausedAfterSwitch {
    async fn start(name: &str, settle: &str) -> Self {
        let mut spark = Spark::open().await;
        let db = SparkDb::create(&mut spark, name).await;
        let t =
            SparkTable::create(&mut spark, &db, "logs", "STORED AS TEXTFILE", &["p00"], 3).await;
        let original = seen(&mut spark, &t).await;
        let part = original.partitions[0].clone();
        let old = location(&mut spark, &t, &part).await;
        let mut agent = Agent::with_commit(&db.name, "native", "1h", "switch", "1h");
        agent.set_settle(settle);
        agent.write_config("native", "1h");
        let child = agent
            .process
            .run_to_failpoint(
                &agent.merge_args(&t.name, Some(&part)),
                "after_switch",
                Some(&agent.dir.path().join("resume")),
            )
            .await;
        assert_ne!(
            location(&mut spark, &t, &part).await,
            old,
            "paused after the switch"
        );
        Self {
            spark,
            db,
            t,
            original,
            part,
            old,
            agent,
            child: Some(child),
        }
    }

    /// A writer's file: a copy of one of the partition's files (to be put under a new name),
    /// and its rows.
    fn writer_file(&self) -> (Vec<u8>, u64) {
        let first = self.t.files(&self.part)[0].clone();
        let data = std::fs::read(self.old.join(&first)).unwrap();
        let rows = data.iter().filter(|b| **b == b'\n').count() as u64;
        assert!(rows > 0);
        (data, rows)
    }

    /// The merge was abandoned (`source_changed`) and the partition points at its old
    /// directory again.
    async fn assert_switched_back(&mut self, code: Option<i32>, stdout: &str) {
        assert_eq!(code, Some(1), "the merge is abandoned: {stdout}");
        assert!(stdout.contains("source_changed"), "{stdout}");
        assert_eq!(
            location(&mut self.spark, &self.t, &self.part).await,
            self.old,
            "switched back"
        );
    }

    /// Spark reads `count` rows of the table, the writer's included.
    async fn assert_rows(&mut self, count: u64) {
        self.spark
            .exec(&format!("REFRESH TABLE {}", self.t.qualified()))
            .await;
        assert_eq!(
            seen(&mut self.spark, &self.t).await.count,
            count,
            "every row, the writer's included"
        );
    }

    /// Lets the merge go on; its exit code and standard output.
    async fn resume(&mut self) -> (Option<i32>, String) {
        let child = self.child.take().expect("paused once");
        let resume = self.agent.dir.path().join("resume");
        hive_smallfiles_tests::agent_process::resume_and_wait(child, &resume).await
    }
}
