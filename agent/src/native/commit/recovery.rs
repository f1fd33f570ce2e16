//! Recovery after a crash at any instant: each merge directory of a staging area is observed
//! (manifest, output, backup, undone, markers, their age) and brought to a consistent state
//! by the action [`decide`] chooses from that observation — roll forward, finish the commit
//! or a rollback, discard the staging, or expire a retained backup. Also finding staging
//! areas under partition parents and listing their merges.

use std::collections::BTreeMap;
use std::sync::Arc;

use hive_smallfiles_core::fs::{EntryKind, FsError, join_path};

use super::io::now_ms;
use super::{Committer, Locations, Recovered, exists, list_all, read_file};
use crate::native::error::NativeError;
use crate::native::layout::{AreaLayout, MergeLayout, is_area_name, is_merge_id};
use crate::native::lock::PartitionLock;
use crate::native::manifest::{Action, CommitMode, Manifest, Observed, decide};

impl Committer {
    pub(super) async fn read_manifest(
        &self,
        m: &MergeLayout,
    ) -> Result<Option<Manifest>, NativeError> {
        let status = match self.fs.file_status(&m.manifest).await {
            Ok(s) => s,
            Err(FsError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let data = read_file(self.fs.as_ref(), &m.manifest, status.length).await?;
        serde_json::from_slice(&data).map(Some).map_err(|e| {
            NativeError::Inconsistent(format!("{}: unreadable manifest: {e}", m.manifest))
        })
    }

    async fn marker_age_expired(&self, path: &str) -> Result<Option<bool>, NativeError> {
        match self.fs.file_status(path).await {
            Ok(s) => {
                let retention =
                    i64::try_from(self.settings.backup_retention.as_millis()).unwrap_or(i64::MAX);
                Ok(Some(
                    now_ms().saturating_sub(s.modification_time_ms) >= retention,
                ))
            }
            Err(FsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn observe(
        &self,
        m: &MergeLayout,
        manifest: bool,
    ) -> Result<Observed, NativeError> {
        let fs = self.fs.as_ref();
        let committed = self.marker_age_expired(&m.committed).await?;
        let rolled_back = self.marker_age_expired(&m.rolled_back).await?;
        let manifest_expired = if manifest {
            self.marker_age_expired(&m.manifest).await?.unwrap_or(false)
        } else {
            // Staging without a manifest: any age.
            true
        };
        Ok(Observed {
            manifest,
            output: exists(fs, &m.output).await?,
            backup: exists(fs, &m.backup).await?,
            undone: exists(fs, &m.undone).await?,
            partition: exists(fs, &m.partition).await?,
            committed: committed.is_some(),
            rolled_back: rolled_back.is_some(),
            expired: rolled_back.or(committed).unwrap_or(manifest_expired),
        })
    }

    /// Brings one partition's staging area to a consistent state (lock held).
    pub(super) async fn recover_area_locked(
        &self,
        area: &AreaLayout,
        locations: Option<&dyn Locations>,
    ) -> Result<Vec<Recovered>, NativeError> {
        let entries = match list_all(self.fs.as_ref(), &area.area).await {
            Ok(e) => e,
            Err(FsError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for e in entries
            .iter()
            .filter(|e| e.kind == EntryKind::Directory && is_merge_id(&e.name))
        {
            let m = area.merge(&e.name);
            // Act, then look again: a merge rolled forward and committed may also be past
            // its retention already. Every action moves towards Keep, Expire or deletion.
            let mut first = None;
            let mut result = Ok(());
            for _ in 0..4 {
                match self.recover_merge(&m, locations).await {
                    Ok((a, done)) => {
                        first.get_or_insert(a);
                        if done {
                            break;
                        }
                    }
                    Err((a, e)) => {
                        first.get_or_insert(a);
                        result = Err(e);
                        break;
                    }
                }
            }
            let action = first.unwrap_or("keep");
            if action != "keep" {
                tracing::info!(merge = %m.dir, action, error = ?result.as_ref().err(), "Recovered a merge directory.");
            }
            out.push(Recovered {
                merge_dir: m.dir.clone(),
                action,
                error: result.err().map(|e| e.to_string()),
            });
        }
        Ok(out)
    }

    /// Recovers one merge directory: the action taken (label) and whether recovery is done
    /// with it for now.
    async fn recover_merge(
        &self,
        m: &MergeLayout,
        locations: Option<&dyn Locations>,
    ) -> Result<(&'static str, bool), (&'static str, NativeError)> {
        let manifest = self.read_manifest(m).await.map_err(|e| ("keep", e))?;
        if let Some(man) = manifest.as_ref().filter(|x| x.commit == CommitMode::Switch) {
            let Some(locations) = locations else {
                return Err((
                    "keep",
                    NativeError::Inconsistent(format!(
                        "{} is a switch commit; recovering it needs the MetaStore and the engine",
                        m.dir
                    )),
                ));
            };
            return self
                .recover_switch(man, m, locations)
                .await
                .map(|a| (a.as_str(), a.is_final()))
                .map_err(|(a, e)| (a.as_str(), e));
        }
        self.recover_swap(m, manifest)
            .await
            .map(|a| {
                let done = matches!(
                    a,
                    Action::Keep
                        | Action::PartitionGone
                        | Action::Expire
                        | Action::DiscardStaging
                        | Action::Abort
                );
                (a.as_str(), done)
            })
            .map_err(|(a, e)| (a.as_str(), e))
    }

    async fn recover_swap(
        &self,
        m: &MergeLayout,
        manifest: Option<Manifest>,
    ) -> Result<Action, (Action, NativeError)> {
        let o = self
            .observe(m, manifest.is_some())
            .await
            .map_err(|e| (Action::Keep, e))?;
        let action = decide(o);
        let run = async {
            let fs = &self.fs;
            match (action, manifest) {
                (Action::DiscardStaging | Action::Abort | Action::Expire, _) => {
                    fs.delete(&m.dir, true).await?;
                }
                (Action::Keep | Action::PartitionGone, _) => {}
                (_, None) => unreachable!("every other action has a manifest"),
                (Action::RollForward, Some(man)) => {
                    self.rename_once(&m.output, &m.partition).await?;
                    self.reconcile_and_commit(&man, m).await?;
                }
                (Action::FinishCommit, Some(man)) => {
                    self.reconcile_and_commit(&man, m).await?;
                }
                (Action::ForwardFileByFile, Some(man)) => {
                    self.move_files_in(&m.output, &m.partition).await?;
                    self.reconcile_and_commit(&man, m).await?;
                }
                (
                    Action::ContinueRollback | Action::FinishRollback | Action::RollbackFileByFile,
                    Some(man),
                ) => {
                    self.rollback_locked(&man, m).await?;
                }
            }
            Ok::<_, NativeError>(())
        };
        match run.await {
            Ok(()) => Ok(action),
            // A roll-forward whose reconcile found changed sources rolled back: consistent.
            Err(NativeError::Aborted { .. }) => Ok(action),
            Err(e) => Err((action, e)),
        }
    }

    /// Recovers the staging area of one partition (or of an area found by listing): takes
    /// the lock (breaking a stale one; an area locked by a live agent is skipped), recovers
    /// every merge directory, and removes the area when nothing is left in it.
    pub async fn recover_area(
        &self,
        area: &AreaLayout,
        locations: Option<&dyn Locations>,
    ) -> Result<Vec<Recovered>, NativeError> {
        if !exists(self.fs.as_ref(), &area.area).await? {
            return Ok(Vec::new());
        }
        let lock = PartitionLock::acquire(
            Arc::clone(&self.fs),
            &area.lock,
            &self.settings.identity,
            "recover",
        )
        .await?;
        let result = self.recover_area_locked(area, locations).await;
        let remaining = list_all(self.fs.as_ref(), &area.area)
            .await
            .map(|e| e.iter().filter(|e| e.name != "lock").count())
            .unwrap_or(1);
        lock.release().await?;
        if result.is_ok() && remaining == 0 {
            self.remove_area_if_empty(area).await;
        }
        result
    }

    /// Finds staging areas in the directories given (partition parents) and recovers each.
    pub async fn recover_in(
        &self,
        parents: &[String],
        locations: Option<&dyn Locations>,
    ) -> Vec<(String, Result<Vec<Recovered>, NativeError>)> {
        let mut out = Vec::new();
        for parent in parents {
            let entries = match list_all(self.fs.as_ref(), parent).await {
                Ok(e) => e,
                Err(FsError::NotFound { .. }) => continue,
                Err(e) => {
                    out.push((parent.clone(), Err(e.into())));
                    continue;
                }
            };
            for e in entries {
                if e.kind != EntryKind::Directory || !is_area_name(&e.name) {
                    continue;
                }
                let path = join_path(parent, &e.name);
                let Some(area) = AreaLayout::for_area(&path) else {
                    continue;
                };
                let r = self.recover_area(&area, locations).await;
                out.push((path, r));
            }
        }
        out
    }

    /// The merge directories of a staging area with their manifests (for the API and CLI).
    pub async fn merges_of(
        &self,
        area: &AreaLayout,
    ) -> Result<BTreeMap<String, Option<Manifest>>, NativeError> {
        let mut out = BTreeMap::new();
        let entries = match list_all(self.fs.as_ref(), &area.area).await {
            Ok(e) => e,
            Err(FsError::NotFound { .. }) => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for e in entries.iter().filter(|e| is_merge_id(&e.name)) {
            let m = area.merge(&e.name);
            out.insert(m.dir.clone(), self.read_manifest(&m).await?);
        }
        Ok(out)
    }
}
