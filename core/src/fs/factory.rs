//! The one place a cluster's filesystem client is built from its validated storage section:
//! read-only for the exporter, with the write side for the agent.

use std::sync::Arc;

use super::FileSystem;
use super::local::LocalFs;
use super::local::roots::LocalRoots;
use super::webhdfs::{WebHdfs, WebHdfsConfigError, WebHdfsMetrics};
#[cfg(feature = "write")]
use super::write::FileSystemWrite;
use crate::config::StorageConfig;

/// A cluster's client, before the caller picks which side it uses (short-lived, moved into
/// an `Arc` at once: the size difference of the variants does not matter).
#[allow(clippy::large_enum_variant)]
enum Client {
    WebHdfs(WebHdfs),
    Local(LocalFs),
    LocalRoots(LocalRoots),
}

fn build(storage: &StorageConfig, metrics: &WebHdfsMetrics) -> Result<Client, WebHdfsConfigError> {
    Ok(match storage {
        StorageConfig::WebHdfs {
            client,
            outage_backoff,
            ..
        } => Client::WebHdfs(
            WebHdfs::new(client.clone(), metrics.clone())?.with_outage_backoff(*outage_backoff),
        ),
        StorageConfig::Local { roots } => match roots.as_slice() {
            [root] => Client::Local(LocalFs::new(root.clone())),
            roots => Client::LocalRoots(LocalRoots::new(roots)),
        },
    })
}

/// The read side of a cluster's filesystem (listing, status, contents).
pub fn read_filesystem(
    storage: &StorageConfig,
    metrics: &WebHdfsMetrics,
) -> Result<Arc<dyn FileSystem>, WebHdfsConfigError> {
    Ok(match build(storage, metrics)? {
        Client::WebHdfs(fs) => Arc::new(fs),
        Client::Local(fs) => Arc::new(fs),
        Client::LocalRoots(fs) => Arc::new(fs),
    })
}

/// A cluster's filesystem with its write side (the merge agent's).
#[cfg(feature = "write")]
pub fn write_filesystem(
    storage: &StorageConfig,
    metrics: &WebHdfsMetrics,
) -> Result<Arc<dyn FileSystemWrite>, WebHdfsConfigError> {
    Ok(match build(storage, metrics)? {
        Client::WebHdfs(fs) => Arc::new(fs),
        Client::Local(fs) => Arc::new(fs),
        Client::LocalRoots(fs) => Arc::new(fs),
    })
}
