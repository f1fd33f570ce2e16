//! WebHDFS client (Hadoop `WebHDFS.md` REST API).
//!
//! Owns: NameNode HA failover (StandbyException / connection errors → next NameNode, the
//! active one remembered), `LISTSTATUS_BATCH` paging with fallback to `LISTSTATUS`,
//! `user.name` / delegation token / SPNEGO with the `hadoop.auth` cookie and delegation tokens
//! obtained over SPNEGO (`auth`, `token`), percent-encoded paths, timeouts, retries with jittered
//! backoff for retryable errors only, and one concurrency bound per cluster; and the file
//! operations on top: `OPEN` and `CREATE` through the DataNode the NameNode redirects to
//! (longer timeouts for the data, sized by the bytes moved), `MKDIRS`, `RENAME` with
//! `rename2` semantics, `DELETE`, `SETPERMISSION`, `SETOWNER`, and the mapping of their
//! `RemoteException`s onto [`FsError`]. The JSON wire types live in the private `wire`
//! module.
//!
//! Request plumbing, from the inside out:
//! * `exchange` sends one HTTP request to one NameNode while holding one permit of the
//!   cluster's semaphore, and records `hive_hdfs_requests_total` / `hive_hdfs_up`;
//! * `send_to` authenticates one operation on one NameNode: `user.name` / a configured token
//!   in the query, or with `auth = "kerberos"` the delegation token obtained over SPNEGO
//!   (`token`: fetched, renewed, replaced when rejected) or SPNEGO with the `hadoop.auth`
//!   cookie (`auth`: a 401 `Negotiate` answered, the cookie kept per NameNode);
//! * `send_with_failover` walks the NameNodes starting at the remembered active one, moving
//!   on for a `StandbyException` or a connection failure (failover is not a retry);
//! * `send` retries what [`FsError::is_retryable`] allows, with full-jitter exponential
//!   backoff, holding no permit while it sleeps;
//! * around all of it, the cluster's circuit (`circuit`): once a failover round found every
//!   NameNode down, requests fail at once with [`FsError::BackingOff`] for a jittered,
//!   exponentially growing delay (`OutageBackoff`, 1 s up to 30 s by default), then one
//!   trial request (or the per-scan probe) decides whether to close it. `exchange` checks it
//!   again once it holds its permit, so requests queued when the outage began stay unsent.
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

mod auth;
mod circuit;
mod datanode;
mod errors;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod ha;
mod token;
mod wire;
#[cfg(feature = "write")]
mod write;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use tokio::sync::Semaphore;

use super::{
    EndpointProbe, EndpointState, EntryKind, EntrySink, FileStatus, FileSystem, FsError, PageSink,
};
use crate::kerberos::KerberosConfig;
use crate::secret::Secret;
pub use circuit::OutageBackoff;
#[cfg(feature = "write")]
use datanode::*;
use errors::*;
use ha::*;
pub use token::TokenStats;
use wire::{
    DirectoryListingEnvelope, EntriesBatchEnvelope, EntriesEnvelope, FileStatusEnvelope,
    FileStatusesEnvelope, parse_borrowed,
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
    /// SPNEGO (`auth = "kerberos"`): with it, `user` and `delegation_token` are not sent.
    pub spnego: Option<SpnegoConfig>,
}

/// Kerberos settings of a WebHDFS client (`auth = "kerberos"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpnegoConfig {
    /// The cluster's Kerberos login (`[cluster.kerberos]`).
    pub kerberos: KerberosConfig,
    /// Obtain a delegation token over SPNEGO and use it for the other requests (Hadoop's
    /// `WebHdfsFileSystem` on a secure cluster); `false`: SPNEGO / cookie for every
    /// NameNode request.
    pub delegation_tokens: bool,
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
    /// `hive_hdfs_authentications_total{cluster, event}` (`auth = "kerberos"`): `spnego`
    /// (a SPNEGO handshake), `token_obtained`, `token_renewed`, `token_renewal_failed`.
    pub authentications: Family<AuthLabels, Counter>,
    /// `hive_hdfs_delegation_token_expiry_timestamp_seconds{cluster}`: when the delegation
    /// token in use expires unless renewed (0 before the first one).
    pub token_expiry: Family<ClusterLabels, Gauge>,
    /// `hive_hdfs_circuit_open{cluster}`: 1 while the client backs off because every NameNode
    /// failed (requests fail at once without being sent), 0 otherwise.
    pub circuit_open: Family<ClusterLabels, Gauge>,
    /// `hive_hdfs_backoff_seconds_total{cluster}`: the delays the circuit was opened for,
    /// summed (its rate is the share of time spent backing off).
    pub backoff_seconds: Family<ClusterLabels, Counter<f64, AtomicU64>>,
    /// `hive_hdfs_rejected_requests_total{cluster}`: requests failed at once, not sent,
    /// while backing off.
    pub rejected_requests: Family<ClusterLabels, Counter>,
}

impl WebHdfsMetrics {
    /// Registers the metrics of the WebHDFS clients both binaries' registries share,
    /// unprefixed: the Kerberos ones (`hive_hdfs_authentications_total`,
    /// `hive_hdfs_delegation_token_expiry_timestamp_seconds`) and the backing off of the
    /// circuit (`hive_hdfs_circuit_open`, `hive_hdfs_backoff_seconds_total`,
    /// `hive_hdfs_rejected_requests_total`).
    pub fn register_shared(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "hive_hdfs_circuit_open",
            "1 while the WebHDFS client backs off because every NameNode failed",
            self.circuit_open.clone(),
        );
        registry.register(
            "hive_hdfs_backoff_seconds",
            "Delays the WebHDFS client backed off for after every NameNode failed, summed",
            self.backoff_seconds.clone(),
        );
        registry.register(
            "hive_hdfs_rejected_requests",
            "WebHDFS requests failed at once, not sent, while backing off",
            self.rejected_requests.clone(),
        );
        registry.register(
            "hive_hdfs_authentications",
            "Kerberos events of the WebHDFS client (spnego, token_obtained, token_renewed, \
             token_renewal_failed)",
            self.authentications.clone(),
        );
        registry.register(
            "hive_hdfs_delegation_token_expiry_timestamp_seconds",
            "When the WebHDFS delegation token in use expires unless renewed",
            self.token_expiry.clone(),
        );
    }
}

/// Labels of `hive_hdfs_authentications_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    /// Cluster name.
    pub cluster: String,
    /// What happened.
    pub event: String,
}

/// Labels of per-cluster WebHDFS gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    /// Cluster name.
    pub cluster: String,
}

impl WebHdfs {
    /// Counts one `hive_hdfs_authentications_total` event.
    pub(crate) fn count_auth(&self, event: &str) {
        self.metrics
            .authentications
            .get_or_create(&AuthLabels {
                cluster: self.cluster.clone(),
                event: event.to_owned(),
            })
            .inc();
    }

    /// Sets `hive_hdfs_delegation_token_expiry_timestamp_seconds` (ms since the epoch).
    pub(crate) fn set_token_expiry(&self, expires_ms: Option<i64>) {
        self.metrics
            .token_expiry
            .get_or_create(&ClusterLabels {
                cluster: self.cluster.clone(),
            })
            .set(expires_ms.map_or(0, |ms| ms / 1000));
    }
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
    #[cfg(feature = "write")]
    pub(super) const CREATE: &str = "CREATE";
    #[cfg(feature = "write")]
    pub(super) const MKDIRS: &str = "MKDIRS";
    #[cfg(feature = "write")]
    pub(super) const RENAME: &str = "RENAME";
    #[cfg(feature = "write")]
    pub(super) const DELETE: &str = "DELETE";
    #[cfg(feature = "write")]
    pub(super) const SETPERMISSION: &str = "SETPERMISSION";
    #[cfg(feature = "write")]
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

/// What the paging loop needs of one parsed `LISTSTATUS_BATCH` batch.
struct BatchEnd {
    /// `remainingEntries`.
    remaining: i64,
    /// The last entry's name when `remaining > 0` (the next `startAfter`).
    next: Option<String>,
}

impl BatchEnd {
    /// Nothing remains.
    const LAST: Self = Self {
        remaining: 0,
        next: None,
    };
}

/// Which answer a listing response body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListingBody {
    /// One `LISTSTATUS_BATCH` batch.
    Batch,
    /// A whole `LISTSTATUS` listing (its `BatchEnd` is not read).
    Whole,
}

/// Parses one listing response body and hands its entries on.
type OnBody<'a> = dyn FnMut(ListingBody, &[u8]) -> Result<BatchEnd, FsError> + Send + 'a;

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
    /// SPNEGO, cookies and delegation tokens (`auth = "kerberos"`).
    spnego: Option<auth::Spnego>,
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
    /// Backing off while every NameNode fails.
    circuit: circuit::Circuit,
    /// This cluster's handles into `metrics.circuit_open`, `.backoff_seconds` and
    /// `.rejected_requests`.
    circuit_open: Gauge,
    backoff_seconds: Counter<f64, AtomicU64>,
    rejected_requests: Counter,
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
            .field("kerberos", &self.spnego.is_some())
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

        let spnego = cfg
            .spnego
            .as_ref()
            .map(|s| auth::Spnego::new(s, &cfg.namenodes));
        // With Kerberos no user.name (nor a configured token) is ever sent.
        let (user, delegation_token) = match spnego {
            Some(_) => (None, None),
            None => (cfg.user, cfg.delegation_token),
        };
        let mut auth_query = String::new();
        if let Some(user) = &user {
            auth_query.push_str("&user.name=");
            push_encoded(&mut auth_query, user);
        }
        if let Some(token) = &delegation_token {
            auth_query.push_str("&delegation=");
            push_encoded(&mut auth_query, token.expose());
        }

        let labels = ClusterLabels {
            cluster: cluster.clone(),
        };
        let circuit_open = metrics.circuit_open.get_or_create(&labels).clone();
        let backoff_seconds = metrics.backoff_seconds.get_or_create(&labels).clone();
        let rejected_requests = metrics.rejected_requests.get_or_create(&labels).clone();
        Ok(Self {
            cluster,
            client,
            namenodes,
            active: AtomicUsize::new(0),
            batch_unsupported: AtomicBool::new(false),
            permits: Semaphore::new(cfg.max_concurrent_requests.min(Semaphore::MAX_PERMITS)),
            auth_query,
            spnego,
            user,
            has_token: delegation_token.is_some(),
            max_retries: cfg.max_retries,
            retry_initial_backoff: cfg.retry_initial_backoff,
            retry_max_backoff: cfg.retry_max_backoff,
            request_timeout: cfg.request_timeout,
            metrics,
            request_counters: RwLock::new(HashMap::new()),
            circuit: circuit::Circuit::new(OutageBackoff::default()),
            circuit_open,
            backoff_seconds,
            rejected_requests,
        })
    }

    /// Sets how this client backs off when every NameNode fails (default
    /// [`OutageBackoff::default`]; [`OutageBackoff::DISABLED`] sends every request).
    #[must_use]
    pub fn with_outage_backoff(mut self, backoff: OutageBackoff) -> Self {
        self.circuit = circuit::Circuit::new(backoff);
        self
    }

    /// Whether this client is backing off now (every NameNode failed recently).
    pub fn backing_off(&self) -> bool {
        self.circuit.is_open()
    }

    fn count_rejected(&self) {
        self.rejected_requests.inc();
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

    /// Lists with `LISTSTATUS_BATCH`, handing each batch's body to `on_body`.
    /// `Ok(false)` when the server does not know the op.
    async fn list_batched(&self, path: &str, on_body: &mut OnBody<'_>) -> Result<bool, FsError> {
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
            let BatchEnd { remaining, next } = on_body(ListingBody::Batch, &reply.body)?;
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

    /// Lists `path` (`LISTSTATUS_BATCH` paging, or `LISTSTATUS` once the NameNode rejected
    /// it), handing every response body to `on_body`.
    async fn list_with(&self, path: &str, on_body: &mut OnBody<'_>) -> Result<(), FsError> {
        if self.batch_listing_supported() {
            if self.list_batched(path, on_body).await? {
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
        let reply = self.send(op::LISTSTATUS, Method::GET, path, &[]).await?;
        on_body(ListingBody::Whole, &reply.body).map(drop)
    }

    /// Probes NameNode `i`; also whether it failed as the circuit counts a NameNode down
    /// (standby, no connection, a gateway's 502/503/504).
    async fn probe_one(&self, i: usize) -> (EndpointProbe, bool) {
        let (state, down) = match self
            .send_to(i, op::GETFILESTATUS, Method::GET, "/", &[])
            .await
        {
            Ok(reply) => match parse::<FileStatusEnvelope>(op::GETFILESTATUS, "/", &reply.body) {
                Ok(_) => (EndpointState::Active, false),
                Err(e) => (EndpointState::Down(e.to_string()), false),
            },
            Err(e) if is_standby(&e) => (EndpointState::Standby, true),
            Err(e) => (EndpointState::Down(e.to_string()), is_failover_error(&e)),
        };
        let probe = EndpointProbe {
            endpoint: self.namenodes[i].label.clone(),
            state,
        };
        (probe, down)
    }
}

#[async_trait]
impl FileSystem for WebHdfs {
    /// `LISTSTATUS_BATCH` paging (HDFS-10784, Hadoop 2.8/3.0): one request per NameNode
    /// batch of `dfs.ls.limit` entries, `startAfter` = the last `pathSuffix`. Falls back to
    /// `LISTSTATUS` for good when the server rejects the op (HTTP 400
    /// `IllegalArgumentException: Invalid value for webhdfs parameter "op"`), handing its
    /// one response on in pages of [`LIST_PAGE_SIZE`]. Empty pages are not handed to the
    /// sink.
    async fn list_status(&self, path: &str, sink: &mut PageSink<'_>) -> Result<(), FsError> {
        let mut hand = |page: Vec<FileStatus>| {
            if !page.is_empty() {
                sink(page);
            }
        };
        self.list_with(path, &mut |body, bytes| match body {
            ListingBody::Batch => {
                let listing: DirectoryListingEnvelope = parse(op::LISTSTATUS_BATCH, path, bytes)?;
                let (page, remaining) = listing.into_page();
                let next = if remaining > 0 {
                    page.last().map(|s| s.name.clone())
                } else {
                    None
                };
                hand(page);
                Ok(BatchEnd { remaining, next })
            }
            ListingBody::Whole => {
                let listing: FileStatusesEnvelope = parse(op::LISTSTATUS, path, bytes)?;
                let mut entries = listing.into_entries();
                loop {
                    let page: Vec<FileStatus> = entries.by_ref().take(LIST_PAGE_SIZE).collect();
                    if page.is_empty() {
                        return Ok(BatchEnd::LAST);
                    }
                    hand(page);
                }
            }
        })
        .await
    }

    /// As `list_status`, parsing each response into entries borrowed from its body (only the
    /// name, type, length and times are read).
    async fn list_entries(&self, path: &str, sink: &mut EntrySink<'_>) -> Result<(), FsError> {
        self.list_with(path, &mut |body, bytes| match body {
            ListingBody::Batch => {
                let listing: EntriesBatchEnvelope<'_> =
                    parse_borrowed(op::LISTSTATUS_BATCH, path, bytes)?;
                listing.entries().for_each(&mut *sink);
                let remaining = listing.remaining();
                let next = if remaining > 0 {
                    listing.last_name().map(str::to_owned)
                } else {
                    None
                };
                Ok(BatchEnd { remaining, next })
            }
            ListingBody::Whole => {
                let listing: EntriesEnvelope<'_> = parse_borrowed(op::LISTSTATUS, path, bytes)?;
                listing.entries().for_each(&mut *sink);
                Ok(BatchEnd::LAST)
            }
        })
        .await
    }

    async fn file_status(&self, path: &str) -> Result<FileStatus, FsError> {
        let reply = self.send(op::GETFILESTATUS, Method::GET, path, &[]).await?;
        let status: FileStatusEnvelope = parse(op::GETFILESTATUS, path, &reply.body)?;
        Ok(status.file_status.into())
    }

    /// One `GETFILESTATUS /` per NameNode, concurrently, without failover or retries. While
    /// the client backs off (every NameNode failed recently), nothing is sent and every
    /// NameNode is reported down with the time left; once the delay has passed, the probes
    /// are the circuit's trial: one active NameNode closes it, none reopens it (as a probe
    /// finding every NameNode down opens it).
    async fn probe(&self) -> Vec<EndpointProbe> {
        let admission = match self.circuit.admit() {
            Ok(admission) => admission,
            Err(e) => {
                self.count_rejected();
                return self
                    .namenodes
                    .iter()
                    .map(|nn| EndpointProbe {
                        endpoint: nn.label.clone(),
                        state: EndpointState::Down(e.to_string()),
                    })
                    .collect();
            }
        };
        let guard = circuit::TrialGuard::new(&self.circuit, admission);
        let results = circuit::run_as(
            admission,
            futures::future::join_all((0..self.namenodes.len()).map(|i| self.probe_one(i))),
        )
        .await;
        let (outcome, last) = if results
            .iter()
            .any(|(p, _)| p.state == EndpointState::Active)
        {
            (circuit::Outcome::Served, String::new())
        } else if results.iter().all(|(_, down)| *down) {
            let last = results
                .iter()
                .map(|(p, _)| match &p.state {
                    EndpointState::Down(why) => format!("{}: {why}", p.endpoint),
                    other => format!("{}: {other:?}", p.endpoint),
                })
                .collect::<Vec<_>>()
                .join("; ");
            (circuit::Outcome::AllDown, last)
        } else {
            (circuit::Outcome::Unknown, String::new())
        };
        let probes: Vec<EndpointProbe> = results.into_iter().map(|(p, _)| p).collect();
        let transition = guard.record(outcome, &last);
        self.circuit_transition(transition, &last);
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

    /// Cancels the delegation token obtained over SPNEGO, if any (`CANCELDELEGATIONTOKEN`).
    async fn close(&self) {
        match self.cancel_delegation_token().await {
            Ok(true) => tracing::info!(cluster = %self.cluster, "Cancelled the delegation token."),
            Ok(false) => {}
            Err(e) => tracing::warn!(
                cluster = %self.cluster, error = %e,
                "Cannot cancel the delegation token; it expires on its own."
            ),
        }
    }
}
