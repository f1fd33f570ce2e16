//! A `file:` warehouse spread over several root directories (`storage.roots`): each request
//! goes to the [`LocalFs`] whose root holds the path (the deepest one when roots nest), with
//! that root's confinement; a path under none is [`FsError::OutsideRoot`], and a rename
//! between two roots is refused (it would not be atomic: HDFS `rename2` never crosses
//! filesystems either).

use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;

use super::LocalFs;
use crate::fs::{EndpointProbe, EntrySink, FileStatus, FileSystem, FsError, PageSink};

/// Several local roots served as one filesystem.
#[derive(Debug, Clone)]
pub struct LocalRoots {
    roots: Vec<LocalFs>,
}

impl LocalRoots {
    /// Serves paths under any of `roots` (at least one).
    pub fn new(roots: impl IntoIterator<Item = impl AsRef<Path>>) -> Self {
        Self {
            roots: roots
                .into_iter()
                .map(|r| LocalFs::new(r.as_ref().to_owned()))
                .collect(),
        }
    }

    /// The root that holds `path`: the one with the longest matching root.
    fn pick(&self, path: &str) -> Result<&LocalFs, FsError> {
        self.roots
            .iter()
            .filter(|fs| fs.relative(path).is_ok())
            .max_by_key(|fs| fs.root().as_os_str().len())
            .ok_or_else(|| FsError::OutsideRoot {
                path: path.to_owned(),
                root: self
                    .roots
                    .iter()
                    .map(|fs| fs.root().display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[async_trait]
impl FileSystem for LocalRoots {
    async fn list_status(&self, path: &str, sink: &mut PageSink<'_>) -> Result<(), FsError> {
        self.pick(path)?.list_status(path, sink).await
    }

    async fn list_entries(&self, path: &str, sink: &mut EntrySink<'_>) -> Result<(), FsError> {
        self.pick(path)?.list_entries(path, sink).await
    }

    async fn file_status(&self, path: &str) -> Result<FileStatus, FsError> {
        self.pick(path)?.file_status(path).await
    }

    /// Every root, each active when it is a readable directory.
    async fn probe(&self) -> Vec<EndpointProbe> {
        let mut probes = Vec::with_capacity(self.roots.len());
        for fs in &self.roots {
            probes.extend(fs.probe().await);
        }
        probes
    }

    async fn read_range(&self, path: &str, offset: u64, length: u64) -> Result<Bytes, FsError> {
        self.pick(path)?.read_range(path, offset, length).await
    }
}

#[cfg(feature = "write")]
mod write {
    use std::path::Path;

    use async_trait::async_trait;
    use bytes::Bytes;

    use super::LocalRoots;
    use crate::fs::FsError;
    use crate::fs::write::FileSystemWrite;

    #[async_trait]
    impl FileSystemWrite for LocalRoots {
        async fn create_from_local(
            &self,
            path: &str,
            local: &Path,
            overwrite: bool,
            permission: Option<u32>,
        ) -> Result<(), FsError> {
            self.pick(path)?
                .create_from_local(path, local, overwrite, permission)
                .await
        }

        async fn create(
            &self,
            path: &str,
            data: Bytes,
            overwrite: bool,
            permission: Option<u32>,
        ) -> Result<(), FsError> {
            self.pick(path)?
                .create(path, data, overwrite, permission)
                .await
        }

        async fn mkdirs(&self, path: &str, permission: Option<u32>) -> Result<(), FsError> {
            self.pick(path)?.mkdirs(path, permission).await
        }

        async fn rename(&self, src: &str, dst: &str) -> Result<(), FsError> {
            let from = self.pick(src)?;
            let to = self.pick(dst)?;
            if from.root() != to.root() {
                return Err(FsError::OutsideRoot {
                    path: dst.to_owned(),
                    root: from.root().display().to_string(),
                });
            }
            from.rename(src, dst).await
        }

        async fn delete(&self, path: &str, recursive: bool) -> Result<bool, FsError> {
            self.pick(path)?.delete(path, recursive).await
        }

        async fn set_permission(&self, path: &str, permission: u32) -> Result<(), FsError> {
            self.pick(path)?.set_permission(path, permission).await
        }

        async fn set_owner(
            &self,
            path: &str,
            owner: Option<&str>,
            group: Option<&str>,
        ) -> Result<(), FsError> {
            self.pick(path)?.set_owner(path, owner, group).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::EndpointState;

    fn path(p: &Path) -> String {
        p.display().to_string()
    }

    #[tokio::test]
    async fn requests_go_to_the_root_that_holds_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(a.join("t")).unwrap();
        std::fs::create_dir_all(b.join("u")).unwrap();
        std::fs::write(a.join("t/f"), b"12345").unwrap();
        std::fs::write(b.join("u/g"), b"123").unwrap();
        std::fs::write(dir.path().join("outside"), b"x").unwrap();
        let fs = LocalRoots::new([&a, &b]);
        assert_eq!(
            fs.file_status(&path(&a.join("t/f"))).await.unwrap().length,
            5
        );
        assert_eq!(
            fs.file_status(&path(&b.join("u/g"))).await.unwrap().length,
            3
        );
        let e = fs
            .file_status(&path(&dir.path().join("outside")))
            .await
            .unwrap_err();
        assert!(matches!(e, FsError::OutsideRoot { .. }), "{e:?}");
        let probes = fs.probe().await;
        assert_eq!(probes.len(), 2);
        assert!(probes.iter().all(|p| p.state == EndpointState::Active));
    }
}
