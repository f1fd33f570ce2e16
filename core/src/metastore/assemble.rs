//! Backend-neutral rows ([`Cell`]s) and their assembly into [`TableMeta`]s (pure).
//!
//! Both backends return every row as cells; decoding here is lenient where the MetaStore is
//! known to be messy (NULL names and types, odd TBL_TYPE strings, partitions whose key values
//! do not match the keys, non-numeric `numFiles`) and strict only on IDs, whose absence means
//! the row cannot be attached to anything.

use std::collections::{BTreeMap, HashMap};

use super::sql::Dialect;
use super::{Column, MetastoreError, PartitionKey, PartitionMeta, TableMeta};

/// One value of a result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    /// SQL NULL.
    Null,
    /// Any integer.
    Int(i64),
    /// Raw bytes (MySQL text columns read with `character_set_results = binary`).
    Bytes(Vec<u8>),
    /// Text decoded by the driver (PostgreSQL).
    Text(String),
}

/// One statement parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    /// Integer.
    Int(i64),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes (MySQL only; compared byte for byte through a latin1 connection).
    Bytes(Vec<u8>),
}

/// Decodes bytes as UTF-8, falling back to latin1 (each byte is the code point U+00XX).
///
/// Hive's MySQL schema is latin1; a name written through a UTF-8 JDBC connection is stored as
/// raw UTF-8 bytes, one written through a latin1 connection as latin1 bytes.
pub(crate) fn decode_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// The parameter values that match `value` as stored by either kind of client: for MySQL the
/// raw UTF-8 bytes and, when every character is latin1-representable and non-ASCII, the latin1
/// bytes too; for PostgreSQL the text itself.
pub(crate) fn text_params(dialect: Dialect, value: &str) -> Vec<Param> {
    match dialect {
        Dialect::Postgres => vec![Param::Text(value.to_owned())],
        Dialect::Mysql => {
            let mut out = vec![Param::Bytes(value.as_bytes().to_vec())];
            if !value.is_ascii() {
                let latin1: Option<Vec<u8>> = value
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).ok())
                    .collect();
                if let Some(l) = latin1 {
                    out.push(Param::Bytes(l));
                }
            }
            out
        }
    }
}

/// Typed access to the cells of one row of query `query`.
pub(crate) struct RowReader<'a> {
    query: &'static str,
    cells: &'a [Cell],
}

impl<'a> RowReader<'a> {
    pub(crate) fn new(query: &'static str, cells: &'a [Cell]) -> Self {
        Self { query, cells }
    }

    fn err(&self, i: usize, what: &str) -> MetastoreError {
        MetastoreError::Decode {
            query: self.query,
            message: format!("column {i}: {what}"),
        }
    }

    /// Integer or NULL.
    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>, MetastoreError> {
        match self.cells.get(i) {
            None => Err(self.err(i, "missing")),
            Some(Cell::Null) => Ok(None),
            Some(Cell::Int(v)) => Ok(Some(*v)),
            Some(Cell::Bytes(b)) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .map(Some)
                .ok_or_else(|| self.err(i, "not an integer")),
            Some(Cell::Text(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.err(i, "not an integer")),
        }
    }

    /// Integer, NULL not allowed.
    pub(crate) fn int(&self, i: usize) -> Result<i64, MetastoreError> {
        self.opt_int(i)?
            .ok_or_else(|| self.err(i, "unexpected NULL"))
    }

    /// Text or NULL.
    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>, MetastoreError> {
        match self.cells.get(i) {
            None => Err(self.err(i, "missing")),
            Some(Cell::Null) => Ok(None),
            Some(Cell::Int(v)) => Ok(Some(v.to_string())),
            Some(Cell::Bytes(b)) => Ok(Some(decode_text(b))),
            Some(Cell::Text(s)) => Ok(Some(s.clone())),
        }
    }

    /// Text; NULL becomes the empty string.
    pub(crate) fn text(&self, i: usize) -> Result<String, MetastoreError> {
        Ok(self.opt_text(i)?.unwrap_or_default())
    }
}

/// Builds the tables from the rows of the `tables` query (see [`super::sql::tables`]).
pub(crate) fn tables_from_rows(rows: &[Vec<Cell>]) -> Result<Vec<TableMeta>, MetastoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for cells in rows {
        let r = RowReader::new("tables", cells);
        let num_buckets = r.opt_int(11)?.unwrap_or(-1);
        out.push(TableMeta {
            id: r.int(0)?,
            catalog: r.opt_text(1)?.unwrap_or_else(|| "hive".to_owned()),
            database: r.text(2)?,
            name: r.text(3)?,
            tbl_type: r.text(4)?,
            create_time: r.opt_int(5)?.unwrap_or(0),
            cd_id: r.opt_int(7)?,
            location: r.opt_text(8)?,
            input_format: r.opt_text(9)?,
            output_format: r.opt_text(10)?,
            num_buckets: i32::try_from(num_buckets).unwrap_or(-1),
            serde_lib: r.opt_text(12)?,
            bucket_columns: u32::try_from(r.opt_int(13)?.unwrap_or(0)).unwrap_or(0),
            sort_columns: u32::try_from(r.opt_int(14)?.unwrap_or(0)).unwrap_or(0),
            params: BTreeMap::new(),
            serde_params: BTreeMap::new(),
            partition_keys: Vec::new(),
            partitions: Vec::new(),
        });
    }
    Ok(out)
}

/// Index of tables by `TBL_ID`.
pub(crate) fn index_by_id(tables: &[TableMeta]) -> HashMap<i64, usize> {
    tables.iter().enumerate().map(|(i, t)| (t.id, i)).collect()
}

/// Attaches `(TBL_ID, key, value)` rows; `serde` selects `serde_params` over `params`.
/// Rows of unknown tables (other catalogs, rows written meanwhile) are ignored.
pub(crate) fn attach_params(
    query: &'static str,
    tables: &mut [TableMeta],
    index: &HashMap<i64, usize>,
    rows: &[Vec<Cell>],
    serde: bool,
) -> Result<(), MetastoreError> {
    for cells in rows {
        let r = RowReader::new(query, cells);
        let Some(&i) = index.get(&r.int(0)?) else {
            continue;
        };
        let key = r.text(1)?;
        let value = r.text(2)?;
        let target = if serde {
            &mut tables[i].serde_params
        } else {
            &mut tables[i].params
        };
        target.insert(key, value);
    }
    Ok(())
}

/// Attaches `(TBL_ID, name, type, INTEGER_IDX)` rows in `INTEGER_IDX` order.
pub(crate) fn attach_partition_keys(
    tables: &mut [TableMeta],
    index: &HashMap<i64, usize>,
    rows: &[Vec<Cell>],
) -> Result<(), MetastoreError> {
    let mut keys: HashMap<usize, Vec<(i64, PartitionKey)>> = HashMap::new();
    for cells in rows {
        let r = RowReader::new("partition_keys", cells);
        let Some(&i) = index.get(&r.int(0)?) else {
            continue;
        };
        let key = PartitionKey {
            name: r.text(1)?,
            type_name: r.text(2)?,
        };
        keys.entry(i)
            .or_default()
            .push((r.opt_int(3)?.unwrap_or(i64::MAX), key));
    }
    for (i, mut list) in keys {
        list.sort_by_key(|(idx, _)| *idx);
        tables[i].partition_keys = list.into_iter().map(|(_, k)| k).collect();
    }
    Ok(())
}

/// One page of partitions, before key values and parameters are attached.
#[derive(Debug, Default)]
pub(crate) struct PartitionPage {
    /// `(TBL_ID, partition)` in PART_ID order.
    pub(crate) partitions: Vec<(i64, PartitionMeta)>,
    /// Number of rows the page query returned (including those of unknown tables).
    pub(crate) rows: usize,
    /// Smallest and largest PART_ID of the page.
    pub(crate) range: Option<(i64, i64)>,
}

/// Decodes a page of the `partitions` query.
pub(crate) fn partition_page(rows: &[Vec<Cell>]) -> Result<PartitionPage, MetastoreError> {
    let mut page = PartitionPage {
        rows: rows.len(),
        ..PartitionPage::default()
    };
    for cells in rows {
        let r = RowReader::new("partitions", cells);
        let id = r.int(0)?;
        let tbl_id = r.opt_int(1)?;
        page.range = Some(match page.range {
            None => (id, id),
            Some((lo, hi)) => (lo.min(id), hi.max(id)),
        });
        let Some(tbl_id) = tbl_id else {
            continue;
        };
        page.partitions.push((
            tbl_id,
            PartitionMeta {
                id,
                name: r.text(2)?,
                values: Vec::new(),
                location: r.opt_text(4)?,
                create_time: r.opt_int(3)?.unwrap_or(0),
                stats_num_files: None,
            },
        ));
    }
    Ok(page)
}

/// Attaches `PARTITION_KEY_VALS` rows `(PART_ID, value, INTEGER_IDX)` and `numFiles` rows
/// `(PART_ID, value)` to the page's partitions. Values are kept in `INTEGER_IDX` order, as
/// many as exist (a partition may have fewer or more values than its table has keys).
pub(crate) fn attach_partition_details(
    page: &mut PartitionPage,
    key_vals: &[Vec<Cell>],
    num_files: &[Vec<Cell>],
) -> Result<(), MetastoreError> {
    let index: HashMap<i64, usize> = page
        .partitions
        .iter()
        .enumerate()
        .map(|(i, (_, p))| (p.id, i))
        .collect();
    let mut values: HashMap<usize, Vec<(i64, String)>> = HashMap::new();
    for cells in key_vals {
        let r = RowReader::new("partition_key_vals", cells);
        let Some(&i) = index.get(&r.int(0)?) else {
            continue;
        };
        values
            .entry(i)
            .or_default()
            .push((r.opt_int(2)?.unwrap_or(i64::MAX), r.text(1)?));
    }
    for (i, mut list) in values {
        list.sort_by_key(|(idx, _)| *idx);
        page.partitions[i].1.values = list.into_iter().map(|(_, v)| v).collect();
    }
    for cells in num_files {
        let r = RowReader::new("partition_params", cells);
        let Some(&i) = index.get(&r.int(0)?) else {
            continue;
        };
        page.partitions[i].1.stats_num_files =
            r.opt_text(1)?.and_then(|v| v.trim().parse::<i64>().ok());
    }
    Ok(())
}

/// Decodes the rows of the `columns` query.
pub(crate) fn columns_from_rows(rows: &[Vec<Cell>]) -> Result<Vec<Column>, MetastoreError> {
    rows.iter()
        .map(|cells| {
            let r = RowReader::new("columns", cells);
            Ok(Column {
                name: r.text(0)?,
                type_name: r.text(1)?,
                comment: r.opt_text(2)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Cell {
        Cell::Bytes(s.as_bytes().to_vec())
    }

    #[test]
    fn decodes_utf8_then_latin1() {
        assert_eq!(decode_text("tábla ü".as_bytes()), "tábla ü");
        assert_eq!(decode_text(&[b't', 0xE1, b'b']), "táb");
        assert_eq!(decode_text(b""), "");
    }

    #[test]
    fn text_params_cover_both_encodings() {
        assert_eq!(
            text_params(Dialect::Mysql, "tábla"),
            vec![
                Param::Bytes("tábla".as_bytes().to_vec()),
                Param::Bytes(vec![b't', 0xE1, b'b', b'l', b'a'])
            ]
        );
        assert_eq!(text_params(Dialect::Mysql, "plain").len(), 1);
        assert_eq!(text_params(Dialect::Mysql, "表").len(), 1);
        assert_eq!(
            text_params(Dialect::Postgres, "tábla"),
            vec![Param::Text("tábla".to_owned())]
        );
    }

    #[test]
    fn integers_decode_from_any_width_or_text() {
        let cells = vec![
            Cell::Int(5),
            b("42"),
            Cell::Text("-1".into()),
            Cell::Null,
            b("x"),
        ];
        let r = RowReader::new("q", &cells);
        assert_eq!(r.int(0).ok(), Some(5));
        assert_eq!(r.int(1).ok(), Some(42));
        assert_eq!(r.int(2).ok(), Some(-1));
        assert_eq!(r.opt_int(3).ok(), Some(None));
        assert!(matches!(
            r.int(3),
            Err(MetastoreError::Decode { query: "q", .. })
        ));
        assert!(r.int(4).is_err());
        assert!(r.int(9).is_err());
    }

    #[test]
    fn tables_tolerate_nulls() {
        let row = vec![
            Cell::Int(7),
            Cell::Null,
            b("db"),
            b("t"),
            Cell::Null,
            Cell::Null,
            Cell::Null,
            Cell::Null,
            Cell::Null,
            Cell::Null,
            Cell::Null,
            Cell::Null,
            Cell::Null,
            Cell::Null,
            Cell::Null,
        ];
        let t = tables_from_rows(&[row]).expect("decodes");
        assert_eq!(t[0].id, 7);
        assert_eq!(t[0].catalog, "hive");
        assert_eq!(t[0].tbl_type, "");
        assert_eq!(t[0].num_buckets, -1);
        assert_eq!(t[0].location, None);
        assert_eq!(t[0].bucket_columns, 0);
    }

    #[test]
    fn partition_details_keep_what_exists() {
        let rows = vec![
            vec![
                Cell::Int(10),
                Cell::Int(1),
                b("a=1/b=2"),
                Cell::Int(100),
                b("hdfs://x/a=1/b=2"),
            ],
            vec![
                Cell::Int(11),
                Cell::Null,
                b("orphan"),
                Cell::Int(0),
                Cell::Null,
            ],
            vec![
                Cell::Int(12),
                Cell::Int(1),
                b("a=3/b=4"),
                Cell::Int(0),
                Cell::Null,
            ],
        ];
        let mut page = partition_page(&rows).expect("page");
        assert_eq!(page.rows, 3);
        assert_eq!(page.range, Some((10, 12)));
        assert_eq!(page.partitions.len(), 2);
        let kv = vec![
            vec![Cell::Int(10), b("2"), Cell::Int(1)],
            vec![Cell::Int(10), b("1"), Cell::Int(0)],
            vec![Cell::Int(12), b("3"), Cell::Int(0)],
            vec![Cell::Int(99), b("gone"), Cell::Int(0)],
        ];
        let nf = vec![vec![Cell::Int(10), b("17")], vec![Cell::Int(12), b("n/a")]];
        attach_partition_details(&mut page, &kv, &nf).expect("attach");
        assert_eq!(page.partitions[0].1.values, vec!["1", "2"]);
        assert_eq!(page.partitions[0].1.stats_num_files, Some(17));
        assert_eq!(page.partitions[1].1.values, vec!["3"]);
        assert_eq!(page.partitions[1].1.stats_num_files, None);
    }
}
