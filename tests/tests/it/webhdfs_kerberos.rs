//! The WebHDFS client on a secured cluster: SPNEGO against the test server's real GSSAPI
//! acceptor (the test KDC's `HTTP/localhost` keytab), the `hadoop.auth` cookie, delegation
//! tokens obtained, renewed and re-obtained over SPNEGO, HA failover with a standby first,
//! `user.name` refused, principals refused, and HTTPS (swebhdfs) with a CA bundle, failing
//! closed on untrusted or mismatched certificates. Oracles: the server's own counters of
//! authentications by kind, its request log and its namespace.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use hive_smallfiles_core::fs::webhdfs::{
    AuthLabels, ClusterLabels, SpnegoConfig, WebHdfs, WebHdfsConfig, WebHdfsMetrics,
};
use hive_smallfiles_core::fs::write::FileSystemWrite;
use hive_smallfiles_core::fs::{FileSystem, FsError};
use hive_smallfiles_core::kerberos::KerberosConfig;
use hive_smallfiles_tests::kdc::Kdc;
use hive_smallfiles_tests::require;
use hive_smallfiles_tests::webhdfs_server::{
    AuthKind, NodeId, RunningServer, SecurityOptions, ServerOptions, WebHdfsServer,
};

fn config(urls: Vec<String>, spnego: Option<SpnegoConfig>) -> WebHdfsConfig {
    WebHdfsConfig {
        cluster: "secure".into(),
        namenodes: urls
            .iter()
            .map(|u| url::Url::parse(u).expect("url"))
            .collect(),
        user: Some("hive".into()),
        delegation_token: None,
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        max_concurrent_requests: 8,
        max_retries: 1,
        retry_initial_backoff: Duration::from_millis(1),
        retry_max_backoff: Duration::from_millis(5),
        ca_file: None,
        spnego,
    }
}

fn kerberos(principal: &str, keytab: PathBuf, delegation_tokens: bool) -> Option<SpnegoConfig> {
    Some(SpnegoConfig {
        kerberos: KerberosConfig::keytab(principal, keytab),
        delegation_tokens,
    })
}

/// A Kerberos client of `srv`'s NameNodes.
fn kerberized(srv: &RunningServer, spnego: Option<SpnegoConfig>) -> WebHdfs {
    WebHdfs::new(
        config(srv.namenode_urls(), spnego),
        WebHdfsMetrics::default(),
    )
    .expect("client")
}

/// The realm, with `KRB5_CONFIG` set for this process; `None` (test skipped) without a KDC.
fn realm() -> Option<Kdc> {
    let kdc = Kdc::get().ok()?;
    kdc.apply_env();
    Some(kdc)
}

/// A SPNEGO-only server (two NameNodes, the first standby) on `localhost`, accepting with
/// the realm's `HTTP/localhost` keytab.
async fn secured(
    kdc: &Kdc,
    tune: impl FnOnce(SecurityOptions) -> SecurityOptions,
) -> RunningServer {
    let acceptor = hive_smallfiles_tests::webhdfs_server::security::keytab_acceptor(
        &kdc.http_keytab(),
        "HTTP/localhost@HSF.TEST",
    )
    .expect("acceptor");
    let options = ServerOptions::new()
        .namenodes(2)
        .active(Some(1))
        .host("localhost")
        .security(tune(SecurityOptions::new(acceptor)));
    WebHdfsServer::start(options).await.expect("server")
}

/// A warehouse of `dirs` partitions with 3 files each.
fn fill(srv: &RunningServer, dirs: usize) -> Vec<String> {
    let ns = srv.namespace();
    (0..dirs)
        .map(|d| {
            let dir = format!("/warehouse/db.db/t/dt={d:03}");
            for f in 0..3 {
                ns.add_file(&format!("{dir}/part-{f}"), vec![b'x'; 10 + f])
                    .unwrap();
            }
            dir
        })
        .collect()
}

/// Lists every directory, 8 at a time (a scan's access pattern): the entries seen.
async fn scan(fs: &WebHdfs, dirs: &[String]) -> usize {
    let counts = futures::stream::iter(dirs.iter())
        .map(|d| async move {
            let mut n = 0;
            fs.list_status(d, &mut |page| n += page.len())
                .await
                .expect("listing");
            n
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    counts.into_iter().sum()
}

fn no_user_name(srv: &RunningServer) {
    for r in srv.request_log() {
        assert!(
            !r.query.to_ascii_lowercase().contains("user.name"),
            "user.name sent with Kerberos: {} {}",
            r.op,
            r.path
        );
    }
}

#[tokio::test]
async fn scan_and_write_through_spnego_reuse_the_cookie_across_failover() {
    require!(Kdc::unavailable());
    let kdc = realm().expect("realm");
    let srv = secured(&kdc, |o| o).await;
    let dirs = fill(&srv, 60);
    let fs = kerberized(
        &srv,
        kerberos(&kdc.client_principal(), kdc.client_keytab(), false),
    );

    assert_eq!(scan(&fs, &dirs).await, 180);
    assert_eq!(
        fs.authentication(),
        "kerberos (SPNEGO as hsf/localhost@HSF.TEST)"
    );
    assert_eq!(fs.active_namenode(), srv.namenode_url(1), "failed over");
    let negotiated = srv.auth_count(AuthKind::Negotiate);
    let by_cookie = srv.auth_count(AuthKind::Cookie);
    // One handshake per NameNode (the standby's included): the 8 requests in flight wait
    // for the first one's cookie.
    eprintln!("scan of 60 directories: {negotiated} SPNEGO handshakes, {by_cookie} by cookie");
    assert_eq!(negotiated, 2, "SPNEGO handshakes");
    assert!(by_cookie >= 60 - 8, "cookie authentications: {by_cookie}");
    assert_eq!(fs.token_stats().spnego_handshakes, negotiated);
    assert!(
        srv.spnego_principals()
            .iter()
            .all(|p| p == &kdc.client_principal())
    );

    // The agent's write path: create (DataNode redirect), rename, delete.
    let before = srv.auth_count(AuthKind::Negotiate);
    fs.create(
        "/warehouse/db.db/t/.merge/new",
        Bytes::from_static(b"merged"),
        false,
        None,
    )
    .await
    .expect("create");
    fs.rename(
        "/warehouse/db.db/t/.merge/new",
        "/warehouse/db.db/t/dt=000/merged",
    )
    .await
    .expect("rename");
    assert!(
        fs.delete("/warehouse/db.db/t/dt=000/part-0", false)
            .await
            .expect("delete")
    );
    let ns = srv.namespace();
    assert_eq!(
        ns.read_file("/warehouse/db.db/t/dt=000/merged").unwrap(),
        "merged"
    );
    assert_eq!(
        ns.status("/warehouse/db.db/t/dt=000/merged").unwrap().owner,
        "hsf"
    );
    assert!(ns.status("/warehouse/db.db/t/dt=000/part-0").is_err());
    assert_eq!(
        srv.auth_count(AuthKind::Negotiate),
        before,
        "cookie reused for writes"
    );
    // The DataNode got the token the NameNode put into the redirect.
    assert!(srv.request_count(Some(NodeId::DataNode), Some("CREATE"), Some(201)) == 1);
    no_user_name(&srv);

    // An expired cookie: the NameNode answers 401 again and the client re-authenticates.
    srv.forget_credentials();
    assert_eq!(scan(&fs, &dirs[..4]).await, 12);
    assert!(srv.auth_count(AuthKind::Negotiate) > before);
}

#[tokio::test]
async fn delegation_tokens_are_obtained_renewed_and_replaced_over_spnego() {
    require!(Kdc::unavailable());
    let kdc = realm().expect("realm");
    // Short lifetimes: renew interval 3 s, maximum 5 s.
    let srv = secured(&kdc, |o| o).await;
    srv.set_token_lifetimes(Duration::from_secs(3), Duration::from_secs(5));
    let dirs = fill(&srv, 4);
    let cfg = config(
        srv.namenode_urls(),
        kerberos(&kdc.client_principal(), kdc.client_keytab(), true),
    );
    let metrics = WebHdfsMetrics::default();
    let fs = WebHdfs::new(cfg, metrics.clone()).expect("client");

    // A run longer than a token's whole lifetime, reading through the DataNode.
    let start = Instant::now();
    let mut rounds = 0;
    while start.elapsed() < Duration::from_secs(6) {
        assert_eq!(scan(&fs, &dirs).await, 12);
        let data = fs
            .read_range("/warehouse/db.db/t/dt=001/part-2", 0, 100)
            .await
            .expect("read");
        assert_eq!(data.len(), 12);
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = fs.token_stats();
    eprintln!(
        "{rounds} rounds in {:?}: {stats:?}, server: {} by token",
        start.elapsed(),
        srv.auth_count(AuthKind::Delegation)
    );
    assert!(rounds > 10, "{rounds}");
    // Renewed before expiry and replaced before the maximum date: no token was ever refused
    // (the only refusals are the first unauthenticated request to each NameNode).
    assert_eq!(
        srv.auth_count(AuthKind::Rejected),
        stats.spnego_handshakes,
        "{stats:?}"
    );
    assert!(
        stats.obtained >= 2,
        "a new token near the maximum lifetime: {stats:?}"
    );
    assert!(
        stats.renewed > stats.obtained,
        "renewed before expiry: {stats:?}"
    );
    // SPNEGO (handshake or cookie) only for the token operations; everything else by token.
    let token_ops =
        srv.requests_for_op("GETDELEGATIONTOKEN") + srv.requests_for_op("RENEWDELEGATIONTOKEN");
    let kerberos = srv.auth_count(AuthKind::Negotiate) + srv.auth_count(AuthKind::Cookie);
    assert!(
        kerberos >= stats.obtained + stats.renewed,
        "{kerberos} {stats:?}"
    );
    assert!(kerberos <= token_ops, "{kerberos} > {token_ops}");
    assert!(stats.spnego_handshakes <= 2 + stats.obtained, "{stats:?}");
    assert!(srv.auth_count(AuthKind::Delegation) >= rounds * 5);
    let event = |event: &str| {
        metrics
            .authentications
            .get_or_create(&AuthLabels {
                cluster: "secure".into(),
                event: event.into(),
            })
            .get()
    };
    assert_eq!(
        (
            event("token_obtained"),
            event("token_renewed"),
            event("spnego")
        ),
        (stats.obtained, stats.renewed, stats.spnego_handshakes)
    );
    let expiry = metrics
        .token_expiry
        .get_or_create(&ClusterLabels {
            cluster: "secure".into(),
        })
        .get();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now..=now + 4).contains(&expiry), "{expiry} vs {now}");
    // The agent's write through the DataNode with the token.
    fs.create(
        "/warehouse/db.db/t/new",
        Bytes::from_static(b"n"),
        false,
        None,
    )
    .await
    .expect("create");
    assert_eq!(
        srv.namespace()
            .status("/warehouse/db.db/t/new")
            .unwrap()
            .owner,
        "hsf"
    );
    // DataNode traffic carried the token, never user.name.
    let dn: Vec<_> = srv
        .request_log()
        .into_iter()
        .filter(|r| r.node == NodeId::DataNode)
        .collect();
    assert!(!dn.is_empty());
    assert!(
        dn.iter()
            .all(|r| r.query.contains("delegation=") && matches!(r.status, 200 | 201))
    );
    no_user_name(&srv);

    // The NameNode forgets its tokens: the next request gets a new one.
    srv.forget_credentials();
    let obtained = fs.token_stats().obtained;
    assert_eq!(scan(&fs, &dirs[..1]).await, 3);
    assert_eq!(fs.token_stats().obtained, obtained + 1);

    // Cancelled by the shutdown hook.
    let live = srv.live_tokens();
    let hook: &dyn FileSystem = &fs;
    hook.close().await;
    assert_eq!(srv.live_tokens(), live - 1);
    assert_eq!(srv.requests_for_op("CANCELDELEGATIONTOKEN"), 1);
    assert!(!fs.cancel_delegation_token().await.expect("nothing left"));
}

#[tokio::test]
async fn a_cluster_without_tokens_is_used_without_them() {
    // A NameNode with security off answers GETDELEGATIONTOKEN with {"Token": null}.
    let srv = WebHdfsServer::start(ServerOptions::new().host("localhost"))
        .await
        .expect("server");
    srv.namespace().add_file("/w/a", vec![1u8; 3]).unwrap();
    let fs = kerberized(
        &srv,
        kerberos(
            "hsf/localhost@HSF.TEST",
            PathBuf::from("/nonexistent.keytab"),
            true,
        ),
    );
    for _ in 0..3 {
        assert_eq!(fs.file_status("/w/a").await.expect("status").length, 3);
    }
    assert_eq!(srv.requests_for_op("GETDELEGATIONTOKEN"), 1, "asked once");
    assert_eq!(fs.token_stats().obtained, 0);
    no_user_name(&srv);
}

#[tokio::test]
async fn user_name_is_refused_when_security_is_on() {
    require!(Kdc::unavailable());
    let kdc = realm().expect("realm");
    let srv = secured(&kdc, |o| o).await;
    srv.set_active(0);
    let fs =
        WebHdfs::new(config(srv.namenode_urls(), None), WebHdfsMetrics::default()).expect("client");
    let err = fs.file_status("/").await.expect_err("refused");
    match &err {
        FsError::Remote {
            status: 401,
            message,
            ..
        } => assert!(message.contains("user.name is not accepted"), "{err}"),
        other => panic!("expected 401, got {other:?}"),
    }
    assert_eq!(srv.auth_count(AuthKind::Rejected), 1);
}

#[tokio::test]
async fn refused_principals_and_wrong_service_keys_give_clear_errors() {
    require!(Kdc::unavailable());
    let kdc = realm().expect("realm");
    // The server allows only hsf: hsf-other authenticates but is refused.
    let srv = secured(&kdc, |o| o.allowed_users(&["hsf"])).await;
    srv.set_active(0);
    let fs = kerberized(
        &srv,
        kerberos(&kdc.other_principal(), kdc.other_keytab(), false),
    );
    let err = fs.file_status("/").await.expect_err("refused");
    assert!(
        matches!(&err, FsError::PermissionDenied { message, .. }
            if message.contains("hsf-other@HSF.TEST is not allowed")),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    // A client keytab without the client's principal: the login's own cause, not retried.
    let fs = kerberized(
        &srv,
        kerberos(&kdc.client_principal(), kdc.other_keytab(), false),
    );
    let err = fs.file_status("/").await.expect_err("no login");
    eprintln!("bad keytab: {err}");
    assert!(
        matches!(&err, FsError::Authentication { message, retryable: false, .. }
            if message.starts_with("Kerberos (SPNEGO for HTTP@localhost)")
                && message.contains("other.keytab")),
        "{err:?}"
    );

    // A NameNode whose keytab is not the HTTP/localhost the client asks a ticket for.
    let acceptor = hive_smallfiles_tests::webhdfs_server::security::keytab_acceptor(
        &kdc.hive_keytab(),
        "hive/localhost@HSF.TEST",
    )
    .expect("acceptor");
    let wrong = WebHdfsServer::start(
        ServerOptions::new()
            .host("localhost")
            .security(SecurityOptions::new(acceptor)),
    )
    .await
    .expect("server");
    let fs = kerberized(
        &wrong,
        kerberos(&kdc.client_principal(), kdc.client_keytab(), true),
    );
    let err = fs.file_status("/").await.expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("rejected the SPNEGO authentication of hsf/localhost@HSF.TEST")
            && text.contains("HTTP@localhost"),
        "{text}"
    );
    assert_eq!(wrong.auth_count(AuthKind::Negotiate), 0);
}

/// A CA and a server certificate for `names` (SANs), made with the openssl command line.
fn certificates(dir: &Path, names: &str) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=hsf test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=namenode",
        "-keyout",
        "nn.key",
        "-out",
        "nn.csr",
    ]);
    std::fs::write(dir.join("ext.cnf"), format!("subjectAltName={names}\n")).unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "nn.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "nn.pem",
    ]);
    (dir.join("ca.pem"), dir.join("nn.pem"), dir.join("nn.key"))
}

async fn https_server(cert: &Path, key: &Path) -> RunningServer {
    let srv = WebHdfsServer::start(ServerOptions::new().host("localhost").tls(cert, key))
        .await
        .expect("server");
    srv.namespace().add_file("/w/t/a", vec![b'a'; 5]).unwrap();
    srv
}

#[tokio::test]
async fn https_with_the_cluster_ca_works() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path(), "DNS:localhost");
    let srv = https_server(&cert, &key).await;
    assert!(srv.namenode_url(0).starts_with("https://localhost:"));
    let mut cfg = config(srv.namenode_urls(), None);
    cfg.ca_file = Some(ca);
    let fs = WebHdfs::new(cfg, WebHdfsMetrics::default()).expect("client");
    let mut names = Vec::new();
    fs.list_status("/w/t", &mut |page| {
        names.extend(page.into_iter().map(|s| s.name))
    })
    .await
    .expect("listing over https");
    assert_eq!(names, ["a"]);
    // Through the DataNode, also https.
    fs.create("/w/t/b", Bytes::from_static(b"bb"), false, None)
        .await
        .expect("create over https");
    assert_eq!(fs.read_range("/w/t/b", 0, 10).await.unwrap(), "bb");
}

#[tokio::test]
async fn https_fails_closed_on_untrusted_or_mismatched_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path(), "DNS:localhost");
    let srv = https_server(&cert, &key).await;

    // No CA bundle: the private CA is not trusted.
    let fs =
        WebHdfs::new(config(srv.namenode_urls(), None), WebHdfsMetrics::default()).expect("client");
    let err = fs
        .create("/w/t/secret", Bytes::from_static(b"s"), false, None)
        .await
        .expect_err("untrusted");
    assert!(
        matches!(&err, FsError::InvalidResponse { message, .. }
            if message.contains("not signed by a trusted CA")),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    // The right CA, but the certificate does not name the host the client connects to.
    let urls = vec![format!("https://127.0.0.1:{}", srv.namenode_addr(0).port())];
    let mut cfg = config(urls, None);
    cfg.ca_file = Some(ca);
    let fs = WebHdfs::new(cfg, WebHdfsMetrics::default()).expect("client");
    let err = fs.file_status("/w/t/a").await.expect_err("mismatched");
    assert!(err.to_string().contains("does not name the host"), "{err}");

    // Nothing reached the server, and nothing was written.
    assert_eq!(srv.total_requests(), 0);
    assert!(srv.namespace().status("/w/t/secret").is_err());
}

#[test]
fn a_kdc_outage_does_not_stop_a_client_holding_a_token() {
    Kdc::in_private_realm(
        "webhdfs_kerberos::a_kdc_outage_does_not_stop_a_client_holding_a_token",
        |kdc| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let srv = secured(kdc, |o| o).await;
                let dirs = fill(&srv, 4);
                let fs = kerberized(
                    &srv,
                    kerberos(&kdc.client_principal(), kdc.client_keytab(), true),
                );
                assert_eq!(scan(&fs, &dirs).await, 12);

                kdc.stop();
                // The token (and the cached service ticket) keep a running client going.
                for _ in 0..10 {
                    assert_eq!(scan(&fs, &dirs).await, 12);
                    let data = fs
                        .read_range("/warehouse/db.db/t/dt=002/part-1", 0, 100)
                        .await
                        .expect("read during the outage");
                    assert_eq!(data.len(), 11);
                }
                // A client that must log in first: a named, retryable error, no failover.
                let late = kerberized(
                    &srv,
                    kerberos(&kdc.short_principal(), kdc.short_keytab(), false),
                );
                let started = Instant::now();
                let err = late.file_status("/").await.expect_err("KDC down");
                eprintln!("KDC down after {:?}: {err}", started.elapsed());
                assert!(
                    matches!(&err, FsError::Authentication { message, retryable: true, .. }
                        if message.starts_with("Kerberos (SPNEGO for HTTP@")),
                    "{err:?}"
                );

                kdc.start().expect("KDC back");
                // The login retries with its own backoff: polled, not slept for.
                let back = Instant::now();
                loop {
                    match late.file_status("/").await {
                        Ok(_) => break,
                        Err(e) if e.is_retryable() && back.elapsed() < Duration::from_secs(20) => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => panic!("after the outage: {e}"),
                    }
                }
                eprintln!("logged in {:?} after the KDC came back", back.elapsed());
            });
        },
    );
}
