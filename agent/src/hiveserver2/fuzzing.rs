//! Fuzzing entry point of the HiveServer2 reply decoding (not an API: built for the fuzz
//! target `hs2_frames` under `fuzz/` with the `fuzzing` feature, and for the corpus replay
//! test).
//!
//! [`hs2_frames`] plays a server's byte stream into the client's receive path: the same
//! framing check (`frame_length`) and the same decode-or-wait step (`take_message`) that
//! `Transport::receive` runs, with the reply decoders the session uses. Input layout:
//!
//! * byte 0: bits 0–2 pick the call whose replies are decoded (see [`CALLS`]), bit 3 chooses
//!   SASL framing (4-byte big-endian length, then the frame) over NOSASL (bytes as they
//!   come);
//! * byte 1: NOSASL only, how many bytes each socket read delivers (0 reads as 1);
//! * the rest: the stream, decoded reply after reply (sequence ids 1, 2, …) until it ends or a
//!   reply is unusable (the session would drop the connection).

use super::messages::{
    ReplyError, decode_reply, execute_statement_response, fetch_response, metadata_response,
    open_session_response, operation_status_response, status_response,
};
use super::protocol::{DecodeError, Decoder};
use super::transport::{frame_length, is_incomplete, take_message};

/// The calls whose replies the client decodes, in the order byte 0 selects them.
pub(crate) const CALLS: [&str; 8] = [
    "CloseOperation",
    "OpenSession",
    "ExecuteStatement",
    "GetOperationStatus",
    "GetResultSetMetadata",
    "FetchResults",
    "CloseSession",
    "CancelOperation",
];

/// Bit of byte 0 that selects SASL framing.
pub(crate) const FRAMED: u8 = 0x08;

/// What one decoded reply held, for the invariants (and the replay test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// A reply decoded into its response.
    Reply,
    /// A `TApplicationException`.
    Application,
    /// The stream is unusable (malformed, or a reply to another call).
    Unusable,
}

/// Decodes the replies in `data` (see the module docs); panics only on a broken invariant.
pub fn hs2_frames(data: &[u8]) -> Vec<Decoded> {
    let Some((&head, rest)) = data.split_first() else {
        return Vec::new();
    };
    let method = CALLS[usize::from(head & 0x07)];
    let framed = head & FRAMED != 0;
    let (chunk, mut stream) = match rest.split_first() {
        Some((&c, s)) if !framed => (usize::from(c).max(1), s),
        _ => (0, rest),
    };
    let mut pending = Vec::new();
    let mut out = Vec::new();
    let mut seq = 1;
    loop {
        let mut decode = |buf: &[u8]| -> Result<((), usize), ReplyError> {
            let used = decode(method, seq, buf)?;
            assert!(
                used > 0 && used <= buf.len(),
                "a reply of {used} bytes from {}",
                buf.len()
            );
            Ok(((), used))
        };
        let incomplete = |e: &ReplyError| matches!(e, ReplyError::Decode(d) if is_incomplete(d));
        match take_message(&mut pending, &mut decode, &incomplete) {
            Some(Ok(())) => {
                out.push(Decoded::Reply);
                seq += 1;
                continue;
            }
            Some(Err(ReplyError::Application { .. })) => {
                // The session reports it and goes on; the exception's bytes were taken.
                out.push(Decoded::Application);
                assert!(pending.is_empty(), "the buffer is dropped after an error");
                return out;
            }
            Some(Err(_)) => {
                out.push(Decoded::Unusable);
                assert!(pending.is_empty(), "the buffer is dropped after an error");
                return out;
            }
            None => {}
        }
        // The next socket read.
        if framed {
            let Some((head, after)) = stream.split_first_chunk::<4>() else {
                return out;
            };
            let Ok(len) = frame_length(*head, pending.len()) else {
                return out;
            };
            let Some((frame, after)) = after.split_at_checked(len) else {
                return out;
            };
            pending.extend_from_slice(frame);
            stream = after;
        } else {
            if stream.is_empty() {
                return out;
            }
            let (read, after) = stream.split_at(chunk.min(stream.len()));
            pending.extend_from_slice(read);
            stream = after;
        }
    }
}

/// Decodes one reply to `method`/`seq` with the decoder the session uses for it; the bytes
/// it took.
fn decode(method: &str, seq: i32, buf: &[u8]) -> Result<usize, ReplyError> {
    fn run<T>(
        buf: &[u8],
        method: &str,
        seq: i32,
        body: fn(&mut Decoder<'_>) -> Result<T, DecodeError>,
    ) -> Result<usize, ReplyError> {
        decode_reply(buf, method, seq, body).map(|(_, used)| used)
    }
    match method {
        "OpenSession" => run(buf, method, seq, open_session_response),
        "ExecuteStatement" => run(buf, method, seq, execute_statement_response),
        "GetOperationStatus" => run(buf, method, seq, operation_status_response),
        "GetResultSetMetadata" => run(buf, method, seq, metadata_response),
        "FetchResults" => run(buf, method, seq, fetch_response),
        _ => run(buf, method, seq, status_response),
    }
}

/// Seed inputs: well-formed replies of every call the client makes, as HiveServer2 and the
/// Spark Thrift Server send them (shapes from `TCLIService.thrift`), framed and unframed, one
/// reply or several per stream.
pub(crate) fn seeds() -> Vec<(String, Vec<u8>)> {
    use super::messages::protocol_version;
    use super::protocol::{Encoder, message_type, ttype};

    /// Marks the reply that is an application exception (to `OpenSession`).
    const APPLICATION_EXCEPTION: usize = usize::MAX;

    fn reply(method: &str, seq: i32) -> Encoder {
        let mut e = Encoder::new();
        e.message_begin(method, message_type::REPLY, seq);
        e.field(ttype::STRUCT, 0);
        e
    }
    fn status(e: &mut Encoder, code: i32, message: Option<&str>) {
        e.field(ttype::STRUCT, 1);
        e.field(ttype::I32, 1);
        e.i32(code);
        if let Some(m) = message {
            e.field(ttype::STRING, 3);
            e.string("42000");
            e.field(ttype::I32, 4);
            e.i32(40000);
            e.field(ttype::STRING, 5);
            e.string(m);
        }
        e.stop();
    }
    fn handle(e: &mut Encoder, id: i16) {
        e.field(ttype::STRUCT, id);
        e.field(ttype::STRING, 1);
        e.binary(&[7; 16]);
        e.field(ttype::STRING, 2);
        e.binary(&[9; 16]);
        e.stop();
    }
    fn end(mut e: Encoder) -> Vec<u8> {
        e.stop(); // response
        e.stop(); // result
        e.into_bytes()
    }
    let replies = |seq: i32| -> Vec<(usize, Vec<u8>)> {
        let mut out = Vec::new();
        // 0: CloseOperation.
        let mut e = reply(CALLS[0], seq);
        status(&mut e, 0, None);
        out.push((0, end(e)));
        // 1: OpenSession, with the server's configuration map.
        let mut e = reply(CALLS[1], seq);
        status(&mut e, 0, None);
        e.field(ttype::I32, 2);
        e.i32(protocol_version::V11);
        e.field(ttype::STRUCT, 3);
        handle(&mut e, 1);
        e.stop();
        e.field(ttype::MAP, 4);
        e.map_begin(ttype::STRING, ttype::STRING, 1);
        e.string("use:database");
        e.string("default");
        out.push((1, end(e)));
        // 2: ExecuteStatement.
        let mut e = reply(CALLS[2], seq);
        status(&mut e, 0, None);
        e.field(ttype::STRUCT, 2);
        handle(&mut e, 1);
        e.field(ttype::I32, 2);
        e.i32(0);
        e.field(ttype::BOOL, 3);
        e.bool(true);
        e.field(ttype::DOUBLE, 4);
        e.i64(0); // modifiedRowCount 0.0: the same eight bytes
        e.stop();
        out.push((2, end(e)));
        // 2: ExecuteStatement refused with an error status.
        let mut e = reply(CALLS[2], seq);
        status(
            &mut e,
            3,
            Some("Error while compiling statement: FAILED: ParseException"),
        );
        out.push((2, end(e)));
        // 3: GetOperationStatus, FINISHED.
        let mut e = reply(CALLS[3], seq);
        status(&mut e, 0, None);
        e.field(ttype::I32, 2);
        e.i32(2);
        e.field(ttype::I64, 6);
        e.i64(1_700_000_000_000);
        e.field(ttype::BOOL, 9);
        e.bool(false);
        out.push((3, end(e)));
        // 4: GetResultSetMetadata, two columns.
        let mut e = reply(CALLS[4], seq);
        status(&mut e, 0, None);
        e.field(ttype::STRUCT, 2); // TTableSchema
        e.field(ttype::LIST, 1);
        e.list_begin(ttype::STRUCT, 2);
        for (pos, name) in [(1, "partition"), (2, "num_files")] {
            e.field(ttype::STRING, 1);
            e.string(name);
            e.field(ttype::STRUCT, 2); // TTypeDesc: skipped
            e.field(ttype::LIST, 1);
            e.list_begin(ttype::STRUCT, 0);
            e.stop();
            e.field(ttype::I32, 3);
            e.i32(pos);
            e.stop();
        }
        e.stop();
        out.push((4, end(e)));
        // 5: FetchResults, column-based with NULLs (protocol V6 and later).
        let mut e = reply(CALLS[5], seq);
        status(&mut e, 0, None);
        e.field(ttype::BOOL, 2);
        e.bool(false);
        e.field(ttype::STRUCT, 3); // TRowSet
        e.field(ttype::I64, 1);
        e.i64(0);
        e.field(ttype::LIST, 2);
        e.list_begin(ttype::STRUCT, 0);
        e.field(ttype::LIST, 3);
        e.list_begin(ttype::STRUCT, 3);
        e.field(ttype::STRUCT, 7); // stringVal
        e.field(ttype::LIST, 1);
        e.list_begin(ttype::STRING, 2);
        e.string("dt=2024-01-01");
        e.string("dt=2024-01-02");
        e.field(ttype::STRING, 2);
        e.binary(&[0b10]);
        e.stop();
        e.stop();
        e.field(ttype::STRUCT, 5); // i64Val
        e.field(ttype::LIST, 1);
        e.list_begin(ttype::I64, 2);
        e.i64(1200);
        e.i64(3);
        e.field(ttype::STRING, 2);
        e.binary(&[]);
        e.stop();
        e.stop();
        e.field(ttype::STRUCT, 8); // binaryVal
        e.field(ttype::LIST, 1);
        e.list_begin(ttype::STRING, 2);
        e.binary(b"\x00\xff");
        e.binary(b"");
        e.field(ttype::STRING, 2);
        e.binary(&[0b01]);
        e.stop();
        e.stop();
        e.stop();
        out.push((5, end(e)));
        // 5: FetchResults, row-based (before protocol V6).
        let mut e = reply(CALLS[5], seq);
        status(&mut e, 0, None);
        e.field(ttype::STRUCT, 3);
        e.field(ttype::I64, 1);
        e.i64(0);
        e.field(ttype::LIST, 2);
        e.list_begin(ttype::STRUCT, 1);
        e.field(ttype::LIST, 1); // TRow.colVals
        e.list_begin(ttype::STRUCT, 3);
        e.field(ttype::STRUCT, 7);
        e.field(ttype::STRING, 1);
        e.string("orders");
        e.stop();
        e.stop();
        e.field(ttype::STRUCT, 4);
        e.field(ttype::I32, 1);
        e.i32(-5);
        e.stop();
        e.stop();
        e.field(ttype::STRUCT, 1);
        e.stop(); // boolVal without a value: NULL
        e.stop();
        e.stop(); // TRow
        e.stop(); // TRowSet
        out.push((5, end(e)));
        // 6, 7: CloseSession, CancelOperation.
        for call in [6, 7] {
            let mut e = reply(CALLS[call], seq);
            status(&mut e, 0, None);
            out.push((call, end(e)));
        }
        // 1: an application exception (an old server refusing the protocol version).
        let mut e = Encoder::new();
        e.message_begin(CALLS[1], message_type::EXCEPTION, seq);
        e.field(ttype::STRING, 1);
        e.string("Required field 'client_protocol' is unset!");
        e.field(ttype::I32, 2);
        e.i32(7);
        e.stop();
        out.push((APPLICATION_EXCEPTION, e.into_bytes()));
        out
    };
    let mut seeds = Vec::new();
    for (n, (call, first)) in replies(1).into_iter().enumerate() {
        let (call, exception) = match call {
            APPLICATION_EXCEPTION => (1, "-exception"),
            c => (c, ""),
        };
        // The same call's replies twice in a row (sequence 1, then 2).
        let second = replies(2)
            .into_iter()
            .find(|(c, _)| *c == call)
            .map(|(_, b)| b)
            .unwrap_or_default();
        let call_bits = u8::try_from(call).expect("eight calls");
        let mut framed = vec![call_bits | FRAMED];
        for message in [&first, &second] {
            let len = u32::try_from(message.len()).expect("small");
            // A reply split over two frames, as a server may flush it.
            let half = message.len() / 2;
            framed.extend_from_slice(&u32::try_from(half).expect("small").to_be_bytes());
            framed.extend_from_slice(&message[..half]);
            framed.extend_from_slice(&(len - u32::try_from(half).expect("small")).to_be_bytes());
            framed.extend_from_slice(&message[half..]);
        }
        seeds.push((
            format!("reply-{n:02}-{}{exception}-framed", CALLS[call]),
            framed,
        ));
        let mut plain = vec![call_bits, 61];
        plain.extend_from_slice(&first);
        plain.extend_from_slice(&second);
        seeds.push((
            format!("reply-{n:02}-{}{exception}-nosasl", CALLS[call]),
            plain,
        ));
    }
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::replay;

    #[test]
    fn seeds_decode() {
        for (name, data) in seeds() {
            let decoded = hs2_frames(&data);
            let want = if name.contains("-exception-") {
                vec![Decoded::Application]
            } else {
                vec![Decoded::Reply, Decoded::Reply]
            };
            assert_eq!(decoded, want, "{name}");
        }
    }

    /// Replays `fuzz/corpus/hs2_frames` and `fuzz/regressions/hs2_frames`.
    #[test]
    fn replays_the_fuzz_corpus() {
        replay("hs2_frames", |data| {
            hs2_frames(data);
        });
    }

    /// Writes the seeds into `fuzz/corpus/hs2_frames` (run by hand after changing them).
    #[test]
    #[ignore = "writes the seed corpus"]
    fn write_seed_corpus() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/hs2_frames");
        std::fs::create_dir_all(dir).unwrap();
        for (name, data) in seeds() {
            std::fs::write(format!("{dir}/{name}"), data).unwrap();
        }
    }
}
