//! The configuration sections both binaries share, raw (as serde reads them) and validated:
//! `[cluster.metastore]`, `[cluster.storage]`, byte sizes, table globs, secrets read from
//! files or the environment (never from URLs), and the error type of configuration files.
//!
//! Two stages, as in ripgrep's low/high args: the `Raw*` types are what serde reads; their
//! `validate` methods give what the rest of the program uses (URLs parsed, secrets read,
//! globs compiled, sizes and durations checked). Each binary's own configuration module
//! embeds these sections.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::fs::LocationScheme;
use crate::fs::webhdfs::{OutageBackoff, SpnegoConfig, WebHdfsConfig};
use crate::kerberos::KerberosConfig;
use crate::metastore::{Backend, ClientCert, MetastoreConfig, TlsMode, TlsSettings};
use crate::secret::{Secret, SecretKind, check_file_permissions};

/// 128 MiB, the original platform's small-file threshold and a typical HDFS block size.
pub const DEFAULT_SMALL_FILE_BYTES: u64 = 128 * 1024 * 1024;

/// Errors in the configuration: always fatal at start-up (exit code 64).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown fields.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// A value is out of range or inconsistent.
    #[error("cluster {cluster:?}: {message}")]
    Invalid {
        /// Cluster name (or `-` for global settings).
        cluster: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// Configuration errors never go away by retrying.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// `[cluster.metastore]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetastore {
    /// `mysql://user@host:3306/metastore` or `postgres://user@host:5432/metastore`, without a
    /// password.
    pub url: String,
    /// File whose first line is the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Connections in the pool. Default 4.
    #[serde(default = "default_pool")]
    pub pool_size: usize,
    /// Server-side timeout of one statement. Default 60s.
    #[serde(default = "default_statement_timeout", with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// Timeout of connecting. Default 10s.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Hive 3 catalogs to scan. Default `["hive"]`. Tables of other catalogs get the
    /// database label `@<catalog>#<database>` (Hive's own catalog-qualified form).
    #[serde(default = "default_catalogs")]
    pub catalogs: Vec<String>,
    /// Partitions per keyset page. Default 10000.
    #[serde(default = "default_page")]
    pub partition_page_size: u32,
    /// TLS to the database, with libpq's `sslmode` names: `disable` (default), `require`
    /// (encrypted, certificate not checked), `verify-ca` (chain checked against `ca_file`;
    /// PostgreSQL only), `verify-full` (chain and host name checked).
    #[serde(default)]
    pub tls: TlsMode,
    /// CA bundle (PEM) that signed the server's certificate; required by `verify-ca` and
    /// `verify-full` (a public CA: the system bundle, e.g. `/etc/ssl/certs/ca-certificates.crt`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM), for servers that want one (MySQL `REQUIRE X509`,
    /// PostgreSQL `clientcert=verify-full`). With `client_key_file`.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM; PKCS#8, PKCS#1 or SEC1, unencrypted).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

/// `[cluster.storage]`: `type = "webhdfs"` or `type = "local"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum RawStorage {
    /// HDFS through WebHDFS.
    Webhdfs {
        /// NameNode HTTP(S) URLs, e.g. `["http://nn1:9870", "http://nn2:9870"]`.
        namenodes: Vec<String>,
        /// `user.name` for clusters without Kerberos. Default `hive`.
        #[serde(default = "default_user")]
        user: Option<String>,
        /// File holding a delegation token (clusters with Kerberos).
        #[serde(default)]
        delegation_token_file: Option<PathBuf>,
        /// `hdfs://` authorities (nameservices, `host:port`) that belong to this cluster.
        /// Empty: every `hdfs://` location is this cluster's.
        #[serde(default)]
        authorities: Vec<String>,
        /// Timeout of one request. Default 30s.
        #[serde(default = "default_request_timeout", with = "humantime_serde")]
        request_timeout: Duration,
        /// Requests in flight at once (keep well below the NameNode's handler count).
        /// Default 16.
        #[serde(default = "default_max_requests")]
        max_concurrent_requests: usize,
        /// Retries of a retryable failure. Default 3.
        #[serde(default = "default_retries")]
        max_retries: u32,
        /// Extra CA certificates (PEM) for HTTPS NameNodes.
        #[serde(default)]
        ca_file: Option<PathBuf>,
        /// How requests authenticate: `simple` (`user.name`), `token` (the token of
        /// `delegation_token_file`) or `kerberos` (SPNEGO with the cluster's
        /// `[cluster.kerberos]` login). Default: `token` when `delegation_token_file` is set,
        /// `simple` otherwise.
        #[serde(default)]
        auth: Option<RawWebHdfsAuth>,
        /// With `auth = "kerberos"`: obtain a delegation token over SPNEGO and use it for
        /// every other request, renewing it (as Hadoop's own WebHDFS client does on a secure
        /// cluster). `false`: every NameNode request authenticates with SPNEGO (or the
        /// `hadoop.auth` cookie). Default true.
        #[serde(default = "default_true")]
        delegation_tokens: bool,
        /// Backing off when every NameNode fails (refused connections, standby, a gateway's
        /// 502/503/504): requests fail at once, unsent, for this delay, doubling (with
        /// jitter) per failed probe up to `outage_max_backoff`. `"0s"` turns it off.
        /// Default 1s.
        #[serde(default = "default_outage_backoff", with = "humantime_serde")]
        outage_backoff: Duration,
        /// Upper bound of the backing-off delay. Default 30s.
        #[serde(default = "default_outage_max_backoff", with = "humantime_serde")]
        outage_max_backoff: Duration,
    },
    /// A local directory tree holding `file:` locations.
    Local {
        /// Only locations under this directory are listed.
        #[serde(default)]
        root: Option<PathBuf>,
        /// Several such directories (a warehouse with external tables elsewhere, say); with
        /// `root`, or instead of it.
        #[serde(default)]
        roots: Vec<PathBuf>,
    },
}

fn default_outage_backoff() -> Duration {
    OutageBackoff::default().initial
}
fn default_outage_max_backoff() -> Duration {
    OutageBackoff::default().max
}
fn default_pool() -> usize {
    4
}
fn default_statement_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_catalogs() -> Vec<String> {
    vec!["hive".to_owned()]
}
fn default_page() -> u32 {
    10_000
}
#[allow(clippy::unnecessary_wraps)]
/// `[cluster.storage] auth` of a WebHDFS storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawWebHdfsAuth {
    /// `user.name` (pseudo authentication, security off).
    Simple,
    /// A delegation token read from `delegation_token_file`.
    Token,
    /// SPNEGO (`Authorization: Negotiate`) with the cluster's Kerberos login.
    Kerberos,
}

fn default_true() -> bool {
    true
}

fn default_user() -> Option<String> {
    Some("hive".to_owned())
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_requests() -> usize {
    16
}
fn default_retries() -> u32 {
    3
}

/// A byte count written as an integer or as a string with a unit (`"128MiB"`, `"64 MB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Int(u64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Int(n) => Ok(Self(n)),
            Repr::Text(s) => parse_byte_size(&s)
                .map(Self)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `"128MiB"`, `"1 GiB"`, `"64MB"`, `"1000"`.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("not a byte size: {text:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => return Err(format!("unknown unit {other:?} in {text:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("byte size too large: {text:?}"))
}

/// Validated storage settings (built once at start-up: the size of the variants does not
/// matter).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum StorageConfig {
    /// WebHDFS.
    WebHdfs {
        /// Client settings.
        client: WebHdfsConfig,
        /// Accepted `hdfs://` authorities.
        authorities: Vec<String>,
        /// Backing off when every NameNode fails.
        outage_backoff: OutageBackoff,
    },
    /// Local directory trees.
    Local {
        /// Root directories (at least one): only locations under one of them are listed.
        roots: Vec<PathBuf>,
    },
}

impl StorageConfig {
    /// Which locations this storage owns.
    pub fn location_scheme(&self) -> LocationScheme {
        match self {
            Self::WebHdfs { authorities, .. } => LocationScheme::Hdfs {
                authorities: authorities.clone(),
            },
            Self::Local { .. } => LocationScheme::Local,
        }
    }
}

/// Include/exclude globs on `database.table`.
#[derive(Debug, Clone)]
pub struct TableFilter {
    include: GlobSet,
    exclude: GlobSet,
}

impl TableFilter {
    /// Compiles the globs.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, String> {
        Ok(Self {
            include: build_globs(include)?,
            exclude: build_globs(exclude)?,
        })
    }

    /// Whether `database.table` is scanned.
    pub fn matches(&self, database: &str, table: &str) -> bool {
        let name = format!("{database}.{table}");
        self.include.is_match(&name) && !self.exclude.is_match(&name)
    }
}

fn build_globs(patterns: &[String]) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let glob = globset::GlobBuilder::new(p)
            .literal_separator(false)
            .build()
            .map_err(|e| format!("bad glob {p:?}: {e}"))?;
        b.add(glob);
    }
    b.build().map_err(|e| e.to_string())
}

/// Where secrets and files come from: the real process environment, or a map in tests.
pub trait Environment {
    /// The value of an environment variable.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Environment for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// A [`ConfigError::Invalid`] for `cluster`.
pub fn invalid(cluster: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        cluster: cluster.to_owned(),
        message: message.into(),
    }
}

/// Resolves a path relative to the configuration file's directory.
pub fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

/// Reads the first line of a secret file, after checking its permissions (a group- or
/// world-readable file is logged and counted, see [`check_file_permissions`]).
pub fn read_secret_file(cluster: &str, what: &str, path: &Path) -> Result<Secret, ConfigError> {
    let kind = if what.contains("delegation token") {
        SecretKind::Token
    } else {
        SecretKind::Password
    };
    check_file_permissions(path, kind);
    let text = std::fs::read_to_string(path).map_err(|e| {
        invalid(
            cluster,
            format!("cannot read {what} file {}: {e}", path.display()),
        )
    })?;
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if first.is_empty() {
        return Err(invalid(
            cluster,
            format!("{what} file {} is empty", path.display()),
        ));
    }
    Ok(Secret::new(first))
}

impl RawMetastore {
    /// Validates into a [`MetastoreConfig`] (the agent reuses this section).
    pub fn validate(
        self,
        cluster: &str,
        base: &Path,
        env: &dyn Environment,
    ) -> Result<MetastoreConfig, ConfigError> {
        let url = url::Url::parse(&self.url)
            .map_err(|e| invalid(cluster, format!("metastore.url is not a URL: {e}")))?;
        if url.password().is_some() {
            return Err(invalid(
                cluster,
                "metastore.url must not contain a password; use password_file or password_env",
            ));
        }
        let (backend, default_port) = match url.scheme() {
            "mysql" | "mariadb" => (Backend::Mysql, 3306),
            "postgres" | "postgresql" => (Backend::Postgres, 5432),
            other => {
                return Err(invalid(
                    cluster,
                    format!("metastore.url scheme {other:?}: expected mysql:// or postgres://"),
                ));
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid(cluster, "metastore.url has no host"))?;
        let database = url.path().trim_start_matches('/').to_owned();
        if database.is_empty() {
            return Err(invalid(
                cluster,
                "metastore.url has no database name (…/metastore)",
            ));
        }
        let user = if url.username().is_empty() {
            "hive".to_owned()
        } else {
            percent_encoding::percent_decode_str(url.username())
                .decode_utf8_lossy()
                .into_owned()
        };
        let password = match (&self.password_file, &self.password_env) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    cluster,
                    "set only one of password_file and password_env",
                ));
            }
            (Some(f), None) => Some(read_secret_file(cluster, "password", &resolve(base, f))?),
            (None, Some(var)) => Some(Secret::new(env.var(var).ok_or_else(|| {
                invalid(
                    cluster,
                    format!("password_env: environment variable {var} is not set"),
                )
            })?)),
            (None, None) => None,
        };
        if self.pool_size == 0 {
            return Err(invalid(cluster, "metastore.pool_size must be > 0"));
        }
        if self.catalogs.is_empty() {
            return Err(invalid(cluster, "metastore.catalogs must not be empty"));
        }
        if self.partition_page_size == 0 {
            return Err(invalid(
                cluster,
                "metastore.partition_page_size must be > 0",
            ));
        }
        let tls = metastore_tls(
            cluster,
            base,
            backend,
            self.tls,
            self.ca_file.as_deref(),
            self.client_cert_file.as_deref(),
            self.client_key_file.as_deref(),
        )?;
        Ok(MetastoreConfig {
            backend,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: url.port().unwrap_or(default_port),
            user,
            password,
            database,
            pool_size: self.pool_size,
            statement_timeout: self.statement_timeout,
            connect_timeout: self.connect_timeout,
            catalogs: self.catalogs,
            partition_page_size: self.partition_page_size,
            tls,
        })
    }
}

/// Validates `[cluster.metastore]`'s TLS settings: consistent, files readable and parsable,
/// the private key's permissions checked.
fn metastore_tls(
    cluster: &str,
    base: &Path,
    backend: Backend,
    mode: TlsMode,
    ca_file: Option<&Path>,
    client_cert_file: Option<&Path>,
    client_key_file: Option<&Path>,
) -> Result<TlsSettings, ConfigError> {
    let ca_file = ca_file.map(|p| resolve(base, p));
    match mode {
        TlsMode::Disable if ca_file.is_some() || client_cert_file.is_some() => {
            return Err(invalid(
                cluster,
                "metastore: ca_file or client_cert_file is set but tls = \"disable\"; set tls = \"verify-full\"",
            ));
        }
        TlsMode::Require if ca_file.is_some() => {
            return Err(invalid(
                cluster,
                "metastore: tls = \"require\" does not check the server's certificate, so ca_file would be ignored; use tls = \"verify-full\" (or \"verify-ca\")",
            ));
        }
        TlsMode::VerifyCa | TlsMode::VerifyFull if ca_file.is_none() => {
            return Err(invalid(
                cluster,
                format!(
                    "metastore: tls = \"{mode}\" needs ca_file (the CA bundle that signed the server's certificate)"
                ),
            ));
        }
        TlsMode::VerifyCa if backend == Backend::Mysql => {
            return Err(invalid(
                cluster,
                "metastore: tls = \"verify-ca\" is not available for MySQL/MariaDB (the client library cannot check the chain without the host name); use \"verify-full\" with a host name the certificate names",
            ));
        }
        _ => {}
    }
    let client_cert = match (client_cert_file, client_key_file) {
        (Some(cert), Some(key)) => {
            let key = resolve(base, key);
            check_file_permissions(&key, SecretKind::PrivateKey);
            Some(ClientCert {
                cert_file: resolve(base, cert),
                key_file: key,
            })
        }
        (None, None) => None,
        _ => {
            return Err(invalid(
                cluster,
                "metastore: set both client_cert_file and client_key_file, or neither",
            ));
        }
    };
    let settings = TlsSettings {
        mode,
        ca_file,
        client_cert,
    };
    settings
        .load_files()
        .map_err(|m| invalid(cluster, format!("metastore: {m}")))?;
    if let (Backend::Mysql, Some(c)) = (backend, &settings.client_cert) {
        crate::metastore::tls::mysql_client_key(&c.key_file)
            .map_err(|m| invalid(cluster, format!("metastore: {m}")))?;
    }
    Ok(settings)
}

impl RawStorage {
    /// Validates into a [`StorageConfig`] (the agent reuses this section). `kerberos` is the
    /// cluster's validated `[cluster.kerberos]` table, used by `auth = "kerberos"`.
    pub fn validate(
        self,
        cluster: &str,
        base: &Path,
        kerberos: Option<&KerberosConfig>,
    ) -> Result<StorageConfig, ConfigError> {
        match self {
            Self::Webhdfs {
                namenodes,
                user,
                delegation_token_file,
                authorities,
                request_timeout,
                max_concurrent_requests,
                max_retries,
                ca_file,
                auth,
                delegation_tokens,
                outage_backoff,
                outage_max_backoff,
            } => {
                if namenodes.is_empty() {
                    return Err(invalid(cluster, "storage.namenodes is empty"));
                }
                let mut urls = Vec::with_capacity(namenodes.len());
                for nn in &namenodes {
                    let u = url::Url::parse(nn)
                        .map_err(|e| invalid(cluster, format!("namenode {nn:?}: {e}")))?;
                    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                        return Err(invalid(
                            cluster,
                            format!("namenode {nn:?}: expected http(s)://host:port"),
                        ));
                    }
                    if !u.username().is_empty() || u.password().is_some() || u.query().is_some() {
                        return Err(invalid(
                            cluster,
                            format!("namenode {nn:?}: no credentials or query in the URL"),
                        ));
                    }
                    urls.push(u);
                }
                if max_concurrent_requests == 0 {
                    return Err(invalid(
                        cluster,
                        "storage.max_concurrent_requests must be > 0",
                    ));
                }
                if outage_max_backoff < outage_backoff {
                    return Err(invalid(
                        cluster,
                        "storage.outage_max_backoff must not be below storage.outage_backoff",
                    ));
                }
                let auth = auth.unwrap_or(if delegation_token_file.is_some() {
                    RawWebHdfsAuth::Token
                } else {
                    RawWebHdfsAuth::Simple
                });
                let (user, delegation_token_file, spnego) = match auth {
                    RawWebHdfsAuth::Simple if delegation_token_file.is_some() => {
                        return Err(invalid(
                            cluster,
                            "storage.auth = \"simple\" sends no delegation token: remove \
                             storage.delegation_token_file or set auth = \"token\"",
                        ));
                    }
                    RawWebHdfsAuth::Simple => (user, None, None),
                    RawWebHdfsAuth::Token => match delegation_token_file {
                        Some(file) => (user, Some(file), None),
                        None => {
                            return Err(invalid(
                                cluster,
                                "storage.auth = \"token\" needs storage.delegation_token_file",
                            ));
                        }
                    },
                    RawWebHdfsAuth::Kerberos => {
                        if delegation_token_file.is_some() {
                            return Err(invalid(
                                cluster,
                                "storage.auth = \"kerberos\" obtains its delegation tokens \
                                 over SPNEGO: remove storage.delegation_token_file",
                            ));
                        }
                        let Some(kerberos) = kerberos else {
                            return Err(invalid(
                                cluster,
                                "storage.auth = \"kerberos\" needs the cluster's \
                                 [cluster.kerberos] table (principal and keytab)",
                            ));
                        };
                        // No user.name is ever sent with Kerberos.
                        let spnego = SpnegoConfig {
                            kerberos: kerberos.clone(),
                            delegation_tokens,
                        };
                        (None, None, Some(spnego))
                    }
                };
                let delegation_token = delegation_token_file
                    .map(|f| read_secret_file(cluster, "delegation token", &resolve(base, &f)))
                    .transpose()?;
                Ok(StorageConfig::WebHdfs {
                    client: WebHdfsConfig {
                        cluster: cluster.to_owned(),
                        namenodes: urls,
                        user: user.filter(|u| !u.is_empty()),
                        delegation_token,
                        request_timeout,
                        connect_timeout: request_timeout.min(Duration::from_secs(10)),
                        max_concurrent_requests,
                        max_retries,
                        retry_initial_backoff: Duration::from_millis(200),
                        retry_max_backoff: Duration::from_secs(10),
                        ca_file: ca_file.map(|f| resolve(base, &f)),
                        spnego,
                    },
                    authorities,
                    outage_backoff: OutageBackoff {
                        initial: outage_backoff,
                        max: outage_max_backoff,
                    },
                })
            }
            Self::Local { root, roots } => {
                let roots: Vec<PathBuf> = root
                    .iter()
                    .chain(&roots)
                    .map(|r| resolve(base, r))
                    .collect();
                if roots.is_empty() {
                    return Err(invalid(cluster, "storage: set root or roots"));
                }
                Ok(StorageConfig::Local { roots })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_and_globs() {
        assert_eq!(parse_byte_size("128MiB").unwrap(), 128 << 20);
        assert_eq!(parse_byte_size("64 MB").unwrap(), 64_000_000);
        assert_eq!(parse_byte_size("1000").unwrap(), 1000);
        assert!(parse_byte_size("12 parsecs").is_err());
        let f =
            TableFilter::new(&["sales.*".into(), "ods_*.*".into()], &["*.tmp_*".into()]).unwrap();
        assert!(f.matches("sales", "orders"));
        assert!(f.matches("ods_x", "t"));
        assert!(!f.matches("sales", "tmp_1"));
        assert!(!f.matches("hr", "people"));
    }

    fn storage(extra: &str) -> RawStorage {
        toml::from_str(&format!(
            "type = \"webhdfs\"\nnamenodes = [\"http://nn1:9870\"]\n{extra}"
        ))
        .unwrap()
    }

    fn client(s: StorageConfig) -> WebHdfsConfig {
        match s {
            StorageConfig::WebHdfs { client, .. } => client,
            StorageConfig::Local { .. } => panic!("webhdfs expected"),
        }
    }

    #[test]
    fn webhdfs_auth_defaults_and_kerberos() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::write(base.join("dt"), "TOKEN\n").unwrap();
        let krb = KerberosConfig::keytab("hsf/nn@R", base.join("hsf.keytab"));

        // Existing configurations stay valid: simple with user, token with the file.
        let c = client(storage("").validate("c", base, None).unwrap());
        assert_eq!(
            (c.user.as_deref(), c.spnego.is_none()),
            (Some("hive"), true)
        );
        let c = client(
            storage("delegation_token_file = \"dt\"")
                .validate("c", base, None)
                .unwrap(),
        );
        assert_eq!(c.delegation_token.unwrap().expose(), "TOKEN");

        // Kerberos: the cluster's login, delegation tokens by default, never user.name.
        let c = client(
            storage("auth = \"kerberos\"\nuser = \"hive\"")
                .validate("c", base, Some(&krb))
                .unwrap(),
        );
        assert_eq!(c.user, None);
        let spnego = c.spnego.unwrap();
        assert_eq!(
            (spnego.kerberos, spnego.delegation_tokens),
            (krb.clone(), true)
        );
        let c = client(
            storage("auth = \"kerberos\"\ndelegation_tokens = false")
                .validate("c", base, Some(&krb))
                .unwrap(),
        );
        assert!(!c.spnego.unwrap().delegation_tokens);

        let err = |extra: &str, k: Option<&KerberosConfig>| {
            storage(extra)
                .validate("c", base, k)
                .unwrap_err()
                .to_string()
        };
        assert!(err("auth = \"kerberos\"", None).contains("[cluster.kerberos]"));
        assert!(
            err(
                "auth = \"kerberos\"\ndelegation_token_file = \"dt\"",
                Some(&krb)
            )
            .contains("remove storage.delegation_token_file")
        );
        assert!(err("auth = \"token\"", None).contains("needs storage.delegation_token_file"));
        assert!(
            err("auth = \"simple\"\ndelegation_token_file = \"dt\"", None)
                .contains("sends no delegation token")
        );
        assert!(
            toml::from_str::<RawStorage>("type = \"webhdfs\"\nnamenodes = []\nauth = \"ntlm\"")
                .is_err()
        );
    }
}

#[cfg(test)]
mod metastore_tls_tests {
    use super::*;

    fn validate(extra: &str) -> Result<MetastoreConfig, ConfigError> {
        validate_url("postgres://hive@db/metastore", extra)
    }

    fn validate_url(url: &str, extra: &str) -> Result<MetastoreConfig, ConfigError> {
        let raw: RawMetastore = toml::from_str(&format!("url = \"{url}\"\n{extra}")).unwrap();
        raw.validate("c", Path::new("/nonexistent"), &BTreeMap::new())
    }

    fn message(r: Result<MetastoreConfig, ConfigError>) -> String {
        r.expect_err("must be refused").to_string()
    }

    #[test]
    fn tls_defaults_to_disable_and_inconsistent_settings_are_refused() {
        assert_eq!(validate("").unwrap().tls, TlsSettings::default());
        assert_eq!(
            validate("tls = \"require\"").unwrap().tls.mode,
            TlsMode::Require
        );
        assert!(message(validate("tls = \"verify-full\"")).contains("needs ca_file"));
        assert!(message(validate("tls = \"verify-ca\"")).contains("needs ca_file"));
        assert!(
            message(validate("tls = \"require\"\nca_file = \"/ca.pem\""))
                .contains("would be ignored")
        );
        assert!(message(validate("ca_file = \"/ca.pem\"")).contains("tls = \"disable\""));
        assert!(
            message(validate("tls = \"require\"\nclient_cert_file = \"/c.pem\""))
                .contains("both client_cert_file and client_key_file")
        );
        assert!(
            message(validate_url(
                "mysql://hive@db/metastore",
                "tls = \"verify-ca\"\nca_file = \"/ca.pem\""
            ))
            .contains("not available for MySQL")
        );
        // Files are read at validation: a missing CA bundle is named, relative to the base.
        let m = message(validate("tls = \"verify-full\"\nca_file = \"ca.pem\""));
        assert!(m.contains("/nonexistent/ca.pem"), "{m}");
        assert!(toml::from_str::<RawMetastore>("url = \"x\"\ntls = \"on\"").is_err());
    }
}
