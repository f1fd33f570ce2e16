//! The compression a merge writes, decided per partition (pure): what the listing shows of a
//! partition's files, which Hadoop codec an engine rewrite of a text partition is told to use,
//! the session settings that tell it, and why a partition is left alone when its compression
//! cannot be kept.
//!
//! Text files carry their compression in their names (Hadoop's `CompressionCodecFactory`
//! picks the codec whose default extension ends the name), and an engine writes text plain
//! unless its session says otherwise, so a rewrite without these settings would decompress a
//! gzip partition. What each engine honours:
//!
//! * Spark (Hive-serde writes: `INSERT OVERWRITE TABLE` of a Hive table and `INSERT OVERWRITE
//!   DIRECTORY ... ROW FORMAT ... STORED AS`): `V1WritesHiveUtils.setupCompression` in
//!   `sql/hive/src/main/scala/org/apache/spark/sql/hive/execution/` reads
//!   `hive.exec.compress.output` from the session's Hadoop configuration (the session's `SET`
//!   values are copied into it) and, when true, hands
//!   `mapreduce.output.fileoutputformat.compress.codec` to Hive's
//!   `HiveFileFormatUtils.getHiveRecordWriter`; the file extension comes from Hive's
//!   `Utilities.getFileExtension` (`HiveFileFormat.getFileExtension`), so gzip output ends with
//!   `.gz`. ORC output ignores both (its codec is a table property).
//! * Hive: `hive.exec.compress.output` (`HiveConf.ConfVars.COMPRESSRESULT`: "the compression
//!   codec and other options are determined from Hadoop config variables mapred.output.
//!   compress*") makes the file sink compressed, and `getHiveRecordWriter` /
//!   `Utilities.createCompressedStream` take the codec from
//!   `mapreduce.output.fileoutputformat.compress.codec` (`FileOutputFormat.
//!   getOutputCompressorClass`; `mapred.output.compression.codec` is its deprecated alias).
//!   Both keys are on HiveServer2's default list of settings a session may change under SQL
//!   standard authorization (`HiveConf` `sqlStdAuthSafeVarNameRegexes`).
//! * Impala writes text uncompressed only ("If other kinds of compression are used, you must
//!   load data through LOAD DATA, Hive, or manually in HDFS", Impala's text file docs).
//!
//! Measured with Spark 4.3's Thrift Server (`tests/tests/it/engine_compression.rs` for gzip):
//! gzip, bzip2, deflate, snappy and lz4 text are written with their extensions; zstd needs the
//! native Hadoop library, without which the statement fails ("native zStandard library not
//! available") before anything is replaced.
//!
//! The settings are sent before every text partition's statement, `false` included: partitions
//! of one table may differ, and a cluster's own default (`hive-site.xml`) may be `true`.
//! Engine-staged output is verified by counting its rows, which the agent can do for plain
//! and gzip text only; a partition in another codec is skipped there (the in-place `engine`
//! executor can merge it).

use hive_smallfiles_core::metastore::FileFormat;
use hive_smallfiles_core::walk::counts::{CodecHint, FileCounts};
use serde::Serialize;

use super::Strategy;
use crate::sql::Engine;

/// What a listing shows of one partition's file compression, by file-name suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListedCompression {
    /// No file name has a codec suffix.
    #[default]
    Plain,
    /// Every file name has this codec's suffix.
    Uniform(CodecHint),
    /// Some files are plain and some compressed, or two codecs are seen.
    Mixed,
}

impl ListedCompression {
    /// From a partition's counts (`codec_hints` per codec, `files` in all).
    pub fn of(counts: &FileCounts) -> Self {
        let hinted: u64 = counts.codec_hints.iter().map(|n| u64::from(*n)).sum();
        if hinted == 0 {
            return Self::Plain;
        }
        let most = counts
            .codec_hints
            .iter()
            .copied()
            .max()
            .map_or(0, u64::from);
        match counts.dominant_codec() {
            Some(codec) if most == hinted && hinted == counts.files => Self::Uniform(codec),
            _ => Self::Mixed,
        }
    }
}

/// A Hadoop compression codec of text files that Hadoop itself ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextCodec {
    /// `GzipCodec`, `.gz`.
    Gzip,
    /// `BZip2Codec`, `.bz2`.
    Bzip2,
    /// `DefaultCodec` (zlib), `.deflate`: Hive's default when only compression is switched on.
    Deflate,
    /// `SnappyCodec`, `.snappy` (Hadoop's block framing).
    Snappy,
    /// `Lz4Codec`, `.lz4` (Hadoop's block framing).
    Lz4,
    /// `ZStandardCodec`, `.zst` (needs the native Hadoop library on the engine's hosts).
    Zstd,
}

impl TextCodec {
    /// The codec of a file-name hint; `None` for LZO, which is not part of Hadoop
    /// (hadoop-lzo is installed separately, under the GPL).
    pub fn from_hint(hint: CodecHint) -> Option<Self> {
        match hint {
            CodecHint::Gzip => Some(Self::Gzip),
            CodecHint::Bzip2 => Some(Self::Bzip2),
            CodecHint::Deflate => Some(Self::Deflate),
            CodecHint::Snappy => Some(Self::Snappy),
            CodecHint::Lz4 => Some(Self::Lz4),
            CodecHint::Zstd => Some(Self::Zstd),
            CodecHint::Lzo => None,
        }
    }

    /// The Hadoop class an engine is told to write with.
    pub fn hadoop_class(self) -> &'static str {
        match self {
            Self::Gzip => "org.apache.hadoop.io.compress.GzipCodec",
            Self::Bzip2 => "org.apache.hadoop.io.compress.BZip2Codec",
            Self::Deflate => "org.apache.hadoop.io.compress.DefaultCodec",
            Self::Snappy => "org.apache.hadoop.io.compress.SnappyCodec",
            Self::Lz4 => "org.apache.hadoop.io.compress.Lz4Codec",
            Self::Zstd => "org.apache.hadoop.io.compress.ZStandardCodec",
        }
    }

    /// The extension that codec gives its files.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Gzip => ".gz",
            Self::Bzip2 => ".bz2",
            Self::Deflate => ".deflate",
            Self::Snappy => ".snappy",
            Self::Lz4 => ".lz4",
            Self::Zstd => ".zst",
        }
    }
}

/// The compression a partition's merge writes, as the plan shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WriteCompression {
    /// Text, plain (`codec` null) or through a Hadoop codec, set for this partition's
    /// statement (the native executor keeps its sources' gzip or plain text by itself).
    Text {
        /// The codec, or `None` for plain text.
        codec: Option<TextCodec>,
        /// Its Hadoop class.
        #[serde(skip_serializing_if = "Option::is_none")]
        hadoop_codec: Option<&'static str>,
    },
    /// Parquet or ORC: the codec inside the files that the table declares (`None`: the
    /// engine's default).
    Columnar {
        /// The declared codec, lower-cased.
        declared: Option<String>,
    },
    /// Each output keeps its sources' compression (native Parquet merges, `CONCATENATE`,
    /// compactions).
    AsSources,
    /// What the engine's session settings make of this format (Avro, SequenceFile, RCFile):
    /// the agent does not read their compression.
    EngineSettings,
}

impl WriteCompression {
    fn text(codec: Option<TextCodec>) -> Self {
        Self::Text {
            codec,
            hadoop_codec: codec.map(TextCodec::hadoop_class),
        }
    }
}

/// Why one partition's compression cannot be kept: a bounded label and a human detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressionSkip {
    /// Reason label.
    pub reason: &'static str,
    /// Explanation for the plan and the audit log.
    pub detail: String,
}

impl CompressionSkip {
    fn new(reason: &'static str, detail: String) -> Self {
        Self { reason, detail }
    }
}

/// What one partition's merge writes, or why it must be left alone (pure). `declared` is
/// the codec the table declares for Parquet or ORC.
pub fn write_compression(
    format: FileFormat,
    strategy: Strategy,
    engine: Engine,
    listed: ListedCompression,
    declared: Option<&str>,
) -> Result<WriteCompression, CompressionSkip> {
    let rewrites = matches!(strategy, Strategy::InsertOverwrite | Strategy::EngineStaged);
    match format {
        FileFormat::Text => {}
        FileFormat::Parquet | FileFormat::Orc if rewrites => {
            return Ok(WriteCompression::Columnar {
                declared: declared.map(str::to_owned),
            });
        }
        _ if rewrites => return Ok(WriteCompression::EngineSettings),
        _ => return Ok(WriteCompression::AsSources),
    }
    let codec = match listed {
        ListedCompression::Plain => None,
        ListedCompression::Uniform(hint) => Some(hint),
        ListedCompression::Mixed => {
            if !rewrites {
                // The native merge decides file by file (and refuses a mix itself).
                return Ok(WriteCompression::AsSources);
            }
            return Err(CompressionSkip::new(
                "mixed_compression",
                "the partition's files are not all compressed alike (some plain, or two \
                 codecs); a rewrite would write one compression for all of them"
                    .to_owned(),
            ));
        }
    };
    if !rewrites {
        return Ok(match codec {
            None => WriteCompression::text(None),
            Some(CodecHint::Gzip) if strategy == Strategy::Native => {
                WriteCompression::text(Some(TextCodec::Gzip))
            }
            Some(_) => WriteCompression::AsSources,
        });
    }
    let Some(hint) = codec else {
        return Ok(WriteCompression::text(None));
    };
    let Some(text_codec) = TextCodec::from_hint(hint) else {
        return Err(CompressionSkip::new(
            "compression_not_writable",
            format!(
                "{} text: the codec is not part of Hadoop, so the engine may not write it",
                hint.as_str()
            ),
        ));
    };
    if engine == Engine::Impala {
        return Err(CompressionSkip::new(
            "compression_not_writable",
            format!(
                "{} text: Impala writes text uncompressed only; rewriting would decompress \
                 the partition",
                hint.as_str()
            ),
        ));
    }
    if strategy == Strategy::EngineStaged && text_codec != TextCodec::Gzip {
        return Err(CompressionSkip::new(
            "compression_not_verifiable",
            format!(
                "{} text: the agent verifies staged output by counting its rows, which it \
                 can for plain and gzip text only",
                hint.as_str()
            ),
        ));
    }
    Ok(WriteCompression::text(Some(text_codec)))
}

/// Session settings that make Hive or Spark write `compression` (empty for what they do not
/// control: Impala, columnar formats, native merges).
pub fn session_settings(engine: Engine, compression: &WriteCompression) -> Vec<String> {
    if engine == Engine::Impala {
        return Vec::new();
    }
    match compression {
        WriteCompression::Text { codec: None, .. } => {
            vec!["SET hive.exec.compress.output=false".to_owned()]
        }
        WriteCompression::Text {
            codec: Some(codec), ..
        } => vec![
            "SET hive.exec.compress.output=true".to_owned(),
            format!(
                "SET mapreduce.output.fileoutputformat.compress.codec={}",
                codec.hadoop_class()
            ),
        ],
        _ => Vec::new(),
    }
}
