//! Source files for the tests: nested arrow-written files with every kind of null, and
//! Spark/Hive-style files (INT96, decimals, legacy 2-level lists and maps) written with the
//! low-level API.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int8Array, Int32Array, Int32Builder, Int64Array, Int64Builder, ListBuilder, MapBuilder,
    RecordBatch, StringArray, StringBuilder, StructArray, TimestampMicrosecondArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType as ArrowType, Field, Fields, Schema, TimeUnit};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::data_type::{
    ByteArray, ByteArrayType, DataType, FixedLenByteArray, FixedLenByteArrayType, Int32Type,
    Int64Type, Int96, Int96Type,
};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// A batch of rows `ids` with flat, decimal, temporal and nested columns, nulls at every
/// level (top-level, list, list element, map, map value, struct, struct field).
pub(super) fn nested_batch(ids: std::ops::Range<i64>) -> RecordBatch {
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
                        opt(i, 7).then_some((i as i128 % 100 - 50) * 10_i128.pow(35) + i as i128)
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

pub(super) fn nested_schema() -> Arc<Schema> {
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

pub(super) fn kv(pairs: &[(&str, &str)]) -> Option<Vec<KeyValue>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| KeyValue::new((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

/// A file through arrow's writer, `ids` in row groups of `row_group` rows.
pub(super) fn nested_file(
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

pub(super) const SPARK_SCHEMA: &str = "
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

pub(super) fn write_typed<T: DataType>(
    rg: &mut parquet::file::writer::SerializedRowGroupWriter<'_, &mut Vec<u8>>,
    values: &[T::T],
    def: Option<&[i16]>,
    rep: Option<&[i16]>,
) {
    let mut col = rg.next_column().unwrap().unwrap();
    col.typed::<T>().write_batch(values, def, rep).unwrap();
    col.close().unwrap();
}

pub(super) fn legacy_file(
    ids: std::ops::Range<i32>,
    row_group: usize,
    codec: Compression,
    meta: &[(&str, &str)],
) -> Bytes {
    legacy_file_with_schema(SPARK_SCHEMA, ids, row_group, codec, meta)
}

pub(super) fn legacy_file_with_schema(
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

pub(super) const SPARK_META: &[(&str, &str)] = &[
    ("org.apache.spark.version", "3.5.1"),
    (
        "org.apache.spark.sql.parquet.row.metadata",
        r#"{"type":"struct","fields":[]}"#,
    ),
    ("org.apache.spark.legacyINT96", ""),
];

pub(super) fn codecs() -> Vec<Compression> {
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
