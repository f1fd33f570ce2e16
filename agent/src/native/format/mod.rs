//! TEMPORARY API STUB (replaced by the real format layer).
#![allow(missing_docs, unused_variables, clippy::todo)]
use bytes::Bytes;
use std::path::{Path, PathBuf};
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NativeFormat {
    Text(TextCompression),
    Parquet,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextCompression {
    None,
    Gzip,
}
impl TextCompression {
    pub fn from_file_name(name: &str) -> Result<Self, FormatError> {
        Ok(if name.ends_with(".gz") {
            Self::Gzip
        } else {
            Self::None
        })
    }
    pub fn extension(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Gzip => ".gz",
        }
    }
}
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("mixed")]
    MixedCompression,
}
impl FormatError {
    pub fn reason(&self) -> &'static str {
        "x"
    }
}
pub struct SpooledOutput {
    pub local_path: PathBuf,
    pub file_name: String,
    pub bytes: u64,
    pub rows: u64,
}
pub trait Merger: Send {
    fn push(&mut self, name: &str, data: Bytes) -> Result<u64, FormatError>;
    fn finish(self: Box<Self>) -> Result<Vec<SpooledOutput>, FormatError>;
}
pub fn merger(
    format: NativeFormat,
    spool_dir: &Path,
    target_bytes: u64,
    prefix: &str,
) -> Box<dyn Merger> {
    todo!()
}
pub struct TextCounter;
pub struct TextStats {
    pub lines: u64,
    pub uncompressed_bytes: u64,
    pub ends_with_newline: bool,
}
impl TextCounter {
    pub fn new(c: TextCompression) -> Self {
        todo!()
    }
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), FormatError> {
        todo!()
    }
    pub fn finish(self) -> Result<TextStats, FormatError> {
        todo!()
    }
}
pub fn parquet_footer_len(last8: &[u8]) -> Result<u64, FormatError> {
    todo!()
}
pub fn parquet_rows_from_tail(tail: Bytes) -> Result<u64, FormatError> {
    todo!()
}
pub fn orc_rows(data: Bytes) -> Result<u64, FormatError> {
    todo!()
}
