//! The agent's native HiveServer2 client against a real Spark Thrift Server (HiveServer2
//! protocol, binary transport, SASL PLAIN with authentication NONE, Hive 2.3 metastore on
//! MariaDB, `file:` warehouse).
//!
//! The server: when nothing listens on `127.0.0.1:$HSF_SPARK_PORT` (default 10000), the first
//! test to need it runs `tests/scripts/spark-thrift.sh start` (installs pyspark on first use;
//! the script's lock keeps parallel test processes from starting two). The server is shared
//! by all tests and left running afterwards; stop it with `tests/scripts/spark-thrift.sh
//! stop`. Each test works in its own database (`hsf_hs2_<test>_<pid>`), dropped at the start
//! and the end. `HSF_SKIP=spark` skips these tests on machines that cannot run Spark (each
//! prints `SKIPPED: …`; with `CI=true` a skip fails).

use std::time::{Duration, Instant};

use hive_smallfiles_agent::hiveserver2::{
    Hs2Auth, Hs2Config, Hs2Error, Hs2Session, QueryResult, Value,
};
use hive_smallfiles_core::secret::Secret;
use tokio_util::sync::CancellationToken;

use hive_smallfiles_tests::require;
use hive_smallfiles_tests::spark::{self, port};

fn config() -> Hs2Config {
    let mut cfg = Hs2Config::new("127.0.0.1", port(), "hsf_test");
    cfg.password = Some(Secret::new("not-checked"));
    cfg.connect_timeout = Duration::from_secs(60);
    cfg.poll_interval = Duration::from_millis(100);
    cfg
}

async fn session() -> Hs2Session {
    Hs2Session::open(&config()).await.expect("open session")
}

/// A per-test database, dropped at the start and by [`Db::drop_now`].
struct Db(String);

impl Db {
    async fn create(s: &mut Hs2Session, test: &str) -> Self {
        let db = Self(format!("hsf_hs2_{test}_{}", std::process::id()));
        let no = CancellationToken::new();
        s.execute_update(&format!("DROP DATABASE IF EXISTS {} CASCADE", db.0), &no)
            .await
            .unwrap();
        s.execute_update(&format!("CREATE DATABASE {}", db.0), &no)
            .await
            .unwrap();
        db
    }

    async fn drop_now(self, s: &mut Hs2Session) {
        let no = CancellationToken::new();
        s.execute_update(&format!("DROP DATABASE IF EXISTS {} CASCADE", self.0), &no)
            .await
            .unwrap();
    }
}

async fn query(s: &mut Hs2Session, sql: &str) -> QueryResult {
    s.execute(sql, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn string(v: &str) -> Value {
    Value::String(v.to_owned())
}

#[tokio::test]
async fn literals_and_protocol_version() {
    require!(spark::unavailable());
    let mut s = session().await;
    // Spark's server supports up to V11, as does the client.
    assert_eq!(s.protocol_version(), "V11");
    let r = query(
        &mut s,
        "SELECT 1, 'x', CAST(NULL AS STRING), 2.5, true, CAST('ab' AS BINARY)",
    )
    .await;
    assert_eq!(r.columns.len(), 6, "{:?}", r.columns);
    assert_eq!(r.columns[0], "1");
    assert_eq!(
        r.rows,
        vec![vec![
            Value::Int(1),
            string("x"),
            Value::Null,
            // 2.5 is a DECIMAL(2,1) literal; HiveServer2 sends decimals as strings.
            string("2.5"),
            Value::Bool(true),
            Value::Binary(b"ab".to_vec()),
        ]]
    );
    // Latency of a trivial query on an open session.
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let t0 = Instant::now();
        let r = query(&mut s, "SELECT 1").await;
        best = best.min(t0.elapsed());
        assert_eq!(r.rows, vec![vec![Value::Int(1)]]);
    }
    eprintln!("SELECT 1 round trip: best of 5 {best:.1?}");
    s.close().await.unwrap();
}

#[tokio::test]
async fn partitioned_textfile_table_round_trip() {
    require!(spark::unavailable());
    let mut s = session().await;
    let db = Db::create(&mut s, "table").await;
    let no = CancellationToken::new();
    let t = format!("{}.events", db.0);
    s.execute_update(
        &format!(
            "CREATE TABLE {t} (id INT, name STRING, amount DOUBLE, big BIGINT, ok BOOLEAN, \
             small SMALLINT, tiny TINYINT, day DATE) PARTITIONED BY (dt STRING) STORED AS TEXTFILE"
        ),
        &no,
    )
    .await
    .unwrap();
    s.execute_update(
        &format!(
            "INSERT INTO {t} PARTITION (dt='2024-01-01') VALUES \
             (1, 'a', 1.5, 10000000000, true, 7, -3, DATE'2024-01-01'), \
             (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        ),
        &no,
    )
    .await
    .unwrap();
    s.execute_update(
        &format!("INSERT INTO {t} PARTITION (dt='2024-01-02') VALUES (3, 'c''s', -0.25, -1, false, 0, 0, DATE'2024-02-29')"),
        &no,
    )
    .await
    .unwrap();

    let r = query(&mut s, &format!("SELECT count(*) FROM {t}")).await;
    assert_eq!(r.rows, vec![vec![Value::Int(3)]]);

    let r = query(&mut s, &format!("SELECT * FROM {t} ORDER BY id")).await;
    assert_eq!(
        r.columns,
        [
            "id", "name", "amount", "big", "ok", "small", "tiny", "day", "dt"
        ]
    );
    assert_eq!(
        r.rows,
        vec![
            vec![
                Value::Int(1),
                string("a"),
                Value::Double(1.5),
                Value::Int(10_000_000_000),
                Value::Bool(true),
                Value::Int(7),
                Value::Int(-3),
                string("2024-01-01"),
                string("2024-01-01"),
            ],
            vec![
                Value::Int(2),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                string("2024-01-01"),
            ],
            vec![
                Value::Int(3),
                string("c's"),
                Value::Double(-0.25),
                Value::Int(-1),
                Value::Bool(false),
                Value::Int(0),
                Value::Int(0),
                string("2024-02-29"),
                string("2024-01-02"),
            ],
        ]
    );

    let r = query(&mut s, &format!("SHOW PARTITIONS {t}")).await;
    assert_eq!(
        r.rows,
        vec![vec![string("dt=2024-01-01")], vec![string("dt=2024-01-02")]]
    );

    // The merge statement the agent uses on Spark (facts: works for TEXTFILE).
    s.execute_update(
        &format!(
            "INSERT OVERWRITE TABLE {t} PARTITION (dt='2024-01-01') \
             SELECT /*+ COALESCE(1) */ id, name, amount, big, ok, small, tiny, day FROM {t} WHERE dt='2024-01-01'"
        ),
        &no,
    )
    .await
    .unwrap();
    let r = query(
        &mut s,
        &format!("SELECT count(*) FROM {t} WHERE dt='2024-01-01'"),
    )
    .await;
    assert_eq!(r.rows, vec![vec![Value::Int(2)]]);

    db.drop_now(&mut s).await;
    s.close().await.unwrap();
}

#[tokio::test]
async fn server_errors_carry_the_message_and_the_session_survives() {
    require!(spark::unavailable());
    let mut s = session().await;
    let err = s
        .execute(
            "SELECT * FROM hsf_no_such_db.hsf_no_such_table",
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    match &err {
        Hs2Error::Server { message, .. } => {
            assert!(message.contains("hsf_no_such_table"), "{message}");
            assert!(
                message.contains("TABLE_OR_VIEW_NOT_FOUND")
                    || message.to_lowercase().contains("not found"),
                "{message}"
            );
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    assert_eq!(err.metric_label(), "server");
    assert!(!err.is_retryable());
    // A syntax error too.
    let err = s
        .execute_update("SELEC 1", &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Hs2Error::Server { .. }), "{err:?}");
    let r = query(&mut s, "SELECT 'still here'").await;
    assert_eq!(r.rows, vec![vec![string("still here")]]);
    s.close().await.unwrap();
}

#[tokio::test]
async fn cancellation_stops_a_long_query_and_keeps_the_session() {
    require!(spark::unavailable());
    let mut s = session().await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        trigger.cancel();
        Instant::now()
    });
    let t0 = Instant::now();
    // 10^11 rows: minutes of work on two cores.
    let r = s
        .execute(
            "SELECT count(*) FROM range(1000000) a CROSS JOIN range(100000) b \
             WHERE (a.id * 31 + b.id) % 1000003 = 7",
            &cancel,
        )
        .await;
    let cancelled_at = canceller.await.unwrap();
    assert_eq!(r, Err(Hs2Error::Cancelled), "after {:.1?}", t0.elapsed());
    // The lag is mostly the GetOperationStatus call in flight when the token fires: the server
    // long-polls it (hive.server2.long.polling.timeout, 5 s by default) and the client waits
    // for that reply before sending CancelOperation on the same connection.
    let lag = cancelled_at.elapsed();
    eprintln!("cancelled {lag:.1?} after the token fired");
    assert!(lag < Duration::from_secs(8), "cancellation took {lag:?}");
    // An already cancelled token does not even start a statement.
    assert_eq!(
        s.execute("SELECT 1", &cancel).await,
        Err(Hs2Error::Cancelled)
    );
    let r = query(&mut s, "SELECT 42").await;
    assert_eq!(r.rows, vec![vec![Value::Int(42)]]);
    s.close().await.unwrap();
}

#[tokio::test]
async fn many_rows_cross_fetch_batches() {
    require!(spark::unavailable());
    let mut s = session().await;
    let t0 = Instant::now();
    let r = query(
        &mut s,
        "SELECT id, concat('row-', CAST(id AS STRING)) AS label FROM range(25000) ORDER BY id",
    )
    .await;
    eprintln!("25,000 rows in {:.1?}", t0.elapsed());
    assert_eq!(r.columns, ["id", "label"]);
    assert_eq!(r.rows.len(), 25_000);
    for (i, row) in r.rows.iter().enumerate() {
        assert_eq!(
            row,
            &vec![Value::Int(i as i64), Value::String(format!("row-{i}"))]
        );
    }
    s.close().await.unwrap();
}

#[tokio::test]
async fn session_conf_is_applied() {
    require!(spark::unavailable());
    let mut cfg = config();
    cfg.session_conf = vec![
        ("spark.sql.shuffle.partitions".into(), "7".into()),
        ("set:hivevar:hsf_marker".into(), "m1".into()),
    ];
    let mut s = Hs2Session::open(&cfg).await.unwrap();
    let r = query(&mut s, "SET spark.sql.shuffle.partitions").await;
    assert_eq!(
        r.rows,
        vec![vec![string("spark.sql.shuffle.partitions"), string("7")]]
    );
    // Another session keeps the server's default (2, from the start script).
    let mut other = session().await;
    let r = query(&mut other, "SET spark.sql.shuffle.partitions").await;
    assert_ne!(
        r.rows,
        vec![vec![string("spark.sql.shuffle.partitions"), string("7")]]
    );
    other.close().await.unwrap();
    s.close().await.unwrap();
}

#[tokio::test]
async fn connection_failures_are_typed() {
    require!(spark::unavailable());
    // Nothing listens on port 1.
    let mut cfg = config();
    cfg.port = 1;
    let err = Hs2Session::open(&cfg).await.unwrap_err();
    assert!(matches!(err, Hs2Error::Connect(_)), "{err:?}");
    assert!(err.is_retryable());
    // NOSASL against a SASL server fails fast instead of hanging.
    let mut cfg = config();
    cfg.auth = Hs2Auth::NoSasl;
    cfg.connect_timeout = Duration::from_secs(20);
    let t0 = Instant::now();
    let err = Hs2Session::open(&cfg).await.unwrap_err();
    assert!(
        !matches!(err, Hs2Error::Timeout),
        "{err:?} after {:?}",
        t0.elapsed()
    );
    // The password never appears in errors or debug output.
    let cfg = config();
    assert!(!format!("{cfg:?}").contains("not-checked"));
    assert!(!format!("{err:?}{err}").contains("not-checked"));
}
