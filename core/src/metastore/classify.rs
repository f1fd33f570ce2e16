//! Pure classification of a table from its MetaStore rows: file format, table type,
//! transactional kind, and whether (and why not) its files are scanned.
//!
//! Class names follow facts from Hive's and Impala's sources (`HdfsFileFormat`, HIVE-6757):
//! Parquet is matched by input format first because the HIVE-6757 upgrade script left odd
//! serde names behind; any non-empty `storage_handler` parameter means "not a plain HDFS
//! table".

use super::TableMeta;

/// `TABLE_PARAMS` keys the readers keep (everything else is dropped to bound memory).
pub const TABLE_PARAM_KEYS: &[&str] = &[
    "EXTERNAL",
    "transactional",
    "transactional_properties",
    "storage_handler",
    "table_type",
    "numFiles",
    "totalSize",
    "numRows",
    "transient_lastDdlTime",
    "orc.compress",
    "parquet.compression",
    "avro.output.codec",
    "compression",
    "skip.header.line.count",
    "skip.footer.line.count",
    "external.table.purge",
    "spark.sql.sources.provider",
];

/// `SERDE_PARAMS` keys the readers keep.
pub const SERDE_PARAM_KEYS: &[&str] = &[
    "serialization.format",
    "field.delim",
    "line.delim",
    // The rest of LazySimpleSerDe's properties (serdeConstants), so an engine-staged rewrite
    // can repeat the table's row format exactly. `colelction.delim` is Hive's own spelling.
    "colelction.delim",
    "collection.delim",
    "mapkey.delim",
    "escape.delim",
    "serialization.null.format",
    "serialization.encoding",
    "serialization.escape.crlf",
    "serialization.last.column.takes.rest",
    "skip.footer.line.count",
    "timestamp.formats",
    "skip.header.line.count",
    "separatorChar",
    "quoteChar",
    "escapeChar",
];

/// Storage format of a table's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileFormat {
    /// TEXTFILE (LazySimpleSerDe, CSV, JSON, Regex... and LZO text).
    Text,
    /// SEQUENCEFILE.
    SequenceFile,
    /// RCFILE.
    RcFile,
    /// ORC.
    Orc,
    /// PARQUET (current and legacy class names).
    Parquet,
    /// AVRO.
    Avro,
    /// Anything else (Hudi, symlink, custom formats, unknown).
    Other,
}

impl FileFormat {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::SequenceFile => "sequencefile",
            Self::RcFile => "rcfile",
            Self::Orc => "orc",
            Self::Parquet => "parquet",
            Self::Avro => "avro",
            Self::Other => "other",
        }
    }

    /// Classifies by input format class first, then by serde class.
    pub fn detect(input_format: Option<&str>, serde_lib: Option<&str>) -> Self {
        let input = input_format.unwrap_or("").to_ascii_lowercase();
        let serde = serde_lib.unwrap_or("").to_ascii_lowercase();
        if input.contains("hoodie") || input.contains("hudi") || input.contains("symlink") {
            return Self::Other;
        }
        if input.contains("parquet") {
            return Self::Parquet;
        }
        if input.contains("orc") {
            return Self::Orc;
        }
        if input.contains("rcfile") {
            return Self::RcFile;
        }
        if input.contains("avro") {
            return Self::Avro;
        }
        if input.contains("sequencefile") {
            return Self::SequenceFile;
        }
        if input.ends_with("textinputformat") || input.contains("lzotextinputformat") {
            return Self::Text;
        }
        if input.is_empty() {
            if serde.contains("parquet") {
                return Self::Parquet;
            }
            if serde.contains("orc") {
                return Self::Orc;
            }
            if serde.contains("avro") {
                return Self::Avro;
            }
            if serde.contains("columnar") {
                return Self::RcFile;
            }
        }
        Self::Other
    }
}

/// `TBLS.TBL_TYPE`, as Hive's `TableType` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableType {
    /// `MANAGED_TABLE`.
    Managed,
    /// `EXTERNAL_TABLE` (or a managed row with `EXTERNAL=TRUE`).
    External,
    /// `VIRTUAL_VIEW`.
    View,
    /// `MATERIALIZED_VIEW` (Hive 3).
    MaterializedView,
    /// `INDEX_TABLE` (Hive 1/2).
    Index,
    /// Anything else.
    Other,
}

impl TableType {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Managed => "managed",
            Self::External => "external",
            Self::View => "view",
            Self::MaterializedView => "materialized_view",
            Self::Index => "index",
            Self::Other => "other",
        }
    }

    /// Parses `TBL_TYPE`; `external_param` is `TABLE_PARAMS.EXTERNAL`.
    pub fn parse(tbl_type: &str, external_param: Option<&str>) -> Self {
        match tbl_type.trim().to_ascii_uppercase().as_str() {
            "MANAGED_TABLE" => {
                if external_param.is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
                    Self::External
                } else {
                    Self::Managed
                }
            }
            "EXTERNAL_TABLE" => Self::External,
            "VIRTUAL_VIEW" => Self::View,
            "MATERIALIZED_VIEW" => Self::MaterializedView,
            "INDEX_TABLE" => Self::Index,
            _ => Self::Other,
        }
    }
}

/// Hive ACID flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transactional {
    /// Not transactional.
    No,
    /// Full ACID (`transactional=true`, ORC).
    Full,
    /// Insert-only ("micro-managed") table.
    InsertOnly,
}

impl Transactional {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::No => "false",
            Self::Full => "full",
            Self::InsertOnly => "insert_only",
        }
    }

    /// From `transactional` and `transactional_properties`.
    pub fn parse(transactional: Option<&str>, properties: Option<&str>) -> Self {
        if !transactional.is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Self::No;
        }
        if properties.is_some_and(|p| p.trim().eq_ignore_ascii_case("insert_only")) {
            Self::InsertOnly
        } else {
            Self::Full
        }
    }
}

/// Why a table's files are not listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotScannedReason {
    /// A view (no data).
    View,
    /// A storage-handler table (Kudu, HBase, Iceberg, JDBC, Druid, Kafka...).
    StorageHandler,
    /// No location at all.
    NoLocation,
    /// Location on another filesystem (`s3a`, `abfs`...).
    ForeignFilesystem,
    /// Location on another HDFS nameservice than this cluster's.
    OtherCluster,
}

impl NotScannedReason {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::StorageHandler => "storage_handler",
            Self::NoLocation => "no_location",
            Self::ForeignFilesystem => "foreign_filesystem",
            Self::OtherCluster => "other_cluster",
        }
    }
}

/// The classification of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableClass {
    /// File format.
    pub format: FileFormat,
    /// Table type.
    pub table_type: TableType,
    /// ACID flavour.
    pub transactional: Transactional,
    /// Storage handler class, if any (`storage_handler` param, or Iceberg's `table_type`).
    pub storage_handler: Option<String>,
    /// Compression codec declared in table parameters, lower-cased, if any.
    pub declared_compression: Option<String>,
    /// Set when the table is never listed, whatever its location.
    pub not_scanned: Option<NotScannedReason>,
}

/// Classifies a table (pure).
pub fn classify(table: &TableMeta) -> TableClass {
    let param = |k: &str| table.params.get(k).map(String::as_str);
    let table_type = TableType::parse(&table.tbl_type, param("EXTERNAL"));
    let transactional =
        Transactional::parse(param("transactional"), param("transactional_properties"));
    let storage_handler = param("storage_handler")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            param("table_type")
                .filter(|t| t.trim().eq_ignore_ascii_case("ICEBERG"))
                .map(|_| "org.apache.iceberg.mr.hive.HiveIcebergStorageHandler".to_owned())
        });
    let format = FileFormat::detect(table.input_format.as_deref(), table.serde_lib.as_deref());
    let declared_compression = [
        "orc.compress",
        "parquet.compression",
        "avro.output.codec",
        "compression",
    ]
    .iter()
    .find_map(|k| param(k))
    .map(|v| v.trim().to_ascii_lowercase())
    .filter(|v| !v.is_empty());
    let not_scanned = if matches!(table_type, TableType::View) {
        Some(NotScannedReason::View)
    } else if storage_handler.is_some() {
        Some(NotScannedReason::StorageHandler)
    } else if table
        .location
        .as_deref()
        .is_none_or(|l| l.trim().is_empty())
    {
        Some(NotScannedReason::NoLocation)
    } else {
        None
    };
    TableClass {
        format,
        table_type,
        transactional,
        storage_handler,
        declared_compression,
        not_scanned,
    }
}
