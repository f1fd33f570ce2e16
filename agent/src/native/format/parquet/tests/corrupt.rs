//! Corrupt sources are refused, never a panic; and the footer helpers verification uses.

use bytes::Bytes;
use parquet::basic::Compression;

use super::super::{parquet_footer_len, parquet_rows_from_tail};
use super::fixtures::*;
use super::readback::*;

#[test]
fn flipped_bytes_never_panic() {
    let good = legacy_file(0..60, 20, Compression::SNAPPY, SPARK_META);
    let nested = nested_file(0..60, 20, Compression::UNCOMPRESSED, &[]);
    let (mut ok, mut refused) = (0, 0);
    for base in [&good, &nested] {
        for pos in (0..base.len()).step_by(31) {
            for mask in [0x01u8, 0xff] {
                let mut bad = base.to_vec();
                bad[pos] ^= mask;
                let dir = tempfile::tempdir().unwrap();
                let sources = [
                    ("ok".to_owned(), base.clone()),
                    ("bad".to_owned(), Bytes::from(bad)),
                ];
                let result = std::panic::catch_unwind(|| {
                    merge_files(dir.path(), 1 << 30, &sources).map(|m| m.outputs)
                });
                match result {
                    Err(_) => panic!("a corrupt byte at {pos} panicked"),
                    Ok(Ok(outputs)) => {
                        ok += 1;
                        // Whatever was read, each output is a valid file of the rows it
                        // claims.
                        for o in outputs {
                            let f = Bytes::from(std::fs::read(&o.local_path).unwrap());
                            assert_eq!(parquet_rows_from_tail(f).unwrap(), o.rows);
                        }
                    }
                    Ok(Err(e)) => {
                        refused += 1;
                        assert!(
                            matches!(
                                e.reason(),
                                "corrupt" | "unsupported" | "schema_mismatch" | "metadata_mismatch"
                            ),
                            "{pos}: {e}"
                        );
                    }
                }
            }
        }
    }
    eprintln!("flipped bytes: {ok} merged, {refused} refused");
    assert!(refused > 0);
}

#[test]
fn corrupt_sources_are_refused() {
    let good = legacy_file(0..50, 10, Compression::SNAPPY, SPARK_META);
    let mut flipped = good.to_vec();
    // A byte inside the first column chunk's data.
    flipped[40] ^= 0x55;
    let cases: Vec<(&str, Bytes)> = vec![
        ("truncated", good.slice(..good.len() - 10)),
        ("no footer magic", good.slice(..good.len() - 1)),
        ("text", Bytes::from_static(b"id,name\n1,a\n2,b\n")),
        ("tiny", Bytes::from_static(b"PAR1")),
        (
            "no header magic",
            Bytes::from([b"XXXX".as_slice(), &good[4..]].concat()),
        ),
        ("flipped page byte", Bytes::from(flipped)),
    ];
    for (what, bad) in cases {
        let dir = tempfile::tempdir().unwrap();
        let r = merge_files(
            dir.path(),
            1 << 30,
            &[("ok".to_owned(), good.clone()), (what.to_owned(), bad)],
        );
        match r {
            Err(e) => {
                assert!(
                    matches!(e.reason(), "corrupt" | "unsupported"),
                    "{what}: {e}"
                );
                assert!(e.to_string().starts_with(what), "{e}");
            }
            // A flipped byte may still decode (e.g. inside a value): then the rows read
            // must be what the bytes say; the merge copies them faithfully.
            Ok(merged) => {
                assert_eq!(what, "flipped page byte");
                assert_eq!(merged.outputs.iter().map(|o| o.rows).sum::<u64>(), 100);
            }
        }
    }
}

#[test]
fn footer_helpers() {
    let f = legacy_file(0..77, 10, Compression::SNAPPY, SPARK_META);
    let len = parquet_footer_len(&f[f.len() - 8..]).unwrap();
    assert!(len > 0 && len < f.len() as u64);
    let tail = f.slice(f.len() - len as usize - 8..);
    assert_eq!(parquet_rows_from_tail(tail).unwrap(), 77);
    // More bytes than needed are fine; fewer are not.
    assert_eq!(
        parquet_rows_from_tail(f.slice(f.len() - len as usize - 100..)).unwrap(),
        77
    );
    assert_eq!(parquet_rows_from_tail(f.clone()).unwrap(), 77);
    let e = parquet_rows_from_tail(f.slice(f.len() - len as usize - 7..)).unwrap_err();
    assert_eq!(e.reason(), "corrupt");
    assert_eq!(
        parquet_rows_from_tail(f.slice(f.len() - 5..))
            .unwrap_err()
            .reason(),
        "corrupt"
    );
    // A file without rows.
    let empty = nested_file(0..0, 10, Compression::SNAPPY, &[]);
    assert_eq!(parquet_rows_from_tail(empty).unwrap(), 0);
    // Wrong sizes and magic.
    assert_eq!(
        parquet_footer_len(&f[f.len() - 9..]).unwrap_err().reason(),
        "corrupt"
    );
    assert_eq!(
        parquet_footer_len(b"\x10\0\0\0PAR2").unwrap_err().reason(),
        "corrupt"
    );
    assert_eq!(
        parquet_footer_len(b"\x10\0\0\0PARE").unwrap_err().reason(),
        "unsupported"
    );
    assert_eq!(parquet_footer_len(b"\x10\x01\0\0PAR1").unwrap(), 272);
    assert_eq!(
        parquet_footer_len(b"\xff\xff\xff\xffPAR1").unwrap(),
        u64::from(u32::MAX)
    );
    // A corrupted footer.
    let mut bad = f[f.len() - len as usize - 8..].to_vec();
    bad[3] ^= 0xff;
    bad[4] ^= 0xff;
    let e = parquet_rows_from_tail(Bytes::from(bad))
        .unwrap_err()
        .with_file("x.parquet");
    assert!(e.to_string().starts_with("x.parquet: corrupt"), "{e}");
}
