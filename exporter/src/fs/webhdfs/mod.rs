//! WebHDFS client (Hadoop `WebHDFS.md` REST API).
//!
//! Owns: NameNode HA failover (StandbyException / connection errors → next NameNode, the
//! active one remembered), `LISTSTATUS_BATCH` paging with fallback to `LISTSTATUS`,
//! `user.name` / delegation token, percent-encoded paths, timeouts, retries with jittered
//! backoff for retryable errors only, and one concurrency bound per cluster. The JSON wire
//! types live in the private `wire` module.
//!
//! Request plumbing, from the inside out:
//! * `send_to` sends one HTTP request to one NameNode while holding one permit of the
//!   cluster's semaphore, and records `hive_hdfs_requests_total` / `hive_hdfs_up`;
//! * `send_with_failover` walks the NameNodes starting at the remembered active one, moving
//!   on for a `StandbyException` or a connection failure (failover is not a retry);
//! * `send` retries what [`FsError::is_retryable`] allows, with full-jitter exponential
//!   backoff, holding no permit while it sleeps.
//!
//! Every operation (the read-only ones here, mutating ones later) goes through `send`.

mod wire;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
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
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::{EndpointProbe, EndpointState, FileStatus, FileSystem, FsError, PageSink};
use crate::secret::Secret;
use wire::{
    DirectoryListingEnvelope, FileStatusEnvelope, FileStatusesEnvelope, RemoteExceptionEnvelope,
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
}

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

/// A NameNode's answer with a 2xx or 3xx status (redirects are not followed, so the later
/// two-step `CREATE` can read `Location`).
#[derive(Debug)]
pub(crate) struct Reply {
    /// HTTP status.
    #[allow(dead_code)] // read by the mutating operations to come
    pub(crate) status: StatusCode,
    /// Response headers.
    #[allow(dead_code)] // read by the mutating operations to come
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
    /// A later mutating operation must only come through here if it is idempotent or made so
    /// (a failover/retry may repeat a request the NameNode already applied).
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
