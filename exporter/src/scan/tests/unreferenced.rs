//! The unreferenced-data view over the in-memory filesystem: what it finds, against ground
//! truth computed from the filesystem's contents (paths, not listings), and what it costs,
//! against the same scan with the view turned off.

use super::*;

/// Ground truth for a table at `location` with partition directories `partitions`: files
/// below the location whose path below it has no hidden segment and that lie in no partition
/// directory, and the outermost such directories that hold no partition; plus every such
/// directory (what the view has to walk) and those with such subdirectories (what it relists
/// when nothing changed).
struct DarkTruth {
    found: Unreferenced,
    dirs: u64,
    dirs_with_subdirs: u64,
}

fn dark_truth(fs: &MemFs, location: &str, partitions: &[&str]) -> DarkTruth {
    let g = fs.inner.lock().unwrap();
    let visible_below = |p: &str| {
        p.strip_prefix(location)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|r| {
                !r.split('/')
                    .any(|s| s.starts_with('.') || s.starts_with('_'))
            })
    };
    let in_partition = |p: &str| {
        partitions
            .iter()
            .any(|q| p == *q || p.starts_with(&format!("{q}/")))
    };
    let holds_partition = |p: &str| partitions.iter().any(|q| q.starts_with(&format!("{p}/")));
    let dark = |p: &str| visible_below(p) && !in_partition(p) && !holds_partition(p);
    let mut found = Unreferenced::default();
    for (p, (len, _)) in &g.files {
        if dark(p) {
            found.files += 1;
            found.bytes += len;
        }
    }
    let dark_dirs: Vec<&String> = g.dirs.keys().filter(|d| dark(d)).collect();
    for d in &dark_dirs {
        if !dark(parent_path(d)) {
            found.directories += 1;
        }
    }
    let dirs_with_subdirs = dark_dirs
        .iter()
        .filter(|d| dark_dirs.iter().any(|e| parent_path(e) == d.as_str()))
        .count() as u64;
    DarkTruth {
        found,
        dirs: dark_dirs.len() as u64,
        dirs_with_subdirs,
    }
}

/// A partitioned table at `location` whose partitions are at the given paths.
fn table_with_partitions(name: &str, location: &str, keys: &[&str], paths: &[&str]) -> TableMeta {
    let mut t = partitioned("db", name, &format!("hdfs://ns{location}"), keys, &[]);
    t.partitions = paths
        .iter()
        .enumerate()
        .map(|(i, p)| PartitionMeta {
            id: i as i64,
            name: format!("p{i}"),
            values: Vec::new(),
            location: Some(format!("hdfs://ns{p}")),
            create_time: 0,
            stats_num_files: None,
        })
        .collect();
    t
}

/// Lists with the view and without it; returns both results and the listing counts.
async fn scan_both(
    fs: &Arc<MemFs>,
    with: &mut ClusterScanner,
    without: &mut ClusterScanner,
    tables: &[TableMeta],
) -> (Vec<TableStats>, ScanSummary, u64, Vec<TableStats>, u64) {
    fs.listings();
    let (stats, summary, _) = with.list_tables(snap(tables.to_vec())).await.unwrap();
    let listed_with = fs.listings();
    let (plain, _, _) = without.list_tables(snap(tables.to_vec())).await.unwrap();
    let listed_without = fs.listings();
    (stats, summary, listed_with, plain, listed_without)
}

/// Everything but the view's numbers is the same with and without it.
fn assert_same_but_view(with: &[TableStats], without: &[TableStats]) {
    assert_eq!(with.len(), without.len());
    for (a, b) in with.iter().zip(without) {
        assert_eq!(b.unreferenced, None, "{}", b.table);
        let mut a = a.clone();
        a.unreferenced = None;
        assert_eq!(&a, b);
    }
}

#[tokio::test]
async fn single_level_table_unregistered_switched_stray_and_hidden() {
    let fs = Arc::new(MemFs::default());
    for (dir, n) in [("ds=2", 3), (".hive-smallfiles-merged/ds=1-m1", 2)] {
        for f in 0..n {
            fs.add_file(&format!("/wh/t/{dir}/{f:06}_0"), 10 + f);
        }
    }
    // The old directory of ds=1, switched to .hive-smallfiles-merged/ds=1-m1: its files stay behind.
    fs.add_file("/wh/t/ds=1/000000_0", 100);
    fs.add_file("/wh/t/ds=1/000001_0", 200);
    // Written by an ingestion tool and never registered, with a subdirectory.
    fs.add_file("/wh/t/ds=3/000000_0", 300);
    fs.add_file("/wh/t/ds=3/sub/000000_0", 400);
    fs.add_file("/wh/t/ds=3/_SUCCESS", 0);
    fs.add_file("/wh/t/stray.csv", 50);
    // Hidden: never dark data.
    fs.add_file("/wh/t/_temporary/0/part-00000", 1000);
    fs.add_file("/wh/t/.hive-staging_hive_1/-ext-10000/000000_0", 1000);
    fs.add_file("/wh/t/.hive-smallfiles.lock", 1);
    fs.add_file("/wh/t/.hive-smallfiles-merged/ds=5-m0/000000_0", 7);
    // A partition outside the table location, next to unrelated data.
    fs.add_file("/landing/t/ds=4/000000_0", 5);
    fs.add_file("/landing/t/other/000000_0", 5);
    // An unpartitioned table: nothing to look at.
    fs.add_file("/wh/u/000000_0", 5);
    fs.add_file("/wh/u/sub/000000_0", 5);
    let parts = [
        "/wh/t/ds=2",
        "/wh/t/.hive-smallfiles-merged/ds=1-m1",
        "/landing/t/ds=4",
    ];
    let tables = vec![
        table_with_partitions("t", "/wh/t", &["ds"], &parts),
        table("db", "u", "hdfs://ns/wh/u"),
    ];
    let mut with = scanner(Arc::clone(&fs));
    let mut without = scanner_without_view(Arc::clone(&fs));

    let truth = dark_truth(&fs, "/wh/t", &parts);
    assert!(truth.found.files > 0 && truth.found.directories > 1 && truth.dirs_with_subdirs > 0);
    let (stats, summary, listed_with, plain, listed_without) =
        scan_both(&fs, &mut with, &mut without, &tables).await;
    assert_eq!(find(&stats, "db", "t").unreferenced, Some(truth.found));
    assert_eq!(find(&stats, "db", "u").unreferenced, None);
    assert_same_but_view(&stats, &plain);
    // The location is listed anyway (the partitions' parent): the view only walks what it
    // finds, each directory once.
    assert_eq!(listed_with - listed_without, truth.dirs);
    assert_eq!(summary.unreferenced_listings, truth.dirs);

    // Unchanged: only unreferenced directories with subdirectories are listed again.
    let (stats, summary, listed_with, _, listed_without) =
        scan_both(&fs, &mut with, &mut without, &tables).await;
    assert_eq!(find(&stats, "db", "t").unreferenced, Some(truth.found));
    assert_eq!(listed_with - listed_without, truth.dirs_with_subdirs);
    assert_eq!(summary.unreferenced_listings, truth.dirs_with_subdirs);

    // The tool writes another day; then ds=3 gets registered.
    fs.add_file("/wh/t/ds=6/000000_0", 600);
    let (stats, ..) = scan_both(&fs, &mut with, &mut without, &tables).await;
    let truth = dark_truth(&fs, "/wh/t", &parts);
    assert_eq!(find(&stats, "db", "t").unreferenced, Some(truth.found));
    let parts = [
        "/wh/t/ds=2",
        "/wh/t/.hive-smallfiles-merged/ds=1-m1",
        "/landing/t/ds=4",
        "/wh/t/ds=3",
    ];
    let tables = vec![table_with_partitions("t", "/wh/t", &["ds"], &parts)];
    let (stats, ..) = scan_both(&fs, &mut with, &mut without, &tables).await;
    let registered = dark_truth(&fs, "/wh/t", &parts);
    assert!(registered.found.files < truth.found.files);
    assert_eq!(find(&stats, "db", "t").unreferenced, Some(registered.found));
}

#[tokio::test]
async fn multi_level_tables_descend_into_directories_holding_partitions() {
    let fs = Arc::new(MemFs::default());
    let parts = [
        "/wh/m/a=1/b=1",
        "/wh/m/a=1/b=2",
        "/wh/m/a=2/b=1",
        "/elsewhere/m/a=9/b=9",
    ];
    for p in parts {
        fs.add_file(&format!("{p}/000000_0"), 10);
    }
    fs.add_file("/wh/m/a=1/b=3/000000_0", 30);
    fs.add_file("/wh/m/a=3/b=1/000000_0", 40);
    fs.add_file("/wh/m/a=3/b=2/000000_0", 50);
    fs.add_file("/wh/m/a=1/stray", 60);
    fs.add_file("/wh/m/a=2/_tmp/000000_0", 70);
    // Three levels, one partition: the two levels above it are examined, not counted.
    let deep = ["/wh/x/a=1/b=1/c=1"];
    fs.add_file("/wh/x/a=1/b=1/c=1/000000_0", 1);
    fs.add_file("/wh/x/a=1/b=1/c=2/000000_0", 2);
    fs.add_file("/wh/x/a=1/b=2/c=1/000000_0", 3);
    fs.add_file("/wh/x/a=2/b=1/c=1/000000_0", 4);
    let tables = vec![
        table_with_partitions("m", "/wh/m", &["a", "b"], &parts),
        table_with_partitions("x", "/wh/x", &["a", "b", "c"], &deep),
    ];
    let mut with = scanner(Arc::clone(&fs));
    let mut without = scanner_without_view(Arc::clone(&fs));
    let (stats, summary, listed_with, plain, listed_without) =
        scan_both(&fs, &mut with, &mut without, &tables).await;
    assert_same_but_view(&stats, &plain);
    let m = dark_truth(&fs, "/wh/m", &parts);
    let x = dark_truth(&fs, "/wh/x", &deep);
    assert_eq!(find(&stats, "db", "m").unreferenced, Some(m.found));
    assert_eq!(find(&stats, "db", "x").unreferenced, Some(x.found));
    // Extra listings: each table location (the a= level of m is its partitions' parents,
    // listed anyway), x's a=1 (between its location and the b= parent), and the walks.
    assert_eq!(listed_with - listed_without, 2 + 1 + m.dirs + x.dirs);
    assert_eq!(summary.unreferenced_listings, listed_with - listed_without);
}

#[tokio::test]
async fn a_failing_unreferenced_directory_fails_its_table_only() {
    let fs = Arc::new(MemFs::default());
    fs.add_file("/wh/t/ds=1/f", 10);
    fs.add_file("/wh/t/ds=9/f", 10);
    fs.add_file("/wh/v/ds=1/f", 10);
    fs.add_file("/wh/v/ds=7/f", 10);
    let tables = vec![
        table_with_partitions("t", "/wh/t", &["ds"], &["/wh/t/ds=1"]),
        table_with_partitions("v", "/wh/v", &["ds"], &["/wh/v/ds=1"]),
    ];
    let mut s = scanner(Arc::clone(&fs));
    let (stats, _, _) = s.list_tables(snap(tables.clone())).await.unwrap();
    let t_before = find(&stats, "db", "t").clone();
    assert_eq!(
        t_before.unreferenced,
        Some(dark_truth(&fs, "/wh/t", &["/wh/t/ds=1"]).found)
    );
    s.snapshot = Arc::new(ClusterSnapshot {
        tables: stats,
        ..ClusterSnapshot::default()
    });
    fs.add_file("/wh/t/ds=9/g", 10);
    fs.add_file("/wh/v/ds=7/g", 10);
    *fs.fail_prefix.lock().unwrap() = Some("/wh/t/ds=9".into());
    let (stats, summary, _) = s.list_tables(snap(tables)).await.unwrap();
    assert_eq!(summary.tables.failed, 1);
    assert_eq!(summary.tables.scanned, 1);
    assert_eq!(summary.partitions.failed, 0, "no partition failed");
    assert_eq!(find(&stats, "db", "t"), &t_before, "previous numbers kept");
    assert_eq!(
        find(&stats, "db", "v").unreferenced,
        Some(dark_truth(&fs, "/wh/v", &["/wh/v/ds=1"]).found)
    );
}

#[tokio::test]
async fn locations_without_partitions_or_inside_one() {
    let fs = Arc::new(MemFs::default());
    // No partition registered yet, but data written.
    fs.add_file("/wh/new/ds=1/f", 10);
    fs.add_file("/wh/new/ds=2/f", 20);
    // A partition at the table location: everything below is that partition's.
    fs.add_file("/wh/self/f", 10);
    fs.add_file("/wh/self/sub/f", 10);
    let tables = vec![
        table_with_partitions("new", "/wh/new", &["ds"], &[]),
        table_with_partitions("self", "/wh/self", &["ds"], &["/wh/self"]),
        table_with_partitions("gone", "/wh/gone", &["ds"], &[]),
    ];
    let mut with = scanner(Arc::clone(&fs));
    let mut without = scanner_without_view(Arc::clone(&fs));
    let (stats, summary, listed_with, plain, listed_without) =
        scan_both(&fs, &mut with, &mut without, &tables).await;
    assert_same_but_view(&stats, &plain);
    let new = dark_truth(&fs, "/wh/new", &[]);
    assert!(new.found.files > 0);
    assert_eq!(find(&stats, "db", "new").unreferenced, Some(new.found));
    assert_eq!(
        find(&stats, "db", "self").unreferenced,
        Some(Unreferenced::default())
    );
    // A location that does not exist has nothing below it.
    assert_eq!(
        find(&stats, "db", "gone").unreferenced,
        Some(Unreferenced::default())
    );
    // The locations of `new` and `gone` (no partition parent to reuse), and new's walks.
    assert_eq!(listed_with - listed_without, 2 + new.dirs);
    assert_eq!(summary.unreferenced_listings, listed_with - listed_without);
}
