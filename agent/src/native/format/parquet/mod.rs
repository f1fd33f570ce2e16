//! Parquet: merging by decoding and re-encoding, and row counts from footers.
//!
//! Owns how Parquet sources become a few large files holding exactly the same rows. The
//! sources' row groups are not appended as they are (many small row groups are the problem
//! being fixed): each output gets ONE row group, written column by column with parquet-rs's
//! low-level typed API. For every leaf column the values, definition levels and repetition
//! levels of every pending source row group are read with the typed `ColumnReader` and
//! written unchanged with the typed `ColumnWriter`. Levels carry nesting and nulls, so LIST
//! (3-level and legacy 2-level), MAP, structs and nulls at every level come through without
//! being interpreted.
//!
//! Why not arrow's `ArrowWriter`: it cannot write INT96 (parquet-rs 59
//! `arrow_writer/mod.rs`: "Currently unreachable because data type not supported"), yet
//! INT96 is what Spark writes for timestamps by default (`spark.sql.parquet.outputTimestampType`
//! = INT96) and what Hive and Impala write; and converting through an arrow schema could change
//! physical and logical types. The output is written with the sources' own schema
//! (`TypePtr`): physical types, logical and converted types, DECIMAL precision, scale and
//! physical type, repetition, field ids, names and order stay as they were.
//!
//! Every source must have the first source's schema, with one exception: a node may be
//! `REQUIRED` in one file and `OPTIONAL` in another. Spark derives each file's Parquet schema
//! from the nullability of the data it writes (a column whose values in that insert had no
//! NULL, e.g. a literal, is `REQUIRED`, and `OPTIONAL` in the next file; the real-engine test
//! found 5 different schemas among the 15 files of one table). Such an output gets the
//! widened schema (`OPTIONAL` wherever one of its sources has it), and the definition levels
//! of the other sources are remapped: nothing is lost, and every reader reads `OPTIONAL`. An
//! output whose sources agree keeps their schema exactly. Any other difference (type,
//! annotation, precision, scale, `REPEATED`, name, field id, order) is refused
//! ([`FormatError::SchemaMismatch`]).
//!
//! Kept from the first source: the schema, each column's compression codec (from the first
//! row group that has column chunks) and the key-value metadata (e.g. Spark's
//! `org.apache.spark.sql.parquet.row.metadata`, which Spark reads the file back with).
//! Key-value entries that decide how readers interpret values — calendar rebasing and INT96
//! time zone handling of Spark and Hive, arrow's schema — must be the same in every source,
//! else the merge is refused ([`FormatError::MetadataMismatch`]): under the first source's
//! metadata a later source's timestamps could read differently.
//!
//! Written anew: statistics (none for INT96 columns, whose sort order the format leaves
//! undefined — wrong min/max there would let a reader skip row groups it needs), page
//! indexes, `created_by` (parquet-rs's). Data pages are version 1, the one every reader
//! reads.
//!
//! Memory: the pending sources of one output (at most about `target_bytes` of encoded row
//! groups plus the last source pushed) are kept as the caller's buffers; writing streams page
//! by page, with a batch of 8192 records per column in memory at a time, for each of the
//! (two) columns encoded at once; encoded column chunks wait in scratch files in the spool
//! directory, not in memory, until they are spliced into the output in column order.
//!
//! The files: `footer.rs` — row counts from the footer (what verification reads back);
//! `merger.rs` — the [`Merger`](super::Merger): checking each source, collecting row groups
//! up to the target size, writer properties, writing and checking one output;
//! `encode.rs` — encoding the columns of one output on two threads and splicing them in order;
//! `copy.rs` — copying one leaf column per physical type, levels remapped;
//! `schema.rs` — schema comparison and `REQUIRED`→`OPTIONAL` widening;
//! `metadata.rs` — the key-value metadata that must agree; tests in `tests/`.

mod copy;
mod encode;
mod footer;
mod merger;
mod metadata;
mod schema;

#[cfg(test)]
mod tests;

use parquet::errors::ParquetError;

use super::FormatError;

pub use self::footer::{parquet_footer_len, parquet_rows_from_tail};
pub(crate) use self::merger::ParquetMerger;

/// The magic number at both ends of a Parquet file.
const MAGIC: &[u8; 4] = b"PAR1";
/// The magic number ending a Parquet file with an encrypted footer.
const MAGIC_ENCRYPTED: &[u8; 4] = b"PARE";

/// Errors while reading a source: corrupt, or a feature parquet-rs does not implement.
fn source_error(file: &str, e: ParquetError) -> FormatError {
    match e {
        ParquetError::NYI(detail) => FormatError::unsupported(file, detail),
        other => FormatError::corrupt(file, other),
    }
}
