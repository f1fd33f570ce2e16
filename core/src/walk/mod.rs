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
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::fs::{EntryKind, FileSystem, FsError, join_path};

pub mod counts;

use counts::FileCounts;

/// [`FileCounts`] of one directory's direct files as remembered between scans: the same
/// numbers with 32-bit counters, and of the codec suffixes only the one its files carry
/// (80 instead of 136 bytes; HDFS caps a directory at a few million entries). A directory
/// whose counts do not fit, or whose files carry two different codec suffixes (rare: one
/// writer writes one codec), is not remembered: it is listed again, never approximated.
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
    /// Files with the codec suffix `CodecHint::ALL[codec]` (0 when none has one).
    codec_files: u32,
    codec: u8,
}

impl CachedFiles {
    fn new(c: &FileCounts) -> Option<Self> {
        let mut size_classes = [0u32; 6];
        for (to, from) in size_classes.iter_mut().zip(c.size_classes) {
            *to = u32::try_from(from).ok()?;
        }
        let mut codecs = c.codec_hints.iter().enumerate().filter(|(_, n)| **n > 0);
        let (codec, codec_files) = match (codecs.next(), codecs.next()) {
            (None, _) => (0, 0),
            (Some((i, n)), None) => (u8::try_from(i).ok()?, *n),
            (Some(_), Some(_)) => return None,
        };
        Some(Self {
            bytes: c.bytes,
            small_bytes: c.small_bytes,
            newest_modification_ms: c.newest_modification_ms,
            newest_access_ms: c.newest_access_ms,
            files: u32::try_from(c.files).ok()?,
            small_files: u32::try_from(c.small_files).ok()?,
            empty_files: u32::try_from(c.empty_files).ok()?,
            size_classes,
            codec_files,
            codec,
        })
    }

    fn counts(&self) -> FileCounts {
        let mut codec_hints = [0u32; 7];
        if let Some(n) = codec_hints.get_mut(usize::from(self.codec)) {
            *n = self.codec_files;
        }
        FileCounts {
            files: self.files.into(),
            bytes: self.bytes,
            small_bytes: self.small_bytes,
            small_files: self.small_files.into(),
            empty_files: self.empty_files.into(),
            newest_modification_ms: self.newest_modification_ms,
            newest_access_ms: self.newest_access_ms,
            size_classes: self.size_classes.map(u64::from),
            codec_hints,
        }
    }
}

/// What a scan learned about one directory (112 bytes, its key included).
#[derive(Debug)]
struct DirState {
    /// The path's 128-bit key; the first half is also the index's key.
    key: (u64, u64),
    /// The directory's mtime as seen in its parent's listing before it was listed;
    /// [`UNKNOWN_MTIME`] when unknown (then it is never reused).
    mtime_ms: i64,
    /// Counts of its direct visible files.
    files: CachedFiles,
    /// Generation of the scan that listed it (wrapping; see [`DirCache::begin_scan`]).
    listed_in: u16,
    /// Generation of the last scan that visited it (listed or reused).
    seen_in: u16,
    /// Whether the listing found visible subdirectories (then it is never reused: listing it
    /// is how the subdirectories' mtimes are learned).
    has_subdirs: bool,
}

/// `DirState::mtime_ms` of a directory whose mtime was not observed.
const UNKNOWN_MTIME: i64 = i64::MIN;

/// A hasher for keys that already are uniformly random 64-bit values (halves of a keyed
/// SipHash): hashing them again would only cost time.
#[derive(Debug, Default, Clone, Copy)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Index = HashMap<u64, u32, BuildHasherDefault<PassThrough>>;

/// The states and their index, behind the cache's mutex.
#[derive(Debug, Default)]
struct Dirs {
    /// First half of a path's key → position in `states`.
    index: Index,
    /// Dense states (no per-entry allocation, no power-of-two slack on the big records).
    states: Vec<DirState>,
}

impl Dirs {
    /// Position of the state of `key`, if remembered.
    fn find(&self, key: (u64, u64)) -> Option<usize> {
        let i = *self.index.get(&key.0)? as usize;
        (self.states.get(i)?.key == key).then_some(i)
    }

    /// Forgets the state at `i` (the last state takes its place).
    fn remove_at(&mut self, i: usize) {
        let removed = self.states.swap_remove(i);
        self.index.remove(&removed.key.0);
        if let Some(moved) = self.states.get(i)
            && let Ok(pos) = u32::try_from(i)
        {
            self.index.insert(moved.key.0, pos);
        }
    }

    /// Rebuilds the index from the states.
    fn reindex(&mut self) {
        self.index.clear();
        for (i, s) in self.states.iter().enumerate() {
            if let Ok(pos) = u32::try_from(i) {
                self.index.insert(s.key.0, pos);
            }
        }
    }
}

/// Directory states, keyed by a 128-bit keyed hash of the path, carried from scan to scan and
/// updated in place.
///
/// One map serves both as the previous scan's states (read by the walks) and as the next
/// scan's (written by them): a directory is reused only from a state listed by an *earlier*
/// scan, a reused state is marked as seen, a listed one replaces the old one, and
/// [`DirCache::end_scan`] drops whatever the scan did not visit. Walks share it through
/// `&self` (a mutex held only for one lookup or insert, never across an await).
///
/// # Memory
/// No path strings and no subdirectory names are kept (reuse only needs to know whether a
/// directory had subdirectories): a path is known by two SipHash-1-3 values under a random
/// key drawn once per cache (`RandomState`), 128 bits in all. States live in one dense `Vec`
/// (112 bytes each) and an index maps the first 64-bit half to the position (16 bytes per
/// slot, one to two slots per entry by the power-of-two growth of the table): about 150–165
/// bytes per directory, against about 230 with path keys, subdirectory names and whole
/// records in the hash table.
///
/// # Collisions
/// Two directories whose first halves collide (probability about n²/2⁶⁵: 3·10⁻⁸ for 10⁶
/// directories) evict each other: the full keys differ, so the other one is simply listed
/// again — never a wrong count. A wrong reuse needs both halves to collide *and* the same
/// observed mtime: below n²/2¹²⁹ (10⁻²⁶ for 10⁶ directories), and the key is random per
/// process, so paths cannot be crafted to collide.
#[derive(Debug, Default)]
pub struct DirCache {
    dirs: Mutex<Dirs>,
    keys: RandomState,
    generation: u16,
}

impl DirCache {
    /// An empty cache with room for `n` directories.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            dirs: Mutex::new(Dirs {
                index: Index::with_capacity_and_hasher(n, BuildHasherDefault::default()),
                states: Vec::with_capacity(n),
            }),
            keys: RandomState::new(),
            generation: 0,
        }
    }

    fn dirs(&self) -> MutexGuard<'_, Dirs> {
        self.dirs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The 128-bit key of `path`, as two halves.
    fn key(&self, path: &str) -> (u64, u64) {
        let half = |salt: u8| {
            let mut h = self.keys.build_hasher();
            h.write_u8(salt);
            h.write(path.as_bytes());
            h.finish()
        };
        (half(0), half(1))
    }

    /// Number of directories remembered.
    pub fn len(&self) -> usize {
        self.dirs().states.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.dirs().states.is_empty()
    }

    /// Starts a scan (a new generation); call before any walk of the scan. Generations wrap
    /// after 65536 scans; a state that then looks "listed in this scan" is merely listed again.
    pub fn begin_scan(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// Ends a scan: forgets every directory the scan neither listed nor reused.
    pub fn end_scan(&mut self) {
        let generation = self.generation;
        let dirs = self.dirs.get_mut().unwrap_or_else(PoisonError::into_inner);
        let before = dirs.states.len();
        dirs.states.retain(|s| s.seen_in == generation);
        if dirs.states.len() != before {
            dirs.reindex();
        }
    }

    /// The counts of `path` if an earlier scan listed it with mtime `observed` and it had no
    /// subdirectories (see the module docs); marks it as seen.
    fn reuse(&self, path: &str, observed: Option<i64>) -> Option<FileCounts> {
        let observed = observed.filter(|m| *m != UNKNOWN_MTIME)?;
        let key = self.key(path);
        let mut dirs = self.dirs();
        let i = dirs.find(key)?;
        let state = dirs.states.get_mut(i)?;
        if state.listed_in == self.generation || state.mtime_ms != observed || state.has_subdirs {
            return None;
        }
        state.seen_in = self.generation;
        Some(state.files.counts())
    }

    /// Remembers what listing `path` found.
    fn record(&self, path: &str, mtime_ms: Option<i64>, files: &FileCounts, has_subdirs: bool) {
        let key = self.key(path);
        let mut dirs = self.dirs();
        let Some(files) = CachedFiles::new(files) else {
            if let Some(i) = dirs.find(key) {
                dirs.remove_at(i);
            }
            return;
        };
        let state = DirState {
            key,
            mtime_ms: mtime_ms.unwrap_or(UNKNOWN_MTIME),
            files,
            listed_in: self.generation,
            seen_in: self.generation,
            has_subdirs,
        };
        match dirs.index.get(&key.0).map(|&i| i as usize) {
            // Same path, or a first-half collision: the newer listing takes the slot.
            Some(i) if i < dirs.states.len() => dirs.states[i] = state,
            _ => {
                let Ok(pos) = u32::try_from(dirs.states.len()) else {
                    return;
                };
                dirs.states.push(state);
                dirs.index.insert(key.0, pos);
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
        let mut subdirs: Vec<(String, i64)> = Vec::new();
        let listed = fs
            .list_entries(&path, &mut |entry| match entry.kind {
                EntryKind::File => files.add_entry(entry, small_threshold),
                EntryKind::Directory if !entry.is_hidden() && !entry.name.is_empty() => {
                    subdirs.push((join_path(&path, entry.name), entry.modification_time_ms));
                }
                EntryKind::Directory | EntryKind::Symlink => {}
            })
            .await;
        out.listings += 1;
        match listed {
            Ok(()) => {}
            Err(FsError::NotFound { .. }) if path != root => continue,
            Err(e) => return Err(e),
        }
        out.counts.merge(&files);
        cache.record(&path, observed, &files, !subdirs.is_empty());
        stack.extend(subdirs.into_iter().map(|(sub, mtime)| (sub, Some(mtime))));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_stay_compact() {
        assert_eq!(std::mem::size_of::<DirState>(), 112);
    }

    #[test]
    fn reuse_needs_an_earlier_listing_with_the_same_mtime() {
        let mut cache = DirCache::default();
        cache.begin_scan();
        let mut c = FileCounts::default();
        c.add_file(10, 5, 6, 100);
        cache.record("/w/a", Some(7), &c, false);
        cache.record("/w/b", Some(7), &c, true);
        cache.record("/w/c", None, &c, false);
        assert_eq!(cache.reuse("/w/a", Some(7)), None, "listed in this scan");
        cache.end_scan();
        cache.begin_scan();
        assert_eq!(cache.reuse("/w/a", Some(8)), None, "mtime changed");
        assert_eq!(cache.reuse("/w/a", Some(7)), Some(c.clone()));
        assert_eq!(cache.reuse("/w/b", Some(7)), None, "has subdirectories");
        assert_eq!(cache.reuse("/w/c", Some(UNKNOWN_MTIME)), None);
        assert_eq!(cache.reuse("/w/d", Some(7)), None);
        cache.end_scan();
        assert_eq!(cache.len(), 1, "only the reused directory stays");
        cache.begin_scan();
        assert_eq!(cache.reuse("/w/a", Some(7)), Some(c.clone()));
        c.files = u64::from(u32::MAX) + 1;
        cache.record("/w/a", Some(9), &c, false);
        assert_eq!(cache.len(), 0, "counts that do not fit are forgotten");
    }

    #[test]
    fn cached_counts_round_trip() {
        let mut c = FileCounts::default();
        c.add_file(0, 5, 6, 100);
        c.add_file(50, 7, 3, 100);
        c.add_file(5000, 9, 1, 100);
        c.codec_hints[2] = 4;
        assert_eq!(CachedFiles::new(&c).map(|x| x.counts()), Some(c.clone()));
        c.codec_hints[0] = 1;
        assert_eq!(CachedFiles::new(&c), None, "two codecs: listed again");
        c.codec_hints = [0; 7];
        assert_eq!(CachedFiles::new(&c).map(|x| x.counts()), Some(c.clone()));
        c.files = u64::from(u32::MAX) + 1;
        assert_eq!(CachedFiles::new(&c), None);
    }
}
