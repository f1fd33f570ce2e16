//! Reading merged files back (rows through the record API, exact levels and values per
//! column), running a merge, and [`check_merge`]: everything a merge must keep.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::Type as PhysicalType;
use parquet::data_type::{
    BoolType, ByteArrayType, DataType, DoubleType, FixedLenByteArrayType, FloatType, Int32Type,
    Int64Type, Int96Type,
};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{FileReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;

use super::super::parquet_rows_from_tail;
use crate::native::format::{
    FormatError, MergerOptions, NativeFormat, SpooledOutput, merger_with_options,
};

pub(super) fn metadata(data: &Bytes) -> Arc<ParquetMetaData> {
    Arc::new(
        SerializedFileReader::new(data.clone())
            .unwrap()
            .metadata()
            .clone(),
    )
}

/// Rows through the record API, in file order.
pub(super) fn rows(data: &Bytes) -> Vec<String> {
    let reader = SerializedFileReader::new(data.clone()).unwrap();
    reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| r.unwrap().to_string())
        .collect()
}

pub(super) fn multiset(v: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
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
pub(super) fn exact(files: &[Bytes]) -> Vec<(Vec<String>, Vec<String>)> {
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
                    PhysicalType::FIXED_LEN_BYTE_ARRAY => dump::<FixedLenByteArrayType>(&*rg, i),
                };
                columns[i].0.extend(levels);
                columns[i].1.extend(values);
            }
        }
    }
    columns
}

pub(super) fn schema_text(md: &ParquetMetaData) -> String {
    let mut out = Vec::new();
    parquet::schema::printer::print_schema(&mut out, md.file_metadata().schema());
    String::from_utf8(out).unwrap()
}

pub(super) struct Merged {
    pub(super) counts: Vec<u64>,
    pub(super) outputs: Vec<SpooledOutput>,
    pub(super) files: Vec<Bytes>,
}

pub(super) fn merge_files(
    dir: &Path,
    target: u64,
    sources: &[(String, Bytes)],
) -> Result<Merged, FormatError> {
    merge_with(dir, target, sources, &MergerOptions::default())
}

pub(super) fn merge_with(
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
pub(super) fn check_merge(sources: &[(String, Bytes)], merged: &Merged) {
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

pub(super) fn named(files: Vec<Bytes>) -> Vec<(String, Bytes)> {
    files
        .into_iter()
        .enumerate()
        .map(|(i, f)| (format!("part-{i:05}-x.snappy.parquet"), f))
        .collect()
}
