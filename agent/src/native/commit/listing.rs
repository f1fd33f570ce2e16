//! What a partition holds, as the protocol sees it: data files (the sources), hidden files
//! carried over unchanged or dropped (checksums of sources), and the refusals — a
//! subdirectory, a symlink, a large hidden file, a writer's staging directory. Also the
//! comparison of the last re-list before the swap with the listing the merge started from.

use hive_smallfiles_core::fs::{EntryKind, FileStatus};

use super::{Committer, Listing, list_all};
use crate::native::error::{NativeError, aborted, refused};
use crate::native::manifest::DirectoryAttributes;

/// Hidden files larger than this are not carried into the merged directory (refused).
const MAX_CARRIED_BYTES: u64 = 1 << 20;

/// Names of hidden entries that mean a writer is working in the partition right now.
const ACTIVE_WRITER_PREFIXES: &[&str] = &[
    ".hive-staging",
    "_temporary",
    "_impala_insert_staging",
    ".spark-staging",
    "_scratchdir",
];

pub(super) fn is_active_writer(name: &str) -> bool {
    ACTIVE_WRITER_PREFIXES.iter().any(|p| name.starts_with(p))
}

impl Committer {
    /// Lists the partition and sorts its entries into sources, carried and dropped files;
    /// refuses partitions with subdirectories and ones a writer is working in.
    pub async fn list_partition(&self, path: &str) -> Result<Listing, NativeError> {
        let dir = self.fs.file_status(path).await?;
        if dir.kind != EntryKind::Directory {
            return Err(refused(
                "not_a_directory",
                format!("{path} is not a directory"),
            ));
        }
        let entries = list_all(self.fs.as_ref(), path).await?;
        let mut sources = Vec::new();
        let mut hidden = Vec::new();
        for e in entries {
            if is_active_writer(&e.name) {
                return Err(aborted(
                    "active_writer",
                    format!("{path}/{} shows a write in progress", e.name),
                ));
            }
            match e.kind {
                EntryKind::Directory => {
                    return Err(refused(
                        "subdirectories",
                        format!(
                            "{path} holds the directory {:?}; only flat partitions are merged",
                            e.name
                        ),
                    ));
                }
                EntryKind::Symlink => {
                    return Err(refused(
                        "symlink",
                        format!("{path}/{} is a symlink", e.name),
                    ));
                }
                EntryKind::File if e.is_hidden() => hidden.push(e),
                EntryKind::File => sources.push(e),
            }
        }
        let mut carried = Vec::new();
        let mut dropped = Vec::new();
        for h in hidden {
            let checksum_of_source = h
                .name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".crc"))
                .is_some_and(|base| sources.iter().any(|s| s.name == base));
            if checksum_of_source {
                dropped.push(h.name);
            } else if h.length > MAX_CARRIED_BYTES {
                return Err(refused(
                    "large_hidden_file",
                    format!("{path}/{} is a hidden file of {} bytes", h.name, h.length),
                ));
            } else {
                carried.push(h);
            }
        }
        Ok(Listing {
            directory: DirectoryAttributes {
                permission: dir.permission,
                owner: dir.owner,
                group: dir.group,
            },
            sources,
            carried,
            dropped,
        })
    }
}

/// The partition now, compared with the listing the merge started from.
pub(super) fn unchanged(before: &Listing, now: &Listing) -> Result<(), NativeError> {
    let key = |s: &FileStatus| (s.name.clone(), s.length, s.modification_time_ms);
    let b: Vec<_> = before.sources.iter().map(key).collect();
    let n: Vec<_> = now.sources.iter().map(key).collect();
    if b != n {
        let new: Vec<&str> = now
            .sources
            .iter()
            .filter(|s| !before.sources.iter().any(|x| x.name == s.name))
            .map(|s| s.name.as_str())
            .collect();
        if !new.is_empty() {
            return Err(aborted(
                "new_file_arrived",
                format!("new files in the partition during the merge: {new:?}"),
            ));
        }
        return Err(aborted(
            "source_changed",
            "a source file changed or disappeared during the merge",
        ));
    }
    let hb: Vec<_> = before.carried.iter().map(key).collect();
    let hn: Vec<_> = now.carried.iter().map(key).collect();
    if hb != hn || before.dropped != now.dropped {
        return Err(aborted(
            "hidden_file_changed",
            "hidden files of the partition changed during the merge",
        ));
    }
    if before.directory != now.directory {
        return Err(aborted(
            "directory_changed",
            "the partition directory's permission, owner or group changed during the merge",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, length: u64, mtime: i64) -> FileStatus {
        FileStatus {
            name: name.into(),
            kind: EntryKind::File,
            length,
            modification_time_ms: mtime,
            access_time_ms: 0,
            permission: 0o644,
            owner: "hive".into(),
            group: "hive".into(),
        }
    }

    fn listing(sources: Vec<FileStatus>, carried: Vec<FileStatus>) -> Listing {
        Listing {
            directory: DirectoryAttributes {
                permission: 0o755,
                owner: "hive".into(),
                group: "hive".into(),
            },
            sources,
            carried,
            dropped: Vec::new(),
        }
    }

    #[test]
    fn relist_detects_every_change() {
        let base = listing(
            vec![file("a", 1, 10), file("b", 2, 20)],
            vec![file("_SUCCESS", 0, 5)],
        );
        assert!(unchanged(&base, &base.clone()).is_ok());
        let reason = |now: Listing| match unchanged(&base, &now) {
            Err(NativeError::Aborted { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        let mut new_file = base.clone();
        new_file.sources.push(file("c", 1, 30));
        assert_eq!(reason(new_file), "new_file_arrived");
        let mut appended = base.clone();
        appended.sources[1].length = 3;
        assert_eq!(reason(appended), "source_changed");
        let mut touched = base.clone();
        touched.sources[0].modification_time_ms = 11;
        assert_eq!(reason(touched), "source_changed");
        let mut removed = base.clone();
        removed.sources.pop();
        assert_eq!(reason(removed), "source_changed");
        let mut marker = base.clone();
        marker.carried.clear();
        assert_eq!(reason(marker), "hidden_file_changed");
        let mut chmod = base.clone();
        chmod.directory.permission = 0o700;
        assert_eq!(reason(chmod), "directory_changed");
    }

    #[test]
    fn writers_staging_names() {
        assert!(is_active_writer(".hive-staging_hive_2024-01-01_10-00-00_1"));
        assert!(is_active_writer("_temporary"));
        assert!(!is_active_writer("_SUCCESS"));
        assert!(!is_active_writer(".part-0000.crc"));
    }
}
