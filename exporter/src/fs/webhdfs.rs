//! WebHDFS client (Hadoop `WebHDFS.md` REST API) — to be implemented.
//!
//! Owns: NameNode HA failover (StandbyException / connection errors → next NameNode, the
//! active one remembered), `LISTSTATUS_BATCH` paging with fallback to `LISTSTATUS`,
//! `user.name` / delegation token, percent-encoded paths, timeouts, retries with jittered
//! backoff for retryable errors only, and one concurrency bound per cluster. Wire types stay
//! in this module.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::secret::Secret;

/// Settings of one cluster's WebHDFS client.
#[derive(Debug, Clone)]
pub struct WebHdfsConfig {
    /// Name of the cluster (metric label).
    pub cluster: String,
    /// NameNode HTTP(S) base URLs (`http://nn1:9870`), in preference order.
    pub namenodes: Vec<url::Url>,
    /// `user.name` for pseudo authentication (security off).
    pub user: Option<String>,
    /// Delegation token (security on), sent as `delegation=`.
    pub delegation_token: Option<Secret>,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Timeout of establishing a connection.
    pub connect_timeout: Duration,
    /// Requests in flight at once for this cluster (all operations together).
    pub max_concurrent_requests: usize,
    /// Retries of a retryable failure (after failover across NameNodes).
    pub max_retries: u32,
    /// First retry delay; doubles per retry, with full jitter.
    pub retry_initial_backoff: Duration,
    /// Upper bound of one retry delay.
    pub retry_max_backoff: Duration,
    /// PEM file of extra CA certificates for HTTPS NameNodes.
    pub ca_file: Option<std::path::PathBuf>,
}

/// Labels of `hive_hdfs_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Cluster name.
    pub cluster: String,
    /// WebHDFS operation (`LISTSTATUS_BATCH`, ...).
    pub op: String,
    /// HTTP status code, or `error` when no response arrived.
    pub code: String,
}

/// Labels of `hive_hdfs_up`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameNodeLabels {
    /// Cluster name.
    pub cluster: String,
    /// NameNode base URL.
    pub namenode: String,
}

/// Live WebHDFS metrics, shared by every cluster's client and registered once.
#[derive(Debug, Clone, Default)]
pub struct WebHdfsMetrics {
    /// `hive_hdfs_requests_total{cluster, op, code}`.
    pub requests: Family<RequestLabels, Counter>,
    /// `hive_hdfs_up{cluster, namenode}`: 1 when the NameNode answered its last request.
    pub up: Family<NameNodeLabels, Gauge>,
}

// STUB: replaced by the real client.
/// WebHDFS client.
#[derive(Debug)]
pub struct WebHdfs;
impl WebHdfs {
    /// Builds.
    pub fn new(_cfg: WebHdfsConfig, _m: WebHdfsMetrics) -> Result<Self, crate::fs::FsError> {
        Ok(Self)
    }
}
#[async_trait::async_trait]
impl crate::fs::FileSystem for WebHdfs {
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
