//! The accept loop: TLS, HTTP/1.1 connections with graceful shutdown, and the limits of
//! `[server]` ([`ServerSettings`]).
//!
//! Every connection is tracked from accept to close with whether a request is in flight
//! (from its complete header until its response body is written) and since when it has been
//! without one:
//!
//! * without a request in flight, a connection is closed `header_timeout` after it was
//!   accepted or after the first byte of its next request arrived (slow headers, slowloris),
//!   and `idle_timeout` after its last response when nothing arrives (keep-alive);
//! * a request in flight for longer than `request_timeout` is answered 503;
//! * at `max_connections` (lowered to fit the open-file limit, with some descriptors to
//!   spare), a new connection makes room by closing a connection without a request in
//!   flight: first those that never completed a request (slow headers, silent), oldest
//!   first, then the kept-alive connection idle the longest, so that health checks and
//!   clients with requests keep being answered. When every connection has a request in
//!   flight, the new connection is closed at once (the client sees a reset and retries;
//!   waiting would only hold the socket). The same eviction runs
//!   when the process is out of file descriptors, so that `accept` can succeed again.
//!
//! HTTP/1.1's own header timeout in hyper also runs between kept-alive requests (it starts
//! when hyper waits for a head), so the timers are this module's instead.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::WebConfig;
use super::metrics::{CloseReason, WebMetrics};
use super::settings::ServerSettings;

/// "No time recorded" in the atomics below.
const NONE: u64 = u64::MAX;

/// What the server knows of one connection (shared by its task, its I/O and its requests).
#[derive(Debug)]
struct ConnState {
    /// Requests of this connection between complete header and written response.
    in_flight: AtomicUsize,
    /// Milliseconds since the server's epoch when the connection was last without a request
    /// in flight (accept, or end of the last response).
    idle_since: AtomicU64,
    /// Milliseconds since the epoch of the first byte read while idle; [`NONE`]: none yet.
    head_started: AtomicU64,
    /// Requests served so far.
    served: AtomicU64,
    /// Set when the server closes the connection (reason as `u64`), then notified.
    close: Notify,
    close_reason: Mutex<Option<CloseReason>>,
}

impl ConnState {
    fn new(now: u64) -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(now),
            head_started: AtomicU64::new(NONE),
            served: AtomicU64::new(0),
            close: Notify::new(),
            close_reason: Mutex::new(None),
        }
    }

    fn close(&self, reason: CloseReason) {
        if let Ok(mut g) = self.close_reason.lock()
            && g.is_none()
        {
            *g = Some(reason);
        }
        self.close.notify_one();
    }

    fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason.lock().ok().and_then(|g| *g)
    }

    /// When an idle connection is due to be closed, and why; `None` while a request is in
    /// flight.
    fn deadline(&self, s: &ServerSettings) -> Option<(u64, CloseReason)> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2);
        let head = self.head_started.load(Ordering::SeqCst);
        if head != NONE {
            return Some((head + ms(s.header_timeout), CloseReason::HeaderTimeout));
        }
        let idle = self.idle_since.load(Ordering::SeqCst);
        if self.served.load(Ordering::SeqCst) == 0 {
            Some((idle + ms(s.header_timeout), CloseReason::HeaderTimeout))
        } else {
            Some((idle + ms(s.idle_timeout), CloseReason::IdleTimeout))
        }
    }
}

/// Every open connection by accept order, and the server's clock.
#[derive(Debug)]
struct Connections {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<ConnState>>>,
}

impl Connections {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX / 2)
    }

    fn len(&self) -> usize {
        self.open.lock().map_or(0, |g| g.len())
    }

    fn insert(&self) -> (u64, Arc<ConnState>) {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let state = Arc::new(ConnState::new(self.now()));
        if let Ok(mut g) = self.open.lock() {
            g.insert(id, Arc::clone(&state));
        }
        (id, state)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut g) = self.open.lock() {
            g.remove(&id);
        }
    }

    /// Closes a connection without a request in flight: one that never completed a request
    /// (slow or silent) if any, else the one idle the longest; false when every connection
    /// has a request in flight.
    fn evict_one(&self) -> bool {
        let Ok(g) = self.open.lock() else {
            return false;
        };
        let victim = g
            .iter()
            .filter(|(_, c)| c.in_flight.load(Ordering::SeqCst) == 0 && c.close_reason().is_none())
            .min_by_key(|(id, c)| {
                (
                    c.served.load(Ordering::SeqCst) > 0,
                    c.idle_since.load(Ordering::SeqCst),
                    **id,
                )
            })
            .map(|(id, _)| *id);
        match victim.and_then(|id| g.get(&id)) {
            Some(c) => {
                c.close(CloseReason::Evicted);
                true
            }
            None => false,
        }
    }
}

/// Marks the first byte of a request header read while the connection is idle.
struct TrackedIo<S> {
    inner: S,
    state: Arc<ConnState>,
    conns: Arc<Connections>,
}

impl<S: AsyncRead + Unpin> AsyncRead for TrackedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && self.state.in_flight.load(Ordering::SeqCst) == 0
            && self.state.head_started.load(Ordering::SeqCst) == NONE
        {
            let now = self.conns.now();
            self.state.head_started.store(now, Ordering::SeqCst);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TrackedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A request in flight: created when its header is complete, dropped when its response
/// body has been written (or abandoned).
struct InFlight {
    state: Arc<ConnState>,
    conns: Arc<Connections>,
}

impl InFlight {
    fn new(state: &Arc<ConnState>, conns: &Arc<Connections>) -> Self {
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        state.head_started.store(NONE, Ordering::SeqCst);
        Self {
            state: Arc::clone(state),
            conns: Arc::clone(conns),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state
            .idle_since
            .store(self.conns.now(), Ordering::SeqCst);
        self.state.served.fetch_add(1, Ordering::SeqCst);
        self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
        // Wake the watchdog: its next deadline counts from now.
        self.state.close.notify_one();
    }
}

/// A response body that keeps its request [`InFlight`] until it has been written.
struct GuardedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for GuardedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The router behind one connection: marks requests in flight and bounds their time.
#[derive(Clone)]
struct ConnService {
    router: Router,
    state: Arc<ConnState>,
    conns: Arc<Connections>,
    request_timeout: Duration,
    metrics: WebMetrics,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::new(&self.state, &self.conns);
        let inner = hyper_util::service::TowerToHyperService::new(self.router.clone());
        let timeout = self.request_timeout;
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let response =
                match tokio::time::timeout(timeout, hyper::service::Service::call(&inner, request))
                    .await
                {
                    Ok(Ok(r)) => r,
                    Ok(Err(never)) => match never {},
                    Err(_) => {
                        metrics.request_timeouts.inc();
                        request_timed_out()
                    }
                };
            Ok(response.map(|inner| {
                Body::new(GuardedBody {
                    inner,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// 503 for a request that ran out of time (the server's share is unknown: a handler may be
/// slow, or the client's body; 5xx lets Alertmanager re-send).
fn request_timed_out() -> Response<Body> {
    let mut r = Response::new(Body::from("request timed out\n"));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Whether `e` means the process (or system) has no file descriptor left.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == nix::libc::EMFILE || code == nix::libc::ENFILE
    )
}

/// File descriptors kept free of connections for everything else the process opens
/// (database and NameNode connections, files, the listener).
const RESERVED_DESCRIPTORS: u64 = 64;

/// `max_connections`, lowered to fit the process's open-file limit (`ulimit -n`) with
/// [`RESERVED_DESCRIPTORS`] to spare: beyond it `accept` fails and nobody is answered.
fn connection_cap(max_connections: usize) -> usize {
    let Ok((soft, _)) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    else {
        return max_connections;
    };
    let fits =
        usize::try_from(soft.saturating_sub(RESERVED_DESCRIPTORS).max(1)).unwrap_or(usize::MAX);
    if fits < max_connections {
        tracing::warn!(
            max_connections,
            open_file_limit = soft,
            cap = fits,
            "server.max_connections does not fit the open-file limit; capping connections lower."
        );
        fits
    } else {
        max_connections
    }
}

/// Serves `router` on `listener` until `shutdown` fires, then lets open requests finish for
/// up to `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    web: &WebConfig,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let settings = Arc::new(web.server.clone());
    let cap = connection_cap(settings.max_connections);
    let metrics = web.metrics.clone();
    let tls = web.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    // This module's timers replace hyper's (see the module docs).
    builder.http1().header_read_timeout(None);
    let conns = Arc::new(Connections {
        epoch: Instant::now(),
        next_id: AtomicU64::new(0),
        open: Mutex::default(),
    });
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "Accepting a connection failed.");
                    if out_of_descriptors(&e) && conns.evict_one() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    } else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        if conns.len() >= cap && !conns.evict_one() {
            metrics.closed(CloseReason::Rejected);
            tracing::debug!(%peer, "Connection cap reached with every connection busy; closing the new one.");
            drop(stream);
            continue;
        }
        let (id, state) = conns.insert();
        metrics.connections.inc();
        let service = ConnService {
            router: router.clone(),
            state: Arc::clone(&state),
            conns: Arc::clone(&conns),
            request_timeout: settings.request_timeout,
            metrics: metrics.clone(),
        };
        let task = Connection {
            state,
            conns: Arc::clone(&conns),
            settings: Arc::clone(&settings),
            metrics: metrics.clone(),
            builder: builder.clone(),
            watcher: graceful.watcher(),
            tls: tls.clone(),
        };
        tokio::spawn(async move {
            let (conns, metrics) = (Arc::clone(&task.conns), task.metrics.clone());
            task.run(stream, service, peer).await;
            conns.remove(id);
            metrics.connections.dec();
        });
    }
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "HTTP connections still open after the grace period; closing them."
        );
    }
}

/// One accepted connection's task.
struct Connection {
    state: Arc<ConnState>,
    conns: Arc<Connections>,
    settings: Arc<ServerSettings>,
    metrics: WebMetrics,
    builder: hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Connection {
    async fn run(self, stream: TcpStream, service: ConnService, peer: std::net::SocketAddr) {
        let io = TrackedIo {
            inner: stream,
            state: Arc::clone(&self.state),
            conns: Arc::clone(&self.conns),
        };
        match self.tls.clone() {
            None => self.http(io, service, peer).await,
            Some(acceptor) => {
                let handshake = tokio::select! {
                    r = tokio::time::timeout(self.settings.tls_handshake_timeout, acceptor.accept(io)) => r,
                    () = self.state.close.notified() => {
                        self.count_close();
                        return;
                    }
                };
                match handshake {
                    Ok(Ok(s)) => self.http(s, service, peer).await,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed.");
                        self.metrics.closed(CloseReason::TlsHandshake);
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out.");
                        self.metrics.closed(CloseReason::TlsHandshake);
                    }
                }
            }
        }
    }

    fn count_close(&self) {
        count_close(&self.state, &self.metrics);
    }

    /// Serves HTTP on `io` until the connection ends or the server closes it.
    async fn http<I>(self, io: I, service: ConnService, peer: std::net::SocketAddr)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn = self
            .builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        let Self {
            state,
            conns,
            settings,
            metrics,
            watcher,
            ..
        } = self;
        let conn = watcher.watch(conn);
        tokio::pin!(conn);
        loop {
            let wait = match state.deadline(&settings) {
                None => settings.idle_timeout,
                Some((at, reason)) => {
                    let now = conns.now();
                    if now >= at {
                        state.close(reason);
                        count_close(&state, &metrics);
                        tracing::debug!(%peer, reason = reason.as_str(), "Closing the connection.");
                        return;
                    }
                    Duration::from_millis(at - now)
                }
            };
            tokio::select! {
                r = &mut conn => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "Connection ended with an error.");
                    }
                    return;
                }
                () = state.close.notified() => {
                    if state.close_reason().is_some() {
                        count_close(&state, &metrics);
                        tracing::debug!(%peer, "Connection closed to make room.");
                        return;
                    }
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Counts the server's reason for closing a connection, if it closed it.
fn count_close(state: &ConnState, metrics: &WebMetrics) {
    if let Some(reason) = state.close_reason() {
        metrics.closed(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_fits_the_open_file_limit() {
        let (soft, _) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        let cap = connection_cap(usize::MAX);
        assert_eq!(
            cap as u64,
            soft.saturating_sub(RESERVED_DESCRIPTORS).max(1),
            "open-file limit {soft}"
        );
        assert_eq!(connection_cap(1), 1);
    }
}
