//! The in-memory HDFS namespace: a tree of directories and files with NameNode semantics.
//!
//! This module owns the directory tree, inode attributes (times, owner, group, permission,
//! replication, block size, fileId) and file content (real bytes or synthetic length-only
//! content), plus the operations the WebHDFS handlers need. Behaviour follows the NameNode
//! sources in `hadoop-hdfs-project/hadoop-hdfs/src/main/java/org/apache/hadoop/hdfs/server/namenode/`:
//!
//! * `FSDirStatAndListingOp.getListing`: children are kept sorted by
//!   `DFSUtilClient.compareBytes`, which is Guava's *signed* lexicographical byte comparator
//!   (so UTF-8 names with bytes >= 0x80 sort before ASCII names); a listing starts at the first
//!   child strictly greater than `startAfter` (`INodeDirectory.nextChild`), holds at most
//!   `dfs.ls.limit` entries, and reports `remainingEntries`; listing a file yields one entry with
//!   an empty `pathSuffix`.
//! * `FSDirMkdirOp`: missing ancestors are created (with implicit `u+wx`); a file at the target
//!   is `FileAlreadyExistsException("Path is not a directory: ...")`.
//! * `FSDirDeleteOp`: a missing path yields `false`; a non-empty directory without `recursive`
//!   is `PathIsNotEmptyDirectoryException`; the root is never deleted (`false`).
//! * `FSDirRenameOp`: the deprecated `rename` returns `false` instead of throwing (missing
//!   source, destination exists, destination parent missing, destination under source) and moves
//!   the source *into* an existing destination directory; `rename2` (`Options.Rename`) throws and
//!   can `OVERWRITE` a file or an empty directory of the same kind.
//! * `FSDirConcatOp`: target and sources must be files in the same directory, sources non-empty,
//!   distinct, not the target, with a preferred block size not above the target's.
//! * `FSDirWriteFileOp` / `FSDirAppendOp`: create with or without overwrite; append to an
//!   existing file.
//!
//! Adding or removing a *direct* child updates the parent's modification time (never the
//! grandparents'); a rename updates both parents. Directories report `accessTime` 0, like HDFS.
//! Reading a file (through the DataNode `OPEN`) updates its access time when it is older than the
//! access-time precision (`dfs.namenode.accesstime.precision`, one hour by default).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// HDFS default block size (`dfs.blocksize`).
pub const DEFAULT_BLOCK_SIZE: u64 = 134_217_728;
/// HDFS default replication (`dfs.replication`).
pub const DEFAULT_REPLICATION: u16 = 3;
/// Default permission of new files (WebHDFS applies no umask).
pub const DEFAULT_FILE_PERMISSION: u16 = 0o644;
/// Default permission of new directories (WebHDFS applies no umask).
pub const DEFAULT_DIR_PERMISSION: u16 = 0o755;
/// The inode id of the root directory in HDFS (`INodeId.ROOT_INODE_ID`).
pub const ROOT_INODE_ID: u64 = 16_385;
/// Default access-time precision of a NameNode: one hour.
pub const DEFAULT_ACCESS_TIME_PRECISION_MS: i64 = 3_600_000;

/// The byte found at `offset` of any synthetic file: deterministic filler.
pub fn synthetic_byte(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// An error as a NameNode reports it: a Java exception mapped to an HTTP status by the
/// WebHDFS `ExceptionHandler` (FileNotFoundException 404, IllegalArgumentException 400,
/// other IOExceptions 403, SecurityException 401, anything else 500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteException {
    /// HTTP status the server answers with.
    pub status: u16,
    /// Short exception name, e.g. `FileNotFoundException`.
    pub exception: String,
    /// Fully qualified Java class name.
    pub java_class_name: String,
    /// Exception message.
    pub message: String,
}

impl fmt::Display for RemoteException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.exception, self.status, self.message)
    }
}

impl std::error::Error for RemoteException {}

/// Known exception names: (short name, Java class, HTTP status).
const KNOWN_EXCEPTIONS: &[(&str, &str, u16)] = &[
    (
        "FileNotFoundException",
        "java.io.FileNotFoundException",
        404,
    ),
    ("IOException", "java.io.IOException", 403),
    (
        "FileAlreadyExistsException",
        "org.apache.hadoop.fs.FileAlreadyExistsException",
        403,
    ),
    (
        "ParentNotDirectoryException",
        "org.apache.hadoop.fs.ParentNotDirectoryException",
        403,
    ),
    (
        "PathIsNotEmptyDirectoryException",
        "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException",
        403,
    ),
    (
        "AccessControlException",
        "org.apache.hadoop.security.AccessControlException",
        403,
    ),
    (
        "StandbyException",
        "org.apache.hadoop.ipc.StandbyException",
        403,
    ),
    (
        "RetriableException",
        "org.apache.hadoop.ipc.RetriableException",
        403,
    ),
    (
        "SafeModeException",
        "org.apache.hadoop.hdfs.server.namenode.SafeModeException",
        403,
    ),
    (
        "InvalidToken",
        "org.apache.hadoop.security.token.SecretManager$InvalidToken",
        403,
    ),
    (
        "IllegalArgumentException",
        "java.lang.IllegalArgumentException",
        400,
    ),
    (
        "HadoopIllegalArgumentException",
        "org.apache.hadoop.HadoopIllegalArgumentException",
        400,
    ),
    (
        "InvalidPathException",
        "org.apache.hadoop.fs.InvalidPathException",
        400,
    ),
    (
        "UnsupportedOperationException",
        "java.lang.UnsupportedOperationException",
        400,
    ),
    ("SecurityException", "java.lang.SecurityException", 401),
    ("RuntimeException", "java.lang.RuntimeException", 500),
    (
        "NullPointerException",
        "java.lang.NullPointerException",
        500,
    ),
];

impl RemoteException {
    /// An exception by short name (`FileNotFoundException`) or Java class name, with the HTTP
    /// status the WebHDFS `ExceptionHandler` would use (403 for unknown names).
    pub fn new(exception: &str, message: impl Into<String>) -> Self {
        let short = exception.rsplit(['.', '$']).next().unwrap_or(exception);
        let (short, class, status) = KNOWN_EXCEPTIONS
            .iter()
            .find(|(s, _, _)| *s == short)
            .map(|&(s, c, st)| (s.to_owned(), c.to_owned(), st))
            .unwrap_or_else(|| {
                let class = if exception.contains('.') {
                    exception.to_owned()
                } else {
                    format!("java.io.{exception}")
                };
                (short.to_owned(), class, 403)
            });
        Self {
            status,
            exception: short,
            java_class_name: class,
            message: message.into(),
        }
    }

    /// Same as [`RemoteException::new`] with an explicit HTTP status.
    pub fn with_status(status: u16, exception: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            ..Self::new(exception, message)
        }
    }

    pub(crate) fn not_found(msg: impl Into<String>) -> Self {
        Self::new("FileNotFoundException", msg)
    }
    pub(crate) fn io(msg: impl Into<String>) -> Self {
        Self::new("IOException", msg)
    }
    pub(crate) fn exists(msg: impl Into<String>) -> Self {
        Self::new("FileAlreadyExistsException", msg)
    }
    pub(crate) fn illegal(msg: impl Into<String>) -> Self {
        Self::new("IllegalArgumentException", msg)
    }
    pub(crate) fn hadoop_illegal(msg: impl Into<String>) -> Self {
        Self::new("HadoopIllegalArgumentException", msg)
    }
    pub(crate) fn parent_not_dir(path: &str) -> Self {
        Self::new(
            "ParentNotDirectoryException",
            format!("{path} (is not a directory)"),
        )
    }

    /// The JSON body: `{"RemoteException":{"exception":..,"javaClassName":..,"message":..}}`.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(96 + self.message.len());
        out.push_str("{\"RemoteException\":{\"exception\":");
        push_json_str(&mut out, &self.exception);
        out.push_str(",\"javaClassName\":");
        push_json_str(&mut out, &self.java_class_name);
        out.push_str(",\"message\":");
        push_json_str(&mut out, &self.message);
        out.push_str("}}");
        out
    }
}

/// Result type of namespace operations.
pub type FsResult<T> = Result<T, RemoteException>;

/// `FILE` or `DIRECTORY` (`type` in the FileStatus JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Directory,
}

/// A snapshot of one inode, as in the WebHDFS FileStatus JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatus {
    /// Name relative to the listed directory; empty for `status`.
    pub path_suffix: String,
    /// File or directory.
    pub file_type: FileType,
    /// Length in bytes (0 for directories).
    pub length: u64,
    /// Owner.
    pub owner: String,
    /// Group.
    pub group: String,
    /// Permission bits (e.g. `0o755`).
    pub permission: u16,
    /// Access time, ms since the epoch (0 for directories).
    pub access_time: i64,
    /// Modification time, ms since the epoch.
    pub modification_time: i64,
    /// Preferred block size (0 for directories).
    pub block_size: u64,
    /// Replication (0 for directories).
    pub replication: u16,
    /// Inode id.
    pub file_id: u64,
    /// Number of children (0 for files).
    pub children_num: u64,
    /// Whether the content is synthetic (length only).
    pub synthetic: bool,
}

/// Result of `GETCONTENTSUMMARY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContentSummary {
    /// Directories, including the queried one.
    pub directory_count: u64,
    /// Files.
    pub file_count: u64,
    /// Logical bytes.
    pub length: u64,
    /// Bytes times replication.
    pub space_consumed: u64,
}

/// What [`Namespace::import_dir`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportSummary {
    /// Directories created or updated (including the prefix).
    pub dirs: u64,
    /// Files copied.
    pub files: u64,
    /// Bytes copied.
    pub bytes: u64,
}

/// Options of a file to create.
#[derive(Debug, Clone)]
pub(crate) struct NewFile {
    pub(crate) data: Option<Bytes>,
    pub(crate) len: u64,
    pub(crate) permission: u16,
    pub(crate) replication: u16,
    pub(crate) block_size: u64,
    pub(crate) owner: Option<String>,
    pub(crate) mtime: Option<i64>,
    pub(crate) atime: Option<i64>,
}

impl NewFile {
    pub(crate) fn bytes(data: Bytes) -> Self {
        Self {
            len: data.len() as u64,
            data: Some(data),
            permission: DEFAULT_FILE_PERMISSION,
            replication: DEFAULT_REPLICATION,
            block_size: DEFAULT_BLOCK_SIZE,
            owner: None,
            mtime: None,
            atime: None,
        }
    }
}

/// A child name; ordered like HDFS orders children (signed byte comparison).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name(Box<str>);

impl Name {
    fn of(s: &str) -> Self {
        Self(Box::from(s))
    }
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Guava `SignedBytes.lexicographicalComparator()`, as used by `DFSUtilClient.compareBytes`.
pub fn hdfs_name_cmp(a: &str, b: &str) -> Ordering {
    a.bytes().map(|x| x as i8).cmp(b.bytes().map(|x| x as i8))
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> Ordering {
        hdfs_name_cmp(&self.0, &other.0)
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug)]
pub(crate) enum Kind {
    Dir(BTreeMap<Name, Inode>),
    /// `data == None` means synthetic content of `len` bytes.
    File {
        len: u64,
        data: Option<Bytes>,
    },
}

#[derive(Debug)]
pub(crate) struct Inode {
    pub(crate) id: u64,
    pub(crate) mtime: i64,
    pub(crate) atime: i64,
    pub(crate) owner: u32,
    pub(crate) group: u32,
    pub(crate) perm: u16,
    pub(crate) replication: u16,
    pub(crate) block_size: u64,
    pub(crate) kind: Kind,
}

impl Inode {
    fn new_dir(id: u64, now: i64, owner: u32, group: u32, perm: u16) -> Self {
        Self {
            id,
            mtime: now,
            atime: 0,
            owner,
            group,
            perm,
            replication: 0,
            block_size: 0,
            kind: Kind::Dir(BTreeMap::new()),
        }
    }
    pub(crate) fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir(_))
    }
    pub(crate) fn len(&self) -> u64 {
        match &self.kind {
            Kind::Dir(_) => 0,
            Kind::File { len, .. } => *len,
        }
    }
    fn children(&self) -> Option<&BTreeMap<Name, Inode>> {
        match &self.kind {
            Kind::Dir(c) => Some(c),
            Kind::File { .. } => None,
        }
    }
    /// Number of files and directories in this subtree (including itself).
    fn count(&self) -> (u64, u64) {
        match &self.kind {
            Kind::File { .. } => (0, 1),
            Kind::Dir(c) => c.values().fold((1, 0), |(d, f), ch| {
                let (cd, cf) = ch.count();
                (d + cd, f + cf)
            }),
        }
    }
    /// The byte range `[offset, offset + len)` of the content.
    fn slice(&self, offset: u64, len: u64) -> Bytes {
        match &self.kind {
            Kind::Dir(_) => Bytes::new(),
            Kind::File { data: Some(d), .. } => d.slice(offset as usize..(offset + len) as usize),
            Kind::File { data: None, .. } => (offset..offset + len).map(synthetic_byte).collect(),
        }
    }
}

/// Interned owner and group names.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    list: Vec<Arc<str>>,
    map: HashMap<Arc<str>, u32>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.map.get(s) {
            return id;
        }
        let id = self.list.len() as u32;
        let a: Arc<str> = Arc::from(s);
        self.list.push(a.clone());
        self.map.insert(a, id);
        id
    }
    pub(crate) fn get(&self, id: u32) -> &str {
        &self.list[id as usize]
    }
}

#[derive(Debug)]
pub(crate) struct Meta {
    next_id: u64,
    pub(crate) names: Interner,
    default_owner: u32,
    default_group: u32,
}

impl Meta {
    fn alloc_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

#[derive(Debug)]
pub(crate) struct Tree {
    pub(crate) root: Inode,
    pub(crate) meta: Meta,
}

/// Splits and validates an absolute HDFS path (`DFSUtil.isValidName`): it must start with `/`,
/// and no component may be `.`, `..` or contain `:`. Repeated and trailing slashes are ignored.
pub(crate) fn components(path: &str) -> FsResult<Vec<&str>> {
    if !path.starts_with('/') {
        return Err(RemoteException::new(
            "InvalidPathException",
            format!("Invalid path name {path}"),
        ));
    }
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if comps
        .iter()
        .any(|c| *c == "." || *c == ".." || c.contains(':'))
    {
        return Err(RemoteException::new(
            "InvalidPathException",
            format!("Invalid path name Invalid file name: {path}"),
        ));
    }
    Ok(comps)
}

/// `/a/b` from components.
pub(crate) fn join(comps: &[&str]) -> String {
    if comps.is_empty() {
        return "/".to_owned();
    }
    let mut s = String::new();
    for c in comps {
        s.push('/');
        s.push_str(c);
    }
    s
}

impl Tree {
    /// The inode at `comps`, or `None` when it (or an ancestor) is missing or an ancestor is a
    /// file.
    pub(crate) fn get(&self, comps: &[&str]) -> Option<&Inode> {
        let mut cur = &self.root;
        for c in comps {
            cur = cur.children()?.get(&Name::of(c))?;
        }
        Some(cur)
    }

    fn get_mut(&mut self, comps: &[&str]) -> Option<&mut Inode> {
        let mut cur = &mut self.root;
        for c in comps {
            cur = match &mut cur.kind {
                Kind::Dir(ch) => ch.get_mut(&Name::of(c))?,
                Kind::File { .. } => return None,
            };
        }
        Some(cur)
    }

    /// Checks that no ancestor of `comps` is a file (ParentNotDirectoryException otherwise).
    fn check_ancestors(&self, comps: &[&str]) -> FsResult<()> {
        let mut cur = &self.root;
        for (i, c) in comps.iter().enumerate() {
            match &cur.kind {
                Kind::File { .. } => {
                    return Err(RemoteException::parent_not_dir(&join(&comps[..i])));
                }
                Kind::Dir(ch) => match ch.get(&Name::of(c)) {
                    Some(n) => cur = n,
                    None => return Ok(()),
                },
            }
        }
        Ok(())
    }

    /// Creates missing directories along `comps` (all of them), like `FSDirMkdirOp`.
    /// `perm_for(depth_index, parent_perm)` gives the permission of a newly created directory.
    fn ensure_dirs(
        &mut self,
        comps: &[&str],
        now: i64,
        owner: u32,
        perm_for: &dyn Fn(usize, u16) -> u16,
    ) -> FsResult<&mut Inode> {
        let Tree { root, meta } = self;
        let mut cur: &mut Inode = root;
        for (i, c) in comps.iter().enumerate() {
            let Inode {
                kind,
                mtime,
                group,
                perm,
                ..
            } = cur;
            let Kind::Dir(children) = kind else {
                return Err(RemoteException::parent_not_dir(&join(&comps[..i])));
            };
            cur = match children.entry(Name::of(c)) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    *mtime = now;
                    let id = meta.alloc_id();
                    v.insert(Inode::new_dir(id, now, owner, *group, perm_for(i, *perm)))
                }
            };
        }
        if !cur.is_dir() {
            return Err(RemoteException::parent_not_dir(&join(comps)));
        }
        Ok(cur)
    }

    pub(crate) fn mkdirs(
        &mut self,
        comps: &[&str],
        perm: u16,
        owner: u32,
        now: i64,
    ) -> FsResult<()> {
        if let Some(n) = self.get(comps) {
            if n.is_dir() {
                return Ok(());
            }
            return Err(RemoteException::exists(format!(
                "Path is not a directory: {}",
                join(comps)
            )));
        }
        self.check_ancestors(comps)?;
        let last = comps.len().saturating_sub(1);
        // Ancestors get u+wx implicitly (FSDirMkdirOp.addImplicitUwx).
        self.ensure_dirs(comps, now, owner, &|i, _| {
            if i < last { perm | 0o300 } else { perm }
        })?;
        Ok(())
    }

    pub(crate) fn create_file(
        &mut self,
        comps: &[&str],
        spec: NewFile,
        overwrite: bool,
        now: i64,
    ) -> FsResult<u64> {
        let path = join(comps);
        let Some((name, parent_comps)) = comps.split_last() else {
            return Err(RemoteException::exists("/ already exists as a directory"));
        };
        let owner = match &spec.owner {
            Some(o) => self.meta.names.intern(o),
            None => self.meta.default_owner,
        };
        let id = self.meta.alloc_id();
        // One walk: implicit parents inherit the permission of the deepest existing directory
        // plus u+wx (FSDirMkdirOp.createAncestorDirectories). Every failure below implies the
        // parent already existed, so nothing was created when an error is returned.
        let parent = self.ensure_dirs(parent_comps, now, owner, &|_, p| p | 0o300)?;
        let group = parent.group;
        let Inode {
            kind: Kind::Dir(children),
            mtime,
            ..
        } = parent
        else {
            unreachable!("ensure_dirs returns a directory")
        };
        let key = Name::of(name);
        match children.get(&key) {
            Some(existing) if existing.is_dir() => {
                return Err(RemoteException::exists(format!(
                    "{path} already exists as a directory"
                )));
            }
            Some(_) if !overwrite => {
                return Err(RemoteException::exists(format!(
                    "{path} for client 127.0.0.1 already exists"
                )));
            }
            _ => {}
        }
        *mtime = now;
        let mtime_new = spec.mtime.unwrap_or(now);
        children.insert(
            key,
            Inode {
                id,
                mtime: mtime_new,
                atime: spec.atime.unwrap_or(mtime_new),
                owner,
                group,
                perm: spec.permission,
                replication: spec.replication,
                block_size: spec.block_size,
                kind: Kind::File {
                    len: spec.len,
                    data: spec.data,
                },
            },
        );
        Ok(id)
    }

    pub(crate) fn delete(&mut self, comps: &[&str], recursive: bool, now: i64) -> FsResult<bool> {
        let Some(node) = self.get(comps) else {
            return Ok(false);
        };
        if !recursive && node.children().is_some_and(|c| !c.is_empty()) {
            // PathIsNotEmptyDirectoryException(src + " is non empty") formats as PathIOException.
            return Err(RemoteException::new(
                "PathIsNotEmptyDirectoryException",
                format!("`{} is non empty': Directory is not empty", join(comps)),
            ));
        }
        let Some((name, parent_comps)) = comps.split_last() else {
            return Ok(false); // the root is never deleted
        };
        let parent = self.get_mut(parent_comps).expect("parent exists");
        parent.mtime = now;
        if let Kind::Dir(ch) = &mut parent.kind {
            ch.remove(&Name::of(name));
        }
        Ok(true)
    }

    /// Moves the inode at `src` to `dst` (both validated); updates both parents' mtime.
    fn move_inode(&mut self, src: &[&str], dst: &[&str], now: i64) {
        let (sname, sparent) = src.split_last().expect("not root");
        let (dname, dparent) = dst.split_last().expect("not root");
        let sp = self.get_mut(sparent).expect("src parent");
        sp.mtime = now;
        let Kind::Dir(ch) = &mut sp.kind else {
            unreachable!()
        };
        let node = ch.remove(&Name::of(sname)).expect("src exists");
        let dp = self.get_mut(dparent).expect("dst parent");
        dp.mtime = now;
        let Kind::Dir(ch) = &mut dp.kind else {
            unreachable!()
        };
        ch.insert(Name::of(dname), node);
    }

    /// The deprecated rename (`FSDirRenameOp.renameTo` / `unprotectedRenameTo` without options).
    pub(crate) fn rename_old(&mut self, src: &[&str], dst: &[&str], now: i64) -> bool {
        if src.is_empty() || self.get(src).is_none() {
            return false;
        }
        // "if (fsd.isDir(dst)) dst += Path.SEPARATOR + new Path(src).getName()"
        let mut actual: Vec<&str> = dst.to_vec();
        if self.get(dst).is_some_and(Inode::is_dir) {
            actual.push(src[src.len() - 1]);
        }
        if actual == src {
            return true;
        }
        if actual.len() > src.len() && actual[..src.len()] == *src {
            return false; // destination under source
        }
        if actual.is_empty() || self.get(&actual).is_some() {
            return false;
        }
        match self.get(&actual[..actual.len() - 1]) {
            Some(p) if p.is_dir() => {}
            _ => return false,
        }
        self.move_inode(src, &actual, now);
        true
    }

    /// `rename2` with `Options.Rename` (`FSDirRenameOp.unprotectedRenameTo` with options).
    pub(crate) fn rename2(
        &mut self,
        src: &[&str],
        dst: &[&str],
        overwrite: bool,
        now: i64,
    ) -> FsResult<()> {
        let (s, d) = (join(src), join(dst));
        let Some(src_node) = self.get(src) else {
            return Err(RemoteException::not_found(format!(
                "rename source {s} is not found."
            )));
        };
        if src.is_empty() {
            return Err(RemoteException::io("rename source cannot be the root"));
        }
        if src == dst {
            return Err(RemoteException::exists(format!(
                "The source {s} and destination {d} are the same"
            )));
        }
        if dst.len() > src.len() && dst[..src.len()] == *src {
            return Err(RemoteException::io(format!(
                "Rename destination {d} is a directory or file under source {s}"
            )));
        }
        if dst.is_empty() {
            return Err(RemoteException::io("rename destination cannot be the root"));
        }
        let src_is_dir = src_node.is_dir();
        if let Some(dst_node) = self.get(dst) {
            if dst_node.is_dir() != src_is_dir {
                return Err(RemoteException::io(format!(
                    "Source {s} and destination {d} must both be directories"
                )));
            }
            if !overwrite {
                return Err(RemoteException::exists(format!(
                    "rename destination {d} already exists"
                )));
            }
            if dst_node.children().is_some_and(|c| !c.is_empty()) {
                return Err(RemoteException::io(format!(
                    "rename destination directory is not empty: {d}"
                )));
            }
        }
        match self.get(&dst[..dst.len() - 1]) {
            None => {
                self.check_ancestors(dst)?;
                return Err(RemoteException::not_found(format!(
                    "rename destination parent {d} not found."
                )));
            }
            Some(p) if !p.is_dir() => {
                return Err(RemoteException::new(
                    "ParentNotDirectoryException",
                    format!("rename destination parent {d} is a file."),
                ));
            }
            Some(_) => {}
        }
        if self.get(dst).is_some() {
            let (dname, dparent) = dst.split_last().expect("not root");
            if let Some(Inode {
                kind: Kind::Dir(ch),
                ..
            }) = self.get_mut(dparent)
            {
                ch.remove(&Name::of(dname));
            }
        }
        self.move_inode(src, dst, now);
        Ok(())
    }

    pub(crate) fn append(&mut self, comps: &[&str], data: &[u8], now: i64) -> FsResult<()> {
        let path = join(comps);
        let Some(node) = self.get_mut(comps) else {
            return Err(RemoteException::not_found(format!(
                "failed to append to non-existent file {path} for client 127.0.0.1"
            )));
        };
        let Kind::File { len, data: content } = &mut node.kind else {
            return Err(RemoteException::not_found(format!(
                "Path is not a file: {path}"
            )));
        };
        let mut buf = Vec::with_capacity(*len as usize + data.len());
        match content {
            Some(b) => buf.extend_from_slice(b),
            None => buf.extend((0..*len).map(synthetic_byte)),
        }
        buf.extend_from_slice(data);
        *len = buf.len() as u64;
        *content = Some(Bytes::from(buf));
        node.mtime = now;
        Ok(())
    }

    pub(crate) fn concat(&mut self, target: &[&str], srcs: &[Vec<&str>], now: i64) -> FsResult<()> {
        let tpath = join(target);
        let tnode = match self.get(target) {
            None => {
                return Err(RemoteException::not_found(format!(
                    "File does not exist: {tpath}"
                )));
            }
            Some(n) if n.is_dir() => {
                return Err(RemoteException::not_found(format!(
                    "Path is not a file: {tpath}"
                )));
            }
            Some(n) => n,
        };
        let tparent = &target[..target.len() - 1];
        let mut seen: Vec<&[&str]> = Vec::new();
        for src in srcs {
            let spath = join(src);
            let snode = match self.get(src) {
                None => {
                    return Err(RemoteException::not_found(format!(
                        "File does not exist: {spath}"
                    )));
                }
                Some(n) if n.is_dir() => {
                    return Err(RemoteException::not_found(format!(
                        "Path is not a file: {spath}"
                    )));
                }
                Some(n) => n,
            };
            if src.is_empty() || src[..src.len() - 1] != *tparent {
                return Err(RemoteException::hadoop_illegal(format!(
                    "Source file {spath} is not in the same directory with the target {tpath}"
                )));
            }
            if src.as_slice() == target {
                return Err(RemoteException::hadoop_illegal(format!(
                    "concat: the src file {spath} is the same with the target file {tpath}"
                )));
            }
            if snode.len() == 0 {
                return Err(RemoteException::hadoop_illegal(format!(
                    "concat: source file {spath} is invalid or empty or underConstruction"
                )));
            }
            if snode.block_size > tnode.block_size {
                return Err(RemoteException::hadoop_illegal(format!(
                    "concat: source file {spath} has preferred block size {} which is greater than the target file's preferred block size {}",
                    snode.block_size, tnode.block_size
                )));
            }
            if !seen.contains(&src.as_slice()) {
                seen.push(src.as_slice());
            }
        }
        if seen.len() < srcs.len() {
            return Err(RemoteException::hadoop_illegal(
                "concat: at least two of the source files are the same",
            ));
        }
        // Collect the source contents and remove the sources.
        let parent = self.get_mut(tparent).expect("target parent");
        parent.mtime = now;
        let Kind::Dir(ch) = &mut parent.kind else {
            unreachable!()
        };
        let mut parts = Vec::with_capacity(srcs.len());
        for src in srcs {
            let n = ch.remove(&Name::of(src[src.len() - 1])).expect("validated");
            if let Kind::File { len, data } = n.kind {
                parts.push((len, data));
            }
        }
        let t = ch
            .get_mut(&Name::of(target[target.len() - 1]))
            .expect("validated");
        t.mtime = now;
        let Kind::File { len, data } = &mut t.kind else {
            unreachable!()
        };
        let total: u64 = *len + parts.iter().map(|p| p.0).sum::<u64>();
        if data.is_some() && parts.iter().all(|p| p.1.is_some()) {
            let mut buf = Vec::with_capacity(total as usize);
            buf.extend_from_slice(data.as_ref().expect("checked"));
            for (_, d) in &parts {
                buf.extend_from_slice(d.as_ref().expect("checked"));
            }
            *data = Some(Bytes::from(buf));
        } else {
            // Any synthetic part makes the result synthetic (length only).
            *data = None;
        }
        *len = total;
        Ok(())
    }

    pub(crate) fn to_status(&self, name: &str, n: &Inode) -> FileStatus {
        FileStatus {
            path_suffix: name.to_owned(),
            file_type: if n.is_dir() {
                FileType::Directory
            } else {
                FileType::File
            },
            length: n.len(),
            owner: self.meta.names.get(n.owner).to_owned(),
            group: self.meta.names.get(n.group).to_owned(),
            permission: n.perm,
            access_time: n.atime,
            modification_time: n.mtime,
            block_size: n.block_size,
            replication: n.replication,
            file_id: n.id,
            children_num: n.children().map_or(0, |c| c.len() as u64),
            synthetic: matches!(n.kind, Kind::File { data: None, .. }),
        }
    }

    /// Appends the FileStatus JSON object of `n` (keys in `JsonUtil`'s sorted order).
    pub(crate) fn write_status_json(&self, out: &mut String, name: &str, n: &Inode) {
        use std::fmt::Write as _;
        let _ = write!(
            out,
            "{{\"accessTime\":{},\"blockSize\":{},\"childrenNum\":{},\"fileId\":{},\"group\":",
            n.atime,
            n.block_size,
            n.children().map_or(0, BTreeMap::len),
            n.id
        );
        push_json_str(out, self.meta.names.get(n.group));
        let _ = write!(
            out,
            ",\"length\":{},\"modificationTime\":{},\"owner\":",
            n.len(),
            n.mtime
        );
        push_json_str(out, self.meta.names.get(n.owner));
        out.push_str(",\"pathSuffix\":");
        push_json_str(out, name);
        let _ = write!(
            out,
            ",\"permission\":\"{:o}\",\"replication\":{},\"storagePolicy\":0,\"type\":\"{}\"}}",
            n.perm,
            n.replication,
            if n.is_dir() { "DIRECTORY" } else { "FILE" }
        );
    }

    /// Lists `comps`: `(json entries written to out, count, remaining)`. `limit == None` lists
    /// everything.
    pub(crate) fn write_listing(
        &self,
        out: &mut String,
        comps: &[&str],
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> FsResult<u64> {
        let Some(node) = self.get(comps) else {
            return Err(RemoteException::not_found(format!(
                "File {} does not exist.",
                join(comps)
            )));
        };
        let Kind::Dir(children) = &node.kind else {
            self.write_status_json(out, "", node);
            return Ok(0);
        };
        let mut iter: Box<dyn Iterator<Item = (&Name, &Inode)>> = match start_after {
            Some(s) if !s.is_empty() => Box::new(children.range((
                std::ops::Bound::Excluded(Name::of(s)),
                std::ops::Bound::Unbounded,
            ))),
            _ => Box::new(children.iter()),
        };
        let limit = limit.unwrap_or(usize::MAX);
        let mut n = 0usize;
        for (name, child) in iter.by_ref() {
            if n > 0 {
                out.push(',');
            }
            self.write_status_json(out, name.as_str(), child);
            n += 1;
            if n >= limit {
                break;
            }
        }
        Ok(iter.count() as u64)
    }

    pub(crate) fn content_summary(&self, comps: &[&str]) -> FsResult<ContentSummary> {
        fn walk(n: &Inode, cs: &mut ContentSummary) {
            match &n.kind {
                Kind::File { len, .. } => {
                    cs.file_count += 1;
                    cs.length += len;
                    cs.space_consumed += len * u64::from(n.replication);
                }
                Kind::Dir(ch) => {
                    cs.directory_count += 1;
                    ch.values().for_each(|c| walk(c, cs));
                }
            }
        }
        let Some(node) = self.get(comps) else {
            return Err(RemoteException::not_found(format!(
                "File does not exist: {}",
                join(comps)
            )));
        };
        let mut cs = ContentSummary::default();
        walk(node, &mut cs);
        Ok(cs)
    }

    pub(crate) fn set_times(&mut self, comps: &[&str], mtime: i64, atime: i64) -> FsResult<()> {
        let Some(n) = self.get_mut(comps) else {
            return Err(RemoteException::not_found(format!(
                "File/Directory {} does not exist.",
                join(comps)
            )));
        };
        if mtime != -1 {
            n.mtime = mtime;
        }
        if atime != -1 {
            n.atime = atime;
        }
        Ok(())
    }

    pub(crate) fn set_permission(&mut self, comps: &[&str], perm: u16) -> FsResult<()> {
        let Some(n) = self.get_mut(comps) else {
            return Err(RemoteException::not_found(format!(
                "File does not exist: {}",
                join(comps)
            )));
        };
        n.perm = perm;
        Ok(())
    }

    pub(crate) fn set_owner(
        &mut self,
        comps: &[&str],
        owner: Option<&str>,
        group: Option<&str>,
    ) -> FsResult<()> {
        let o = owner.map(|o| self.meta.names.intern(o));
        let g = group.map(|g| self.meta.names.intern(g));
        let Some(n) = self.get_mut(comps) else {
            return Err(RemoteException::not_found(format!(
                "File does not exist: {}",
                join(comps)
            )));
        };
        if let Some(o) = o {
            n.owner = o;
        }
        if let Some(g) = g {
            n.group = g;
        }
        Ok(())
    }

    /// `SETREPLICATION`: `false` for missing paths and directories.
    pub(crate) fn set_replication(&mut self, comps: &[&str], replication: u16) -> bool {
        match self.get_mut(comps) {
            Some(n) if !n.is_dir() => {
                n.replication = replication;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        self.meta.names.intern(s)
    }
}

/// The in-memory namespace shared by all NameNodes and the DataNode of a server.
///
/// Thread-safe (one `RwLock`; reads share it). Share it with `Arc`.
#[derive(Debug)]
pub struct Namespace {
    tree: RwLock<Tree>,
    /// `i64::MIN` means real time.
    clock: AtomicI64,
}

impl Default for Namespace {
    fn default() -> Self {
        Self::new()
    }
}

impl Namespace {
    /// An empty namespace: the root `/` owned by `hdfs:supergroup`, mode 755.
    pub fn new() -> Self {
        let mut names = Interner::default();
        let owner = names.intern("hdfs");
        let group = names.intern("supergroup");
        let ns = Self {
            tree: RwLock::new(Tree {
                root: Inode::new_dir(ROOT_INODE_ID, 0, owner, group, DEFAULT_DIR_PERMISSION),
                meta: Meta {
                    next_id: ROOT_INODE_ID,
                    names,
                    default_owner: owner,
                    default_group: group,
                },
            }),
            clock: AtomicI64::new(i64::MIN),
        };
        let now = ns.now_ms();
        ns.write().root.mtime = now;
        ns
    }

    /// A new namespace in an `Arc`.
    pub fn new_shared() -> Arc<Self> {
        Arc::new(Self::new())
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Tree> {
        self.tree
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Tree> {
        self.tree
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Current time of the namespace clock, ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        match self.clock.load(AtomicOrdering::Relaxed) {
            i64::MIN => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            t => t,
        }
    }

    /// Freezes the clock at `ms`.
    pub fn set_clock_ms(&self, ms: i64) {
        self.clock.store(ms, AtomicOrdering::Relaxed);
    }

    /// Advances a frozen clock by `delta_ms` (freezes it at the current time first if needed).
    pub fn advance_clock_ms(&self, delta_ms: i64) {
        let now = self.now_ms();
        self.clock.store(now + delta_ms, AtomicOrdering::Relaxed);
    }

    /// Returns to real time.
    pub fn use_real_clock(&self) {
        self.clock.store(i64::MIN, AtomicOrdering::Relaxed);
    }

    /// Owner and group of inodes created through this API (default `hdfs:supergroup`); the root
    /// is changed too.
    pub fn set_default_owner(&self, owner: &str, group: &str) {
        let mut t = self.write();
        let (o, g) = (t.intern(owner), t.intern(group));
        t.meta.default_owner = o;
        t.meta.default_group = g;
        t.root.owner = o;
        t.root.group = g;
    }

    /// `mkdir -p`; parents' modification times change when a child is added.
    pub fn mkdirs(&self, path: &str) -> FsResult<()> {
        let comps = components(path)?;
        let now = self.now_ms();
        let mut t = self.write();
        let owner = t.meta.default_owner;
        t.mkdirs(&comps, DEFAULT_DIR_PERMISSION, owner, now)
    }

    /// Creates (or replaces) a file with real content; parents are created. Returns its fileId.
    pub fn add_file(&self, path: &str, data: impl Into<Bytes>) -> FsResult<u64> {
        let comps = components(path)?;
        let now = self.now_ms();
        self.write()
            .create_file(&comps, NewFile::bytes(data.into()), true, now)
    }

    /// Creates (or replaces) a file of `len` synthetic bytes with the given mtime (also used as
    /// atime). Reading it returns [`synthetic_byte`] filler. Returns its fileId.
    pub fn add_synthetic_file(&self, path: &str, len: u64, mtime_ms: i64) -> FsResult<u64> {
        let comps = components(path)?;
        let now = self.now_ms();
        let spec = NewFile {
            data: None,
            len,
            mtime: Some(mtime_ms),
            ..NewFile::bytes(Bytes::new())
        };
        self.write().create_file(&comps, spec, true, now)
    }

    /// Recursive delete; `false` when the path does not exist.
    pub fn remove(&self, path: &str) -> FsResult<bool> {
        self.delete(path, true)
    }

    /// `DELETE` semantics.
    pub fn delete(&self, path: &str, recursive: bool) -> FsResult<bool> {
        let comps = components(path)?;
        let now = self.now_ms();
        self.write().delete(&comps, recursive, now)
    }

    /// Sets the modification and/or access time.
    pub fn set_times(
        &self,
        path: &str,
        mtime_ms: Option<i64>,
        atime_ms: Option<i64>,
    ) -> FsResult<()> {
        let comps = components(path)?;
        self.write()
            .set_times(&comps, mtime_ms.unwrap_or(-1), atime_ms.unwrap_or(-1))
    }

    /// Sets permission bits.
    pub fn set_permission(&self, path: &str, permission: u16) -> FsResult<()> {
        let comps = components(path)?;
        self.write().set_permission(&comps, permission)
    }

    /// Sets owner and/or group.
    pub fn set_owner(&self, path: &str, owner: Option<&str>, group: Option<&str>) -> FsResult<()> {
        let comps = components(path)?;
        self.write().set_owner(&comps, owner, group)
    }

    /// Status of a path (`pathSuffix` empty); FileNotFoundException when missing.
    pub fn status(&self, path: &str) -> FsResult<FileStatus> {
        let comps = components(path)?;
        let t = self.read();
        match t.get(&comps) {
            Some(n) => Ok(t.to_status("", n)),
            None => Err(RemoteException::not_found(format!(
                "File does not exist: {path}"
            ))),
        }
    }

    /// Whether the path exists.
    pub fn exists(&self, path: &str) -> bool {
        components(path).is_ok_and(|c| self.read().get(&c).is_some())
    }

    /// Children of a directory in NameNode order (a file lists itself with an empty suffix).
    pub fn list(&self, path: &str) -> FsResult<Vec<FileStatus>> {
        let comps = components(path)?;
        let t = self.read();
        match t.get(&comps) {
            None => Err(RemoteException::not_found(format!(
                "File {path} does not exist."
            ))),
            Some(n) => match &n.kind {
                Kind::File { .. } => Ok(vec![t.to_status("", n)]),
                Kind::Dir(ch) => Ok(ch.iter().map(|(k, v)| t.to_status(k.as_str(), v)).collect()),
            },
        }
    }

    /// Whole content of a file (filler bytes for synthetic files); does not touch atime.
    pub fn read_file(&self, path: &str) -> FsResult<Bytes> {
        let comps = components(path)?;
        let t = self.read();
        match t.get(&comps) {
            None => Err(RemoteException::not_found(format!(
                "File does not exist: {path}"
            ))),
            Some(n) if n.is_dir() => Err(RemoteException::not_found(format!(
                "Path is not a file: {path}"
            ))),
            Some(n) => Ok(n.slice(0, n.len())),
        }
    }

    /// Reads `[offset, offset+length)` (clamped) and updates the access time if it is older than
    /// `precision_ms` (`precision_ms <= 0` disables access times, as in HDFS).
    pub(crate) fn read_range(
        &self,
        comps: &[&str],
        offset: u64,
        length: Option<u64>,
        precision_ms: i64,
    ) -> FsResult<Bytes> {
        let path = join(comps);
        let now = self.now_ms();
        let (data, touch) = {
            let t = self.read();
            let n = match t.get(comps) {
                None => {
                    return Err(RemoteException::not_found(format!(
                        "File does not exist: {path}"
                    )));
                }
                Some(n) if n.is_dir() => {
                    return Err(RemoteException::not_found(format!(
                        "Path is not a file: {path}"
                    )));
                }
                Some(n) => n,
            };
            let len = n.len();
            if offset > len || (offset == len && len > 0) {
                return Err(RemoteException::io(format!(
                    "Offset={offset} out of the range [0, {len}); OPEN, path={path}"
                )));
            }
            let count = length.map_or(len - offset, |l| l.min(len - offset));
            (
                n.slice(offset, count),
                precision_ms > 0 && now > n.atime + precision_ms,
            )
        };
        if touch && let Some(n) = self.write().get_mut(comps) {
            n.atime = now;
        }
        Ok(data)
    }

    /// The deprecated rename (`{"boolean":...}` semantics).
    pub fn rename(&self, src: &str, dst: &str) -> FsResult<bool> {
        let (s, d) = (components(src)?, components(dst)?);
        let now = self.now_ms();
        Ok(self.write().rename_old(&s, &d, now))
    }

    /// `rename2` (`renameoptions=OVERWRITE` when `overwrite`, `NONE` otherwise).
    pub fn rename2(&self, src: &str, dst: &str, overwrite: bool) -> FsResult<()> {
        let (s, d) = (components(src)?, components(dst)?);
        let now = self.now_ms();
        self.write().rename2(&s, &d, overwrite, now)
    }

    /// `GETCONTENTSUMMARY`.
    pub fn content_summary(&self, path: &str) -> FsResult<ContentSummary> {
        let comps = components(path)?;
        self.read().content_summary(&comps)
    }

    /// Number of (directories, files), the root included.
    pub fn counts(&self) -> (u64, u64) {
        self.read().root.count()
    }

    /// Copies a local directory tree under `hdfs_prefix`: file bytes, file mtimes/atimes from
    /// the local files, and directory mtimes from the local directories (applied after their
    /// children are added, so they stay as on disk). Symbolic links are skipped.
    pub fn import_dir(
        &self,
        local_dir: &Path,
        hdfs_prefix: &str,
    ) -> std::io::Result<ImportSummary> {
        fn ms(t: std::io::Result<SystemTime>) -> Option<i64> {
            t.ok()?
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_millis() as i64)
        }
        fn to_io(e: RemoteException) -> std::io::Error {
            std::io::Error::other(e.to_string())
        }
        fn walk(
            ns: &Namespace,
            dir: &Path,
            hdfs: &str,
            sum: &mut ImportSummary,
        ) -> std::io::Result<()> {
            ns.mkdirs(hdfs).map_err(to_io)?;
            sum.dirs += 1;
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                let meta = std::fs::symlink_metadata(entry.path())?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let child = if hdfs == "/" {
                    format!("/{name}")
                } else {
                    format!("{hdfs}/{name}")
                };
                if meta.is_dir() {
                    walk(ns, &entry.path(), &child, sum)?;
                } else if meta.is_file() {
                    let data = std::fs::read(entry.path())?;
                    sum.files += 1;
                    sum.bytes += data.len() as u64;
                    let comps = components(&child).map_err(to_io)?;
                    let mtime = ms(meta.modified());
                    let spec = NewFile {
                        mtime,
                        atime: ms(meta.accessed()).or(mtime),
                        ..NewFile::bytes(Bytes::from(data))
                    };
                    let now = ns.now_ms();
                    ns.write()
                        .create_file(&comps, spec, true, now)
                        .map_err(to_io)?;
                }
            }
            let meta = std::fs::metadata(dir)?;
            ns.set_times(hdfs, ms(meta.modified()), None)
                .map_err(to_io)?;
            Ok(())
        }
        let mut sum = ImportSummary::default();
        let prefix = match hdfs_prefix.trim_end_matches('/') {
            "" => "/",
            p => p,
        };
        walk(self, local_dir, prefix, &mut sum)?;
        Ok(sum)
    }
}

/// Appends `s` as a JSON string literal.
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}
