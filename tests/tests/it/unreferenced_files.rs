//! The exporter's unreferenced-data view end to end: real MetaStore schemas on MariaDB and
//! PostgreSQL, a warehouse of real files (`file:`, or the same tree over WebHDFS) holding an
//! unregistered partition directory, a partition switched to a hidden `.hive-smallfiles-merged/…` location
//! with files left in its old directory, a multi-level table, partitions outside their table's
//! location and hidden directories, and `/metrics` compared with ground truth from walking the
//! tree in this test. The view's cost is checked against the same scan with the view off.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hive_smallfiles_tests::metastore_fixture::{
    DbKind, FixtureDb, FixtureTable, Format, SchemaVersion, unique_db_name,
};
use hive_smallfiles_tests::prom::{self, Sample};
use hive_smallfiles_tests::services::Exporter;
use hive_smallfiles_tests::truth::{Truth, walk_partition};
use hive_smallfiles_tests::warehouse::Warehouse;
use hive_smallfiles_tests::webhdfs_server::{Namespace, ServerOptions, WebHdfsServer};

const SMALL: u64 = 4096;
const TARGET: u64 = 16384;

/// A table of the warehouse, as the ground truth sees it.
struct Table {
    name: &'static str,
    /// Table directory, warehouse-relative.
    dir: String,
    /// Registered partition directories, warehouse-relative (none: unpartitioned).
    partitions: Vec<String>,
    partitioned: bool,
}

fn files(w: &Warehouse, dir: &str, sizes: &[u64]) {
    for (i, len) in sizes.iter().enumerate() {
        w.file(&format!("{dir}/{i:06}_0"), *len).unwrap();
    }
}

/// Writes the warehouse; returns the MetaStore rows and the tables. `loc` turns a
/// warehouse-relative path into the location stored in the MetaStore.
fn build(w: &Warehouse, loc: &dyn Fn(&str) -> String) -> (Vec<FixtureTable>, Vec<Table>) {
    let mut rows = Vec::new();
    let mut tables = Vec::new();

    // sales.clicks, by dt: one partition in place, one switched to a hidden directory (its old
    // directory still holds files), one outside the table's directory; a day written but never
    // registered; a stray file; hidden directories and files that are not data.
    let mut t = FixtureTable::new("sales", "clicks", Format::Text, &loc("sales.db/clicks"))
        .partitioned_by(&[("dt", "string")])
        .external();
    t = t.partition(&["2024-03-01"]);
    files(w, "sales.db/clicks/dt=2024-03-01", &[100, 200, 300]);
    let switched = "sales.db/clicks/.hive-smallfiles-merged/dt=2024-03-02-m42";
    t = t.partition_at(&["2024-03-02"], &loc(switched));
    files(w, switched, &[5000]);
    files(w, "sales.db/clicks/dt=2024-03-02", &[10, 20, 30, 40]);
    let outside = "landing/clicks/dt=2024-03-04";
    t = t.partition_at(&["2024-03-04"], &loc(outside));
    files(w, outside, &[7, 8]);
    files(w, "landing/clicks/dt=2024-03-05", &[9]);
    files(w, "sales.db/clicks/dt=2024-03-03", &[1000, 0, 2000]);
    files(w, "sales.db/clicks/dt=2024-03-03/nested", &[333]);
    w.file("sales.db/clicks/dt=2024-03-03/_SUCCESS", 0).unwrap();
    w.file("sales.db/clicks/stray.csv", 55).unwrap();
    files(w, "sales.db/clicks/_temporary/0", &[4000]);
    files(
        w,
        "sales.db/clicks/.hive-staging_hive_2024-03-03/-ext-10000",
        &[4000],
    );
    files(w, "sales.db/clicks/.hive-smallfiles.m43", &[4000]);
    files(
        w,
        "sales.db/clicks/.hive-smallfiles-merged/dt=2024-03-01-m7",
        &[4000],
    );
    w.file("sales.db/clicks/.hive-smallfiles.lock", 1).unwrap();
    tables.push(Table {
        name: "clicks",
        dir: "sales.db/clicks".into(),
        partitions: vec![
            "sales.db/clicks/dt=2024-03-01".into(),
            switched.into(),
            outside.into(),
        ],
        partitioned: true,
    });
    rows.push(t);

    // sales.views, by dt and hr: an hour and a whole day never registered, a stray file next
    // to registered hours, a hidden directory among them.
    let mut t = FixtureTable::new("sales", "views", Format::Parquet, &loc("sales.db/views"))
        .partitioned_by(&[("dt", "string"), ("hr", "int")]);
    let mut parts = Vec::new();
    for (d, h) in [
        ("2024-03-01", "00"),
        ("2024-03-01", "01"),
        ("2024-03-02", "00"),
    ] {
        t = t.partition(&[d, h]);
        let rel = format!("sales.db/views/{}", t.part_name(&[d, h]));
        files(w, &rel, &[400, 500]);
        parts.push(rel);
    }
    files(w, "sales.db/views/dt=2024-03-01/hr=02", &[600, 700]);
    files(w, "sales.db/views/dt=2024-03-09/hr=00", &[800]);
    files(w, "sales.db/views/dt=2024-03-09/hr=01", &[900]);
    w.file("sales.db/views/dt=2024-03-02/stray", 11).unwrap();
    files(w, "sales.db/views/dt=2024-03-01/_tmp", &[4000]);
    tables.push(Table {
        name: "views",
        dir: "sales.db/views".into(),
        partitions: parts,
        partitioned: true,
    });
    rows.push(t);

    // sales.clean: partitioned, nothing unreferenced (hidden files only).
    let t = FixtureTable::new("sales", "clean", Format::Text, &loc("sales.db/clean"))
        .partitioned_by(&[("dt", "string")])
        .partition(&["2024-03-01"]);
    files(w, "sales.db/clean/dt=2024-03-01", &[123]);
    w.file("sales.db/clean/_SUCCESS", 0).unwrap();
    tables.push(Table {
        name: "clean",
        dir: "sales.db/clean".into(),
        partitions: vec!["sales.db/clean/dt=2024-03-01".into()],
        partitioned: true,
    });
    rows.push(t);

    // sales.plain: unpartitioned; everything below its location is the table.
    let t = FixtureTable::new("sales", "plain", Format::Text, &loc("sales.db/plain"));
    files(w, "sales.db/plain", &[1, 2]);
    files(w, "sales.db/plain/sub", &[3]);
    tables.push(Table {
        name: "plain",
        dir: "sales.db/plain".into(),
        partitions: Vec::new(),
        partitioned: false,
    });
    rows.push(t);
    (rows, tables)
}

/// What the view must report for one table, and the listings it must make.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    directories: u64,
    files: u64,
    bytes: u64,
    listings: u64,
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

/// Visible directories below and including `dir` (each costs one listing to walk).
fn visible_dirs(dir: &Path) -> u64 {
    1 + std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| !is_hidden(&e.file_name().to_string_lossy()))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| visible_dirs(&e.path()))
        .sum::<u64>()
}

/// Ground truth by walking the table's directory with `std::fs`: entries that are no
/// registered partition directory are counted (directories with every visible file below
/// them), directories holding partition directories are descended into, hidden names are
/// skipped. Listings: every directory descended into that is no partition's parent (those the
/// scan lists anyway), plus every visible directory below the counted ones.
fn expected(w: &Warehouse, t: &Table) -> Expected {
    let partitions: BTreeSet<PathBuf> = t.partitions.iter().map(|p| w.path(p)).collect();
    let parents: BTreeSet<PathBuf> = partitions
        .iter()
        .filter_map(|p| p.parent().map(Path::to_owned))
        .collect();
    let mut out = Expected::default();
    let mut stack = vec![w.path(&t.dir)];
    while let Some(dir) = stack.pop() {
        if !parents.contains(&dir) {
            out.listings += 1;
        }
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if is_hidden(&entry.file_name().to_string_lossy()) || partitions.contains(&path) {
                continue;
            }
            if kind.is_dir() {
                if partitions.iter().any(|p| p.starts_with(&path)) {
                    stack.push(path);
                } else {
                    let mut acc = Truth::default();
                    assert!(walk_partition(&path, SMALL, TARGET, &mut acc));
                    out.directories += 1;
                    out.files += acc.files;
                    out.bytes += acc.bytes;
                    out.listings += visible_dirs(&path);
                }
            } else if kind.is_file() {
                out.files += 1;
                out.bytes += entry.metadata().unwrap().len();
            }
        }
    }
    out
}

fn metastore_url(db: &FixtureDb) -> String {
    let c = db.metastore_config();
    let scheme = match db.kind() {
        DbKind::Mysql => "mysql",
        DbKind::Postgres => "postgres",
    };
    format!("{scheme}://{}@{}:{}/{}", c.user, c.host, c.port, c.database)
}

fn write_config(dir: &Path, db: &FixtureDb, storage: &str, view: bool) -> PathBuf {
    let mut metastore = format!("url = \"{}\"\n", metastore_url(db));
    if let Some(pw) = &db.metastore_config().password {
        std::fs::write(dir.join("hms.password"), pw.expose()).unwrap();
        metastore.push_str("password_file = \"hms.password\"\n");
    }
    let text = format!(
        "[[cluster]]\nname = \"dark\"\nsmall_file_bytes = {SMALL}\ntarget_file_bytes = {TARGET}\n\
         scan_interval = \"1h\"\nunreferenced_files = {view}\n\
         [cluster.metastore]\n{metastore}[cluster.storage]\n{storage}\n"
    );
    let path = dir.join(format!("exporter-{view}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts the exporter on `config`, waits for its first scan and returns `/metrics`.
async fn scrape(config: &Path) -> String {
    let mut exporter = Exporter::from_file(config).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (status, _, body) = exporter.get("/metrics", None).await;
    assert_eq!(status, 200);
    exporter.stop().await.expect("the exporter stops cleanly");
    body
}

fn cluster_value(samples: &[Sample], name: &str) -> f64 {
    prom::value(samples, name, &[("cluster", "dark")]).unwrap_or_else(|| panic!("{name}"))
}

/// Checks `/metrics` with the view on against the ground truth; returns the listings the
/// view must have made.
#[allow(clippy::cast_precision_loss)]
fn check(body: &str, w: &Warehouse, tables: &[Table]) -> u64 {
    let lint = prom::promtool_check_metrics(body);
    assert!(lint.is_empty(), "promtool check metrics: {lint}");
    let samples = prom::parse(body);
    assert_eq!(cluster_value(&samples, "hive_scan_success"), 1.0);
    let mut listings = 0;
    let mut found_somewhere = false;
    for t in tables {
        let labels = [
            ("cluster", "dark"),
            ("database", "sales"),
            ("table", t.name),
        ];
        let got = |what: &str| {
            prom::value(
                &samples,
                &format!("hive_table_unreferenced_{what}"),
                &labels,
            )
        };
        if !t.partitioned {
            for what in ["files", "bytes", "directories"] {
                assert_eq!(got(what), None, "{} is unpartitioned: {what}", t.name);
            }
            continue;
        }
        let want = expected(w, t);
        listings += want.listings;
        found_somewhere |= want.files > 0;
        assert_eq!(
            [got("directories"), got("files"), got("bytes")],
            [want.directories, want.files, want.bytes].map(|x| Some(x as f64)),
            "unreferenced directories/files/bytes of {}",
            t.name
        );
    }
    assert!(found_somewhere, "the warehouse has unreferenced files");
    assert_eq!(
        cluster_value(&samples, "hive_scan_unreferenced_listings"),
        listings as f64,
        "listings of the view"
    );
    listings
}

async fn local(kind: DbKind, version: SchemaVersion) {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::new(dir.path().join("warehouse")).unwrap();
    let (rows, tables) = build(&w, &|rel| w.uri(rel));
    let db = FixtureDb::create(kind, version, &unique_db_name(&format!("dark_{kind:?}")))
        .await
        .unwrap();
    db.insert(&rows).await.unwrap();
    let storage = format!("type = \"local\"\nroot = \"{}\"", w.root().display());

    let with_view = scrape(&write_config(dir.path(), &db, &storage, true)).await;
    let view_listings = check(&with_view, &w, &tables);
    let without_view = scrape(&write_config(dir.path(), &db, &storage, false)).await;
    let (with_view, without_view) = (prom::parse(&with_view), prom::parse(&without_view));
    assert!(
        !without_view
            .iter()
            .any(|s| s.name.starts_with("hive_table_unreferenced_")),
        "the view is off"
    );
    // The view's listings are all it adds to a scan.
    #[allow(clippy::cast_precision_loss)]
    let extra = view_listings as f64;
    assert_eq!(
        cluster_value(&with_view, "hive_scan_listings")
            - cluster_value(&without_view, "hive_scan_listings"),
        extra
    );
    eprintln!(
        "unreferenced-data view: {extra} of {} listings",
        cluster_value(&with_view, "hive_scan_listings")
    );
    // Everything else is the same.
    let strip = |s: &[Sample]| -> Vec<Sample> {
        s.iter()
            .filter(|x| x.name.starts_with("hive_table_") && !x.name.contains("unreferenced"))
            .cloned()
            .collect()
    };
    assert_eq!(strip(&with_view), strip(&without_view));
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn mariadb_hive_3_1_local() {
    local(DbKind::Mysql, SchemaVersion::Hive3_1).await;
}

#[tokio::test]
async fn postgres_hive_2_1_local() {
    local(DbKind::Postgres, SchemaVersion::Hive2_1).await;
}

#[tokio::test]
async fn postgres_cdp_over_webhdfs() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::new(dir.path().join("warehouse")).unwrap();
    let (rows, tables) = build(&w, &|rel| format!("hdfs://testns/warehouse/{rel}"));
    let ns = Namespace::new_shared();
    ns.import_dir(w.root(), "/warehouse").unwrap();
    // Listing batches of two entries: the view's listings span several requests.
    let server = WebHdfsServer::start(ServerOptions::new().namespace(Arc::clone(&ns)).ls_limit(2))
        .await
        .unwrap();
    let db = FixtureDb::create(
        DbKind::Postgres,
        SchemaVersion::Cdp3_1_3000,
        &unique_db_name("dark_webhdfs"),
    )
    .await
    .unwrap();
    db.insert(&rows).await.unwrap();
    let storage = format!(
        "type = \"webhdfs\"\nnamenodes = [\"{}\"]\nauthorities = [\"testns\"]\nmax_concurrent_requests = 2",
        server.namenode_url(0)
    );
    let body = scrape(&write_config(dir.path(), &db, &storage, true)).await;
    check(&body, &w, &tables);
    assert!(server.max_concurrent() <= 2);
    db.drop_database().await.unwrap();
}
