//! Pure planner: from a table's MetaStore row, its columns and a fresh listing of its
//! partitions, decide which partitions are worth merging, with which strategy, which
//! statements the engine runs, and how many files should remain.
//!
//! Strategies (facts from Hive's DDLTask/`AlterTableConcatenate` rules, HIVE-17403, Spark's
//! and Impala's documentation):
//! * `compact_major` — transactional (full ACID or insert-only) tables, Hive only; files of
//!   ACID tables are never rewritten outside Hive.
//! * `concatenate` — Hive, ORC or RCFile, managed, not bucketed, not transactional, and not
//!   external on Hive 3 (HIVE-17403 refuses it there). Stripe/block-level, no decode.
//! * `insert_overwrite` — everything else the engine can write: `INSERT OVERWRITE ...
//!   PARTITION (...) SELECT <columns> ... WHERE <partition>` with the engine's settings that
//!   control the output file count (Hive `hive.merge.*`; Spark a `REPARTITION(n)` hint and
//!   `spark.sql.hive.convertInsertingPartitionedTable=false` so Hive tables may be read and
//!   overwritten in one statement; Impala `NUM_NODES=1` and `PARQUET_FILE_SIZE`).
//!
//! Text tables with header or footer lines (`skip.header.line.count`) are never rewritten:
//! the rewrite would drop each file's first lines as data and then skip real rows.
//!
//! Engine rewrites of text keep each partition's compression (gzip stays gzip), decided per
//! partition from its file names, or leave the partition alone with the reason
//! ([`compression`]).

use std::collections::BTreeSet;
use std::time::SystemTime;

use hive_smallfiles_core::metastore::{Column, FileFormat, TableMeta, TableType, Transactional};
use serde::Serialize;

use crate::config::ExecutorChoice;
use crate::native::format::{NativeFormat, TextCompression};
use crate::policy::{Policy, Skip, check_partition, check_table};
use crate::sql::{self, Engine};

pub mod compression;

pub use compression::{ListedCompression, TextCodec, WriteCompression};

/// How a table is merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// `ALTER TABLE ... CONCATENATE`.
    Concatenate,
    /// `INSERT OVERWRITE ... SELECT`.
    InsertOverwrite,
    /// `ALTER TABLE ... COMPACT 'major'`.
    CompactMajor,
    /// The agent rewrites the files itself (text, Parquet) and commits them with the
    /// crash-safe protocol ([`crate::native`]).
    Native,
    /// The engine rewrites into a staging directory (`INSERT OVERWRITE DIRECTORY`), the agent
    /// verifies and commits it with the same protocol.
    EngineStaged,
}

impl Strategy {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Concatenate => "concatenate",
            Self::InsertOverwrite => "insert_overwrite",
            Self::CompactMajor => "compact_major",
            Self::Native => "native",
            Self::EngineStaged => "engine_staged",
        }
    }
}

/// One partition as the rescan found it (for an unpartitioned table: one entry, empty name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// `PART_NAME` (empty for the table itself).
    pub name: String,
    /// Unescaped values, in partition-key order.
    pub values: Vec<String>,
    /// Visible files.
    pub files: u64,
    /// Bytes.
    pub bytes: u64,
    /// Newest file modification time, ms.
    pub newest_file_ms: i64,
    /// The directory (resolved location), when known.
    pub path: Option<String>,
    /// The compression its file names show.
    pub compression: ListedCompression,
}

/// Everything the planner needs.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    /// The live MetaStore row.
    pub table: &'a TableMeta,
    /// Data columns in order (`COLUMNS_V2`).
    pub columns: &'a [Column],
    /// Partitions with fresh counts.
    pub partitions: Vec<PartitionState>,
    /// The cluster's engine.
    pub engine: Engine,
    /// Hive 3 semantics (the MetaStore has catalogs).
    pub hive3: bool,
    /// Target output file size.
    pub target_file_bytes: u64,
    /// Partitions named by the request (empty: all).
    pub requested: &'a BTreeSet<String>,
    /// The cluster's executor choice.
    pub executor: ExecutorChoice,
    /// Whether a HiveServer2 engine is configured.
    pub has_engine: bool,
    /// Now.
    pub now: SystemTime,
}

/// One partition to merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedPartition {
    /// `PART_NAME` (empty for an unpartitioned table).
    pub name: String,
    /// `(key, value)` pairs of the partition spec.
    pub spec: Vec<(String, String)>,
    /// Files now.
    pub files: u64,
    /// Bytes now.
    pub bytes: u64,
    /// Files expected afterwards (`None` for compactions).
    pub expected_files: Option<u64>,
    /// The directory.
    pub path: Option<String>,
    /// What the merge writes.
    pub compression: WriteCompression,
}

/// A partition left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedPartition {
    /// `PART_NAME`.
    pub name: String,
    /// Reason label.
    pub reason: &'static str,
    /// Explanation, where the label alone does not say it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl SkippedPartition {
    fn new(name: &str, reason: &'static str) -> Self {
        Self {
            name: name.to_owned(),
            reason,
            detail: None,
        }
    }
}

/// What a job will do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergePlan {
    /// `db`.`table` as sent to the engine.
    pub table: String,
    /// Strategy.
    pub strategy: Strategy,
    /// Engine.
    pub engine: Engine,
    /// Partitions to merge, most excess files first.
    pub partitions: Vec<PlannedPartition>,
    /// Partitions left alone.
    pub skipped: Vec<SkippedPartition>,
    /// Session settings sent once before the merges.
    pub setup: Vec<String>,
    /// Bytes the merges read and rewrite.
    pub total_bytes: u64,
    /// Where the replaced files go, so operators know what rollback exists.
    pub replaced_files_go_to: &'static str,
    /// Why this executor and strategy were chosen.
    pub executor_reason: String,
    /// What an operator must know before this plan runs (an in-place rewrite's risk).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip)]
    select_list: String,
    /// `ROW FORMAT ... STORED AS ...` of the table, for engine-staged rewrites.
    #[serde(skip)]
    storage_clause: String,
    #[serde(skip)]
    hive3: bool,
}

fn header_lines(table: &TableMeta) -> bool {
    ["skip.header.line.count", "skip.footer.line.count"]
        .iter()
        .any(|k| {
            let v = table.params.get(*k).or_else(|| table.serde_params.get(*k));
            v.and_then(|v| v.trim().parse::<i64>().ok())
                .is_some_and(|n| n > 0)
        })
}

/// The format the native executor would write for this table, or why it cannot.
pub fn native_format(table: &TableMeta) -> Result<NativeFormat, Skip> {
    let class = table.class();
    if class.transactional != Transactional::No {
        return Err(Skip::new(
            "transactional",
            "transactional tables are only compacted, by Hive",
        ));
    }
    if table.num_buckets > 0 || table.bucket_columns > 0 || table.sort_columns > 0 {
        return Err(Skip::new(
            "bucketed",
            "bucketed or sorted tables are rewritten by Hive only",
        ));
    }
    match class.format {
        FileFormat::Parquet => Ok(NativeFormat::Parquet),
        FileFormat::Text if header_lines(table) => Err(Skip::new(
            "header_lines",
            "text files with header/footer lines cannot be concatenated without losing rows",
        )),
        FileFormat::Text => Ok(NativeFormat::Text(TextCompression::None)),
        other => Err(Skip::new(
            "format_not_native",
            format!(
                "the native executor merges text and Parquet, not {}",
                other.as_str()
            ),
        )),
    }
}

/// The risk of an in-place rewrite by the engine, if `strategy` is one. The engine lists the
/// partition's files when it starts and replaces the whole directory when it commits: a file
/// a concurrent writer adds in between is deleted with the old ones (measured with Spark's
/// `INSERT OVERWRITE`: the appended file was lost in every run). ACID compaction is Hive's own
/// transactional mechanism and is not such a rewrite.
fn in_place_warning(strategy: Strategy, engine: Engine) -> Option<String> {
    matches!(strategy, Strategy::InsertOverwrite | Strategy::Concatenate).then(|| {
        format!(
            "in-place rewrite by {engine:?} ({}): a file another writer adds to a partition \
             while the engine runs is deleted with the replaced files and its rows are lost; \
             the staged executors (native, engine_staged) do not have this risk",
            strategy.as_str()
        )
    })
}

/// An in-place rewrite runs only for tables the operator acknowledged in
/// `policy.allow_in_place`; the warning travels with the plan into the API and the audit log.
fn acknowledge_in_place(
    policy: &Policy,
    table: &TableMeta,
    strategy: Strategy,
    warning: String,
) -> Result<String, Skip> {
    if policy.allow_in_place.matches(&table.database, &table.name) {
        Ok(warning)
    } else {
        Err(Skip::new(
            "in_place_not_acknowledged",
            format!(
                "{} would be rewritten in place ({}); {warning}. List the table in \
                 [policy] allow_in_place to accept that risk",
                table.name,
                strategy.as_str()
            ),
        ))
    }
}

/// Chooses executor and strategy (pure), with the reason shown by the plan API.
fn choose(input: &PlanInput<'_>) -> Result<(Strategy, String), Skip> {
    let native = native_format(input.table);
    let no_engine = || {
        Skip::new(
            "no_engine",
            "no [cluster.hiveserver2] configured for what the native executor cannot do",
        )
    };
    let staged_ok = |s: Strategy| {
        s == Strategy::InsertOverwrite
            && input.engine != Engine::Impala
            && matches!(
                input.table.class().format,
                FileFormat::Text | FileFormat::Parquet | FileFormat::Orc
            )
    };
    match input.executor {
        ExecutorChoice::Native => native.map(|f| {
            (
                Strategy::Native,
                format!("executor = native: {f:?} files merged by the agent"),
            )
        }),
        ExecutorChoice::Engine => {
            if !input.has_engine {
                return Err(no_engine());
            }
            choose_strategy(input).map(|s| (s, "executor = engine".to_owned()))
        }
        ExecutorChoice::EngineStaged => {
            if !input.has_engine {
                return Err(no_engine());
            }
            let s = choose_strategy(input)?;
            if staged_ok(s) {
                Ok((
                    Strategy::EngineStaged,
                    "executor = engine_staged".to_owned(),
                ))
            } else {
                Err(Skip::new(
                    "staging_not_possible",
                    format!(
                        "{} would use {}; staged rewrites need a text, Parquet or ORC table \
                         that Hive or Spark rewrites",
                        input.table.name,
                        s.as_str()
                    ),
                ))
            }
        }
        ExecutorChoice::Auto => match native {
            Ok(f) => Ok((
                Strategy::Native,
                format!(
                    "auto: {f:?}, not transactional, not bucketed: the agent merges the files \
                     itself with the crash-safe commit protocol"
                ),
            )),
            Err(why_not) => {
                if !input.has_engine {
                    return Err(why_not);
                }
                let s = choose_strategy(input)?;
                if staged_ok(s) {
                    Ok((
                        Strategy::EngineStaged,
                        format!(
                            "auto: not native ({}); the engine rewrites into the staging \
                             directory, the agent verifies and commits",
                            why_not.detail
                        ),
                    ))
                } else {
                    Ok((
                        s,
                        format!("auto: not native ({}); engine in place", why_not.detail),
                    ))
                }
            }
        },
    }
}

fn choose_strategy(input: &PlanInput<'_>) -> Result<Strategy, Skip> {
    let class = input.table.class();
    if class.transactional != Transactional::No {
        return if input.engine == Engine::Hive {
            Ok(Strategy::CompactMajor)
        } else {
            Err(Skip::new(
                "transactional_needs_hive",
                "transactional tables are only compacted, by Hive",
            ))
        };
    }
    let bucketed = input.table.num_buckets > 0
        || input.table.bucket_columns > 0
        || input.table.sort_columns > 0;
    if bucketed && input.engine != Engine::Hive {
        return Err(Skip::new(
            "bucketed",
            "bucketed or sorted tables are rewritten by Hive only",
        ));
    }
    if class.format == FileFormat::Text && header_lines(input.table) {
        return Err(Skip::new(
            "header_lines",
            "text files with header/footer lines cannot be rewritten without losing rows",
        ));
    }
    if input.engine == Engine::Hive
        && matches!(class.format, FileFormat::Orc | FileFormat::RcFile)
        && class.table_type == TableType::Managed
        && !bucketed
        && !input.hive3
    {
        return Ok(Strategy::Concatenate);
    }
    let writable = match input.engine {
        Engine::Hive | Engine::Spark => !matches!(class.format, FileFormat::Other),
        Engine::Impala => matches!(class.format, FileFormat::Parquet | FileFormat::Text),
    };
    if !writable {
        return Err(Skip::new(
            "format_not_writable",
            format!(
                "{} cannot write {} tables",
                input.engine.as_str(),
                class.format.as_str()
            ),
        ));
    }
    if input.columns.is_empty() {
        return Err(Skip::new(
            "no_columns",
            "the MetaStore lists no columns for this table",
        ));
    }
    Ok(Strategy::InsertOverwrite)
}

/// Plans a merge (pure).
pub fn plan(input: &PlanInput<'_>, policy: &Policy) -> Result<MergePlan, Skip> {
    check_table(policy, input.table, input.now)?;
    let (strategy, executor_reason) = choose(input)?;
    let warnings = in_place_warning(strategy, input.engine)
        .map(|w| acknowledge_in_place(policy, input.table, strategy, w))
        .transpose()?
        .into_iter()
        .collect();
    let target = input.target_file_bytes.max(1);
    let class = input.table.class();
    let keys: Vec<String> = input
        .table
        .partition_keys
        .iter()
        .map(|k| k.name.clone())
        .collect();
    let mut candidates = Vec::new();
    let mut skipped = Vec::new();
    for p in &input.partitions {
        if !input.requested.is_empty() && !input.requested.contains(&p.name) {
            continue;
        }
        if p.values.len() != keys.len() {
            skipped.push(SkippedPartition::new(&p.name, "incomplete_values"));
            continue;
        }
        if let Some(s) = check_partition(policy, &p.values, p.newest_file_ms, input.now) {
            skipped.push(SkippedPartition::new(&p.name, s.reason));
            continue;
        }
        let ideal = p.bytes.div_ceil(target).max(1);
        let excess = p.files.saturating_sub(ideal);
        if excess < policy.min_excess_files.max(1) {
            skipped.push(SkippedPartition::new(&p.name, "not_worth_merging"));
            continue;
        }
        let compression = match compression::write_compression(
            class.format,
            strategy,
            input.engine,
            p.compression,
            class.declared_compression.as_deref(),
        ) {
            Ok(c) => c,
            Err(why) => {
                skipped.push(SkippedPartition {
                    detail: Some(why.detail),
                    ..SkippedPartition::new(&p.name, why.reason)
                });
                continue;
            }
        };
        candidates.push((excess, p, ideal, compression));
    }
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
    let mut partitions = Vec::new();
    let mut total_bytes = 0u64;
    for (_, p, ideal, compression) in candidates {
        if total_bytes + p.bytes > policy.max_bytes_per_job && !partitions.is_empty() {
            skipped.push(SkippedPartition::new(&p.name, "job_size_limit"));
            continue;
        }
        if p.bytes > policy.max_bytes_per_job {
            skipped.push(SkippedPartition::new(&p.name, "job_size_limit"));
            continue;
        }
        total_bytes += p.bytes;
        partitions.push(PlannedPartition {
            name: p.name.clone(),
            spec: keys.iter().cloned().zip(p.values.iter().cloned()).collect(),
            files: p.files,
            bytes: p.bytes,
            expected_files: (strategy != Strategy::CompactMajor).then_some(ideal),
            path: p.path.clone(),
            compression,
        });
    }
    if partitions.is_empty() {
        // Each reason once, with the first explanation given for it.
        let mut reasons: Vec<(&str, Option<&str>)> = Vec::new();
        for s in &skipped {
            if !reasons.iter().any(|(r, _)| *r == s.reason) {
                reasons.push((s.reason, s.detail.as_deref()));
            }
        }
        reasons.sort_by_key(|(r, _)| *r);
        let why = reasons
            .iter()
            .map(|(r, d)| d.map_or_else(|| (*r).to_owned(), |d| format!("{r}: {d}")))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Skip::new(
            "nothing_to_merge",
            format!("no partition worth merging ({why})"),
        ));
    }
    let setup = setup_statements(input.engine, strategy, target);
    let select_list = input
        .columns
        .iter()
        .map(|c| sql::ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let replaced_files_go_to = match (strategy, input.engine) {
        (Strategy::CompactMajor, _) => {
            "old base and delta directories are removed by Hive's compaction cleaner"
        }
        (Strategy::Concatenate, _) => "nowhere: Hive replaces the merged files in place",
        (Strategy::InsertOverwrite, Engine::Hive) => {
            "HDFS trash of the Hive user when fs.trash.interval > 0 and the table is not auto.purge"
        }
        (Strategy::InsertOverwrite, Engine::Spark) => {
            "nowhere: Spark deletes the replaced files (no trash)"
        }
        (Strategy::InsertOverwrite, Engine::Impala) => "nowhere: Impala deletes the replaced files",
        (Strategy::Native | Strategy::EngineStaged, _) => {
            "the merge's backup directory in the partition's hidden staging area, kept for \
             native.backup_retention; POST /api/v1/merges/{id}/rollback restores it"
        }
    };
    Ok(MergePlan {
        table: sql::qualified(&input.table.database, &input.table.name),
        strategy,
        engine: input.engine,
        partitions,
        skipped,
        setup,
        total_bytes,
        replaced_files_go_to,
        executor_reason,
        warnings,
        storage_clause: storage_clause(input.table, input.engine),
        select_list,
        hive3: input.hive3,
    })
}

/// Table properties (`TBLPROPERTIES`) that choose the codec of Parquet and ORC files. The
/// engines honour them when they write into the table itself; a write into a directory knows
/// no table, so a staged rewrite repeats them as serde properties.
const PARQUET_CODEC_KEYS: &[&str] = &["parquet.compression", "compression"];
const ORC_CODEC_KEYS: &[&str] = &["orc.compress", "compression"];

/// The table's storage as a `ROW FORMAT ... STORED AS ...` clause: text with its serde, serde
/// properties and input/output formats, so delimiters, escapes and NULL markers stay the same;
/// Parquet and ORC by name, or — when the table declares a codec — with their serde and
/// input/output formats and the codec as a serde property (`STORED AS PARQUET` would write
/// the engine's default codec, e.g. ZSTD ORC files that older readers cannot open).
fn storage_clause(table: &TableMeta, engine: Engine) -> String {
    let lit = |v: &str| sql::string_literal(v, engine);
    let generic = |serde: &str, props: Vec<(&String, &String)>, input: &str, output: &str| {
        let props = props
            .iter()
            .map(|(k, v)| format!("{}={}", lit(k), lit(v)))
            .collect::<Vec<_>>()
            .join(", ");
        let with = if props.is_empty() {
            String::new()
        } else {
            format!(" WITH SERDEPROPERTIES ({props})")
        };
        format!(
            "ROW FORMAT SERDE {}{with} STORED AS INPUTFORMAT {} OUTPUTFORMAT {}",
            lit(table.serde_lib.as_deref().unwrap_or(serde)),
            lit(table.input_format.as_deref().unwrap_or(input)),
            lit(table.output_format.as_deref().unwrap_or(output))
        )
    };
    let codec = |keys: &[&str]| -> Vec<(&String, &String)> {
        table
            .params
            .iter()
            .filter(|(k, _)| keys.contains(&k.as_str()))
            .collect()
    };
    match table.class().format {
        FileFormat::Parquet => {
            let props = codec(PARQUET_CODEC_KEYS);
            if props.is_empty() {
                return "STORED AS PARQUET".to_owned();
            }
            generic(
                "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                props,
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            )
        }
        FileFormat::Orc => {
            let props = codec(ORC_CODEC_KEYS);
            if props.is_empty() {
                return "STORED AS ORC".to_owned();
            }
            generic(
                "org.apache.hadoop.hive.ql.io.orc.OrcSerde",
                props,
                "org.apache.hadoop.hive.ql.io.orc.OrcInputFormat",
                "org.apache.hadoop.hive.ql.io.orc.OrcOutputFormat",
            )
        }
        _ => generic(
            "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
            table.serde_params.iter().collect(),
            "org.apache.hadoop.mapred.TextInputFormat",
            "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        ),
    }
}

fn setup_statements(engine: Engine, strategy: Strategy, target: u64) -> Vec<String> {
    if !matches!(strategy, Strategy::InsertOverwrite | Strategy::EngineStaged) {
        return Vec::new();
    }
    match engine {
        Engine::Hive => vec![
            "SET hive.merge.mapfiles=true".to_owned(),
            "SET hive.merge.mapredfiles=true".to_owned(),
            "SET hive.merge.tezfiles=true".to_owned(),
            "SET hive.merge.sparkfiles=true".to_owned(),
            format!("SET hive.merge.size.per.task={target}"),
            format!("SET hive.merge.smallfiles.avgsize={target}"),
        ],
        Engine::Spark => vec![
            "SET spark.sql.hive.convertInsertingPartitionedTable=false".to_owned(),
            "SET spark.sql.hive.convertInsertingUnpartitionedTable=false".to_owned(),
            "SET spark.sql.sources.partitionOverwriteMode=STATIC".to_owned(),
        ],
        Engine::Impala => vec![
            "SET NUM_NODES=1".to_owned(),
            format!("SET PARQUET_FILE_SIZE={target}"),
        ],
    }
}

impl MergePlan {
    /// `PARTITION (...)` clause of a partition, or empty for an unpartitioned table.
    fn partition_clause(&self, p: &PlannedPartition) -> String {
        if p.spec.is_empty() {
            String::new()
        } else {
            format!(" PARTITION ({})", sql::partition_spec(&p.spec, self.engine))
        }
    }

    /// Session settings sent before one partition's engine rewrite: the text compression it
    /// writes ([`compression::session_settings`]), set anew for every partition since
    /// partitions of one table may differ. Empty for what the engine does not rewrite.
    pub fn partition_setup(&self, p: &PlannedPartition) -> Vec<String> {
        if matches!(
            self.strategy,
            Strategy::InsertOverwrite | Strategy::EngineStaged
        ) {
            compression::session_settings(self.engine, &p.compression)
        } else {
            Vec::new()
        }
    }

    /// `SELECT count(*)` of one partition (row-count verification before and after).
    pub fn count_statement(&self, p: &PlannedPartition) -> String {
        format!(
            "SELECT count(*) FROM {} WHERE {}",
            self.table,
            sql::partition_predicate(&p.spec, self.engine)
        )
    }

    /// The statement that merges one partition.
    pub fn merge_statement(&self, p: &PlannedPartition) -> String {
        let part = self.partition_clause(p);
        match self.strategy {
            Strategy::Concatenate => format!("ALTER TABLE {}{part} CONCATENATE", self.table),
            Strategy::CompactMajor => {
                let wait = if self.hive3 { " AND WAIT" } else { "" };
                format!("ALTER TABLE {}{part} COMPACT 'major'{wait}", self.table)
            }
            Strategy::InsertOverwrite => format!(
                "INSERT OVERWRITE TABLE {}{part} {}",
                self.table,
                self.select(p)
            ),
            Strategy::EngineStaged => self.staged_statement(p, "<staging output directory>"),
            Strategy::Native => "-- merged by the agent (no statement)".to_owned(),
        }
    }

    /// `SELECT <columns> FROM <table> WHERE <partition>` with the engine's file-count hint.
    fn select(&self, p: &PlannedPartition) -> String {
        let hint = match (self.engine, p.expected_files) {
            (Engine::Spark, Some(1) | None) => "/*+ COALESCE(1) */ ".to_owned(),
            (Engine::Spark, Some(n)) => format!("/*+ REPARTITION({n}) */ "),
            _ => String::new(),
        };
        let filter = if p.spec.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", sql::partition_predicate(&p.spec, self.engine))
        };
        format!(
            "SELECT {hint}{} FROM {}{filter}",
            self.select_list, self.table
        )
    }

    /// Engine-staged: the partition's rows rewritten into `directory` (a URI the engine
    /// resolves, e.g. `hdfs://ns1/...`) in the table's own storage format and row format.
    pub fn staged_statement(&self, p: &PlannedPartition, directory: &str) -> String {
        format!(
            "INSERT OVERWRITE DIRECTORY {} {} {}",
            sql::string_literal(directory, self.engine),
            self.storage_clause,
            self.select(p)
        )
    }

    /// Statements after a partition's merge: Impala needs `REFRESH` for changes made outside
    /// it; Hive refreshes its fast stats. `extra` templates may use `{table}` and
    /// `{partition}` (the `PARTITION (...)` clause or nothing).
    pub fn post_statements(&self, p: &PlannedPartition, extra: &[String]) -> Vec<String> {
        let part = self.partition_clause(p);
        let mut out = match self.engine {
            Engine::Impala => vec![format!("REFRESH {}{part}", self.table)],
            Engine::Hive if self.strategy != Strategy::CompactMajor => {
                vec![format!(
                    "ANALYZE TABLE {}{part} COMPUTE STATISTICS NOSCAN",
                    self.table
                )]
            }
            // Spark caches file listings of converted Parquet/ORC tables; other sessions of
            // the same server would read deleted files without this.
            Engine::Spark => vec![format!("REFRESH TABLE {}", self.table)],
            Engine::Hive => Vec::new(),
        };
        out.extend(extra.iter().map(|t| {
            t.replace("{table}", &self.table)
                .replace("{partition}", part.trim_start())
        }));
        out
    }

    /// Whether rows can be counted around each merge (compactions run asynchronously).
    pub fn verifies_row_counts(&self) -> bool {
        (self.strategy != Strategy::CompactMajor || self.hive3) && self.strategy != Strategy::Native
    }
}

#[cfg(test)]
mod tests;
