//! The swap and what completes it: the two renames, reconcile (files that arrived in the
//! instant of the swap move from `backup/` into the new partition; a source that changed
//! rolls the swap back) and the `committed` marker. Also the idempotent moves and renames
//! that recovery repeats after a crash.

use bytes::Bytes;
use hive_smallfiles_core::fs::{FsError, join_path};

use super::io::now_ms;
use super::{Committer, Target, exists, list_all};
use crate::native::error::{NativeError, aborted};
use crate::native::failpoint::fail_point;
use crate::native::layout::MergeLayout;
use crate::native::manifest::Manifest;

impl Committer {
    /// The swap: `partition → <merge>/backup`, `<merge>/output → partition`, nothing in
    /// between. The names of files a writer put into a partition directory it re-created
    /// between the two renames (the merged files then move in beside them).
    pub(super) async fn swap(
        &self,
        target: &Target,
        m: &MergeLayout,
    ) -> Result<Vec<String>, NativeError> {
        let fs = &self.fs;
        fs.rename(&target.path, &m.backup).await?;
        fail_point!("between_renames");
        let mut recreated = Vec::new();
        if let Err(e) = fs.rename(&m.output, &target.path).await {
            if matches!(e, FsError::AlreadyExists { .. })
                && exists(fs.as_ref(), &target.path).await?
            {
                // A writer re-created the partition directory in the instant between the
                // renames (Hive's and Spark's INSERT create a missing partition directory).
                // Its files stay; the verified output moves in beside them file by file, as
                // recovery would — now, not at the next recovery: until then readers would
                // see the writer's rows only.
                tracing::warn!(partition = %target.path, "The partition directory was re-created during the swap; moving the merged files into it.");
                recreated = list_all(fs.as_ref(), &target.path)
                    .await?
                    .into_iter()
                    .map(|e| e.name)
                    .collect();
                self.move_files_in(&m.output, &target.path).await?;
            } else if let Err(back) = fs.rename(&m.backup, &target.path).await {
                // Put the original back; if even that fails, recovery finishes the job.
                return Err(NativeError::Inconsistent(format!(
                    "second rename failed ({e}) and restoring failed ({back}); \
                     recovery will roll {} forward",
                    m.dir
                )));
            } else {
                let _ = fs.delete(&m.dir, true).await;
                return Err(e.into());
            }
        }
        Ok(recreated)
    }

    /// After the swap: move files that arrived in the instant of the swap from `backup/` into
    /// the new partition, check the sources in `backup/` are exactly the ones merged (else
    /// roll back), and write the `committed` marker.
    pub(super) async fn reconcile_and_commit(
        &self,
        manifest: &Manifest,
        m: &MergeLayout,
    ) -> Result<Vec<String>, NativeError> {
        let fs = self.fs.as_ref();
        let backup = list_all(fs, &m.backup).await?;
        let mut changed = Vec::new();
        let mut arrived = Vec::new();
        for e in &backup {
            if let Some(s) = manifest.source(&e.name) {
                if s.length != e.length || s.modification_ms != e.modification_time_ms {
                    changed.push(e.name.clone());
                }
                continue;
            }
            if manifest.carried.contains(&e.name) || is_source_checksum(manifest, &e.name) {
                continue;
            }
            arrived.push(e.name.clone());
        }
        let missing: Vec<&str> = manifest
            .sources
            .iter()
            .filter(|s| !backup.iter().any(|e| e.name == s.name))
            .map(|s| s.name.as_str())
            .collect();
        for name in &arrived {
            self.move_in(&join_path(&m.backup, name), &m.partition, name)
                .await?;
        }
        fail_point!("after_reconcile");
        if !changed.is_empty() || !missing.is_empty() {
            tracing::warn!(merge = %m.dir, ?changed, ?missing, "Sources changed during the swap; rolling back.");
            self.rollback_locked(manifest, m).await?;
            return Err(aborted(
                "source_changed",
                format!(
                    "sources changed during the swap (changed {changed:?}, removed {missing:?}); \
                     rolled back"
                ),
            ));
        }
        let body = Bytes::from(now_ms().to_string());
        match fs.create(&m.committed, body, false, Some(0o644)).await {
            Ok(()) | Err(FsError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        fail_point!("after_commit");
        Ok(arrived)
    }

    /// Moves `from` into directory `dir` as `name`; a name already taken there (someone
    /// wrote the same name meanwhile) keeps the file where it is and is reported.
    pub(super) async fn move_in(
        &self,
        from: &str,
        dir: &str,
        name: &str,
    ) -> Result<(), NativeError> {
        let to = join_path(dir, name);
        match self.fs.rename(from, &to).await {
            Ok(()) => Ok(()),
            // A retried rename that went through the first time.
            Err(FsError::NotFound { .. }) if exists(self.fs.as_ref(), &to).await? => Ok(()),
            Err(FsError::AlreadyExists { .. }) => Err(NativeError::Inconsistent(format!(
                "{from} cannot be moved into {dir}: the name is taken; it stays where it is"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves every file of `from` into the directory `dir` that someone re-created while it
    /// was absent, then deletes `from`. A hidden marker (`_SUCCESS`) whose name the writer
    /// already put there is dropped: the writer's own marker stands, and it carries no rows.
    pub(super) async fn move_files_in(&self, from: &str, dir: &str) -> Result<(), NativeError> {
        let fs = self.fs.as_ref();
        for e in list_all(fs, from).await? {
            let src = join_path(from, &e.name);
            if e.is_hidden() && exists(fs, &join_path(dir, &e.name)).await? {
                fs.delete(&src, true).await?;
                continue;
            }
            self.move_in(&src, dir, &e.name).await?;
        }
        fs.delete(from, true).await?;
        Ok(())
    }

    /// A rename that tolerates its own retry: done when `src` is gone and `dst` is there.
    pub(super) async fn rename_once(&self, src: &str, dst: &str) -> Result<(), NativeError> {
        match self.fs.rename(src, dst).await {
            Ok(()) => Ok(()),
            Err(FsError::NotFound { .. })
                if !exists(self.fs.as_ref(), src).await?
                    && exists(self.fs.as_ref(), dst).await? =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn is_source_checksum(manifest: &Manifest, name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(".crc"))
        .is_some_and(|base| manifest.source(base).is_some())
}
