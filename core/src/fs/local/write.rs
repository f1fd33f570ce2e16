//! The mutating operations of the local backend (the merge agent's side), run on the blocking
//! pool (Unix only).
//!
//! Crash safety: data reaches its final name only complete and fsynced (written to a hidden
//! temporary file in the target directory, or the caller's file fsynced, then linked or
//! renamed into place), and every directory whose entries changed is fsynced afterwards.
//! Confinement: new directories are created one level at a time below the real root, and
//! an existing component that is a symlink must resolve inside the root. These checks guard
//! against misconfiguration and stray links, not against a hostile local user racing with
//! the agent on the same tree.

use std::ffi::OsString;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use nix::errno::Errno;

use super::{LocalFs, errno_is, invalid_input, io_error};
use crate::fs::FsError;
use crate::fs::write::FileSystemWrite;

#[async_trait]
impl FileSystemWrite for LocalFs {
    /// Writes a hidden temporary file next to `path` (`.hsf-tmp-…`), fsyncs it and moves it
    /// into place: readers never see a partly written file, even after a crash. Without
    /// `overwrite` the move is a hard link (which fails atomically when `path` exists, also
    /// as a directory or a dangling symlink), so two writers racing for a lock file cannot
    /// both win. Missing parents are created (0755). The permission is set exactly (no umask;
    /// default 0644, as WebHDFS).
    async fn create(
        &self,
        path: &str,
        data: Bytes,
        overwrite: bool,
        permission: Option<u32>,
    ) -> Result<(), FsError> {
        let request = path.to_owned();
        self.blocking(path, move |fs| {
            create(fs, &request, Source::Bytes(&data), overwrite, permission)
        })
        .await
    }

    /// Moves the local file into place when it is on the same filesystem (fsynced and
    /// given its permission first; a hard link then removing `local` without `overwrite`, a
    /// rename with it), so `local` is gone afterwards. From another filesystem it is copied
    /// as [`FileSystem::create`] writes, and `local` is left alone.
    async fn create_from_local(
        &self,
        path: &str,
        local: &Path,
        overwrite: bool,
        permission: Option<u32>,
    ) -> Result<(), FsError> {
        let request = path.to_owned();
        let local = local.to_owned();
        self.blocking(path, move |fs| {
            create(fs, &request, Source::Local(&local), overwrite, permission)
        })
        .await
    }

    /// Creates the missing directories, confined to the root: the new leaf gets
    /// `permission` (default 0755, exactly, no umask), new ancestors `permission | 0o300`
    /// (as HDFS); existing directories are left alone. A file at `path` is
    /// [`FsError::AlreadyExists`].
    async fn mkdirs(&self, path: &str, permission: Option<u32>) -> Result<(), FsError> {
        let request = path.to_owned();
        self.blocking(path, move |fs| mkdirs(fs, &request, permission))
            .await
    }

    /// `renameat2(RENAME_NOREPLACE)`: atomic, never replaces `dst` (not even an empty
    /// directory, which a plain `rename(2)` would). On a filesystem without it (`EINVAL`,
    /// `ENOSYS`: NFS, older kernels) it falls back to checking that `dst` does not exist and
    /// then `rename(2)`, which can replace a `dst` created in between. The root itself is
    /// never renamed.
    async fn rename(&self, src: &str, dst: &str) -> Result<(), FsError> {
        let (from, to) = (src.to_owned(), dst.to_owned());
        self.blocking(src, move |fs| rename(fs, &from, &to)).await
    }

    /// Removes a file or symlink (never what it points to), an empty directory, or with
    /// `recursive` a whole tree. `Ok(false)` when nothing was there. The root itself is
    /// never deleted.
    async fn delete(&self, path: &str, recursive: bool) -> Result<bool, FsError> {
        let request = path.to_owned();
        self.blocking(path, move |fs| delete(fs, &request, recursive))
            .await
    }

    /// `chmod`; a symlink is refused (`chmod` would change what it points to).
    async fn set_permission(&self, path: &str, permission: u32) -> Result<(), FsError> {
        let request = path.to_owned();
        self.blocking(path, move |fs| set_permission(fs, &request, permission))
            .await
    }

    /// `lchown` with the user and group looked up by name on this host; numeric ids are
    /// accepted too (as [`FileSystem::file_status`] reports them here). An unknown name is an
    /// error ([`FsError::Io`], `InvalidInput`), as is giving neither.
    async fn set_owner(
        &self,
        path: &str,
        owner: Option<&str>,
        group: Option<&str>,
    ) -> Result<(), FsError> {
        let request = path.to_owned();
        let (owner, group) = (owner.map(str::to_owned), group.map(str::to_owned));
        self.blocking(path, move |fs| {
            set_owner(fs, &request, owner.as_deref(), group.as_deref())
        })
        .await
    }
}

/// Permission of created files when none is given (WebHDFS `CREATE`'s default).
const DEFAULT_FILE_PERMISSION: u32 = 0o644;
/// Permission of created directories when none is given (WebHDFS `MKDIRS`'s default).
const DEFAULT_DIR_PERMISSION: u32 = 0o755;
/// Names of temporary files (hidden: Hive and the scanner ignore names starting with `.`).
const TEMP_PREFIX: &str = ".hsf-tmp-";

/// What a new file is made of.
#[derive(Debug, Clone, Copy)]
enum Source<'a> {
    /// These bytes.
    Bytes(&'a [u8]),
    /// The contents of this local file (moved when possible).
    Local(&'a Path),
}

fn root_refused(path: &str, what: &str) -> FsError {
    FsError::PermissionDenied {
        path: path.to_owned(),
        message: format!("the root directory itself is never {what}"),
    }
}

/// Makes a directory's entries durable (after creating, renaming or removing some).
fn sync_dir(path: &str, dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(path, e))
}

fn create(
    fs: &LocalFs,
    path: &str,
    source: Source<'_>,
    overwrite: bool,
    permission: Option<u32>,
) -> Result<(), FsError> {
    let mode = permission.unwrap_or(DEFAULT_FILE_PERMISSION) & 0o7777;
    let (dir, name) = parent_for_create(fs, path)?;
    let target = dir.join(name);
    if let Source::Local(local) = source {
        if move_local(path, local, &dir, &target, overwrite, mode)? {
            return sync_dir(path, &dir);
        }
    }
    let temp = write_temp(path, &dir, mode, |file| match source {
        Source::Bytes(data) => file.write_all(data).map_err(|e| io_error(path, e)),
        Source::Local(local) => {
            let local_error = |source| FsError::Io {
                path: local.display().to_string(),
                source,
            };
            let mut from = File::open(local).map_err(local_error)?;
            io::copy(&mut from, file).map(drop).map_err(local_error)
        }
    })?;
    let committed = if overwrite {
        std::fs::rename(&temp, &target)
    } else {
        link_no_replace(&temp, &target)
    };
    // After a hard link (or a failure) the temporary name is still there.
    if !overwrite || committed.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    committed.map_err(|e| io_error(path, e))?;
    sync_dir(path, &dir)
}

/// Moves the caller's file to `target` when both are on one filesystem: `Ok(true)` when
/// done, `Ok(false)` when it must be copied instead.
fn move_local(
    path: &str,
    local: &Path,
    dir: &Path,
    target: &Path,
    overwrite: bool,
    mode: u32,
) -> Result<bool, FsError> {
    let local_error = |source| FsError::Io {
        path: local.display().to_string(),
        source,
    };
    let meta = std::fs::symlink_metadata(local).map_err(local_error)?;
    if !meta.is_file() {
        return Err(local_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let dir_meta = std::fs::metadata(dir).map_err(|e| io_error(path, e))?;
    if meta.dev() != dir_meta.dev() {
        return Ok(false);
    }
    {
        let file = File::open(local).map_err(local_error)?;
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(local_error)?;
        file.sync_all().map_err(local_error)?;
    }
    let moved = if overwrite {
        std::fs::rename(local, target)
    } else {
        link_no_replace(local, target)
    };
    match moved {
        Ok(()) => {
            if !overwrite {
                match std::fs::remove_file(local) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(
                        local = %local.display(), error = %e,
                        "Created the file but could not remove the local one."
                    ),
                }
            }
            Ok(true)
        }
        // One device, several mounts (bind mounts): copy.
        Err(e) if errno_is(&e, &[Errno::EXDEV]) => Ok(false),
        Err(e) => Err(io_error(path, e)),
    }
}

/// A new hidden file in `dir` filled by `fill`, given `mode` and fsynced. Removed again
/// when anything fails.
fn write_temp(
    path: &str,
    dir: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> Result<(), FsError>,
) -> Result<PathBuf, FsError> {
    let (temp, mut file) = create_temp(path, dir)?;
    let written = fill(&mut file).and_then(|()| {
        file.set_permissions(Permissions::from_mode(mode))
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(path, e))
    });
    match written {
        Ok(()) => Ok(temp),
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

fn create_temp(path: &str, dir: &Path) -> Result<(PathBuf, File), FsError> {
    for _ in 0..16 {
        let temp = dir.join(format!("{TEMP_PREFIX}{:016x}", rand::random::<u64>()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
        {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error(path, e)),
        }
    }
    Err(FsError::Io {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary file name"),
    })
}

/// Gives `from` the name `to` unless `to` exists (as anything): a hard link, which fails
/// atomically with `EEXIST` (`from` keeps its name; the caller removes it). Where hard
/// links are not possible, [`rename_no_replace`] (which moves `from`).
fn link_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::hard_link(from, to) {
        Err(e)
            if errno_is(
                &e,
                &[
                    Errno::EPERM,
                    Errno::EOPNOTSUPP,
                    Errno::EMLINK,
                    Errno::ENOSYS,
                ],
            ) =>
        {
            rename_no_replace(from, to)
        }
        other => other,
    }
}

/// `renameat2(RENAME_NOREPLACE)`, or [`rename_checked`] where the filesystem (or the C
/// library) does not have it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use nix::fcntl::{RenameFlags, renameat2};
    match renameat2(None, from, None, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL | Errno::ENOSYS) => rename_checked(from, to),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// See the Linux version.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    rename_checked(from, to)
}

/// Checks that `to` does not exist, then `rename(2)`. Not atomic: a file (or an empty
/// directory) created at `to` in between is replaced.
fn rename_checked(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(to) {
        Ok(_) => Err(io::Error::from(Errno::EEXIST)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::rename(from, to),
        Err(e) => Err(e),
    }
}

/// The real directory that is to hold the new entry `path` (created when missing,
/// 0755) and the entry's name.
fn parent_for_create(fs: &LocalFs, path: &str) -> Result<(PathBuf, OsString), FsError> {
    let relative = fs.relative(path)?;
    let (Some(parent), Some(name)) = (relative.parent(), relative.file_name()) else {
        // The root: a directory.
        return Err(FsError::AlreadyExists {
            path: path.to_owned(),
        });
    };
    let dir = ensure_dirs(
        fs,
        path,
        parent,
        DEFAULT_DIR_PERMISSION,
        DEFAULT_DIR_PERMISSION,
        false,
    )?;
    Ok((dir, name.to_owned()))
}

/// Walks `relative` down from the real root, creating missing directories (the last one
/// with `leaf_mode`, others with `ancestor_mode`, exactly: no umask), and returns the
/// real path of the last one. An existing symlink must lead to a directory inside the
/// root. A non-directory in the way is [`FsError::AlreadyExists`] when it is the
/// requested directory itself (`leaf_is_request`), [`FsError::NotFound`] otherwise (as
/// `ENOTDIR`).
fn ensure_dirs(
    fs: &LocalFs,
    path: &str,
    relative: &Path,
    leaf_mode: u32,
    ancestor_mode: u32,
    leaf_is_request: bool,
) -> Result<PathBuf, FsError> {
    let names: Vec<_> = relative.iter().collect();
    let mut current = fs.real_root.clone();
    for (i, name) in names.iter().enumerate() {
        let is_leaf = i + 1 == names.len();
        let next = current.join(name);
        let existing = match std::fs::symlink_metadata(&next) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mode = if is_leaf { leaf_mode } else { ancestor_mode } & 0o7777;
                match std::fs::DirBuilder::new().mode(0o700).create(&next) {
                    Ok(()) => {
                        std::fs::set_permissions(&next, Permissions::from_mode(mode))
                            .map_err(|e| io_error(path, e))?;
                        sync_dir(path, &current)?;
                        false
                    }
                    // Created by someone else meanwhile.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => true,
                    Err(e) => return Err(io_error(path, e)),
                }
            }
            Err(e) => return Err(io_error(path, e)),
        };
        current = if existing {
            existing_dir(fs, path, &next, is_leaf && leaf_is_request)?
        } else {
            next
        };
    }
    Ok(current)
}

/// The real path of the existing directory (or symlink to one inside the root) `entry`.
fn existing_dir(
    fs: &LocalFs,
    path: &str,
    entry: &Path,
    is_request: bool,
) -> Result<PathBuf, FsError> {
    let real = std::fs::canonicalize(entry).map_err(|e| io_error(path, e))?;
    if !real.starts_with(&fs.real_root) {
        return Err(fs.outside(path));
    }
    let is_dir = std::fs::metadata(&real)
        .map_err(|e| io_error(path, e))?
        .is_dir();
    match (is_dir, is_request) {
        (true, _) => Ok(real),
        (false, true) => Err(FsError::AlreadyExists {
            path: path.to_owned(),
        }),
        (false, false) => Err(FsError::NotFound {
            path: path.to_owned(),
        }),
    }
}

fn mkdirs(fs: &LocalFs, path: &str, permission: Option<u32>) -> Result<(), FsError> {
    let mode = permission.unwrap_or(DEFAULT_DIR_PERMISSION);
    let relative = fs.relative(path)?;
    ensure_dirs(fs, path, &relative, mode, mode | 0o300, true).map(drop)
}

fn rename(fs: &LocalFs, src: &str, dst: &str) -> Result<(), FsError> {
    let from = fs.resolve(src)?;
    if from == fs.real_root {
        return Err(root_refused(src, "renamed"));
    }
    // The source's absence first, as HDFS reports it.
    std::fs::symlink_metadata(&from).map_err(|e| io_error(src, e))?;
    let to = fs.resolve(dst)?;
    rename_no_replace(&from, &to).map_err(|e| {
        if errno_is(&e, &[Errno::EEXIST, Errno::ENOTEMPTY]) {
            FsError::AlreadyExists {
                path: dst.to_owned(),
            }
        } else {
            io_error(src, e)
        }
    })?;
    let (from_dir, to_dir) = (from.parent(), to.parent());
    if let Some(dir) = to_dir {
        sync_dir(dst, dir)?;
    }
    if let Some(dir) = from_dir.filter(|d| Some(*d) != to_dir) {
        sync_dir(src, dir)?;
    }
    Ok(())
}

fn delete(fs: &LocalFs, path: &str, recursive: bool) -> Result<bool, FsError> {
    let local = match fs.resolve(path) {
        Ok(local) => local,
        Err(FsError::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    if local == fs.real_root {
        return Err(root_refused(path, "deleted"));
    }
    let meta = match std::fs::symlink_metadata(&local) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_error(path, e)),
    };
    // `remove_dir_all` does not follow symlinks inside the tree; a symlink itself is
    // not a directory here, so only the link is removed.
    let removed = match (meta.is_dir(), recursive) {
        (true, true) => std::fs::remove_dir_all(&local),
        (true, false) => std::fs::remove_dir(&local),
        (false, _) => std::fs::remove_file(&local),
    };
    match removed {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_error(path, e)),
    }
    if let Some(dir) = local.parent() {
        sync_dir(path, dir)?;
    }
    Ok(true)
}

fn set_permission(fs: &LocalFs, path: &str, permission: u32) -> Result<(), FsError> {
    let local = fs.resolve(path)?;
    let meta = std::fs::symlink_metadata(&local).map_err(|e| io_error(path, e))?;
    if meta.file_type().is_symlink() {
        return Err(invalid_input(
            path,
            "is a symbolic link, which is not followed".to_owned(),
        ));
    }
    std::fs::set_permissions(&local, Permissions::from_mode(permission & 0o7777))
        .map_err(|e| io_error(path, e))
}

fn set_owner(
    fs: &LocalFs,
    path: &str,
    owner: Option<&str>,
    group: Option<&str>,
) -> Result<(), FsError> {
    if owner.is_none() && group.is_none() {
        return Err(invalid_input(
            path,
            "neither owner nor group given".to_owned(),
        ));
    }
    let uid = owner.map(|name| user_id(path, name)).transpose()?;
    let gid = group.map(|name| group_id(path, name)).transpose()?;
    let local = fs.resolve(path)?;
    std::os::unix::fs::lchown(&local, uid, gid).map_err(|e| io_error(path, e))
}

/// A user name (or numeric id) to its uid.
fn user_id(path: &str, name: &str) -> Result<u32, FsError> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(user)) => Ok(user.uid.as_raw()),
        Ok(None) => name
            .parse()
            .map_err(|_| invalid_input(path, format!("no user named '{name}' on this host"))),
        Err(e) => Err(io_error(path, io::Error::from(e))),
    }
}

/// A group name (or numeric id) to its gid.
fn group_id(path: &str, name: &str) -> Result<u32, FsError> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => name
            .parse()
            .map_err(|_| invalid_input(path, format!("no group named '{name}' on this host"))),
        Err(e) => Err(io_error(path, io::Error::from(e))),
    }
}

#[cfg(test)]
mod tests;
