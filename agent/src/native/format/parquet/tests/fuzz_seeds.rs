//! The seed inputs of the `parquet_merge` fuzz target, written from the fixtures (run by hand
//! after changing them: `cargo test -p hive-smallfiles-agent --lib write_parquet_merge_seeds
//! -- --ignored`). Each seed is a flags byte and source files split at
//! `fuzzing::PARQUET_SEPARATOR`.

use parquet::basic::{Compression, ZstdLevel};

use super::fixtures::{SPARK_META, legacy_file, nested_file};
use crate::fuzzing::{PARQUET_SEPARATOR, parquet_merge};

fn seed(flags: u8, files: &[bytes::Bytes]) -> Vec<u8> {
    let mut out = vec![flags];
    for (i, f) in files.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(PARQUET_SEPARATOR);
        }
        out.extend_from_slice(f);
    }
    out
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let zstd = Compression::ZSTD(ZstdLevel::default());
    vec![
        (
            "nested-two-sources",
            seed(
                2,
                &[
                    nested_file(0..6, 4, Compression::SNAPPY, &[]),
                    nested_file(6..9, 2, Compression::SNAPPY, &[]),
                ],
            ),
        ),
        (
            "nested-one-output-per-group",
            seed(0, &[nested_file(0..5, 2, Compression::UNCOMPRESSED, &[])]),
        ),
        (
            "spark-int96-zstd",
            seed(
                6,
                &[
                    legacy_file(0..5, 3, zstd, SPARK_META),
                    legacy_file(5..7, 1, zstd, SPARK_META),
                ],
            ),
        ),
        (
            "schema-mismatch",
            seed(
                2,
                &[
                    legacy_file(0..2, 2, Compression::UNCOMPRESSED, &[]),
                    nested_file(0..2, 2, Compression::UNCOMPRESSED, &[]),
                ],
            ),
        ),
        (
            "empty-and-gzip",
            seed(
                2,
                &[
                    bytes::Bytes::new(),
                    nested_file(0..3, 3, Compression::GZIP(Default::default()), &[]),
                ],
            ),
        ),
    ]
}

#[test]
fn seeds_merge() {
    for (name, data) in seeds() {
        assert!(data.len() < 64 << 10, "{name}: {} bytes", data.len());
        parquet_merge(&data);
    }
}

#[test]
#[ignore = "writes the seed corpus"]
fn write_parquet_merge_seeds() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/parquet_merge");
    std::fs::create_dir_all(dir).unwrap();
    for (name, data) in seeds() {
        std::fs::write(format!("{dir}/seed-{name}"), data).unwrap();
    }
}
