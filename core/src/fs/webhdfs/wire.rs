//! WebHDFS JSON wire types (Hadoop `WebHDFS.md`, "JSON Schemas") and their lenient parsing.
//!
//! Owns: the response shapes of `LISTSTATUS`, `LISTSTATUS_BATCH` and `GETFILESTATUS`, the
//! `{"boolean": ..}` answer of `MKDIRS`/`DELETE`/old-style `RENAME`, the `{"Location": ..}`
//! answer of a `noredirect=true` request, the `RemoteException` error body, and the conversion of a wire `FileStatus` into the
//! backend-neutral [`FileStatus`]. Everything is deserialized straight from the response
//! bytes; optional fields may be absent (HttpFS omits `childrenNum`, `fileId`,
//! `storagePolicy`, HDFS-14665) and unknown fields are ignored.
//!
//! Listings are parsed in two ways: into owned [`FileStatus`]es (`FileStatusesEnvelope`,
//! `DirectoryListingEnvelope`), and into borrowed entries (`EntriesEnvelope`,
//! `EntriesBatchEnvelope`) that read only what counting needs (name, type, length, times),
//! borrow the name from the body and skip the other fields unread, for
//! [`FileSystem::list_entries`](crate::fs::FileSystem::list_entries). Whatever body the owned
//! parse accepts, the borrowed one accepts with the same entries (it validates fewer fields).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::fs::{EntryKind, EntryRef, FileStatus, FsError};

/// `{"FileStatus": {...}}` (GETFILESTATUS).
#[derive(Debug, Deserialize)]
pub(super) struct FileStatusEnvelope {
    #[serde(rename = "FileStatus")]
    pub(super) file_status: WireFileStatus,
}

/// `{"FileStatuses": {"FileStatus": [...]}}` (LISTSTATUS).
#[derive(Debug, Default, Deserialize)]
pub(super) struct FileStatusesEnvelope {
    #[serde(rename = "FileStatuses", default)]
    pub(super) file_statuses: FileStatuses,
}

/// The inner `{"FileStatus": [...]}` object.
#[derive(Debug, Default, Deserialize)]
pub(super) struct FileStatuses {
    #[serde(rename = "FileStatus", default, deserialize_with = "null_as_default")]
    pub(super) file_status: Vec<WireFileStatus>,
}

/// `{"DirectoryListing": {"partialListing": {"FileStatuses": ...}, "remainingEntries": N}}`
/// (LISTSTATUS_BATCH, HDFS-10784).
#[derive(Debug, Deserialize)]
pub(super) struct DirectoryListingEnvelope {
    #[serde(rename = "DirectoryListing")]
    pub(super) directory_listing: DirectoryListing,
}

impl FileStatusesEnvelope {
    /// The entries, converted.
    pub(super) fn into_entries(self) -> impl Iterator<Item = FileStatus> {
        self.file_statuses
            .file_status
            .into_iter()
            .map(FileStatus::from)
    }
}

impl DirectoryListingEnvelope {
    /// The batch's entries and `remainingEntries`.
    pub(super) fn into_page(self) -> (Vec<FileStatus>, i64) {
        let listing = self.directory_listing;
        let page = listing.partial_listing.into_entries().collect();
        (page, listing.remaining_entries)
    }
}

/// One batch of a directory listing.
#[derive(Debug, Deserialize)]
pub(super) struct DirectoryListing {
    #[serde(rename = "partialListing", default)]
    pub(super) partial_listing: FileStatusesEnvelope,
    #[serde(rename = "remainingEntries", default)]
    pub(super) remaining_entries: i64,
}

/// One `FileStatus` object, only the fields we use.
#[derive(Debug, Deserialize)]
pub(super) struct WireFileStatus {
    #[serde(rename = "pathSuffix", default, deserialize_with = "null_as_default")]
    path_suffix: String,
    #[serde(rename = "type", default)]
    kind: WireKind,
    #[serde(default)]
    length: u64,
    #[serde(rename = "modificationTime", default)]
    modification_time: i64,
    #[serde(rename = "accessTime", default)]
    access_time: i64,
    #[serde(default, deserialize_with = "octal_permission")]
    permission: u32,
    #[serde(default, deserialize_with = "null_as_default")]
    owner: String,
    #[serde(default, deserialize_with = "null_as_default")]
    group: String,
}

impl From<WireFileStatus> for FileStatus {
    fn from(w: WireFileStatus) -> Self {
        Self {
            name: w.path_suffix,
            kind: w.kind.into(),
            length: w.length,
            modification_time_ms: w.modification_time,
            access_time_ms: w.access_time,
            permission: w.permission,
            owner: w.owner,
            group: w.group,
        }
    }
}

/// `{"FileStatuses": {"FileStatus": [...]}}` (LISTSTATUS), entries borrowed.
#[derive(Debug, Default, Deserialize)]
pub(super) struct EntriesEnvelope<'a> {
    #[serde(rename = "FileStatuses", default, borrow)]
    file_statuses: Entries<'a>,
}

/// The inner `{"FileStatus": [...]}` object, entries borrowed.
#[derive(Debug, Default, Deserialize)]
struct Entries<'a> {
    #[serde(
        rename = "FileStatus",
        default,
        borrow,
        deserialize_with = "null_as_default"
    )]
    file_status: Vec<WireEntry<'a>>,
}

/// `{"DirectoryListing": {"partialListing": {"FileStatuses": ...}, "remainingEntries": N}}`
/// (LISTSTATUS_BATCH), entries borrowed.
#[derive(Debug, Deserialize)]
pub(super) struct EntriesBatchEnvelope<'a> {
    #[serde(rename = "DirectoryListing", borrow)]
    directory_listing: EntriesBatch<'a>,
}

/// One batch of a directory listing, entries borrowed.
#[derive(Debug, Deserialize)]
struct EntriesBatch<'a> {
    #[serde(rename = "partialListing", default, borrow)]
    partial_listing: EntriesEnvelope<'a>,
    #[serde(rename = "remainingEntries", default)]
    remaining_entries: i64,
}

impl<'a> EntriesEnvelope<'a> {
    /// The entries.
    pub(super) fn entries(&self) -> impl Iterator<Item = EntryRef<'_>> {
        self.file_statuses
            .file_status
            .iter()
            .map(WireEntry::as_entry)
    }
}

impl<'a> EntriesBatchEnvelope<'a> {
    /// The batch's entries.
    pub(super) fn entries(&self) -> impl Iterator<Item = EntryRef<'_>> {
        self.directory_listing.partial_listing.entries()
    }

    /// `remainingEntries`.
    pub(super) fn remaining(&self) -> i64 {
        self.directory_listing.remaining_entries
    }

    /// The name of the batch's last entry (the next batch's `startAfter`).
    pub(super) fn last_name(&self) -> Option<&str> {
        let entries = &self.directory_listing.partial_listing.file_statuses;
        entries.file_status.last().map(|e| &*e.path_suffix)
    }
}

/// One `FileStatus` object of a listing, only what counting reads; the name borrowed from
/// the body unless it holds escapes. The other fields (`permission`, `owner`, `group`, ...)
/// are skipped unread.
#[derive(Debug, Deserialize)]
struct WireEntry<'a> {
    #[serde(
        rename = "pathSuffix",
        default,
        borrow,
        deserialize_with = "name_or_null"
    )]
    path_suffix: Cow<'a, str>,
    #[serde(rename = "type", default)]
    kind: WireKind,
    #[serde(default)]
    length: u64,
    #[serde(rename = "modificationTime", default)]
    modification_time: i64,
    #[serde(rename = "accessTime", default)]
    access_time: i64,
}

impl WireEntry<'_> {
    fn as_entry(&self) -> EntryRef<'_> {
        EntryRef {
            name: &self.path_suffix,
            kind: self.kind.into(),
            length: self.length,
            modification_time_ms: self.modification_time,
            access_time_ms: self.access_time,
        }
    }
}

/// Parses a response `body` into a type that borrows from it; errors as `errors::parse`
/// (which, with `serde_json::from_slice`, reads the same JSON).
pub(super) fn parse_borrowed<'a, T: Deserialize<'a>>(
    op: &'static str,
    path: &str,
    body: &'a [u8],
) -> Result<T, FsError> {
    // A body checked as UTF-8 once is parsed as text: serde_json then does not validate each
    // key and string on its own (the bulk of the parse). A body that is not UTF-8 (a stray
    // byte in a field not read) is parsed as bytes, which accepts exactly what it did.
    let parsed = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    };
    parsed.map_err(|e| super::errors::invalid_body(op, path, &e, body))
}

/// A string, borrowed from the input when it has no escapes, or `null` (read as empty).
fn name_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Cow<'de, str>, D::Error> {
    struct NameVisitor;

    impl<'de> Visitor<'de> for NameVisitor {
        type Value = Cow<'de, str>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or null")
        }

        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(""))
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(""))
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }

    d.deserialize_option(NameVisitor)
}

impl From<WireKind> for EntryKind {
    fn from(kind: WireKind) -> Self {
        match kind {
            WireKind::Directory => Self::Directory,
            WireKind::Symlink => Self::Symlink,
            WireKind::File => Self::File,
        }
    }
}

/// `type`: `FILE`, `DIRECTORY` or `SYMLINK`. Anything else (or a missing field) is read as a
/// file, so one odd entry never fails a whole listing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum WireKind {
    Directory,
    Symlink,
    #[default]
    #[serde(other)]
    File,
}

#[cfg(feature = "write")]
/// `{"boolean": true|false}` (MKDIRS, DELETE, RENAME without options).
#[derive(Debug, Deserialize)]
pub(super) struct BooleanEnvelope {
    pub(super) boolean: bool,
}

#[cfg(feature = "write")]
/// `{"Location": "http://<datanode>..."}` (a redirect answered as 200, `noredirect=true`).
#[derive(Debug, Deserialize)]
pub(super) struct LocationEnvelope {
    #[serde(rename = "Location")]
    pub(super) location: String,
}

/// `{"RemoteException": {"exception": .., "javaClassName": .., "message": ..}}`.
#[derive(Debug, Deserialize)]
pub(super) struct RemoteExceptionEnvelope {
    #[serde(rename = "RemoteException")]
    pub(super) remote_exception: RemoteException,
}

/// The error object of a failed WebHDFS request.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RemoteException {
    /// Simple class name (`FileNotFoundException`).
    #[serde(default)]
    pub(super) exception: String,
    /// Fully qualified class name (optional).
    #[serde(rename = "javaClassName", default)]
    pub(super) java_class_name: String,
    /// Exception message.
    #[serde(default)]
    pub(super) message: String,
}

impl RemoteException {
    /// Whether this is the exception `simple_name` (by simple or fully qualified name; some
    /// gateways fill only one of the two).
    pub(super) fn is(&self, simple_name: &str) -> bool {
        self.exception == simple_name
            || self
                .java_class_name
                .rsplit('.')
                .next()
                .is_some_and(|n| n == simple_name)
    }
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `permission` is an octal *string* (`"755"`, `"1777"`). Numbers are read by their decimal
/// digits as octal too (`755` → `0o755`), as some WebHDFS-compatible gateways send them so.
/// An unparsable value becomes 0 rather than failing the listing.
fn octal_permission<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    struct OctalVisitor;

    impl Visitor<'_> for OctalVisitor {
        type Value = u32;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an octal permission string")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
            Ok(u32::from_str_radix(v.trim(), 8).map_or(0, |p| p & 0o7777))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
            self.visit_str(&v.to_string())
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u32, E> {
            Ok(u64::try_from(v).map_or(0, |v| self.visit_u64::<E>(v).unwrap_or(0)))
        }

        fn visit_unit<E: de::Error>(self) -> Result<u32, E> {
            Ok(0)
        }
    }

    d.deserialize_any(OctalVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Literal shapes from Hadoop's WebHDFS.md ("List a Directory", "Iteratively List a
    // Directory", "Status of a File/Directory", "Error Responses").

    #[test]
    fn parses_liststatus_from_the_spec() {
        let body = br#"{
          "FileStatuses":
          {
            "FileStatus":
            [
              {
                "accessTime"      : 1320171722771,
                "blockSize"       : 33554432,
                "childrenNum"     : 0,
                "fileId"          : 16388,
                "group"           : "supergroup",
                "length"          : 24930,
                "modificationTime": 1320171722771,
                "owner"           : "webuser",
                "pathSuffix"      : "a.patch",
                "permission"      : "644",
                "replication"     : 1,
                "storagePolicy"   : 0,
                "type"            : "FILE"
              },
              {
                "accessTime"      : 0,
                "blockSize"       : 0,
                "childrenNum"     : 0,
                "fileId"          : 16389,
                "group"           : "supergroup",
                "length"          : 0,
                "modificationTime": 1320895981256,
                "owner"           : "username",
                "pathSuffix"      : "bar",
                "permission"      : "1777",
                "replication"     : 0,
                "snapshotEnabled" : true,
                "type"            : "DIRECTORY"
              }
            ]
          }
        }"#;
        let parsed: FileStatusesEnvelope = serde_json::from_slice(body).unwrap();
        let entries: Vec<FileStatus> = parsed
            .file_statuses
            .file_status
            .into_iter()
            .map(FileStatus::from)
            .collect();
        assert_eq!(
            entries[0],
            FileStatus {
                name: "a.patch".into(),
                kind: EntryKind::File,
                length: 24930,
                modification_time_ms: 1_320_171_722_771,
                access_time_ms: 1_320_171_722_771,
                permission: 0o644,
                owner: "webuser".into(),
                group: "supergroup".into(),
            }
        );
        assert_eq!(entries[1].kind, EntryKind::Directory);
        assert_eq!(entries[1].permission, 0o1777);
    }

    #[test]
    fn parses_liststatus_batch_and_getfilestatus() {
        let body = br#"{"DirectoryListing":{"partialListing":{"FileStatuses":{"FileStatus":[
            {"accessTime":0,"blockSize":0,"childrenNum":0,"fileId":16387,"group":"supergroup",
             "length":0,"modificationTime":1473305882563,"owner":"andrew","pathSuffix":"bardir",
             "permission":"755","replication":0,"storagePolicy":0,"type":"DIRECTORY"}]}},
            "remainingEntries":2}}"#;
        let parsed: DirectoryListingEnvelope = serde_json::from_slice(body).unwrap();
        assert_eq!(parsed.directory_listing.remaining_entries, 2);
        let mut list = parsed
            .directory_listing
            .partial_listing
            .file_statuses
            .file_status;
        assert_eq!(FileStatus::from(list.remove(0)).name, "bardir");

        let body = br#"{"FileStatus":{"accessTime":0,"blockSize":0,"group":"supergroup",
            "length":0,"modificationTime":1320173277227,"owner":"webuser","pathSuffix":"",
            "permission":"777","replication":0,"type":"DIRECTORY"}}"#;
        let parsed: FileStatusEnvelope = serde_json::from_slice(body).unwrap();
        let st = FileStatus::from(parsed.file_status);
        assert_eq!(st.name, "");
        assert_eq!(st.permission, 0o777);
    }

    #[test]
    fn lenient_about_missing_odd_and_unknown_fields() {
        let body = br#"{"FileStatuses":{"FileStatus":[
            {"pathSuffix":"l","type":"SYMLINK","symlink":"/x","permission":755,"newField":[1]},
            {"pathSuffix":"w","type":"WHATEVER","permission":"zz","owner":null},
            {"pathSuffix":"m"}]}}"#;
        let parsed: FileStatusesEnvelope = serde_json::from_slice(body).unwrap();
        let e: Vec<FileStatus> = parsed
            .file_statuses
            .file_status
            .into_iter()
            .map(FileStatus::from)
            .collect();
        assert_eq!(e[0].kind, EntryKind::Symlink);
        assert_eq!(e[0].permission, 0o755);
        assert_eq!(e[1].kind, EntryKind::File);
        assert_eq!(e[1].permission, 0);
        assert_eq!(e[2].length, 0);
        assert_eq!(e[2].owner, "");

        let empty: FileStatusesEnvelope =
            serde_json::from_slice(br#"{"FileStatuses":{"FileStatus":null}}"#).unwrap();
        assert!(empty.file_statuses.file_status.is_empty());
    }

    /// The borrowed entries of a body, as owned statuses' fields.
    fn borrowed(body: &[u8]) -> Vec<(String, EntryKind, u64, i64, i64)> {
        let parsed: EntriesEnvelope<'_> = serde_json::from_slice(body).unwrap();
        parsed
            .entries()
            .map(|e| {
                (
                    e.name.to_owned(),
                    e.kind,
                    e.length,
                    e.modification_time_ms,
                    e.access_time_ms,
                )
            })
            .collect()
    }

    /// The same fields of the owned parse.
    fn owned(body: &[u8]) -> Vec<(String, EntryKind, u64, i64, i64)> {
        let parsed: FileStatusesEnvelope = serde_json::from_slice(body).unwrap();
        parsed
            .into_entries()
            .map(|s| {
                (
                    s.name,
                    s.kind,
                    s.length,
                    s.modification_time_ms,
                    s.access_time_ms,
                )
            })
            .collect()
    }

    #[test]
    fn borrowed_entries_match_the_owned_parse() {
        let body = br#"{"FileStatuses":{"FileStatus":[
            {"accessTime":7,"blockSize":1,"group":"g","length":24930,"modificationTime":9,
             "owner":"o","pathSuffix":"a.patch","permission":"644","type":"FILE"},
            {"pathSuffix":"caf\u00e9 \"q\"","type":"DIRECTORY","modificationTime":3},
            {"pathSuffix":"l","type":"SYMLINK","symlink":"/x","permission":755,"newField":[1]},
            {"pathSuffix":"w","type":"WHATEVER","permission":"zz","owner":null},
            {"pathSuffix":null,"length":5},
            {}]}}"#;
        let b = borrowed(body);
        assert_eq!(b, owned(body));
        assert_eq!(b[1].0, "café \"q\"", "escapes are decoded");
        assert_eq!(b[1].1, EntryKind::Directory);
        assert_eq!((b[4].0.as_str(), b[4].2), ("", 5));
        assert_eq!(b[5].1, EntryKind::File);

        let batch = br#"{"DirectoryListing":{"partialListing":{"FileStatuses":{"FileStatus":[
            {"pathSuffix":"x","type":"FILE","length":1},
            {"pathSuffix":"y\/z","type":"FILE","length":2}]}},"remainingEntries":3}}"#;
        let parsed: EntriesBatchEnvelope<'_> = serde_json::from_slice(batch).unwrap();
        assert_eq!(parsed.remaining(), 3);
        assert_eq!(parsed.last_name(), Some("y/z"));
        assert_eq!(parsed.entries().map(|e| e.length).sum::<u64>(), 3);
        let owned_batch: DirectoryListingEnvelope = serde_json::from_slice(batch).unwrap();
        let (page, remaining) = owned_batch.into_page();
        assert_eq!(remaining, 3);
        assert_eq!(page[1].name, "y/z");

        let empty: EntriesEnvelope<'_> =
            serde_json::from_slice(br#"{"FileStatuses":{"FileStatus":null}}"#).unwrap();
        assert_eq!(empty.entries().count(), 0);
        let no_listing: EntriesBatchEnvelope<'_> =
            serde_json::from_slice(br#"{"DirectoryListing":{}}"#).unwrap();
        assert_eq!(
            (no_listing.entries().count(), no_listing.remaining()),
            (0, 0)
        );
        assert_eq!(no_listing.last_name(), None);
    }

    #[test]
    fn borrowed_entries_reject_what_they_read_wrongly_typed() {
        for body in [
            &br#"{"FileStatuses":{"FileStatus":[{"pathSuffix":5}]}}"#[..],
            br#"{"FileStatuses":{"FileStatus":[{"length":-1}]}}"#,
            br#"{"FileStatuses":{"FileStatus":[{"type":null}]}}"#,
            br#"{"FileStatuses":{"FileStatus":{}}}"#,
            br#"{"FileStatuses":{"FileStatus":[{"pathSuffix":"a"}"#,
        ] {
            assert!(serde_json::from_slice::<EntriesEnvelope<'_>>(body).is_err());
            assert!(serde_json::from_slice::<FileStatusesEnvelope>(body).is_err());
        }
        assert!(serde_json::from_slice::<EntriesBatchEnvelope<'_>>(b"{}").is_err());
    }

    #[test]
    fn parses_remote_exception() {
        let body = br#"{"RemoteException":{"exception":"StandbyException",
            "javaClassName":"org.apache.hadoop.ipc.StandbyException",
            "message":"Operation category READ is not supported in state standby"}}"#;
        let e: RemoteExceptionEnvelope = serde_json::from_slice(body).unwrap();
        assert!(e.remote_exception.is("StandbyException"));
        let only_class = RemoteException {
            java_class_name: "org.apache.hadoop.ipc.StandbyException".into(),
            ..RemoteException::default()
        };
        assert!(only_class.is("StandbyException"));
        assert!(!only_class.is("Exception"));
    }
}
