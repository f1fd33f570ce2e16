//! The listings of the unreferenced-data view: examines every partitioned table's location and
//! the directories between it and its partitions, and walks each unreferenced directory found
//! there; which entry is what is decided by [`super::unreferenced`].
//!
//! Cost: a directory the scan already listed as the parent of partitions (a single-level
//! table's location, the `a=…` level of an `a/b` table) is not listed again, its other entries
//! were kept from that listing. Other examined directories cost one listing each. Unreferenced
//! directories are walked by the partition walker, which reuses unchanged directories from
//! the previous scan's cache. At most `list_concurrency` listings or walks run at once. A
//! failing listing fails its table only (as a failing partition does); a directory that
//! vanished meanwhile counts as nothing.

use std::collections::HashMap;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use hive_smallfiles_core::fs::{FileSystem, FsError, join_path};
use hive_smallfiles_core::walk::{DirCache, WalkOutcome, walk_tree};

use super::ParentListing;
use super::unreferenced::{EntryClass, ListedEntry, PartitionLayout};
use crate::snapshot::Unreferenced;

/// What the view found for one table.
#[derive(Debug, Default)]
pub(super) struct TableFindings {
    /// Unreferenced directories, files and bytes.
    pub(super) found: Unreferenced,
    /// The first listing that failed.
    pub(super) error: Option<FsError>,
}

/// What the view found in one scan.
#[derive(Debug, Default)]
pub(super) struct ViewOutcome {
    /// By table index; tables with nothing found may be absent.
    pub(super) tables: HashMap<usize, TableFindings>,
    /// Listing requests made.
    pub(super) listings: u64,
    /// Directories reused from the previous scan without a request.
    pub(super) reused: u64,
}

/// What the view needs from its scan.
pub(super) struct ViewContext<'a> {
    pub(super) fs: &'a dyn FileSystem,
    pub(super) layout: &'a PartitionLayout<'a>,
    pub(super) parent_listings: &'a HashMap<&'a str, ParentListing<'a>>,
    pub(super) cache: &'a DirCache,
    pub(super) small: u64,
    pub(super) concurrency: usize,
}

enum Task {
    /// Look at the entries of a table location or of a directory holding partitions.
    Examine { table: usize, dir: String },
    /// Count everything below an unreferenced directory (`mtime` from its parent's listing).
    Walk {
        table: usize,
        dir: String,
        mtime: i64,
    },
}

enum Done {
    Examined {
        table: usize,
        dir: String,
        result: Result<Vec<ListedEntry>, FsError>,
    },
    Walked {
        table: usize,
        result: Result<WalkOutcome, FsError>,
    },
}

impl ViewContext<'_> {
    /// Examines the given tables' locations: (table index, location).
    pub(super) async fn run(&self, tables: &[(usize, &str)]) -> ViewOutcome {
        let mut out = ViewOutcome::default();
        // A stack: depth first, so that pending work stays small.
        let mut pending: Vec<Task> = tables
            .iter()
            .rev()
            .map(|(table, dir)| Task::Examine {
                table: *table,
                dir: (*dir).to_owned(),
            })
            .collect();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < self.concurrency {
                let Some(task) = pending.pop() else { break };
                let table = match &task {
                    Task::Examine { table, .. } | Task::Walk { table, .. } => *table,
                };
                let findings = out.tables.entry(table).or_default();
                if findings.error.is_some() {
                    continue;
                }
                match task {
                    Task::Examine { table, dir } => match self.listed(&dir) {
                        Some(entries) => {
                            self.sort(table, &dir, entries, findings, &mut pending);
                        }
                        None => in_flight.push(self.perform(Task::Examine { table, dir })),
                    },
                    walk @ Task::Walk { .. } => in_flight.push(self.perform(walk)),
                }
            }
            // Nothing in flight means nothing pending either (the loop above drained it).
            let Some(done) = in_flight.next().await else {
                break;
            };
            match done {
                Done::Examined { table, dir, result } => {
                    out.listings += 1;
                    let findings = out.tables.entry(table).or_default();
                    match result {
                        Ok(entries) => self.sort(table, &dir, &entries, findings, &mut pending),
                        // No location (or it vanished): nothing below it.
                        Err(FsError::NotFound { .. }) => {}
                        Err(e) => record_error(findings, e),
                    }
                }
                Done::Walked { table, result } => {
                    let findings = out.tables.entry(table).or_default();
                    match result {
                        Ok(w) => {
                            out.listings += w.listings;
                            out.reused += w.reused;
                            findings.found.directories += 1;
                            findings.found.files += w.counts.files;
                            findings.found.bytes += w.counts.bytes;
                        }
                        Err(FsError::NotFound { .. }) => out.listings += 1,
                        Err(e) => {
                            out.listings += 1;
                            record_error(findings, e);
                        }
                    }
                }
            }
        }
        out
    }

    /// The other entries of `dir` when the scan listed it already as a partitions' parent.
    fn listed(&self, dir: &str) -> Option<&[ListedEntry]> {
        self.parent_listings
            .get(dir)
            .and_then(Option::as_ref)
            .map(|l| l.others.as_slice())
    }

    /// Counts unreferenced files of `dir` and queues its containers and unreferenced
    /// directories.
    fn sort(
        &self,
        table: usize,
        dir: &str,
        entries: &[ListedEntry],
        findings: &mut TableFindings,
        pending: &mut Vec<Task>,
    ) {
        for e in entries {
            match self.layout.classify(dir, &e.name, e.kind) {
                EntryClass::Hidden | EntryClass::Walked | EntryClass::NotData => {}
                EntryClass::Container => pending.push(Task::Examine {
                    table,
                    dir: join_path(dir, &e.name),
                }),
                EntryClass::UnreferencedDirectory => pending.push(Task::Walk {
                    table,
                    dir: join_path(dir, &e.name),
                    mtime: e.modification_time_ms,
                }),
                EntryClass::UnreferencedFile => {
                    findings.found.files += 1;
                    findings.found.bytes += e.length;
                }
            }
        }
    }

    async fn perform(&self, task: Task) -> Done {
        match task {
            Task::Examine { table, dir } => {
                let result = list_entries(self.fs, &dir).await;
                Done::Examined { table, dir, result }
            }
            Task::Walk { table, dir, mtime } => {
                let result = walk_tree(self.fs, &dir, Some(mtime), self.cache, self.small).await;
                Done::Walked { table, result }
            }
        }
    }
}

fn record_error(findings: &mut TableFindings, e: FsError) {
    if findings.error.is_none() {
        findings.error = Some(e);
    }
}

/// The visible entries of one directory.
async fn list_entries(fs: &dyn FileSystem, dir: &str) -> Result<Vec<ListedEntry>, FsError> {
    let mut entries = Vec::new();
    fs.list_entries(dir, &mut |entry| {
        if !entry.is_hidden() {
            entries.push(ListedEntry::from(entry));
        }
    })
    .await?;
    Ok(entries)
}
