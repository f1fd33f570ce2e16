//! Key-value metadata that decides how readers interpret values (calendar rebasing, INT96
//! time zones, arrow's schema, Spark's writer version class): it must agree between the
//! sources of a merge, since the output keeps only the first source's.

use parquet::file::metadata::KeyValue;

use crate::native::format::FormatError;

/// Key-value metadata that changes how values are read, compared exactly between sources.
const SEMANTIC_KEYS: &[&str] = &[
    // Spark (DataSourceUtils.datetimeRebaseSpec / int96RebaseSpec): rebase dates and
    // timestamps from the hybrid Julian calendar when present.
    "org.apache.spark.legacyDateTime",
    "org.apache.spark.legacyINT96",
    // Spark: the session time zone LEGACY rebasing was done in.
    "org.apache.spark.timeZone",
    // Hive 3.1 and later: the writer's time zone for INT96 and timestamps, the calendar of
    // dates, legacy time zone conversion (Hive's `DataWritableWriteSupport` keys).
    "writer.time.zone",
    "writer.date.proleptic",
    "writer.zone.conversion.legacy",
    // Arrow-based readers take logical types (time zones, large types) from it.
    "ARROW:schema",
];

/// Spark's writer version: files from Spark before 3.0.0 (dates, timestamps) and before
/// 3.1.0 (INT96) are read with calendar rebasing, later ones without; compared by class.
const SPARK_VERSION_KEY: &str = "org.apache.spark.version";

fn lookup<'a>(kv: Option<&'a [KeyValue]>, key: &str) -> Option<&'a str> {
    kv?.iter()
        .find(|e| e.key == key)
        .map(|e| e.value.as_deref().unwrap_or(""))
}

/// Spark's rebase class of a writer version: before 3.0.0, before 3.1.0, later, or not Spark.
fn spark_version_class(version: Option<&str>) -> Option<u8> {
    let v = version?;
    let mut parts = v.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    Some(match (major, minor) {
        (0..=2, _) => 0,
        (3, 0) => 1,
        _ => 2,
    })
}

pub(super) fn check_metadata(
    first: Option<&[KeyValue]>,
    file: &str,
    here: Option<&[KeyValue]>,
) -> Result<(), FormatError> {
    for key in SEMANTIC_KEYS {
        let (a, b) = (lookup(first, key), lookup(here, key));
        if a != b {
            return Err(FormatError::MetadataMismatch {
                file: file.to_owned(),
                key: (*key).to_owned(),
                detail: format!("{a:?} in the first source, {b:?} here"),
            });
        }
    }
    let (a, b) = (
        lookup(first, SPARK_VERSION_KEY),
        lookup(here, SPARK_VERSION_KEY),
    );
    if spark_version_class(a) != spark_version_class(b) {
        return Err(FormatError::MetadataMismatch {
            file: file.to_owned(),
            key: SPARK_VERSION_KEY.to_owned(),
            detail: format!(
                "{a:?} in the first source, {b:?} here: Spark rebases their dates and timestamps differently"
            ),
        });
    }
    Ok(())
}
