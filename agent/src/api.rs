//! The agent's HTTP API: the Alertmanager webhook, the operator's merge endpoints, metrics
//! and probes. This module owns routing, authentication, status codes and JSON bodies; the
//! work itself is the queue's ([`crate::queue`]).
//!
//! | Route | |
//! |---|---|
//! | `POST /api/v1/alerts` | Alertmanager webhook (payload version 4) |
//! | `GET /api/v1/intake`, `POST /api/v1/intake/pause`, `POST /api/v1/intake/resume` | intake switch |
//! | `GET /api/v1/merges[?state=&limit=]`, `POST /api/v1/merges` | list (newest first), manual request |
//! | `GET /api/v1/merges/{id}`, `POST /api/v1/merges/{id}/cancel` | one job, cancel a queued job |
//! | `GET /api/v1/plan?cluster=&database=&table=` | the runner's plan, nothing executed |
//! | `POST /api/v1/merges/{id}/rollback` | restore the originals of a finished job's staged merges |
//! | `GET /metrics`, `GET /healthz`, `GET /ready` | metrics (format negotiation), probes |
//!
//! Status codes follow Alertmanager's retry rules: the webhook answers **200** as soon as the
//! alerts are queued (merges run later), **4xx** for requests that will never succeed
//! (unauthenticated, malformed, too large: Alertmanager does not retry those), and **503**
//! only for transient refusals — intake paused by the operator or the agent shutting down —
//! so that Alertmanager re-sends. Errors are JSON: `{"error": "..."}`.
//!
//! Authentication: when a bearer token and/or basic-auth users (the exporter's web config)
//! are configured, every route except `/healthz` and `/ready` needs one valid credential.
//! Bearer tokens are compared in constant time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use hive_smallfiles_core::exposition::Format;
use hive_smallfiles_core::web::WebConfig;

use crate::alertmanager::WebhookPayload;
use crate::intake::valid_partition;
use crate::metrics::CodeLabels;
use crate::queue::{CancelError, ManualRequest, Queue, SubmitError};
use crate::work::{JobRunner, JobState, TableKey};

/// The webhook's path.
pub const WEBHOOK_PATH: &str = "/api/v1/alerts";

/// Settings of the API (filled from the agent's configuration).
#[derive(Clone)]
pub struct ApiSettings {
    /// Bearer token Alertmanager (and operators) present; `None`: no bearer auth.
    pub bearer_token: Option<String>,
    /// Basic-auth users and extra headers (TLS is the listener's business).
    pub web: WebConfig,
    /// Largest accepted request body. Default 4 MiB.
    pub body_limit: usize,
    /// Longest wait for a plan preview. Default 60 s.
    pub preview_timeout: Duration,
    /// Most jobs one list answer holds. Default 1,000.
    pub max_list: usize,
    /// Most partitions one manual request may name. Default 10,000.
    pub max_manual_partitions: usize,
}

impl std::fmt::Debug for ApiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSettings")
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<secret>"),
            )
            .field("web", &self.web)
            .field("body_limit", &self.body_limit)
            .field("preview_timeout", &self.preview_timeout)
            .field("max_list", &self.max_list)
            .field("max_manual_partitions", &self.max_manual_partitions)
            .finish()
    }
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            bearer_token: None,
            web: WebConfig::default(),
            body_limit: 4 << 20,
            preview_timeout: Duration::from_secs(60),
            max_list: 1000,
            max_manual_partitions: 10_000,
        }
    }
}

#[derive(Debug)]
struct Inner {
    settings: ApiSettings,
    queue: Arc<Queue>,
    runner: Arc<dyn JobRunner>,
    paused: AtomicBool,
    shutdown: CancellationToken,
    /// Why `/ready` says no (start-up recovery running or incomplete); `None`: ready.
    not_ready: std::sync::Mutex<Option<String>>,
}

/// What the handlers share (cheap to clone).
#[derive(Debug, Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

impl ApiState {
    /// New state. `shutdown` firing makes the webhook and `/ready` answer 503.
    pub fn new(
        settings: ApiSettings,
        queue: Arc<Queue>,
        runner: Arc<dyn JobRunner>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                queue,
                runner,
                paused: AtomicBool::new(false),
                shutdown,
                not_ready: std::sync::Mutex::new(None),
            }),
        }
    }

    /// Makes `/ready` answer 503 with `reason` (start-up recovery running or incomplete), or
    /// 200 again with `None`.
    pub fn set_not_ready(&self, reason: Option<String>) {
        if let Ok(mut g) = self.inner.not_ready.lock() {
            *g = reason;
        }
    }

    /// Pauses the intake: webhooks get 503 and Alertmanager re-sends later.
    pub fn pause(&self) {
        self.inner.paused.store(true, Ordering::SeqCst);
    }

    /// Resumes the intake.
    pub fn resume(&self) {
        self.inner.paused.store(false, Ordering::SeqCst);
    }

    /// Whether the intake is paused.
    pub fn is_paused(&self) -> bool {
        self.inner.paused.load(Ordering::SeqCst)
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<Queue> {
        &self.inner.queue
    }
}

/// The HTTP routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, post(webhook))
        .route("/api/v1/intake", get(intake_status))
        .route("/api/v1/intake/pause", post(intake_pause))
        .route("/api/v1/intake/resume", post(intake_resume))
        .route("/api/v1/merges", get(list_merges).post(create_merge))
        .route("/api/v1/merges/{id}", get(get_merge))
        .route("/api/v1/merges/{id}/cancel", post(cancel_merge))
        .route("/api/v1/merges/{id}/rollback", post(rollback_merge))
        .route("/api/v1/plan", get(plan))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth_and_count,
        ))
        .with_state(state)
}

/// A failed request: status and message, answered as `{"error": message}`.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

/// A JSON error response.
fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({ "error": message.to_string() }))).into_response()
}

fn unavailable(message: &str) -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    r
}

/// Compares in time independent of where the strings differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

async fn authorized(settings: &ApiSettings, headers: &HeaderMap) -> bool {
    let basic = settings.web.basic_auth_required();
    if settings.bearer_token.is_none() && !basic {
        return true;
    }
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        return settings
            .bearer_token
            .as_ref()
            .is_some_and(|t| constant_time_eq(credentials.trim().as_bytes(), t.as_bytes()));
    }
    if scheme.eq_ignore_ascii_case("basic") && basic {
        return settings.web.authorize_basic(value.trim()).await;
    }
    false
}

async fn auth_and_count(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let settings = &state.inner.settings;
    let open = path == "/healthz" || path == "/ready";
    let mut response = if open || authorized(settings, request.headers()).await {
        next.run(request).await
    } else {
        let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized");
        let challenge = if settings.bearer_token.is_some() {
            "Bearer realm=\"hive-smallfiles-agent\""
        } else {
            "Basic realm=\"hive-smallfiles-agent\""
        };
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        r
    };
    if path == WEBHOOK_PATH {
        state
            .inner
            .queue
            .metrics()
            .webhook_requests
            .get_or_create(&CodeLabels {
                code: response.status().as_u16().to_string(),
            })
            .inc();
    }
    for (k, v) in settings.web.extra_headers() {
        response.headers_mut().insert(k.clone(), v.clone());
    }
    response
}

/// Reads a body up to the limit.
async fn read_body(
    settings: &ApiSettings,
    headers: &HeaderMap,
    body: Body,
) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {} bytes", settings.body_limit),
        )
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > settings.body_limit as u64
    {
        return Err(too_large());
    }
    axum::body::to_bytes(body, settings.body_limit)
        .await
        .map_err(|_| too_large())
}

async fn webhook(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Response {
    let inner = &state.inner;
    if inner.shutdown.is_cancelled() {
        return unavailable("the agent is shutting down");
    }
    if state.is_paused() {
        return unavailable("intake paused by an operator");
    }
    let bytes = match read_body(&inner.settings, &headers, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let payload = match WebhookPayload::parse(&bytes) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let report = inner.queue.offer_alerts(&payload);
    if report.truncated_alerts > 0 {
        tracing::warn!(
            group = %payload.group_key,
            truncated = report.truncated_alerts,
            "Alertmanager cut alerts from this notification (max_alerts); \
             their tables are merged once a notification carries them."
        );
    }
    tracing::debug!(
        group = %payload.group_key,
        alerts = report.alerts,
        queued = report.queued.len(),
        folded = report.folded.len(),
        removed = report.removed.len(),
        "Webhook received."
    );
    (StatusCode::OK, axum::Json(report)).into_response()
}

fn intake_json(state: &ApiState) -> Response {
    axum::Json(json!({ "paused": state.is_paused() })).into_response()
}

async fn intake_status(State(state): State<ApiState>) -> Response {
    intake_json(&state)
}

async fn intake_pause(State(state): State<ApiState>) -> Response {
    state.pause();
    tracing::info!("Intake paused: webhooks answer 503 until resumed.");
    intake_json(&state)
}

async fn intake_resume(State(state): State<ApiState>) -> Response {
    state.resume();
    tracing::info!("Intake resumed.");
    intake_json(&state)
}

fn parse_state(s: &str) -> Option<JobState> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

async fn list_merges(
    State(state): State<ApiState>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return error(StatusCode::BAD_REQUEST, "malformed query string");
    };
    let filter = match q.get("state").map(String::as_str) {
        None | Some("") => None,
        Some(s) => match parse_state(s) {
            Some(st) => Some(st),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown state {s:?} (queued, running, finished, cancelled)"),
                );
            }
        },
    };
    let max = state.inner.settings.max_list;
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => max,
        Some(Ok(l)) => l.min(max),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "limit must be a number"),
    };
    axum::Json(state.inner.queue.list(filter, limit)).into_response()
}

fn parse_id(id: &str) -> Result<u64, ApiError> {
    id.parse()
        .map_err(|_| ApiError(StatusCode::BAD_REQUEST, format!("invalid job id {id:?}")))
}

async fn get_merge(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match state.inner.queue.get(id) {
        Some(job) => axum::Json(job).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no job {id}")),
    }
}

async fn cancel_merge(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match state.inner.queue.cancel(id) {
        Ok(job) => axum::Json(job).into_response(),
        Err(e @ CancelError::NotFound(_)) => error(StatusCode::NOT_FOUND, e),
        Err(e @ CancelError::NotQueued(..)) => error(StatusCode::CONFLICT, e),
    }
}

/// Restores the original files of a finished job's committed staged merges (native and
/// engine-staged), while their backups are kept (`native.backup_retention`).
async fn rollback_merge(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let Some(job) = state.inner.queue.get(id) else {
        return error(StatusCode::NOT_FOUND, format!("no job {id}"));
    };
    if job.state != JobState::Finished {
        return error(
            StatusCode::CONFLICT,
            format!(
                "job {id} is {:?}; only finished jobs are rolled back",
                job.state
            ),
        );
    }
    match state.inner.runner.rollback(&job).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

/// Body of `POST /api/v1/merges`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManualBody {
    cluster: String,
    database: String,
    table: String,
    #[serde(default)]
    partitions: Vec<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    priority: Option<u64>,
}

fn table_key(
    state: &ApiState,
    cluster: &str,
    database: &str,
    table: &str,
) -> Result<TableKey, ApiError> {
    let intake = &state.inner.queue.settings().intake;
    for (name, v) in [
        ("cluster", cluster),
        ("database", database),
        ("table", table),
    ] {
        if v.is_empty() || v.len() > intake.max_name_len || v.chars().any(char::is_control) {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("invalid or missing {name}"),
            ));
        }
    }
    if let Some(clusters) = &intake.clusters
        && !clusters.contains(cluster)
    {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("unknown cluster {cluster:?}"),
        ));
    }
    Ok(TableKey {
        cluster: cluster.to_owned(),
        database: database.to_owned(),
        table: table.to_owned(),
    })
}

async fn create_merge(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Response {
    let settings = &state.inner.settings;
    let bytes = match read_body(settings, &headers, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let req: ManualBody = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid request: {e}")),
    };
    let key = match table_key(&state, &req.cluster, &req.database, &req.table) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    if req.partitions.len() > settings.max_manual_partitions {
        return error(
            StatusCode::BAD_REQUEST,
            format!("more than {} partitions", settings.max_manual_partitions),
        );
    }
    let max_len = state.inner.queue.settings().intake.max_partition_len;
    if let Some(bad) = req.partitions.iter().find(|p| !valid_partition(p, max_len)) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("invalid partition name {bad:?} (expected k1=v1/k2=v2)"),
        );
    }
    let manual = ManualRequest {
        key,
        partitions: req.partitions.into_iter().collect::<BTreeSet<_>>(),
        dry_run: req.dry_run,
        priority: req.priority.unwrap_or(u64::MAX),
    };
    match state.inner.queue.submit(manual) {
        Ok(job) => (StatusCode::ACCEPTED, axum::Json(job)).into_response(),
        Err(e @ (SubmitError::Running(_) | SubmitError::Conflict(_))) => {
            error(StatusCode::CONFLICT, e)
        }
        Err(SubmitError::QueueFull) => unavailable("the queue is full"),
        Err(SubmitError::ClusterQueueFull) => unavailable("the queue of this cluster is full"),
    }
}

async fn plan(
    State(state): State<ApiState>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return error(StatusCode::BAD_REQUEST, "malformed query string");
    };
    let get = |k: &str| q.get(k).map_or("", String::as_str);
    let key = match table_key(&state, get("cluster"), get("database"), get("table")) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let inner = &state.inner;
    match tokio::time::timeout(inner.settings.preview_timeout, inner.runner.preview(&key)).await {
        Ok(Ok(plan)) => axum::Json(plan).into_response(),
        Ok(Err(e)) => error(StatusCode::BAD_GATEWAY, e),
        Err(_) => error(StatusCode::GATEWAY_TIMEOUT, "planning timed out"),
    }
}

async fn metrics(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let queue = Arc::clone(&state.inner.queue);
    hive_smallfiles_core::web::metrics_response(format, move |f| queue.metrics().render(f)).await
}

async fn ready(State(state): State<ApiState>) -> Response {
    if state.inner.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let not_ready = state.inner.not_ready.lock().ok().and_then(|g| g.clone());
    match not_ready {
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
        None => (StatusCode::OK, "ready\n").into_response(),
    }
}

#[cfg(test)]
mod tests;
