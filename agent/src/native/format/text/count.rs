//! Counting the lines of a text file given in chunks, through gzip when it is compressed:
//! what verification reads back after upload.

use std::io::Write;

use super::count_newlines;
use crate::native::format::{FormatError, TextCompression};

/// What [`TextCounter`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TextStats {
    /// `\n` bytes in the (uncompressed) text.
    pub lines: u64,
    /// Bytes of (uncompressed) text.
    pub uncompressed_bytes: u64,
    /// Whether the text ends with `\n` (false for an empty text).
    pub ends_with_newline: bool,
}

/// Counts the lines of a text file given in chunks (e.g. read back after upload), through
/// gzip when the file is compressed. A gzip stream must be complete (every member's trailer,
/// CRC and length checked); a zero-length gzip file counts as empty, as
/// [`merger`](crate::native::format::merger) treats it.
pub struct TextCounter {
    inner: Counter,
}

enum Counter {
    Plain(LineSink),
    Gzip {
        decoder: Box<flate2::write::MultiGzDecoder<LineSink>>,
        compressed: u64,
    },
}

impl std::fmt::Debug for TextCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, sink) = match &self.inner {
            Counter::Plain(s) => ("plain", s),
            Counter::Gzip { decoder, .. } => ("gzip", decoder.get_ref()),
        };
        f.debug_struct("TextCounter")
            .field("kind", &kind)
            .field("stats", &sink.stats())
            .finish()
    }
}

#[derive(Debug, Default)]
struct LineSink {
    lines: u64,
    bytes: u64,
    last: Option<u8>,
}

impl LineSink {
    fn consume(&mut self, chunk: &[u8]) {
        if let Some(&b) = chunk.last() {
            self.lines += count_newlines(chunk);
            self.bytes += chunk.len() as u64;
            self.last = Some(b);
        }
    }

    fn stats(&self) -> TextStats {
        TextStats {
            lines: self.lines,
            uncompressed_bytes: self.bytes,
            ends_with_newline: self.last == Some(b'\n'),
        }
    }
}

impl Write for LineSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.consume(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl TextCounter {
    /// A counter for a file of this compression.
    pub fn new(compression: TextCompression) -> Self {
        let inner = match compression {
            TextCompression::None => Counter::Plain(LineSink::default()),
            TextCompression::Gzip => Counter::Gzip {
                decoder: Box::new(flate2::write::MultiGzDecoder::new(LineSink::default())),
                compressed: 0,
            },
        };
        Self { inner }
    }

    /// The next chunk of the file.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), FormatError> {
        match &mut self.inner {
            Counter::Plain(sink) => sink.consume(chunk),
            Counter::Gzip {
                decoder,
                compressed,
            } => {
                *compressed += chunk.len() as u64;
                decoder
                    .write_all(chunk)
                    .map_err(|e| FormatError::corrupt("", format!("gzip: {e}")))?;
            }
        }
        Ok(())
    }

    /// The counts; for gzip, checks that the stream is complete.
    pub fn finish(self) -> Result<TextStats, FormatError> {
        match self.inner {
            Counter::Plain(sink) => Ok(sink.stats()),
            Counter::Gzip {
                decoder,
                compressed: 0,
            } => Ok(decoder.get_ref().stats()),
            Counter::Gzip { mut decoder, .. } => {
                decoder
                    .try_finish()
                    .map_err(|e| FormatError::corrupt("", format!("gzip: {e}")))?;
                Ok(decoder.get_ref().stats())
            }
        }
    }
}
