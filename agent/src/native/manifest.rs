//! The merge manifest and the pure decision of what recovery does with a merge directory.
//!
//! The manifest is written once (with `overwrite=false`), after the merged output is staged
//! and verified and before any change a reader could see. It names every source file with
//! its length and modification time, every output file, the files carried over unchanged
//! (hidden markers such as `_SUCCESS`), and the partition directory's permission, owner and
//! group. Later states are marker files beside it (`committed`, `rolled-back`), so nothing
//! is ever rewritten in place — HDFS has no atomic in-place update.

use serde::{Deserialize, Serialize};

use super::format::NativeFormat;
pub use crate::policy::CommitMode;

/// Version of the manifest layout.
pub const MANIFEST_VERSION: u32 = 1;

/// A source file as listed when the merge read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Name inside the partition directory.
    pub name: String,
    /// Length in bytes.
    pub length: u64,
    /// Modification time, ms since the epoch.
    pub modification_ms: i64,
}

/// A merged output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestOutput {
    /// Name inside the partition directory after the swap.
    pub name: String,
    /// Length in bytes.
    pub length: u64,
    /// Rows (Parquet, ORC) or lines (text).
    pub rows: u64,
}

/// Attributes of the partition directory, restored on the new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryAttributes {
    /// Permission bits.
    pub permission: u32,
    /// Owner.
    pub owner: String,
    /// Group.
    pub group: String,
}

/// Who wrote the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Writer {
    /// The agent itself ([`super::format`]).
    Native,
    /// The SQL engine (`INSERT OVERWRITE DIRECTORY` into the staging directory).
    EngineStaged,
}

/// The manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// Merge id (the merge directory's name).
    pub merge_id: String,
    /// The agent job that ran it.
    pub job_id: u64,
    /// The agent instance that wrote it.
    pub agent: String,
    /// Cluster.
    pub cluster: String,
    /// `database.table`.
    pub table: String,
    /// `PART_NAME`, empty for an unpartitioned table.
    pub partition: String,
    /// The partition directory.
    pub partition_path: String,
    /// Who wrote the output.
    pub writer: Writer,
    /// The file format, when the agent knows it.
    pub format: Option<NativeFormat>,
    /// State when written: always `staged` (later states are marker files).
    pub state: String,
    /// When written, ms since the epoch.
    pub created_ms: i64,
    /// Sources as read.
    pub sources: Vec<ManifestFile>,
    /// Hidden files copied unchanged into the output (`_SUCCESS`...).
    pub carried: Vec<String>,
    /// Outputs as staged and verified.
    pub outputs: Vec<ManifestOutput>,
    /// Rows (or lines) of all sources together.
    pub rows: u64,
    /// The partition directory's attributes.
    pub directory: DirectoryAttributes,
    /// How the merge commits (absent in manifests written before switch commits: swap).
    #[serde(default)]
    pub commit: CommitMode,
    /// Switch commits: the new directory the partition's location is switched to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_location: Option<String>,
}

impl Manifest {
    /// Whether a file name belongs to what this merge put into the partition.
    pub fn is_output_or_carried(&self, name: &str) -> bool {
        self.outputs.iter().any(|o| o.name == name) || self.carried.iter().any(|c| c == name)
    }

    /// The source of that name.
    pub fn source(&self, name: &str) -> Option<&ManifestFile> {
        self.sources.iter().find(|s| s.name == name)
    }
}

/// What exists of one merge directory and its partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observed {
    /// `manifest.json` is there and readable.
    pub manifest: bool,
    /// `output/` exists.
    pub output: bool,
    /// `backup/` exists.
    pub backup: bool,
    /// `undone/` exists.
    pub undone: bool,
    /// The partition directory exists.
    pub partition: bool,
    /// `committed` marker.
    pub committed: bool,
    /// `rolled-back` marker.
    pub rolled_back: bool,
    /// The retention since the final marker has passed.
    pub expired: bool,
}

/// What to do with a merge directory, decided from what exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// No manifest: the merge never reached its commit point, nothing visible changed.
    /// Delete the merge directory.
    DiscardStaging,
    /// Manifest but no swap yet: abort, delete the merge directory; the partition is as it was.
    Abort,
    /// Crashed between the two renames (the partition directory is absent): rename the
    /// verified output into place, then reconcile.
    RollForward,
    /// Swapped, not yet reconciled: move files that arrived during the swap from the backup
    /// into the partition, check the backup's sources, write `committed`.
    FinishCommit,
    /// The partition was re-created by someone while it was absent (between the renames):
    /// move the output files into it one by one, then reconcile.
    ForwardFileByFile,
    /// A rollback crashed between its renames: rename the backup into place, then finish.
    ContinueRollback,
    /// A rollback swapped back: move files written since the merge from `undone/` into the
    /// partition, write `rolled-back`, delete `undone/`.
    FinishRollback,
    /// A rollback found the partition re-created while absent: move the backup's files into
    /// it one by one, then finish.
    RollbackFileByFile,
    /// Done (committed or rolled back), retention passed: delete the merge directory.
    Expire,
    /// Done, within retention: keep (the backup makes rollback possible).
    Keep,
    /// The partition was removed after the swap (e.g. `DROP PARTITION`): keep the merge
    /// directory until retention, report it.
    PartitionGone,
}

impl Action {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DiscardStaging => "discard_staging",
            Self::Abort => "abort",
            Self::RollForward => "roll_forward",
            Self::FinishCommit => "finish_commit",
            Self::ForwardFileByFile => "forward_file_by_file",
            Self::ContinueRollback => "continue_rollback",
            Self::FinishRollback => "finish_rollback",
            Self::RollbackFileByFile => "rollback_file_by_file",
            Self::Expire => "expire",
            Self::Keep => "keep",
            Self::PartitionGone => "partition_gone",
        }
    }
}

/// Decides what recovery does (pure; see [`Action`]).
pub fn decide(o: Observed) -> Action {
    if !o.manifest {
        return Action::DiscardStaging;
    }
    let done_or_keep = |o: Observed| {
        if o.expired {
            Action::Expire
        } else {
            Action::Keep
        }
    };
    if o.rolled_back {
        return done_or_keep(o);
    }
    if o.undone {
        return match (o.backup, o.partition) {
            (true, false) => Action::ContinueRollback,
            (true, true) => Action::RollbackFileByFile,
            (false, _) => Action::FinishRollback,
        };
    }
    if o.committed {
        return done_or_keep(o);
    }
    match (o.backup, o.partition, o.output) {
        (false, _, _) => Action::Abort,
        (true, false, true) => Action::RollForward,
        (true, true, false) => Action::FinishCommit,
        (true, true, true) => Action::ForwardFileByFile,
        (true, false, false) => {
            if o.expired {
                Action::Expire
            } else {
                Action::PartitionGone
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(flags: &str) -> Observed {
        Observed {
            manifest: flags.contains('m'),
            output: flags.contains('o'),
            backup: flags.contains('b'),
            undone: flags.contains('u'),
            partition: flags.contains('p'),
            committed: flags.contains('c'),
            rolled_back: flags.contains('r'),
            expired: flags.contains('x'),
        }
    }

    #[test]
    fn every_state_of_the_protocol_has_one_action() {
        let table = [
            // staging in progress or crashed before the manifest
            ("op", Action::DiscardStaging),
            ("p", Action::DiscardStaging),
            // manifest written, not swapped
            ("mop", Action::Abort),
            ("mp", Action::Abort),
            ("mo", Action::Abort),
            // between the two renames of the swap
            ("mob", Action::RollForward),
            // swapped
            ("mbp", Action::FinishCommit),
            ("mobp", Action::ForwardFileByFile),
            ("mbpc", Action::Keep),
            ("mbpcx", Action::Expire),
            ("mb", Action::PartitionGone),
            ("mbx", Action::Expire),
            // rollback
            ("mbpcu", Action::RollbackFileByFile),
            ("mbcu", Action::ContinueRollback),
            ("mpcu", Action::FinishRollback),
            ("mpcr", Action::Keep),
            ("mpcrx", Action::Expire),
            ("mpcru", Action::Keep),
        ];
        for (flags, want) in table {
            assert_eq!(decide(o(flags)), want, "{flags}");
        }
    }

    #[test]
    fn manifest_round_trips() {
        let m = Manifest {
            version: MANIFEST_VERSION,
            merge_id: "m1".into(),
            job_id: 3,
            agent: "a".into(),
            cluster: "c".into(),
            table: "db.t".into(),
            partition: "ds=1".into(),
            partition_path: "/w/t/ds=1".into(),
            writer: Writer::Native,
            format: None,
            state: "staged".into(),
            created_ms: 1,
            sources: vec![ManifestFile {
                name: "a".into(),
                length: 2,
                modification_ms: 3,
            }],
            carried: vec!["_SUCCESS".into()],
            outputs: vec![ManifestOutput {
                name: "o".into(),
                length: 2,
                rows: 1,
            }],
            rows: 1,
            directory: DirectoryAttributes {
                permission: 0o755,
                owner: "hive".into(),
                group: "hive".into(),
            },
            commit: CommitMode::Switch,
            new_location: Some("/w/t/.hive-smallfiles-merged/ds=1-m1".into()),
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Manifest>(&text).unwrap(), m);
        assert!(m.is_output_or_carried("o") && m.is_output_or_carried("_SUCCESS"));
        assert!(!m.is_output_or_carried("a"));
    }
}
