//! Fuzzing entry points (not an API): built for the fuzz targets under `fuzz/` with the
//! `fuzzing` feature, and for the tests that replay their corpus on every `cargo test`.
//!
//! Each function takes the fuzzer's bytes, runs them through the code the agent runs on such
//! input, and panics only when an invariant breaks:
//!
//! * [`webhook`] — an Alertmanager webhook body: [`WebhookPayload::parse`], then [`intake`];
//!   every alert is counted once, requests name valid tables and partitions, and an accepted
//!   payload survives a serialization round trip.
//! * [`hs2_frames`] — a HiveServer2 server's byte stream into the client's receive path (see
//!   `hiveserver2::fuzzing`).
//! * [`text_merge`] / [`parquet_merge`] — source files through [`merger`]: an accepted merge
//!   holds exactly the rows of its sources, counted by an independent reader.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::alertmanager::{AlertStatus, WebhookPayload};
use crate::intake::{IntakeSettings, intake, valid_partition};
use crate::native::format::{
    FormatError, NativeFormat, SpooledOutput, TextCompression, TextCounter, merger,
    parquet_rows_from_tail,
};

pub use crate::hiveserver2::fuzzing::{Decoded, hs2_frames};

/// Seeds of the `hs2_frames` target (well-formed replies of every call).
pub fn hs2_seeds() -> Vec<(String, Vec<u8>)> {
    crate::hiveserver2::fuzzing::seeds()
}

/// Parses a webhook body and runs the intake on it.
pub fn webhook(body: &[u8]) {
    let Ok(payload) = WebhookPayload::parse(body) else {
        return;
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let alerts = payload.alerts();
    for alert in alerts {
        let _ = (alert.starts_at(), alert.ends_at());
        assert!(!alert.fingerprint_or_hash().is_empty());
    }
    let settings = [
        IntakeSettings::default(),
        IntakeSettings {
            clusters: Some(["prod".to_owned()].into()),
            max_name_len: 8,
            max_partition_len: 16,
        },
    ];
    for settings in &settings {
        let d = intake(&payload, now, &HashMap::new(), settings);
        let received: u64 = d.received.values().sum();
        assert_eq!(received, alerts.len() as u64, "every alert is counted once");
        let firing = alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Firing)
            .count() as u64;
        let taken: u64 = d.requests.iter().map(|r| r.origins.len() as u64).sum();
        let dropped: u64 = d.dropped.values().sum();
        let resolved: u64 = d.resolved.values().map(|f| f.len() as u64).sum();
        assert!(
            taken <= firing,
            "{taken} requests from {firing} firing alerts"
        );
        assert!(taken + dropped + resolved <= received);
        for r in &d.requests {
            if let Some(clusters) = &settings.clusters {
                assert!(clusters.contains(&r.key.cluster));
            }
            for name in [&r.key.cluster, &r.key.database, &r.key.table] {
                assert!(!name.is_empty() && name.len() <= settings.max_name_len);
            }
            for p in r.partitions() {
                assert!(valid_partition(&p, settings.max_partition_len), "{p:?}");
            }
            let item = r.to_work_item();
            assert_eq!(item.priority, r.priority());
        }
    }
    // What the agent stores and shows of a payload reads back the same.
    let json = serde_json::to_vec(&payload).expect("a parsed payload serializes");
    let back = WebhookPayload::parse(&json).expect("a serialized payload parses");
    assert_eq!(back, payload);
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Separator of the source files in a `text_merge` input.
pub const TEXT_SEPARATOR: &[u8] = b"\x1e\x1e";
/// Separator of the source files in a `parquet_merge` input.
pub const PARQUET_SEPARATOR: &[u8] = b"HSF\x1eSPLIT";

/// Output size targets selected by bits of the flags byte.
const TARGETS: [u64; 4] = [1, 64, 4096, u64::MAX];

/// Merges text sources. Byte 0: bit 0 gzip; bit 1 (gzip) the harness compresses each source
/// (a member per half, so multi-member streams too) rather than taking its bytes as gzip;
/// bits 2–3 the output target size; bit 4 names the second source with the other
/// compression (the merge must refuse). The rest: the sources, split at [`TEXT_SEPARATOR`].
pub fn text_merge(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let compression = if flags & 1 != 0 {
        TextCompression::Gzip
    } else {
        TextCompression::None
    };
    let encode = compression == TextCompression::Gzip && flags & 2 != 0;
    let target = TARGETS[usize::from((flags >> 2) & 3)];
    let mixed = flags & 0x10 != 0;
    let sources: Vec<Vec<u8>> = split(rest, TEXT_SEPARATOR)
        .map(|s| if encode { gzip_members(s) } else { s.to_vec() })
        .collect();
    let spool = tempfile::tempdir().expect("spool directory");
    let format = NativeFormat::Text(compression);
    let mut m = merger(format, spool.path(), target, "part-fuzz");
    let mut pushed = 0u64;
    let mut expected = Vec::new();
    // Where in the concatenation sources starting with a byte order mark start.
    let mut marks = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let wrong = mixed && i == 1;
        let ext = match (compression, wrong) {
            (TextCompression::Gzip, false) | (TextCompression::None, true) => ".gz",
            _ => "",
        };
        let name = format!("00000{i}_0{ext}");
        // The independent view of the source: its text, or why it has none.
        let text = match compression {
            TextCompression::None => Ok(s.clone()),
            TextCompression::Gzip => gunzip(s),
        };
        match m.push(&name, Bytes::from(s.clone())) {
            Ok(lines) => {
                assert!(!wrong, "{name} accepted into a {compression:?} merge");
                let text = text.unwrap_or_else(|e| panic!("{name} accepted, but {e}"));
                if !text.is_empty() {
                    if text.starts_with(UTF8_BOM) {
                        marks.push(expected.len());
                    }
                    expected.extend_from_slice(&text);
                    if !text.ends_with(b"\n") {
                        expected.push(b'\n');
                    }
                }
                assert_eq!(
                    lines,
                    newlines(&text) + u64::from(!text.ends_with(b"\n") && !text.is_empty())
                );
                pushed += lines;
            }
            Err(e) => {
                match &e {
                    FormatError::MixedCompression { .. } => assert!(wrong),
                    FormatError::ByteOrderMark { .. } => {}
                    FormatError::Corrupt { .. } => assert!(
                        text.is_err(),
                        "{name} refused as corrupt ({e}), but it reads as gzip"
                    ),
                    other => panic!("{name}: unexpected refusal: {other}"),
                }
                return;
            }
        }
    }
    let outputs = m
        .finish()
        .expect("finishing a merge whose sources were accepted");
    let mut merged = Vec::new();
    let mut starts = Vec::new();
    for out in &outputs {
        let bytes = std::fs::read(&out.local_path).expect("spooled output");
        assert_eq!(bytes.len() as u64, out.bytes, "{}: size", out.file_name);
        let text = match compression {
            TextCompression::None => bytes.clone(),
            TextCompression::Gzip => {
                gunzip(&bytes).unwrap_or_else(|e| panic!("{}: {e}", out.file_name))
            }
        };
        assert_eq!(newlines(&text), out.rows, "{}: rows", out.file_name);
        // What verification runs after upload agrees.
        let mut counter = TextCounter::new(compression);
        counter
            .update(&bytes)
            .expect("verification reads the output");
        assert_eq!(counter.finish().expect("complete output").lines, out.rows);
        starts.push(merged.len());
        merged.extend_from_slice(&text);
    }
    // Hadoop strips a mark only at the start of a file.
    for at in marks {
        assert!(
            starts.contains(&at),
            "a byte order mark inside an output, at {at}"
        );
    }
    assert_eq!(rows(&outputs), pushed);
    assert!(
        merged == expected,
        "the outputs are not the sources concatenated"
    );
}

/// Merges Parquet sources (split at [`PARQUET_SEPARATOR`]). Byte 0: bits 0–1 the output
/// target size; bit 2 turns dictionary encoding off.
pub fn parquet_merge(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let target = TARGETS[usize::from(flags & 3)];
    let options = crate::native::format::MergerOptions {
        parquet_dictionary: flags & 4 == 0,
        ..Default::default()
    };
    let spool = tempfile::tempdir().expect("spool directory");
    let mut m = crate::native::format::merger_with_options(
        NativeFormat::Parquet,
        spool.path(),
        target,
        "part-fuzz",
        &options,
    );
    let mut pushed = 0u64;
    let sources: Vec<&[u8]> = split(rest, PARQUET_SEPARATOR).collect();
    for (i, source) in sources.iter().enumerate() {
        let name = format!("00000{i}_0");
        match m.push(&name, Bytes::copy_from_slice(source)) {
            Ok(rows) => pushed += rows,
            Err(e) => return refused(&e),
        }
    }
    let outputs = match m.finish() {
        Ok(outputs) => outputs,
        // A source's pages are only decoded when its output is written.
        Err(e) => return refused(&e),
    };
    // Where an independent reader reads every source in full, it finds as many rows.
    let independent: Option<Vec<u64>> = sources.iter().map(|s| parquet_rows_read(s)).collect();
    if let Some(counts) = independent {
        assert_eq!(
            counts.iter().sum::<u64>(),
            pushed,
            "rows of the sources {counts:?}"
        );
    }
    for out in &outputs {
        let bytes = std::fs::read(&out.local_path).expect("spooled output");
        let read = parquet_rows_read(&bytes)
            .unwrap_or_else(|| panic!("{}: the output does not read back", out.file_name));
        assert_eq!(read, out.rows, "{}: rows read", out.file_name);
        let footer = parquet_rows_from_tail(Bytes::from(bytes)).expect("output footer");
        assert_eq!(footer, out.rows, "{}: rows in the footer", out.file_name);
    }
    assert_eq!(rows(&outputs), pushed);
}

/// A refused Parquet merge: bad sources are refused, but the merge never fails otherwise.
fn refused(e: &FormatError) {
    assert!(
        matches!(
            e,
            FormatError::Corrupt { .. }
                | FormatError::Unsupported { .. }
                | FormatError::SchemaMismatch { .. }
                | FormatError::MetadataMismatch { .. }
        ),
        "the merge failed: {e}"
    );
}

/// The rows of a Parquet file, read value by value with parquet-rs's record reader (not the
/// column readers the merge copies with); `None` when it cannot read the file.
fn parquet_rows_read(data: &[u8]) -> Option<u64> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    // parquet-rs panics on some corrupt files (see `catch_panics`).
    std::panic::catch_unwind(|| {
        let reader = SerializedFileReader::new(Bytes::copy_from_slice(data)).ok()?;
        let mut n = 0u64;
        for row in reader.get_row_iter(None).ok()? {
            row.ok()?;
            n += 1;
        }
        Some(n)
    })
    .ok()
    .flatten()
}

fn rows(outputs: &[SpooledOutput]) -> u64 {
    outputs.iter().map(|o| o.rows).sum()
}

fn newlines(text: &[u8]) -> u64 {
    text.iter().filter(|&&b| b == b'\n').count() as u64
}

/// The text of a (possibly multi-member) gzip stream; an empty file is empty text.
fn gunzip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut text = Vec::new();
    if !data.is_empty() {
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut text)
            .map_err(|e| format!("gzip: {e}"))?;
    }
    Ok(text)
}

/// `text` as gzip, one member per half (an empty text: an empty file).
fn gzip_members(text: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    if text.is_empty() {
        return out;
    }
    let (a, b) = text.split_at(text.len() / 2);
    for part in [a, b] {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(part).expect("in memory");
        out.extend_from_slice(&e.finish().expect("in memory"));
    }
    out
}

/// `data` split at every `separator`.
fn split<'a>(data: &'a [u8], separator: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.windows(separator.len()).position(|w| w == separator) {
            Some(at) => {
                rest = Some(&r[at + separator.len()..]);
                Some(&r[..at])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

#[cfg(test)]
thread_local! {
    /// Where this thread last panicked outside a dependency (see [`replay`]).
    static PANICKED: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

/// Runs every file of `fuzz/corpus/<target>` and `fuzz/regressions/<target>` through `f`
/// (the replay tests), within a time bound.
#[cfg(test)]
pub(crate) fn replay(target: &str, f: impl Fn(&[u8])) {
    // A panic the merge catches on purpose comes from a dependency (parquet-rs, see
    // `catch_panics`); one raised by our code (or the standard library on its behalf) is a bug
    // even when caught. As in the fuzz targets' hook (`fuzz/src/lib.rs`).
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(l) = info.location()
                && !l.file().contains("/registry/src/")
            {
                let at: &'static str = Box::leak(format!("{}:{}", l.file(), l.line()).into());
                PANICKED.with(|p| p.set(Some(at)));
            }
            previous(info);
        }));
    });
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz");
    let started = std::time::Instant::now();
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(format!("{root}/{dir}/{target}")) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let data = std::fs::read(&path).expect("corpus file");
            PANICKED.with(|p| p.set(None));
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&data)));
            assert!(result.is_ok(), "{target}: {} fails", path.display());
            if let Some(at) = PANICKED.with(std::cell::Cell::take) {
                panic!("{target}: {} panics at {at} (caught)", path.display());
            }
            n += 1;
        }
    }
    assert!(n > 0, "no corpus for {target} under {root}");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(120),
        "{target}: {n} inputs took {took:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_the_webhook_corpus() {
        replay("webhook", webhook);
    }

    #[test]
    fn replays_the_text_merge_corpus() {
        replay("text_merge", text_merge);
    }

    #[test]
    fn replays_the_parquet_merge_corpus() {
        replay("parquet_merge", parquet_merge);
    }

    #[test]
    fn split_at_separators() {
        let parts: Vec<&[u8]> = split(b"a\x1e\x1eb\x1e\x1e", TEXT_SEPARATOR).collect();
        assert_eq!(parts, [&b"a"[..], b"b", b""]);
    }
}
