//! STUB: replaced by the real HiveServer2 client.
#![allow(missing_docs, dead_code, clippy::unused_async)]
use hive_smallfiles_exporter::secret::Secret;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hs2Auth {
    Plain,
    NoSasl,
}
#[derive(Debug, Clone)]
pub struct Hs2Config {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    pub auth: Hs2Auth,
    pub connect_timeout: Duration,
    pub poll_interval: Duration,
    pub session_conf: Vec<(String, String)>,
}
#[derive(Debug, thiserror::Error)]
pub enum Hs2Error {
    #[error("connect {0}")]
    Connect(String),
    #[error("server {message}")]
    Server {
        sql_state: String,
        error_code: i32,
        message: String,
    },
    #[error("cancelled")]
    Cancelled,
}
impl Hs2Error {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Connect(_))
    }
    pub fn metric_label(&self) -> &'static str {
        "stub"
    }
}
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    String(String),
    Binary(Vec<u8>),
}
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}
#[derive(Debug)]
pub struct Hs2Session;
impl Hs2Session {
    pub async fn open(_cfg: &Hs2Config) -> Result<Self, Hs2Error> {
        Err(Hs2Error::Connect("stub".into()))
    }
    pub async fn execute(
        &mut self,
        _sql: &str,
        _c: &CancellationToken,
    ) -> Result<QueryResult, Hs2Error> {
        Err(Hs2Error::Cancelled)
    }
    pub async fn execute_update(
        &mut self,
        _sql: &str,
        _c: &CancellationToken,
    ) -> Result<(), Hs2Error> {
        Err(Hs2Error::Cancelled)
    }
    pub async fn close(self) -> Result<(), Hs2Error> {
        Ok(())
    }
}
