//! Filesystem helpers of the commit protocol: whether a path exists, complete sorted
//! listings, whole-file reads that notice a file changing under them, and the clock the
//! protocol's markers are stamped with.

use bytes::Bytes;
use hive_smallfiles_core::fs::{FileStatus, FileSystem, FsError};

use crate::native::error::{NativeError, aborted};

/// Bytes read per `OPEN` request.
pub const READ_CHUNK: u64 = 16 << 20;

pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Whether `path` exists.
pub async fn exists(fs: &dyn FileSystem, path: &str) -> Result<bool, FsError> {
    match fs.file_status(path).await {
        Ok(_) => Ok(true),
        Err(FsError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Lists a directory completely.
pub async fn list_all(fs: &dyn FileSystem, path: &str) -> Result<Vec<FileStatus>, FsError> {
    let mut out = Vec::new();
    fs.list_status(path, &mut |page: Vec<FileStatus>| out.extend(page))
        .await?;
    // Listing a file yields its own status with an empty name.
    out.retain(|s| !s.name.is_empty());
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Reads a whole file whose length is known, in chunks (`OPEN` with offsets).
pub async fn read_file(fs: &dyn FileSystem, path: &str, length: u64) -> Result<Bytes, NativeError> {
    if length <= READ_CHUNK {
        let data = fs.read_range(path, 0, length.max(1)).await?;
        if data.len() as u64 != length {
            return Err(aborted(
                "source_changed",
                format!("{path}: listed {length} bytes, read {}", data.len()),
            ));
        }
        return Ok(data);
    }
    let mut buf = bytes::BytesMut::with_capacity(usize::try_from(length).unwrap_or(0));
    while (buf.len() as u64) < length {
        let chunk = fs
            .read_range(
                path,
                buf.len() as u64,
                READ_CHUNK.min(length - buf.len() as u64),
            )
            .await?;
        if chunk.is_empty() {
            break;
        }
        buf.extend_from_slice(&chunk);
    }
    // One more byte would mean the file grew since it was listed.
    let more = fs.read_range(path, length, 1).await.unwrap_or_default();
    if buf.len() as u64 != length || !more.is_empty() {
        return Err(aborted(
            "source_changed",
            format!("{path}: listed {length} bytes, read {}+", buf.len()),
        ));
    }
    Ok(buf.freeze())
}

/// Copies the file `from` (of `length` bytes) to `to` through a local spool file, so memory
/// stays bounded by one chunk; `to` must not exist.
pub(super) async fn copy_file(
    fs: &dyn hive_smallfiles_core::fs::write::FileSystemWrite,
    from: &str,
    to: &str,
    length: u64,
    spool: &std::path::Path,
    permission: u32,
) -> Result<(), NativeError> {
    use std::io::Write as _;
    std::fs::create_dir_all(spool)?;
    let local = spool.join(format!("copy-{:016x}", rand::random::<u64>()));
    let result = async {
        let mut out = std::fs::File::create(&local)?;
        let mut offset = 0u64;
        while offset < length {
            let chunk = fs
                .read_range(from, offset, READ_CHUNK.min(length - offset))
                .await?;
            if chunk.is_empty() {
                break;
            }
            out.write_all(&chunk)?;
            offset += chunk.len() as u64;
        }
        out.sync_all()?;
        drop(out);
        if offset != length {
            return Err(aborted(
                "source_changed",
                format!("{from}: listed {length} bytes, read {offset}"),
            ));
        }
        fs.create_from_local(to, &local, false, Some(permission))
            .await?;
        Ok(())
    }
    .await;
    let _ = std::fs::remove_file(&local);
    result
}
