//! Fuzzing entry point of the WebHDFS wire parsing (not an API: built for the fuzz targets
//! under `fuzz/` with the `fuzzing` feature, and for the corpus replay test).
//!
//! [`webhdfs_json`] hands one response body to every parser the client applies to a
//! NameNode answer: `GETFILESTATUS`, `LISTSTATUS` and `LISTSTATUS_BATCH` pages, the
//! `RemoteException` error body under several statuses, and (with `write`) the `boolean`
//! and `Location` answers. It must never panic; what it checks besides is what the client
//! relies on: error messages quote at most a bounded snippet of the body, and the borrowed
//! listing parse (the scan's) accepts every body the owned one accepts, with the same
//! entries.

use reqwest::StatusCode;

use super::ERROR_SNIPPET_CHARS;
use super::errors::{is_failover_error, is_unknown_op, parse, remote_error};
use super::wire::{
    DirectoryListingEnvelope, EntriesBatchEnvelope, EntriesEnvelope, FileStatusEnvelope,
    FileStatusesEnvelope, parse_borrowed,
};
use crate::fs::{EntryRef, FileStatus, FsError};

/// The statuses a `RemoteException` body comes with in practice (Hadoop's `ExceptionHandler`:
/// 400, 401, 403, 404, 500; gateways and standby NameNodes: 403, 503).
const STATUSES: [u16; 7] = [400, 401, 403, 404, 409, 500, 503];

/// Parses `body` as every WebHDFS answer the client reads; panics only on a broken invariant.
pub fn webhdfs_json(body: &[u8]) {
    let path = "/fuzz";
    match parse::<FileStatusEnvelope>("GETFILESTATUS", path, body) {
        Ok(st) => drop(FileStatus::from(st.file_status)),
        Err(e) => check_message(&e),
    }
    let borrowed = parse_borrowed::<EntriesEnvelope<'_>>("LISTSTATUS", path, body);
    if let Err(e) = &borrowed {
        check_message(e);
    }
    match parse::<FileStatusesEnvelope>("LISTSTATUS", path, body) {
        Ok(list) => {
            let owned: Vec<FileStatus> = list.into_entries().collect();
            let Ok(borrowed) = borrowed else {
                panic!("the owned LISTSTATUS parse accepts what the borrowed one rejects");
            };
            assert_same_entries(&owned, borrowed.entries());
        }
        Err(e) => check_message(&e),
    }
    let borrowed = parse_borrowed::<EntriesBatchEnvelope<'_>>("LISTSTATUS_BATCH", path, body);
    if let Err(e) = &borrowed {
        check_message(e);
    }
    match parse::<DirectoryListingEnvelope>("LISTSTATUS_BATCH", path, body) {
        Ok(batch) => {
            let (page, remaining) = batch.into_page();
            let Ok(borrowed) = borrowed else {
                panic!("the owned LISTSTATUS_BATCH parse accepts what the borrowed one rejects");
            };
            assert_eq!(borrowed.remaining(), remaining);
            assert_eq!(borrowed.last_name(), page.last().map(|s| s.name.as_str()));
            assert_same_entries(&page, borrowed.entries());
        }
        Err(e) => check_message(&e),
    }
    for status in STATUSES {
        let status = StatusCode::from_u16(status).expect("valid status");
        let e = remote_error("LISTSTATUS", path, status, body);
        check_message(&e);
        let _ = is_failover_error(&e);
        let _ = is_unknown_op(&e, "LISTSTATUS_BATCH");
        if status == StatusCode::NOT_FOUND {
            assert!(
                matches!(e, FsError::NotFound { .. }),
                "404 is not found: {e:?}"
            );
        }
    }
    #[cfg(feature = "write")]
    {
        let _ = parse::<super::wire::BooleanEnvelope>("MKDIRS", path, body);
        if let Ok(l) = parse::<super::wire::LocationEnvelope>("CREATE", path, body)
            && let Ok(url) = super::datanode::parse_location("CREATE", path, &l.location)
        {
            assert!(matches!(url.scheme(), "http" | "https"));
        }
    }
}

/// The borrowed listing parse hands over what the owned one does, entry by entry.
fn assert_same_entries<'a>(owned: &[FileStatus], borrowed: impl Iterator<Item = EntryRef<'a>>) {
    let borrowed: Vec<EntryRef<'a>> = borrowed.collect();
    assert_eq!(owned.len(), borrowed.len(), "entry counts differ");
    for (o, b) in owned.iter().zip(borrowed) {
        assert_eq!(EntryRef::from(o), b);
    }
}

/// A body quoted in an error message is cut to a snippet: a multi-megabyte HTML page must not
/// end up in a log line. (The limit leaves room for the parser's own words around it.)
fn check_message(e: &FsError) {
    if let FsError::InvalidResponse { message, .. } = e {
        let chars = message.chars().count();
        assert!(
            chars <= 3 * ERROR_SNIPPET_CHARS,
            "an error message of {chars} chars: {}",
            message.chars().take(300).collect::<String>()
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    /// Replays the checked-in fuzz corpus (`fuzz/corpus/webhdfs_json`) and the regression
    /// cases (`fuzz/regressions/webhdfs_json`) through the fuzz target's entry point, so CI
    /// (stable, without cargo-fuzz) keeps every input that once mattered working.
    #[test]
    fn replays_the_fuzz_corpus() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz");
        let started = Instant::now();
        let mut n = 0;
        for dir in ["corpus/webhdfs_json", "regressions/webhdfs_json"] {
            let Ok(entries) = std::fs::read_dir(format!("{root}/{dir}")) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                super::webhdfs_json(&data);
                n += 1;
            }
        }
        assert!(n > 0, "no corpus under {root}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{n} inputs took {:?}",
            started.elapsed()
        );
    }
}
