//! Hive MetaStore fixtures on real MariaDB/MySQL and PostgreSQL databases.
//!
//! [`FixtureDb::create`] drops and creates a database, loads Hive's own schema DDL
//! (`tests/fixtures/metastore/<version>.<mysql|postgres>.sql`) and [`FixtureDb::insert`]
//! writes [`FixtureTable`]s the way the MetaStore stores them (catalog and database rows as
//! needed, one SD + serde per table and per partition, parameters, keys, key values, columns)
//! with batched multi-row INSERTs, fast enough for hundreds of thousands of partitions.
//!
//! Servers come from `HSF_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306`) and
//! `HSF_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432`).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use hive_smallfiles_tests::metastore_fixture::*;
//! let db = FixtureDb::create(DbKind::Postgres, SchemaVersion::Hive3_1, "hsf_t_demo").await?;
//! db.insert(&[
//!     FixtureTable::new("sales", "orders", Format::Parquet, "hdfs://ns1/wh/sales.db/orders")
//!         .partitioned_by(&[("dt", "string"), ("hr", "int")])
//!         .partition(&["2024-01-01", "00"])
//!         .partition_at(&["2024-01-02", "00"], "s3a://bucket/orders/x")
//!         .param("numFiles", "12"),
//!     FixtureTable::new("sales", "v", Format::Text, "").view("select 1"),
//! ])
//! .await?;
//! let cfg = db.metastore_config();
//! # let _ = cfg;
//! db.drop_database().await?;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, bail};
use hive_smallfiles_core::metastore::{Backend, MetastoreConfig};
use hive_smallfiles_core::secret::Secret;
use mysql_async::prelude::Queryable;
use tokio::sync::Mutex;

/// Which database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// MariaDB / MySQL.
    Mysql,
    /// PostgreSQL.
    Postgres,
}

/// Which Hive schema DDL to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaVersion {
    /// Upstream Hive 2.1.0 (no catalogs).
    Hive2_1,
    /// Upstream Hive 3.1.0 (catalogs; default `hive` catalog row).
    Hive3_1,
    /// Cloudera CDP 3.1.3000 (catalogs, `WRITE_ID`, `DB_MANAGED_LOCATION_URI`, `CDH_VERSION`).
    Cdp3_1_3000,
}

impl SchemaVersion {
    /// File stem under `tests/fixtures/metastore`.
    pub fn file_stem(self) -> &'static str {
        match self {
            Self::Hive2_1 => "hive-2.1",
            Self::Hive3_1 => "hive-3.1",
            Self::Cdp3_1_3000 => "cdp-3.1.3000",
        }
    }

    /// Whether `DBS.CTLG_NAME` exists.
    pub fn has_catalogs(self) -> bool {
        !matches!(self, Self::Hive2_1)
    }

    /// `VERSION.SCHEMA_VERSION` written by the DDL.
    pub fn schema_version(self) -> &'static str {
        match self {
            Self::Hive2_1 => "2.1.0",
            Self::Hive3_1 => "3.1.0",
            Self::Cdp3_1_3000 => "3.1.3000",
        }
    }

    /// `CDH_VERSION.SCHEMA_VERSION` written by the DDL (CDP only).
    pub fn distribution_version(self) -> Option<&'static str> {
        match self {
            Self::Cdp3_1_3000 => Some("3.1.3000.7.2.11.0-Update1"),
            _ => None,
        }
    }

    /// All versions.
    pub const ALL: [SchemaVersion; 3] = [Self::Hive2_1, Self::Hive3_1, Self::Cdp3_1_3000];
}

/// How the MySQL fixture connection sends text (see [`FixtureDb::insert_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MysqlCharset {
    /// `SET NAMES latin1` and raw UTF-8 bytes: non-ASCII names land in the latin1 columns as
    /// raw UTF-8 bytes (what a UTF-8 client writing to a latin1 schema ends up storing).
    Latin1RawUtf8,
    /// `SET NAMES utf8mb4`: the server converts to latin1 (only latin1-representable text).
    Utf8mb4,
}

/// File format of a fixture table: input/output format and serde classes as Hive writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TEXTFILE.
    Text,
    /// PARQUET.
    Parquet,
    /// ORC.
    Orc,
    /// AVRO.
    Avro,
    /// SEQUENCEFILE.
    SequenceFile,
    /// RCFILE.
    RcFile,
}

impl Format {
    /// `(INPUT_FORMAT, OUTPUT_FORMAT, SLIB)`.
    pub fn classes(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Text => (
                "org.apache.hadoop.mapred.TextInputFormat",
                "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
            ),
            Self::Parquet => (
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
            ),
            Self::Orc => (
                "org.apache.hadoop.hive.ql.io.orc.OrcInputFormat",
                "org.apache.hadoop.hive.ql.io.orc.OrcOutputFormat",
                "org.apache.hadoop.hive.ql.io.orc.OrcSerde",
            ),
            Self::Avro => (
                "org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat",
                "org.apache.hadoop.hive.ql.io.avro.AvroContainerOutputFormat",
                "org.apache.hadoop.hive.serde2.avro.AvroSerDe",
            ),
            Self::SequenceFile => (
                "org.apache.hadoop.mapred.SequenceFileInputFormat",
                "org.apache.hadoop.hive.ql.io.HiveSequenceFileOutputFormat",
                "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
            ),
            Self::RcFile => (
                "org.apache.hadoop.hive.ql.io.RCFileInputFormat",
                "org.apache.hadoop.hive.ql.io.RCFileOutputFormat",
                "org.apache.hadoop.hive.serde2.columnar.LazyBinaryColumnarSerDe",
            ),
        }
    }
}

/// One partition of a [`FixtureTable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixturePartition {
    /// Unescaped values in key order (`PARTITION_KEY_VALS`).
    pub values: Vec<String>,
    /// `PART_NAME`; by default built from keys and values with [`escape_path_name`].
    pub name: String,
    /// The partition SD's `LOCATION`.
    pub location: Option<String>,
    /// `PARTITIONS.CREATE_TIME`.
    pub create_time: i64,
    /// `PARTITION_PARAMS.numFiles`, if any.
    pub num_files: Option<i64>,
}

/// One table to insert; build with [`FixtureTable::new`] and the builder methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureTable {
    /// Catalog (`hive` by default; ignored on schemas without catalogs).
    pub catalog: String,
    /// Database name.
    pub database: String,
    /// Table name.
    pub name: String,
    /// `TBL_TYPE`.
    pub tbl_type: String,
    /// Table SD `LOCATION`.
    pub location: Option<String>,
    /// `INPUT_FORMAT`.
    pub input_format: Option<String>,
    /// `OUTPUT_FORMAT`.
    pub output_format: Option<String>,
    /// `SERDES.SLIB`.
    pub serde_lib: Option<String>,
    /// `TABLE_PARAMS`.
    pub params: BTreeMap<String, String>,
    /// `SERDE_PARAMS` of the table's serde.
    pub serde_params: BTreeMap<String, String>,
    /// `COLUMNS_V2` (name, type) in order.
    pub columns: Vec<(String, String)>,
    /// `PARTITION_KEYS` (name, type) in order.
    pub partition_keys: Vec<(String, String)>,
    /// Partitions in insertion (= PART_ID) order.
    pub partitions: Vec<FixturePartition>,
    /// `SDS.NUM_BUCKETS`.
    pub num_buckets: i32,
    /// `BUCKETING_COLS`.
    pub bucket_cols: Vec<String>,
    /// `SORT_COLS` (column, order 1 asc / 0 desc).
    pub sort_cols: Vec<(String, i32)>,
    /// `TBLS.CREATE_TIME`.
    pub create_time: i64,
    /// `VIEW_ORIGINAL_TEXT` / `VIEW_EXPANDED_TEXT`.
    pub view_text: Option<String>,
}

impl FixtureTable {
    /// A managed table in `database` with format `format` at `location` (empty = NULL), one
    /// `id int` column, `serialization.format=1`, `CREATE_TIME` 1700000000.
    pub fn new(database: &str, name: &str, format: Format, location: &str) -> Self {
        let (i, o, s) = format.classes();
        Self {
            catalog: "hive".to_owned(),
            database: database.to_owned(),
            name: name.to_owned(),
            tbl_type: "MANAGED_TABLE".to_owned(),
            location: (!location.is_empty()).then(|| location.to_owned()),
            input_format: Some(i.to_owned()),
            output_format: Some(o.to_owned()),
            serde_lib: Some(s.to_owned()),
            params: BTreeMap::from([("transient_lastDdlTime".to_owned(), "1700000000".to_owned())]),
            serde_params: BTreeMap::from([("serialization.format".to_owned(), "1".to_owned())]),
            columns: vec![("id".to_owned(), "int".to_owned())],
            partition_keys: Vec::new(),
            partitions: Vec::new(),
            num_buckets: -1,
            bucket_cols: Vec::new(),
            sort_cols: Vec::new(),
            create_time: 1_700_000_000,
            view_text: None,
        }
    }

    /// Moves the table to catalog `catalog`.
    pub fn in_catalog(mut self, catalog: &str) -> Self {
        catalog.clone_into(&mut self.catalog);
        self
    }

    /// Sets the partition keys `(name, type)`.
    pub fn partitioned_by(mut self, keys: &[(&str, &str)]) -> Self {
        self.partition_keys = keys
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect();
        self
    }

    /// The Hive `PART_NAME` of `values` under this table's keys.
    pub fn part_name(&self, values: &[&str]) -> String {
        self.partition_keys
            .iter()
            .zip(values)
            .map(|((k, _), v)| {
                format!(
                    "{}={}",
                    escape_path_name(&k.to_lowercase()),
                    escape_path_name(v)
                )
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Adds a partition at table location + `/` + escaped PART_NAME.
    pub fn partition(self, values: &[&str]) -> Self {
        let location = self
            .location
            .as_ref()
            .map(|l| format!("{}/{}", l.trim_end_matches('/'), self.part_name(values)));
        self.push_partition(values, location)
    }

    /// Adds a partition at a custom location (`""` = NULL).
    pub fn partition_at(self, values: &[&str], location: &str) -> Self {
        let location = (!location.is_empty()).then(|| location.to_owned());
        self.push_partition(values, location)
    }

    fn push_partition(mut self, values: &[&str], location: Option<String>) -> Self {
        let name = self.part_name(values);
        let create_time = 1_700_000_000 + self.partitions.len() as i64;
        self.partitions.push(FixturePartition {
            values: values.iter().map(|v| (*v).to_owned()).collect(),
            name,
            location,
            create_time,
            num_files: None,
        });
        self
    }

    /// Sets `numFiles` of the last added partition.
    pub fn with_num_files(mut self, n: i64) -> Self {
        if let Some(p) = self.partitions.last_mut() {
            p.num_files = Some(n);
        }
        self
    }

    /// `EXTERNAL_TABLE` with `EXTERNAL=TRUE`.
    pub fn external(mut self) -> Self {
        "EXTERNAL_TABLE".clone_into(&mut self.tbl_type);
        self.params.insert("EXTERNAL".to_owned(), "TRUE".to_owned());
        self
    }

    /// Full ACID (`transactional=true`).
    pub fn acid(mut self) -> Self {
        self.params
            .insert("transactional".to_owned(), "true".to_owned());
        self
    }

    /// Insert-only ACID (`transactional_properties=insert_only`).
    pub fn insert_only(mut self) -> Self {
        self.params
            .insert("transactional".to_owned(), "true".to_owned());
        self.params.insert(
            "transactional_properties".to_owned(),
            "insert_only".to_owned(),
        );
        self
    }

    /// A `VIRTUAL_VIEW` with NULL location and formats.
    pub fn view(mut self, sql: &str) -> Self {
        "VIRTUAL_VIEW".clone_into(&mut self.tbl_type);
        self.location = None;
        self.input_format = None;
        self.output_format = None;
        self.serde_lib = None;
        self.view_text = Some(sql.to_owned());
        self
    }

    /// A storage-handler table (`STORED BY`): NULL input/output formats.
    pub fn storage_handler(mut self, class: &str) -> Self {
        self.input_format = None;
        self.output_format = None;
        self.params
            .insert("storage_handler".to_owned(), class.to_owned());
        self
    }

    /// Sets a table parameter.
    pub fn param(mut self, key: &str, value: &str) -> Self {
        self.params.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Sets a serde parameter.
    pub fn serde_param(mut self, key: &str, value: &str) -> Self {
        self.serde_params.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Appends a data column.
    pub fn column(mut self, name: &str, type_name: &str) -> Self {
        self.columns.push((name.to_owned(), type_name.to_owned()));
        self
    }

    /// Buckets by `cols` into `n` buckets, sorted by `sort` (ascending).
    pub fn bucketed(mut self, n: i32, cols: &[&str], sort: &[&str]) -> Self {
        self.num_buckets = n;
        self.bucket_cols = cols.iter().map(|c| (*c).to_owned()).collect();
        self.sort_cols = sort.iter().map(|c| ((*c).to_owned(), 1)).collect();
        self
    }
}

/// Hive's `FileUtils.escapePathName` (hive-common `org.apache.hadoop.hive.common.FileUtils`,
/// non-Windows): characters `0x01`-`0x1F`, `"`, `#`, `%`, `'`, `*`, `/`, `:`, `=`, `?`, `\`,
/// `0x7F`, `{`, `[`, `]`, `^` become `%XX` (upper-case hex); everything else, including
/// spaces and non-ASCII, stays. Empty gives `__HIVE_DEFAULT_PARTITION__` (NULL partition
/// values are stored that way too).
pub fn escape_path_name(s: &str) -> String {
    if s.is_empty() {
        return "__HIVE_DEFAULT_PARTITION__".to_owned();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let code = u32::from(c);
        let escape = code < 0x20
            || code == 0x7F
            || matches!(
                c,
                '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '{' | '[' | ']' | '^'
            );
        if escape {
            out.push_str(&format!("%{code:02X}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// Connection target parsed from `HSF_TEST_MYSQL_URL` / `HSF_TEST_PG_URL`.
#[derive(Debug, Clone)]
struct Server {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
}

fn server(kind: DbKind) -> anyhow::Result<Server> {
    let (var, default, port) = match kind {
        DbKind::Mysql => ("HSF_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306", 3306),
        DbKind::Postgres => (
            "HSF_TEST_PG_URL",
            "postgres://postgres@127.0.0.1:5432",
            5432,
        ),
    };
    let raw = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    parse_server(&raw, kind, port).with_context(|| format!("{var} is not a URL"))
}

fn parse_server(raw: &str, kind: DbKind, port: u16) -> anyhow::Result<Server> {
    let url = url::Url::parse(raw)?;
    let user = percent_encoding::percent_decode_str(url.username())
        .decode_utf8_lossy()
        .into_owned();
    Ok(Server {
        host: url.host_str().unwrap_or("127.0.0.1").to_owned(),
        port: url.port().unwrap_or(port),
        user: if user.is_empty() {
            match kind {
                DbKind::Mysql => "root".to_owned(),
                DbKind::Postgres => "postgres".to_owned(),
            }
        } else {
            user
        },
        password: url.password().map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        }),
    })
}

fn mysql_opts(s: &Server, db: Option<&str>) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(s.host.clone())
        .tcp_port(s.port)
        .user(Some(s.user.clone()))
        .pass(s.password.clone())
        .db_name(db.map(str::to_owned))
        .prefer_socket(false)
        .into()
}

async fn pg_connect(s: &Server, db: &str) -> anyhow::Result<tokio_postgres::Client> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&s.host)
        .port(s.port)
        .user(&s.user)
        .dbname(db)
        .connect_timeout(Duration::from_secs(5))
        .options("-c client_min_messages=warning");
    if let Some(p) = &s.password {
        cfg.password(p);
    }
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

enum Conn {
    Mysql(mysql_async::Conn),
    Postgres(tokio_postgres::Client),
}

/// Collects one row `(table, columns, values)` for the batched INSERTs.
type AddRow<'a> = dyn FnMut(&'static str, &[&'static str], Vec<String>) + 'a;

/// IDs and known rows of the fixture database.
#[derive(Debug, Default)]
struct State {
    next_id: i64,
    catalogs: Vec<String>,
    dbs: HashMap<(String, String), i64>,
    /// Logins made by [`FixtureDb::reader_login`], dropped with the database.
    logins: Vec<String>,
}

/// Why PostgreSQL cannot count statements per login, or `None` when it can
/// (`pg_stat_statements`, preloaded by `tests/scripts/ensure-services.sh`).
pub async fn pg_statement_statistics_unavailable() -> Option<String> {
    let result: anyhow::Result<()> = async {
        let admin = pg_connect(&server(DbKind::Postgres)?, "postgres").await?;
        let preload: String = admin
            .query_one("SHOW shared_preload_libraries", &[])
            .await?
            .get(0);
        if !preload.contains("pg_stat_statements") {
            bail!(
                "pg_stat_statements is not in shared_preload_libraries \
                 (tests/scripts/ensure-services.sh adds it and restarts PostgreSQL)"
            );
        }
        admin
            .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await?;
        Ok(())
    }
    .await;
    result
        .err()
        .map(|e| format!("PostgreSQL statement statistics: {e:#}"))
}

/// A MariaDB server of the test's own: a fresh data directory, `performance_schema` on, on a
/// port of 127.0.0.1 (`mariadbd` takes a port number, so it gets one that is free when it
/// starts); killed on drop. Its statement counters move only for the test's statements.
#[derive(Debug)]
pub struct PrivateMariaDb {
    child: std::process::Child,
    dir: tempfile::TempDir,
    /// `mysql://root@127.0.0.1:<port>`.
    pub url: String,
}

impl PrivateMariaDb {
    /// Initializes a data directory (`mariadb-install-db`) and starts `mariadbd` on it;
    /// returns once it answers.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let root = nix::unistd::Uid::effective().is_root();
        let mut install = std::process::Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if root {
            install.arg("--user=root");
        }
        let status = install.status().context("mariadb-install-db")?;
        anyhow::ensure!(status.success(), "mariadb-install-db: {status}");
        let port = crate::process::free_port();
        let mariadbd = ["/usr/sbin/mariadbd", "/usr/local/sbin/mariadbd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("mariadbd");
        let mut cmd = std::process::Command::new(mariadbd);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--performance-schema=ON"])
            .arg(format!(
                "--log-error={}",
                dir.path().join("error.log").display()
            ))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if root {
            cmd.arg("--user=root");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {mariadbd}"))?;
        let mut me = Self {
            child,
            dir,
            url: format!("mysql://root@127.0.0.1:{port}"),
        };
        let server = parse_server(&me.url, DbKind::Mysql, port)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(c) = mysql_async::Conn::new(mysql_opts(&server, None)).await {
                let _ = c.disconnect().await;
                return Ok(me);
            }
            if let Some(status) = me.child.try_wait()? {
                bail!("mariadbd exited with {status}: {}", me.error_log());
            }
            if std::time::Instant::now() > deadline {
                bail!("mariadbd did not answer in 30 s: {}", me.error_log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A MetaStore database created for a test; see the module docs.
pub struct FixtureDb {
    kind: DbKind,
    version: SchemaVersion,
    db_name: String,
    server: Server,
    conn: Mutex<Conn>,
    state: Mutex<State>,
}

impl std::fmt::Debug for FixtureDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixtureDb")
            .field("kind", &self.kind)
            .field("version", &self.version)
            .field("db_name", &self.db_name)
            .finish_non_exhaustive()
    }
}

fn ddl_path(kind: DbKind, version: SchemaVersion) -> std::path::PathBuf {
    let ext = match kind {
        DbKind::Mysql => "mysql",
        DbKind::Postgres => "postgres",
    };
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/metastore")
        .join(format!("{}.{ext}.sql", version.file_stem()))
}

/// A unique database name `hsf_t_<prefix>_<random>` (lower case, safe for both engines).
pub fn unique_db_name(prefix: &str) -> String {
    let clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    format!("hsf_t_{clean}_{:08x}", rand::random::<u32>())
}

impl FixtureDb {
    /// Drops and creates database `db_name` (MySQL: `CHARACTER SET latin1 COLLATE latin1_bin`
    /// as Hive does) and loads the schema DDL of `version`.
    pub async fn create(
        kind: DbKind,
        version: SchemaVersion,
        db_name: &str,
    ) -> anyhow::Result<Self> {
        Self::create_on(server(kind)?, kind, version, db_name).await
    }

    /// [`FixtureDb::create`] on the server at `url` (`mysql://root@127.0.0.1:3307`).
    pub async fn create_at(
        url: &str,
        kind: DbKind,
        version: SchemaVersion,
        db_name: &str,
    ) -> anyhow::Result<Self> {
        let port = match kind {
            DbKind::Mysql => 3306,
            DbKind::Postgres => 5432,
        };
        Self::create_on(parse_server(url, kind, port)?, kind, version, db_name).await
    }

    async fn create_on(
        server: Server,
        kind: DbKind,
        version: SchemaVersion,
        db_name: &str,
    ) -> anyhow::Result<Self> {
        if !db_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            bail!("database name {db_name:?} must be [A-Za-z0-9_]");
        }
        let ddl = std::fs::read_to_string(ddl_path(kind, version))
            .with_context(|| format!("reading DDL of {version:?}"))?;
        let conn = match kind {
            DbKind::Mysql => {
                let mut admin = mysql_async::Conn::new(mysql_opts(&server, None)).await?;
                admin
                    .query_drop(format!(
                        "DROP DATABASE IF EXISTS `{db_name}`; \
                         CREATE DATABASE `{db_name}` CHARACTER SET latin1 COLLATE latin1_bin"
                    ))
                    .await?;
                admin.disconnect().await?;
                let mut c = mysql_async::Conn::new(mysql_opts(&server, Some(db_name))).await?;
                c.query_drop(ddl).await.context("loading DDL")?;
                Conn::Mysql(c)
            }
            DbKind::Postgres => {
                let admin = pg_connect(&server, "postgres").await?;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{db_name}\""))
                    .await?;
                admin
                    .batch_execute(&format!("CREATE DATABASE \"{db_name}\""))
                    .await?;
                let c = pg_connect(&server, db_name).await?;
                c.batch_execute(&ddl).await.context("loading DDL")?;
                Conn::Postgres(c)
            }
        };
        let catalogs = if version == SchemaVersion::Hive3_1 {
            vec!["hive".to_owned()]
        } else {
            Vec::new()
        };
        Ok(Self {
            kind,
            version,
            db_name: db_name.to_owned(),
            server,
            conn: Mutex::new(conn),
            state: Mutex::new(State {
                next_id: 1000,
                catalogs,
                dbs: HashMap::new(),
                logins: Vec::new(),
            }),
        })
    }

    /// Engine of this fixture.
    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// Schema version of this fixture.
    pub fn version(&self) -> SchemaVersion {
        self.version
    }

    /// Database name.
    pub fn db_name(&self) -> &str {
        &self.db_name
    }

    /// A configuration for `Metastore::connect` (pool of 4, page of 1000, catalog `hive`).
    pub fn metastore_config(&self) -> MetastoreConfig {
        MetastoreConfig {
            backend: match self.kind {
                DbKind::Mysql => Backend::Mysql,
                DbKind::Postgres => Backend::Postgres,
            },
            host: self.server.host.clone(),
            port: self.server.port,
            user: self.server.user.clone(),
            password: self.server.password.clone().map(Secret::new),
            database: self.db_name.clone(),
            pool_size: 4,
            statement_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            catalogs: vec!["hive".to_owned()],
            partition_page_size: 1000,
            tls: Default::default(),
        }
    }

    /// A read-only login of its own on this database (`<prefix>_<random>`), and the reader
    /// configuration that uses it, so that the server's own per-login statistics
    /// ([`FixtureDb::server_selects`]) count exactly what the code under test sent. Dropped
    /// with the database.
    pub async fn reader_login(&self, prefix: &str) -> anyhow::Result<(String, MetastoreConfig)> {
        let user = format!("{prefix}_{:08x}", rand::random::<u32>());
        let password = format!("pw{:016x}", rand::random::<u64>());
        match self.kind {
            DbKind::Mysql => {
                let mut admin = mysql_async::Conn::new(mysql_opts(&self.server, None)).await?;
                admin
                    .query_drop(format!(
                        "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; \
                         GRANT SELECT ON `{}`.* TO '{user}'@'%'",
                        self.db_name
                    ))
                    .await?;
                admin.disconnect().await?;
            }
            DbKind::Postgres => {
                let admin = pg_connect(&self.server, "postgres").await?;
                admin
                    .batch_execute(&format!(
                        "CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}'; \
                         GRANT CONNECT ON DATABASE \"{}\" TO \"{user}\"",
                        self.db_name
                    ))
                    .await?;
                if let Conn::Postgres(c) = &*self.conn.lock().await {
                    c.batch_execute(&format!(
                        "GRANT USAGE ON SCHEMA public TO \"{user}\"; \
                         GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{user}\""
                    ))
                    .await?;
                }
            }
        }
        self.state.lock().await.logins.push(user.clone());
        let mut cfg = self.metastore_config();
        cfg.user.clone_from(&user);
        cfg.password = Some(Secret::new(password));
        Ok((user, cfg))
    }

    /// SELECT statements the database server executed for `user` (a login of
    /// [`FixtureDb::reader_login`]) on this database, by the server's own counters: on
    /// MariaDB `performance_schema` (executions of `statement/sql/select`, prepared or not;
    /// needs a server with it on, such as a [`PrivateMariaDb`]), on PostgreSQL
    /// `pg_stat_statements` calls of `SELECT`/`WITH` statements (needs
    /// [`pg_statement_statistics_unavailable`] to be `None`).
    pub async fn server_selects(&self, user: &str) -> anyhow::Result<u64> {
        match self.kind {
            DbKind::Mysql => {
                let mut admin = mysql_async::Conn::new(mysql_opts(&self.server, None)).await?;
                let n: Option<u64> = admin
                    .exec_first(
                        "SELECT COUNT_STAR \
                         FROM performance_schema.events_statements_summary_by_user_by_event_name \
                         WHERE USER = ? AND EVENT_NAME = 'statement/sql/select'",
                        (user,),
                    )
                    .await?;
                admin.disconnect().await?;
                Ok(n.unwrap_or(0))
            }
            DbKind::Postgres => {
                let admin = pg_connect(&self.server, "postgres").await?;
                let n: i64 = admin
                    .query_one(
                        "SELECT coalesce(sum(s.calls), 0)::bigint FROM pg_stat_statements s \
                         JOIN pg_roles r ON r.oid = s.userid \
                         JOIN pg_database d ON d.oid = s.dbid \
                         WHERE r.rolname = $1 AND d.datname = $2 \
                         AND upper(ltrim(s.query)) ~ '^(SELECT|WITH)'",
                        &[&user, &self.db_name],
                    )
                    .await?
                    .get(0);
                Ok(u64::try_from(n)?)
            }
        }
    }

    /// Runs one raw statement (for odd-row tests). MySQL runs it on the current session
    /// character set (latin1 after [`FixtureDb::insert`]).
    pub async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        match &mut *self.conn.lock().await {
            Conn::Mysql(c) => c.query_drop(sql).await?,
            Conn::Postgres(c) => c.batch_execute(sql).await?,
        }
        Ok(())
    }

    /// Inserts tables; MySQL text goes through a latin1 session as raw UTF-8 bytes.
    pub async fn insert(&self, tables: &[FixtureTable]) -> anyhow::Result<()> {
        self.insert_with(tables, MysqlCharset::Latin1RawUtf8).await
    }

    /// Inserts tables with an explicit MySQL session character set (ignored on PostgreSQL).
    pub async fn insert_with(
        &self,
        tables: &[FixtureTable],
        charset: MysqlCharset,
    ) -> anyhow::Result<()> {
        let statements = self.build_inserts(tables).await;
        let mut conn = self.conn.lock().await;
        match &mut *conn {
            Conn::Mysql(c) => {
                c.query_drop(match charset {
                    MysqlCharset::Latin1RawUtf8 => "SET NAMES latin1",
                    MysqlCharset::Utf8mb4 => "SET NAMES utf8mb4",
                })
                .await?;
                c.query_drop("SET SESSION sql_mode = 'STRICT_ALL_TABLES'")
                    .await?;
                c.query_drop("START TRANSACTION").await?;
                for s in &statements {
                    c.query_drop(s).await.with_context(|| format!("{s:.300}"))?;
                }
                c.query_drop("COMMIT").await?;
            }
            Conn::Postgres(c) => {
                let tx = c.transaction().await?;
                for s in &statements {
                    tx.batch_execute(s)
                        .await
                        .with_context(|| format!("{s:.300}"))?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    fn lit(&self, s: &str) -> String {
        match self.kind {
            DbKind::Mysql => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''")),
            DbKind::Postgres => format!("'{}'", s.replace('\'', "''")),
        }
    }

    fn opt(&self, s: Option<&str>) -> String {
        s.map_or_else(|| "NULL".to_owned(), |s| self.lit(s))
    }

    fn ident(&self, s: &str) -> String {
        match self.kind {
            DbKind::Mysql => format!("`{s}`"),
            DbKind::Postgres => format!("\"{s}\""),
        }
    }

    fn falsy(&self) -> &'static str {
        match self.kind {
            DbKind::Mysql => "0",
            DbKind::Postgres => "false",
        }
    }

    async fn build_inserts(&self, tables: &[FixtureTable]) -> Vec<String> {
        let mut st = self.state.lock().await;
        let mut rows: BTreeMap<&'static str, (Vec<&'static str>, Vec<String>)> = BTreeMap::new();
        let mut add = |table: &'static str, cols: &[&'static str], values: Vec<String>| {
            let e = rows
                .entry(table)
                .or_insert_with(|| (cols.to_vec(), Vec::new()));
            e.1.push(format!("({})", values.join(", ")));
        };
        let v = self.version;
        let f = self.falsy();
        for t in tables {
            let catalog = if v.has_catalogs() {
                t.catalog.clone()
            } else {
                "hive".to_owned()
            };
            if v.has_catalogs() && !st.catalogs.contains(&catalog) {
                st.next_id += 1;
                let id = st.next_id;
                add(
                    "CTLGS",
                    &["CTLG_ID", "NAME", "DESC", "LOCATION_URI"],
                    vec![
                        id.to_string(),
                        self.lit(&catalog),
                        self.lit("fixture catalog"),
                        self.lit(&format!("hdfs://ns1/{catalog}")),
                    ],
                );
                st.catalogs.push(catalog.clone());
            }
            let db_key = (catalog.clone(), t.database.clone());
            let db_id = if let Some(id) = st.dbs.get(&db_key) {
                *id
            } else {
                st.next_id += 1;
                let id = st.next_id;
                let location = format!("hdfs://ns1/warehouse/{}.db", t.database);
                let mut cols = vec![
                    "DB_ID",
                    "DESC",
                    "DB_LOCATION_URI",
                    "NAME",
                    "OWNER_NAME",
                    "OWNER_TYPE",
                ];
                let mut vals = vec![
                    id.to_string(),
                    "NULL".to_owned(),
                    self.lit(&location),
                    self.lit(&t.database),
                    self.lit("hive"),
                    self.lit("USER"),
                ];
                if v.has_catalogs() {
                    cols.push("CTLG_NAME");
                    vals.push(self.lit(&catalog));
                }
                if v == SchemaVersion::Cdp3_1_3000 {
                    cols.extend(["CREATE_TIME", "DB_MANAGED_LOCATION_URI"]);
                    vals.extend([
                        "1700000000".to_owned(),
                        self.lit(&format!("hdfs://ns1/warehouse/managed/{}.db", t.database)),
                    ]);
                }
                add("DBS", &cols, vals);
                st.dbs.insert(db_key, id);
                id
            };
            // Column descriptor shared by the table and its partitions, like Hive does.
            st.next_id += 1;
            let cd_id = st.next_id;
            add("CDS", &["CD_ID"], vec![cd_id.to_string()]);
            for (i, (name, ty)) in t.columns.iter().enumerate() {
                add(
                    "COLUMNS_V2",
                    &[
                        "CD_ID",
                        "COMMENT",
                        "COLUMN_NAME",
                        "TYPE_NAME",
                        "INTEGER_IDX",
                    ],
                    vec![
                        cd_id.to_string(),
                        self.lit(&format!("column {name}")),
                        self.lit(name),
                        self.lit(ty),
                        i.to_string(),
                    ],
                );
            }
            let new_sd = |st: &mut State,
                          location: Option<&str>,
                          add: &mut AddRow<'_>,
                          serde_params: &BTreeMap<String, String>|
             -> i64 {
                st.next_id += 1;
                let serde_id = st.next_id;
                st.next_id += 1;
                let sd_id = st.next_id;
                add(
                    "SERDES",
                    &["SERDE_ID", "NAME", "SLIB"],
                    vec![
                        serde_id.to_string(),
                        "NULL".to_owned(),
                        self.opt(t.serde_lib.as_deref()),
                    ],
                );
                for (k, val) in serde_params {
                    add(
                        "SERDE_PARAMS",
                        &["SERDE_ID", "PARAM_KEY", "PARAM_VALUE"],
                        vec![serde_id.to_string(), self.lit(k), self.lit(val)],
                    );
                }
                add(
                    "SDS",
                    &[
                        "SD_ID",
                        "CD_ID",
                        "INPUT_FORMAT",
                        "IS_COMPRESSED",
                        "IS_STOREDASSUBDIRECTORIES",
                        "LOCATION",
                        "NUM_BUCKETS",
                        "OUTPUT_FORMAT",
                        "SERDE_ID",
                    ],
                    vec![
                        sd_id.to_string(),
                        cd_id.to_string(),
                        self.opt(t.input_format.as_deref()),
                        f.to_owned(),
                        f.to_owned(),
                        self.opt(location),
                        t.num_buckets.to_string(),
                        self.opt(t.output_format.as_deref()),
                        serde_id.to_string(),
                    ],
                );
                for (i, c) in t.bucket_cols.iter().enumerate() {
                    add(
                        "BUCKETING_COLS",
                        &["SD_ID", "BUCKET_COL_NAME", "INTEGER_IDX"],
                        vec![sd_id.to_string(), self.lit(c), i.to_string()],
                    );
                }
                for (i, (c, o)) in t.sort_cols.iter().enumerate() {
                    add(
                        "SORT_COLS",
                        &["SD_ID", "COLUMN_NAME", "ORDER", "INTEGER_IDX"],
                        vec![sd_id.to_string(), self.lit(c), o.to_string(), i.to_string()],
                    );
                }
                sd_id
            };
            let sd_id = new_sd(&mut st, t.location.as_deref(), &mut add, &t.serde_params);
            st.next_id += 1;
            let tbl_id = st.next_id;
            add(
                "TBLS",
                &[
                    "TBL_ID",
                    "CREATE_TIME",
                    "DB_ID",
                    "LAST_ACCESS_TIME",
                    "OWNER",
                    "RETENTION",
                    "SD_ID",
                    "TBL_NAME",
                    "TBL_TYPE",
                    "VIEW_EXPANDED_TEXT",
                    "VIEW_ORIGINAL_TEXT",
                ],
                vec![
                    tbl_id.to_string(),
                    t.create_time.to_string(),
                    db_id.to_string(),
                    "0".to_owned(),
                    self.lit("hive"),
                    "0".to_owned(),
                    sd_id.to_string(),
                    self.lit(&t.name),
                    self.lit(&t.tbl_type),
                    self.opt(t.view_text.as_deref()),
                    self.opt(t.view_text.as_deref()),
                ],
            );
            for (k, val) in &t.params {
                add(
                    "TABLE_PARAMS",
                    &["TBL_ID", "PARAM_KEY", "PARAM_VALUE"],
                    vec![tbl_id.to_string(), self.lit(k), self.lit(val)],
                );
            }
            for (i, (name, ty)) in t.partition_keys.iter().enumerate() {
                add(
                    "PARTITION_KEYS",
                    &[
                        "TBL_ID",
                        "PKEY_COMMENT",
                        "PKEY_NAME",
                        "PKEY_TYPE",
                        "INTEGER_IDX",
                    ],
                    vec![
                        tbl_id.to_string(),
                        "NULL".to_owned(),
                        self.lit(name),
                        self.lit(ty),
                        i.to_string(),
                    ],
                );
            }
            for p in &t.partitions {
                let sd = new_sd(&mut st, p.location.as_deref(), &mut add, &t.serde_params);
                st.next_id += 1;
                let part_id = st.next_id;
                add(
                    "PARTITIONS",
                    &[
                        "PART_ID",
                        "CREATE_TIME",
                        "LAST_ACCESS_TIME",
                        "PART_NAME",
                        "SD_ID",
                        "TBL_ID",
                    ],
                    vec![
                        part_id.to_string(),
                        p.create_time.to_string(),
                        "0".to_owned(),
                        self.lit(&p.name),
                        sd.to_string(),
                        tbl_id.to_string(),
                    ],
                );
                for (i, val) in p.values.iter().enumerate() {
                    add(
                        "PARTITION_KEY_VALS",
                        &["PART_ID", "PART_KEY_VAL", "INTEGER_IDX"],
                        vec![part_id.to_string(), self.lit(val), i.to_string()],
                    );
                }
                if let Some(n) = p.num_files {
                    add(
                        "PARTITION_PARAMS",
                        &["PART_ID", "PARAM_KEY", "PARAM_VALUE"],
                        vec![
                            part_id.to_string(),
                            self.lit("numFiles"),
                            self.lit(&n.to_string()),
                        ],
                    );
                }
            }
        }
        // Parents before children (foreign keys are checked immediately on MySQL).
        const ORDER: &[&str] = &[
            "CTLGS",
            "DBS",
            "CDS",
            "COLUMNS_V2",
            "SERDES",
            "SERDE_PARAMS",
            "SDS",
            "BUCKETING_COLS",
            "SORT_COLS",
            "TBLS",
            "TABLE_PARAMS",
            "PARTITION_KEYS",
            "PARTITIONS",
            "PARTITION_KEY_VALS",
            "PARTITION_PARAMS",
        ];
        let mut out = Vec::new();
        for table in ORDER {
            let Some((cols, values)) = rows.remove(table) else {
                continue;
            };
            let cols = cols
                .iter()
                .map(|c| self.ident(c))
                .collect::<Vec<_>>()
                .join(", ");
            for chunk in values.chunks(2000) {
                out.push(format!(
                    "INSERT INTO {} ({cols}) VALUES {}",
                    self.ident(table),
                    chunk.join(", ")
                ));
            }
        }
        out
    }

    /// Drops the database.
    pub async fn drop_database(self) -> anyhow::Result<()> {
        let Self {
            kind,
            db_name,
            server,
            conn,
            state,
            ..
        } = self;
        let logins = state.into_inner().logins;
        match conn.into_inner() {
            Conn::Mysql(c) => {
                let _ = c.disconnect().await;
            }
            Conn::Postgres(c) => drop(c),
        }
        match kind {
            DbKind::Mysql => {
                let mut admin = mysql_async::Conn::new(mysql_opts(&server, None)).await?;
                admin
                    .query_drop(format!("DROP DATABASE IF EXISTS `{db_name}`"))
                    .await?;
                for user in &logins {
                    admin
                        .query_drop(format!("DROP USER IF EXISTS '{user}'@'%'"))
                        .await?;
                }
                admin.disconnect().await?;
            }
            DbKind::Postgres => {
                let admin = pg_connect(&server, "postgres").await?;
                admin
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"
                    ))
                    .await?;
                for user in &logins {
                    admin
                        .batch_execute(&format!("DROP ROLE IF EXISTS \"{user}\""))
                        .await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_hive() {
        assert_eq!(escape_path_name("2024-01-01"), "2024-01-01");
        assert_eq!(escape_path_name("10:00:00"), "10%3A00%3A00");
        assert_eq!(escape_path_name("a b%c=d'e"), "a b%25c%3Dd%27e");
        assert_eq!(
            escape_path_name("x/y\\z#?*\"{[]^"),
            "x%2Fy%5Cz%23%3F%2A%22%7B%5B%5D%5E"
        );
        assert_eq!(escape_path_name("\u{1}\n\u{7f}"), "%01%0A%7F");
        assert_eq!(escape_path_name("árvíztűrő 表"), "árvíztűrő 表");
        assert_eq!(escape_path_name(""), "__HIVE_DEFAULT_PARTITION__");
    }

    #[test]
    fn builder_locations() {
        let t = FixtureTable::new("db", "t", Format::Text, "hdfs://ns1/w/db.db/t/")
            .partitioned_by(&[("DT", "string"), ("ts", "string")])
            .partition(&["2024-01-01", "10:00"])
            .partition_at(&["x", "y"], "s3a://b/p");
        assert_eq!(t.partitions[0].name, "dt=2024-01-01/ts=10%3A00");
        assert_eq!(
            t.partitions[0].location.as_deref(),
            Some("hdfs://ns1/w/db.db/t/dt=2024-01-01/ts=10%3A00")
        );
        assert_eq!(t.partitions[1].location.as_deref(), Some("s3a://b/p"));
    }
}
