//! Local `file:` backend: lists, reads and changes a directory tree on this machine for
//! `file:` warehouses (demo, tests, small single-node installs).
//!
//! Owns: confining every path to the configured root (lexical `..` resolution, then the
//! parent directory's real path must stay under the root, so a symlink inside the root
//! cannot lead outside it), `lstat`-based entries (symlinks are reported, never followed),
//! and paging. Directory reads run on the blocking pool, one task per listing, and stream
//! pages of at most [`PAGE_SIZE`] entries back through a small channel. Entries come in
//! directory order (not sorted), and hidden names are not filtered here.
//!
//! Reads of file contents never follow a symlink. The mutating operations (the `write`
//! module, compiled with the `write` feature) keep the same confinement, create missing parents one level at a time inside the root, and
//! are crash-safe for a commit protocol: file contents reach their final name complete and
//! fsynced (hidden temporary file or the caller's file, then a hard link or rename), renames
//! never replace their destination (`renameat2(RENAME_NOREPLACE)`), and directories are
//! fsynced after their entries change. Owners are reported as numeric ids and set by name or
//! numeric id.

use std::fs::{Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use tokio::sync::mpsc;

use super::{EndpointProbe, EndpointState, EntryKind, FileStatus, FileSystem, FsError, PageSink};

pub mod roots;
#[cfg(feature = "write")]
mod write;

/// Most entries handed to the sink at once.
pub const PAGE_SIZE: usize = 1000;

/// A filesystem rooted at a local directory. Paths are absolute local paths that must lie
/// under the root.
#[derive(Debug, Clone)]
pub struct LocalFs {
    /// The root as configured, lexically normalized (paths from the MetaStore use this
    /// spelling).
    root: PathBuf,
    /// The root with symlinks resolved (e.g. `/tmp` → `/private/tmp`), if it exists.
    real_root: PathBuf,
}

impl LocalFs {
    /// Serves paths under `root`. A root that does not exist yet is accepted; requests then
    /// fail with `NotFound` and [`FileSystem::probe`] reports it down.
    pub fn new(root: PathBuf) -> Self {
        let root = normalize(&root).unwrap_or(root);
        let real_root = std::fs::canonicalize(&root).unwrap_or_else(|_| root.clone());
        Self { root, real_root }
    }

    /// The configured root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn outside(&self, path: &str) -> FsError {
        FsError::OutsideRoot {
            path: path.to_owned(),
            root: self.root.display().to_string(),
        }
    }

    /// The request path relative to the root, lexically (`..` resolved); empty for the root.
    fn relative(&self, path: &str) -> Result<PathBuf, FsError> {
        let lexical = normalize(Path::new(path)).ok_or_else(|| self.outside(path))?;
        lexical
            .strip_prefix(&self.root)
            .or_else(|_| lexical.strip_prefix(&self.real_root))
            .map(Path::to_path_buf)
            .map_err(|_| self.outside(path))
    }

    /// Maps a request path to the local path to `lstat`: inside the root, with the parent
    /// directory's symlinks resolved and still inside the root. The last component is kept
    /// as is, so a symlink there is reported rather than followed.
    fn resolve(&self, path: &str) -> Result<PathBuf, FsError> {
        let relative = self.relative(path)?;
        let (Some(parent), Some(name)) = (relative.parent(), relative.file_name()) else {
            return Ok(self.real_root.clone());
        };
        let real_parent =
            std::fs::canonicalize(self.real_root.join(parent)).map_err(|e| io_error(path, e))?;
        if !real_parent.starts_with(&self.real_root) {
            return Err(self.outside(path));
        }
        Ok(real_parent.join(name))
    }

    /// Runs `f` on the blocking pool.
    async fn blocking<T, F>(&self, path: &str, f: F) -> Result<T, FsError>
    where
        T: Send + 'static,
        F: FnOnce(&LocalFs) -> Result<T, FsError> + Send + 'static,
    {
        let fs = self.clone();
        tokio::task::spawn_blocking(move || f(&fs))
            .await
            .map_err(|e| FsError::Io {
                path: path.to_owned(),
                source: io::Error::other(e.to_string()),
            })?
    }
}

#[async_trait]
impl FileSystem for LocalFs {
    async fn list_status(&self, path: &str, sink: &mut PageSink<'_>) -> Result<(), FsError> {
        let (tx, mut rx) = mpsc::channel(2);
        let fs = self.clone();
        let request = path.to_owned();
        let producer = tokio::task::spawn_blocking(move || list_blocking(&fs, &request, &tx));
        while let Some(message) = rx.recv().await {
            sink(message?);
        }
        producer.await.map_err(|e| FsError::Io {
            path: path.to_owned(),
            source: io::Error::other(e.to_string()),
        })
    }

    async fn file_status(&self, path: &str) -> Result<FileStatus, FsError> {
        let fs = self.clone();
        let request = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let local = fs.resolve(&request)?;
            let meta = std::fs::symlink_metadata(&local).map_err(|e| io_error(&request, e))?;
            Ok(status(String::new(), &meta))
        })
        .await
        .map_err(|e| FsError::Io {
            path: path.to_owned(),
            source: io::Error::other(e.to_string()),
        })?
    }

    /// Active when the root is a directory this process can read.
    async fn probe(&self) -> Vec<EndpointProbe> {
        let root = self.real_root.clone();
        let state = tokio::task::spawn_blocking(move || {
            match std::fs::metadata(&root).and_then(|m| {
                if m.is_dir() {
                    std::fs::read_dir(&root).map(drop)
                } else {
                    Err(io::Error::other("not a directory"))
                }
            }) {
                Ok(()) => EndpointState::Active,
                Err(e) => EndpointState::Down(e.to_string()),
            }
        })
        .await
        .unwrap_or_else(|e| EndpointState::Down(e.to_string()));
        vec![EndpointProbe {
            endpoint: self.root.display().to_string(),
            state,
        }]
    }

    /// Opens the file without following a symlink (and without blocking on a FIFO), seeks and
    /// reads. A directory is [`FsError::NotFound`] (as HDFS says "Path is not a file"); an
    /// offset past the end is an error.
    async fn read_range(&self, path: &str, offset: u64, length: u64) -> Result<Bytes, FsError> {
        let request = path.to_owned();
        self.blocking(path, move |fs| read_range(fs, &request, offset, length))
            .await
    }
}

/// Runs on the blocking pool: reads the directory and sends pages (or one error) to `tx`.
/// Stops early when the receiver is gone.
fn list_blocking(fs: &LocalFs, path: &str, tx: &mpsc::Sender<Result<Vec<FileStatus>, FsError>>) {
    let result = (|| {
        let local = fs.resolve(path)?;
        let meta = std::fs::symlink_metadata(&local).map_err(|e| io_error(path, e))?;
        if !meta.is_dir() {
            // Like WebHDFS LISTSTATUS on a file (or a symlink, which is not followed).
            let _ = tx.blocking_send(Ok(vec![status(String::new(), &meta)]));
            return Ok(());
        }
        let mut page = Vec::with_capacity(PAGE_SIZE);
        for entry in std::fs::read_dir(&local).map_err(|e| io_error(path, e))? {
            let entry = entry.map_err(|e| io_error(path, e))?;
            // `DirEntry::metadata` does not traverse symlinks on Unix (fstatat with
            // AT_SYMLINK_NOFOLLOW).
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Removed since readdir (e.g. a job's `_temporary` cleanup): skip it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(path, e)),
            };
            // Non-UTF-8 names cannot be expressed as our paths; they are shown lossily.
            let name = entry.file_name().to_string_lossy().into_owned();
            page.push(status(name, &meta));
            if page.len() == PAGE_SIZE {
                let full = std::mem::replace(&mut page, Vec::with_capacity(PAGE_SIZE));
                if tx.blocking_send(Ok(full)).is_err() {
                    return Ok(());
                }
            }
        }
        if !page.is_empty() {
            let _ = tx.blocking_send(Ok(page));
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = tx.blocking_send(Err(e));
    }
}

/// Lexically normalizes an absolute path (`.`, `..`, repeated slashes); `None` if relative.
/// `..` above `/` stays at `/`, as in a shell.
fn normalize(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

fn io_error(path: &str, e: io::Error) -> FsError {
    match e.kind() {
        // EEXIST; EISDIR when a file would replace a directory (HDFS: "already exists as a
        // directory").
        io::ErrorKind::AlreadyExists | io::ErrorKind::IsADirectory => FsError::AlreadyExists {
            path: path.to_owned(),
        },
        // ENOTDIR: a component is a file, which HDFS reports as FileNotFoundException.
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => FsError::NotFound {
            path: path.to_owned(),
        },
        io::ErrorKind::PermissionDenied => FsError::PermissionDenied {
            path: path.to_owned(),
            message: e.to_string(),
        },
        _ => FsError::Io {
            path: path.to_owned(),
            source: e,
        },
    }
}

/// A [`FileStatus`] from `lstat` metadata, with WebHDFS conventions (length and access
/// time 0 for directories).
fn status(name: String, meta: &Metadata) -> FileStatus {
    let file_type = meta.file_type();
    let kind = if file_type.is_symlink() {
        EntryKind::Symlink
    } else if file_type.is_dir() {
        EntryKind::Directory
    } else {
        EntryKind::File
    };
    let is_dir = kind == EntryKind::Directory;
    let platform = platform_fields(meta);
    FileStatus {
        name,
        kind,
        length: if is_dir { 0 } else { meta.len() },
        modification_time_ms: platform.mtime_ms,
        access_time_ms: if is_dir { 0 } else { platform.atime_ms },
        permission: platform.permission,
        owner: platform.owner,
        group: platform.group,
    }
}

struct PlatformFields {
    mtime_ms: i64,
    atime_ms: i64,
    permission: u32,
    owner: String,
    group: String,
}

#[cfg(unix)]
fn platform_fields(meta: &Metadata) -> PlatformFields {
    use std::os::unix::fs::MetadataExt;
    let ms = |secs: i64, nanos: i64| secs.saturating_mul(1000).saturating_add(nanos / 1_000_000);
    PlatformFields {
        mtime_ms: ms(meta.mtime(), meta.mtime_nsec()),
        atime_ms: ms(meta.atime(), meta.atime_nsec()),
        permission: meta.mode() & 0o7777,
        // Numeric ids: resolving names needs NSS calls that are not worth a dependency here.
        owner: meta.uid().to_string(),
        group: meta.gid().to_string(),
    }
}

#[cfg(not(unix))]
fn platform_fields(meta: &Metadata) -> PlatformFields {
    let ms = |t: io::Result<std::time::SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    };
    let permission = match (meta.is_dir(), meta.permissions().readonly()) {
        (true, _) => 0o755,
        (false, true) => 0o444,
        (false, false) => 0o644,
    };
    PlatformFields {
        mtime_ms: ms(meta.modified()),
        atime_ms: ms(meta.accessed()),
        permission,
        owner: String::new(),
        group: String::new(),
    }
}

fn read_range(fs: &LocalFs, path: &str, offset: u64, length: u64) -> Result<Bytes, FsError> {
    let local = fs.resolve(path)?;
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(&local)
        .map_err(|e| {
            if errno_is(&e, &[Errno::ELOOP]) {
                invalid_input(path, "is a symbolic link, which is not followed".to_owned())
            } else {
                io_error(path, e)
            }
        })?;
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if meta.is_dir() {
        return Err(FsError::NotFound {
            path: path.to_owned(),
        });
    }
    if !meta.is_file() {
        return Err(invalid_input(path, "not a regular file".to_owned()));
    }
    let len = meta.len();
    if offset > len {
        return Err(invalid_input(
            path,
            format!("offset {offset} is past the end of the file ({len} bytes)"),
        ));
    }
    let want = length.min(len - offset);
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| io_error(path, e))?;
    let mut data = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
    file.take(want)
        .read_to_end(&mut data)
        .map_err(|e| io_error(path, e))?;
    Ok(Bytes::from(data))
}

fn invalid_input(path: &str, message: String) -> FsError {
    FsError::Io {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, message),
    }
}

fn errno_is(e: &io::Error, errnos: &[Errno]) -> bool {
    e.raw_os_error()
        .is_some_and(|code| errnos.iter().any(|&n| n as i32 == code))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    pub(super) fn path_str(p: &Path) -> String {
        p.to_str().unwrap().to_owned()
    }

    pub(super) async fn list_all(
        fs: &LocalFs,
        path: &str,
    ) -> Result<Vec<Vec<FileStatus>>, FsError> {
        let mut pages = Vec::new();
        fs.list_status(path, &mut |page: Vec<FileStatus>| pages.push(page))
            .await?;
        Ok(pages)
    }

    #[tokio::test]
    async fn lists_in_pages_without_filtering_hidden_names() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("t");
        std::fs::create_dir(&table).unwrap();
        for i in 0..2343 {
            std::fs::write(table.join(format!("part-{i:05}")), b"x").unwrap();
        }
        std::fs::write(table.join("_SUCCESS"), b"").unwrap();
        std::fs::create_dir(table.join(".hive-staging_1")).unwrap();
        let fs = LocalFs::new(dir.path().to_owned());

        let pages = list_all(&fs, &path_str(&table)).await.unwrap();
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            [1000, 1000, 345]
        );
        let all: Vec<&FileStatus> = pages.iter().flatten().collect();
        assert!(all.iter().any(|s| s.name == "_SUCCESS" && s.length == 0));
        let staging = all.iter().find(|s| s.name == ".hive-staging_1").unwrap();
        assert_eq!(staging.kind, EntryKind::Directory);
        assert_eq!(staging.access_time_ms, 0);
        let part = all.iter().find(|s| s.name == "part-00042").unwrap();
        assert_eq!(part.kind, EntryKind::File);
        assert_eq!(part.length, 1);
        assert!(part.modification_time_ms > 1_600_000_000_000);
        assert!(!part.owner.is_empty());

        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(list_all(&fs, &path_str(&empty)).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn listing_a_file_yields_its_own_status() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.txt");
        std::fs::write(&file, b"hello").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let fs = LocalFs::new(dir.path().to_owned());

        let pages = list_all(&fs, &path_str(&file)).await.unwrap();
        assert_eq!(pages.len(), 1);
        let st = &pages[0][0];
        assert_eq!(st.name, "");
        assert_eq!(st.kind, EntryKind::File);
        assert_eq!(st.length, 5);
        assert_eq!(st.permission, 0o640);
        assert_eq!(&fs.file_status(&path_str(&file)).await.unwrap(), st);

        let root = fs.file_status(&path_str(dir.path())).await.unwrap();
        assert_eq!(root.kind, EntryKind::Directory);
        assert_eq!(root.length, 0);
    }

    #[tokio::test]
    async fn symlinks_are_reported_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t");
        std::fs::create_dir(&t).unwrap();
        std::fs::write(t.join("data"), b"12345").unwrap();
        symlink(outside.path(), t.join("out")).unwrap();
        symlink(t.join("data"), t.join("alias")).unwrap();
        let fs = LocalFs::new(dir.path().to_owned());

        let pages = list_all(&fs, &path_str(&t)).await.unwrap();
        let mut entries: Vec<(String, EntryKind)> = pages
            .into_iter()
            .flatten()
            .map(|s| (s.name, s.kind))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            entries,
            [
                ("alias".to_owned(), EntryKind::Symlink),
                ("data".to_owned(), EntryKind::File),
                ("out".to_owned(), EntryKind::Symlink),
            ]
        );

        // Listing the link itself reports the link; going through it is outside the root.
        let link = list_all(&fs, &path_str(&t.join("out"))).await.unwrap();
        assert_eq!(link[0][0].kind, EntryKind::Symlink);
        assert_eq!(link[0][0].name, "");
        let err = fs
            .file_status(&path_str(&t.join("out").join("secret")))
            .await
            .unwrap_err();
        assert!(matches!(err, FsError::OutsideRoot { .. }), "{err}");
    }

    #[tokio::test]
    async fn rejects_paths_outside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("t")).unwrap();
        let fs = LocalFs::new(dir.path().join("t"));
        let sibling = path_str(&dir.path().join("t/../other"));
        for path in ["/etc", "relative/x", sibling.as_str(), "/"] {
            let err = list_all(&fs, path).await.unwrap_err();
            assert!(matches!(err, FsError::OutsideRoot { .. }), "{path}: {err}");
            assert!(!err.is_retryable());
        }
        // `..` that stays inside the root is fine.
        let inside = path_str(&dir.path().join("t/x/../"));
        assert!(list_all(&fs, &inside).await.is_ok());
    }

    #[tokio::test]
    async fn maps_missing_and_unreadable_paths() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        let fs = LocalFs::new(dir.path().to_owned());

        for missing in [
            dir.path().join("nope"),
            dir.path().join("nope/deeper"),
            file.join("x"),
        ] {
            let err = list_all(&fs, &path_str(&missing)).await.unwrap_err();
            assert!(matches!(err, FsError::NotFound { .. }), "{err}");
        }

        let locked = dir.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        // Root (CAP_DAC_OVERRIDE) reads it anyway; the mapping is only observable otherwise.
        if std::fs::read_dir(&locked).is_err() {
            let err = list_all(&fs, &path_str(&locked)).await.unwrap_err();
            assert!(matches!(err, FsError::PermissionDenied { .. }), "{err}");
        }
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn maps_io_error_kinds() {
        let kind = |k: io::ErrorKind| io_error("/x", io::Error::from(k)).metric_label();
        assert_eq!(kind(io::ErrorKind::NotFound), "not_found");
        assert_eq!(kind(io::ErrorKind::NotADirectory), "not_found");
        assert_eq!(kind(io::ErrorKind::PermissionDenied), "permission_denied");
        assert_eq!(kind(io::ErrorKind::Interrupted), "io");
    }

    #[tokio::test]
    async fn probes_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let fs = LocalFs::new(dir.path().to_owned());
        let probes = fs.probe().await;
        assert_eq!(probes.len(), 1);
        assert_eq!(probes[0].state, EndpointState::Active);

        let fs = LocalFs::new(dir.path().join("missing"));
        assert!(matches!(fs.probe().await[0].state, EndpointState::Down(_)));
    }

    #[test]
    fn normalizes_lexically() {
        assert_eq!(
            normalize(Path::new("/a//b/./c/../d/")),
            Some(PathBuf::from("/a/b/d"))
        );
        assert_eq!(normalize(Path::new("/../..")), Some(PathBuf::from("/")));
        assert_eq!(normalize(Path::new("a/b")), None);
    }
}
