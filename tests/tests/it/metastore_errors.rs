//! How MetaStore errors are classified, against the real servers: a statement the server
//! rejects (here: a column the schema lacks) is not retryable; a statement cancelled by the
//! statement timeout while it waits for a lock is; a login refused for an unknown database is
//! not.

use std::time::Duration;

use hive_smallfiles_core::metastore::{Metastore, MetastoreError, ServerCode};
use hive_smallfiles_tests::metastore_fixture::{DbKind, FixtureDb, SchemaVersion, unique_db_name};

async fn fixture(kind: DbKind, prefix: &str) -> FixtureDb {
    FixtureDb::create(kind, SchemaVersion::Hive2_1, &unique_db_name(prefix))
        .await
        .unwrap()
}

async fn rejected_statement(kind: DbKind) {
    let db = fixture(kind, "ms_rejected").await;
    db.execute(match kind {
        DbKind::Mysql => "ALTER TABLE `SDS` DROP COLUMN `INPUT_FORMAT`",
        DbKind::Postgres => "ALTER TABLE \"SDS\" DROP COLUMN \"INPUT_FORMAT\"",
    })
    .await
    .unwrap();
    let ms = Metastore::connect(&db.metastore_config()).await.unwrap();
    let e = ms.read_snapshot().await.expect_err("a column is missing");
    let want = match kind {
        DbKind::Mysql => ServerCode::Mysql(1054), // ER_BAD_FIELD_ERROR
        DbKind::Postgres => ServerCode::Sqlstate("42703".into()), // undefined_column
    };
    assert!(
        matches!(&e, MetastoreError::Query { code, .. } if *code == want),
        "{e:?}"
    );
    assert!(!e.is_retryable(), "a rejected statement is final: {e}");
    db.drop_database().await.unwrap();
}

async fn statement_timeout_on_a_lock(kind: DbKind) {
    let db = fixture(kind, "ms_locked").await;
    let mut config = db.metastore_config();
    config.statement_timeout = Duration::from_secs(1);
    let ms = Metastore::connect(&config).await.unwrap();
    // The fixture's own session holds a lock on TBLS until it is dropped.
    db.execute(match kind {
        DbKind::Mysql => "LOCK TABLES `TBLS` WRITE",
        DbKind::Postgres => "BEGIN; LOCK TABLE \"TBLS\" IN ACCESS EXCLUSIVE MODE",
    })
    .await
    .unwrap();
    let e = ms.read_snapshot().await.expect_err("TBLS is locked");
    let want = match kind {
        // ER_STATEMENT_TIMEOUT (MariaDB max_statement_time); MySQL's max_execution_time
        // gives ER_QUERY_TIMEOUT.
        DbKind::Mysql => [ServerCode::Mysql(1969), ServerCode::Mysql(3024)],
        // query_canceled
        DbKind::Postgres => [
            ServerCode::Sqlstate("57014".into()),
            ServerCode::Sqlstate("57014".into()),
        ],
    };
    assert!(
        matches!(&e, MetastoreError::Query { code, .. } if want.contains(code)),
        "{e:?}"
    );
    assert!(
        e.is_retryable(),
        "a timed-out statement may pass later: {e}"
    );
    db.execute(match kind {
        DbKind::Mysql => "UNLOCK TABLES",
        DbKind::Postgres => "ROLLBACK",
    })
    .await
    .unwrap();
    db.drop_database().await.unwrap();
}

/// A login the server refuses (unknown database) is final, like a rejected statement (a
/// refused TCP connection is retryable: `metastore::unreachable_database_is_a_quick_connection_error`).
async fn login_rejected(kind: DbKind) {
    let db = fixture(kind, "ms_login").await;
    let mut config = db.metastore_config();
    config.database = format!("{}_missing", db.db_name());
    let e = Metastore::connect(&config)
        .await
        .expect_err("no such database");
    assert!(
        matches!(
            &e,
            MetastoreError::Query {
                query: "connect",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.is_retryable(), "{e}");
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn mariadb_rejected_statement_is_not_retryable() {
    rejected_statement(DbKind::Mysql).await;
}

#[tokio::test]
async fn postgres_rejected_statement_is_not_retryable() {
    rejected_statement(DbKind::Postgres).await;
}

#[tokio::test]
async fn mariadb_statement_timeout_is_retryable() {
    statement_timeout_on_a_lock(DbKind::Mysql).await;
}

#[tokio::test]
async fn postgres_statement_timeout_is_retryable() {
    statement_timeout_on_a_lock(DbKind::Postgres).await;
}

#[tokio::test]
async fn mariadb_rejected_login_is_not_retryable() {
    login_rejected(DbKind::Mysql).await;
}

#[tokio::test]
async fn postgres_rejected_login_is_not_retryable() {
    login_rejected(DbKind::Postgres).await;
}
