//! Recursive listing of one partition directory, reusing the previous scan's directory states
//! where HDFS semantics prove nothing changed.
//!
//! HDFS (like POSIX) updates a directory's modification time when a *direct* child is added,
//! removed or renamed — not when something changes deeper down, and not when an existing file
//! is appended to (`FSDirectory.addINode`/`unprotectedDelete`/rename ops touch only the
//! parent's mtime; `FSDirAppendOp` does not touch the parent). Hence:
//!
//! * A directory's mtime is always taken from its *parent's* listing, made before the
//!   directory itself is listed; a change racing with the scan then shows up as an mtime
//!   mismatch next time, never as a silently stale entry.
//! * A directory whose mtime is unchanged and which had **no subdirectories** is reused
//!   without any request: its direct children are the same entries.
//! * A directory with subdirectories is listed again even if unchanged (that listing is how
//!   its subdirectories' mtimes are learned), and only changed leaves below it are relisted.
//! * Appends to existing files are caught by the periodic full rescan
//!   (`full_rescan_interval`).

use std::collections::HashMap;

use crate::fs::{EntryKind, FileSystem, FsError, join_path};

use super::aggregate::FileCounts;

/// What the previous scan learned about one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirState {
    /// The directory's mtime as seen in its parent's listing before it was listed; `None` when
    /// unknown (then it is never reused).
    pub mtime_ms: Option<i64>,
    /// Counts of its direct visible files.
    pub files: FileCounts,
    /// Its direct visible subdirectories with the mtimes seen in this listing.
    pub subdirs: Vec<(Box<str>, i64)>,
}

/// Directory states of one scan, keyed by path.
#[derive(Debug, Default)]
pub struct DirCache {
    dirs: HashMap<Box<str>, DirState>,
}

impl DirCache {
    /// Number of directories remembered.
    pub fn len(&self) -> usize {
        self.dirs.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// The state of one directory.
    pub fn get(&self, path: &str) -> Option<&DirState> {
        self.dirs.get(path)
    }

    /// Adds the states a walk produced.
    pub fn extend(&mut self, states: Vec<(Box<str>, DirState)>) {
        self.dirs.extend(states);
    }
}

/// The outcome of walking one directory tree.
#[derive(Debug, Default)]
pub struct WalkOutcome {
    /// Counts over the whole tree.
    pub counts: FileCounts,
    /// Listing requests made (one per directory listed, whatever its number of pages).
    pub listings: u64,
    /// Directories reused from the previous scan without a request.
    pub reused: u64,
    /// The states to remember for the next scan.
    pub states: Vec<(Box<str>, DirState)>,
}

/// Walks the tree at `root`, whose mtime as seen in its parent's listing is `root_mtime`.
///
/// Returns `FsError::NotFound` only when `root` itself does not exist; subdirectories that
/// vanish during the walk are skipped (they were deleted concurrently).
pub async fn walk_tree(
    fs: &dyn FileSystem,
    root: &str,
    root_mtime: Option<i64>,
    previous: Option<&DirCache>,
    small_threshold: u64,
) -> Result<WalkOutcome, FsError> {
    let mut out = WalkOutcome::default();
    let mut stack: Vec<(String, Option<i64>)> = vec![(root.to_owned(), root_mtime)];
    while let Some((path, observed)) = stack.pop() {
        if let Some(old) = previous.and_then(|p| p.get(&path))
            && observed.is_some()
            && old.mtime_ms == observed
            && old.subdirs.is_empty()
        {
            out.counts.merge(&old.files);
            out.reused += 1;
            out.states.push((path.into_boxed_str(), old.clone()));
            continue;
        }
        let mut files = FileCounts::default();
        let mut subdirs: Vec<(Box<str>, i64)> = Vec::new();
        let listed = fs
            .list_status(&path, &mut |page| {
                for status in page {
                    match status.kind {
                        EntryKind::File => files.add_status(&status, small_threshold),
                        EntryKind::Directory if !status.is_hidden() && !status.name.is_empty() => {
                            subdirs
                                .push((status.name.into_boxed_str(), status.modification_time_ms));
                        }
                        EntryKind::Directory | EntryKind::Symlink => {}
                    }
                }
            })
            .await;
        out.listings += 1;
        match listed {
            Ok(()) => {}
            Err(FsError::NotFound { .. }) if path != root => continue,
            Err(e) => return Err(e),
        }
        for (name, mtime) in &subdirs {
            stack.push((join_path(&path, name), Some(*mtime)));
        }
        out.counts.merge(&files);
        out.states.push((
            path.into_boxed_str(),
            DirState {
                mtime_ms: observed,
                files,
                subdirs,
            },
        ));
    }
    Ok(out)
}
