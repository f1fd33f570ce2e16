//! Which entries below a partitioned table's location no partition points at ("unreferenced"
//! or dark data): the pure decision, given the directories the scan walks and a listing.
//! The listings themselves are [`super::unreferenced_walk`]'s.
//!
//! The rules, for an entry `name` of a directory `dir` examined below a table location:
//! * hidden names (`.…`, `_…`: `.hive-smallfiles-merged`, `_temporary`, `.hive-staging…`) are skipped;
//! * a directory the scan walks anyway (any table's partition, any unpartitioned table) is
//!   referenced and skipped: its files are the table's;
//! * a directory holding partition directories deeper down (`a=1` of a partition `a=1/b=2`)
//!   is examined in turn, not counted;
//! * symlinks are not data;
//! * any other directory is unreferenced (counted once, with every visible file below it),
//!   and any other file directly in an examined directory is an unreferenced file.
//!
//! A table whose location lies in a walked directory (a partition at the table location) has
//! nothing unreferenced. Partitions outside the table location do not matter here.

use std::collections::{HashMap, HashSet};

use hive_smallfiles_core::fs::{
    EntryKind, EntryRef, FileStatus, is_hidden_name, join_path, parent_path,
};

/// One entry of a listing, as far as the view needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedEntry {
    /// Name within its directory.
    pub name: Box<str>,
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Modification time (ms), for reusing an unchanged directory's counts.
    pub modification_time_ms: i64,
    /// Length in bytes (files).
    pub length: u64,
}

impl From<EntryRef<'_>> for ListedEntry {
    fn from(e: EntryRef<'_>) -> Self {
        Self {
            name: e.name.into(),
            kind: e.kind,
            modification_time_ms: e.modification_time_ms,
            length: e.length,
        }
    }
}

impl From<FileStatus> for ListedEntry {
    fn from(s: FileStatus) -> Self {
        Self {
            name: s.name.into_boxed_str(),
            kind: s.kind,
            modification_time_ms: s.modification_time_ms,
            length: s.length,
        }
    }
}

/// What an entry of an examined directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryClass {
    /// Hidden by its name: not data.
    Hidden,
    /// A directory the scan walks as a partition or table: referenced.
    Walked,
    /// A directory holding partition directories deeper down: examine it too.
    Container,
    /// A symlink: not data.
    NotData,
    /// A directory no partition points at: walk it and count everything below.
    UnreferencedDirectory,
    /// A file no partition holds: count it.
    UnreferencedFile,
}

/// The directories a scan walks, by parent, and the directories to examine for unreferenced
/// data: table locations and the directories between them and their partitions' parents.
///
/// Paths are borrowed from the scan's plan and must be normalized absolute paths.
#[derive(Debug, Default)]
pub struct PartitionLayout<'a> {
    /// Walked directories (partitions, unpartitioned tables): parent → names.
    walked: HashMap<&'a str, HashSet<&'a str>>,
    /// Directories to examine.
    examined: HashSet<&'a str>,
}

/// Whether `path` lies strictly below `root`.
fn is_below(path: &str, root: &str) -> bool {
    path.len() > root.len()
        && path.starts_with(root)
        && (root.ends_with('/') || path.as_bytes()[root.len()] == b'/')
}

/// Splits a normalized absolute path into its parent and last segment.
fn split_parent(path: &str) -> (&str, &str) {
    let parent = parent_path(path);
    (parent, path[parent.len()..].trim_start_matches('/'))
}

impl<'a> PartitionLayout<'a> {
    /// The layout of a scan walking `walked` (every partition directory and unpartitioned
    /// table location of the scan; `/` is ignored).
    pub fn new(walked: impl IntoIterator<Item = &'a str>) -> Self {
        let mut by_parent: HashMap<&'a str, HashSet<&'a str>> = HashMap::new();
        for p in walked {
            if p != "/" {
                let (parent, name) = split_parent(p);
                by_parent.entry(parent).or_default().insert(name);
            }
        }
        Self {
            walked: by_parent,
            examined: HashSet::new(),
        }
    }

    /// Parents of walked directories with the names walked in each.
    pub fn parents(&self) -> &HashMap<&'a str, HashSet<&'a str>> {
        &self.walked
    }

    /// Whether the scan walks `path` itself.
    pub fn is_walked(&self, path: &str) -> bool {
        if path == "/" {
            return false;
        }
        let (parent, name) = split_parent(path);
        self.walked.get(parent).is_some_and(|n| n.contains(name))
    }

    /// Whether `path` is a walked directory or lies in one.
    pub fn is_covered(&self, path: &str) -> bool {
        let mut p = path;
        loop {
            if self.is_walked(p) {
                return true;
            }
            if p == "/" {
                return false;
            }
            p = parent_path(p);
        }
    }

    /// Adds a partitioned table at `location` with its partition directories; returns whether
    /// its location is to be examined (false when it lies in a walked directory, or is `/`).
    pub fn add_table(
        &mut self,
        location: &'a str,
        partitions: impl IntoIterator<Item = &'a str>,
    ) -> bool {
        if location == "/" || self.is_covered(location) {
            return false;
        }
        self.examined.insert(location);
        for p in partitions {
            if !is_below(p, location) {
                continue;
            }
            let mut dir = parent_path(p);
            // Below a hidden directory (`.hive-smallfiles-merged/…`) nothing is examined.
            if dir[location.len()..].split('/').any(is_hidden_name) {
                continue;
            }
            // Up to the location; stop where an earlier partition already went.
            while is_below(dir, location) && self.examined.insert(dir) {
                dir = parent_path(dir);
            }
        }
        true
    }

    /// Whether `dir` is a table location or a directory between one and its partitions.
    pub fn is_examined(&self, dir: &str) -> bool {
        self.examined.contains(dir)
    }

    /// What the entry `name` (of kind `kind`) of the examined directory `dir` is.
    pub fn classify(&self, dir: &str, name: &str, kind: EntryKind) -> EntryClass {
        if name.is_empty() || is_hidden_name(name) {
            return EntryClass::Hidden;
        }
        if self.walked.get(dir).is_some_and(|n| n.contains(name)) {
            return EntryClass::Walked;
        }
        match kind {
            EntryKind::Symlink => EntryClass::NotData,
            EntryKind::File => EntryClass::UnreferencedFile,
            EntryKind::Directory => {
                if self.examined.contains(join_path(dir, name).as_str()) {
                    EntryClass::Container
                } else {
                    EntryClass::UnreferencedDirectory
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout<'a>(walked: &[&'a str], tables: &[(&'a str, &[&'a str])]) -> PartitionLayout<'a> {
        let mut l = PartitionLayout::new(walked.iter().copied());
        for (loc, parts) in tables {
            l.add_table(loc, parts.iter().copied());
        }
        l
    }

    /// Classifies a listing of `dir` given as (name, kind).
    fn verdicts(
        l: &PartitionLayout<'_>,
        dir: &str,
        listing: &[(&str, EntryKind)],
    ) -> Vec<EntryClass> {
        listing
            .iter()
            .map(|(n, k)| l.classify(dir, n, *k))
            .collect()
    }

    use EntryClass::*;
    use EntryKind::{Directory as D, File as F, Symlink as S};

    #[test]
    fn single_level_unregistered_switched_and_stray() {
        // ds=1 was switched to a hidden directory; ds=2 is registered; ds=3 never was.
        let parts = ["/w/t/.hive-smallfiles-merged/ds=1-m1", "/w/t/ds=2"];
        let l = layout(&parts, &[("/w/t", &parts)]);
        assert!(l.is_examined("/w/t"));
        assert!(
            !l.is_examined("/w/t/.hive-smallfiles-merged"),
            "hidden: never looked into"
        );
        let got = verdicts(
            &l,
            "/w/t",
            &[
                ("ds=1", D),
                ("ds=2", D),
                ("ds=3", D),
                (".hive-smallfiles-merged", D),
                (".hive-smallfiles.lock", F),
                ("_temporary", D),
                (".hive-staging_hive_1", D),
                ("stray.txt", F),
                ("_SUCCESS", F),
                ("link", S),
            ],
        );
        assert_eq!(
            got,
            [
                UnreferencedDirectory,
                Walked,
                UnreferencedDirectory,
                Hidden,
                Hidden,
                Hidden,
                Hidden,
                UnreferencedFile,
                Hidden,
                NotData,
            ]
        );
    }

    #[test]
    fn multi_level_ancestors_are_examined_not_counted() {
        let parts = ["/w/m/a=1/b=1", "/w/m/a=1/b=2", "/w/m/a=2/b=1"];
        let l = layout(&parts, &[("/w/m", &parts)]);
        assert!(l.is_examined("/w/m") && l.is_examined("/w/m/a=1") && l.is_examined("/w/m/a=2"));
        assert!(!l.is_examined("/w/m/a=1/b=1"));
        assert_eq!(
            verdicts(&l, "/w/m", &[("a=1", D), ("a=2", D), ("a=3", D)]),
            [Container, Container, UnreferencedDirectory]
        );
        assert_eq!(
            verdicts(
                &l,
                "/w/m/a=1",
                &[("b=1", D), ("b=2", D), ("b=3", D), ("f", F)]
            ),
            [Walked, Walked, UnreferencedDirectory, UnreferencedFile]
        );
    }

    #[test]
    fn three_levels_examine_every_level_in_between() {
        let parts = ["/w/x/a=1/b=1/c=1"];
        let l = layout(&parts, &[("/w/x", &parts)]);
        for d in ["/w/x", "/w/x/a=1", "/w/x/a=1/b=1"] {
            assert!(l.is_examined(d), "{d}");
        }
        assert!(!l.is_examined("/w/x/a=1/b=1/c=1"));
        assert!(!l.is_examined("/w"));
    }

    #[test]
    fn partitions_outside_the_location_do_not_matter() {
        let parts = ["/landing/t/2024", "/w/t/ds=1"];
        let l = layout(&parts, &[("/w/t", &parts)]);
        assert!(!l.is_examined("/landing/t") && !l.is_examined("/landing"));
        assert_eq!(
            verdicts(&l, "/w/t", &[("ds=1", D), ("2024", D)]),
            [Walked, UnreferencedDirectory]
        );
    }

    #[test]
    fn a_partition_at_or_above_the_location_covers_everything() {
        let mut l = PartitionLayout::new(["/w/t"]);
        assert!(!l.add_table("/w/t", ["/w/t"]));
        assert!(!l.is_examined("/w/t"));
        let mut l = PartitionLayout::new(["/w"]);
        assert!(!l.add_table("/w/t", ["/w"]));
        let mut l = PartitionLayout::new(["/w/t/ds=1"]);
        assert!(!l.add_table("/", ["/w/t/ds=1"]));
    }

    #[test]
    fn other_tables_directories_are_referenced() {
        // An unpartitioned table nested in a partitioned table's directory.
        let walked = ["/w/t/ds=1", "/w/t/nested"];
        let l = layout(&walked, &[("/w/t", &["/w/t/ds=1"])]);
        assert_eq!(
            verdicts(&l, "/w/t", &[("nested", D), ("ds=2", D)]),
            [Walked, UnreferencedDirectory]
        );
    }

    #[test]
    fn a_table_without_partitions_examines_its_location() {
        let mut l = PartitionLayout::new([]);
        assert!(l.add_table("/w/empty", []));
        assert_eq!(
            verdicts(&l, "/w/empty", &[("ds=1", D)]),
            [UnreferencedDirectory]
        );
    }

    #[test]
    fn names_are_matched_exactly() {
        let parts = ["/w/t/k=a b", "/w/t/k=100%25"];
        let l = layout(&parts, &[("/w/t", &parts)]);
        assert_eq!(
            verdicts(
                &l,
                "/w/t",
                &[("k=a b", D), ("k=100%25", D), ("k=100%", D), ("k=a", D)]
            ),
            [Walked, Walked, UnreferencedDirectory, UnreferencedDirectory]
        );
    }

    #[test]
    fn below() {
        assert!(is_below("/w/t/x", "/w/t"));
        assert!(!is_below("/w/tt/x", "/w/t"));
        assert!(!is_below("/w/t", "/w/t"));
        assert!(is_below("/w", "/"));
    }
}
