//! SQL text for merges, per engine dialect, with every identifier and value escaped so that
//! hostile table names and partition values cannot inject SQL.
//!
//! * Identifiers are backquoted; a backquote inside is doubled (Hive's quoted identifiers,
//!   HIVE-6013; Spark and Impala accept the same form).
//! * String literals use single quotes; `\` and `'` are backslash-escaped and control
//!   characters written as escapes: Hive (`BaseSemanticAnalyzer.unescapeSQLString`), Spark
//!   (`ParserUtils.unescapeSQLString`) and Impala all unescape `\\`, `\'`, `\n`, `\r`, `\t`,
//!   `\0`; Hive and Spark also `\uXXXX`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The SQL engine a cluster's HiveServer2 endpoint runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Apache Hive (HiveServer2; MR, Tez or Spark execution).
    Hive,
    /// Spark Thrift Server or Kyuubi.
    Spark,
    /// Impala (its HiveServer2 port).
    Impala,
}

impl Engine {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hive => "hive",
            Self::Spark => "spark",
            Self::Impala => "impala",
        }
    }
}

/// A backquoted identifier.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `db`.`table`.
pub fn qualified(database: &str, table: &str) -> String {
    format!("{}.{}", ident(database), ident(table))
}

/// A single-quoted string literal.
pub fn string_literal(value: &str, engine: Engine) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() && engine != Engine::Impala => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04X}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `k1='v1', k2='v2'` for a `PARTITION (...)` clause.
pub fn partition_spec(spec: &[(String, String)], engine: Engine) -> String {
    spec.iter()
        .map(|(k, v)| format!("{}={}", ident(k), string_literal(v, engine)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `k1 = 'v1' AND k2 = 'v2'` for a `WHERE` clause.
pub fn partition_predicate(spec: &[(String, String)], engine: Engine) -> String {
    if spec.is_empty() {
        return "TRUE".to_owned();
    }
    spec.iter()
        .map(|(k, v)| format!("{} = {}", ident(k), string_literal(v, engine)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_escaped() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(qualified("db", "odd name%='ü"), "`db`.`odd name%='ü`");
        assert_eq!(string_literal("it's", Engine::Hive), "'it\\'s'");
        assert_eq!(
            string_literal("a\\' OR 1=1 --", Engine::Spark),
            "'a\\\\\\' OR 1=1 --'"
        );
        assert_eq!(string_literal("x\ny\u{1}", Engine::Hive), "'x\\ny\\u0001'");
        assert_eq!(string_literal("x\u{1}", Engine::Impala), "'x\u{1}'");
        let spec = vec![
            ("dt".to_owned(), "2024-01-01".to_owned()),
            ("k".to_owned(), "a'b".to_owned()),
        ];
        assert_eq!(
            partition_spec(&spec, Engine::Hive),
            "`dt`='2024-01-01', `k`='a\\'b'"
        );
        assert_eq!(
            partition_predicate(&spec, Engine::Hive),
            "`dt` = '2024-01-01' AND `k` = 'a\\'b'"
        );
        assert_eq!(partition_predicate(&[], Engine::Hive), "TRUE");
    }
}
