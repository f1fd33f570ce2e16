//! Scanner tests over an in-memory filesystem with HDFS directory-mtime semantics.
//! (The real backends are tested against real directories and the WebHDFS server in the
//! tests crate; here the point is counting requests of incremental rescans.)

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::*;
use crate::config::Config;
use crate::snapshot::{PartitionResults, Unreferenced};
use hive_smallfiles_core::fs::{EndpointProbe, FileStatus, PageSink, normalize_path};
use hive_smallfiles_core::metastore::{PartitionKey, PartitionMeta, SchemaInfo};

#[derive(Debug, Default)]
struct MemFs {
    inner: Mutex<MemInner>,
    listings: AtomicU64,
    fail_prefix: Mutex<Option<String>>,
}

#[derive(Debug, Default)]
struct MemInner {
    clock: i64,
    dirs: BTreeMap<String, i64>,
    files: BTreeMap<String, (u64, i64)>,
}

impl MemFs {
    fn mkdirs(&self, path: &str) {
        let mut g = self.inner.lock().unwrap();
        let mut cur = String::new();
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            let parent = if cur.is_empty() {
                "/".to_owned()
            } else {
                cur.clone()
            };
            cur.push('/');
            cur.push_str(seg);
            if !g.dirs.contains_key(&cur) {
                g.clock += 1;
                let t = g.clock;
                g.dirs.insert(cur.clone(), t);
                g.dirs.insert(parent, t);
            }
        }
    }

    fn add_file(&self, path: &str, len: u64) {
        self.mkdirs(parent_path(path));
        let mut g = self.inner.lock().unwrap();
        g.clock += 1;
        let t = g.clock;
        g.files.insert(path.to_owned(), (len, t));
        g.dirs.insert(parent_path(path).to_owned(), t);
    }

    /// Appending changes the file, not its directory (as in HDFS).
    fn append(&self, path: &str, extra: u64) {
        let mut g = self.inner.lock().unwrap();
        g.clock += 1;
        let t = g.clock;
        let f = g.files.get_mut(path).unwrap();
        f.0 += extra;
        f.1 = t;
    }

    fn listings(&self) -> u64 {
        self.listings.swap(0, Ordering::SeqCst)
    }
}

fn status(name: &str, kind: EntryKind, length: u64, mtime: i64) -> FileStatus {
    FileStatus {
        name: name.to_owned(),
        kind,
        length,
        modification_time_ms: mtime,
        access_time_ms: 0,
        permission: 0o755,
        owner: "hive".into(),
        group: "hive".into(),
    }
}

#[async_trait]
impl FileSystem for MemFs {
    async fn read_range(&self, _: &str, _: u64, _: u64) -> Result<bytes::Bytes, FsError> {
        Err(FsError::Unsupported { op: "read_range" })
    }

    async fn list_status(&self, path: &str, sink: &mut PageSink<'_>) -> Result<(), FsError> {
        self.listings.fetch_add(1, Ordering::SeqCst);
        if let Some(prefix) = self.fail_prefix.lock().unwrap().as_deref()
            && path.starts_with(prefix)
        {
            return Err(FsError::Remote {
                op: "LISTSTATUS",
                path: path.into(),
                status: 500,
                exception: "RuntimeException".into(),
                message: "injected".into(),
            });
        }
        let page: Vec<FileStatus> =
            {
                let g = self.inner.lock().unwrap();
                let path = normalize_path(path);
                if let Some((len, t)) = g.files.get(&path) {
                    vec![status("", EntryKind::File, *len, *t)]
                } else if g.dirs.contains_key(&path) {
                    let dirs = g
                        .dirs
                        .iter()
                        .filter(|(p, _)| *p != "/" && parent_path(p) == path)
                        .map(|(p, t)| {
                            status(
                                p[parent_path(p).len()..].trim_start_matches('/'),
                                EntryKind::Directory,
                                0,
                                *t,
                            )
                        });
                    let files = g.files.iter().filter(|(p, _)| parent_path(p) == path).map(
                        |(p, (l, t))| {
                            status(
                                p[parent_path(p).len()..].trim_start_matches('/'),
                                EntryKind::File,
                                *l,
                                *t,
                            )
                        },
                    );
                    dirs.chain(files).collect()
                } else {
                    return Err(FsError::NotFound { path });
                }
            };
        // Two pages, to exercise paging in the walker.
        let mid = page.len() / 2;
        let (a, b) = page.split_at(mid);
        sink(a.to_vec());
        sink(b.to_vec());
        Ok(())
    }

    async fn file_status(&self, path: &str) -> Result<FileStatus, FsError> {
        Err(FsError::NotFound { path: path.into() })
    }

    async fn probe(&self) -> Vec<EndpointProbe> {
        Vec::new()
    }
}

const CONFIG: &str = r#"
    [[cluster]]
    name = "test"
    small_file_bytes = 100
    target_file_bytes = 1000
    exclude = ["scratch.*"]
    full_rescan_interval = "1d"
    [cluster.metastore]
    url = "mysql://hive@127.0.0.1/metastore"
    [cluster.storage]
    type = "webhdfs"
    namenodes = ["http://127.0.0.1:1"]
"#;

fn table(db: &str, name: &str, location: &str) -> TableMeta {
    TableMeta {
        id: 1,
        catalog: "hive".into(),
        database: db.into(),
        name: name.into(),
        tbl_type: "MANAGED_TABLE".into(),
        location: Some(location.into()),
        input_format: Some("org.apache.hadoop.mapred.TextInputFormat".into()),
        output_format: None,
        serde_lib: None,
        num_buckets: -1,
        bucket_columns: 0,
        sort_columns: 0,
        cd_id: None,
        create_time: 0,
        params: BTreeMap::new(),
        serde_params: BTreeMap::new(),
        partition_keys: Vec::new(),
        partitions: Vec::new(),
    }
}

fn partitioned(db: &str, name: &str, location: &str, keys: &[&str], parts: &[&str]) -> TableMeta {
    let mut t = table(db, name, location);
    t.partition_keys = keys
        .iter()
        .map(|k| PartitionKey {
            name: (*k).into(),
            type_name: "string".into(),
        })
        .collect();
    t.partitions = parts
        .iter()
        .enumerate()
        .map(|(i, p)| PartitionMeta {
            id: i as i64,
            name: (*p).into(),
            values: Vec::new(),
            location: Some(format!("{location}/{p}")),
            create_time: 0,
            stats_num_files: None,
        })
        .collect();
    t
}

fn scanner(fs: Arc<MemFs>) -> ClusterScanner {
    let config = Config::from_toml(CONFIG, Path::new("."), &BTreeMap::new()).unwrap();
    ClusterScanner::new(config.clusters[0].clone(), fs)
}

/// A scanner with the unreferenced-data view turned off.
fn scanner_without_view(fs: Arc<MemFs>) -> ClusterScanner {
    let text = CONFIG.replace(
        "full_rescan_interval = \"1d\"",
        "full_rescan_interval = \"1d\"\nunreferenced_files = false",
    );
    let config = Config::from_toml(&text, Path::new("."), &BTreeMap::new()).unwrap();
    assert!(!config.clusters[0].unreferenced_files);
    ClusterScanner::new(config.clusters[0].clone(), fs)
}

fn snap(tables: Vec<TableMeta>) -> MetastoreSnapshot {
    MetastoreSnapshot {
        schema: SchemaInfo::default(),
        tables,
        ..MetastoreSnapshot::default()
    }
}

fn find<'a>(stats: &'a [TableStats], db: &str, t: &str) -> &'a TableStats {
    stats
        .iter()
        .find(|s| s.database == db && s.table == t)
        .unwrap()
}

#[tokio::test]
async fn counts_and_incremental_rescans_single_level() {
    let fs = Arc::new(MemFs::default());
    let loc = "hdfs://ns/wh/db.db/t";
    let parts: Vec<String> = (0..20).map(|i| format!("dt={i:02}")).collect();
    for p in &parts {
        for f in 0..3 {
            fs.add_file(&format!("/wh/db.db/t/{p}/00000{f}_0"), 10);
        }
    }
    fs.add_file("/wh/db.db/t/dt=00/_SUCCESS", 0);
    fs.add_file("/wh/db.db/t/dt=00/.hive-staging/x", 50);
    let part_refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let tables = vec![partitioned("db", "t", loc, &["dt"], &part_refs)];
    let mut s = scanner(Arc::clone(&fs));

    let (stats, summary, _) = s.list_tables(snap(tables.clone())).await.unwrap();
    let t = find(&stats, "db", "t");
    assert_eq!(
        (t.counts.files, t.counts.bytes, t.counts.small_files),
        (60, 600, 60)
    );
    assert_eq!(t.partitions, 20);
    assert_eq!(t.excess_files, 20 * 2);
    // One parent listing + one per partition.
    assert_eq!(fs.listings(), 21);
    assert_eq!(summary.listings, 21);

    // Nothing changed: only the parent is listed.
    let (stats2, summary2, _) = s.list_tables(snap(tables.clone())).await.unwrap();
    assert_eq!(fs.listings(), 1);
    assert_eq!(summary2.reused_directories, 20);
    assert_eq!(find(&stats2, "db", "t"), t);

    // A new file in one partition: that partition alone is listed again.
    fs.add_file("/wh/db.db/t/dt=07/000009_0", 5000);
    let (stats3, _, _) = s.list_tables(snap(tables.clone())).await.unwrap();
    assert_eq!(fs.listings(), 2);
    let t3 = find(&stats3, "db", "t");
    assert_eq!(
        (t3.counts.files, t3.counts.bytes, t3.counts.small_files),
        (61, 5600, 60)
    );
    assert_eq!(
        t3.counts
            .size_class(hive_smallfiles_core::walk::counts::SizeClass::AtOrOverThreshold),
        1
    );
}

#[tokio::test]
async fn multi_level_partitions_and_nested_directories() {
    let fs = Arc::new(MemFs::default());
    let mut parts = Vec::new();
    for d in 0..4 {
        for h in 0..6 {
            let p = format!("dt={d}/hr={h}");
            fs.add_file(&format!("/wh/m/{p}/f1"), 1);
            parts.push(p);
        }
    }
    // A partition with a subdirectory (Hive union output): files below it count too.
    fs.add_file("/wh/m/dt=0/hr=0/HIVE_UNION_SUBDIR_1/f2", 2);
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let tables = vec![partitioned(
        "db",
        "m",
        "hdfs://ns/wh/m",
        &["dt", "hr"],
        &refs,
    )];
    let mut s = scanner(Arc::clone(&fs));
    let (stats, _, _) = s.list_tables(snap(tables.clone())).await.unwrap();
    assert_eq!(find(&stats, "db", "m").counts.files, 25);
    // 4 parents (dt=*) + 24 partitions + 1 subdirectory, + the table location, which only
    // the unreferenced-data view lists (a single-level table's is a parent anyway).
    assert_eq!(fs.listings(), 30);

    // Unchanged: the 4 parents, plus the one partition that has a subdirectory, + the table
    // location.
    s.list_tables(snap(tables.clone())).await.unwrap();
    assert_eq!(fs.listings(), 6);

    // A file deep inside the subdirectory: the partition's mtime does not change, but the
    // partition is relisted because it has subdirectories, and the subdirectory's changed
    // mtime triggers its relisting.
    fs.add_file("/wh/m/dt=0/hr=0/HIVE_UNION_SUBDIR_1/f3", 3);
    let (stats, _, _) = s.list_tables(snap(tables.clone())).await.unwrap();
    assert_eq!(find(&stats, "db", "m").counts.files, 26);
    assert_eq!(fs.listings(), 7);

    // A new file in a second-level partition changes only that hr= directory.
    fs.add_file("/wh/m/dt=3/hr=5/f9", 9);
    let (stats, _, _) = s.list_tables(snap(tables)).await.unwrap();
    assert_eq!(find(&stats, "db", "m").counts.files, 27);
    assert_eq!(fs.listings(), 7);
    assert_eq!(
        find(&stats, "db", "m").unreferenced,
        Some(Unreferenced::default())
    );
}

#[tokio::test]
async fn appends_are_seen_on_full_rescans() {
    let fs = Arc::new(MemFs::default());
    fs.add_file("/wh/u/f", 10);
    let tables = vec![table("db", "u", "hdfs://ns/wh/u")];
    let mut s = scanner(Arc::clone(&fs));
    s.list_tables(snap(tables.clone())).await.unwrap();
    fs.append("/wh/u/f", 5);
    let (stats, _, _) = s.list_tables(snap(tables.clone())).await.unwrap();
    assert_eq!(
        find(&stats, "db", "u").counts.bytes,
        10,
        "documented limitation"
    );
    s.forget_cache();
    let (stats, _, _) = s.list_tables(snap(tables)).await.unwrap();
    assert_eq!(find(&stats, "db", "u").counts.bytes, 15);
}

#[tokio::test]
async fn skipped_filtered_missing_and_failed_tables() {
    let fs = Arc::new(MemFs::default());
    fs.add_file("/wh/a/f", 10);
    fs.add_file("/wh/b/f", 10);
    fs.add_file("/wh/p/dt=1/f", 10);
    fs.mkdirs("/wh/empty");
    let mut view = table("db", "v", "");
    view.tbl_type = "VIRTUAL_VIEW".into();
    view.location = None;
    let mut kudu = table("db", "k", "hdfs://ns/wh/k");
    kudu.params.insert(
        "storage_handler".into(),
        "org.apache.hadoop.hive.kudu.KuduStorageHandler".into(),
    );
    let mut missing_part = partitioned("db", "p", "hdfs://ns/wh/p", &["dt"], &["dt=1", "dt=2"]);
    missing_part.partitions.push(PartitionMeta {
        id: 9,
        name: "dt=3".into(),
        values: vec![],
        location: Some("s3a://bucket/p/dt=3".into()),
        create_time: 0,
        stats_num_files: None,
    });
    let tables = vec![
        table("db", "a", "hdfs://ns/wh/a"),
        table("db", "b", "hdfs://ns/wh/b"),
        table("db", "s3", "s3a://bucket/x"),
        table("scratch", "x", "hdfs://ns/wh/x"),
        table("db", "gone", "hdfs://ns/wh/gone"),
        table("db", "empty", "hdfs://ns/wh/empty"),
        view,
        kudu,
        missing_part,
    ];
    let mut s = scanner(Arc::clone(&fs));
    let (stats, summary, _) = s.list_tables(snap(tables.clone())).await.unwrap();
    assert_eq!(
        summary.tables,
        TableResults {
            scanned: 5,
            skipped: 3,
            failed: 0,
            filtered: 1
        }
    );
    assert_eq!(summary.skipped_by_reason.get("view"), Some(&1));
    assert_eq!(summary.skipped_by_reason.get("storage_handler"), Some(&1));
    assert_eq!(
        summary.skipped_by_reason.get("foreign_filesystem"),
        Some(&1)
    );
    assert_eq!(
        summary.partitions,
        PartitionResults {
            listed: 4,
            missing: 2,
            skipped: 1,
            failed: 0
        }
    );
    assert_eq!(find(&stats, "db", "gone").missing_directories, 1);
    assert_eq!(find(&stats, "db", "p").missing_directories, 1);
    assert_eq!(find(&stats, "db", "p").counts.files, 1);
    assert_eq!(find(&stats, "db", "empty").counts.files, 0);
    let b_before = find(&stats, "db", "b").clone();
    s.snapshot = Arc::new(ClusterSnapshot {
        tables: stats,
        ..ClusterSnapshot::default()
    });

    // A failing directory fails its table only; the previous numbers are kept.
    fs.add_file("/wh/b/g", 10);
    *fs.fail_prefix.lock().unwrap() = Some("/wh/b".into());
    let (stats, summary, _) = s.list_tables(snap(tables)).await.unwrap();
    assert_eq!(summary.tables.failed, 1);
    assert_eq!(summary.partitions.failed, 1);
    assert_eq!(find(&stats, "db", "b"), &b_before);
    assert_eq!(find(&stats, "db", "a").counts.files, 1);
}

#[test]
fn labels() {
    assert_eq!(database_label("hive", "sales"), "sales");
    assert_eq!(database_label("spark", "sales"), "@spark#sales");
    let mut counts = FileCounts::default();
    assert_eq!(compression_label(None, FileFormat::Text, &counts), "none");
    assert_eq!(compression_label(None, FileFormat::Orc, &counts), "unknown");
    assert_eq!(
        compression_label(Some("zlib"), FileFormat::Orc, &counts),
        "zlib"
    );
    counts.add_status(&status("a.gz", EntryKind::File, 1, 1), 10);
    assert_eq!(compression_label(None, FileFormat::Text, &counts), "gzip");
    let _ = HashSet::<u8>::new();
}

mod unreferenced;
