//! Which errors of the MetaStore's database server are worth retrying (pure).
//!
//! A server answers a statement it cannot run with a code: MySQL/MariaDB with an error number,
//! PostgreSQL with a SQLSTATE. Connection trouble, timeouts, deadlocks, lock waits,
//! serialization failures, exhausted resources and shutdowns pass: the same statement may run
//! later. Everything else is the statement or the account being wrong (syntax, a missing table
//! or column, a denied privilege, an unknown database) and returns the same error however often
//! it is sent; so are codes not listed here.
//!
//! Sources: MySQL 8.0 Server Error Message Reference and MariaDB's error codes
//! (<https://dev.mysql.com/doc/mysql-errors/8.0/en/server-error-reference.html>,
//! <https://mariadb.com/kb/en/mariadb-error-codes/>); PostgreSQL Appendix A, "PostgreSQL Error
//! Codes" (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).

/// An error code as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCode {
    /// A MySQL/MariaDB error number (`ER_*`).
    Mysql(u16),
    /// A PostgreSQL SQLSTATE (five characters).
    Sqlstate(String),
}

impl ServerCode {
    /// Whether the same statement may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Mysql(code) => mysql_retryable(*code),
            Self::Sqlstate(state) => sqlstate_retryable(state),
        }
    }
}

impl std::fmt::Display for ServerCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Mysql(code) => write!(f, "error {code}"),
            Self::Sqlstate(state) => write!(f, "SQLSTATE {state}"),
        }
    }
}

/// MySQL/MariaDB error numbers of transient conditions.
pub fn mysql_retryable(code: u16) -> bool {
    matches!(
        code,
        // ER_CON_COUNT_ERROR, ER_TOO_MANY_USER_CONNECTIONS: too many connections.
        1040 | 1203
        // ER_OUTOFMEMORY, ER_OUT_OF_SORTMEMORY, ER_OUT_OF_RESOURCES, ER_CANT_CREATE_THREAD.
        | 1037 | 1038 | 1041 | 1135
        // ER_UNKNOWN_COM_ERROR: what a Galera node not yet synced answers (WSREP not ready).
        | 1047
        // ER_SERVER_SHUTDOWN, ER_ABORTING_CONNECTION, ER_NET_READ_ERROR,
        // ER_NET_READ_INTERRUPTED, ER_NET_ERROR_ON_WRITE, ER_NET_WRITE_INTERRUPTED.
        | 1053 | 1152 | 1158 | 1159 | 1160 | 1161
        // ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK, ER_QUERY_INTERRUPTED, ER_XA_RBDEADLOCK.
        | 1205 | 1213 | 1317 | 1614
        // MariaDB: ER_CONNECTION_KILLED, ER_STATEMENT_TIMEOUT (max_statement_time).
        | 1927 | 1969
        // MySQL: ER_QUERY_TIMEOUT (max_execution_time), ER_CLIENT_INTERACTION_TIMEOUT.
        | 3024 | 4031
    )
}

/// PostgreSQL SQLSTATEs of transient conditions.
pub fn sqlstate_retryable(state: &str) -> bool {
    let class = state.get(..2).unwrap_or(state);
    match class {
        // 08: connection exception; 53: insufficient resources (disk full, out of memory,
        // too many connections, configuration limit exceeded).
        "08" | "53" => true,
        _ => matches!(
            state,
            // serialization_failure, statement_completion_unknown, deadlock_detected.
            "40001" | "40003" | "40P01"
            // lock_not_available.
            | "55P03"
            // query_canceled (statement_timeout), admin_shutdown, crash_shutdown,
            // cannot_connect_now, idle_session_timeout.
            | "57014" | "57P01" | "57P02" | "57P03" | "57P05"
            // idle_in_transaction_session_timeout.
            | "25P03"
            // system_error, io_error.
            | "58000" | "58030"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_mysql_errors_pass_rejected_statements_do_not() {
        for code in [1205, 1213, 1040, 1969, 3024, 1053] {
            assert!(ServerCode::Mysql(code).is_retryable(), "{code}");
        }
        // Syntax, no such table, unknown column, access denied (table, database, login),
        // unknown database.
        for code in [1064, 1146, 1054, 1142, 1044, 1045, 1049] {
            assert!(!ServerCode::Mysql(code).is_retryable(), "{code}");
        }
    }

    #[test]
    fn transient_sqlstates_pass_rejected_statements_do_not() {
        for s in [
            "08006", "08001", "40001", "40P01", "55P03", "57014", "53300", "57P01",
        ] {
            assert!(ServerCode::Sqlstate(s.into()).is_retryable(), "{s}");
        }
        // Syntax, undefined table, undefined column, insufficient privilege, invalid
        // password, unknown database, integrity constraint violation in class 40, the database
        // dropped.
        for s in [
            "42601", "42P01", "42703", "42501", "28P01", "3D000", "40002", "57P04", "",
        ] {
            assert!(!ServerCode::Sqlstate(s.into()).is_retryable(), "{s}");
        }
    }
}
