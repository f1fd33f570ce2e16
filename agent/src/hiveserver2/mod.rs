//! A native HiveServer2 client: sessions, statements and result sets over the binary Thrift
//! transport (SASL PLAIN, SASL GSSAPI/Kerberos or NOSASL; optionally over TLS) or the HTTP
//! transport (Basic or Kerberos `Negotiate`, login cookie; optionally HTTPS), as the merge
//! agent needs them to run SQL on the cluster's own engine (HiveServer2, Spark Thrift Server,
//! Kyuubi, Impala's HS2 ports, Knox in front of any of them).
//!
//! This module owns the client API ([`Hs2Session`], [`Hs2Config`], [`Hs2Error`], [`Value`],
//! [`QueryResult`]); `protocol` owns the Thrift binary encoding, `messages` the
//! TCLIService structures, `transport` the SASL/NOSASL byte framing, `sasl_gssapi` the
//! RFC 4752 security layer, `tls` the certificate checks and `http` the HTTP transport. The
//! protocol sources are Apache Hive's `service-rpc/if/TCLIService.thrift`, Apache Thrift's
//! `doc/specs/thrift-binary-protocol.md`, its `TSaslTransport` and `THttpClient`, RFC 4616
//! (PLAIN) and RFC 4752 (GSSAPI).
//!
//! Protocol version: the client asks for the newest version it knows (V11); a server answers
//! with the version both sides support (HiveServer2 and Spark reply with the smaller of the
//! two), which decides between column-based (V6 and later) and row-based result sets. A server
//! older than V11 that rejects the unknown enum value (its generated code fails the request
//! with a "client_protocol" application exception) is retried with the next older version.
//!
//! Statements run asynchronously on the server (`runAsync`); the client polls
//! GetOperationStatus with a growing interval up to [`Hs2Config::poll_interval`], cancels the
//! operation on the server when asked to, and always closes the operation. Passwords are only
//! sent in the SASL negotiation and never logged.

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fuzzing;
mod http;
mod messages;
mod protocol;
mod sasl_gssapi;
mod tls;
mod transport;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hive_smallfiles_core::kerberos::{Kerberos, ServiceName};
use hive_smallfiles_core::secret::Secret;
use tokio_util::sync::CancellationToken;

pub use messages::Value;
use messages::{
    OperationHandle, ReplyError, Request, SessionHandle, Status, decode_reply, operation_state,
    protocol_version,
};
use protocol::{DecodeError, Decoder};
use transport::{Transport, TransportError, is_incomplete};

pub use sasl_gssapi::Qop;
pub use tls::client_config as tls_client_config;

/// How the client authenticates at the transport level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hs2Auth {
    /// SASL PLAIN: `hive.server2.authentication` NONE (any user), LDAP, PAM or CUSTOM (HTTP
    /// transport: `Authorization: Basic`).
    Plain,
    /// No SASL (`hive.server2.authentication=NOSASL`): unframed Thrift messages.
    NoSasl,
    /// Kerberos (`hive.server2.authentication=KERBEROS`): SASL GSSAPI, or `Negotiate` on the
    /// HTTP transport, with [`Hs2Config::kerberos`].
    Kerberos,
}

/// The Thrift transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hs2Transport {
    /// `hive.server2.transport.mode=binary` (the default; port 10000).
    Binary,
    /// `hive.server2.transport.mode=http` (port 10001): Thrift in HTTP POSTs to `/<path>`
    /// (`hive.server2.thrift.http.path`, default `cliservice`).
    Http {
        /// The endpoint's path, without the leading `/`.
        path: String,
    },
}

/// The Kerberos side of [`Hs2Auth::Kerberos`].
#[derive(Clone)]
pub struct Hs2Kerberos {
    /// The cluster's login (`[cluster.kerberos]`).
    pub login: Kerberos,
    /// The server's principal, `hive/_HOST@REALM` style: `_HOST` becomes the connect host
    /// (lower-cased), as Hive's JDBC `principal=` parameter.
    pub principal: String,
    /// The SASL security layer of the binary transport (the server's
    /// `hive.server2.thrift.sasl.qop`); not used on HTTP.
    pub qop: Qop,
}

impl fmt::Debug for Hs2Kerberos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hs2Kerberos")
            .field("login", &self.login.principal())
            .field("principal", &self.principal)
            .field("qop", &self.qop)
            .finish()
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Hs2Config {
    /// Server host name or address.
    pub host: String,
    /// Thrift binary port (HiveServer2 default 10000).
    pub port: u16,
    /// User name (the session's user).
    pub user: String,
    /// Password for SASL PLAIN; without one the client sends `anonymous`, as Hive's JDBC
    /// driver does (servers with authentication NONE ignore it).
    pub password: Option<Secret>,
    /// Transport authentication.
    pub auth: Hs2Auth,
    /// Binary or HTTP transport.
    pub transport: Hs2Transport,
    /// TLS (`hive.server2.use.SSL`): the client configuration (see [`tls_client_config`]);
    /// `None` for plain TCP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The login and server principal with [`Hs2Auth::Kerberos`].
    pub kerberos: Option<Hs2Kerberos>,
    /// Limit for connecting, SASL negotiation and OpenSession together.
    pub connect_timeout: Duration,
    /// Longest wait between two GetOperationStatus polls (polls start faster).
    pub poll_interval: Duration,
    /// Session configuration sent with OpenSession: keys starting `set:` or `use:` are sent as
    /// they are (`set:hivevar:x`, `use:database`), other keys as `set:hiveconf:<key>`.
    pub session_conf: Vec<(String, String)>,
}

impl Hs2Config {
    /// A configuration with defaults: SASL PLAIN, 30 s connect timeout, 500 ms polls.
    pub fn new(host: impl Into<String>, port: u16, user: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port,
            user: user.into(),
            password: None,
            auth: Hs2Auth::Plain,
            transport: Hs2Transport::Binary,
            tls: None,
            kerberos: None,
            connect_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
            session_conf: Vec::new(),
        }
    }
}

/// What went wrong talking to HiveServer2.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Hs2Error {
    /// The server could not be reached, or the connection broke.
    #[error("HiveServer2 connection failed: {0}")]
    Connect(String),
    /// SASL negotiation was refused (bad user or password).
    #[error("HiveServer2 authentication failed: {0}")]
    Authentication(String),
    /// The server sent something this client does not understand, or refused a call.
    #[error("HiveServer2 protocol error: {0}")]
    Protocol(String),
    /// The server reported an error for a request or statement.
    #[error("HiveServer2 error (SQLSTATE {sql_state}, code {error_code}): {message}")]
    Server {
        /// SQLSTATE, empty when the server sent none.
        sql_state: String,
        /// The server's error code, 0 when it sent none.
        error_code: i32,
        /// The server's message.
        message: String,
    },
    /// The TLS handshake failed: the certificate is untrusted or names another host, or the
    /// server does not speak TLS. Fails closed; not retried.
    #[error("HiveServer2 TLS failed: {0}")]
    Tls(String),
    /// The Kerberos login or the service ticket failed (the cause is named: KDC unreachable,
    /// unknown principal, clock skew, expired…).
    #[error("HiveServer2 Kerberos authentication failed: {message}")]
    Kerberos {
        /// What failed.
        message: String,
        /// Whether a later attempt may succeed (e.g. the KDC was unreachable).
        retryable: bool,
    },
    /// Connecting took longer than the connect timeout.
    #[error("HiveServer2 connection timed out")]
    Timeout,
    /// The caller cancelled the statement (or the server reports it cancelled).
    #[error("HiveServer2 statement cancelled")]
    Cancelled,
}

impl Hs2Error {
    /// Whether trying again (with a new session) may succeed: connection failures and
    /// timeouts are; server errors, protocol errors, refused logins and cancellations not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Timeout => true,
            Self::Kerberos { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// A short, fixed label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Authentication(_) => "authentication",
            Self::Tls(_) => "tls",
            Self::Kerberos { .. } => "kerberos",
            Self::Protocol(_) => "protocol",
            Self::Server { .. } => "server",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
        }
    }

    fn from_status(status: &Status, what: &str) -> Self {
        Self::Server {
            sql_state: status.sql_state.clone().unwrap_or_default(),
            error_code: status.error_code.unwrap_or(0),
            message: status
                .error_message
                .clone()
                .unwrap_or_else(|| format!("{what} failed with status {}", status.code)),
        }
    }
}

impl From<TransportError> for Hs2Error {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Io(m) => Self::Connect(m),
            TransportError::Auth(m) => Self::Authentication(m),
            TransportError::Protocol(m) => Self::Protocol(m),
            TransportError::Tls(m) => Self::Tls(m),
            TransportError::Kerberos { message, retryable } => {
                Self::Kerberos { message, retryable }
            }
        }
    }
}

/// Rows of a statement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows; each has one value per column.
    pub rows: Vec<Vec<Value>>,
}

/// Rows asked for per FetchResults call.
const FETCH_ROWS: i64 = 10_000;
/// First poll delay; doubles up to the configured poll interval.
const FIRST_POLL: Duration = Duration::from_millis(10);
/// How long a request already on the wire may still take after cancellation before the
/// connection is abandoned.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// An open HiveServer2 session on its own connection. Not shareable: one statement at a time.
pub struct Hs2Session {
    transport: Transport,
    handle: SessionHandle,
    protocol_version: i32,
    seq: i32,
    poll_interval: Duration,
    /// Set while a request is in flight; a request abandoned half-way leaves the connection
    /// out of step, and the session unusable.
    broken: bool,
    server: String,
}

impl fmt::Debug for Hs2Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hs2Session")
            .field("server", &self.server)
            .field(
                "protocol_version",
                &protocol_version::name(self.protocol_version),
            )
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// Why one OpenSession attempt failed.
enum OpenError {
    /// The server rejected the requested protocol version.
    Version(String),
    Other(Hs2Error),
}

impl From<Hs2Error> for OpenError {
    fn from(e: Hs2Error) -> Self {
        Self::Other(e)
    }
}

impl Hs2Session {
    /// Connects, authenticates and opens a session.
    pub async fn open(cfg: &Hs2Config) -> Result<Self, Hs2Error> {
        let configuration: Vec<(String, String)> = cfg
            .session_conf
            .iter()
            .map(|(k, v)| {
                let key = if k.starts_with("set:") || k.starts_with("use:") {
                    k.clone()
                } else {
                    format!("set:hiveconf:{k}")
                };
                (key, v.clone())
            })
            .collect();
        let mut version = protocol_version::V11;
        loop {
            let attempt = Self::open_with_version(cfg, version, &configuration);
            match tokio::time::timeout(cfg.connect_timeout, attempt).await {
                Err(_) => return Err(Hs2Error::Timeout),
                Ok(Ok(session)) => return Ok(session),
                Ok(Err(OpenError::Other(e))) => return Err(e),
                Ok(Err(OpenError::Version(msg))) => {
                    if version <= protocol_version::V1 {
                        return Err(Hs2Error::Protocol(format!("OpenSession refused: {msg}")));
                    }
                    tracing::debug!(
                        server = %format_args!("{}:{}", cfg.host, cfg.port),
                        version = %protocol_version::name(version),
                        "server refused the protocol version; trying an older one"
                    );
                    version -= 1;
                }
            }
        }
    }

    async fn open_with_version(
        cfg: &Hs2Config,
        version: i32,
        configuration: &[(String, String)],
    ) -> Result<Self, OpenError> {
        let server = format!("{}:{}", cfg.host, cfg.port);
        let password = cfg.password.as_ref().map(Secret::expose);
        let transport = connect(cfg, &server, password).await?;
        let mut session = Self {
            transport,
            handle: SessionHandle(messages::HandleId {
                guid: Vec::new(),
                secret: Vec::new(),
            }),
            protocol_version: version,
            seq: 0,
            poll_interval: cfg.poll_interval.max(FIRST_POLL),
            broken: false,
            server,
        };
        let request = Request::OpenSession {
            version,
            username: &cfg.user,
            // With SASL the password went in the negotiation.
            password: if cfg.auth == Hs2Auth::NoSasl {
                password
            } else {
                None
            },
            configuration,
        };
        let resp = match session
            .call_raw(&request, messages::open_session_response)
            .await?
        {
            Ok(resp) => resp,
            Err(ReplyError::Application { message, .. }) if message.contains("client_protocol") => {
                return Err(OpenError::Version(message));
            }
            Err(e) => return Err(reply_error("OpenSession", e).into()),
        };
        if !resp.status.is_success() {
            return Err(Hs2Error::from_status(&resp.status, "OpenSession").into());
        }
        session.handle = resp.session.ok_or_else(|| {
            Hs2Error::Protocol("OpenSession reply without a session handle".into())
        })?;
        let server_version = resp.server_protocol_version.unwrap_or(version);
        session.protocol_version = server_version.clamp(protocol_version::V1, version);
        tracing::debug!(
            server = %session.server,
            protocol = %protocol_version::name(session.protocol_version),
            columnar = session.protocol_version >= protocol_version::V6,
            "HiveServer2 session opened"
        );
        Ok(session)
    }

    /// How many times the HTTP transport sent credentials (a `Negotiate` or `Basic` header;
    /// the login cookie replaces them while the server accepts it); `None` on the binary
    /// transport.
    pub fn http_authentications(&self) -> Option<u64> {
        self.transport.http_authentications()
    }

    /// The protocol version in use, e.g. `V11`.
    pub fn protocol_version(&self) -> String {
        protocol_version::name(self.protocol_version)
    }

    /// Runs `sql` and returns all its rows.
    pub async fn execute(
        &mut self,
        sql: &str,
        cancel: &CancellationToken,
    ) -> Result<QueryResult, Hs2Error> {
        self.run(sql, cancel, true).await
    }

    /// Runs `sql` (DDL, DML, SET) without fetching rows.
    pub async fn execute_update(
        &mut self,
        sql: &str,
        cancel: &CancellationToken,
    ) -> Result<(), Hs2Error> {
        self.run(sql, cancel, false).await.map(|_| ())
    }

    /// Closes the session on the server and the connection.
    pub async fn close(mut self) -> Result<(), Hs2Error> {
        if self.broken {
            self.transport.shutdown().await;
            return Ok(());
        }
        let handle = self.handle.clone();
        let status = self
            .call(&Request::CloseSession(&handle), messages::status_response)
            .await;
        self.transport.shutdown().await;
        let status = status?;
        if !status.is_success() {
            return Err(Hs2Error::from_status(&status, "CloseSession"));
        }
        Ok(())
    }

    async fn run(
        &mut self,
        sql: &str,
        cancel: &CancellationToken,
        fetch: bool,
    ) -> Result<QueryResult, Hs2Error> {
        if self.broken {
            return Err(Hs2Error::Connect(
                "the session's connection is out of step after an interrupted request".into(),
            ));
        }
        if cancel.is_cancelled() {
            return Err(Hs2Error::Cancelled);
        }
        let handle = self.handle.clone();
        let request = Request::ExecuteStatement {
            session: &handle,
            statement: sql,
            run_async: true,
        };
        let resp = self
            .call_cancellable(&request, messages::execute_statement_response, cancel)
            .await?;
        if !resp.status.is_success() {
            return Err(Hs2Error::from_status(&resp.status, "ExecuteStatement"));
        }
        let op = resp.operation.ok_or_else(|| {
            Hs2Error::Protocol("ExecuteStatement reply without an operation handle".into())
        })?;
        let result = self.drive(&op, cancel, fetch).await;
        if !self.broken {
            match self
                .call(&Request::CloseOperation(&op), messages::status_response)
                .await
            {
                Ok(st) if !st.is_success() => {
                    tracing::debug!(server = %self.server, error = ?st.error_message, "CloseOperation failed");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(server = %self.server, error = %e, "CloseOperation failed");
                    if result.is_ok() {
                        return Err(e);
                    }
                }
            }
        }
        result
    }

    /// Polls until the operation ends, then fetches its rows.
    async fn drive(
        &mut self,
        op: &OperationHandle,
        cancel: &CancellationToken,
        fetch: bool,
    ) -> Result<QueryResult, Hs2Error> {
        let mut delay = FIRST_POLL;
        loop {
            let st = self
                .call_cancellable(
                    &Request::GetOperationStatus(op),
                    messages::operation_status_response,
                    cancel,
                )
                .await?;
            if !st.status.is_success() {
                return Err(Hs2Error::from_status(&st.status, "GetOperationStatus"));
            }
            match st.state {
                Some(operation_state::FINISHED) => break,
                Some(operation_state::ERROR) => {
                    return Err(Hs2Error::Server {
                        sql_state: st.sql_state.or(st.status.sql_state).unwrap_or_default(),
                        error_code: st.error_code.or(st.status.error_code).unwrap_or(0),
                        message: st
                            .error_message
                            .or(st.status.error_message)
                            .unwrap_or_else(|| "the statement failed without a message".into()),
                    });
                }
                Some(operation_state::CANCELED) => return Err(Hs2Error::Cancelled),
                Some(
                    operation_state::INITIALIZED
                    | operation_state::RUNNING
                    | operation_state::PENDING,
                ) => {}
                None => {}
                Some(other) => {
                    return Err(Hs2Error::Server {
                        sql_state: String::new(),
                        error_code: 0,
                        message: format!(
                            "the operation ended in state {}",
                            operation_state::name(other)
                        ),
                    });
                }
            }
            tokio::select! {
                () = cancel.cancelled() => {
                    self.cancel_operation(op).await;
                    return Err(Hs2Error::Cancelled);
                }
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(self.poll_interval);
        }
        if !fetch || !op.has_result_set {
            return Ok(QueryResult::default());
        }
        let meta = self
            .call_cancellable(
                &Request::GetResultSetMetadata(op),
                messages::metadata_response,
                cancel,
            )
            .await?;
        if !meta.status.is_success() {
            return Err(Hs2Error::from_status(&meta.status, "GetResultSetMetadata"));
        }
        let mut result = QueryResult {
            columns: meta.columns,
            rows: Vec::new(),
        };
        loop {
            if cancel.is_cancelled() {
                return Err(Hs2Error::Cancelled);
            }
            let request = Request::FetchResults {
                operation: op,
                max_rows: FETCH_ROWS,
            };
            let batch = self
                .call_cancellable(&request, messages::fetch_response, cancel)
                .await?;
            if !batch.status.is_success() {
                return Err(Hs2Error::from_status(&batch.status, "FetchResults"));
            }
            let n = batch.rows.len();
            if let Some(bad) = batch.rows.iter().find(|r| r.len() != result.columns.len()) {
                return Err(Hs2Error::Protocol(format!(
                    "a row of {} values for {} columns",
                    bad.len(),
                    result.columns.len()
                )));
            }
            result.rows.extend(batch.rows);
            // HiveServer2 (and Spark) always answer hasMoreRows=false; an empty batch ends.
            if n == 0 {
                break;
            }
        }
        Ok(result)
    }

    async fn cancel_operation(&mut self, op: &OperationHandle) {
        if self.broken {
            return;
        }
        match tokio::time::timeout(
            CANCEL_GRACE,
            self.call(&Request::CancelOperation(op), messages::status_response),
        )
        .await
        {
            Ok(Ok(st)) if st.is_success() => {}
            Ok(Ok(st)) => {
                tracing::debug!(server = %self.server, error = ?st.error_message, "CancelOperation failed")
            }
            Ok(Err(e)) => {
                tracing::debug!(server = %self.server, error = %e, "CancelOperation failed")
            }
            Err(_) => tracing::debug!(server = %self.server, "CancelOperation timed out"),
        }
    }

    /// A request that gives up (leaving the session unusable) when `cancel` fires and the
    /// reply does not arrive within [`CANCEL_GRACE`].
    async fn call_cancellable<T>(
        &mut self,
        request: &Request<'_>,
        decode: fn(&mut Decoder<'_>) -> Result<T, DecodeError>,
        cancel: &CancellationToken,
    ) -> Result<T, Hs2Error> {
        let fut = self.call(request, decode);
        tokio::pin!(fut);
        tokio::select! {
            r = &mut fut => r,
            () = cancel.cancelled() => match tokio::time::timeout(CANCEL_GRACE, &mut fut).await {
                Ok(r) => r,
                Err(_) => Err(Hs2Error::Cancelled),
            },
        }
    }

    async fn call<T>(
        &mut self,
        request: &Request<'_>,
        decode: fn(&mut Decoder<'_>) -> Result<T, DecodeError>,
    ) -> Result<T, Hs2Error> {
        let method = request.method();
        self.call_raw(request, decode)
            .await?
            .map_err(|e| reply_error(method, e))
    }

    /// Sends `request` and decodes its reply. The outer error is a transport failure, the
    /// inner one a reply that could not be used.
    async fn call_raw<T>(
        &mut self,
        request: &Request<'_>,
        decode: fn(&mut Decoder<'_>) -> Result<T, DecodeError>,
    ) -> Result<Result<T, ReplyError>, Hs2Error> {
        if self.broken {
            return Err(Hs2Error::Connect(
                "the session's connection is out of step after an interrupted request".into(),
            ));
        }
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let method = request.method();
        let bytes = request.encode(seq);
        // Cleared only when the reply has been read in full.
        self.broken = true;
        self.transport.send(&bytes).await?;
        let reply = self
            .transport
            .receive(
                |buf| decode_reply(buf, method, seq, decode),
                |e| matches!(e, ReplyError::Decode(d) if is_incomplete(d)),
            )
            .await?;
        self.broken = matches!(reply, Err(ReplyError::Decode(_) | ReplyError::Mismatch(_)));
        Ok(reply)
    }
}

/// The Kerberos settings of [`Hs2Auth::Kerberos`].
fn kerberos(cfg: &Hs2Config) -> Result<&Hs2Kerberos, Hs2Error> {
    cfg.kerberos.as_ref().ok_or_else(|| Hs2Error::Kerberos {
        message: "auth = kerberos without a Kerberos login ([cluster.kerberos])".into(),
        retryable: false,
    })
}

/// Connects and authenticates the transport of `cfg`.
async fn connect(
    cfg: &Hs2Config,
    server: &str,
    password: Option<&str>,
) -> Result<Transport, Hs2Error> {
    let kerberos = match cfg.auth {
        Hs2Auth::Kerberos => Some(kerberos(cfg)?),
        _ => None,
    };
    match &cfg.transport {
        Hs2Transport::Http { path } => {
            let auth = match (cfg.auth, kerberos) {
                (Hs2Auth::Kerberos, Some(k)) => http::HttpAuth::Kerberos {
                    login: k.login.clone(),
                    principal: k.principal.clone(),
                },
                (Hs2Auth::Plain, _) => {
                    http::HttpAuth::basic(&cfg.user, password.unwrap_or("anonymous"))
                }
                _ => http::HttpAuth::None,
            };
            Ok(Transport::http(http::HttpLink::new(
                &cfg.host,
                cfg.port,
                path,
                cfg.tls.clone(),
                auth,
            )))
        }
        Hs2Transport::Binary => {
            let mut transport = Transport::connect(&cfg.host, cfg.port, cfg.tls.as_ref())
                .await
                .map_err(|e| match Hs2Error::from(e) {
                    Hs2Error::Connect(m) => Hs2Error::Connect(format!("{server}: {m}")),
                    other => other,
                })?;
            match (cfg.auth, kerberos) {
                (Hs2Auth::Plain, _) => {
                    transport
                        .sasl_plain(&cfg.user, password.unwrap_or("anonymous"))
                        .await?;
                }
                (Hs2Auth::Kerberos, Some(k)) => {
                    let service =
                        ServiceName::from_pattern(&k.principal, &cfg.host).map_err(|e| {
                            TransportError::kerberos(
                                &format!("kerberos_principal {:?}", k.principal),
                                &e,
                            )
                        })?;
                    transport.sasl_gssapi(&k.login, &service, k.qop).await?;
                }
                _ => {}
            }
            Ok(transport)
        }
    }
}

fn reply_error(method: &str, e: ReplyError) -> Hs2Error {
    match e {
        ReplyError::Decode(d) => Hs2Error::Protocol(format!("{method}: {d}")),
        ReplyError::Application { message, kind } => Hs2Error::Protocol(format!(
            "{method} refused by the server (application error {kind}): {message}"
        )),
        ReplyError::Mismatch(m) => Hs2Error::Protocol(format!("{method}: {m}")),
    }
}
