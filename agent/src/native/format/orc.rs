//! ORC: row counts from the file footer.
//!
//! Owns reading an ORC file's row count for verification. ORC files are not merged here (Hive's
//! `CONCATENATE` merges them stripe by stripe); the count is read from the footer through
//! orc-rust's metadata reader (postscript, footer, stripe list), without decoding any data.

use bytes::Bytes;

use super::{FormatError, catch_panics};

/// ORC: the rows of a file, from its footer (the whole file given). The footer's row count
/// must equal the sum of its stripes' row counts. A zero-length file holds no rows (0).
pub fn orc_rows(data: Bytes) -> Result<u64, FormatError> {
    if data.is_empty() {
        return Ok(0);
    }
    let mut reader = data;
    let metadata = catch_panics("", || {
        orc_rust::reader::metadata::read_metadata(&mut reader)
            .map_err(|e| FormatError::corrupt("", format!("ORC footer: {e}")))
    })?;
    let rows = metadata.number_of_rows();
    let in_stripes: u64 = metadata
        .stripe_metadatas()
        .iter()
        .map(|s| s.number_of_rows())
        .sum();
    if rows != in_stripes {
        return Err(FormatError::corrupt(
            "",
            format!("ORC footer declares {rows} rows, its stripes hold {in_stripes}"),
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn orc_file(batches: &[usize], stripe_bytes: usize) -> Vec<u8> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let mut out = Vec::new();
        let mut writer = orc_rust::ArrowWriterBuilder::new(&mut out, Arc::clone(&schema))
            .with_stripe_byte_size(stripe_bytes)
            .try_build()
            .unwrap();
        let mut next = 0i64;
        for &n in batches {
            let ids: Vec<Option<i64>> = (next..next + n as i64)
                .map(|i| (i % 5 != 0).then_some(i))
                .collect();
            let strings: Vec<Option<String>> = (next..next + n as i64)
                .map(|i| (i % 3 != 0).then(|| format!("row {i} \u{e9}")))
                .collect();
            next += n as i64;
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from(ids)) as ArrayRef,
                    Arc::new(StringArray::from(strings)) as ArrayRef,
                ],
            )
            .unwrap();
            writer.write(&batch).unwrap();
        }
        writer.close().unwrap();
        out
    }

    #[test]
    fn rows_from_the_footer() {
        // One stripe, several stripes, and a file without rows.
        for (batches, stripe) in [
            (vec![10], 64 << 20),
            (vec![1000, 2500, 7, 3000], 1024),
            (vec![], 64 << 20),
        ] {
            let data = orc_file(&batches, stripe);
            let expected: usize = batches.iter().sum();
            assert_eq!(
                orc_rows(Bytes::from(data)).unwrap(),
                expected as u64,
                "{batches:?}"
            );
        }
        let multi = orc_file(&[1000, 2500, 7, 3000], 1024);
        let stripes = orc_rust::reader::metadata::read_metadata(&mut Bytes::from(multi))
            .unwrap()
            .stripe_metadatas()
            .len();
        assert!(stripes > 1, "{stripes} stripes");
        assert_eq!(orc_rows(Bytes::new()).unwrap(), 0);
    }

    #[test]
    fn garbage_is_corrupt() {
        let good = orc_file(&[100], 64 << 20);
        for bad in [
            b"not an orc file at all".to_vec(),
            good[..good.len() - 5].to_vec(),
            vec![0u8; 3],
        ] {
            let e = orc_rows(Bytes::from(bad)).unwrap_err().with_file("x.orc");
            assert_eq!(e.reason(), "corrupt", "{e}");
            assert!(e.to_string().starts_with("x.orc: corrupt"), "{e}");
        }
    }
}
