//! The HTTP transport both binaries share, configured as Prometheus' exporter-toolkit does
//! (`--web.listen-address`, `--web.config.file`): TLS with optional client certificates,
//! bcrypt basic authentication (successful verifications cached), extra response headers,
//! the listener and the accept loop with graceful shutdown.
//!
//! Routes are each binary's own; [`with_basic_auth`] wraps a router in this module's
//! authentication and headers.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::exposition::Format;

/// Errors of the web configuration and listener.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The web config file could not be read or parsed.
    #[error("web config {path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Could not bind the listen address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl WebError {
    /// Start-up errors are not retried.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Bind { .. })
    }
}

// === web config ===

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    #[allow(dead_code)]
    http2: Option<bool>,
}

/// Validated web configuration.
#[derive(Clone, Default)]
pub struct WebConfig {
    tls: Option<Arc<rustls::ServerConfig>>,
    users: BTreeMap<String, String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Authorization header values already verified (bcrypt is deliberately slow).
    verified: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("headers", &self.headers.len())
            .finish()
    }
}

impl WebConfig {
    /// Loads `--web.config.file`. Relative paths in it are relative to the file.
    pub fn load(path: &Path) -> Result<Self, WebError> {
        let err = |message: String| WebError::Config {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let raw: RawWebConfig = serde_norway::from_str(&text).map_err(|e| err(e.to_string()))?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        let tls = raw
            .tls_server_config
            .map(|t| build_tls(&t, &resolve).map_err(err))
            .transpose()?;
        for (user, hash) in &raw.basic_auth_users {
            if !hash.starts_with("$2") {
                return Err(err(format!(
                    "basic_auth_users.{user}: expected a bcrypt hash"
                )));
            }
        }
        let mut headers = Vec::new();
        for (k, v) in raw
            .http_server_config
            .map(|h| h.headers)
            .unwrap_or_default()
        {
            let name =
                HeaderName::try_from(k.as_str()).map_err(|e| err(format!("header {k}: {e}")))?;
            let value =
                HeaderValue::try_from(v.as_str()).map_err(|e| err(format!("header {k}: {e}")))?;
            headers.push((name, value));
        }
        Ok(Self {
            tls: tls.map(Arc::new),
            users: raw.basic_auth_users,
            headers,
            verified: Arc::default(),
        })
    }

    /// Whether TLS is on.
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether basic authentication is required.
    pub fn basic_auth_required(&self) -> bool {
        !self.users.is_empty()
    }

    /// Extra response headers from `http_server_config.headers`.
    pub fn extra_headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// Whether an `Authorization` header value carries valid basic credentials.
    pub async fn authorize_basic(&self, value: &str) -> bool {
        check_basic_auth(self, value).await
    }

    /// A web config with these basic-auth users (bcrypt hashes), for tests and embedding.
    pub fn with_users(users: BTreeMap<String, String>) -> Self {
        Self {
            users,
            ..Self::default()
        }
    }
}

fn tls_version(v: &str) -> Result<&'static rustls::SupportedProtocolVersion, String> {
    match v {
        "TLS12" => Ok(&rustls::version::TLS12),
        "TLS13" => Ok(&rustls::version::TLS13),
        other => Err(format!(
            "unsupported TLS version {other:?} (TLS12 or TLS13)"
        )),
    }
}

fn build_tls(
    t: &RawTls,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<rustls::ServerConfig, String> {
    let read = |p: &Path| std::fs::read(resolve(p)).map_err(|e| format!("{}: {e}", p.display()));
    let certs: Vec<_> = rustls_pemfile::certs(&mut read(&t.cert_file)?.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cert_file: {e}"))?;
    if certs.is_empty() {
        return Err("cert_file holds no certificate".into());
    }
    let key = rustls_pemfile::private_key(&mut read(&t.key_file)?.as_slice())
        .map_err(|e| format!("key_file: {e}"))?
        .ok_or("key_file holds no private key")?;
    let min = t
        .min_version
        .as_deref()
        .map(tls_version)
        .transpose()?
        .unwrap_or(&rustls::version::TLS12);
    let max = t
        .max_version
        .as_deref()
        .map(tls_version)
        .transpose()?
        .unwrap_or(&rustls::version::TLS13);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| {
                let rank = |x: &rustls::SupportedProtocolVersion| {
                    u8::from(x.version == rustls::ProtocolVersion::TLSv1_3)
                };
                rank(v) >= rank(min) && rank(v) <= rank(max)
            })
            .collect();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let builder = match t.client_auth_type.as_deref().unwrap_or("NoClientCert") {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let ca = t
                .client_ca_file
                .as_ref()
                .ok_or("client_ca_file is required for client certificates")?;
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut read(ca)?.as_slice()) {
                roots
                    .add(c.map_err(|e| format!("client_ca_file: {e}"))?)
                    .map_err(|e| e.to_string())?;
            }
            let mut v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            if t.client_auth_type.as_deref() == Some("VerifyClientCertIfGiven") {
                v = v.allow_unauthenticated();
            }
            builder.with_client_cert_verifier(v.build().map_err(|e| e.to_string())?)
        }
        other => return Err(format!("unsupported client_auth_type {other:?}")),
    };
    builder
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())
}

/// A bcrypt hash of a random password, verified against unknown users so that their
/// timing matches known users'.
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// Wraps `router` in basic authentication (when the web config has users) and the
/// configured extra response headers (on every response, 401s included). `open_paths`
/// answer without credentials: liveness and readiness probes (Kubernetes sends none).
pub fn with_basic_auth(
    router: Router,
    web: &WebConfig,
    open_paths: &'static [&'static str],
) -> Router {
    router.layer(middleware::from_fn_with_state(
        (web.clone(), open_paths),
        auth_and_headers,
    ))
}

/// Renders a metrics body off the I/O threads (it is CPU work on in-memory state). A
/// rendering that panics answers 500, so that Prometheus marks the target down, instead of an
/// empty 200 that would look like a target without series.
pub async fn metrics_response<F>(format: Format, render: F) -> Response
where
    F: FnOnce(Format) -> String + Send + 'static,
{
    match tokio::task::spawn_blocking(move || render(format)).await {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "Rendering the metrics failed.");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering the metrics failed; see the log\n",
            )
                .into_response()
        }
    }
}

async fn auth_and_headers(
    State((web, open_paths)): State<(WebConfig, &'static [&'static str])>,
    request: Request,
    next: Next,
) -> Response {
    let open = open_paths.contains(&request.uri().path());
    if !web.users.is_empty() && !open {
        let auth = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let ok = match auth {
            Some(value) => web.authorize_basic(&value).await,
            None => false,
        };
        if !ok {
            let mut response = Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header(header::WWW_AUTHENTICATE, "Basic realm=\"hive-smallfiles\"")
                .body(Body::from("Unauthorized\n"))
                .unwrap_or_default();
            for (k, v) in &web.headers {
                response.headers_mut().insert(k.clone(), v.clone());
            }
            return response;
        }
    }
    let mut response = next.run(request).await;
    for (k, v) in &web.headers {
        response.headers_mut().insert(k.clone(), v.clone());
    }
    response
}

async fn check_basic_auth(web: &WebConfig, value: &str) -> bool {
    if web
        .verified
        .lock()
        .map(|g| g.contains(value))
        .unwrap_or(false)
    {
        return true;
    }
    // Authentication schemes are case-insensitive (RFC 9110, section 11.1).
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    let Some((user, password)) = decoded.split_once(':') else {
        return false;
    };
    let (hash, known) = match web.users.get(user) {
        Some(h) => (h.clone(), true),
        None => (DUMMY_HASH.to_owned(), false),
    };
    let password = password.to_owned();
    let verified =
        tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
    if verified && known {
        if let Ok(mut g) = web.verified.lock() {
            if g.len() > 256 {
                g.clear();
            }
            g.insert(value.to_owned());
        }
        return true;
    }
    false
}

// === listener ===

/// Parses `--web.listen-address` (`:9878`, `0.0.0.0:9878`, `[::1]:9878`).
pub fn parse_listen_address(addr: &str) -> Result<SocketAddr, String> {
    let full = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_owned()
    };
    full.parse()
        .map_err(|e| format!("invalid listen address {addr:?}: {e}"))
}

/// Binds the listener (separately from serving, so start-up errors surface early).
pub async fn bind(addr: &str) -> Result<TcpListener, WebError> {
    let sock = parse_listen_address(addr).map_err(|m| WebError::Bind {
        addr: addr.to_owned(),
        source: std::io::Error::other(m),
    })?;
    TcpListener::bind(sock)
        .await
        .map_err(|source| WebError::Bind {
            addr: addr.to_owned(),
            source,
        })
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
    let tls = web.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "Accepting a connection failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        match &tls {
            None => {
                let conn = builder
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "Connection ended with an error.");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(
                        Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed.");
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "Connection ended with an error.");
                    }
                });
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen_address(":9878").unwrap().port(), 9878);
        assert!(parse_listen_address("[::1]:1").unwrap().is_ipv6());
        assert!(parse_listen_address("nope").is_err());
    }

    #[test]
    fn web_config_rejects_plaintext_passwords_and_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.yml");
        std::fs::write(&p, "basic_auth_users:\n  a: plain\n").unwrap();
        assert!(
            WebConfig::load(&p)
                .unwrap_err()
                .to_string()
                .contains("bcrypt")
        );
        std::fs::write(&p, "bogus: 1\n").unwrap();
        assert!(WebConfig::load(&p).is_err());
        std::fs::write(
            &p,
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        )
        .unwrap();
        assert!(WebConfig::load(&p).is_ok());
    }

    /// A rendering that panics is a 500, not an empty 200 that looks like a healthy target.
    #[tokio::test]
    async fn metrics_rendering_that_panics_is_a_500() {
        let ok = metrics_response(Format::Text, |_| "up 1\n".to_owned()).await;
        assert_eq!(ok.status(), StatusCode::OK);
        let failed = metrics_response(Format::Text, |_| -> String {
            panic!("rendering failed on purpose")
        })
        .await;
        assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn basic_auth_scheme_is_case_insensitive() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let web = WebConfig::with_users(BTreeMap::from([("prom".to_owned(), hash)]));
        let encoded = base64::engine::general_purpose::STANDARD.encode("prom:pw");
        for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
            assert!(
                web.authorize_basic(&format!("{scheme} {encoded}")).await,
                "{scheme}"
            );
        }
        assert!(!web.authorize_basic(&format!("Bearer {encoded}")).await);
        assert!(!web.authorize_basic("basic").await);
    }
}
