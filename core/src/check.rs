//! The probes behind the `check` commands of both binaries: connect to one cluster's
//! MetaStore database and filesystem endpoints and say, one line per endpoint, what was
//! reached, which authentication and TLS were used, and whether it worked:
//!
//! ```text
//! prod metastore postgres://hive@db:5432/metastore tls=verify-full ca=/etc/hsf/ca.pem password=set: OK (schema 3.1.0, catalogs)
//! prod storage http://nn1:9870 auth=simple user=hive: active
//! prod storage http://nn2:9870 auth=simple user=hive: DOWN: connection refused
//! ```
//!
//! Secrets are never printed: only whether one is set and where files are.

use std::fmt;
use std::time::Duration;

use crate::config::StorageConfig;
use crate::fs::factory::read_filesystem;
use crate::fs::webhdfs::{WebHdfsConfig, WebHdfsMetrics};
use crate::fs::{EndpointState, close_all};
use crate::kerberos::CredentialSource;
use crate::metastore::{Metastore, MetastoreConfig};

/// Longest wait for a probed filesystem client to give back its delegation token.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The result of probing one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    /// Cluster name.
    pub cluster: String,
    /// What was probed and how: `metastore postgres://… tls=… password=set`.
    pub endpoint: String,
    /// `OK (…)`, `active`, `standby`, `FAILED: …`, `DOWN: …`.
    pub status: String,
    /// Whether the endpoint is usable.
    pub ok: bool,
}

impl CheckLine {
    fn new(cluster: &str, endpoint: String, ok: bool, status: String) -> Self {
        Self {
            cluster: cluster.to_owned(),
            endpoint,
            status,
            ok,
        }
    }

    /// A failed probe of `endpoint`.
    pub fn failed(cluster: &str, endpoint: String, why: impl fmt::Display) -> Self {
        Self::new(cluster, endpoint, false, format!("FAILED: {why}"))
    }

    /// A successful probe of `endpoint`, with what it found.
    pub fn ok(cluster: &str, endpoint: String, detail: impl fmt::Display) -> Self {
        Self::new(cluster, endpoint, true, format!("OK ({detail})"))
    }
}

impl fmt::Display for CheckLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.cluster, self.endpoint, self.status)
    }
}

/// Connects to the MetaStore database (the pool's first connection: TCP, TLS, login) and
/// probes its schema (two queries).
pub async fn check_metastore(cluster: &str, cfg: &MetastoreConfig) -> CheckLine {
    let endpoint = format!("metastore {}", cfg.describe());
    let ms = match Metastore::connect(cfg).await {
        Ok(m) => m,
        Err(e) => return CheckLine::failed(cluster, endpoint, e),
    };
    let probed = ms.probe().await;
    ms.close().await;
    match probed {
        Ok(schema) => CheckLine::ok(
            cluster,
            endpoint,
            format_args!(
                "schema {}{}",
                schema.schema_version.as_deref().unwrap_or("unknown"),
                if schema.has_catalogs {
                    ", catalogs"
                } else {
                    ""
                }
            ),
        ),
        Err(e) => CheckLine::failed(cluster, endpoint, e),
    }
}

/// Probes every endpoint of the cluster's storage (each NameNode's HA state, or the local
/// roots); a dead endpoint fails the check even when another one serves (HA hides it until
/// the other one fails too), as does a storage without an active endpoint.
pub async fn check_storage(
    cluster: &str,
    storage: &StorageConfig,
    metrics: &WebHdfsMetrics,
) -> Vec<CheckLine> {
    let auth = storage_auth(storage);
    let fs = match read_filesystem(storage, metrics) {
        Ok(fs) => fs,
        Err(e) => return vec![CheckLine::failed(cluster, format!("storage {auth}"), e)],
    };
    let probes = fs.probe().await;
    // A probe over SPNEGO may have obtained a delegation token: given back at once.
    close_all(&[(cluster.to_owned(), fs)], CLOSE_TIMEOUT).await;
    let any_active = probes.iter().any(|p| p.state == EndpointState::Active);
    let mut lines: Vec<CheckLine> = probes
        .into_iter()
        .map(|p| {
            let endpoint = format!("storage {} {auth}", p.endpoint);
            match p.state {
                EndpointState::Active => CheckLine::new(cluster, endpoint, true, "active".into()),
                EndpointState::Standby => CheckLine::new(cluster, endpoint, true, "standby".into()),
                EndpointState::Down(why) => {
                    CheckLine::new(cluster, endpoint, false, format!("DOWN: {why}"))
                }
            }
        })
        .collect();
    if !any_active {
        lines.push(CheckLine::new(
            cluster,
            "storage".to_owned(),
            false,
            "no active endpoint".to_owned(),
        ));
    }
    lines
}

/// How the storage authenticates: `auth=simple user=hive`, `auth=delegation-token`,
/// `auth=local-files`, plus `tls=https ca=…` for HTTPS NameNodes.
pub fn storage_auth(storage: &StorageConfig) -> String {
    match storage {
        StorageConfig::WebHdfs { client, .. } => webhdfs_describe_auth(client),
        StorageConfig::Local { .. } => "auth=local-files".to_owned(),
    }
}

/// How a WebHDFS client authenticates, from its validated [`WebHdfsConfig`] (what the client
/// will send, as [`WebHdfs::authentication`](crate::fs::webhdfs::WebHdfs::authentication)
/// decides it): `auth=kerberos principal=… delegation_tokens=on|off` (SPNEGO; `user` and a
/// token file are then not sent), `auth=delegation-token`, `auth=simple user=…` or
/// `auth=none`, plus `tls=https ca=…` for HTTPS NameNodes. Never the token.
pub fn webhdfs_describe_auth(client: &WebHdfsConfig) -> String {
    let mut out = match (&client.spnego, &client.delegation_token, &client.user) {
        (Some(spnego), _, _) => format!(
            "auth=kerberos {} delegation_tokens={}",
            match (spnego.kerberos.principal(), &spnego.kerberos.source) {
                (Some(principal), _) => format!("principal={principal}"),
                (None, CredentialSource::Ccache { ccache, .. }) => format!("ccache={ccache}"),
                (None, CredentialSource::Keytab { keytab, .. }) => {
                    format!("keytab={}", keytab.display())
                }
            },
            if spnego.delegation_tokens {
                "on"
            } else {
                "off"
            }
        ),
        (None, Some(_), _) => "auth=delegation-token".to_owned(),
        (None, None, Some(user)) => format!("auth=simple user={user}"),
        (None, None, None) => "auth=none".to_owned(),
    };
    if client.namenodes.iter().any(|u| u.scheme() == "https") {
        out.push_str(" tls=https");
        if let Some(ca) = &client.ca_file {
            out.push_str(&format!(" ca={}", ca.display()));
        }
    }
    out
}

/// Prints the lines and says whether all were usable.
pub fn print_lines(lines: &[CheckLine]) -> bool {
    for l in lines {
        println!("{l}");
    }
    lines.iter().all(|l| l.ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_endpoint_and_status() {
        let l = CheckLine::ok(
            "c1",
            "metastore mysql://hive@db:3306/ms tls=verify-full".into(),
            "schema 3.1.0",
        );
        assert_eq!(
            l.to_string(),
            "c1 metastore mysql://hive@db:3306/ms tls=verify-full: OK (schema 3.1.0)"
        );
        assert!(l.ok);
        let f = CheckLine::failed("c1", "storage".into(), "boom");
        assert_eq!(f.to_string(), "c1 storage: FAILED: boom");
        assert!(!f.ok);
    }

    fn client(urls: &[&str]) -> WebHdfsConfig {
        WebHdfsConfig {
            cluster: "c".into(),
            namenodes: urls.iter().map(|u| url::Url::parse(u).unwrap()).collect(),
            user: Some("hive".into()),
            delegation_token: None,
            request_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            max_concurrent_requests: 1,
            max_retries: 0,
            retry_initial_backoff: Duration::from_millis(1),
            retry_max_backoff: Duration::from_millis(1),
            ca_file: None,
            spnego: None,
        }
    }

    #[test]
    fn webhdfs_authentication_is_described_without_secrets() {
        use crate::fs::webhdfs::SpnegoConfig;
        use crate::kerberos::KerberosConfig;
        use crate::secret::Secret;
        let mut c = client(&["http://nn1:9870"]);
        assert_eq!(webhdfs_describe_auth(&c), "auth=simple user=hive");
        c.user = None;
        assert_eq!(webhdfs_describe_auth(&c), "auth=none");
        c.delegation_token = Some(Secret::new("SECRET-TOKEN"));
        assert_eq!(webhdfs_describe_auth(&c), "auth=delegation-token");
        // SPNEGO wins: neither user.name nor the token file is sent then.
        c.user = Some("hive".into());
        c.spnego = Some(SpnegoConfig {
            kerberos: KerberosConfig::keytab("hsf/h@R", "/k/hsf.keytab"),
            delegation_tokens: true,
        });
        assert_eq!(
            webhdfs_describe_auth(&c),
            "auth=kerberos principal=hsf/h@R delegation_tokens=on"
        );
        c.spnego = Some(SpnegoConfig {
            kerberos: KerberosConfig::ccache(None, "FILE:/tmp/krb5cc_1"),
            delegation_tokens: false,
        });
        assert_eq!(
            webhdfs_describe_auth(&c),
            "auth=kerberos ccache=FILE:/tmp/krb5cc_1 delegation_tokens=off"
        );
        let mut c = client(&["https://nn1:9871", "https://nn2:9871"]);
        c.ca_file = Some("/etc/hsf/ca.pem".into());
        assert_eq!(
            webhdfs_describe_auth(&c),
            "auth=simple user=hive tls=https ca=/etc/hsf/ca.pem"
        );
        c.ca_file = None;
        assert_eq!(webhdfs_describe_auth(&c), "auth=simple user=hive tls=https");
    }
}
