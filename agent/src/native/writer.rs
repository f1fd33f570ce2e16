//! The native stage writer: reads the partition's files through the filesystem client,
//! merges them with [`super::format`] into a local spool and uploads the result into the
//! staging `output/` directory.

use std::path::Path;
use std::sync::Arc;

use hive_smallfiles_core::fs::join_path;
use hive_smallfiles_core::fs::write::FileSystemWrite;

use super::commit::{Listing, StageWriter, Staged, Target, VerifyAs, read_file};
use super::error::{NativeError, refused};
use super::format::{self, Merger, NativeFormat, TextCompression};
use super::manifest::Writer;

/// Leading bytes of binary formats that must never be concatenated as text: Parquet, ORC,
/// SequenceFile, Avro object container, RCFile.
const BINARY_MAGIC: &[&[u8]] = &[b"PAR1", b"ORC", b"SEQ", b"Obj\x01", b"RCF"];

/// Merges with the agent's own format code.
#[derive(Debug, Clone)]
pub struct NativeWriter {
    /// Format of the table (text compression is refined per file name).
    pub format: NativeFormat,
    /// Output size to aim for.
    pub target_bytes: u64,
}

impl NativeWriter {
    /// The format of these sources: for text, the compression all of their names agree on.
    fn format_of(&self, listing: &Listing) -> Result<NativeFormat, NativeError> {
        match self.format {
            NativeFormat::Parquet => Ok(NativeFormat::Parquet),
            NativeFormat::Text(_) => {
                let mut seen: Option<TextCompression> = None;
                for s in &listing.sources {
                    let c = TextCompression::from_file_name(&s.name)?;
                    match seen {
                        None => seen = Some(c),
                        Some(x) if x == c => {}
                        Some(expected) => {
                            return Err(format::FormatError::MixedCompression {
                                file: s.name.clone(),
                                expected,
                                found: c,
                            }
                            .into());
                        }
                    }
                }
                Ok(NativeFormat::Text(seen.unwrap_or(TextCompression::None)))
            }
        }
    }
}

/// Sources up to this size are read while the previous one is merged (memory: the source
/// being merged plus at most this much read ahead).
const READ_AHEAD_MAX: u64 = 16 << 20;

/// Reads one source whole; plain text must not look like a binary format.
async fn read_source(
    fs: &dyn FileSystemWrite,
    target: &Target,
    source: &hive_smallfiles_core::fs::FileStatus,
    format: NativeFormat,
) -> Result<bytes::Bytes, NativeError> {
    let path = join_path(&target.path, &source.name);
    let data = read_file(fs, &path, source.length).await?;
    if matches!(format, NativeFormat::Text(TextCompression::None))
        && BINARY_MAGIC.iter().any(|m| data.starts_with(m))
    {
        return Err(refused(
            "format_mismatch",
            format!(
                "{path} looks like a binary file, not text; the partition's format differs from the table's"
            ),
        ));
    }
    Ok(data)
}

fn merge_id_of(output: &str) -> &str {
    let dir = hive_smallfiles_core::fs::parent_path(output);
    dir.rsplit('/').next().unwrap_or("merge")
}

#[async_trait::async_trait]
impl StageWriter for NativeWriter {
    async fn write(
        &self,
        fs: &Arc<dyn FileSystemWrite>,
        target: &Target,
        listing: &Listing,
        output: &str,
        spool: &Path,
    ) -> Result<Staged, NativeError> {
        let format = self.format_of(listing)?;
        let prefix = format!("part-{}", merge_id_of(output));
        let mut merger: Box<dyn Merger> = format::merger(format, spool, self.target_bytes, &prefix);
        let sources = &listing.sources;
        let mut rows = 0u64;
        let mut next = match sources.first() {
            Some(s) => Some(read_source(fs.as_ref(), target, s, format).await?),
            None => None,
        };
        for (i, s) in sources.iter().enumerate() {
            let data = match next.take() {
                Some(data) => data,
                None => read_source(fs.as_ref(), target, s, format).await?,
            };
            let name = s.name.clone();
            let push = tokio::task::spawn_blocking(move || {
                let r = merger.push(&name, data);
                (merger, r)
            });
            // The next source is read while this one is merged, unless it is large: then it
            // is read afterwards, so memory holds one large source at a time.
            let ahead = sources.get(i + 1).filter(|n| n.length <= READ_AHEAD_MAX);
            let (pushed, read) = tokio::join!(push, async {
                match ahead {
                    Some(n) => read_source(fs.as_ref(), target, n, format).await.map(Some),
                    None => Ok(None),
                }
            });
            let (back, pushed) =
                pushed.map_err(|e| NativeError::Spool(std::io::Error::other(e.to_string())))?;
            merger = back;
            rows += pushed?;
            next = read?;
        }
        let outputs = tokio::task::spawn_blocking(move || merger.finish())
            .await
            .map_err(|e| NativeError::Spool(std::io::Error::other(e.to_string())))??;
        let pushed_rows: u64 = outputs.iter().map(|o| o.rows).sum();
        if pushed_rows != rows {
            return Err(NativeError::Verification(format!(
                "the sources hold {rows} rows, the merged files {pushed_rows}"
            )));
        }
        fs.mkdirs(output, Some(listing.directory.permission))
            .await?;
        let file_permission = listing.sources.first().map(|s| s.permission);
        for o in &outputs {
            fs.create_from_local(
                &join_path(output, &o.file_name),
                &o.local_path,
                true,
                file_permission,
            )
            .await?;
        }
        Ok(Staged {
            writer: Writer::Native,
            format: Some(format),
            expected_rows: rows,
            verify_as: match format {
                NativeFormat::Parquet => VerifyAs::Parquet,
                NativeFormat::Text(_) => VerifyAs::Text,
            },
        })
    }
}
