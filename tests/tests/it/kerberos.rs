//! The Kerberos support of the core against a real MIT KDC (tests/scripts/kdc.sh) and a real
//! GSSAPI acceptor: keytab logins, contexts the services accept, renewal, failures by cause
//! and the metrics.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hive_smallfiles_core::kerberos::{Kerberos, KerberosConfig, Mech, ServiceName};
use hive_smallfiles_tests::gss_acceptor::Acceptor;
use hive_smallfiles_tests::kdc::{Kdc, REALM};
use hive_smallfiles_tests::require;

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
