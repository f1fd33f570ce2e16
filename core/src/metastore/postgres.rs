//! PostgreSQL backend: a small pool of `tokio-postgres` clients behind a semaphore, over
//! plain TCP or TLS (rustls, [`super::postgres_tls`]; `sslmode` semantics of libpq, see
//! [`super::tls`]). The statement timeout is set server-side per connection through the
//! startup option `-c statement_timeout=<ms>`; text columns arrive as UTF-8 strings.

use std::time::Duration;

use tokio::sync::{Mutex, Semaphore};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Socket};

use super::assemble::{Cell, Param};
use super::postgres_tls::MakeRustlsConnect;
use super::tls::{TlsMode, TlsSettings, client_config, describe_tls_failure};
use super::{MetastoreConfig, MetastoreError, ServerCode};

/// Pooled PostgreSQL clients.
pub(crate) struct PgBackend {
    config: Config,
    tls: Option<MakeRustlsConnect>,
    tls_settings: TlsSettings,
    host: String,
    endpoint: String,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
    connect_timeout: Duration,
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackend").finish_non_exhaustive()
    }
}

fn pg_error(query: &'static str, e: tokio_postgres::Error) -> MetastoreError {
    match e.as_db_error() {
        Some(db) => MetastoreError::Query {
            query,
            message: db.message().to_owned(),
            code: ServerCode::Sqlstate(db.code().code().to_owned()),
        },
        None => MetastoreError::Connection(format!("{query}: {}", with_causes(&e))),
    }
}

/// `e: cause: cause…` (tokio-postgres keeps the cause out of its own message).
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cur = c.source();
    }
    text
}

/// A failed connection attempt: a TLS failure named by its cause (not retryable), else
/// [`pg_error`].
fn pg_connect_error(
    e: tokio_postgres::Error,
    host: &str,
    endpoint: &str,
    tls: &TlsSettings,
) -> MetastoreError {
    if let Some(message) = describe_tls_failure(&e, host, tls) {
        return MetastoreError::Tls {
            endpoint: endpoint.to_owned(),
            message,
        };
    }
    // What tokio-postgres says when the server answers `N` to the SSLRequest.
    if tls.mode != TlsMode::Disable && with_causes(&e).contains("server does not support TLS") {
        return MetastoreError::Tls {
            endpoint: endpoint.to_owned(),
            message: format!(
                "the server does not offer TLS (tls = \"{}\"; the server needs ssl = on)",
                tls.mode
            ),
        };
    }
    pg_error("connect", e)
}

impl PgBackend {
    /// Builds the pool and checks one connection.
    pub(crate) async fn connect(cfg: &MetastoreConfig) -> Result<Self, MetastoreError> {
        let mut config = Config::new();
        config
            .host(&cfg.host)
            .port(cfg.port)
            .user(&cfg.user)
            .dbname(&cfg.database)
            .application_name("hive-smallfiles")
            .connect_timeout(cfg.connect_timeout)
            .options(format!(
                "-c statement_timeout={}",
                cfg.statement_timeout.as_millis().max(1)
            ));
        if let Some(p) = &cfg.password {
            config.password(p.expose());
        }
        let endpoint = format!("{}:{}", cfg.host, cfg.port);
        let tls = match cfg.tls.mode {
            TlsMode::Disable => {
                config.ssl_mode(SslMode::Disable);
                None
            }
            _ => {
                config.ssl_mode(SslMode::Require);
                let rustls = client_config(&cfg.tls).map_err(|message| MetastoreError::Tls {
                    endpoint: endpoint.clone(),
                    message,
                })?;
                Some(MakeRustlsConnect::new(rustls))
            }
        };
        let backend = Self {
            config,
            tls,
            tls_settings: cfg.tls.clone(),
            host: cfg.host.clone(),
            endpoint,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(cfg.pool_size.max(1)),
            connect_timeout: cfg.connect_timeout,
        };
        let client = backend.new_client().await?;
        backend.idle.lock().await.push(client);
        Ok(backend)
    }

    async fn new_client(&self) -> Result<Client, MetastoreError> {
        match &self.tls {
            None => self.new_client_with(NoTls).await,
            Some(tls) => self.new_client_with(tls.clone()).await,
        }
    }

    async fn new_client_with<T>(&self, tls: T) -> Result<Client, MetastoreError>
    where
        T: MakeTlsConnect<Socket> + Send,
        T::Stream: Send + 'static,
        T::TlsConnect: Send,
        <T::TlsConnect as tokio_postgres::tls::TlsConnect<Socket>>::Future: Send,
    {
        let connecting = self.config.connect(tls);
        let (client, connection) = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| {
                MetastoreError::Connection(format!(
                    "connecting timed out after {:?}",
                    self.connect_timeout
                ))
            })?
            // The server's answer to the login (invalid password, unknown database, too many
            // connections) is classified by its SQLSTATE, a failed handshake by its cause.
            // tokio-postgres error texts never contain the password.
            .map_err(|e| pg_connect_error(e, &self.host, &self.endpoint, &self.tls_settings))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "metastore postgres connection ended");
            }
        });
        Ok(client)
    }

    /// Runs one statement and returns its rows as cells.
    pub(crate) async fn query(
        &self,
        name: &'static str,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<Vec<Vec<Cell>>, MetastoreError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| MetastoreError::Connection("pool closed".to_owned()))?;
        let pooled = self.idle.lock().await.pop();
        let client = match pooled {
            Some(c) if !c.is_closed() => c,
            _ => self.new_client().await?,
        };
        let values: Vec<Box<dyn ToSql + Sync + Send>> = params
            .into_iter()
            .map(|p| -> Box<dyn ToSql + Sync + Send> {
                match p {
                    Param::Int(i) => Box::new(i),
                    Param::Text(s) => Box::new(s),
                    Param::Bytes(b) => Box::new(String::from_utf8_lossy(&b).into_owned()),
                }
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = values
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let result = client.query(sql, &refs).await;
        if !client.is_closed() {
            self.idle.lock().await.push(client);
        }
        let rows = result.map_err(|e| pg_error(name, e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut cells = Vec::with_capacity(row.len());
            for (i, col) in row.columns().iter().enumerate() {
                let cell = match *col.type_() {
                    Type::INT8 => row
                        .try_get::<_, Option<i64>>(i)
                        .map(|v| v.map_or(Cell::Null, Cell::Int)),
                    Type::INT4 => row
                        .try_get::<_, Option<i32>>(i)
                        .map(|v| v.map_or(Cell::Null, |v| Cell::Int(i64::from(v)))),
                    Type::INT2 => row
                        .try_get::<_, Option<i16>>(i)
                        .map(|v| v.map_or(Cell::Null, |v| Cell::Int(i64::from(v)))),
                    _ => row
                        .try_get::<_, Option<String>>(i)
                        .map(|v| v.map_or(Cell::Null, Cell::Text)),
                };
                cells.push(cell.map_err(|e| MetastoreError::Decode {
                    query: name,
                    message: format!("column {i} ({}): {e}", col.type_()),
                })?);
            }
            out.push(cells);
        }
        Ok(out)
    }

    /// Drops every pooled client (their connection tasks end).
    pub(crate) async fn close(self) {
        self.permits.close();
        self.idle.lock().await.clear();
    }
}
