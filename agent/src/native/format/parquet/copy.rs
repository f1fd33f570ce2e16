//! Copying one leaf column of the pending source row groups into the output, for each
//! physical type: values, definition and repetition levels read with the typed
//! `ColumnReader` and written unchanged with the typed `ColumnWriter`, definition levels
//! remapped where the output widened a `REQUIRED` node to `OPTIONAL`. Levels out of range and
//! counts that disagree with the chunk or row group are refused as corrupt.

use parquet::basic::Repetition;
use parquet::column::reader::ColumnReaderImpl;
use parquet::column::writer::ColumnWriterImpl;
use parquet::data_type::DataType;
use parquet::file::reader::FileReader;
use parquet::schema::types::{ColumnPath, Type};

use super::merger::Pending;
use super::schema::{definition_level_map, path_repetitions};
use super::source_error;
use crate::native::format::{FormatError, catch_panics};

/// Records read and written per batch, per column.
const BATCH_RECORDS: usize = 8192;

/// The output column being written.
pub(super) struct Target<'a> {
    pub(super) root: &'a Type,
    pub(super) path: &'a ColumnPath,
    pub(super) index: usize,
}

/// Copies leaf column `target.index` of every pending row group into `writer`, unchanged
/// (values, definition and repetition levels, in order; definition levels remapped where the
/// output made a REQUIRED node OPTIONAL); the records copied.
pub(super) fn copy_column<T: DataType>(
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
