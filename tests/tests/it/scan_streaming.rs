//! The exporter's streaming scan against real MetaStores (MariaDB and PostgreSQL) and a
//! `file:` warehouse: partitions read in (TBL_ID, PART_ID) pages of 3 give the same tables,
//! cold counts and worst partitions as pages of 10000 (tables straddling pages counted once),
//! and all of them equal an independent walk of the files (`std::fs`, Hive's visibility
//! rules), with the partitions' modification times set to old and fresh dates.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use hive_smallfiles_core::fs::factory::read_filesystem;
use hive_smallfiles_core::fs::{EndpointProbe, FileStatus, FileSystem, FsError, PageSink};
use hive_smallfiles_exporter::config::Config;
use hive_smallfiles_exporter::metrics::Metrics;
use hive_smallfiles_exporter::scan::{ClusterScanner, ScanProgress};
use hive_smallfiles_exporter::snapshot::{ClusterSnapshot, ColdCounts, PartitionStats};
use hive_smallfiles_tests::metastore_fixture::{
    DbKind, FixtureDb, FixtureTable, Format, SchemaVersion, unique_db_name,
};
use hive_smallfiles_tests::truth::{Truth, walk_partition};
use hive_smallfiles_tests::warehouse::Warehouse;
use tokio_util::sync::CancellationToken;

const SMALL: u64 = 1000;
const TARGET: u64 = 4000;
const TOP: usize = 4;

/// One partition (or unpartitioned table) of the warehouse.
struct Part {
    table: String,
    /// `PART_NAME`; empty for an unpartitioned table.
    name: String,
    dir: String,
}

/// Tables with 7, 1, 0, 4 and 2 partitions plus an unpartitioned one; files of the first
/// partitions of every table two days old, the rest fresh.
fn build(w: &Warehouse) -> (Vec<FixtureTable>, Vec<Part>) {
    // The warehouse writes files with a fixed old mtime: every file gets its own below.
    let now = SystemTime::now();
    let old = now - Duration::from_secs(2 * 86_400);
    let mut tables = Vec::new();
    let mut parts = Vec::new();
    for (ti, n) in [7usize, 1, 0, 4, 2].into_iter().enumerate() {
        let name = format!("t{ti}");
        let dir = format!("s.db/{name}");
        let mut t = FixtureTable::new("s", &name, Format::Orc, &w.uri(&dir))
            .partitioned_by(&[("dt", "string")]);
        for pi in 0..n {
            let value = format!("2024-01-{:02}", pi + 1);
            t = t.partition(&[&value]);
            let pname = format!("dt={value}");
            let pdir = format!("{dir}/{pname}");
            // Partition `pi` has `pi + ti` small files and one big one.
            for f in 0..(pi + ti) {
                let rel = format!("{pdir}/{f:06}_0");
                w.file(&rel, 10 + f as u64).unwrap();
                w.touch(&rel, if pi < n / 2 { old } else { now }).unwrap();
            }
            let big = format!("{pdir}/big_0");
            w.file(&big, 5000).unwrap();
            w.touch(&big, if pi < n / 2 { old } else { now }).unwrap();
            parts.push(Part {
                table: name.clone(),
                name: pname,
                dir: pdir,
            });
        }
        // An empty partition directory of table t3: no files, cold.
        if ti == 3 {
            w.mkdir(&format!("{dir}/dt=empty")).unwrap();
            t = t.partition(&["empty"]);
            parts.push(Part {
                table: name.clone(),
                name: "dt=empty".into(),
                dir: format!("{dir}/dt=empty"),
            });
        }
        tables.push(t);
    }
    for f in 0..5 {
        let rel = format!("s.db/plain/{f:06}_0");
        w.file(&rel, 7).unwrap();
        w.touch(&rel, old).unwrap();
    }
    tables.push(FixtureTable::new(
        "s",
        "plain",
        Format::Orc,
        &w.uri("s.db/plain"),
    ));
    parts.push(Part {
        table: "plain".into(),
        name: String::new(),
        dir: "s.db/plain".into(),
    });
    (tables, parts)
}

fn config(
    db: &FixtureDb,
    w: &Warehouse,
    page: u32,
) -> hive_smallfiles_exporter::config::ClusterConfig {
    let c = db.metastore_config();
    let scheme = match db.kind() {
        DbKind::Mysql => "mysql",
        DbKind::Postgres => "postgres",
    };
    let text = format!(
        "[[cluster]]\nname = \"c1\"\nsmall_file_bytes = {SMALL}\ntarget_file_bytes = {TARGET}\n\
         quiet_period = \"1h\"\ntop_partitions = {TOP}\n\
         [cluster.metastore]\nurl = \"{scheme}://{}@{}:{}/{}\"\npartition_page_size = {page}\n\
         [cluster.storage]\ntype = \"local\"\nroot = \"{}\"\n",
        c.user,
        c.host,
        c.port,
        c.database,
        w.root().display()
    );
    Config::from_toml(&text, Path::new("."), &BTreeMap::new())
        .expect("config")
        .clusters
        .remove(0)
}

/// The local filesystem, noting the scan's `tables_done` at every listing.
#[derive(Debug)]
struct ProgressFs {
    inner: Arc<dyn FileSystem>,
    progress: Mutex<Option<Arc<ScanProgress>>>,
    tables_done_at_listings: Mutex<Vec<u64>>,
}

#[async_trait]
impl FileSystem for ProgressFs {
    async fn list_status(&self, path: &str, sink: &mut PageSink<'_>) -> Result<(), FsError> {
        if let Some(p) = self.progress.lock().unwrap().as_ref() {
            let done = p.tables_done.load(Ordering::Relaxed);
            self.tables_done_at_listings.lock().unwrap().push(done);
        }
        self.inner.list_status(path, sink).await
    }

    async fn file_status(&self, path: &str) -> Result<FileStatus, FsError> {
        self.inner.file_status(path).await
    }

    async fn probe(&self) -> Vec<EndpointProbe> {
        self.inner.probe().await
    }

    async fn read_range(&self, path: &str, offset: u64, length: u64) -> Result<Bytes, FsError> {
        self.inner.read_range(path, offset, length).await
    }
}

/// One scan with pages of `page` partitions: the snapshot, the MetaStore statements, and
/// `tables_done` as seen at each listing.
async fn scan(db: &FixtureDb, w: &Warehouse, page: u32) -> (Arc<ClusterSnapshot>, u64, Vec<u64>) {
    let config = config(db, w, page);
    let metrics = Metrics::new();
    let fs = Arc::new(ProgressFs {
        inner: read_filesystem(&config.storage, &metrics.webhdfs).expect("filesystem"),
        progress: Mutex::new(None),
        tables_done_at_listings: Mutex::new(Vec::new()),
    });
    let mut scanner = ClusterScanner::new(config, Arc::clone(&fs) as Arc<dyn FileSystem>);
    *fs.progress.lock().unwrap() = Some(scanner.progress_handle());
    let snapshot = scanner.scan(&CancellationToken::new()).await;
    assert!(snapshot.scan.success, "{:?}", snapshot.scan.error);
    let seen = fs.tables_done_at_listings.lock().unwrap().clone();
    (snapshot, scanner.metastore_queries(), seen)
}

/// Per-partition truth, and whether the partition is cold.
fn part_truth(w: &Warehouse, p: &Part, cutoff_ms: i64) -> (Truth, bool) {
    let mut t = Truth::default();
    walk_partition(&w.path(&p.dir), SMALL, TARGET, &mut t);
    (t.clone(), t.files == 0 || t.newest_mtime_ms < cutoff_ms)
}

async fn streaming_matches_truth(kind: DbKind) {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::new(dir.path().join("warehouse")).unwrap();
    let (tables, parts) = build(&w);
    let db = FixtureDb::create(kind, SchemaVersion::Hive3_1, &unique_db_name("stream"))
        .await
        .expect("fixture");
    db.insert(&tables).await.expect("insert");

    let (small_pages, small_queries, progress) = scan(&db, &w, 3).await;
    let (one_page, one_queries, _) = scan(&db, &w, 10_000).await;
    // Tables finish while the scan goes on: listings see every count from 0 up to the
    // tables listed before the last chunk.
    let listed = small_pages.scan.tables.scanned;
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert!(
        progress.iter().any(|&d| d > 0 && d < listed),
        "progress advances during the scan: {progress:?}"
    );
    assert_eq!(
        small_pages.tables, one_page.tables,
        "pages of 3 vs one page"
    );
    assert_eq!(small_pages.top_partitions, one_page.top_partitions);
    // Statements grow with pages only: probe (2) + tables (4) + 3 per non-empty page + 1
    // for the empty page after a full last one.
    let partitions = parts.iter().filter(|p| !p.name.is_empty()).count() as u64;
    let pages = |size: u64| 3 * partitions.div_ceil(size) + u64::from(partitions % size == 0);
    assert_eq!(small_queries, 6 + pages(3), "statements with pages of 3");
    assert_eq!(one_queries, 6 + pages(10_000), "statements with one page");

    // Against the files. The cutoff is taken after the scans: the fresh files are minutes
    // old at most and the old ones two days, so the classification cannot flip in between.
    let cutoff = i64::try_from(
        (SystemTime::now() - Duration::from_secs(3600))
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let mut want_cold: BTreeMap<String, ColdCounts> = BTreeMap::new();
    let mut want_files: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut want_top: Vec<PartitionStats> = Vec::new();
    for p in &parts {
        let (t, cold) = part_truth(&w, p, cutoff);
        let files = want_files.entry(p.table.clone()).or_default();
        files.0 += t.files;
        files.1 += t.excess;
        let c = want_cold.entry(p.table.clone()).or_default();
        if cold {
            c.partitions += 1;
            c.files += t.files;
            c.bytes += t.bytes;
            c.small_files += t.small;
            c.excess_files += t.excess;
        }
        if !p.name.is_empty() && t.excess > 0 {
            want_top.push(PartitionStats {
                database: "s".into(),
                table: p.table.clone(),
                partition: p.name.clone(),
                files: t.files,
                bytes: t.bytes,
                small_files: t.small,
                small_bytes: 0,
                excess_files: t.excess,
                newest_modification_ms: t.newest_mtime_ms,
            });
        }
    }
    want_top.sort_by(|a, b| {
        (b.excess_files, b.small_files)
            .cmp(&(a.excess_files, a.small_files))
            .then_with(|| (&a.table, &a.partition).cmp(&(&b.table, &b.partition)))
    });
    want_top.truncate(TOP);
    assert!(want_cold.values().any(|c| c.partitions > 0));
    assert!(
        want_cold
            .iter()
            .any(|(t, c)| c.partitions == 0 && want_files[t].0 > 0)
    );

    let names: Vec<&str> = small_pages
        .tables
        .iter()
        .map(|t| t.table.as_str())
        .collect();
    assert_eq!(
        names,
        ["plain", "t0", "t1", "t2", "t3", "t4"],
        "sorted, each once"
    );
    for t in &small_pages.tables {
        let fixture = tables.iter().find(|f| f.name == t.table).unwrap();
        assert_eq!(t.partitions, fixture.partitions.len() as u64, "{}", t.table);
        assert_eq!(
            (t.counts.files, t.excess_files),
            want_files.get(&t.table).copied().unwrap_or_default(),
            "{}",
            t.table
        );
        let mut cold = t.cold;
        // Small-file bytes are not in the truth walk: checked against the partition stats.
        cold.small_bytes = 0;
        let want = want_cold.get(&t.table).copied().unwrap_or_default();
        assert_eq!(cold, want, "cold counts of {}", t.table);
    }
    let got_top: Vec<PartitionStats> = small_pages
        .top_partitions
        .iter()
        .cloned()
        .map(|mut p| {
            assert_eq!(
                p.small_bytes,
                (0..p.small_files).map(|f| 10 + f).sum::<u64>()
            );
            p.small_bytes = 0;
            p
        })
        .collect();
    assert_eq!(got_top, want_top);
    db.drop_database().await.ok();
}

#[tokio::test]
async fn streaming_scan_mysql() {
    streaming_matches_truth(DbKind::Mysql).await;
}

#[tokio::test]
async fn streaming_scan_postgres() {
    streaming_matches_truth(DbKind::Postgres).await;
}
