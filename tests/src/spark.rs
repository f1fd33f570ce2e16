//! The real Spark Thrift Server (HiveServer2 protocol) for tests: started once through
//! `tests/scripts/spark-thrift.sh` (which installs pyspark on first use) and shared; and the
//! tests' own sessions on it (through the agent's HiveServer2 client), with rows rendered as
//! text so that they compare before and after a merge.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hive_smallfiles_agent::audit::AuditLog;
use hive_smallfiles_agent::config::AgentConfig;
use hive_smallfiles_agent::executor::MergeRunner;
use hive_smallfiles_agent::hiveserver2::{Hs2Config, Hs2Session, Value};
use hive_smallfiles_agent::metrics::AgentMetrics;
use hive_smallfiles_agent::work::{JobRecord, JobState, Source, TableKey, WorkItem};
use hive_smallfiles_core::fs::webhdfs::WebHdfsMetrics;
use tokio_util::sync::CancellationToken;

/// The server's port (`HSF_SPARK_PORT`, default 10000).
pub fn port() -> u16 {
    std::env::var("HSF_SPARK_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(10000)
}

/// Whether something accepts connections on the port.
pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1))
        .is_ok()
}

/// Why the Spark tests cannot run, or `None` once the server runs (started once per test
/// process through `tests/scripts/spark-thrift.sh start` when nothing listens). `HSF_SKIP=spark`
/// skips them on purpose. Use as `require!(spark::unavailable())`.
pub fn unavailable() -> Option<String> {
    static STARTED: OnceLock<Mutex<Option<Result<(), String>>>> = OnceLock::new();
    if crate::skip::skipped_on_purpose("spark") {
        return Some("the Spark Thrift Server tests are disabled by HSF_SKIP=spark".to_owned());
    }
    let lock = STARTED.get_or_init(|| Mutex::new(None));
    let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
    let result = state.get_or_insert_with(|| {
        if listening(port()) {
            return Ok(());
        }
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/spark-thrift.sh");
        let t0 = Instant::now();
        match Command::new("bash").arg(&script).arg("start").status() {
            Ok(s) if s.success() && listening(port()) => {
                eprintln!("Spark Thrift Server started in {:.1?}", t0.elapsed());
                Ok(())
            }
            Ok(s) => Err(format!(
                "the Spark Thrift Server is not available on 127.0.0.1:{} ({} start: {s})",
                port(),
                script.display()
            )),
            Err(e) => Err(format!(
                "the Spark Thrift Server is not available ({} start: {e})",
                script.display()
            )),
        }
    });
    result.clone().err()
}

/// The server's `file:` warehouse directory.
pub fn warehouse() -> PathBuf {
    std::env::var_os("HSF_SPARK_WAREHOUSE").map_or_else(
        || {
            PathBuf::from(
                std::env::var_os("HSF_SPARK_HOME").unwrap_or_else(|| "/tmp/hsf-spark".into()),
            )
            .join("warehouse")
        },
        PathBuf::from,
    )
}

/// The MariaDB database holding the server's metastore.
pub fn metastore_db() -> String {
    std::env::var("HSF_SPARK_METASTORE_DB").unwrap_or_else(|_| "hsf_spark_metastore".to_owned())
}

/// The configuration of a test's own session (not the agent's) as `user`.
pub fn hs2_config(user: &str) -> Hs2Config {
    let mut cfg = Hs2Config::new("127.0.0.1", port(), user);
    cfg.connect_timeout = Duration::from_secs(60);
    cfg.poll_interval = Duration::from_millis(50);
    cfg
}

/// Opens a test's own session as `user`; panics saying where and why when it cannot.
pub async fn session(user: &str) -> Hs2Session {
    Hs2Session::open(&hs2_config(user))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot open a session on the Spark Thrift Server at 127.0.0.1:{}: {e}",
                port()
            )
        })
}

/// Runs a statement; panics with the statement and the server's error.
pub async fn exec(s: &mut Hs2Session, sql: &str) {
    s.execute_update(sql, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// One value as text: `NULL`, numbers and booleans as written, strings as they are (NaN
/// compares by its text, not by `==`).
pub fn render(v: &Value) -> String {
    match v {
        Value::Null => "NULL".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Double(d) => format!("{d:?}"),
        Value::String(s) => s.clone(),
        Value::Binary(b) => format!("{b:?}"),
    }
}

/// The rows of a query, every value rendered, or the server's error.
pub async fn try_query(s: &mut Hs2Session, sql: &str) -> Result<Vec<Vec<String>>, String> {
    let r = s
        .execute(sql, &CancellationToken::new())
        .await
        .map_err(|e| e.to_string())?;
    Ok(r.rows
        .iter()
        .map(|row| row.iter().map(render).collect())
        .collect())
}

/// The rows of a query, every value rendered; panics with the query on an error.
pub async fn query(s: &mut Hs2Session, sql: &str) -> Vec<Vec<String>> {
    try_query(s, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// `REFRESH TABLE` (the session's file listings may predate a merge made elsewhere).
async fn refresh(s: &mut Hs2Session, table: &str) {
    exec(s, &format!("REFRESH TABLE {table}")).await;
}

/// `count(*)` of a table, read afresh.
pub async fn count(s: &mut Hs2Session, table: &str) -> u64 {
    refresh(s, table).await;
    let rows = query(s, &format!("SELECT count(*) FROM {table}")).await;
    rows[0][0]
        .parse()
        .unwrap_or_else(|e| panic!("count(*) of {table} = {:?}: {e}", rows[0][0]))
}

/// Every row of a table, read afresh, as `|`-joined lines, sorted: the multiset compared
/// before and after a merge.
pub async fn sorted_rows(s: &mut Hs2Session, table: &str) -> Vec<String> {
    refresh(s, table).await;
    let mut rows: Vec<String> = query(s, &format!("SELECT * FROM {table}"))
        .await
        .into_iter()
        .map(|r| r.join("|"))
        .collect();
    rows.sort();
    rows
}

/// A running manual job for a table of the cluster `spark` (the runner tests' input).
pub fn manual_job(id: u64, database: &str, table: &str) -> JobRecord {
    JobRecord {
        id,
        item: WorkItem {
            key: TableKey {
                cluster: "spark".into(),
                database: database.into(),
                table: table.into(),
            },
            partitions: Default::default(),
            priority: 1,
            fingerprints: Default::default(),
            source: Source::Manual,
            dry_run: false,
        },
        state: JobState::Running,
        attempts: 1,
        created_at: std::time::SystemTime::now(),
        started_at: Some(std::time::SystemTime::now()),
        finished_at: None,
        not_before: None,
        outcome: None,
        stopped: None,
    }
}

/// A merge runner for `config` with a fresh audit log and metrics, as the agent builds it.
pub fn merge_runner(config: &AgentConfig) -> (Arc<AuditLog>, MergeRunner) {
    let audit = Arc::new(AuditLog::open(&config.audit_log).expect("audit log"));
    let runner = MergeRunner::new(
        &config.clusters,
        config.policy.clone(),
        Arc::clone(&audit),
        Arc::new(AgentMetrics::new()),
        &WebHdfsMetrics::default(),
        &config.native,
    )
    .expect("merge runner");
    (audit, runner)
}

/// The ports of the Kerberized Thrift Servers of `tests/scripts/spark-thrift-secure.sh`:
/// binary transport with SSL and `auth-conf` (`HSF_SPARK_SECURE_BINARY_PORT`, default 10001)
/// and HTTP transport with SSL (`HSF_SPARK_SECURE_HTTP_PORT`, default 10002).
pub fn secure_ports() -> (u16, u16) {
    let port = |var: &str, default: u16| {
        std::env::var(var)
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(default)
    };
    (
        port("HSF_SPARK_SECURE_BINARY_PORT", 10001),
        port("HSF_SPARK_SECURE_HTTP_PORT", 10002),
    )
}

/// The directory of the secure servers' test CA (`ca.pem`, `other-ca.pem`).
pub fn secure_tls_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("HSF_SPARK_HOME").unwrap_or_else(|| "/tmp/hsf-spark".into()))
        .join("tls")
}

/// Why the Kerberized Thrift Server tests cannot run, or `None` once both servers listen.
/// tests/run.sh starts them in the background; when they do not listen yet,
/// `tests/scripts/spark-thrift-secure.sh start` is run once per test process (it waits for a
/// start in progress, bounded by its own timeout). `HSF_SKIP=spark` skips them on purpose.
pub fn secure_unavailable() -> Option<String> {
    static STARTED: OnceLock<Mutex<Option<Result<(), String>>>> = OnceLock::new();
    if crate::skip::skipped_on_purpose("spark") {
        return Some("the Spark Thrift Server tests are disabled by HSF_SKIP=spark".to_owned());
    }
    let (binary, http) = secure_ports();
    let lock = STARTED.get_or_init(|| Mutex::new(None));
    let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
    let result = state.get_or_insert_with(|| {
        if listening(binary) && listening(http) {
            return Ok(());
        }
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/spark-thrift-secure.sh");
        let t0 = Instant::now();
        match Command::new("bash").arg(&script).arg("start").status() {
            Ok(s) if s.success() && listening(binary) && listening(http) => {
                eprintln!(
                    "Kerberized Spark Thrift Servers ready in {:.1?}",
                    t0.elapsed()
                );
                Ok(())
            }
            Ok(s) => Err(format!(
                "the Kerberized Spark Thrift Servers are not available on 127.0.0.1:{binary} \
                 and :{http} ({} start: {s})",
                script.display()
            )),
            Err(e) => Err(format!(
                "the Kerberized Spark Thrift Servers are not available ({} start: {e})",
                script.display()
            )),
        }
    });
    result.clone().err()
}
