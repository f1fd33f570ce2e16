//! The exporter's HTTP transport in-process: TLS and bcrypt basic auth from an
//! exporter-toolkit style web configuration file (`--web.config.file`), loaded as the
//! command line loads it.

use std::process::Command;
use std::time::{Duration, Instant};

use hive_smallfiles_core::config::ProcessEnv;
use hive_smallfiles_core::web::WebConfig;
use hive_smallfiles_exporter::config::Config;
use hive_smallfiles_tests::services::{Exporter, ExporterOptions};

#[tokio::test]
async fn tls_and_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(d.join("tls.key"))
        .arg("-out")
        .arg(d.join("tls.crt"))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(
        d.join("web.yml"),
        format!("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  prometheus: {hash}\n"),
    )
    .unwrap();
    // The metastore is unreachable: the exporter must still serve (and say so).
    std::fs::write(
        d.join("exporter.toml"),
        format!(
            "[[cluster]]\nname = \"c\"\n[cluster.metastore]\nurl = \"mysql://hive@127.0.0.1:1/metastore\"\nconnect_timeout = \"1s\"\n\
             [cluster.storage]\ntype = \"local\"\nroot = \"{}\"\n",
            d.display()
        ),
    )
    .unwrap();
    let web = WebConfig::load(&d.join("web.yml")).expect("web.yml");
    let config = Config::load(&d.join("exporter.toml"), &ProcessEnv).expect("exporter.toml");
    let exporter = Exporter::start(
        config,
        ExporterOptions {
            web,
            ..ExporterOptions::default()
        },
    )
    .await;
    let https = exporter.base_url.replace("http://", "https://");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(d.join("tls.crt")).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let start = Instant::now();
    let unauthenticated = loop {
        match client.get(format!("{https}/metrics")).send().await {
            Ok(r) => break r,
            Err(e) => {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "no TLS answer: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(unauthenticated.status().as_u16(), 401);
    assert!(unauthenticated.headers().contains_key("www-authenticate"));
    let wrong = client
        .get(format!("{https}/metrics"))
        .basic_auth("prometheus", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    // Poll until the first (failing) scan is published.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = client
            .get(format!("{https}/metrics"))
            .basic_auth("prometheus", Some("s3cret"))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status().as_u16(), 200);
        let body = ok.text().await.unwrap();
        if body.contains("hive_metastore_up{cluster=\"c\"} 0") {
            assert!(body.contains("hive_scan_success{cluster=\"c\"} 0"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed scan reported:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Plain HTTP on the TLS port is refused.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let plain_ok = plain
        .get(format!("{}/metrics", exporter.base_url))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    assert!(!plain_ok, "plain HTTP must not be served on the TLS port");
    exporter.stop().await.expect("the exporter stops cleanly");
}
