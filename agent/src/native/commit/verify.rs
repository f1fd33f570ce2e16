//! Verification of the staged output before anything visible changes: every output file is
//! listed and its rows counted from what the filesystem returns (text lines through gzip,
//! Parquet and ORC footers), and the total must equal the rows the sources hold. Engine
//! leftovers (`_SUCCESS`, `.crc`) are removed from the output on the way.

use hive_smallfiles_core::fs::{EntryKind, FileSystem, join_path};

use super::{Committer, Listing, READ_CHUNK, Staged, VerifyAs, list_all, read_file};
use crate::native::error::NativeError;
use crate::native::format::{self, TextCompression, TextCounter};
use crate::native::manifest::ManifestOutput;

impl Committer {
    /// Lists `output/`, counts rows of every output file from what the filesystem returns,
    /// and checks them against the expected rows.
    pub(super) async fn verify_output(
        &self,
        output: &str,
        listing: &Listing,
        staged: &Staged,
    ) -> Result<Vec<ManifestOutput>, NativeError> {
        let fs = self.fs.as_ref();
        let entries = list_all(fs, output).await?;
        let mut outputs = Vec::new();
        let mut total = 0u64;
        for e in &entries {
            if e.is_hidden() {
                if listing.carried.iter().any(|c| c.name == e.name) {
                    continue;
                }
                // Engine leftovers (`_SUCCESS`, `.crc`) do not belong in the partition.
                fs.delete(&join_path(output, &e.name), true).await?;
                continue;
            }
            if e.kind != EntryKind::File {
                return Err(NativeError::Verification(format!(
                    "{output}/{} is not a file",
                    e.name
                )));
            }
            if listing.sources.iter().any(|s| s.name == e.name) {
                return Err(NativeError::Verification(format!(
                    "output file {} has the name of a source file",
                    e.name
                )));
            }
            let path = join_path(output, &e.name);
            let rows = count_rows(fs, &path, e.length, staged.verify_as).await?;
            total += rows;
            outputs.push(ManifestOutput {
                name: e.name.clone(),
                length: e.length,
                rows,
            });
        }
        if total != staged.expected_rows {
            return Err(NativeError::Verification(format!(
                "the sources hold {} rows, the staged output {total}",
                staged.expected_rows
            )));
        }
        if outputs.is_empty() && staged.expected_rows > 0 {
            return Err(NativeError::Verification("no output files".to_owned()));
        }
        Ok(outputs)
    }
}

/// Counts rows of one file on the filesystem.
async fn count_rows(
    fs: &dyn FileSystem,
    path: &str,
    length: u64,
    verify_as: VerifyAs,
) -> Result<u64, NativeError> {
    match verify_as {
        VerifyAs::Text => {
            let compression = TextCompression::from_file_name(path)?;
            let mut counter = TextCounter::new(compression);
            let mut offset = 0;
            while offset < length {
                let chunk = fs
                    .read_range(path, offset, READ_CHUNK.min(length - offset))
                    .await?;
                if chunk.is_empty() {
                    break;
                }
                offset += chunk.len() as u64;
                counter.update(&chunk)?;
            }
            if offset != length {
                return Err(NativeError::Verification(format!(
                    "{path}: listed {length} bytes, read {offset}"
                )));
            }
            let stats = counter.finish()?;
            if stats.uncompressed_bytes > 0 && !stats.ends_with_newline {
                return Err(NativeError::Verification(format!(
                    "{path} does not end with a newline"
                )));
            }
            Ok(stats.lines)
        }
        VerifyAs::Parquet => {
            if length < 12 {
                return Err(NativeError::Verification(format!(
                    "{path}: {length} bytes is no Parquet file"
                )));
            }
            let last8 = fs.read_range(path, length - 8, 8).await?;
            let footer = format::parquet_footer_len(&last8)?;
            let tail_len = (footer + 8).min(length);
            let tail = fs.read_range(path, length - tail_len, tail_len).await?;
            Ok(format::parquet_rows_from_tail(tail)?)
        }
        VerifyAs::Orc => {
            let data = read_file(fs, path, length).await?;
            Ok(format::orc_rows(data)?)
        }
    }
}
