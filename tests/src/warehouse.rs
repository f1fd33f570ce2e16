//! Builds `file:` warehouses on disk for tests and the demo: directories and files of given
//! sizes with fixed modification and access times (so golden files are stable).

use std::fs::{File, FileTimes};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A local warehouse rooted at a directory.
#[derive(Debug, Clone)]
pub struct Warehouse {
    root: PathBuf,
    /// Modification time given to files written from now on.
    pub mtime: SystemTime,
}

impl Warehouse {
    /// A warehouse at `root` (created if missing). Files get a fixed time by default.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self {
            root,
            mtime: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Absolute path of a warehouse-relative path.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// `file:` URI of a warehouse-relative path.
    pub fn uri(&self, rel: &str) -> String {
        format!("file:{}", self.path(rel).display())
    }

    /// Creates a directory (and parents).
    pub fn mkdir(&self, rel: &str) -> std::io::Result<PathBuf> {
        let p = self.path(rel);
        std::fs::create_dir_all(&p)?;
        Ok(p)
    }

    /// Writes a file of `len` bytes of text lines (each line ends in `\n`).
    pub fn file(&self, rel: &str, len: u64) -> std::io::Result<PathBuf> {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut f = File::create(&p)?;
        let line = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n";
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left.min(line.len() as u64)).unwrap_or(line.len());
            if n == line.len() {
                f.write_all(line)?;
            } else {
                // The last chunk still ends with a newline when it can.
                let mut chunk = line[..n].to_vec();
                if let Some(last) = chunk.last_mut() {
                    *last = b'\n';
                }
                f.write_all(&chunk)?;
            }
            left -= n as u64;
        }
        f.set_times(
            FileTimes::new()
                .set_modified(self.mtime)
                .set_accessed(self.mtime + Duration::from_secs(60)),
        )?;
        Ok(p)
    }

    /// Sets a directory's or file's modification time.
    pub fn touch(&self, rel: &str, t: SystemTime) -> std::io::Result<()> {
        File::open(self.path(rel))?.set_times(FileTimes::new().set_modified(t))
    }
}
