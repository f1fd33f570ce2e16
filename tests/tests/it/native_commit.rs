//! The native executor's commit protocol under crashes and concurrent writers, over a local
//! `file:` warehouse and over the WebHDFS server written from the Hadoop documentation.
//!
//! Every case runs the real agent binary (`merge`, `recover`, `rollback`) as a child process
//! against a Hive MetaStore schema in MariaDB. A fail point stops the child at one step of
//! the protocol; the test kills it with SIGKILL, runs `recover`, and then compares the
//! partition's rows — read straight from the files, independently of the agent — as
//! multisets with the originals. The file count must be exactly the old one (crash before
//! the swap) or the planned one (crash after the first rename), and no staging is left.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hive_smallfiles_tests::agent_process::{AgentProcess, kill9};
use hive_smallfiles_tests::metastore_fixture::{
    DbKind, FixtureDb, FixtureTable, Format, SchemaVersion, unique_db_name,
};
use hive_smallfiles_tests::rows::{multiset, parquet_rows, text_lines};
use hive_smallfiles_tests::webhdfs_server::{
    Namespace, RunningServer, ServerOptions, WebHdfsServer,
};

const AREA_PREFIX: &str = ".hive-smallfiles.";

/// Where the warehouse lives.
enum Store {
    Local(PathBuf),
    WebHdfs(RunningServer),
}

impl Store {
    fn ns(&self) -> Arc<Namespace> {
        match self {
            Self::WebHdfs(s) => Arc::clone(s.handle().namespace()),
            Self::Local(_) => unreachable!(),
        }
    }

    /// Root path of the warehouse as the MetaStore names it.
    fn root(&self) -> String {
        match self {
            Self::Local(p) => p.display().to_string(),
            Self::WebHdfs(_) => "/warehouse".to_owned(),
        }
    }

    fn location(&self, path: &str) -> String {
        match self {
            Self::Local(_) => format!("file:{path}"),
            Self::WebHdfs(_) => format!("hdfs://testns{path}"),
        }
    }

    fn write(&self, path: &str, data: &[u8]) {
        match self {
            Self::Local(_) => {
                std::fs::create_dir_all(Path::new(path).parent().unwrap()).unwrap();
                std::fs::write(path, data).unwrap();
            }
            Self::WebHdfs(_) => {
                self.ns().add_file(path, data.to_vec()).unwrap();
            }
        }
    }

    fn read(&self, path: &str) -> Vec<u8> {
        match self {
            Self::Local(_) => std::fs::read(path).unwrap(),
            Self::WebHdfs(_) => self.ns().read_file(path).unwrap().to_vec(),
        }
    }

    /// (name, is_dir) of a directory's children; `None` when it does not exist.
    fn list(&self, dir: &str) -> Option<Vec<(String, bool)>> {
        match self {
            Self::Local(_) => {
                let rd = std::fs::read_dir(dir).ok()?;
                let mut v: Vec<(String, bool)> = rd
                    .map(|e| {
                        let e = e.unwrap();
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            e.file_type().unwrap().is_dir(),
                        )
                    })
                    .collect();
                v.sort();
                Some(v)
            }
            Self::WebHdfs(_) => {
                let v = self.ns().list(dir).ok()?;
                Some(
                    v.into_iter()
                        .map(|s| {
                            let dir = matches!(
                                s.file_type,
                                hive_smallfiles_tests::webhdfs_server::FileType::Directory
                            );
                            (s.path_suffix, dir)
                        })
                        .collect(),
                )
            }
        }
    }

    fn storage_toml(&self) -> String {
        match self {
            Self::Local(p) => format!("type = \"local\"\nroot = \"{}\"", p.display()),
            Self::WebHdfs(s) => format!(
                "type = \"webhdfs\"\nnamenodes = [\"{}\"]\nuser = \"hive\"\nauthorities = [\"testns\"]\nrequest_timeout = \"10s\"",
                s.handle().namenode_url(0)
            ),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Text,
    Parquet,
}

/// A partitioned table with two partitions of many small files.
struct TableCase {
    name: String,
    kind: Kind,
    /// Absolute partition directories.
    parts: Vec<String>,
    table_dir: String,
}

fn text_file(part: usize, file: usize) -> Vec<u8> {
    let mut s = String::new();
    for line in 0..(3 + file % 4) {
        s.push_str(&format!("{part}\tf{file}-l{line}\tvalue with spaces ü\n"));
    }
    if file % 3 == 0 {
        // No trailing newline: the merge must add one.
        s.pop();
    }
    if file == 5 {
        s.clear();
    }
    s.into_bytes()
}

fn parquet_file(part: usize, file: usize) -> Vec<u8> {
    hive_smallfiles_tests::samples::parquet_file(
        (part * 1000 + file * 50) as i64,
        5 + file,
        &format!("p{part}-f{file}"),
    )
}

const FILES_PER_PART: usize = 12;

impl TableCase {
    fn create(store: &Store, db: &str, name: &str, kind: Kind) -> (Self, FixtureTable) {
        let table_dir = format!("{}/{db}.db/{name}", store.root());
        let format = match kind {
            Kind::Text => Format::Text,
            Kind::Parquet => Format::Parquet,
        };
        let mut t = FixtureTable::new(db, name, format, &store.location(&table_dir))
            .partitioned_by(&[("dt", "string")]);
        let mut parts = Vec::new();
        for (p, value) in ["2024-01-01", "a b%c"].iter().enumerate() {
            t = t.partition(&[value]);
            let part_name = t.partitions.last().unwrap().name.clone();
            let dir = format!("{table_dir}/{part_name}");
            for f in 0..FILES_PER_PART {
                let (file_name, data) = match kind {
                    Kind::Text => (format!("{f:06}_0"), text_file(p, f)),
                    Kind::Parquet => (format!("part-{f:05}.snappy.parquet"), parquet_file(p, f)),
                };
                store.write(&format!("{dir}/{file_name}"), &data);
            }
            store.write(&format!("{dir}/_SUCCESS"), b"");
            parts.push(dir);
        }
        (
            Self {
                name: name.to_owned(),
                kind,
                parts,
                table_dir,
            },
            t,
        )
    }

    /// Visible data files of a partition.
    fn files(&self, store: &Store, part: usize) -> Vec<String> {
        store
            .list(&self.parts[part])
            .unwrap_or_default()
            .into_iter()
            .filter(|(n, d)| !d && !n.starts_with('.') && !n.starts_with('_'))
            .map(|(n, _)| n)
            .collect()
    }

    /// Rows of all partitions, read from the files (independently of the agent).
    fn rows(&self, store: &Store) -> BTreeMap<String, usize> {
        let mut all = Vec::new();
        for (p, dir) in self.parts.iter().enumerate() {
            for f in self.files(store, p) {
                let data = store.read(&format!("{dir}/{f}"));
                match self.kind {
                    Kind::Text => all.extend(text_lines(&data, f.ends_with(".gz"))),
                    Kind::Parquet => all.extend(parquet_rows(&data)),
                }
            }
        }
        multiset(all)
    }

    /// Staging areas left beside the partitions.
    fn areas(&self, store: &Store) -> Vec<String> {
        store
            .list(&self.table_dir)
            .unwrap_or_default()
            .into_iter()
            .filter(|(n, _)| n.starts_with(AREA_PREFIX))
            .map(|(n, _)| n)
            .collect()
    }

    fn assert_no_staging(&self, store: &Store, context: &str) {
        assert_eq!(
            self.areas(store),
            Vec::<String>::new(),
            "{context}: staging left"
        );
    }

    fn has_success_markers(&self, store: &Store) -> bool {
        self.parts.iter().all(|d| {
            store
                .list(d)
                .unwrap_or_default()
                .iter()
                .any(|(n, _)| n == "_SUCCESS")
        })
    }
}

struct Harness {
    dir: tempfile::TempDir,
    agent: AgentProcess,
    store: Store,
    db: Option<FixtureDb>,
}

impl Harness {
    async fn new(webhdfs: bool, tables: &[(&str, Kind)]) -> (Self, Vec<TableCase>) {
        let dir = tempfile::tempdir().unwrap();
        let store = if webhdfs {
            let server = WebHdfsServer::start(ServerOptions::new().default_user("hive"))
                .await
                .unwrap();
            server.handle().namespace().mkdirs("/warehouse").unwrap();
            Store::WebHdfs(server)
        } else {
            let root = dir.path().join("warehouse");
            std::fs::create_dir_all(&root).unwrap();
            Store::Local(root)
        };
        let db_name = unique_db_name(if webhdfs {
            "native_hdfs"
        } else {
            "native_local"
        });
        let db = FixtureDb::create(DbKind::Mysql, SchemaVersion::Hive3_1, &db_name)
            .await
            .expect("MariaDB with the Hive 3.1 schema");
        let mut cases = Vec::new();
        let mut fixtures = Vec::new();
        for (name, kind) in tables {
            let (c, f) = TableCase::create(&store, "sales", name, *kind);
            cases.push(c);
            fixtures.push(f);
        }
        db.insert(&fixtures).await.unwrap();
        let h = Self {
            agent: AgentProcess::new(crate::AGENT_BIN, dir.path()),
            dir,
            store,
            db: Some(db),
        };
        h.write_config("0s");
        (h, cases)
    }

    fn write_config(&self, retention: &str) {
        let db = self.db.as_ref().unwrap().db_name().to_owned();
        let text = format!(
            r#"audit_log = "audit.jsonl"
[native]
agent_id = "crash-test-agent"
backup_retention = "{retention}"
spool_dir = "spool"
[policy]
quiet_period = "0s"
min_excess_files = 1
[[cluster]]
name = "c"
engine = "spark"
executor = "native"
target_file_bytes = "1MiB"
[cluster.metastore]
url = "mysql://root@127.0.0.1:3306/{db}"
[cluster.storage]
{}
"#,
            self.store.storage_toml()
        );
        std::fs::write(self.agent.config_path(), text).unwrap();
    }

    fn merge_args(table: &str) -> Vec<String> {
        [
            "merge",
            "--cluster",
            "c",
            "--database",
            "sales",
            "--table",
            table,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    async fn finish(mut self) {
        if let Some(db) = self.db.take() {
            let _ = db.drop_database().await;
        }
        if let Store::WebHdfs(s) = self.store {
            s.shutdown().await;
        }
    }
}

/// Fail points of a merge and whether the merge is done (new files) after recovery.
const MERGE_FAILPOINTS: &[(&str, bool)] = &[
    ("after_lock", false),
    ("after_stage", false),
    ("after_verify", false),
    ("after_manifest", false),
    ("after_relist", false),
    ("between_renames", true),
    ("after_swap", true),
    ("after_reconcile", true),
    ("after_commit", true),
];

async fn crash_at_every_step(webhdfs: bool, kind: Kind) {
    let names: Vec<String> = MERGE_FAILPOINTS
        .iter()
        .map(|(fp, _)| format!("t_{fp}"))
        .collect();
    let specs: Vec<(&str, Kind)> = names.iter().map(|n| (n.as_str(), kind)).collect();
    let (h, cases) = Harness::new(webhdfs, &specs).await;
    for (case, (fp, merged)) in cases.iter().zip(MERGE_FAILPOINTS) {
        let rows_before = case.rows(&h.store);
        let files_before: Vec<usize> = (0..2).map(|p| case.files(&h.store, p).len()).collect();
        assert_eq!(files_before, vec![FILES_PER_PART; 2]);

        let child = h
            .agent
            .run_to_failpoint(&Harness::merge_args(&case.name), fp, None)
            .await;
        // The first partition's merge is stopped; the second never started.
        kill9(child);
        // What a reader sees right after the crash: old or new rows, never both or a part
        // (between the renames the partition directory is absent: no rows from it at all).
        if *fp != "between_renames" {
            assert_eq!(
                case.rows(&h.store),
                rows_before,
                "{fp}: rows right after the crash"
            );
        }
        let recovered = h.agent.recover().await;
        assert!(
            recovered
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["error"].is_null()),
            "{fp}: {recovered}"
        );
        assert_eq!(
            case.rows(&h.store),
            rows_before,
            "{fp}: rows after recovery"
        );
        let files: Vec<usize> = (0..2).map(|p| case.files(&h.store, p).len()).collect();
        let stopped = files.iter().filter(|n| **n == FILES_PER_PART).count();
        if *merged {
            assert_eq!(
                stopped, 1,
                "{fp}: one partition merged, one untouched: {files:?}"
            );
            assert!(
                files.contains(&1),
                "{fp}: merged partition has the planned 1 file: {files:?}"
            );
        } else {
            assert_eq!(files, files_before, "{fp}: nothing merged: {files:?}");
        }
        assert!(case.has_success_markers(&h.store), "{fp}: _SUCCESS kept");
        case.assert_no_staging(&h.store, fp);

        // And the merge can run again to the end.
        let (code, out) = h.agent.run(&Harness::merge_args(&case.name)).await;
        assert_eq!(code, 0, "{fp}: merge after recovery: {out}");
        assert_eq!(
            case.rows(&h.store),
            rows_before,
            "{fp}: rows after the second merge"
        );
        let files: Vec<usize> = (0..2).map(|p| case.files(&h.store, p).len()).collect();
        assert_eq!(files, vec![1, 1], "{fp}: planned file count");
        h.agent.recover().await;
        case.assert_no_staging(&h.store, &format!("{fp}, at the end"));
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_at_every_step_local_text() {
    crash_at_every_step(false, Kind::Text).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_at_every_step_webhdfs_text() {
    crash_at_every_step(true, Kind::Text).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_at_every_step_webhdfs_parquet() {
    crash_at_every_step(true, Kind::Parquet).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_at_every_step_local_parquet() {
    crash_at_every_step(false, Kind::Parquet).await;
}

/// A merge directory of a partition (committed, kept for rollback).
fn merge_dirs(store: &Store, case: &TableCase, part: usize) -> Vec<String> {
    let leaf = case.parts[part].rsplit('/').next().unwrap();
    let area = format!("{}/{AREA_PREFIX}{leaf}", case.table_dir);
    store
        .list(&area)
        .unwrap_or_default()
        .into_iter()
        .filter(|(n, d)| *d && n.starts_with('m'))
        .map(|(n, _)| format!("{area}/{n}"))
        .collect()
}

async fn rollback_with_crashes(webhdfs: bool) {
    let (h, cases) = Harness::new(
        webhdfs,
        &[
            ("r_clean", Kind::Text),
            ("r_first", Kind::Text),
            ("r_swap", Kind::Parquet),
        ],
    )
    .await;
    h.write_config("1h");
    for (case, fp) in cases.iter().zip([
        None,
        Some("rollback_after_first_rename"),
        Some("rollback_after_swap"),
    ]) {
        let rows_before = case.rows(&h.store);
        let (code, out) = h.agent.run(&Harness::merge_args(&case.name)).await;
        assert_eq!(code, 0, "merge: {out}");
        assert_eq!(case.files(&h.store, 0).len(), 1);
        // Written after the merge: must survive the rollback.
        let late = match case.kind {
            Kind::Text => b"late\trow\n".to_vec(),
            Kind::Parquet => parquet_file(7, 7),
        };
        h.store
            .write(&format!("{}/late-file", case.parts[0]), &late);
        let mut rows_expected = rows_before.clone();
        let late_rows = match case.kind {
            Kind::Text => text_lines(&late, false),
            Kind::Parquet => parquet_rows(&late),
        };
        for r in late_rows {
            *rows_expected.entry(r).or_default() += 1;
        }
        assert_eq!(case.rows(&h.store), rows_expected);
        // Recovery keeps committed merges within retention.
        h.agent.recover().await;
        let dirs = merge_dirs(&h.store, case, 0);
        assert_eq!(dirs.len(), 1, "one kept merge directory");
        let args: Vec<String> = ["rollback", "--cluster", "c", "--merge-dir", &dirs[0]]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        match fp {
            None => {
                let (code, out) = h.agent.run(&args).await;
                assert_eq!(code, 0, "rollback: {out}");
            }
            Some(fp) => {
                let child = h.agent.run_to_failpoint(&args, fp, None).await;
                kill9(child);
                h.agent.recover().await;
            }
        }
        assert_eq!(
            case.rows(&h.store),
            rows_expected,
            "{fp:?}: rows after rollback"
        );
        assert_eq!(
            case.files(&h.store, 0).len(),
            FILES_PER_PART + 1,
            "{fp:?}: originals back"
        );
        assert!(case.has_success_markers(&h.store));
    }
    h.write_config("0s");
    h.agent.recover().await;
    for case in &cases {
        case.assert_no_staging(&h.store, "after retention");
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_and_crashes_during_rollback_local() {
    rollback_with_crashes(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_and_crashes_during_rollback_webhdfs() {
    rollback_with_crashes(true).await;
}

/// A writer acting while the merge is paused at `failpoint`; the merge then goes on.
async fn concurrent_writer(webhdfs: bool) {
    let (h, cases) = Harness::new(
        webhdfs,
        &[
            ("w_new_before_relist", Kind::Text),
            ("w_new_in_swap_window", Kind::Text),
            ("w_append_in_swap_window", Kind::Text),
        ],
    )
    .await;
    let plan = [
        ("after_manifest", "new", 1, "new_file_arrived"),
        ("after_relist", "new", 0, ""),
        ("after_relist", "append", 1, "source_changed"),
    ];
    for (case, (fp, action, want_code, reason)) in cases.iter().zip(plan) {
        let mut rows_expected = case.rows(&h.store);
        let resume = h.dir.path().join(format!("resume-{}", case.name));
        let child = h
            .agent
            .run_to_failpoint(&Harness::merge_args(&case.name), fp, Some(&resume))
            .await;
        let dir = &case.parts[0];
        let added: &[u8] = b"0\tarrived\tduring the merge\n";
        match action {
            "new" => h.store.write(&format!("{dir}/000099_0"), added),
            _ => {
                let first = case.files(&h.store, 0)[0].clone();
                let mut data = h.store.read(&format!("{dir}/{first}"));
                if !data.ends_with(b"\n") && !data.is_empty() {
                    // The merged output would have added this newline itself.
                    data.push(b'\n');
                    let removed = text_lines(&h.store.read(&format!("{dir}/{first}")), false);
                    for r in removed {
                        *rows_expected.get_mut(&r).unwrap() -= 1;
                    }
                    for r in text_lines(&data, false) {
                        *rows_expected.entry(r).or_default() += 1;
                    }
                }
                data.extend_from_slice(added);
                h.store.write(&format!("{dir}/{first}"), &data);
            }
        }
        *rows_expected
            .entry(text_lines(added, false)[0].clone())
            .or_default() += 1;
        rows_expected.retain(|_, n| *n > 0);
        let (code, stdout) =
            hive_smallfiles_tests::agent_process::resume_and_wait(child, &resume).await;
        assert_eq!(code, Some(want_code), "{fp}/{action}: {stdout}");
        if !reason.is_empty() {
            assert!(
                stdout.contains(reason),
                "{fp}/{action}: result says why: {stdout}"
            );
        }
        assert_eq!(
            case.rows(&h.store),
            rows_expected,
            "{fp}/{action}: no row lost or doubled"
        );
        h.agent.recover().await;
        assert_eq!(
            case.rows(&h.store),
            rows_expected,
            "{fp}/{action}: after recovery"
        );
        case.assert_no_staging(&h.store, &format!("{fp}/{action}"));
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writer_aborts_or_is_kept_local() {
    concurrent_writer(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writer_aborts_or_is_kept_webhdfs() {
    concurrent_writer(true).await;
}

/// Two agents never merge the same partition; a live agent's lock is respected, a dead
/// one's is broken.
#[tokio::test(flavor = "multi_thread")]
async fn lock_excludes_a_second_agent() {
    let (h, cases) = Harness::new(false, &[("l_locked", Kind::Text)]).await;
    let case = &cases[0];
    let resume = h.dir.path().join("resume-lock");
    let first = h
        .agent
        .run_to_failpoint(
            &Harness::merge_args(&case.name),
            "after_lock",
            Some(&resume),
        )
        .await;
    // Another agent id: the lock is fresh, so it is held.
    let cfg = std::fs::read_to_string(h.agent.config_path()).unwrap();
    std::fs::write(
        h.agent.config_path(),
        cfg.replace("crash-test-agent", "other-agent"),
    )
    .unwrap();
    let (code, out) = h
        .agent
        .run(
            &[
                "merge",
                "--cluster",
                "c",
                "--database",
                "sales",
                "--table",
                "l_locked",
                "--partition",
                case.parts[0].rsplit('/').next().unwrap(),
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>(),
        )
        .await;
    assert_eq!(
        code, 1,
        "second agent must not merge a locked partition: {out}"
    );
    assert!(out.contains("locked"), "{out}");
    std::fs::write(h.agent.config_path(), cfg).unwrap();
    std::fs::write(&resume, b"go").unwrap();
    let out = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(case.files(&h.store, 0).len(), 1);
    h.finish().await;
}

/// `serve` on `port`.
fn serve_args(port: u16) -> Vec<String> {
    vec![
        "--web.listen-address".to_owned(),
        format!("127.0.0.1:{port}"),
        "serve".to_owned(),
    ]
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Starts `serve`, requests a merge of `table` through the API and returns once the job
/// stands at the `after_stage` fail point of its first partition (until `resume` exists):
/// the child, its API base URL and the job id.
async fn serve_held_in_a_merge(
    h: &Harness,
    table: &str,
    resume: &Path,
) -> (std::process::Child, String, u64) {
    use std::time::Duration;
    let port = hive_smallfiles_tests::process::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let submit = tokio::spawn({
        let base = base.clone();
        let body = serde_json::json!({"cluster": "c", "database": "sales", "table": table});
        async move {
            loop {
                if let Ok(r) = http_client()
                    .post(format!("{base}/api/v1/merges"))
                    .json(&body)
                    .send()
                    .await
                    && r.status() == 202
                {
                    let job: serde_json::Value = r.json().await.unwrap();
                    return job["id"].as_u64().unwrap();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let child = h
        .agent
        .run_to_failpoint(&serve_args(port), "after_stage", Some(resume))
        .await;
    (child, base, submit.await.unwrap())
}

/// SIGTERM, then waits until the agent stops serving HTTP.
async fn terminate(child: &std::process::Child, base: &str) {
    use std::time::{Duration, Instant};
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_ok()
    {
        assert!(
            Instant::now() < deadline,
            "the agent kept serving after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The job as the agent's state store has it (the agent has exited).
fn stored_job(h: &Harness, id: u64) -> hive_smallfiles_agent::work::JobRecord {
    use hive_smallfiles_agent::store::{HistoryLimits, JobStore, RedbStore};
    let store = RedbStore::open(
        h.dir.path(),
        HistoryLimits::default(),
        Arc::new(hive_smallfiles_agent::metrics::AgentMetrics::new()),
    )
    .unwrap();
    store
        .active()
        .into_iter()
        .find(|j| j.record.id == id)
        .expect("the job is still queued")
        .record
}

/// Starts `serve` (no fail point): the child and its API base URL.
fn start_serving(h: &Harness) -> (std::process::Child, String) {
    let port = hive_smallfiles_tests::process::free_port();
    let mut cmd = h.agent.command(&serve_args(port));
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    (cmd.spawn().unwrap(), format!("http://127.0.0.1:{port}"))
}

/// Starts the agent again and waits until job `id` has finished merged; both partitions then
/// have their planned single file and the rows are unchanged.
async fn restart_finishes(
    h: &Harness,
    case: &TableCase,
    id: u64,
    rows_before: &BTreeMap<String, usize>,
) {
    use std::time::{Duration, Instant};
    let (child, base) = start_serving(h);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http_client()
            .get(format!("{base}/api/v1/merges/{id}"))
            .send()
            .await
            && let Ok(job) = r.json::<serde_json::Value>().await
            && job["state"] == "finished"
        {
            assert_eq!(job["outcome"]["result"], "merged", "{job}");
            break;
        }
        assert!(Instant::now() < deadline, "the job did not continue");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kill9(child);
    let files: Vec<usize> = (0..2).map(|p| case.files(&h.store, p).len()).collect();
    assert_eq!(files, [1, 1]);
    assert_eq!(&case.rows(&h.store), rows_before);
}

/// The serving agent gets SIGTERM while a job is inside its first partition's merge (held at
/// a fail point): it finishes that partition, starts no other, exits within the drain
/// timeout, and the state store has the job queued again as stopped for shutdown; the next
/// start merges the other partition under the same job id, and after one more restart the
/// job is rolled back by its id (both partitions' originals back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_job_at_the_next_partition_and_the_restart_continues_it() {
    let (h, cases) = Harness::new(false, &[("drain", Kind::Text)]).await;
    // Backups kept, for the rollback by job id at the end.
    h.write_config("1h");
    let case = &cases[0];
    let rows_before = case.rows(&h.store);
    let resume = h.dir.path().join("resume-drain");
    let (mut child, base, id) = serve_held_in_a_merge(&h, "drain", &resume).await;
    terminate(&child, &base).await;
    assert!(child.try_wait().unwrap().is_none(), "it waits for the job");
    std::fs::write(&resume, b"").unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    let files: Vec<usize> = (0..2).map(|p| case.files(&h.store, p).len()).collect();
    assert_eq!(
        files.iter().filter(|n| **n == FILES_PER_PART).count(),
        1,
        "one partition merged, the other not started: {files:?}"
    );
    assert!(files.contains(&1), "{files:?}");
    assert_eq!(case.rows(&h.store), rows_before);
    let job = stored_job(&h, id);
    assert_eq!(job.stopped.as_deref(), Some("shutdown"));
    assert_eq!(job.attempts, 0, "the attempt is not counted");
    assert!(
        matches!(
            job.outcome,
            Some(hive_smallfiles_agent::work::JobOutcome::Merged { partitions: 1, .. })
        ),
        "{:?}",
        job.outcome
    );
    restart_finishes(&h, case, id, &rows_before).await;
    // Rollback by job id after yet another restart: the merges of both runs of the job
    // were recorded in the state store.
    let (child, base) = start_serving(&h);
    // Once start-up recovery is done (it holds partition locks while it runs).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !http_client()
        .get(format!("{base}/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        if std::time::Instant::now() > deadline {
            kill9(child);
            panic!("the agent did not become ready");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = http_client()
        .post(format!("{base}/api/v1/merges/{id}/rollback"))
        .send()
        .await;
    let r = match r {
        Ok(r) => (r.status(), r.json::<serde_json::Value>().await),
        Err(e) => {
            kill9(child);
            panic!("rollback: {e}");
        }
    };
    kill9(child);
    let (status, body) = (r.0, r.1.unwrap());
    assert_eq!(status, 200, "{body}");
    let rollbacks = body["rollbacks"].as_array().unwrap();
    assert_eq!(rollbacks.len(), 2, "{body}");
    assert!(rollbacks.iter().all(|r| r["error"].is_null()), "{body}");
    let files: Vec<usize> = (0..2).map(|p| case.files(&h.store, p).len()).collect();
    assert_eq!(files, [FILES_PER_PART, FILES_PER_PART]);
    assert_eq!(case.rows(&h.store), rows_before);
    h.finish().await;
}

/// With `[shutdown] drain_timeout = "1s"` and the job held inside a partition's merge past
/// it, the agent exits after the timeout; the job is queued again as `shutdown_timeout`, and
/// the restart's start-up recovery cleans the interrupted merge before the job runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_timeout_is_configurable_and_an_overrun_job_runs_again_after_recovery() {
    use std::time::{Duration, Instant};
    let (h, cases) = Harness::new(false, &[("overrun", Kind::Text)]).await;
    let case = &cases[0];
    let rows_before = case.rows(&h.store);
    let mut config = std::fs::read_to_string(h.agent.config_path()).unwrap();
    config = config.replacen(
        "[native]",
        "[shutdown]\ndrain_timeout = \"1s\"\n[native]",
        1,
    );
    std::fs::write(h.agent.config_path(), config).unwrap();
    let resume = h.dir.path().join("resume-overrun");
    let (mut child, base, id) = serve_held_in_a_merge(&h, "overrun", &resume).await;
    let sent = Instant::now();
    terminate(&child, &base).await;
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let took = sent.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(30),
        "exited after {took:?}"
    );
    let job = stored_job(&h, id);
    assert_eq!(job.stopped.as_deref(), Some("shutdown_timeout"));
    assert_eq!(job.state, hive_smallfiles_agent::work::JobState::Queued);
    restart_finishes(&h, case, id, &rows_before).await;
    h.finish().await;
}
