//! Switch commits on the filesystem and through [`Locations`]: moving the verified output to
//! its new location, the switch, reconcile, and what recovery and rollback do with a switch
//! merge (decided by [`decide_switch`]).
//!
//! The old directory is never changed before the grace period after the switch has passed:
//! a query that listed it before the switch reads it to the end.

use bytes::Bytes;
use hive_smallfiles_core::fs::{FsError, join_path, parent_path};

use super::io::{copy_file, now_ms};
use super::listing::is_active_writer;
use super::{Committer, Locations, exists, list_all, read_file};
use crate::native::error::{NativeError, aborted};
use crate::native::failpoint::fail_point;
use crate::native::layout::MergeLayout;
use crate::native::manifest::Manifest;
use crate::native::switch::{Points, SwitchAction, SwitchObserved, decide_switch};

/// How long after the `switching` marker a switch sent by a process that died can still
/// land (the engine runs the statement even when its client is gone). Until then recovery
/// neither aborts nor lets another merge of the partition start.
const SWITCH_SETTLE_MS: i64 = 5 * 60 * 1000;

fn new_location(manifest: &Manifest) -> Result<&str, NativeError> {
    manifest.new_location.as_deref().ok_or_else(|| {
        NativeError::Inconsistent(format!(
            "merge {} is a switch commit without a new location",
            manifest.merge_id
        ))
    })
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Committer {
    async fn write_marker(&self, path: &str, body: &str) -> Result<(), NativeError> {
        match self
            .fs
            .create(path, Bytes::from(body.to_owned()), false, Some(0o644))
            .await
        {
            Ok(()) | Err(FsError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Age of a marker file in ms, `None` when it does not exist.
    async fn marker_age_ms(&self, path: &str) -> Result<Option<i64>, NativeError> {
        match self.fs.file_status(path).await {
            Ok(s) => Ok(Some(now_ms().saturating_sub(s.modification_time_ms))),
            Err(FsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn read_marker(&self, path: &str) -> Result<Option<String>, NativeError> {
        match self.fs.file_status(path).await {
            Ok(s) => {
                let data = read_file(self.fs.as_ref(), path, s.length).await?;
                Ok(Some(String::from_utf8_lossy(&data).trim().to_owned()))
            }
            Err(FsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The forward path after the last look: output → new location, `switching`, the
    /// switch, reconcile, `committed`.
    pub(super) async fn switch_commit(
        &self,
        manifest: &Manifest,
        m: &MergeLayout,
        locations: &dyn Locations,
    ) -> Result<(), NativeError> {
        let fs = &self.fs;
        let new = new_location(manifest)?;
        fs.mkdirs(parent_path(new), None).await?;
        self.rename_once(&m.output, new).await?;
        fail_point!("after_new_dir");
        self.write_marker(&m.switching, &now_ms().to_string())
            .await?;
        let now = locations
            .current(&manifest.table, &manifest.partition)
            .await?;
        if now.as_deref() != Some(manifest.partition_path.as_str()) {
            fs.delete(new, true).await?;
            fs.delete(&m.dir, true).await?;
            return Err(aborted(
                "location_changed",
                format!("the partition moved to {now:?} during the merge"),
            ));
        }
        if let Some(staging) = self.writers_in_flight(manifest).await?.into_iter().next() {
            fs.delete(new, true).await?;
            fs.delete(&m.dir, true).await?;
            return Err(aborted(
                "writer_in_flight",
                format!(
                    "a write to the table is in flight ({staging}): it may put files into the \
                     old directory after the switch; the partition is left as it was"
                ),
            ));
        }
        fail_point!("before_switch");
        locations
            .switch(&manifest.table, &manifest.partition, new)
            .await?;
        fail_point!("after_switch");
        self.settle_writers(manifest).await?;
        self.reconcile_switch(manifest, m, locations).await
    }

    /// After the switch, before reconcile: an insert that looked the partition up just before
    /// the switch may not have created its staging directory when `writers_in_flight` looked
    /// (Spark resolves partition locations while planning and creates `_temporary` when the
    /// job starts), and would move its files into the old directory after reconcile — out of
    /// sight until the grace period. For `switch_settle` the table's directory is watched;
    /// writes seen in flight then are waited for (at most [`SWITCH_WRITER_WAIT`]), so their
    /// files are in place, old directory or new, when reconcile looks. Writes first seen after
    /// `switch_settle` planned on the new location.
    async fn settle_writers(&self, manifest: &Manifest) -> Result<(), NativeError> {
        let settle = self.settings.switch_settle;
        if settle.is_zero() {
            return Ok(());
        }
        let poll = (settle / 20).clamp(
            std::time::Duration::from_millis(50),
            std::time::Duration::from_secs(1),
        );
        let started = std::time::Instant::now();
        let mut seen: Vec<String> = Vec::new();
        loop {
            let in_flight = self.writers_in_flight(manifest).await?;
            let elapsed = started.elapsed();
            if elapsed < settle {
                for w in in_flight {
                    if !seen.contains(&w) {
                        tracing::info!(table = %manifest.table, partition = %manifest.partition, staging = %w, "A write to the table started around the switch; waiting for it before reconcile.");
                        seen.push(w);
                    }
                }
            } else if !in_flight.iter().any(|w| seen.contains(w)) {
                return Ok(());
            } else if elapsed >= settle + SWITCH_WRITER_WAIT {
                tracing::warn!(table = %manifest.table, partition = %manifest.partition, ?in_flight, "A write that started around the switch is still running; reconciling without it (files it puts into the old directory move to the partition after the grace period).");
                return Ok(());
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// The staging directories of writes in flight in the table's directory (the names
    /// a partition is refused for, `listing::is_active_writer`): Spark's file commit protocol
    /// (`_temporary` of Hadoop's FileOutputCommitter for partitions at their default path,
    /// `.spark-staging-<job>` for custom partition locations), Hive's `.hive-staging_hive_…`,
    /// Impala's `_impala_insert_staging`. Such a writer resolved
    /// the partition's location before the switch and moves its files there when its job
    /// commits, possibly after the reconcile step: the rows would stay out of sight until the
    /// grace period. Only partitions at their default path (`<table>/<partition name>`) tell
    /// where the table's directory is; staging directories older than a day are leftovers.
    async fn writers_in_flight(&self, manifest: &Manifest) -> Result<Vec<String>, NativeError> {
        let Some(table_dir) = manifest
            .partition_path
            .strip_suffix(manifest.partition.as_str())
            .and_then(|p| p.strip_suffix('/'))
            .filter(|p| !p.is_empty() && !manifest.partition.is_empty())
        else {
            return Ok(Vec::new());
        };
        let entries = match list_all(self.fs.as_ref(), table_dir).await {
            Ok(e) => e,
            Err(FsError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        // Failed jobs leave staging directories behind for good: only recent ones count.
        let since = now_ms() - STAGING_IN_FLIGHT_MS;
        Ok(entries
            .iter()
            .filter(|e| e.modification_time_ms >= since)
            .map(|e| e.name.as_str())
            .filter(|n| is_active_writer(n))
            .map(|n| join_path(table_dir, n))
            .collect())
    }

    /// After the switch: a source that changed or vanished, or a file that arrived in the
    /// old directory (a writer that looked the location up before the switch), switches back
    /// — the old directory is complete, the merged one lacks those rows; then `committed`.
    ///
    /// Arrivals are not moved into the new directory: a Hive-format insert (Hive's
    /// `loadPartition`, used by Hive and Spark) that looked the partition up before the switch
    /// writes the old location back when it finishes, and the partition would then read the
    /// old directory without the moved file until the grace period ends.
    async fn reconcile_switch(
        &self,
        manifest: &Manifest,
        m: &MergeLayout,
        locations: &dyn Locations,
    ) -> Result<(), NativeError> {
        let old = &manifest.partition_path;
        let entries = match list_all(self.fs.as_ref(), old).await {
            Ok(e) => e,
            Err(FsError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut changed = Vec::new();
        let mut arrived = Vec::new();
        for e in &entries {
            if let Some(s) = manifest.source(&e.name) {
                if s.length != e.length || s.modification_ms != e.modification_time_ms {
                    changed.push(e.name.clone());
                }
            } else if !manifest.carried.contains(&e.name)
                && !is_checksum_of_source(manifest, &e.name)
            {
                arrived.push(e.name.clone());
            }
        }
        let missing: Vec<&str> = manifest
            .sources
            .iter()
            .filter(|s| !entries.iter().any(|e| e.name == s.name))
            .map(|s| s.name.as_str())
            .collect();
        if !changed.is_empty() || !missing.is_empty() || !arrived.is_empty() {
            tracing::warn!(merge = %m.dir, ?changed, ?missing, ?arrived, "Sources changed during the switch; switching back.");
            locations
                .switch(&manifest.table, &manifest.partition, old)
                .await?;
            self.write_marker(&m.rolled_back, &format!("{}\n{old}", now_ms()))
                .await?;
            return Err(aborted(
                "source_changed",
                format!(
                    "sources changed during the switch (changed {changed:?}, removed \
                     {missing:?}, arrived {arrived:?}); switched back"
                ),
            ));
        }
        fail_point!("after_reconcile");
        self.write_marker(&m.committed, &now_ms().to_string())
            .await?;
        fail_point!("after_commit");
        Ok(())
    }

    async fn observe_switch(
        &self,
        manifest: &Manifest,
        m: &MergeLayout,
        locations: &dyn Locations,
    ) -> Result<(SwitchObserved, Option<String>, Option<String>), NativeError> {
        let fs = self.fs.as_ref();
        let new = new_location(manifest)?;
        let rollback_to = self.read_marker(&m.rollback_to).await?;
        let current = locations
            .current(&manifest.table, &manifest.partition)
            .await?;
        let points = match current.as_deref() {
            None => Points::Gone,
            Some(c) if c == manifest.partition_path => Points::Old,
            Some(c) if c == new => Points::New,
            Some(c) if rollback_to.as_deref() == Some(c) => Points::Rollback,
            Some(_) => Points::Elsewhere,
        };
        let switching = self.marker_age_ms(&m.switching).await?;
        let committed = self.marker_age_ms(&m.committed).await?;
        let rolled_back = self.marker_age_ms(&m.rolled_back).await?;
        let last = rolled_back.or(committed);
        let grace = ms(self.settings.switch_grace);
        let retention = ms(self.settings.backup_retention).max(grace);
        let observed = SwitchObserved {
            points,
            switching: switching.is_some(),
            settled: switching.is_some_and(|a| a >= SWITCH_SETTLE_MS),
            committed: committed.is_some(),
            rollback_started: rollback_to.is_some(),
            rolled_back: rolled_back.is_some(),
            old_dir: exists(fs, &manifest.partition_path).await?,
            new_dir: exists(fs, new).await?,
            grace_passed: last.is_some_and(|a| a >= grace),
            retention_passed: last.is_some_and(|a| a >= retention),
        };
        Ok((observed, current, rollback_to))
    }

    /// Recovery of one switch merge: observe, decide, act.
    pub(super) async fn recover_switch(
        &self,
        manifest: &Manifest,
        m: &MergeLayout,
        locations: &dyn Locations,
    ) -> Result<SwitchAction, (SwitchAction, NativeError)> {
        let (o, current, rollback_to) = self
            .observe_switch(manifest, m, locations)
            .await
            .map_err(|e| (SwitchAction::Keep, e))?;
        let action = decide_switch(o);
        let run = async {
            let fs = &self.fs;
            let new = new_location(manifest)?;
            match action {
                SwitchAction::Keep | SwitchAction::AwaitSettle => {}
                SwitchAction::Abort => {
                    if o.points != Points::New && o.new_dir {
                        fs.delete(new, true).await?;
                    }
                    fs.delete(&m.dir, true).await?;
                }
                SwitchAction::Expire => {
                    fs.delete(&m.dir, true).await?;
                }
                SwitchAction::FinishCommit => {
                    self.reconcile_switch(manifest, m, locations).await?;
                }
                SwitchAction::RetireOld => {
                    self.retire(&manifest.partition_path, current.as_deref(), |name| {
                        manifest.source(name).is_some()
                            || manifest.carried.iter().any(|c| c == name)
                            || is_checksum_of_source(manifest, name)
                    })
                    .await?;
                    self.rename_once(&manifest.partition_path, &m.backup)
                        .await?;
                }
                SwitchAction::RetireNew => {
                    self.retire(new, current.as_deref(), |name| {
                        manifest.is_output_or_carried(name)
                    })
                    .await?;
                    fs.delete(new, true).await?;
                }
                SwitchAction::ContinueRollback => {
                    self.rollback_switch_locked(manifest, m, locations).await?;
                }
                SwitchAction::FinishRollback => {
                    let to = rollback_to.clone().unwrap_or_default();
                    self.write_marker(&m.rolled_back, &format!("{}\n{to}", now_ms()))
                        .await?;
                }
                SwitchAction::AbandonRollback => {
                    if let Some(r) = &rollback_to {
                        if current.as_deref() != Some(r.as_str()) {
                            fs.delete(r, true).await?;
                        }
                    }
                    fs.delete(&m.restore, true).await?;
                    fs.delete(&m.rollback_to, false).await?;
                }
            }
            Ok::<_, NativeError>(())
        };
        match run.await {
            Ok(()) => Ok(action),
            Err(NativeError::Aborted { .. }) => Ok(action),
            Err(e) => Err((action, e)),
        }
    }

    /// Before a directory nobody points at any more is removed: every file in it that is
    /// not `ours` (written there by someone after the switch) moves to where the partition
    /// points now, so nothing is lost.
    async fn retire(
        &self,
        dir: &str,
        current: Option<&str>,
        ours: impl Fn(&str) -> bool,
    ) -> Result<(), NativeError> {
        let entries = match list_all(self.fs.as_ref(), dir).await {
            Ok(e) => e,
            Err(FsError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let strays: Vec<_> = entries.iter().filter(|e| !ours(&e.name)).collect();
        if strays.is_empty() {
            return Ok(());
        }
        let Some(current) = current.filter(|c| *c != dir) else {
            return Err(NativeError::Inconsistent(format!(
                "{dir} holds {} file(s) written after the switch and the partition points \
                 nowhere to move them; left in place",
                strays.len()
            )));
        };
        for e in strays {
            tracing::warn!(dir, file = %e.name, to = current, "A file was written into a switched-away directory; moving it to the partition's location.");
            self.move_in(&join_path(dir, &e.name), current, &e.name)
                .await?;
        }
        Ok(())
    }

    /// Rolls a committed switch merge back: the old files (from the old directory, or from
    /// `backup/` once retired) and every file written into the merged directory since are
    /// copied into a fresh directory (`<new location>-rollback`: never a path used before),
    /// and the partition is switched there. The merged directory retires after the grace
    /// period. Each step repeats safely.
    pub(super) async fn rollback_switch_locked(
        &self,
        manifest: &Manifest,
        m: &MergeLayout,
        locations: &dyn Locations,
    ) -> Result<(), NativeError> {
        let fs = self.fs.as_ref();
        let new = new_location(manifest)?;
        let to = match self.read_marker(&m.rollback_to).await? {
            Some(t) if !t.is_empty() => t,
            _ => {
                let t = format!("{new}-rollback");
                self.write_marker(&m.rollback_to, &t).await?;
                t
            }
        };
        if !exists(fs, &to).await? {
            let _ = self.fs.delete(&m.restore, true).await;
            self.fs.mkdirs(&m.restore, Some(0o700)).await?;
            let spool = self.settings.spool_dir.join(&m.merge_id);
            let old_dir = if exists(fs, &manifest.partition_path).await? {
                manifest.partition_path.clone()
            } else {
                m.backup.clone()
            };
            for s in &manifest.sources {
                copy_file(
                    fs,
                    &join_path(&old_dir, &s.name),
                    &join_path(&m.restore, &s.name),
                    s.length,
                    &spool,
                    manifest.directory.permission & 0o666,
                )
                .await?;
            }
            for e in list_all(fs, new).await? {
                if manifest.is_output_or_carried(&e.name) && !manifest.carried.contains(&e.name) {
                    continue;
                }
                copy_file(
                    fs,
                    &join_path(new, &e.name),
                    &join_path(&m.restore, &e.name),
                    e.length,
                    &spool,
                    e.permission,
                )
                .await?;
            }
            let _ = std::fs::remove_dir_all(&spool);
            let d = &manifest.directory;
            self.fs.set_permission(&m.restore, d.permission).await?;
            if let Err(e) = self
                .fs
                .set_owner(&m.restore, Some(&d.owner), Some(&d.group))
                .await
            {
                tracing::debug!(error = %e, "Cannot set the owner of the restored directory.");
            }
            self.fs.mkdirs(parent_path(&to), None).await?;
            self.rename_once(&m.restore, &to).await?;
        }
        fail_point!("rollback_after_restore");
        let now = locations
            .current(&manifest.table, &manifest.partition)
            .await?;
        if now.as_deref() == Some(new) {
            locations
                .switch(&manifest.table, &manifest.partition, &to)
                .await?;
        } else if now.as_deref() != Some(to.as_str()) {
            return Err(NativeError::Inconsistent(format!(
                "{} {:?} points at {now:?}, neither the merged directory nor the rollback's",
                manifest.table, manifest.partition
            )));
        }
        fail_point!("rollback_after_switch");
        self.write_marker(&m.rolled_back, &format!("{}\n{to}", now_ms()))
            .await
    }
}

fn is_checksum_of_source(manifest: &Manifest, name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(".crc"))
        .is_some_and(|base| manifest.source(base).is_some())
}

/// How long writes seen in flight during `switch_settle` are waited for before reconcile.
const SWITCH_WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// How recent a writer's staging directory must be to count as a write in flight: older ones
/// are what failed jobs left behind (a day: longer than inserts run).
const STAGING_IN_FLIGHT_MS: i64 = 24 * 3600 * 1000;
