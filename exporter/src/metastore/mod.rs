//! Hive MetaStore readers: read the MetaStore's backing database directly (MySQL/MariaDB via
//! `mysql_async`, PostgreSQL via `tokio-postgres`) and turn its rows into [`TableMeta`]s.
//!
//! Schemas of Hive 1.1 (CDH 5), 2.1 (CDH 6), 3.1 and CDP 3.1.3000 are supported; features are
//! detected by probing columns (`DBS.CTLG_NAME`...), never by version strings. A whole scan
//! reads everything in a constant number of queries plus keyset pages of partitions.
//! Classification of tables (format, transactional, storage handler...) is the pure
//! [`classify`] module. Wire types (rows) stay inside the backend modules.

pub mod classify;

use std::collections::BTreeMap;
use std::time::Duration;

pub use classify::{FileFormat, NotScannedReason, TableClass, TableType, Transactional};

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
}

/// Errors of MetaStore reads.
#[derive(Debug, thiserror::Error)]
pub enum MetastoreError {
    /// Could not connect or the connection broke.
    #[error("cannot reach the metastore database: {0}")]
    Connection(String),
    /// The server rejected a statement or it timed out.
    #[error("metastore query failed ({query}): {message}")]
    Query {
        /// Short name of the query (`tables`, `partitions`...).
        query: &'static str,
        /// Server message.
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
    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Connection(_) | Self::Query { .. })
    }

    /// A short, bounded label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Connection(_) => "connection",
            Self::Query { .. } => "query",
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
}

// STUB: replaced by the real reader.
/// MetaStore reader.
#[derive(Debug)]
pub struct Metastore;
impl Metastore {
    /// Connects.
    pub async fn connect(_cfg: &MetastoreConfig) -> Result<Self, MetastoreError> {
        Err(MetastoreError::Connection("stub".into()))
    }
    /// Reads everything.
    pub async fn read_snapshot(&self) -> Result<MetastoreSnapshot, MetastoreError> {
        Err(MetastoreError::Connection("stub".into()))
    }
    /// Probes.
    pub async fn probe(&self) -> Result<SchemaInfo, MetastoreError> {
        Err(MetastoreError::Connection("stub".into()))
    }
}
