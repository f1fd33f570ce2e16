//! The Thrift binary protocol, as far as the HiveServer2 client needs it: an [`Encoder`] that
//! writes strict message headers, fields, containers and scalars, and a bounds-checked
//! [`Decoder`] that reads them back (and skips what it does not know).
//!
//! Source: Apache Thrift, `doc/specs/thrift-binary-protocol.md`. All integers are big-endian
//! two's complement; strings and binaries are an `i32` length and the bytes; a field is its
//! type byte and `i16` id, a struct ends with a STOP byte (0); a list/set is its element type
//! byte and an `i32` count, a map its key and value type bytes and an `i32` count. The strict
//! message header is `i32` (`0x8001_0000 | message type`), the name, the `i32` sequence id;
//! the old (non-strict) header — name, type byte, sequence id — is accepted when reading.
//!
//! Decoding never panics and never allocates more than the input can justify: a length or
//! count that exceeds the bytes left is [`DecodeError::Incomplete`] (more input may follow on
//! an unframed transport), one beyond [`MAX_LENGTH`] or negative is [`DecodeError::Invalid`].

use std::fmt;

/// Field and element type ids of the binary protocol.
pub(crate) mod ttype {
    pub(crate) const STOP: u8 = 0;
    pub(crate) const BOOL: u8 = 2;
    pub(crate) const BYTE: u8 = 3;
    pub(crate) const DOUBLE: u8 = 4;
    pub(crate) const I16: u8 = 6;
    pub(crate) const I32: u8 = 8;
    pub(crate) const I64: u8 = 10;
    pub(crate) const STRING: u8 = 11;
    pub(crate) const STRUCT: u8 = 12;
    pub(crate) const MAP: u8 = 13;
    pub(crate) const SET: u8 = 14;
    pub(crate) const LIST: u8 = 15;
}

/// Message types of the message header.
pub(crate) mod message_type {
    pub(crate) const CALL: u8 = 1;
    pub(crate) const REPLY: u8 = 2;
    pub(crate) const EXCEPTION: u8 = 3;
}

/// The largest string, binary or container count accepted (256 MiB / 256 Mi elements).
pub(crate) const MAX_LENGTH: usize = 256 << 20;
/// The deepest nesting of structs and containers accepted when decoding.
pub(crate) const MAX_DEPTH: usize = 64;

const VERSION_1: u32 = 0x8001_0000;
const VERSION_MASK: u32 = 0xffff_0000;

/// Why input could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The input ends before the value does.
    Incomplete,
    /// The input is not a valid encoding (or exceeds a limit).
    Invalid(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Incomplete => f.write_str("truncated Thrift message"),
            Self::Invalid(m) => write!(f, "invalid Thrift message: {m}"),
        }
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> DecodeError {
    DecodeError::Invalid(msg.into())
}

/// Writes binary-protocol values into a byte buffer.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// A strict message header.
    pub(crate) fn message_begin(&mut self, name: &str, kind: u8, seq: i32) {
        self.i32((VERSION_1 | u32::from(kind)) as i32);
        self.string(name);
        self.i32(seq);
    }

    pub(crate) fn field(&mut self, ttype: u8, id: i16) {
        self.buf.push(ttype);
        self.i16(id);
    }

    pub(crate) fn stop(&mut self) {
        self.buf.push(ttype::STOP);
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    pub(crate) fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn string(&mut self, v: &str) {
        self.binary(v.as_bytes());
    }

    /// Lengths beyond `i32::MAX` cannot be encoded; callers send SQL text and identifiers
    /// far below that, so the length saturates rather than panicking.
    pub(crate) fn binary(&mut self, v: &[u8]) {
        self.i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
        self.buf.extend_from_slice(v);
    }

    pub(crate) fn map_begin(&mut self, key: u8, value: u8, len: usize) {
        self.buf.push(key);
        self.buf.push(value);
        self.i32(i32::try_from(len).unwrap_or(i32::MAX));
    }

    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn list_begin(&mut self, elem: u8, len: usize) {
        self.buf.push(elem);
        self.i32(i32::try_from(len).unwrap_or(i32::MAX));
    }
}

/// A decoded message header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessageHeader {
    pub(crate) name: String,
    pub(crate) kind: u8,
    pub(crate) seq: i32,
}

/// Reads binary-protocol values from a byte slice.
#[derive(Debug)]
pub(crate) struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            depth: 0,
        }
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Incomplete);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn byte(&mut self) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.u8()? != 0)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub(crate) fn double(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(u64::from_be_bytes(self.array()?)))
    }

    fn length(&mut self) -> Result<usize, DecodeError> {
        let n = self.i32()?;
        let n = usize::try_from(n).map_err(|_| invalid(format!("negative length {n}")))?;
        if n > MAX_LENGTH {
            return Err(invalid(format!(
                "length {n} exceeds the limit of {MAX_LENGTH}"
            )));
        }
        Ok(n)
    }

    pub(crate) fn binary(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.length()?;
        Ok(self.take(n)?.to_vec())
    }

    /// A string; invalid UTF-8 is replaced rather than rejected (servers pass through bytes
    /// of data files and messages).
    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.length()?;
        let bytes = self.take(n)?;
        Ok(match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        })
    }

    pub(crate) fn message_begin(&mut self) -> Result<MessageHeader, DecodeError> {
        let first = self.i32()?;
        if first < 0 {
            let v = first as u32;
            if v & VERSION_MASK != VERSION_1 {
                return Err(invalid(format!("bad protocol version {v:#x}")));
            }
            let name = self.string()?;
            let seq = self.i32()?;
            Ok(MessageHeader {
                name,
                kind: (v & 0xff) as u8,
                seq,
            })
        } else {
            // Old header: the first i32 is the name's length.
            let n = usize::try_from(first).unwrap_or(usize::MAX);
            if n > 4096 {
                return Err(invalid(format!("bad message header (name length {n})")));
            }
            let name = String::from_utf8_lossy(self.take(n)?).into_owned();
            let kind = self.u8()?;
            let seq = self.i32()?;
            Ok(MessageHeader { name, kind, seq })
        }
    }

    /// A container's element count; each element takes at least one byte, so a count above
    /// the bytes left cannot be complete yet.
    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.length()?;
        if n > self.remaining() {
            return Err(DecodeError::Incomplete);
        }
        Ok(n)
    }

    /// A list (or set) header: element type and count.
    pub(crate) fn list_begin(&mut self) -> Result<(u8, usize), DecodeError> {
        let elem = self.u8()?;
        let n = self.count()?;
        Ok((elem, n))
    }

    /// A map header: key type, value type and count.
    pub(crate) fn map_begin(&mut self) -> Result<(u8, u8, usize), DecodeError> {
        let k = self.u8()?;
        let v = self.u8()?;
        let n = self.count()?;
        Ok((k, v, n))
    }

    fn enter(&mut self) -> Result<(), DecodeError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(invalid("nesting too deep"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Reads a struct, calling `field` with each field's id and type; `field` must consume
    /// the value (or call [`Decoder::skip`]).
    pub(crate) fn read_struct(
        &mut self,
        mut field: impl FnMut(&mut Self, i16, u8) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        self.enter()?;
        loop {
            let t = self.u8()?;
            if t == ttype::STOP {
                break;
            }
            let id = self.i16()?;
            field(self, id, t)?;
        }
        self.leave();
        Ok(())
    }

    /// Reads a list whose elements must have type `want`, one call of `elem` per element.
    pub(crate) fn read_list<T>(
        &mut self,
        want: u8,
        mut elem: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        self.enter()?;
        let (t, n) = self.list_begin()?;
        if n > 0 && t != want {
            return Err(invalid(format!("list of type {t}, expected {want}")));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(elem(self)?);
        }
        self.leave();
        Ok(out)
    }

    /// Reads a `map<string, string>`.
    #[cfg(test)]
    pub(crate) fn string_map(&mut self) -> Result<Vec<(String, String)>, DecodeError> {
        self.enter()?;
        let (k, v, n) = self.map_begin()?;
        if n > 0 && (k != ttype::STRING || v != ttype::STRING) {
            return Err(invalid("expected map<string,string>"));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let key = self.string()?;
            let value = self.string()?;
            out.push((key, value));
        }
        self.leave();
        Ok(out)
    }

    /// Skips a value of type `t`.
    pub(crate) fn skip(&mut self, t: u8) -> Result<(), DecodeError> {
        match t {
            ttype::BOOL | ttype::BYTE => {
                self.take(1)?;
            }
            ttype::I16 => {
                self.take(2)?;
            }
            ttype::I32 => {
                self.take(4)?;
            }
            ttype::I64 | ttype::DOUBLE => {
                self.take(8)?;
            }
            ttype::STRING => {
                let n = self.length()?;
                self.take(n)?;
            }
            ttype::STRUCT => self.read_struct(|d, _, t| d.skip(t))?,
            ttype::MAP => {
                self.enter()?;
                let (k, v, n) = self.map_begin()?;
                for _ in 0..n {
                    self.skip(k)?;
                    self.skip(v)?;
                }
                self.leave();
            }
            ttype::SET | ttype::LIST => {
                self.enter()?;
                let (e, n) = self.list_begin()?;
                for _ in 0..n {
                    self.skip(e)?;
                }
                self.leave();
            }
            other => return Err(invalid(format!("unknown field type {other}"))),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_message_header_bytes() {
        let mut e = Encoder::new();
        e.message_begin("Ping", message_type::CALL, 7);
        assert_eq!(
            e.into_bytes(),
            [
                0x80, 0x01, 0x00, 0x01, 0, 0, 0, 4, b'P', b'i', b'n', b'g', 0, 0, 0, 7
            ]
        );
    }

    #[test]
    fn scalars_and_fields_bytes() {
        let mut e = Encoder::new();
        e.field(ttype::I32, 1);
        e.i32(-2);
        e.field(ttype::STRING, 2);
        e.string("hé");
        e.field(ttype::BOOL, 3);
        e.bool(true);
        e.field(ttype::I64, 4);
        e.i64(0x0102_0304_0506_0708);
        e.stop();
        let bytes = e.into_bytes();
        assert_eq!(
            bytes,
            [
                8, 0, 1, 0xff, 0xff, 0xff, 0xfe, //
                11, 0, 2, 0, 0, 0, 3, b'h', 0xc3, 0xa9, //
                2, 0, 3, 1, //
                10, 0, 4, 1, 2, 3, 4, 5, 6, 7, 8, //
                0
            ]
        );
        let mut d = Decoder::new(&bytes);
        let mut seen = Vec::new();
        d.read_struct(|d, id, t| {
            match (id, t) {
                (1, ttype::I32) => seen.push(format!("{}", d.i32()?)),
                (2, ttype::STRING) => seen.push(d.string()?),
                (3, ttype::BOOL) => seen.push(format!("{}", d.bool()?)),
                _ => d.skip(t)?,
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, ["-2", "hé", "true"]);
        assert_eq!(d.position(), bytes.len());
    }

    #[test]
    fn containers_and_double_bytes() {
        let mut e = Encoder::new();
        e.map_begin(ttype::STRING, ttype::STRING, 1);
        e.string("k");
        e.string("v");
        e.list_begin(ttype::DOUBLE, 1);
        e.buf.extend_from_slice(&2.5f64.to_bits().to_be_bytes());
        let bytes = e.into_bytes();
        assert_eq!(
            bytes,
            [
                11, 11, 0, 0, 0, 1, 0, 0, 0, 1, b'k', 0, 0, 0, 1, b'v', //
                4, 0, 0, 0, 1, 0x40, 0x04, 0, 0, 0, 0, 0, 0
            ]
        );
        let mut d = Decoder::new(&bytes);
        assert_eq!(d.string_map().unwrap(), [("k".to_owned(), "v".to_owned())]);
        assert_eq!(d.read_list(ttype::DOUBLE, |d| d.double()).unwrap(), [2.5]);
    }

    #[test]
    fn old_style_header_is_accepted() {
        let bytes = [0, 0, 0, 2, b'O', b'p', 2, 0, 0, 0, 9];
        let h = Decoder::new(&bytes).message_begin().unwrap();
        assert_eq!(
            h,
            MessageHeader {
                name: "Op".into(),
                kind: 2,
                seq: 9
            }
        );
    }

    #[test]
    fn truncation_is_incomplete_and_garbage_is_invalid() {
        // A string claiming 5 bytes with 2 present.
        assert_eq!(
            Decoder::new(&[0, 0, 0, 5, b'a', b'b']).string(),
            Err(DecodeError::Incomplete)
        );
        // Negative and absurd lengths.
        assert!(matches!(
            Decoder::new(&[0xff, 0xff, 0xff, 0xff]).string(),
            Err(DecodeError::Invalid(_))
        ));
        assert!(matches!(
            Decoder::new(&[0x7f, 0xff, 0xff, 0xff]).binary(),
            Err(DecodeError::Invalid(_))
        ));
        // A list claiming 100 million elements in 8 bytes: no allocation, just incomplete.
        assert_eq!(
            Decoder::new(&[8, 0x05, 0xf5, 0xe1, 0x00, 0, 0, 0]).read_list(ttype::I32, |d| d.i32()),
            Err(DecodeError::Incomplete)
        );
        // Unknown field type.
        assert!(matches!(
            Decoder::new(&[99, 0, 1]).read_struct(|d, _, t| d.skip(t)),
            Err(DecodeError::Invalid(_))
        ));
        // Wrong protocol version.
        assert!(matches!(
            Decoder::new(&[0x80, 0x02, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).message_begin(),
            Err(DecodeError::Invalid(_))
        ));
    }

    #[test]
    fn deep_nesting_is_rejected() {
        // 100 nested structs (field 1 of type struct), never closed.
        let mut bytes = Vec::new();
        for _ in 0..100 {
            bytes.extend_from_slice(&[12, 0, 1]);
        }
        let mut d = Decoder::new(&bytes);
        assert!(matches!(
            d.skip(ttype::STRUCT),
            Err(DecodeError::Invalid(_))
        ));
    }

    #[test]
    fn skip_walks_every_type() {
        let mut e = Encoder::new();
        e.field(ttype::BYTE, 1);
        e.buf.push(0x7f);
        e.field(ttype::I16, 2);
        e.i16(3);
        e.field(ttype::DOUBLE, 3);
        e.i64(0);
        e.field(ttype::SET, 4);
        e.list_begin(ttype::I64, 2);
        e.i64(1);
        e.i64(2);
        e.field(ttype::MAP, 5);
        e.map_begin(ttype::I32, ttype::STRUCT, 1);
        e.i32(1);
        e.stop();
        e.stop();
        e.i32(42);
        let bytes = e.into_bytes();
        let mut d = Decoder::new(&bytes);
        d.skip(ttype::STRUCT).unwrap();
        assert_eq!(d.i32().unwrap(), 42);
    }
}
