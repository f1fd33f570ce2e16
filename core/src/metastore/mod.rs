//! Hive MetaStore readers: read the MetaStore's backing database directly (MySQL/MariaDB via
//! `mysql_async`, PostgreSQL via `tokio-postgres`) and turn its rows into [`TableMeta`]s.
//!
//! Schemas of Hive 1.1 (CDH 5), 2.1 (CDH 6), 3.1 and CDP 3.1.3000 are supported; features are
//! detected by probing columns (`DBS.CTLG_NAME`...), never by version strings. A whole scan
//! reads everything in a constant number of queries plus keyset pages of partitions.
//! Classification of tables (format, transactional, storage handler...) is the pure
//! [`classify`] module. Wire types (rows) stay inside the backend modules. Connections are
//! plain TCP or TLS with libpq's `sslmode` semantics ([`tls`]).

mod assemble;
pub mod classify;
mod mysql;
mod postgres;
mod postgres_tls;
pub mod server_error;
pub mod sql;
pub mod tls;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use assemble::{Cell, Param};
use sql::{Dialect, TableFilter};

pub use classify::{FileFormat, NotScannedReason, TableClass, TableType, Transactional};
pub use server_error::ServerCode;
pub use tls::{ClientCert, TlsMode, TlsSettings};

use crate::secret::Secret;

/// Which database engine backs the MetaStore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// MySQL or MariaDB.
    Mysql,
    /// PostgreSQL.
    Postgres,
}

/// Connection settings of one MetaStore database.
#[derive(Debug, Clone)]
pub struct MetastoreConfig {
    /// MySQL/MariaDB or PostgreSQL.
    pub backend: Backend,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Database user (read-only is enough).
    pub user: String,
    /// Password, if any (from a file or the environment, never from the URL).
    pub password: Option<Secret>,
    /// Database (schema) name, e.g. `metastore`.
    pub database: String,
    /// Connections kept in the pool.
    pub pool_size: usize,
    /// Server-side timeout of one statement.
    pub statement_timeout: Duration,
    /// Timeout of establishing a connection.
    pub connect_timeout: Duration,
    /// Hive 3 catalogs to read (`["hive"]` by default); ignored on schemas without catalogs.
    pub catalogs: Vec<String>,
    /// Partitions per keyset page.
    pub partition_page_size: u32,
    /// TLS to the database (`disable` by default).
    pub tls: TlsSettings,
}

impl MetastoreConfig {
    /// `postgres://hive@db:5432/metastore tls=verify-full ca=… password=set`: what a
    /// connection uses, for `check` (never the password itself).
    pub fn describe(&self) -> String {
        let scheme = match self.backend {
            Backend::Mysql => "mysql",
            Backend::Postgres => "postgres",
        };
        format!(
            "{scheme}://{}@{}:{}/{} {}{}",
            self.user,
            self.host,
            self.port,
            self.database,
            self.tls.describe(),
            if self.password.is_some() {
                " password=set"
            } else {
                ""
            }
        )
    }
}

/// Errors of MetaStore reads.
#[derive(Debug, thiserror::Error)]
pub enum MetastoreError {
    /// Could not connect or the connection broke.
    #[error("cannot reach the metastore database: {0}")]
    Connection(String),
    /// The server answered a statement (or the login: `connect`) with an error: a timeout,
    /// a deadlock, too many connections (retryable), or a rejection — syntax, a missing table
    /// or column, a denied privilege, an unknown database (not retryable; see
    /// [`server_error`]).
    #[error("metastore query failed ({query}): {message} ({code})")]
    Query {
        /// Short name of the query (`tables`, `partitions`..., `connect`).
        query: &'static str,
        /// Server message.
        message: String,
        /// The server's error number or SQLSTATE.
        code: ServerCode,
    },
    /// TLS with the database failed: an untrusted or mismatched certificate, a server without
    /// TLS, a rejected client certificate, an unreadable CA or key file. Not retryable: the
    /// same certificates fail the same way (fail closed).
    #[error("TLS to the metastore database {endpoint} failed: {message}")]
    Tls {
        /// `host:port`.
        endpoint: String,
        /// The cause, in words (untrusted issuer, host-name mismatch, no TLS on the server...).
        message: String,
    },
    /// The database does not look like a Hive MetaStore (required table or column missing).
    #[error("not a supported Hive MetaStore schema: {0}")]
    Schema(String),
    /// A row could not be decoded.
    #[error("undecodable metastore row in {query}: {message}")]
    Decode {
        /// Short name of the query.
        query: &'static str,
        /// What was wrong.
        message: String,
    },
}

impl MetastoreError {
    /// Whether retrying later may succeed: connection trouble, and server errors whose code
    /// says so (timeouts, deadlocks, lock waits, serialization failures, exhausted resources).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connection(_) => true,
            Self::Query { code, .. } => code.is_retryable(),
            Self::Tls { .. } | Self::Schema(_) | Self::Decode { .. } => false,
        }
    }

    /// A short, bounded label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Connection(_) => "connection",
            Self::Query { .. } => "query",
            Self::Tls { .. } => "tls",
            Self::Schema(_) => "schema",
            Self::Decode { .. } => "decode",
        }
    }
}

/// What probing the schema found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchemaInfo {
    /// `VERSION.SCHEMA_VERSION`, if the table has a row.
    pub schema_version: Option<String>,
    /// CDH 6 `VERSION.SCHEMA_VERSION_V2` or CDP `CDH_VERSION.SCHEMA_VERSION`, if present.
    pub distribution_version: Option<String>,
    /// `DBS.CTLG_NAME` exists (Hive 3).
    pub has_catalogs: bool,
    /// `TBLS.WRITE_ID` exists (CDP 3.1.3000, Hive 4).
    pub has_write_id: bool,
    /// `DBS.DB_MANAGED_LOCATION_URI` exists (CDP 3.1.3000, Hive 4).
    pub has_managed_location: bool,
}

/// One partition key column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionKey {
    /// Column name (`PKEY_NAME`).
    pub name: String,
    /// Hive type name (`PKEY_TYPE`), e.g. `string`, `int`, `date`.
    pub type_name: String,
}

/// One data column (`COLUMNS_V2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Hive type name.
    pub type_name: String,
    /// Comment, if any.
    pub comment: Option<String>,
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMeta {
    /// `PARTITIONS.PART_ID`.
    pub id: i64,
    /// `PART_NAME`, escaped the way Hive escapes path names (`k1=v1/k2=v2`).
    pub name: String,
    /// Unescaped values (`PARTITION_KEY_VALS`), in partition-key order.
    pub values: Vec<String>,
    /// The partition's own `SDS.LOCATION` (may differ from table location + name).
    pub location: Option<String>,
    /// `PARTITIONS.CREATE_TIME`, seconds since the epoch.
    pub create_time: i64,
    /// `PARTITION_PARAMS.numFiles` (a hint; often stale).
    pub stats_num_files: Option<i64>,
}

/// One table as the MetaStore describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMeta {
    /// `TBLS.TBL_ID`.
    pub id: i64,
    /// Catalog (`DBS.CTLG_NAME`; `hive` on schemas without catalogs).
    pub catalog: String,
    /// Database name (`DBS.NAME`).
    pub database: String,
    /// Table name (`TBLS.TBL_NAME`).
    pub name: String,
    /// Raw `TBLS.TBL_TYPE`.
    pub tbl_type: String,
    /// `SDS.LOCATION` of the table's storage descriptor.
    pub location: Option<String>,
    /// `SDS.INPUT_FORMAT`.
    pub input_format: Option<String>,
    /// `SDS.OUTPUT_FORMAT`.
    pub output_format: Option<String>,
    /// `SERDES.SLIB`.
    pub serde_lib: Option<String>,
    /// `SDS.NUM_BUCKETS` (-1 or 0 when not bucketed).
    pub num_buckets: i32,
    /// Number of `BUCKETING_COLS` rows.
    pub bucket_columns: u32,
    /// Number of `SORT_COLS` rows.
    pub sort_columns: u32,
    /// `SDS.CD_ID`, for reading columns.
    pub cd_id: Option<i64>,
    /// `TBLS.CREATE_TIME`, seconds since the epoch.
    pub create_time: i64,
    /// Selected `TABLE_PARAMS` (see [`classify::TABLE_PARAM_KEYS`]).
    pub params: BTreeMap<String, String>,
    /// Selected `SERDE_PARAMS` of the table's serde (see [`classify::SERDE_PARAM_KEYS`]).
    pub serde_params: BTreeMap<String, String>,
    /// Partition keys in `INTEGER_IDX` order; empty for unpartitioned tables.
    pub partition_keys: Vec<PartitionKey>,
    /// Partitions, ordered by `PART_ID`.
    pub partitions: Vec<PartitionMeta>,
}

impl TableMeta {
    /// Whether the table is partitioned (has partition keys).
    pub fn is_partitioned(&self) -> bool {
        !self.partition_keys.is_empty()
    }

    /// Classification derived from the rows (pure).
    pub fn class(&self) -> TableClass {
        classify::classify(self)
    }
}

/// Everything one scan read from a MetaStore.
#[derive(Debug, Clone, Default)]
pub struct MetastoreSnapshot {
    /// What the schema probe found.
    pub schema: SchemaInfo,
    /// Tables of the selected catalogs, ordered by (catalog, database, name).
    pub tables: Vec<TableMeta>,
    /// Tables of the catalogs not selected (Hive 3: Spark's `spark` catalog...), counted by
    /// catalog and not read further.
    pub other_catalog_tables: BTreeMap<String, u64>,
}

/// Where the partition stream ([`Metastore::read_partition_page`]) stands: the last
/// (TBL_ID, PART_ID) read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionCursor {
    /// `PARTITIONS.TBL_ID` of the last partition read.
    pub tbl_id: i64,
    /// Its `PART_ID`.
    pub part_id: i64,
}

impl PartitionCursor {
    /// Before the first partition.
    pub const START: Self = Self {
        tbl_id: i64::MIN,
        part_id: i64::MIN,
    };
}

/// One page of the partition stream.
#[derive(Debug, Default)]
pub struct PartitionBatch {
    /// `(TBL_ID, partition)` in (TBL_ID, PART_ID) order, with key values and `numFiles`.
    pub partitions: Vec<(i64, PartitionMeta)>,
    /// Where the next page starts; `None` after the last page.
    pub next: Option<PartitionCursor>,
}

/// The backend behind a [`Metastore`].
#[derive(Debug)]
enum Inner {
    Mysql(mysql::MysqlBackend),
    Postgres(Box<postgres::PgBackend>),
}

/// A reader of one MetaStore database: a connection pool plus the query logic.
///
/// `Send + Sync`; every read takes `&self`, so one `Metastore` serves many tasks.
///
/// # Queries per snapshot
/// [`Metastore::read_snapshot`] sends `2` (probe) `+ 4` (tables, table parameters, serde
/// parameters, partition keys) `+ 3` per non-empty page of partitions (page, key values,
/// `numFiles`) `+ 1` when the last page was full (the empty page that ends the scan); the
/// count never depends on the number of tables. Session setup statements of new pooled
/// connections are not counted.
///
/// The streaming read used by the exporter's scan sends the same number of statements:
/// [`Metastore::read_tables`] the probe and the four table statements, then
/// [`Metastore::read_partition_page`] 3 per non-empty page (page, key values, `numFiles`) and 1
/// for an empty last page; its pages are in (TBL_ID, PART_ID) order instead of PART_ID order.
pub struct Metastore {
    inner: Inner,
    dialect: Dialect,
    catalogs: Vec<String>,
    page_size: u32,
    connect_timeout: Duration,
    queries: AtomicU64,
    schema: Mutex<Option<SchemaInfo>>,
}

impl std::fmt::Debug for Metastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metastore")
            .field("dialect", &self.dialect)
            .field("catalogs", &self.catalogs)
            .field("page_size", &self.page_size)
            .field("queries", &self.queries)
            .finish_non_exhaustive()
    }
}

/// Which tables one read covers.
#[derive(Debug, Clone, Copy)]
struct Selection<'a> {
    database: Option<&'a str>,
    table: Option<&'a str>,
}

impl Metastore {
    /// Opens the pool (`cfg.pool_size` connections at most) and checks one connection within
    /// `cfg.connect_timeout`. The password is never logged.
    pub async fn connect(cfg: &MetastoreConfig) -> Result<Self, MetastoreError> {
        let (inner, dialect) = match cfg.backend {
            Backend::Mysql => (
                Inner::Mysql(mysql::MysqlBackend::connect(cfg).await?),
                Dialect::Mysql,
            ),
            Backend::Postgres => (
                Inner::Postgres(Box::new(postgres::PgBackend::connect(cfg).await?)),
                Dialect::Postgres,
            ),
        };
        let catalogs = if cfg.catalogs.is_empty() {
            vec!["hive".to_owned()]
        } else {
            cfg.catalogs.clone()
        };
        Ok(Self {
            inner,
            dialect,
            catalogs,
            page_size: cfg.partition_page_size.max(1),
            connect_timeout: cfg.connect_timeout,
            queries: AtomicU64::new(0),
            schema: Mutex::new(None),
        })
    }

    /// Statements sent by the reader since [`Metastore::connect`].
    pub fn queries_executed(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Closes the pool.
    pub async fn close(self) {
        match self.inner {
            Inner::Mysql(m) => m.close().await,
            Inner::Postgres(p) => (*p).close().await,
        }
    }

    async fn query(
        &self,
        name: &'static str,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<Vec<Vec<Cell>>, MetastoreError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(query = name, "metastore query");
        match &self.inner {
            Inner::Mysql(m) => m.query(name, sql, params, self.connect_timeout).await,
            Inner::Postgres(p) => p.query(name, sql, params).await,
        }
    }

    /// Probes the schema: which tables and columns exist (`information_schema.columns`) and
    /// the recorded versions. Two statements. Unknown version strings are fine; a database
    /// without the core tables gives [`MetastoreError::Schema`].
    pub async fn probe(&self) -> Result<SchemaInfo, MetastoreError> {
        let rows = self
            .query(
                "probe_columns",
                &sql::probe_columns(self.dialect),
                Vec::new(),
            )
            .await?;
        let mut columns: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for cells in &rows {
            let r = assemble::RowReader::new("probe_columns", cells);
            columns.entry(r.text(0)?).or_default().push(r.text(1)?);
        }
        let has = |t: &str, c: &str| columns.get(t).is_some_and(|cs| cs.iter().any(|x| x == c));
        let missing: Vec<&str> = sql::REQUIRED_TABLES
            .iter()
            .copied()
            .filter(|t| !columns.contains_key(*t))
            .collect();
        if !missing.is_empty() {
            return Err(MetastoreError::Schema(format!(
                "missing tables: {}",
                missing.join(", ")
            )));
        }
        let has_version = has("VERSION", "SCHEMA_VERSION");
        let has_v2 = has("VERSION", "SCHEMA_VERSION_V2");
        let has_cdh = has("CDH_VERSION", "SCHEMA_VERSION");
        let rows = self
            .query(
                "versions",
                &sql::versions(self.dialect, has_version, has_v2, has_cdh),
                Vec::new(),
            )
            .await?;
        let (schema_version, distribution_version) = match rows.first() {
            Some(cells) => {
                let r = assemble::RowReader::new("versions", cells);
                (r.opt_text(0)?, r.opt_text(1)?)
            }
            None => (None, None),
        };
        let info = SchemaInfo {
            schema_version,
            distribution_version,
            has_catalogs: has("DBS", "CTLG_NAME"),
            has_write_id: has("TBLS", "WRITE_ID"),
            has_managed_location: has("DBS", "DB_MANAGED_LOCATION_URI"),
        };
        if let Ok(mut cached) = self.schema.lock() {
            *cached = Some(info.clone());
        }
        Ok(info)
    }

    fn cached_schema(&self) -> Option<SchemaInfo> {
        self.schema.lock().ok().and_then(|s| s.clone())
    }

    /// Reads every table of the configured catalogs with partitions, in a constant number of
    /// statements plus keyset pages of partitions (see the type docs). Tables are ordered by
    /// (catalog, database, name), partitions by `PART_ID`, partition keys by `INTEGER_IDX`.
    pub async fn read_snapshot(&self) -> Result<MetastoreSnapshot, MetastoreError> {
        let schema = self.probe().await?;
        let (tables, other_catalog_tables) = self
            .read(
                &schema,
                Selection {
                    database: None,
                    table: None,
                },
                &self.catalogs,
            )
            .await?;
        Ok(MetastoreSnapshot {
            schema,
            tables,
            other_catalog_tables,
        })
    }

    /// Reads every table of the configured catalogs *without* partitions (probe plus four
    /// statements), ordered by `TBL_ID`: the start of a streaming read, whose partitions then
    /// come page by page from [`Metastore::read_partition_page`].
    pub async fn read_tables(&self) -> Result<MetastoreSnapshot, MetastoreError> {
        let schema = self.probe().await?;
        let (mut tables, other_catalog_tables) = self
            .read_inner(
                &schema,
                Selection {
                    database: None,
                    table: None,
                },
                &self.catalogs,
                false,
            )
            .await?;
        tables.sort_by_key(|t| t.id);
        Ok(MetastoreSnapshot {
            schema,
            tables,
            other_catalog_tables,
        })
    }

    /// Reads the page of partitions after `after` in (TBL_ID, PART_ID) order, with their key
    /// values and `numFiles`: 3 statements (1 when the page is empty). A page holds
    /// `partition_page_size` partitions at most: whole tables plus possibly the end of the
    /// table the previous page stopped in and the start of the one this page stops in.
    /// Partitions of tables the caller does not know (other catalogs, created meanwhile) are
    /// the caller's to drop.
    pub async fn read_partition_page(
        &self,
        after: PartitionCursor,
    ) -> Result<PartitionBatch, MetastoreError> {
        let d = self.dialect;
        let cursor = |c: PartitionCursor| {
            [
                Param::Int(c.tbl_id),
                Param::Int(c.tbl_id),
                Param::Int(c.part_id),
            ]
        };
        let rows = self
            .query(
                "partitions",
                &sql::partitions_stream_page(d, self.page_size),
                cursor(after).to_vec(),
            )
            .await?;
        let mut page = assemble::partition_page(&rows)?;
        let Some(&(tbl_id, ref last)) = page.partitions.last() else {
            return Ok(PartitionBatch::default());
        };
        let end = PartitionCursor {
            tbl_id,
            part_id: last.id,
        };
        let ids: Vec<i64> = page.partitions.iter().map(|(_, p)| p.id).collect();
        let (kv_sql, nf_sql) = (sql::page_key_vals(d, &ids), sql::page_num_files(d, &ids));
        drop(ids);
        let (kv, nf) = futures::try_join!(
            self.query("partition_key_vals", &kv_sql, Vec::new()),
            self.query("partition_params", &nf_sql, Vec::new()),
        )?;
        assemble::attach_partition_details(&mut page, &kv, &nf)?;
        let full = page.rows >= self.page_size as usize;
        Ok(PartitionBatch {
            partitions: page.partitions,
            next: full.then_some(end),
        })
    }

    /// Reads one table with its partitions; `None` if it does not exist. On schemas without
    /// catalogs only catalog `hive` exists. Names are matched exactly (Hive stores them
    /// lower-cased).
    pub async fn read_table(
        &self,
        catalog: &str,
        database: &str,
        table: &str,
    ) -> Result<Option<TableMeta>, MetastoreError> {
        let schema = match self.cached_schema() {
            Some(s) => s,
            None => self.probe().await?,
        };
        if !schema.has_catalogs && catalog != "hive" {
            return Ok(None);
        }
        let catalogs = [catalog.to_owned()];
        let (mut tables, _) = self
            .read(
                &schema,
                Selection {
                    database: Some(database),
                    table: Some(table),
                },
                &catalogs,
            )
            .await?;
        // Both encodings of a non-ASCII name may match on MySQL; prefer the exact decode.
        tables.retain(|t| t.database == database && t.name == table);
        Ok(tables.into_iter().next())
    }

    /// The data columns of a table (`COLUMNS_V2` by its `SDS.CD_ID`) in `INTEGER_IDX` order;
    /// empty when the table has no column descriptor.
    pub async fn table_columns(&self, table: &TableMeta) -> Result<Vec<Column>, MetastoreError> {
        let Some(cd_id) = table.cd_id else {
            return Ok(Vec::new());
        };
        let rows = self
            .query(
                "columns",
                &sql::columns(self.dialect),
                vec![Param::Int(cd_id)],
            )
            .await?;
        assemble::columns_from_rows(&rows)
    }

    async fn read(
        &self,
        schema: &SchemaInfo,
        selection: Selection<'_>,
        catalogs: &[String],
    ) -> Result<(Vec<TableMeta>, BTreeMap<String, u64>), MetastoreError> {
        self.read_inner(schema, selection, catalogs, true).await
    }

    async fn read_inner(
        &self,
        schema: &SchemaInfo,
        selection: Selection<'_>,
        catalogs: &[String],
        with_partitions: bool,
    ) -> Result<(Vec<TableMeta>, BTreeMap<String, u64>), MetastoreError> {
        let d = self.dialect;
        let mut params = Vec::new();
        let mut filter = TableFilter::default();
        // A full read selects the catalogs here, not in SQL, to count the tables of the
        // others (a few rows more, no statement more); a single-table read filters in SQL.
        let one_table = selection.table.is_some();
        if schema.has_catalogs && one_table {
            let before = params.len();
            for c in catalogs {
                params.extend(assemble::text_params(d, c));
            }
            filter.catalogs = Some(params.len() - before);
        }
        if let Some(db) = selection.database {
            let p = assemble::text_params(d, db);
            filter.database = Some(p.len());
            params.extend(p);
        }
        if let Some(t) = selection.table {
            let p = assemble::text_params(d, t);
            filter.table = Some(p.len());
            params.extend(p);
        }
        let rows = self
            .query(
                "tables",
                &sql::tables(d, schema.has_catalogs, filter),
                params,
            )
            .await?;
        let mut tables = assemble::tables_from_rows(&rows)?;
        let mut other_catalogs: BTreeMap<String, u64> = BTreeMap::new();
        if schema.has_catalogs && !one_table {
            tables.retain(|t| {
                let keep = catalogs.contains(&t.catalog);
                if !keep {
                    *other_catalogs.entry(t.catalog.clone()).or_default() += 1;
                }
                keep
            });
        }
        if one_table && tables.is_empty() {
            return Ok((tables, other_catalogs));
        }
        // A single-table read filters the detail queries by TBL_ID (the first match; a
        // second match can only be the other encoding of the same name on MySQL).
        let tbl_param = || {
            tables
                .first()
                .map(|t| vec![Param::Int(t.id)])
                .unwrap_or_default()
        };
        let one_id = if one_table { tbl_param() } else { Vec::new() };
        if one_table {
            tables.truncate(1);
        }
        let (tp_sql, sp_sql, pk_sql) = (
            sql::table_params(d, one_table),
            sql::serde_params(d, one_table),
            sql::partition_keys(d, one_table),
        );
        let (tp, sp, pk) = futures::try_join!(
            self.query("table_params", &tp_sql, one_id.clone()),
            self.query("serde_params", &sp_sql, one_id.clone()),
            self.query("partition_keys", &pk_sql, one_id.clone()),
        )?;
        let index = assemble::index_by_id(&tables);
        assemble::attach_params("table_params", &mut tables, &index, &tp, false)?;
        assemble::attach_params("serde_params", &mut tables, &index, &sp, true)?;
        assemble::attach_partition_keys(&mut tables, &index, &pk)?;
        if with_partitions {
            self.read_partitions(&mut tables, &index, one_id).await?;
        }
        tables.sort_by(|a, b| {
            (&a.catalog, &a.database, &a.name).cmp(&(&b.catalog, &b.database, &b.name))
        });
        Ok((tables, other_catalogs))
    }

    /// Keyset-pages `PARTITIONS` by `PART_ID`; for each non-empty page reads the key values
    /// and `numFiles` of the same PART_ID range. Partitions of tables not in `tables`
    /// (orphans, other catalogs, tables created meanwhile) are dropped.
    async fn read_partitions(
        &self,
        tables: &mut [TableMeta],
        index: &std::collections::HashMap<i64, usize>,
        one_id: Vec<Param>,
    ) -> Result<(), MetastoreError> {
        let d = self.dialect;
        let one_table = !one_id.is_empty();
        let page_sql = sql::partitions_page(d, one_table, self.page_size);
        let kv_sql = sql::partition_key_vals(d);
        let nf_sql = sql::partition_num_files(d);
        let mut last = i64::MIN;
        loop {
            let mut params = vec![Param::Int(last)];
            params.extend(one_id.iter().cloned());
            let rows = self.query("partitions", &page_sql, params).await?;
            let mut page = assemble::partition_page(&rows)?;
            let Some((lo, hi)) = page.range else {
                break;
            };
            let range = vec![Param::Int(lo), Param::Int(hi)];
            let (kv, nf) = futures::try_join!(
                self.query("partition_key_vals", &kv_sql, range.clone()),
                self.query("partition_params", &nf_sql, range),
            )?;
            assemble::attach_partition_details(&mut page, &kv, &nf)?;
            for (tbl_id, partition) in page.partitions {
                if let Some(&i) = index.get(&tbl_id) {
                    tables[i].partitions.push(partition);
                }
            }
            if page.rows < self.page_size as usize || hi <= last {
                break;
            }
            last = hi;
        }
        for t in tables.iter_mut() {
            t.partitions.sort_by_key(|p| p.id);
        }
        Ok(())
    }
}
