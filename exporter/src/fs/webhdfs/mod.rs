//! WebHDFS client (Hadoop `WebHDFS.md` REST API).
//!
//! Owns: NameNode HA failover (StandbyException / connection errors → next NameNode, the
//! active one remembered), `LISTSTATUS_BATCH` paging with fallback to `LISTSTATUS`,
//! `user.name` / delegation token, percent-encoded paths, timeouts, retries with jittered
//! backoff for retryable errors only, and one concurrency bound per cluster; and the file
//! operations on top: `OPEN` and `CREATE` through the DataNode the NameNode redirects to
//! (longer timeouts for the data, sized by the bytes moved), `MKDIRS`, `RENAME` with
//! `rename2` semantics, `DELETE`, `SETPERMISSION`, `SETOWNER`, and the mapping of their
//! `RemoteException`s onto [`FsError`]. The JSON wire types live in the private `wire`
//! module.
//!
//! Request plumbing, from the inside out:
//! * `send_to` sends one HTTP request to one NameNode while holding one permit of the
//!   cluster's semaphore, and records `hive_hdfs_requests_total` / `hive_hdfs_up`;
//! * `send_with_failover` walks the NameNodes starting at the remembered active one, moving
//!   on for a `StandbyException` or a connection failure (failover is not a retry);
//! * `send` retries what [`FsError::is_retryable`] allows, with full-jitter exponential
//!   backoff, holding no permit while it sleeps.
//!
//! Every NameNode request goes through `send`. The operations that move file contents
//! (`OPEN`, `CREATE`) are two requests: the NameNode's answer (through `send`) redirects to a
//! DataNode (307 `Location`), and that second request goes straight to the URL given, with
//! no failover (it is not a NameNode), holding a permit and counted in the metrics under the
//! same op. A retryable failure of the second request repeats both (`two_step`), so the
//! NameNode may pick another DataNode.
//!
//! Mutating operations and repetition: a failover or a retry may repeat a request the
//! NameNode already applied. `MKDIRS`, `SETPERMISSION`, `SETOWNER` and `CREATE` with
//! overwrite are idempotent; the others say in their doc comments what a repeated request
//! answers (`CREATE` without overwrite: [`FsError::AlreadyExists`]; `RENAME`:
//! [`FsError::NotFound`]; `DELETE`: `false`), and callers that need to know check the result.

mod wire;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rand::Rng;
use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::{EndpointProbe, EndpointState, EntryKind, FileStatus, FileSystem, FsError, PageSink};
use crate::secret::Secret;
use wire::{
    BooleanEnvelope, DirectoryListingEnvelope, FileStatusEnvelope, FileStatusesEnvelope,
    LocationEnvelope, RemoteExceptionEnvelope,
};

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

/// Why a [`WebHdfsConfig`] cannot be turned into a client.
#[derive(Debug, thiserror::Error)]
pub enum WebHdfsConfigError {
    /// `namenodes` is empty.
    #[error("cluster {cluster}: no NameNode URL configured")]
    NoNameNodes {
        /// Cluster name.
        cluster: String,
    },
    /// A NameNode URL is not a plain `http(s)://host:port[/prefix]` base URL.
    #[error("cluster {cluster}: NameNode URL {url} must be http(s) without query or fragment")]
    BadNameNodeUrl {
        /// Cluster name.
        cluster: String,
        /// The URL as configured.
        url: String,
    },
    /// `max_concurrent_requests` is 0.
    #[error("cluster {cluster}: max_concurrent_requests must be at least 1")]
    ZeroConcurrency {
        /// Cluster name.
        cluster: String,
    },
    /// The CA file cannot be read.
    #[error("cluster {cluster}: cannot read CA file {path}: {source}")]
    CaFileRead {
        /// Cluster name.
        cluster: String,
        /// The configured file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The CA file holds no usable PEM certificate.
    #[error("cluster {cluster}: CA file {path}: {message}")]
    CaFileInvalid {
        /// Cluster name.
        cluster: String,
        /// The configured file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("cluster {cluster}: cannot build the HTTP client: {source}")]
    Client {
        /// Cluster name.
        cluster: String,
        /// The reqwest error.
        #[source]
        source: reqwest::Error,
    },
}

/// WebHDFS operation names, as sent in `op=` and used as the `op` metric label.
mod op {
    pub(super) const GETFILESTATUS: &str = "GETFILESTATUS";
    pub(super) const LISTSTATUS: &str = "LISTSTATUS";
    pub(super) const LISTSTATUS_BATCH: &str = "LISTSTATUS_BATCH";
    pub(super) const OPEN: &str = "OPEN";
    pub(super) const CREATE: &str = "CREATE";
    pub(super) const MKDIRS: &str = "MKDIRS";
    pub(super) const RENAME: &str = "RENAME";
    pub(super) const DELETE: &str = "DELETE";
    pub(super) const SETPERMISSION: &str = "SETPERMISSION";
    pub(super) const SETOWNER: &str = "SETOWNER";
}

/// Slowest transfer rate a DataNode transfer is given time for, on top of the request
/// timeout: a transfer of `n` bytes may take `request_timeout + n / MIN_TRANSFER_RATE`.
const MIN_TRANSFER_RATE: u64 = 1024 * 1024;

/// Upper bound of a DataNode transfer's timeout.
const MAX_TRANSFER_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Entries handed to the sink at once when a whole `LISTSTATUS` response is split up (the
/// NameNode's own `dfs.ls.limit` default, so pages look alike with and without batching).
const LIST_PAGE_SIZE: usize = 1000;

/// Bytes kept of a non-JSON error body for the error message.
const ERROR_SNIPPET_CHARS: usize = 200;

/// Characters escaped in path segments and query values: everything except RFC 3986
/// unreserved (`ALPHA / DIGIT / "-" / "." / "_" / "~"`). In particular `%`, space, `;`
/// (a matrix-parameter separator to the NameNode's JAX-RS layer), `+`, `=`, `&`, `#`, `?`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One NameNode endpoint.
struct NameNode {
    /// `<configured base URL without trailing slash>/webhdfs/v1`.
    base: String,
    /// The base URL as configured (metric label, logs, probe results).
    label: String,
    /// This NameNode's `hive_hdfs_up` gauge (a handle into the shared family).
    up: Gauge,
}

/// A NameNode's (or DataNode's) answer with a 2xx or 3xx status (redirects are not
/// followed, so the two-step `OPEN` and `CREATE` can read `Location`).
#[derive(Debug)]
pub(crate) struct Reply {
    /// HTTP status.
    pub(crate) status: StatusCode,
    /// Response headers.
    pub(crate) headers: HeaderMap,
    /// The whole body.
    pub(crate) body: Bytes,
}

/// A WebHDFS client for one cluster: its NameNodes, HTTP connection pool, concurrency bound
/// and remembered state (active NameNode, whether `LISTSTATUS_BATCH` works).
pub struct WebHdfs {
    cluster: String,
    client: reqwest::Client,
    namenodes: Vec<NameNode>,
    /// Index into `namenodes` of the NameNode that last served a request.
    active: AtomicUsize,
    /// Set once a NameNode rejected `LISTSTATUS_BATCH` as an unknown op (pre-HDFS-10784
    /// servers such as Hadoop 2.6-based CDH 5); from then on this client uses `LISTSTATUS`.
    batch_unsupported: AtomicBool,
    /// Bounds the HTTP requests in flight for this cluster.
    permits: Semaphore,
    /// `&user.name=..&delegation=..`, already encoded. Holds the token: never printed.
    auth_query: String,
    user: Option<String>,
    has_token: bool,
    max_retries: u32,
    retry_initial_backoff: Duration,
    retry_max_backoff: Duration,
    request_timeout: Duration,
    metrics: WebHdfsMetrics,
    /// Handles into `metrics.requests`, keyed by (op, status or 0 for `error`), so the hot
    /// path does not build label strings per request.
    request_counters: RwLock<HashMap<(&'static str, u16), Counter>>,
}

impl fmt::Debug for WebHdfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebHdfs")
            .field("cluster", &self.cluster)
            .field(
                "namenodes",
                &self.namenodes.iter().map(|n| &n.label).collect::<Vec<_>>(),
            )
            .field("active", &self.active_namenode())
            .field("batch_listing", &self.batch_listing_supported())
            .field("user", &self.user)
            .field(
                "delegation_token",
                &if self.has_token { "***" } else { "none" },
            )
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

impl WebHdfs {
    /// Builds the client (HTTP connection pool, TLS roots). Makes no request.
    pub fn new(cfg: WebHdfsConfig, metrics: WebHdfsMetrics) -> Result<Self, WebHdfsConfigError> {
        let cluster = cfg.cluster;
        if cfg.namenodes.is_empty() {
            return Err(WebHdfsConfigError::NoNameNodes { cluster });
        }
        if cfg.max_concurrent_requests == 0 {
            return Err(WebHdfsConfigError::ZeroConcurrency { cluster });
        }
        let mut namenodes = Vec::with_capacity(cfg.namenodes.len());
        for url in &cfg.namenodes {
            if !matches!(url.scheme(), "http" | "https")
                || url.query().is_some()
                || url.fragment().is_some()
                || url.cannot_be_a_base()
            {
                return Err(WebHdfsConfigError::BadNameNodeUrl {
                    cluster,
                    url: url.to_string(),
                });
            }
            let label = url.as_str().trim_end_matches('/').to_owned();
            let up = metrics
                .up
                .get_or_create(&NameNodeLabels {
                    cluster: cluster.clone(),
                    namenode: label.clone(),
                })
                .clone();
            namenodes.push(NameNode {
                base: format!("{label}/webhdfs/v1"),
                label,
                up,
            });
        }

        let mut builder = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.connect_timeout)
            .pool_max_idle_per_host(cfg.max_concurrent_requests)
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(60))
            // NameNodes are reached directly; a proxy from the environment would break HA.
            .no_proxy()
            // Not followed: reads never redirect, and CREATE/OPEN want the Location.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hive-smallfiles/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path).map_err(|source| WebHdfsConfigError::CaFileRead {
                cluster: cluster.clone(),
                path: path.display().to_string(),
                source,
            })?;
            let invalid = |message: String| WebHdfsConfigError::CaFileInvalid {
                cluster: cluster.clone(),
                path: path.display().to_string(),
                message,
            };
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| invalid(e.to_string()))?;
            if certs.is_empty() {
                return Err(invalid("no PEM certificate in the file".to_owned()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|source| WebHdfsConfigError::Client {
                cluster: cluster.clone(),
                source,
            })?;

        let mut auth_query = String::new();
        if let Some(user) = &cfg.user {
            auth_query.push_str("&user.name=");
            push_encoded(&mut auth_query, user);
        }
        if let Some(token) = &cfg.delegation_token {
            auth_query.push_str("&delegation=");
            push_encoded(&mut auth_query, token.expose());
        }

        Ok(Self {
            cluster,
            client,
            namenodes,
            active: AtomicUsize::new(0),
            batch_unsupported: AtomicBool::new(false),
            permits: Semaphore::new(cfg.max_concurrent_requests.min(Semaphore::MAX_PERMITS)),
            auth_query,
            user: cfg.user,
            has_token: cfg.delegation_token.is_some(),
            max_retries: cfg.max_retries,
            retry_initial_backoff: cfg.retry_initial_backoff,
            retry_max_backoff: cfg.retry_max_backoff,
            request_timeout: cfg.request_timeout,
            metrics,
            request_counters: RwLock::new(HashMap::new()),
        })
    }

    /// The cluster name this client was configured with.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Base URL of the NameNode that served the last request (the first configured one
    /// until a failover happened).
    pub fn active_namenode(&self) -> String {
        self.namenodes[self.active_index()].label.clone()
    }

    /// False once a NameNode rejected `LISTSTATUS_BATCH` and this client switched to
    /// `LISTSTATUS` for good.
    pub fn batch_listing_supported(&self) -> bool {
        !self.batch_unsupported.load(Ordering::Relaxed)
    }

    fn active_index(&self) -> usize {
        self.active.load(Ordering::Relaxed) % self.namenodes.len()
    }

    /// Sends one operation with failover across NameNodes and retries of retryable errors.
    /// `params` are extra query parameters (values are encoded here).
    ///
    /// A mutating operation sent through here may be applied twice (a failover or a retry
    /// repeats a request whose answer was lost): see the module documentation.
    pub(crate) async fn send(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Reply, FsError> {
        let mut attempt = 0;
        loop {
            match self.send_with_failover(op, &method, path, params).await {
                Err(e) if e.is_retryable() && attempt < self.max_retries => {
                    let delay = self.backoff(attempt);
                    attempt += 1;
                    tracing::debug!(
                        cluster = %self.cluster, op, path, attempt, ?delay, error = %e,
                        "Retrying WebHDFS request."
                    );
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Full jitter: uniform in `[0, min(max, initial * 2^attempt)]`.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .retry_initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.retry_max_backoff);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
    }

    /// Tries the NameNodes in order, starting at the remembered active one.
    async fn send_with_failover(
        &self,
        op: &'static str,
        method: &Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Reply, FsError> {
        let n = self.namenodes.len();
        let start = self.active_index();
        let mut last_error = None;
        for k in 0..n {
            let i = (start + k) % n;
            match self.send_to(i, op, method.clone(), path, params).await {
                Err(e) if is_failover_error(&e) => {
                    tracing::debug!(
                        cluster = %self.cluster, namenode = %self.namenodes[i].label, op,
                        error = %e, "NameNode did not serve the request; trying the next one."
                    );
                    last_error = Some(e);
                }
                other => {
                    if k > 0 {
                        self.active.store(i, Ordering::Relaxed);
                        tracing::info!(
                            cluster = %self.cluster, namenode = %self.namenodes[i].label,
                            "Failed over to NameNode."
                        );
                    }
                    return other;
                }
            }
        }
        match last_error {
            // A single endpoint (HttpFS, non-HA): its own error says more.
            Some(e) if n == 1 => Err(e),
            last => Err(FsError::NoActiveNameNode {
                tried: n,
                last: last.map(|e| e.to_string()).unwrap_or_default(),
            }),
        }
    }

    /// One HTTP request to NameNode `i`, holding one permit for its duration (body included).
    async fn send_to(
        &self,
        i: usize,
        op: &'static str,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Reply, FsError> {
        let nn = &self.namenodes[i];
        let url = self.url(nn, op, path, params);
        let Ok(permit) = self.permits.acquire().await else {
            return Err(FsError::Connection {
                op,
                path: path.to_owned(),
                message: "client is shut down".to_owned(),
            });
        };
        let mut response = match self.client.request(method, url).send().await {
            Ok(r) => r,
            Err(e) => {
                self.count_request(op, None);
                if e.is_connect() {
                    nn.up.set(0);
                }
                return Err(transport_error(op, path, e));
            }
        };
        nn.up.set(1);
        let status = response.status();
        self.count_request(op, Some(status.as_u16()));
        let headers = std::mem::take(response.headers_mut());
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(op, path, e))?;
        drop(permit);
        if status.is_success() || status.is_redirection() {
            Ok(Reply {
                status,
                headers,
                body,
            })
        } else {
            Err(remote_error(op, path, status, &body))
        }
    }

    /// `{base}/webhdfs/v1{encoded path}?op={op}{auth}{&k=encoded v}`.
    fn url(&self, nn: &NameNode, op: &str, path: &str, params: &[(&str, &str)]) -> String {
        let extra: usize = params.iter().map(|(k, v)| k.len() + v.len() * 3 + 2).sum();
        let mut url = String::with_capacity(
            nn.base.len() + path.len() * 3 + op.len() + self.auth_query.len() + extra + 8,
        );
        url.push_str(&nn.base);
        if !path.starts_with('/') {
            url.push('/');
        }
        for (k, segment) in path.split('/').enumerate() {
            if k > 0 {
                url.push('/');
            }
            push_encoded(&mut url, segment);
        }
        url.push_str("?op=");
        url.push_str(op);
        url.push_str(&self.auth_query);
        for (key, value) in params {
            url.push('&');
            url.push_str(key);
            url.push('=');
            push_encoded(&mut url, value);
        }
        url
    }

    fn count_request(&self, op: &'static str, status: Option<u16>) {
        let key = (op, status.unwrap_or(0));
        if let Ok(counters) = self.request_counters.read() {
            if let Some(counter) = counters.get(&key) {
                counter.inc();
                return;
            }
        }
        let labels = RequestLabels {
            cluster: self.cluster.clone(),
            op: op.to_owned(),
            code: status.map_or_else(|| "error".to_owned(), |s| s.to_string()),
        };
        let counter = self.metrics.requests.get_or_create(&labels).clone();
        counter.inc();
        if let Ok(mut counters) = self.request_counters.write() {
            counters.insert(key, counter);
        }
    }

    /// Lists with `LISTSTATUS_BATCH`. `Ok(false)` when the server does not know the op.
    async fn list_batched(&self, path: &str, sink: &mut PageSink<'_>) -> Result<bool, FsError> {
        let mut start_after: Option<String> = None;
        loop {
            let reply = match &start_after {
                None => {
                    self.send(op::LISTSTATUS_BATCH, Method::GET, path, &[])
                        .await
                }
                Some(after) => {
                    let params = [("startAfter", after.as_str())];
                    self.send(op::LISTSTATUS_BATCH, Method::GET, path, &params)
                        .await
                }
            };
            let reply = match reply {
                Ok(reply) => reply,
                // Only before anything reached the sink: switching ops mid-listing would
                // hand over entries twice.
                Err(e) if start_after.is_none() && is_unknown_op(&e, op::LISTSTATUS_BATCH) => {
                    return Ok(false);
                }
                Err(e) => return Err(e),
            };
            let listing: DirectoryListingEnvelope = parse(op::LISTSTATUS_BATCH, path, &reply.body)?;
            let remaining = listing.directory_listing.remaining_entries;
            let page: Vec<FileStatus> = listing
                .directory_listing
                .partial_listing
                .file_statuses
                .file_status
                .into_iter()
                .map(FileStatus::from)
                .collect();
            let next = page.last().map(|s| s.name.clone());
            if !page.is_empty() {
                sink(page);
            }
            if remaining <= 0 {
                return Ok(true);
            }
            match next {
                Some(name) if !name.is_empty() && start_after.as_deref() != Some(&name) => {
                    start_after = Some(name);
                }
                _ => {
                    return Err(FsError::InvalidResponse {
                        op: op::LISTSTATUS_BATCH,
                        path: path.to_owned(),
                        message: format!(
                            "remainingEntries is {remaining} but the batch gives no new \
                             startAfter"
                        ),
                    });
                }
            }
        }
    }

    /// Lists with `LISTSTATUS` (one response), handing it on in pages.
    async fn list_whole(&self, path: &str, sink: &mut PageSink<'_>) -> Result<(), FsError> {
        let reply = self.send(op::LISTSTATUS, Method::GET, path, &[]).await?;
        let listing: FileStatusesEnvelope = parse(op::LISTSTATUS, path, &reply.body)?;
        drop(reply);
        let mut entries = listing
            .file_statuses
            .file_status
            .into_iter()
            .map(FileStatus::from);
        loop {
            let page: Vec<FileStatus> = entries.by_ref().take(LIST_PAGE_SIZE).collect();
            if page.is_empty() {
                return Ok(());
            }
            sink(page);
        }
    }

    /// The second request of a two-step operation, straight to `url` (a DataNode, or HttpFS
    /// itself): no failover and no retry here, one permit for its duration, counted in
    /// `hive_hdfs_requests_total` under `op`. A `body` is sent as
    /// `application/octet-stream` (HttpFS rejects other content types).
    async fn send_to_datanode(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        url: url::Url,
        body: Option<reqwest::Body>,
        timeout: Duration,
    ) -> Result<Reply, FsError> {
        let Ok(permit) = self.permits.acquire().await else {
            return Err(FsError::Connection {
                op,
                path: path.to_owned(),
                message: "client is shut down".to_owned(),
            });
        };
        let mut request = self.client.request(method, url).timeout(timeout);
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(body);
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.count_request(op, None);
                return Err(transport_error(op, path, e));
            }
        };
        let status = response.status();
        self.count_request(op, Some(status.as_u16()));
        let headers = std::mem::take(response.headers_mut());
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(op, path, e))?;
        drop(permit);
        if status.is_success() {
            Ok(Reply {
                status,
                headers,
                body,
            })
        } else {
            Err(remote_error(op, path, status, &body))
        }
    }

    /// Runs one two-step operation (`attempt`: the NameNode request, then the DataNode
    /// request) and repeats it whole, with backoff, while the DataNode request fails
    /// retryably, so that the NameNode may choose another DataNode. A failed NameNode
    /// request ends it: `send` has already failed over and retried.
    async fn two_step<T, F, Fut>(
        &self,
        op: &'static str,
        path: &str,
        mut attempt: F,
    ) -> Result<T, FsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        let mut retries = 0;
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(StepError::NameNode(e)) => return Err(e),
                Err(StepError::DataNode(e)) if e.is_retryable() && retries < self.max_retries => {
                    let delay = self.backoff(retries);
                    retries += 1;
                    tracing::debug!(
                        cluster = %self.cluster, op, path, attempt = retries, ?delay, error = %e,
                        "Retrying two-step WebHDFS operation after a DataNode failure."
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(StepError::DataNode(e)) => return Err(e),
            }
        }
    }

    /// Time allowed for a DataNode transfer of `bytes`: the request timeout plus what the
    /// bytes take at [`MIN_TRANSFER_RATE`] (bounded by [`MAX_TRANSFER_TIMEOUT`]).
    fn transfer_timeout(&self, bytes: u64) -> Duration {
        let transfer = Duration::from_secs(bytes / MIN_TRANSFER_RATE).min(MAX_TRANSFER_TIMEOUT);
        self.request_timeout.saturating_add(transfer)
    }

    /// One `OPEN`: the NameNode redirects to a DataNode (307), whose answer is the data; a
    /// gateway that serves data itself (HttpFS) answers 200 with the data at once.
    async fn open_once(
        &self,
        path: &str,
        params: &[(&str, &str)],
        length: u64,
    ) -> Result<Bytes, StepError> {
        let reply = self
            .send(op::OPEN, Method::GET, path, params)
            .await
            .map_err(StepError::NameNode)?;
        let mut data =
            match redirect_location(op::OPEN, path, &reply).map_err(StepError::NameNode)? {
                None => reply.body,
                Some(url) => {
                    drop(reply);
                    self.send_to_datanode(
                        op::OPEN,
                        Method::GET,
                        path,
                        url,
                        None,
                        self.transfer_timeout(length),
                    )
                    .await
                    .map_err(StepError::DataNode)?
                    .body
                }
            };
        // The servers honour `length`; never hand out more than asked for anyway.
        if let Ok(length) = usize::try_from(length) {
            data.truncate(length);
        }
        Ok(data)
    }

    /// One `CREATE`: the NameNode (no body) redirects to a DataNode, which takes the data and
    /// answers 201 Created. The upload body is made anew for every attempt.
    async fn create_once(
        &self,
        path: &str,
        params: &[(&str, &str)],
        upload: &Upload<'_>,
    ) -> Result<(), StepError> {
        // Open the local file first: a missing one costs no NameNode request.
        let (body, len) = upload.body().await.map_err(StepError::NameNode)?;
        let reply = self
            .send(op::CREATE, Method::PUT, path, params)
            .await
            .map_err(StepError::NameNode)?;
        let url = match redirect_location(op::CREATE, path, &reply).map_err(StepError::NameNode)? {
            Some(url) => url,
            // `noredirect=true` shape: 200 `{"Location": "..."}`.
            None => {
                let target: LocationEnvelope =
                    parse(op::CREATE, path, &reply.body).map_err(StepError::NameNode)?;
                parse_location(op::CREATE, path, &target.location).map_err(StepError::NameNode)?
            }
        };
        drop(reply);
        self.send_to_datanode(
            op::CREATE,
            Method::PUT,
            path,
            url,
            Some(body),
            self.transfer_timeout(len),
        )
        .await
        .map_err(StepError::DataNode)?;
        Ok(())
    }

    /// `CREATE` with the parameters of [`FileSystem::create`].
    async fn create_with(
        &self,
        path: &str,
        upload: Upload<'_>,
        overwrite: bool,
        permission: Option<u32>,
    ) -> Result<(), FsError> {
        let permission = permission.map(octal);
        let mut params = vec![("overwrite", if overwrite { "true" } else { "false" })];
        if let Some(p) = &permission {
            params.push(("permission", p.as_str()));
        }
        let params = params.as_slice();
        let upload = &upload;
        self.two_step(op::CREATE, path, move || {
            self.create_once(path, params, upload)
        })
        .await
    }

    async fn probe_one(&self, i: usize) -> EndpointProbe {
        let state = match self
            .send_to(i, op::GETFILESTATUS, Method::GET, "/", &[])
            .await
        {
            Ok(reply) => match parse::<FileStatusEnvelope>(op::GETFILESTATUS, "/", &reply.body) {
                Ok(_) => EndpointState::Active,
                Err(e) => EndpointState::Down(e.to_string()),
            },
            Err(e) if is_standby(&e) => EndpointState::Standby,
            Err(e) => EndpointState::Down(e.to_string()),
        };
        EndpointProbe {
            endpoint: self.namenodes[i].label.clone(),
            state,
        }
    }
}

#[async_trait]
impl FileSystem for WebHdfs {
    /// `LISTSTATUS_BATCH` paging (HDFS-10784, Hadoop 2.8/3.0): one request per NameNode
    /// batch of `dfs.ls.limit` entries, `startAfter` = the last `pathSuffix`. Falls back to
    /// `LISTSTATUS` for good when the server rejects the op (HTTP 400
    /// `IllegalArgumentException: Invalid value for webhdfs parameter "op"`). Empty pages are
    /// not handed to the sink.
    async fn list_status(&self, path: &str, sink: &mut PageSink<'_>) -> Result<(), FsError> {
        if self.batch_listing_supported() {
            if self.list_batched(path, sink).await? {
                return Ok(());
            }
            if !self.batch_unsupported.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    cluster = %self.cluster,
                    "NameNode does not support LISTSTATUS_BATCH; using LISTSTATUS (whole \
                     directories per response) from now on."
                );
            }
        }
        self.list_whole(path, sink).await
    }

    async fn file_status(&self, path: &str) -> Result<FileStatus, FsError> {
        let reply = self.send(op::GETFILESTATUS, Method::GET, path, &[]).await?;
        let status: FileStatusEnvelope = parse(op::GETFILESTATUS, path, &reply.body)?;
        Ok(status.file_status.into())
    }

    /// One `GETFILESTATUS /` per NameNode, concurrently, without failover or retries.
    async fn probe(&self) -> Vec<EndpointProbe> {
        let probes =
            futures::future::join_all((0..self.namenodes.len()).map(|i| self.probe_one(i))).await;
        let current = self.active_index();
        if probes[current].state != EndpointState::Active {
            if let Some(i) = probes.iter().position(|p| p.state == EndpointState::Active) {
                self.active.store(i, Ordering::Relaxed);
            }
        }
        probes
    }

    /// `OPEN` with `offset` and `length` (two steps; see `open_once`). Hadoop's NameNode
    /// rejects an offset at or past the end of a non-empty file (`IOException: Offset=..
    /// out of the range`); only then is the file's length checked (`GETFILESTATUS`), and an
    /// offset equal to it reads as empty.
    async fn read_range(&self, path: &str, offset: u64, length: u64) -> Result<Bytes, FsError> {
        let (offset_text, length_text) = (offset.to_string(), length.to_string());
        let params = [
            ("offset", offset_text.as_str()),
            ("length", length_text.as_str()),
        ];
        let params = params.as_slice();
        let result = self
            .two_step(op::OPEN, path, move || self.open_once(path, params, length))
            .await;
        match result {
            Err(e) if offset > 0 && matches!(e, FsError::Remote { .. }) && !e.is_retryable() => {
                match self.file_status(path).await {
                    Ok(st) if st.kind == EntryKind::File && st.length == offset => Ok(Bytes::new()),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// Two-step `CREATE` streaming the local file as the body (reopened for every attempt);
    /// the local file is left in place. Parent directories are created by the NameNode.
    ///
    /// Repetition: when the DataNode request fails retryably (connection, timeout, 5xx) the
    /// whole operation is repeated. If the failed attempt had in fact created the file, a
    /// repeated `overwrite = false` create answers [`FsError::AlreadyExists`] although this
    /// call created it: callers that take locks this way read the file back to tell.
    async fn create_from_local(
        &self,
        path: &str,
        local: &Path,
        overwrite: bool,
        permission: Option<u32>,
    ) -> Result<(), FsError> {
        self.create_with(path, Upload::File(local), overwrite, permission)
            .await
    }

    /// Two-step `CREATE` with `data` as the body; repetition as in
    /// [`FileSystem::create_from_local`] (a repeated `overwrite = false` create may answer
    /// [`FsError::AlreadyExists`] for a file this call created).
    async fn create(
        &self,
        path: &str,
        data: Bytes,
        overwrite: bool,
        permission: Option<u32>,
    ) -> Result<(), FsError> {
        self.create_with(path, Upload::Bytes(data), overwrite, permission)
            .await
    }

    /// `MKDIRS` (`permission` as octal, the NameNode's default 755 otherwise); an answer of
    /// `{"boolean": false}` is an error. Idempotent.
    async fn mkdirs(&self, path: &str, permission: Option<u32>) -> Result<(), FsError> {
        let permission = permission.map(octal);
        let params: Vec<(&str, &str)> = permission
            .iter()
            .map(|p| ("permission", p.as_str()))
            .collect();
        let reply = self.send(op::MKDIRS, Method::PUT, path, &params).await?;
        let answer: BooleanEnvelope = parse(op::MKDIRS, path, &reply.body)?;
        if answer.boolean {
            Ok(())
        } else {
            Err(FsError::InvalidResponse {
                op: op::MKDIRS,
                path: path.to_owned(),
                message: "the NameNode answered {\"boolean\": false}".to_owned(),
            })
        }
    }

    /// `RENAME` with `renameoptions=NONE`, which makes Hadoop's NameNode call
    /// `rename2(src, dst, NONE)` and answer 200 with an empty body, or an exception:
    /// `FileAlreadyExistsException` when `dst` exists (for a directory onto a directory),
    /// `IOException: Source .. and destination .. must both be directories` when a file meets
    /// a directory (both are [`FsError::AlreadyExists`] for `dst` here),
    /// `FileNotFoundException` when `src` or `dst`'s parent is missing ([`FsError::NotFound`]
    /// naming `src`, or `dst`'s parent when `src` exists), `ParentNotDirectoryException` when
    /// `dst`'s parent is a file.
    ///
    /// Repetition: when the answer of a successful rename is lost (connection or timeout), the
    /// repeated request fails with [`FsError::NotFound`] for `src`. That is not hidden here:
    /// a caller that gets `NotFound` after such trouble checks whether `dst` holds what it
    /// renamed. `NotFound` itself is never retried.
    async fn rename(&self, src: &str, dst: &str) -> Result<(), FsError> {
        let params = [("destination", dst), ("renameoptions", "NONE")];
        match self.send(op::RENAME, Method::PUT, src, &params).await {
            Ok(reply) => {
                let body = reply.body.trim_ascii();
                if body.is_empty() || body == b"null" {
                    return Ok(());
                }
                match serde_json::from_slice::<BooleanEnvelope>(body) {
                    // A server that ignored `renameoptions` and used the old rename.
                    Ok(answer) if !answer.boolean => Err(FsError::InvalidResponse {
                        op: op::RENAME,
                        path: src.to_owned(),
                        message: "the server answered {\"boolean\": false}: it does not \
                                  support renameoptions"
                            .to_owned(),
                    }),
                    Ok(_) => {
                        tracing::warn!(
                            cluster = %self.cluster, src, dst,
                            "The server answered RENAME with renameoptions=NONE by a boolean: \
                             it used the old rename semantics."
                        );
                        Ok(())
                    }
                    Err(_) => Ok(()),
                }
            }
            Err(FsError::AlreadyExists { .. }) => Err(FsError::AlreadyExists {
                path: dst.to_owned(),
            }),
            Err(FsError::Remote {
                exception, message, ..
            }) if exception == "IOException" && message.contains("must both be directories") => {
                Err(FsError::AlreadyExists {
                    path: dst.to_owned(),
                })
            }
            Err(FsError::NotFound { .. }) => {
                let missing = match self.file_status(src).await {
                    Ok(_) => super::parent_path(&super::normalize_path(dst)).to_owned(),
                    Err(_) => src.to_owned(),
                };
                Err(FsError::NotFound { path: missing })
            }
            Err(e) => Err(e),
        }
    }

    /// `DELETE` with `recursive`; `{"boolean": false}` means `path` did not exist. A delete
    /// repeated after a lost answer also says `false`.
    async fn delete(&self, path: &str, recursive: bool) -> Result<bool, FsError> {
        let params = [("recursive", if recursive { "true" } else { "false" })];
        let reply = self.send(op::DELETE, Method::DELETE, path, &params).await?;
        let answer: BooleanEnvelope = parse(op::DELETE, path, &reply.body)?;
        Ok(answer.boolean)
    }

    /// `SETPERMISSION` (octal). Idempotent.
    async fn set_permission(&self, path: &str, permission: u32) -> Result<(), FsError> {
        let permission = octal(permission);
        let params = [("permission", permission.as_str())];
        self.send(op::SETPERMISSION, Method::PUT, path, &params)
            .await?;
        Ok(())
    }

    /// `SETOWNER` with the names given. With neither, fails as the NameNode would
    /// (`IllegalArgumentException: Both owner and group are empty.`) without asking it.
    /// Idempotent.
    async fn set_owner(
        &self,
        path: &str,
        owner: Option<&str>,
        group: Option<&str>,
    ) -> Result<(), FsError> {
        let mut params = Vec::with_capacity(2);
        if let Some(owner) = owner {
            params.push(("owner", owner));
        }
        if let Some(group) = group {
            params.push(("group", group));
        }
        if params.is_empty() {
            return Err(FsError::Remote {
                op: op::SETOWNER,
                path: path.to_owned(),
                status: StatusCode::BAD_REQUEST.as_u16(),
                exception: "IllegalArgumentException".to_owned(),
                message: "Both owner and group are empty.".to_owned(),
            });
        }
        self.send(op::SETOWNER, Method::PUT, path, &params).await?;
        Ok(())
    }
}

/// Why one attempt of a two-step operation failed.
#[derive(Debug)]
enum StepError {
    /// The NameNode request (already failed over and retried by `send`).
    NameNode(FsError),
    /// The request to the DataNode the NameNode redirected to.
    DataNode(FsError),
}

/// The data of a `CREATE`.
#[derive(Debug)]
enum Upload<'a> {
    /// In memory (cheap to clone for a repeated attempt).
    Bytes(Bytes),
    /// A local file, streamed (opened anew for a repeated attempt).
    File(&'a Path),
}

impl Upload<'_> {
    /// A request body and its length in bytes.
    async fn body(&self) -> Result<(reqwest::Body, u64), FsError> {
        match self {
            Self::Bytes(data) => Ok((reqwest::Body::from(data.clone()), data.len() as u64)),
            Self::File(local) => {
                let local_error = |source| FsError::Io {
                    path: local.display().to_string(),
                    source,
                };
                let file = tokio::fs::File::open(local).await.map_err(local_error)?;
                let len = file.metadata().await.map_err(local_error)?.len();
                let stream = tokio_util::io::ReaderStream::new(file);
                Ok((reqwest::Body::wrap_stream(stream), len))
            }
        }
    }
}

/// Permission bits as WebHDFS wants them: an octal string (`755`, `1777`).
fn octal(permission: u32) -> String {
    format!("{permission:o}")
}

/// Where a NameNode's answer redirects to: `Some` for a 3xx (whose `Location` must be an
/// absolute http(s) URL), `None` for a 2xx.
fn redirect_location(
    op: &'static str,
    path: &str,
    reply: &Reply,
) -> Result<Option<url::Url>, FsError> {
    if !reply.status.is_redirection() {
        return Ok(None);
    }
    let location = reply
        .headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| FsError::InvalidResponse {
            op,
            path: path.to_owned(),
            message: format!("HTTP {} without a usable Location header", reply.status),
        })?;
    parse_location(op, path, location).map(Some)
}

/// Parses a redirect target. The URL carries the delegation token: it is never put into
/// an error message.
fn parse_location(op: &'static str, path: &str, location: &str) -> Result<url::Url, FsError> {
    match url::Url::parse(location) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(url),
        _ => Err(FsError::InvalidResponse {
            op,
            path: path.to_owned(),
            message: "the redirect Location is not an absolute http(s) URL".to_owned(),
        }),
    }
}

fn push_encoded(out: &mut String, value: &str) {
    for chunk in utf8_percent_encode(value, COMPONENT) {
        out.push_str(chunk);
    }
}

fn parse<T: DeserializeOwned>(op: &'static str, path: &str, body: &[u8]) -> Result<T, FsError> {
    serde_json::from_slice(body).map_err(|e| FsError::InvalidResponse {
        op,
        path: path.to_owned(),
        message: format!("{e} (body: {})", snippet(body)),
    })
}

/// A transport failure. The URL (which may carry the delegation token) is stripped.
fn transport_error(op: &'static str, path: &str, e: reqwest::Error) -> FsError {
    let e = e.without_url();
    if e.is_timeout() && !e.is_connect() {
        return FsError::Timeout {
            op,
            path: path.to_owned(),
        };
    }
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    FsError::Connection {
        op,
        path: path.to_owned(),
        message,
    }
}

/// Maps an error status and its body (`RemoteException` JSON, or anything else such as the
/// HTML page of an authentication filter) to an [`FsError`].
fn remote_error(op: &'static str, path: &str, status: StatusCode, body: &[u8]) -> FsError {
    let Ok(envelope) = serde_json::from_slice::<RemoteExceptionEnvelope>(body) else {
        if status == StatusCode::NOT_FOUND {
            return FsError::NotFound {
                path: path.to_owned(),
            };
        }
        return FsError::Remote {
            op,
            path: path.to_owned(),
            status: status.as_u16(),
            exception: status.canonical_reason().unwrap_or("").to_owned(),
            message: snippet(body),
        };
    };
    let rex = envelope.remote_exception;
    if rex.is("FileNotFoundException") || status == StatusCode::NOT_FOUND {
        return FsError::NotFound {
            path: path.to_owned(),
        };
    }
    if rex.is("FileAlreadyExistsException") {
        return FsError::AlreadyExists {
            path: path.to_owned(),
        };
    }
    if rex.is("AccessControlException") {
        return FsError::PermissionDenied {
            path: path.to_owned(),
            message: rex.message,
        };
    }
    let exception = if rex.exception.is_empty() {
        rex.java_class_name
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned()
    } else {
        rex.exception
    };
    FsError::Remote {
        op,
        path: path.to_owned(),
        status: status.as_u16(),
        exception,
        message: rex.message,
    }
}

/// The first characters of a body, whitespace collapsed, for error messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_SNIPPET_CHARS * 4)]);
    let mut out = String::with_capacity(ERROR_SNIPPET_CHARS);
    for (n, word) in text.split_whitespace().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() >= ERROR_SNIPPET_CHARS {
            break;
        }
    }
    if let Some((cut, _)) = out.char_indices().nth(ERROR_SNIPPET_CHARS) {
        out.truncate(cut);
        out.push('…');
    }
    out
}

fn is_standby(e: &FsError) -> bool {
    matches!(e, FsError::Remote { exception, .. } if exception == "StandbyException")
}

/// Errors after which the next NameNode is tried: a standby answer, or no usable
/// connection (as Hadoop's `WebHdfsFileSystem` fails over on `StandbyException` and
/// `ConnectException`).
fn is_failover_error(e: &FsError) -> bool {
    is_standby(e) || matches!(e, FsError::Connection { .. })
}

/// The server does not know the op: Hadoop's `ExceptionHandler` turns the failed enum
/// parse of `op` into HTTP 400 `IllegalArgumentException: Invalid value for webhdfs
/// parameter "op": ...`; HttpFS says `Invalid HTTP GET operation [<OP>]`.
fn is_unknown_op(e: &FsError, op: &str) -> bool {
    matches!(e, FsError::Remote { status: 400, exception, message, .. }
        if (exception == "IllegalArgumentException"
            || exception == "UnsupportedOperationException")
            && (message.contains("\"op\"") || message.contains(op)))
}
