//! The agent's HiveServer2 client against Kerberized Spark Thrift Servers
//! (`tests/scripts/spark-thrift-secure.sh`, KDC of `tests/scripts/kdc.sh`, realm HSF.TEST,
//! service principal `hive/localhost@HSF.TEST`): the binary transport with SASL GSSAPI and the
//! `auth-conf` security layer over TLS (test CA; the certificate names `localhost` only), and
//! the HTTP transport over TLS with `Authorization: Negotiate` and the login cookie. The client logs in
//! as `hsf/localhost@HSF.TEST` from its keytab; no password anywhere.
//!
//! Both servers are started once (tests/run.sh starts them in the background; the first test
//! otherwise) and shared; each test works in its own database. Missing servers or KDC skip
//! (`require!`; with `CI=true` a skip fails).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hive_smallfiles_agent::hiveserver2::{
    Hs2Auth, Hs2Config, Hs2Error, Hs2Kerberos, Hs2Session, Hs2Transport, Qop, tls_client_config,
};
use hive_smallfiles_core::kerberos::{Kerberos, KerberosConfig};

use hive_smallfiles_tests::kdc::Kdc;
use hive_smallfiles_tests::require;
use hive_smallfiles_tests::spark::{self, secure_ports, secure_tls_dir};

const PRINCIPAL: &str = "hive/_HOST@HSF.TEST";

fn ca_file() -> PathBuf {
    secure_tls_dir().join("ca.pem")
}

fn login(kdc: &Kdc) -> Kerberos {
    Kerberos::shared(&KerberosConfig::keytab(
        kdc.client_principal(),
        kdc.client_keytab(),
    ))
}

fn kerberos(kdc: &Kdc, qop: Qop) -> Hs2Kerberos {
    Hs2Kerberos {
        login: login(kdc),
        principal: PRINCIPAL.to_owned(),
        qop,
    }
}

/// The binary endpoint: Kerberos, `auth-conf`, TLS trusting the test CA, host `localhost`.
fn binary(kdc: &Kdc) -> Hs2Config {
    let mut cfg = Hs2Config::new("localhost", secure_ports().0, "hsf");
    cfg.auth = Hs2Auth::Kerberos;
    cfg.kerberos = Some(kerberos(kdc, Qop::AuthConf));
    cfg.tls = Some(tls_client_config(Some(&ca_file())).expect("test CA"));
    cfg.connect_timeout = Duration::from_secs(60);
    cfg.poll_interval = Duration::from_millis(50);
    cfg
}

/// The HTTP endpoint: Kerberos (`Negotiate`), HTTPS trusting the test CA, path `cliservice`.
fn http(kdc: &Kdc) -> Hs2Config {
    let mut cfg = Hs2Config::new("localhost", secure_ports().1, "hsf");
    cfg.auth = Hs2Auth::Kerberos;
    cfg.kerberos = Some(kerberos(kdc, Qop::Auth));
    cfg.transport = Hs2Transport::Http {
        path: "cliservice".into(),
    };
    cfg.tls = Some(tls_client_config(Some(&ca_file())).expect("test CA"));
    cfg.connect_timeout = Duration::from_secs(60);
    cfg.poll_interval = Duration::from_millis(50);
    cfg
}

/// The realm and both servers, or why not.
fn setup() -> Result<Kdc, String> {
    let kdc = Kdc::get()?;
    kdc.apply_env();
    if let Some(why) = spark::secure_unavailable() {
        return Err(why);
    }
    Ok(kdc)
}

fn unavailable() -> Option<String> {
    setup().err()
}

async fn open(cfg: &Hs2Config) -> Hs2Session {
    Hs2Session::open(cfg)
        .await
        .unwrap_or_else(|e| panic!("open a session on {}:{}: {e}", cfg.host, cfg.port))
}

async fn rows(s: &mut Hs2Session, sql: &str) -> Vec<Vec<String>> {
    spark::query(s, sql).await
}

/// `SELECT 1`, then a real query with a metastore table: create, insert, aggregate, drop; and
/// a result of several MB (many wrapped frames on the binary transport).
async fn exercise(s: &mut Hs2Session, tag: &str) {
    assert_eq!(rows(s, "SELECT 1").await, [["1"]]);
    let db = format!("hsf_secure_{tag}_{}", std::process::id());
    spark::exec(s, &format!("DROP DATABASE IF EXISTS {db} CASCADE")).await;
    spark::exec(s, &format!("CREATE DATABASE {db}")).await;
    spark::exec(
        s,
        &format!("CREATE TABLE {db}.t (id INT, name STRING) STORED AS TEXTFILE"),
    )
    .await;
    spark::exec(
        s,
        &format!("INSERT INTO {db}.t VALUES (1, 'a'), (2, 'b'), (3, 'c')"),
    )
    .await;
    assert_eq!(
        rows(
            s,
            &format!("SELECT count(*), sum(id), max(name) FROM {db}.t")
        )
        .await,
        [["3", "6", "c"]]
    );
    let big = rows(s, "SELECT id, repeat('x', 200) FROM range(20000)").await;
    assert_eq!(big.len(), 20000);
    assert_eq!(big[19999][0], "19999");
    spark::exec(s, &format!("DROP DATABASE {db} CASCADE")).await;
}

#[tokio::test]
async fn binary_kerberos_auth_conf_over_tls_runs_queries() {
    require!(unavailable());
    let kdc = setup().unwrap();
    let t0 = Instant::now();
    let mut s = open(&binary(&kdc)).await;
    eprintln!(
        "binary+GSSAPI+auth-conf+TLS session opened in {:.1?}",
        t0.elapsed()
    );
    assert_eq!(s.http_authentications(), None);
    let t0 = Instant::now();
    exercise(&mut s, "bin").await;
    eprintln!("queries in {:.1?}", t0.elapsed());
    s.close().await.unwrap();
}

#[tokio::test]
async fn http_kerberos_runs_queries_and_reuses_the_login_cookie() {
    require!(unavailable());
    let kdc = setup().unwrap();
    let mut s = open(&http(&kdc)).await;
    // OpenSession carried the Negotiate header; the server's cookie replaced it afterwards.
    assert_eq!(s.http_authentications(), Some(1));
    exercise(&mut s, "http").await;
    assert_eq!(
        s.http_authentications(),
        Some(1),
        "every request after the first must use the login cookie"
    );
    s.close().await.unwrap();
}

#[tokio::test]
async fn a_qop_the_server_does_not_offer_is_refused_clearly() {
    require!(unavailable());
    let kdc = setup().unwrap();
    for qop in [Qop::Auth, Qop::AuthInt] {
        let mut cfg = binary(&kdc);
        cfg.kerberos = Some(kerberos(&kdc, qop));
        let e = Hs2Session::open(&cfg).await.unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, Hs2Error::Authentication(_)), "{e:?}");
        assert!(
            m.contains("auth-conf") && m.contains(&format!("{:?}", qop.name())),
            "{m}"
        );
    }
}

#[tokio::test]
async fn a_wrong_service_principal_fails_clearly() {
    require!(unavailable());
    let kdc = setup().unwrap();
    // A principal the KDC does not know.
    for mut cfg in [binary(&kdc), http(&kdc)] {
        if let Some(k) = &mut cfg.kerberos {
            k.principal = "hive/hs2.invalid@HSF.TEST".into();
        }
        let e = Hs2Session::open(&cfg).await.unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, Hs2Error::Kerberos { .. }), "{e:?}");
        assert!(m.contains("hive/hs2.invalid@HSF.TEST"), "{m}");
        assert!(!e.is_retryable(), "{e:?}");
    }
    // A principal the KDC knows but the server has no key for: the server refuses the token.
    for mut cfg in [binary(&kdc), http(&kdc)] {
        if let Some(k) = &mut cfg.kerberos {
            k.principal = "HTTP/_HOST@HSF.TEST".into();
        }
        let e = Hs2Session::open(&cfg).await.unwrap_err();
        assert!(matches!(e, Hs2Error::Authentication(_)), "{e:?}");
        assert!(
            e.to_string().contains("HTTP/localhost@HSF.TEST")
                || e.to_string().contains("HTTP/_HOST"),
            "{e}"
        );
        assert!(e.to_string().contains("kerberos_principal"), "{e}");
    }
}

#[tokio::test]
async fn tls_with_an_untrusted_or_mismatched_certificate_fails_closed() {
    require!(unavailable());
    let kdc = setup().unwrap();
    let mut untrusted = binary(&kdc);
    untrusted.tls = Some(tls_client_config(Some(&secure_tls_dir().join("other-ca.pem"))).unwrap());
    let e = Hs2Session::open(&untrusted).await.unwrap_err();
    assert!(matches!(e, Hs2Error::Tls(_)), "{e:?}");
    assert!(e.to_string().contains("not trusted"), "{e}");
    assert!(!e.is_retryable());
    // Without ca_file only the public roots are trusted.
    let mut public_roots = binary(&kdc);
    public_roots.tls = Some(tls_client_config(None).unwrap());
    let e = Hs2Session::open(&public_roots).await.unwrap_err();
    assert!(e.to_string().contains("not trusted"), "{e}");
    // The certificate names `localhost`, not 127.0.0.1.
    let mut mismatched = binary(&kdc);
    mismatched.host = "127.0.0.1".into();
    let e = Hs2Session::open(&mismatched).await.unwrap_err();
    assert!(matches!(e, Hs2Error::Tls(_)), "{e:?}");
    assert!(
        e.to_string()
            .contains("not valid for the name \"127.0.0.1\""),
        "{e}"
    );
    // TLS to a server without SSL, and plain TCP to a server with SSL: errors, not hangs.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut s, _)) = plain.accept().await {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    for mut tls_to_plain in [binary(&kdc), http(&kdc)] {
        tls_to_plain.port = plain_port;
        tls_to_plain.connect_timeout = Duration::from_secs(20);
        let e = Hs2Session::open(&tls_to_plain).await.unwrap_err();
        assert!(matches!(e, Hs2Error::Tls(_)), "{e:?}");
        assert!(e.to_string().contains("did not answer with TLS"), "{e}");
    }
    let mut plain_to_tls = binary(&kdc);
    plain_to_tls.tls = None;
    plain_to_tls.connect_timeout = Duration::from_secs(20);
    let e = Hs2Session::open(&plain_to_tls).await.unwrap_err();
    assert!(matches!(e, Hs2Error::Tls(_)), "{e:?}");
    assert!(e.to_string().contains("set tls = true"), "{e}");
}

/// The KDC stops after the sessions were set up: the open sessions keep working (the binary
/// session's context needs no KDC, the HTTP session uses its cookie), and a new session either
/// works from the cached service ticket or fails with a retryable Kerberos error. Runs alone
/// (`.config/nextest.toml`: names containing `kdc_down`), as every other Kerberos test would
/// find the KDC down meanwhile.
#[tokio::test]
async fn open_sessions_survive_kdc_down() {
    require!(unavailable());
    let kdc = setup().unwrap();
    let mut b = open(&binary(&kdc)).await;
    let mut h = open(&http(&kdc)).await;
    struct Restart<'a>(&'a Kdc);
    impl Drop for Restart<'_> {
        fn drop(&mut self) {
            self.0.start().expect("restart the KDC");
        }
    }
    let restart = Restart(&kdc);
    kdc.stop();
    assert_eq!(rows(&mut b, "SELECT 2").await, [["2"]]);
    assert_eq!(rows(&mut h, "SELECT 3").await, [["3"]]);
    assert_eq!(h.http_authentications(), Some(1));
    match Hs2Session::open(&binary(&kdc)).await {
        Ok(s) => s.close().await.unwrap(),
        Err(e) => assert!(
            matches!(
                e,
                Hs2Error::Kerberos {
                    retryable: true,
                    ..
                }
            ),
            "{e:?}"
        ),
    }
    drop(restart);
    b.close().await.unwrap();
    h.close().await.unwrap();
}

/// What the scripted SASL GSSAPI server saw.
#[derive(Debug)]
struct Seen {
    client: String,
    chosen: u8,
    client_max: u32,
    first_frame_plain: bool,
    first_frame: Vec<u8>,
}

/// A Thrift SASL GSSAPI server written from RFC 4752 and Thrift's `TSaslTransport`, with the
/// real GSSAPI acceptor of `hive/localhost@HSF.TEST`: negotiates, offering the layers of
/// `offer`, then reads the client's first frame (its OpenSession request), unwrapping it with
/// a layer, and closes the connection.
fn sasl_gssapi_server(
    kdc: &Kdc,
    offer: u8,
) -> (u16, std::thread::JoinHandle<Result<Seen, String>>) {
    use hive_smallfiles_tests::gss_acceptor::Acceptor;
    use std::io::{Read, Write};
    let acceptor =
        Acceptor::new(&kdc.hive_keytab(), "hive/localhost@HSF.TEST").expect("hive keytab");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || -> Result<Seen, String> {
        let (mut s, _) = listener.accept().map_err(|e| e.to_string())?;
        let read_msg = |s: &mut std::net::TcpStream| -> Result<(u8, Vec<u8>), String> {
            let mut head = [0u8; 5];
            s.read_exact(&mut head).map_err(|e| e.to_string())?;
            let mut payload =
                vec![0u8; u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize];
            s.read_exact(&mut payload).map_err(|e| e.to_string())?;
            Ok((head[0], payload))
        };
        let send = |s: &mut std::net::TcpStream, status: u8, payload: &[u8]| {
            let mut out = vec![status];
            out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
            out.extend_from_slice(payload);
            s.write_all(&out).map_err(|e| e.to_string())
        };
        let (status, mech) = read_msg(&mut s)?;
        if (status, mech.as_slice()) != (1, b"GSSAPI".as_slice()) {
            return Err(format!("START expected, got {status} {mech:?}"));
        }
        let mut ctx = acceptor.context();
        let mut client = None;
        while !ctx.is_complete() {
            let (status, token) = read_msg(&mut s)?;
            if status != 2 {
                return Err(format!("OK expected with a token, got {status}"));
            }
            let (reply, who) = ctx.step(&token)?;
            client = who.or(client);
            if let Some(reply) = reply {
                send(&mut s, 2, &reply)?;
                if ctx.is_complete() {
                    // Mutual authentication: the client answers the AP-REP with an empty OK.
                    let (status, empty) = read_msg(&mut s)?;
                    if status != 2 || !empty.is_empty() {
                        return Err(format!("empty OK expected, got {status} {empty:?}"));
                    }
                }
            }
        }
        let challenge = ctx.wrap(false, &[offer, 0x01, 0x00, 0x00])?;
        send(&mut s, 2, &challenge)?;
        let (status, response) = read_msg(&mut s)?;
        if status != 5 {
            return Err(format!("COMPLETE expected with the response, got {status}"));
        }
        let response = ctx.unwrap(&response)?;
        send(&mut s, 5, &[])?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len).map_err(|e| e.to_string())?;
        let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut frame).map_err(|e| e.to_string())?;
        let first_frame_plain = frame.windows(11).any(|w| w == b"OpenSession");
        let first_frame = if response[0] == 1 {
            frame
        } else {
            ctx.unwrap(&frame)?
        };
        Ok(Seen {
            client: client.unwrap_or_default(),
            chosen: response[0],
            client_max: u32::from_be_bytes([0, response[1], response[2], response[3]]),
            first_frame_plain,
            first_frame,
        })
    });
    (port, handle)
}

/// The security-layer negotiation and the framing of each QOP against a real GSSAPI acceptor:
/// the configured layer is chosen from those offered, `auth` sends plain frames, `auth-int`
/// signed ones (readable, integrity-checked), `auth-conf` encrypted ones.
#[tokio::test]
async fn sasl_gssapi_layers_against_a_real_acceptor() {
    require!(Kdc::unavailable());
    let kdc = Kdc::get().unwrap();
    kdc.apply_env();
    for (qop, bit) in [(Qop::Auth, 1u8), (Qop::AuthInt, 2), (Qop::AuthConf, 4)] {
        let (port, server) = sasl_gssapi_server(&kdc, 7);
        let mut cfg = Hs2Config::new("localhost", port, "hsf");
        cfg.auth = Hs2Auth::Kerberos;
        cfg.kerberos = Some(kerberos(&kdc, qop));
        cfg.connect_timeout = Duration::from_secs(20);
        let e = Hs2Session::open(&cfg).await.unwrap_err();
        // The server closes after the first frame.
        assert!(matches!(e, Hs2Error::Connect(_)), "{qop}: {e:?}");
        let seen = server
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("{qop}: {e}"));
        assert_eq!(seen.client, kdc.client_principal(), "{qop}");
        assert_eq!(seen.chosen, bit, "{qop}");
        assert_eq!(
            seen.client_max,
            if bit == 1 { 0 } else { 0x00ff_ffff },
            "{qop}"
        );
        assert!(
            seen.first_frame.windows(11).any(|w| w == b"OpenSession"),
            "{qop}: the first frame is OpenSession"
        );
        assert_eq!(
            seen.first_frame_plain,
            qop != Qop::AuthConf,
            "{qop}: encryption"
        );
    }
    // A server offering only auth-conf refuses a client configured for auth, clearly.
    let (port, server) = sasl_gssapi_server(&kdc, 4);
    let mut cfg = Hs2Config::new("localhost", port, "hsf");
    cfg.auth = Hs2Auth::Kerberos;
    cfg.kerberos = Some(kerberos(&kdc, Qop::Auth));
    let e = Hs2Session::open(&cfg).await.unwrap_err();
    assert!(matches!(e, Hs2Error::Authentication(_)), "{e:?}");
    assert!(
        e.to_string()
            .contains("offers the SASL security layer(s) auth-conf"),
        "{e}"
    );
    assert!(server.join().unwrap().is_err());
}

/// The agent's configuration file, as an operator writes it (`[cluster.kerberos]` with the
/// keytab, `[cluster.hiveserver2]` with `auth = "kerberos"`, TLS with the test CA), reaches
/// both servers: the settings flow from the file into working sessions.
#[tokio::test]
async fn the_agent_configuration_reaches_both_servers() {
    require!(unavailable());
    let kdc = setup().unwrap();
    let (binary_port, http_port) = secure_ports();
    for (port, extra) in [
        (binary_port, "qop = \"auth-conf\"\n"),
        (
            http_port,
            "transport = \"http\"\nhttp_path = \"cliservice\"\n",
        ),
    ] {
        let text = format!(
            "[[cluster]]\nname = \"k\"\nengine = \"spark\"\n\
             [cluster.metastore]\nurl = \"mysql://root@127.0.0.1:3306/hsf\"\n\
             [cluster.storage]\ntype = \"local\"\nroot = \"/tmp\"\n\
             [cluster.kerberos]\nprincipal = \"{}\"\nkeytab = \"{}\"\n\
             [cluster.hiveserver2]\nhost = \"localhost\"\nport = {port}\nuser = \"hsf\"\n\
             auth = \"kerberos\"\nkerberos_principal = \"hive/_HOST@HSF.TEST\"\n\
             tls = true\nca_file = \"{}\"\n{extra}",
            kdc.client_principal(),
            kdc.client_keytab().display(),
            ca_file().display(),
        );
        let env = std::collections::BTreeMap::<String, String>::new();
        let config = hive_smallfiles_agent::config::AgentConfig::from_toml(
            &text,
            std::path::Path::new("/"),
            &env,
        )
        .unwrap_or_else(|e| panic!("{text}\n{e}"));
        let hs2 = config.clusters["k"].hiveserver2.clone().unwrap();
        assert!(hs2.password.is_none());
        let mut s = open(&hs2).await;
        assert_eq!(rows(&mut s, "SELECT 'k', 1 + 1").await, [["k", "2"]]);
        s.close().await.unwrap();
    }
}
