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
//! ```

use hive_smallfiles_core::fs::{join_path, parent_path};

/// Prefix of staging area names.
pub const AREA_PREFIX: &str = ".hive-smallfiles.";

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
    fn names() {
        assert!(is_area_name(".hive-smallfiles.ds=1"));
        assert!(!is_area_name(".hive-smallfiles."));
        assert!(!is_area_name("ds=1"));
        let id = new_merge_id(7, chrono::Utc::now());
        assert!(is_merge_id(&id) && id.contains("-7-"));
        assert!(!is_merge_id("lock"));
    }
}
