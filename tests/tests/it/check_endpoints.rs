//! The `check` commands of both binaries as processes, against the TLS databases
//! (`tests/scripts/tls-databases.sh`): one line per endpoint naming what was reached and with
//! which authentication and TLS, exit code 0 only when every endpoint works; the untrusted-CA
//! failure named on its line; a world-readable password file warned about (never printed);
//! a Kerberized WebHDFS (SPNEGO-only test server, the test KDC) named with its login
//! principal, its delegation token given back after the probe.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use hive_smallfiles_tests::kdc::Kdc;
use hive_smallfiles_tests::metastore_fixture::{DbKind, FixtureDb, SchemaVersion, unique_db_name};
use hive_smallfiles_tests::require;
use hive_smallfiles_tests::spark;
use hive_smallfiles_tests::tls_databases::{CERT_USER, SSL_USER, TlsDatabases};
use hive_smallfiles_tests::webhdfs_server::security::keytab_acceptor;
use hive_smallfiles_tests::webhdfs_server::{SecurityOptions, ServerOptions, WebHdfsServer};

/// Runs `bin --config.file config check` off the runtime's threads.
async fn check(bin: &'static str, config: &Path) -> (Option<i32>, String, String) {
    let config = config.to_owned();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(bin)
            .arg("--config.file")
            .arg(&config)
            .arg("check")
            .output()
            .expect("run the binary");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn write_password(dir: &Path, password: &str, mode: u32) -> std::path::PathBuf {
    let f = dir.join(format!("pw-{mode:o}"));
    std::fs::write(&f, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_check_names_tls_and_auth_per_endpoint() {
    require!(TlsDatabases::unavailable());
    let t = TlsDatabases::get().unwrap();
    let db = FixtureDb::create_at(
        &t.admin_url(DbKind::Mysql),
        DbKind::Mysql,
        SchemaVersion::Hive3_1,
        &unique_db_name("check_tls"),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Group- and world-readable: warned about at start-up, the check still runs.
    let pw = write_password(dir.path(), SSL_USER.1, 0o644);
    let config = dir.path().join("exporter.toml");
    let write = |ca: &Path| {
        std::fs::write(
            &config,
            format!(
                "[[cluster]]\nname = \"c1\"\n[cluster.metastore]\nurl = \"mysql://{}@127.0.0.1:{}/{}\"\n\
                 password_file = \"{}\"\ntls = \"verify-full\"\nca_file = \"{}\"\nconnect_timeout = \"5s\"\n\
                 [cluster.storage]\ntype = \"local\"\nroot = \"{}\"\n",
                SSL_USER.0,
                t.port(DbKind::Mysql),
                db.db_name(),
                pw.display(),
                ca.display(),
                dir.path().display()
            ),
        )
        .unwrap();
    };
    write(&t.file("ca.crt"));
    let (code, out, err) = check(crate::EXPORTER_BIN, &config).await;
    assert_eq!(code, Some(0), "{out}{err}");
    let want = format!(
        "c1 metastore mysql://hsf_ssl@127.0.0.1:{}/{} tls=verify-full ca={} password=set: OK (schema 3.1.0, catalogs)",
        t.port(DbKind::Mysql),
        db.db_name(),
        t.file("ca.crt").display()
    );
    assert!(out.lines().any(|l| l == want), "want {want:?} in\n{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("c1 storage ") && l.ends_with(" auth=local-files: active")),
        "{out}"
    );
    assert!(
        err.contains("insecure secret file") && err.contains("password file"),
        "the world-readable password file is warned about: {err}"
    );
    assert!(
        !out.contains(SSL_USER.1) && !err.contains(SSL_USER.1),
        "never the password"
    );

    // An untrusted CA: the metastore line fails with the cause, the exit code is 1.
    write(&t.file("other-ca.crt"));
    let (code, out, _) = check(crate::EXPORTER_BIN, &config).await;
    assert_eq!(code, Some(1), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("c1 metastore "))
        .unwrap_or_default();
    assert!(
        line.contains("tls=verify-full")
            && line.contains(": FAILED: TLS to the metastore database")
            && line.contains("not signed by a trusted CA"),
        "{out}"
    );
    db.drop_database().await.unwrap();
}

/// An agent configuration: the PostgreSQL TLS server with a client certificate, a local
/// warehouse, and HiveServer2 at `hs2_port`.
fn agent_config(
    dir: &Path,
    t: &TlsDatabases,
    db: &str,
    password_file: &Path,
    hs2_port: u16,
) -> std::path::PathBuf {
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[[cluster]]\nname = \"c\"\nengine = \"spark\"\n[cluster.metastore]\n\
             url = \"postgres://{}@localhost:{}/{db}\"\npassword_file = \"{}\"\ntls = \"verify-full\"\n\
             ca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"\n\
             [cluster.storage]\ntype = \"local\"\nroot = \"{}\"\n\
             [cluster.hiveserver2]\nhost = \"127.0.0.1\"\nport = {hs2_port}\nuser = \"hsf_test\"\nconnect_timeout = \"5s\"\n",
            CERT_USER.0,
            t.port(DbKind::Postgres),
            password_file.display(),
            t.file("ca.crt").display(),
            t.file("client.crt").display(),
            t.file("client.key").display(),
            dir.display()
        ),
    )
    .unwrap();
    config
}

async fn pg_fixture(t: &TlsDatabases) -> FixtureDb {
    FixtureDb::create_at(
        &t.admin_url(DbKind::Postgres),
        DbKind::Postgres,
        SchemaVersion::Hive2_1,
        &unique_db_name("agent_check"),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_check_reports_every_endpoint_and_fails_on_one() {
    require!(TlsDatabases::unavailable());
    let t = TlsDatabases::get().unwrap();
    let db = pg_fixture(&t).await;
    let dir = tempfile::tempdir().unwrap();
    let pw = write_password(dir.path(), CERT_USER.1, 0o600);
    // Nothing listens on a port just released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = agent_config(dir.path(), &t, db.db_name(), &pw, closed);
    let (code, out, err) = check(crate::AGENT_BIN, &config).await;
    assert_eq!(code, Some(1), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "metastore, storage, hiveserver2:\n{out}");
    assert!(
        lines[0].starts_with(&format!(
            "c metastore postgres://hsf_cert@localhost:{}/",
            t.port(DbKind::Postgres)
        )) && lines[0].contains(" tls=verify-full ca=")
            && lines[0].contains(" client-cert=")
            && lines[0].ends_with(": OK (schema 2.1.0)"),
        "{out}"
    );
    assert!(lines[1].ends_with(" auth=local-files: active"), "{out}");
    assert!(
        lines[2].starts_with(&format!(
            "c hiveserver2 127.0.0.1:{closed} transport=binary tls=off auth=plain user=hsf_test: FAILED: "
        )),
        "{out}"
    );
    assert!(!err.contains("insecure secret file"), "0600 is fine: {err}");
    db.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_check_passes_against_spark() {
    require!(TlsDatabases::unavailable());
    require!(spark::unavailable());
    let t = TlsDatabases::get().unwrap();
    let db = pg_fixture(&t).await;
    let dir = tempfile::tempdir().unwrap();
    let pw = write_password(dir.path(), CERT_USER.1, 0o600);
    let config = agent_config(dir.path(), &t, db.db_name(), &pw, spark::port());
    let (code, out, err) = check(crate::AGENT_BIN, &config).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "c hiveserver2 127.0.0.1:{} transport=binary tls=off auth=plain user=hsf_test: OK (protocol ",
            spark::port()
        )) && l.ends_with(", SELECT 1)")),
        "{out}"
    );
    db.drop_database().await.unwrap();
}

/// Both binaries' `check` of a Kerberized WebHDFS: a SPNEGO-only NameNode (the test server's
/// GSSAPI acceptor with the realm's `HTTP/localhost` keytab) and a plain PostgreSQL
/// MetaStore. The storage line names the login principal; the probe's delegation token, if
/// it took one, is cancelled before the command exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_kerberos_principal_of_webhdfs() {
    require!(Kdc::unavailable());
    let kdc = Kdc::get().unwrap();
    // The children inherit KRB5_CONFIG.
    kdc.apply_env();
    let acceptor = keytab_acceptor(&kdc.http_keytab(), "HTTP/localhost@HSF.TEST").unwrap();
    let srv = WebHdfsServer::start(
        ServerOptions::new()
            .host("localhost")
            .security(SecurityOptions::new(acceptor)),
    )
    .await
    .unwrap();
    let db = FixtureDb::create(
        DbKind::Postgres,
        SchemaVersion::Hive2_1,
        &unique_db_name("check_krb"),
    )
    .await
    .unwrap();
    let c = db.metastore_config();
    let dir = tempfile::tempdir().unwrap();
    let cluster = |extra: &str| {
        format!(
            "[[cluster]]\nname = \"c\"\n{extra}[cluster.metastore]\nurl = \"postgres://{}@{}:{}/{}\"\n\
             [cluster.storage]\ntype = \"webhdfs\"\nnamenodes = [\"{}\"]\nauth = \"kerberos\"\n\
             request_timeout = \"5s\"\nmax_retries = 0\n\
             [cluster.kerberos]\nprincipal = \"{}\"\nkeytab = \"{}\"\n",
            c.user,
            c.host,
            c.port,
            c.database,
            srv.namenode_url(0),
            kdc.client_principal(),
            kdc.client_keytab().display()
        )
    };
    let exporter = dir.path().join("exporter.toml");
    std::fs::write(&exporter, cluster("")).unwrap();
    let agent = dir.path().join("agent.toml");
    std::fs::write(
        &agent,
        format!(
            "audit_log = \"{}\"\n{}",
            dir.path().join("audit.jsonl").display(),
            cluster("engine = \"spark\"\n")
        ),
    )
    .unwrap();
    let want = format!(
        "c storage {} auth=kerberos principal=hsf/localhost@HSF.TEST delegation_tokens=on: active",
        srv.namenode_url(0)
    );
    for (bin, config) in [(crate::EXPORTER_BIN, &exporter), (crate::AGENT_BIN, &agent)] {
        let (code, out, err) = check(bin, config).await;
        assert_eq!(code, Some(0), "{bin}: {out}{err}");
        assert!(
            out.lines().any(|l| l == want),
            "{bin}: want {want:?} in\n{out}{err}"
        );
        assert_eq!(srv.live_tokens(), 0, "{bin}: no token left behind");
        assert_eq!(
            srv.request_count(None, Some("CANCELDELEGATIONTOKEN"), Some(200)),
            // The first request of a SPNEGO handshake is refused (401).
            srv.request_count(None, Some("GETDELEGATIONTOKEN"), Some(200)),
            "{bin}: every token obtained was cancelled"
        );
    }
    assert!(
        srv.auth_count(hive_smallfiles_tests::webhdfs_server::AuthKind::Negotiate) >= 2,
        "each check authenticated over SPNEGO"
    );
    db.drop_database().await.unwrap();
}
