//! Independent ground truth about the rows in data files, for tests of merges: the rows of a
//! Parquet file through the parquet crate's record API and the lines of a text file, each in a
//! canonical string form, and multisets of them. Nothing here uses the agent's code.
//!
//! Canonical forms: a Parquet row is `{name: value, …}` in schema order, nested groups,
//! lists (`[…]`) and maps (`{k -> v, …}`, in stored order) spelled out recursively; strings
//! are quoted and escaped (`"a\tb"`), binary is hex (`0x00ff`), floating point uses Rust's
//! shortest round-trip form (`NaN`, `-0.0`, `inf` are distinct), decimals, dates and
//! timestamps use the record API's exact text. INT96 timestamps are read by the record API at
//! millisecond precision (`Field::convert_int96`); compare through an engine, or column data,
//! for finer precision. A text line is the bytes between `\n`s (a `\r` before the `\n` stays
//! part of the line), plus the bytes after the last `\n` if any.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;

use bytes::Bytes;
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::record::{Field, Row};

/// The rows of a Parquet file, in file order, each in the canonical string form.
///
/// # Panics
/// When the file cannot be read (these are test helpers).
pub fn parquet_rows(data: &[u8]) -> Vec<String> {
    let reader = SerializedFileReader::new(Bytes::copy_from_slice(data))
        .unwrap_or_else(|e| panic!("not a readable Parquet file: {e}"));
    reader
        .get_row_iter(None)
        .unwrap_or_else(|e| panic!("Parquet rows: {e}"))
        .map(|row| {
            let row = row.unwrap_or_else(|e| panic!("Parquet row: {e}"));
            let mut out = String::new();
            render_row(&row, &mut out);
            out
        })
        .collect()
}

fn render_row(row: &Row, out: &mut String) {
    out.push('{');
    for (i, (name, field)) in row.get_column_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str(": ");
        render_field(field, out);
    }
    out.push('}');
}

fn render_field(field: &Field, out: &mut String) {
    match field {
        Field::Null => out.push_str("null"),
        Field::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
        Field::Byte(v) => out.push_str(&v.to_string()),
        Field::Short(v) => out.push_str(&v.to_string()),
        Field::Int(v) => out.push_str(&v.to_string()),
        Field::Long(v) => out.push_str(&v.to_string()),
        Field::UByte(v) => out.push_str(&v.to_string()),
        Field::UShort(v) => out.push_str(&v.to_string()),
        Field::UInt(v) => out.push_str(&v.to_string()),
        Field::ULong(v) => out.push_str(&v.to_string()),
        Field::Float16(v) => {
            let _ = write!(out, "{:?}", f32::from(*v));
        }
        Field::Float(v) => {
            let _ = write!(out, "{v:?}");
        }
        Field::Double(v) => {
            let _ = write!(out, "{v:?}");
        }
        Field::Str(s) => {
            let _ = write!(out, "{s:?}");
        }
        Field::Bytes(b) => {
            out.push_str("0x");
            for byte in b.data() {
                let _ = write!(out, "{byte:02x}");
            }
        }
        // Exact text forms of the record API (decimal digits with the scale, ISO dates and
        // timestamps in UTC).
        Field::Decimal(_)
        | Field::Date(_)
        | Field::TimeMillis(_)
        | Field::TimeMicros(_)
        | Field::TimestampMillis(_)
        | Field::TimestampMicros(_) => out.push_str(&field.to_string()),
        Field::Group(row) => render_row(row, out),
        Field::ListInternal(list) => {
            out.push('[');
            for (i, e) in list.elements().iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_field(e, out);
            }
            out.push(']');
        }
        Field::MapInternal(map) => {
            out.push('{');
            for (i, (k, v)) in map.entries().iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_field(k, out);
                out.push_str(" -> ");
                render_field(v, out);
            }
            out.push('}');
        }
    }
}

/// The lines of a text file (gzip-decompressed when `gzip`, all members), in order. Lines that
/// are not UTF-8 are given as `bytes:<hex>`.
///
/// # Panics
/// When `gzip` and the data is not a complete gzip stream.
pub fn text_lines(data: &[u8], gzip: bool) -> Vec<String> {
    let text = if gzip {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("not a gzip file: {e}"));
        out
    } else {
        data.to_vec()
    };
    let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    // After a final `\n` (or in an empty file) the split leaves an empty piece that is no line.
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
        .into_iter()
        .map(|l| match std::str::from_utf8(l) {
            Ok(s) => s.to_owned(),
            Err(_) => {
                let mut s = String::from("bytes:");
                for b in l {
                    let _ = write!(s, "{b:02x}");
                }
                s
            }
        })
        .collect()
}

/// How many times each string occurs.
pub fn multiset(v: Vec<String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in v {
        *m.entry(s).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_split_on_newlines_only() {
        assert_eq!(text_lines(b"", false), Vec::<String>::new());
        assert_eq!(text_lines(b"\n", false), vec![""]);
        assert_eq!(text_lines(b"a\r\nb\n\nc", false), vec!["a\r", "b", "", "c"]);
        assert_eq!(text_lines(b"x\xff\n", false), vec!["bytes:78ff"]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"1\n2").unwrap();
        let mut two = gz.finish().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"3\n").unwrap();
        two.extend(gz.finish().unwrap());
        assert_eq!(text_lines(&two, true), vec!["1", "23"]);
    }

    #[test]
    fn multisets_count() {
        let m = multiset(vec!["b".into(), "a".into(), "b".into()]);
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            vec![("a".into(), 1), ("b".into(), 2)]
        );
    }

    #[test]
    fn parquet_rows_spell_out_values() {
        use std::sync::Arc;

        use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type};
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        use parquet::schema::parser::parse_message_type;

        let schema = Arc::new(
            parse_message_type(
                "message m { required int32 id; optional double x; optional binary s (UTF8);
                 optional group l (LIST) { repeated group list { optional int32 element; } } }",
            )
            .unwrap(),
        );
        let mut out = Vec::new();
        let mut w = SerializedFileWriter::new(
            &mut out,
            schema,
            Arc::new(WriterProperties::builder().build()),
        )
        .unwrap();
        let mut rg = w.next_row_group().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<Int32Type>()
            .write_batch(&[1, 2], None, None)
            .unwrap();
        c.close().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<DoubleType>()
            .write_batch(&[f64::NAN, -0.0], Some(&[1, 1]), None)
            .unwrap();
        c.close().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<ByteArrayType>()
            .write_batch(&[ByteArray::from("a\"\tb")], Some(&[1, 0]), None)
            .unwrap();
        c.close().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        // Row 1: [7, null]; row 2: null list.
        c.typed::<Int32Type>()
            .write_batch(&[7], Some(&[3, 2, 0]), Some(&[0, 1, 0]))
            .unwrap();
        c.close().unwrap();
        rg.close().unwrap();
        w.close().unwrap();
        assert_eq!(
            parquet_rows(&out),
            vec![
                r#"{id: 1, x: NaN, s: "a\"\tb", l: [7, null]}"#,
                "{id: 2, x: -0.0, s: null, l: null}",
            ]
        );
    }
}
