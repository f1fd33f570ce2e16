//! The tests' MariaDB and PostgreSQL with TLS (`tests/scripts/tls-databases.sh`): second
//! instances on loopback (MariaDB :3307, PostgreSQL :5433) presenting a certificate of a test
//! CA for `localhost` and `127.0.0.1`, logins that require TLS (`hsf_ssl`) or a client
//! certificate (`hsf_cert`), and the CA, client certificate and a second, untrusted CA as
//! files.
//!
//! A test that needs them calls [`TlsDatabases::unavailable`] through
//! [`require!`](crate::require); [`TlsDatabases::get`] starts them (a no-op when they run).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hive_smallfiles_core::metastore::{Backend, ClientCert, MetastoreConfig, TlsMode, TlsSettings};
use hive_smallfiles_core::secret::Secret;

use crate::metastore_fixture::DbKind;

/// The login that must use TLS, and its password.
pub const SSL_USER: (&str, &str) = ("hsf_ssl", "hsf-ssl-pw");
/// The login that must present a client certificate of the test CA, and its password.
pub const CERT_USER: (&str, &str) = ("hsf_cert", "hsf-cert-pw");
/// An address the servers listen on that their certificate does not name.
pub const MISMATCHED_HOST: &str = "127.0.0.2";

/// The running TLS databases.
#[derive(Debug, Clone)]
pub struct TlsDatabases {
    dir: PathBuf,
    mysql_port: u16,
    pg_port: u16,
}

fn env_port(var: &str, default: u16) -> u16 {
    std::env::var(var)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(default)
}

impl TlsDatabases {
    /// The script that makes the certificates and starts the servers.
    pub fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/tls-databases.sh")
    }

    /// Starts both servers when they are not running (`tls-databases.sh start`); `Err` with
    /// the reason when they cannot be started.
    pub fn get() -> Result<Self, String> {
        crate::process::start_service_script(&Self::script(), "the TLS databases")?;
        Ok(Self {
            dir: std::env::var_os("HSF_TLS_DIR")
                .map_or_else(|| PathBuf::from("/tmp/hsf-tls"), PathBuf::from),
            mysql_port: env_port("HSF_TLS_MYSQL_PORT", 3307),
            pg_port: env_port("HSF_TLS_PG_PORT", 5433),
        })
    }

    /// `None` when both servers run (or were started); the reason otherwise.
    pub fn unavailable() -> Option<String> {
        Self::get().err()
    }

    /// A file of the certificate directory (`ca.crt`, `client.key`...).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The server's port.
    pub fn port(&self, kind: DbKind) -> u16 {
        match kind {
            DbKind::Mysql => self.mysql_port,
            DbKind::Postgres => self.pg_port,
        }
    }

    /// The administrator's URL (plain TCP allowed), for `FixtureDb::create_at`.
    pub fn admin_url(&self, kind: DbKind) -> String {
        match kind {
            DbKind::Mysql => format!("mysql://root@127.0.0.1:{}", self.mysql_port),
            DbKind::Postgres => format!("postgres://postgres@127.0.0.1:{}", self.pg_port),
        }
    }

    /// `verify-full` against the test CA.
    pub fn verify_full(&self) -> TlsSettings {
        TlsSettings {
            mode: TlsMode::VerifyFull,
            ca_file: Some(self.file("ca.crt")),
            client_cert: None,
        }
    }

    /// The test client certificate (CN `hsf_cert`).
    pub fn client_cert(&self) -> ClientCert {
        ClientCert {
            cert_file: self.file("client.crt"),
            key_file: self.file("client.key"),
        }
    }

    /// A reader configuration for database `db` on the TLS server of `kind`, as `login`
    /// (user, password) on `host`, with `tls`.
    pub fn config(
        &self,
        kind: DbKind,
        db: &str,
        login: (&str, &str),
        host: &str,
        tls: TlsSettings,
    ) -> MetastoreConfig {
        MetastoreConfig {
            backend: match kind {
                DbKind::Mysql => Backend::Mysql,
                DbKind::Postgres => Backend::Postgres,
            },
            host: host.to_owned(),
            port: self.port(kind),
            user: login.0.to_owned(),
            password: Some(Secret::new(login.1)),
            database: db.to_owned(),
            pool_size: 2,
            statement_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            catalogs: vec!["hive".to_owned()],
            partition_page_size: 7,
            tls,
        }
    }
}
