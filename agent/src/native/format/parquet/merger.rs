//! The Parquet [`Merger`]: each source is checked (magic, footer row count, schema and
//! metadata against the first source's), its non-empty row groups wait until their encoded
//! size reaches the target, and then become one output of one row group, its columns encoded
//! in parallel (`encode.rs`) with the first source's codecs and key-value metadata, and checked
//! (rows per column, in the row group and in the footer).

use std::io::BufWriter;
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, Type as PhysicalType};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{SchemaDescPtr, SchemaDescriptor};

use super::encode::{Columns, write_columns};
use super::metadata::check_metadata;
use super::schema::{check_schema, widen};
use super::{MAGIC, parquet_footer_len, source_error};
use crate::native::format::{FormatError, Merger, OutputNaming, SpooledOutput, catch_panics};

/// The write buffer of an output file.
const WRITE_BUFFER: usize = 1 << 20;

/// One source file, parsed.
pub(super) struct Source {
    pub(super) name: String,
    pub(super) reader: SerializedFileReader<Bytes>,
}

/// A source row group waiting for its output.
pub(super) struct Pending {
    pub(super) source: Arc<Source>,
    pub(super) row_group: usize,
    pub(super) rows: u64,
}

/// What the first source fixed for the whole merge.
pub(super) struct Reference {
    pub(super) file: String,
    pub(super) schema: SchemaDescPtr,
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
            Arc::clone(&properties),
        )?;
        let mut row_group = writer.next_row_group()?;
        let columns = Columns {
            pending: &pending,
            root: &root,
            schema: &schema,
            properties: &properties,
            scratch: self.naming.spool_dir(),
            scratch_prefix: &file_name,
        };
        write_columns(&columns, &mut row_group, expected)?;
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
