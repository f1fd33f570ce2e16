//! Encoding the columns of one output in parallel: every leaf column of the pending row
//! groups is copied ([`copy_column`]) by one of [`ENCODERS`] threads into a column chunk of
//! its own, in a scratch file beside the outputs, and the chunks are spliced into the
//! output's row group in column order (`SerializedRowGroupWriter::append_column`, which
//! rewrites the chunk's offsets) as they become ready, each scratch file removed once
//! spliced. The bytes of a chunk are the ones the sequential writer would write.
//!
//! Memory: per encoder, one batch of [`copy_column`]'s records and one page being encoded;
//! encoded chunks wait on disk, not in memory. The sources are the ones already held.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use parquet::basic::Type as PhysicalType;
use parquet::column::writer::{ColumnCloseResult, ColumnWriter, get_column_writer};
use parquet::data_type::{
    BoolType, ByteArrayType, DoubleType, FixedLenByteArrayType, FloatType, Int32Type, Int64Type,
    Int96Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedPageWriter, SerializedRowGroupWriter, TrackedWrite};
use parquet::schema::types::{SchemaDescriptor, Type};

use super::copy::{Target, copy_column};
use super::merger::Pending;
use crate::native::format::FormatError;

/// Threads encoding columns at once. The agent runs on small machines (2 cores measured):
/// more encoders than cores only add scratch files waiting to be spliced.
pub(super) const ENCODERS: usize = 2;

/// One column chunk encoded into its scratch file.
struct Encoded {
    path: PathBuf,
    file: File,
    close: ColumnCloseResult,
    records: u64,
}

/// What the columns of one output are encoded from and into.
pub(super) struct Columns<'a> {
    pub(super) pending: &'a [Pending],
    pub(super) root: &'a Type,
    pub(super) schema: &'a SchemaDescriptor,
    pub(super) properties: &'a Arc<WriterProperties>,
    /// Where scratch files go, and the prefix of their names.
    pub(super) scratch: &'a Path,
    pub(super) scratch_prefix: &'a str,
}

/// Encodes every leaf column (on up to [`ENCODERS`] threads) and splices them into
/// `row_group` in order; checks that each holds `expected` records.
pub(super) fn write_columns<W: Write + Send>(
    columns: &Columns<'_>,
    row_group: &mut SerializedRowGroupWriter<'_, W>,
    expected: u64,
) -> Result<(), FormatError> {
    let count = columns.schema.num_columns();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let threads = ENCODERS.min(count).max(1);
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Result<Encoded, FormatError>)>();
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    let result = encode_column(columns, index);
                    let failed = result.is_err();
                    if tx.send((index, result)).is_err() || failed {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut ready: BTreeMap<usize, Encoded> = BTreeMap::new();
        let mut spliced = 0usize;
        let result = (|| {
            while spliced < count {
                let Ok((index, encoded)) = rx.recv() else {
                    return Err(FormatError::Verification(format!(
                        "the column encoders stopped after {spliced} of {count} columns"
                    )));
                };
                ready.insert(index, encoded?);
                while let Some(e) = ready.remove(&spliced) {
                    let path = columns.schema.column(spliced).path().clone();
                    if e.records != expected {
                        return Err(FormatError::Verification(format!(
                            "column `{path}`: {} records copied, {expected} expected",
                            e.records
                        )));
                    }
                    let spliced_result = row_group.append_column(&e.file, e.close);
                    let _ = std::fs::remove_file(&e.path);
                    spliced_result?;
                    spliced += 1;
                }
            }
            Ok(())
        })();
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        // Chunks encoded but not spliced (after an error): their scratch files go.
        for e in ready.into_values() {
            let _ = std::fs::remove_file(&e.path);
        }
        for e in rx.iter().filter_map(|(_, e)| e.ok()) {
            let _ = std::fs::remove_file(&e.path);
        }
        result
    })
}

/// Encodes leaf column `index` of the pending row groups into a scratch file of its own.
fn encode_column(columns: &Columns<'_>, index: usize) -> Result<Encoded, FormatError> {
    let path = columns
        .scratch
        .join(format!(".{}-column-{index:05}", columns.scratch_prefix));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let result = (|| {
        let descr = columns.schema.column(index);
        let mut sink = TrackedWrite::new(&file);
        let mut writer = get_column_writer(
            Arc::clone(&descr),
            Arc::clone(columns.properties),
            Box::new(SerializedPageWriter::new(&mut sink)),
        );
        let target = Target {
            root: columns.root,
            path: descr.path(),
            index,
        };
        let records = copy_typed(columns.pending, &target, &mut writer)?;
        let close = writer.close()?;
        sink.into_inner()?;
        Ok((close, records))
    })();
    match result {
        Ok((close, records)) => Ok(Encoded {
            path,
            file,
            close,
            records,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

/// The physical type a column writer writes.
fn target_physical(writer: &ColumnWriter<'_>) -> PhysicalType {
    match writer {
        ColumnWriter::BoolColumnWriter(_) => PhysicalType::BOOLEAN,
        ColumnWriter::Int32ColumnWriter(_) => PhysicalType::INT32,
        ColumnWriter::Int64ColumnWriter(_) => PhysicalType::INT64,
        ColumnWriter::Int96ColumnWriter(_) => PhysicalType::INT96,
        ColumnWriter::FloatColumnWriter(_) => PhysicalType::FLOAT,
        ColumnWriter::DoubleColumnWriter(_) => PhysicalType::DOUBLE,
        ColumnWriter::ByteArrayColumnWriter(_) => PhysicalType::BYTE_ARRAY,
        ColumnWriter::FixedLenByteArrayColumnWriter(_) => PhysicalType::FIXED_LEN_BYTE_ARRAY,
    }
}

/// [`copy_column`] for the column's physical type.
fn copy_typed(
    pending: &[Pending],
    target: &Target<'_>,
    writer: &mut ColumnWriter<'_>,
) -> Result<u64, FormatError> {
    let physical = target_physical(writer);
    match physical {
        PhysicalType::BOOLEAN => copy_column::<BoolType>(pending, target, writer),
        PhysicalType::INT32 => copy_column::<Int32Type>(pending, target, writer),
        PhysicalType::INT64 => copy_column::<Int64Type>(pending, target, writer),
        PhysicalType::INT96 => copy_column::<Int96Type>(pending, target, writer),
        PhysicalType::FLOAT => copy_column::<FloatType>(pending, target, writer),
        PhysicalType::DOUBLE => copy_column::<DoubleType>(pending, target, writer),
        PhysicalType::BYTE_ARRAY => copy_column::<ByteArrayType>(pending, target, writer),
        PhysicalType::FIXED_LEN_BYTE_ARRAY => {
            copy_column::<FixedLenByteArrayType>(pending, target, writer)
        }
    }
}
