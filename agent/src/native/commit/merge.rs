//! The forward path of one merge: take the partition lock, finish any earlier merge of the
//! partition, stage the merged output (and the carried hidden files), verify it, give it the
//! partition directory's attributes, write the manifest, re-list, swap, reconcile. On any
//! error before the swap the partition is left untouched and the merge directory removed.

use std::sync::Arc;

use bytes::Bytes;
use hive_smallfiles_core::fs::join_path;

use super::io::now_ms;
use super::listing::unchanged;
use super::{
    Committer, MergeReport, StageWriter, SwitchTarget, Target, exists, list_all, read_file,
};
use crate::native::error::{NativeError, aborted, refused};
use crate::native::failpoint::fail_point;
use crate::native::layout::{AreaLayout, MergeLayout, switch_location};
use crate::native::lock::PartitionLock;
use crate::native::manifest::{CommitMode, MANIFEST_VERSION, Manifest, ManifestFile};

impl Committer {
    /// Merges one partition: lock, finish any earlier merge of it, stage, verify, manifest,
    /// re-list, swap, reconcile, commit. On any error before the swap the partition is left
    /// untouched and the merge directory removed.
    ///
    /// With `switch`, the commit is a location switch instead of the swap (see
    /// [`crate::native::switch`]).
    pub async fn merge(
        &self,
        job_id: u64,
        target: &Target,
        writer: &dyn StageWriter,
        switch: Option<&SwitchTarget<'_>>,
    ) -> Result<MergeReport, NativeError> {
        let area = AreaLayout::for_partition(&target.path)
            .ok_or_else(|| refused("bad_location", format!("{} has no parent", target.path)))?;
        let merge_id = crate::native::layout::new_merge_id(job_id, chrono::Utc::now());
        let new_location = match switch {
            Some(s) => Some(
                switch_location(
                    s.table_root.as_deref(),
                    &target.path,
                    &target.partition,
                    &merge_id,
                )
                .ok_or_else(|| {
                    refused(
                        "bad_location",
                        format!(
                            "no switch location for {} (table location unknown)",
                            target.path
                        ),
                    )
                })?,
            ),
            None => None,
        };
        let lock = PartitionLock::acquire(
            Arc::clone(&self.fs),
            &area.lock,
            &self.settings.identity,
            &format!("merge {merge_id} (job {job_id})"),
        )
        .await?;
        fail_point!("after_lock");
        let result = async {
            // An earlier merge of this partition that did not finish is finished first.
            let locations = switch.map(|s| s.locations);
            for r in self.recover_area_locked(&area, locations).await? {
                if let Some(e) = r.error {
                    return Err(NativeError::Inconsistent(format!(
                        "earlier merge {} could not be recovered: {e}",
                        r.merge_dir
                    )));
                }
                if r.action == "await_settle" {
                    return Err(aborted(
                        "switch_unsettled",
                        format!(
                            "an earlier location switch ({}) may still land; retry later",
                            r.merge_dir
                        ),
                    ));
                }
            }
            if let Some(s) = switch {
                // The partition must still be where the plan found it.
                let now = s
                    .locations
                    .current(&target.table, &target.partition)
                    .await?;
                if now.as_deref() != Some(target.path.as_str()) {
                    return Err(aborted(
                        "location_changed",
                        format!(
                            "{} {:?} now points at {now:?}, not {}",
                            target.table, target.partition, target.path
                        ),
                    ));
                }
            }
            let m = area.merge(&merge_id);
            let spool = self.settings.spool_dir.join(&merge_id);
            let switch = switch.zip(new_location.as_deref());
            let result = self
                .merge_locked(job_id, target, writer, &m, &spool, &lock, switch)
                .await;
            let _ = std::fs::remove_dir_all(&spool);
            if result.is_err() && !exists(self.fs.as_ref(), &m.manifest).await.unwrap_or(true) {
                // Never got to the manifest: nothing visible changed; drop the staging.
                let _ = self.fs.delete(&m.dir, true).await;
            }
            result
        }
        .await;
        let released = lock.release().await;
        self.remove_area_if_empty(&area).await;
        let report = result?;
        released?;
        Ok(report)
    }

    /// Deletes the staging area when nothing is left in it (no lock, no merge directory).
    pub(super) async fn remove_area_if_empty(&self, area: &AreaLayout) {
        if list_all(self.fs.as_ref(), &area.area)
            .await
            .is_ok_and(|e| e.is_empty())
        {
            // Not recursive: fails harmlessly if someone created something meanwhile.
            let _ = self.fs.delete(&area.area, false).await;
        }
    }

    #[allow(clippy::too_many_lines, clippy::too_many_arguments)]
    async fn merge_locked(
        &self,
        job_id: u64,
        target: &Target,
        writer: &dyn StageWriter,
        m: &MergeLayout,
        spool: &std::path::Path,
        lock: &PartitionLock,
        switch: Option<(&SwitchTarget<'_>, &str)>,
    ) -> Result<MergeReport, NativeError> {
        let fs = &self.fs;
        let listing = self.list_partition(&target.path).await?;
        if listing.sources.len() < 2 {
            return Err(refused(
                "nothing_to_merge",
                format!(
                    "{} holds {} data file(s)",
                    target.path,
                    listing.sources.len()
                ),
            ));
        }
        std::fs::create_dir_all(spool)?;
        fs.mkdirs(&m.dir, Some(0o700)).await?;
        let staged = writer.write(fs, target, &listing, &m.output, spool).await?;
        // Carry hidden markers (`_SUCCESS`...) unchanged.
        for c in &listing.carried {
            let data = read_file(fs.as_ref(), &join_path(&target.path, &c.name), c.length).await?;
            fs.create(
                &join_path(&m.output, &c.name),
                data,
                true,
                Some(c.permission),
            )
            .await?;
        }
        fail_point!("after_stage");

        // Verify what is on the filesystem now, read back from it.
        let outputs = self.verify_output(&m.output, &listing, &staged).await?;
        fail_point!("after_verify");

        // The new directory gets the old one's permission, owner and group.
        let d = &listing.directory;
        fs.set_permission(&m.output, d.permission).await?;
        let out_status = fs.file_status(&m.output).await?;
        if out_status.owner != d.owner || out_status.group != d.group {
            if let Err(e) = fs
                .set_owner(&m.output, Some(&d.owner), Some(&d.group))
                .await
            {
                tracing::debug!(error = %e, "Cannot set the owner; setting the group only.");
                fs.set_owner(&m.output, None, Some(&d.group))
                    .await
                    .map_err(|e| {
                        refused(
                            "cannot_keep_group",
                            format!("cannot give the new directory group {}: {e}", d.group),
                        )
                    })?;
            }
        }

        let manifest = Manifest {
            version: MANIFEST_VERSION,
            merge_id: m.merge_id.clone(),
            job_id,
            agent: self.settings.identity.agent.clone(),
            cluster: target.cluster.clone(),
            table: target.table.clone(),
            partition: target.partition.clone(),
            partition_path: target.path.clone(),
            writer: staged.writer,
            format: staged.format,
            state: "staged".to_owned(),
            created_ms: now_ms(),
            sources: listing
                .sources
                .iter()
                .map(|s| ManifestFile {
                    name: s.name.clone(),
                    length: s.length,
                    modification_ms: s.modification_time_ms,
                })
                .collect(),
            carried: listing.carried.iter().map(|c| c.name.clone()).collect(),
            outputs,
            rows: staged.expected_rows,
            directory: listing.directory.clone(),
            commit: if switch.is_some() {
                CommitMode::Switch
            } else {
                CommitMode::Swap
            },
            new_location: switch.map(|(_, n)| n.to_owned()),
        };
        let body = Bytes::from(serde_json::to_vec_pretty(&manifest).unwrap_or_default());
        fs.create(&m.manifest, body, false, Some(0o644)).await?;
        fail_point!("after_manifest");

        // Last look before the swap: anything new or changed aborts.
        let now = self.list_partition(&target.path).await?;
        if let Err(e) = unchanged(&listing, &now) {
            let _ = fs.delete(&m.dir, true).await;
            return Err(e);
        }
        if !lock.still_held().await? {
            let _ = fs.delete(&m.dir, true).await;
            return Err(aborted("lock_lost", "the partition lock was taken over"));
        }
        fail_point!("after_relist");

        let arrived = if let Some((s, _)) = switch {
            self.switch_commit(&manifest, m, s.locations).await?;
            Vec::new()
        } else {
            // The swap: two renames, nothing in between.
            let recreated = self.swap(target, m).await?;
            fail_point!("after_swap");
            let mut arrived = self.reconcile_and_commit(&manifest, m).await?;
            arrived.extend(recreated);
            arrived
        };
        Ok(MergeReport {
            commit: manifest.commit,
            new_location: manifest.new_location.clone(),
            merge_id: m.merge_id.clone(),
            merge_dir: m.dir.clone(),
            files_before: listing.sources.len() as u64,
            files_after: manifest.outputs.len() as u64,
            bytes_before: listing.sources.iter().map(|s| s.length).sum(),
            bytes_after: manifest.outputs.iter().map(|o| o.length).sum(),
            rows: manifest.rows,
            arrived_during_swap: arrived,
        })
    }
}
