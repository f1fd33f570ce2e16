//! SQL text of every MetaStore query, per dialect (pure, no I/O).
//!
//! Templates are written once in MySQL spelling with back-quoted identifiers, `?` placeholders
//! and `CAST(x AS SIGNED)`; [`render`] turns them into PostgreSQL spelling (double-quoted
//! upper-case identifiers, `$n` placeholders, `CAST(x AS BIGINT)`). The PostgreSQL schema
//! scripts of Hive create every metadata table and column quoted in upper case, and `DESC` /
//! `ORDER` are reserved words, so quoting everything is the only safe spelling on both.
//! Every integer is cast to a 64-bit integer in SQL: `CREATE_TIME`, `INTEGER_IDX` and
//! `NUM_BUCKETS` are `int` on MySQL and `bigint` on PostgreSQL. `bit(1)` columns
//! (`IS_COMPRESSED`...) are never selected.

use super::classify::{SERDE_PARAM_KEYS, TABLE_PARAM_KEYS};

/// SQL dialect of the backing database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// MySQL / MariaDB.
    Mysql,
    /// PostgreSQL.
    Postgres,
}

/// Renders a MySQL-spelled template for `dialect` (see the module docs).
pub fn render(dialect: Dialect, template: &str) -> String {
    match dialect {
        Dialect::Mysql => template.to_owned(),
        Dialect::Postgres => {
            let mut out = String::with_capacity(template.len() + 16);
            let mut n = 0;
            for c in template.replace(" AS SIGNED)", " AS BIGINT)").chars() {
                match c {
                    '`' => out.push('"'),
                    '?' => {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    }
                    _ => out.push(c),
                }
            }
            out
        }
    }
}

/// `?, ?, ?` with `n` placeholders (at least one, so that `IN ()` never happens).
fn placeholders(n: usize) -> String {
    vec!["?"; n.max(1)].join(", ")
}

/// `'a', 'b'` for constant keys. Keys are compile-time constants made of `[A-Za-z0-9._]`
/// (checked by a unit test), so quoting cannot be broken.
fn literal_list(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Tables (and columns) the probe looks at.
pub const PROBED_TABLES: &[&str] = &[
    "VERSION",
    "CDH_VERSION",
    "CTLGS",
    "DBS",
    "TBLS",
    "SDS",
    "SERDES",
    "SERDE_PARAMS",
    "TABLE_PARAMS",
    "PARTITIONS",
    "PARTITION_KEYS",
    "PARTITION_KEY_VALS",
    "PARTITION_PARAMS",
    "BUCKETING_COLS",
    "SORT_COLS",
    "COLUMNS_V2",
];

/// Tables without which the database is not a MetaStore the readers understand.
pub const REQUIRED_TABLES: &[&str] = &[
    "DBS",
    "TBLS",
    "SDS",
    "SERDES",
    "SERDE_PARAMS",
    "TABLE_PARAMS",
    "PARTITIONS",
    "PARTITION_KEYS",
    "PARTITION_KEY_VALS",
    "PARTITION_PARAMS",
    "BUCKETING_COLS",
    "SORT_COLS",
];

/// Columns of the probed tables in the current database/schema: `(table, column)` rows.
pub fn probe_columns(dialect: Dialect) -> String {
    let tables = literal_list(PROBED_TABLES);
    match dialect {
        Dialect::Mysql => format!(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({tables})"
        ),
        // information_schema uses the `sql_identifier` domain: cast to plain text.
        Dialect::Postgres => format!(
            "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT) \
             FROM information_schema.columns \
             WHERE table_catalog = current_database() AND table_schema = current_schema() \
             AND table_name IN ({tables})"
        ),
    }
}

/// One row: `VERSION.SCHEMA_VERSION`, then the distribution version (CDH 6
/// `VERSION.SCHEMA_VERSION_V2` or CDP `CDH_VERSION.SCHEMA_VERSION`), NULL when absent.
/// `has_version` false means there is no `VERSION` table at all.
pub fn versions(dialect: Dialect, has_version: bool, has_v2: bool, has_cdh: bool) -> String {
    let v1 = if has_version {
        "(SELECT MAX(`SCHEMA_VERSION`) FROM `VERSION`)"
    } else {
        "NULL"
    };
    let v2 = if has_cdh {
        "(SELECT MAX(`SCHEMA_VERSION`) FROM `CDH_VERSION`)"
    } else if has_v2 && has_version {
        "(SELECT MAX(`SCHEMA_VERSION_V2`) FROM `VERSION`)"
    } else {
        "NULL"
    };
    render(dialect, &format!("SELECT {v1}, {v2}"))
}

/// Filters of the tables query, as numbers of placeholders (several values per name let the
/// MySQL reader match a name stored either as latin1 or as raw UTF-8 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableFilter {
    /// Placeholders of the `CTLG_NAME IN (...)` list; `None` on schemas without catalogs.
    pub catalogs: Option<usize>,
    /// Placeholders of `DBS.NAME IN (...)` (single-table read).
    pub database: Option<usize>,
    /// Placeholders of `TBLS.TBL_NAME IN (...)` (single-table read).
    pub table: Option<usize>,
}

/// All tables with their database, storage descriptor, serde and bucket/sort column counts.
///
/// Columns: 0 TBL_ID, 1 catalog, 2 DB name, 3 TBL_NAME, 4 TBL_TYPE, 5 CREATE_TIME, 6 SD_ID,
/// 7 CD_ID, 8 LOCATION, 9 INPUT_FORMAT, 10 OUTPUT_FORMAT, 11 NUM_BUCKETS, 12 SLIB,
/// 13 bucket column count, 14 sort column count.
pub fn tables(dialect: Dialect, has_catalogs: bool, filter: TableFilter) -> String {
    let catalog = if has_catalogs {
        "d.`CTLG_NAME`"
    } else {
        "'hive'"
    };
    let mut sql = format!(
        "SELECT CAST(t.`TBL_ID` AS SIGNED), {catalog}, d.`NAME`, t.`TBL_NAME`, t.`TBL_TYPE`, \
         CAST(t.`CREATE_TIME` AS SIGNED), CAST(s.`SD_ID` AS SIGNED), CAST(s.`CD_ID` AS SIGNED), \
         s.`LOCATION`, s.`INPUT_FORMAT`, s.`OUTPUT_FORMAT`, CAST(s.`NUM_BUCKETS` AS SIGNED), \
         se.`SLIB`, \
         (SELECT CAST(COUNT(*) AS SIGNED) FROM `BUCKETING_COLS` b WHERE b.`SD_ID` = t.`SD_ID`), \
         (SELECT CAST(COUNT(*) AS SIGNED) FROM `SORT_COLS` c WHERE c.`SD_ID` = t.`SD_ID`) \
         FROM `TBLS` t JOIN `DBS` d ON d.`DB_ID` = t.`DB_ID` \
         LEFT JOIN `SDS` s ON s.`SD_ID` = t.`SD_ID` \
         LEFT JOIN `SERDES` se ON se.`SERDE_ID` = s.`SERDE_ID` WHERE 1 = 1"
    );
    if let (true, Some(n)) = (has_catalogs, filter.catalogs) {
        sql.push_str(&format!(" AND d.`CTLG_NAME` IN ({})", placeholders(n)));
    }
    if let Some(n) = filter.database {
        sql.push_str(&format!(" AND d.`NAME` IN ({})", placeholders(n)));
    }
    if let Some(n) = filter.table {
        sql.push_str(&format!(" AND t.`TBL_NAME` IN ({})", placeholders(n)));
    }
    render(dialect, &sql)
}

/// `TABLE_PARAMS` restricted to [`TABLE_PARAM_KEYS`]: TBL_ID, key, value. With `one_table`,
/// one `?` for the TBL_ID.
pub fn table_params(dialect: Dialect, one_table: bool) -> String {
    let mut sql = format!(
        "SELECT CAST(`TBL_ID` AS SIGNED), `PARAM_KEY`, `PARAM_VALUE` FROM `TABLE_PARAMS` \
         WHERE `PARAM_KEY` IN ({})",
        literal_list(TABLE_PARAM_KEYS)
    );
    if one_table {
        sql.push_str(" AND `TBL_ID` = ?");
    }
    render(dialect, &sql)
}

/// `SERDE_PARAMS` of the tables' own serdes (not the partitions'), restricted to
/// [`SERDE_PARAM_KEYS`]: TBL_ID, key, value. With `one_table`, one `?` for the TBL_ID.
pub fn serde_params(dialect: Dialect, one_table: bool) -> String {
    let mut sql = format!(
        "SELECT CAST(t.`TBL_ID` AS SIGNED), p.`PARAM_KEY`, p.`PARAM_VALUE` FROM `TBLS` t \
         JOIN `SDS` s ON s.`SD_ID` = t.`SD_ID` \
         JOIN `SERDE_PARAMS` p ON p.`SERDE_ID` = s.`SERDE_ID` \
         WHERE p.`PARAM_KEY` IN ({})",
        literal_list(SERDE_PARAM_KEYS)
    );
    if one_table {
        sql.push_str(" AND t.`TBL_ID` = ?");
    }
    render(dialect, &sql)
}

/// `PARTITION_KEYS`: TBL_ID, name, type, INTEGER_IDX, ordered. With `one_table`, one `?`.
pub fn partition_keys(dialect: Dialect, one_table: bool) -> String {
    let mut sql = String::from(
        "SELECT CAST(`TBL_ID` AS SIGNED), `PKEY_NAME`, `PKEY_TYPE`, CAST(`INTEGER_IDX` AS SIGNED) \
         FROM `PARTITION_KEYS`",
    );
    if one_table {
        sql.push_str(" WHERE `TBL_ID` = ?");
    }
    sql.push_str(" ORDER BY `TBL_ID`, `INTEGER_IDX`");
    render(dialect, &sql)
}

/// One keyset page of partitions with their own storage descriptor's location:
/// PART_ID, TBL_ID, PART_NAME, CREATE_TIME, LOCATION. Parameters: last PART_ID seen (then the
/// TBL_ID with `one_table`). A partition whose SD row is missing keeps a NULL location.
pub fn partitions_page(dialect: Dialect, one_table: bool, page_size: u32) -> String {
    let mut sql = String::from(
        "SELECT CAST(p.`PART_ID` AS SIGNED), CAST(p.`TBL_ID` AS SIGNED), p.`PART_NAME`, \
         CAST(p.`CREATE_TIME` AS SIGNED), s.`LOCATION` FROM `PARTITIONS` p \
         LEFT JOIN `SDS` s ON s.`SD_ID` = p.`SD_ID` WHERE p.`PART_ID` > ?",
    );
    if one_table {
        sql.push_str(" AND p.`TBL_ID` = ?");
    }
    sql.push_str(&format!(" ORDER BY p.`PART_ID` LIMIT {}", page_size.max(1)));
    render(dialect, &sql)
}

/// `PARTITION_KEY_VALS` of a PART_ID range (`BETWEEN ? AND ?`): PART_ID, value, INTEGER_IDX.
pub fn partition_key_vals(dialect: Dialect) -> String {
    render(
        dialect,
        "SELECT CAST(`PART_ID` AS SIGNED), `PART_KEY_VAL`, CAST(`INTEGER_IDX` AS SIGNED) \
         FROM `PARTITION_KEY_VALS` WHERE `PART_ID` BETWEEN ? AND ? \
         ORDER BY `PART_ID`, `INTEGER_IDX`",
    )
}

/// `PARTITION_PARAMS.numFiles` of a PART_ID range (`BETWEEN ? AND ?`): PART_ID, value.
pub fn partition_num_files(dialect: Dialect) -> String {
    render(
        dialect,
        "SELECT CAST(`PART_ID` AS SIGNED), `PARAM_VALUE` FROM `PARTITION_PARAMS` \
         WHERE `PART_ID` BETWEEN ? AND ? AND `PARAM_KEY` = 'numFiles'",
    )
}

/// The keyset condition "(TBL_ID, PART_ID) after (?, ?)" on `PARTITIONS p`, written so that
/// both engines walk the `TBL_ID` index (`PARTITIONS_N49` in every Hive schema script) in
/// order: the sargable `TBL_ID >= ?` bounds the index range, the rest filters within the one
/// boundary table. Parameters: TBL_ID, TBL_ID, PART_ID.
const AFTER_CURSOR: &str = "p.`TBL_ID` >= ? AND (p.`TBL_ID` > ? OR p.`PART_ID` > ?)";

/// One streaming page of partitions in (TBL_ID, PART_ID) order, so that a page holds whole
/// tables plus at most the start or end of one: PART_ID, TBL_ID, PART_NAME, CREATE_TIME,
/// LOCATION (as [`partitions_page`]). Parameters: the last (TBL_ID, TBL_ID, PART_ID) seen.
/// Partitions without a TBL_ID are never returned.
pub fn partitions_stream_page(dialect: Dialect, page_size: u32) -> String {
    render(
        dialect,
        &format!(
            "SELECT CAST(p.`PART_ID` AS SIGNED), CAST(p.`TBL_ID` AS SIGNED), p.`PART_NAME`, \
             CAST(p.`CREATE_TIME` AS SIGNED), s.`LOCATION` FROM `PARTITIONS` p \
             LEFT JOIN `SDS` s ON s.`SD_ID` = p.`SD_ID` WHERE {AFTER_CURSOR} \
             ORDER BY p.`TBL_ID`, p.`PART_ID` LIMIT {}",
            page_size.max(1)
        ),
    )
}

/// `PART_ID IN (1, 2, 3)` with the IDs written as integer literals: the IDs come from the
/// page just read as 64-bit integers, so the text cannot carry anything else, and a literal
/// list is looked up by primary key on both engines whatever the table's size (a join on the
/// page's (TBL_ID, PART_ID) range made PostgreSQL scan the whole detail table at 10⁶
/// partitions: a hash join, about 0.4 s per page against 0.1 s for the list).
fn id_list(ids: &[i64]) -> String {
    if ids.is_empty() {
        return "NULL".to_owned();
    }
    let mut out = String::with_capacity(ids.len() * 8);
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&id.to_string());
    }
    out
}

/// `PARTITION_KEY_VALS` of the partitions `ids` (one streaming page): PART_ID, value,
/// INTEGER_IDX. No parameters.
pub fn page_key_vals(dialect: Dialect, ids: &[i64]) -> String {
    render(
        dialect,
        &format!(
            "SELECT CAST(`PART_ID` AS SIGNED), `PART_KEY_VAL`, CAST(`INTEGER_IDX` AS SIGNED) \
             FROM `PARTITION_KEY_VALS` WHERE `PART_ID` IN ({})",
            id_list(ids)
        ),
    )
}

/// `PARTITION_PARAMS.numFiles` of the partitions `ids` (one streaming page): PART_ID, value.
/// No parameters.
pub fn page_num_files(dialect: Dialect, ids: &[i64]) -> String {
    render(
        dialect,
        &format!(
            "SELECT CAST(`PART_ID` AS SIGNED), `PARAM_VALUE` FROM `PARTITION_PARAMS` \
             WHERE `PARAM_KEY` = 'numFiles' AND `PART_ID` IN ({})",
            id_list(ids)
        ),
    )
}

/// `COLUMNS_V2` of one column descriptor (`CD_ID = ?`) in `INTEGER_IDX` order:
/// name, type, comment.
pub fn columns(dialect: Dialect) -> String {
    render(
        dialect,
        "SELECT `COLUMN_NAME`, `TYPE_NAME`, `COMMENT` FROM `COLUMNS_V2` WHERE `CD_ID` = ? \
         ORDER BY `INTEGER_IDX`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_rendering_quotes_and_numbers_placeholders() {
        let sql = render(
            Dialect::Postgres,
            "SELECT CAST(`A` AS SIGNED), `DESC` FROM `T` WHERE `X` IN (?, ?) AND `Y` = ?",
        );
        assert_eq!(
            sql,
            "SELECT CAST(\"A\" AS BIGINT), \"DESC\" FROM \"T\" WHERE \"X\" IN ($1, $2) AND \"Y\" = $3"
        );
    }

    #[test]
    fn mysql_rendering_is_identity() {
        assert_eq!(
            render(Dialect::Mysql, "SELECT `A` FROM `T`"),
            "SELECT `A` FROM `T`"
        );
    }

    #[test]
    fn param_keys_are_safe_literals() {
        for k in TABLE_PARAM_KEYS
            .iter()
            .chain(SERDE_PARAM_KEYS)
            .chain(PROBED_TABLES)
        {
            assert!(
                k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_'),
                "{k}"
            );
        }
    }

    #[test]
    fn tables_query_shapes() {
        let pg = tables(
            Dialect::Postgres,
            true,
            TableFilter {
                catalogs: Some(2),
                database: Some(1),
                table: Some(2),
            },
        );
        assert!(pg.contains("d.\"CTLG_NAME\" IN ($1, $2)"), "{pg}");
        assert!(pg.contains("d.\"NAME\" IN ($3)"), "{pg}");
        assert!(pg.contains("t.\"TBL_NAME\" IN ($4, $5)"), "{pg}");
        assert!(!pg.contains('`') && !pg.contains('?'), "{pg}");
        assert!(!pg.contains("SIGNED"), "{pg}");

        let my = tables(Dialect::Mysql, false, TableFilter::default());
        assert!(my.contains("'hive', d.`NAME`"), "{my}");
        assert!(!my.contains("CTLG_NAME"), "{my}");
        assert!(!my.contains("IS_COMPRESSED"), "{my}");
    }

    #[test]
    fn catalog_filter_ignored_without_catalogs() {
        let sql = tables(
            Dialect::Mysql,
            false,
            TableFilter {
                catalogs: Some(1),
                ..TableFilter::default()
            },
        );
        assert!(!sql.contains('?'), "{sql}");
    }

    #[test]
    fn partition_page_is_keyset_paged() {
        let sql = partitions_page(Dialect::Postgres, true, 500);
        assert!(
            sql.contains("\"PART_ID\" > $1 AND p.\"TBL_ID\" = $2"),
            "{sql}"
        );
        assert!(sql.ends_with("ORDER BY p.\"PART_ID\" LIMIT 500"), "{sql}");
        assert!(partitions_page(Dialect::Mysql, false, 0).ends_with("LIMIT 1"));
        assert!(!sql.contains("OFFSET"));
    }

    #[test]
    fn stream_pages_follow_the_tbl_id_index() {
        let sql = partitions_stream_page(Dialect::Postgres, 3);
        assert!(
            sql.contains("p.\"TBL_ID\" >= $1 AND (p.\"TBL_ID\" > $2 OR p.\"PART_ID\" > $3)"),
            "{sql}"
        );
        assert!(
            sql.ends_with("ORDER BY p.\"TBL_ID\", p.\"PART_ID\" LIMIT 3"),
            "{sql}"
        );
        assert!(
            page_key_vals(Dialect::Postgres, &[7, -2, 9]).ends_with("\"PART_ID\" IN (7, -2, 9)")
        );
        let nf = page_num_files(Dialect::Mysql, &[]);
        assert!(nf.ends_with("IN (NULL)") && !nf.contains('?'), "{nf}");
        assert!(nf.contains("'numFiles'"), "{nf}");
    }

    #[test]
    fn params_queries_restrict_keys() {
        let sql = table_params(Dialect::Mysql, false);
        assert!(sql.contains("'numFiles'") && sql.contains("'transactional_properties'"));
        assert!(!sql.contains('?'));
        assert!(table_params(Dialect::Postgres, true).ends_with("\"TBL_ID\" = $1"));
        assert!(serde_params(Dialect::Mysql, false).contains("'field.delim'"));
        assert!(partition_num_files(Dialect::Postgres).contains("BETWEEN $1 AND $2"));
    }

    #[test]
    fn versions_query_by_schema() {
        assert_eq!(
            versions(Dialect::Mysql, false, false, false),
            "SELECT NULL, NULL"
        );
        assert!(versions(Dialect::Postgres, true, false, true).contains("FROM \"CDH_VERSION\""));
        assert!(versions(Dialect::Mysql, true, true, false).contains("`SCHEMA_VERSION_V2`"));
    }
}
