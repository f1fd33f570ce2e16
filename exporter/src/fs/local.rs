//! STUB: replaced by the real local backend.
use std::path::PathBuf;
/// Local FS.
#[derive(Debug)]
pub struct LocalFs(PathBuf);
impl LocalFs {
    /// New.
    pub fn new(root: PathBuf) -> Self {
        Self(root)
    }
}
#[async_trait::async_trait]
impl crate::fs::FileSystem for LocalFs {
    async fn list_status(
        &self,
        path: &str,
        _sink: &mut crate::fs::PageSink<'_>,
    ) -> Result<(), crate::fs::FsError> {
        Err(crate::fs::FsError::NotFound { path: path.into() })
    }
    async fn file_status(&self, path: &str) -> Result<crate::fs::FileStatus, crate::fs::FsError> {
        Err(crate::fs::FsError::NotFound { path: path.into() })
    }
    async fn probe(&self) -> Vec<crate::fs::EndpointProbe> {
        vec![]
    }
}
