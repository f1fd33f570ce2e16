//! The agent's `check` command: for each cluster, the MetaStore database (connect, log in,
//! probe the schema), every storage endpoint (HA state of each NameNode, or the local roots)
//! and HiveServer2 (connect, authenticate, open a session, `SELECT 1`), one line per endpoint
//! naming what was reached and which authentication and TLS were used. Secrets are never
//! printed.

use std::time::Duration;

use hive_smallfiles_core::check::{CheckLine, check_metastore, check_storage, print_lines};
use hive_smallfiles_core::fs::webhdfs::WebHdfsMetrics;
use tokio_util::sync::CancellationToken;

use crate::config::{AgentCluster, AgentConfig};
use crate::hiveserver2::{Hs2Auth, Hs2Config, Hs2Session, Hs2Transport};

/// Longest wait for `SELECT 1` once the session is open.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Probes every endpoint of every cluster and prints one line each; `true` when all are
/// usable.
pub async fn run_check(config: &AgentConfig) -> bool {
    let metrics = WebHdfsMetrics::default();
    let mut ok = true;
    for cluster in config.clusters.values() {
        ok &= print_lines(&check_cluster(cluster, &metrics).await);
    }
    ok
}

/// The lines of one cluster: MetaStore, storage endpoints, HiveServer2 (when configured).
pub async fn check_cluster(cluster: &AgentCluster, metrics: &WebHdfsMetrics) -> Vec<CheckLine> {
    let mut lines = vec![check_metastore(&cluster.name, &cluster.metastore).await];
    lines.extend(check_storage(&cluster.name, &cluster.storage, metrics).await);
    if let Some(hs2) = &cluster.hiveserver2 {
        lines.push(check_hiveserver2(&cluster.name, hs2).await);
    }
    lines
}

/// Opens a session (connect, transport authentication, OpenSession) and runs `SELECT 1`.
pub async fn check_hiveserver2(cluster: &str, cfg: &Hs2Config) -> CheckLine {
    let endpoint = format!(
        "hiveserver2 {}:{} {}",
        cfg.host,
        cfg.port,
        hs2_describe_auth(cfg)
    );
    let mut session = match Hs2Session::open(cfg).await {
        Ok(s) => s,
        Err(e) => return CheckLine::failed(cluster, endpoint, e),
    };
    let protocol = session.protocol_version();
    let cancel = CancellationToken::new();
    let result = tokio::time::timeout(QUERY_TIMEOUT, session.execute("SELECT 1", &cancel)).await;
    let _ = session.close().await;
    match result {
        Err(_) => CheckLine::failed(
            cluster,
            endpoint,
            format_args!("SELECT 1 did not finish within {QUERY_TIMEOUT:?}"),
        ),
        Ok(Err(e)) => CheckLine::failed(cluster, endpoint, e),
        Ok(Ok(r)) if r.rows.len() == 1 => CheckLine::ok(
            cluster,
            endpoint,
            format_args!("protocol {protocol}, SELECT 1"),
        ),
        Ok(Ok(r)) => CheckLine::failed(
            cluster,
            endpoint,
            format_args!("SELECT 1 returned {} rows", r.rows.len()),
        ),
    }
}

/// How the HiveServer2 client connects and authenticates, from [`Hs2Config`]: transport,
/// TLS, and SASL PLAIN (with or without a password), NOSASL or Kerberos (login principal,
/// server principal, QOP). Never the password.
pub fn hs2_describe_auth(cfg: &Hs2Config) -> String {
    let transport = match &cfg.transport {
        Hs2Transport::Binary => "binary".to_owned(),
        Hs2Transport::Http { path } => format!("http path=/{path}"),
    };
    let tls = if cfg.tls.is_some() {
        "tls=on"
    } else {
        "tls=off"
    };
    let auth = match (&cfg.auth, &cfg.kerberos) {
        (Hs2Auth::Plain, _) => format!(
            "auth=plain user={}{}",
            cfg.user,
            if cfg.password.is_some() {
                " password=set"
            } else {
                ""
            }
        ),
        (Hs2Auth::NoSasl, _) => format!("auth=nosasl user={}", cfg.user),
        (Hs2Auth::Kerberos, Some(k)) => format!(
            "auth=kerberos principal={} server={} qop={}",
            k.login
                .principal()
                .unwrap_or_else(|| "(credential cache)".to_owned()),
            k.principal,
            k.qop
        ),
        (Hs2Auth::Kerberos, None) => "auth=kerberos (no login configured)".to_owned(),
    };
    format!("transport={transport} {tls} {auth}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_smallfiles_core::secret::Secret;

    #[test]
    fn auth_is_described_without_the_password() {
        let mut cfg = Hs2Config::new("hs2", 10000, "etl");
        assert_eq!(
            hs2_describe_auth(&cfg),
            "transport=binary tls=off auth=plain user=etl"
        );
        cfg.password = Some(Secret::new("s3cret"));
        let d = hs2_describe_auth(&cfg);
        assert_eq!(
            d,
            "transport=binary tls=off auth=plain user=etl password=set"
        );
        cfg.auth = Hs2Auth::NoSasl;
        assert_eq!(
            hs2_describe_auth(&cfg),
            "transport=binary tls=off auth=nosasl user=etl"
        );
    }
}
