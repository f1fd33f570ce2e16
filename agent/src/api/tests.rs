use std::time::SystemTime;

use base64::Engine as _;
use tower::ServiceExt;

use super::*;
use crate::metrics::AgentMetrics;
use crate::queue::{ManualClock, QueueSettings};
use crate::work::{JobOutcome, JobRecord, MergeBudget};

#[derive(Debug)]
struct Runner;

#[async_trait::async_trait]
impl JobRunner for Runner {
    async fn run(&self, _: &JobRecord, _: &dyn MergeBudget, _: &CancellationToken) -> JobOutcome {
        JobOutcome::Skipped {
            reason: "test".into(),
            detail: String::new(),
        }
    }
    async fn preview(&self, key: &TableKey) -> Result<serde_json::Value, String> {
        if key.table == "broken" {
            return Err("metastore unreachable".into());
        }
        Ok(json!({"table": key.to_string(), "strategy": "insert_overwrite"}))
    }
}

fn state_with(settings: ApiSettings) -> (ApiState, CancellationToken) {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let queue = Queue::with_clock(
        QueueSettings::default(),
        Arc::new(AgentMetrics::new()),
        Arc::new(clock),
    );
    let shutdown = CancellationToken::new();
    (
        ApiState::new(
            settings,
            Arc::new(queue),
            Arc::new(Runner),
            shutdown.clone(),
        ),
        shutdown,
    )
}

fn state() -> ApiState {
    state_with(ApiSettings {
        bearer_token: Some("s3cret".into()),
        ..ApiSettings::default()
    })
    .0
}

const BEARER: &str = "Bearer s3cret";

async fn call(
    state: &ApiState,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (StatusCode, HeaderMap, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let resp = router(state.clone())
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, value)
}

const PAYLOAD: &str = r#"{"version":"4","groupKey":"g","status":"firing","receiver":"merge",
  "alerts":[{"status":"firing","labels":{"cluster":"c","database":"db","table":"t","partition":"dt=1"},
             "annotations":{"excess_files":"40"},"startsAt":"2024-01-01T00:00:00Z",
             "endsAt":"0001-01-01T00:00:00Z","fingerprint":"abc"}]}"#;

#[tokio::test]
async fn webhook_accepts_and_queues() {
    let st = state();
    let (code, _, body) = call(&st, "POST", WEBHOOK_PATH, Some(BEARER), PAYLOAD).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["queued"], json!([1]));
    let (code, _, jobs) = call(&st, "GET", "/api/v1/merges?state=queued", Some(BEARER), "").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(jobs[0]["item"]["key"]["table"], "t");
    assert_eq!(jobs[0]["item"]["partitions"], json!(["dt=1"]));
    assert_eq!(jobs[0]["item"]["priority"], 40);
    assert_eq!(jobs[0]["state"], "queued");
    // Re-sent: folded, still one job.
    let (_, _, body) = call(&st, "POST", WEBHOOK_PATH, Some(BEARER), PAYLOAD).await;
    assert_eq!(body["folded"], json!([1]));
}

#[tokio::test]
async fn webhook_rejections_are_4xx() {
    let st = state_with(ApiSettings {
        bearer_token: Some("s3cret".into()),
        body_limit: 1024,
        ..ApiSettings::default()
    })
    .0;
    let cases = [
        ("not json", StatusCode::BAD_REQUEST, "malformed"),
        (
            r#"{"version":"3","alerts":[]}"#,
            StatusCode::BAD_REQUEST,
            "version",
        ),
        (r#"{"version":"4"}"#, StatusCode::BAD_REQUEST, "alerts"),
    ];
    for (body, want, needle) in cases {
        let (code, _, err) = call(&st, "POST", WEBHOOK_PATH, Some(BEARER), body).await;
        assert_eq!(code, want, "{body}");
        assert!(err["error"].as_str().unwrap().contains(needle), "{err}");
    }
    let big = format!(
        r#"{{"version":"4","alerts":[],"pad":"{}"}}"#,
        "x".repeat(2000)
    );
    let (code, _, _) = call(&st, "POST", WEBHOOK_PATH, Some(BEARER), &big).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    // Unauthenticated.
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret2"),
        Some("Basic eDp5"),
    ] {
        let (code, headers, _) = call(&st, "POST", WEBHOOK_PATH, auth, PAYLOAD).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(
            headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
    let (code, _, _) = call(&st, "POST", WEBHOOK_PATH, Some("bearer  s3cret "), PAYLOAD).await;
    assert_eq!(code, StatusCode::OK, "scheme is case-insensitive");
    let (_, _, text) = call(&st, "GET", "/metrics", Some(BEARER), "").await;
    let text = text.as_str().unwrap().to_owned();
    for line in [
        "hive_merge_webhook_requests_total{code=\"400\"} 3",
        "hive_merge_webhook_requests_total{code=\"413\"} 1",
        "hive_merge_webhook_requests_total{code=\"401\"} 4",
        "hive_merge_webhook_requests_total{code=\"200\"} 1",
        "hive_merge_alerts_received_total{status=\"firing\"} 1",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
}

#[tokio::test]
async fn basic_auth_and_open_probes() {
    let hash = bcrypt::hash("pw", 4).unwrap();
    let (st, _) = state_with(ApiSettings {
        web: WebConfig::with_users([("am".to_owned(), hash)].into()),
        ..ApiSettings::default()
    });
    let good = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("am:pw")
    );
    assert_eq!(
        call(&st, "POST", WEBHOOK_PATH, None, PAYLOAD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&st, "POST", WEBHOOK_PATH, Some("Bearer x"), PAYLOAD)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&st, "POST", WEBHOOK_PATH, Some(&good), PAYLOAD)
            .await
            .0,
        StatusCode::OK
    );
    // Authentication schemes are case-insensitive (RFC 9110, section 11.1).
    let lower = good.replacen("Basic", "basic", 1);
    assert_eq!(
        call(&st, "GET", "/api/v1/merges", Some(&lower), "").await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&st, "GET", "/metrics", None, "").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&st, "GET", "/healthz", None, "").await.0,
        StatusCode::OK
    );
    assert_eq!(call(&st, "GET", "/ready", None, "").await.0, StatusCode::OK);
    // No credentials configured: everything open.
    let (open, _) = state_with(ApiSettings::default());
    assert_eq!(
        call(&open, "POST", WEBHOOK_PATH, None, PAYLOAD).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn pause_and_shutdown_answer_503() {
    let (st, shutdown) = state_with(ApiSettings::default());
    let (code, _, body) = call(&st, "POST", "/api/v1/intake/pause", None, "").await;
    assert_eq!((code, body), (StatusCode::OK, json!({"paused": true})));
    let (code, headers, _) = call(&st, "POST", WEBHOOK_PATH, None, PAYLOAD).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "30");
    assert!(st.queue().list(None, 10).is_empty());
    // Manual requests still work while the intake is paused.
    let (code, _, _) = call(
        &st,
        "POST",
        "/api/v1/merges",
        None,
        r#"{"cluster":"c","database":"db","table":"m"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED);
    call(&st, "POST", "/api/v1/intake/resume", None, "").await;
    assert_eq!(
        call(&st, "GET", "/api/v1/intake", None, "").await.2,
        json!({"paused": false})
    );
    assert_eq!(
        call(&st, "POST", WEBHOOK_PATH, None, PAYLOAD).await.0,
        StatusCode::OK
    );
    shutdown.cancel();
    assert_eq!(
        call(&st, "POST", WEBHOOK_PATH, None, PAYLOAD).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        call(&st, "GET", "/ready", None, "").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn manual_merges_and_cancel() {
    let st = state();
    let req = r#"{"cluster":"c","database":"db","table":"t","partitions":["dt=1","dt=2"],"dry_run":true}"#;
    let (code, _, job) = call(&st, "POST", "/api/v1/merges", Some(BEARER), req).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["item"]["dry_run"], true);
    assert_eq!(job["item"]["source"], "manual");
    let id = job["id"].as_u64().unwrap();
    let (code, _, got) = call(
        &st,
        "GET",
        &format!("/api/v1/merges/{id}"),
        Some(BEARER),
        "",
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(got["id"], id);
    // Same table, different dry_run: conflict.
    let (code, _, _) = call(
        &st,
        "POST",
        "/api/v1/merges",
        Some(BEARER),
        r#"{"cluster":"c","database":"db","table":"t"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT);
    let cancel = format!("/api/v1/merges/{id}/cancel");
    let (code, _, got) = call(&st, "POST", &cancel, Some(BEARER), "").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(got["state"], "cancelled");
    assert_eq!(
        call(&st, "POST", &cancel, Some(BEARER), "").await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        call(&st, "POST", "/api/v1/merges/77/cancel", Some(BEARER), "")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&st, "GET", "/api/v1/merges/x", Some(BEARER), "")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(&st, "GET", "/api/v1/merges/9", Some(BEARER), "")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let bad = [
        r#"{"cluster":"c","database":"db"}"#,
        r#"{"cluster":"","database":"db","table":"t"}"#,
        r#"{"cluster":"c","database":"db","table":"t","partitions":["nope"]}"#,
        r#"{"cluster":"c","database":"db","table":"t","bogus":1}"#,
    ];
    for b in bad {
        let (code, _, err) = call(&st, "POST", "/api/v1/merges", Some(BEARER), b).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{b}");
        assert!(err["error"].is_string());
    }
    assert_eq!(
        call(&st, "GET", "/api/v1/merges?state=bogus", Some(BEARER), "")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let (_, _, list) = call(
        &st,
        "GET",
        "/api/v1/merges?state=cancelled&limit=5",
        Some(BEARER),
        "",
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (code, _, err) = call(&st, "GET", "/nope", Some(BEARER), "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(err["error"].is_string());
    assert_eq!(
        call(&st, "DELETE", "/api/v1/merges", Some(BEARER), "")
            .await
            .0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn plan_preview() {
    let st = state();
    let (code, _, plan) = call(
        &st,
        "GET",
        "/api/v1/plan?cluster=c&database=%40spark%23db&table=t",
        Some(BEARER),
        "",
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(plan["table"], "c/@spark#db.t");
    assert_eq!(
        call(&st, "GET", "/api/v1/plan?cluster=c", Some(BEARER), "")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let (code, _, err) = call(
        &st,
        "GET",
        "/api/v1/plan?cluster=c&database=d&table=broken",
        Some(BEARER),
        "",
    )
    .await;
    assert_eq!(code, StatusCode::BAD_GATEWAY);
    assert_eq!(err["error"], "metastore unreachable");
}

#[tokio::test]
async fn metrics_negotiate_format() {
    let st = state();
    let req = Request::builder()
        .uri("/metrics")
        .header(header::AUTHORIZATION, BEARER)
        .header(
            header::ACCEPT,
            "application/openmetrics-text; version=1.0.0",
        )
        .body(Body::empty())
        .unwrap();
    let resp = router(st).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
}

#[test]
fn constant_time_comparison() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"abcd"));
    assert!(!constant_time_eq(b"", b"a"));
    assert!(constant_time_eq(b"", b""));
}
