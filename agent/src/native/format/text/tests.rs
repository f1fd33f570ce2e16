//! Tests of the text merge and line counter, and a throughput measurement.

use std::io::{Read, Write};
use std::path::Path;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::*;
use crate::native::format::{FormatError, NativeFormat, SpooledOutput, TextCompression, merger};

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn merge(
    dir: &Path,
    c: TextCompression,
    target: u64,
    sources: &[(&str, Vec<u8>)],
) -> Result<(Vec<u64>, Vec<SpooledOutput>), FormatError> {
    let mut m = merger(NativeFormat::Text(c), dir, target, "m");
    let mut counts = Vec::new();
    for (name, data) in sources {
        counts.push(m.push(name, Bytes::from(data.clone()))?);
    }
    Ok((counts, m.finish()?))
}

fn read_all(outputs: &[SpooledOutput], c: TextCompression) -> Vec<Vec<u8>> {
    outputs
        .iter()
        .map(|o| {
            let raw = std::fs::read(&o.local_path).unwrap();
            assert_eq!(raw.len() as u64, o.bytes, "{}", o.file_name);
            match c {
                TextCompression::None => raw,
                TextCompression::Gzip => gunzip(&raw),
            }
        })
        .collect()
}

#[test]
fn newline_count_matches_a_naive_count() {
    let mut data = Vec::new();
    let mut x = 12345u32;
    for _ in 0..200_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        data.push(if x % 7 == 0 { b'\n' } else { (x >> 16) as u8 });
    }
    for len in [
        0,
        1,
        31,
        32,
        255 * 32 - 1,
        255 * 32,
        255 * 32 + 1,
        data.len(),
    ] {
        let naive = data[..len].iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(count_newlines(&data[..len]), naive, "{len}");
    }
    // All newlines: lanes must not overflow.
    let all = vec![b'\n'; 255 * 32 * 3 + 7];
    assert_eq!(count_newlines(&all), all.len() as u64);
}

#[test]
fn concatenates_adding_missing_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let sources = vec![
        ("000000_0", b"a\tb\n1\t2\n".to_vec()),
        ("000001_0", b"no newline at end".to_vec()),
        ("000002_0", Vec::new()),
        ("000003_0", b"crlf\r\nline\r\n".to_vec()),
        ("000004_0", b"\n".to_vec()),
        ("000005_0", b"ends with cr\r".to_vec()),
        ("000006_0", b"\nstarts empty\n\n".to_vec()),
        ("000007_0", "unicode \u{e9}\u{4e2d}\n".as_bytes().to_vec()),
    ];
    let (counts, outputs) = merge(dir.path(), TextCompression::None, 1 << 30, &sources).unwrap();
    assert_eq!(counts, vec![2, 1, 0, 2, 1, 1, 3, 1]);
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].file_name, "m-00000");
    assert_eq!(outputs[0].rows, 11);
    let text = &read_all(&outputs, TextCompression::None)[0];
    let expected: &[u8] = b"a\tb\n1\t2\nno newline at end\ncrlf\r\nline\r\n\nends with cr\r\n\nstarts empty\n\nunicode \xc3\xa9\xe4\xb8\xad\n";
    assert_eq!(text.as_slice(), expected);
    assert_eq!(count_newlines(text), 11);
}

#[test]
fn only_empty_sources_give_no_output() {
    let dir = tempfile::tempdir().unwrap();
    for c in [TextCompression::None, TextCompression::Gzip] {
        let ext = c.extension();
        let mut sources = vec![
            (format!("a{ext}"), Vec::new()),
            (format!("b{ext}"), Vec::new()),
        ];
        if c == TextCompression::Gzip {
            // A valid gzip stream of nothing, and one of two empty members.
            sources.push((format!("c{ext}"), gz(b"")));
            sources.push((format!("d{ext}"), [gz(b""), gz(b"")].concat()));
        }
        let sources: Vec<(&str, Vec<u8>)> = sources
            .iter()
            .map(|(n, d)| (n.as_str(), d.clone()))
            .collect();
        let (counts, outputs) = merge(dir.path(), c, 10, &sources).unwrap();
        assert!(counts.iter().all(|&c| c == 0));
        assert!(outputs.is_empty(), "{outputs:?}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn gzip_sources_are_copied_member_by_member() {
    let dir = tempfile::tempdir().unwrap();
    let two_members = [gz(b"m1 line1\nm1 line2\n"), gz(b"m2 no newline")].concat();
    let crlf = gz(b"x\r\ny\nz\n");
    let lone_cr = gz(b"cr\r");
    let last = gz(b"last");
    let sources = vec![
        ("000000_0.gz", two_members.clone()),
        ("000001_0.gz", crlf.clone()),
        ("000002_0.gz", Vec::new()),
        ("000003_0.gz", gz(b"")),
        ("000004_0.gz", lone_cr.clone()),
        ("000005_0.gz", last.clone()),
    ];
    let (counts, outputs) = merge(dir.path(), TextCompression::Gzip, 1 << 30, &sources).unwrap();
    assert_eq!(counts, vec![3, 3, 0, 0, 1, 1]);
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].file_name, "m-00000.gz");
    assert_eq!(outputs[0].rows, 8);
    let raw = std::fs::read(&outputs[0].local_path).unwrap();
    // The sources' bytes as they are, a one-line member after each text lacking its final
    // `\n` (also after a lone `\r`: `\r\n` is one line end to Hadoop's LineReader), the
    // empty sources left out: nothing recompressed.
    let newline = gz(b"\n");
    assert_eq!(super::merge::newline_member(), newline.as_slice());
    let expected = [
        two_members,
        newline.clone(),
        crlf,
        lone_cr,
        newline.clone(),
        last,
        newline,
    ]
    .concat();
    assert_eq!(raw, expected);
    assert_eq!(
        gunzip(&raw),
        b"m1 line1\nm1 line2\nm2 no newline\nx\r\ny\nz\ncr\r\nlast\n".to_vec()
    );
    // Several members: a single-member decoder stops after the first.
    let mut single = Vec::new();
    flate2::read::GzDecoder::new(raw.as_slice())
        .read_to_end(&mut single)
        .unwrap();
    assert_eq!(single, b"m1 line1\nm1 line2\n".to_vec());
    // Verification's counter reads the whole output.
    let mut counter = TextCounter::new(TextCompression::Gzip);
    counter.update(&raw).unwrap();
    let stats = counter.finish().unwrap();
    assert_eq!(stats.lines, 8);
    assert!(stats.ends_with_newline);
}

#[test]
fn corrupt_gzip_is_refused_and_poisons_the_merger() {
    let dir = tempfile::tempdir().unwrap();
    let good = gz(b"hello\nworld\n");
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 3);
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    let garbage_after = [good.clone(), b"garbage".to_vec()].concat();
    for (what, bad) in [
        ("truncated", truncated),
        ("flipped", flipped),
        ("not gzip", b"plain text\n".to_vec()),
        ("trailing garbage", garbage_after),
    ] {
        let mut m = merger(
            NativeFormat::Text(TextCompression::Gzip),
            dir.path(),
            1 << 30,
            &format!("m{}", what.len()),
        );
        m.push("ok.gz", Bytes::from(good.clone())).unwrap();
        let e = m.push("bad.gz", Bytes::from(bad)).unwrap_err();
        assert_eq!(e.reason(), "corrupt", "{what}: {e}");
        assert!(e.to_string().starts_with("bad.gz: corrupt"), "{e}");
        let again = m.push("ok2.gz", Bytes::from(good.clone())).unwrap_err();
        assert_eq!(again.reason(), "aborted");
        assert_eq!(m.finish().unwrap_err().reason(), "aborted");
    }
}

#[test]
fn mixed_and_unsupported_compression_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = merger(
        NativeFormat::Text(TextCompression::None),
        dir.path(),
        100,
        "a",
    );
    m.push("000000_0", Bytes::from_static(b"x\n")).unwrap();
    let e = m.push("000001_0.gz", Bytes::from(gz(b"y\n"))).unwrap_err();
    assert!(
        matches!(&e, FormatError::MixedCompression { file, expected: TextCompression::None, found: TextCompression::Gzip } if file == "000001_0.gz"),
        "{e:?}"
    );
    assert_eq!(e.reason(), "mixed_compression");

    let mut m = merger(
        NativeFormat::Text(TextCompression::Gzip),
        dir.path(),
        100,
        "b",
    );
    let e = m.push("000000_0", Bytes::from_static(b"x\n")).unwrap_err();
    assert_eq!(e.reason(), "mixed_compression");

    let mut m = merger(
        NativeFormat::Text(TextCompression::None),
        dir.path(),
        100,
        "c",
    );
    let e = m
        .push("000000_0.bz2", Bytes::from_static(b"BZh"))
        .unwrap_err();
    assert_eq!(e.reason(), "unsupported_compression");
}

#[test]
fn byte_order_mark_only_at_the_start_of_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let bom = b"\xEF\xBB\xBFid\n".to_vec();
    // First in its output: fine, copied as is.
    let (_, outputs) = merge(
        dir.path(),
        TextCompression::None,
        1 << 30,
        &[("a", bom.clone()), ("b", b"x\n".to_vec())],
    )
    .unwrap();
    assert_eq!(
        read_all(&outputs, TextCompression::None)[0],
        b"\xEF\xBB\xBFid\nx\n"
    );
    // Behind another source: refused.
    let dir = tempfile::tempdir().unwrap();
    let e = merge(
        dir.path(),
        TextCompression::None,
        1 << 30,
        &[("a", b"x\n".to_vec()), ("b", bom)],
    )
    .unwrap_err();
    assert_eq!(e.reason(), "byte_order_mark");
    // Also in gzip, the mark split across members.
    let dir = tempfile::tempdir().unwrap();
    let split = [gz(b"\xEF"), gz(b"\xBB\xBFid\n")].concat();
    let e = merge(
        dir.path(),
        TextCompression::Gzip,
        1 << 30,
        &[("a.gz", gz(b"x\n")), ("b.gz", split.clone())],
    )
    .unwrap_err();
    assert_eq!(e.reason(), "byte_order_mark");
    // Where the previous output is full, the source starts a new one: fine.
    let dir = tempfile::tempdir().unwrap();
    let (_, outputs) = merge(
        dir.path(),
        TextCompression::Gzip,
        1,
        &[("a.gz", gz(b"x\n")), ("b.gz", split)],
    )
    .unwrap();
    assert_eq!(outputs.len(), 2);
    assert_eq!(
        read_all(&outputs, TextCompression::Gzip)[1],
        b"\xEF\xBB\xBFid\n"
    );
}

#[test]
fn outputs_split_at_the_target_without_splitting_sources() {
    let dir = tempfile::tempdir().unwrap();
    let sources: Vec<(String, Vec<u8>)> = (0..10)
        .map(|i| {
            (
                format!("{i:06}_0"),
                format!("{i}\n").repeat(i + 1).into_bytes(),
            )
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = sources
        .iter()
        .map(|(n, d)| (n.as_str(), d.clone()))
        .collect();
    // 2·(i+1) bytes per source; an output closes once it holds ≥ 10 bytes.
    let (counts, outputs) = merge(dir.path(), TextCompression::None, 10, &refs).unwrap();
    assert_eq!(counts, (1..=10).collect::<Vec<u64>>());
    let texts = read_all(&outputs, TextCompression::None);
    let sizes: Vec<usize> = texts.iter().map(Vec::len).collect();
    // Sources 0+1+2 (2+4+6 = 12), 3+4 (8+10 = 18), 5 (12), 6 (14), …: an output takes
    // sources until it holds ≥ 10 bytes, and no source is split.
    assert_eq!(sizes, vec![12, 18, 12, 14, 16, 18, 20]);
    assert_eq!(
        texts.concat(),
        refs.iter()
            .flat_map(|(_, d)| d.clone())
            .collect::<Vec<u8>>()
    );
    let names: Vec<&str> = outputs.iter().map(|o| o.file_name.as_str()).collect();
    assert_eq!(names[..3], ["m-00000", "m-00001", "m-00002"]);
    assert_eq!(
        outputs.iter().map(|o| o.rows).sum::<u64>(),
        counts.iter().sum::<u64>()
    );
    for (o, t) in outputs.iter().zip(&texts) {
        assert_eq!(o.rows, count_newlines(t));
    }
}

#[test]
fn gzip_outputs_split_on_compressed_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // Incompressible-ish lines, so compressed bytes grow with the input.
    let mut x = 1u64;
    let sources: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            let mut s = String::new();
            for _ in 0..2000 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                s.push_str(&format!("{x:016x}\n"));
            }
            (format!("{i:06}_0.gz"), gz(s.as_bytes()))
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = sources
        .iter()
        .map(|(n, d)| (n.as_str(), d.clone()))
        .collect();
    let (counts, outputs) = merge(dir.path(), TextCompression::Gzip, 200_000, &refs).unwrap();
    assert!(counts.iter().all(|&c| c == 2000));
    assert!(outputs.len() >= 3, "{outputs:?}");
    for o in &outputs[..outputs.len() - 1] {
        // Reached the target (give or take the encoder's internal buffer), not far beyond.
        assert!(o.bytes >= 150_000 && o.bytes < 300_000, "{o:?}");
        assert_eq!(o.rows % 2000, 0);
    }
    let all: Vec<u8> = read_all(&outputs, TextCompression::Gzip).concat();
    let expected: Vec<u8> = refs.iter().flat_map(|(_, d)| gunzip(d)).collect();
    assert_eq!(all, expected);
}

#[test]
fn counter_on_chunked_input() {
    let text = b"one\r\ntwo\n\nthree".repeat(1000);
    let expected_lines = 3 * 1000;
    for c in [TextCompression::None, TextCompression::Gzip] {
        let data = match c {
            TextCompression::None => text.clone(),
            // Two members, to cross a member boundary in the chunks.
            TextCompression::Gzip => [gz(&text[..7001]), gz(&text[7001..])].concat(),
        };
        for chunk in [1, 7, 4096, data.len()] {
            let mut counter = TextCounter::new(c);
            for piece in data.chunks(chunk) {
                counter.update(piece).unwrap();
            }
            let stats = counter.finish().unwrap();
            assert_eq!(
                stats,
                TextStats {
                    lines: expected_lines,
                    uncompressed_bytes: text.len() as u64,
                    ends_with_newline: false,
                },
                "{c:?} {chunk}"
            );
        }
    }
    let mut counter = TextCounter::new(TextCompression::None);
    counter.update(b"a\n").unwrap();
    assert!(counter.finish().unwrap().ends_with_newline);
    // Empty plain and empty gzip files.
    for c in [TextCompression::None, TextCompression::Gzip] {
        assert_eq!(TextCounter::new(c).finish().unwrap(), TextStats::default());
    }
    let mut counter = TextCounter::new(TextCompression::Gzip);
    counter.update(&gz(b"")).unwrap();
    assert_eq!(counter.finish().unwrap(), TextStats::default());
}

#[test]
fn counter_refuses_broken_gzip() {
    let good = gz(b"hello\nworld\n");
    for bad in [
        good[..good.len() - 1].to_vec(),
        good[..5].to_vec(),
        [good.clone(), b"x".to_vec()].concat(),
        b"not gzip at all".to_vec(),
    ] {
        let mut counter = TextCounter::new(TextCompression::Gzip);
        let r = counter.update(&bad).and_then(|()| counter.finish());
        let e = r.unwrap_err().with_file("f.gz");
        assert_eq!(e.reason(), "corrupt", "{bad:?}");
        assert!(e.to_string().starts_with("f.gz: corrupt"), "{e}");
    }
}

#[test]
fn counter_agrees_with_merger_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let sources: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            (
                format!("{i}.gz"),
                gz(format!("row {i}\n").repeat(i * 50).as_bytes()),
            )
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = sources
        .iter()
        .map(|(n, d)| (n.as_str(), d.clone()))
        .collect();
    let (counts, outputs) = merge(dir.path(), TextCompression::Gzip, 500, &refs).unwrap();
    assert_eq!(counts, vec![0, 50, 100, 150, 200]);
    for o in &outputs {
        let mut counter = TextCounter::new(TextCompression::Gzip);
        for piece in std::fs::read(&o.local_path).unwrap().chunks(1000) {
            counter.update(piece).unwrap();
        }
        let stats = counter.finish().unwrap();
        assert_eq!(stats.lines, o.rows);
        assert!(stats.ends_with_newline);
    }
}

/// Throughput of the text paths (run with `--ignored --nocapture`
/// in release mode to measure).
#[test]
#[ignore = "measurement"]
fn text_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let mut x = 7u64;
    let mut text = Vec::new();
    while text.len() < 64 << 20 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let id = x >> 40;
        text.extend_from_slice(
            format!(
                "{id}\tcustomer-{}\t{}.{:02}\t2024-01-{:02} 10:{:02}:00\tsome free text\n",
                id % 977,
                id % 10_000,
                id % 100,
                id % 28 + 1,
                id % 60
            )
            .as_bytes(),
        );
    }
    let n = 64;
    let chunk = text.len() / n;
    let plain: Vec<Bytes> = (0..n)
        .map(|i| Bytes::copy_from_slice(&text[i * chunk..(i + 1) * chunk]))
        .collect();
    let t0 = std::time::Instant::now();
    let mut m = merger(
        NativeFormat::Text(TextCompression::None),
        dir.path(),
        u64::MAX,
        "plain",
    );
    for (i, s) in plain.iter().enumerate() {
        m.push(&format!("{i}"), s.clone()).unwrap();
    }
    m.finish().unwrap();
    let dt = t0.elapsed();
    eprintln!(
        "plain: {} MiB in {dt:.2?} = {:.0} MiB/s",
        text.len() >> 20,
        (text.len() >> 20) as f64 / dt.as_secs_f64()
    );
    for round in 0..3 {
        let t0 = std::time::Instant::now();
        let c = count_newlines(std::hint::black_box(&text));
        let dt = t0.elapsed();
        let t1 = std::time::Instant::now();
        let naive = std::hint::black_box(&text)
            .iter()
            .fold(0usize, |n, &b| n + usize::from(b == b'\n'));
        let dt_naive = t1.elapsed();
        assert_eq!(c, naive as u64);
        eprintln!(
            "round {round}: count_newlines {:.0} MiB/s, fold {:.0} MiB/s",
            (text.len() >> 20) as f64 / dt.as_secs_f64(),
            (text.len() >> 20) as f64 / dt_naive.as_secs_f64()
        );
    }
    let gz_sources: Vec<Bytes> = plain.iter().map(|s| Bytes::from(gz(s))).collect();
    let t0 = std::time::Instant::now();
    let mut m = merger(
        NativeFormat::Text(TextCompression::Gzip),
        dir.path(),
        u64::MAX,
        "gz",
    );
    for (i, s) in gz_sources.iter().enumerate() {
        m.push(&format!("{i}.gz"), s.clone()).unwrap();
    }
    let out = m.finish().unwrap();
    let dt = t0.elapsed();
    eprintln!(
        "gzip (members copied, each source decompressed once): {} MiB text in {dt:.2?} = {:.0} MiB/s of text, output {:.1}% of text",
        text.len() >> 20,
        (text.len() >> 20) as f64 / dt.as_secs_f64(),
        out[0].bytes as f64 * 100.0 / text.len() as f64
    );
    let t0 = std::time::Instant::now();
    let mut total = 0;
    for s in &gz_sources {
        total += gunzip(s).len();
    }
    let dt = t0.elapsed();
    eprintln!(
        "gunzip alone: {:.0} MiB/s of text",
        (total >> 20) as f64 / dt.as_secs_f64()
    );
}
