//! The HTTP server's limits (`[server]`) over real sockets: slow headers and idle keep-alive
//! connections are closed, the connection cap makes room for a client by closing the
//! longest-idle connection, and a flood of wrong basic-auth passwords neither runs bcrypt
//! per request nor holds up a valid client. The core's `serve` runs a small router for the
//! connection tests; the agent runs in-process for the authentication tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use hive_smallfiles_agent::config::AgentConfig;
use hive_smallfiles_core::config::ProcessEnv;
use hive_smallfiles_core::web::{self, CloseReason, ServerSettings, WebConfig, WebMetrics};
use hive_smallfiles_tests::services::{Agent, AgentOptions, bind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Longer than any limit under test: a read still pending after it means "not closed".
const NOT_CLOSED: Duration = Duration::from_secs(8);

/// The core's server on a free port with `settings`; `/slow` waits for a permit of `gate`.
async fn server(
    settings: ServerSettings,
    gate: Arc<Semaphore>,
) -> (SocketAddr, WebMetrics, CancellationToken) {
    let (listener, addr) = bind("127.0.0.1:0").await;
    let metrics = WebMetrics::default();
    let web = WebConfig::default().with_server(settings, metrics.clone());
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/slow",
            get(move || {
                let gate = Arc::clone(&gate);
                async move {
                    let _permit = gate.acquire().await;
                    "done\n"
                }
            }),
        );
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move { web::serve(listener, router, &web, shutdown, Duration::from_secs(1)).await }
    });
    (addr, metrics, shutdown)
}

/// Whether the server closes `stream` (EOF or reset) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// A connection that sent the start of a request header and then nothing.
async fn slow_header(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    s
}

/// Reads one response with a `content-length` from `stream`; its status code.
async fn read_response(stream: &mut TcpStream) -> u16 {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(NOT_CLOSED, stream.read(&mut buf))
            .await
            .expect("a response")
            .unwrap();
        assert!(n > 0, "closed before a response");
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("content-length");
            if body.len() >= len {
                return head[9..12].parse().unwrap();
            }
        }
    }
}

#[tokio::test]
async fn slow_header_and_silent_connections_are_closed_after_the_header_timeout() {
    let settings = ServerSettings {
        header_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(60),
        ..ServerSettings::default()
    };
    let (addr, metrics, shutdown) = server(settings, Arc::new(Semaphore::new(1))).await;
    let mut slow = slow_header(addr).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut slow, NOT_CLOSED).await,
        "slow header kept open"
    );
    assert!(
        closed_within(&mut silent, NOT_CLOSED).await,
        "silent connection kept open"
    );
    assert_eq!(metrics.closed_count(CloseReason::HeaderTimeout), 2);
    // A client that sends its request in time is answered.
    let mut ok = TcpStream::connect(addr).await.unwrap();
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut ok).await, 200);
    shutdown.cancel();
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let settings = ServerSettings {
        header_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(1),
        ..ServerSettings::default()
    };
    let (addr, metrics, shutdown) = server(settings, Arc::new(Semaphore::new(1))).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_response(&mut s).await, 200);
    }
    assert!(
        closed_within(&mut s, NOT_CLOSED).await,
        "idle connection kept open"
    );
    assert_eq!(metrics.closed_count(CloseReason::IdleTimeout), 1);
    assert_eq!(metrics.closed_count(CloseReason::HeaderTimeout), 0);
    shutdown.cancel();
}

#[tokio::test]
async fn at_the_connection_cap_the_longest_idle_connection_makes_room() {
    let settings = ServerSettings {
        header_timeout: Duration::from_secs(60),
        max_connections: 4,
        ..ServerSettings::default()
    };
    let gate = Arc::new(Semaphore::new(0));
    let (addr, metrics, shutdown) = server(settings, Arc::clone(&gate)).await;
    let mut slow = Vec::new();
    for _ in 0..4 {
        slow.push(slow_header(addr).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Four slow-header connections fill the cap; a health check is still answered, and the
    // oldest slow connection is the one closed for it.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for _ in 0..3 {
        let r = client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .expect("answered at the cap");
        assert_eq!(r.status().as_u16(), 200);
    }
    assert!(closed_within(&mut slow[0], Duration::from_secs(5)).await);
    for s in &mut slow[1..] {
        assert!(
            !closed_within(s, Duration::from_millis(200)).await,
            "only the oldest goes"
        );
    }
    assert_eq!(metrics.closed_count(CloseReason::Evicted), 1);
    drop(slow);
    drop(client);
    // Every connection with a request in flight: a new connection is closed at once, and the
    // requests in flight are answered.
    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        busy.push(s);
    }
    // The server must have seen all four requests before the fifth connection arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while metrics.connections.get() != 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the busy connections never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert!(
        closed_within(&mut extra, Duration::from_secs(5)).await,
        "no room: closed"
    );
    assert_eq!(metrics.closed_count(CloseReason::Rejected), 1);
    gate.add_permits(4);
    for s in &mut busy {
        assert_eq!(read_response(s).await, 200);
    }
    shutdown.cancel();
}

/// The agent with one basic-auth user (`prom`, password `right`, bcrypt cost `cost`) and
/// `concurrency` bcrypt verifications at once.
async fn agent_with_basic_auth(dir: &std::path::Path, cost: u32, concurrency: usize) -> Agent {
    std::fs::write(
        dir.join("agent.toml"),
        format!(
            "audit_log = \"audit.jsonl\"\n[server]\nbasic_auth_concurrency = {concurrency}\n\
             [[cluster]]\nname = \"c\"\nengine = \"spark\"\nexecutor = \"native\"\n\
             [cluster.metastore]\nurl = \"mysql://hive@127.0.0.1:1/metastore\"\n\
             [cluster.storage]\ntype = \"local\"\nroot = \"{}\"\n",
            dir.display()
        ),
    )
    .unwrap();
    let config = AgentConfig::load(&dir.join("agent.toml"), &ProcessEnv).unwrap();
    let hash = bcrypt::hash("right", cost).unwrap();
    let options = AgentOptions {
        web: WebConfig::with_users(BTreeMap::from([("prom".to_owned(), hash)])),
        ..AgentOptions::default()
    };
    Agent::start(config, options).await
}

/// A client that gives up after 30 s.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// GET `/api/v1/intake` with `authorization`; the status code.
async fn get_with(client: &reqwest::Client, agent: &Agent, authorization: &str) -> u16 {
    client
        .get(format!("{}/api/v1/intake", agent.base_url))
        .header("authorization", authorization)
        .send()
        .await
        .expect("an answer")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_flood_of_one_wrong_password_runs_bcrypt_once() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent_with_basic_auth(dir.path(), 6, 2).await;
    let client = client();
    let wrong = basic("prom", "wrong");
    let answers =
        futures::future::join_all((0..40).map(|_| get_with(&client, &agent, &wrong))).await;
    assert!(answers.iter().all(|&c| c == 401), "{answers:?}");
    let web = &agent.metrics.web;
    assert_eq!(
        web.bcrypt_verifications.get(),
        1,
        "one bcrypt run for 40 identical values"
    );
    assert_eq!(web.auth_failures.get(), 40);
    // The user who then types the right password is not locked out, and is verified once.
    let right = basic("prom", "right");
    for _ in 0..5 {
        assert_eq!(get_with(&client, &agent, &right).await, 200);
    }
    assert_eq!(web.bcrypt_verifications.get(), 2);
    // Unknown users and other wrong passwords are verified (against the dummy hash for
    // unknown users): each distinct value costs one run.
    assert_eq!(get_with(&client, &agent, &basic("nobody", "x")).await, 401);
    assert_eq!(
        get_with(&client, &agent, &basic("prom", "other")).await,
        401
    );
    assert_eq!(web.bcrypt_verifications.get(), 4);
    agent.stop().await;
}

#[tokio::test]
async fn a_cached_valid_client_is_answered_while_the_flood_holds_every_permit() {
    let dir = tempfile::tempdir().unwrap();
    // One permit and an expensive hash: the flood below queues for seconds.
    let agent = agent_with_basic_auth(dir.path(), 11, 1).await;
    let client = client();
    let right = basic("prom", "right");
    assert_eq!(get_with(&client, &agent, &right).await, 200);
    let web = agent.metrics.web.clone();
    assert_eq!(web.bcrypt_verifications.get(), 1);
    let flood_size = 12;
    let flood = tokio::spawn({
        let (client, url) = (client.clone(), format!("{}/api/v1/intake", agent.base_url));
        async move {
            let requests = (0..flood_size).map(|i| {
                client
                    .get(url.clone())
                    .header("authorization", basic("prom", &format!("wrong-{i}")))
                    .send()
            });
            futures::future::join_all(requests).await
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while web.bcrypt_verifications.get() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flood never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..20 {
        assert_eq!(get_with(&client, &agent, &right).await, 200);
    }
    // The valid client's 20 answers came while wrong passwords were still queued for the
    // single permit: it never waited for the queue.
    let verified_meanwhile = web.bcrypt_verifications.get() - 1;
    assert!(
        verified_meanwhile < flood_size,
        "the valid client waited for the whole flood ({verified_meanwhile} verifications)"
    );
    let answers = flood.await.unwrap();
    assert!(
        answers
            .iter()
            .all(|r| r.as_ref().unwrap().status().as_u16() == 401)
    );
    assert_eq!(web.bcrypt_verifications.get(), 1 + flood_size);
    agent.stop().await;
}
