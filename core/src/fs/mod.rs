//! Filesystem clients: the read trait [`FileSystem`] the scanner lists directories through
//! and the merge agent reads files through, the write trait (`write::FileSystemWrite`, the
//! `write` feature) the agent changes files through, and their two backends.
//!
//! * [`webhdfs`] talks to HDFS NameNodes over the WebHDFS REST API (HA failover, paging,
//!   retries, one concurrency bound per cluster; `OPEN` and `CREATE` through the DataNode
//!   the NameNode redirects to; `rename2` semantics for renames).
//! * [`local`] reads and changes a local directory tree for `file:` warehouses (demo, tests,
//!   small single-node installs), confined to its root and crash-safe.
//!
//! Paths handed to a [`FileSystem`] are absolute, *decoded* paths (`/user/hive/warehouse/a.db/t`),
//! exactly as Hadoop's `Path.toString()` stores them in the MetaStore minus scheme and
//! authority. Turning a MetaStore `LOCATION` URI into such a path is [`resolve_location`]'s job;
//! percent-encoding for the wire is the backend's job.

pub mod factory;
pub mod local;
pub mod webhdfs;
#[cfg(feature = "write")]
pub mod write;

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

/// What kind of entry a [`FileStatus`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link (HDFS symlinks are disabled on almost every cluster; never followed).
    Symlink,
}

/// One directory entry, the subset of WebHDFS `FileStatus` fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatus {
    /// Name relative to the listed directory (`pathSuffix`); empty for a status of the path itself.
    pub name: String,
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Length in bytes (0 for directories).
    pub length: u64,
    /// Modification time, milliseconds since the Unix epoch.
    pub modification_time_ms: i64,
    /// Access time, milliseconds since the Unix epoch; 0 when the NameNode does not track it
    /// (`dfs.namenode.accesstime.precision = 0`) and for directories.
    pub access_time_ms: i64,
    /// Permission bits (e.g. `0o755`, `0o1777`).
    pub permission: u32,
    /// Owner user name.
    pub owner: String,
    /// Owner group name.
    pub group: String,
}

impl FileStatus {
    /// Hive (FileUtils.HIDDEN_FILES_PATH_FILTER) ignores names starting with `.` or `_`:
    /// `_SUCCESS`, `_temporary`, `.hive-staging_*`, `.crc` files and our own staging dirs.
    pub fn is_hidden(&self) -> bool {
        is_hidden_name(&self.name)
    }
}

/// One directory entry as a listing hands it to an [`EntrySink`]: the fields counting needs,
/// the name borrowed from the listing's response (no allocation per entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// Name relative to the listed directory (`pathSuffix`); empty for a status of the path itself.
    pub name: &'a str,
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Length in bytes (0 for directories).
    pub length: u64,
    /// Modification time, milliseconds since the Unix epoch.
    pub modification_time_ms: i64,
    /// Access time, milliseconds since the Unix epoch (0 when not tracked).
    pub access_time_ms: i64,
}

impl EntryRef<'_> {
    /// See [`FileStatus::is_hidden`].
    pub fn is_hidden(&self) -> bool {
        is_hidden_name(self.name)
    }
}

impl<'a> From<&'a FileStatus> for EntryRef<'a> {
    fn from(s: &'a FileStatus) -> Self {
        Self {
            name: &s.name,
            kind: s.kind,
            length: s.length,
            modification_time_ms: s.modification_time_ms,
            access_time_ms: s.access_time_ms,
        }
    }
}

/// See [`FileStatus::is_hidden`].
pub fn is_hidden_name(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

/// Errors of filesystem operations, named for what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path does not exist (`FileNotFoundException`, ENOENT).
    #[error("path does not exist: {path}")]
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// Access denied (`AccessControlException`, EACCES).
    #[error("permission denied on {path}: {message}")]
    PermissionDenied {
        /// The path asked for.
        path: String,
        /// Server or OS message.
        message: String,
    },
    /// Every configured NameNode answered `StandbyException` or could not be reached.
    #[error("no active NameNode among {tried} configured: {last}")]
    NoActiveNameNode {
        /// How many NameNodes were tried.
        tried: usize,
        /// The last error seen.
        last: String,
    },
    /// Every NameNode failed recently and the client is backing off: the request was not
    /// sent (WebHDFS circuit breaker, see `webhdfs`'s `circuit` module). Retryable, but not
    /// now: a caller with many requests to make (a scan) should stop making them until
    /// `retry_in` has passed, as every one of them fails the same way.
    #[error(
        "not sent: every NameNode failed recently, backing off for {retry_in:?} (last: {last})"
    )]
    BackingOff {
        /// Until the next request is let through to probe the NameNodes.
        retry_in: std::time::Duration,
        /// What the last failed round said.
        last: String,
    },
    /// The server answered with a `RemoteException` (or a non-JSON error body).
    #[error("{op} {path}: HTTP {status} {exception}: {message}")]
    Remote {
        /// WebHDFS operation.
        op: &'static str,
        /// The path asked for.
        path: String,
        /// HTTP status code.
        status: u16,
        /// Exception class simple name (`IllegalArgumentException`, `RetriableException`...).
        exception: String,
        /// Exception message.
        message: String,
    },
    /// The request did not complete in time.
    #[error("{op} {path}: timed out")]
    Timeout {
        /// WebHDFS operation.
        op: &'static str,
        /// The path asked for.
        path: String,
    },
    /// Could not connect, or the connection broke.
    #[error("{op} {path}: connection failed: {message}")]
    Connection {
        /// WebHDFS operation.
        op: &'static str,
        /// The path asked for.
        path: String,
        /// Transport error text.
        message: String,
    },
    /// The server answered something that is not a valid WebHDFS response.
    #[error("{op} {path}: invalid response: {message}")]
    InvalidResponse {
        /// WebHDFS operation.
        op: &'static str,
        /// The path asked for.
        path: String,
        /// What was wrong with it.
        message: String,
    },
    /// A local I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The path asked for.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The target exists (`FileAlreadyExistsException`, EEXIST): `create` without overwrite,
    /// or `rename` onto an existing path.
    #[error("path already exists: {path}")]
    AlreadyExists {
        /// The path that exists.
        path: String,
    },
    /// The backend cannot do this operation.
    #[error("{op} is not supported by this filesystem")]
    Unsupported {
        /// The operation.
        op: &'static str,
    },
    /// The path is outside what this backend may touch (e.g. outside the local root).
    #[error("path {path} is outside the configured root {root}")]
    OutsideRoot {
        /// The path asked for.
        path: String,
        /// The configured root.
        root: String,
    },
    /// This client could not authenticate (Kerberos login or service ticket): the same for
    /// every endpoint, so no failover; `retryable` when waiting may help (KDC unreachable).
    #[error("{op} {path}: {message}")]
    Authentication {
        /// The operation.
        op: &'static str,
        /// The path asked for.
        path: String,
        /// The cause, named.
        message: String,
        /// Whether waiting may help.
        retryable: bool,
    },
}

impl FsError {
    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. }
            | Self::Connection { .. }
            | Self::NoActiveNameNode { .. }
            | Self::BackingOff { .. } => true,
            Self::Authentication { retryable, .. } => *retryable,
            Self::Remote {
                status, exception, ..
            } => {
                *status >= 500
                    || exception == "RetriableException"
                    || exception == "SafeModeException"
                    || exception == "StandbyException"
            }
            Self::NotFound { .. }
            | Self::AlreadyExists { .. }
            | Self::Unsupported { .. }
            | Self::PermissionDenied { .. }
            | Self::InvalidResponse { .. }
            | Self::Io { .. }
            | Self::OutsideRoot { .. } => false,
        }
    }

    /// A short, bounded label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::AlreadyExists { .. } => "already_exists",
            Self::Unsupported { .. } => "unsupported",
            Self::PermissionDenied { .. } => "permission_denied",
            Self::NoActiveNameNode { .. } => "no_active_namenode",
            Self::BackingOff { .. } => "backing_off",
            Self::Remote { .. } => "remote_exception",
            Self::Timeout { .. } => "timeout",
            Self::Connection { .. } => "connection",
            Self::InvalidResponse { .. } => "invalid_response",
            Self::Io { .. } => "io",
            Self::OutsideRoot { .. } => "outside_root",
            Self::Authentication { .. } => "authentication",
        }
    }
}

/// Result of probing one endpoint of a filesystem (`check` subcommand, per-scan health).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointProbe {
    /// The endpoint (NameNode base URL, or the local root).
    pub endpoint: String,
    /// What it said.
    pub state: EndpointState,
}

/// Health of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointState {
    /// Reachable and serving reads.
    Active,
    /// Reachable but in standby (HA).
    Standby,
    /// Not usable; the text says why.
    Down(String),
}

/// A directory listing sink: called once per page of entries, in listing order.
pub type PageSink<'a> = dyn FnMut(Vec<FileStatus>) + Send + 'a;

/// A directory listing sink of borrowed entries: called once per entry, in listing order.
pub type EntrySink<'a> = dyn for<'e> FnMut(EntryRef<'e>) + Send + 'a;

/// The read side of a filesystem: listing, status, probing and reading file contents.
#[async_trait]
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Lists the direct children of the directory `path`, handing them to `sink` page by page
    /// (so a directory of a million files never sits in memory at once). Listing a file yields
    /// that file's own status with an empty name, as WebHDFS LISTSTATUS does.
    async fn list_status(&self, path: &str, sink: &mut PageSink<'_>) -> Result<(), FsError>;

    /// Lists like [`list_status`](Self::list_status), handing each entry to `sink` as an
    /// [`EntryRef`] borrowed from the response: for callers that only count or pick a few
    /// entries (the scan), so that no [`FileStatus`] (three strings) is built per entry. The
    /// entries, their order and the errors are those of `list_status`. Default: through
    /// `list_status`; a wrapper should forward it to the client it wraps.
    async fn list_entries(&self, path: &str, sink: &mut EntrySink<'_>) -> Result<(), FsError> {
        self.list_status(path, &mut |page| {
            for status in &page {
                sink(EntryRef::from(status));
            }
        })
        .await
    }

    /// The status of `path` itself (its `name` is empty).
    async fn file_status(&self, path: &str) -> Result<FileStatus, FsError>;

    /// Probes every endpoint once (cheap request) and reports each one's state.
    async fn probe(&self) -> Vec<EndpointProbe>;

    /// Reads up to `length` bytes of the file `path` starting at `offset` (WebHDFS `OPEN`
    /// with `offset` and `length`). Fewer bytes only at the end of the file; an empty result
    /// at `offset == length of the file`; an offset past the end is an error. A directory is
    /// [`FsError::NotFound`] (HDFS: "Path is not a file").
    async fn read_range(&self, path: &str, offset: u64, length: u64) -> Result<Bytes, FsError>;

    /// The shutdown hook: gives back what the client holds on the servers (WebHDFS: cancels
    /// the delegation token it obtained). Best effort, logged; the client stays usable (a
    /// later request fetches a new token). Default: nothing to do.
    async fn close(&self) {}
}

/// Calls [`FileSystem::close`] on every cluster's client at once, waiting at most `timeout`
/// for all of them (a dead NameNode must not hold up shutdown; the token then expires on its
/// own). `clients` are `(cluster, client)` pairs. Returns whether all closed in time.
pub async fn close_all<F: FileSystem + ?Sized>(
    clients: &[(String, std::sync::Arc<F>)],
    timeout: std::time::Duration,
) -> bool {
    let closing = futures::future::join_all(clients.iter().map(|(_, fs)| fs.close()));
    if tokio::time::timeout(timeout, closing).await.is_ok() {
        return true;
    }
    let clusters: Vec<&str> = clients.iter().map(|(c, _)| c.as_str()).collect();
    tracing::warn!(
        ?clusters,
        ?timeout,
        "Filesystem clients did not close in time (delegation tokens expire on their own)."
    );
    false
}

/// Where a MetaStore `LOCATION` points, relative to one cluster's storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedLocation {
    /// A path this cluster's [`FileSystem`] can list.
    Path(String),
    /// Another filesystem (`s3a`, `abfs`, `ofs`, `gs`...): not scanned, counted.
    Foreign {
        /// The URI scheme.
        scheme: String,
    },
    /// An `hdfs://` URI of another nameservice than the configured ones: not scanned, counted.
    OtherCluster {
        /// The URI authority.
        authority: String,
    },
    /// Not a usable location (empty, relative, unparsable).
    Invalid,
}

/// What a cluster's storage accepts as its own locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationScheme {
    /// `hdfs://<authority>/path` (and scheme-less absolute paths). An empty `authorities`
    /// list accepts every authority.
    Hdfs {
        /// Accepted nameservices / `host:port` authorities.
        authorities: Vec<String>,
    },
    /// `file:/path` and `file:///path` (and scheme-less absolute paths).
    Local,
}

/// Turns a MetaStore `LOCATION` into a path for this cluster's filesystem.
///
/// `LOCATION` holds Hadoop's `Path.toString()`, which is *not* percent-encoded: a directory
/// literally named `a%3Ab` is stored as `a%3Ab`, and one named `a b` as `a b`. So nothing is
/// decoded here; only scheme and authority are split off.
pub fn resolve_location(location: &str, scheme: &LocationScheme) -> ResolvedLocation {
    let location = location.trim();
    if location.is_empty() {
        return ResolvedLocation::Invalid;
    }
    if location.starts_with('/') {
        return ResolvedLocation::Path(normalize_path(location));
    }
    let Some((uri_scheme, rest)) = location.split_once(':') else {
        return ResolvedLocation::Invalid;
    };
    let uri_scheme_lower = uri_scheme.to_ascii_lowercase();
    let (authority, path) = if let Some(after) = rest.strip_prefix("//") {
        match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, "/"),
        }
    } else {
        ("", rest)
    };
    if !path.starts_with('/') {
        return ResolvedLocation::Invalid;
    }
    match (scheme, uri_scheme_lower.as_str()) {
        (LocationScheme::Hdfs { authorities }, "hdfs") => {
            if authorities.is_empty()
                || authorities
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(authority))
            {
                ResolvedLocation::Path(normalize_path(path))
            } else {
                ResolvedLocation::OtherCluster {
                    authority: authority.to_owned(),
                }
            }
        }
        (LocationScheme::Local, "file") if authority.is_empty() || authority == "localhost" => {
            ResolvedLocation::Path(normalize_path(path))
        }
        (LocationScheme::Local, "file") => ResolvedLocation::OtherCluster {
            authority: authority.to_owned(),
        },
        _ => ResolvedLocation::Foreign {
            scheme: uri_scheme_lower,
        },
    }
}

/// Collapses repeated slashes and strips a trailing slash (but keeps `/`).
pub fn normalize_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Joins a child name onto a directory path.
pub fn join_path(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The parent directory of a normalized absolute path (`/` for `/` and for top-level entries).
pub fn parent_path(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client whose `close` never finishes (a NameNode that accepted the connection and
    /// went silent), or counts its calls.
    #[derive(Debug, Default)]
    struct Closing {
        hangs: bool,
        closed: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl FileSystem for Closing {
        async fn list_status(&self, _: &str, _: &mut PageSink<'_>) -> Result<(), FsError> {
            Ok(())
        }
        async fn file_status(&self, path: &str) -> Result<FileStatus, FsError> {
            Err(FsError::NotFound {
                path: path.to_owned(),
            })
        }
        async fn probe(&self) -> Vec<EndpointProbe> {
            Vec::new()
        }
        async fn read_range(&self, _: &str, _: u64, _: u64) -> Result<Bytes, FsError> {
            Ok(Bytes::new())
        }
        async fn close(&self) {
            if self.hangs {
                std::future::pending::<()>().await;
            }
            self.closed
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn close_all_closes_each_client_once_and_never_hangs() {
        use std::sync::Arc;
        use std::time::{Duration, Instant};
        let a = Arc::new(Closing::default());
        let b = Arc::new(Closing::default());
        let clients = [
            ("a".to_owned(), Arc::clone(&a)),
            ("b".to_owned(), Arc::clone(&b)),
        ];
        assert!(close_all(&clients, Duration::from_secs(5)).await);
        assert_eq!(a.closed.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(b.closed.load(std::sync::atomic::Ordering::SeqCst), 1);

        let hung: Arc<dyn FileSystem> = Arc::new(Closing {
            hangs: true,
            ..Closing::default()
        });
        let fine: Arc<dyn FileSystem> = Arc::clone(&a) as Arc<dyn FileSystem>;
        let started = Instant::now();
        let closed = close_all(
            &[("dead".to_owned(), hung), ("ok".to_owned(), fine)],
            Duration::from_millis(100),
        )
        .await;
        assert!(!closed);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // The live client was closed meanwhile (concurrently, not after the dead one).
        assert_eq!(a.closed.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    fn hdfs(auth: &[&str]) -> LocationScheme {
        LocationScheme::Hdfs {
            authorities: auth.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn resolves_hdfs_locations_of_this_cluster_only() {
        let s = hdfs(&["nameservice1"]);
        assert_eq!(
            resolve_location("hdfs://nameservice1/user/hive/warehouse/a.db/t", &s),
            ResolvedLocation::Path("/user/hive/warehouse/a.db/t".into())
        );
        assert_eq!(
            resolve_location("hdfs://other:8020/x", &s),
            ResolvedLocation::OtherCluster {
                authority: "other:8020".into()
            }
        );
        assert_eq!(
            resolve_location("s3a://bucket/x", &s),
            ResolvedLocation::Foreign {
                scheme: "s3a".into()
            }
        );
        assert_eq!(
            resolve_location("hdfs://anything/x/", &hdfs(&[])),
            ResolvedLocation::Path("/x".into())
        );
    }

    #[test]
    fn keeps_literal_percent_and_spaces() {
        assert_eq!(
            resolve_location("hdfs://ns/w/t/ts=2020-01-01 10%3A00", &hdfs(&[])),
            ResolvedLocation::Path("/w/t/ts=2020-01-01 10%3A00".into())
        );
    }

    #[test]
    fn resolves_file_locations() {
        let s = LocationScheme::Local;
        assert_eq!(
            resolve_location("file:/tmp/w/t", &s),
            ResolvedLocation::Path("/tmp/w/t".into())
        );
        assert_eq!(
            resolve_location("file:///tmp/w/t", &s),
            ResolvedLocation::Path("/tmp/w/t".into())
        );
        assert_eq!(
            resolve_location("hdfs://ns/x", &s),
            ResolvedLocation::Foreign {
                scheme: "hdfs".into()
            }
        );
        assert_eq!(resolve_location("", &s), ResolvedLocation::Invalid);
        assert_eq!(
            resolve_location("relative/x", &s),
            ResolvedLocation::Invalid
        );
    }

    #[test]
    fn path_helpers() {
        assert_eq!(normalize_path("//a//b/"), "/a/b");
        assert_eq!(parent_path("/a/b"), "/a");
        assert_eq!(parent_path("/a"), "/");
        assert_eq!(join_path("/a", "b"), "/a/b");
        assert_eq!(join_path("/", "b"), "/b");
    }
}
