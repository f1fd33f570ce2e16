//! MySQL/MariaDB backend: a `mysql_async` pool whose connections read every text column as
//! raw bytes (`character_set_results = binary`), so that names Hive stored as raw UTF-8 bytes
//! in its latin1 columns are not mangled by the server's latin1 to UTF-8 conversion; the
//! shared assembly decodes them (UTF-8 first, latin1 fallback). Parameters are sent as bytes
//! through a latin1 client character set, so a byte string compares byte for byte with the
//! stored value (see [`super::assemble::text_params`]).
//!
//! TLS (`mysql_async` over rustls) follows [`super::tls`]: `require` accepts any certificate,
//! `verify-full` checks the chain against `ca_file` and the host name; a failed handshake is a
//! [`MetastoreError::Tls`] naming the cause.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Pool, PoolConstraints, PoolOpts, Value};

use super::assemble::{Cell, Param};
use super::tls::{TlsSettings, describe_tls_failure, mysql_ssl_opts};
use super::{MetastoreConfig, MetastoreError, ServerCode};

/// Pooled MySQL/MariaDB connections.
pub(crate) struct MysqlBackend {
    pool: Pool,
    target: Target,
}

/// Where the pool connects, for naming failures.
struct Target {
    host: String,
    port: u16,
    tls: TlsSettings,
}

impl Target {
    fn of(cfg: &MetastoreConfig) -> Self {
        Self {
            host: cfg.host.clone(),
            port: cfg.port,
            tls: cfg.tls.clone(),
        }
    }
}

impl std::fmt::Debug for MysqlBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlBackend").finish_non_exhaustive()
    }
}

fn base_opts(cfg: &MetastoreConfig) -> Result<OptsBuilder, MetastoreError> {
    let ssl = mysql_ssl_opts(&cfg.tls).map_err(|message| MetastoreError::Tls {
        endpoint: format!("{}:{}", cfg.host, cfg.port),
        message,
    })?;
    Ok(OptsBuilder::default()
        .ip_or_hostname(cfg.host.clone())
        .tcp_port(cfg.port)
        .user(Some(cfg.user.clone()))
        .pass(cfg.password.as_ref().map(|p| p.expose().to_owned()))
        .db_name(Some(cfg.database.clone()))
        .prefer_socket(false)
        .ssl_opts(ssl))
}

/// A failed login or pool checkout: the server's answer (access denied, unknown database,
/// too many connections) classified by its code, a failed TLS handshake named by its cause,
/// anything else a connection error.
fn connection_error(e: mysql_async::Error, cfg: &Target) -> MetastoreError {
    let tls = |message| MetastoreError::Tls {
        endpoint: format!("{}:{}", cfg.host, cfg.port),
        message,
    };
    match e {
        mysql_async::Error::Server(_) => query_error("connect", e),
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) => {
            tls(no_tls_on_server(&cfg.tls))
        }
        // The error text of mysql_async never contains the password.
        other => match describe_tls_failure(&other, &cfg.host, &cfg.tls) {
            Some(message) => tls(message),
            None => MetastoreError::Connection(other.to_string()),
        },
    }
}

fn no_tls_on_server(tls: &TlsSettings) -> String {
    format!(
        "the server does not offer TLS (tls = \"{}\"; the server needs ssl_cert and ssl_key)",
        tls.mode
    )
}

fn query_error(query: &'static str, e: mysql_async::Error) -> MetastoreError {
    match e {
        mysql_async::Error::Server(s) => MetastoreError::Query {
            query,
            message: s.message,
            code: ServerCode::Mysql(s.code),
        },
        other => MetastoreError::Connection(format!("{query}: {other}")),
    }
}

impl MysqlBackend {
    /// Detects MariaDB vs MySQL on one connection (for the statement-timeout variable), then
    /// opens the pool and checks one of its connections.
    pub(crate) async fn connect(cfg: &MetastoreConfig) -> Result<Self, MetastoreError> {
        let target = Target::of(cfg);
        let timeout = cfg.connect_timeout;
        let probe_opts: Opts = base_opts(cfg)?.into();
        let mut conn = tokio::time::timeout(timeout, Conn::new(probe_opts))
            .await
            .map_err(|_| {
                MetastoreError::Connection(format!(
                    "connecting to {}:{} timed out after {timeout:?}",
                    cfg.host, cfg.port
                ))
            })?
            .map_err(|e| connection_error(e, &target))?;
        let version: Option<String> = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| query_error("server_version", e))?;
        let _ = conn.disconnect().await;
        let mariadb = version
            .as_deref()
            .is_some_and(|v| v.to_ascii_lowercase().contains("mariadb"));
        let timeout_stmt = statement_timeout_stmt(mariadb, cfg.statement_timeout);

        let constraints = PoolConstraints::new(0, cfg.pool_size.max(1)).ok_or_else(|| {
            MetastoreError::Connection(format!("invalid pool size {}", cfg.pool_size))
        })?;
        let opts = base_opts(cfg)?
            // `setup` runs on every new connection and after every reset by the pool.
            .setup(vec![
                "SET NAMES latin1".to_owned(),
                "SET character_set_results = binary".to_owned(),
                timeout_stmt,
            ])
            .pool_opts(PoolOpts::new().with_constraints(constraints));
        let pool = Pool::new(opts);
        let check = tokio::time::timeout(timeout, pool.get_conn()).await;
        match check {
            Ok(Ok(conn)) => drop(conn),
            Ok(Err(e)) => {
                let _ = pool.disconnect().await;
                return Err(connection_error(e, &target));
            }
            Err(_) => {
                let _ = pool.disconnect().await;
                return Err(MetastoreError::Connection(format!(
                    "connecting to {}:{} timed out after {timeout:?}",
                    cfg.host, cfg.port
                )));
            }
        }
        Ok(Self { pool, target })
    }

    /// Runs one statement and returns its rows as cells.
    pub(crate) async fn query(
        &self,
        name: &'static str,
        sql: &str,
        params: Vec<Param>,
        connect_timeout: Duration,
    ) -> Result<Vec<Vec<Cell>>, MetastoreError> {
        let mut conn = tokio::time::timeout(connect_timeout, self.pool.get_conn())
            .await
            .map_err(|_| {
                MetastoreError::Connection(format!(
                    "{name}: no connection within {connect_timeout:?}"
                ))
            })?
            .map_err(|e| connection_error(e, &self.target))?;
        let params = if params.is_empty() {
            Params::Empty
        } else {
            Params::Positional(
                params
                    .into_iter()
                    .map(|p| match p {
                        Param::Int(i) => Value::Int(i),
                        Param::Text(s) => Value::Bytes(s.into_bytes()),
                        Param::Bytes(b) => Value::Bytes(b),
                    })
                    .collect(),
            )
        };
        let rows: Vec<mysql_async::Row> = conn
            .exec(sql, params)
            .await
            .map_err(|e| query_error(name, e))?;
        Ok(rows
            .into_iter()
            .map(|mut row| {
                (0..row.len())
                    .map(|i| match row.take::<Value, _>(i) {
                        None | Some(Value::NULL) => Cell::Null,
                        Some(Value::Int(v)) => Cell::Int(v),
                        Some(Value::UInt(v)) => i64::try_from(v).map_or(Cell::Null, Cell::Int),
                        Some(Value::Bytes(b)) => Cell::Bytes(b),
                        Some(other) => Cell::Bytes(other.as_sql(true).into_bytes()),
                    })
                    .collect()
            })
            .collect())
    }

    /// Closes every pooled connection.
    pub(crate) async fn close(self) {
        let _ = self.pool.disconnect().await;
    }
}

/// `SET SESSION max_statement_time` (MariaDB, seconds) or `max_execution_time` (MySQL 5.7.8+,
/// milliseconds; applies to SELECT only, which is all the readers send).
fn statement_timeout_stmt(mariadb: bool, timeout: Duration) -> String {
    if mariadb {
        format!(
            "SET SESSION max_statement_time = {:.3}",
            timeout.as_secs_f64()
        )
    } else {
        format!("SET SESSION max_execution_time = {}", timeout.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_timeout_per_flavour() {
        assert_eq!(
            statement_timeout_stmt(true, Duration::from_millis(1500)),
            "SET SESSION max_statement_time = 1.500"
        );
        assert_eq!(
            statement_timeout_stmt(false, Duration::from_secs(2)),
            "SET SESSION max_execution_time = 2000"
        );
    }
}
