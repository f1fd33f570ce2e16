//! The text [`Merger`]: sources concatenated in order into outputs of about the target size,
//! plain or through gzip (sources decompressed, outputs one gzip member each), a missing
//! final `\n` added, a byte order mark allowed only at the start of an output, and every
//! source's compression checked against the merge's.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::count_newlines;
use crate::native::format::{FormatError, Merger, OutputNaming, SpooledOutput, TextCompression};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const WRITE_BUFFER: usize = 1 << 20;
const READ_BUFFER: usize = 1 << 20;

/// A writer that counts the bytes going through it.
#[derive(Debug)]
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf)?;
        self.bytes += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

enum Sink {
    Plain(Counting<BufWriter<File>>),
    Gzip(GzEncoder<Counting<BufWriter<File>>>),
}

impl Sink {
    /// Bytes written to the file so far (compressed; the encoder holds back a little).
    fn bytes(&self) -> u64 {
        match self {
            Self::Plain(w) => w.bytes,
            Self::Gzip(w) => w.get_ref().bytes,
        }
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(w) => w.write_all(data),
            Self::Gzip(w) => w.write_all(data),
        }
    }

    fn close(self) -> std::io::Result<()> {
        let counting = match self {
            Self::Plain(w) => w,
            Self::Gzip(w) => w.finish()?,
        };
        counting.inner.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    }
}

struct OpenOutput {
    name: String,
    path: PathBuf,
    sink: Sink,
    lines: u64,
    /// Whether any byte went into it (a byte order mark may only come first).
    started: bool,
}

/// Merges text sources by concatenation (see the module documentation).
pub(crate) struct TextMerger {
    compression: TextCompression,
    naming: OutputNaming,
    target: u64,
    level: u32,
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
    pub(crate) fn new(
        compression: TextCompression,
        naming: OutputNaming,
        target: u64,
        level: u32,
    ) -> Self {
        Self {
            compression,
            naming,
            target,
            level: level.min(9),
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
            .is_some_and(|o| o.sink.bytes() >= self.target)
        {
            self.close_current()?;
        }
        if self.current.is_none() {
            let (name, path, file) = self.naming.create(self.outputs.len())?;
            let writer = Counting {
                inner: BufWriter::with_capacity(WRITE_BUFFER, file),
                bytes: 0,
            };
            let sink = match self.compression {
                TextCompression::None => Sink::Plain(writer),
                TextCompression::Gzip => {
                    Sink::Gzip(GzEncoder::new(writer, Compression::new(self.level)))
                }
            };
            self.current = Some(OpenOutput {
                name,
                path,
                sink,
                lines: 0,
                started: false,
            });
        }
        Ok(self.current.as_mut().expect("just opened"))
    }

    fn close_current(&mut self) -> Result<(), FormatError> {
        if let Some(out) = self.current.take() {
            out.sink.close()?;
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
        let mut decoder = flate2::bufread::MultiGzDecoder::new(data);
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(READ_BUFFER, 0);
        let result = (|| {
            // Enough of the text to know whether it is empty and whether it starts with a mark.
            let mut filled = fill(&mut decoder, &mut buf, UTF8_BOM.len(), name)?;
            if filled == 0 {
                return Ok(0);
            }
            let out = self.output()?;
            if buf[..filled].starts_with(UTF8_BOM) && out.started {
                return Err(FormatError::ByteOrderMark {
                    file: name.to_owned(),
                });
            }
            out.started = true;
            let mut lines = 0u64;
            let mut last = 0u8;
            while filled > 0 {
                let chunk = &buf[..filled];
                out.sink.write_all(chunk)?;
                lines += count_newlines(chunk);
                last = chunk[chunk.len() - 1];
                filled = fill(&mut decoder, &mut buf, 1, name)?;
            }
            if last != b'\n' {
                out.sink.write_all(b"\n")?;
                lines += 1;
            }
            out.lines += lines;
            Ok(lines)
        })();
        self.buf = buf;
        result
    }
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
