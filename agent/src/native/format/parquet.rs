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
//! by page, with a batch of 8192 records per column in memory at a time.

use std::io::BufWriter;
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, Repetition, Type as PhysicalType};
use parquet::column::reader::ColumnReaderImpl;
use parquet::column::writer::ColumnWriterImpl;
use parquet::data_type::{
    BoolType, ByteArrayType, DataType, DoubleType, FixedLenByteArrayType, FloatType, Int32Type,
    Int64Type, Int96Type,
};
use parquet::errors::ParquetError;
use parquet::file::metadata::{KeyValue, ParquetMetaDataReader};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnPath, SchemaDescPtr, SchemaDescriptor, Type, TypePtr};

use super::{FormatError, Merger, OutputNaming, SpooledOutput, catch_panics};

const MAGIC: &[u8; 4] = b"PAR1";
const MAGIC_ENCRYPTED: &[u8; 4] = b"PARE";
const BATCH_RECORDS: usize = 8192;
const WRITE_BUFFER: usize = 1 << 20;

/// Key-value metadata that changes how values are read, compared exactly between sources.
const SEMANTIC_KEYS: &[&str] = &[
    // Spark (DataSourceUtils.datetimeRebaseSpec / int96RebaseSpec): rebase dates and
    // timestamps from the hybrid Julian calendar when present.
    "org.apache.spark.legacyDateTime",
    "org.apache.spark.legacyINT96",
    // Spark: the session time zone LEGACY rebasing was done in.
    "org.apache.spark.timeZone",
    // Hive 3.1 and later: the writer's time zone for INT96 and timestamps, the calendar of
    // dates, legacy time zone conversion (Hive's `DataWritableWriteSupport` keys).
    "writer.time.zone",
    "writer.date.proleptic",
    "writer.zone.conversion.legacy",
    // Arrow-based readers take logical types (time zones, large types) from it.
    "ARROW:schema",
];

/// Spark's writer version: files from Spark before 3.0.0 (dates, timestamps) and before
/// 3.1.0 (INT96) are read with calendar rebasing, later ones without; compared by class.
const SPARK_VERSION_KEY: &str = "org.apache.spark.version";

/// Parquet: from the last 8 bytes of a file (4-byte little-endian footer length + `PAR1`),
/// the footer length.
pub fn parquet_footer_len(last8: &[u8]) -> Result<u64, FormatError> {
    let Ok(last8) = <&[u8; 8]>::try_from(last8) else {
        return Err(FormatError::corrupt(
            "",
            format!(
                "a Parquet file ends with 8 bytes of footer length and magic, got {} bytes",
                last8.len()
            ),
        ));
    };
    let len = u64::from(u32::from_le_bytes([last8[0], last8[1], last8[2], last8[3]]));
    match &last8[4..] {
        m if m == MAGIC => Ok(len),
        m if m == MAGIC_ENCRYPTED => Err(FormatError::unsupported(
            "",
            "encrypted Parquet footer (PARE)",
        )),
        m => Err(FormatError::corrupt(
            "",
            format!("not a Parquet file: ends with {m:02x?}, not \"PAR1\""),
        )),
    }
}

/// Parquet: the rows of a file, from its footer, given (at least) the last footer length + 8
/// bytes of the file. The footer's row count must equal the sum of its row groups'.
pub fn parquet_rows_from_tail(tail: Bytes) -> Result<u64, FormatError> {
    if tail.len() < 8 {
        return Err(FormatError::corrupt(
            "",
            format!("Parquet tail of {} bytes", tail.len()),
        ));
    }
    let footer_len = parquet_footer_len(&tail[tail.len() - 8..])?;
    let available = tail.len() as u64 - 8;
    if footer_len > available {
        return Err(FormatError::corrupt(
            "",
            format!(
                "footer of {footer_len} bytes, but only {available} bytes given before the last 8"
            ),
        ));
    }
    let start = (available - footer_len) as usize;
    let metadata = catch_panics("", || {
        ParquetMetaDataReader::decode_metadata(&tail[start..tail.len() - 8])
            .map_err(|e| FormatError::corrupt("", format!("footer: {e}")))
    })?;
    let declared = metadata.file_metadata().num_rows();
    let sum: i64 = metadata.row_groups().iter().map(|rg| rg.num_rows()).sum();
    if declared != sum || declared < 0 {
        return Err(FormatError::corrupt(
            "",
            format!("footer declares {declared} rows, its row groups hold {sum}"),
        ));
    }
    Ok(declared as u64)
}

/// One source file, parsed.
struct Source {
    name: String,
    reader: SerializedFileReader<Bytes>,
}

/// A source row group waiting for its output.
struct Pending {
    source: Arc<Source>,
    row_group: usize,
    rows: u64,
}

/// What the first source fixed for the whole merge.
struct Reference {
    file: String,
    schema: SchemaDescPtr,
    key_value: Option<Vec<KeyValue>>,
    /// Per leaf column, from the first row group seen.
    codecs: Option<Vec<Compression>>,
    properties: Option<Arc<WriterProperties>>,
}

/// Merges Parquet sources into one-row-group outputs (see the module documentation).
pub(crate) struct ParquetMerger {
    naming: OutputNaming,
    target: u64,
    dictionary: bool,
    reference: Option<Reference>,
    pending: Vec<Pending>,
    pending_bytes: u64,
    outputs: Vec<SpooledOutput>,
    failed: bool,
}

impl std::fmt::Debug for ParquetMerger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetMerger")
            .field("target", &self.target)
            .field("pending_row_groups", &self.pending.len())
            .field("pending_bytes", &self.pending_bytes)
            .field("outputs", &self.outputs.len())
            .finish_non_exhaustive()
    }
}

/// Errors while reading a source: corrupt, or a feature parquet-rs does not implement.
fn source_error(file: &str, e: ParquetError) -> FormatError {
    match e {
        ParquetError::NYI(detail) => FormatError::unsupported(file, detail),
        other => FormatError::corrupt(file, other),
    }
}

impl ParquetMerger {
    pub(crate) fn new(naming: OutputNaming, target: u64, dictionary: bool) -> Self {
        Self {
            naming,
            target,
            dictionary,
            reference: None,
            pending: Vec::new(),
            pending_bytes: 0,
            outputs: Vec::new(),
            failed: false,
        }
    }

    fn push_inner(&mut self, name: &str, data: Bytes) -> Result<u64, FormatError> {
        // A zero-length file holds no rows (readers either skip it or fail on it).
        if data.is_empty() {
            return Ok(0);
        }
        if data.len() < 12 {
            return Err(FormatError::corrupt(
                name,
                format!("not a Parquet file: {} bytes", data.len()),
            ));
        }
        if &data[..4] != MAGIC {
            return Err(FormatError::corrupt(
                name,
                "not a Parquet file: does not start with \"PAR1\"",
            ));
        }
        parquet_footer_len(&data[data.len() - 8..]).map_err(|e| e.with_file(name))?;
        let reader = SerializedFileReader::new(data).map_err(|e| source_error(name, e))?;
        let metadata = reader.metadata();
        let file_metadata = metadata.file_metadata();
        let declared = file_metadata.num_rows();
        let rows_in_groups: i64 = metadata.row_groups().iter().map(|rg| rg.num_rows()).sum();
        if declared != rows_in_groups || declared < 0 {
            return Err(FormatError::corrupt(
                name,
                format!("footer declares {declared} rows, its row groups hold {rows_in_groups}"),
            ));
        }
        match &self.reference {
            None => {
                self.reference = Some(Reference {
                    file: name.to_owned(),
                    schema: file_metadata.schema_descr_ptr(),
                    key_value: file_metadata.key_value_metadata().cloned(),
                    codecs: None,
                    properties: None,
                });
            }
            Some(reference) => {
                check_schema(reference, name, file_metadata.schema_descr().root_schema())?;
                check_metadata(
                    reference.key_value.as_deref(),
                    name,
                    file_metadata.key_value_metadata().map(Vec::as_slice),
                )?;
            }
        }
        let reference = self.reference.as_mut().expect("set above");
        if reference.codecs.is_none() {
            reference.codecs = metadata
                .row_groups()
                .first()
                .map(|rg| rg.columns().iter().map(|c| c.compression()).collect());
        }
        let source = Arc::new(Source {
            name: name.to_owned(),
            reader,
        });
        for (i, rg) in source.reader.metadata().row_groups().iter().enumerate() {
            if rg.num_rows() == 0 {
                continue;
            }
            self.pending.push(Pending {
                source: Arc::clone(&source),
                row_group: i,
                rows: rg.num_rows() as u64,
            });
            self.pending_bytes += rg.compressed_size().max(0) as u64;
            if self.pending_bytes >= self.target {
                self.write_output()?;
            }
        }
        Ok(declared as u64)
    }

    fn properties(&mut self) -> Result<Arc<WriterProperties>, FormatError> {
        let reference = self
            .reference
            .as_mut()
            .ok_or_else(|| FormatError::Verification("no source before writing".into()))?;
        if let Some(p) = &reference.properties {
            return Ok(Arc::clone(p));
        }
        let codecs = reference
            .codecs
            .as_ref()
            .ok_or_else(|| FormatError::Verification("no codec before writing".into()))?;
        let mut builder = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_dictionary_enabled(self.dictionary)
            .set_key_value_metadata(reference.key_value.clone());
        if let Some(first) = codecs.first() {
            builder = builder.set_compression(*first);
        }
        for (column, codec) in reference.schema.columns().iter().zip(codecs) {
            builder = builder.set_column_compression(column.path().clone(), *codec);
            if column.physical_type() == PhysicalType::INT96 {
                builder = builder
                    .set_column_statistics_enabled(column.path().clone(), EnabledStatistics::None);
            }
        }
        let properties = Arc::new(builder.build());
        reference.properties = Some(Arc::clone(&properties));
        Ok(properties)
    }

    /// Writes every pending row group into one new output of one row group.
    fn write_output(&mut self) -> Result<(), FormatError> {
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let expected: u64 = pending.iter().map(|p| p.rows).sum();
        if expected == 0 {
            return Ok(());
        }
        let properties = self.properties()?;
        // The output's schema: its first source's, widened where another of its sources has
        // an OPTIONAL node that is REQUIRED there (see `widen`).
        let mut root = pending[0]
            .source
            .reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .root_schema_ptr();
        for p in &pending[1..] {
            root = widen(&root, p.source.reader.metadata().file_metadata().schema())?;
        }
        let schema = SchemaDescriptor::new(Arc::clone(&root));
        let (file_name, local_path, file) = self.naming.create(self.outputs.len())?;
        let mut writer = SerializedFileWriter::new(
            BufWriter::with_capacity(WRITE_BUFFER, file),
            Arc::clone(&root),
            properties,
        )?;
        let mut row_group = writer.next_row_group()?;
        for (index, column) in schema.columns().iter().enumerate() {
            let mut out = row_group.next_column()?.ok_or_else(|| {
                FormatError::Verification(format!("the writer has no column {index}"))
            })?;
            let writer = out.untyped();
            let target = Target {
                root: &root,
                path: column.path(),
                index,
            };
            let written = match column.physical_type() {
                PhysicalType::BOOLEAN => copy_column::<BoolType>(&pending, &target, writer)?,
                PhysicalType::INT32 => copy_column::<Int32Type>(&pending, &target, writer)?,
                PhysicalType::INT64 => copy_column::<Int64Type>(&pending, &target, writer)?,
                PhysicalType::INT96 => copy_column::<Int96Type>(&pending, &target, writer)?,
                PhysicalType::FLOAT => copy_column::<FloatType>(&pending, &target, writer)?,
                PhysicalType::DOUBLE => copy_column::<DoubleType>(&pending, &target, writer)?,
                PhysicalType::BYTE_ARRAY => {
                    copy_column::<ByteArrayType>(&pending, &target, writer)?
                }
                PhysicalType::FIXED_LEN_BYTE_ARRAY => {
                    copy_column::<FixedLenByteArrayType>(&pending, &target, writer)?
                }
            };
            if written != expected {
                return Err(FormatError::Verification(format!(
                    "column `{}`: {written} records copied, {expected} expected",
                    column.path()
                )));
            }
            out.close()?;
        }
        if row_group.next_column()?.is_some() {
            return Err(FormatError::Verification(
                "the writer has more columns than the schema".into(),
            ));
        }
        let written = row_group.close()?;
        if written.num_rows() as u64 != expected {
            return Err(FormatError::Verification(format!(
                "row group of {} rows, {expected} expected",
                written.num_rows()
            )));
        }
        let metadata = writer.finish()?;
        drop(writer);
        if metadata.file_metadata().num_rows() as u64 != expected || metadata.num_row_groups() != 1
        {
            return Err(FormatError::Verification(format!(
                "footer of {} rows in {} row groups, {expected} rows in 1 expected",
                metadata.file_metadata().num_rows(),
                metadata.num_row_groups()
            )));
        }
        let bytes = std::fs::metadata(&local_path)?.len();
        self.outputs.push(SpooledOutput {
            local_path,
            file_name,
            bytes,
            rows: expected,
        });
        Ok(())
    }
}

/// The output column being written.
struct Target<'a> {
    root: &'a Type,
    path: &'a ColumnPath,
    index: usize,
}

/// Copies leaf column `target.index` of every pending row group into `writer`, unchanged
/// (values, definition and repetition levels, in order; definition levels remapped where the
/// output made a REQUIRED node OPTIONAL); the records copied.
fn copy_column<T: DataType>(
    pending: &[Pending],
    target: &Target<'_>,
    writer: &mut parquet::column::writer::ColumnWriter<'_>,
) -> Result<u64, FormatError> {
    let index = target.index;
    let output_path = path_repetitions(target.root, target.path).ok_or_else(|| {
        FormatError::Verification(format!("no column `{}` in the output", target.path))
    })?;
    let output_max_def = output_path
        .iter()
        .filter(|r| **r != Repetition::REQUIRED)
        .count() as i16;
    let writer: &mut ColumnWriterImpl<'_, T> =
        T::get_column_writer_mut(writer).ok_or_else(|| {
            FormatError::Verification(format!("column {index}: writer of another physical type"))
        })?;
    let mut values: Vec<T::T> = Vec::with_capacity(BATCH_RECORDS);
    let mut def_levels: Vec<i16> = Vec::with_capacity(BATCH_RECORDS);
    let mut rep_levels: Vec<i16> = Vec::with_capacity(BATCH_RECORDS);
    let mut records = 0u64;
    for p in pending {
        let name = p.source.name.as_str();
        records += catch_panics(name, || {
            let row_group = p
                .source
                .reader
                .get_row_group(p.row_group)
                .map_err(|e| source_error(name, e))?;
            let chunk = row_group.metadata().column(index);
            let descr = chunk.column_descr();
            let (max_def, max_rep) = (descr.max_def_level(), descr.max_rep_level());
            if descr.path() != target.path {
                return Err(FormatError::Verification(format!(
                    "column {index} is `{}` in {name}, `{}` in the output",
                    descr.path(),
                    target.path
                )));
            }
            let source_path = path_repetitions(
                p.source.reader.metadata().file_metadata().schema(),
                target.path,
            )
            .ok_or_else(|| {
                FormatError::Verification(format!("no column `{}` in {name}", target.path))
            })?;
            let level_map = definition_level_map(&source_path, &output_path);
            let mut mapped: Vec<i16> = Vec::new();
            let column = row_group
                .get_column_reader(index)
                .map_err(|e| source_error(name, e))?;
            let mut reader: ColumnReaderImpl<T> =
                T::get_column_reader(column).ok_or_else(|| {
                    FormatError::corrupt(name, format!("column {index}: another physical type"))
                })?;
            let mut levels_read = 0u64;
            let mut records_here = 0u64;
            loop {
                values.clear();
                def_levels.clear();
                rep_levels.clear();
                let (_, values_read, levels) = reader
                    .read_records(
                        BATCH_RECORDS,
                        Some(&mut def_levels),
                        Some(&mut rep_levels),
                        &mut values,
                    )
                    .map_err(|e| source_error(name, e))?;
                if levels == 0 && values_read == 0 {
                    break;
                }
                levels_read += levels as u64;
                // Levels out of range (a corrupt page) would be written as something else.
                if max_def > 0 && def_levels.iter().any(|&d| d < 0 || d > max_def)
                    || max_rep > 0
                        && (rep_levels.first().is_some_and(|&r| r != 0)
                            || rep_levels.iter().any(|&r| r < 0 || r > max_rep))
                {
                    return Err(FormatError::corrupt(
                        name,
                        format!("column `{}`: levels out of range", descr.path()),
                    ));
                }
                // Records start at repetition level 0; without repetition every level is one.
                records_here += if max_rep > 0 {
                    rep_levels.iter().filter(|&&r| r == 0).count() as u64
                } else {
                    levels as u64
                };
                let def_out: Option<&[i16]> = match &level_map {
                    None => (max_def > 0).then_some(def_levels.as_slice()),
                    Some(map) => {
                        mapped.clear();
                        if max_def > 0 {
                            mapped.extend(def_levels.iter().map(|&d| map[d as usize]));
                        } else {
                            // A fully REQUIRED path: every level is a present value.
                            mapped.resize(levels, map[0]);
                        }
                        (output_max_def > 0).then_some(mapped.as_slice())
                    }
                };
                let written = writer.write_batch(
                    &values,
                    def_out,
                    (max_rep > 0).then_some(rep_levels.as_slice()),
                )?;
                if written != values.len() {
                    return Err(FormatError::Verification(format!(
                        "column {index}: {written} of {} values written",
                        values.len()
                    )));
                }
            }
            // The chunk's declared value count counts levels (nulls and empty lists included).
            if levels_read != chunk.num_values() as u64 {
                return Err(FormatError::corrupt(
                    name,
                    format!(
                        "column `{}`: {levels_read} values read, its chunk declares {}",
                        descr.path(),
                        chunk.num_values()
                    ),
                ));
            }
            if records_here != p.rows {
                return Err(FormatError::corrupt(
                    name,
                    format!(
                        "column `{}`: {records_here} rows read, its row group declares {}",
                        descr.path(),
                        p.rows
                    ),
                ));
            }
            Ok(records_here)
        })?;
    }
    Ok(records)
}

fn check_schema(reference: &Reference, file: &str, schema: &Type) -> Result<(), FormatError> {
    let mut path = Vec::new();
    match schema_difference(reference.schema.root_schema(), schema, &mut path) {
        None => Ok(()),
        Some(detail) => Err(FormatError::SchemaMismatch {
            file: file.to_owned(),
            detail: format!("{detail} (first source: {})", reference.file),
        }),
    }
}

/// One line describing a schema node, as parquet-rs prints it (without children).
fn describe(t: &Type) -> String {
    let mut out = Vec::new();
    let shallow = match t {
        Type::GroupType { basic_info, .. } => {
            let mut b = Type::group_type_builder(basic_info.name())
                .with_converted_type(basic_info.converted_type())
                .with_logical_type(basic_info.logical_type_ref().cloned())
                .with_id(basic_info.has_id().then(|| basic_info.id()));
            if basic_info.has_repetition() {
                b = b.with_repetition(basic_info.repetition());
            }
            b.build().ok()
        }
        Type::PrimitiveType { .. } => Some(t.clone()),
    };
    if let Some(shallow) = shallow {
        parquet::schema::printer::print_schema(&mut out, &shallow);
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let text = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .trim_end_matches(" {")
        .trim_end_matches(';')
        .to_owned();
    let id = t.get_basic_info();
    if id.has_id() {
        format!("{text} (field id {})", id.id())
    } else {
        text
    }
}

/// The first difference between two schemas that is more than a node being `REQUIRED` in one
/// and `OPTIONAL` in the other (see [`widen`]); `None` when they are compatible.
fn schema_difference(a: &Type, b: &Type, path: &mut Vec<String>) -> Option<String> {
    let (ia, ib) = (a.get_basic_info(), b.get_basic_info());
    let at = |path: &[String]| {
        if path.is_empty() {
            "the root".to_owned()
        } else {
            format!("`{}`", path.join("."))
        }
    };
    let repetition_ok = match (ia.has_repetition(), ib.has_repetition()) {
        (false, false) => true,
        (true, true) => {
            let (ra, rb) = (ia.repetition(), ib.repetition());
            ra == rb || (ra != Repetition::REPEATED && rb != Repetition::REPEATED)
        }
        _ => false,
    };
    let same_node = ia.name() == ib.name()
        && repetition_ok
        && ia.converted_type() == ib.converted_type()
        && ia.logical_type_ref() == ib.logical_type_ref()
        && (ia.has_id(), ia.has_id().then(|| ia.id()))
            == (ib.has_id(), ib.has_id().then(|| ib.id()));
    let differs = || {
        Some(format!(
            "at {}: `{}` vs `{}`",
            at(path),
            describe(a),
            describe(b)
        ))
    };
    match (a, b) {
        (
            Type::PrimitiveType {
                physical_type: pa,
                type_length: la,
                scale: sa,
                precision: qa,
                ..
            },
            Type::PrimitiveType {
                physical_type: pb,
                type_length: lb,
                scale: sb,
                precision: qb,
                ..
            },
        ) => {
            if same_node && (pa, la, sa, qa) == (pb, lb, sb, qb) {
                None
            } else {
                differs()
            }
        }
        (Type::GroupType { fields: fa, .. }, Type::GroupType { fields: fb, .. }) => {
            if !same_node {
                return differs();
            }
            if fa.len() != fb.len() {
                return Some(format!(
                    "at {}: {} fields vs {}",
                    at(path),
                    fa.len(),
                    fb.len()
                ));
            }
            for (x, y) in fa.iter().zip(fb) {
                path.push(x.name().to_owned());
                if let Some(d) = schema_difference(x, y, path) {
                    return Some(d);
                }
                path.pop();
            }
            None
        }
        _ => differs(),
    }
}

/// The schema holding the data of both `a` and `b` (compatible, see [`schema_difference`]):
/// `a`, with every node that is `REQUIRED` in `a` but `OPTIONAL` in `b` made `OPTIONAL`.
/// Spark writes each file's schema from its data's nullability (a column is `REQUIRED` in a
/// file whose values had no NULL, and `OPTIONAL` in the next), so the files of one table
/// differ in exactly this way; `OPTIONAL` loses nothing (definition levels are remapped).
fn widen(a: &TypePtr, b: &Type) -> Result<TypePtr, ParquetError> {
    if a.as_ref() == b {
        return Ok(Arc::clone(a));
    }
    let info = a.get_basic_info();
    let other = b.get_basic_info();
    let repetition = (info.has_repetition() && other.has_repetition()).then(|| {
        if info.repetition() == Repetition::REQUIRED && other.repetition() == Repetition::OPTIONAL {
            Repetition::OPTIONAL
        } else {
            info.repetition()
        }
    });
    let id = info.has_id().then(|| info.id());
    let widened = match (a.as_ref(), b) {
        (
            Type::PrimitiveType {
                physical_type,
                type_length,
                scale,
                precision,
                ..
            },
            _,
        ) => Type::primitive_type_builder(info.name(), *physical_type)
            .with_repetition(repetition.unwrap_or(Repetition::REQUIRED))
            .with_converted_type(info.converted_type())
            .with_logical_type(info.logical_type_ref().cloned())
            .with_length(*type_length)
            .with_scale(*scale)
            .with_precision(*precision)
            .with_id(id)
            .build()?,
        (Type::GroupType { fields, .. }, Type::GroupType { fields: others, .. }) => {
            let fields = fields
                .iter()
                .zip(others)
                .map(|(x, y)| widen(x, y))
                .collect::<Result<Vec<_>, _>>()?;
            let mut builder = Type::group_type_builder(info.name())
                .with_converted_type(info.converted_type())
                .with_logical_type(info.logical_type_ref().cloned())
                .with_fields(fields)
                .with_id(id);
            if let Some(r) = repetition {
                builder = builder.with_repetition(r);
            }
            builder.build()?
        }
        _ => return Err(ParquetError::General("incompatible schemas".into())),
    };
    Ok(Arc::new(widened))
}

/// The repetition of every node on a column's path, root excluded.
fn path_repetitions(root: &Type, path: &ColumnPath) -> Option<Vec<Repetition>> {
    let mut node = root;
    let mut out = Vec::new();
    for part in path.parts() {
        node = node.get_fields().iter().find(|f| f.name() == part)?;
        out.push(node.get_basic_info().repetition());
    }
    Some(out)
}

/// How a source column's definition levels map onto the output's, when the output made some
/// of the column's `REQUIRED` nodes `OPTIONAL`: `map[l]` is the output level of source level
/// `l`. A source level `l` says the nodes before the source's (l+1)-th optional-or-repeated
/// node are defined; the output level counts the output's optional-or-repeated nodes among
/// those. `None` when nothing changes.
fn definition_level_map(source: &[Repetition], output: &[Repetition]) -> Option<Vec<i16>> {
    if source == output {
        return None;
    }
    let counts = |r: &Repetition| *r != Repetition::REQUIRED;
    let max = source.iter().filter(|r| counts(r)).count();
    let map = (0..=max)
        .map(|level| {
            // The defined prefix: up to the (level+1)-th counting node of the source.
            let prefix = source
                .iter()
                .enumerate()
                .filter(|(_, r)| counts(r))
                .nth(level)
                .map_or(source.len(), |(i, _)| i);
            output[..prefix].iter().filter(|r| counts(r)).count() as i16
        })
        .collect();
    Some(map)
}

fn lookup<'a>(kv: Option<&'a [KeyValue]>, key: &str) -> Option<&'a str> {
    kv?.iter()
        .find(|e| e.key == key)
        .map(|e| e.value.as_deref().unwrap_or(""))
}

/// Spark's rebase class of a writer version: before 3.0.0, before 3.1.0, later, or not Spark.
fn spark_version_class(version: Option<&str>) -> Option<u8> {
    let v = version?;
    let mut parts = v.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    Some(match (major, minor) {
        (0..=2, _) => 0,
        (3, 0) => 1,
        _ => 2,
    })
}

fn check_metadata(
    first: Option<&[KeyValue]>,
    file: &str,
    here: Option<&[KeyValue]>,
) -> Result<(), FormatError> {
    for key in SEMANTIC_KEYS {
        let (a, b) = (lookup(first, key), lookup(here, key));
        if a != b {
            return Err(FormatError::MetadataMismatch {
                file: file.to_owned(),
                key: (*key).to_owned(),
                detail: format!("{a:?} in the first source, {b:?} here"),
            });
        }
    }
    let (a, b) = (
        lookup(first, SPARK_VERSION_KEY),
        lookup(here, SPARK_VERSION_KEY),
    );
    if spark_version_class(a) != spark_version_class(b) {
        return Err(FormatError::MetadataMismatch {
            file: file.to_owned(),
            key: SPARK_VERSION_KEY.to_owned(),
            detail: format!(
                "{a:?} in the first source, {b:?} here: Spark rebases their dates and timestamps differently"
            ),
        });
    }
    Ok(())
}

impl Merger for ParquetMerger {
    fn push(&mut self, name: &str, data: Bytes) -> Result<u64, FormatError> {
        if self.failed {
            return Err(FormatError::Aborted);
        }
        self.failed = true;
        let rows = catch_panics(name, || self.push_inner(name, data))?;
        self.failed = false;
        Ok(rows)
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<SpooledOutput>, FormatError> {
        if self.failed {
            return Err(FormatError::Aborted);
        }
        self.failed = true;
        self.write_output()?;
        Ok(std::mem::take(&mut self.outputs))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fmt::Debug;
    use std::path::Path;
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
        Float64Array, Int8Array, Int32Array, Int32Builder, Int64Array, Int64Builder, ListBuilder,
        MapBuilder, RecordBatch, StringArray, StringBuilder, StructArray,
        TimestampMicrosecondArray,
    };
    use arrow::buffer::NullBuffer;
    use arrow::datatypes::{DataType as ArrowType, Field, Fields, Schema, TimeUnit};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Encoding;
    use parquet::basic::{BrotliLevel, GzipLevel, ZstdLevel};
    use parquet::data_type::{ByteArray, FixedLenByteArray, Int96};
    use parquet::file::metadata::ParquetMetaData;
    use parquet::file::reader::RowGroupReader;
    use parquet::schema::parser::parse_message_type;

    use super::*;
    use crate::native::format::{MergerOptions, NativeFormat, merger, merger_with_options};

    // ---------------------------------------------------------------- fixtures

    /// A batch of rows `ids` with flat, decimal, temporal and nested columns, nulls at every
    /// level (top-level, list, list element, map, map value, struct, struct field).
    fn nested_batch(ids: std::ops::Range<i64>) -> RecordBatch {
        let n = ids.end - ids.start;
        let ids: Vec<i64> = ids.collect();
        let opt = |i: i64, m: i64| i % m != 0;
        let list_builder = || {
            let mut b = ListBuilder::new(Int32Builder::new());
            for &i in &ids {
                match i % 6 {
                    0 => b.append(false), // null list
                    1 => b.append(true),  // empty list
                    _ => {
                        for j in 0..(i % 4) as i32 {
                            b.values().append_option((j != 1).then_some(j * i as i32));
                        }
                        b.append(true);
                    }
                }
            }
            b.finish()
        };
        let mut map = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
        for &i in &ids {
            match i % 5 {
                0 => map.append(false).unwrap(),
                1 => map.append(true).unwrap(),
                _ => {
                    for j in 0..(i % 3 + 1) {
                        map.keys().append_value(format!("k{j}\u{e9}"));
                        map.values().append_option((j != 1).then_some(i * 1000 + j));
                    }
                    map.append(true).unwrap();
                }
            }
        }
        let map = map.finish();
        let struct_fields = Fields::from(vec![
            Field::new("a", ArrowType::Int32, true),
            Field::new("b", ArrowType::Utf8, true),
            Field::new(
                "inner",
                ArrowType::List(Arc::new(Field::new("item", ArrowType::Int32, true))),
                true,
            ),
        ]);
        let st = StructArray::try_new(
            struct_fields,
            vec![
                Arc::new(Int32Array::from(
                    ids.iter()
                        .map(|&i| opt(i, 4).then_some(i as i32))
                        .collect::<Vec<_>>(),
                )) as ArrayRef,
                Arc::new(StringArray::from(
                    ids.iter()
                        .map(|&i| opt(i, 3).then(|| format!("b{i}")))
                        .collect::<Vec<_>>(),
                )),
                Arc::new(list_builder()),
            ],
            Some(NullBuffer::from(
                ids.iter().map(|&i| opt(i, 7)).collect::<Vec<_>>(),
            )),
        )
        .unwrap();
        let doubles = [
            f64::NAN,
            -0.0,
            0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            -2.5,
        ];
        let strings = [
            "",
            "plain",
            "\u{4e2d}\u{6587} \u{1f600}",
            "tab\there",
            "quote\"",
            "line\nbreak",
        ];
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(BooleanArray::from(
                ids.iter()
                    .map(|&i| opt(i, 3).then_some(i % 2 == 0))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int8Array::from(
                ids.iter()
                    .map(|&i| opt(i, 9).then_some((i % 256 - 128) as i8))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Float32Array::from(
                ids.iter()
                    .map(|&i| opt(i, 8).then_some(i as f32 / 3.0))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                ids.iter()
                    .map(|&i| opt(i, 10).then_some(doubles[i as usize % doubles.len()]))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                ids.iter()
                    .map(|&i| opt(i, 11).then_some(strings[i as usize % strings.len()]))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(BinaryArray::from_iter(ids.iter().map(|&i| {
                opt(i, 4).then(|| [0u8, 0xff, i as u8][..(i % 4) as usize].to_vec())
            }))),
            Arc::new(
                Decimal128Array::from(
                    ids.iter()
                        .map(|&i| opt(i, 5).then_some(i as i128 * 12_345 - 99_999))
                        .collect::<Vec<_>>(),
                )
                .with_precision_and_scale(9, 2)
                .unwrap(),
            ),
            Arc::new(
                Decimal128Array::from(
                    ids.iter()
                        .map(|&i| opt(i, 6).then_some(-(i as i128) * 1_000_000_007_123))
                        .collect::<Vec<_>>(),
                )
                .with_precision_and_scale(18, 4)
                .unwrap(),
            ),
            Arc::new(
                Decimal128Array::from(
                    ids.iter()
                        .map(|&i| {
                            opt(i, 7)
                                .then_some((i as i128 % 100 - 50) * 10_i128.pow(35) + i as i128)
                        })
                        .collect::<Vec<_>>(),
                )
                .with_precision_and_scale(38, 10)
                .unwrap(),
            ),
            Arc::new(Date32Array::from(
                ids.iter()
                    .map(|&i| opt(i, 12).then_some(i as i32 * 37 - 200_000))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(
                    ids.iter()
                        .map(|&i| opt(i, 13).then_some(i * 86_400_000_123 - 10_000_000_000_000))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(list_builder()),
            Arc::new(map),
            Arc::new(st),
        ];
        assert_eq!(columns[0].len() as i64, n);
        RecordBatch::try_new(nested_schema(), columns).unwrap()
    }

    fn nested_schema() -> Arc<Schema> {
        let batch_fields = vec![
            Field::new("id", ArrowType::Int64, false),
            Field::new("flag", ArrowType::Boolean, true),
            Field::new("tiny", ArrowType::Int8, true),
            Field::new("f32", ArrowType::Float32, true),
            Field::new("f64", ArrowType::Float64, true),
            Field::new("s", ArrowType::Utf8, true),
            Field::new("bin", ArrowType::Binary, true),
            Field::new("d32", ArrowType::Decimal128(9, 2), true),
            Field::new("d64", ArrowType::Decimal128(18, 4), true),
            Field::new("d128", ArrowType::Decimal128(38, 10), true),
            Field::new("day", ArrowType::Date32, true),
            Field::new(
                "ts",
                ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "arr",
                ArrowType::List(Arc::new(Field::new("item", ArrowType::Int32, true))),
                true,
            ),
            Field::new_map(
                "m",
                "entries",
                Field::new("keys", ArrowType::Utf8, false),
                Field::new("values", ArrowType::Int64, true),
                false,
                true,
            ),
            Field::new(
                "st",
                ArrowType::Struct(Fields::from(vec![
                    Field::new("a", ArrowType::Int32, true),
                    Field::new("b", ArrowType::Utf8, true),
                    Field::new(
                        "inner",
                        ArrowType::List(Arc::new(Field::new("item", ArrowType::Int32, true))),
                        true,
                    ),
                ])),
                true,
            ),
        ];
        Arc::new(Schema::new(batch_fields))
    }

    fn kv(pairs: &[(&str, &str)]) -> Option<Vec<KeyValue>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| KeyValue::new((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    /// A file through arrow's writer, `ids` in row groups of `row_group` rows.
    fn nested_file(
        ids: std::ops::Range<i64>,
        row_group: usize,
        codec: Compression,
        meta: &[(&str, &str)],
    ) -> Bytes {
        let props = WriterProperties::builder()
            .set_compression(codec)
            .set_max_row_group_row_count(Some(row_group))
            .set_key_value_metadata(kv(meta))
            .build();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, nested_schema(), Some(props)).unwrap();
        if !ids.is_empty() {
            w.write(&nested_batch(ids)).unwrap();
        }
        w.close().unwrap();
        Bytes::from(out)
    }

    const SPARK_SCHEMA: &str = "
        message spark_schema {
          required int32 id;
          optional int96 ts;
          optional fixed_len_byte_array(16) dec (DECIMAL(38,10));
          optional int32 d32 (DECIMAL(9,2));
          optional int64 d64 (DECIMAL(18,2));
          optional binary s (UTF8);
          optional group legacy_list (LIST) {
            repeated int32 array;
          }
          optional group legacy_map (MAP) {
            repeated group map (MAP_KEY_VALUE) {
              required binary key (UTF8);
              optional int64 value;
            }
          }
        }";

    /// Spark/Hive-style rows written with the low-level API: INT96 timestamps with
    /// nanoseconds, FLBA/INT32/INT64 decimals, legacy 2-level list and MAP_KEY_VALUE map.
    struct LegacyRow {
        id: i32,
        ts: Option<Int96>,
        dec: Option<i128>,
        d32: Option<i32>,
        d64: Option<i64>,
        s: Option<String>,
        list: Option<Vec<i32>>,
        map: Option<Vec<(String, Option<i64>)>>,
    }

    fn legacy_row(i: i32) -> LegacyRow {
        let julian = 2_440_588 + i as u32 * 3; // 1970-01-01 + 3i days
        let nanos_of_day: u64 = (i as u64 * 3_600_000_000_123 + 987) % 86_400_000_000_000;
        LegacyRow {
            id: i,
            ts: (i % 4 != 0).then(|| {
                Int96::from(vec![
                    nanos_of_day as u32,
                    (nanos_of_day >> 32) as u32,
                    julian,
                ])
            }),
            dec: (i % 5 != 0).then(|| (i as i128 - 20) * 10_i128.pow(30) - 7),
            d32: (i % 3 != 0).then_some(i * 101 - 500),
            d64: (i % 6 != 0).then_some(i as i64 * -9_876_543_210),
            s: (i % 7 != 0).then(|| ["", "x", "\u{e9}t\u{e9}"][i as usize % 3].to_owned()),
            list: match i % 5 {
                0 => None,
                1 => Some(vec![]),
                _ => Some((0..i % 4 + 1).map(|j| j * i).collect()),
            },
            map: match i % 4 {
                0 => None,
                1 => Some(vec![]),
                _ => Some(
                    (0..i % 3 + 1)
                        .map(|j| (format!("k{j}"), (j != 1).then_some(i as i64 * j as i64)))
                        .collect(),
                ),
            },
        }
    }

    fn write_typed<T: DataType>(
        rg: &mut parquet::file::writer::SerializedRowGroupWriter<'_, &mut Vec<u8>>,
        values: &[T::T],
        def: Option<&[i16]>,
        rep: Option<&[i16]>,
    ) {
        let mut col = rg.next_column().unwrap().unwrap();
        col.typed::<T>().write_batch(values, def, rep).unwrap();
        col.close().unwrap();
    }

    fn legacy_file(
        ids: std::ops::Range<i32>,
        row_group: usize,
        codec: Compression,
        meta: &[(&str, &str)],
    ) -> Bytes {
        legacy_file_with_schema(SPARK_SCHEMA, ids, row_group, codec, meta)
    }

    fn legacy_file_with_schema(
        schema: &str,
        ids: std::ops::Range<i32>,
        row_group: usize,
        codec: Compression,
        meta: &[(&str, &str)],
    ) -> Bytes {
        let schema = Arc::new(parse_message_type(schema).unwrap());
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(codec)
                .set_key_value_metadata(kv(meta))
                .build(),
        );
        let mut out = Vec::new();
        let mut w = SerializedFileWriter::new(&mut out, schema, props).unwrap();
        let rows: Vec<LegacyRow> = ids.map(legacy_row).collect();
        for chunk in rows.chunks(row_group.max(1)) {
            let mut rg = w.next_row_group().unwrap();
            let ids: Vec<i32> = chunk.iter().map(|r| r.id).collect();
            write_typed::<Int32Type>(&mut rg, &ids, None, None);
            fn optional<V: Clone>(it: impl Iterator<Item = Option<V>>) -> (Vec<V>, Vec<i16>) {
                let mut values = Vec::new();
                let mut def = Vec::new();
                for v in it {
                    def.push(i16::from(v.is_some()));
                    values.extend(v);
                }
                (values, def)
            }
            let (v, d) = optional(chunk.iter().map(|r| r.ts));
            write_typed::<Int96Type>(&mut rg, &v, Some(&d), None);
            let (v, d) = optional(chunk.iter().map(|r| {
                r.dec
                    .map(|x| FixedLenByteArray::from(ByteArray::from(x.to_be_bytes().to_vec())))
            }));
            write_typed::<FixedLenByteArrayType>(&mut rg, &v, Some(&d), None);
            let (v, d) = optional(chunk.iter().map(|r| r.d32));
            write_typed::<Int32Type>(&mut rg, &v, Some(&d), None);
            let (v, d) = optional(chunk.iter().map(|r| r.d64));
            write_typed::<Int64Type>(&mut rg, &v, Some(&d), None);
            let (v, d) = optional(chunk.iter().map(|r| r.s.as_deref().map(ByteArray::from)));
            write_typed::<ByteArrayType>(&mut rg, &v, Some(&d), None);
            // legacy_list.array: def 0 null list, 1 empty, 2 element.
            let (mut v, mut d, mut r) = (Vec::new(), Vec::new(), Vec::new());
            for row in chunk {
                match &row.list {
                    None => {
                        d.push(0);
                        r.push(0);
                    }
                    Some(l) if l.is_empty() => {
                        d.push(1);
                        r.push(0);
                    }
                    Some(l) => {
                        for (j, x) in l.iter().enumerate() {
                            v.push(*x);
                            d.push(2);
                            r.push(i16::from(j > 0));
                        }
                    }
                };
            }
            write_typed::<Int32Type>(&mut rg, &v, Some(&d), Some(&r));
            // legacy_map.map.key (def 0/1/2) and .value (def 0/1/2 null value/3).
            let (mut kv_, mut kd, mut vv, mut vd, mut r) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for row in chunk {
                match &row.map {
                    None => {
                        kd.push(0);
                        vd.push(0);
                        r.push(0);
                    }
                    Some(m) if m.is_empty() => {
                        kd.push(1);
                        vd.push(1);
                        r.push(0);
                    }
                    Some(m) => {
                        for (j, (k, val)) in m.iter().enumerate() {
                            kv_.push(ByteArray::from(k.as_str()));
                            kd.push(2);
                            vd.push(if val.is_some() { 3 } else { 2 });
                            vv.extend(*val);
                            r.push(i16::from(j > 0));
                        }
                    }
                };
            }
            write_typed::<ByteArrayType>(&mut rg, &kv_, Some(&kd), Some(&r));
            write_typed::<Int64Type>(&mut rg, &vv, Some(&vd), Some(&r));
            rg.close().unwrap();
        }
        w.close().unwrap();
        Bytes::from(out)
    }

    // ---------------------------------------------------------------- reading back

    fn metadata(data: &Bytes) -> Arc<ParquetMetaData> {
        Arc::new(
            SerializedFileReader::new(data.clone())
                .unwrap()
                .metadata()
                .clone(),
        )
    }

    /// Rows through the record API, in file order.
    fn rows(data: &Bytes) -> Vec<String> {
        let reader = SerializedFileReader::new(data.clone()).unwrap();
        reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap().to_string())
            .collect()
    }

    fn multiset(v: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for s in v {
            *m.entry(s).or_default() += 1;
        }
        m
    }

    /// Levels and values of leaf column `i` of a row group, rendered.
    fn dump<T: DataType>(reader: &dyn RowGroupReader, i: usize) -> (Vec<String>, Vec<String>)
    where
        T::T: Debug,
    {
        let mut r = T::get_column_reader(reader.get_column_reader(i).unwrap()).unwrap();
        let (mut v, mut d, mut p) = (Vec::new(), Vec::new(), Vec::new());
        loop {
            let (_, vals, levels) = r
                .read_records(1000, Some(&mut d), Some(&mut p), &mut v)
                .unwrap();
            if vals == 0 && levels == 0 {
                break;
            }
        }
        let levels = d
            .iter()
            .zip(p.iter().chain(std::iter::repeat(&0)))
            .map(|(d, p)| format!("{d}/{p}"))
            .collect();
        (levels, v.iter().map(|x| format!("{x:?}")).collect())
    }

    /// Every leaf column's levels and values, concatenated over the files' row groups: the
    /// exact data, INT96 nanoseconds and all (the record API reads INT96 in milliseconds).
    fn exact(files: &[Bytes]) -> Vec<(Vec<String>, Vec<String>)> {
        let mut columns: Vec<(Vec<String>, Vec<String>)> = Vec::new();
        for f in files {
            if f.is_empty() {
                continue;
            }
            let reader = SerializedFileReader::new(f.clone()).unwrap();
            let schema = reader.metadata().file_metadata().schema_descr_ptr();
            columns.resize(schema.num_columns(), Default::default());
            for g in 0..reader.num_row_groups() {
                let rg = reader.get_row_group(g).unwrap();
                for (i, c) in schema.columns().iter().enumerate() {
                    let (levels, values) = match c.physical_type() {
                        PhysicalType::BOOLEAN => dump::<BoolType>(&*rg, i),
                        PhysicalType::INT32 => dump::<Int32Type>(&*rg, i),
                        PhysicalType::INT64 => dump::<Int64Type>(&*rg, i),
                        PhysicalType::INT96 => dump::<Int96Type>(&*rg, i),
                        PhysicalType::FLOAT => dump::<FloatType>(&*rg, i),
                        PhysicalType::DOUBLE => dump::<DoubleType>(&*rg, i),
                        PhysicalType::BYTE_ARRAY => dump::<ByteArrayType>(&*rg, i),
                        PhysicalType::FIXED_LEN_BYTE_ARRAY => {
                            dump::<FixedLenByteArrayType>(&*rg, i)
                        }
                    };
                    columns[i].0.extend(levels);
                    columns[i].1.extend(values);
                }
            }
        }
        columns
    }

    fn schema_text(md: &ParquetMetaData) -> String {
        let mut out = Vec::new();
        parquet::schema::printer::print_schema(&mut out, md.file_metadata().schema());
        String::from_utf8(out).unwrap()
    }

    struct Merged {
        counts: Vec<u64>,
        outputs: Vec<SpooledOutput>,
        files: Vec<Bytes>,
    }

    fn merge_files(
        dir: &Path,
        target: u64,
        sources: &[(String, Bytes)],
    ) -> Result<Merged, FormatError> {
        merge_with(dir, target, sources, &MergerOptions::default())
    }

    fn merge_with(
        dir: &Path,
        target: u64,
        sources: &[(String, Bytes)],
        options: &MergerOptions,
    ) -> Result<Merged, FormatError> {
        let mut m = merger_with_options(NativeFormat::Parquet, dir, target, "part-hsf", options);
        let mut counts = Vec::new();
        for (name, data) in sources {
            counts.push(m.push(name, data.clone())?);
        }
        let outputs = m.finish()?;
        let files = outputs
            .iter()
            .map(|o| Bytes::from(std::fs::read(&o.local_path).unwrap()))
            .collect();
        Ok(Merged {
            counts,
            outputs,
            files,
        })
    }

    /// Everything the merge must keep, checked against the sources.
    fn check_merge(sources: &[(String, Bytes)], merged: &Merged) {
        let first = metadata(&sources[0].1);
        let source_rows: Vec<String> = sources
            .iter()
            .filter(|s| !s.1.is_empty())
            .flat_map(|s| rows(&s.1))
            .collect();
        let output_rows: Vec<String> = merged.files.iter().flat_map(rows).collect();
        assert!(!source_rows.is_empty());
        // Same rows: as multisets, and even in the same order.
        assert_eq!(multiset(output_rows.clone()), multiset(source_rows.clone()));
        assert_eq!(output_rows, source_rows);
        // Exact column data (INT96 nanoseconds, NaN bits through Debug, levels).
        assert_eq!(
            exact(&merged.files),
            exact(&sources.iter().map(|s| s.1.clone()).collect::<Vec<_>>())
        );
        let counts: Vec<u64> = sources
            .iter()
            .map(|s| {
                if s.1.is_empty() {
                    0
                } else {
                    rows(&s.1).len() as u64
                }
            })
            .collect();
        assert_eq!(merged.counts, counts);
        assert_eq!(
            merged.outputs.iter().map(|o| o.rows).sum::<u64>(),
            source_rows.len() as u64
        );
        for (o, f) in merged.outputs.iter().zip(&merged.files) {
            let md = metadata(f);
            assert_eq!(o.bytes, f.len() as u64);
            assert_eq!(o.rows, md.file_metadata().num_rows() as u64);
            assert_eq!(o.rows, parquet_rows_from_tail(f.clone()).unwrap());
            assert_eq!(md.num_row_groups(), 1, "one row group per output");
            // The schema, exactly: descriptor, printed form, root name.
            assert_eq!(md.file_metadata().schema(), first.file_metadata().schema());
            assert_eq!(schema_text(&md), schema_text(&first));
            assert_eq!(
                md.file_metadata().schema_descr().columns().len(),
                first.file_metadata().schema_descr().columns().len()
            );
            for (a, b) in md
                .file_metadata()
                .schema_descr()
                .columns()
                .iter()
                .zip(first.file_metadata().schema_descr().columns())
            {
                assert_eq!(a.as_ref(), b.as_ref());
            }
            // The codecs of the first source with column chunks, and the first source's
            // key-value metadata.
            let first_rg = sources
                .iter()
                .filter(|s| !s.1.is_empty())
                .find_map(|s| metadata(&s.1).row_groups().first().cloned())
                .unwrap();
            for (a, b) in md.row_group(0).columns().iter().zip(first_rg.columns()) {
                assert_eq!(a.compression(), b.compression(), "{}", a.column_path());
            }
            assert_eq!(
                md.file_metadata().key_value_metadata(),
                first.file_metadata().key_value_metadata()
            );
        }
    }

    fn named(files: Vec<Bytes>) -> Vec<(String, Bytes)> {
        files
            .into_iter()
            .enumerate()
            .map(|(i, f)| (format!("part-{i:05}-x.snappy.parquet"), f))
            .collect()
    }

    // ---------------------------------------------------------------- tests

    /// Peak resident memory since the last reset (Linux), in MiB.
    fn peak_rss_mib() -> Option<f64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kb / 1024.0)
    }

    /// Throughput and memory of the Parquet merge (run in release mode with `--ignored
    /// --nocapture` to measure).
    #[test]
    #[ignore = "measurement"]
    fn parquet_throughput() {
        for (label, files, rows_per_file, target) in [
            (
                "nested, 64 files x 20k rows, one output",
                64,
                20_000,
                u64::MAX,
            ),
            (
                "nested, 64 files x 20k rows, 16 MiB outputs",
                64,
                20_000,
                16 << 20,
            ),
        ] {
            let sources: Vec<(String, Bytes)> = named(
                (0..files)
                    .map(|i| {
                        let start = i * rows_per_file;
                        nested_file(start..start + rows_per_file, 5000, Compression::SNAPPY, &[])
                    })
                    .collect(),
            );
            let source_bytes: usize = sources.iter().map(|s| s.1.len()).sum();
            let _ = std::fs::write("/proc/self/clear_refs", "5");
            let before = peak_rss_mib();
            let dir = tempfile::tempdir().unwrap();
            let t0 = std::time::Instant::now();
            let mut m = merger(NativeFormat::Parquet, dir.path(), target, "bench");
            for (name, data) in &sources {
                m.push(name, data.clone()).unwrap();
            }
            let outputs = m.finish().unwrap();
            let dt = t0.elapsed();
            let out_bytes: u64 = outputs.iter().map(|o| o.bytes).sum();
            let rows = (files * rows_per_file) as f64;
            eprintln!(
                "{label}: {:.1} MiB in {} files -> {:.1} MiB in {} outputs, {dt:.2?}: {:.1} MiB/s of input, {:.0}k rows/s; peak RSS {:.0} MiB (sources held by the test: {:.0} MiB; before merge {:.0} MiB)",
                source_bytes as f64 / 1048576.0,
                sources.len(),
                out_bytes as f64 / 1048576.0,
                outputs.len(),
                source_bytes as f64 / 1048576.0 / dt.as_secs_f64(),
                rows / dt.as_secs_f64() / 1000.0,
                peak_rss_mib().unwrap_or(f64::NAN),
                source_bytes as f64 / 1048576.0,
                before.unwrap_or(f64::NAN),
            );
        }
    }

    #[test]
    fn flipped_bytes_never_panic() {
        let good = legacy_file(0..60, 20, Compression::SNAPPY, SPARK_META);
        let nested = nested_file(0..60, 20, Compression::UNCOMPRESSED, &[]);
        let (mut ok, mut refused) = (0, 0);
        for base in [&good, &nested] {
            for pos in (0..base.len()).step_by(31) {
                for mask in [0x01u8, 0xff] {
                    let mut bad = base.to_vec();
                    bad[pos] ^= mask;
                    let dir = tempfile::tempdir().unwrap();
                    let sources = [
                        ("ok".to_owned(), base.clone()),
                        ("bad".to_owned(), Bytes::from(bad)),
                    ];
                    let result = std::panic::catch_unwind(|| {
                        merge_files(dir.path(), 1 << 30, &sources).map(|m| m.outputs)
                    });
                    match result {
                        Err(_) => panic!("a corrupt byte at {pos} panicked"),
                        Ok(Ok(outputs)) => {
                            ok += 1;
                            // Whatever was read, each output is a valid file of the rows it
                            // claims.
                            for o in outputs {
                                let f = Bytes::from(std::fs::read(&o.local_path).unwrap());
                                assert_eq!(parquet_rows_from_tail(f).unwrap(), o.rows);
                            }
                        }
                        Ok(Err(e)) => {
                            refused += 1;
                            assert!(
                                matches!(
                                    e.reason(),
                                    "corrupt"
                                        | "unsupported"
                                        | "schema_mismatch"
                                        | "metadata_mismatch"
                                ),
                                "{pos}: {e}"
                            );
                        }
                    }
                }
            }
        }
        eprintln!("flipped bytes: {ok} merged, {refused} refused");
        assert!(refused > 0);
    }

    const SPARK_META: &[(&str, &str)] = &[
        ("org.apache.spark.version", "3.5.1"),
        (
            "org.apache.spark.sql.parquet.row.metadata",
            r#"{"type":"struct","fields":[]}"#,
        ),
        ("org.apache.spark.legacyINT96", ""),
    ];

    fn codecs() -> Vec<Compression> {
        vec![
            Compression::UNCOMPRESSED,
            Compression::SNAPPY,
            Compression::GZIP(GzipLevel::default()),
            Compression::ZSTD(ZstdLevel::default()),
            Compression::LZ4_RAW,
            Compression::LZ4,
            Compression::BROTLI(BrotliLevel::default()),
        ]
    }

    #[test]
    fn nested_types_merge_exactly_with_every_codec() {
        for codec in codecs() {
            let dir = tempfile::tempdir().unwrap();
            let meta = [("writer", "test"), ("org.apache.spark.version", "3.5.1")];
            let sources = named(vec![
                nested_file(0..40, 7, codec, &meta),
                nested_file(40..40, 7, codec, &meta), // no rows, no row groups
                nested_file(40..41, 7, codec, &meta),
                nested_file(41..141, 13, codec, &meta),
                nested_file(141..150, 2, codec, &meta),
            ]);
            let merged = merge_files(dir.path(), 1 << 30, &sources).unwrap();
            assert_eq!(merged.outputs.len(), 1, "{codec:?}");
            assert_eq!(merged.outputs[0].rows, 150);
            assert_eq!(merged.outputs[0].file_name, "part-hsf-00000.parquet");
            check_merge(&sources, &merged);
            // arrow's own schema entry is kept, so arrow readers see the same types.
            let md = metadata(&merged.files[0]);
            let keys: Vec<&str> = md
                .file_metadata()
                .key_value_metadata()
                .unwrap()
                .iter()
                .map(|k| k.key.as_str())
                .collect();
            assert!(
                keys.contains(&"ARROW:schema") && keys.contains(&"writer"),
                "{keys:?}"
            );
        }
    }

    #[test]
    fn int96_decimals_and_legacy_nesting_merge_exactly() {
        for codec in [
            Compression::SNAPPY,
            Compression::GZIP(GzipLevel::default()),
            Compression::UNCOMPRESSED,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let sources = named(vec![
                legacy_file(0..10, 3, codec, SPARK_META),
                legacy_file(10..11, 1, codec, SPARK_META),
                legacy_file(11..70, 20, codec, SPARK_META),
                legacy_file(70..70, 5, codec, SPARK_META),
                legacy_file(70..90, 4, codec, SPARK_META),
            ]);
            let merged = merge_files(dir.path(), 1 << 30, &sources).unwrap();
            assert_eq!(merged.counts, vec![10, 1, 59, 0, 20]);
            check_merge(&sources, &merged);
            let md = metadata(&merged.files[0]);
            let ts = md.file_metadata().schema_descr().column(1);
            assert_eq!(ts.physical_type(), PhysicalType::INT96);
            // No statistics for INT96 (undefined sort order).
            assert!(md.row_group(0).column(1).statistics().is_none());
            let dec = md.file_metadata().schema_descr().column(2);
            assert_eq!(dec.physical_type(), PhysicalType::FIXED_LEN_BYTE_ARRAY);
            assert_eq!(
                (dec.type_length(), dec.type_precision(), dec.type_scale()),
                (16, 38, 10)
            );
            // The printed schema is the one written, line for line.
            let text = schema_text(&md);
            for line in [
                "OPTIONAL INT96 ts;",
                "REPEATED INT32 array;",
                "REPEATED group map (MAP_KEY_VALUE) {",
                "OPTIONAL INT32 d32 (DECIMAL(9,2));",
                "OPTIONAL FIXED_LEN_BYTE_ARRAY (16) dec (DECIMAL(38,10));",
            ] {
                assert!(text.contains(line), "{line} in\n{text}");
            }
        }
    }

    #[test]
    fn outputs_split_near_the_target_with_one_row_group_each() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<Bytes> = (0..30)
            .map(|i| nested_file(i * 50..(i + 1) * 50, 10, Compression::SNAPPY, &[]))
            .collect();
        let encoded: i64 = files
            .iter()
            .flat_map(|f| {
                metadata(f)
                    .row_groups()
                    .iter()
                    .map(|r| r.compressed_size())
                    .collect::<Vec<_>>()
            })
            .sum();
        let target = (encoded / 4) as u64;
        let sources = named(files);
        let merged = merge_files(dir.path(), target, &sources).unwrap();
        assert!(
            (4..=5).contains(&merged.outputs.len()),
            "{:?}",
            merged.outputs
        );
        check_merge(&sources, &merged);
        let names: Vec<&str> = merged
            .outputs
            .iter()
            .map(|o| o.file_name.as_str())
            .collect();
        assert_eq!(
            names[..2],
            ["part-hsf-00000.parquet", "part-hsf-00001.parquet"]
        );
        // The re-encoded size stays in the neighbourhood of the target.
        for o in &merged.outputs[..merged.outputs.len() - 1] {
            assert!(
                o.bytes > target / 3 && o.bytes < target * 3,
                "{o:?} target {target}"
            );
        }
    }

    #[test]
    fn the_first_sources_codec_wins() {
        let dir = tempfile::tempdir().unwrap();
        let sources = named(vec![
            nested_file(0..10, 10, Compression::ZSTD(ZstdLevel::default()), &[]),
            nested_file(10..20, 10, Compression::SNAPPY, &[]),
            nested_file(20..30, 10, Compression::UNCOMPRESSED, &[]),
        ]);
        let merged = merge_files(dir.path(), 1 << 30, &sources).unwrap();
        check_merge(&sources, &merged);
        let md = metadata(&merged.files[0]);
        assert!(
            md.row_group(0)
                .columns()
                .iter()
                .all(|c| matches!(c.compression(), Compression::ZSTD(_)))
        );
    }

    #[test]
    fn per_column_codecs_are_kept() {
        let codec_of = |path: &str| match path {
            "s" => Compression::GZIP(GzipLevel::default()),
            "legacy_map.map.value" => Compression::UNCOMPRESSED,
            "dec" => Compression::ZSTD(ZstdLevel::default()),
            _ => Compression::SNAPPY,
        };
        let file = |ids: std::ops::Range<i32>| {
            let schema = Arc::new(parse_message_type(SPARK_SCHEMA).unwrap());
            let descr = parquet::schema::types::SchemaDescriptor::new(Arc::clone(&schema));
            let mut props = WriterProperties::builder().set_compression(Compression::SNAPPY);
            for c in descr.columns() {
                props =
                    props.set_column_compression(c.path().clone(), codec_of(&c.path().string()));
            }
            // The fixture's rows, rewritten column by column with per-column codecs.
            let data = legacy_file(ids, 7, Compression::SNAPPY, SPARK_META);
            let reader = SerializedFileReader::new(data).unwrap();
            let mut out = Vec::new();
            let mut w = SerializedFileWriter::new(
                &mut out,
                schema,
                Arc::new(props.set_key_value_metadata(kv(SPARK_META)).build()),
            )
            .unwrap();
            for g in 0..reader.num_row_groups() {
                let rg = reader.get_row_group(g).unwrap();
                let mut rgw = w.next_row_group().unwrap();
                for (i, c) in descr.columns().iter().enumerate() {
                    let mut col = rgw.next_column().unwrap().unwrap();
                    macro_rules! copy {
                        ($t:ty) => {{
                            let mut r =
                                <$t>::get_column_reader(rg.get_column_reader(i).unwrap()).unwrap();
                            let (mut v, mut d, mut p) = (Vec::new(), Vec::new(), Vec::new());
                            r.read_records(usize::MAX, Some(&mut d), Some(&mut p), &mut v)
                                .unwrap();
                            let (md, mr) = (c.max_def_level(), c.max_rep_level());
                            col.typed::<$t>()
                                .write_batch(
                                    &v,
                                    (md > 0).then_some(&d[..]),
                                    (mr > 0).then_some(&p[..]),
                                )
                                .unwrap();
                        }};
                    }
                    match c.physical_type() {
                        PhysicalType::INT32 => copy!(Int32Type),
                        PhysicalType::INT64 => copy!(Int64Type),
                        PhysicalType::INT96 => copy!(Int96Type),
                        PhysicalType::BYTE_ARRAY => copy!(ByteArrayType),
                        PhysicalType::FIXED_LEN_BYTE_ARRAY => copy!(FixedLenByteArrayType),
                        other => unreachable!("{other}"),
                    }
                    col.close().unwrap();
                }
                rgw.close().unwrap();
            }
            w.close().unwrap();
            Bytes::from(out)
        };
        let dir = tempfile::tempdir().unwrap();
        let sources = named(vec![file(0..20), file(20..45)]);
        let merged = merge_files(dir.path(), 1 << 30, &sources).unwrap();
        check_merge(&sources, &merged);
        let md = metadata(&merged.files[0]);
        for c in md.row_group(0).columns() {
            assert_eq!(
                c.compression(),
                codec_of(&c.column_path().string()),
                "{}",
                c.column_path()
            );
        }
    }

    #[test]
    fn dictionary_can_be_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        let sources = named(vec![
            legacy_file(0..30, 10, Compression::SNAPPY, SPARK_META),
            legacy_file(30..60, 10, Compression::SNAPPY, SPARK_META),
        ]);
        let plain = merge_with(
            dir.path(),
            1 << 30,
            &sources,
            &MergerOptions {
                parquet_dictionary: false,
                ..MergerOptions::default()
            },
        )
        .unwrap();
        check_merge(&sources, &plain);
        let md = metadata(&plain.files[0]);
        for c in md.row_group(0).columns() {
            let encodings: Vec<Encoding> = c.encodings().collect();
            assert!(
                !encodings.contains(&Encoding::RLE_DICTIONARY)
                    && !encodings.contains(&Encoding::PLAIN_DICTIONARY),
                "{}: {encodings:?}",
                c.column_path()
            );
        }
    }

    #[test]
    fn only_empty_sources_give_no_output() {
        let dir = tempfile::tempdir().unwrap();
        let sources = named(vec![
            nested_file(0..0, 10, Compression::SNAPPY, &[]),
            Bytes::new(),
            nested_file(0..0, 10, Compression::SNAPPY, &[]),
        ]);
        let merged = merge_files(dir.path(), 1, &sources).unwrap();
        assert_eq!(merged.counts, vec![0, 0, 0]);
        assert!(merged.outputs.is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn schema_mismatch_is_refused() {
        let variants = [
            // Another decimal precision; physical type INT64 instead of INT32.
            SPARK_SCHEMA.replace(
                "optional int32 d32 (DECIMAL(9,2))",
                "optional int64 d32 (DECIMAL(10,2))",
            ),
            // Another scale only.
            SPARK_SCHEMA.replace("(DECIMAL(38,10))", "(DECIMAL(38,9))"),
            // INT96 vs INT64 timestamps (same name).
            SPARK_SCHEMA.replace(
                "optional int96 ts;",
                "optional int64 ts (TIMESTAMP(MICROS,true));",
            ),
            // Repeated vs optional (required vs optional is widened, see below).
            SPARK_SCHEMA.replace(
                "optional int64 d64 (DECIMAL(18,2))",
                "repeated int64 d64 (DECIMAL(18,2))",
            ),
            // A field id.
            SPARK_SCHEMA.replace("optional binary s (UTF8)", "optional binary s (UTF8) = 7"),
            // Field name.
            SPARK_SCHEMA.replace("optional binary s (UTF8)", "optional binary t (UTF8)"),
            // Root name.
            SPARK_SCHEMA.replace("message spark_schema", "message hive_schema"),
            // A string annotation dropped.
            SPARK_SCHEMA.replace("optional binary s (UTF8)", "optional binary s"),
        ];
        for (i, schema) in variants.iter().enumerate() {
            assert_ne!(schema, SPARK_SCHEMA, "variant {i} changes nothing");
            let dir = tempfile::tempdir().unwrap();
            let mut m = merger(NativeFormat::Parquet, dir.path(), 1 << 30, "p");
            m.push("a", legacy_file(0..10, 5, Compression::SNAPPY, SPARK_META))
                .unwrap();
            let other = if schema.contains("repeated int64 d64")
                || schema.contains("int64 d32")
                || schema.contains("int64 ts")
            {
                // Values of another type or without nulls cannot be generated from the same
                // rows; an empty file of that schema is enough to be refused.
                legacy_file_with_schema(schema, 0..0, 5, Compression::SNAPPY, SPARK_META)
            } else {
                legacy_file_with_schema(schema, 10..20, 5, Compression::SNAPPY, SPARK_META)
            };
            let e = m.push("b", other).unwrap_err();
            assert!(
                matches!(&e, FormatError::SchemaMismatch { file, .. } if file == "b"),
                "{i}: {e:?}"
            );
            assert_eq!(e.reason(), "schema_mismatch");
            eprintln!("{e}");
            assert_eq!(
                m.push("c", legacy_file(20..30, 5, Compression::SNAPPY, SPARK_META))
                    .unwrap_err()
                    .reason(),
                "aborted"
            );
            assert_eq!(m.finish().unwrap_err().reason(), "aborted");
        }
        // Arrow-written and hand-written schemas differ altogether.
        let dir = tempfile::tempdir().unwrap();
        let e = merge_files(
            dir.path(),
            1 << 30,
            &named(vec![
                nested_file(0..5, 5, Compression::SNAPPY, &[]),
                legacy_file(0..5, 5, Compression::SNAPPY, &[]),
            ]),
        )
        .err()
        .unwrap();
        assert_eq!(e.reason(), "schema_mismatch");
    }

    /// Rows of a table Spark wrote: which nodes are OPTIONAL depends on each file's data.
    #[derive(Clone)]
    struct NullableRow {
        id: i32,
        d1: Option<i64>,
        arr: Option<Vec<Option<i32>>>,
        st: Option<(Option<i32>, Option<String>)>,
    }

    const NULLABILITY_SCHEMA: &str = "
        message spark_schema {
          required int32 id;
          {D1} int64 d1 (DECIMAL(10,2));
          optional group arr (LIST) {
            repeated group list {
              {ELEMENT} int32 element;
            }
          }
          {ST} group st {
            {A} int32 a;
            optional binary b (STRING);
          }
        }";

    /// The definition level of a value whose path nodes are defined as `defined` says.
    fn def_level(reps: &[Repetition], defined: &[bool]) -> i16 {
        let mut level = 0;
        for (r, d) in reps.iter().zip(defined) {
            if !d {
                assert_ne!(*r, Repetition::REQUIRED, "a REQUIRED node without a value");
                break;
            }
            level += i16::from(*r != Repetition::REQUIRED);
        }
        level
    }

    /// A file of `rows` under `NULLABILITY_SCHEMA` with the placeholders set.
    fn nullability_file(d1: &str, element: &str, st: &str, a: &str, rows: &[NullableRow]) -> Bytes {
        let text = NULLABILITY_SCHEMA
            .replace("{D1}", d1)
            .replace("{ELEMENT}", element)
            .replace("{ST}", st)
            .replace("{A}", a);
        let root = Arc::new(parse_message_type(&text).unwrap());
        let descr = parquet::schema::types::SchemaDescriptor::new(Arc::clone(&root));
        let reps = |c: usize| path_repetitions(&root, descr.column(c).path()).unwrap();
        let mut out = Vec::new();
        let mut w = SerializedFileWriter::new(
            &mut out,
            Arc::clone(&root),
            Arc::new(
                WriterProperties::builder()
                    .set_key_value_metadata(kv(SPARK_META))
                    .build(),
            ),
        )
        .unwrap();
        let mut rg = w.next_row_group().unwrap();
        let ids: Vec<i32> = rows.iter().map(|r| r.id).collect();
        write_typed::<Int32Type>(&mut rg, &ids, None, None);
        // d1
        let r = reps(1);
        let d: Vec<i16> = rows
            .iter()
            .map(|x| def_level(&r, &[x.d1.is_some()]))
            .collect();
        let v: Vec<i64> = rows.iter().filter_map(|x| x.d1).collect();
        write_typed::<Int64Type>(
            &mut rg,
            &v,
            (descr.column(1).max_def_level() > 0).then_some(&d[..]),
            None,
        );
        // arr.list.element
        let r = reps(2);
        let (mut v, mut d, mut rp) = (Vec::new(), Vec::new(), Vec::new());
        for x in rows {
            match &x.arr {
                None => {
                    d.push(def_level(&r, &[false, false, false]));
                    rp.push(0);
                }
                Some(l) if l.is_empty() => {
                    d.push(def_level(&r, &[true, false, false]));
                    rp.push(0);
                }
                Some(l) => {
                    for (j, e) in l.iter().enumerate() {
                        d.push(def_level(&r, &[true, true, e.is_some()]));
                        rp.push(i16::from(j > 0));
                        v.extend(*e);
                    }
                }
            }
        }
        write_typed::<Int32Type>(&mut rg, &v, Some(&d), Some(&rp));
        // st.a, st.b
        for c in [3, 4] {
            let r = reps(c);
            let (mut ints, mut strings, mut d) = (Vec::new(), Vec::new(), Vec::new());
            for x in rows {
                let (st_def, leaf) = match &x.st {
                    None => (false, false),
                    Some((a, b)) => (true, if c == 3 { a.is_some() } else { b.is_some() }),
                };
                d.push(def_level(&r, &[st_def, leaf]));
                if let Some((a, b)) = &x.st {
                    ints.extend(*a);
                    strings.extend(b.as_deref().map(ByteArray::from));
                }
            }
            let def = (descr.column(c).max_def_level() > 0).then_some(&d[..]);
            if c == 3 {
                write_typed::<Int32Type>(&mut rg, &ints, def, None);
            } else {
                write_typed::<ByteArrayType>(&mut rg, &strings, def, None);
            }
        }
        rg.close().unwrap();
        w.close().unwrap();
        Bytes::from(out)
    }

    #[test]
    fn nullability_differences_are_widened_without_changing_rows() {
        // File A: no NULL anywhere it could matter, so Spark made d1, element and st.a
        // REQUIRED; st is OPTIONAL. File B: NULLs there, but st itself never NULL: d1,
        // element, st.a OPTIONAL and st REQUIRED. Neither schema holds the other's data.
        let a_rows: Vec<NullableRow> = (0..20)
            .map(|i| NullableRow {
                id: i,
                d1: Some(i64::from(i) * 100 + 1),
                arr: match i % 3 {
                    0 => None,
                    1 => Some(vec![]),
                    _ => Some(vec![Some(i), Some(-i)]),
                },
                st: (i % 4 != 0).then(|| (Some(i), (i % 2 == 0).then(|| format!("a{i}")))),
            })
            .collect();
        let b_rows: Vec<NullableRow> = (100..130)
            .map(|i| NullableRow {
                id: i,
                d1: (i % 2 == 0).then_some(i64::from(i)),
                arr: match i % 4 {
                    0 => None,
                    1 => Some(vec![]),
                    2 => Some(vec![None]),
                    _ => Some(vec![Some(i), None, Some(i * 2)]),
                },
                st: Some(((i % 3 != 0).then_some(i), None)),
            })
            .collect();
        let file_a = |rows: &[NullableRow]| {
            nullability_file("required", "required", "optional", "required", rows)
        };
        let file_b = |rows: &[NullableRow]| {
            nullability_file("optional", "optional", "required", "optional", rows)
        };
        let a1 = file_a(&a_rows[..10]);
        let a2 = file_a(&a_rows[10..]);
        let b1 = file_b(&b_rows[..15]);
        let b2 = file_b(&b_rows[15..]);
        let widened_text = "
            message spark_schema {
              REQUIRED INT32 id;
              OPTIONAL INT64 d1 (DECIMAL(10,2));
              OPTIONAL group arr (LIST) {
                REPEATED group list {
                  OPTIONAL INT32 element;
                }
              }
              OPTIONAL group st {
                OPTIONAL INT32 a;
                OPTIONAL BYTE_ARRAY b (STRING);
              }
            }";
        let squash = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");

        // A then B, into one output: the widened schema, the same rows in the same order.
        let dir = tempfile::tempdir().unwrap();
        let sources = named(vec![a1.clone(), b1.clone(), a2.clone(), b2.clone()]);
        let merged = merge_files(dir.path(), 1 << 30, &sources).unwrap();
        assert_eq!(merged.outputs.len(), 1);
        let md = metadata(&merged.files[0]);
        assert_eq!(squash(&schema_text(&md)), squash(widened_text));
        let source_rows: Vec<String> = sources.iter().flat_map(|s| rows(&s.1)).collect();
        assert_eq!(rows(&merged.files[0]), source_rows);
        assert_eq!(multiset(rows(&merged.files[0])), multiset(source_rows));
        // Values (not levels) are the same bytes.
        let values = |files: &[Bytes]| exact(files).into_iter().map(|(_, v)| v).collect::<Vec<_>>();
        assert_eq!(
            values(&merged.files),
            values(&[a1.clone(), b1.clone(), a2.clone(), b2.clone()])
        );

        // B first: widened the same way.
        let dir = tempfile::tempdir().unwrap();
        let sources = named(vec![b1.clone(), a1.clone()]);
        let merged = merge_files(dir.path(), 1 << 30, &sources).unwrap();
        let md = metadata(&merged.files[0]);
        assert_eq!(squash(&schema_text(&md)), squash(widened_text));
        let source_rows: Vec<String> = sources.iter().flat_map(|s| rows(&s.1)).collect();
        assert_eq!(rows(&merged.files[0]), source_rows);

        // Only A sources: A's schema exactly, no widening.
        let dir = tempfile::tempdir().unwrap();
        let sources = named(vec![a1.clone(), a2.clone()]);
        let merged = merge_files(dir.path(), 1 << 30, &sources).unwrap();
        check_merge(&sources, &merged);

        // Split outputs: each output widens only for its own sources.
        let dir = tempfile::tempdir().unwrap();
        let sources = named(vec![a1.clone(), a2.clone(), b1.clone(), b2]);
        let size = |f: &Bytes| metadata(f).row_group(0).compressed_size() as u64;
        let merged = merge_files(dir.path(), size(&a1) + size(&a2), &sources).unwrap();
        assert_eq!(merged.outputs.len(), 2);
        assert_eq!(
            metadata(&merged.files[0]).file_metadata().schema(),
            metadata(&a1).file_metadata().schema()
        );
        assert_eq!(
            metadata(&merged.files[1]).file_metadata().schema(),
            metadata(&b1).file_metadata().schema()
        );
        let source_rows: Vec<String> = sources.iter().flat_map(|s| rows(&s.1)).collect();
        let output_rows: Vec<String> = merged.files.iter().flat_map(rows).collect();
        assert_eq!(output_rows, source_rows);
    }

    #[test]
    fn definition_levels_map_through_widened_nodes() {
        use parquet::basic::Repetition;
        const OPTIONAL: Repetition = Repetition::OPTIONAL;
        const REPEATED: Repetition = Repetition::REPEATED;
        const REQUIRED: Repetition = Repetition::REQUIRED;
        // A required column made optional: its one level (0) becomes 1.
        assert_eq!(
            definition_level_map(&[REQUIRED], &[OPTIONAL]),
            Some(vec![1])
        );
        // A list with a required element made optional: null list 0, empty 1, element 2 → 3.
        assert_eq!(
            definition_level_map(
                &[OPTIONAL, REPEATED, REQUIRED],
                &[OPTIONAL, REPEATED, OPTIONAL]
            ),
            Some(vec![0, 1, 3])
        );
        // A required struct with an optional field, made optional: 0 (field null) → 1, 1 → 2.
        assert_eq!(
            definition_level_map(&[REQUIRED, OPTIONAL], &[OPTIONAL, OPTIONAL]),
            Some(vec![1, 2])
        );
        // An optional struct with a required field, made optional: 0 (struct null) → 0.
        assert_eq!(
            definition_level_map(&[OPTIONAL, REQUIRED], &[OPTIONAL, OPTIONAL]),
            Some(vec![0, 2])
        );
        assert_eq!(
            definition_level_map(&[OPTIONAL, REPEATED], &[OPTIONAL, REPEATED]),
            None
        );
    }

    #[test]
    fn metadata_that_changes_values_must_agree() {
        let base = [
            ("org.apache.spark.version", "3.5.1"),
            ("writer.time.zone", "UTC"),
        ];
        for (other, ok) in [
            (
                vec![
                    ("org.apache.spark.version", "3.3.0"),
                    ("writer.time.zone", "UTC"),
                ],
                true,
            ),
            (
                vec![
                    ("org.apache.spark.version", "3.5.1"),
                    ("writer.time.zone", "UTC"),
                    ("unrelated", "x"),
                ],
                true,
            ),
            (
                vec![
                    ("org.apache.spark.version", "2.4.8"),
                    ("writer.time.zone", "UTC"),
                ],
                false,
            ),
            (
                vec![
                    ("org.apache.spark.version", "3.0.1"),
                    ("writer.time.zone", "UTC"),
                ],
                false,
            ),
            (vec![("writer.time.zone", "UTC")], false),
            (
                vec![
                    ("org.apache.spark.version", "3.5.1"),
                    ("writer.time.zone", "Europe/Paris"),
                ],
                false,
            ),
            (
                vec![
                    ("org.apache.spark.version", "3.5.1"),
                    ("writer.time.zone", "UTC"),
                    ("org.apache.spark.legacyINT96", ""),
                ],
                false,
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let sources = named(vec![
                legacy_file(0..10, 5, Compression::SNAPPY, &base),
                legacy_file(10..20, 5, Compression::SNAPPY, &other),
            ]);
            match merge_files(dir.path(), 1 << 30, &sources) {
                Ok(merged) => {
                    assert!(ok, "{other:?} merged");
                    check_merge(&sources, &merged);
                }
                Err(e) => {
                    assert!(!ok, "{other:?}: {e}");
                    assert_eq!(e.reason(), "metadata_mismatch");
                }
            }
        }
    }

    #[test]
    fn corrupt_sources_are_refused() {
        let good = legacy_file(0..50, 10, Compression::SNAPPY, SPARK_META);
        let mut flipped = good.to_vec();
        // A byte inside the first column chunk's data.
        flipped[40] ^= 0x55;
        let cases: Vec<(&str, Bytes)> = vec![
            ("truncated", good.slice(..good.len() - 10)),
            ("no footer magic", good.slice(..good.len() - 1)),
            ("text", Bytes::from_static(b"id,name\n1,a\n2,b\n")),
            ("tiny", Bytes::from_static(b"PAR1")),
            (
                "no header magic",
                Bytes::from([b"XXXX".as_slice(), &good[4..]].concat()),
            ),
            ("flipped page byte", Bytes::from(flipped)),
        ];
        for (what, bad) in cases {
            let dir = tempfile::tempdir().unwrap();
            let r = merge_files(
                dir.path(),
                1 << 30,
                &[("ok".to_owned(), good.clone()), (what.to_owned(), bad)],
            );
            match r {
                Err(e) => {
                    assert!(
                        matches!(e.reason(), "corrupt" | "unsupported"),
                        "{what}: {e}"
                    );
                    assert!(e.to_string().starts_with(what), "{e}");
                }
                // A flipped byte may still decode (e.g. inside a value): then the rows read
                // must be what the bytes say; the merge copies them faithfully.
                Ok(merged) => {
                    assert_eq!(what, "flipped page byte");
                    assert_eq!(merged.outputs.iter().map(|o| o.rows).sum::<u64>(), 100);
                }
            }
        }
    }

    #[test]
    fn footer_helpers() {
        let f = legacy_file(0..77, 10, Compression::SNAPPY, SPARK_META);
        let len = parquet_footer_len(&f[f.len() - 8..]).unwrap();
        assert!(len > 0 && len < f.len() as u64);
        let tail = f.slice(f.len() - len as usize - 8..);
        assert_eq!(parquet_rows_from_tail(tail).unwrap(), 77);
        // More bytes than needed are fine; fewer are not.
        assert_eq!(
            parquet_rows_from_tail(f.slice(f.len() - len as usize - 100..)).unwrap(),
            77
        );
        assert_eq!(parquet_rows_from_tail(f.clone()).unwrap(), 77);
        let e = parquet_rows_from_tail(f.slice(f.len() - len as usize - 7..)).unwrap_err();
        assert_eq!(e.reason(), "corrupt");
        assert_eq!(
            parquet_rows_from_tail(f.slice(f.len() - 5..))
                .unwrap_err()
                .reason(),
            "corrupt"
        );
        // A file without rows.
        let empty = nested_file(0..0, 10, Compression::SNAPPY, &[]);
        assert_eq!(parquet_rows_from_tail(empty).unwrap(), 0);
        // Wrong sizes and magic.
        assert_eq!(
            parquet_footer_len(&f[f.len() - 9..]).unwrap_err().reason(),
            "corrupt"
        );
        assert_eq!(
            parquet_footer_len(b"\x10\0\0\0PAR2").unwrap_err().reason(),
            "corrupt"
        );
        assert_eq!(
            parquet_footer_len(b"\x10\0\0\0PARE").unwrap_err().reason(),
            "unsupported"
        );
        assert_eq!(parquet_footer_len(b"\x10\x01\0\0PAR1").unwrap(), 272);
        assert_eq!(
            parquet_footer_len(b"\xff\xff\xff\xffPAR1").unwrap(),
            u64::from(u32::MAX)
        );
        // A corrupted footer.
        let mut bad = f[f.len() - len as usize - 8..].to_vec();
        bad[3] ^= 0xff;
        bad[4] ^= 0xff;
        let e = parquet_rows_from_tail(Bytes::from(bad))
            .unwrap_err()
            .with_file("x.parquet");
        assert!(e.to_string().starts_with("x.parquet: corrupt"), "{e}");
    }
}
