//! Pure counting of listed files: what one directory, partition or table adds up to.
//!
//! Counting is streaming: a [`FileCounts`] absorbs one file at a time and never keeps
//! per-file records, so a directory of a million files costs the same memory as one of ten.

use crate::fs::{EntryKind, EntryRef, FileStatus};

/// 1 MiB.
const MIB: u64 = 1024 * 1024;

/// Fixed file size classes for the dashboards' size-distribution panels.
///
/// Classes are disjoint and ordered: a file falls in the first class that fits. Every class
/// before [`SizeClass::AtOrOverThreshold`] is a small file, so the first five add up to
/// `hive_table_small_files`, whatever the configured threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SizeClass {
    /// Zero bytes.
    Empty,
    /// Under 1 MiB.
    Under1MiB,
    /// Under 16 MiB.
    Under16MiB,
    /// Under 64 MiB.
    Under64MiB,
    /// Under the small-file threshold (and at least 64 MiB).
    UnderThreshold,
    /// At or over the small-file threshold: not small.
    AtOrOverThreshold,
}

impl SizeClass {
    /// All classes, in order.
    pub const ALL: [Self; 6] = [
        Self::Empty,
        Self::Under1MiB,
        Self::Under16MiB,
        Self::Under64MiB,
        Self::UnderThreshold,
        Self::AtOrOverThreshold,
    ];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Under1MiB => "under_1mib",
            Self::Under16MiB => "under_16mib",
            Self::Under64MiB => "under_64mib",
            Self::UnderThreshold => "under_threshold",
            Self::AtOrOverThreshold => "at_or_over_threshold",
        }
    }

    /// The class of a file of `length` bytes given the small-file threshold.
    pub fn of(length: u64, small_threshold: u64) -> Self {
        if length == 0 {
            Self::Empty
        } else if length >= small_threshold {
            Self::AtOrOverThreshold
        } else if length < MIB {
            Self::Under1MiB
        } else if length < 16 * MIB {
            Self::Under16MiB
        } else if length < 64 * MIB {
            Self::Under64MiB
        } else {
            Self::UnderThreshold
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Compression codecs recognisable from file name suffixes (Hive's text output codecs and
/// Spark's `part-…c000.snappy.parquet` style names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecHint {
    /// `.gz`.
    Gzip,
    /// `.bz2`.
    Bzip2,
    /// `.snappy`.
    Snappy,
    /// `.zst` / `.zstd`.
    Zstd,
    /// `.lz4`.
    Lz4,
    /// `.lzo`.
    Lzo,
    /// `.deflate`.
    Deflate,
}

impl CodecHint {
    const ALL: [Self; 7] = [
        Self::Gzip,
        Self::Bzip2,
        Self::Snappy,
        Self::Zstd,
        Self::Lz4,
        Self::Lzo,
        Self::Deflate,
    ];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Bzip2 => "bzip2",
            Self::Snappy => "snappy",
            Self::Zstd => "zstd",
            Self::Lz4 => "lz4",
            Self::Lzo => "lzo",
            Self::Deflate => "deflate",
        }
    }

    /// Recognises a codec from a file name: the last extension, or the one before a
    /// `.parquet` / `.orc` / `.avro` extension.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let mut parts = name.rsplit('.');
        let last = parts.next()?;
        let is = |ext: &str, names: &[&str]| names.iter().any(|n| ext.eq_ignore_ascii_case(n));
        let ext = if is(last, &["parquet", "orc", "avro"]) {
            parts.next()?
        } else {
            last
        };
        [
            (Self::Gzip, &["gz", "gzip"][..]),
            (Self::Bzip2, &["bz2"]),
            (Self::Snappy, &["snappy"]),
            (Self::Zstd, &["zst", "zstd"]),
            (Self::Lz4, &["lz4"]),
            (Self::Lzo, &["lzo", "lzo_deflate"]),
            (Self::Deflate, &["deflate"]),
        ]
        .into_iter()
        .find_map(|(codec, names)| is(ext, names).then_some(codec))
    }
}

/// Counts over a set of files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileCounts {
    /// Files.
    pub files: u64,
    /// Bytes (logical length, without replication).
    pub bytes: u64,
    /// Files smaller than the threshold (empty files included).
    pub small_files: u64,
    /// Bytes held in small files.
    pub small_bytes: u64,
    /// Zero-length files.
    pub empty_files: u64,
    /// Newest modification time in ms (0 when there are no files).
    pub newest_modification_ms: i64,
    /// Newest access time in ms (0 when unknown).
    pub newest_access_ms: i64,
    /// Files per [`SizeClass`], in [`SizeClass::ALL`] order.
    pub size_classes: [u64; 6],
    /// Files per recognised codec suffix, in `CodecHint::ALL` order.
    pub codec_hints: [u32; 7],
}

impl FileCounts {
    /// Absorbs one entry if it is a visible file. Hidden names and directories are ignored
    /// (directories are walked by the caller); symlinks are not followed or counted.
    pub fn add_status(&mut self, status: &FileStatus, small_threshold: u64) {
        self.add_entry(EntryRef::from(status), small_threshold);
    }

    /// [`add_status`](Self::add_status) of a borrowed entry.
    pub fn add_entry(&mut self, entry: EntryRef<'_>, small_threshold: u64) {
        if entry.kind != EntryKind::File || entry.is_hidden() {
            return;
        }
        self.add_file(
            entry.length,
            entry.modification_time_ms,
            entry.access_time_ms,
            small_threshold,
        );
        if let Some(codec) = CodecHint::from_file_name(entry.name) {
            let i = CodecHint::ALL.iter().position(|c| *c == codec).unwrap_or(0);
            self.codec_hints[i] = self.codec_hints[i].saturating_add(1);
        }
    }

    /// Absorbs one file.
    pub fn add_file(
        &mut self,
        length: u64,
        modification_ms: i64,
        access_ms: i64,
        small_threshold: u64,
    ) {
        self.files += 1;
        self.bytes += length;
        if length < small_threshold {
            self.small_files += 1;
            self.small_bytes += length;
        }
        if length == 0 {
            self.empty_files += 1;
        }
        self.newest_modification_ms = self.newest_modification_ms.max(modification_ms);
        self.newest_access_ms = self.newest_access_ms.max(access_ms);
        self.size_classes[SizeClass::of(length, small_threshold).index()] += 1;
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &Self) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.small_files += other.small_files;
        self.small_bytes += other.small_bytes;
        self.empty_files += other.empty_files;
        self.newest_modification_ms = self
            .newest_modification_ms
            .max(other.newest_modification_ms);
        self.newest_access_ms = self.newest_access_ms.max(other.newest_access_ms);
        for (a, b) in self.size_classes.iter_mut().zip(other.size_classes) {
            *a += b;
        }
        for (a, b) in self.codec_hints.iter_mut().zip(other.codec_hints) {
            *a = a.saturating_add(b);
        }
    }

    /// Files in one size class.
    pub fn size_class(&self, class: SizeClass) -> u64 {
        self.size_classes[class.index()]
    }

    /// The most frequent codec suffix, if any file had one.
    pub fn dominant_codec(&self) -> Option<CodecHint> {
        let (i, n) = self
            .codec_hints
            .iter()
            .enumerate()
            .max_by_key(|(i, n)| (**n, usize::MAX - i))?;
        (*n > 0).then(|| CodecHint::ALL[i])
    }
}

/// Files a perfect merge of one partition would remove:
/// `max(0, files - ceil(bytes / target_file_bytes))`.
pub fn excess_files(files: u64, bytes: u64, target_file_bytes: u64) -> u64 {
    let target = target_file_bytes.max(1);
    let ideal = bytes.div_ceil(target);
    files.saturating_sub(ideal)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 128 * MIB;

    fn file(name: &str, len: u64, mtime: i64) -> FileStatus {
        FileStatus {
            name: name.into(),
            kind: EntryKind::File,
            length: len,
            modification_time_ms: mtime,
            access_time_ms: mtime + 1,
            permission: 0o644,
            owner: "hive".into(),
            group: "hive".into(),
        }
    }

    #[test]
    fn size_classes_partition_the_small_files() {
        assert_eq!(SizeClass::of(0, T), SizeClass::Empty);
        assert_eq!(SizeClass::of(1, T), SizeClass::Under1MiB);
        assert_eq!(SizeClass::of(MIB, T), SizeClass::Under16MiB);
        assert_eq!(SizeClass::of(16 * MIB, T), SizeClass::Under64MiB);
        assert_eq!(SizeClass::of(64 * MIB, T), SizeClass::UnderThreshold);
        assert_eq!(SizeClass::of(T - 1, T), SizeClass::UnderThreshold);
        assert_eq!(SizeClass::of(T, T), SizeClass::AtOrOverThreshold);
        // A threshold below 64 MiB: 40 MiB is not small, so it is not "under 64 MiB".
        assert_eq!(
            SizeClass::of(40 * MIB, 32 * MIB),
            SizeClass::AtOrOverThreshold
        );
    }

    #[test]
    fn counts_ignore_hidden_and_directories() {
        let mut c = FileCounts::default();
        c.add_status(&file("000000_0", 10, 5), T);
        c.add_status(&file("part-1.snappy.parquet", 0, 9), T);
        c.add_status(&file("big", T, 7), T);
        c.add_status(&file("_SUCCESS", 0, 100), T);
        c.add_status(&file(".part-1.crc", 12, 100), T);
        let mut dir = file("sub", 0, 100);
        dir.kind = EntryKind::Directory;
        c.add_status(&dir, T);
        assert_eq!(
            (c.files, c.bytes, c.small_files, c.empty_files),
            (3, 10 + T, 2, 1)
        );
        assert_eq!(c.newest_modification_ms, 9);
        assert_eq!(c.newest_access_ms, 10);
        assert_eq!(c.size_classes, [1, 1, 0, 0, 0, 1]);
        assert_eq!(c.dominant_codec(), Some(CodecHint::Snappy));
        let mut total = FileCounts::default();
        total.merge(&c);
        total.merge(&c);
        assert_eq!(total.files, 6);
        assert_eq!(total.newest_modification_ms, 9);
    }

    #[test]
    fn excess_is_what_a_perfect_merge_removes() {
        assert_eq!(excess_files(10, 10 * MIB, T), 9);
        assert_eq!(excess_files(1, 10, T), 0);
        assert_eq!(excess_files(3, 3 * T, T), 0);
        assert_eq!(excess_files(4, 3 * T + 1, T), 0);
        assert_eq!(excess_files(0, 0, T), 0);
        assert_eq!(excess_files(3, 0, T), 3);
    }

    #[test]
    fn codec_hints_from_names() {
        assert_eq!(
            CodecHint::from_file_name("000000_0.gz"),
            Some(CodecHint::Gzip)
        );
        assert_eq!(
            CodecHint::from_file_name("part-0-c000.zstd.orc"),
            Some(CodecHint::Zstd)
        );
        assert_eq!(CodecHint::from_file_name("000000_0"), None);
        assert_eq!(CodecHint::from_file_name("x.parquet"), None);
        assert_eq!(
            CodecHint::from_file_name("a.SNAPPY.Parquet"),
            Some(CodecHint::Snappy)
        );
        assert_eq!(
            CodecHint::from_file_name("a.lzo_deflate"),
            Some(CodecHint::Lzo)
        );
        assert_eq!(CodecHint::from_file_name("gz"), Some(CodecHint::Gzip));
        assert_eq!(CodecHint::from_file_name("a.tar"), None);
        assert_eq!(CodecHint::from_file_name("parquet"), None);
    }
}
