//! Merges that must keep every row exactly: nested types under every codec, INT96 and
//! decimals, output sizing, codecs, dictionary encoding, empty sources; and a throughput
//! measurement.

use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, Encoding, GzipLevel, Type as PhysicalType, ZstdLevel};
use parquet::data_type::{
    ByteArrayType, DataType, FixedLenByteArrayType, Int32Type, Int64Type, Int96Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use super::fixtures::*;
use super::readback::*;
use crate::native::format::{MergerOptions, NativeFormat, merger};

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
            props = props.set_column_compression(c.path().clone(), codec_of(&c.path().string()));
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
                            .write_batch(&v, (md > 0).then_some(&d[..]), (mr > 0).then_some(&p[..]))
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
