//! Sample data files for merge tests and benchmarks, written with the parquet crate (not the
//! agent's code): small Snappy Parquet files with an `id`, a `value` and a nullable `name`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;

/// A Parquet file of `rows` rows with ids from `first_id`; every tenth `name` is NULL, the
/// others are `<label>-<row>`.
///
/// # Panics
/// When the parquet crate cannot write (test helper).
pub fn parquet_file(first_id: i64, rows: usize, label: &str) -> Vec<u8> {
    let ids: Vec<i64> = (0..rows).map(|r| first_id + r as i64).collect();
    let values: Vec<f64> = (0..rows).map(|r| r as f64 * 1.5).collect();
    let names: Vec<Option<String>> = (0..rows)
        .map(|r| (r % 10 != 3).then(|| format!("{label}-{r}")))
        .collect();
    let batch = RecordBatch::try_from_iter(vec![
        ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
        ("value", Arc::new(Float64Array::from(values)) as ArrayRef),
        ("name", Arc::new(StringArray::from(names)) as ArrayRef),
    ])
    .expect("batch");
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props))
        .expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    out
}
