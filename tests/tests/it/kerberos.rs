//! The Kerberos support of the core against a real MIT KDC (tests/scripts/kdc.sh) and a real
//! GSSAPI acceptor: keytab logins, contexts the services accept, renewal, failures by cause
//! and the metrics.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hive_smallfiles_core::exposition::Format;
use hive_smallfiles_core::kerberos::{Kerberos, KerberosConfig, KerberosError, Mech, ServiceName};
use hive_smallfiles_tests::gss_acceptor::Acceptor;
use hive_smallfiles_tests::kdc::{Kdc, REALM};
use hive_smallfiles_tests::{prom, require};

fn kdc() -> Option<Kdc> {
    let kdc = Kdc::get().ok()?;
    kdc.apply_env();
    Some(kdc)
}

/// Logs in from the keytab without kinit; SPNEGO and raw Kerberos 5 contexts are accepted
/// by the service's real acceptor, which sees our principal; SASL-style wrap/unwrap work both
/// ways (integrity only, and encrypted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keytab_login_and_contexts_accepted() {
    require!(Kdc::unavailable());
    let kdc = kdc().unwrap();
    let krb = Kerberos::shared(&KerberosConfig::keytab(
        kdc.client_principal(),
        kdc.client_keytab(),
    ));
    assert_eq!(krb.principal().as_deref(), Some("hsf/localhost@HSF.TEST"));

    let info = krb.ensure_login().await.unwrap();
    assert_eq!(info.principal, kdc.client_principal());
    // The KDC's max_life for this principal is 10 h.
    let life = info.expiry.duration_since(SystemTime::now()).unwrap();
    assert!(
        life > Duration::from_secs(10 * 3600 - 30) && life <= Duration::from_secs(10 * 3600),
        "{life:?}"
    );

    // HTTP Negotiate (SPNEGO) to HTTP/localhost.
    let header = krb.negotiate_header("LocalHost").await.unwrap();
    let token = header.strip_prefix("Negotiate ").expect(&header);
    let token = base64::engine::general_purpose::STANDARD
        .decode(token)
        .unwrap();
    let http = Acceptor::new(&kdc.http_keytab(), &format!("HTTP/localhost@{REALM}")).unwrap();
    let (_, client) = http.accept(&token).unwrap();
    assert_eq!(client.as_deref(), Some("hsf/localhost@HSF.TEST"));

    // SASL GSSAPI (raw Kerberos 5) to hive/_HOST, mutual authentication, then a security layer.
    let hive = Acceptor::new(&kdc.hive_keytab(), &format!("hive/localhost@{REALM}")).unwrap();
    let target = ServiceName::from_pattern(&format!("hive/_HOST@{REALM}"), "localhost").unwrap();
    let (mut ctx, token) = krb.init_context(&target, Mech::Krb5).await.unwrap();
    assert!(!ctx.is_complete());
    let mut server = hive.context();
    let (reply, client) = server.step(&token).unwrap();
    assert_eq!(client.as_deref(), Some("hsf/localhost@HSF.TEST"));
    assert_eq!(
        ctx.step(&reply.expect("mutual authentication token"))
            .unwrap(),
        None
    );
    assert!(ctx.is_complete());
    for encrypt in [false, true] {
        let sealed = ctx.wrap(encrypt, b"hello hive").unwrap();
        assert_eq!(server.unwrap(&sealed).unwrap(), b"hello hive");
        let back = server.wrap(encrypt, b"hello client").unwrap();
        assert_eq!(ctx.unwrap(&back).unwrap(), b"hello client");
    }
    // A token the client did not make is refused by the acceptor.
    assert!(http.accept(b"\x60\x03not a token").is_err());
}

/// The exporter's `/metrics` (the real registration) as samples.
fn exporter_metrics() -> (String, Vec<prom::Sample>) {
    let text = hive_smallfiles_exporter::metrics::Metrics::new().render(Format::Text);
    let samples = prom::parse(&text);
    (text, samples)
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Polls `check` every 100 ms until it is true; false after `limit`.
async fn wait_for(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn quick(mut cfg: KerberosConfig) -> KerberosConfig {
    cfg.retry_min = Duration::from_millis(100);
    cfg.retry_max = Duration::from_millis(400);
    cfg
}

/// The expiry metric is the ticket's end time (the KDC's max_life of 10 h after the login),
/// logins are counted, and both binaries' `/metrics` stay clean for promtool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_metric_is_the_tickets_end_time() {
    require!(Kdc::unavailable());
    let kdc = kdc().unwrap();
    let krb = Kerberos::shared(&KerberosConfig::keytab(
        kdc.client_principal(),
        kdc.client_keytab(),
    ));
    let info = krb.ensure_login().await.unwrap();
    let life = info.expiry.duration_since(info.acquired).unwrap();
    assert!(
        life.abs_diff(Duration::from_secs(10 * 3600)) <= Duration::from_secs(2),
        "{life:?}"
    );

    let (text, samples) = exporter_metrics();
    let p = [("principal", "hsf/localhost@HSF.TEST")];
    let expiry = prom::value(
        &samples,
        "hive_exporter_kerberos_ticket_expiry_timestamp_seconds",
        &p,
    )
    .expect(&text);
    assert!(
        (expiry - unix(info.expiry)).abs() <= 1.0,
        "{expiry} vs {:?}",
        info.expiry
    );
    assert_eq!(
        prom::value(&samples, "hive_exporter_kerberos_logins_total", &p),
        Some(1.0)
    );
    assert_eq!(prom::promtool_check_metrics(&text), "", "{text}");

    let failure = quick(KerberosConfig::keytab(
        kdc.other_principal(),
        kdc.client_keytab(),
    ));
    Kerberos::shared(&failure).ensure_login().await.unwrap_err();
    let agent = hive_smallfiles_agent::metrics::AgentMetrics::new().render(Format::Text);
    let samples = prom::parse(&agent);
    assert_eq!(
        prom::value(
            &samples,
            "hive_merge_kerberos_login_failures_total",
            &[
                ("principal", "hsf-other@HSF.TEST"),
                ("reason", "principal_not_in_keytab")
            ]
        ),
        Some(1.0),
        "{agent}"
    );
    assert!(
        prom::value(
            &samples,
            "hive_merge_kerberos_ticket_expiry_timestamp_seconds",
            &p
        )
        .is_some()
    );
    assert_eq!(prom::promtool_check_metrics(&agent), "", "{agent}");
}

/// With 20-second tickets the login renews in the background before the ticket ends, and
/// contexts keep being accepted after the first ticket has expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_across_ticket_expiry() {
    require!(Kdc::unavailable());
    let kdc = kdc().unwrap();
    let krb = Kerberos::shared(&quick(KerberosConfig::keytab(
        kdc.tiny_principal(),
        kdc.tiny_keytab(),
    )));
    let first = krb.ensure_login().await.unwrap();
    let life = first.expiry.duration_since(first.acquired).unwrap();
    assert!(
        life <= Duration::from_secs(20) && life >= Duration::from_secs(18),
        "{life:?}"
    );
    let http = Acceptor::new(&kdc.http_keytab(), &format!("HTTP/localhost@{REALM}")).unwrap();
    let p = [("principal", "hsf-tiny@HSF.TEST")];

    // Renewed by the background task at 80 % (16 s), before the first ticket ends.
    let renewed = wait_for(Duration::from_secs(25), async || {
        prom::value(
            &exporter_metrics().1,
            "hive_exporter_kerberos_logins_total",
            &p,
        ) == Some(2.0)
    })
    .await;
    assert!(renewed, "no renewal: {}", exporter_metrics().0);
    assert!(
        SystemTime::now() < first.expiry,
        "renewed only after the ticket expired"
    );
    let second = krb.ensure_login().await.unwrap();
    assert!(second.expiry > first.expiry);
    // At 80 % of the lifetime (as Hadoop's UGI), not earlier.
    let after = second.acquired.duration_since(first.acquired).unwrap();
    let due = life * 4 / 5;
    assert!(
        after >= due && after <= due + Duration::from_secs(2),
        "renewed after {after:?}, due {due:?}"
    );
    let expiry = prom::value(
        &exporter_metrics().1,
        "hive_exporter_kerberos_ticket_expiry_timestamp_seconds",
        &p,
    );
    assert!((expiry.unwrap() - unix(second.expiry)).abs() <= 1.0);

    // After the first ticket's end, contexts still work.
    while SystemTime::now() < first.expiry + Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let header = krb.negotiate_header("localhost").await.unwrap();
    let token = base64::engine::general_purpose::STANDARD
        .decode(header.strip_prefix("Negotiate ").unwrap())
        .unwrap();
    let (_, client) = http.accept(&token).unwrap();
    assert_eq!(client.as_deref(), Some("hsf-tiny@HSF.TEST"));
}

/// A credential cache made by kinit is used as it is; once its ticket has expired, logins
/// fail with "ticket expired" (not retryable) and are counted; a missing cache is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_credential_cache_is_named() {
    require!(Kdc::unavailable());
    let kdc = kdc().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = format!("FILE:{}", dir.path().join("cc").display());
    let kinit = std::process::Command::new("kinit")
        .args(["-k", "-t"])
        .arg(kdc.tiny_keytab())
        .args(["-c", &cache, &kdc.tiny_principal()])
        .status()
        .unwrap();
    assert!(kinit.success());
    let krb = Kerberos::shared(&quick(KerberosConfig::ccache(None, cache.clone())));
    let info = krb.ensure_login().await.unwrap();
    assert_eq!(info.principal, "hsf-tiny@HSF.TEST");
    assert_eq!(krb.principal().as_deref(), Some("hsf-tiny@HSF.TEST"));
    krb.negotiate_header("localhost").await.unwrap();
    // A cache of another principal than the configured one is named as such.
    let e = Kerberos::shared(&KerberosConfig::ccache(
        Some(kdc.other_principal()),
        cache.clone(),
    ))
    .ensure_login()
    .await
    .unwrap_err();
    assert_eq!(e.reason(), "ccache", "{e}");
    assert!(e.to_string().contains("does not match"), "{e}");

    while SystemTime::now() < info.expiry + Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut last = None;
    let failed = wait_for(Duration::from_secs(10), async || {
        last = krb.ensure_login().await.err();
        last.is_some()
    })
    .await;
    assert!(failed, "an expired cache still logs in");
    let e = last.unwrap();
    assert_eq!(e.reason(), "expired", "{e}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("expired"), "{e}");
    let (text, samples) = exporter_metrics();
    let failures = prom::value(
        &samples,
        "hive_exporter_kerberos_login_failures_total",
        &[("principal", cache.as_str()), ("reason", "expired")],
    );
    assert!(failures >= Some(1.0), "{text}");

    let missing = format!("FILE:{}", dir.path().join("none").display());
    let e = Kerberos::shared(&KerberosConfig::ccache(None, missing.clone()))
        .ensure_login()
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "ccache", "{e}");
    assert!(e.to_string().contains(&missing), "{e}");
}

/// A principal the keytab has no key for, a missing keytab and a file that is not a keytab
/// are each named, not retryable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_principal_or_keytab_is_named() {
    require!(Kdc::unavailable());
    let kdc = kdc().unwrap();
    let e = Kerberos::shared(&quick(KerberosConfig::keytab(
        kdc.other_principal(),
        kdc.client_keytab(),
    )))
    .ensure_login()
    .await
    .unwrap_err();
    assert!(
        matches!(e, KerberosError::PrincipalNotInKeytab { .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("hsf-other@HSF.TEST") && msg.contains("it holds: hsf/localhost@HSF.TEST"),
        "{msg}"
    );
    assert!(!e.is_retryable());

    let missing = kdc.path().join("missing.keytab");
    let e = Kerberos::shared(&quick(KerberosConfig::keytab(
        kdc.client_principal(),
        &missing,
    )))
    .ensure_login()
    .await
    .unwrap_err();
    assert_eq!(e.reason(), "keytab", "{e}");
    assert!(
        e.to_string().contains("no such file") && e.to_string().contains("missing.keytab"),
        "{e}"
    );

    let e = Kerberos::shared(&quick(KerberosConfig::keytab(
        kdc.client_principal(),
        kdc.krb5_conf(),
    )))
    .ensure_login()
    .await
    .unwrap_err();
    assert!(e.to_string().contains("not a keytab"), "{e}");
    assert!(!e.is_retryable());
}

/// In a realm of its own: a keytab whose principal was re-keyed since (pre-authentication
/// fails: wrong key), a principal the KDC no longer knows, and a service it never knew.
#[test]
fn rekeyed_or_deleted_principal_is_named() {
    require!(Kdc::unavailable());
    Kdc::in_private_realm("kerberos::rekeyed_or_deleted_principal_is_named", |kdc| {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let old = dir.path().join("old.keytab");
            std::fs::copy(kdc.other_keytab(), &old).unwrap();
            kdc.kadmin("cpw -randkey hsf-other@HSF.TEST").unwrap();
            let e = Kerberos::shared(&quick(KerberosConfig::keytab(kdc.other_principal(), &old)))
                .ensure_login()
                .await
                .unwrap_err();
            assert_eq!(e.reason(), "preauth_failed", "{e}");
            assert!(!e.is_retryable());

            kdc.kadmin("delprinc -force hsf-short@HSF.TEST").unwrap();
            let e = Kerberos::shared(&quick(KerberosConfig::keytab(
                kdc.short_principal(),
                kdc.short_keytab(),
            )))
            .ensure_login()
            .await
            .unwrap_err();
            assert_eq!(e.reason(), "principal_unknown", "{e}");
            assert!(e.to_string().contains("hsf-short@HSF.TEST"), "{e}");

            let krb = Kerberos::shared(&KerberosConfig::keytab(
                kdc.client_principal(),
                kdc.client_keytab(),
            ));
            let e = krb
                .init_context(
                    &ServiceName::Principal(format!("nosuch/localhost@{REALM}")),
                    Mech::Krb5,
                )
                .await
                .unwrap_err();
            assert!(matches!(e, KerberosError::ServiceUnknown { .. }), "{e}");
        });
    });
}

/// In a realm of its own: with the KDC stopped, service tickets and new logins fail with
/// "KDC unreachable" (retryable, counted, retried in the background, no panic); once the KDC
/// is back, both recover without a restart.
#[test]
fn kdc_outage_is_counted_and_recovered_from() {
    require!(Kdc::unavailable());
    Kdc::in_private_realm(
        "kerberos::kdc_outage_is_counted_and_recovered_from",
        |kdc| {
            runtime().block_on(async {
                let hive =
                    ServiceName::from_pattern(&format!("hive/_HOST@{REALM}"), "localhost").unwrap();
                let a = Kerberos::shared(&KerberosConfig::keytab(
                    kdc.client_principal(),
                    kdc.client_keytab(),
                ));
                a.ensure_login().await.unwrap();
                kdc.stop();

                let e = a.init_context(&hive, Mech::Krb5).await.unwrap_err();
                assert_eq!(e.reason(), "kdc_unreachable", "{e}");
                assert!(e.is_retryable());
                let b = Kerberos::shared(&quick(KerberosConfig::keytab(
                    kdc.short_principal(),
                    kdc.short_keytab(),
                )));
                let e = b.ensure_login().await.unwrap_err();
                assert!(
                    matches!(e, KerberosError::KdcUnreachable { .. }) && e.is_retryable(),
                    "{e}"
                );
                let failures = || {
                    prom::value(
                        &exporter_metrics().1,
                        "hive_exporter_kerberos_login_failures_total",
                        &[
                            ("principal", "hsf-short@HSF.TEST"),
                            ("reason", "kdc_unreachable"),
                        ],
                    )
                    .unwrap_or(0.0)
                };
                // The background task retries on its own.
                assert!(
                    wait_for(Duration::from_secs(5), async || failures() >= 3.0).await,
                    "{}",
                    exporter_metrics().0
                );

                kdc.start().unwrap();
                let back = Instant::now();
                assert!(
                    wait_for(Duration::from_secs(5), async || b
                        .ensure_login()
                        .await
                        .is_ok())
                    .await
                );
                eprintln!("login back {:?} after the KDC", back.elapsed());
                let (_, token) = a.init_context(&hive, Mech::Krb5).await.unwrap();
                let acceptor =
                    Acceptor::new(&kdc.hive_keytab(), &format!("hive/localhost@{REALM}")).unwrap();
                assert_eq!(
                    acceptor.accept(&token).unwrap().1.as_deref(),
                    Some("hsf/localhost@HSF.TEST")
                );
            });
        },
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
