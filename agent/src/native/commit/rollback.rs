//! Rollback of a committed merge while its backup is retained: `partition → undone`,
//! `backup → partition`, and every file written into the merged partition since the merge
//! moved back in. Each step tolerates being repeated, so recovery can finish a rollback a
//! crash interrupted.

use std::sync::Arc;

use bytes::Bytes;
use hive_smallfiles_core::fs::{FsError, join_path};

use super::io::now_ms;
use super::{Committer, Locations, Recovered, exists, list_all};
use crate::native::error::{NativeError, refused};
use crate::native::failpoint::fail_point;
use crate::native::layout::{AreaLayout, MergeLayout};
use crate::native::lock::PartitionLock;
use crate::native::manifest::{CommitMode, Manifest};

impl Committer {
    /// Rolls a committed merge back (the partition gets its original files again, plus any
    /// file written into it since the merge). Takes the partition's lock.
    ///
    /// A switch merge needs `locations` (it is rolled back by another switch).
    pub async fn rollback(
        &self,
        merge_dir: &str,
        locations: Option<&dyn Locations>,
    ) -> Result<Recovered, NativeError> {
        let area_path = hive_smallfiles_core::fs::parent_path(merge_dir);
        let area = AreaLayout::for_area(area_path).ok_or_else(|| {
            refused(
                "not_a_merge",
                format!("{merge_dir} is not a merge directory"),
            )
        })?;
        let merge_id = merge_dir.rsplit('/').next().unwrap_or_default();
        let m = area.merge(merge_id);
        let lock = PartitionLock::acquire(
            Arc::clone(&self.fs),
            &area.lock,
            &self.settings.identity,
            &format!("rollback {merge_id}"),
        )
        .await?;
        let result = async {
            let manifest = self
                .read_manifest(&m)
                .await?
                .ok_or_else(|| refused("no_manifest", format!("{} has no manifest", m.dir)))?;
            if manifest.commit == CommitMode::Switch {
                let locations = locations.ok_or_else(|| {
                    refused(
                        "needs_engine",
                        "a switch merge is rolled back by switching its location: needs the \
                         MetaStore and the engine",
                    )
                })?;
                if exists(self.fs.as_ref(), &m.rolled_back).await? {
                    return Ok(Recovered {
                        merge_dir: m.dir.clone(),
                        action: "already_rolled_back",
                        error: None,
                    });
                }
                if !exists(self.fs.as_ref(), &m.committed).await? {
                    return Err(refused(
                        "not_committed",
                        format!("{} is not a committed merge (run recovery first)", m.dir),
                    ));
                }
                self.rollback_switch_locked(&manifest, &m, locations)
                    .await?;
                return Ok(Recovered {
                    merge_dir: m.dir.clone(),
                    action: "rolled_back",
                    error: None,
                });
            }
            let o = self.observe(&m, true).await?;
            if o.rolled_back {
                return Ok(Recovered {
                    merge_dir: m.dir.clone(),
                    action: "already_rolled_back",
                    error: None,
                });
            }
            if !o.committed && !o.undone {
                return Err(refused(
                    "not_committed",
                    format!("{} is not a committed merge (run recovery first)", m.dir),
                ));
            }
            if !o.backup && !o.undone {
                return Err(refused("no_backup", format!("{} holds no backup", m.dir)));
            }
            self.rollback_locked(&manifest, &m).await?;
            Ok(Recovered {
                merge_dir: m.dir.clone(),
                action: "rolled_back",
                error: None,
            })
        }
        .await;
        let released = lock.release().await;
        let r = result?;
        released?;
        Ok(r)
    }

    /// partition → undone, backup → partition, files written since the merge back in.
    pub(super) async fn rollback_locked(
        &self,
        manifest: &Manifest,
        m: &MergeLayout,
    ) -> Result<(), NativeError> {
        let fs = &self.fs;
        if exists(fs.as_ref(), &m.backup).await? {
            if !exists(fs.as_ref(), &m.undone).await? {
                self.rename_once(&m.partition, &m.undone).await?;
                fail_point!("rollback_after_first_rename");
            }
            if exists(fs.as_ref(), &m.partition).await? {
                // Re-created while absent: move the backup's files in one by one.
                self.move_files_in(&m.backup, &m.partition).await?;
            } else {
                self.rename_once(&m.backup, &m.partition).await?;
            }
            fail_point!("rollback_after_swap");
        }
        // Files in the merged directory that the merge did not write were written since:
        // they belong to the partition.
        if exists(fs.as_ref(), &m.undone).await? {
            for e in list_all(fs.as_ref(), &m.undone).await? {
                if !manifest.is_output_or_carried(&e.name) {
                    self.move_in(&join_path(&m.undone, &e.name), &m.partition, &e.name)
                        .await?;
                }
            }
        }
        match fs
            .create(
                &m.rolled_back,
                Bytes::from(now_ms().to_string()),
                false,
                Some(0o644),
            )
            .await
        {
            Ok(()) | Err(FsError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        fs.delete(&m.undone, true).await?;
        Ok(())
    }
}
