//! The write side of the filesystem clients: the operations the merge agent changes a
//! warehouse with. Compiled only with the `write` feature, so a read-only binary (the
//! exporter) cannot call them and does not ship them.
//!
//! Both backends implement [`FileSystemWrite`]: `webhdfs` (`CREATE` through the DataNode,
//! `MKDIRS`, `RENAME` with `rename2` semantics, `DELETE`, `SETPERMISSION`, `SETOWNER`) and
//! `local` (crash-safe writes confined to the root).

use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;

use super::{FileSystem, FsError};

/// The mutating operations, on top of the read side.
#[async_trait]
pub trait FileSystemWrite: FileSystem {
    /// Creates the file `path` with the contents of the local file `local` (WebHDFS two-step
    /// `CREATE`). `overwrite = false` fails with [`FsError::AlreadyExists`] when `path`
    /// exists, atomically (this is how lock files are taken); an existing directory at
    /// `path` is [`FsError::AlreadyExists`] even with `overwrite`. `permission`: octal bits,
    /// or the server's default (0644). The parent directory is created when missing. The
    /// backend may move `local` into place instead of copying it: the caller must not use
    /// it afterwards.
    ///
    /// A backend that repeats a request whose answer was lost (WebHDFS) may answer
    /// [`FsError::AlreadyExists`] to an `overwrite = false` create that did create the file:
    /// a caller taking a lock this way reads the file back to see whose it is.
    async fn create_from_local(
        &self,
        path: &str,
        local: &Path,
        overwrite: bool,
        permission: Option<u32>,
    ) -> Result<(), FsError>;

    /// Creates the file `path` holding `data`; otherwise as [`FileSystemWrite::create_from_local`].
    async fn create(
        &self,
        path: &str,
        data: Bytes,
        overwrite: bool,
        permission: Option<u32>,
    ) -> Result<(), FsError>;

    /// Creates the directory `path` and missing parents (`MKDIRS`); succeeds when it exists
    /// (its permission then unchanged). `permission`: octal bits, or the server's default
    /// (0755).
    async fn mkdirs(&self, path: &str, permission: Option<u32>) -> Result<(), FsError>;

    /// Renames `src` to `dst` atomically with HDFS `rename2` semantics (`renameoptions=NONE`):
    /// fails with [`FsError::AlreadyExists`] when `dst` exists — it never moves `src` *into*
    /// an existing directory, as the old `rename` does — and with [`FsError::NotFound`] when
    /// `src` or `dst`'s parent does not exist.
    ///
    /// Not idempotent: when a backend repeats a rename whose first attempt succeeded but
    /// whose answer was lost, the repetition fails with [`FsError::NotFound`] for `src`. A
    /// caller that gets `NotFound` checks whether `dst` holds what it renamed.
    async fn rename(&self, src: &str, dst: &str) -> Result<(), FsError>;

    /// Deletes `path` (a non-empty directory only with `recursive`; a symlink, never what it
    /// points to). `Ok(false)` when it did not exist, which is also what a repetition of a
    /// delete that succeeded says.
    async fn delete(&self, path: &str, recursive: bool) -> Result<bool, FsError>;

    /// Sets the permission bits of `path` (`SETPERMISSION`).
    async fn set_permission(&self, path: &str, permission: u32) -> Result<(), FsError>;

    /// Sets the owner and/or group of `path` (`SETOWNER`); `None` leaves that one alone, and
    /// at least one must be given.
    async fn set_owner(
        &self,
        path: &str,
        owner: Option<&str>,
        group: Option<&str>,
    ) -> Result<(), FsError>;
}
