//! Switch commits: what recovery does with a merge directory whose manifest says
//! `commit: switch`, decided (purely) from what exists and where the partition points now.
//!
//! The forward path (see `commit/switch.rs`): stage into `<merge>/output`, verify, write the
//! manifest, re-list the old directory, rename `output` to the new location (a hidden path
//! used by no earlier merge), write the `switching` marker, switch the partition's location
//! through the engine, reconcile (a changed or vanished source, or a file that arrived in the
//! old directory, switches back: the old directory is complete), write `committed`. The old directory is never touched
//! until the grace period after `committed` has passed — queries that planned on it read it
//! to the end — then it moves into `<merge>/backup`, kept for the backup retention.
//!
//! A rollback copies the old files (and files written into the new directory since) into
//! another fresh directory and switches there; the directory it leaves is retired after the
//! grace period in the same way.

use serde::Serialize;

/// Where the partition's location points now, relative to one merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Points {
    /// The directory the merge read (`partition_path` of the manifest).
    Old,
    /// The merge's new directory.
    New,
    /// The directory a rollback of the merge switched to.
    Rollback,
    /// Somewhere else (a later merge, or DDL).
    Elsewhere,
    /// The partition (or table) is gone.
    Gone,
}

/// What exists of one switch merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchObserved {
    /// Where the partition points.
    pub points: Points,
    /// The `switching` marker: the switch may have been sent.
    pub switching: bool,
    /// The `switching` marker is older than any statement can take to land.
    pub settled: bool,
    /// `committed` marker.
    pub committed: bool,
    /// `rollback-to` marker.
    pub rollback_started: bool,
    /// `rolled-back` marker.
    pub rolled_back: bool,
    /// The old directory exists.
    pub old_dir: bool,
    /// The new directory exists.
    pub new_dir: bool,
    /// The grace period since the last switch (the `committed` or `rolled-back` marker)
    /// has passed.
    pub grace_passed: bool,
    /// The backup retention since the last marker has passed.
    pub retention_passed: bool,
}

/// What recovery does with a switch merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchAction {
    /// Nothing visible changed: delete the new directory (nobody points at it) and the
    /// merge directory; the partition is as it was.
    Abort,
    /// The switch may have been sent and not landed yet: wait before aborting.
    AwaitSettle,
    /// Switched, not reconciled: move arrivals from the old directory, check sources,
    /// write `committed`.
    FinishCommit,
    /// Committed, grace passed: arrivals in the old directory move to the current
    /// location, the old directory moves into `backup/`.
    RetireOld,
    /// Rolled back, grace passed: files written into the merged directory since move to
    /// the current location; the merged directory is deleted.
    RetireNew,
    /// A rollback was started and the partition still points at the merged directory:
    /// run it again (each step repeats safely).
    ContinueRollback,
    /// A rollback switched: write `rolled-back`.
    FinishRollback,
    /// A rollback cannot go on (the partition moved elsewhere): drop its copy, stay
    /// committed.
    AbandonRollback,
    /// Retention passed and nothing is left to retire: delete the merge directory.
    Expire,
    /// Keep for now.
    Keep,
}

impl SwitchAction {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Abort => "abort",
            Self::AwaitSettle => "await_settle",
            Self::FinishCommit => "finish_commit",
            Self::RetireOld => "retire_old",
            Self::RetireNew => "retire_new",
            Self::ContinueRollback => "continue_rollback",
            Self::FinishRollback => "finish_rollback",
            Self::AbandonRollback => "abandon_rollback",
            Self::Expire => "expire",
            Self::Keep => "keep",
        }
    }

    /// Whether recovery is done with the merge for now (no further action right away).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Abort | Self::AwaitSettle | Self::Expire | Self::Keep
        )
    }
}

/// Decides what recovery does with a switch merge (pure).
pub fn decide_switch(o: SwitchObserved) -> SwitchAction {
    if !o.committed && !o.rolled_back {
        return match o.points {
            Points::New => SwitchAction::FinishCommit,
            // A `switching` marker means the ALTER may still be running on the engine:
            // deleting the new directory now could leave the partition pointing at nothing.
            _ if o.switching && !o.settled => SwitchAction::AwaitSettle,
            _ => SwitchAction::Abort,
        };
    }
    if o.rolled_back {
        return if o.new_dir && o.points != Points::New {
            if o.grace_passed {
                SwitchAction::RetireNew
            } else {
                SwitchAction::Keep
            }
        } else if o.old_dir && o.points != Points::Old {
            if o.grace_passed {
                SwitchAction::RetireOld
            } else {
                SwitchAction::Keep
            }
        } else if o.retention_passed {
            SwitchAction::Expire
        } else {
            SwitchAction::Keep
        };
    }
    if o.rollback_started {
        return match o.points {
            Points::Rollback => SwitchAction::FinishRollback,
            Points::New => SwitchAction::ContinueRollback,
            _ => SwitchAction::AbandonRollback,
        };
    }
    if o.points == Points::Old && o.new_dir {
        // Committed, then switched back by someone else: Hive's `loadPartition` (an INSERT
        // that looked the partition up before the switch) writes the old location back. The
        // old directory is the partition again; the merged one retires.
        return if o.grace_passed {
            SwitchAction::RetireNew
        } else {
            SwitchAction::Keep
        };
    }
    if o.old_dir && o.points != Points::Old {
        return if o.grace_passed {
            SwitchAction::RetireOld
        } else {
            SwitchAction::Keep
        };
    }
    if o.retention_passed {
        SwitchAction::Expire
    } else {
        SwitchAction::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(points: Points, flags: &str) -> SwitchObserved {
        SwitchObserved {
            points,
            switching: flags.contains('s'),
            settled: flags.contains('S'),
            committed: flags.contains('c'),
            rollback_started: flags.contains('b'),
            rolled_back: flags.contains('r'),
            old_dir: flags.contains('o'),
            new_dir: flags.contains('n'),
            grace_passed: flags.contains('g'),
            retention_passed: flags.contains('x'),
        }
    }

    #[test]
    fn every_state_of_a_switch_merge_has_one_action() {
        use Points::*;
        use SwitchAction as A;
        let table = [
            // Before the switch was sent: nothing visible changed.
            (Old, "on", A::Abort),
            (Old, "o", A::Abort),
            // Sent maybe: wait until it cannot land any more, then abort.
            (Old, "son", A::AwaitSettle),
            (Old, "sSon", A::Abort),
            (Gone, "n", A::Abort),
            (Elsewhere, "son", A::AwaitSettle),
            // Switched.
            (New, "son", A::FinishCommit),
            (New, "scon", A::Keep),
            (New, "scong", A::RetireOld),
            (New, "scongx", A::RetireOld),
            (New, "scngx", A::Expire),
            (New, "scng", A::Keep),
            // A later merge moved the partition on; the old directory still retires.
            (Elsewhere, "scong", A::RetireOld),
            // Dropped after the switch: the old directory retires, then expires.
            (Gone, "scog", A::RetireOld),
            (Gone, "scgx", A::Expire),
            // Rollback.
            (New, "scnb", A::ContinueRollback),
            (Rollback, "scnb", A::FinishRollback),
            (Gone, "scnb", A::AbandonRollback),
            (Rollback, "scnbr", A::Keep),
            (Rollback, "scnbrg", A::RetireNew),
            (Rollback, "sconbrg", A::RetireNew),
            (Rollback, "scobrg", A::RetireOld),
            (Rollback, "scbrg", A::Keep),
            (Rollback, "scbrgx", A::Expire),
            // Committed, then an INSERT's load wrote the old location back.
            (Old, "scon", A::Keep),
            (Old, "scong", A::RetireNew),
            // Switched back after a source changed during the switch.
            (Old, "sconr", A::Keep),
            (Old, "sconrg", A::RetireNew),
            (Old, "scorgx", A::Expire),
        ];
        for (points, flags, want) in table {
            assert_eq!(decide_switch(o(points, flags)), want, "{points:?} {flags}");
        }
    }
}
