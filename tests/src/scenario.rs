//! A warehouse scenario covering what real MetaStores contain: partitioned and unpartitioned
//! tables in text/parquet/orc, multi-level partitions, an external table, a partition at a
//! custom location, ACID and insert-only tables, a view, storage-handler tables, an `s3a://`
//! table, a missing directory, empty partitions, hidden and zero-length files, hostile table
//! names and partition values, and (Hive 3) a second catalog.
//!
//! [`Scenario::build`] writes the files into a [`Warehouse`] and returns the MetaStore rows
//! to insert plus, per table, the local directories an independent walk must count.

use std::path::PathBuf;

use crate::metastore_fixture::{FixtureTable, Format};
use crate::truth::{Truth, walk_partition};
use crate::warehouse::Warehouse;

/// What one listed table should add up to.
#[derive(Debug, Clone)]
pub struct ExpectedTable {
    /// `database` label.
    pub database: String,
    /// Table name.
    pub table: String,
    /// Partitions in the MetaStore.
    pub partitions: u64,
    /// Local directories to walk (partition directories, or the table directory).
    pub dirs: Vec<PathBuf>,
    /// `format` label.
    pub format: &'static str,
    /// `table_type` label.
    pub table_type: &'static str,
    /// `transactional` label.
    pub transactional: &'static str,
}

impl ExpectedTable {
    /// Ground truth from walking the directories.
    pub fn truth(&self, small: u64, target: u64) -> Truth {
        let mut t = Truth::default();
        for d in &self.dirs {
            walk_partition(d, small, target, &mut t);
        }
        t
    }
}

/// The scenario's MetaStore rows and expectations.
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    /// Rows to insert.
    pub tables: Vec<FixtureTable>,
    /// Tables the exporter must report.
    pub expected: Vec<ExpectedTable>,
    /// Tables it must skip, by reason.
    pub skipped: Vec<(&'static str, String)>,
    /// Tables the include/exclude globs (`exclude = ["scratch.*"]`) filter out.
    pub filtered: usize,
}

/// Small-file threshold the scenario is designed for.
pub const SMALL_FILE_BYTES: u64 = 4096;
/// Target file size the scenario is designed for.
pub const TARGET_FILE_BYTES: u64 = 16384;

struct Builder<'a> {
    w: &'a Warehouse,
    location: &'a dyn Fn(&str) -> String,
    s: Scenario,
}

impl Builder<'_> {
    fn files(&self, dir: &str, sizes: &[u64]) {
        for (i, len) in sizes.iter().enumerate() {
            self.w
                .file(&format!("{dir}/{i:06}_0"), *len)
                .expect("write fixture file");
        }
    }

    fn expect(
        &mut self,
        t: &FixtureTable,
        dirs: Vec<PathBuf>,
        labels: (&'static str, &'static str, &'static str),
    ) {
        let database = if t.catalog == "hive" {
            t.database.clone()
        } else {
            format!("@{}#{}", t.catalog, t.database)
        };
        self.s.expected.push(ExpectedTable {
            database,
            table: t.name.clone(),
            partitions: t.partitions.len() as u64,
            dirs,
            format: labels.0,
            table_type: labels.1,
            transactional: labels.2,
        });
    }
}

impl Scenario {
    /// Writes the files and returns rows and expectations. `location` turns a
    /// warehouse-relative path into the URI stored in the MetaStore (`file:` or `hdfs://`).
    /// `catalogs`: also create a table in a second catalog `spark` (Hive 3 schemas).
    pub fn build(w: &Warehouse, location: &dyn Fn(&str) -> String, catalogs: bool) -> Self {
        let mut b = Builder {
            w,
            location,
            s: Scenario::default(),
        };
        let loc = |rel: &str| (b.location)(rel);

        // sales.orders: text, partitioned by dt; one partition at a custom location, one whose
        // directory is missing, one empty; hidden files and zero-length files.
        let mut t = FixtureTable::new("sales", "orders", Format::Text, &loc("sales.db/orders"))
            .partitioned_by(&[("dt", "string")])
            .column("amount", "decimal(10,2)");
        let mut dirs = Vec::new();
        for (day, sizes) in [
            ("2024-01-01", vec![100, 2000, 0, 9000]),
            ("2024-01-02", vec![4095, 4096, 4097]),
            ("2024-01-03", vec![]),
        ] {
            t = t.partition(&[day]);
            let rel = format!("sales.db/orders/{}", t.part_name(&[day]));
            w.mkdir(&rel).expect("mkdir");
            b.files(&rel, &sizes);
            dirs.push(w.path(&rel));
        }
        w.file("sales.db/orders/dt=2024-01-01/_SUCCESS", 0)
            .expect("file");
        w.file("sales.db/orders/dt=2024-01-01/.000000_0.crc", 16)
            .expect("file");
        w.file("sales.db/orders/dt=2024-01-02/_temporary/0/part-1", 500)
            .expect("file");
        t = t.partition_at(&["2024-01-04"], &loc("landing/orders-2024-01-04"));
        b.files("landing/orders-2024-01-04", &[10, 20, 30, 40, 50, 60, 70]);
        dirs.push(w.path("landing/orders-2024-01-04"));
        t = t.partition(&["2024-01-05"]); // directory never created
        dirs.push(w.path(&format!("sales.db/orders/{}", t.part_name(&["2024-01-05"]))));
        b.expect(&t, dirs, ("text", "managed", "false"));
        b.s.tables.push(t);

        // sales.events: parquet, two-level partitions, a nested directory in one of them.
        let mut t = FixtureTable::new("sales", "events", Format::Parquet, &loc("sales.db/events"))
            .partitioned_by(&[("dt", "string"), ("hr", "int")])
            .param("parquet.compression", "SNAPPY");
        let mut dirs = Vec::new();
        for d in ["2024-02-01", "2024-02-02"] {
            for h in 0..3 {
                let hr = format!("{h:02}");
                t = t.partition(&[d, &hr]);
                let rel = format!("sales.db/events/{}", t.part_name(&[d, &hr]));
                b.files(&rel, &[300, 700, 1100 * (h + 1)]);
                dirs.push(w.path(&rel));
            }
        }
        w.file(
            "sales.db/events/dt=2024-02-01/hr=00/HIVE_UNION_SUBDIR_1/000000_0",
            42,
        )
        .expect("file");
        b.expect(&t, dirs, ("parquet", "managed", "false"));
        b.s.tables.push(t);

        // sales.customers: orc, external, unpartitioned, one big file and many small ones.
        let t = FixtureTable::new(
            "sales",
            "customers",
            Format::Orc,
            &loc("sales.db/customers"),
        )
        .external();
        let mut sizes = vec![20_000];
        sizes.extend((0..12).map(|i| 100 + i * 10));
        b.files("sales.db/customers", &sizes);
        b.expect(
            &t,
            vec![w.path("sales.db/customers")],
            ("orc", "external", "false"),
        );
        b.s.tables.push(t);

        // sales.acid_orders: full ACID (ORC), base and delta directories.
        let t = FixtureTable::new(
            "sales",
            "acid_orders",
            Format::Orc,
            &loc("sales.db/acid_orders"),
        )
        .acid();
        b.files("sales.db/acid_orders/base_0000005", &[1000]);
        b.files("sales.db/acid_orders/delta_0000006_0000006_0000", &[10]);
        b.files("sales.db/acid_orders/delta_0000007_0000007_0000", &[20]);
        b.expect(
            &t,
            vec![w.path("sales.db/acid_orders")],
            ("orc", "managed", "full"),
        );
        b.s.tables.push(t);

        // sales.mm_log: insert-only text table.
        let t = FixtureTable::new("sales", "mm_log", Format::Text, &loc("sales.db/mm_log"))
            .insert_only();
        b.files("sales.db/mm_log/delta_0000001_0000001_0000", &[5, 6, 7]);
        b.expect(
            &t,
            vec![w.path("sales.db/mm_log")],
            ("text", "managed", "insert_only"),
        );
        b.s.tables.push(t);

        // Hostile names: table name with space, %, =, ' and unicode; hostile partition values.
        let name = "odd name%='ü";
        let mut t = FixtureTable::new(
            "sales",
            name,
            Format::Text,
            &loc(&format!("sales.db/{name}")),
        )
        .partitioned_by(&[("k", "string")]);
        let mut dirs = Vec::new();
        for (i, v) in ["a b", "100%", "x=y", "it's", "ünï/表", ""]
            .iter()
            .enumerate()
        {
            t = t.partition(&[v]);
            let rel = format!("sales.db/{name}/{}", t.part_name(&[v]));
            let sizes: Vec<u64> = (0..=i as u64).map(|j| 10 + j).collect();
            b.files(&rel, &sizes);
            dirs.push(w.path(&rel));
        }
        b.expect(&t, dirs, ("text", "managed", "false"));
        b.s.tables.push(t);

        // An empty partitioned table (no partitions) and an empty unpartitioned one.
        let t = FixtureTable::new(
            "ops",
            "nothing_yet",
            Format::Text,
            &loc("ops.db/nothing_yet"),
        )
        .partitioned_by(&[("dt", "string")]);
        w.mkdir("ops.db/nothing_yet").expect("mkdir");
        b.expect(&t, vec![], ("text", "managed", "false"));
        b.s.tables.push(t);
        let t = FixtureTable::new("ops", "empty", Format::Text, &loc("ops.db/empty"));
        w.mkdir("ops.db/empty").expect("mkdir");
        b.expect(
            &t,
            vec![w.path("ops.db/empty")],
            ("text", "managed", "false"),
        );
        b.s.tables.push(t);

        // Not listed: a view, Kudu and HBase storage handlers, Iceberg, S3.
        let t = FixtureTable::new("sales", "orders_v", Format::Text, "")
            .view("SELECT * FROM sales.orders");
        b.s.skipped.push(("view", t.name.clone()));
        b.s.tables.push(t);
        let t = FixtureTable::new("ops", "kudu_t", Format::Text, "")
            .storage_handler("org.apache.hadoop.hive.kudu.KuduStorageHandler");
        b.s.skipped.push(("storage_handler", t.name.clone()));
        b.s.tables.push(t);
        let t = FixtureTable::new("ops", "hbase_t", Format::Text, &loc("ops.db/hbase_t"))
            .storage_handler("org.apache.hadoop.hive.hbase.HBaseStorageHandler");
        b.s.skipped.push(("storage_handler", t.name.clone()));
        b.s.tables.push(t);
        let t = FixtureTable::new("ops", "ice", Format::Parquet, &loc("ops.db/ice"))
            .param("table_type", "ICEBERG");
        b.files("ops.db/ice/data", &[1, 2, 3]);
        b.s.skipped.push(("storage_handler", t.name.clone()));
        b.s.tables.push(t);
        let t = FixtureTable::new(
            "ops",
            "on_s3",
            Format::Parquet,
            "s3a://bucket/warehouse/on_s3",
        )
        .external();
        b.s.skipped.push(("foreign_filesystem", t.name.clone()));
        b.s.tables.push(t);

        // Filtered by `exclude = ["scratch.*"]`.
        let t = FixtureTable::new("scratch", "tmp_1", Format::Text, &loc("scratch.db/tmp_1"));
        b.files("scratch.db/tmp_1", &[1, 1, 1]);
        b.s.filtered += 1;
        b.s.tables.push(t);

        if catalogs {
            // Same database and table names in catalog `spark`: a separate series.
            let t = FixtureTable::new(
                "sales",
                "orders",
                Format::Orc,
                &loc("spark/sales.db/orders"),
            )
            .in_catalog("spark");
            b.files("spark/sales.db/orders", &[1, 2]);
            b.expect(
                &t,
                vec![w.path("spark/sales.db/orders")],
                ("orc", "managed", "false"),
            );
            b.s.tables.push(t);
        }
        b.s
    }
}
