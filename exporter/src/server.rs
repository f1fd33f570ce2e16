//! The exporter's HTTP endpoints: `/metrics`, `/healthz`, `/ready` and a landing page. The
//! router is a plain function of its state ([`router`]), testable without sockets; the
//! transport (TLS, basic auth, the accept loop) is the core's `web` module.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use hive_smallfiles_core::exposition::Format;
use hive_smallfiles_core::web::{WebConfig, metrics_response, with_basic_auth};

use crate::metrics::Metrics;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Registry and snapshots.
    pub metrics: Arc<Metrics>,
    /// Path of the metrics endpoint (`--web.telemetry-path`).
    pub telemetry_path: String,
    /// Web configuration (auth users, extra headers).
    pub web: WebConfig,
}

impl AppState {
    /// New state.
    pub fn new(metrics: Arc<Metrics>, telemetry_path: String, web: WebConfig) -> Self {
        Self {
            metrics,
            telemetry_path,
            web,
        }
    }
}

/// The HTTP routes.
pub fn router(state: AppState) -> Router {
    let path = state.telemetry_path.clone();
    let web = state.web.clone();
    let routes = Router::new()
        .route(&path, get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/ready", get(ready_handler))
        .route("/", get(landing_handler))
        .with_state(state);
    with_basic_auth(routes, &web, &["/healthz", "/ready"])
}

async fn metrics_handler(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let metrics = Arc::clone(&state.metrics);
    metrics_response(format, move |f| metrics.render(f)).await
}

async fn ready_handler(State(state): State<AppState>) -> Response {
    if state.metrics.snapshots.all_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first successful scan of every cluster\n",
        )
            .into_response()
    }
}

async fn landing_handler(State(state): State<AppState>) -> Html<String> {
    let mut rows = String::new();
    for s in state.metrics.snapshots.all() {
        let status = if !s.completed_once {
            "first scan running".to_owned()
        } else if s.scan.success {
            format!(
                "last scan ok, {:.1} s, {} tables",
                s.scan.duration_seconds,
                s.tables.len()
            )
        } else {
            format!(
                "last scan failed: {}",
                s.scan.error.as_deref().unwrap_or("unknown")
            )
        };
        rows.push_str(&format!(
            "<li>{}: {}</li>",
            html_escape(&s.cluster),
            html_escape(&status)
        ));
    }
    Html(format!(
        "<!DOCTYPE html><html><head><title>hive-smallfiles exporter</title></head><body>\
         <h1>hive-smallfiles exporter</h1><p>Version {}</p><ul>{rows}</ul>\
         <p><a href=\"{}\">Metrics</a> · <a href=\"/healthz\">Health</a> · <a href=\"/ready\">Ready</a></p>\
         </body></html>",
        env!("CARGO_PKG_VERSION"),
        html_escape(&state.telemetry_path)
    ))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::Request;
    use base64::Engine as _;
    use tower::ServiceExt;

    fn state(users: &[(&str, &str)]) -> AppState {
        let web = WebConfig::with_users(
            users
                .iter()
                .map(|(u, h)| ((*u).to_owned(), (*h).to_owned()))
                .collect(),
        );
        AppState::new(Arc::new(Metrics::new()), "/metrics".into(), web)
    }

    async fn get(router: Router, path: &str, auth: Option<&str>) -> (StatusCode, String) {
        let mut req = Request::builder().uri(path);
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let resp = router
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn routes_and_readiness() {
        let st = state(&[]);
        let (code, body) = get(router(st.clone()), "/metrics", None).await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("hive_exporter_build_info"));
        assert_eq!(
            get(router(st.clone()), "/healthz", None).await.0,
            StatusCode::OK
        );
        // Before any scan; after a first scan that completed without listing any table (every
        // NameNode down: no numbers to serve yet); after a successful one.
        for (published, last_success_unix, want) in [
            (false, None, StatusCode::SERVICE_UNAVAILABLE),
            (true, None, StatusCode::SERVICE_UNAVAILABLE),
            (true, Some(1.0), StatusCode::OK),
        ] {
            if published {
                st.metrics
                    .snapshots
                    .publish(Arc::new(crate::snapshot::ClusterSnapshot {
                        cluster: "c".into(),
                        completed_once: true,
                        last_success_unix,
                        ..Default::default()
                    }));
            }
            assert_eq!(get(router(st.clone()), "/ready", None).await.0, want);
        }
        assert!(
            get(router(st), "/", None)
                .await
                .1
                .contains("hive-smallfiles")
        );
    }

    #[tokio::test]
    async fn basic_auth() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let st = state(&[("prom", &hash)]);
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("prom:pw")
        );
        let bad = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("prom:nope")
        );
        let unknown = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("eve:pw")
        );
        assert_eq!(
            get(router(st.clone()), "/metrics", None).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get(router(st.clone()), "/metrics", Some(&bad)).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get(router(st.clone()), "/metrics", Some(&unknown)).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get(router(st.clone()), "/metrics", Some(&good)).await.0,
            StatusCode::OK
        );
        assert_eq!(
            get(router(st), "/metrics", Some(&good)).await.0,
            StatusCode::OK
        );
    }

    /// Probes answer without credentials (Kubernetes sends none); the scheme is
    /// case-insensitive; 401s carry the configured extra headers.
    #[tokio::test]
    async fn probes_are_open_schemes_case_insensitive_and_401s_keep_headers() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web.yml");
        std::fs::write(
            &file,
            format!(
                "basic_auth_users:\n  prom: '{hash}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n"
            ),
        )
        .unwrap();
        let web = WebConfig::load(&file).unwrap();
        let st = AppState::new(Arc::new(Metrics::new()), "/metrics".into(), web);
        assert_eq!(
            get(router(st.clone()), "/healthz", None).await.0,
            StatusCode::OK
        );
        assert_eq!(
            get(router(st.clone()), "/ready", None).await.0,
            StatusCode::SERVICE_UNAVAILABLE,
            "open, and not ready before the first scan"
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode("prom:pw");
        for scheme in ["basic", "BASIC", "Basic"] {
            assert_eq!(
                get(
                    router(st.clone()),
                    "/metrics",
                    Some(&format!("{scheme} {encoded}"))
                )
                .await
                .0,
                StatusCode::OK,
                "scheme {scheme}"
            );
        }
        let resp = router(st)
            .oneshot(
                Request::builder()
                    .uri("/metrics")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()["x-frame-options"], "deny");
    }
}
