//! Servers that offer only authentication mechanisms the client was not configured for: a
//! Kerberos client meets a gateway asking for HTTP Basic (WebHDFS, HiveServer2's HTTP
//! transport) and a HiveServer2 without Kerberos (binary transport, the plain Spark Thrift
//! Server, whose SASL server knows only PLAIN). Each fails at once, without retrying, with a
//! message naming what the server asked for.

use std::time::{Duration, Instant};

use hive_smallfiles_agent::hiveserver2::{
    Hs2Auth, Hs2Config, Hs2Kerberos, Hs2Session, Hs2Transport, Qop,
};
use hive_smallfiles_core::fs::FileSystem;
use hive_smallfiles_core::fs::webhdfs::{SpnegoConfig, WebHdfs, WebHdfsConfig, WebHdfsMetrics};
use hive_smallfiles_core::kerberos::{Kerberos, KerberosConfig};
use hive_smallfiles_tests::kdc::Kdc;
use hive_smallfiles_tests::require;
use hive_smallfiles_tests::spark;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// An HTTP server answering every request with 401 and `WWW-Authenticate: Basic` (a gateway
/// with LDAP authentication); returns its port and a counter of requests.
async fn basic_only_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut have = Vec::new();
                loop {
                    let Ok(n) = sock.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    have.extend_from_slice(&buf[..n]);
                    // One answer per request head (bodies are small and ignored).
                    while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&have[..end]).to_ascii_lowercase();
                        let body_len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if have.len() < end + 4 + body_len {
                            break;
                        }
                        have.drain(..end + 4 + body_len);
                        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let body = "authentication required";
                        let answer = format!(
                            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"gateway\"\r\n\
                             Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if sock.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, count)
}

fn login(kdc: &Kdc) -> KerberosConfig {
    KerberosConfig::keytab(kdc.client_principal(), kdc.client_keytab())
}

#[tokio::test]
async fn webhdfs_with_kerberos_refuses_a_server_asking_for_basic() {
    require!(Kdc::unavailable());
    let kdc = Kdc::get().unwrap();
    kdc.apply_env();
    let (port, requests) = basic_only_server().await;
    let cfg = WebHdfsConfig {
        cluster: "gw".into(),
        namenodes: vec![url::Url::parse(&format!("http://localhost:{port}")).unwrap()],
        user: None,
        delegation_token: None,
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_concurrent_requests: 2,
        max_retries: 3,
        retry_initial_backoff: Duration::from_millis(1),
        retry_max_backoff: Duration::from_millis(5),
        ca_file: None,
        spnego: Some(SpnegoConfig {
            kerberos: login(&kdc),
            delegation_tokens: false,
        }),
    };
    let fs = WebHdfs::new(cfg, WebHdfsMetrics::default()).unwrap();
    let t0 = Instant::now();
    let err = fs
        .file_status("/warehouse")
        .await
        .expect_err("must be refused");
    let text = err.to_string();
    assert!(
        text.contains("asking for Basic authentication, not SPNEGO"),
        "{text}"
    );
    assert!(!err.is_retryable(), "{text}");
    assert_eq!(
        requests.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one request, no retries"
    );
    eprintln!("refused in {:.1?}: {text}", t0.elapsed());
}

fn kerberos_hs2(kdc: &Kdc, port: u16) -> Hs2Config {
    let mut cfg = Hs2Config::new("localhost", port, "hsf");
    cfg.auth = Hs2Auth::Kerberos;
    cfg.kerberos = Some(Hs2Kerberos {
        login: Kerberos::shared(&login(kdc)),
        principal: "hive/_HOST@HSF.TEST".to_owned(),
        qop: Qop::Auth,
    });
    cfg.connect_timeout = Duration::from_secs(20);
    cfg
}

#[tokio::test]
async fn hiveserver2_http_with_kerberos_refuses_a_server_asking_for_basic() {
    require!(Kdc::unavailable());
    let kdc = Kdc::get().unwrap();
    kdc.apply_env();
    let (port, requests) = basic_only_server().await;
    let mut cfg = kerberos_hs2(&kdc, port);
    cfg.transport = Hs2Transport::Http {
        path: "cliservice".into(),
    };
    let err = Hs2Session::open(&cfg).await.expect_err("must be refused");
    let text = err.to_string();
    assert!(
        text.contains("asks for Basic authentication, not Kerberos (Negotiate)"),
        "{text}"
    );
    assert!(requests.load(std::sync::atomic::Ordering::SeqCst) <= 2);
    eprintln!("refused: {text}");
}

#[tokio::test]
async fn hiveserver2_binary_with_kerberos_against_a_server_without_it() {
    require!(Kdc::unavailable());
    require!(spark::unavailable());
    let kdc = Kdc::get().unwrap();
    kdc.apply_env();
    // The plain Thrift Server (authentication NONE: its SASL server offers PLAIN only).
    let err = Hs2Session::open(&kerberos_hs2(&kdc, spark::port()))
        .await
        .expect_err("a server without Kerberos must refuse GSSAPI");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            hive_smallfiles_agent::hiveserver2::Hs2Error::Authentication(_)
        ),
        "{text}"
    );
    assert!(
        text.contains("the server does not offer Kerberos (SASL GSSAPI)"),
        "{text}"
    );
    eprintln!("refused: {text}");
}
