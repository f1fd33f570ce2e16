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
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::fs::{EntryKind, FileSystem, FsError, join_path};

pub mod counts;

use counts::FileCounts;

/// [`FileCounts`] of one directory's direct files as remembered between scans: the same
/// numbers with 32-bit counters (96 instead of 136 bytes; HDFS caps a directory at a few
/// million entries). A directory whose counts do not fit is not remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CachedFiles {
    bytes: u64,
    small_bytes: u64,
    newest_modification_ms: i64,
    newest_access_ms: i64,
    files: u32,
    small_files: u32,
    empty_files: u32,
    size_classes: [u32; 6],
    codec_hints: [u32; 7],
}

impl CachedFiles {
    fn new(c: &FileCounts) -> Option<Self> {
        let mut size_classes = [0u32; 6];
        for (to, from) in size_classes.iter_mut().zip(c.size_classes) {
            *to = u32::try_from(from).ok()?;
        }
        Some(Self {
            bytes: c.bytes,
            small_bytes: c.small_bytes,
            newest_modification_ms: c.newest_modification_ms,
            newest_access_ms: c.newest_access_ms,
            files: u32::try_from(c.files).ok()?,
            small_files: u32::try_from(c.small_files).ok()?,
            empty_files: u32::try_from(c.empty_files).ok()?,
            size_classes,
            codec_hints: c.codec_hints,
        })
    }

    fn counts(&self) -> FileCounts {
        FileCounts {
            files: self.files.into(),
            bytes: self.bytes,
            small_bytes: self.small_bytes,
            small_files: self.small_files.into(),
            empty_files: self.empty_files.into(),
            newest_modification_ms: self.newest_modification_ms,
            newest_access_ms: self.newest_access_ms,
            size_classes: self.size_classes.map(u64::from),
            codec_hints: self.codec_hints,
        }
    }
}

/// What a scan learned about one directory.
#[derive(Debug)]
struct DirState {
    /// The directory's mtime as seen in its parent's listing before it was listed; `None` when
    /// unknown (then it is never reused).
    mtime_ms: Option<i64>,
    /// Counts of its direct visible files.
    files: CachedFiles,
    /// Its direct visible subdirectories with the mtimes seen in this listing.
    subdirs: Box<[(Box<str>, i64)]>,
    /// Generation of the scan that listed it.
    listed_in: u32,
    /// Generation of the last scan that visited it (listed or reused).
    seen_in: u32,
}

/// Directory states, keyed by path, carried from scan to scan and updated in place.
///
/// One map serves both as the previous scan's states (read by the walks) and as the next
/// scan's (written by them): a directory is reused only from a state listed by an *earlier*
/// scan, a reused state is marked as seen, a listed one replaces the old one, and
/// [`DirCache::end_scan`] drops whatever the scan did not visit. Compared with building a
/// second map next to the previous one, this halves the memory of an incremental rescan and
/// copies nothing for reused directories. Walks share it through `&self` (a mutex held only
/// for one lookup or insert, never across an await).
#[derive(Debug, Default)]
pub struct DirCache {
    dirs: Mutex<HashMap<Box<str>, DirState>>,
    generation: u32,
}

impl DirCache {
    /// An empty cache with room for `n` directories.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            dirs: Mutex::new(HashMap::with_capacity(n)),
            generation: 0,
        }
    }

    fn dirs(&self) -> MutexGuard<'_, HashMap<Box<str>, DirState>> {
        self.dirs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of directories remembered.
    pub fn len(&self) -> usize {
        self.dirs().len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.dirs().is_empty()
    }

    /// Starts a scan (a new generation); call before any walk of the scan.
    pub fn begin_scan(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// Ends a scan: forgets every directory the scan neither listed nor reused.
    pub fn end_scan(&mut self) {
        let generation = self.generation;
        self.dirs
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, s| s.seen_in == generation);
    }

    /// The counts of `path` if an earlier scan listed it with mtime `observed` and it had no
    /// subdirectories (see the module docs); marks it as seen.
    fn reuse(&self, path: &str, observed: Option<i64>) -> Option<FileCounts> {
        let observed = observed?;
        let mut dirs = self.dirs();
        let state = dirs.get_mut(path)?;
        if state.listed_in == self.generation
            || state.mtime_ms != Some(observed)
            || !state.subdirs.is_empty()
        {
            return None;
        }
        state.seen_in = self.generation;
        Some(state.files.counts())
    }

    /// Remembers what listing `path` found.
    fn record(
        &self,
        path: String,
        mtime_ms: Option<i64>,
        files: &FileCounts,
        subdirs: Vec<(Box<str>, i64)>,
    ) {
        let mut dirs = self.dirs();
        match CachedFiles::new(files) {
            Some(files) => {
                dirs.insert(
                    path.into_boxed_str(),
                    DirState {
                        mtime_ms,
                        files,
                        subdirs: subdirs.into_boxed_slice(),
                        listed_in: self.generation,
                        seen_in: self.generation,
                    },
                );
            }
            None => {
                dirs.remove(path.as_str());
            }
        }
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
}

/// Walks the tree at `root`, whose mtime as seen in its parent's listing is `root_mtime`,
/// reusing and updating `cache`.
///
/// Returns `FsError::NotFound` only when `root` itself does not exist; subdirectories that
/// vanish during the walk are skipped (they were deleted concurrently).
pub async fn walk_tree(
    fs: &dyn FileSystem,
    root: &str,
    root_mtime: Option<i64>,
    cache: &DirCache,
    small_threshold: u64,
) -> Result<WalkOutcome, FsError> {
    let mut out = WalkOutcome::default();
    let mut stack: Vec<(String, Option<i64>)> = vec![(root.to_owned(), root_mtime)];
    while let Some((path, observed)) = stack.pop() {
        if let Some(files) = cache.reuse(&path, observed) {
            out.counts.merge(&files);
            out.reused += 1;
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
        cache.record(path, observed, &files, subdirs);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_counts_round_trip() {
        let mut c = FileCounts::default();
        c.add_file(0, 5, 6, 100);
        c.add_file(50, 7, 3, 100);
        c.add_file(5000, 9, 1, 100);
        c.codec_hints[2] = 4;
        assert_eq!(CachedFiles::new(&c).map(|x| x.counts()), Some(c.clone()));
        c.files = u64::from(u32::MAX) + 1;
        assert_eq!(CachedFiles::new(&c), None);
    }
}
