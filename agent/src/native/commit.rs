//! The commit protocol: stage, verify, write the manifest, re-list, swap, reconcile, commit —
//! and its inverse (rollback) and its recovery after a crash at any instant.
//!
//! Invariant: a reader of the partition directory sees exactly the old files or exactly the
//! new ones, never both and never a part. The swap is two renames on one filesystem
//! (`partition → <merge>/backup`, `<merge>/output → partition`); for the instant between them
//! the directory is absent (a reader listing it then gets "no such directory", which Hive,
//! Impala and Spark treat as an empty partition — or fail the query, depending on version).
//! Nothing else happens between the two renames.
//!
//! A file that arrives between the last re-list and the first rename travels with the old
//! directory into `backup/`; *reconcile* moves every such file back into the new partition
//! directory, so it is never lost. A source that changed in that instant (an append) makes
//! reconcile roll the swap back, because the merged output lacks its new rows.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hive_smallfiles_core::fs::write::FileSystemWrite;
use hive_smallfiles_core::fs::{EntryKind, FileStatus, FileSystem, FsError, join_path};
use serde::Serialize;

use super::error::{NativeError, aborted, refused};
use super::failpoint;
use super::format::{self, TextCompression, TextCounter};
use super::layout::{AreaLayout, MergeLayout, is_area_name, is_merge_id};
use super::lock::{Identity, PartitionLock};
use super::manifest::{
    Action, DirectoryAttributes, MANIFEST_VERSION, Manifest, ManifestFile, ManifestOutput,
    Observed, Writer, decide,
};

/// Bytes read per `OPEN` request.
pub const READ_CHUNK: u64 = 16 << 20;

/// Hidden files larger than this are not carried into the merged directory (refused).
const MAX_CARRIED_BYTES: u64 = 1 << 20;

/// Names of hidden entries that mean a writer is working in the partition right now.
const ACTIVE_WRITER_PREFIXES: &[&str] = &[
    ".hive-staging",
    "_temporary",
    "_impala_insert_staging",
    ".spark-staging",
    "_scratchdir",
];

/// Settings of the protocol.
#[derive(Debug, Clone)]
pub struct CommitSettings {
    /// Who we are (lock files).
    pub identity: Identity,
    /// How long backups of committed merges are kept (rollback possible until then).
    pub backup_retention: Duration,
    /// Local directory for spooling merged output before upload.
    pub spool_dir: PathBuf,
}

/// The partition a merge works on.
#[derive(Debug, Clone)]
pub struct Target {
    /// Cluster name.
    pub cluster: String,
    /// `database.table`.
    pub table: String,
    /// `PART_NAME` (empty for an unpartitioned table).
    pub partition: String,
    /// The partition directory (normalized absolute path).
    pub path: String,
}

/// The partition as listed at the start of a merge.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The directory's attributes.
    pub directory: DirectoryAttributes,
    /// Data files (visible names), sorted by name.
    pub sources: Vec<FileStatus>,
    /// Hidden files carried over unchanged.
    pub carried: Vec<FileStatus>,
    /// Hidden files dropped (checksums of sources).
    pub dropped: Vec<String>,
}

/// What a stage writer produced in `output/`.
#[derive(Debug, Clone)]
pub struct Staged {
    /// Who wrote it.
    pub writer: Writer,
    /// The format, when the agent wrote it.
    pub format: Option<format::NativeFormat>,
    /// Rows (or lines) the sources hold, as counted independently of the output.
    pub expected_rows: u64,
    /// How to count rows of the output files.
    pub verify_as: VerifyAs,
}

/// How output rows are counted for verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyAs {
    /// Lines of text (compression by file name).
    Text,
    /// Parquet footers.
    Parquet,
    /// ORC footers.
    Orc,
}

/// Writes the merged output of a partition into the staging `output/` directory.
#[async_trait::async_trait]
pub trait StageWriter: Send + Sync {
    /// Writes merged files of `listing.sources` into `output` (a directory that does not
    /// exist yet, in the staging area). Must not touch the partition.
    async fn write(
        &self,
        fs: &Arc<dyn FileSystemWrite>,
        target: &Target,
        listing: &Listing,
        output: &str,
        spool: &std::path::Path,
    ) -> Result<Staged, NativeError>;
}

/// Result of one committed merge.
#[derive(Debug, Clone, Serialize)]
pub struct MergeReport {
    /// Merge id.
    pub merge_id: String,
    /// The merge directory (backup for rollback lives there).
    pub merge_dir: String,
    /// Files before.
    pub files_before: u64,
    /// Files after (outputs).
    pub files_after: u64,
    /// Bytes read.
    pub bytes_before: u64,
    /// Bytes written.
    pub bytes_after: u64,
    /// Rows (or lines).
    pub rows: u64,
    /// Files that arrived during the swap: moved from the backup into the new directory, or
    /// written into a partition directory a writer re-created between the two renames.
    pub arrived_during_swap: Vec<String>,
}

/// What recovery did with one merge directory.
#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    /// The merge directory.
    pub merge_dir: String,
    /// The action taken.
    pub action: &'static str,
    /// Error, when the action failed.
    pub error: Option<String>,
}

/// The protocol on one cluster's filesystem.
#[derive(Debug, Clone)]
pub struct Committer {
    fs: Arc<dyn FileSystemWrite>,
    settings: CommitSettings,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn is_active_writer(name: &str) -> bool {
    ACTIVE_WRITER_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether `path` exists.
pub async fn exists(fs: &dyn FileSystem, path: &str) -> Result<bool, FsError> {
    match fs.file_status(path).await {
        Ok(_) => Ok(true),
        Err(FsError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Lists a directory completely.
pub async fn list_all(fs: &dyn FileSystem, path: &str) -> Result<Vec<FileStatus>, FsError> {
    let mut out = Vec::new();
    fs.list_status(path, &mut |page: Vec<FileStatus>| out.extend(page))
        .await?;
    // Listing a file yields its own status with an empty name.
    out.retain(|s| !s.name.is_empty());
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Reads a whole file whose length is known, in chunks (`OPEN` with offsets).
pub async fn read_file(fs: &dyn FileSystem, path: &str, length: u64) -> Result<Bytes, NativeError> {
    if length <= READ_CHUNK {
        let data = fs.read_range(path, 0, length.max(1)).await?;
        if data.len() as u64 != length {
            return Err(aborted(
                "source_changed",
                format!("{path}: listed {length} bytes, read {}", data.len()),
            ));
        }
        return Ok(data);
    }
    let mut buf = bytes::BytesMut::with_capacity(usize::try_from(length).unwrap_or(0));
    while (buf.len() as u64) < length {
        let chunk = fs
            .read_range(
                path,
                buf.len() as u64,
                READ_CHUNK.min(length - buf.len() as u64),
            )
            .await?;
        if chunk.is_empty() {
            break;
        }
        buf.extend_from_slice(&chunk);
    }
    // One more byte would mean the file grew since it was listed.
    let more = fs.read_range(path, length, 1).await.unwrap_or_default();
    if buf.len() as u64 != length || !more.is_empty() {
        return Err(aborted(
            "source_changed",
            format!("{path}: listed {length} bytes, read {}+", buf.len()),
        ));
    }
    Ok(buf.freeze())
}

impl Committer {
    /// The protocol over `fs`.
    pub fn new(fs: Arc<dyn FileSystemWrite>, settings: CommitSettings) -> Self {
        Self { fs, settings }
    }

    /// The filesystem.
    pub fn fs(&self) -> &Arc<dyn FileSystemWrite> {
        &self.fs
    }

    /// Lists the partition and sorts its entries into sources, carried and dropped files;
    /// refuses partitions with subdirectories and ones a writer is working in.
    pub async fn list_partition(&self, path: &str) -> Result<Listing, NativeError> {
        let dir = self.fs.file_status(path).await?;
        if dir.kind != EntryKind::Directory {
            return Err(refused(
                "not_a_directory",
                format!("{path} is not a directory"),
            ));
        }
        let entries = list_all(self.fs.as_ref(), path).await?;
        let mut sources = Vec::new();
        let mut hidden = Vec::new();
        for e in entries {
            if is_active_writer(&e.name) {
                return Err(aborted(
                    "active_writer",
                    format!("{path}/{} shows a write in progress", e.name),
                ));
            }
            match e.kind {
                EntryKind::Directory => {
                    return Err(refused(
                        "subdirectories",
                        format!(
                            "{path} holds the directory {:?}; only flat partitions are merged",
                            e.name
                        ),
                    ));
                }
                EntryKind::Symlink => {
                    return Err(refused(
                        "symlink",
                        format!("{path}/{} is a symlink", e.name),
                    ));
                }
                EntryKind::File if e.is_hidden() => hidden.push(e),
                EntryKind::File => sources.push(e),
            }
        }
        let mut carried = Vec::new();
        let mut dropped = Vec::new();
        for h in hidden {
            let checksum_of_source = h
                .name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".crc"))
                .is_some_and(|base| sources.iter().any(|s| s.name == base));
            if checksum_of_source {
                dropped.push(h.name);
            } else if h.length > MAX_CARRIED_BYTES {
                return Err(refused(
                    "large_hidden_file",
                    format!("{path}/{} is a hidden file of {} bytes", h.name, h.length),
                ));
            } else {
                carried.push(h);
            }
        }
        Ok(Listing {
            directory: DirectoryAttributes {
                permission: dir.permission,
                owner: dir.owner,
                group: dir.group,
            },
            sources,
            carried,
            dropped,
        })
    }

    /// Merges one partition: lock, finish any earlier merge of it, stage, verify, manifest,
    /// re-list, swap, reconcile, commit. On any error before the swap the partition is left
    /// untouched and the merge directory removed.
    pub async fn merge(
        &self,
        job_id: u64,
        target: &Target,
        writer: &dyn StageWriter,
    ) -> Result<MergeReport, NativeError> {
        let area = AreaLayout::for_partition(&target.path)
            .ok_or_else(|| refused("bad_location", format!("{} has no parent", target.path)))?;
        let merge_id = super::layout::new_merge_id(job_id, chrono::Utc::now());
        let lock = PartitionLock::acquire(
            Arc::clone(&self.fs),
            &area.lock,
            &self.settings.identity,
            &format!("merge {merge_id} (job {job_id})"),
        )
        .await?;
        failpoint::hit("after_lock").await;
        let result = async {
            // An earlier merge of this partition that did not finish is finished first.
            for r in self.recover_area_locked(&area).await? {
                if let Some(e) = r.error {
                    return Err(NativeError::Inconsistent(format!(
                        "earlier merge {} could not be recovered: {e}",
                        r.merge_dir
                    )));
                }
            }
            let m = area.merge(&merge_id);
            let spool = self.settings.spool_dir.join(&merge_id);
            let result = self
                .merge_locked(job_id, target, writer, &m, &spool, &lock)
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
    async fn remove_area_if_empty(&self, area: &AreaLayout) {
        if list_all(self.fs.as_ref(), &area.area)
            .await
            .is_ok_and(|e| e.is_empty())
        {
            // Not recursive: fails harmlessly if someone created something meanwhile.
            let _ = self.fs.delete(&area.area, false).await;
        }
    }

    #[allow(clippy::too_many_lines)]
    async fn merge_locked(
        &self,
        job_id: u64,
        target: &Target,
        writer: &dyn StageWriter,
        m: &MergeLayout,
        spool: &std::path::Path,
        lock: &PartitionLock,
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
        failpoint::hit("after_stage").await;

        // Verify what is on the filesystem now, read back from it.
        let outputs = self.verify_output(&m.output, &listing, &staged).await?;
        failpoint::hit("after_verify").await;

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
        };
        let body = Bytes::from(serde_json::to_vec_pretty(&manifest).unwrap_or_default());
        fs.create(&m.manifest, body, false, Some(0o644)).await?;
        failpoint::hit("after_manifest").await;

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
        failpoint::hit("after_relist").await;

        // The swap: two renames, nothing in between.
        fs.rename(&target.path, &m.backup).await?;
        failpoint::hit("between_renames").await;
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
        failpoint::hit("after_swap").await;

        let mut arrived = self.reconcile_and_commit(&manifest, m).await?;
        arrived.extend(recreated);
        Ok(MergeReport {
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

    /// Lists `output/`, counts rows of every output file from what the filesystem returns,
    /// and checks them against the expected rows.
    async fn verify_output(
        &self,
        output: &str,
        listing: &Listing,
        staged: &Staged,
    ) -> Result<Vec<ManifestOutput>, NativeError> {
        let fs = self.fs.as_ref();
        let entries = list_all(fs, output).await?;
        let mut outputs = Vec::new();
        let mut total = 0u64;
        for e in &entries {
            if e.is_hidden() {
                if listing.carried.iter().any(|c| c.name == e.name) {
                    continue;
                }
                // Engine leftovers (`_SUCCESS`, `.crc`) do not belong in the partition.
                fs.delete(&join_path(output, &e.name), true).await?;
                continue;
            }
            if e.kind != EntryKind::File {
                return Err(NativeError::Verification(format!(
                    "{output}/{} is not a file",
                    e.name
                )));
            }
            if listing.sources.iter().any(|s| s.name == e.name) {
                return Err(NativeError::Verification(format!(
                    "output file {} has the name of a source file",
                    e.name
                )));
            }
            let path = join_path(output, &e.name);
            let rows = count_rows(fs, &path, e.length, staged.verify_as).await?;
            total += rows;
            outputs.push(ManifestOutput {
                name: e.name.clone(),
                length: e.length,
                rows,
            });
        }
        if total != staged.expected_rows {
            return Err(NativeError::Verification(format!(
                "the sources hold {} rows, the staged output {total}",
                staged.expected_rows
            )));
        }
        if outputs.is_empty() && staged.expected_rows > 0 {
            return Err(NativeError::Verification("no output files".to_owned()));
        }
        Ok(outputs)
    }

    /// After the swap: move files that arrived in the instant of the swap from `backup/` into
    /// the new partition, check the sources in `backup/` are exactly the ones merged (else
    /// roll back), and write the `committed` marker.
    async fn reconcile_and_commit(
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
        failpoint::hit("after_reconcile").await;
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
        failpoint::hit("after_commit").await;
        Ok(arrived)
    }

    /// Moves `from` into directory `dir` as `name`; a name already taken there (someone
    /// wrote the same name meanwhile) keeps the file where it is and is reported.
    async fn move_in(&self, from: &str, dir: &str, name: &str) -> Result<(), NativeError> {
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
    async fn move_files_in(&self, from: &str, dir: &str) -> Result<(), NativeError> {
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
    async fn rename_once(&self, src: &str, dst: &str) -> Result<(), NativeError> {
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

    /// Rolls a committed merge back (the partition gets its original files again, plus any
    /// file written into it since the merge). Takes the partition's lock.
    pub async fn rollback(&self, merge_dir: &str) -> Result<Recovered, NativeError> {
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
    async fn rollback_locked(
        &self,
        manifest: &Manifest,
        m: &MergeLayout,
    ) -> Result<(), NativeError> {
        let fs = &self.fs;
        if exists(fs.as_ref(), &m.backup).await? {
            if !exists(fs.as_ref(), &m.undone).await? {
                self.rename_once(&m.partition, &m.undone).await?;
                failpoint::hit("rollback_after_first_rename").await;
            }
            if exists(fs.as_ref(), &m.partition).await? {
                // Re-created while absent: move the backup's files in one by one.
                self.move_files_in(&m.backup, &m.partition).await?;
            } else {
                self.rename_once(&m.backup, &m.partition).await?;
            }
            failpoint::hit("rollback_after_swap").await;
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

    async fn read_manifest(&self, m: &MergeLayout) -> Result<Option<Manifest>, NativeError> {
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

    async fn observe(&self, m: &MergeLayout, manifest: bool) -> Result<Observed, NativeError> {
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
    async fn recover_area_locked(&self, area: &AreaLayout) -> Result<Vec<Recovered>, NativeError> {
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
                match self.recover_merge(&m).await {
                    Ok(a) => {
                        first.get_or_insert(a);
                        if matches!(
                            a,
                            Action::Keep
                                | Action::PartitionGone
                                | Action::Expire
                                | Action::DiscardStaging
                                | Action::Abort
                        ) {
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
            let action = first.unwrap_or(Action::Keep).as_str();
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

    async fn recover_merge(&self, m: &MergeLayout) -> Result<Action, (Action, NativeError)> {
        let manifest = self.read_manifest(m).await.map_err(|e| (Action::Keep, e))?;
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
    pub async fn recover_area(&self, area: &AreaLayout) -> Result<Vec<Recovered>, NativeError> {
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
        let result = self.recover_area_locked(area).await;
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
                let r = self.recover_area(&area).await;
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

fn is_source_checksum(manifest: &Manifest, name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(".crc"))
        .is_some_and(|base| manifest.source(base).is_some())
}

/// The partition now, compared with the listing the merge started from.
fn unchanged(before: &Listing, now: &Listing) -> Result<(), NativeError> {
    let key = |s: &FileStatus| (s.name.clone(), s.length, s.modification_time_ms);
    let b: Vec<_> = before.sources.iter().map(key).collect();
    let n: Vec<_> = now.sources.iter().map(key).collect();
    if b != n {
        let new: Vec<&str> = now
            .sources
            .iter()
            .filter(|s| !before.sources.iter().any(|x| x.name == s.name))
            .map(|s| s.name.as_str())
            .collect();
        if !new.is_empty() {
            return Err(aborted(
                "new_file_arrived",
                format!("new files in the partition during the merge: {new:?}"),
            ));
        }
        return Err(aborted(
            "source_changed",
            "a source file changed or disappeared during the merge",
        ));
    }
    let hb: Vec<_> = before.carried.iter().map(key).collect();
    let hn: Vec<_> = now.carried.iter().map(key).collect();
    if hb != hn || before.dropped != now.dropped {
        return Err(aborted(
            "hidden_file_changed",
            "hidden files of the partition changed during the merge",
        ));
    }
    if before.directory != now.directory {
        return Err(aborted(
            "directory_changed",
            "the partition directory's permission, owner or group changed during the merge",
        ));
    }
    Ok(())
}

/// Counts rows of one file on the filesystem.
async fn count_rows(
    fs: &dyn FileSystem,
    path: &str,
    length: u64,
    verify_as: VerifyAs,
) -> Result<u64, NativeError> {
    match verify_as {
        VerifyAs::Text => {
            let compression = TextCompression::from_file_name(path)?;
            let mut counter = TextCounter::new(compression);
            let mut offset = 0;
            while offset < length {
                let chunk = fs
                    .read_range(path, offset, READ_CHUNK.min(length - offset))
                    .await?;
                if chunk.is_empty() {
                    break;
                }
                offset += chunk.len() as u64;
                counter.update(&chunk)?;
            }
            if offset != length {
                return Err(NativeError::Verification(format!(
                    "{path}: listed {length} bytes, read {offset}"
                )));
            }
            let stats = counter.finish()?;
            if stats.uncompressed_bytes > 0 && !stats.ends_with_newline {
                return Err(NativeError::Verification(format!(
                    "{path} does not end with a newline"
                )));
            }
            Ok(stats.lines)
        }
        VerifyAs::Parquet => {
            if length < 12 {
                return Err(NativeError::Verification(format!(
                    "{path}: {length} bytes is no Parquet file"
                )));
            }
            let last8 = fs.read_range(path, length - 8, 8).await?;
            let footer = format::parquet_footer_len(&last8)?;
            let tail_len = (footer + 8).min(length);
            let tail = fs.read_range(path, length - tail_len, tail_len).await?;
            Ok(format::parquet_rows_from_tail(tail)?)
        }
        VerifyAs::Orc => {
            let data = read_file(fs, path, length).await?;
            Ok(format::orc_rows(data)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, length: u64, mtime: i64) -> FileStatus {
        FileStatus {
            name: name.into(),
            kind: EntryKind::File,
            length,
            modification_time_ms: mtime,
            access_time_ms: 0,
            permission: 0o644,
            owner: "hive".into(),
            group: "hive".into(),
        }
    }

    fn listing(sources: Vec<FileStatus>, carried: Vec<FileStatus>) -> Listing {
        Listing {
            directory: DirectoryAttributes {
                permission: 0o755,
                owner: "hive".into(),
                group: "hive".into(),
            },
            sources,
            carried,
            dropped: Vec::new(),
        }
    }

    #[test]
    fn relist_detects_every_change() {
        let base = listing(
            vec![file("a", 1, 10), file("b", 2, 20)],
            vec![file("_SUCCESS", 0, 5)],
        );
        assert!(unchanged(&base, &base.clone()).is_ok());
        let reason = |now: Listing| match unchanged(&base, &now) {
            Err(NativeError::Aborted { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        let mut new_file = base.clone();
        new_file.sources.push(file("c", 1, 30));
        assert_eq!(reason(new_file), "new_file_arrived");
        let mut appended = base.clone();
        appended.sources[1].length = 3;
        assert_eq!(reason(appended), "source_changed");
        let mut touched = base.clone();
        touched.sources[0].modification_time_ms = 11;
        assert_eq!(reason(touched), "source_changed");
        let mut removed = base.clone();
        removed.sources.pop();
        assert_eq!(reason(removed), "source_changed");
        let mut marker = base.clone();
        marker.carried.clear();
        assert_eq!(reason(marker), "hidden_file_changed");
        let mut chmod = base.clone();
        chmod.directory.permission = 0o700;
        assert_eq!(reason(chmod), "directory_changed");
    }

    #[test]
    fn writers_staging_names() {
        assert!(is_active_writer(".hive-staging_hive_2024-01-01_10-00-00_1"));
        assert!(is_active_writer("_temporary"));
        assert!(!is_active_writer("_SUCCESS"));
        assert!(!is_active_writer(".part-0000.crc"));
    }
}
