//! Ground truth for exporter tests, computed independently of the exporter: walks real
//! directories with `std::fs` and applies Hive's rules (names starting with `.` or `_` are
//! invisible, symlinks are not data, directories are walked recursively).

use std::path::Path;

/// 1 MiB.
const MIB: u64 = 1 << 20;

/// What one table (or partition) adds up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Truth {
    /// Visible files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files under the small threshold.
    pub small: u64,
    /// Zero-length files.
    pub empty: u64,
    /// Newest mtime, ms.
    pub newest_mtime_ms: i64,
    /// Newest atime, ms.
    pub newest_atime_ms: i64,
    /// Size classes: empty, <1MiB, <16MiB, <64MiB, <threshold, >=threshold.
    pub classes: [u64; 6],
    /// Sum of per-partition excess files.
    pub excess: u64,
    /// Partition directories that do not exist.
    pub missing: u64,
}

fn millis(t: std::io::Result<std::time::SystemTime>) -> i64 {
    t.ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Walks one partition directory (recursively) into `acc`; returns false if it is missing.
pub fn walk_partition(dir: &Path, small_threshold: u64, target: u64, acc: &mut Truth) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        acc.missing += 1;
        return false;
    };
    let mut part = Truth::default();
    if meta.is_file() {
        add(&mut part, &meta, small_threshold);
    } else {
        walk_dir(dir, small_threshold, &mut part);
    }
    let ideal = part.bytes.div_ceil(target);
    acc.excess += part.files.saturating_sub(ideal);
    acc.files += part.files;
    acc.bytes += part.bytes;
    acc.small += part.small;
    acc.empty += part.empty;
    acc.newest_mtime_ms = acc.newest_mtime_ms.max(part.newest_mtime_ms);
    acc.newest_atime_ms = acc.newest_atime_ms.max(part.newest_atime_ms);
    for (a, b) in acc.classes.iter_mut().zip(part.classes) {
        *a += b;
    }
    true
}

fn walk_dir(dir: &Path, small: u64, acc: &mut Truth) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if meta.is_dir() {
            walk_dir(&e.path(), small, acc);
        } else if meta.is_file() {
            add(acc, &meta, small);
        }
    }
}

fn add(acc: &mut Truth, meta: &std::fs::Metadata, small: u64) {
    let len = meta.len();
    acc.files += 1;
    acc.bytes += len;
    if len < small {
        acc.small += 1;
    }
    if len == 0 {
        acc.empty += 1;
    }
    acc.newest_mtime_ms = acc.newest_mtime_ms.max(millis(meta.modified()));
    acc.newest_atime_ms = acc.newest_atime_ms.max(millis(meta.accessed()));
    let class = if len == 0 {
        0
    } else if len >= small {
        5
    } else if len < MIB {
        1
    } else if len < 16 * MIB {
        2
    } else if len < 64 * MIB {
        3
    } else {
        4
    };
    acc.classes[class] += 1;
}
