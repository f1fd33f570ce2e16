//! The real Spark Thrift Server (HiveServer2 protocol) for tests: started once through
//! `tests/scripts/spark-thrift.sh` (which installs pyspark on first use) and shared.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

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

/// Makes sure the server runs (once per test process); `false` when the tests are skipped.
pub fn ensure_server() -> bool {
    static STARTED: OnceLock<Mutex<Option<Result<(), String>>>> = OnceLock::new();
    if std::env::var("HSF_SPARK_TESTS").is_ok_and(|v| v == "skip") {
        eprintln!("HSF_SPARK_TESTS=skip: not running the Spark Thrift Server tests");
        return false;
    }
    let lock = STARTED.get_or_init(|| Mutex::new(None));
    let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
    if state.is_none() {
        let result = if listening(port()) {
            Ok(())
        } else {
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/spark-thrift.sh");
            let t0 = Instant::now();
            match Command::new("bash").arg(&script).arg("start").status() {
                Ok(s) if s.success() => {
                    eprintln!("Spark Thrift Server started in {:.1?}", t0.elapsed());
                    Ok(())
                }
                Ok(s) => Err(format!("{} start: {s}", script.display())),
                Err(e) => Err(format!("{} start: {e}", script.display())),
            }
        };
        *state = Some(result);
    }
    match state.as_ref() {
        Some(Ok(())) => true,
        Some(Err(e)) => panic!("the Spark Thrift Server is not available: {e}"),
        None => unreachable!(),
    }
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
