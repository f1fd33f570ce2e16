//! Where the commit protocol keeps its files (pure path arithmetic).
//!
//! Beside every partition directory `<parent>/<leaf>` the protocol uses one hidden *staging
//! area* `<parent>/.hive-smallfiles.<leaf>`. Names starting with `.` are skipped by Hive
//! (`FileUtils.HIDDEN_FILES_PATH_FILTER`), by Spark's partition discovery and by `MSCK
//! REPAIR TABLE`, and the area is on the same filesystem as the partition, so renames
//! between the two are atomic metadata operations. Inside it:
//!
//! ```text
//! .hive-smallfiles.<leaf>/
//!   lock                      exclusive lock of the partition (created with overwrite=false)
//!   <merge id>/               one merge of the partition
//!     output/                 merged files, staged; becomes the partition directory
//!     manifest.json           written once, after staging and verification, before any
//!                             visible change
//!     backup/                 the original partition directory after the swap
//!     undone/                 the merged directory while a rollback runs
//!     committed               marker: swap finished and reconciled (holds the time)
//!     rolled-back             marker: rollback finished
//!     switching               marker (switch commits): the location switch may have been sent
//!     restore/                (switch commits) the old files being copied for a rollback
//!     rollback-to             marker (switch commits): where a rollback switches to
//! ```
//!
//! Switch commits put the merged directory where no reader or `MSCK REPAIR TABLE` looks
//! for partitions, and never at a path used before (Spark caches file listings per path):
//!
//! ```text
//! <table>/.hive-smallfiles-merged/<partition name>-<merge id>    a partition
//! <parent>/.hive-smallfiles-merged.<leaf>/<merge id>              an unpartitioned table
//!                                                                 (outside its old directory)
//! ```

use hive_smallfiles_core::fs::{join_path, parent_path};

/// Prefix of staging area names.
pub const AREA_PREFIX: &str = ".hive-smallfiles.";

/// Name of the hidden directory under a partitioned table that holds switched partitions.
pub const MERGED_DIR: &str = ".hive-smallfiles-merged";

/// Where a switch commit puts the merged files of a partition (pure, unique per merge id).
///
/// * partitioned table (`table_root` is the table's location): `<table_root>/
///   .hive-smallfiles-merged/<partition name>-<suffix>` — hidden, so `MSCK REPAIR TABLE`,
///   Hive and Spark partition discovery never register it;
/// * unpartitioned table: beside the table's first directory, outside it:
///   `<parent>/.hive-smallfiles-merged.<leaf>/<suffix>`; a table already switched there
///   stays in the same hidden parent.
pub fn switch_location(
    table_root: Option<&str>,
    current: &str,
    partition: &str,
    suffix: &str,
) -> Option<String> {
    if !partition.is_empty() {
        let root = table_root?;
        return Some(join_path(
            &join_path(root, MERGED_DIR),
            &format!("{partition}-{suffix}"),
        ));
    }
    let parent = parent_path(current);
    let parent_leaf = parent.rsplit('/').next().unwrap_or_default();
    let prefix = format!("{MERGED_DIR}.");
    if parent_leaf.len() > prefix.len() && parent_leaf.starts_with(&prefix) {
        return Some(join_path(parent, suffix));
    }
    let leaf = current.rsplit('/').next().filter(|l| !l.is_empty())?;
    Some(join_path(
        &join_path(parent, &format!("{prefix}{leaf}")),
        suffix,
    ))
}

/// Paths of one partition's staging area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaLayout {
    /// The partition (or unpartitioned table) directory.
    pub partition: String,
    /// The staging area.
    pub area: String,
    /// The lock file.
    pub lock: String,
}

impl AreaLayout {
    /// The layout for a partition directory (a normalized absolute path, not `/`).
    pub fn for_partition(partition: &str) -> Option<Self> {
        let leaf = partition.rsplit('/').next().filter(|l| !l.is_empty())?;
        let area = join_path(parent_path(partition), &format!("{AREA_PREFIX}{leaf}"));
        Some(Self {
            partition: partition.to_owned(),
            lock: join_path(&area, "lock"),
            area,
        })
    }

    /// The layout of an existing staging area found at `area` (`None` when the name is not
    /// one of ours).
    pub fn for_area(area: &str) -> Option<Self> {
        let name = area.rsplit('/').next()?;
        let leaf = name.strip_prefix(AREA_PREFIX).filter(|l| !l.is_empty())?;
        Self::for_partition(&join_path(parent_path(area), leaf))
    }

    /// One merge's paths inside the area.
    pub fn merge(&self, merge_id: &str) -> MergeLayout {
        let dir = join_path(&self.area, merge_id);
        MergeLayout {
            partition: self.partition.clone(),
            output: join_path(&dir, "output"),
            backup: join_path(&dir, "backup"),
            undone: join_path(&dir, "undone"),
            manifest: join_path(&dir, "manifest.json"),
            committed: join_path(&dir, "committed"),
            rolled_back: join_path(&dir, "rolled-back"),
            switching: join_path(&dir, "switching"),
            restore: join_path(&dir, "restore"),
            rollback_to: join_path(&dir, "rollback-to"),
            merge_id: merge_id.to_owned(),
            dir,
        }
    }
}

/// Paths of one merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeLayout {
    /// The merge id (directory name).
    pub merge_id: String,
    /// The partition directory.
    pub partition: String,
    /// The merge's directory.
    pub dir: String,
    /// Staged output.
    pub output: String,
    /// The original partition after the swap.
    pub backup: String,
    /// The merged partition while a rollback runs.
    pub undone: String,
    /// The manifest.
    pub manifest: String,
    /// Commit marker.
    pub committed: String,
    /// Rollback marker.
    pub rolled_back: String,
    /// Switch commits: marker written just before the location switch is sent.
    pub switching: String,
    /// Switch commits: the old files being copied for a rollback.
    pub restore: String,
    /// Switch commits: marker naming the directory a rollback switches to.
    pub rollback_to: String,
}

/// Whether a directory entry name is a staging area.
pub fn is_area_name(name: &str) -> bool {
    name.len() > AREA_PREFIX.len() && name.starts_with(AREA_PREFIX)
}

/// A merge id: sortable by time, unique across agents and restarts
/// (`m<yyyymmddThhmmss>-<job>-<random hex>`).
pub fn new_merge_id(job: u64, now: chrono::DateTime<chrono::Utc>) -> String {
    let nonce: u32 = rand::random();
    format!("m{}-{job}-{nonce:08x}", now.format("%Y%m%dT%H%M%S"))
}

/// Whether a name inside an area is a merge directory (not the lock).
pub fn is_merge_id(name: &str) -> bool {
    name.starts_with('m') && name.len() > 1 && name != "lock"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_beside_the_partition() {
        let a = AreaLayout::for_partition("/w/db.db/t/ds=2024-01-01").unwrap();
        assert_eq!(a.area, "/w/db.db/t/.hive-smallfiles.ds=2024-01-01");
        assert_eq!(a.lock, "/w/db.db/t/.hive-smallfiles.ds=2024-01-01/lock");
        let m = a.merge("m1");
        assert_eq!(
            m.output,
            "/w/db.db/t/.hive-smallfiles.ds=2024-01-01/m1/output"
        );
        assert_eq!(
            m.backup,
            "/w/db.db/t/.hive-smallfiles.ds=2024-01-01/m1/backup"
        );
        assert_eq!(AreaLayout::for_area(&a.area), Some(a));
        assert_eq!(AreaLayout::for_area("/w/db.db/t/ds=1"), None);
        assert_eq!(AreaLayout::for_partition("/"), None);
        let t = AreaLayout::for_partition("/w/db.db/t").unwrap();
        assert_eq!(t.area, "/w/db.db/.hive-smallfiles.t");
    }

    #[test]
    fn switch_locations_are_hidden_unique_and_outside_an_unpartitioned_table() {
        assert_eq!(
            switch_location(Some("/w/t"), "/w/t/ds=1", "ds=1", "m1").as_deref(),
            Some("/w/t/.hive-smallfiles-merged/ds=1-m1")
        );
        // A partition switched before gets the next merge's own path.
        assert_eq!(
            switch_location(
                Some("/w/t"),
                "/w/t/.hive-smallfiles-merged/ds=1-m1",
                "ds=1",
                "m2"
            )
            .as_deref(),
            Some("/w/t/.hive-smallfiles-merged/ds=1-m2")
        );
        assert_eq!(
            switch_location(Some("/w/t"), "/w/t/a=1/b=2", "a=1/b=2", "m1").as_deref(),
            Some("/w/t/.hive-smallfiles-merged/a=1/b=2-m1")
        );
        assert_eq!(switch_location(None, "/w/t/ds=1", "ds=1", "m1"), None);
        let first = switch_location(None, "/w/db/t", "", "m1").unwrap();
        assert_eq!(first, "/w/db/.hive-smallfiles-merged.t/m1");
        assert!(!first.starts_with("/w/db/t/"));
        assert_eq!(
            switch_location(None, &first, "", "m2").as_deref(),
            Some("/w/db/.hive-smallfiles-merged.t/m2")
        );
        assert!(!is_area_name(".hive-smallfiles-merged.t"));
    }

    #[test]
    fn names() {
        assert!(is_area_name(".hive-smallfiles.ds=1"));
        assert!(!is_area_name(".hive-smallfiles."));
        assert!(!is_area_name("ds=1"));
        let id = new_merge_id(7, chrono::Utc::now());
        assert!(is_merge_id(&id) && id.contains("-7-"));
        assert!(!is_merge_id("lock"));
    }
}
