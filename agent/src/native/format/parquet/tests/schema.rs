//! Schema and metadata compatibility: differences that are refused, nullability differences
//! that are widened without changing a row, and key-value metadata that must agree.

use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, Repetition};
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use super::super::schema::{definition_level_map, path_repetitions};
use super::fixtures::*;
use super::readback::*;
use crate::native::format::{FormatError, NativeFormat, merger};

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
