//! The text [`Merger`]: sources concatenated in order into outputs of about the target size,
//! a missing final `\n` added, a byte order mark allowed only at the start of an output, and
//! every source's compression checked against the merge's.
//!
//! Gzip sources are copied as they are, member after member, never recompressed: Hadoop's
//! `GzipCodec` reads concatenated gzip members as one stream (HADOOP-6835:
//! `DecompressorStream.decompress` resets the decompressor and goes on when a member ends and
//! input remains; `BuiltInGzipDecompressor` and `java.util.zip.GZIPInputStream` do the same),
//! so the concatenation of the sources' bytes reads as the concatenation of their texts. Each
//! source is still decompressed to the end here — every member's CRC-32 and length checked —
//! to count its lines, to see whether its text ends with `\n` (if not, a gzip member holding
//! just `\n` follows it, so its last row never runs into the next source's first) and whether
//! it starts with a byte order mark.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::LazyLock;

use bytes::Bytes;

use super::count_newlines;
use crate::native::format::{FormatError, Merger, OutputNaming, SpooledOutput, TextCompression};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const WRITE_BUFFER: usize = 1 << 20;
const READ_BUFFER: usize = 1 << 20;

/// One complete gzip member holding the text `\n`: what follows a gzip source whose text
/// does not end with a newline.
static NEWLINE_MEMBER: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = e.write_all(b"\n");
    e.finish().unwrap_or_default()
});

/// The gzip member holding `\n`.
pub(super) fn newline_member() -> &'static [u8] {
    &NEWLINE_MEMBER
}

/// A writer that counts the bytes going through it.
#[derive(Debug)]
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Counting<W> {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf)?;
        self.bytes += buf.len() as u64;
        Ok(())
    }
}

struct OpenOutput {
    name: String,
    path: PathBuf,
    sink: Counting<BufWriter<File>>,
    lines: u64,
    /// Whether any byte went into it (a byte order mark may only come first).
    started: bool,
}

/// What a gzip source's text holds, read to the end of its last member.
#[derive(Debug, Default)]
struct GzipText {
    lines: u64,
    bytes: u64,
    /// Its first bytes (up to the length of a byte order mark).
    head: Vec<u8>,
    last: u8,
}

/// Merges text sources by concatenation (see the module documentation).
pub(crate) struct TextMerger {
    compression: TextCompression,
    naming: OutputNaming,
    target: u64,
    current: Option<OpenOutput>,
    outputs: Vec<SpooledOutput>,
    failed: bool,
    buf: Vec<u8>,
}

impl std::fmt::Debug for TextMerger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextMerger")
            .field("compression", &self.compression)
            .field("target", &self.target)
            .field("outputs", &self.outputs.len())
            .finish_non_exhaustive()
    }
}

impl TextMerger {
    pub(crate) fn new(compression: TextCompression, naming: OutputNaming, target: u64) -> Self {
        Self {
            compression,
            naming,
            target,
            current: None,
            outputs: Vec::new(),
            failed: false,
            buf: Vec::new(),
        }
    }

    /// The output the next source goes to: the current one, unless it reached the target.
    fn output(&mut self) -> Result<&mut OpenOutput, FormatError> {
        if self
            .current
            .as_ref()
            .is_some_and(|o| o.sink.bytes >= self.target)
        {
            self.close_current()?;
        }
        if self.current.is_none() {
            let (name, path, file) = self.naming.create(self.outputs.len())?;
            self.current = Some(OpenOutput {
                name,
                path,
                sink: Counting {
                    inner: BufWriter::with_capacity(WRITE_BUFFER, file),
                    bytes: 0,
                },
                lines: 0,
                started: false,
            });
        }
        Ok(self.current.as_mut().expect("just opened"))
    }

    fn close_current(&mut self) -> Result<(), FormatError> {
        if let Some(out) = self.current.take() {
            out.sink.inner.into_inner().map_err(|e| e.into_error())?;
            let bytes = std::fs::metadata(&out.path)?.len();
            self.outputs.push(SpooledOutput {
                local_path: out.path,
                file_name: out.name,
                bytes,
                rows: out.lines,
            });
        }
        Ok(())
    }

    fn push_plain(&mut self, name: &str, data: &[u8]) -> Result<u64, FormatError> {
        if data.is_empty() {
            return Ok(0);
        }
        let out = self.output()?;
        if data.starts_with(UTF8_BOM) && out.started {
            return Err(FormatError::ByteOrderMark {
                file: name.to_owned(),
            });
        }
        out.started = true;
        out.sink.write_all(data)?;
        let mut lines = count_newlines(data);
        if data.last() != Some(&b'\n') {
            out.sink.write_all(b"\n")?;
            lines += 1;
        }
        out.lines += lines;
        Ok(lines)
    }

    fn push_gzip(&mut self, name: &str, data: &[u8]) -> Result<u64, FormatError> {
        // A zero-length `.gz` file holds no line. Hadoop cannot even open it (its
        // `DecompressorStream` throws `EOFException: Unexpected end of input stream`, which
        // fails the whole query); it contributes nothing, so the merge removes it.
        if data.is_empty() {
            return Ok(0);
        }
        let mut buf = std::mem::take(&mut self.buf);
        let text = read_gzip(name, data, &mut buf);
        self.buf = buf;
        let text = text?;
        // Members of no text (a gzip of nothing): nothing to keep.
        if text.bytes == 0 {
            return Ok(0);
        }
        let out = self.output()?;
        if text.head.starts_with(UTF8_BOM) && out.started {
            return Err(FormatError::ByteOrderMark {
                file: name.to_owned(),
            });
        }
        out.started = true;
        out.sink.write_all(data)?;
        let mut lines = text.lines;
        if text.last != b'\n' {
            out.sink.write_all(newline_member())?;
            lines += 1;
        }
        out.lines += lines;
        Ok(lines)
    }
}

/// Decompresses a whole gzip file (every member, each one's CRC-32 and length checked; bytes
/// after the last member that are not a member are an error) and counts its lines.
fn read_gzip(name: &str, data: &[u8], buf: &mut Vec<u8>) -> Result<GzipText, FormatError> {
    let mut decoder = flate2::bufread::MultiGzDecoder::new(data);
    buf.resize(READ_BUFFER, 0);
    let mut text = GzipText::default();
    // Enough of the text to know whether it starts with a mark (split across members, too).
    let mut filled = fill(&mut decoder, buf, UTF8_BOM.len(), name)?;
    text.head = buf[..filled.min(UTF8_BOM.len())].to_vec();
    while filled > 0 {
        let chunk = &buf[..filled];
        text.lines += count_newlines(chunk);
        text.bytes += filled as u64;
        text.last = chunk[filled - 1];
        filled = fill(&mut decoder, buf, 1, name)?;
    }
    Ok(text)
}

/// Reads until at least `min` bytes are in `buf` or the stream ends; the bytes read.
fn fill(
    reader: &mut impl Read,
    buf: &mut [u8],
    min: usize,
    name: &str,
) -> Result<usize, FormatError> {
    let mut filled = 0;
    while filled < min.max(1) {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FormatError::corrupt(name, format!("gzip: {e}"))),
        }
    }
    Ok(filled)
}

impl Merger for TextMerger {
    fn push(&mut self, name: &str, data: Bytes) -> Result<u64, FormatError> {
        if self.failed {
            return Err(FormatError::Aborted);
        }
        self.failed = true;
        let found = TextCompression::from_file_name(name)?;
        if found != self.compression {
            return Err(FormatError::MixedCompression {
                file: name.to_owned(),
                expected: self.compression,
                found,
            });
        }
        let lines = match self.compression {
            TextCompression::None => self.push_plain(name, &data)?,
            TextCompression::Gzip => self.push_gzip(name, &data)?,
        };
        self.failed = false;
        Ok(lines)
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<SpooledOutput>, FormatError> {
        if self.failed {
            return Err(FormatError::Aborted);
        }
        self.close_current()?;
        Ok(self.outputs)
    }
}
