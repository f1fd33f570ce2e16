//! The HTTP transport both binaries share, configured as Prometheus' exporter-toolkit does
//! (`--web.listen-address`, `--web.config.file`): TLS with optional client certificates
//! ([`tls`]), bcrypt basic authentication ([`auth`]), extra response headers, the listener,
//! and the accept loop with its timeouts and connection cap ([`serve`](mod@serve), limits
//! from the `[server]` section: [`ServerSettings`]), with its [`WebMetrics`].
//!
//! Routes are each binary's own; [`with_basic_auth`] wraps a router in this module's
//! authentication and headers.

mod auth;
mod metrics;
mod serve;
mod settings;
mod tls;

pub use metrics::{CloseReason, WebMetrics};
pub use serve::serve;
pub use settings::ServerSettings;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::exposition::Format;

use auth::BasicAuth;

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

/// Validated web configuration, with the server's limits and metrics.
#[derive(Clone)]
pub struct WebConfig {
    tls: Option<Arc<rustls::ServerConfig>>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The basic-auth users and the caches of their verifications.
    auth: Arc<BasicAuth>,
    /// `[server]` of the binary's configuration file.
    server: ServerSettings,
    metrics: WebMetrics,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self::with_users(BTreeMap::new())
    }
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.auth.users().keys().collect::<Vec<_>>())
            .field("server", &self.server)
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
            .map(|t| tls::build_tls(&t, &resolve).map_err(err))
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
        Ok(Self::from_parts(
            tls.map(Arc::new),
            headers,
            raw.basic_auth_users,
            ServerSettings::default(),
            WebMetrics::default(),
        ))
    }

    /// Whether TLS is on.
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether basic authentication is required.
    pub fn basic_auth_required(&self) -> bool {
        !self.auth.users().is_empty()
    }

    /// Extra response headers from `http_server_config.headers`.
    pub fn extra_headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// Whether an `Authorization` header value carries valid basic credentials.
    pub async fn authorize_basic(&self, value: &str) -> bool {
        self.auth.check(value).await
    }

    /// A web config with these basic-auth users (bcrypt hashes), for tests and embedding.
    pub fn with_users(users: BTreeMap<String, String>) -> Self {
        Self::from_parts(
            None,
            Vec::new(),
            users,
            ServerSettings::default(),
            WebMetrics::default(),
        )
    }

    /// This web config served with the limits of `server` (`[server]` of the binary's
    /// configuration file), counting into `metrics`. Verifications cached so far are
    /// forgotten.
    pub fn with_server(self, server: ServerSettings, metrics: WebMetrics) -> Self {
        let users = self.auth.users().clone();
        Self::from_parts(self.tls, self.headers, users, server, metrics)
    }

    fn from_parts(
        tls: Option<Arc<rustls::ServerConfig>>,
        headers: Vec<(HeaderName, HeaderValue)>,
        users: BTreeMap<String, String>,
        server: ServerSettings,
        metrics: WebMetrics,
    ) -> Self {
        let permits = server.auth_permits();
        Self {
            tls,
            headers,
            auth: Arc::new(BasicAuth::new(users, permits, metrics.clone())),
            server,
            metrics,
        }
    }

    /// The server's limits.
    pub fn server(&self) -> &ServerSettings {
        &self.server
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &WebMetrics {
        &self.metrics
    }
}

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
    if web.basic_auth_required() && !open {
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
        use base64::Engine as _;
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
