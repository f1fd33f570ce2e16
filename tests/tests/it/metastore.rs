//! MetaStore readers against real MariaDB and PostgreSQL databases built by
//! `metastore_fixture`, for the Hive 2.1, Hive 3.1 and CDP 3.1.3000 schemas.
//!
//! Expected values come from the fixture definitions (and a few literal strings), never from
//! the reader's own output.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hive_smallfiles_core::metastore::classify::{SERDE_PARAM_KEYS, TABLE_PARAM_KEYS};
use hive_smallfiles_core::metastore::{
    Metastore, MetastoreConfig, MetastoreError, MetastoreSnapshot, TableMeta,
};
use hive_smallfiles_tests::metastore_fixture::{
    DbKind, FixtureDb, FixtureTable, Format, MysqlCharset, PrivateMariaDb, SchemaVersion,
    pg_statement_statistics_unavailable, unique_db_name,
};

const HOSTILE_TABLE: &str = "we ird%=t'ábla 表";
const HOSTILE_VALUE: &str = "a b%c=d'e/f";

fn fixture_tables(version: SchemaVersion) -> Vec<FixtureTable> {
    let wh = "hdfs://ns1/warehouse";
    let mut tables = vec![
        FixtureTable::new(
            "sales",
            "events",
            Format::Text,
            &format!("{wh}/sales.db/events"),
        )
        .partitioned_by(&[("dt", "string"), ("hr", "int")])
        .partition(&["2024-01-01", "00"])
        .with_num_files(3)
        .partition(&["2024-01-01", "01"])
        .partition_at(&["2024-01-02", "00"], "s3a://bucket/events/moved")
        .with_num_files(7)
        .param("numFiles", "10")
        .param("not.kept", "x")
        .serde_param("field.delim", ",")
        .serde_param("not.kept.either", "y"),
        FixtureTable::new(
            "sales",
            "orders",
            Format::Parquet,
            &format!("{wh}/sales.db/orders"),
        )
        .external()
        .column("amount", "decimal(10,2)"),
        FixtureTable::new(
            "sales",
            "acid_orc",
            Format::Orc,
            &format!("{wh}/sales.db/acid_orc"),
        )
        .acid()
        .bucketed(4, &["id"], &["id"]),
        FixtureTable::new("sales", "mm", Format::Text, &format!("{wh}/sales.db/mm")).insert_only(),
        FixtureTable::new("sales", "v_orders", Format::Text, "").view("select * from orders"),
        FixtureTable::new("raw", "kudu_t", Format::Text, "")
            .storage_handler("org.apache.hadoop.hive.kudu.KuduStorageHandler"),
        FixtureTable::new(
            "raw",
            "hbase_t",
            Format::Text,
            &format!("{wh}/raw.db/hbase_t"),
        )
        .storage_handler("org.apache.hadoop.hive.hbase.HBaseStorageHandler"),
        FixtureTable::new("raw", "ice", Format::Parquet, &format!("{wh}/raw.db/ice"))
            .external()
            .param("table_type", "ICEBERG"),
        FixtureTable::new("raw", "on_s3", Format::Orc, "s3a://bucket/raw/on_s3"),
        FixtureTable::new(
            "raw",
            HOSTILE_TABLE,
            Format::Text,
            &format!("{wh}/raw.db/hostile"),
        )
        .partitioned_by(&[("k", "string")])
        .partition(&[HOSTILE_VALUE])
        .partition(&[""])
        .partition(&["ünï表"]),
        FixtureTable::new("raw", "cols", Format::Avro, &format!("{wh}/raw.db/cols"))
            .column("zeta", "string")
            .column("alpha", "bigint")
            .column("mid", "map<string,int>"),
    ];
    if version.has_catalogs() {
        // Same database and table names in another catalog: must stay a distinct table.
        tables.push(
            FixtureTable::new(
                "sales",
                "orders",
                Format::Orc,
                "hdfs://ns1/spark/sales.db/orders",
            )
            .in_catalog("spark"),
        );
    }
    tables
}

fn kept(map: &BTreeMap<String, String>, keys: &[&str]) -> BTreeMap<String, String> {
    map.iter()
        .filter(|(k, _)| keys.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Asserts every field of `got` against the fixture definition `want`.
fn assert_table(want: &FixtureTable, got: &TableMeta, has_catalogs: bool) {
    let ctx = format!("{}.{}", want.database, want.name);
    let catalog = if has_catalogs {
        want.catalog.as_str()
    } else {
        "hive"
    };
    assert_eq!(got.catalog, catalog, "{ctx}");
    assert_eq!(got.database, want.database, "{ctx}");
    assert_eq!(got.name, want.name, "{ctx}");
    assert_eq!(got.tbl_type, want.tbl_type, "{ctx}");
    assert_eq!(got.location, want.location, "{ctx}");
    assert_eq!(got.input_format, want.input_format, "{ctx}");
    assert_eq!(got.output_format, want.output_format, "{ctx}");
    assert_eq!(got.serde_lib, want.serde_lib, "{ctx}");
    assert_eq!(got.num_buckets, want.num_buckets, "{ctx}");
    assert_eq!(got.bucket_columns as usize, want.bucket_cols.len(), "{ctx}");
    assert_eq!(got.sort_columns as usize, want.sort_cols.len(), "{ctx}");
    assert!(got.cd_id.is_some(), "{ctx}");
    assert_eq!(got.create_time, want.create_time, "{ctx}");
    assert_eq!(got.params, kept(&want.params, TABLE_PARAM_KEYS), "{ctx}");
    assert_eq!(
        got.serde_params,
        kept(&want.serde_params, SERDE_PARAM_KEYS),
        "{ctx}"
    );
    let keys: Vec<(String, String)> = got
        .partition_keys
        .iter()
        .map(|k| (k.name.clone(), k.type_name.clone()))
        .collect();
    assert_eq!(keys, want.partition_keys, "{ctx}");
    assert_eq!(got.partitions.len(), want.partitions.len(), "{ctx}");
    for (g, w) in got.partitions.iter().zip(&want.partitions) {
        assert_eq!(g.name, w.name, "{ctx}");
        assert_eq!(g.values, w.values, "{ctx}");
        assert_eq!(g.location, w.location, "{ctx}");
        assert_eq!(g.create_time, w.create_time, "{ctx}");
        assert_eq!(g.stats_num_files, w.num_files, "{ctx}");
    }
    assert!(
        got.partitions.windows(2).all(|p| p[0].id < p[1].id),
        "{ctx}: partitions by PART_ID"
    );
}

fn find<'a>(s: &'a MetastoreSnapshot, catalog: &str, db: &str, name: &str) -> &'a TableMeta {
    s.tables
        .iter()
        .find(|t| t.catalog == catalog && t.database == db && t.name == name)
        .unwrap_or_else(|| panic!("{catalog}.{db}.{name} missing"))
}

async fn connect(cfg: &MetastoreConfig) -> Metastore {
    Metastore::connect(cfg).await.expect("connect")
}

async fn roundtrip(kind: DbKind, version: SchemaVersion) {
    let name = unique_db_name(&format!("rt_{kind:?}_{}", version.file_stem()));
    let db = FixtureDb::create(kind, version, &name)
        .await
        .expect("fixture");
    let tables = fixture_tables(version);
    db.insert(&tables).await.expect("insert");
    let ms = connect(&db.metastore_config()).await;

    // Probe.
    let info = ms.probe().await.expect("probe");
    assert_eq!(
        info.schema_version.as_deref(),
        Some(version.schema_version())
    );
    assert_eq!(
        info.distribution_version.as_deref(),
        version.distribution_version()
    );
    assert_eq!(info.has_catalogs, version.has_catalogs());
    assert_eq!(info.has_write_id, version == SchemaVersion::Cdp3_1_3000);
    assert_eq!(
        info.has_managed_location,
        version == SchemaVersion::Cdp3_1_3000
    );

    // Snapshot of catalog `hive`.
    let snap = ms.read_snapshot().await.expect("snapshot");
    assert_eq!(snap.schema, info);
    let hive: Vec<&FixtureTable> = tables
        .iter()
        .filter(|t| !version.has_catalogs() || t.catalog == "hive")
        .collect();
    assert_eq!(snap.tables.len(), hive.len());
    for want in &hive {
        assert_table(
            want,
            find(&snap, "hive", &want.database, &want.name),
            version.has_catalogs(),
        );
    }
    let mut order: Vec<(String, String, String)> = hive
        .iter()
        .map(|t| ("hive".to_owned(), t.database.clone(), t.name.clone()))
        .collect();
    order.sort();
    let got_order: Vec<(String, String, String)> = snap
        .tables
        .iter()
        .map(|t| (t.catalog.clone(), t.database.clone(), t.name.clone()))
        .collect();
    assert_eq!(got_order, order);

    // Literal checks of escaping and unicode (independent of the fixture's own escaping).
    let hostile = find(&snap, "hive", "raw", HOSTILE_TABLE);
    assert_eq!(hostile.partitions[0].name, "k=a b%25c%3Dd%27e%2Ff");
    assert_eq!(
        hostile.partitions[0].location.as_deref(),
        Some("hdfs://ns1/warehouse/raw.db/hostile/k=a b%25c%3Dd%27e%2Ff")
    );
    assert_eq!(hostile.partitions[0].values, vec![HOSTILE_VALUE]);
    assert_eq!(hostile.partitions[1].name, "k=__HIVE_DEFAULT_PARTITION__");
    assert_eq!(hostile.partitions[2].name, "k=ünï表");
    let events = find(&snap, "hive", "sales", "events");
    assert_eq!(events.partitions[0].name, "dt=2024-01-01/hr=00");
    assert_eq!(events.partitions[0].stats_num_files, Some(3));
    assert_eq!(
        events.params.get("numFiles").map(String::as_str),
        Some("10")
    );
    assert!(!events.params.contains_key("not.kept"));

    // Classification sanity on what was read.
    use hive_smallfiles_core::metastore::{FileFormat, NotScannedReason, TableType, Transactional};
    assert_eq!(
        find(&snap, "hive", "sales", "orders").class().table_type,
        TableType::External
    );
    assert_eq!(
        find(&snap, "hive", "sales", "orders").class().format,
        FileFormat::Parquet
    );
    assert_eq!(
        find(&snap, "hive", "sales", "acid_orc")
            .class()
            .transactional,
        Transactional::Full
    );
    assert_eq!(
        find(&snap, "hive", "sales", "mm").class().transactional,
        Transactional::InsertOnly
    );
    assert_eq!(
        find(&snap, "hive", "sales", "v_orders").class().not_scanned,
        Some(NotScannedReason::View)
    );
    for sh in ["kudu_t", "hbase_t", "ice"] {
        assert_eq!(
            find(&snap, "hive", "raw", sh).class().not_scanned,
            Some(NotScannedReason::StorageHandler),
            "{sh}"
        );
    }

    // Single table and columns.
    let t = ms
        .read_table("hive", "raw", HOSTILE_TABLE)
        .await
        .expect("read_table")
        .expect("exists");
    assert_table(
        tables
            .iter()
            .find(|t| t.name == HOSTILE_TABLE)
            .expect("def"),
        &t,
        version.has_catalogs(),
    );
    assert_eq!(t, *hostile);
    assert!(
        ms.read_table("hive", "raw", "nope")
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        ms.read_table("other", "raw", "cols")
            .await
            .expect("read")
            .is_none()
    );
    let cols_def = tables.iter().find(|t| t.name == "cols").expect("def");
    let cols = ms
        .table_columns(find(&snap, "hive", "raw", "cols"))
        .await
        .expect("columns");
    let names: Vec<(String, String)> = cols
        .iter()
        .map(|c| (c.name.clone(), c.type_name.clone()))
        .collect();
    assert_eq!(names, cols_def.columns);
    assert_eq!(cols[1].comment.as_deref(), Some("column zeta"));

    // Catalogs: the `spark` copy only appears when asked for, and stays distinct.
    if version.has_catalogs() {
        assert!(
            ms.read_table("spark", "sales", "orders")
                .await
                .expect("read")
                .is_some_and(|t| t.location.as_deref() == Some("hdfs://ns1/spark/sales.db/orders"))
        );
        let mut cfg = db.metastore_config();
        cfg.catalogs = vec!["hive".to_owned(), "spark".to_owned()];
        let both = connect(&cfg).await;
        let snap2 = both.read_snapshot().await.expect("snapshot");
        assert_eq!(snap2.tables.len(), tables.len());
        let spark = find(&snap2, "spark", "sales", "orders");
        let hive_orders = find(&snap2, "hive", "sales", "orders");
        assert_ne!(spark.id, hive_orders.id);
        assert_table(&tables[tables.len() - 1], spark, true);
        assert_eq!(
            snap2.tables.last().map(|t| t.catalog.as_str()),
            Some("spark")
        );
        both.close().await;
    } else {
        // Without catalogs every table is in `hive`, whatever the configuration says.
        assert!(snap.tables.iter().all(|t| t.catalog == "hive"));
    }

    ms.close().await;
    db.drop_database().await.expect("drop");
}

macro_rules! roundtrips {
    ($($name:ident: $kind:expr, $version:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            roundtrip($kind, $version).await;
        }
    )*};
}

roundtrips! {
    roundtrip_mariadb_hive_2_1: DbKind::Mysql, SchemaVersion::Hive2_1;
    roundtrip_mariadb_hive_3_1: DbKind::Mysql, SchemaVersion::Hive3_1;
    roundtrip_mariadb_cdp_3_1_3000: DbKind::Mysql, SchemaVersion::Cdp3_1_3000;
    roundtrip_postgres_hive_2_1: DbKind::Postgres, SchemaVersion::Hive2_1;
    roundtrip_postgres_hive_3_1: DbKind::Postgres, SchemaVersion::Hive3_1;
    roundtrip_postgres_cdp_3_1_3000: DbKind::Postgres, SchemaVersion::Cdp3_1_3000;
}

/// Queries of one snapshot (the reader's documented count, checked against the database
/// server's own statistics): 2 probe + 4 table-level + 3 per non-empty partition page + 1
/// when the last page is full.
fn expected_queries(partitions: u64, page: u64) -> u64 {
    let pages = partitions.div_ceil(page);
    let trailing_empty = u64::from(partitions % page == 0);
    2 + 4 + 3 * pages + trailing_empty
}

fn many_tables(n: usize, parts_each: usize) -> Vec<FixtureTable> {
    (0..n)
        .map(|i| {
            let mut t = FixtureTable::new(
                &format!("db{}", i % 3),
                &format!("t{i:04}"),
                Format::Parquet,
                &format!("hdfs://ns1/w/t{i}"),
            )
            .partitioned_by(&[("dt", "string")]);
            for p in 0..parts_each {
                t = t.partition(&[&format!("2024-01-{:02}", p + 1)]);
            }
            t
        })
        .collect()
}

/// The reader's statements of one snapshot as the database server counted them (its own
/// per-login statistics; see `FixtureDb::server_selects`), and the snapshot. One pooled
/// connection, opened by `connect`: a new connection's own setup statements are not the
/// reader's.
async fn counted_snapshot(db: &FixtureDb, page: u32) -> (u64, MetastoreSnapshot) {
    let (user, mut cfg) = db.reader_login("hsf_qc").await.expect("login");
    cfg.partition_page_size = page;
    cfg.pool_size = 1;
    let ms = connect(&cfg).await;
    let before = db.server_selects(&user).await.expect("server statistics");
    let snap = ms.read_snapshot().await.expect("snapshot");
    let after = db.server_selects(&user).await.expect("server statistics");
    // The reader's own count agrees with the server's.
    assert_eq!(ms.queries_executed(), after - before, "reader vs server");
    ms.close().await;
    (after - before, snap)
}

/// The server the query counts are taken on: PostgreSQL's shared one (its statistics are per
/// login and database), for MariaDB one of the test's own (performance_schema is off on the
/// shared one, and nobody else's statements move a private server's counters).
async fn counting_server(kind: DbKind) -> Result<Option<PrivateMariaDb>, String> {
    match kind {
        DbKind::Postgres => match pg_statement_statistics_unavailable().await {
            None => Ok(None),
            Some(why) => Err(why),
        },
        DbKind::Mysql => PrivateMariaDb::start()
            .await
            .map(Some)
            .map_err(|e| format!("a private MariaDB server: {e:#}")),
    }
}

async fn create_on(
    server: Option<&PrivateMariaDb>,
    kind: DbKind,
    version: SchemaVersion,
    name: &str,
) -> FixtureDb {
    match server {
        Some(s) => FixtureDb::create_at(&s.url, kind, version, name).await,
        None => FixtureDb::create(kind, version, name).await,
    }
    .expect("fixture")
}

async fn query_count(kind: DbKind, version: SchemaVersion) {
    let server = match counting_server(kind).await {
        Ok(s) => s,
        Err(why) => {
            hive_smallfiles_tests::skip::skip(&why);
            return;
        }
    };
    let mut counts = Vec::new();
    for n in [3usize, 300] {
        let name = unique_db_name(&format!("qc_{kind:?}_{n}"));
        let db = create_on(server.as_ref(), kind, version, &name).await;
        db.insert(&many_tables(n, 1)).await.expect("insert");
        let (count, snap) = counted_snapshot(&db, 10_000).await;
        assert_eq!(snap.tables.len(), n);
        assert!(snap.tables.iter().all(|t| t.partitions.len() == 1));
        counts.push(count);
        db.drop_database().await.expect("drop");
    }
    assert_eq!(counts[0], counts[1], "query count grows with tables");
    assert_eq!(counts[0], expected_queries(3, 10_000));

    // Tiny pages: the count grows by pages only, and every partition is still read once.
    let name = unique_db_name(&format!("qp_{kind:?}"));
    let db = create_on(server.as_ref(), kind, version, &name).await;
    db.insert(&many_tables(7, 5)).await.expect("insert");
    for page in [1u32, 4, 5, 35, 1000] {
        let (count, snap) = counted_snapshot(&db, page).await;
        assert_eq!(count, expected_queries(35, u64::from(page)), "page {page}");
        let mut ids: Vec<i64> = snap
            .tables
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.id))
            .collect();
        assert_eq!(ids.len(), 35);
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 35);
        for t in &snap.tables {
            let names: Vec<&str> = t.partitions.iter().map(|p| p.name.as_str()).collect();
            assert_eq!(
                names,
                [
                    "dt=2024-01-01",
                    "dt=2024-01-02",
                    "dt=2024-01-03",
                    "dt=2024-01-04",
                    "dt=2024-01-05"
                ]
            );
        }
    }
    db.drop_database().await.expect("drop");
}

#[tokio::test]
async fn query_count_constant_mariadb() {
    query_count(DbKind::Mysql, SchemaVersion::Hive3_1).await;
}

#[tokio::test]
async fn query_count_constant_postgres() {
    query_count(DbKind::Postgres, SchemaVersion::Cdp3_1_3000).await;
}

async fn odd_rows(kind: DbKind, version: SchemaVersion) {
    let name = unique_db_name(&format!("odd_{kind:?}"));
    let db = FixtureDb::create(kind, version, &name)
        .await
        .expect("fixture");
    db.insert(&[
        FixtureTable::new("d", "weird_type", Format::Text, "hdfs://ns1/w/weird"),
        FixtureTable::new("d", "no_loc", Format::Text, ""),
        FixtureTable::new("d", "p", Format::Text, "hdfs://ns1/w/p")
            .partitioned_by(&[("a", "string"), ("b", "string")])
            .partition(&["1", "x"])
            .partition(&["2", "y"])
            .partition(&["3", "z"]),
    ])
    .await
    .expect("insert");
    let (q, off, on) = match kind {
        DbKind::Mysql => (
            '`',
            "SET FOREIGN_KEY_CHECKS = 0",
            "SET FOREIGN_KEY_CHECKS = 1",
        ),
        DbKind::Postgres => (
            '"',
            "SET session_replication_role = replica",
            "SET session_replication_role = DEFAULT",
        ),
    };
    let id = |s: &str| format!("{q}{s}{q}");
    let stmts = [
        off.to_owned(),
        format!(
            "UPDATE {} SET {} = 'SOMETHING_NEW' WHERE {} = 'weird_type'",
            id("TBLS"),
            id("TBL_TYPE"),
            id("TBL_NAME")
        ),
        // The SD of partition a=2/b=y vanishes.
        format!(
            "UPDATE {} SET {} = 987654321 WHERE {} = 'a=2/b=y'",
            id("PARTITIONS"),
            id("SD_ID"),
            id("PART_NAME")
        ),
        // a=3/b=z loses its second key value.
        format!(
            "DELETE FROM {} WHERE {} = 1 AND {} = (SELECT {} FROM {} WHERE {} = 'a=3/b=z')",
            id("PARTITION_KEY_VALS"),
            id("INTEGER_IDX"),
            id("PART_ID"),
            id("PART_ID"),
            id("PARTITIONS"),
            id("PART_NAME")
        ),
        // An orphan partition of a table that does not exist.
        format!(
            "INSERT INTO {} ({}, {}, {}, {}, {}, {}) VALUES (5, 0, 0, 'x=1', NULL, 424242)",
            id("PARTITIONS"),
            id("PART_ID"),
            id("CREATE_TIME"),
            id("LAST_ACCESS_TIME"),
            id("PART_NAME"),
            id("SD_ID"),
            id("TBL_ID")
        ),
        on.to_owned(),
    ];
    for s in &stmts {
        db.execute(s).await.expect(s);
    }
    let ms = connect(&db.metastore_config()).await;
    let snap = ms
        .read_snapshot()
        .await
        .expect("odd rows must not fail the read");
    assert_eq!(snap.tables.len(), 3);
    assert_eq!(
        find(&snap, "hive", "d", "weird_type").tbl_type,
        "SOMETHING_NEW"
    );
    assert_eq!(find(&snap, "hive", "d", "no_loc").location, None);
    let p = find(&snap, "hive", "d", "p");
    assert_eq!(p.partitions.len(), 3);
    assert_eq!(p.partitions[0].values, vec!["1", "x"]);
    assert_eq!(p.partitions[1].location, None);
    assert_eq!(p.partitions[1].values, vec!["2", "y"]);
    assert_eq!(p.partitions[2].values, vec!["3"]);
    assert_eq!(
        p.partitions[2].location.as_deref(),
        Some("hdfs://ns1/w/p/a=3/b=z")
    );
    ms.close().await;
    db.drop_database().await.expect("drop");
}

#[tokio::test]
async fn odd_rows_mariadb() {
    odd_rows(DbKind::Mysql, SchemaVersion::Hive2_1).await;
}

#[tokio::test]
async fn odd_rows_postgres() {
    odd_rows(DbKind::Postgres, SchemaVersion::Hive3_1).await;
}

/// Hive's latin1 MySQL schema: a UTF-8 name stored as raw bytes through a latin1 session and
/// a latin1-representable name stored as latin1 through a utf8mb4 session both read back.
#[tokio::test]
async fn mysql_latin1_columns_with_raw_utf8_and_latin1_names() {
    let name = unique_db_name("charset");
    let db = FixtureDb::create(DbKind::Mysql, SchemaVersion::Hive2_1, &name)
        .await
        .expect("fixture");
    db.insert_with(
        &[FixtureTable::new(
            "d",
            "ünï表",
            Format::Text,
            "hdfs://ns1/w/ü表",
        )],
        MysqlCharset::Latin1RawUtf8,
    )
    .await
    .expect("insert raw utf8");
    db.insert_with(
        &[FixtureTable::new(
            "d",
            "tábla",
            Format::Text,
            "hdfs://ns1/w/tábla",
        )],
        MysqlCharset::Utf8mb4,
    )
    .await
    .expect("insert latin1");
    // Check the stored bytes really are what the test claims.
    let mut conn = mysql_async::Conn::new(
        mysql_async::OptsBuilder::default()
            .ip_or_hostname(db.metastore_config().host)
            .tcp_port(db.metastore_config().port)
            .user(Some(db.metastore_config().user))
            .db_name(Some(name.clone())),
    )
    .await
    .expect("conn");
    use mysql_async::prelude::Queryable;
    let hex: Vec<String> = conn
        .query("SELECT HEX(TBL_NAME) FROM TBLS ORDER BY TBL_ID")
        .await
        .expect("hex");
    assert_eq!(
        hex,
        vec!["C3BC6EC3AFE8A1A8".to_owned(), "74E1626C61".to_owned()]
    );
    conn.disconnect().await.expect("disconnect");

    let ms = connect(&db.metastore_config()).await;
    let snap = ms.read_snapshot().await.expect("snapshot");
    let names: Vec<&str> = snap.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["tábla", "ünï表"]);
    assert_eq!(
        snap.tables[0].location.as_deref(),
        Some("hdfs://ns1/w/tábla")
    );
    assert_eq!(snap.tables[1].location.as_deref(), Some("hdfs://ns1/w/ü表"));
    for t in ["tábla", "ünï表"] {
        let got = ms.read_table("hive", "d", t).await.expect("read_table");
        assert_eq!(got.map(|g| g.name), Some(t.to_owned()));
    }
    ms.close().await;
    db.drop_database().await.expect("drop");
}

#[tokio::test]
async fn unreachable_database_is_a_quick_connection_error() {
    for kind in [DbKind::Mysql, DbKind::Postgres] {
        let name = unique_db_name("unreach");
        // Only the configuration is used; nothing is created.
        let mut cfg = MetastoreConfig {
            port: 1,
            connect_timeout: Duration::from_secs(2),
            ..fixture_config(kind, &name)
        };
        cfg.host = "127.0.0.1".to_owned();
        let started = Instant::now();
        let err = Metastore::connect(&cfg).await.expect_err("must fail");
        assert!(matches!(err, MetastoreError::Connection(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.is_retryable());
    }
}

#[tokio::test]
async fn missing_schema_is_a_schema_error() {
    let name = unique_db_name("noschema");
    let db = FixtureDb::create(DbKind::Postgres, SchemaVersion::Hive2_1, &name)
        .await
        .expect("fixture");
    db.execute("DROP TABLE \"SORT_COLS\"")
        .await
        .expect("drop table");
    let ms = connect(&db.metastore_config()).await;
    let err = ms.read_snapshot().await.expect_err("must fail");
    assert!(
        matches!(err, MetastoreError::Schema(ref m) if m.contains("SORT_COLS")),
        "{err:?}"
    );
    ms.close().await;
    db.drop_database().await.expect("drop");
}

fn fixture_config(kind: DbKind, db: &str) -> MetastoreConfig {
    use hive_smallfiles_core::metastore::Backend;
    MetastoreConfig {
        backend: match kind {
            DbKind::Mysql => Backend::Mysql,
            DbKind::Postgres => Backend::Postgres,
        },
        host: "127.0.0.1".to_owned(),
        port: 0,
        user: "nobody".to_owned(),
        password: None,
        database: db.to_owned(),
        pool_size: 2,
        statement_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        catalogs: vec!["hive".to_owned()],
        partition_page_size: 100,
        tls: Default::default(),
    }
}

/// Scale check for the benchmark fixture (2,000 tables, 200,000 partitions); run with
/// `--ignored --nocapture` to see the timings.
#[tokio::test]
#[ignore = "slow: builds 200,000 partitions"]
async fn scale_2000_tables_200000_partitions() {
    for kind in [DbKind::Postgres, DbKind::Mysql] {
        let server = counting_server(kind).await.expect("a counting server");
        let name = unique_db_name(&format!("scale_{kind:?}"));
        let db = create_on(server.as_ref(), kind, SchemaVersion::Cdp3_1_3000, &name).await;
        let tables = many_tables(2000, 100);
        let started = Instant::now();
        db.insert(&tables).await.expect("insert");
        let inserted = started.elapsed();
        let started = Instant::now();
        let (queries, snap) = counted_snapshot(&db, 10_000).await;
        let read = started.elapsed();
        let parts: usize = snap.tables.iter().map(|t| t.partitions.len()).sum();
        assert_eq!(snap.tables.len(), 2000);
        assert_eq!(parts, 200_000);
        assert_eq!(queries, expected_queries(200_000, 10_000));
        println!("{kind:?}: insert {inserted:?}, snapshot {read:?}, {queries} queries");
        db.drop_database().await.expect("drop");
    }
}
