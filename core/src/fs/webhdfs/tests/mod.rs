//! Client behaviour against minimal per-test HTTP responders on 127.0.0.1 that answer with
//! the JSON shapes of Hadoop's `WebHDFS.md`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{
    HeaderMap as HttpHeaders, Method as HttpMethod, StatusCode as HttpStatus, Uri, header,
};

use super::*;
use crate::fs::EntryKind;
use crate::fs::write::FileSystemWrite;

/// One request as the fake NameNode saw it.
#[derive(Debug, Clone)]
struct Seen {
    /// HTTP method.
    method: String,
    /// `Content-Type` of the request, if any.
    content_type: Option<String>,
    /// Request body.
    body: Bytes,
    /// Raw (still percent-encoded) path.
    raw_path: String,
    /// Raw query string.
    raw_query: String,
    /// Decoded query parameters.
    params: Vec<(String, String)>,
}

impl Seen {
    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn op(&self) -> &str {
        self.param("op").unwrap_or("")
    }
}

/// What the fake answers.
struct Answer {
    status: u16,
    body: Bytes,
    content_type: &'static str,
    delay: Duration,
    /// `Location` header.
    location: Option<String>,
}

fn json(status: u16, body: impl Into<String>) -> Answer {
    Answer {
        status,
        body: Bytes::from(body.into()),
        content_type: "application/json",
        delay: Duration::ZERO,
        location: None,
    }
}

/// A 307 to `location`, as the NameNode redirects to a DataNode.
fn redirect(location: String) -> Answer {
    Answer {
        location: Some(location),
        ..empty(307)
    }
}

/// An empty body (`Response.ok()` of SETPERMISSION, rename2, ...).
fn empty(status: u16) -> Answer {
    Answer {
        content_type: "application/octet-stream",
        ..json(status, "")
    }
}

/// File contents.
fn data(bytes: impl Into<Bytes>) -> Answer {
    Answer {
        body: bytes.into(),
        ..empty(200)
    }
}

fn remote(status: u16, exception: &str, java_class: &str, message: &str) -> Answer {
    json(
        status,
        serde_json::json!({"RemoteException": {
            "exception": exception, "javaClassName": java_class, "message": message}})
        .to_string(),
    )
}

fn standby() -> Answer {
    remote(
        403,
        "StandbyException",
        "org.apache.hadoop.ipc.StandbyException",
        "Operation category READ is not supported in state standby. Visit \
         https://s.apache.org/sbnn-error",
    )
}

/// A `FileStatus` object as in WebHDFS.md's LISTSTATUS example.
fn entry(name: &str, dir: bool) -> String {
    let name = serde_json::to_string(name).unwrap();
    if dir {
        format!(
            r#"{{"accessTime":0,"blockSize":0,"childrenNum":0,"fileId":16389,
            "group":"supergroup","length":0,"modificationTime":1320895981256,"owner":"username",
            "pathSuffix":{name},"permission":"711","replication":0,"snapshotEnabled":true,
            "type":"DIRECTORY"}}"#
        )
    } else {
        format!(
            r#"{{"accessTime":1320171722771,"blockSize":33554432,"childrenNum":0,"fileId":16388,
            "group":"supergroup","length":24930,"modificationTime":1320171722771,
            "owner":"webuser","pathSuffix":{name},"permission":"644","replication":1,
            "storagePolicy":0,"type":"FILE"}}"#
        )
    }
}

fn batch(entries: &[String], remaining: u64) -> Answer {
    json(
        200,
        format!(
            r#"{{"DirectoryListing":{{"partialListing":{{"FileStatuses":{{"FileStatus":[{}]}}}},
            "remainingEntries":{remaining}}}}}"#,
            entries.join(",")
        ),
    )
}

fn whole(entries: &[String]) -> Answer {
    json(
        200,
        format!(
            r#"{{"FileStatuses":{{"FileStatus":[{}]}}}}"#,
            entries.join(",")
        ),
    )
}

fn root_status() -> Answer {
    json(
        200,
        r#"{"FileStatus":{"accessTime":0,"blockSize":0,"group":"supergroup","length":0,
        "modificationTime":1320173277227,"owner":"webuser","pathSuffix":"","permission":"777",
        "replication":0,"type":"DIRECTORY"}}"#,
    )
}

/// A fake NameNode: records requests, counts concurrency, answers via `handler`.
struct FakeNn {
    url: url::Url,
    seen: Arc<Mutex<Vec<Seen>>>,
    max_in_flight: Arc<AtomicUsize>,
}

impl FakeNn {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

async fn fake_nn<F>(handler: F) -> FakeNn
where
    F: Fn(&Seen, usize) -> Answer + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(handler);
    let (seen2, in_flight2, max2) = (seen.clone(), in_flight, max_in_flight.clone());
    let app = Router::new().fallback(
        move |method: HttpMethod, uri: Uri, headers: HttpHeaders, body: Bytes| {
            let (seen, in_flight, max, handler) = (
                seen2.clone(),
                in_flight2.clone(),
                max2.clone(),
                handler.clone(),
            );
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                let raw_query = uri.query().unwrap_or("").to_owned();
                let request = Seen {
                    method: method.to_string(),
                    content_type: headers
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    body,
                    raw_path: uri.path().to_owned(),
                    params: url::form_urlencoded::parse(raw_query.as_bytes())
                        .into_owned()
                        .collect(),
                    raw_query,
                };
                let nth = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(request.clone());
                    seen.len() - 1
                };
                let answer = handler(&request, nth);
                if !answer.delay.is_zero() {
                    tokio::time::sleep(answer.delay).await;
                }
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let mut response =
                    axum::response::Response::new(axum::body::Body::from(answer.body));
                *response.status_mut() = HttpStatus::from_u16(answer.status).unwrap();
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static(answer.content_type),
                );
                if let Some(location) = answer.location {
                    headers.insert(header::LOCATION, location.parse().unwrap());
                }
                response
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeNn {
        url: url::Url::parse(&format!("http://{addr}")).unwrap(),
        seen,
        max_in_flight,
    }
}

/// A URL nobody listens on.
fn refused_url() -> url::Url {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    url::Url::parse(&format!("http://{addr}")).unwrap()
}

fn config(namenodes: Vec<url::Url>) -> WebHdfsConfig {
    WebHdfsConfig {
        cluster: "c1".into(),
        namenodes,
        user: None,
        delegation_token: None,
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        max_concurrent_requests: 8,
        max_retries: 0,
        retry_initial_backoff: Duration::from_millis(1),
        retry_max_backoff: Duration::from_millis(5),
        ca_file: None,
        spnego: None,
    }
}

fn client(cfg: WebHdfsConfig) -> (WebHdfs, WebHdfsMetrics) {
    let metrics = WebHdfsMetrics::default();
    (WebHdfs::new(cfg, metrics.clone()).unwrap(), metrics)
}

async fn list_all(fs: &WebHdfs, path: &str) -> Result<Vec<Vec<FileStatus>>, FsError> {
    let mut pages = Vec::new();
    fs.list_status(path, &mut |page: Vec<FileStatus>| pages.push(page))
        .await?;
    Ok(pages)
}

fn requests(metrics: &WebHdfsMetrics, op: &str, code: &str) -> u64 {
    metrics
        .requests
        .get_or_create(&RequestLabels {
            cluster: "c1".into(),
            op: op.into(),
            code: code.into(),
        })
        .get()
}

fn up(metrics: &WebHdfsMetrics, nn: &url::Url) -> i64 {
    metrics
        .up
        .get_or_create(&NameNodeLabels {
            cluster: "c1".into(),
            namenode: nn.as_str().trim_end_matches('/').into(),
        })
        .get()
}

#[tokio::test]
async fn pages_through_three_batches_with_odd_names() {
    let names = ["a b", "100%", "x=1;y", "日本語", "q?#&+", "z'~:"];
    let nn = fake_nn(move |req, _| match req.param("startAfter") {
        None => batch(&[entry(names[0], true), entry(names[1], false)], 4),
        Some("100%") => batch(&[entry(names[2], false), entry(names[3], false)], 2),
        Some("日本語") => batch(&[entry(names[4], false), entry(names[5], false)], 0),
        Some(other) => remote(400, "IllegalArgumentException", "", other),
    })
    .await;
    let mut cfg = config(vec![nn.url.clone()]);
    cfg.user = Some("hive user".into());
    let (fs, metrics) = client(cfg);

    let pages = list_all(&fs, "/w/t/ts=2020-01-01 10%3A00/ü #?")
        .await
        .unwrap();

    assert_eq!(pages.len(), 3);
    let listed: Vec<&str> = pages.iter().flatten().map(|s| s.name.as_str()).collect();
    assert_eq!(listed, names);
    assert_eq!(pages[0][0].kind, EntryKind::Directory);
    assert_eq!(pages[0][1].permission, 0o644);
    let seen = nn.seen();
    assert_eq!(seen.len(), 3);
    for req in &seen {
        assert_eq!(
            req.raw_path,
            "/webhdfs/v1/w/t/ts%3D2020-01-01%2010%253A00/%C3%BC%20%23%3F"
        );
        assert_eq!(req.op(), "LISTSTATUS_BATCH");
        assert_eq!(req.param("user.name"), Some("hive user"));
    }
    assert_eq!(seen[0].param("startAfter"), None);
    assert!(
        seen[1].raw_query.ends_with("&startAfter=100%25"),
        "{}",
        seen[1].raw_query
    );
    assert!(
        seen[2]
            .raw_query
            .ends_with("&startAfter=%E6%97%A5%E6%9C%AC%E8%AA%9E"),
        "{}",
        seen[2].raw_query
    );
    assert!(seen[0].raw_query.contains("user.name=hive%20user"));
    assert_eq!(requests(&metrics, "LISTSTATUS_BATCH", "200"), 3);
    assert!(fs.batch_listing_supported());
}

#[tokio::test]
async fn falls_back_to_liststatus_once_and_remembers() {
    // Hadoop 2.6: GetOpParam has no LISTSTATUS_BATCH, so the op parameter fails to parse.
    let nn = fake_nn(|req, _| match req.op() {
        "LISTSTATUS_BATCH" => remote(
            400,
            "IllegalArgumentException",
            "java.lang.IllegalArgumentException",
            "Invalid value for webhdfs parameter \"op\": No enum constant \
             org.apache.hadoop.hdfs.web.resources.GetOpParam.Op.LISTSTATUS_BATCH",
        ),
        "LISTSTATUS" => whole(
            &(0..2500)
                .map(|i| entry(&format!("f{i:04}"), false))
                .collect::<Vec<_>>(),
        ),
        _ => remote(400, "IllegalArgumentException", "", "unexpected"),
    })
    .await;
    let (fs, metrics) = client(config(vec![nn.url.clone()]));

    let pages = list_all(&fs, "/t").await.unwrap();
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [1000, 1000, 500]
    );
    assert_eq!(pages[2][499].name, "f2499");
    assert!(!fs.batch_listing_supported());

    list_all(&fs, "/t").await.unwrap();
    let ops: Vec<String> = nn.seen().iter().map(|r| r.op().to_owned()).collect();
    assert_eq!(ops, ["LISTSTATUS_BATCH", "LISTSTATUS", "LISTSTATUS"]);
    assert_eq!(requests(&metrics, "LISTSTATUS_BATCH", "400"), 1);
    assert_eq!(requests(&metrics, "LISTSTATUS", "200"), 2);
}

#[tokio::test]
async fn other_400s_do_not_switch_off_batching() {
    let nn = fake_nn(|_, _| {
        remote(
            400,
            "IllegalArgumentException",
            "java.lang.IllegalArgumentException",
            "Invalid value for webhdfs parameter \"startAfter\": bad",
        )
    })
    .await;
    let (fs, _) = client(config(vec![nn.url.clone()]));
    let err = list_all(&fs, "/t").await.unwrap_err();
    assert!(matches!(err, FsError::Remote { status: 400, .. }), "{err}");
    assert!(fs.batch_listing_supported());
    assert_eq!(nn.count(), 1);
}

#[tokio::test]
async fn listing_a_file_passes_its_own_status_through() {
    let nn = fake_nn(|_, _| batch(&[entry("", false)], 0)).await;
    let (fs, _) = client(config(vec![nn.url.clone()]));
    let pages = list_all(&fs, "/t/f.parquet").await.unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0][0].name, "");
    assert_eq!(pages[0][0].kind, EntryKind::File);
    assert_eq!(pages[0][0].length, 24930);
}

#[tokio::test]
async fn batch_without_progress_is_an_invalid_response() {
    let nn = fake_nn(|_, _| batch(&[], 5)).await;
    let (fs, _) = client(config(vec![nn.url.clone()]));
    let err = list_all(&fs, "/t").await.unwrap_err();
    assert!(matches!(err, FsError::InvalidResponse { .. }), "{err}");
}

#[tokio::test]
async fn fails_over_from_standby_and_remembers_the_active() {
    let nn1 = fake_nn(|_, _| standby()).await;
    let nn2 = fake_nn(|_, _| root_status()).await;
    let (fs, metrics) = client(config(vec![nn1.url.clone(), nn2.url.clone()]));
    assert_eq!(fs.active_namenode(), nn1.url.as_str().trim_end_matches('/'));

    fs.file_status("/").await.unwrap();
    assert_eq!(fs.active_namenode(), nn2.url.as_str().trim_end_matches('/'));
    fs.file_status("/").await.unwrap();
    fs.file_status("/").await.unwrap();

    assert_eq!(nn1.count(), 1, "the standby is asked only once");
    assert_eq!(nn2.count(), 3);
    assert_eq!(up(&metrics, &nn1.url), 1, "a standby answers, so it is up");
    assert_eq!(up(&metrics, &nn2.url), 1);
    assert_eq!(requests(&metrics, "GETFILESTATUS", "403"), 1);
    assert_eq!(requests(&metrics, "GETFILESTATUS", "200"), 3);
}

#[tokio::test]
async fn fails_over_when_the_first_namenode_refuses_connections() {
    let dead = refused_url();
    let nn2 = fake_nn(|_, _| root_status()).await;
    let (fs, metrics) = client(config(vec![dead.clone(), nn2.url.clone()]));

    let st = fs.file_status("/").await.unwrap();
    assert_eq!(st.kind, EntryKind::Directory);
    assert_eq!(st.permission, 0o777);
    assert_eq!(fs.active_namenode(), nn2.url.as_str().trim_end_matches('/'));
    assert_eq!(up(&metrics, &dead), 0);
    assert_eq!(up(&metrics, &nn2.url), 1);
    assert_eq!(requests(&metrics, "GETFILESTATUS", "error"), 1);
}

#[tokio::test]
async fn no_active_namenode_when_all_are_standby_or_down() {
    let nn1 = fake_nn(|_, _| standby()).await;
    let (fs, _) = client(config(vec![nn1.url.clone(), refused_url()]));
    let err = fs.file_status("/").await.unwrap_err();
    assert!(
        matches!(err, FsError::NoActiveNameNode { tried: 2, .. }),
        "{err}"
    );
    assert_eq!(err.metric_label(), "no_active_namenode");
}

fn quick_backoff() -> OutageBackoff {
    OutageBackoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(400),
    }
}

/// Every NameNode down (one standby, one refusing connections): the first request tries
/// both and opens the circuit; requests during the delay fail at once without being sent
/// (even with retries configured); after it, one trial goes out while the others still
/// fail fast, and a served trial closes the circuit.
#[tokio::test]
async fn backs_off_when_every_namenode_failed_and_one_trial_decides() {
    let standby_now = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = Arc::clone(&standby_now);
    let nn1 = fake_nn(move |_, _| {
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            standby()
        } else {
            root_status()
        }
    })
    .await;
    let dead = refused_url();
    let mut cfg = config(vec![nn1.url.clone(), dead]);
    cfg.max_retries = 3;
    let metrics = WebHdfsMetrics::default();
    let fs = WebHdfs::new(cfg, metrics.clone())
        .unwrap()
        .with_outage_backoff(quick_backoff());

    let err = fs.file_status("/").await.unwrap_err();
    // The first request retried into the open circuit and waited for its trials.
    assert!(
        matches!(
            err,
            FsError::BackingOff { .. } | FsError::NoActiveNameNode { .. }
        ),
        "{err}"
    );
    assert!(fs.backing_off());
    let open = metrics
        .circuit_open
        .get_or_create(&ClusterLabels {
            cluster: "c1".into(),
        })
        .get();
    assert_eq!(open, 1);
    let sent = nn1.count();

    // New requests fail at once, unsent, retries or not.
    let started = std::time::Instant::now();
    for _ in 0..50 {
        let err = fs.file_status("/").await.unwrap_err();
        assert!(matches!(err, FsError::BackingOff { .. }), "{err}");
        assert!(err.is_retryable());
        assert_eq!(err.metric_label(), "backing_off");
    }
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(nn1.count(), sent, "nothing sent while backing off");
    let probes = fs.probe().await;
    assert!(
        probes
            .iter()
            .all(|p| matches!(p.state, EndpointState::Down(_)))
    );
    assert_eq!(
        nn1.count(),
        sent,
        "the probe sends nothing while backing off"
    );

    // The NameNode is back; after the delay one trial closes the circuit.
    standby_now.store(false, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(450)).await;
    fs.file_status("/").await.unwrap();
    assert!(!fs.backing_off());
    assert_eq!(
        metrics
            .circuit_open
            .get_or_create(&ClusterLabels {
                cluster: "c1".into()
            })
            .get(),
        0
    );
    assert!(
        metrics
            .backoff_seconds
            .get_or_create(&ClusterLabels {
                cluster: "c1".into()
            })
            .get()
            > 0.0
    );
    assert!(
        metrics
            .rejected_requests
            .get_or_create(&ClusterLabels {
                cluster: "c1".into()
            })
            .get()
            >= 51
    );
    fs.file_status("/").await.unwrap();
}

/// Listings from 16 callers at once (a scan's list concurrency) when every NameNode is down:
/// the requests sent are bounded by the callers' first round plus one trial per delay, not
/// by the 320 listings asked for (without backing off: 320 × 2 NameNodes × 4 attempts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_costs_a_bounded_number_of_requests() {
    let nn1 = fake_nn(|_, _| standby()).await;
    let mut cfg = config(vec![nn1.url.clone(), refused_url()]);
    cfg.max_retries = 3;
    cfg.max_concurrent_requests = 4;
    let fs = Arc::new(
        WebHdfs::new(cfg, WebHdfsMetrics::default())
            .unwrap()
            .with_outage_backoff(quick_backoff()),
    );
    let callers = 16;
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let fs = Arc::clone(&fs);
            tokio::spawn(async move {
                for i in 0..20 {
                    let err = fs
                        .list_status(&format!("/w/c={c}/p={i}"), &mut |_: Vec<FileStatus>| {})
                        .await
                        .unwrap_err();
                    assert!(err.is_retryable(), "{err}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // The callers' first round, then trials: at most a few delays fit into the retries of
    // the first listings.
    assert!(
        nn1.count() <= callers + 6,
        "{} requests reached the standby",
        nn1.count()
    );
}

#[tokio::test]
async fn a_served_error_is_not_an_outage() {
    let nn = fake_nn(|_, _| {
        remote(
            404,
            "FileNotFoundException",
            "java.io.FileNotFoundException",
            "no",
        )
    })
    .await;
    let (fs, _) = client(config(vec![nn.url.clone()]));
    for _ in 0..3 {
        assert!(matches!(
            fs.file_status("/x").await,
            Err(FsError::NotFound { .. })
        ));
    }
    assert!(!fs.backing_off());
    assert_eq!(nn.count(), 3);
}

#[tokio::test]
async fn retries_5xx_then_succeeds() {
    let nn = fake_nn(|_, nth| {
        if nth < 2 {
            remote(
                500,
                "RuntimeException",
                "java.lang.RuntimeException",
                "boom",
            )
        } else {
            root_status()
        }
    })
    .await;
    let mut cfg = config(vec![nn.url.clone()]);
    cfg.max_retries = 3;
    let (fs, metrics) = client(cfg);
    fs.file_status("/").await.unwrap();
    assert_eq!(nn.count(), 3);
    assert_eq!(requests(&metrics, "GETFILESTATUS", "500"), 2);
    assert_eq!(requests(&metrics, "GETFILESTATUS", "200"), 1);
}

#[tokio::test]
async fn retries_retriable_exception_and_gives_up_after_max_retries() {
    let nn = fake_nn(|_, _| {
        remote(
            403,
            "RetriableException",
            "org.apache.hadoop.ipc.RetriableException",
            "NameNode still not started",
        )
    })
    .await;
    let mut cfg = config(vec![nn.url.clone()]);
    cfg.max_retries = 2;
    let (fs, _) = client(cfg);
    let err = fs.file_status("/").await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(nn.count(), 3, "first attempt + 2 retries");
}

#[tokio::test]
async fn does_not_retry_client_errors() {
    let nn = fake_nn(|req, _| match req.raw_path.as_str() {
        "/webhdfs/v1/missing" => remote(
            404,
            "FileNotFoundException",
            "java.io.FileNotFoundException",
            "File does not exist: /missing",
        ),
        _ => remote(
            403,
            "AccessControlException",
            "org.apache.hadoop.security.AccessControlException",
            "Permission denied: user=dr.who, access=READ_EXECUTE",
        ),
    })
    .await;
    let mut cfg = config(vec![nn.url.clone()]);
    cfg.max_retries = 5;
    let (fs, _) = client(cfg);

    let err = fs.file_status("/missing").await.unwrap_err();
    assert!(matches!(err, FsError::NotFound { ref path } if path == "/missing"));
    assert_eq!(nn.count(), 1);

    let err = list_all(&fs, "/secret").await.unwrap_err();
    assert!(
        matches!(err, FsError::PermissionDenied { ref message, .. } if message.contains("dr.who")),
        "{err}"
    );
    assert_eq!(nn.count(), 2);
    assert!(fs.batch_listing_supported());
}

#[tokio::test]
async fn html_401_from_the_spnego_filter_is_a_remote_error() {
    let nn = fake_nn(|_, _| Answer {
        status: 401,
        body: "<html>\n<head><title>Error 401 Authentication required</title></head>\n\
               <body><h2>HTTP ERROR 401</h2></body>\n</html>"
            .into(),
        content_type: "text/html;charset=iso-8859-1",
        delay: Duration::ZERO,
        location: None,
    })
    .await;
    let mut cfg = config(vec![nn.url.clone()]);
    cfg.max_retries = 3;
    let (fs, metrics) = client(cfg);
    let err = list_all(&fs, "/t").await.unwrap_err();
    match &err {
        FsError::Remote {
            status, message, ..
        } => {
            assert_eq!(*status, 401);
            assert!(message.contains("Authentication required"), "{message}");
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(nn.count(), 1);
    assert_eq!(requests(&metrics, "LISTSTATUS_BATCH", "401"), 1);
}

#[tokio::test]
async fn non_json_success_body_is_an_invalid_response() {
    let nn = fake_nn(|_, _| json(200, "<html>proxy page</html>")).await;
    let (fs, _) = client(config(vec![nn.url.clone()]));
    let err = fs.file_status("/").await.unwrap_err();
    assert!(matches!(err, FsError::InvalidResponse { .. }), "{err}");
}

#[tokio::test]
async fn sends_user_and_delegation_token_but_never_prints_the_token() {
    let token = "HAAEaGl2ZQRoaXZlAIoBkR+/x=";
    let nn = fake_nn(|_, _| root_status()).await;
    let mut cfg = config(vec![nn.url.clone(), refused_url()]);
    cfg.user = Some("hive".into());
    cfg.delegation_token = Some(Secret::new(token));
    let (fs, _) = client(cfg.clone());
    fs.file_status("/").await.unwrap();
    let req = &nn.seen()[0];
    assert_eq!(req.param("user.name"), Some("hive"));
    assert_eq!(req.param("delegation"), Some(token));
    assert!(
        req.raw_query
            .contains("delegation=HAAEaGl2ZQRoaXZlAIoBkR%2B%2Fx%3D")
    );
    assert!(!format!("{fs:?}").contains(token));

    // Transport errors must not carry the URL (and with it the token).
    cfg.namenodes = vec![refused_url()];
    let (fs, _) = client(cfg);
    let err = fs.file_status("/").await.unwrap_err();
    assert!(matches!(err, FsError::Connection { .. }), "{err}");
    assert!(!err.to_string().contains("HAAE"), "{err}");
    assert!(!format!("{err:?}").contains("HAAE"));
}

#[tokio::test]
async fn timeout_is_reported_and_not_failed_over() {
    let nn = fake_nn(|_, _| Answer {
        delay: Duration::from_millis(500),
        ..root_status()
    })
    .await;
    let other = fake_nn(|_, _| root_status()).await;
    let mut cfg = config(vec![nn.url.clone(), other.url.clone()]);
    cfg.request_timeout = Duration::from_millis(100);
    let (fs, _) = client(cfg);
    let err = fs.file_status("/").await.unwrap_err();
    assert!(matches!(err, FsError::Timeout { .. }), "{err}");
    assert_eq!(other.count(), 0);
}

#[tokio::test]
async fn concurrency_bound_holds() {
    let nn = fake_nn(|_, _| Answer {
        delay: Duration::from_millis(30),
        ..root_status()
    })
    .await;
    let mut cfg = config(vec![nn.url.clone()]);
    cfg.max_concurrent_requests = 3;
    let (fs, _) = client(cfg);
    let fs = Arc::new(fs);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let fs = fs.clone();
            tokio::spawn(async move { fs.file_status("/").await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(nn.count(), 20);
    assert_eq!(nn.max_in_flight.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn probe_reports_each_namenode() {
    let nn1 = fake_nn(|_, _| standby()).await;
    let nn2 = fake_nn(|_, _| root_status()).await;
    let dead = refused_url();
    let (fs, _) = client(config(vec![nn1.url.clone(), nn2.url.clone(), dead.clone()]));
    let probes = fs.probe().await;
    assert_eq!(probes.len(), 3);
    assert_eq!(probes[0].state, EndpointState::Standby);
    assert_eq!(probes[1].state, EndpointState::Active);
    assert!(matches!(probes[2].state, EndpointState::Down(_)));
    assert_eq!(probes[2].endpoint, dead.as_str().trim_end_matches('/'));
    assert_eq!(nn2.seen()[0].raw_path, "/webhdfs/v1/");
    assert_eq!(fs.active_namenode(), probes[1].endpoint);
}

#[test]
fn rejects_bad_configs() {
    let metrics = WebHdfsMetrics::default;
    assert!(matches!(
        WebHdfs::new(config(vec![]), metrics()),
        Err(WebHdfsConfigError::NoNameNodes { .. })
    ));
    let mut cfg = config(vec![url::Url::parse("ftp://nn:1").unwrap()]);
    assert!(matches!(
        WebHdfs::new(cfg.clone(), metrics()),
        Err(WebHdfsConfigError::BadNameNodeUrl { .. })
    ));
    cfg.namenodes = vec![url::Url::parse("http://nn:9870").unwrap()];
    cfg.max_concurrent_requests = 0;
    assert!(matches!(
        WebHdfs::new(cfg.clone(), metrics()),
        Err(WebHdfsConfigError::ZeroConcurrency { .. })
    ));
    cfg.max_concurrent_requests = 1;
    cfg.ca_file = Some("/nonexistent/ca.pem".into());
    assert!(matches!(
        WebHdfs::new(cfg, metrics()),
        Err(WebHdfsConfigError::CaFileRead { .. })
    ));
}

#[test]
fn builds_urls_with_a_gateway_prefix() {
    let mut cfg = config(vec![
        url::Url::parse("https://knox:8443/gateway/default/").unwrap(),
    ]);
    cfg.user = Some("a&b".into());
    let (fs, _) = client(cfg);
    let url = fs.url(
        &fs.namenodes[0],
        op::LISTSTATUS_BATCH,
        "/a/b c",
        &[("startAfter", "x y")],
    );
    assert_eq!(
        url,
        "https://knox:8443/gateway/default/webhdfs/v1/a/b%20c?op=LISTSTATUS_BATCH\
         &user.name=a%26b&startAfter=x%20y"
    );
}

#[test]
fn backoff_is_capped_full_jitter() {
    let mut cfg = config(vec![url::Url::parse("http://nn:9870").unwrap()]);
    cfg.retry_initial_backoff = Duration::from_millis(100);
    cfg.retry_max_backoff = Duration::from_millis(300);
    let (fs, _) = client(cfg);
    for attempt in 0..40 {
        let d = fs.backoff(attempt);
        let cap =
            Duration::from_millis(100 * 2u64.pow(attempt.min(10))).min(Duration::from_millis(300));
        assert!(d <= cap, "attempt {attempt}: {d:?} > {cap:?}");
    }
}

/// Throughput smoke test (run explicitly, ideally with `--release`): many concurrent
/// one-batch listings of 100 entries against a local responder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn throughput_of_listing_requests() {
    let body = batch(
        &(0..100)
            .map(|i| entry(&format!("part-{i:05}"), false))
            .collect::<Vec<_>>(),
        0,
    )
    .body;
    let nn = fake_nn(move |_, _| Answer {
        body: body.clone(),
        ..json(200, "")
    })
    .await;
    let mut cfg = config(vec![nn.url.clone()]);
    cfg.max_concurrent_requests = 16;
    let (fs, _) = client(cfg);
    let fs = Arc::new(fs);
    let requests = 20_000;
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let fs = fs.clone();
            tokio::spawn(async move {
                let mut entries = 0;
                for i in 0..requests / 64 {
                    fs.list_status(
                        &format!("/w/db.db/t{t}/p={i}"),
                        &mut |p: Vec<FileStatus>| {
                            entries += p.len();
                        },
                    )
                    .await
                    .unwrap();
                }
                entries
            })
        })
        .collect();
    let mut entries = 0;
    for t in tasks {
        entries += t.await.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "{} listings ({entries} entries) in {elapsed:?}: {:.0} requests/s",
        nn.count(),
        nn.count() as f64 / elapsed.as_secs_f64()
    );
}

mod contents;
