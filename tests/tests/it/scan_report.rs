//! What `scan --once` reports besides the listed tables, on a Hive 3 MetaStore (MariaDB) and a
//! `file:` warehouse: tables of a catalog not configured counted as filtered with reason
//! `catalog`, the skipped tables with their reasons, newest-file times and missing
//! directories per table, and materialized views listed or filtered by the setting.

use std::path::Path;
use std::process::Command;

use hive_smallfiles_tests::metastore_fixture::{
    DbKind, FixtureDb, FixtureTable, Format, SchemaVersion, unique_db_name,
};
use hive_smallfiles_tests::scenario::{SMALL_FILE_BYTES, Scenario, TARGET_FILE_BYTES};
use hive_smallfiles_tests::warehouse::Warehouse;

fn scan_once(config: &Path, format: &str) -> (Option<i32>, String) {
    let out = Command::new(crate::EXPORTER_BIN)
        .arg("--config.file")
        .arg(config)
        .args(["scan", "--once", "--format", format])
        .output()
        .expect("run exporter");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn filtered_catalogs_skipped_tables_and_materialized_views() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::new(dir.path().join("warehouse")).unwrap();
    // With a table in catalog `spark`, which the configuration below does not select.
    let mut scenario = Scenario::build(&w, &|rel| w.uri(rel), true);
    let mut mv = FixtureTable::new(
        "sales",
        "orders_mv",
        Format::Orc,
        &w.uri("sales.db/orders_mv"),
    );
    "MATERIALIZED_VIEW".clone_into(&mut mv.tbl_type);
    w.file("sales.db/orders_mv/000000_0", 10).unwrap();
    scenario.tables.push(mv);
    let db = FixtureDb::create(
        DbKind::Mysql,
        SchemaVersion::Hive3_1,
        &unique_db_name("report"),
    )
    .await
    .unwrap();
    db.insert(&scenario.tables).await.unwrap();
    let c = db.metastore_config();
    let config = dir.path().join("exporter.toml");
    let write = |materialized_views: bool| {
        std::fs::write(
            &config,
            format!(
                "[[cluster]]\nname = \"c1\"\nsmall_file_bytes = {SMALL_FILE_BYTES}\ntarget_file_bytes = {TARGET_FILE_BYTES}\n\
                 exclude = [\"scratch.*\"]\nmaterialized_views = {materialized_views}\n\
                 [cluster.metastore]\nurl = \"mysql://{}@{}:{}/{}\"\n\
                 [cluster.storage]\ntype = \"local\"\nroot = \"{}\"\n",
                c.user,
                c.host,
                c.port,
                c.database,
                w.root().display()
            ),
        )
        .unwrap();
    };

    write(true);
    let (code, out) = scan_once(&config, "json");
    assert_eq!(code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cluster = &doc["clusters"][0];
    // One table in catalog `spark`, one excluded by the globs.
    assert_eq!(
        cluster["tables_filtered_by_reason"],
        serde_json::json!({"catalog": 1, "glob": scenario.filtered})
    );
    assert_eq!(
        cluster["tables_filtered"],
        serde_json::json!(1 + scenario.filtered)
    );
    // The skipped tables by name, with the reasons the scenario expects.
    let mut skipped: Vec<(String, String)> = doc["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["reason"].as_str().unwrap().to_owned(),
                r["table"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut want: Vec<(String, String)> = scenario
        .skipped
        .iter()
        .map(|(reason, t)| ((*reason).to_owned(), t.clone()))
        .collect();
    skipped.sort();
    want.sort();
    assert_eq!(skipped, want);
    // Newest-file time and missing directories per table, against the files themselves.
    let rows = doc["tables"].as_array().unwrap();
    for e in scenario.expected.iter().filter(|e| e.database == "sales") {
        let truth = e.truth(SMALL_FILE_BYTES, TARGET_FILE_BYTES);
        let row = rows
            .iter()
            .find(|r| r["database"] == "sales" && r["table"] == e.table.as_str())
            .unwrap_or_else(|| panic!("{} missing", e.table));
        let newest = (truth.files > 0).then(|| truth.newest_mtime_ms.div_euclid(1000));
        assert_eq!(
            row["newest_file_timestamp_seconds"].as_i64(),
            newest,
            "{}",
            e.table
        );
        assert_eq!(row["missing_directories"], truth.missing, "{}", e.table);
    }
    // The materialized view is listed by default.
    let mv = rows
        .iter()
        .find(|r| r["table"] == "orders_mv")
        .expect("materialized view listed");
    assert_eq!(mv["files"], 1);
    assert_eq!(mv["table_type"], "materialized_view");

    // CSV: the same rows, then the skipped tables with their reasons.
    let (code, csv) = scan_once(&config, "csv");
    assert_eq!(code, Some(0));
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(
        &header[header.len() - 4..],
        &[
            "missing_directories",
            "newest_file_timestamp_seconds",
            "status",
            "reason"
        ]
    );
    assert_eq!(
        csv.lines().filter(|l| l.contains(",scanned,")).count(),
        rows.len()
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("c1,sales,orders_v,") && l.ends_with(",skipped,view")),
        "{csv}"
    );

    // Materialized views off: filtered, with their own reason.
    write(false);
    let (code, out) = scan_once(&config, "json");
    assert_eq!(code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        doc["clusters"][0]["tables_filtered_by_reason"]["materialized_view"],
        1
    );
    assert!(
        doc["tables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["table"] != "orders_mv")
    );
    db.drop_database().await.unwrap();
}

/// A `file:` warehouse with an external table in a second directory: `roots` lists both, and
/// both tables are counted; with only the first root the second table fails (exit 2).
#[tokio::test]
async fn a_file_cluster_with_two_roots() {
    let dir = tempfile::tempdir().unwrap();
    let main = Warehouse::new(dir.path().join("warehouse")).unwrap();
    let external = Warehouse::new(dir.path().join("external")).unwrap();
    main.file("sales.db/orders/000000_0", 100).unwrap();
    for i in 0..3 {
        external.file(&format!("landing/part-{i}"), 10 + i).unwrap();
    }
    let tables = [
        FixtureTable::new(
            "sales",
            "orders",
            Format::Text,
            &main.uri("sales.db/orders"),
        ),
        FixtureTable::new("sales", "landing", Format::Text, &external.uri("landing")).external(),
    ];
    let db = FixtureDb::create(
        DbKind::Postgres,
        SchemaVersion::Hive2_1,
        &unique_db_name("roots"),
    )
    .await
    .unwrap();
    db.insert(&tables).await.unwrap();
    let c = db.metastore_config();
    let config = dir.path().join("exporter.toml");
    let write = |storage: &str| {
        std::fs::write(
            &config,
            format!(
                "[[cluster]]\nname = \"c1\"\n\
                 [cluster.metastore]\nurl = \"postgres://{}@{}:{}/{}\"\n\
                 [cluster.storage]\ntype = \"local\"\n{storage}\n",
                c.user, c.host, c.port, c.database
            ),
        )
        .unwrap();
    };
    write(&format!(
        "root = \"{}\"\nroots = [\"{}\"]",
        main.root().display(),
        external.root().display()
    ));
    let (code, out) = scan_once(&config, "json");
    assert_eq!(code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let files = |table: &str| {
        doc["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["table"] == table)
            .map(|r| r["files"].clone())
    };
    assert_eq!(files("orders"), Some(serde_json::json!(1)));
    assert_eq!(files("landing"), Some(serde_json::json!(3)));

    write(&format!("root = \"{}\"", main.root().display()));
    let (code, out) = scan_once(&config, "json");
    assert_eq!(code, Some(2), "outside the only root: {out}");
    db.drop_database().await.unwrap();
}
