//! The MetaStore readers over TLS against real MariaDB and PostgreSQL servers with TLS
//! (`tests/scripts/tls-databases.sh`): the same snapshot over `verify-full` as over plain TCP,
//! client-certificate logins, and the failures that must fail closed with their cause named
//! (untrusted CA, host-name mismatch, a server without TLS), never retried.

use hive_smallfiles_core::metastore::{
    Metastore, MetastoreConfig, MetastoreError, MetastoreSnapshot, TlsMode, TlsSettings,
};
use hive_smallfiles_tests::metastore_fixture::{
    DbKind, FixtureDb, FixtureTable, Format, SchemaVersion, unique_db_name,
};
use hive_smallfiles_tests::require;
use hive_smallfiles_tests::tls_databases::{CERT_USER, MISMATCHED_HOST, SSL_USER, TlsDatabases};

const KINDS: [DbKind; 2] = [DbKind::Mysql, DbKind::Postgres];

/// Host names the TLS connection uses: the IP address for MySQL, the DNS name for
/// PostgreSQL, so that both kinds of subjectAltName are checked.
fn tls_host(kind: DbKind) -> &'static str {
    match kind {
        DbKind::Mysql => "127.0.0.1",
        DbKind::Postgres => "localhost",
    }
}

async fn fixture(t: &TlsDatabases, kind: DbKind, prefix: &str) -> FixtureDb {
    let db = FixtureDb::create_at(
        &t.admin_url(kind),
        kind,
        SchemaVersion::Hive3_1,
        &unique_db_name(prefix),
    )
    .await
    .expect("fixture on the TLS server");
    let mut orders = FixtureTable::new(
        "sales",
        "orders",
        Format::Parquet,
        "hdfs://ns1/wh/sales.db/orders",
    )
    .partitioned_by(&[("dt", "string"), ("hr", "int")])
    .param("numFiles", "12");
    for day in 1..=4 {
        for hr in 0..5 {
            orders = orders.partition(&[&format!("2024-01-0{day}"), &hr.to_string()]);
        }
    }
    db.insert(&[
        orders,
        FixtureTable::new(
            "sales",
            "plain",
            Format::Text,
            "hdfs://ns1/wh/sales.db/plain",
        ),
        FixtureTable::new("hr", "people", Format::Orc, "hdfs://ns1/wh/hr.db/people").acid(),
        FixtureTable::new("sales", "v", Format::Text, "").view("select 1"),
    ])
    .await
    .expect("insert");
    db
}

async fn snapshot(cfg: &MetastoreConfig) -> Result<MetastoreSnapshot, MetastoreError> {
    let ms = Metastore::connect(cfg).await?;
    let snap = ms.read_snapshot().await;
    ms.close().await;
    snap
}

/// The TLS failure of connecting with `cfg`, asserted to be one (and not retryable).
async fn tls_failure(cfg: &MetastoreConfig) -> String {
    let err = Metastore::connect(cfg)
        .await
        .map(|_| ())
        .expect_err("must fail closed");
    assert!(
        matches!(err, MetastoreError::Tls { .. }),
        "a TLS error, not {err:?}"
    );
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(err.metric_label(), "tls");
    err.to_string()
}

#[tokio::test]
async fn verify_full_reads_the_same_snapshot_as_plain_tcp() {
    require!(TlsDatabases::unavailable());
    let t = TlsDatabases::get().unwrap();
    for kind in KINDS {
        let db = fixture(&t, kind, "tls_same").await;
        let plain = snapshot(&db.metastore_config()).await.expect("plain TCP");
        let tls_cfg = t.config(
            kind,
            db.db_name(),
            SSL_USER,
            tls_host(kind),
            t.verify_full(),
        );
        let tls = snapshot(&tls_cfg).await.expect("verify-full");
        assert_eq!(plain.tables.len(), 4, "{kind:?}");
        assert_eq!(
            plain
                .tables
                .iter()
                .map(|t| t.partitions.len())
                .sum::<usize>(),
            20
        );
        assert_eq!(tls.schema, plain.schema, "{kind:?}");
        assert_eq!(tls.tables, plain.tables, "{kind:?}");
        // The TLS-only login cannot use plain TCP: the numbers above did come over TLS.
        let no_tls = MetastoreConfig {
            tls: TlsSettings::default(),
            ..tls_cfg.clone()
        };
        let err = Metastore::connect(&no_tls)
            .await
            .map(|_| ())
            .expect_err("plain TCP refused for the TLS login");
        assert!(!err.is_retryable(), "{err}");
        db.drop_database().await.unwrap();
    }
}

#[tokio::test]
async fn client_certificate_login() {
    require!(TlsDatabases::unavailable());
    let t = TlsDatabases::get().unwrap();
    for kind in KINDS {
        let db = fixture(&t, kind, "tls_cert").await;
        let with_cert = TlsSettings {
            client_cert: Some(t.client_cert()),
            ..t.verify_full()
        };
        let cfg = t.config(kind, db.db_name(), CERT_USER, tls_host(kind), with_cert);
        let snap = snapshot(&cfg).await.expect("client certificate login");
        assert_eq!(snap.tables.len(), 4, "{kind:?}");
        // Without the certificate the server refuses the login: an error that names it and
        // is not retried.
        let without = MetastoreConfig {
            tls: t.verify_full(),
            ..cfg
        };
        let err = Metastore::connect(&without)
            .await
            .map(|_| ())
            .expect_err("login without a client certificate");
        assert!(!err.is_retryable(), "{kind:?}: {err}");
        let text = err.to_string();
        match kind {
            DbKind::Mysql => assert!(text.contains("Access denied"), "{text}"),
            DbKind::Postgres => assert!(text.contains("certificate"), "{text}"),
        }
        db.drop_database().await.unwrap();
    }
}

#[tokio::test]
async fn untrusted_ca_and_mismatched_host_fail_closed() {
    require!(TlsDatabases::unavailable());
    let t = TlsDatabases::get().unwrap();
    for kind in KINDS {
        let other_ca = TlsSettings {
            ca_file: Some(t.file("other-ca.crt")),
            ..t.verify_full()
        };
        let cfg = t.config(kind, "postgres", SSL_USER, tls_host(kind), other_ca);
        let text = tls_failure(&cfg).await;
        assert!(
            text.contains("not signed by a trusted CA") && text.contains("other-ca.crt"),
            "{kind:?}: {text}"
        );

        let cfg = t.config(kind, "postgres", SSL_USER, MISMATCHED_HOST, t.verify_full());
        let text = tls_failure(&cfg).await;
        assert!(
            text.contains(&format!("does not match host \"{MISMATCHED_HOST}\"")),
            "{kind:?}: {text}"
        );
        assert!(!text.contains(SSL_USER.1), "no password in errors: {text}");
    }
    // verify-ca (PostgreSQL) checks the chain only: the mismatched host is accepted, the
    // untrusted CA is not.
    let verify_ca = TlsSettings {
        mode: TlsMode::VerifyCa,
        ..t.verify_full()
    };
    let cfg = t.config(
        DbKind::Postgres,
        "postgres",
        SSL_USER,
        MISMATCHED_HOST,
        verify_ca.clone(),
    );
    Metastore::connect(&cfg)
        .await
        .expect("verify-ca ignores the host name")
        .close()
        .await;
    let cfg = MetastoreConfig {
        tls: TlsSettings {
            ca_file: Some(t.file("other-ca.crt")),
            ..verify_ca
        },
        ..cfg
    };
    assert!(
        tls_failure(&cfg)
            .await
            .contains("not signed by a trusted CA")
    );
}

#[tokio::test]
async fn require_accepts_an_untrusted_certificate() {
    require!(TlsDatabases::unavailable());
    let t = TlsDatabases::get().unwrap();
    let require = TlsSettings {
        mode: TlsMode::Require,
        ..TlsSettings::default()
    };
    for kind in KINDS {
        let db = fixture(&t, kind, "tls_require").await;
        // The test CA is unknown to the client: to it the server's certificate is as good as
        // self-signed.
        let cfg = t.config(
            kind,
            db.db_name(),
            SSL_USER,
            MISMATCHED_HOST,
            require.clone(),
        );
        let snap = snapshot(&cfg).await.expect("require");
        assert_eq!(snap.tables.len(), 4, "{kind:?}");
        db.drop_database().await.unwrap();
    }
}

/// A PostgreSQL server with `ssl = off` answers the SSLRequest with `N` (protocol docs,
/// "SSL Session Encryption"); this listener does only that.
async fn pg_without_tls() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut request = [0u8; 8];
            if s.read_exact(&mut request).await.is_ok()
                && request == [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]
            {
                let _ = s.write_all(b"N").await;
            }
        }
    });
    port
}

#[tokio::test]
async fn a_server_without_tls_fails_clearly() {
    require!(TlsDatabases::unavailable());
    let t = TlsDatabases::get().unwrap();
    let require = TlsSettings {
        mode: TlsMode::Require,
        ..TlsSettings::default()
    };
    // The distribution's MariaDB of the other tests runs without TLS.
    let mysql = MetastoreConfig {
        port: 3306,
        user: "root".to_owned(),
        password: None,
        ..t.config(
            DbKind::Mysql,
            "mysql",
            SSL_USER,
            "127.0.0.1",
            require.clone(),
        )
    };
    let text = tls_failure(&mysql).await;
    assert!(text.contains("does not offer TLS"), "{text}");
    let pg = MetastoreConfig {
        port: pg_without_tls().await,
        ..t.config(DbKind::Postgres, "postgres", SSL_USER, "127.0.0.1", require)
    };
    let text = tls_failure(&pg).await;
    assert!(text.contains("does not offer TLS"), "{text}");
}
