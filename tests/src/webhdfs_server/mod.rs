//! An in-process WebHDFS server for integration tests and benchmarks.
//!
//! This module owns the server side of a fake HDFS cluster: one or more "NameNodes" (each its
//! own HTTP listener, with an HA state that can be switched at runtime) sharing one in-memory
//! [`Namespace`], plus one "DataNode" listener that serves the second step of `CREATE`,
//! `APPEND` and `OPEN` (and `GETFILECHECKSUM`). It also owns fault injection (latency, a bounded
//! number of concurrently processed requests like a NameNode's handler threads, injected
//! failures, stopping and restarting a NameNode) and request counters for tests.
//!
//! Behaviour follows the Hadoop WebHDFS REST API (`hadoop-hdfs/src/site/markdown/WebHDFS.md`)
//! and the NameNode sources cited in [`namespace`] and [`handlers`]. A standby NameNode answers
//! every operation with 403 `StandbyException` ("Operation category READ|WRITE is not supported
//! in state standby"), as the NameNode's HA state check does.
//!
//! Security (a Kerberized NameNode: SPNEGO through a GSSAPI acceptor, the `hadoop.auth` cookie,
//! delegation tokens; [`ServerOptions::kerberos`]) lives in [`security`]; TLS (swebhdfs) is
//! [`ServerOptions::tls`].
//!
//! Per NameNode request the order is: handler slot (semaphore) → injected latency → injected
//! failures → authentication (security on) → delegation check → standby check → op. DataNode requests skip all of these but
//! have injected failures of their own ([`ServerHandle::fail_next_datanode`], checked after
//! the request body was read).

pub mod handlers;
pub mod namespace;
pub mod security;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use handlers::{HttpResponse, NnContext, ParsedRequest, Reply};
pub use namespace::{
    ContentSummary, FileStatus, FileType, ImportSummary, Namespace, RemoteException, synthetic_byte,
};
pub use security::{AuthKind, SecurityOptions, SpnegoAcceptor};
use security::{Authenticated, Security};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// HA state of a NameNode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HaState {
    /// Serves requests.
    Active,
    /// Answers every op with 403 `StandbyException`.
    Standby,
}

/// Which listener served a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeId {
    /// NameNode by index.
    NameNode(usize),
    /// The DataNode.
    DataNode,
}

/// Server configuration (builder style).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    namespace: Option<Arc<Namespace>>,
    namenodes: usize,
    active: Option<usize>,
    ls_limit: usize,
    batch_supported: bool,
    latency: Duration,
    max_handlers: usize,
    require_delegation: Option<Option<String>>,
    access_time_precision: Duration,
    default_user: String,
    request_log_capacity: usize,
    security: Option<SecurityOptions>,
    tls: Option<(PathBuf, PathBuf)>,
    host: String,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            namespace: None,
            namenodes: 1,
            active: Some(0),
            ls_limit: 1000,
            batch_supported: true,
            latency: Duration::ZERO,
            max_handlers: 1024,
            require_delegation: None,
            access_time_precision: Duration::from_millis(3_600_000),
            default_user: "dr.who".to_owned(),
            request_log_capacity: 10_000,
            security: None,
            tls: None,
            host: "127.0.0.1".to_owned(),
        }
    }
}

impl ServerOptions {
    /// Defaults: one active NameNode, `ls_limit` 1000, batch listing supported, no latency,
    /// 1024 handlers, no delegation required, access-time precision one hour.
    pub fn new() -> Self {
        Self::default()
    }
    /// Serve this namespace (a new empty one otherwise).
    pub fn namespace(mut self, ns: Arc<Namespace>) -> Self {
        self.namespace = Some(ns);
        self
    }
    /// Number of NameNodes (at least 1).
    pub fn namenodes(mut self, n: usize) -> Self {
        self.namenodes = n.max(1);
        self
    }
    /// Which NameNode starts active (`None`: all standby); the others are standby.
    pub fn active(mut self, index: Option<usize>) -> Self {
        self.active = index;
        self
    }
    /// `dfs.ls.limit`: entries per `LISTSTATUS_BATCH` response.
    pub fn ls_limit(mut self, n: usize) -> Self {
        self.ls_limit = n.max(1);
        self
    }
    /// `false` behaves like a Hadoop 2.6 NameNode: `LISTSTATUS_BATCH` is an unknown op (400).
    pub fn batch_supported(mut self, yes: bool) -> Self {
        self.batch_supported = yes;
        self
    }
    /// Latency added to every NameNode request (while holding a handler slot).
    pub fn latency(mut self, d: Duration) -> Self {
        self.latency = d;
        self
    }
    /// At most this many NameNode requests are processed at once per NameNode; the rest queue.
    pub fn max_handlers(mut self, n: usize) -> Self {
        self.max_handlers = n.max(1);
        self
    }
    /// Require a `delegation` parameter (401 without it); with `Some(token)`, any other token is
    /// rejected with 403 `InvalidToken`.
    pub fn require_delegation(mut self, token: Option<String>) -> Self {
        self.require_delegation = Some(token);
        self
    }
    /// `dfs.namenode.accesstime.precision` (zero disables access-time updates).
    pub fn access_time_precision(mut self, d: Duration) -> Self {
        self.access_time_precision = d;
        self
    }
    /// User when a request has no `user.name` (default `dr.who`).
    pub fn default_user(mut self, user: &str) -> Self {
        self.default_user = user.to_owned();
        self
    }
    /// Maximum entries kept in the request log (0 disables it).
    pub fn request_log_capacity(mut self, n: usize) -> Self {
        self.request_log_capacity = n;
        self
    }
    /// Security on, as a Kerberized NameNode: SPNEGO through `acceptor` (the service
    /// keytab), the `hadoop.auth` cookie, delegation tokens; `user.name` is rejected. See
    /// [`security`].
    pub fn security(mut self, options: SecurityOptions) -> Self {
        self.security = Some(options);
        self
    }
    /// Serves HTTPS (swebhdfs) on every listener with this PEM certificate chain and key.
    pub fn tls(mut self, cert_pem: &Path, key_pem: &Path) -> Self {
        self.tls = Some((cert_pem.to_owned(), key_pem.to_owned()));
        self
    }
    /// Host name in the URLs the server hands out (its own and its DataNode redirects);
    /// default `127.0.0.1`. Kerberos needs a name (`localhost`: service `HTTP/localhost`).
    pub fn host(mut self, host: &str) -> Self {
        self.host = host.to_owned();
        self
    }
}

/// Milliseconds since the Unix epoch (token and cookie expiry follow the wall clock, as the
/// client's do).
pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// Listener.
    pub node: NodeId,
    /// HTTP method.
    pub method: String,
    /// Upper-cased op (`NULL` when missing).
    pub op: String,
    /// Decoded path (empty when outside `/webhdfs/v1`).
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// `user.name` parameter, if any.
    pub user: Option<String>,
    /// Response status.
    pub status: u16,
}

#[derive(Debug, Clone)]
struct Fault {
    status: u16,
    exception: String,
}

impl Fault {
    fn reply(&self, path: &str) -> Reply {
        Reply::Error(RemoteException::with_status(
            self.status,
            &self.exception,
            format!("Injected failure for {path}"),
        ))
    }
}

#[derive(Debug, Default)]
struct Faults {
    next: VecDeque<(u64, Fault)>,
    prefixes: Vec<(String, Fault)>,
    datanode_next: VecDeque<(u64, Fault)>,
}

/// Takes one failure off the front of a `(remaining, fault)` queue.
fn pop_fault(queue: &mut VecDeque<(u64, Fault)>) -> Option<Fault> {
    let (n, fault) = queue.front_mut()?;
    let fault = fault.clone();
    *n -= 1;
    if *n == 0 {
        queue.pop_front();
    }
    Some(fault)
}

#[derive(Debug, Default)]
struct Stats {
    counts: Mutex<HashMap<(NodeId, String, u16), u64>>,
    inflight: AtomicUsize,
    max_inflight: AtomicUsize,
    log: Mutex<VecDeque<LoggedRequest>>,
}

struct Listener {
    token: CancellationToken,
    task: JoinHandle<()>,
}

struct NameNode {
    addr: SocketAddr,
    ha: AtomicU8,
    handlers: Semaphore,
    inflight: AtomicUsize,
    max_inflight: AtomicUsize,
    listener: tokio::sync::Mutex<Option<Listener>>,
}

/// State shared by all listeners of a server.
pub(crate) struct Shared {
    pub(crate) ns: Arc<Namespace>,
    namenodes: Vec<NameNode>,
    pub(crate) dn_addr: SocketAddr,
    ls_limit: AtomicUsize,
    batch_supported: AtomicBool,
    latency_us: AtomicU64,
    access_precision_ms: AtomicI64,
    require_delegation: Mutex<Option<Option<String>>>,
    pub(crate) default_user: String,
    faults: Mutex<Faults>,
    stats: Stats,
    log_capacity: usize,
    pub(crate) security: Option<Security>,
    /// `http` or `https`.
    pub(crate) scheme: &'static str,
    /// Host name in handed-out URLs.
    pub(crate) host: String,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field(
                "namenodes",
                &self.namenodes.iter().map(|n| n.addr).collect::<Vec<_>>(),
            )
            .field("dn_addr", &self.dn_addr)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn ls_limit(&self) -> usize {
        self.ls_limit.load(Ordering::Relaxed)
    }
    pub(crate) fn access_time_precision_ms(&self) -> i64 {
        self.access_precision_ms.load(Ordering::Relaxed)
    }
    /// `host:port` of the DataNode as handed out in redirects.
    pub(crate) fn dn_authority(&self) -> String {
        format!("{}:{}", self.host, self.dn_addr.port())
    }

    fn record(&self, node: NodeId, req: &ParsedRequest, op: String, status: u16) {
        if self.log_capacity > 0 {
            let mut log = lock(&self.stats.log);
            if log.len() >= self.log_capacity {
                log.pop_front();
            }
            log.push_back(LoggedRequest {
                node,
                method: req.method.to_string(),
                op: op.clone(),
                path: req.path.clone().unwrap_or_default(),
                query: req.raw_query.clone(),
                user: req.param("user.name").map(str::to_owned),
                status,
            });
        }
        *lock(&self.stats.counts)
            .entry((node, op, status))
            .or_insert(0) += 1;
    }

    fn injected_fault(&self, path: &str) -> Option<Fault> {
        let mut f = lock(&self.faults);
        if let Some(fault) = pop_fault(&mut f.next) {
            return Some(fault);
        }
        f.prefixes
            .iter()
            .find(|(p, _)| path_has_prefix(path, p))
            .map(|(_, fault)| fault.clone())
    }
}

/// `path` equals `prefix` or lies below it (a plain string prefix when `prefix` ends in `/`).
fn path_has_prefix(path: &str, prefix: &str) -> bool {
    let p = prefix.trim_end_matches('/');
    p.is_empty()
        || path == p
        || path
            .strip_prefix(p)
            .is_some_and(|rest| rest.starts_with('/'))
        || (prefix.ends_with('/') && path.starts_with(prefix))
}

/// Decrements in-flight counters when a request finishes (or its connection is dropped).
struct InflightGuard<'a> {
    shared: &'a Shared,
    nn: &'a NameNode,
}

impl<'a> InflightGuard<'a> {
    fn enter(shared: &'a Shared, nn: &'a NameNode) -> Self {
        let g = shared.stats.inflight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.stats.max_inflight.fetch_max(g, Ordering::SeqCst);
        let l = nn.inflight.fetch_add(1, Ordering::SeqCst) + 1;
        nn.max_inflight.fetch_max(l, Ordering::SeqCst);
        Self { shared, nn }
    }
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.shared.stats.inflight.fetch_sub(1, Ordering::SeqCst);
        self.nn.inflight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sleeps for `d` with sub-millisecond precision.
///
/// Tokio's timer has millisecond ticks and a sleep ends on the first tick at or after its
/// deadline, so `tokio::time::sleep(2 ms)` lasts about 3 ms (and 1 µs about 1 ms): injected
/// latencies of a few milliseconds would be inflated by a third or more. A thread of the
/// blocking pool sleeping in the OS is accurate to tens of microseconds; the pool keeps its
/// idle threads, so at most `max_handlers` of them are busy sleeping at once.
async fn precise_sleep(d: Duration) {
    if tokio::task::spawn_blocking(move || std::thread::sleep(d))
        .await
        .is_err()
    {
        tokio::time::sleep(d).await;
    }
}

async fn namenode_request(shared: Arc<Shared>, idx: usize, req: Request<Incoming>) -> HttpResponse {
    let nn = &shared.namenodes[idx];
    let Ok(_permit) = nn.handlers.acquire().await else {
        return Reply::NoRoute.into_response();
    };
    let _guard = InflightGuard::enter(&shared, nn);
    let latency = shared.latency_us.load(Ordering::Relaxed);
    if latency > 0 {
        precise_sleep(Duration::from_micros(latency)).await;
    }
    let mut parsed = ParsedRequest::parse(req.method(), req.uri());
    let headers = req.headers().clone();
    // The NameNode ignores request bodies (CREATE/APPEND data goes to the DataNode).
    drop(req);
    let op = parsed.op();
    let mut decoration = (None, None);
    let reply = namenode_reply(&shared, idx, &mut parsed, &headers, &op, &mut decoration);
    shared.record(NodeId::NameNode(idx), &parsed, op, reply.status());
    let mut response = reply.into_response();
    security::decorate(
        response.headers_mut(),
        decoration.0.as_deref(),
        decoration.1.as_deref(),
    );
    response
}

/// The answer of NameNode `idx`; `decoration` receives the `Set-Cookie` and SPNEGO reply
/// token the authentication step produced.
fn namenode_reply(
    shared: &Arc<Shared>,
    idx: usize,
    req: &mut ParsedRequest,
    headers: &hyper::HeaderMap,
    op: &str,
    decoration: &mut (Option<String>, Option<String>),
) -> Reply {
    let Some(path) = req.path.clone() else {
        return Reply::NoRoute;
    };
    let path = path.as_str();
    if let Some(fault) = shared.injected_fault(path) {
        return fault.reply(path);
    }
    let now = wall_clock_ms();
    let mut authenticated = None;
    if let Some(security) = &shared.security {
        match security.authenticate(req, headers, now) {
            Authenticated::Refuse(reply) => return reply,
            Authenticated::User {
                user,
                kind,
                token,
                cookie,
                reply_token,
            } => {
                *decoration = (cookie, reply_token);
                req.authenticated_user = Some(user.clone());
                authenticated = Some((user, kind, token));
            }
        }
    }
    let req = &*req;
    if let Some(required) = lock(&shared.require_delegation).as_ref() {
        match (req.param("delegation"), required) {
            (None | Some(""), _) => {
                return Reply::Error(RemoteException::new(
                    "SecurityException",
                    "Authentication required: no delegation token and no SPNEGO credentials",
                ));
            }
            (Some(t), Some(expected)) if t != expected => {
                return Reply::Error(RemoteException::new(
                    "InvalidToken",
                    format!("token ({t}) can't be found in cache"),
                ));
            }
            _ => {}
        }
    }
    let batch = shared.batch_supported.load(Ordering::Relaxed);
    if !handlers::known_op(&req.method, op, batch) {
        return Reply::Error(handlers::unknown_op(&req.method, op));
    }
    if shared.namenodes[idx].ha.load(Ordering::Relaxed) != 0 {
        let category = if handlers::is_write(&req.method) {
            "WRITE"
        } else {
            "READ"
        };
        return Reply::Error(RemoteException::new(
            "StandbyException",
            format!(
                "Operation category {category} is not supported in state standby. Visit https://s.apache.org/sbnn-error"
            ),
        ));
    }
    let nn_addr = shared.namenodes[idx].addr.to_string();
    match (&shared.security, &authenticated) {
        (Some(security), Some((user, kind, _))) => {
            if let Some(reply) = security.token_op(req, op, user, *kind, &nn_addr, now) {
                return reply;
            }
        }
        _ if op.ends_with("DELEGATIONTOKEN") => {
            return if op == "GETDELEGATIONTOKEN" {
                Reply::Json(hyper::StatusCode::OK, "{\"Token\":null}".to_owned())
            } else {
                Reply::Error(RemoteException::new(
                    "UnsupportedOperationException",
                    "security is disabled: there are no delegation tokens",
                ))
            };
        }
        _ => {}
    }
    let ctx = NnContext {
        shared,
        nn_addr,
        request_token: authenticated.and_then(|(_, _, token)| token),
    };
    handlers::namenode_op(&ctx, req, op)
}

async fn datanode_request(shared: Arc<Shared>, req: Request<Incoming>) -> HttpResponse {
    let mut parsed = ParsedRequest::parse(req.method(), req.uri());
    if let Some(security) = &shared.security {
        match security.authenticate_datanode(&parsed, wall_clock_ms()) {
            Ok(owner) => parsed.authenticated_user = Some(owner),
            Err(reply) => {
                shared.record(NodeId::DataNode, &parsed, parsed.op(), reply.status());
                return reply.into_response();
            }
        }
    }
    let body = if parsed.method == Method::PUT || parsed.method == Method::POST {
        match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                let reply = Reply::Error(RemoteException::io(format!(
                    "failed to read request body: {e}"
                )));
                shared.record(NodeId::DataNode, &parsed, parsed.op(), reply.status());
                return reply.into_response();
            }
        }
    } else {
        Bytes::new()
    };
    let fault = pop_fault(&mut lock(&shared.faults).datanode_next);
    let reply = match fault {
        Some(fault) => fault.reply(parsed.path.as_deref().unwrap_or("")),
        None => handlers::datanode_op(&shared, &parsed, body),
    };
    shared.record(NodeId::DataNode, &parsed, parsed.op(), reply.status());
    reply.into_response()
}

async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

fn spawn_listener(listener: TcpListener, shared: Arc<Shared>, node: NodeId) -> Listener {
    let token = CancellationToken::new();
    let tok = token.clone();
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = tok.cancelled() => break,
                r = listener.accept() => r,
            };
            let Ok((stream, _)) = accepted else { continue };
            let _ = stream.set_nodelay(true);
            let (sh, conn_tok) = (shared.clone(), tok.clone());
            let tls = shared.tls.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let sh = sh.clone();
                    async move {
                        Ok::<_, Infallible>(match node {
                            NodeId::NameNode(i) => namenode_request(sh, i, req).await,
                            NodeId::DataNode => datanode_request(sh, req).await,
                        })
                    }
                });
                match tls {
                    None => {
                        let conn =
                            http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                        tokio::select! {
                            _ = conn => {}
                            () = conn_tok.cancelled() => {}
                        }
                    }
                    Some(acceptor) => {
                        // A failed handshake (a client refusing the certificate) just ends
                        // the connection.
                        let Ok(stream) = acceptor.accept(stream).await else {
                            return;
                        };
                        let conn =
                            http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                        tokio::select! {
                            _ = conn => {}
                            () = conn_tok.cancelled() => {}
                        }
                    }
                }
            });
        }
    });
    Listener { token, task }
}

async fn stop_listener(l: Listener) {
    l.token.cancel();
    let _ = l.task.await;
}

/// Entry point: `WebHdfsServer::start(ServerOptions::new()).await`.
#[derive(Debug)]
pub struct WebHdfsServer;

impl WebHdfsServer {
    /// Binds all listeners on 127.0.0.1 (ephemeral ports) and starts serving. Needs a Tokio
    /// runtime.
    pub async fn start(options: ServerOptions) -> std::io::Result<RunningServer> {
        let ns = options
            .namespace
            .clone()
            .unwrap_or_else(Namespace::new_shared);
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let mut listeners = Vec::new();
        let mut namenodes = Vec::new();
        for i in 0..options.namenodes {
            let l = bind(loopback).await?;
            let addr = l.local_addr()?;
            listeners.push(l);
            namenodes.push(NameNode {
                addr,
                ha: AtomicU8::new(u8::from(options.active != Some(i))),
                handlers: Semaphore::new(options.max_handlers),
                inflight: AtomicUsize::new(0),
                max_inflight: AtomicUsize::new(0),
                listener: tokio::sync::Mutex::new(None),
            });
        }
        let dn = bind(loopback).await?;
        let tls = options
            .tls
            .as_ref()
            .map(|(cert, key)| tls_acceptor(cert, key))
            .transpose()?;
        let shared = Arc::new(Shared {
            ns,
            namenodes,
            dn_addr: dn.local_addr()?,
            ls_limit: AtomicUsize::new(options.ls_limit),
            batch_supported: AtomicBool::new(options.batch_supported),
            latency_us: AtomicU64::new(options.latency.as_micros() as u64),
            access_precision_ms: AtomicI64::new(options.access_time_precision.as_millis() as i64),
            require_delegation: Mutex::new(options.require_delegation.clone()),
            default_user: options.default_user.clone(),
            faults: Mutex::new(Faults::default()),
            stats: Stats::default(),
            log_capacity: options.request_log_capacity,
            security: options.security.clone().map(Security::new),
            scheme: if tls.is_some() { "https" } else { "http" },
            host: options.host.clone(),
            tls,
        });
        for (i, l) in listeners.into_iter().enumerate() {
            let listener = spawn_listener(l, shared.clone(), NodeId::NameNode(i));
            *shared.namenodes[i].listener.lock().await = Some(listener);
        }
        let datanode = spawn_listener(dn, shared.clone(), NodeId::DataNode);
        Ok(RunningServer {
            handle: ServerHandle { shared },
            datanode: Some(datanode),
        })
    }
}

/// A TLS acceptor for a PEM certificate chain and key.
fn tls_acceptor(cert: &Path, key: &Path) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let certs: Vec<_> =
        rustls_pemfile::certs(&mut std::fs::read(cert)?.as_slice()).collect::<Result<_, _>>()?;
    let key = rustls_pemfile::private_key(&mut std::fs::read(key)?.as_slice())?
        .ok_or_else(|| invalid(format!("{}: no private key", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A running server. Dereferences to its [`ServerHandle`]. Dropping it stops all listeners.
#[derive(Debug)]
pub struct RunningServer {
    handle: ServerHandle,
    datanode: Option<Listener>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

impl std::ops::Deref for RunningServer {
    type Target = ServerHandle;
    fn deref(&self) -> &ServerHandle {
        &self.handle
    }
}

impl RunningServer {
    /// A cloneable handle for runtime control.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Stops every listener and waits for the accept loops to end.
    pub async fn shutdown(mut self) {
        for i in 0..self.handle.shared.namenodes.len() {
            self.handle.stop_namenode(i).await;
        }
        if let Some(dn) = self.datanode.take() {
            stop_listener(dn).await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(dn) = &self.datanode {
            dn.token.cancel();
        }
        for nn in &self.handle.shared.namenodes {
            if let Ok(guard) = nn.listener.try_lock()
                && let Some(l) = guard.as_ref()
            {
                l.token.cancel();
            }
        }
    }
}

/// Runtime control, fault injection and observation of a running server.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl ServerHandle {
    /// URL of NameNode 0, e.g. `http://127.0.0.1:PORT` (append `/webhdfs/v1/...`).
    pub fn base_url(&self) -> String {
        self.namenode_url(0)
    }
    /// URL of NameNode `i` (`http(s)://<host>:<port>`).
    pub fn namenode_url(&self, i: usize) -> String {
        format!(
            "{}://{}:{}",
            self.shared.scheme,
            self.shared.host,
            self.shared.namenodes[i].addr.port()
        )
    }
    /// URLs of all NameNodes.
    pub fn namenode_urls(&self) -> Vec<String> {
        (0..self.shared.namenodes.len())
            .map(|i| self.namenode_url(i))
            .collect()
    }
    /// `host:port` of NameNode `i`.
    pub fn namenode_addr(&self, i: usize) -> SocketAddr {
        self.shared.namenodes[i].addr
    }
    /// URL of the DataNode.
    pub fn datanode_url(&self) -> String {
        format!("{}://{}", self.shared.scheme, self.shared.dn_authority())
    }
    /// The shared namespace.
    pub fn namespace(&self) -> &Arc<Namespace> {
        &self.shared.ns
    }

    /// Sets the HA state of NameNode `i`.
    pub fn set_ha_state(&self, i: usize, state: HaState) {
        self.shared.namenodes[i]
            .ha
            .store(u8::from(state == HaState::Standby), Ordering::Relaxed);
    }
    /// Makes NameNode `i` active and every other one standby (a failover).
    pub fn set_active(&self, i: usize) {
        for j in 0..self.shared.namenodes.len() {
            self.set_ha_state(
                j,
                if i == j {
                    HaState::Active
                } else {
                    HaState::Standby
                },
            );
        }
    }
    /// HA state of NameNode `i`.
    pub fn ha_state(&self, i: usize) -> HaState {
        if self.shared.namenodes[i].ha.load(Ordering::Relaxed) == 0 {
            HaState::Active
        } else {
            HaState::Standby
        }
    }
    /// Stops NameNode `i`: its port refuses connections and open connections are closed.
    pub async fn stop_namenode(&self, i: usize) {
        let l = self.shared.namenodes[i].listener.lock().await.take();
        if let Some(l) = l {
            stop_listener(l).await;
        }
    }
    /// Restarts a stopped NameNode `i` on the same port.
    pub async fn start_namenode(&self, i: usize) -> std::io::Result<()> {
        let nn = &self.shared.namenodes[i];
        let mut slot = nn.listener.lock().await;
        if slot.is_none() {
            let l = bind(nn.addr).await?;
            *slot = Some(spawn_listener(l, self.shared.clone(), NodeId::NameNode(i)));
        }
        Ok(())
    }
    /// Whether NameNode `i` is listening.
    pub async fn is_running(&self, i: usize) -> bool {
        self.shared.namenodes[i].listener.lock().await.is_some()
    }

    /// Changes `dfs.ls.limit`.
    pub fn set_ls_limit(&self, n: usize) {
        self.shared.ls_limit.store(n.max(1), Ordering::Relaxed);
    }
    /// Enables or disables `LISTSTATUS_BATCH`.
    pub fn set_batch_supported(&self, yes: bool) {
        self.shared.batch_supported.store(yes, Ordering::Relaxed);
    }
    /// Changes the per-request latency.
    pub fn set_latency(&self, d: Duration) {
        self.shared
            .latency_us
            .store(d.as_micros() as u64, Ordering::Relaxed);
    }
    /// Changes the access-time precision.
    pub fn set_access_time_precision(&self, d: Duration) {
        self.shared
            .access_precision_ms
            .store(d.as_millis() as i64, Ordering::Relaxed);
    }
    /// Requires (`Some`) or stops requiring (`None`) a delegation token; see
    /// [`ServerOptions::require_delegation`].
    pub fn set_require_delegation(&self, requirement: Option<Option<String>>) {
        *lock(&self.shared.require_delegation) = requirement;
    }

    /// The next `n` NameNode requests (on any NameNode) fail with `status` and a
    /// `RemoteException` named `exception` (short or Java class name). Calls queue up.
    pub fn fail_next(&self, n: u64, status: u16, exception: &str) {
        if n > 0 {
            lock(&self.shared.faults).next.push_back((
                n,
                Fault {
                    status,
                    exception: exception.to_owned(),
                },
            ));
        }
    }
    /// Every NameNode request for `prefix` or a path below it fails until
    /// [`ServerHandle::clear_failures`].
    pub fn fail_path_prefix(&self, prefix: &str, status: u16, exception: &str) {
        lock(&self.shared.faults).prefixes.push((
            prefix.to_owned(),
            Fault {
                status,
                exception: exception.to_owned(),
            },
        ));
    }
    /// The next `n` DataNode requests fail with `status` and a `RemoteException` named
    /// `exception`, without touching the namespace (the data of a `CREATE` is not written).
    /// Calls queue up.
    pub fn fail_next_datanode(&self, n: u64, status: u16, exception: &str) {
        if n > 0 {
            lock(&self.shared.faults).datanode_next.push_back((
                n,
                Fault {
                    status,
                    exception: exception.to_owned(),
                },
            ));
        }
    }
    /// Removes all injected failures.
    pub fn clear_failures(&self) {
        let mut f = lock(&self.shared.faults);
        f.next.clear();
        f.prefixes.clear();
        f.datanode_next.clear();
    }

    /// All counters: `(node, op, status) -> requests`.
    pub fn counters(&self) -> BTreeMap<(NodeId, String, u16), u64> {
        lock(&self.shared.stats.counts)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
    /// Requests matching the filters (`None` matches anything).
    pub fn request_count(
        &self,
        node: Option<NodeId>,
        op: Option<&str>,
        status: Option<u16>,
    ) -> u64 {
        lock(&self.shared.stats.counts)
            .iter()
            .filter(|((n, o, s), _)| {
                node.is_none_or(|x| x == *n)
                    && op.is_none_or(|x| x.eq_ignore_ascii_case(o))
                    && status.is_none_or(|x| x == *s)
            })
            .map(|(_, v)| *v)
            .sum()
    }
    /// All requests, NameNodes and DataNode.
    pub fn total_requests(&self) -> u64 {
        self.request_count(None, None, None)
    }
    /// Requests with this op on any listener.
    pub fn requests_for_op(&self, op: &str) -> u64 {
        self.request_count(None, Some(op), None)
    }
    /// Highest number of NameNode requests processed at once (over all NameNodes).
    pub fn max_concurrent(&self) -> usize {
        self.shared.stats.max_inflight.load(Ordering::SeqCst)
    }
    /// Highest number of requests processed at once by NameNode `i`.
    pub fn max_concurrent_on(&self, i: usize) -> usize {
        self.shared.namenodes[i].max_inflight.load(Ordering::SeqCst)
    }
    /// NameNode requests being processed now.
    pub fn in_flight(&self) -> usize {
        self.shared.stats.inflight.load(Ordering::SeqCst)
    }
    /// The request log (oldest first, capped).
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.stats.log).iter().cloned().collect()
    }
    /// Requests authenticated (or refused) this way, NameNodes and DataNode (0 without
    /// security).
    pub fn auth_count(&self, kind: AuthKind) -> u64 {
        self.shared.security.as_ref().map_or(0, |s| s.count(kind))
    }
    /// Principals whose SPNEGO handshakes were accepted, in order.
    pub fn spnego_principals(&self) -> Vec<String> {
        self.shared
            .security
            .as_ref()
            .map_or_else(Vec::new, Security::principals)
    }
    /// Forgets every delegation token and `hadoop.auth` cookie, as a NameNode restarted
    /// without its token state (clients must authenticate anew).
    pub fn forget_credentials(&self) {
        if let Some(s) = &self.shared.security {
            s.forget_all();
        }
    }
    /// Delegation tokens the server knows (issued, not cancelled or forgotten).
    pub fn live_tokens(&self) -> usize {
        self.shared
            .security
            .as_ref()
            .map_or(0, Security::live_tokens)
    }
    /// Changes the renew interval and maximum lifetime of delegation tokens.
    pub fn set_token_lifetimes(&self, renew_interval: Duration, max_lifetime: Duration) {
        if let Some(s) = &self.shared.security {
            s.set_token_lifetimes(renew_interval, max_lifetime);
        }
    }
    /// Changes the validity of new `hadoop.auth` cookies.
    pub fn set_cookie_validity(&self, validity: Duration) {
        if let Some(s) = &self.shared.security {
            s.set_cookie_validity(validity);
        }
    }

    /// Clears counters, the request log and the concurrency maxima.
    pub fn reset_counters(&self) {
        lock(&self.shared.stats.counts).clear();
        lock(&self.shared.stats.log).clear();
        if let Some(s) = &self.shared.security {
            s.reset_counts();
        }
        self.shared.stats.max_inflight.store(0, Ordering::SeqCst);
        for nn in &self.shared.namenodes {
            nn.max_inflight.store(0, Ordering::SeqCst);
        }
    }
}
