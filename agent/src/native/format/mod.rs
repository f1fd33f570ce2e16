//! The file formats of the native executor.
//!
//! This module owns everything that looks inside a file: merging a partition's source files
//! (given as whole byte buffers, in order) into a few large outputs in a local spool directory
//! ([`merger`]), and reading back what was uploaded to verify it ([`TextCounter`],
//! [`parquet_footer_len`], [`parquet_rows_from_tail`], [`orc_rows`]). It does no filesystem
//! I/O outside the spool directory, lists nothing and commits nothing: choosing the sources,
//! uploading the outputs and the crash-safe commit protocol belong to the parent module.
//!
//! The one rule every format follows: a merge never loses, duplicates or alters a row. When a
//! source cannot be merged without risking that (another compression, another schema, a
//! corrupt file, metadata that changes how values are read), the merge is refused with a
//! [`FormatError`] and whatever was spooled must be thrown away.
//!
//! * [`text`] — Hive `TEXTFILE` (LazySimpleSerDe): byte concatenation, plain or gzip (gzip
//!   members copied, never recompressed).
//! * [`parquet`] — decode and re-encode into one row group per output, schema (up to
//!   `REQUIRED`/`OPTIONAL`, see there), codecs and key-value metadata kept.
//! * [`orc`] — row counts from the ORC footer (ORC files are not merged here).

use std::path::Path;

use serde::{Deserialize, Serialize};

pub mod orc;
pub mod parquet;
pub mod text;

pub use self::orc::orc_rows;
pub use self::parquet::{parquet_footer_len, parquet_rows_from_tail};
pub use self::text::{TextCounter, TextStats};

/// What the native executor can merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NativeFormat {
    /// Hive `TEXTFILE` with LazySimpleSerDe: lines ending with `\n`.
    Text(TextCompression),
    /// Parquet (Hive's `MapredParquetInputFormat`, Impala, Spark).
    Parquet,
}

impl NativeFormat {
    /// The extension of this format's output files: `.parquet`, or the text compression's.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Text(c) => c.extension(),
            Self::Parquet => ".parquet",
        }
    }
}

/// The compression of a text table's files, as Hadoop sees it: by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextCompression {
    /// Plain text.
    None,
    /// gzip (`.gz`), possibly several concatenated members.
    Gzip,
}

/// Extensions of the Hadoop codecs the native executor does not handle. A file ending with one
/// of them is read by Hive through that codec, so its bytes cannot be concatenated as text.
const UNSUPPORTED_EXTENSIONS: &[&str] = &[
    ".bz2",         // BZip2Codec
    ".deflate",     // DefaultCodec / DeflateCodec (zlib): Hive's default compressed text output
    ".snappy",      // SnappyCodec (Hadoop block framing, not the snappy framing format)
    ".lz4",         // Lz4Codec (Hadoop block framing)
    ".zst",         // ZStandardCodec
    ".lzo",         // hadoop-lzo LzopCodec
    ".lzo_deflate", // hadoop-lzo LzoCodec
    ".br",          // Brotli codecs
];

impl TextCompression {
    /// The compression of a file, by its name, the way Hadoop's `CompressionCodecFactory`
    /// decides it (`getCodec(Path)`: the codec whose default extension is a suffix of the file
    /// name, compared case-sensitively; a file matching no codec is read as plain text). So
    /// `x.gz` is gzip but `x.GZ` is plain text to Hive, and so it is here.
    ///
    /// `.gz` → [`TextCompression::Gzip`]; the extensions of other codecs (`.bz2`, `.deflate`,
    /// `.snappy`, `.lz4`, `.zst`, `.lzo`, `.lzo_deflate`, `.br`) →
    /// [`FormatError::UnsupportedCompression`]; anything else → [`TextCompression::None`].
    pub fn from_file_name(name: &str) -> Result<Self, FormatError> {
        if name.ends_with(".gz") {
            return Ok(Self::Gzip);
        }
        match UNSUPPORTED_EXTENSIONS.iter().find(|e| name.ends_with(*e)) {
            Some(extension) => Err(FormatError::UnsupportedCompression {
                file: name.to_owned(),
                extension,
            }),
            None => Ok(Self::None),
        }
    }

    /// The file name extension Hadoop expects for this compression: `""` or `".gz"`.
    pub fn extension(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Gzip => ".gz",
        }
    }
}

/// Why a merge or a verification failed.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// A source is compressed with a codec the native executor does not handle.
    #[error("{file}: compression `{extension}` is not supported by the native executor")]
    UnsupportedCompression {
        /// The source file's name.
        file: String,
        /// The codec's extension.
        extension: &'static str,
    },
    /// A source's compression differs from the merge's.
    #[error("{file}: compressed as {found:?}, but this merge is {expected:?}")]
    MixedCompression {
        /// The source file's name.
        file: String,
        /// The merge's compression.
        expected: TextCompression,
        /// The source's compression.
        found: TextCompression,
    },
    /// A Parquet source's schema differs from the first source's (other than a node being
    /// `REQUIRED` in one and `OPTIONAL` in the other, which is merged as `OPTIONAL`).
    #[error("{file}: schema differs from the first source's: {detail}")]
    SchemaMismatch {
        /// The source file's name.
        file: String,
        /// The first difference.
        detail: String,
    },
    /// A Parquet source's key-value metadata that decides how values are read (time zone,
    /// calendar rebasing) differs from the first source's.
    #[error("{file}: key-value metadata `{key}` differs from the first source's ({detail})")]
    MetadataMismatch {
        /// The source file's name.
        file: String,
        /// The metadata key.
        key: String,
        /// Both values.
        detail: String,
    },
    /// A text source starts with a UTF-8 byte order mark and would not start its output:
    /// Hadoop strips the mark only at the start of a file.
    #[error(
        "{file}: starts with a UTF-8 byte order mark, which Hadoop strips only at the start of a file"
    )]
    ByteOrderMark {
        /// The source file's name.
        file: String,
    },
    /// A source uses a feature this layer cannot read or write faithfully (encrypted Parquet,
    /// LZO pages…).
    #[error("{file}: not supported: {detail}")]
    Unsupported {
        /// The file's name (empty when the caller did not say, see [`FormatError::with_file`]).
        file: String,
        /// What is not supported.
        detail: String,
    },
    /// A source or a file read back is not valid in its format.
    #[error("{file}: corrupt: {detail}")]
    Corrupt {
        /// The file's name (empty when the caller did not say, see [`FormatError::with_file`]).
        file: String,
        /// What is wrong.
        detail: String,
    },
    /// The output prefix would make the outputs invisible to Hive, or is not a plain name.
    #[error(
        "output prefix `{prefix}` is not usable: Hive ignores files whose names start with `_` or `.`, and a prefix must be a plain file name"
    )]
    InvalidPrefix {
        /// The prefix given to [`merger`].
        prefix: String,
    },
    /// The merger failed earlier; its outputs must be discarded.
    #[error("the merger failed earlier and cannot be used any more")]
    Aborted,
    /// What was written does not hold what was read (a bug, never expected).
    #[error("verification of the written output failed: {0}")]
    Verification(String),
    /// Reading or writing the spool directory.
    #[error("spool I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The Parquet writer failed.
    #[error("writing Parquet: {0}")]
    Parquet(#[from] ::parquet::errors::ParquetError),
}

impl FormatError {
    /// A short snake_case label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnsupportedCompression { .. } => "unsupported_compression",
            Self::MixedCompression { .. } => "mixed_compression",
            Self::SchemaMismatch { .. } => "schema_mismatch",
            Self::MetadataMismatch { .. } => "metadata_mismatch",
            Self::ByteOrderMark { .. } => "byte_order_mark",
            Self::Unsupported { .. } => "unsupported",
            Self::Corrupt { .. } => "corrupt",
            Self::InvalidPrefix { .. } => "invalid_prefix",
            Self::Aborted => "aborted",
            Self::Verification(_) => "verification_failed",
            Self::Io(_) => "io",
            Self::Parquet(_) => "parquet",
        }
    }

    /// Names the file in a [`FormatError::Corrupt`] or [`FormatError::Unsupported`] error that
    /// came from a function given only bytes ([`parquet_rows_from_tail`], [`orc_rows`],
    /// [`TextCounter`]).
    pub fn with_file(self, name: &str) -> Self {
        match self {
            Self::Corrupt { file, detail } if file.is_empty() => Self::Corrupt {
                file: name.to_owned(),
                detail,
            },
            Self::Unsupported { file, detail } if file.is_empty() => Self::Unsupported {
                file: name.to_owned(),
                detail,
            },
            other => other,
        }
    }

    pub(crate) fn corrupt(file: &str, detail: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            file: file.to_owned(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn unsupported(file: &str, detail: impl std::fmt::Display) -> Self {
        Self::Unsupported {
            file: file.to_owned(),
            detail: detail.to_string(),
        }
    }
}

/// Runs `f`, turning a panic into [`FormatError::Corrupt`] for `file`: parquet-rs and
/// orc-rust index into buffers described by the file itself and panic on some corrupt files
/// (found by flipping bytes in the tests) instead of returning an error. The agent must refuse
/// such a file, not lose its worker. (Needs the default `panic = "unwind"`.)
pub(crate) fn catch_panics<T>(
    file: &str,
    f: impl FnOnce() -> Result<T, FormatError>,
) -> Result<T, FormatError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(FormatError::corrupt(
            file,
            format!("the format library panicked reading it: {message}"),
        ))
    })
}

/// One merged file in the spool directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledOutput {
    /// Where it is.
    pub local_path: std::path::PathBuf,
    /// Its name: `<prefix>-<5-digit index><extension>`, see [`output_file_name`].
    pub file_name: String,
    /// Its size.
    pub bytes: u64,
    /// The rows (Parquet) or lines (text) it holds.
    pub rows: u64,
}

/// Merges the source files of one partition, in order.
///
/// After an error the merger is unusable (every later call fails with
/// [`FormatError::Aborted`]) and the files it spooled must be discarded; it never removes
/// them itself (the spool directory belongs to the job).
pub trait Merger: Send {
    /// Feeds one whole source file, in order. Returns the rows (Parquet) or lines (text) it
    /// holds.
    fn push(&mut self, name: &str, data: bytes::Bytes) -> Result<u64, FormatError>;
    /// Flushes and closes; the outputs in order. Zero outputs when every source was empty.
    fn finish(self: Box<Self>) -> Result<Vec<SpooledOutput>, FormatError>;
}

/// Tuning of the mergers; [`MergerOptions::default`] is what [`merger`] uses. Non-exhaustive:
/// callers write `..MergerOptions::default()` for the options they leave alone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MergerOptions {
    /// Dictionary-encode Parquet outputs (default `true`). parquet-rs marks dictionary data
    /// pages `RLE_DICTIONARY` (never the older `PLAIN_DICTIONARY`, even for version 1 pages);
    /// a reader that predates that encoding (older Impala releases, some non-Java readers)
    /// cannot read them. Turn this off for such clusters: every page is then `PLAIN`, which
    /// every reader reads, at some cost in size.
    pub parquet_dictionary: bool,
}

impl Default for MergerOptions {
    fn default() -> Self {
        Self {
            parquet_dictionary: true,
        }
    }
}

/// A merger of `format` writing into `spool_dir` (which exists and is private to the job).
/// Outputs aim at about `target_bytes`: a text output is closed once it holds `target_bytes`
/// (compressed bytes for gzip; a source file is never split across outputs), a Parquet output
/// once the encoded size of the row groups it was given reaches `target_bytes`. Output names
/// are `<prefix>-<5-digit index><extension>` ([`output_file_name`]); a prefix Hive would
/// ignore (starting with `_` or `.`) or containing `/` makes every call fail with
/// [`FormatError::InvalidPrefix`].
pub fn merger(
    format: NativeFormat,
    spool_dir: &Path,
    target_bytes: u64,
    prefix: &str,
) -> Box<dyn Merger> {
    merger_with_options(
        format,
        spool_dir,
        target_bytes,
        prefix,
        &MergerOptions::default(),
    )
}

/// [`merger`] with explicit [`MergerOptions`].
pub fn merger_with_options(
    format: NativeFormat,
    spool_dir: &Path,
    target_bytes: u64,
    prefix: &str,
    options: &MergerOptions,
) -> Box<dyn Merger> {
    let out = OutputNaming {
        spool_dir: spool_dir.to_owned(),
        prefix: prefix.to_owned(),
        extension: format.extension(),
    };
    if !valid_prefix(prefix) {
        return Box::new(Refused(prefix.to_owned()));
    }
    match format {
        NativeFormat::Text(c) => Box::new(text::TextMerger::new(c, out, target_bytes)),
        NativeFormat::Parquet => Box::new(self::parquet::ParquetMerger::new(
            out,
            target_bytes,
            options.parquet_dictionary,
        )),
    }
}

/// The name of output `index`: `<prefix>-<index, 5 digits at least><extension>`.
pub fn output_file_name(prefix: &str, index: usize, format: NativeFormat) -> String {
    let ext = format.extension();
    format!("{prefix}-{index:05}{ext}")
}

/// Whether Hive (and Spark, Impala) skip a file of this name when reading a table: Hive's
/// `FileUtils.HIDDEN_FILES_PATH_FILTER` accepts a path only if its name starts with neither
/// `_` nor `.` (Spark's `InMemoryFileIndex` and Impala apply the same rule).
pub fn is_hidden_file_name(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('.')
}

fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty() && !is_hidden_file_name(prefix) && !prefix.contains(['/', '\\', '\0'])
}

/// Where and how a merger names its outputs.
#[derive(Debug, Clone)]
pub(crate) struct OutputNaming {
    spool_dir: std::path::PathBuf,
    prefix: String,
    extension: &'static str,
}

impl OutputNaming {
    /// The spool directory the outputs go to.
    pub(crate) fn spool_dir(&self) -> &std::path::Path {
        &self.spool_dir
    }

    /// Creates output `index` (never overwriting a file): its name, path and file.
    pub(crate) fn create(
        &self,
        index: usize,
    ) -> std::io::Result<(String, std::path::PathBuf, std::fs::File)> {
        let name = format!("{}-{index:05}{}", self.prefix, self.extension);
        let path = self.spool_dir.join(&name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((name, path, file))
    }
}

/// The merger of an unusable prefix: refuses everything.
#[derive(Debug)]
struct Refused(String);

impl Merger for Refused {
    fn push(&mut self, _name: &str, _data: bytes::Bytes) -> Result<u64, FormatError> {
        Err(FormatError::InvalidPrefix {
            prefix: self.0.clone(),
        })
    }

    fn finish(self: Box<Self>) -> Result<Vec<SpooledOutput>, FormatError> {
        Err(FormatError::InvalidPrefix { prefix: self.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_by_file_name_like_hadoop() {
        for (name, expected) in [
            ("000000_0", TextCompression::None),
            ("part-00000", TextCompression::None),
            ("data.txt", TextCompression::None),
            ("000000_0.gz", TextCompression::Gzip),
            ("a.b.gz", TextCompression::Gzip),
            // Hadoop matches suffixes case-sensitively: Hive reads these as plain text.
            ("x.GZ", TextCompression::None),
            ("x.Gz", TextCompression::None),
            ("x.gzip", TextCompression::None),
            ("x.gz.txt", TextCompression::None),
            ("x.tgz", TextCompression::None),
            ("x.BZ2", TextCompression::None),
        ] {
            assert_eq!(
                TextCompression::from_file_name(name).unwrap(),
                expected,
                "{name}"
            );
        }
        for (name, ext) in [
            ("000000_0.bz2", ".bz2"),
            ("000000_0.deflate", ".deflate"),
            ("000000_0.snappy", ".snappy"),
            ("000000_0.lz4", ".lz4"),
            ("000000_0.zst", ".zst"),
            ("000000_0.lzo", ".lzo"),
            ("000000_0.lzo_deflate", ".lzo_deflate"),
            ("000000_0.br", ".br"),
        ] {
            let e = TextCompression::from_file_name(name).unwrap_err();
            assert_eq!(e.reason(), "unsupported_compression");
            assert!(
                matches!(&e, FormatError::UnsupportedCompression { file, extension } if file == name && *extension == ext),
                "{e:?}"
            );
        }
        assert_eq!(TextCompression::None.extension(), "");
        assert_eq!(TextCompression::Gzip.extension(), ".gz");
    }

    #[test]
    fn formats_serialize_in_snake_case() {
        let s = serde_json::to_string(&NativeFormat::Text(TextCompression::Gzip)).unwrap();
        assert_eq!(s, r#"{"text":"gzip"}"#);
        assert_eq!(
            serde_json::to_string(&NativeFormat::Parquet).unwrap(),
            r#""parquet""#
        );
        let back: NativeFormat = serde_json::from_str(r#"{"text":"none"}"#).unwrap();
        assert_eq!(back, NativeFormat::Text(TextCompression::None));
    }

    #[test]
    fn output_names() {
        assert_eq!(
            output_file_name("part-hsf-42", 0, NativeFormat::Parquet),
            "part-hsf-42-00000.parquet"
        );
        assert_eq!(
            output_file_name("m", 7, NativeFormat::Text(TextCompression::Gzip)),
            "m-00007.gz"
        );
        assert_eq!(
            output_file_name("m", 123_456, NativeFormat::Text(TextCompression::None)),
            "m-123456"
        );
        assert!(is_hidden_file_name("_SUCCESS"));
        assert!(is_hidden_file_name(".hive-staging"));
        assert!(!is_hidden_file_name("part-0"));
    }

    #[test]
    fn hidden_or_path_prefixes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for prefix in ["_tmp", ".x", "", "a/b"] {
            let mut m = merger(NativeFormat::Parquet, dir.path(), 1, prefix);
            let e = m.push("f", bytes::Bytes::new()).unwrap_err();
            assert_eq!(e.reason(), "invalid_prefix", "{prefix}");
            assert!(m.finish().is_err());
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn errors_can_be_given_a_file_name() {
        let e = FormatError::corrupt("", "bad").with_file("x.parquet");
        assert_eq!(e.to_string(), "x.parquet: corrupt: bad");
        let e = FormatError::corrupt("a", "bad").with_file("b");
        assert_eq!(e.to_string(), "a: corrupt: bad");
    }
}
